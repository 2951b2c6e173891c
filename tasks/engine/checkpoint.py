"""Checkpoint files for the tools: mmengine training checkpoints under torch's weights-only unpickler, and the layout
conversion of a checkpoint file (``tools/convert_checkpoint.py``; the layouts are :mod:`backbone.checkpoint_layouts`).
"""
from __future__ import annotations

import contextlib
import os
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backbone.checkpoint_io import TRAINING_CHECKPOINT_GLOBALS, CheckpointError, load_checkpoint_file, scoped_allowlists
from backbone.checkpoint_layouts import LabelMap, Layout, convert_state_dict, is_pretrain_only, to_official
from tasks.data.annotations.safe_pickle import NDARRAY, NUMERIC_KINDS, UnsafePickleError, numpy_pickle_globals
from tasks.data.files import atomic_path

__all__ = ['WEIGHT_SUFFIXES', 'convert_checkpoint_file', 'load_trusted_checkpoint', 'mmengine_checkpoint_globals',
           'token_grid', 'write_hf_folder']

WEIGHT_SUFFIXES = ('.pth', '.pt', '.bin', '.safetensors')

_TRUE = ('1', 'y', 'yes', 'true')  # what torch reads as set in its TORCH_FORCE_* variables


def _history_buffer_method(owner: object, name: object) -> types.FunctionType:
    """``getattr`` in a training checkpoint: only ``HistoryBuffer.<statistics method>``, as mmengine pickles them
    (a general getattr would reach any attribute of any object, and mmengine later calls these)."""
    from mmengine.logging.history_buffer import HistoryBuffer

    method = vars(HistoryBuffer).get(name) if owner is HistoryBuffer and type(name) is str else None
    if not isinstance(method, types.FunctionType) or name.startswith('_'):
        raise UnsafePickleError(f'getattr({owner!r}, {name!r}): a training checkpoint may only name the statistics '
                                'methods of HistoryBuffer')
    return method


def _mmengine_allowlist() -> list:
    """torch allow-list entries for :data:`backbone.checkpoint_io.TRAINING_CHECKPOINT_GLOBALS`: each name maps to a
    checked stand-in (``tasks.data.annotations.safe_pickle``), never to numpy's own rebuilders."""
    from mmengine.logging.history_buffer import HistoryBuffer

    by_name = {**numpy_pickle_globals(interned_dtypes=True), 'numpy.ndarray': NDARRAY,
               'builtins.getattr': _history_buffer_method,
               'mmengine.logging.history_buffer.HistoryBuffer': HistoryBuffer}
    entries: list = [(by_name[name], name) for name in TRAINING_CHECKPOINT_GLOBALS]
    # torch applies a BUILD (a __setstate__) only to an instance of a listed type: the ndarray that numpy_reconstruct
    # returns, which numpy fills after checking its size against the dtype, and numeric dtypes, which are numpy's
    # shared instances that ignore any state. Listed under names without a dot, which no pickle can spell.
    build_only = [np.ndarray, *{type(np.dtype(c)) for c in np.typecodes['All'] if np.dtype(c).kind in NUMERIC_KINDS}]
    return entries + [(cls, f'<build {cls.__name__}>') for cls in build_only]


@contextlib.contextmanager
def mmengine_checkpoint_globals() -> Iterator[None]:
    """Within the block, ``torch.load`` (mmengine's resume and ``load_from`` call it without ``weights_only``) reads
    the objects of an mmengine training checkpoint through checked stand-ins, and nothing else but weights.

    Raises:
        CheckpointError: torch < 2.6, whose ``torch.load`` unpickles anything by default, or
            ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` set, which makes it do so (docs/security.md#checkpoints).
    """
    if not scoped_allowlists():
        raise CheckpointError(f'torch {torch.__version__} unpickles any object in the checkpoints mmengine loads '
                              '(resume, load_from); the suite needs torch >= 2.6, which loads weights only')
    if os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '0').lower() in _TRUE:
        raise CheckpointError('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set, so the checkpoints mmengine loads (resume, '
                              'load_from) could run code; unset it: the suite reads its training checkpoints '
                              'under weights-only loading')
    entries = _mmengine_allowlist()
    if set(entries) <= set(torch.serialization.get_safe_globals()):  # nested: leaving must not drop the outer's
        yield
        return
    with torch.serialization.safe_globals(entries):
        yield


