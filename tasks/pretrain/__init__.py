"""VideoMAE V2 dual-masked pre-training with the mmengine Runner (``tools/train.py``, ``configs/pretrain/``).

Importing this package registers, under names unique across mmengine and mmaction2:

* ``VideoMAEv2PretrainDataset`` (DATASETS) and ``videomaev2_pretrain_collate`` (FUNCTIONS): videos ->
  repeated-augmentation views with tube/running-cell masks, seeded per (seed, epoch, index), whose epoch comes from
  :class:`tasks.sampler.EpochIndexSampler` (DATA_SAMPLERS; also registered as ``VideoMAEv2PretrainSampler``);
* ``VideoMAEv2PretrainModel`` and ``VideoMAEv2PretrainPreprocessor`` (MODELS): the mmengine ``BaseModel`` around
  :class:`backbone.pretrain.VideoMAEv2Pretrainer`;
* ``BF16AutocastOptimWrapper`` (OPTIM_WRAPPERS): bfloat16 autocast on CPU or CUDA;
* ``PretrainLossCurveHook`` (HOOKS): loss-curve PNG/JSON and the list of skipped videos in the work directory;
* ``DeviceAgnosticDDP`` (MODEL_WRAPPERS): mmengine's DDP wrapper accepting CPU modules (gloo runs without GPUs).

They go into mmengine's root registries, which mmaction2's scoped registries fall back to, so configs find them with
``default_scope='mmaction'`` as well as without a scope.
"""
from .checkpoint import load_trusted_checkpoint, mmengine_checkpoint_globals
from .dataset import (VideoMAEv2PretrainDataset, VideoMAEv2PretrainSampler, VideoRecord, read_pretrain_list,
                      sample_seeds, videomaev2_pretrain_collate)
from .hooks import PretrainLossCurveHook, plot_loss_curve
from .model import BF16AutocastOptimWrapper, DeviceAgnosticDDP, VideoMAEv2PretrainModel, VideoMAEv2PretrainPreprocessor
from .transforms import PretrainAugmentation, PretrainView

__all__ = [
    'BF16AutocastOptimWrapper', 'DeviceAgnosticDDP', 'PretrainAugmentation', 'PretrainLossCurveHook', 'PretrainView',
    'VideoMAEv2PretrainDataset', 'VideoMAEv2PretrainModel', 'VideoMAEv2PretrainPreprocessor',
    'VideoMAEv2PretrainSampler', 'VideoRecord', 'load_trusted_checkpoint', 'mmengine_checkpoint_globals',
    'plot_loss_curve', 'read_pretrain_list', 'sample_seeds', 'videomaev2_pretrain_collate',
]
