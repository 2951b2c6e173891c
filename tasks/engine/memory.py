"""GPU memory a training recipe needs per GPU: weights, gradients, AdamW state, an on-line teacher, activations.

    python -m tasks.engine.memory [CONFIG ...] [--markdown]

Without CONFIG, every training recipe under configs/{recognition,pretrain,detection,localization} except the tiny
``vit-test`` presets. The numbers are estimates for CUDA (README.md#gpu-memory-per-recipe):

- **state**: trainable parameters x 16 bytes: fp32 weights (the master copy, also under autocast), fp32 gradients and
  AdamW's two fp32 moments. Parameters are counted on a model built on the ``meta`` device.
- **teacher**: an on-line distillation teacher's weights in its dtype (no gradients, no optimiser state), plus its
  largest transient forward tensors (it runs under ``no_grad``, while the student's activations are held).
- **activations**: the tensors autograd saves for backward, summed per transformer block from the block structure
  (:func:`block_saved_bytes`), times the clips per GPU and step (``batch_size`` x repeated-augmentation views). With
  ``with_cp`` only each block's input is kept, plus one block's saved tensors while it is recomputed. Under bf16
  autocast the linear layers also keep bf16 copies of the trained weights (2 bytes per parameter). Models without a
  ViT (ActionFormer on features) are measured: one CPU forward pass with a saved-tensor hook.

The per-block formula reproduces, to the byte, what autograd saves on CPU (tests/engine/test_memory.py). Not counted:
the CUDA context and kernels' workspaces, allocator fragmentation and the optimiser step's temporaries, hence the
margin of :data:`USABLE_FRACTION` and :data:`CONTEXT_BYTES` when deciding what fits a card.
"""
from __future__ import annotations

import argparse
import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn as nn

__all__ = ['ACT_SETTINGS', 'RecipeMemory', 'StackShape', 'block_saved_bytes', 'default_recipes', 'main',
           'optimizer_state_bytes', 'recipe_memory', 'saved_tensor_bytes', 'stack_activation_bytes',
           'vit_activation_bytes']

Precision = Literal['fp32', 'bf16']
GiB = 1024 ** 3
#: Bytes per trainable parameter with AdamW: fp32 weight + fp32 gradient + exp_avg + exp_avg_sq.
ADAMW_BYTES_PER_PARAM = 4 + 4 + 4 + 4
#: Card sizes the table checks (A100 40 GB, A100/H100 80 GB), in GiB as the cards report them.
CARDS_GIB = (40, 80)
#: A recipe fits a card when its estimate is at most this fraction of what is left after the CUDA context.
USABLE_FRACTION = 0.9
CONTEXT_BYTES = 1 * GiB
#: The four training settings the table lists, in the order a recipe should try them: with_cp costs a recomputed
#: forward (~30 % more time); bf16 autocast changes the numerics, so it comes last unless the recipe asks for it.
ACT_SETTINGS: tuple[tuple[Precision, bool], ...] = (('fp32', False), ('fp32', True), ('bf16', False), ('bf16', True))
_BYTES = {'fp32': 4, 'bf16': 2}
_RECIPE_DIRS = ('configs/recognition', 'configs/pretrain', 'configs/detection', 'configs/localization')


# ---------------------------------------------------------------------------------------------------------------------
# Formulas
# ---------------------------------------------------------------------------------------------------------------------
def optimizer_state_bytes(num_params: int) -> int:
    """fp32 weights, gradients and AdamW's two moments: 16 bytes per trainable parameter."""
    return ADAMW_BYTES_PER_PARAM * num_params


