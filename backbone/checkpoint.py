"""One checkpoint loader for every VideoMAE (V1/V2) layout users have, and converters between layouts.

Layouts (docs/checkpoints.md):

* ``official``: timm names (``patch_embed.proj``, ``blocks.N.attn.qkv.weight``, ``attn.q_bias`` ...), fine-tuned and
  distilled files under a top-level ``module`` (DeepSpeed, fp16) or ``model`` key.
* ``pretrain``: the official pre-training files: ``encoder.*`` (with ``encoder.norm``), ``decoder.*``,
  ``encoder_to_decoder.weight``, ``mask_token``; downstream models take the encoder.
* ``mmaction2``: ``state_dict`` with ``backbone.`` prefix, ``patch_embed.projection``, ``mlp.layers.0.0`` /
  ``mlp.layers.1`` (mmcv FFN), ``cls_head.fc_cls`` and a persistent ``backbone.pos_embed``.
* ``hf``: Hugging Face transformers VideoMAE (``videomae.encoder.layer.N.attention.attention.query`` ..., both the
  ``q_bias`` naming of transformers 4 and the ``query.bias`` naming of transformers 5).

Reading follows the loader checklist of docs/checkpoints.md#k710-heads-and-safe-loading: unwrap ``model`` / ``module`` / ``state_dict``; strip the
``_orig_mod.`` / ``module.`` / ``backbone.`` prefixes; rename everything to ``official`` names; then
:func:`load_checkpoint` drops the pre-training-only keys, slices a K710 head if asked, casts to the model's dtype and
loads against an explicit set of keys that may be fresh or dropped. Anything else raises :class:`CheckpointError`,
which names the file and the keys: a checkpoint is never loaded partially by accident.
"""
from __future__ import annotations

import contextlib
import json
import operator
import os
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn as nn

from .pos_embed import sinusoid_table

Layout = Literal['official', 'pretrain', 'mmaction2', 'hf']
Source = str | os.PathLike | Mapping[str, torch.Tensor]
LabelMap = Sequence[int] | str | os.PathLike

_WRAPPER_KEYS = ('state_dict', 'model', 'module')
_PREFIXES = ('_orig_mod.', 'module.', 'backbone.')
# Keys only the pre-training model has (after ``encoder.`` is stripped from the rest); downstream models drop them,
# and `fc_norm`/`head` start fresh instead (docs/checkpoints.md#wrappers-prefixes-and-dtypes).
_PRETRAIN_ONLY = re.compile(r'^(decoder\.|encoder_to_decoder\.|mask_token$|encoder\.norm\.)')


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read, or whose keys do not account for the model exactly."""


@dataclass
class LoadResult:
    """What :func:`load_checkpoint` did.

    Attributes:
        missing: model keys left at their fresh initialisation (e.g. ``fc_norm``/``head`` from pre-training weights).
        unexpected: checkpoint keys (official names) deliberately not loaded (e.g. the decoder, a head the model does
            not have, a fixed sinusoid ``pos_embed``).
        layout: the detected source layout.
        source: the file path, or ``'<state_dict>'``.
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    layout: Layout = 'official'
    source: str = '<state_dict>'


