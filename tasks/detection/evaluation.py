"""AVA frame-level mAP at IoU 0.5 in plain numpy: the official ActivityNet protocol and mmaction2's variant.

``protocol='official'`` reproduces the ActivityNet tool (``get_ava_performance.py``) step for step,
``protocol='mmaction2'`` reproduces mmaction2 1.1.0 ``ava_eval`` as its ``AVAMetric`` calls it; docs/ava.md#evaluation
lists where the two differ (per-keyframe cap, keyframes without ground truth, exclusions, invalid boxes, averaged
classes, precision). Detections are the official submission csv: ``video_id, timestamp, x1, y1, x2, y2, action_id,
score`` (normalised boxes, no header).
"""
from __future__ import annotations

import heapq
import math
import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from tasks.data.annotations import AnnotationError, AVABox, read_ava_csv, read_ava_excluded, read_ava_label_map
from tasks.data.annotations.common import csv_rows, parse_float, parse_int
from tasks.data.files import atomic_path, write_json_atomic
from tasks.engine.ap import interpolated_ap
from tasks.engine.report import text_table

__all__ = [
    'Protocol', 'Key', 'DetectionRow', 'AVAEvalResult', 'read_ava_detections', 'write_ava_detections',
    'read_ground_truth', 'evaluate_ava', 'evaluate_ava_files', 'oracle_baseline', 'oracle_detections', 'random_boxes',
    'random_detections', 'random_baseline', 'reference_maps', 'format_references', 'voc_average_precision', 'box_iou',
    'boxes_of', 'plot_per_class_ap', 'write_result_json', 'evaluate_and_report', 'OFFICIAL_MAX_DETECTIONS',
    'CATEGORY_RANGES',
]

Protocol = Literal['official', 'mmaction2']
#: ``(video_id, timestamp)``: one keyframe (the official tool's ``"%s,%04d"`` image key).
Key = tuple[str, int]

#: The official reader keeps at most this many (box, class) detections per keyframe (``read_csv(..., capacity=50)``).
OFFICIAL_MAX_DETECTIONS = 50
#: mmaction2's sub-mAPs by AVA action id (mmaction/evaluation/functional/ava_utils.py ``ava_eval``).
CATEGORY_RANGES = {'person_movement': (1, 14), 'object_manipulation': (15, 63), 'person_interaction': (64, 10 ** 9)}


class DetectionRow(NamedTuple):
    """One row of the official submission csv (box normalised to [0, 1])."""

    video_id: str
    timestamp: int
    x1: float
    y1: float
    x2: float
    y2: float
    action_id: int
    score: float


# ----------------------------------------------------------------------------------------------------------------------
# reading and writing the submission csv
# ----------------------------------------------------------------------------------------------------------------------

def read_ava_detections(path: str | os.PathLike) -> list[DetectionRow]:
    """Read an official submission csv: ``video_id, timestamp, x1, y1, x2, y2, action_id, score`` rows, no header.

    The reading rules are those of :func:`tasks.data.annotations.read_ava_csv` (integer timestamp and action id, finite
    numbers), but the eighth column is a float score instead of a person id, and boxes are not range-checked: a model
    may place a box slightly outside the frame, and the official tool takes it as it is.

    Raises:
        AnnotationError: a row without 8 fields, an empty video id, a non-integer timestamp / action id, or a
            coordinate / score that is not a finite number (naming the file and line).
    """
    rows = []
    for n, row in csv_rows(path):
        if len(row) != 8:
            raise AnnotationError(path, f'expected 8 fields (video_id,timestamp,x1,y1,x2,y2,action_id,score), '
                                        f'got {len(row)}', line=n)
        if not row[0]:
            raise AnnotationError(path, 'empty video_id', line=n)
        ts = parse_int(path, n, row[1], 'timestamp', minimum=0)
        x1, y1, x2, y2 = (parse_float(path, n, v, name) for v, name in zip(row[2:6], ('x1', 'y1', 'x2', 'y2')))
        action = parse_int(path, n, row[6], 'action_id', minimum=1)
        rows.append(DetectionRow(row[0], ts, x1, y1, x2, y2, action, parse_float(path, n, row[7], 'score')))
    return rows


