"""Pieces shared by the Runner tools (``tools/train.py``, ``tools/test.py``): work directory, launcher set-up,
building the Runner, and strict checkpoint loading for evaluation.

**Strict loading for evaluation** (:func:`load_for_test`). mmengine's ``load_from`` loads non-strictly and only warns,
so a checkpoint with the wrong key names silently tests random weights. Here every weight of the model must come
from the file, and nothing in the file may be left over. The file is read once (mmengine training checkpoints are
accepted under an allow-list of their pickled classes, docs/checkpoints.md#k710-heads-and-safe-loading, docs/ecosystem.md), unwrapped (``state_dict`` / ``model`` /
``module``) and tried in these layouts, in order, until one accounts for the model exactly:

1. ``as saved``: the model's own names, after stripping the ``module.`` (DDP) and ``_orig_mod.`` (torch.compile)
   prefixes. This covers mmengine checkpoints written by ``tools/train.py`` for the same config, and mmaction2
   recognizer files (``backbone.*``, ``cls_head.fc_cls.*``) for stock mmaction2 configs.
2. ``official under backbone.``: any layout :func:`backbone.checkpoint.to_official` reads (official fine-tuned or
   distilled files, HF transformers, mmaction2), renamed to official timm names and put under ``backbone.``. This
   fits a model whose only weights are a ``VideoMAEv2ViT`` called ``backbone`` with its classification head inside.
3. ``mmaction2``: the same file converted to mmaction2's recognizer layout (:func:`backbone.convert_state_dict`,
   ``head.*`` -> ``cls_head.fc_cls.*``), which fits a stock ``Recognizer3D`` + ``TimeSformerHead`` config loading an
   official fine-tuned file. A K710 head must be sliced beforehand (``tools/convert_checkpoint.py --label-map``).

A pre-training checkpoint fits none of them (its head does not exist), and neither does a file whose head has another
number of classes: both raise :class:`CheckpointError` with, per layout tried, the missing and unexpected keys. The
fixed sinusoid ``pos_embed`` that mmaction2 files store is accepted where the backbone rebuilds it (its
``_load_from_state_dict`` checks that it is the sinusoid). Loading happens in a hook at the very end of
``before_run``, i.e. where ``Runner.test()`` would load ``load_from``, so hooks that keep a copy of the model (EMA)
exist already and get the loaded weights through ``after_load_checkpoint``.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.config import Config
from mmengine.hooks import Hook

__all__ = ['cpu_backend', 'resolve_work_dir', 'set_local_rank', 'build_runner', 'load_for_test',
           'StrictCheckpointHook', 'CheckpointError']

from backbone.checkpoint import CheckpointError


# =====================================================================================================================
# Config and launcher
# =====================================================================================================================
def resolve_work_dir(cfg: Config, work_dir: str | None, config_path: str) -> None:
    """``--work-dir`` wins, then the config's ``work_dir``, else ``./work_dirs/<config name>`` (mmaction2's rule)."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def set_local_rank(args: argparse.Namespace) -> None:
    """torch.distributed.launch (not torchrun) passes ``--local-rank``; hand it on as the environment variable."""
    if args.launcher != 'none' and 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)


def cpu_backend(cfg: Config, tool: str = 'tools/train.py') -> None:
    """Run a ``--launcher pytorch`` config on a machine without CUDA (CPU tests, debugging) with gloo.

    mmengine's pytorch launcher calls ``torch.cuda.set_device`` and wraps the model with ``device_ids=[local_rank]``;
    both fail without a GPU. So start the gloo process group here (the Runner then skips its own set-up) and wrap the
    model with :class:`tasks.engine.wrappers.DeviceAgnosticDDP`, which drops ``device_ids`` for CPU modules.
    """
    if torch.cuda.is_available() or cfg.launcher != 'pytorch':
        return
    print(f'{tool}: no CUDA device, using the gloo backend instead of nccl', flush=True)
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')  # env:// rendezvous from torchrun's variables
    if cfg.get('model_wrapper_cfg') is None:
        import tasks.engine.wrappers  # noqa: F401  (registers DeviceAgnosticDDP for configs that do not import it)
        cfg.model_wrapper_cfg = dict(type='DeviceAgnosticDDP', broadcast_buffers=False)


def finish_distributed() -> None:
    """After a run under a launcher: wait for every rank, then destroy the process group.

    A rank that exits with the group alive, while another still finishes its last collective, can abort in gloo's
    teardown (``terminate called without an active exception``, SIGABRT: seen once in the 2-process training test).
    Not in a ``finally``: after an error on one rank the barrier would wait for it forever.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def build_runner(cfg: Config):
    """``Runner.from_cfg``, or the config's own ``runner_type`` from the RUNNERS registry."""
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS

        return RUNNERS.build(cfg)
    from mmengine.runner import Runner

    return Runner.from_cfg(cfg)


