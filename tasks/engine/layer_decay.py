"""Layer-wise learning-rate decay for fine-tuning VideoMAE V2 ViTs, as the official recipe
(docs/classification.md#fine-tuning-recipe): parameter groups with a per-layer lr scale and the official
no-weight-decay rules, and the mmengine optimizer-wrapper constructor that builds them from a config. Both
constructors here log one summary line of the parameter groups instead of mmengine's line per parameter setting.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence

import torch.nn as nn
from mmengine.logging import MMLogger, print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

__all__ = ['SummarizedOptimWrapperConstructor', 'VideoMAEv2LayerDecayConstructor', 'get_layer_id',
           'param_group_summary', 'param_groups_layer_decay']

# Parameters embedded before the first block (official ``get_num_layer_for_vit``: exact names, then a prefix).
_EMBEDDING_NAMES = ('cls_token', 'mask_token', 'pos_embed')


def get_layer_id(name: str, num_layers: int) -> int:
    """Layer id of a parameter named relative to the ViT (``blocks.3.attn.qkv.weight``), in [0, num_layers + 1]:
    0 for the patch embedding, ``pos_embed``, ``cls_token`` and ``mask_token``; k + 1 for ``blocks.k``; num_layers + 1
    for everything else (``fc_norm``, ``head``)."""
    if name in _EMBEDDING_NAMES or name.startswith('patch_embed.'):
        return 0
    if name.startswith('blocks.'):
        block = int(name.split('.')[1])
        if not 0 <= block < num_layers:
            raise ValueError(f'parameter {name!r} belongs to block {block}, but the model has {num_layers} layers')
        return block + 1
    return num_layers + 1


def _find_vit(model: nn.Module) -> tuple[str, nn.Module]:
    """The (name prefix, module) of the ViT inside ``model``: the model itself, or its one submodule that has
    ``get_num_layers()`` (e.g. ``backbone.`` in an mmaction2 ``Recognizer3D``)."""
    if hasattr(model, 'get_num_layers'):
        return '', model
    found = [(name, module) for name, module in model.named_modules()
             if name and hasattr(module, 'get_num_layers')]
    # Keep only the outermost ones: a ViT may itself contain submodules with get_num_layers.
    outer = [(name, module) for name, module in found
             if not any(name.startswith(other + '.') for other, _ in found)]
    if len(outer) != 1:
        names = [name for name, _ in outer] or 'none'
        raise ValueError(f'layer decay needs exactly one submodule with get_num_layers() (the ViT) in '
                         f'{type(model).__name__}, found: {names}')
    return outer[0][0] + '.', outer[0][1]


def param_groups_layer_decay(model: nn.Module, base_lr: float, weight_decay: float, layer_decay: float,
                             no_weight_decay_list: Iterable[str] = (), num_layers: int | None = None) -> list[dict]:
    """Optimizer parameter groups with layer-wise lr decay and the official no-weight-decay rules.

    A parameter's lr scale is ``layer_decay ** (L + 1 - id)`` with the id of :func:`get_layer_id` (parameters outside
    the ViT get L + 1, like its head). No weight decay for 1-D parameters, names ending in ``.bias`` or ``.scale``, the
    ViT's ``no_weight_decay()`` names and ``no_weight_decay_list``; frozen parameters are left out.

    Args:
        model: a ViT with ``get_num_layers()`` / ``no_weight_decay()`` (e.g. :class:`backbone.VideoMAEv2ViT`), or a
            wrapper holding exactly one such ViT (parameters outside it get id L + 1, like the head).
        base_lr: the lr of the last layer (scale 1); each group gets ``base_lr * lr_scale``.
        weight_decay: weight decay of the decayed groups; the others get 0.
        layer_decay: decay factor per layer, in (0, 1]; 1 gives every group the base lr.
        no_weight_decay_list: extra parameter names (as ``model.named_parameters()`` spells them) without decay.
        num_layers: L; defaults to the ViT's ``get_num_layers()``.

    Returns:
        A list of dicts with ``params``, ``lr``, ``lr_scale``, ``weight_decay`` and ``group_name``
        (``layer_{id}_decay`` / ``layer_{id}_no_decay``), in order of first appearance, ready for ``torch.optim``.
    """
    if not 0.0 < layer_decay <= 1.0:
        raise ValueError(f'layer_decay must lie in (0, 1], got {layer_decay}')
    prefix, vit = _find_vit(model)
    if num_layers is None:
        num_layers = int(vit.get_num_layers())
    skip = {prefix + name for name in (vit.no_weight_decay() if hasattr(vit, 'no_weight_decay') else ())}
    skip |= set(no_weight_decay_list)
    named = dict(model.named_parameters())
    unknown = sorted(set(no_weight_decay_list) - set(named))
    if unknown:
        raise ValueError(f'no_weight_decay_list names parameters that the model does not have: {unknown}')

    groups: dict[str, dict] = {}
    for name, param in named.items():
        if not param.requires_grad:
            continue
        no_decay = param.ndim == 1 or name.endswith('.bias') or name.endswith('.scale') or name in skip
        if name.startswith(prefix):
            layer_id = get_layer_id(name[len(prefix):], num_layers)
        else:  # e.g. an mmaction2 cls_head: trained at the full lr, like the ViT's own head
            layer_id = num_layers + 1
        group_name = f'layer_{layer_id}_{"no_decay" if no_decay else "decay"}'
        if group_name not in groups:
            scale = layer_decay ** (num_layers + 1 - layer_id)
            groups[group_name] = dict(params=[], lr=base_lr * scale, lr_scale=scale,
                                      weight_decay=0.0 if no_decay else weight_decay, group_name=group_name)
        groups[group_name]['params'].append(param)
    return list(groups.values())


def param_group_summary(groups: Sequence[dict]) -> str:
    """One line on an optimizer's parameter groups: tensors and values, weight decay per tensor count, lr range."""
    tensors = sum(len(g['params']) for g in groups)
    values = sum(p.numel() for g in groups for p in g['params'])
    decay = Counter()
    for g in groups:
        decay[float(g.get('weight_decay', 0.0))] += len(g['params'])
    lrs = [float(g['lr']) for g in groups if g['params']] or [0.0]
    wd = ', '.join(f'{value:g} on {count}' for value, count in sorted(decay.items()))
    lr = f'{min(lrs):g}' if min(lrs) == max(lrs) else f'{min(lrs):g} to {max(lrs):g}'
    return f'{tensors} parameter tensors ({values:,} values) in {len(groups)} groups; weight_decay {wd}; lr {lr}'