def write_ava_detections(path: str | os.PathLike, rows: Iterable[DetectionRow]) -> int:
    """Write rows as the official submission csv (boxes with 4 decimals as mmaction2 writes them, scores with 6
    significant digits so that close scores do not become ties), atomically.

    Returns:
        The number of rows written.
    """
    count = 0
    with atomic_path(path) as tmp, open(tmp, 'w', encoding='utf-8') as f:
        for r in rows:
            f.write(f'{r.video_id},{r.timestamp:04d},{r.x1:.4f},{r.y1:.4f},{r.x2:.4f},{r.y2:.4f},{r.action_id},'
                    f'{r.score:.6g}\n')
            count += 1
    return count


# ----------------------------------------------------------------------------------------------------------------------
# the PASCAL pieces
# ----------------------------------------------------------------------------------------------------------------------

def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every pair: (N, 4) x (M, 4) ``[x1, y1, x2, y2]`` -> (N, M), areas without the VOC "+1"."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    with np.errstate(divide='ignore', invalid='ignore'):
        return inter / (area_a[:, None] + area_b[None, :] - inter)


def _match(det: np.ndarray, gt: np.ndarray, threshold: float) -> np.ndarray:
    """True/false positive flags of detections (N, 4), already in matching order, against one class's boxes (M, 4)."""
    tp = np.zeros(len(det), dtype=bool)
    if len(det) == 0 or len(gt) == 0:
        return tp
    iou = box_iou(det, gt)
    best = np.argmax(iou, axis=1)  # the first maximum on ties, as the reference
    taken = np.zeros(len(gt), dtype=bool)
    for i, g in enumerate(best):
        if iou[i, g] >= threshold and not taken[g]:
            tp[i] = taken[g] = True
    return tp


def voc_average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    """PASCAL VOC all-point AP of ranked detections; NaN when ``num_gt`` is 0, 0 when there is no detection.

    Detections are ranked by ``np.argsort(scores)[::-1]`` (the reference's order, ties included), then
    :func:`tasks.engine.ap.interpolated_ap`.
    """
    if num_gt == 0:
        return float('nan')
    if len(scores) == 0:
        return 0.0
    cum_tp = np.cumsum(tp[np.argsort(scores)[::-1]].astype(np.int64))
    return interpolated_ap(cum_tp / np.arange(1, len(cum_tp) + 1), cum_tp / num_gt)


# ----------------------------------------------------------------------------------------------------------------------
# the evaluator
# ----------------------------------------------------------------------------------------------------------------------

def _json_number(v: Any) -> Any:
    """NaN -> None (JSON ``null``); anything else as it is."""
    return None if isinstance(v, float) and math.isnan(v) else v


