"""The checkpoint layouts of VideoMAE V1/V2 and the renames between them (docs/checkpoints.md).

Layouts: ``official`` (timm names, the downstream ViT's), ``pretrain`` (the official pre-training files: ``encoder.*``
with ``encoder.norm``, ``decoder.*``, ``encoder_to_decoder.weight``, ``mask_token``), ``mmaction2``
(docs/checkpoints.md#mmaction2-layout) and ``hf`` (transformers 4 and 5, docs/checkpoints.md#transformers-layout).
:func:`to_official` reads any of them into official names (pre-training-only keys kept as they are);
:func:`convert_state_dict` writes official names back out in any layout.
"""
from __future__ import annotations

import json
import operator
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import torch

from .checkpoint_io import CheckpointError, Source, read_checkpoint, source_name
from .pos_embed import sinusoid_table

__all__ = ['LabelMap', 'Layout', 'PRETRAIN_ONLY', 'convert_state_dict', 'detect_layout', 'is_fixed_sinusoid',
           'is_pretrain_only', 'label_map_indices', 'official_names', 'slice_head', 'to_official']

Layout = Literal['official', 'pretrain', 'mmaction2', 'hf']
LabelMap = Sequence[int] | str | os.PathLike

#: Official names of the keys only a pre-training model has (its encoder's other keys are the downstream ViT's).
PRETRAIN_ONLY = ('decoder.', 'encoder_to_decoder.', 'mask_token', 'encoder.norm.')
_PREFIXES = ('_orig_mod.', 'module.', 'backbone.')  # torch.compile, DDP/DeepSpeed, mmengine models

_MMACTION_TO_OFFICIAL = [
    (re.compile(r'^patch_embed\.projection\.'), 'patch_embed.proj.'),
    (re.compile(r'\.mlp\.layers\.0\.0\.'), '.mlp.fc1.'),
    (re.compile(r'\.mlp\.layers\.1\.'), '.mlp.fc2.'),
    (re.compile(r'^cls_head\.fc_cls\.'), 'head.'),
]
# (HF name within a block, official name within a block); the first prefix that matches wins.
_HF_BLOCK_TO_OFFICIAL = [
    ('layernorm_before.', 'norm1.'), ('layernorm_after.', 'norm2.'),
    ('attention.attention.q_bias', 'attn.q_bias'), ('attention.attention.v_bias', 'attn.v_bias'),
    ('attention.attention.query.bias', 'attn.q_bias'), ('attention.attention.value.bias', 'attn.v_bias'),
    ('attention.output.dense.', 'attn.proj.'), ('intermediate.dense.', 'mlp.fc1.'), ('output.dense.', 'mlp.fc2.'),
]


def is_pretrain_only(key: str) -> bool:
    """Whether an official name belongs to the pre-training model only (decoder side and ``encoder.norm``)."""
    return key.startswith(PRETRAIN_ONLY)


def is_fixed_sinusoid(table: torch.Tensor) -> bool:
    """Whether ``table`` ((1, N, C) or (N, C)) is the fixed sinusoid for its own N and C, up to its dtype's rounding."""
    if not table.is_floating_point() or table.dim() not in (2, 3) or (table.dim() == 3 and table.shape[0] != 1):
        return False
    flat = table.detach().float().reshape(-1, table.shape[-1])
    # Values lie in [-1, 1], so rounding to the stored dtype moves them by at most eps/2 (fp16: 5e-4, bf16: 4e-3).
    atol = max(1e-4, torch.finfo(table.dtype).eps)
    return torch.allclose(flat, sinusoid_table(*flat.shape)[0], rtol=0.0, atol=atol)


# ---------------------------------------------------------------------------------------------------------------------
# Any layout -> official names
# ---------------------------------------------------------------------------------------------------------------------
def _rename(keys: Iterable[str], fn: Callable[[str], str], name: str) -> dict[str, str]:
    """{new name: old name} for ``fn`` applied to every key; two keys with the same new name are an error."""
    out: dict[str, str] = {}
    for key in keys:
        new = fn(key)
        if new in out:
            raise CheckpointError(f'{name}: keys {out[new]!r} and {key!r} both map to {new!r}; the file mixes '
                                  'layouts or prefixes')
        out[new] = key
    return out


