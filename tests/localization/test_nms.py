"""Gaussian Soft-NMS (tasks/localization/nms.py): hand-computed decays and a literal reference implementation.

The reference below follows the loop of the original Soft-NMS paper / ActionFormer's ``nms_1d_cpu.softnms``
(method 2): move the current maximum to position i, decay every later box by exp(-IoU^2 / sigma), drop those under
min_score by swapping them to the end. It shares no code with the implementation under test.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from tasks.localization.nms import batched_soft_nms, soft_nms_1d


def reference_soft_nms(segs, scores, sigma, min_score):
    boxes = [[float(s), float(e), float(c), i] for i, ((s, e), c) in enumerate(zip(segs, scores))]
    n = len(boxes)
    i = 0
    while i < n:
        best = max(range(i, n), key=lambda j: (boxes[j][2], -boxes[j][3]))
        boxes[i], boxes[best] = boxes[best], boxes[i]
        s1, e1 = boxes[i][0], boxes[i][1]
        pos = i + 1
        while pos < n:
            s2, e2 = boxes[pos][0], boxes[pos][1]
            inter = max(0.0, min(e1, e2) - max(s1, s2))
            iou = inter / ((e1 - s1) + (e2 - s2) - inter)
            boxes[pos][2] *= math.exp(-iou * iou / sigma)
            if boxes[pos][2] < min_score:
                boxes[pos], boxes[n - 1] = boxes[n - 1], boxes[pos]
                n -= 1
                continue  # the swapped-in box is examined at the same position
            pos += 1
        i += 1
    return [b[3] for b in boxes[:n]], [b[2] for b in boxes[:n]]


def test_gaussian_decay_by_hand():
    segs = np.array([[0, 10], [5, 15], [30, 40]], float)
    idx, new = soft_nms_1d(segs, [0.9, 0.8, 0.5], sigma=0.5)
    # [5, 15] overlaps the kept [0, 10] with IoU 5 / 15 = 1/3: 0.8 * exp(-(1/9) / 0.5); [30, 40] overlaps nothing
    assert idx.tolist() == [0, 1, 2]
    np.testing.assert_allclose(new, [0.9, 0.8 * math.exp(-2 / 9), 0.5])


def test_identical_segments_decay_by_exp_minus_two_and_fall_under_min_score():
    # IoU 1: each later copy is multiplied by exp(-1 / 0.5) = e^-2 per kept copy before it
    idx, new = soft_nms_1d([[0, 1]] * 3, [0.5, 0.5, 0.5])
    np.testing.assert_allclose(new, [0.5, 0.5 * math.exp(-2), 0.5 * math.exp(-4)])
    # with min_score above 0.5 e^-4 = 0.0092 the third copy is dropped
    idx, new = soft_nms_1d([[0, 1]] * 3, [0.5, 0.5, 0.5], min_score=0.01)
    assert len(idx) == 2


def test_matches_reference_and_max_num_takes_the_first_picks():
    rng = np.random.default_rng(0)
    start = rng.uniform(0, 100, 80)
    segs = np.stack([start, start + rng.uniform(1, 20, 80)], 1)
    scores = rng.uniform(0, 1, 80)
    idx, new = soft_nms_1d(segs, scores, sigma=0.5, min_score=0.001)
    ref_idx, ref_scores = reference_soft_nms(segs, scores, 0.5, 0.001)
    assert idx.tolist() == ref_idx
    np.testing.assert_allclose(new, ref_scores, rtol=1e-12)
    assert np.all(np.diff(new) <= 0)  # picks come out by descending decayed score
    capped_idx, capped = soft_nms_1d(segs, scores, max_num=7)
    assert capped_idx.tolist() == ref_idx[:7]
    np.testing.assert_allclose(capped, ref_scores[:7])


def test_batched_is_per_class_then_global_top_k():
    segs = np.array([[0, 10], [0, 10], [1, 10], [50, 60]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    labels = np.array([0, 1, 0, 1])
    out_segs, out_scores, out_labels = batched_soft_nms(segs, scores, labels, sigma=0.5, min_score=0.001, max_num=3)
    # class 0: [0, 10] 0.9 keeps, [1, 10] IoU 0.9 -> 0.7 exp(-0.81 / 0.5); class 1: [0, 10] 0.8 and [50, 60] 0.6
    # untouched (different class from the 0.9 one). Top 3 of {0.9, 0.8, 0.6, 0.139}.
    np.testing.assert_allclose(out_scores, [0.9, 0.8, 0.6])
    assert out_labels.tolist() == [0, 1, 1]
    np.testing.assert_array_equal(out_segs, segs[[0, 1, 3]])
    _, all_scores, _ = batched_soft_nms(segs, scores, labels, max_num=10)
    assert all_scores[-1] == pytest.approx(0.7 * math.exp(-0.81 / 0.5))
    empty = batched_soft_nms(np.zeros((0, 2)), np.zeros(0), np.zeros(0, int))
    assert [len(a) for a in empty] == [0, 0, 0]
