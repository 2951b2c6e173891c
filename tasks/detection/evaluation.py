"""AVA frame-level mAP at IoU 0.5 in plain numpy: the official ActivityNet protocol and mmaction2's variant.

The official tool is activitynet/ActivityNet ``Evaluation/get_ava_performance.py`` on top of the TF object-detection
``PascalDetectionEvaluator`` (docs/ava.md#evaluation). For every class of the label map it pools the detections of all
keyframes, marks each one true or false positive by greedy matching inside its keyframe, and computes the PASCAL VOC
all-point AP; the mAP is the mean over the classes that have ground truth. Detections are the official submission
csv: ``video_id, timestamp, x1, y1, x2, y2, action_id, score`` (normalised boxes, no header).

``protocol='official'`` reproduces that tool step for step, ``protocol='mmaction2'`` reproduces mmaction2 1.1.0
``mmaction.evaluation.functional.ava_eval`` (called by ``AVAMetric`` with ``ignore_empty_frames=True``). Side by side:

==============================  ==========================================  ==========================================
step                            ``official``                                ``mmaction2``
==============================  ==========================================  ==========================================
classes                         label-map ids; other rows ignored           same
detections per keyframe         top 50 (box, class) rows by score (a        all
                                min-heap of capacity 50, as the tool)
keyframes without ground truth  their detections count as false positives   their detections are dropped
excluded keyframes              dropped from ground truth and detections    dropped from detections and matching, but
                                                                            their ground truth still counts in the
                                                                            number of positives
empty or reversed boxes         detections with x2 <= x1 or y2 <= y1 are    empty boxes (x2 == x1) are false
                                dropped before matching                     positives; reversed ones (x2 < x1) stop
                                                                            the evaluation with an error
classes averaged into the mAP   every class with ground truth (AP 0 when    only classes with ground truth *and* at
                                it has no detection)                        least one scored detection
numbers                         float64                                     float32 boxes and scores
extra outputs                   --                                          sub-mAPs: pose (id <= 14), object
                                                                            (15-63), interaction (>= 64)
==============================  ==========================================  ==========================================

Common to both: a detection matches the ground-truth box of its class with which it has the highest IoU in its
keyframe (the first one on ties); it is a true positive if that IoU is >= 0.5 and the box is not matched yet (a
duplicate is a false positive; it does not fall back to the second-best box). Within a keyframe detections are
matched in descending score order; across keyframes, per class, they are ranked by ``np.argsort(scores)[::-1]`` in
the order the keyframes were visited (detection-file order officially, ground-truth-file order in mmaction2), which
fixes the order of tied scores exactly as the reference code does. AP is the VOC all-point area (precision made
monotone from the right); a class without ground truth has AP NaN and is left out of the mean.

One documented difference from the official reader: ground truth is read with :func:`tasks.data.annotations.read_ava_csv`,
which merges the rows of a box, so an exactly duplicated ``(box, action)`` row counts once here and twice there.

The metric depends a lot on the protocol: mmaction2's variant ignores false positives on keyframes without ground
truth and drops classes the model never predicts, both of which raise the number (mmaction2 issue #1268).
"""
from __future__ import annotations

import heapq
import json
import math
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from tasks.data.annotations import (AnnotationError, AVABox, _csv_rows, _float, _int, read_ava_csv, read_ava_excluded,
                               read_ava_label_map)

__all__ = [
    'Protocol', 'Key', 'DetectionRow', 'AVAEvalResult', 'read_ava_detections', 'write_ava_detections',
    'evaluate_ava', 'evaluate_ava_files', 'oracle_baseline', 'oracle_detections', 'random_boxes', 'random_detections',
    'random_baseline', 'reference_maps', 'voc_average_precision', 'box_iou', 'boxes_of', 'plot_per_class_ap', 'write_result_json',
    'OFFICIAL_MAX_DETECTIONS', 'CATEGORY_RANGES',
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
    for n, row in _csv_rows(path):
        if len(row) != 8:
            raise AnnotationError(path, f'expected 8 fields (video_id,timestamp,x1,y1,x2,y2,action_id,score), '
                                        f'got {len(row)}', line=n)
        if not row[0]:
            raise AnnotationError(path, 'empty video_id', line=n)
        ts = _int(path, n, row[1], 'timestamp', minimum=0)
        x1, y1, x2, y2 = (_float(path, n, v, name) for v, name in zip(row[2:6], ('x1', 'y1', 'x2', 'y2')))
        action = _int(path, n, row[6], 'action_id', minimum=1)
        rows.append(DetectionRow(row[0], ts, x1, y1, x2, y2, action, _float(path, n, row[7], 'score')))
    return rows


def write_ava_detections(path: str | os.PathLike, rows: Iterable[DetectionRow]) -> int:
    """Write rows as the official submission csv (boxes with 4 decimals as mmaction2 writes them, scores with 6
    significant digits so that close scores do not become ties). Written under a temporary name, then renamed.

    Returns:
        The number of rows written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    count = 0
    with open(tmp, 'w', encoding='utf-8') as f:
        for r in rows:
            f.write(f'{r.video_id},{r.timestamp:04d},{r.x1:.4f},{r.y1:.4f},{r.x2:.4f},{r.y2:.4f},{r.action_id},'
                    f'{r.score:.6g}\n')
            count += 1
    os.replace(tmp, path)
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

    Detections are ranked by ``np.argsort(scores)[::-1]`` (the reference's order, ties included). Precision is made
    non-increasing from the right and summed over the recall steps.
    """
    if num_gt == 0:
        return float('nan')
    if len(scores) == 0:
        return 0.0
    order = np.argsort(scores)[::-1]
    hits = tp[order].astype(np.int64)
    cum_tp = np.cumsum(hits)
    precision = cum_tp / np.arange(1, len(hits) + 1)
    recall = cum_tp / num_gt
    precision = np.concatenate([[0.0], precision, [0.0]])
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))