# =====================================================================================================================
# Strict checkpoint loading
# =====================================================================================================================
_STRIP = ('module.', '_orig_mod.')


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _STRIP:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def _short(keys: list[str], limit: int = 6) -> str:
    return ', '.join(keys[:limit]) + (f', ... (+{len(keys) - limit} more)' if len(keys) > limit else '')


def _candidates(state: dict[str, torch.Tensor]) -> list[tuple[str, Callable[[], dict[str, torch.Tensor]]]]:
    from backbone.checkpoint import convert_state_dict, to_official

    def official_under_backbone() -> dict[str, torch.Tensor]:
        official, _ = to_official(state)
        return {f'backbone.{k}': v for k, v in official.items()}

    return [
        ('as saved', lambda: {_strip(k): v for k, v in state.items()}),
        ('official names under backbone.', official_under_backbone),
        ('mmaction2 recognizer', lambda: convert_state_dict(state, 'mmaction2')),
    ]


def load_for_test(model: nn.Module, checkpoint: str | os.PathLike) -> tuple[str, dict[str, torch.Tensor]]:
    """Load ``checkpoint`` into ``model`` so that every model weight comes from the file and every file weight is used.

    Args:
        model: the (unwrapped) model.
        checkpoint: a checkpoint file in any layout of the module docstring.

    Returns:
        (the layout that fitted, the state dict in the model's names that was loaded).

    Raises:
        CheckpointError: the file cannot be read, or no layout accounts for the model exactly; the message lists,
            per layout, the missing and unexpected keys or the shape mismatches.
    """
    from backbone.checkpoint import read_checkpoint
    from tasks.engine.checkpoint import mmengine_checkpoint_globals

    name = str(checkpoint)
    with mmengine_checkpoint_globals():  # mmengine training checkpoints pickle a message hub (docs/ecosystem.md)
        state = read_checkpoint(checkpoint)
    failures = []
    for layout, build in _candidates(state):
        try:
            candidate = build()
        except CheckpointError as err:
            failures.append(f'{layout}: {err}')
            continue
        try:
            # strict=False to get the key lists; success below requires both to be empty, i.e. a strict load. A failed
            # attempt may have copied some tensors: that is harmless, since success later overwrites every weight
            # and failure raises.
            result = model.load_state_dict(candidate, strict=False)
        except RuntimeError as err:  # shape mismatches (and errors from _load_from_state_dict hooks)
            reason = ' '.join(str(err).split('\n\t')[1:]) or str(err)
            failures.append(f'{layout}: {reason}')
            continue
        if not result.missing_keys and not result.unexpected_keys:
            return layout, candidate
        parts = []
        if result.missing_keys:
            parts.append(f'{len(result.missing_keys)} model weights not in the file ({_short(result.missing_keys)})')
        if result.unexpected_keys:
            parts.append(f'{len(result.unexpected_keys)} file weights the model does not have '
                         f'({_short(result.unexpected_keys)})')
        failures.append(f'{layout}: ' + '; '.join(parts))
    raise CheckpointError(f'{name} does not fit the model {type(model).__name__} exactly, so testing it would '
                          'evaluate partly random weights. Layouts tried:\n  ' + '\n  '.join(failures) +
                          '\n(A pre-training checkpoint has no classifier: fine-tune it first. A K710 head must be '
                          'sliced with tools/convert_checkpoint.py --label-map.)')


class StrictCheckpointHook(Hook):
    """Load a checkpoint with :func:`load_for_test` at the end of ``before_run`` (lowest priority).

    ``Runner.test()`` runs ``before_run`` and then ``load_or_resume``; set ``load_from=None`` in the config so that the
    latter has nothing left to do. ``after_load_checkpoint`` is called with the loaded state dict, as mmengine's own
    loading does, so an EMA hook copies the weights into its averaged model.
    """

    priority = 'LOWEST'

    def __init__(self, checkpoint: str | os.PathLike) -> None:
        self.checkpoint = str(checkpoint)
        self.layout: str | None = None

    def before_run(self, runner: Any) -> None:
        from mmengine.model import is_model_wrapper

        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self.layout, state = load_for_test(model, self.checkpoint)
        runner.logger.info(f'Loaded {self.checkpoint} strictly ({self.layout} layout): every model weight is '
                           'from the file')
        runner.call_hook('after_load_checkpoint', checkpoint={'state_dict': state, 'meta': {}})