def block_saved_bytes(dim: int, hidden: int, heads: int, precision: Precision = 'fp32',
                      autocast_device: str = 'cuda') -> int:
    """Bytes autograd saves for backward per token in one pre-norm ViT block (:class:`backbone.videomaev2.Block`).

    fp32, per token (C = ``dim``, H = ``hidden``)::

        norm1 input x (C), its output as qkv's input (C), qkv output = SDPA's q, k, v (3C; views of one tensor),
        SDPA output = proj's input (C; a view), norm2 input (C), its output as fc1's input (C),
        fc1 output = GELU's input (H), GELU output = fc2's input (H)          -> 4 x (8C + 2H) bytes
        + two LayerNorms' mean and rstd (4 floats) + SDPA's log-sum-exp (one float per head)

    Fused attention keeps no N x N matrix; drop path keeps only a (B, 1, 1) mask; dropout with p = 0 keeps nothing.
    Under bf16 autocast the linear layers and SDPA keep bf16 tensors. CUDA autocast runs LayerNorm in fp32, so each
    norm keeps an fp32 copy of its input; CPU autocast runs it in bf16 (``autocast_device='cpu'``, what the CPU test
    measures).
    """
    small = 4 * 4 + 4 * heads
    if precision == 'fp32':
        return 4 * (8 * dim + 2 * hidden) + small
    if precision != 'bf16':
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    norm_inputs = 2 * dim * (4 if autocast_device == 'cuda' else 2)
    return norm_inputs + 2 * (6 * dim + 2 * hidden) + small


@dataclass(frozen=True)
class StackShape:
    """A stack of identical transformer blocks run on ``tokens`` tokens per sample."""
    tokens: int
    dim: int
    depth: int
    heads: int
    hidden: int

    @classmethod
    def of(cls, blocks: nn.ModuleList, tokens: int) -> StackShape:
        """Shape of a ``ModuleList`` of :class:`backbone.videomaev2.Block`."""
        blk = blocks[0]
        return cls(tokens, blk.norm1.normalized_shape[0], len(blocks), blk.attn.num_heads, blk.mlp.fc1.out_features)


def stack_activation_bytes(stacks: Sequence[StackShape], precision: Precision = 'fp32', with_cp: bool = False,
                           autocast_device: str = 'cuda') -> int:
    """Saved-for-backward bytes of the block stacks, per sample.

    With ``with_cp`` (non-reentrant per-block checkpointing) every block keeps only its input (the residual stream:
    fp32, or bf16 under autocast, since the patch embedding's output is bf16 there), and one block's saved tensors
    exist while it is recomputed in backward.
    """
    if with_cp:
        inputs = sum(s.depth * s.tokens * s.dim * _BYTES[precision] for s in stacks)
        recompute = max(s.tokens * block_saved_bytes(s.dim, s.hidden, s.heads, precision, autocast_device)
                        for s in stacks)
        return inputs + recompute
    return sum(s.depth * s.tokens * block_saved_bytes(s.dim, s.hidden, s.heads, precision, autocast_device)
               for s in stacks)


def _teacher_transient_bytes(stack: StackShape, precision: Precision) -> int:
    """Largest tensors alive at once in a no-grad block forward, per sample: the residual stream, the norm output and
    the MLP's hidden activation before and after GELU (an approximation; the attention part is smaller)."""
    return stack.tokens * (2 * stack.dim + 2 * stack.hidden) * _BYTES[precision]


# ---------------------------------------------------------------------------------------------------------------------
# Measurement (models without a formula, and the test of the formula)
# ---------------------------------------------------------------------------------------------------------------------
def saved_tensor_bytes(fn: Callable[[], Any], exclude: Iterable[torch.Tensor] = ()) -> int:
    """Bytes of the distinct storages autograd saves for backward while ``fn()`` runs (parameters in ``exclude`` are
    not counted). Tensors saved inside a checkpointed region are not seen (the checkpoint's own hooks take them)."""
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen: dict[int, int] = {}
    kept: list[torch.Tensor] = []  # hold the tensors so that a freed storage's address is not reused and missed

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in skip:
            seen.setdefault(storage.data_ptr(), storage.nbytes())
            kept.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