class _DropParamwiseLines(logging.Filter):
    """Drops the ``paramwise_options -- <name>:<key>=<value>`` records mmengine's constructor logs per parameter."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith('paramwise_options -- ')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SummarizedOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's ``DefaultOptimWrapperConstructor`` (same groups, same ``paramwise_cfg``) logging one summary line
    (:func:`param_group_summary`) instead of one INFO line per parameter and setting (hundreds for a small ViT)."""

    def __call__(self, model: nn.Module) -> OptimWrapper:
        logger = MMLogger.get_current_instance()
        quiet = _DropParamwiseLines()
        logger.addFilter(quiet)
        try:
            wrapper = super().__call__(model)
        finally:
            logger.removeFilter(quiet)
        print_log(f'{type(self).__name__}: {param_group_summary(wrapper.optimizer.param_groups)}', logger='current')
        return wrapper


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class VideoMAEv2LayerDecayConstructor(SummarizedOptimWrapperConstructor):
    """mmengine optimizer-wrapper constructor applying :func:`param_groups_layer_decay`; registered in mmengine's root
    registry, which mmaction2's scoped one falls back to.

    Config::

        optim_wrapper = dict(
            constructor='VideoMAEv2LayerDecayConstructor',
            optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
            paramwise_cfg=dict(layer_decay_rate=0.75))  # optional: no_weight_decay_list=[...], num_layers=L

    The optimizer's ``lr`` and ``weight_decay`` are the base values; pair it with ``LinearLR`` warm-up and
    ``CosineAnnealingLR(eta_min_ratio=min_lr / lr)``: each group starts at ``base_lr * lr_scale`` and the schedulers
    scale it from there, whereas an absolute ``eta_min`` would send every group to the same floor.
    """

    _KEYS = {'layer_decay_rate', 'no_weight_decay_list', 'num_layers'}

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None):
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        unknown = set(self.paramwise_cfg) - self._KEYS
        if 'layer_decay_rate' not in self.paramwise_cfg or unknown:
            raise ValueError(f'VideoMAEv2LayerDecayConstructor: paramwise_cfg needs layer_decay_rate and accepts only '
                             f'{sorted(self._KEYS)}; got {self.paramwise_cfg}')
        if self.base_lr is None:
            raise ValueError('VideoMAEv2LayerDecayConstructor: optimizer.lr must be set (it is the base lr)')

    def add_params(self, params: list[dict], module: nn.Module, **kwargs) -> None:
        """Append the layer-decay groups of ``module`` (the whole model, e.g. a Recognizer3D) to ``params``."""
        params.extend(param_groups_layer_decay(
            module, self.base_lr, self.base_wd or 0.0, self.paramwise_cfg['layer_decay_rate'],
            no_weight_decay_list=self.paramwise_cfg.get('no_weight_decay_list', ()),
            num_layers=self.paramwise_cfg.get('num_layers')))

