"""Temporal action detection mAP at several tIoU thresholds (THUMOS14 protocol), in plain numpy.

The ActivityNet evaluator that ActionFormer and OpenTAD use (duplicate ground truth removed, greedy score-ordered
matching, all-point interpolated AP), optionally with the THUMOS14 kit's Ambiguous rule; docs/thumos14.md#evaluation
states each step. Ground truth is a :class:`GroundTruth`, predictions the ActivityNet-style
``{video: [{"segment": [s, e], "label": name, "score": x}]}`` mapping (docs/thumos14.md#annotation-formats).
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tasks.data.annotations import (AnnFormat, AnnotationError, TADAnnotations, detect_format, read_annotations,
                                    resolve_subset)
from tasks.data.annotations.common import parse_float, shown
from tasks.data.annotations.located_json import LocatedJSON
from tasks.data.files import atomic_path, write_json_atomic
from tasks.engine.ap import interpolated_ap
from tasks.engine.report import text_table

__all__ = [
    'DEFAULT_TIOUS', 'GroundTruth', 'Prediction', 'DetectionResult', 'segment_iou', 'evaluate_detection',
    'random_predictions', 'random_baseline', 'read_ground_truth', 'read_predictions', 'checked_prediction',
    'write_predictions', 'write_result_json', 'format_table', 'plot_map_vs_tiou', 'plot_per_class_ap',
    'evaluate_and_report',
]

DEFAULT_TIOUS: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7)
"""THUMOS14 thresholds (docs/thumos14.md#evaluation)."""

DUPLICATE_TOL = 1e-3
"""Seconds within which two same-label instances count as one (ActivityNet / ActionFormer)."""

Prediction = Mapping[str, Any]
"""One detection: ``{"segment": [start, end] (seconds), "label": class name, "score": float}``."""


# =====================================================================================================================
# Ground truth
# =====================================================================================================================
@dataclass
class GroundTruth:
    """The instances to detect, per video, without duplicates and instances under 1e-3 s.

    Attributes:
        segments: video id -> (N, 2) float64 [start, end] seconds (every video of the evaluated subset, also videos
            without instances: their predictions are all false positives).
        labels: video id -> (N,) class names, aligned with ``segments``.
        ambiguous: video id -> (M, 2) ``Ambiguous`` intervals (only used with ``ambiguous_aware``).
        classes: the class names in id order (including classes without instances in this subset).
        removed: how many instances the clean-up dropped (duplicates, too short).
    """

    segments: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    ambiguous: dict[str, np.ndarray] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    removed: int = 0

    @classmethod
    def from_instances(cls, instances: Mapping[str, Iterable[tuple[float, float, str]]],
                       ambiguous: Mapping[str, Iterable[tuple[float, float]]] | None = None,
                       classes: Sequence[str] | None = None) -> GroundTruth:
        """From ``{video: [(start, end, label), ...]}``, removing duplicates and instances under 1e-3 s."""
        segments, labels, removed = {}, {}, 0
        for vid, items in instances.items():
            kept: list[tuple[float, float, str]] = []
            for start, end, label in items:
                start, end = float(start), float(end)
                duplicate = any(label == l2 and abs(start - s2) <= DUPLICATE_TOL and abs(end - e2) <= DUPLICATE_TOL
                                for s2, e2, l2 in kept)
                if duplicate or end - start < DUPLICATE_TOL:
                    removed += 1
                    continue
                kept.append((start, end, str(label)))
            segments[vid] = np.array([(s, e) for s, e, _ in kept], dtype=np.float64).reshape(-1, 2)
            labels[vid] = np.array([l for _, _, l in kept], dtype=object)
        amb = {vid: np.asarray(list(iv), dtype=np.float64).reshape(-1, 2) for vid, iv in (ambiguous or {}).items()}
        if classes is None:
            classes = sorted({l for ls in labels.values() for l in ls})
        return cls(segments, labels, amb, list(classes), removed)

    @classmethod
    def from_annotations(cls, ann: TADAnnotations, subset: str | Sequence[str] | None = None) -> GroundTruth:
        """The videos of ``subset`` (names as in the file, see :func:`resolve_subset`; None: every video)."""
        if subset is None:
            videos = list(ann.videos.values())
        else:
            names = [subset] if isinstance(subset, str) else list(subset)
            videos = ann.subset(*names)
        return cls.from_instances({v.video_id: [(s.start, s.end, s.label) for s in v.segments] for v in videos},
                                  {v.video_id: v.ambiguous for v in videos},
                                  classes=[ann.classes[i] for i in sorted(ann.classes)])

    @property
    def videos(self) -> list[str]:
        return list(self.segments)

    def num_instances(self, label: str | None = None) -> int:
        return int(sum((ls == label).sum() if label is not None else len(ls) for ls in self.labels.values()))

    def present_classes(self) -> list[str]:
        """Classes with at least one instance, in class-id order (then any other label, sorted)."""
        present = {l for ls in self.labels.values() for l in ls}
        ordered = [c for c in self.classes if c in present]
        return ordered + sorted(present - set(ordered))


def read_ground_truth(path: str | os.PathLike, subset: str | None = 'test', ann_format: AnnFormat = 'auto',
                      class_map: Sequence[str] | str | os.PathLike | None = None) -> GroundTruth:
    """Ground truth of one subset of an ActionFormer / OpenTAD json (``subset=None``: every video)."""
    fmt = detect_format(path, ann_format)
    ann = read_annotations(path, fmt, class_map)
    return GroundTruth.from_annotations(ann, resolve_subset(ann, subset, fmt, path) if subset is not None else None)


# =====================================================================================================================
# Predictions
# =====================================================================================================================
def read_predictions(path: str | os.PathLike) -> dict[str, list[dict[str, Any]]]:
    """Read ``{"results": {video: [{"segment": [s, e], "label": name, "score": x}, ...]}}`` (OpenTAD / ActivityNet
    layout; a bare ``{video: [...]}`` mapping is accepted too). Numbers become floats; what the entries may hold is
    :func:`checked_prediction`'s rule (docs/thumos14.md#evaluation).

    Raises:
        AnnotationError: a missing or malformed file, naming the file, the line, the video and the entry.
    """
    doc = LocatedJSON(path, depth=3)
    results = doc.root.get('results', doc.root) if isinstance(doc.root, dict) else None
    if not isinstance(results, dict):
        raise AnnotationError(path, 'expected {"results": {video: [detections]}} or {video: [detections]}', line=1)
    out: dict[str, list[dict[str, Any]]] = {}
    for vid, dets in results.items():
        line = doc.line_of(dets) or doc.line_of_key(results, vid)
        if not isinstance(dets, list):
            raise AnnotationError(path, f'results[{vid!r}] must be a list of detections', line=line)
        out[vid] = [checked_prediction(d, vid, i, path, doc.line_of_item(dets, i) or line) for i, d in enumerate(dets)]
    return out


_PLAIN_NUMBERS = frozenset({int, float, np.float64, np.float32, np.int64, np.int32})


def checked_prediction(d: Any, vid: str, index: int, path: str | os.PathLike = '<predictions>',
                       line: int | None = None) -> dict[str, Any]:
    """One detection as ``{"segment": [start, end], "label": name, "score": x}`` with float numbers.

    The rule (docs/thumos14.md#evaluation): the numbers must be finite and the segment must not end before it starts; a
    zero-length segment is kept (it overlaps nothing, so it is a false positive, as in the ActivityNet evaluator).

    Raises:
        AnnotationError: naming ``path``, ``line``, the video and the entry.
    """
    if type(d) is dict:  # the usual entry, checked without building the messages below (baselines check 10**5)
        segment, label, score = d.get('segment'), d.get('label'), d.get('score')
        if type(label) is str and type(segment) in (list, tuple) and len(segment) == 2 \
                and type(score) in _PLAIN_NUMBERS and type(segment[0]) in _PLAIN_NUMBERS \
                and type(segment[1]) in _PLAIN_NUMBERS:
            try:
                start, end, score = float(segment[0]), float(segment[1]), float(score)
            except OverflowError:  # an int of 400 digits: named below
                start = math.nan
            if math.isfinite(start) and math.isfinite(end) and math.isfinite(score) and start <= end:
                return {'segment': [start, end], 'label': label, 'score': score}
    where = f'results[{vid!r}][{index}]'
    if not isinstance(d, Mapping) or not all(k in d for k in ('segment', 'label', 'score')):
        raise AnnotationError(path, f'{where} needs "segment": [start, end], "label" and "score", got {shown(d)}',
                              line=line)
    segment, label = d['segment'], d['label']
    if isinstance(segment, (str, bytes, Mapping)) or not hasattr(segment, '__len__') or len(segment) != 2:
        raise AnnotationError(path, f'{where}: "segment" must be [start, end], got {shown(segment)}', line=line)
    start, end = (parse_float(path, line, v, f'{where}: segment {n}') for v, n in zip(segment, ('start', 'end')))
    score = parse_float(path, line, d['score'], f'{where}: score')
    if end < start:
        raise AnnotationError(path, f'{where}: segment [{start}, {end}] ends before it starts', line=line)
    if not isinstance(label, str):
        raise AnnotationError(path, f'{where}: "label" must be a class name, got {shown(label)}', line=line)
    return {'segment': [start, end], 'label': label, 'score': score}


def write_predictions(path: str | os.PathLike, results: Mapping[str, Sequence[Prediction]],
                      extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``{"results": ..., **extra}`` atomically."""
    payload = {'results': {vid: [{'segment': [float(p['segment'][0]), float(p['segment'][1])],
                                  'label': str(p['label']), 'score': float(p['score'])} for p in dets]
                           for vid, dets in results.items()}}
    payload.update(extra or {})
    return write_json_atomic(path, payload, indent=None)


# =====================================================================================================================
# Matching and AP
# =====================================================================================================================
def segment_iou(segment: Sequence[float], candidates: np.ndarray) -> np.ndarray:
    """tIoU of one [start, end] with (N, 2) candidates: intersection / union of the two intervals."""
    candidates = np.asarray(candidates, dtype=np.float64).reshape(-1, 2)
    inter = np.clip(np.minimum(segment[1], candidates[:, 1]) - np.maximum(segment[0], candidates[:, 0]), 0, None)
    union = (candidates[:, 1] - candidates[:, 0]) + (segment[1] - segment[0]) - inter
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _class_ap(gt: GroundTruth, label: str, preds: list[tuple[str, float, float, float]],
              tious: np.ndarray, ambiguous_aware: bool) -> np.ndarray:
    """AP of one class at every threshold. ``preds``: (video, start, end, score) of this class.

    Predictions are visited by descending score (stable); each takes the free instance of its video with the highest
    tIoU >= the threshold, else it is a false positive. With ``ambiguous_aware`` an unmatched one that overlaps an
    Ambiguous interval of its video leaves the ranking.
    """
    npos = gt.num_instances(label)
    ap = np.zeros(len(tious))
    if npos == 0 or not preds:
        return ap
    scores = np.array([p[3] for p in preds])
    order = np.argsort(-scores, kind='stable')
    gt_of = {vid: segs[gt.labels[vid] == label] for vid, segs in gt.segments.items()}
    locked = {vid: np.zeros((len(tious), len(s)), dtype=bool) for vid, s in gt_of.items()}
    tp = np.zeros((len(tious), len(preds)), dtype=bool)
    fp = np.zeros((len(tious), len(preds)), dtype=bool)
    for rank, k in enumerate(order):
        vid, s, e, _ = preds[k]
        segs = gt_of.get(vid)
        if segs is None or len(segs) == 0:
            fp[:, rank] = True
            continue
        iou = segment_iou((s, e), segs)
        by_iou = np.argsort(-iou, kind='stable')
        for t, thr in enumerate(tious):
            for j in by_iou:
                if iou[j] < thr:
                    break
                if locked[vid][t, j]:
                    continue
                tp[t, rank] = locked[vid][t, j] = True
                break
            fp[t, rank] = not tp[t, rank]
    if ambiguous_aware:
        # unmatched detections touching an Ambiguous interval of their video leave the ranking (THUMOS14 kit)
        for rank, k in enumerate(order):
            vid, s, e, _ = preds[k]
            amb = gt.ambiguous.get(vid)
            if amb is not None and len(amb):
                overlaps = bool(np.any(np.minimum(e, amb[:, 1]) - np.maximum(s, amb[:, 0]) > 0))
                if overlaps:
                    fp[:, rank] = False  # true positives stay (tp is untouched)
    for t in range(len(tious)):
        kept = tp[t] | fp[t]
        tp_cum = np.cumsum(tp[t][kept])
        fp_cum = np.cumsum(fp[t][kept])
        if len(tp_cum) == 0:
            continue
        recall = tp_cum / npos
        precision = tp_cum / (tp_cum + fp_cum)
        ap[t] = interpolated_ap(precision, recall)
    return ap


@dataclass
class DetectionResult:
    """Output of :func:`evaluate_detection`.

    Attributes:
        tious: the thresholds.
        classes: the evaluated classes (those with ground truth), in class order.
        ap: (num_tious, num_classes) AP per threshold and class.
        num_gt: instances per evaluated class.
        num_predictions: detections evaluated (after dropping other videos and classes).
        ambiguous_aware: whether the Ambiguous rule was applied.
        ignored: ``{'videos': n, 'classes': n}`` detections ignored because their video is not in the ground truth
            or their class has no instance there.
    """

    tious: np.ndarray
    classes: list[str]
    ap: np.ndarray
    num_gt: list[int]
    num_predictions: int
    ambiguous_aware: bool
    ignored: dict[str, int] = field(default_factory=dict)

    @property
    def map_per_tiou(self) -> np.ndarray:
        """(num_tious,) mean AP over classes."""
        return self.ap.mean(axis=1) if self.ap.size else np.zeros(len(self.tious))

    @property
    def average_map(self) -> float:
        """Mean of :attr:`map_per_tiou`, the THUMOS14 headline number."""
        return float(self.map_per_tiou.mean())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: mAP per tIoU and averaged, AP per class and tIoU, counts, settings."""
        return {
            'average_mAP': self.average_map,
            'mAP': {f'{t:.2f}': float(m) for t, m in zip(self.tious, self.map_per_tiou)},
            'per_class_AP': {c: {f'{t:.2f}': float(a) for t, a in zip(self.tious, self.ap[:, i])}
                             for i, c in enumerate(self.classes)},
            'num_gt': dict(zip(self.classes, self.num_gt)),
            'num_predictions': self.num_predictions,
            'ignored_predictions': dict(self.ignored),
            'tious': [float(t) for t in self.tious],
            'evaluator': 'ActivityNet-style greedy matching, all-point interpolated AP' +
                         (' + THUMOS14 kit Ambiguous rule' if self.ambiguous_aware else ''),
            'ambiguous_aware': self.ambiguous_aware,
        }


def evaluate_detection(gt: GroundTruth, predictions: Mapping[str, Sequence[Prediction]],
                       tious: Sequence[float] = DEFAULT_TIOUS, ambiguous_aware: bool = False) -> DetectionResult:
    """mAP of ``predictions`` against ``gt`` at every threshold: the mean AP over the classes with ground truth.

    Args:
        gt: ground truth of the evaluated videos.
        predictions: ``{video: [{"segment": [s, e], "label": name, "score": x}]}``, each entry as
            :func:`checked_prediction` requires. Videos outside ``gt`` and classes without ground truth are ignored
            (counted in ``DetectionResult.ignored``; docs/thumos14.md#evaluation).
        tious: thresholds in (0, 1].
        ambiguous_aware: drop unmatched detections that overlap an Ambiguous interval (the THUMOS14 kit's rule;
            matching and AP stay ActivityNet's, so the number is not the kit's).

    Raises:
        ValueError: a threshold outside (0, 1], no ground-truth instance at all, or a malformed prediction
            (:class:`AnnotationError` naming the video and entry: a NaN or infinite number, a reversed segment).
    """
    tious_arr = np.asarray(list(tious), dtype=np.float64)
    if tious_arr.ndim != 1 or tious_arr.size == 0 or np.any((tious_arr <= 0) | (tious_arr > 1)):
        raise ValueError(f'tIoU thresholds must be in (0, 1], got {list(tious)}')
    classes = gt.present_classes()
    if not classes:
        raise ValueError('the ground truth has no instance to detect (wrong subset?)')
    by_class: dict[str, list[tuple[str, float, float, float]]] = {c: [] for c in classes}
    ignored = {'videos': 0, 'classes': 0}
    for vid, dets in predictions.items():
        for i, d in enumerate(dets):
            d = checked_prediction(d, vid, i)  # every entry, also those ignored below
            bucket = by_class.get(d['label'])
            if vid not in gt.segments or bucket is None:
                ignored['videos' if vid not in gt.segments else 'classes'] += 1
                continue
            bucket.append((vid, *d['segment'], d['score']))
    ap = np.stack([_class_ap(gt, c, by_class[c], tious_arr, ambiguous_aware) for c in classes], axis=1)
    return DetectionResult(tious=tious_arr, classes=classes, ap=ap, num_gt=[gt.num_instances(c) for c in classes],
                           num_predictions=sum(len(v) for v in by_class.values()), ambiguous_aware=ambiguous_aware,
                           ignored=ignored)


# =====================================================================================================================
# Random baseline
# =====================================================================================================================
def random_predictions(gt: GroundTruth, per_video: int = 200, seed: int = 0,
                       durations: Mapping[str, float] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Chance-level detections to print next to a model's mAP.

    Per video, ``per_video`` segments (200, the detector's cap) with a uniformly random class, a length drawn from
    the ground-truth lengths of the whole set (so the baseline knows the typical length, nothing about where or
    what), a start uniform over the positions that keep the segment inside the video, and a uniform score.

    Args:
        gt: the evaluated ground truth (its classes and lengths; its boundaries are not used).
        per_video: detections per video.
        seed: numpy seed.
        durations: video lengths in seconds (default: the latest ground-truth end of each video, at least one
            ground-truth length).
    """
    rng = np.random.default_rng(seed)
    lengths = np.concatenate([s[:, 1] - s[:, 0] for s in gt.segments.values()] + [np.zeros(0)])
    if lengths.size == 0:
        raise ValueError('random_predictions needs ground truth with at least one instance')
    classes = gt.present_classes()
    out = {}
    for vid, segs in gt.segments.items():
        duration = float(durations[vid]) if durations and vid in durations else \
            float(max(segs[:, 1].max() if len(segs) else 0.0, lengths.max()))
        length = np.minimum(rng.choice(lengths, per_video), duration)
        start = rng.uniform(0, 1, per_video) * (duration - length)
        labels = rng.integers(len(classes), size=per_video)
        scores = rng.uniform(0, 1, per_video)
        out[vid] = [{'segment': [float(s), float(s + l)], 'label': classes[c], 'score': float(x)}
                    for s, l, c, x in zip(start, length, labels, scores)]
    return out


def random_baseline(gt: GroundTruth, tious: Sequence[float] = DEFAULT_TIOUS, ambiguous_aware: bool = False,
                    seeds: Sequence[int] = (0, 1, 2), per_video: int = 200,
                    durations: Mapping[str, float] | None = None) -> DetectionResult:
    """:func:`random_predictions` evaluated like a model, AP averaged over ``seeds``."""
    results = [evaluate_detection(gt, random_predictions(gt, per_video, s, durations), tious, ambiguous_aware)
               for s in seeds]
    first = results[0]
    first.ap = np.mean([r.ap for r in results], axis=0)
    return first


# =====================================================================================================================
# Reporting
# =====================================================================================================================
def format_table(result: DetectionResult, baseline: DetectionResult | None = None, per_class: bool = False) -> str:
    """Plain-text table: mAP (%) per tIoU and the average, optionally a random-baseline row and per-class rows."""
    def row(name: str, values: Iterable[float], mean: float) -> list[str]:
        return [name] + [f'{100 * v:.2f}' for v in values] + [f'{100 * mean:.2f}']

    rows = [row('mAP (%)', result.map_per_tiou, result.average_map)]
    if baseline is not None:
        rows.append(row('random (%)', baseline.map_per_tiou, baseline.average_map))
    if per_class:
        rows += [row(f'  {c}', result.ap[:, i], result.ap[:, i].mean()) for i, c in enumerate(result.classes)]
    header = ['tIoU'] + [f'{t:.2f}' for t in result.tious] + ['avg']
    return text_table(header, rows, right=[False] + [True] * (len(header) - 1))


def write_result_json(result: DetectionResult, path: str | os.PathLike, baseline: DetectionResult | None = None,
                      **extra: Any) -> dict[str, Any]:
    """Write ``result.to_dict()``, the ``extra`` keys and the random baseline's mAPs as JSON; returns the payload."""
    payload = {**result.to_dict(), **extra}
    if baseline is not None:
        payload['random_baseline'] = {'average_mAP': baseline.average_map,
                                      'mAP': {f'{t:.2f}': float(m) for t, m in zip(baseline.tious,
                                                                                   baseline.map_per_tiou)}}
    write_json_atomic(path, payload, indent=1)
    return payload


def plot_per_class_ap(result: DetectionResult, path: str | os.PathLike, baseline: DetectionResult | None = None,
                      title: str = 'THUMOS14-style detection') -> Path:
    """Bar chart of each evaluated class's AP averaged over the tIoU thresholds (the per-class share of the headline
    average mAP), with the average mAP and the random baseline's as lines."""
    from tasks.engine.plotting import per_class_bars

    span = f'{result.tious[0]:.1f}-{result.tious[-1]:.1f}' if len(result.tious) > 1 else f'{result.tious[0]:.2f}'
    lines = [(result.average_map, f'average mAP {result.average_map:.3f}', '#c44e52', '-')]
    if baseline is not None:
        lines.append((baseline.average_map, f'random predictions {baseline.average_map:.3f}', '#888888', '--'))
    return per_class_bars(path, result.classes, result.ap.mean(axis=0) if result.ap.size else [],
                          xlabel=f'AP averaged over tIoU {span}', title=f'{title}: AP per class', lines=lines)


def plot_map_vs_tiou(result: DetectionResult, path: str | os.PathLike, baseline: DetectionResult | None = None,
                     title: str = 'THUMOS14-style detection') -> Path:
    """Line chart of mAP (%) against the tIoU threshold (and the random baseline) as a PNG."""
    import matplotlib

    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    ax.plot(result.tious, 100 * result.map_per_tiou, 'o-', label=f'model (avg {100 * result.average_map:.1f})')
    if baseline is not None:
        ax.plot(baseline.tious, 100 * baseline.map_per_tiou, 's--', color='grey',
                label=f'random (avg {100 * baseline.average_map:.1f})')
    ax.set_xlabel('tIoU threshold')
    ax.set_ylabel('mAP (%)')
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return Path(path)


def evaluate_and_report(gt_file: str | os.PathLike, pred_file: str | os.PathLike, *, subset: str = 'test',
                        tious: Sequence[float] = DEFAULT_TIOUS, ambiguous_aware: bool = False,
                        ann_format: AnnFormat = 'auto', class_map: str | os.PathLike | None = None,
                        out: str | os.PathLike | None = None, plot: str | os.PathLike | None = None,
                        per_class: bool = False, with_baseline: bool = True,
                        echo: Callable[[str], None] = print) -> DetectionResult:
    """What ``tools/eval_tad.py`` does: evaluate a prediction json against one subset of an annotation json, print
    the table (with the random baseline), write the result JSON to ``out`` and the mAP-vs-tIoU chart to ``plot``
    (default: ``out`` with ``.png``) with the per-class chart beside it (``<plot stem>_per_class.png``).

    Raises:
        AnnotationError: a missing, unreadable or malformed file (naming the file and line).
        ValueError: inconsistent input (bad thresholds, a ground truth without instances).
    """
    fmt = detect_format(gt_file, ann_format)
    ann = read_annotations(gt_file, fmt, class_map)
    names = resolve_subset(ann, subset, fmt, gt_file)
    gt = GroundTruth.from_annotations(ann, names)
    result = evaluate_detection(gt, read_predictions(pred_file), tious, ambiguous_aware)
    durations = {v.video_id: v.duration for v in ann.subset(*names)}
    baseline = random_baseline(gt, tious, ambiguous_aware, durations=durations) if with_baseline else None
    ignored = (f' ({result.ignored["videos"]} on other videos and {result.ignored["classes"]} of other classes '
               'ignored)' if any(result.ignored.values()) else '')
    echo(f'{gt_file} subset {names}: {len(gt.videos)} videos, {gt.num_instances()} instances '
         f'({gt.removed} duplicates/empty removed), {len(result.classes)} classes; {result.num_predictions} '
         f'detections{ignored}' + ('; Ambiguous-aware' if ambiguous_aware else ''))
    echo(format_table(result, baseline, per_class=per_class))
    if out is not None:
        write_result_json(result, out, baseline, gt=str(gt_file), pred=str(pred_file), subset=names,
                          videos=len(gt.videos))
        echo(f'wrote {out}')
    plot = plot or (Path(out).with_suffix('.png') if out is not None else None)
    if plot is not None:
        echo(f'wrote {plot_map_vs_tiou(result, plot, baseline)}')
        per_class_png = Path(plot).with_name(f'{Path(plot).stem}_per_class.png')
        echo(f'wrote {plot_per_class_ap(result, per_class_png, baseline)}')
    return result