def load_trusted_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """An mmengine training checkpoint as a dict (``state_dict``, ``meta``, ``message_hub``, ...), on the CPU.

    Read under weights-only loading with :func:`mmengine_checkpoint_globals`, so despite the name it needs no trust
    in the file.

    Raises:
        CheckpointError: the file pickles anything else (naming it), or cannot be read.
    """
    with mmengine_checkpoint_globals():
        return load_checkpoint_file(path)


def token_grid(state: dict[str, torch.Tensor], to: Layout, *, img_size: int | None = None,
               num_frames: int | None = None, tubelet: int | None = None,
               patch: int | None = None) -> tuple[int, int, int] | None:
    """(T', H', W') for mmaction2's persistent pos_embed, or None when no size option was given.

    Unset options default to 224 px, 16 frames and the tubelet/patch of ``patch_embed.proj.weight`` (official names).
    """
    if all(value is None for value in (img_size, num_frames, tubelet, patch)):
        return None
    if to != 'mmaction2':
        raise ValueError('--img-size/--num-frames/--tubelet/--patch set the pos_embed grid of --to mmaction2 only')
    weight = state.get('patch_embed.proj.weight')
    if weight is None or weight.dim() != 5:
        raise ValueError('the checkpoint has no Conv3d patch_embed.proj.weight to take the tubelet/patch size from')
    # Conv3d weight (C, 3, tubelet, patch, patch).
    for flag, given, actual in (('--tubelet', tubelet, weight.shape[2]), ('--patch', patch, weight.shape[3])):
        if given is not None and given != actual:
            raise ValueError(f'{flag} {given} disagrees with patch_embed.proj.weight {tuple(weight.shape)} '
                             f'(kernel {actual})')
    tubelet, patch = weight.shape[2], weight.shape[3]
    img_size = 224 if img_size is None else img_size
    num_frames = 16 if num_frames is None else num_frames
    if img_size <= 0 or num_frames <= 0 or img_size % patch or num_frames % tubelet:
        raise ValueError(f'{num_frames} frames x {img_size} px do not tile into {tubelet}x{patch}x{patch} tubelets')
    return num_frames // tubelet, img_size // patch, img_size // patch


