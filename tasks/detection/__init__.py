"""AVA v2.2 spatio-temporal action detection on torch + torchvision alone (no mmdet, no mmcv ops).

Importing this package registers, in mmengine's root registries (which mmaction2's scoped ones fall back to, so
``default_scope='mmaction'`` configs find them), under names unique across mmengine, mmaction2 and mmdet:

* ``VideoMAEv2AVADataset`` (DATASETS) and ``videomaev2_ava_collate`` (FUNCTIONS): AVA csv / label map / excluded
  timestamps / proposals -> keyframe-centred clips with boxes and multi-hot labels (:mod:`.dataset`);
* ``VideoMAEv2AVADetector``, ``VideoMAEv2RoIHead`` and ``VideoMAEv2AVAPreprocessor`` (MODELS): ViT feature map ->
  temporal mean -> ``torchvision.ops.roi_align`` at 1 / patch size -> spatial max -> dropout -> linear, sigmoid BCE
  (:mod:`.model`);
* ``VideoMAEv2AVAMetric`` (METRICS): official submission csv + frame mAP@0.5 with per-class AP, JSON and chart
  (:mod:`.metric`).

The evaluator itself, :mod:`.evaluation`, is plain numpy (official ActivityNet protocol and mmaction2's variant);
``tools/eval_ava.py`` is its command line. Configs: ``configs/detection/ava/``.
"""
import tasks.data.epoch_sampler  # noqa: F401  (the (epoch, index) sampler its configs name)
import tasks.engine  # noqa: F401  (the training wrappers and layer decay its configs name)

from .dataset import AVAKeyframe, VideoMAEv2AVADataset, select_proposals, videomaev2_ava_collate
from .evaluation import (AVAEvalResult, DetectionRow, evaluate_ava, evaluate_ava_files, oracle_baseline,
                         random_baseline, read_ava_detections, write_ava_detections)
from .metric import VideoMAEv2AVAMetric
from .model import VideoMAEv2AVADetector, VideoMAEv2AVAPreprocessor, VideoMAEv2RoIHead, boxes_to_rois

__all__ = [
    'AVAEvalResult', 'AVAKeyframe', 'DetectionRow', 'VideoMAEv2AVADataset', 'VideoMAEv2AVADetector',
    'VideoMAEv2AVAMetric', 'VideoMAEv2AVAPreprocessor', 'VideoMAEv2RoIHead', 'boxes_to_rois', 'evaluate_ava',
    'evaluate_ava_files', 'oracle_baseline', 'random_baseline', 'read_ava_detections', 'select_proposals',
    'videomaev2_ava_collate', 'write_ava_detections',
]