# ----------------------------------------------------------------------------------------------------------------------
# the evaluator
# ----------------------------------------------------------------------------------------------------------------------

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
        def num(v: float) -> float | None:
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
        return {
            'protocol': self.protocol, 'iou_threshold': self.iou_threshold, 'mAP': num(self.mAP),
            'per_class': [{'id': c, 'name': n, 'ap': num(self.ap[c]), 'num_gt': self.num_gt[c],
                           'num_detections': self.num_detections[c]} for c, n in self.class_names.items()],
            'extras': {k: (num(v) if isinstance(v, float) else v) for k, v in self.extras.items()},
        }

    def format_table(self) -> str:
        """Per-class lines and the mean, as printed by ``tools/eval_ava.py``."""
        lines = [f'{"id":>4}  {"AP":>7}  {"GT":>6}  {"dets":>7}  class']
        for c, name in self.class_names.items():
            ap = self.ap[c]
            lines.append(f'{c:>4}  {"-" if math.isnan(ap) else f"{ap:.4f}":>7}  {self.num_gt[c]:>6}  '
                         f'{self.num_detections[c]:>7}  {name}')
        lines.append(f'frame mAP@{self.iou_threshold} ({self.protocol} protocol): {self.mAP:.4f} over '
                     f'{sum(not math.isnan(v) for v in self.ap.values())} classes')
        return '\n'.join(lines)


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
        items = grouped.setdefault((r.video_id, int(r.timestamp)), [])
        if cap is None:
            items.append(entry)
        elif len(items) < cap:
            heapq.heappush(items, entry)
        elif entry[0] > items[0][0]:
            heapq.heapreplace(items, entry)
    return {k: sorted(v, key=lambda e: -e[0]) for k, v in grouped.items()}


