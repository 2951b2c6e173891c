"""mmengine metric: detector outputs -> official AVA submission csv -> frame mAP (:mod:`tasks.detection.evaluation`).

For every test keyframe each (box, label-map class) scoring at least ``action_thr`` becomes a submission row, as
mmaction2's ``AVAMetric`` writes them; the rows are evaluated with the chosen protocol (docs/ava.md#evaluation) and
reported next to reference mAPs that show what the boxes alone allow.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.registry import METRICS

from .evaluation import (DetectionRow, Protocol, evaluate_ava, format_references, plot_per_class_ap, read_ground_truth,
                         reference_maps, write_ava_detections, write_result_json)

__all__ = ['VideoMAEv2AVAMetric', 'PREDICTIONS_CSV', 'RESULTS_JSON', 'CHART_PNG']

PREDICTIONS_CSV = 'ava_predictions.csv'
RESULTS_JSON = 'ava_results.json'
CHART_PNG = 'ava_per_class_ap.png'


@METRICS.register_module()
class VideoMAEv2AVAMetric(BaseMetric):
    """Frame-level AVA mAP@0.5 of :class:`~tasks.detection.model.VideoMAEv2AVADetector` predictions.

    Returned keys (with the default prefix ``ava``): ``ava/mAP``, ``ava/mAP_random`` (random scores on the same
    boxes, mean over ``baseline_seeds``), ``ava/mAP_random_boxes`` (random scores on as many boxes placed at random:
    detections that neither localise nor recognise), ``ava/mAP_oracle`` (perfect scores on the same boxes) and
    ``ava/AP/<class name>`` for every label-map class (NaN when the class is left out of the mean). The random
    references are the floor of a detector that recognises nothing (on the same boxes) or neither localises nor
    recognises (random boxes); the perfect scores are the ceiling the proposals allow, below 1 where they miss people.

    With ``out_dir`` (``tools/test.py`` fills in its work directory) the metric writes there
    ``ava_predictions.csv``, the official submission csv (``video_id,timestamp,x1,y1,x2,y2,action_id,score``) that
    ``tools/eval_ava.py`` evaluates to the same numbers; ``ava_results.json``, the per-class AP, the mAP, the
    references, the protocol and the keyframes whose video could not be decoded; and ``ava_per_class_ap.png``, the
    per-class AP chart.

    The model returns one result per keyframe, a failed one included, so mmengine's gathering drops the samplers'
    padding; a keyframe that still arrives twice is counted once.

    Args:
        ann_file: ground-truth csv of the evaluated split.
        label_file: label-map pbtxt (the evaluated classes).
        exclude_file: excluded-timestamps csv.
        protocol: ``'official'`` (ActivityNet) or ``'mmaction2'``; see :mod:`tasks.detection.evaluation`.
        action_thr: rows with a lower score are not written (mmaction2's default 0.002).
        baseline_seeds: number of random-score draws averaged for the baseline (0: no baseline).
        out_dir: folder for the csv, JSON and PNG; None writes nothing.
        collect_device: ``'cpu'`` or ``'gpu'``, where results are gathered across processes.
        prefix: metric-name prefix (default ``'ava'``).
    """

    default_prefix = 'ava'

    def __init__(self, ann_file: str, label_file: str, exclude_file: str | None = None, *,
                 protocol: Protocol = 'official', action_thr: float = 0.002, baseline_seeds: int = 3,
                 out_dir: str | None = None, collect_device: str = 'cpu', prefix: str | None = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if protocol not in ('official', 'mmaction2'):
            raise ValueError(f"protocol must be 'official' or 'mmaction2', got {protocol!r}")
        self.ann_file = ann_file
        self.label_file = label_file
        self.exclude_file = exclude_file
        self.protocol = protocol
        self.action_thr = action_thr
        self.baseline_seeds = baseline_seeds
        self.out_dir = out_dir
        # read now: a wrong path fails before the test loop, not after it
        self.label_map, self.gt, self.excluded = read_ground_truth(ann_file, label_file, exclude_file)

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for s in data_samples:
            result = dict(video_id=s['video_id'], timestamp=int(s['timestamp']),
                          boxes=np.asarray(s['boxes'], dtype=np.float64).reshape(-1, 4),
                          scores=np.asarray(s['scores'], dtype=np.float64), failed=s.get('failed'))
            # a NaN score fails every action_thr test, so its rows would vanish from the csv without a word
            if not (np.isfinite(result['boxes']).all() and np.isfinite(result['scores']).all()):
                raise ValueError(f'VideoMAEv2AVAMetric: keyframe {result["video_id"]},{result["timestamp"]:04d} has '
                                 'non-finite boxes or scores')
            self.results.append(result)

    def detection_rows(self, results: Sequence[dict]) -> list[DetectionRow]:
        """Submission rows of the label-map classes scoring >= ``action_thr`` (failed keyframes give none), with boxes
        and scores rounded as :func:`~tasks.detection.evaluation.write_ava_detections` writes them."""
        rows = []
        for r in results:
            if r['failed']:
                continue
            scores = r['scores']
            for c in self.label_map:
                if c > scores.shape[1]:
                    raise ValueError(f'label-map class {c} has no output: the model scores {scores.shape[1]} classes')
                col = scores[:, c - 1]
                for i in np.flatnonzero(col >= self.action_thr):
                    # rounded as the csv writes them, so that the csv evaluates to exactly these numbers
                    box = (float(f'{v:.4f}') for v in r['boxes'][i])
                    rows.append(DetectionRow(r['video_id'], r['timestamp'], *box, c, float(f'{col[i]:.6g}')))
        return rows

    def compute_metrics(self, results: list) -> dict[str, float]:
        # One result per keyframe: a keyframe gathered twice (a sampler's padding) would double its detections.
        unique: dict[tuple[str, int], dict] = {}
        for r in results:
            unique.setdefault((r['video_id'], r['timestamp']), r)
        results = list(unique.values())
        rows = self.detection_rows(results)
        result = evaluate_ava(self.gt, rows, self.label_map, self.excluded, protocol=self.protocol)
        failed = sorted({(r['video_id'], r['timestamp'], r['failed']) for r in results if r['failed']})
        if failed:
            print_log(f'AVA metric: {len(failed)} keyframes had no clip (undecodable video) and no detections, e.g. '
                      f'{failed[0][0]},{failed[0][1]:04d}: {failed[0][2]}', logger='current', level=logging.WARNING)
        boxes = {(r['video_id'], r['timestamp']): r['boxes'] for r in results if not r['failed']}
        refs = reference_maps(self.gt, boxes, self.label_map, self.excluded, protocol=self.protocol,
                              seeds=range(self.baseline_seeds))
        baseline, floor, ceiling = refs['random_detections_mAP'], refs['random_boxes_mAP'], refs['oracle_scores_mAP']
        print_log(f'AVA frame mAP@0.5 ({self.protocol} protocol) over {len(results)} keyframes:\n'
                  f'{result.format_table()}\n{format_references(refs)}', logger='current')
        if self.out_dir is not None:
            out = Path(self.out_dir)
            write_ava_detections(out / PREDICTIONS_CSV, rows)
            write_result_json(result, out / RESULTS_JSON, **refs, num_keyframes=len(results),
                              action_thr=self.action_thr, gt=str(self.ann_file), label_map=str(self.label_file),
                              exclude=self.exclude_file,
                              failed_keyframes=[dict(video_id=v, timestamp=t, reason=why) for v, t, why in failed])
            plot_per_class_ap(result, out / CHART_PNG, baseline=baseline, ceiling=ceiling)
            print_log(f'AVA metric: wrote {PREDICTIONS_CSV}, {RESULTS_JSON} and {CHART_PNG} to {os.fspath(out)}',
                      logger='current')
        metrics = {'mAP': result.mAP, 'mAP_random': baseline, 'mAP_random_boxes': floor, 'mAP_oracle': ceiling}
        metrics.update({f'AP/{name}': result.ap[c] for c, name in self.label_map.items()})
        return metrics