def _check_destination(out: Path) -> None:
    """Refuse an output that cannot be written before reading what may be gigabytes (torch.save would report it as
    a RuntimeError afterwards). A missing output folder is created later, once the input has been read."""
    blocker = next((p for p in (out.parent, *out.parent.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise ValueError(f'{out}: cannot create the output folder {out.parent}: {blocker} is not a folder')
    if out.is_dir():
        raise ValueError(f'{out}: is a folder; give a file name')


def _save(payload: dict, out: Path, safetensors_meta: dict[str, str]) -> None:
    """torch.save (or safetensors for a ``.safetensors`` name) through a temporary file renamed over ``out``."""
    with atomic_path(out) as tmp:
        if out.suffix != '.safetensors':
            torch.save(payload, tmp)
            return
        from safetensors.torch import save_file
        seen: set[int] = set()
        flat = {}
        for key, value in payload.items():  # safetensors refuses tensors that share memory
            value = value.contiguous()
            ptr = value.untyped_storage().data_ptr()
            flat[key] = value.clone() if ptr in seen else value
            seen.add(ptr)
        save_file(flat, str(tmp), metadata=safetensors_meta)


def convert_checkpoint_file(src: str | os.PathLike, out: str | os.PathLike, to: Layout, *,
                            label_map: LabelMap | None = None, img_size: int | None = None,
                            num_frames: int | None = None, tubelet: int | None = None, patch: int | None = None,
                            weights_only: bool = True) -> str:
    """Convert the checkpoint file ``src`` to the layout ``to`` and write it to ``out``, atomically.

    ``official`` files are wrapped as the official code saves them (``module`` for a fine-tuned model, ``model`` for
    a pre-training model), ``mmaction2`` files as mmengine checkpoints (``state_dict`` + ``meta``), ``hf`` files bare;
    a ``.safetensors`` name gets a flat safetensors file. Any size option writes mmaction2's ``pos_embed`` for that
    input size (:func:`token_grid`).

    Returns:
        The one-line summary (``wrote OUT: official -> mmaction2 (state_dict), ...``).
    """
    src, out = Path(src), Path(out)
    _check_destination(out)
    state, layout = to_official(src, weights_only)  # read once; the grid needs the patch-embed shape
    grid = token_grid(state, to, img_size=img_size, num_frames=num_frames, tubelet=tubelet, patch=patch)
    converted = convert_state_dict(state, to, grid=grid, label_map=label_map)
    meta = {'source': src.name, 'source_layout': layout, 'converted_by': 'tools/convert_checkpoint.py'}
    if out.suffix == '.safetensors':
        payload, wrapper = converted, 'flat safetensors'
    elif to == 'official':
        wrapper = 'model' if any(is_pretrain_only(k) for k in state) else 'module'  # as the official code saves
        payload = {wrapper: converted}
    elif to == 'mmaction2':
        payload = {'state_dict': converted,
                   'meta': {**meta, 'label_map': label_map, 'pos_embed_grid': list(grid) if grid else None}}
        wrapper = 'state_dict'
    else:
        payload, wrapper = converted, 'bare'
    _save(payload, out, {'format': 'pt', **meta})
    numel = sum(v.numel() for v in converted.values())
    dtypes = ', '.join(sorted({str(v.dtype).removeprefix('torch.') for v in converted.values()}))
    notes = [f'{layout} -> {to} ({wrapper})', f'{len(converted)} tensors', f'{numel:,} values ({dtypes})']
    if label_map:
        head = next(converted[k] for k in ('head.weight', 'cls_head.fc_cls.weight', 'classifier.weight')
                    if k in converted)
        notes.append(f'head sliced to {head.shape[0]} classes')
    if grid:
        notes.append(f'pos_embed for grid {grid}')
    return f'wrote {out}: ' + ', '.join(notes)


def write_hf_folder(src: str | os.PathLike, folder: str | os.PathLike, *, labels: str | None = None,
                    label_map: LabelMap | None = None, img_size: int | None = None, num_frames: int | None = None,
                    num_heads: int | None = None, decoder_num_heads: int | None = None,
                    weights_only: bool = True) -> str:
    """``folder/model.safetensors`` (:func:`convert_checkpoint_file` to ``hf``) and ``folder/config.json`` read from
    its header, which transformers' ``from_pretrained(folder)`` loads as they are (docs/checkpoints.md
    #exporting-to-transformers). A config that cannot be made removes the weights again, so the folder never holds
    weights without a config.

    Args:
        src: a checkpoint file or a released name (its label set names the classes unless ``label_map`` slices it).
        labels: class names for ``id2label``: a label-set name or file (:func:`tasks.data.labels.class_names`).
        img_size, num_frames: the input the position table is for (224, 16).
        num_heads, decoder_num_heads: where the width/depth is not one of the arch presets.

    Returns:
        The one-line summary.
    """
    from backbone import RELEASED, is_released_name
    from backbone.hf_export import hf_config, safetensors_meta
    from tasks.data.files import write_json_atomic
    from tasks.data.labels import class_names

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f'{folder}: exists and is not a folder; --to hf writes a folder (or give OUT a '
                         f'{"/".join(WEIGHT_SUFFIXES)} name for the bare weights)')
    if labels is None and label_map is None and is_released_name(str(src)):
        labels = RELEASED[str(src)].labels
    names = class_names(labels) if labels else None
    weights = folder / 'model.safetensors'
    summary = convert_checkpoint_file(src, weights, 'hf', label_map=label_map, weights_only=weights_only)
    try:
        config = hf_config(safetensors_meta(weights), num_frames=num_frames or 16, img_size=img_size or 224,
                           label_names=names, num_heads=num_heads, decoder_num_heads=decoder_num_heads,
                           name=str(src))
        write_json_atomic(folder / 'config.json', config)
    except BaseException:
        weights.unlink(missing_ok=True)
        raise
    return (f'{summary}; wrote {folder / "config.json"}: {config["architectures"][0]}, '
            f'{config["num_attention_heads"]} heads, {config["num_frames"]} frames x {config["image_size"]} px'
            + (f', {len(names)} label names ({labels})' if names else ''))
