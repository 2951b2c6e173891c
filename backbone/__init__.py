"""VideoMAE V2 backbone: the ViT, the dual-masked pre-training model and its masks, one checkpoint loader for both
(paths, or the released weights by name: :data:`RELEASED`), and (optionally) their OpenMMLab registration.

Importing this package registers :class:`VideoMAEv2ViT` and :class:`VideoMAEv2Pretrainer` in mmaction2's ``MODELS``
registry when mmaction2 is installed, so a stock mmaction2 config can say
``backbone=dict(type='VideoMAEv2ViT', arch='vit_small')``.
"""
from .checkpoint import LoadResult, filter_checkpoint, load_checkpoint
from .checkpoint_io import CheckpointError, abbreviate_keys, read_checkpoint, resolve_checkpoint
from .checkpoint_layouts import convert_state_dict, to_official
from .masking import (DualMaskGenerator, FrameMaskGenerator, RandomMaskGenerator, RunningCellMaskGenerator,
                      TubeMaskGenerator, build_mask_generator)
from .pos_embed import official_finetune_pos_embed, resize_pos_embed, sinusoid_table
from .pretrain import PRETRAIN_PRESETS, VideoMAEv2Pretrainer, register_pretrainer_with_mmaction
from .registry import HAS_MMACTION, register_with_mmaction
from .released import RELEASED, ReleasedCheckpoint, is_released_name
from .videomaev2 import ARCH_PRESETS, Attention, Block, PatchEmbed, VideoMAEv2ViT

register_with_mmaction()
register_pretrainer_with_mmaction()

__all__ = [
    'ARCH_PRESETS', 'Attention', 'Block', 'CheckpointError', 'DualMaskGenerator', 'FrameMaskGenerator',
    'HAS_MMACTION', 'LoadResult', 'PRETRAIN_PRESETS', 'PatchEmbed', 'RELEASED', 'RandomMaskGenerator',
    'ReleasedCheckpoint', 'RunningCellMaskGenerator', 'TubeMaskGenerator', 'VideoMAEv2Pretrainer', 'VideoMAEv2ViT',
    'abbreviate_keys', 'build_mask_generator', 'convert_state_dict', 'filter_checkpoint', 'is_released_name',
    'load_checkpoint', 'official_finetune_pos_embed', 'read_checkpoint', 'register_pretrainer_with_mmaction',
    'register_with_mmaction', 'resize_pos_embed', 'resolve_checkpoint', 'sinusoid_table', 'to_official',
]