@dataclass
class AVAEvalResult:
    """Per-class AP and mAP of one evaluation.

    Attributes:
        protocol: ``'official'`` or ``'mmaction2'``.
        iou_threshold: the matching IoU.
        class_names: label-map id -> name, in label-map order.
        ap: id -> AP; NaN for a class left out of the mean (no ground truth; in mmaction2 also no detection).
        num_gt: id -> ground-truth instances counted as positives.
        num_detections: id -> detections that were scored (after the cap, exclusions and dropped keyframes).
        mAP: mean of the non-NaN APs (NaN if there is none).
        extras: protocol-specific numbers (mmaction2's sub-mAPs; counts of dropped detections).
    """

    protocol: str
    iou_threshold: float
    class_names: dict[int, str]
    ap: dict[int, float]
    num_gt: dict[int, int]
    num_detections: dict[int, int]
    mAP: float
    extras: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-ready dict (NaN written as ``null``)."""
        return {
            'protocol': self.protocol, 'iou_threshold': self.iou_threshold, 'mAP': _json_number(float(self.mAP)),
            'per_class': [{'id': c, 'name': n, 'ap': _json_number(float(self.ap[c])), 'num_gt': self.num_gt[c],
                           'num_detections': self.num_detections[c]} for c, n in self.class_names.items()],
            'extras': {k: _json_number(v) for k, v in self.extras.items()},
        }

    def format_table(self) -> str:
        """Per-class lines and the mean, as printed by ``tools/eval_ava.py``."""
        rows = [[str(c), '-' if math.isnan(self.ap[c]) else f'{self.ap[c]:.4f}', str(self.num_gt[c]),
                 str(self.num_detections[c]), name] for c, name in self.class_names.items()]
        table = text_table(['id', 'AP', 'GT', 'dets', 'class'], rows, right=[True, True, True, True, False],
                           rule=False)
        return (f'{table}\nframe mAP@{self.iou_threshold} ({self.protocol} protocol): {self.mAP:.4f} over '
                f'{sum(not math.isnan(v) for v in self.ap.values())} classes')


def _gt_instances(gt: Iterable[AVABox], classes: Collection[int]) -> dict[Key, list[tuple[tuple, int]]]:
    """keyframe -> [(box, action)], one per (box, action) of an evaluated class, in file order."""
    out: dict[Key, list[tuple[tuple, int]]] = {}
    for box in gt:
        pairs = [(box.box, a) for a in box.action_ids if a in classes]
        if pairs:
            out.setdefault((box.video_id, box.timestamp), []).extend(pairs)
    return out


def _keyframe_detections(detections: Iterable[DetectionRow], classes: Collection[int], cap: int | None
                         ) -> dict[Key, list[tuple]]:
    """keyframe -> [(score, action, y1, x1, y2, x2)] sorted by descending score, in first-appearance order of keys.

    The official reader keeps the ``cap`` best rows with a min-heap of these tuples and sorts the heap by -score
    (stable); doing exactly the same keeps the order of tied scores identical. mmaction2 (``cap=None``) sorts the
    rows in file order.
    """
    grouped: dict[Key, list[tuple]] = {}
    for r in detections:
        if r.action_id not in classes:
            continue
        entry = (float(r.score), int(r.action_id), float(r.y1), float(r.x1), float(r.y2), float(r.x2))
        if not all(map(math.isfinite, entry)):  # a NaN score would rank first, a NaN box match nothing
            raise ValueError(f'detection {r.video_id},{int(r.timestamp):04d} action {r.action_id}: score and box must '
                             f'be finite numbers, got score {r.score} box {[r.x1, r.y1, r.x2, r.y2]}')
        items = grouped.setdefault((r.video_id, int(r.timestamp)), [])
        if cap is None:
            items.append(entry)
        elif len(items) < cap:
            heapq.heappush(items, entry)
        elif entry[0] > items[0][0]:
            heapq.heapreplace(items, entry)
    return {k: sorted(v, key=lambda e: -e[0]) for k, v in grouped.items()}


def _keyframe_arrays(key: Key, entries: list[tuple], official: bool
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One keyframe's detections as (N,) scores, (N,) labels and (N, 4) ``[x1, y1, x2, y2]`` boxes, and how many
    invalid boxes were dropped: the official per-image evaluator drops x2 <= x1 or y2 <= y1 before matching;
    mmaction2's BoxList refuses x2 < x1 or y2 < y1, so they are an error naming the keyframe."""
    dtype = np.float64 if official else np.float32
    scores = np.array([e[0] for e in entries], dtype=dtype)
    labels = np.array([e[1] for e in entries], dtype=np.int64)
    # back to [x1, y1, x2, y2] (the tuples keep the official [y1, x1, y2, x2] order for the heap's tie-breaking)
    boxes = np.array([(e[3], e[2], e[5], e[4]) for e in entries], dtype=dtype)
    if official:
        valid = (boxes[:, 0] < boxes[:, 2]) & (boxes[:, 1] < boxes[:, 3])
        return scores[valid], labels[valid], boxes[valid], int((~valid).sum())
    reversed_boxes = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if reversed_boxes.any():
        raise ValueError(f'keyframe {key[0]},{key[1]:04d}: detection box {boxes[reversed_boxes][0].tolist()} has '
                         'x2 < x1 or y2 < y1, which the mmaction2 protocol does not accept (the official one drops '
                         'such boxes)')
    return scores, labels, boxes, 0


def _match_keyframes(visit: Sequence[Key], det_by_key: Mapping[Key, list[tuple]],
                     gt_by_key: Mapping[Key, list[tuple[tuple, int]]], label_map: Mapping[int, str], official: bool,
                     iou_threshold: float) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], int]:
    """Per class, the scores and true-positive flags of its detections on the ``visit`` keyframes, in visiting
    order, and the number of invalid boxes dropped."""
    dtype = np.float64 if official else np.float32
    scores: dict[int, list[np.ndarray]] = {c: [np.zeros(0, dtype=dtype)] for c in label_map}
    flags: dict[int, list[np.ndarray]] = {c: [np.zeros(0, dtype=bool)] for c in label_map}
    invalid = 0
    for key in visit:
        if not det_by_key.get(key):
            continue
        det_scores, det_labels, det_boxes, dropped = _keyframe_arrays(key, det_by_key[key], official)
        invalid += dropped
        pairs = gt_by_key.get(key, [])
        gt_boxes = np.array([b for b, _ in pairs], dtype=dtype).reshape(-1, 4)
        gt_labels = np.array([a for _, a in pairs], dtype=np.int64)
        for c in np.unique(det_labels).tolist():
            sel = det_labels == c
            scores[c].append(det_scores[sel])
            flags[c].append(_match(det_boxes[sel], gt_boxes[gt_labels == c], iou_threshold))
    return ({c: np.concatenate(s) for c, s in scores.items()}, {c: np.concatenate(f) for c, f in flags.items()},
            invalid)


