"""The checkpoint filter: every path from a checkpoint to a model goes through :func:`filter_checkpoint`.

The file is read and unwrapped (:mod:`backbone.checkpoint_io`), renamed from its layout to official names
(:mod:`backbone.checkpoint_layouts`), matched against the model's own weights in official names (so the ViT, the
pre-training model and models holding the ViT under ``backbone.`` are served alike), adapted (a fixed sinusoid
``pos_embed`` dropped, a K710 head sliced, modules the model lacks dropped, fresh modules left fresh), checked key by
key and shape by shape, and handed back in the model's names. Anything the rules do not account for raises
:class:`CheckpointError` naming the file and the keys; nothing is loaded partially by accident
(docs/checkpoints.md#k710-heads-and-safe-loading).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn as nn

from .checkpoint_io import CheckpointError, Source, abbreviate_keys, source_name
from .checkpoint_layouts import (PRETRAIN_ONLY, LabelMap, Layout, is_fixed_sinusoid, official_names, slice_head,
                                 to_official)

__all__ = ['FilterMode', 'LoadResult', 'filter_checkpoint', 'load_checkpoint']

#: ``'load'``: modules the model lacks are dropped and modules the file lacks start fresh (:func:`load_checkpoint`);
#: ``'exact'``: every model weight comes from the file and every file weight is used (evaluation, ``load_from``);
#: ``'rename'``: names and the fixed position table only, no key check (a model's own ``load_state_dict`` hook, whose
#: caller reports missing and unexpected keys).
FilterMode = Literal['load', 'exact', 'rename']

# Official-name groups the file may hold while the model lacks them entirely; dropped in 'load' mode. A ViT built
# with fc_norm=False (the AVA detector's) lacks the pooling norm that fine-tuned files hold.
_DROPPABLE = PRETRAIN_ONLY + ('roi_head.', 'head.', 'norm.', 'fc_norm.')
# Groups the model may hold while the file lacks them entirely; left fresh in 'load' mode.
_FRESH = ('fc_norm.', 'head.', 'norm.', 'pos_embed')


@dataclass
class LoadResult:
    """What :func:`filter_checkpoint` (and so :func:`load_checkpoint`) did.

    Attributes:
        missing: model keys left at their fresh initialisation (e.g. ``fc_norm``/``head`` from pre-training weights).
        unexpected: checkpoint keys (official names) deliberately not loaded (e.g. the decoder, a head the model does
            not have, a fixed sinusoid ``pos_embed``).
        layout: the detected source layout.
        source: the file path, or ``'<state_dict>'``.
        head_sliced: whether a head of another size was sliced with the label map.
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    layout: Layout = 'official'
    source: str = '<state_dict>'
    head_sliced: bool = False


def _has(keys: Iterable[str], group: str) -> bool:
    return any(k.startswith(group) for k in keys)


def _drop(state: dict[str, torch.Tensor], result: LoadResult, keys: list[str]) -> None:
    for key in keys:
        state.pop(key)
    result.unexpected += keys


def _adapt_pos_embed(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor], result: LoadResult) -> None:
    """A stored table the model rebuilds is dropped if it is the fixed sinusoid (mmaction2 stores it); a learned one
    is an error, since the model would silently replace it."""
    if 'pos_embed' in state and 'pos_embed' not in target:
        if not is_fixed_sinusoid(state['pos_embed']):
            raise CheckpointError(f'{result.source}: pos_embed is learned, not the fixed sinusoid; build the model '
                                  'with use_learnable_pos_emb=True to load it')
        _drop(state, result, ['pos_embed'])


def _adapt_head(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor], result: LoadResult,
                label_map: LabelMap | None) -> None:
    """Slice a head of another size with ``label_map`` (a head that already fits loads as it is)."""
    if label_map is None:
        return
    if 'head.weight' not in target:
        raise CheckpointError(f'{result.source}: label_map was given but the model has no head (num_classes=0)')
    rows = target['head.weight'].shape[0]
    if 'head.weight' not in state or state['head.weight'].shape[0] == rows:
        return
    if slice_head(state, label_map, result.source) != rows:
        raise CheckpointError(f'{result.source}: label_map has {len(state["head.weight"])} entries for the '
                              f"model's {rows} classes")
    result.head_sliced = True


def _adapt_modules(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor], result: LoadResult,
                   fresh: Sequence[str]) -> None:
    """'load' mode: drop the file's modules the model lacks, and leave fresh the model's modules the file lacks."""
    for group in fresh:
        _drop(state, result, sorted(k for k in state if k.startswith(group)))
    for group in _DROPPABLE:
        if not _has(target, group):
            _drop(state, result, sorted(k for k in state if k.startswith(group)))
    for group in (*_FRESH, *fresh):
        if not _has(state, group):
            result.missing += [k for k in target if k.startswith(group) and k not in result.missing]


