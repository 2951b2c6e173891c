"""mmengine metric for temporal action detection: collects the detector's outputs, writes them as ActivityNet-style
json and evaluates them with :mod:`tasks.localization.evaluation` (mAP per tIoU and averaged,
docs/thumos14.md#evaluation).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.registry import METRICS

from tasks.data.annotations import AnnFormat, class_names, detect_format, read_annotations, resolve_subset

from .evaluation import (DEFAULT_TIOUS, GroundTruth, evaluate_detection, format_table, plot_map_vs_tiou,
                         plot_per_class_ap, random_baseline, write_predictions, write_result_json)

__all__ = ['TADmAPMetric']


@METRICS.register_module()
class TADmAPMetric(BaseMetric):
    """mAP at several tIoU thresholds of the detections of :class:`~tasks.localization.model.ActionFormerTAD`.

    The ground truth is the annotation file and subset of the evaluated dataset (its ``metainfo``: ``ann_file``,
    ``ann_format``, ``class_map``, ``subset``, ``classes``), unless ``ann_file`` / ``subset`` are given here. Reported
    keys (prefix ``tad``): ``mAP`` (the average over the thresholds, first so that ``save_best='auto'`` picks it),
    ``mAP@0.30`` ... and ``random_mAP`` (:func:`~tasks.localization.evaluation.random_baseline`, the chance level on
    the same ground truth).

    Files, when ``out_dir`` is set (``tools/test.py`` sets it to the work directory): ``tad_predictions.json``
    (``{"results": {video: [{"segment", "label", "score"}]}}``), ``tad_results.json`` (mAP, per-class AP, counts,
    baseline), ``tad_map_vs_tiou.png`` and ``tad_per_class_ap.png``.

    The model returns one result per video, so mmengine's gathering drops the sampler's padding; a video that still
    arrives twice is counted once.

    Args:
        tious: thresholds (0.3, 0.4, 0.5, 0.6, 0.7).
        ambiguous_aware: apply the THUMOS14 kit's Ambiguous rule (see the evaluation module).
        ann_file: ground-truth json (default: the dataset's).
        ann_format: its format (default: the dataset's, else ``'auto'``).
        class_map: OpenTAD class map (default: the dataset's).
        subset: subset to evaluate (default: the dataset's).
        random_baseline: also score random detections.
        out_dir: folder for the files above (None: no files).
        collect_device: ``'cpu'`` or ``'gpu'`` (mmengine).
        prefix: metric key prefix (``'tad'``).
    """

    default_prefix = 'tad'

    def __init__(self, tious: Sequence[float] = DEFAULT_TIOUS, ambiguous_aware: bool = False,
                 ann_file: str | None = None, ann_format: AnnFormat | None = None,
                 class_map: str | Sequence[str] | None = None, subset: str | None = None,
                 random_baseline: bool = True, out_dir: str | None = None, collect_device: str = 'cpu',
                 prefix: str | None = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.tious = tuple(float(t) for t in tious)
        self.ambiguous_aware = ambiguous_aware
        self.ann_file, self.ann_format, self.class_map, self.subset = ann_file, ann_format, class_map, subset
        self.with_baseline = random_baseline
        self.out_dir = out_dir

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep each video's detections (seconds, scores, class ids) as plain numpy."""
        for det in data_samples:
            self.results.append({'video_id': det['video_id'], 'segments': np.asarray(det['segments'], np.float64),
                                 'scores': np.asarray(det['scores'], np.float64),
                                 'labels': np.asarray(det['labels'], np.int64)})

    def _ground_truth(self) -> tuple[GroundTruth, list[str], dict[str, float]]:
        meta = self.dataset_meta or {}
        ann_file = self.ann_file or meta.get('ann_file')
        if ann_file is None:
            raise ValueError('TADmAPMetric needs ann_file, given here or in the dataset metainfo (TADFeatureDataset '
                             'provides it)')
        fmt = detect_format(ann_file, self.ann_format or meta.get('ann_format', 'auto'))
        ann = read_annotations(ann_file, fmt, self.class_map if self.class_map is not None else meta.get('class_map'))
        subset = resolve_subset(ann, self.subset, fmt, ann_file) if self.subset is not None else meta.get('subset')
        if subset is None:
            raise ValueError('TADmAPMetric needs a subset, given here or in the dataset metainfo')
        classes = list(meta.get('classes') or class_names(ann, self.class_map, ann_file))
        gt = GroundTruth.from_annotations(ann, subset)
        durations = {v.video_id: v.duration for v in ann.subset(*subset)}
        return gt, classes, durations

    def compute_metrics(self, results: list) -> dict[str, float]:
        gt, classes, durations = self._ground_truth()
        predictions: dict[str, list[dict[str, Any]]] = {}
        for r in results:
            if r['video_id'] in predictions:
                continue  # one result per test video: a video gathered twice (a sampler's padding) counts once
            dets = predictions.setdefault(r['video_id'], [])
            for (s, e), score, label in zip(r['segments'], r['scores'], r['labels']):
                if not 0 <= label < len(classes):
                    raise ValueError(f'{r["video_id"]}: predicted class id {label} outside the {len(classes)} '
                                     'classes of the dataset')
                dets.append({'segment': [float(s), float(e)], 'label': classes[label], 'score': float(score)})
        result = evaluate_detection(gt, predictions, self.tious, self.ambiguous_aware)
        baseline = random_baseline(gt, self.tious, self.ambiguous_aware, durations=durations) \
            if self.with_baseline else None
        print_log('\n' + format_table(result, baseline, per_class=True), logger='current')
        metrics = {'mAP': result.average_map}
        metrics.update({f'mAP@{t:.2f}': float(m) for t, m in zip(result.tious, result.map_per_tiou)})
        if baseline is not None:
            metrics['random_mAP'] = baseline.average_map
        if self.out_dir is not None:
            out = Path(self.out_dir)
            write_predictions(out / 'tad_predictions.json', predictions)
            write_result_json(result, out / 'tad_results.json', baseline, videos=len(gt.videos))
            plot_map_vs_tiou(result, out / 'tad_map_vs_tiou.png', baseline)
            plot_per_class_ap(result, out / 'tad_per_class_ap.png', baseline)
        return metrics