def evaluate_ava(gt: Sequence[AVABox], detections: Iterable[DetectionRow], label_map: Mapping[int, str],
                 excluded: Collection[Key] = (), *, protocol: Protocol = 'official', iou_threshold: float = 0.5,
                 max_detections: int | None = OFFICIAL_MAX_DETECTIONS) -> AVAEvalResult:
    """Frame-level AP per label-map class and their mean.

    Per class, the detections of all keyframes are pooled; inside its keyframe each one, by descending score, takes
    the ground-truth box of its class it overlaps most (the first on ties) if that IoU is >= ``iou_threshold`` and
    the box is still free, else it is a false positive. Keyframes are visited in detection-file order (official) or
    ground-truth-file order (mmaction2), which fixes the ranking of tied scores as the reference tools do.

    Args:
        gt: ground-truth boxes (:func:`tasks.data.annotations.read_ava_csv`); rows of other classes are ignored.
            The reader merges a box's rows, so a duplicated (box, action) row counts once (the official
            reader counts it twice).
        detections: submission rows (:func:`read_ava_detections`); rows of other classes are ignored, a NaN or
            infinite score or coordinate is a ValueError naming the row (docs/ava.md#evaluation).
        label_map: evaluated class id -> name (:func:`tasks.data.annotations.read_ava_label_map`).
        excluded: excluded ``(video_id, timestamp)`` keyframes (:func:`tasks.data.annotations.read_ava_excluded`).
        protocol: ``'official'`` (ActivityNet) or ``'mmaction2'`` (docs/ava.md#evaluation).
        iou_threshold: matching IoU (0.5 for AVA).
        max_detections: the official per-keyframe cap (50); ``None`` for none. Unused by ``'mmaction2'``.
    """
    if protocol not in ('official', 'mmaction2'):
        raise ValueError(f"protocol must be 'official' or 'mmaction2', got {protocol!r}")
    if not label_map:
        raise ValueError('label_map is empty')
    excluded = set(excluded)
    official = protocol == 'official'
    gt_by_key = _gt_instances(gt, set(label_map))
    det_by_key = _keyframe_detections(detections, set(label_map), max_detections if official else None)
    num_gt = dict.fromkeys(label_map, 0)
    for key, pairs in gt_by_key.items():
        if not (official and key in excluded):  # mmaction2 counts the positives of excluded keyframes all the same
            for _, a in pairs:
                num_gt[a] += 1
    # official: keyframes without ground truth are matched against nothing; mmaction2 never looks at them
    visit = [k for k in (det_by_key if official else gt_by_key) if k not in excluded]
    scores, flags, invalid = _match_keyframes(visit, det_by_key, gt_by_key, label_map, official, iou_threshold)
    # mmaction2 only averages classes that were detected at least once
    ap = {c: float('nan') if not official and len(scores[c]) == 0 else
          voc_average_precision(scores[c], flags[c], num_gt[c]) for c in label_map}
    valid_ap = [v for v in ap.values() if not math.isnan(v)]
    extras: dict[str, float] = {'num_keyframes_gt': sum(1 for k in gt_by_key if k not in excluded),
                                'num_keyframes_scored': len(visit)}
    if official:
        extras['num_invalid_boxes_dropped'] = invalid
    else:
        extras['num_detections_on_keyframes_without_gt'] = sum(
            len(v) for k, v in det_by_key.items() if k not in gt_by_key and k not in excluded)
        for name, (lo, hi) in CATEGORY_RANGES.items():
            vals = [v for c, v in ap.items() if lo <= c <= hi and not math.isnan(v)]
            extras[name] = float(np.mean(vals)) if vals else float('nan')
    return AVAEvalResult(protocol=protocol, iou_threshold=iou_threshold, class_names=dict(label_map), ap=ap,
                         num_gt=num_gt, num_detections={c: len(s) for c, s in scores.items()},
                         mAP=float(np.mean(valid_ap)) if valid_ap else float('nan'), extras=extras)