# ---------------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------------
def read_checkpoint(src: Source, weights_only: bool = True) -> dict[str, torch.Tensor]:
    """Read a checkpoint file (or take a state dict) and unwrap ``state_dict`` / ``model`` / ``module``.

    Args:
        src: a ``.pth``/``.pt``/``.bin``/``.safetensors`` path, or a mapping.
        weights_only: passed to ``torch.load``; set False only for trusted files that pickle Python objects
            (raw training checkpoints with an argparse Namespace, mmengine checkpoints with a message hub).

    Returns:
        A flat ``{name: tensor}`` dict (CPU tensors, original dtypes).

    Raises:
        CheckpointError: missing, empty, truncated or foreign file, Python objects under ``weights_only``, or a
            content that is not a dict of tensors.
    """
    name = _source_name(src)
    if isinstance(src, Mapping):
        return _unwrap(src, name)
    path = Path(src)
    if not path.exists():
        raise CheckpointError(f'{name}: no such checkpoint file')
    if not path.is_file():
        raise CheckpointError(f'{name}: not a file (for a Hugging Face model folder, pass its model.safetensors or '
                              'pytorch_model.bin)')
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f'{name}: the file is empty')
    with path.open('rb') as handle:
        magic = handle.read(9)
    if path.suffix == '.safetensors' or _looks_like_safetensors(magic, size):
        return _unwrap(_read_safetensors(path, name), name)
    # torch.save writes a zip archive (torch >= 1.6) or, in the legacy format, a pickle (protocol 2: b'\x80\x02').
    # Checking the container first turns torch's obscure errors for foreign files ("Errno 22", "KeyError: '101'")
    # into messages that say what is wrong.
    if magic.startswith(b'PK\x03\x04'):
        if not zipfile.is_zipfile(path):  # the end-of-archive record is missing: the tail was cut off
            raise CheckpointError(f'{name}: truncated or corrupt PyTorch checkpoint: the zip archive has no end '
                                  f'record ({size} bytes; an interrupted download or copy?)')
    elif not magic.startswith(b'\x80'):
        raise CheckpointError(f'{name}: not a PyTorch checkpoint (neither a zip archive nor a pickle; the file '
                              f'starts with {magic[:8]!r})')
    try:
        with training_checkpoint_globals() if weights_only else contextlib.nullcontext():
            obj = torch.load(path, map_location='cpu', weights_only=weights_only)
    except Exception as err:  # torch raises many types here (UnpicklingError, RuntimeError, OSError, EOFError ...)
        message = str(err)
        if weights_only and 'Weights only load failed' in message:
            found = sorted(set(re.findall(r'GLOBAL ([\w.]+)', message)))
            what = f' ({", ".join(found)})' if found else ''
            raise CheckpointError(
                f'{name}: torch.load(weights_only=True) refused the file: it pickles Python objects{what}, as raw '
                'training and mmengine checkpoints do. If you trust the file, load it with weights_only=False '
                '(convert_checkpoint.py --unsafe-pickle), or allowlist the types with '
                'torch.serialization.add_safe_globals.') from err
        first = message.strip().splitlines()[0] if message.strip() else ''
        raise CheckpointError(f'{name}: truncated or corrupt PyTorch checkpoint ({type(err).__name__}: '
                              f'{first})') from err
    return _unwrap(obj, name)


def _training_checkpoint_types() -> list:
    """What mmengine 0.10 pickles into a training checkpoint besides tensors and builtin containers.

    tools/train.py writes mmengine checkpoints: ``state_dict`` + ``meta`` + the message hub, whose loss/lr histories
    are ``HistoryBuffer`` objects holding numpy arrays and scalars. Allowing exactly these classes lets the weights-only
    unpickler read our own training runs without turning its safety check off (docs/ecosystem.md, mmengine #1655).
    """
    import numpy as np

    multiarray = (np._core if hasattr(np, '_core') else np.core).multiarray
    allowed: list = [
        # A HistoryBuffer pickles its statistics table as getattr(HistoryBuffer, 'min') etc. The weights-only
        # unpickler still refuses to *call* anything not allowed here, so getattr can only look attributes up.
        getattr,
        np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,  # numpy histories and scalars
    ]
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25 pickles dtypes through their classes (Float64DType, ...)
    if dtypes is not None:
        allowed += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith('DType')]
    try:
        from mmengine.logging.history_buffer import HistoryBuffer
    except ImportError:  # pragma: no cover - without mmengine there are no mmengine checkpoints to read
        return allowed
    return [HistoryBuffer, *allowed]