def _check(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor], names: dict[str, str],
           result: LoadResult, model_name: str) -> None:
    """Raise unless the file's keys and shapes account for the model exactly (apart from ``result.missing``)."""
    if _has(target, 'decoder.') and not _has(state, 'decoder.'):
        raise CheckpointError(f'{result.source} ({result.layout} layout): no decoder.* keys: not a pre-training '
                              f'checkpoint, so it cannot fill {model_name} (load an encoder-only or fine-tuned file '
                              'into VideoMAEv2ViT)')
    missing = sorted(names[k] for k in set(target) - set(state) - set(result.missing))
    unexpected = sorted(set(state) - set(target))
    problems = []
    if missing:
        problems.append(f'{len(missing)} model keys missing from the checkpoint: {abbreviate_keys(missing)}')
    if unexpected:
        problems.append(f'{len(unexpected)} checkpoint keys the model does not have: {abbreviate_keys(unexpected)}')
    for key in sorted(set(state) & set(target)):
        if state[key].shape != target[key].shape:
            hint = ''
            if key == 'head.weight':
                hint = ' (pass label_map to slice a K710 head, or build the model with num_classes=0)'
            problems.append(f'shape of {names[key]}: checkpoint {tuple(state[key].shape)} vs model '
                            f'{tuple(target[key].shape)}{hint}')
    if problems and result.layout == 'pretrain' and _has(target, 'head.'):
        problems.append('a pre-training checkpoint has no classifier: fine-tune it first, or load it with '
                        'backbone.load_checkpoint, which starts fc_norm and head fresh')
    if problems:
        raise CheckpointError(f'{result.source} ({result.layout} layout) does not fit the model {model_name}: '
                              + '; '.join(problems))


def filter_checkpoint(src: Source, model: nn.Module, *, label_map: LabelMap | None = None,
                      fresh: Sequence[str] = (), mode: FilterMode = 'load',
                      weights_only: bool = True) -> tuple[dict[str, torch.Tensor], LoadResult]:
    """Turn a checkpoint in any layout into a state dict for ``model`` (docs/checkpoints.md).

    Keys that may legitimately differ in ``'load'`` mode, and nothing else:

    * fresh in the model (``LoadResult.missing``): ``fc_norm``/``head`` when the file has none (pre-training weights),
      ``norm`` (the detection feature-map norm) when the file has none, a learnable ``pos_embed`` when the file has
      none, and the modules named in ``fresh``;
    * dropped from the file (``LoadResult.unexpected``): the pre-training ``decoder.*``, ``encoder_to_decoder``,
      ``mask_token`` and ``encoder.norm`` when the model is not a pre-training model, a ``head``, ``norm`` or
      ``fc_norm`` the model does not have (a ViT built with ``fc_norm=False``, as the AVA detector's), an AVA
      detector's ``roi_head.*``, and the modules named in ``fresh``.

    In every mode a stored fixed sinusoid ``pos_embed`` is dropped when the model rebuilds its own.

    Args:
        src: path or state dict in any layout of :mod:`backbone.checkpoint_layouts`.
        model: the model to fill: a ``VideoMAEv2ViT``, a ``VideoMAEv2Pretrainer``, or a model holding the ViT under
            ``backbone.`` (its head inside it, or mmaction2's ``cls_head.fc_cls``).
        label_map: K710 head slicing, used when the file's head has another number of classes than the model's: new
            row i = old row ``label_map[i]`` (a list, or a json file holding it).
        fresh: official-name prefixes of modules to start fresh whatever the file holds (e.g. ``('head.',)``).
        mode: see :data:`FilterMode`.
        weights_only: passed to ``torch.load``.

    Returns:
        (state dict in the model's names, cast to the model's dtypes; what was left fresh and dropped).

    Raises:
        CheckpointError: unreadable file, or any key/shape the rules of ``mode`` do not account for.
    """
    state, layout = to_official(src, weights_only)
    own = model.state_dict()
    official, _ = official_names(own, type(model).__name__)  # official name -> the model's name
    target = {k: own[key] for k, key in official.items()}
    result = LoadResult(layout=layout, source=source_name(src))
    _adapt_pos_embed(state, target, result)
    if mode == 'rename':
        return {official.get(k, k): v for k, v in state.items()}, result
    _adapt_head(state, target, result, label_map)
    if mode == 'load':
        _adapt_modules(state, target, result, fresh)
    _check(state, target, official, result, type(model).__name__)
    result.missing = sorted(official[k] for k in result.missing)
    result.unexpected = sorted(result.unexpected)
    return {official[k]: v.to(dtype=target[k].dtype) for k, v in state.items()}, result


def load_checkpoint(model: nn.Module, src: Source, *, label_map: LabelMap | None = None, fresh: Sequence[str] = (),
                    weights_only: bool = True) -> LoadResult:
    """Load any supported checkpoint layout into ``model`` through :func:`filter_checkpoint` (``'load'`` mode).

    A :class:`~backbone.VideoMAEv2Pretrainer` takes an official pre-training file whole (encoder, decoder,
    ``encoder_to_decoder``, ``mask_token``); a :class:`~backbone.VideoMAEv2ViT` takes its encoder (the decoder is
    reported as unexpected, ``fc_norm``/``head`` as fresh). Tensors are cast to the model's dtype; nothing is loaded
    unless everything checks out.

    Raises:
        CheckpointError: unreadable file, or any key/shape :func:`filter_checkpoint` does not account for.
    """
    state, result = filter_checkpoint(src, model, label_map=label_map, fresh=fresh, weights_only=weights_only)
    model.load_state_dict(state, strict=False)
    return result