def read_ground_truth(gt_file: str | os.PathLike, label_file: str | os.PathLike,
                      exclude_file: str | os.PathLike | None = None
                      ) -> tuple[dict[int, str], list[AVABox], set[Key]]:
    """The label map (pbtxt), the ground-truth boxes of its classes (csv) and the excluded keyframes (csv; none
    without a file)."""
    label_map = read_ava_label_map(label_file)
    gt = read_ava_csv(gt_file, keep_ids=set(label_map))
    return label_map, gt, read_ava_excluded(exclude_file) if exclude_file is not None else set()


def evaluate_ava_files(gt_file: str | os.PathLike, pred_file: str | os.PathLike, label_file: str | os.PathLike,
                       exclude_file: str | os.PathLike | None = None, *, protocol: Protocol = 'official',
                       iou_threshold: float = 0.5) -> AVAEvalResult:
    """:func:`evaluate_ava` on files: ground-truth csv, submission csv, label-map pbtxt, excluded-timestamps csv."""
    label_map, gt, excluded = read_ground_truth(gt_file, label_file, exclude_file)
    return evaluate_ava(gt, read_ava_detections(pred_file), label_map, excluded, protocol=protocol,
                        iou_threshold=iou_threshold)


# ----------------------------------------------------------------------------------------------------------------------
# random-detection baseline
# ----------------------------------------------------------------------------------------------------------------------

def random_detections(boxes: Mapping[Key, np.ndarray], class_ids: Sequence[int], rng: np.random.Generator
                      ) -> list[DetectionRow]:
    """Every box of every keyframe with every class, scored uniformly at random.

    With the boxes a model was given (its proposals), this is a detector that localises as well as the model but
    knows nothing about actions: its AP for a class is roughly the share of boxes that show the class. Printing it
    next to the model's mAP tells how much of the mAP comes from recognising actions.
    """
    rows = []
    for (vid, ts), bxs in boxes.items():
        bxs = np.asarray(bxs, dtype=np.float64).reshape(-1, 4)
        draws = rng.random((len(bxs), len(class_ids)))
        for i, b in enumerate(bxs):
            rows += [DetectionRow(vid, ts, *map(float, b), int(c), float(draws[i, j])) for j, c in enumerate(class_ids)]
    return rows


def random_boxes(boxes: Mapping[Key, np.ndarray], rng: np.random.Generator) -> dict[Key, np.ndarray]:
    """As many boxes per keyframe as ``boxes`` holds, placed at random: each side's two edges are the sorted pair of
    two uniform draws on [0, 1] (normalised coordinates), so a box knows nothing of where people are.

    Returns:
        {(video_id, timestamp): (n, 4) float64 x1, y1, x2, y2}.
    """
    out = {}
    for key, bxs in boxes.items():
        n = len(np.asarray(bxs).reshape(-1, 4))
        xs, ys = np.sort(rng.random((n, 2)), axis=1), np.sort(rng.random((n, 2)), axis=1)
        out[key] = np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], axis=1)
    return out


def random_baseline(gt: Sequence[AVABox], boxes: Mapping[Key, np.ndarray], label_map: Mapping[int, str],
                    excluded: Collection[Key] = (), *, protocol: Protocol = 'official',
                    seeds: Iterable[int] = (0, 1, 2), iou_threshold: float = 0.5,
                    place_randomly: bool = False) -> tuple[float, float]:
    """Mean and standard deviation over ``seeds`` of the mAP of :func:`random_detections` on ``boxes``.

    With ``place_randomly`` the boxes are first replaced by :func:`random_boxes` (the same number per keyframe):
    detections that neither localise nor recognise, the floor of a detector that has learnt nothing. Without it,
    the boxes are the model's own (its proposals), which isolates what recognising the actions adds.
    """
    maps = []
    for s in seeds:
        rng = np.random.default_rng(s)
        placed = random_boxes(boxes, rng) if place_randomly else boxes
        maps.append(evaluate_ava(gt, random_detections(placed, list(label_map), rng), label_map, excluded,
                                 protocol=protocol, iou_threshold=iou_threshold).mAP)
    if not maps:
        raise ValueError('seeds is empty')
    return float(np.mean(maps)), float(np.std(maps))


