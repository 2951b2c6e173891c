"""THUMOS14-style temporal action localisation on cached (or on-line) clip features (docs/thumos14.md).

Importing this package registers, under names unique across mmengine and mmaction2: ``TADFeatureDataset`` and
``tad_collate`` (:mod:`.dataset`), ``ActionFormerTAD`` and ``TADDataPreprocessor`` (:mod:`.model`) and
``TADmAPMetric`` (:mod:`.metric`). :mod:`.evaluation` (the evaluator behind ``tools/eval_tad.py``) and :mod:`.nms`
(Gaussian Soft-NMS) are plain numpy.
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