def evaluate_ava(gt: Sequence[AVABox], detections: Iterable[DetectionRow], label_map: Mapping[int, str],
                 excluded: Collection[Key] = (), *, protocol: Protocol = 'official', iou_threshold: float = 0.5,
                 max_detections: int | None = OFFICIAL_MAX_DETECTIONS) -> AVAEvalResult:
    """Frame-level AP per label-map class and their mean.

    Args:
        gt: ground-truth boxes (:func:`tasks.data.annotations.read_ava_csv`); rows of other classes are ignored.
        detections: submission rows (:func:`read_ava_detections`); rows of other classes are ignored.
        label_map: evaluated class id -> name (:func:`tasks.data.annotations.read_ava_label_map`).
        excluded: excluded ``(video_id, timestamp)`` keyframes (:func:`tasks.data.annotations.read_ava_excluded`).
        protocol: ``'official'`` (ActivityNet) or ``'mmaction2'``; see the module docstring.
        iou_threshold: matching IoU (0.5 for AVA).
        max_detections: the official per-keyframe cap (50); ``None`` for none. Unused by ``'mmaction2'``.

    Returns:
        :class:`AVAEvalResult`.
    """
    if protocol not in ('official', 'mmaction2'):
        raise ValueError(f"protocol must be 'official' or 'mmaction2', got {protocol!r}")
    if not label_map:
        raise ValueError('label_map is empty')
    classes = set(label_map)
    excluded = set(excluded)
    official = protocol == 'official'
    dtype = np.float64 if official else np.float32
    gt_by_key = _gt_instances(gt, classes)
    det_by_key = _keyframe_detections(detections, classes, max_detections if official else None)

    num_gt = dict.fromkeys(label_map, 0)
    for key, pairs in gt_by_key.items():
        if official and key in excluded:  # mmaction2 counts the positives of excluded keyframes all the same
            continue
        for _, a in pairs:
            num_gt[a] += 1

    if official:  # detection keyframes in file order; keyframes without ground truth are matched against nothing
        visit = [k for k in det_by_key if k not in excluded]
    else:  # ground-truth keyframes in file order; detections elsewhere are never looked at
        visit = [k for k in gt_by_key if k not in excluded]
    scores: dict[int, list[np.ndarray]] = {c: [] for c in label_map}
    flags: dict[int, list[np.ndarray]] = {c: [] for c in label_map}
    invalid = 0
    for key in visit:
        entries = det_by_key.get(key, [])
        if not entries:
            continue
        det_scores = np.array([e[0] for e in entries], dtype=dtype)
        det_labels = np.array([e[1] for e in entries], dtype=np.int64)
        # back to [x1, y1, x2, y2] (the tuples keep the official [y1, x1, y2, x2] order for the heap's tie-breaking)
        det_boxes = np.array([(e[3], e[2], e[5], e[4]) for e in entries], dtype=dtype)
        if official:  # the per-image evaluator drops boxes with x2 <= x1 or y2 <= y1 before matching
            valid = (det_boxes[:, 0] < det_boxes[:, 2]) & (det_boxes[:, 1] < det_boxes[:, 3])
            invalid += int((~valid).sum())
            det_scores, det_labels, det_boxes = det_scores[valid], det_labels[valid], det_boxes[valid]
        elif np.any((det_boxes[:, 2] < det_boxes[:, 0]) | (det_boxes[:, 3] < det_boxes[:, 1])):
            # mmaction2's BoxList refuses them ("Invalid box data"); say which keyframe instead
            bad = det_boxes[(det_boxes[:, 2] < det_boxes[:, 0]) | (det_boxes[:, 3] < det_boxes[:, 1])][0]
            raise ValueError(f'keyframe {key[0]},{key[1]:04d}: detection box {bad.tolist()} has x2 < x1 or y2 < y1, '
                             'which the mmaction2 protocol does not accept (the official one drops such boxes)')
        pairs = gt_by_key.get(key, [])
        gt_boxes = np.array([b for b, _ in pairs], dtype=dtype).reshape(-1, 4)
        gt_labels = np.array([a for _, a in pairs], dtype=np.int64)
        for c in np.unique(det_labels).tolist():
            sel = det_labels == c
            scores[c].append(det_scores[sel])
            flags[c].append(_match(det_boxes[sel], gt_boxes[gt_labels == c], iou_threshold))

    ap: dict[int, float] = {}
    num_det: dict[int, int] = {}
    for c in label_map:
        s = np.concatenate(scores[c]) if scores[c] else np.zeros(0, dtype=dtype)
        f = np.concatenate(flags[c]) if flags[c] else np.zeros(0, dtype=bool)
        num_det[c] = len(s)
        if not official and len(s) == 0:
            ap[c] = float('nan')  # mmaction2 only averages classes that were detected at least once
        else:
            ap[c] = voc_average_precision(s, f, num_gt[c])
    valid_ap = [v for v in ap.values() if not math.isnan(v)]
    mean = float(np.mean(valid_ap)) if valid_ap else float('nan')
    extras: dict[str, float] = {
        'num_keyframes_gt': sum(1 for k in gt_by_key if k not in excluded),
        'num_keyframes_scored': len(visit),
    }
    if official:
        extras['num_invalid_boxes_dropped'] = invalid
    else:
        extras['num_detections_on_keyframes_without_gt'] = sum(
            len(v) for k, v in det_by_key.items() if k not in gt_by_key and k not in excluded)
        for name, (lo, hi) in CATEGORY_RANGES.items():
            vals = [v for c, v in ap.items() if lo <= c <= hi and not math.isnan(v)]
            extras[name] = float(np.mean(vals)) if vals else float('nan')
    return AVAEvalResult(protocol=protocol, iou_threshold=iou_threshold, class_names=dict(label_map), ap=ap,
                         num_gt=num_gt, num_detections=num_det, mAP=mean, extras=extras)


def evaluate_ava_files(gt_file: str | os.PathLike, pred_file: str | os.PathLike, label_file: str | os.PathLike,
                       exclude_file: str | os.PathLike | None = None, *, protocol: Protocol = 'official',
                       iou_threshold: float = 0.5) -> AVAEvalResult:
    """:func:`evaluate_ava` on files: ground-truth csv, submission csv, label-map pbtxt, excluded-timestamps csv."""
    label_map = read_ava_label_map(label_file)
    gt = read_ava_csv(gt_file, keep_ids=set(label_map))
    excluded = read_ava_excluded(exclude_file) if exclude_file is not None else set()
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


def write_result_json(result: AVAEvalResult, path: str | os.PathLike, **extra) -> dict:
    """Write ``result.to_dict()`` (plus ``extra`` keys) as JSON; returns what was written."""
    data = {**result.to_dict(), **extra}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + '\n', encoding='utf-8')
    return data