def oracle_detections(gt: Sequence[AVABox], boxes: Mapping[Key, np.ndarray], class_ids: Sequence[int], *,
                      iou_threshold: float = 0.5) -> list[DetectionRow]:
    """Every box of every keyframe with every class, scored 1 if it is the box that finds a true box of that class,
    else 0.

    A detector that recognises every action perfectly but keeps the model's boxes (its proposals): its mAP is the
    ceiling those boxes allow. Below 1 when the proposals miss people (AVA's test proposals, filtered at score 0.9,
    miss some; so do the synthetic benchmark's). Each true box is claimed by one box only, the best-overlapping
    first (the evaluator's matching), so a second box on the same person scores 0 instead of counting as a false
    positive.
    """
    truth = _gt_instances(gt, set(class_ids))
    rows = []
    for (vid, ts), bxs in boxes.items():
        bxs = np.asarray(bxs, dtype=np.float64).reshape(-1, 4)
        pairs = truth.get((vid, ts), [])
        for c in class_ids:
            true_boxes = np.array([b for b, a in pairs if a == c], dtype=np.float64).reshape(-1, 4)
            hit = np.zeros(len(bxs), dtype=bool)
            if len(true_boxes) and len(bxs):
                order = np.argsort(-box_iou(bxs, true_boxes).max(axis=1), kind='stable')
                hit[order] = _match(bxs[order], true_boxes, iou_threshold)
            rows += [DetectionRow(vid, ts, *map(float, b), int(c), float(h)) for b, h in zip(bxs, hit)]
    return rows


def oracle_baseline(gt: Sequence[AVABox], boxes: Mapping[Key, np.ndarray], label_map: Mapping[int, str],
                    excluded: Collection[Key] = (), *, protocol: Protocol = 'official',
                    iou_threshold: float = 0.5) -> float:
    """The mAP of :func:`oracle_detections` on ``boxes``: the most any action scores on these boxes can reach."""
    rows = oracle_detections(gt, boxes, list(label_map), iou_threshold=iou_threshold)
    return evaluate_ava(gt, rows, label_map, excluded, protocol=protocol, iou_threshold=iou_threshold).mAP


def reference_maps(gt: Sequence[AVABox], boxes: Mapping[Key, np.ndarray], label_map: Mapping[int, str],
                   excluded: Collection[Key] = (), *, protocol: Protocol = 'official', seeds: Iterable[int] = (0, 1, 2),
                   iou_threshold: float = 0.5) -> dict[str, float]:
    """The references a submission's mAP is read against, keyed as in its result JSON.

    ``random_detections_mAP`` (and ``_std``): :func:`random_baseline` on ``boxes``; ``random_boxes_mAP`` (and
    ``_std``): the same on as many randomly placed boxes; ``oracle_scores_mAP``: :func:`oracle_baseline` on ``boxes``.
    The random ones are NaN when ``seeds`` is empty.
    """
    seeds = list(seeds)
    refs = dict.fromkeys(('random_detections_mAP', 'random_detections_mAP_std', 'random_boxes_mAP',
                          'random_boxes_mAP_std'), float('nan'))
    if seeds:
        for key, place_randomly in (('random_detections_mAP', False), ('random_boxes_mAP', True)):
            refs[key], refs[f'{key}_std'] = random_baseline(gt, boxes, label_map, excluded, protocol=protocol,
                                                            seeds=seeds, iou_threshold=iou_threshold,
                                                            place_randomly=place_randomly)
    refs['oracle_scores_mAP'] = oracle_baseline(gt, boxes, label_map, excluded, protocol=protocol,
                                                iou_threshold=iou_threshold)
    return refs


def format_references(refs: Mapping[str, float]) -> str:
    """The lines that print :func:`reference_maps` next to a model's mAP (the random ones only when computed)."""
    lines = []
    if not math.isnan(refs['random_detections_mAP']):
        lines += [f'random detections on the same boxes: mAP {refs["random_detections_mAP"]:.4f} '
                  f'+- {refs["random_detections_mAP_std"]:.4f}',
                  f'random detections on randomly placed boxes: mAP {refs["random_boxes_mAP"]:.4f} '
                  f'+- {refs["random_boxes_mAP_std"]:.4f}']
    lines.append(f'perfect action scores on the same boxes (their ceiling): mAP {refs["oracle_scores_mAP"]:.4f}')
    return '\n'.join(lines)


