"""Gaussian Soft-NMS for 1-D segments, per class: ActionFormer's THUMOS14 post-processing
(docs/thumos14.md#actionformer) in numpy, without a compiled extension to rebuild after every torch update.

Soft-NMS (Bodla et al., 2017) lowers the scores of a kept segment's neighbours instead of deleting them: repeatedly
keep the highest-scoring remaining segment and scale every other remaining score by ``exp(-IoU^2 / sigma)``.
Segments are ``[start, end]`` in any unit (IoU does not depend on it; ActionFormer works in feature rows).
"""
from __future__ import annotations

import numpy as np

__all__ = ['soft_nms_1d', 'batched_soft_nms']


def _iou(seg: np.ndarray, others: np.ndarray) -> np.ndarray:
    inter = np.clip(np.minimum(seg[1], others[:, 1]) - np.maximum(seg[0], others[:, 0]), 0, None)
    union = (seg[1] - seg[0]) + (others[:, 1] - others[:, 0]) - inter
    return inter / np.maximum(union, 1e-12)


def soft_nms_1d(segments: np.ndarray, scores: np.ndarray, sigma: float = 0.5, min_score: float = 0.001,
                max_num: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian Soft-NMS of one class.

    Args:
        segments: (N, 2) [start, end].
        scores: (N,) scores.
        sigma: Gaussian width; a neighbour with IoU ``u`` to a kept segment is scaled by ``exp(-u^2 / sigma)``.
        min_score: segments scoring below this (initially or after decay) are dropped.
        max_num: stop after this many kept segments. The kept scores come out in non-increasing order (every
            decay only lowers scores), so the first ``max_num`` are exactly those a full run would rank first.

    Returns:
        ``(indices (K,) int64 into the input, new scores (K,))``, by descending new score (ties: lower index first).
    """
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(segments) != len(scores):
        raise ValueError(f'{len(segments)} segments but {len(scores)} scores')
    if sigma <= 0:
        raise ValueError(f'sigma must be > 0, got {sigma}')
    alive = np.flatnonzero(scores >= min_score)
    current = scores[alive].copy()
    keep_idx: list[int] = []
    keep_score: list[float] = []
    limit = len(alive) if max_num is None else min(max_num, len(alive))
    while len(alive) and len(keep_idx) < limit:
        best = int(np.argmax(current))  # first maximum: lower index wins ties
        idx, score = alive[best], current[best]
        keep_idx.append(int(idx))
        keep_score.append(float(score))
        alive = np.delete(alive, best)
        current = np.delete(current, best)
        if not len(alive):
            break
        current *= np.exp(-_iou(segments[idx], segments[alive]) ** 2 / sigma)
        survive = current >= min_score
        alive, current = alive[survive], current[survive]
    return np.asarray(keep_idx, dtype=np.int64), np.asarray(keep_score, dtype=np.float64)


def batched_soft_nms(segments: np.ndarray, scores: np.ndarray, labels: np.ndarray, sigma: float = 0.5,
                     min_score: float = 0.001, max_num: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft-NMS of every class on its own, then the ``max_num`` highest new scores over all classes.

    This is ActionFormer's ``multiclass_nms`` with its compiled ``nms_1d_cpu`` op (sigma 0.5, min_score 0.001,
    ``max_seg_num`` 200 on THUMOS14).

    Args:
        segments: (N, 2) [start, end].
        scores: (N,) scores.
        labels: (N,) integer class ids.
        sigma: see :func:`soft_nms_1d`.
        min_score: see :func:`soft_nms_1d`.
        max_num: segments kept per class and in total (200 for THUMOS14).

    Returns:
        ``(segments (K, 2), scores (K,), labels (K,))`` by descending score (ties: lower class, then lower index).
    """
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if not (len(segments) == len(scores) == len(labels)):
        raise ValueError(f'segments, scores and labels differ in length: {len(segments)}, {len(scores)}, '
                         f'{len(labels)}')
    kept_idx, kept_scores = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        idx, new = soft_nms_1d(segments[members], scores[members], sigma, min_score, max_num)
        kept_idx.append(members[idx])
        kept_scores.append(new)
    if not kept_idx:
        return np.zeros((0, 2)), np.zeros(0), labels[:0].astype(np.int64)
    idx = np.concatenate(kept_idx)
    new = np.concatenate(kept_scores)
    order = np.argsort(-new, kind='stable')[:max_num]
    return segments[idx[order]], new[order], labels[idx[order]].astype(np.int64)