def _strip_prefix(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def detect_layout(keys: Iterable[str]) -> Layout:
    """The layout of a prefix-stripped state dict (or of its keys)."""
    keys = list(keys)
    if any('patch_embeddings.projection' in k or '.attention.attention.' in k for k in keys):
        return 'hf'
    if any('patch_embed.projection' in k or '.mlp.layers.' in k or k.startswith('cls_head.') for k in keys):
        return 'mmaction2'
    if any(k.startswith(('encoder.', 'decoder.', 'encoder_to_decoder.')) or k == 'mask_token' for k in keys):
        return 'pretrain'
    return 'official'


def _official_key(key: str, layout: Layout) -> str:
    """The official name of one prefix-stripped key of an ``official``, ``pretrain`` or ``mmaction2`` state dict."""
    if layout == 'mmaction2':
        for pattern, new in _MMACTION_TO_OFFICIAL:
            key = pattern.sub(new, key)
    elif layout == 'pretrain' and not is_pretrain_only(key):
        key = key.removeprefix('encoder.')
    return key


def official_names(keys: Iterable[str], name: str = '<model>') -> tuple[dict[str, str], Layout]:
    """{official name: key} for the keys of a model's state dict, and the model's layout.

    A model holding the ViT under ``backbone.`` (a classifier, mmaction2's ``Recognizer3D``, the AVA detector), the
    pre-training model (``encoder.*``) and the ViT itself all name their weights in official names this way, so one
    checkpoint filter serves them all.
    """
    stripped = _rename(keys, _strip_prefix, name)
    layout = detect_layout(stripped)
    if layout == 'hf':
        raise CheckpointError(f'{name}: a transformers VideoMAE model; load its checkpoints with transformers')
    official = _rename(stripped, lambda k: _official_key(k, layout), name)
    return {new: stripped[old] for new, old in official.items()}, layout


def _hf_to_official(state: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    is_pretrain = any(k.startswith(('decoder.', 'encoder_to_decoder.')) or k == 'mask_token' for k in state)
    renamed: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        key = key.removeprefix('videomae.')
        block = re.match(r'^(encoder\.layer|decoder\.decoder_layers)\.(\d+)\.(.*)$', key)
        if block:
            scope = 'blocks' if block.group(1) == 'encoder.layer' else 'decoder.blocks'
            prefix, rest = f'{scope}.{block.group(2)}.', block.group(3)
            part = re.match(r'^attention\.attention\.(query|key|value)\.(weight|bias)$', rest)
            if part and part.group(2) == 'weight':
                qkv.setdefault(prefix, {})[part.group(1)] = value
                continue
            if part and part.group(1) == 'key':  # a key bias would break the fixed-zero k bias of the model
                if torch.count_nonzero(value):
                    raise CheckpointError(f'{name}: {key} is non-zero; VideoMAE fixes the key bias at 0')
                continue
            for old, new in _HF_BLOCK_TO_OFFICIAL:
                if rest.startswith(old):
                    rest = new + rest[len(old):]
                    break
            key = prefix + rest
        else:
            key = re.sub(r'^embeddings\.patch_embeddings\.projection\.', 'patch_embed.proj.', key)
            # The encoder's final LayerNorm: `encoder.norm` of a pre-training model, `norm` of a fine-tuned one.
            key = re.sub(r'^layernorm\.', 'encoder.norm.' if is_pretrain else 'norm.', key)
            key = re.sub(r'^classifier\.', 'head.', key)
        if key in renamed:
            raise CheckpointError(f'{name}: two keys map to {key!r}; the file mixes transformers 4 and 5 names')
        renamed[key] = value
    for prefix, parts in qkv.items():
        if set(parts) != {'query', 'key', 'value'}:
            raise CheckpointError(f'{name}: {prefix} has only {sorted(parts)} of the query/key/value weights')
        renamed[prefix + 'attn.qkv.weight'] = torch.cat([parts['query'], parts['key'], parts['value']], dim=0)
    return renamed


def to_official(src: Source, weights_only: bool = True) -> tuple[dict[str, torch.Tensor], Layout]:
    """Read any supported layout and rename it to official names.

    The wrappers (``state_dict`` / ``model`` / ``module``) and prefixes (``_orig_mod.``, ``module.``, ``backbone.``)
    go; pre-training files have their encoder keys renamed to the bare backbone names (``encoder.blocks.0...`` ->
    ``blocks.0...``) and keep the pre-training-only keys (:data:`PRETRAIN_ONLY`) as they are. Position tables are kept
    as found (mmaction2 stores its fixed sinusoid).

    Returns:
        (state dict in official names, detected layout).
    """
    name = source_name(src)
    state = read_checkpoint(src, weights_only)
    stripped = _rename(state, _strip_prefix, name)
    layout = detect_layout(stripped)
    if layout == 'hf':
        official = _hf_to_official({new: state[old] for new, old in stripped.items()}, name)
        return official, 'pretrain' if any(is_pretrain_only(k) for k in official) else 'hf'
    renamed = _rename(stripped, lambda k: _official_key(k, layout), name)
    return {new: state[stripped[old]] for new, old in renamed.items()}, layout


# ---------------------------------------------------------------------------------------------------------------------
# K710 heads (docs/checkpoints.md#k710-heads-and-safe-loading)
# ---------------------------------------------------------------------------------------------------------------------
def label_map_indices(label_map: LabelMap) -> list[int]:
    """The source-class indices of a label map: a list, or a json file holding it (e.g. ``label_710to400.json``)."""
    if isinstance(label_map, (str, os.PathLike)):
        path = Path(label_map)
        try:
            indices = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f'{path}: cannot read the label map ({err})') from err
        where = str(path)
    else:
        indices, where = label_map, 'label_map'
    if isinstance(indices, (str, bytes, Mapping)) or not isinstance(indices, Sequence) or not indices:
        raise CheckpointError(f'{where}: a label map must be a non-empty list of integer source-class indices '
                              f'(e.g. misc/label_710to400.json), got {type(indices).__name__}')
    out = []
    for position, index in enumerate(indices):
        try:
            if isinstance(index, bool):
                raise TypeError
            out.append(operator.index(index))
        except TypeError:
            raise CheckpointError(f'{where}: entry {position} of the label map is {index!r}, not an integer '
                                  'class index') from None
    return out


def slice_head(state: dict[str, torch.Tensor], label_map: LabelMap, name: str) -> int:
    """New head row i = old row ``label_map[i]``, for ``head.weight`` and ``head.bias``, in place on official names.

    Returns:
        The number of rows of the new head.
    """
    indices = label_map_indices(label_map)
    rows = state['head.weight'].shape[0]
    bad = [i for i in indices if not 0 <= i < rows]
    if bad:
        raise CheckpointError(f'{name}: label map indices {bad[:5]} lie outside [0, {rows}) for the checkpoint\'s '
                              f'{rows}-way head')
    for key in ('head.weight', 'head.bias'):
        if key in state:
            state[key] = state[key][indices]
    return len(indices)


# ---------------------------------------------------------------------------------------------------------------------
# Official names -> other layouts
# ---------------------------------------------------------------------------------------------------------------------
def convert_state_dict(src: Source, to: Layout, *, grid: tuple[int, int, int] | None = None,
                       label_map: LabelMap | None = None, weights_only: bool = True) -> dict[str, torch.Tensor]:
    """Convert a checkpoint in any supported layout to ``to``.

    The fixed sinusoid position table is not a weight: official and HF files never hold it, mmaction2 files do. So
    it is dropped for ``official``/``hf`` (after checking that it *is* the fixed sinusoid; a learned table is kept
    for ``official`` and is an error for ``hf``, which cannot hold one) and written for ``mmaction2`` when ``grid`` is
    given.

    Args:
        src: path or state dict in any layout.
        to: ``'official'`` (or ``'pretrain'``, the same thing for pre-training files), ``'mmaction2'`` or ``'hf'``
            (transformers 5 names, ``attention.attention.query.bias``; transformers 4 renames them on load).
        grid: token grid (T', H', W') for which to write mmaction2's persistent ``backbone.pos_embed`` (the fixed
            sinusoid, so the file loads strictly into mmaction2's VisionTransformer built for that grid). None keeps
            the source's table if it has one, and otherwise leaves it out.
        label_map: slice a K710 head: new row i = old row ``label_map[i]`` (a list, or a json file holding it).
        weights_only: passed to ``torch.load``.

    Returns:
        The converted flat state dict (not wrapped).
    """
    if to not in ('official', 'pretrain', 'mmaction2', 'hf'):
        raise ValueError(f"unknown layout {to!r}; choose 'official', 'mmaction2' or 'hf'")
    name = source_name(src)
    state, _ = to_official(src, weights_only)
    if label_map is not None:
        if 'head.weight' not in state:
            raise CheckpointError(f'{name}: label_map was given but the checkpoint has no head to slice')
        slice_head(state, label_map, name)
    learned_pos = 'pos_embed' in state and not is_fixed_sinusoid(state['pos_embed'])
    if to == 'mmaction2':
        return _official_to_mmaction2(state, grid, learned_pos, name)
    if to == 'hf':
        return _official_to_hf(state, learned_pos, name)
    if 'pos_embed' in state and not learned_pos:
        state.pop('pos_embed')
    if not any(is_pretrain_only(k) for k in state):
        return state
    return {k if is_pretrain_only(k) else f'encoder.{k}': v for k, v in state.items()}


def _official_to_mmaction2(state: dict[str, torch.Tensor], grid: tuple[int, int, int] | None, learned_pos: bool,
                           name: str) -> dict[str, torch.Tensor]:
    if any(is_pretrain_only(k) for k in state):
        raise CheckpointError(f'{name}: mmaction2 has no pre-training model for VideoMAE; convert the encoder by '
                              'loading it into VideoMAEv2ViT first')
    if grid is not None and not learned_pos:
        if 'patch_embed.proj.weight' not in state:
            raise CheckpointError(f'{name}: no patch_embed.proj.weight to take the width of pos_embed from')
        width = state['patch_embed.proj.weight'].shape[0]
        state['pos_embed'] = sinusoid_table(grid[0] * grid[1] * grid[2], width)
    out = {}
    for key, value in state.items():
        if key.startswith('head.'):
            out['cls_head.fc_cls.' + key[len('head.'):]] = value
            continue
        key = re.sub(r'^patch_embed\.proj\.', 'patch_embed.projection.', key)
        key = re.sub(r'\.mlp\.fc1\.', '.mlp.layers.0.0.', key)
        key = re.sub(r'\.mlp\.fc2\.', '.mlp.layers.1.', key)
        out['backbone.' + key] = value
    return out


def _official_to_hf(state: dict[str, torch.Tensor], learned_pos: bool, name: str) -> dict[str, torch.Tensor]:
    if learned_pos:
        raise CheckpointError(f'{name}: pos_embed is learned; transformers VideoMAE only has the fixed sinusoid')
    state.pop('pos_embed', None)  # HF keeps the sinusoid as a plain tensor
    official_to_hf = [(official, hf) for hf, official in _HF_BLOCK_TO_OFFICIAL
                      if not hf.startswith('attention.attention.')]
    out = {}
    for key, value in state.items():
        block = re.match(r'^(decoder\.)?blocks\.(\d+)\.(.*)$', key)
        if block:
            scope = 'decoder.decoder_layers' if block.group(1) else 'videomae.encoder.layer'
            prefix, rest = f'{scope}.{block.group(2)}.', block.group(3)
            if rest == 'attn.qkv.weight':
                for part, chunk in zip(('query', 'key', 'value'), value.chunk(3, dim=0)):
                    out[f'{prefix}attention.attention.{part}.weight'] = chunk.clone()
                continue
            rest = {'attn.q_bias': 'attention.attention.query.bias',
                    'attn.v_bias': 'attention.attention.value.bias'}.get(rest, rest)
            for official, hf in official_to_hf:
                if rest.startswith(official):
                    rest = hf + rest[len(official):]
                    break
            out[prefix + rest] = value
            continue
        key = re.sub(r'^patch_embed\.proj\.', 'videomae.embeddings.patch_embeddings.projection.', key)
        key = re.sub(r'^(encoder\.)?norm\.', 'videomae.layernorm.', key)
        key = re.sub(r'^head\.', 'classifier.', key)
        out[key] = value
    return out