def boxes_of(detections: Iterable[DetectionRow]) -> dict[Key, np.ndarray]:
    """The distinct boxes of each keyframe of a submission (its proposals), for :func:`random_baseline`."""
    seen: dict[Key, dict[tuple, None]] = {}
    for r in detections:
        seen.setdefault((r.video_id, r.timestamp), {})[(r.x1, r.y1, r.x2, r.y2)] = None
    return {k: np.array(list(v), dtype=np.float64).reshape(-1, 4) for k, v in seen.items()}



# ----------------------------------------------------------------------------------------------------------------------
# outputs
# ----------------------------------------------------------------------------------------------------------------------

def plot_per_class_ap(result: AVAEvalResult, path: str | os.PathLike, *, title: str | None = None,
                      baseline: float | None = None, ceiling: float | None = None) -> None:
    """Horizontal bar chart of the per-class AP (label-map order), with the mAP (and the random-score baseline and
    the perfect-score ceiling on the same boxes) as lines."""
    from tasks.engine.plotting import per_class_bars

    ids = list(result.class_names)
    missing = [math.isnan(result.ap[c]) for c in ids]  # classes left out of the mean
    lines = [(result.mAP, f'mAP {result.mAP:.3f}', '#c44e52', '-')]
    if baseline is not None and not math.isnan(baseline):
        lines.append((baseline, f'random scores on the same boxes {baseline:.3f}', '#888888', '--'))
    if ceiling is not None and not math.isnan(ceiling):
        lines.append((ceiling, f'perfect scores {ceiling:.3f}', '#55a868', ':'))
    per_class_bars(path, [f'{result.class_names[c]} ({c})' + (' -' if m else '') for c, m in zip(ids, missing)],
                   [0.0 if m else result.ap[c] for c, m in zip(ids, missing)], xlabel=f'AP@{result.iou_threshold}',
                   title=title or f'AVA frame AP per class ({result.protocol} protocol)', lines=lines, missing=missing)


def write_result_json(result: AVAEvalResult, path: str | os.PathLike, **extra: Any) -> dict:
    """Write ``result.to_dict()`` (plus ``extra`` keys, NaN as ``null``) as JSON, atomically; returns what was
    written."""
    data = {**result.to_dict(), **{k: _json_number(v) for k, v in extra.items()}}
    write_json_atomic(path, data, indent=2, allow_nan=False)
    return data


def evaluate_and_report(gt_file: str | os.PathLike, pred_file: str | os.PathLike, label_file: str | os.PathLike,
                        exclude_file: str | os.PathLike | None = None, *, protocol: Protocol = 'official',
                        iou_threshold: float = 0.5, baseline_seeds: int = 3, out: str | os.PathLike | None = None,
                        plot: str | os.PathLike | None = None, echo: Callable[[str], None] = print) -> AVAEvalResult:
    """What ``tools/eval_ava.py`` does: evaluate a submission csv, print the per-class table and the references of
    :func:`reference_maps` on the submission's boxes (the random ones only with ``baseline_seeds > 0``), write the
    result JSON to ``out`` and the per-class chart to ``plot`` (default: ``out`` with ``.png``).

    Raises:
        AnnotationError: a missing or malformed file (naming the file and line).
    """
    label_map, gt, excluded = read_ground_truth(gt_file, label_file, exclude_file)
    detections = read_ava_detections(pred_file)
    result = evaluate_ava(gt, detections, label_map, excluded, protocol=protocol, iou_threshold=iou_threshold)
    refs = reference_maps(gt, boxes_of(detections), label_map, excluded, protocol=protocol,
                          seeds=range(baseline_seeds), iou_threshold=iou_threshold)
    echo(f'{result.format_table()}\n{format_references(refs)}')
    if out is not None:
        kept = refs if baseline_seeds > 0 else {'oracle_scores_mAP': refs['oracle_scores_mAP']}
        write_result_json(result, out, gt=str(gt_file), pred=str(pred_file), label_map=str(label_file),
                          exclude=None if exclude_file is None else str(exclude_file), **kept)
        echo(f'wrote {out}')
    plot = plot or (Path(out).with_suffix('.png') if out is not None else None)
    if plot is not None:
        plot_per_class_ap(result, plot, baseline=refs['random_detections_mAP'], ceiling=refs['oracle_scores_mAP'])
        echo(f'wrote {plot}')
    return result