# ---------------------------------------------------------------------------------------------------------------------
# Recipes
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class RecipeMemory:
    """Per-GPU memory of one recipe, in bytes; ``activations[(precision, with_cp)]`` for the four settings."""
    name: str
    params: int
    clips: int
    state: int
    teacher: int = 0
    teacher_transient: dict[Precision, int] = field(default_factory=dict)
    activations: dict[tuple[Precision, bool], int] = field(default_factory=dict)
    precision: Precision = 'fp32'
    with_cp: bool = False
    notes: list[str] = field(default_factory=list)

    def total(self, precision: Precision | None = None, with_cp: bool | None = None) -> int:
        """Estimate for a setting (default: the recipe's own)."""
        precision = self.precision if precision is None else precision
        with_cp = self.with_cp if with_cp is None else with_cp
        return (self.state + self.teacher + self.teacher_transient.get(precision, 0)
                + self.activations[(precision, with_cp)])

    def fits(self, card_gib: float, precision: Precision | None = None, with_cp: bool | None = None) -> bool:
        return self.total(precision, with_cp) <= USABLE_FRACTION * (card_gib * GiB - CONTEXT_BYTES)

    def cheapest(self, card_gib: float) -> str:
        """The first of :data:`ACT_SETTINGS` that fits, e.g. ``'fp32'``, ``'cp'``, ``'bf16+cp'``; ``'no'`` if none."""
        for precision, with_cp in ACT_SETTINGS:
            if self.fits(card_gib, precision, with_cp):
                return _setting(precision, with_cp)
        return 'no'


def _setting(precision: str, with_cp: bool) -> str:
    return {('fp32', False): 'fp32', ('fp32', True): 'cp', ('bf16', False): 'bf16', ('bf16', True): 'bf16+cp'}[
        (precision, with_cp)]


def _cfg_get(cfg: Any, dotted: str, default: Any = None) -> Any:
    node = cfg
    for key in dotted.split('.'):
        if node is None or key not in node:
            return default
        node = node[key]
    return node


def _meta_vit(kwargs: dict) -> nn.Module:
    from backbone import VideoMAEv2ViT

    kwargs = {k: v for k, v in kwargs.items() if k not in ('type', 'pretrained', 'init_cfg', 'checkpoint',
                                                              'label_map', 'dtype')}
    with torch.device('meta'):
        return VideoMAEv2ViT(**kwargs)


def vit_activation_bytes(vit: nn.Module, grid: Sequence[int], precision: Precision = 'fp32', with_cp: bool = False,
                         featmap: bool = False, autocast_device: str = 'cuda') -> int:
    """Activation bytes per sample of a training step of a :class:`backbone.VideoMAEv2ViT` on a token ``grid``
    (T', H', W'): the fp32 input clip (the patch embedding's saved input; under bf16 it also keeps a bf16 copy), the
    blocks, and the pooling norm and head (or, with ``featmap``, the feature-map norm). Weight copies under autocast
    are not included (they do not scale with the batch)."""
    tokens = math.prod(grid)
    dim = vit.embed_dim
    clip = 3 * grid[0] * vit.tubelet_size * grid[1] * vit.patch_size * grid[2] * vit.patch_size
    out = 4 * clip + (2 * clip if precision == 'bf16' else 0)
    out += stack_activation_bytes([StackShape.of(vit.blocks, tokens)], precision, with_cp, autocast_device)
    out += tokens * (4 * dim + 8) if featmap else 4 * 2 * dim + 8  # fp32 LayerNorm (+ head input)
    return out


def _classification(cfg: Any, model: dict, report: RecipeMemory) -> None:
    vit = _meta_vit(model['backbone'])
    report.params = sum(p.numel() for p in vit.parameters())
    grid = vit.grid_size
    for precision, with_cp in ACT_SETTINGS:
        report.activations[(precision, with_cp)] = report.clips * vit_activation_bytes(vit, grid, precision, with_cp)
    teacher_cfg = _cfg_get(model, 'distill.teacher')
    if teacher_cfg is not None:
        teacher = _meta_vit(teacher_cfg)
        dtype = teacher_cfg.get('dtype', 'float32')
        nbytes = 2 if dtype in ('bfloat16', 'float16') else 4
        report.teacher = nbytes * sum(p.numel() for p in teacher.parameters())
        stack = StackShape.of(teacher.blocks, math.prod(teacher.grid_size))
        for precision in ('fp32', 'bf16'):
            # a bf16 teacher computes in bf16 even when the student does not
            act: Precision = 'bf16' if nbytes == 2 else precision
            report.teacher_transient[precision] = report.clips * _teacher_transient_bytes(stack, act)
        report.notes.append(f'teacher {teacher.arch} in {dtype}')


