"""VideoMAE V2 backbone: the ViT, its checkpoint loader and (optionally) its OpenMMLab registration.

Importing this package registers :class:`VideoMAEv2ViT` in mmaction2's ``MODELS`` registry when mmaction2 is
installed, so a stock mmaction2 config can say ``backbone=dict(type='VideoMAEv2ViT', arch='vit_small')``.
"""
from .checkpoint import CheckpointError, LoadResult, convert_state_dict, load_checkpoint, read_checkpoint
from .pos_embed import official_finetune_pos_embed, resize_pos_embed, sinusoid_table
from .registry import HAS_MMACTION, register_with_mmaction
from .videomaev2 import ARCH_PRESETS, Attention, Block, PatchEmbed, VideoMAEv2ViT

register_with_mmaction()

__all__ = [
    'ARCH_PRESETS', 'Attention', 'Block', 'CheckpointError', 'HAS_MMACTION', 'LoadResult', 'PatchEmbed',
    'VideoMAEv2ViT', 'convert_state_dict', 'load_checkpoint', 'official_finetune_pos_embed', 'read_checkpoint',
    'register_with_mmaction', 'resize_pos_embed', 'sinusoid_table',
]

# Dual-masked pre-training (issue "Dual-masked pre-training"): mask generators and the pre-training model.
from .masking import (DualMaskGenerator, FrameMaskGenerator, RandomMaskGenerator,  # noqa: E402
                      RunningCellMaskGenerator, TubeMaskGenerator, build_mask_generator)
from .pretrain import (PRETRAIN_PRESETS, VideoMAEv2Pretrainer, load_pretrain_checkpoint,  # noqa: E402
                       register_pretrainer_with_mmaction)

register_pretrainer_with_mmaction()

__all__ += [
    'DualMaskGenerator', 'FrameMaskGenerator', 'PRETRAIN_PRESETS', 'RandomMaskGenerator', 'RunningCellMaskGenerator',
    'TubeMaskGenerator', 'VideoMAEv2Pretrainer', 'build_mask_generator', 'load_pretrain_checkpoint',
    'register_pretrainer_with_mmaction',
]
