"""Classification metrics (docs/classification.md#test-protocols-and-metrics): multi-view merging, top-k accuracy,
mean class accuracy as mmaction2 1.1.0 computes it, and the confusion matrix. Every function takes numpy arrays or
anything ``np.asarray`` accepts (torch CPU tensors included).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = ['confusion_matrix', 'mean_class_accuracy', 'merge_views', 'softmax', 'topk_accuracy']


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax in float64 (subtracting the max keeps ``exp`` finite for large logits)."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def merge_views(scores: np.ndarray | Sequence[Sequence[np.ndarray] | np.ndarray],
                mode: Literal['prob', 'score'] = 'prob') -> np.ndarray:
    """Merge the per-view logits of each video into one score vector per video (official ``merge()``).

    The official ``merge()`` also de-duplicates views by (clip, crop); here that is left to the caller: pass each view
    once.

    Args:
        scores: logits, either one array of shape (num_videos, num_views, K), or a sequence over videos where each item
            holds that video's views as a (num_views_i, K) array or a sequence of (K,) arrays (the number of views may
            differ between videos, e.g. when a short video yields fewer distinct clips).
        mode: ``'prob'`` takes the softmax of every view, then the mean over views (official ``merge()``, mmaction2
            ``average_clips='prob'``); ``'score'`` takes the mean of the logits (mmaction2 ``average_clips='score'``).

    Returns:
        (num_videos, K) float64 merged scores: probabilities summing to 1 per video for ``'prob'``, mean logits for
        ``'score'``.

    Raises:
        ValueError: on an unknown mode, a video without views, inconsistent shapes, or a video whose merged scores are
            NaN (a NaN logit, or +inf under ``'prob'``).
    """
    if mode not in ('prob', 'score'):
        raise ValueError(f"merge_views: mode must be 'prob' or 'score', got {mode!r}")
    if isinstance(scores, np.ndarray) or hasattr(scores, 'shape'):
        videos = list(np.asarray(scores, dtype=np.float64))
        if np.asarray(scores).ndim != 3:
            raise ValueError(f'merge_views: expected scores of shape (num_videos, num_views, K), '
                             f'got {tuple(np.asarray(scores).shape)}')
    else:
        videos = list(scores)
    merged = []
    num_classes = None
    for index, views in enumerate(videos):
        views = np.asarray(views, dtype=np.float64)
        if views.ndim != 2 or views.shape[0] == 0:
            raise ValueError(f'merge_views: video {index} must hold (num_views >= 1, K) logits, '
                             f'got shape {views.shape}')
        if num_classes is None:
            num_classes = views.shape[1]
        elif views.shape[1] != num_classes:
            raise ValueError(f'merge_views: video {index} has {views.shape[1]} classes, video 0 has {num_classes}')
        with np.errstate(invalid='ignore'):  # refused just below, with the video's index
            merged.append((softmax(views, axis=1) if mode == 'prob' else views).mean(axis=0))
        if np.isnan(merged[-1]).any():  # a NaN logit, or +inf (its softmax is inf / inf)
            raise ValueError(f'merge_views: video {index} has NaN or infinite logits, so its merged scores are '
                             'undefined')
    if not merged:
        raise ValueError('merge_views: no videos given')
    return np.stack(merged)


def _check_scores_labels(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2:
        raise ValueError(f'scores must have shape (N, K), got {scores.shape}')
    if labels.shape != (scores.shape[0],):
        raise ValueError(f'labels must have shape ({scores.shape[0]},) to match scores {scores.shape}, '
                         f'got {labels.shape}')
    if scores.shape[0] == 0:
        raise ValueError('accuracy of an empty set of videos is undefined (got 0 scores)')
    if np.isnan(scores).any():  # NaN compares false with everything, so it would rank as the best score
        raise ValueError(f'scores of video {int(np.flatnonzero(np.isnan(scores).any(axis=1))[0])} contain NaN')
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f'labels must be integers, got dtype {labels.dtype}')
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise ValueError(f'labels must lie in [0, {scores.shape[1]}), got range [{labels.min()}, {labels.max()}]')
    return scores, labels.astype(np.int64)


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k accuracy for each k.

    A video counts as correct at k when fewer than k classes score *strictly* higher than its label. With distinct
    scores this is exactly "the label is among the k largest"; on exact ties it is the optimistic reading (mmaction2's
    ``argsort`` breaks ties by index order instead, so the two can differ only on tied scores).

    Args:
        scores: (N, K) scores (logits or merged probabilities; only their order matters). NaN is refused (it has no
            order); +-inf are the highest / lowest scores.
        labels: (N,) integer ground-truth labels in [0, K).
        ks: the k values; each must satisfy 1 <= k.

    Returns:
        ``{'top1': ..., 'top5': ...}``: fractions in [0, 1] (k larger than K gives 1.0).
    """
    scores, labels = _check_scores_labels(scores, labels)
    label_scores = scores[np.arange(len(labels)), labels]
    # rank 0 = best: the number of classes scoring strictly above the label.
    rank = (scores > label_scores[:, None]).sum(axis=1)
    result = {}
    for k in ks:
        if int(k) != k or k < 1:
            raise ValueError(f'topk_accuracy: every k must be a positive integer, got {k!r}')
        result[f'top{int(k)}'] = float((rank < k).mean())
    return result


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts; row = ground truth, column = prediction.

    Unlike mmaction2's ``confusion_matrix`` (which keeps only the labels that occur), rows and columns cover every
    class id in [0, num_classes), so matrices from different splits line up.
    """
    pred = np.asarray(pred)
    labels = np.asarray(labels)
    if pred.shape != labels.shape or pred.ndim != 1:
        raise ValueError(f'pred and labels must be 1-D of the same length, got {pred.shape} and {labels.shape}')
    for name, values in (('pred', pred), ('labels', labels)):
        if values.size and not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f'{name} must be integers, got dtype {values.dtype}')
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f'{name} must lie in [0, {num_classes}), got range [{values.min()}, {values.max()}]')
    flat = labels.astype(np.int64) * num_classes + pred.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def mean_class_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """mmaction2's mean class accuracy: mean per-class recall over the classes in ground truth ∪ predictions.

    Args:
        scores: (N, K) scores; the prediction is their argmax (first index on ties, as ``np.argmax``).
        labels: (N,) integer ground-truth labels in [0, K).

    Returns:
        The mean over every class that is a ground-truth label or a prediction of (hits / ground-truth count), where a
        class that is only ever predicted contributes 0.
    """
    scores, labels = _check_scores_labels(scores, labels)
    pred = scores.argmax(axis=1)
    matrix = confusion_matrix(pred, labels, scores.shape[1])
    present = np.union1d(labels, pred)
    gt_count = matrix.sum(axis=1)[present]
    hits = np.diag(matrix)[present]
    recall = np.divide(hits, gt_count, out=np.zeros(len(present)), where=gt_count > 0)
    return float(recall.mean())