def _detection(cfg: Any, model: dict, report: RecipeMemory) -> None:
    backbone = dict(model['backbone'], featmap_norm=True, num_classes=0, fc_norm=False)
    vit = _meta_vit(backbone)
    crop = int(_cfg_get(cfg, 'train_dataloader.dataset.crop_size', 256))
    if crop % vit.patch_size:  # the preprocessor pads to whole patches
        crop += vit.patch_size - crop % vit.patch_size
    grid = (vit.grid_size[0], crop // vit.patch_size, crop // vit.patch_size)
    num_classes = int(_cfg_get(model, 'roi_head.num_classes', 80))
    report.params = sum(p.numel() for p in vit.parameters()) + vit.embed_dim * num_classes + num_classes
    for precision, with_cp in ACT_SETTINGS:
        report.activations[(precision, with_cp)] = report.clips * vit_activation_bytes(vit, grid, precision, with_cp,
                                                                                      featmap=True)


def _pretrain(cfg: Any, model: dict, report: RecipeMemory) -> None:
    from backbone.pretrain import VideoMAEv2Pretrainer

    kwargs = {k: v for k, v in model.items() if k not in ('type', 'data_preprocessor', 'pretrained', 'init_cfg')}
    with torch.device('meta'):
        net = VideoMAEv2Pretrainer(**kwargs)
    report.params = sum(p.numel() for p in net.parameters())
    dataset = _cfg_get(cfg, 'train_dataloader.dataset', {})
    t, h, w = net.grid_size
    per_slice = h * w
    visible = t * (per_slice - int(float(dataset.get('encoder_mask_ratio', 0.9)) * per_slice))
    kept = t * (per_slice - int(float(dataset.get('decoder_mask_ratio', 0.5)) * per_slice))
    enc = StackShape.of(net.encoder.blocks, visible)
    dec = StackShape.of(net.decoder.blocks, visible + kept)
    clip = 3 * t * net.encoder.tubelet_size * h * w * net.encoder.patch_size ** 2
    for precision, with_cp in ACT_SETTINGS:
        per = 4 * clip + (2 * clip if precision == 'bf16' else 0)
        per += stack_activation_bytes([enc, dec], precision, with_cp)
        # encoder norm (fp32 input) and its output as encoder_to_decoder's input; decoder norm (its input is a slice
        # of the last block's whole output) and head; the MSE keeps prediction and target (fp32).
        per += visible * enc.dim * 8 + dec.tokens * dec.dim * 4 + kept * dec.dim * 4 + 2 * kept * net.num_outputs * 4
        report.activations[(precision, with_cp)] = report.clips * per


def _measured(cfg: Any, model: dict, report: RecipeMemory) -> None:
    """Models without a block formula (ActionFormer on features): build on the CPU and measure one forward pass."""
    from mmengine.registry import MODELS
    from mmengine.utils import import_modules_from_strings

    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg['custom_imports'])
    net = MODELS.build(dict(model))
    report.params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    length = int(_cfg_get(model, 'data_preprocessor.max_seq_len', 2304))
    x = torch.zeros(1, int(model['in_dim']), length)
    net.train()
    for precision in ('fp32', 'bf16'):
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=precision == 'bf16'):
            per = saved_tensor_bytes(lambda: net._forward(x, [length]), net.parameters())
        for with_cp in (False, True):
            report.activations[(precision, with_cp)] = report.clips * per
    report.notes.append('activations measured (CPU forward, saved tensors); no with_cp')


_HANDLERS: dict[str, Callable[[Any, dict, RecipeMemory], None]] = {
    'VideoMAEv2Classifier': _classification,
    'VideoMAEv2AVADetector': _detection,
    'VideoMAEv2PretrainModel': _pretrain,
}