@contextlib.contextmanager
def training_checkpoint_globals():
    """Within the block, ``torch.load(weights_only=True)`` also accepts the objects of an mmengine training checkpoint
    (and no others). A no-op on torch < 2.5, which has no scoped allow-list."""
    safe_globals = getattr(torch.serialization, 'safe_globals', None)
    if safe_globals is None:
        yield
        return
    with safe_globals(_training_checkpoint_types()):
        yield


def _looks_like_safetensors(magic: bytes, size: int) -> bool:
    """safetensors: an 8-byte little-endian header length, then a JSON header starting with '{'."""
    return len(magic) == 9 and magic[8:9] == b'{' and 0 < int.from_bytes(magic[:8], 'little') < size


def _read_safetensors(path: Path, name: str) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError as err:  # pragma: no cover - safetensors comes with transformers
        raise CheckpointError(f'{name}: reading .safetensors needs `pip install safetensors`') from err
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own SafetensorError
        raise CheckpointError(f'{name}: truncated or corrupt safetensors file ({err})') from err


def _source_name(src: Source) -> str:
    return '<state_dict>' if isinstance(src, Mapping) else str(src)


def _unwrap(obj: object, name: str) -> dict[str, torch.Tensor]:
    for _ in range(4):  # e.g. {'model': {'module': ...}}
        if not isinstance(obj, Mapping):
            raise CheckpointError(f'{name}: expected a dict of tensors, found {type(obj).__name__}')
        wrapped = [k for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)]
        if not wrapped:
            break
        obj = obj[wrapped[0]]
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f'{name}: the checkpoint holds no state dict')
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f'{name}: entries that are not tensors: {bad[:8]} (top-level keys: {list(obj)[:8]}); '
                              'is this a VideoMAE checkpoint?')
    return dict(obj)


# ---------------------------------------------------------------------------------------------------------------------
# Layouts -> official names
# ---------------------------------------------------------------------------------------------------------------------
def _rename(state: Mapping[str, torch.Tensor], fn: Callable[[str], str], name: str) -> dict[str, torch.Tensor]:
    """Apply ``fn`` to every key; two keys that end up with the same name are an error, never a silent overwrite."""
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in state.items():
        new = fn(key)
        if new in out:
            raise CheckpointError(f'{name}: keys {origin[new]!r} and {key!r} both map to {new!r}; the file mixes '
                                  'layouts or prefixes')
        out[new], origin[new] = value, key
    return out


