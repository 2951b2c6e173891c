"""What the classification metrics do with scores no model should give: NaN is refused, naming the video; +-inf are the
highest / lowest scores (docs/classification.md#test-protocols-and-metrics). Property-based (hypothesis) and by
example."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tasks.classification.evaluation import mean_class_accuracy, merge_views, topk_accuracy

EXAMPLES = 100
SETTINGS = settings(max_examples=EXAMPLES, deadline=2000, derandomize=True, database=None)
# scores with every special value; a few distinct finite values make ties likely
SCORE = st.sampled_from([0.0, 1.0, -2.5, 3.0, np.inf, -np.inf, np.nan])


@st.composite
def scores_and_labels(draw):
    n, k = draw(st.integers(1, 6)), draw(st.integers(1, 5))
    scores = draw(hnp.arrays(np.float64, (n, k), elements=SCORE))
    return scores, draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, k - 1)))


def test_a_nan_score_is_refused_not_counted_as_a_hit():
    scores = np.array([[0.1, 0.9], [np.nan, 0.2], [0.3, 0.7]])
    labels = np.array([1, 0, 0])
    # before: NaN compared false with everything, so video 1 counted as a top-1 hit (2/3) and argmax chose the NaN
    for metric in (topk_accuracy, mean_class_accuracy):
        with pytest.raises(ValueError, match='scores of video 1 contain NaN'):
            metric(scores, labels)


def test_merge_views_refuses_logits_whose_merged_score_is_nan():
    # before: the NaN (from NaN, or from +inf under the softmax: inf / inf) went on into the accuracy
    ok = np.zeros((2, 3))
    for bad, mode in ((np.nan, 'prob'), (np.inf, 'prob'), (np.nan, 'score')):
        views = np.zeros((2, 3))
        views[1, 2] = bad
        with pytest.raises(ValueError, match='merge_views: video 1 has NaN or infinite logits'):
            merge_views([ok, views], mode=mode)
    # -inf is a class the view rules out: probability 0 there, the other two share the view's mass
    masked = np.array([[0.0, 0.0, -np.inf]])
    np.testing.assert_allclose(merge_views([masked]), [[0.5, 0.5, 0.0]])


@SETTINGS
@given(scores_and_labels(), st.integers(1, 6))
def test_topk_refuses_nan_and_otherwise_ranks_infinities_as_numbers(data, k):
    scores, labels = data
    if np.isnan(scores).any():
        with pytest.raises(ValueError, match='contain NaN'):
            topk_accuracy(scores, labels, ks=(k,))
        return
    # independent reading: the label is a top-k hit when its score reaches the k-th largest (ties in its favour)
    kth = -np.sort(-scores, axis=1)[:, min(k, scores.shape[1]) - 1]
    expected = np.mean(scores[np.arange(len(labels)), labels] >= kth)
    assert topk_accuracy(scores, labels, ks=(k,)) == {f'top{k}': pytest.approx(expected)}
    assert 0.0 <= mean_class_accuracy(scores, labels) <= 1.0
