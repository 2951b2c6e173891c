"""VideoMAE V2 dual-masked pre-training with the mmengine Runner (``tools/train.py``, ``configs/pretrain/``).

Importing this package registers ``VideoMAEv2PretrainDataset`` and ``videomaev2_pretrain_collate``,
``VideoMAEv2PretrainModel`` and ``VideoMAEv2PretrainPreprocessor`` (around
:class:`backbone.pretrain.VideoMAEv2Pretrainer`) and ``PretrainLossCurveHook``, under names unique across mmengine and
mmaction2. They go into mmengine's root registries, which mmaction2's scoped registries fall back to, so configs find
them with ``default_scope='mmaction'`` as well as without a scope.
"""
import tasks.data.epoch_sampler  # noqa: F401  (the (epoch, index) sampler its configs name)
import tasks.engine  # noqa: F401  (the training wrappers its configs name)
from .dataset import (VideoMAEv2PretrainDataset, VideoRecord, read_pretrain_list, sample_seeds,
                      videomaev2_pretrain_collate)
from .hooks import PretrainLossCurveHook, plot_loss_curve
from .model import VideoMAEv2PretrainModel, VideoMAEv2PretrainPreprocessor
from .transforms import PretrainAugmentation, PretrainView

__all__ = [
    'PretrainAugmentation', 'PretrainLossCurveHook', 'PretrainView', 'VideoMAEv2PretrainDataset',
    'VideoMAEv2PretrainModel', 'VideoMAEv2PretrainPreprocessor', 'VideoRecord', 'plot_loss_curve',
    'read_pretrain_list', 'sample_seeds', 'videomaev2_pretrain_collate',
]