def _strip_prefix(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def _strip_prefixes(state: Mapping[str, torch.Tensor], name: str = '<state_dict>') -> dict[str, torch.Tensor]:
    return _rename(state, _strip_prefix, name)


def detect_layout(state: Mapping[str, torch.Tensor]) -> Layout:
    """Detect the layout of a prefix-stripped state dict."""
    keys = list(state)
    if any('patch_embeddings.projection' in k or '.attention.attention.' in k for k in keys):
        return 'hf'
    if any('patch_embed.projection' in k or '.mlp.layers.' in k or k.startswith('cls_head.') for k in keys):
        return 'mmaction2'
    if any(k.startswith(('encoder.', 'decoder.', 'encoder_to_decoder.')) or k == 'mask_token' for k in keys):
        return 'pretrain'
    return 'official'


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


def _mmaction_to_official(key: str) -> str:
    for pattern, new in _MMACTION_TO_OFFICIAL:
        key = pattern.sub(new, key)
    return key


def _hf_to_official(state: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    is_pretrain = any(k.startswith(('decoder.', 'encoder_to_decoder.')) or k == 'mask_token' for k in state)
    renamed: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in _rename(state, lambda k: k.removeprefix('videomae.'), name).items():
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

    Pre-training files have their encoder keys renamed to the bare backbone names (``encoder.blocks.0...`` ->
    ``blocks.0...``) and keep the pre-training-only keys as they are (``encoder.norm.*``, ``decoder.*``,
    ``encoder_to_decoder.weight``, ``mask_token``), so :func:`convert_state_dict` can restore the official
    pre-training layout exactly. Position tables are kept as found (mmaction2 stores its fixed sinusoid).

    Returns:
        (state dict in official names, detected layout).
    """
    name = _source_name(src)
    state = _strip_prefixes(read_checkpoint(src, weights_only), name)
    layout = detect_layout(state)
    if layout == 'hf':
        state = _hf_to_official(state, name)
        if any(_PRETRAIN_ONLY.match(k) for k in state):
            layout = 'pretrain'
    elif layout == 'mmaction2':
        state = _rename(state, _mmaction_to_official, name)
    elif layout == 'pretrain':
        state = _rename(state, lambda k: k if _PRETRAIN_ONLY.match(k) else k.removeprefix('encoder.'), name)
    return state, layout


def _is_fixed_sinusoid(table: torch.Tensor) -> bool:
    """Whether ``table`` ((1, N, C) or (N, C)) is the fixed sinusoid for its own N and C, up to its dtype's rounding."""
    if not table.is_floating_point() or table.dim() not in (2, 3) or (table.dim() == 3 and table.shape[0] != 1):
        return False
    flat = table.detach().float().reshape(-1, table.shape[-1])
    # Values lie in [-1, 1], so rounding to the stored dtype moves them by at most eps/2 (fp16: 5e-4, bf16: 4e-3).
    atol = max(1e-4, torch.finfo(table.dtype).eps)
    return torch.allclose(flat, sinusoid_table(*flat.shape)[0], rtol=0.0, atol=atol)


def _learned_pos_embed_error(name: str) -> CheckpointError:
    return CheckpointError(f'{name}: pos_embed is learned, not the fixed sinusoid; build the model with '
                           'use_learnable_pos_emb=True to load it')


# ---------------------------------------------------------------------------------------------------------------------
# K710 head slicing
# ---------------------------------------------------------------------------------------------------------------------
def _label_map_indices(label_map: LabelMap) -> list[int]:
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


def _slice_head(state: dict[str, torch.Tensor], label_map: LabelMap, name: str) -> None:
    """New head row i = old row ``label_map[i]``, for weight and bias (docs/checkpoints.md#k710-heads-and-safe-loading), in place on official names."""
    if 'head.weight' not in state:
        raise CheckpointError(f'{name}: label_map was given but the checkpoint has no head to slice')
    indices = _label_map_indices(label_map)
    rows = state['head.weight'].shape[0]
    bad = [i for i in indices if not 0 <= i < rows]
    if bad:
        raise CheckpointError(f'{name}: label map indices {bad[:5]} lie outside [0, {rows}) for the checkpoint\'s '
                              f'{rows}-way head')
    for key in ('head.weight', 'head.bias'):
        if key in state:
            state[key] = state[key][indices]


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
    name = _source_name(src)
    state, _ = to_official(src, weights_only)
    if label_map is not None:
        _slice_head(state, label_map, name)
    is_pretrain = any(_PRETRAIN_ONLY.match(k) for k in state)
    learned_pos = 'pos_embed' in state and not _is_fixed_sinusoid(state['pos_embed'])
    if to in ('official', 'pretrain'):
        if 'pos_embed' in state and not learned_pos:
            state.pop('pos_embed')
        if not is_pretrain:
            return state
        return {k if _PRETRAIN_ONLY.match(k) else f'encoder.{k}': v for k, v in state.items()}
    if to == 'mmaction2':
        if is_pretrain:
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
    # to == 'hf'
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


# ---------------------------------------------------------------------------------------------------------------------
# Loading into a model
# ---------------------------------------------------------------------------------------------------------------------
def load_checkpoint(model: nn.Module, src: Source, *, label_map: LabelMap | None = None,
                    weights_only: bool = True) -> LoadResult:
    """Load any supported checkpoint layout into a :class:`~backbone.VideoMAEv2ViT`.

    Keys that may legitimately differ, and nothing else:

    * fresh in the model (``LoadResult.missing``): ``fc_norm``/``head`` when the file has none (pre-training weights),
      ``norm`` (the detection feature-map norm) when the file has none, and a learnable ``pos_embed`` when the file
      has none;
    * dropped from the file (``LoadResult.unexpected``): the pre-training ``decoder.*``, ``encoder_to_decoder``,
      ``mask_token`` and ``encoder.norm``, a ``head`` or ``norm`` the model does not have, an AVA detector's
      ``roi_head.*`` (a detection checkpoint's backbone loads on its own), and a fixed sinusoid ``pos_embed``
      (mmaction2 stores it; the model rebuilds it).

    A 710-way head is sliced to the model's classes with ``label_map`` (a list, or a json file holding the list, of
    source-class indices: new row i = old row label_map[i]). Tensors are cast to the model's dtype. Nothing is
    loaded unless everything checks out.

    Raises:
        CheckpointError: unreadable file, or any key/shape the rules above do not account for.
    """
    name = _source_name(src)
    state, layout = to_official(src, weights_only)
    target = model.state_dict()
    missing: list[str] = []
    unexpected = sorted(k for k in state if _PRETRAIN_ONLY.match(k) or k.startswith('roi_head.'))
    for key in unexpected:
        state.pop(key)

    if 'pos_embed' in state and 'pos_embed' not in target:  # the model rebuilds its fixed sinusoid
        if not _is_fixed_sinusoid(state['pos_embed']):
            raise _learned_pos_embed_error(name)
        state.pop('pos_embed')
        unexpected.append('pos_embed')
    elif 'pos_embed' in target and 'pos_embed' not in state:  # learnable model, fixed-PE file: start it fresh
        missing.append('pos_embed')

    model_has_head = any(k.startswith('head.') for k in target)
    head_keys = sorted(k for k in state if k.startswith('head.'))
    if label_map is not None:
        if not model_has_head:
            raise CheckpointError(f'{name}: label_map was given but the model has no head (num_classes=0)')
        _slice_head(state, label_map, name)
    if head_keys and not model_has_head:
        unexpected += head_keys
        for key in head_keys:
            state.pop(key)
    norm_keys = sorted(k for k in state if k.startswith('norm.'))
    if norm_keys and not any(k.startswith('norm.') for k in target):  # model without the feature-map norm
        unexpected += norm_keys
        for key in norm_keys:
            state.pop(key)

    # Fresh modules: allowed to be missing only as whole modules.
    for module in ('fc_norm.', 'head.', 'norm.'):
        want = [k for k in target if k.startswith(module)]
        if want and not any(k.startswith(module) for k in state):
            missing += want

    bad_missing = sorted(set(target) - set(state) - set(missing))
    bad_unexpected = sorted(set(state) - set(target))
    problems = []
    if bad_missing:
        problems.append(f'{len(bad_missing)} model keys missing from the checkpoint: {_short(bad_missing)}')
    if bad_unexpected:
        problems.append(f'{len(bad_unexpected)} checkpoint keys the model does not have: {_short(bad_unexpected)}')
    loaded: dict[str, torch.Tensor] = {}
    for key in sorted(set(state) & set(target)):
        if state[key].shape != target[key].shape:
            hint = ''
            if key.startswith('head.'):
                hint = ' (pass label_map to slice a K710 head, or build the model with num_classes=0)'
            problems.append(f'shape of {key}: checkpoint {tuple(state[key].shape)} vs model '
                            f'{tuple(target[key].shape)}{hint}')
        else:
            loaded[key] = state[key].to(dtype=target[key].dtype)
    if problems:
        raise CheckpointError(f'{name} ({layout} layout): ' + '; '.join(problems))
    model.load_state_dict(loaded, strict=False)
    return LoadResult(missing=sorted(missing), unexpected=sorted(unexpected), layout=layout, source=name)


def _short(keys: list[str], limit: int = 8) -> str:
    return ', '.join(keys[:limit]) + (f', ... (+{len(keys) - limit} more)' if len(keys) > limit else '')
