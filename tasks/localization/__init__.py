"""THUMOS14-style temporal action localisation on cached (or on-line) clip features (docs/thumos14.md).

Importing this package registers, under names unique across mmengine and mmaction2:

* ``TADFeatureDataset`` (DATASETS) and ``tad_collate`` (FUNCTIONS): annotations (ActionFormer / OpenTAD json) +
  features from the HDF5 feature store, rows <-> seconds from the store's provenance, fps check, training crops,
  on-line extraction of missing videos;
* ``ActionFormerTAD`` and ``TADDataPreprocessor`` (MODELS): the ActionFormer detector and its padding;
* ``TADmAPMetric`` (METRICS): ActivityNet-style json, mAP at tIoU 0.3:0.1:0.7, per-class AP, mAP-vs-tIoU plot.

Pure-numpy pieces: :mod:`.evaluation` (the evaluator, also behind ``tools/eval_tad.py``) and :mod:`.nms`
(Gaussian Soft-NMS).
"""
import tasks.data.epoch_sampler  # noqa: F401  (the (epoch, index) sampler its configs name)
import tasks.engine  # noqa: F401  (the training wrappers and layer decay its configs name)

from tasks.data.annotations import class_names, detect_format, read_annotations, resolve_subset

from .dataset import TADFeatureDataset, online_extract_config, tad_collate, truncate
from .evaluation import (
    DEFAULT_TIOUS, DetectionResult, GroundTruth, evaluate_and_report, evaluate_detection, format_table,
    plot_map_vs_tiou, plot_per_class_ap, random_baseline, random_predictions, read_ground_truth, read_predictions,
    segment_iou, write_predictions, write_result_json,
)
from .metric import TADmAPMetric
from .model import ActionFormerTAD, TADDataPreprocessor
from .nms import batched_soft_nms, soft_nms_1d

__all__ = [
    'ActionFormerTAD', 'DEFAULT_TIOUS', 'DetectionResult', 'GroundTruth', 'TADDataPreprocessor', 'TADFeatureDataset',
    'TADmAPMetric', 'batched_soft_nms', 'class_names', 'detect_format', 'evaluate_and_report', 'evaluate_detection',
    'format_table', 'online_extract_config', 'plot_map_vs_tiou', 'plot_per_class_ap', 'random_baseline',
    'random_predictions', 'read_annotations', 'read_ground_truth', 'read_predictions', 'resolve_subset', 'segment_iou',
    'soft_nms_1d', 'tad_collate', 'truncate', 'write_predictions', 'write_result_json',
]