def recipe_memory(config: str | Path) -> RecipeMemory:
    """Estimate the per-GPU memory of the training recipe in ``config`` (an mmengine config file)."""
    cfg = _load(str(config))
    model = cfg.get('model')
    loader = cfg.get('train_dataloader')
    if model is None or not loader:
        raise ValueError(f'{config}: not a training recipe (no model or train_dataloader)')
    views = int(_cfg_get(loader, 'dataset.num_sample', 1) or 1)
    clips = int(loader['batch_size']) * views
    wrapper = str(_cfg_get(cfg, 'optim_wrapper.type', 'OptimWrapper'))
    precision: Precision = 'bf16' if 'BF16' in wrapper or _cfg_get(cfg, 'optim_wrapper.dtype') == 'bfloat16' \
        else 'fp32'
    with_cp = bool(_cfg_get(model, 'backbone.with_cp', model.get('with_cp', False)))
    report = RecipeMemory(Path(config).stem, 0, clips, 0, precision=precision, with_cp=with_cp)
    _HANDLERS.get(model['type'], _measured)(cfg, model.to_dict() if hasattr(model, 'to_dict') else dict(model),
                                            report)
    report.state = optimizer_state_bytes(report.params)
    for key in list(report.activations):
        if key[0] == 'bf16' and model['type'] in _HANDLERS:
            report.activations[key] += 2 * report.params  # autocast's cached bf16 copies of the trained weights
    return report


@functools.lru_cache(maxsize=None)
def _load(path: str) -> Any:
    """The config (parsed once: listing the recipes and estimating them read the same files; read-only here)."""
    from mmengine.config import Config

    return Config.fromfile(path, import_custom_modules=False)


def default_recipes(root: str | Path = '.') -> list[Path]:
    """Every training recipe under the recipe folders, except the tiny ``vit-test`` presets."""
    out = []
    for folder in _RECIPE_DIRS:
        for path in sorted((Path(root) / folder).rglob('*.py')):
            if 'vit-test' in path.name or '_base_' in path.parts:
                continue
            if _load(str(path)).get('train_dataloader'):
                out.append(path)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------------
_HEADER = ['recipe', 'params', 'clips/GPU', 'weights+grads+AdamW', 'teacher', 'act fp32', 'act fp32+cp', 'act bf16',
           'act bf16+cp', 'as set', 'total', 'fits 40 GB', 'fits 80 GB']
_RIGHT = [False] + [True] * 8 + [False, True, False, False]


def _gib(nbytes: int) -> str:
    return f'{nbytes / GiB:.1f}'


def table_rows(reports: Sequence[RecipeMemory]) -> list[list[str]]:
    rows = []
    for r in reports:
        teacher = _gib(r.teacher + r.teacher_transient.get(r.precision, 0)) if r.teacher else '-'
        acts = [_gib(r.activations[s]) for s in ACT_SETTINGS]
        rows.append([r.name, f'{r.params / 1e6:.1f}M', str(r.clips), _gib(r.state), teacher, *acts,
                     _setting(r.precision, r.with_cp), _gib(r.total()),
                     *(('yes' if r.fits(card) else f'no (needs {r.cheapest(card)})') for card in CARDS_GIB)])
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog='python -m tasks.engine.memory', description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='*', help='recipe configs (default: every training recipe)')
    parser.add_argument('--markdown', action='store_true', help='print a Markdown table (README.md)')
    args = parser.parse_args(argv)
    paths = [Path(p) for p in args.configs] or default_recipes()
    rows = table_rows([recipe_memory(p) for p in paths])
    if args.markdown:
        print('| ' + ' | '.join(_HEADER) + ' |')
        print('|' + '|'.join('---:' if r else '---' for r in _RIGHT) + '|')
        for row in rows:
            print('| ' + ' | '.join(row) + ' |')
    else:
        from .report import text_table

        print(text_table(_HEADER, rows, right=_RIGHT))
    print(f'GiB per GPU; "as set" is the recipe\'s own precision and checkpointing; a card fits when the total is at '
          f'most {USABLE_FRACTION:.0%} of its size less {CONTEXT_BYTES // GiB} GiB of CUDA context.')


if __name__ == '__main__':
    main()
