"""Average precision as the AVA and THUMOS14 evaluators compute it (docs/ava.md#evaluation,
docs/thumos14.md#evaluation)."""
from __future__ import annotations

import numpy as np

__all__ = ['interpolated_ap']


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """All-point interpolated AP (PASCAL VOC 2010+ / ActivityNet) of one ranked list.

    Precision is made non-increasing from the right (the envelope), then summed over the points where recall changes,
    each weighted by its recall step.

    Args:
        precision: (N,) precision after each detection, in rank order.
        recall: (N,) recall after each detection (non-decreasing).
    """
    p = np.concatenate([[0.0], np.asarray(precision, dtype=np.float64), [0.0]])
    r = np.concatenate([[0.0], np.asarray(recall, dtype=np.float64), [1.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1]) + 1
    return float(np.sum((r[steps] - r[steps - 1]) * p[steps]))
