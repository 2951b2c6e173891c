"""AVA v2.2 spatio-temporal action detection on torch + torchvision alone (no mmdet, no mmcv ops; docs/ava.md).

Importing this package registers, in mmengine's root registries (which mmaction2's scoped ones fall back to) and
under names unique across mmengine, mmaction2 and mmdet: ``VideoMAEv2AVADataset``, ``VideoMAEv2AVAFeatmapDataset`` and
``videomaev2_ava_collate`` (:mod:`.dataset`), ``VideoMAEv2AVADetector``, ``VideoMAEv2AVACachedDetector``,
``VideoMAEv2RoIHead`` and ``VideoMAEv2AVAPreprocessor`` (:mod:`.model`), ``VideoMAEv2AVAMetric`` (:mod:`.metric`). :mod:`.evaluation` is the plain-numpy evaluator behind
``tools/eval_ava.py``; the configs are in ``configs/detection/ava/``.
"""
import tasks.data.epoch_sampler  # noqa: F401  (the (epoch, index) sampler its configs name)
import tasks.engine  # noqa: F401  (the training wrappers and layer decay its configs name)

from .dataset import (AVAKeyframe, VideoMAEv2AVADataset, VideoMAEv2AVAFeatmapDataset, select_proposals,
                      videomaev2_ava_collate)
from .evaluation import (AVAEvalResult, DetectionRow, evaluate_ava, evaluate_ava_files, oracle_baseline,
                         random_baseline, read_ava_detections, write_ava_detections)
from .metric import VideoMAEv2AVAMetric
from .model import (VideoMAEv2AVACachedDetector, VideoMAEv2AVADetector, VideoMAEv2AVAPreprocessor, VideoMAEv2RoIHead,
                    boxes_to_rois)

__all__ = [
    'AVAEvalResult', 'AVAKeyframe', 'DetectionRow', 'VideoMAEv2AVADataset', 'VideoMAEv2AVAFeatmapDataset',
    'VideoMAEv2AVACachedDetector', 'VideoMAEv2AVADetector',
    'VideoMAEv2AVAMetric', 'VideoMAEv2AVAPreprocessor', 'VideoMAEv2RoIHead', 'boxes_to_rois', 'evaluate_ava',
    'evaluate_ava_files', 'oracle_baseline', 'random_baseline', 'read_ava_detections', 'select_proposals',
    'videomaev2_ava_collate', 'write_ava_detections',
]
