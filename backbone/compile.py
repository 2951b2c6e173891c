"""``torch.compile`` for the backbone: one switch that every tool and config uses (``--compile``; in a Runner config
``compile_backbone = True``, since mmengine's own ``compile`` key compiles the whole ``train_step``).

Each transformer :class:`~backbone.Block` in a module (the ViT's, and the pre-training decoder's) is compiled in place
(``nn.Module.compile``), not the model as a whole:

- every entry point gains (``forward``, ``forward_features``, ``forward_featmap``, the pre-training encoder), because
  they all run the same blocks through ``__call__``;
- state-dict keys, ``isinstance`` checks, DDP wrapping and checkpoint hooks see the same modules as in eager mode
  (``torch.compile(model)`` would return a wrapper whose keys start with ``_orig_mod.``);
- the blocks of one model share one graph, so compilation costs one block, not ``depth`` of them.

Compilation is lazy: it happens at the first forward (and once more when a new input shape or dtype arrives, e.g. the
last, smaller batch of a video, or a new dtype after ``.to``). ``copy.deepcopy`` of a compiled module gives eager
blocks again (torch drops the compiled call on copy), so compile after the last copy.

Where compilation cannot work (no C++ compiler for the CPU backend, no Triton for CUDA, an unsupported platform),
:func:`compile_backbone` says why once and leaves the model eager, so a ``--compile`` run never fails for that.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.nn as nn

__all__ = ['compile_backbone', 'compile_unavailable_reason']

_logger = logging.getLogger(__name__)
_PROBED: dict[str, str | None] = {}


def compile_unavailable_reason(device: str | torch.device = 'cpu') -> str | None:
    """Why ``torch.compile`` cannot run on ``device`` here (``None``: it can).

    Compiles and runs a tiny function once per device type (a few seconds, cached for the process): only a real
    compilation shows whether the backend's toolchain (a C++ compiler on CPU, Triton on CUDA) works.
    """
    kind = torch.device(device).type
    if kind not in _PROBED:
        _PROBED[kind] = _probe(kind)
    return _PROBED[kind]


def _probe(kind: str) -> str | None:
    if not hasattr(torch, 'compile'):
        return f'torch {torch.__version__} has no torch.compile (needs torch >= 2.0)'
    if kind == 'cuda' and not torch.cuda.is_available():
        return 'CUDA is not available'
    try:
        fn = torch.compile(lambda t: torch.nn.functional.gelu(t) * 2 + 1, dynamic=False)
        x = torch.linspace(-1, 1, 8, device=kind)
        if not torch.allclose(fn(x), torch.nn.functional.gelu(x) * 2 + 1, atol=1e-6):
            return 'a compiled test function gave a wrong result'
    except Exception as exc:  # any toolchain failure (missing compiler, Triton, unsupported Python) means: not here
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f'{type(exc).__name__}: {first_line[:300]}'
    finally:
        torch._dynamo.reset()  # the probe's graph is of no further use
    return None


def compile_backbone(module: nn.Module, *, mode: str | None = None, dynamic: bool | None = None,
                     log: Callable[[str], None] | None = None) -> int:
    """Compile, in place, every transformer :class:`~backbone.Block` inside ``module``.

    Args:
        module: a backbone, or any model holding one (a recognizer, the AVA detector, the pre-trainer).
        mode: ``torch.compile`` mode (``None``: the default; ``'max-autotune'`` compiles longer for faster kernels).
        dynamic: ``torch.compile``'s ``dynamic`` (``None``: static first, dynamic after a shape change).
        log: where the one-line fallback message goes (default: this module's logger, as a warning).

    Returns:
        How many blocks were compiled: 0 when there is none, or when compilation is not available here (then the
        reason is logged and the model runs eager, unchanged).
    """
    from .videomaev2 import Block

    blocks = [m for m in module.modules() if isinstance(m, Block)]
    if not blocks:
        return 0
    device = next(blocks[0].parameters()).device
    reason = compile_unavailable_reason(device)
    if reason is not None:
        (log or _logger.warning)(f'--compile: torch.compile is not available on {device.type} here ({reason}); '
                                 'running eager')
        return 0
    for block in blocks:
        block.compile(mode=mode, dynamic=dynamic)
    return len(blocks)
