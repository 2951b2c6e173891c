"""Classification metrics: hand-worked fixtures, parity with mmaction2 1.1.0's functions, view merging."""
from __future__ import annotations

import numpy as np
import pytest

from tasks.classification.evaluation import confusion_matrix, mean_class_accuracy, merge_views, topk_accuracy

# 4 videos, 4 classes. Class order by score per row:
#   row 0: 3 > 1 > 0 > 2, label 3 -> rank 0 (top-1 hit)
#   row 1: 0 > 2 > 3 > 1, label 2 -> rank 1 (top-2 hit, top-1 miss)
#   row 2: 1 > 3 > 2 > 0, label 0 -> rank 3 (only top-4 hit)
#   row 3: 2 > 1 > 0 > 3, label 2 -> rank 0 (top-1 hit)
SCORES = np.array([[0.2, 0.3, 0.1, 0.4],
                   [0.5, 0.1, 0.3, 0.2],
                   [0.1, 0.6, 0.2, 0.5],
                   [0.3, 0.35, 0.4, 0.0]])
LABELS = np.array([3, 2, 0, 2])


def test_topk_accuracy_hand_computed():
    # ranks 0, 1, 3, 0 -> top1 2/4, top2 3/4, top3 3/4, top4 4/4
    assert topk_accuracy(SCORES, LABELS, ks=(1, 2, 3, 4)) == {'top1': 0.5, 'top2': 0.75, 'top3': 0.75, 'top4': 1.0}
    # k larger than K: every label is inside
    assert topk_accuracy(SCORES, LABELS, ks=(5,)) == {'top5': 1.0}


def test_confusion_matrix_hand_computed():
    # predictions (argmax): 3, 0, 1, 2; labels 3, 2, 0, 2
    pred = SCORES.argmax(1)
    np.testing.assert_array_equal(pred, [3, 0, 1, 2])
    expected = np.zeros((5, 5), dtype=np.int64)
    expected[3, 3] = 1  # true 3 predicted 3
    expected[2, 0] = 1  # true 2 predicted 0
    expected[0, 1] = 1  # true 0 predicted 1
    expected[2, 2] = 1  # true 2 predicted 2
    np.testing.assert_array_equal(confusion_matrix(pred, LABELS, num_classes=5), expected)


def test_mean_class_accuracy_hand_computed():
    # GT ∪ pred = {0, 1, 2, 3}. Recall: class 0: 0/1, class 1: never GT -> 0, class 2: 1/2, class 3: 1/1.
    # mean = (0 + 0 + 0.5 + 1) / 4 = 0.375
    assert mean_class_accuracy(SCORES, LABELS) == pytest.approx(0.375)
    # Class 4 exists in K but is neither GT nor predicted: it must not count.
    padded = np.concatenate([SCORES, np.full((4, 1), -1.0)], axis=1)
    assert mean_class_accuracy(padded, LABELS) == pytest.approx(0.375)


def test_mean_class_accuracy_counts_predicted_only_classes():
    # 2 videos both labelled 0; one predicted 0, one predicted 1 -> union {0, 1}: (1/2 + 0) / 2 = 0.25,
    # whereas a mean over GT classes only would give 0.5.
    scores = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert mean_class_accuracy(scores, np.array([0, 0])) == pytest.approx(0.25)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_parity_with_mmaction2(seed):
    functional = pytest.importorskip('mmaction.evaluation.functional.accuracy',
                                     reason='mmaction2 is the reference implementation for this test')
    rng = np.random.default_rng(seed)
    num_videos, num_classes = 200, 12
    # Peaked scores so accuracy is neither ~0 nor ~1, and some classes are predicted but absent from labels.
    labels = rng.integers(0, num_classes - 2, size=num_videos)
    scores = rng.normal(size=(num_videos, num_classes))
    scores[np.arange(num_videos), labels] += rng.uniform(0, 2.5, size=num_videos)
    ours = topk_accuracy(scores, labels, ks=(1, 3, 5))
    theirs = functional.top_k_accuracy(list(scores), list(labels), topk=(1, 3, 5))
    assert 0.1 < ours['top1'] < 0.9
    assert [ours['top1'], ours['top3'], ours['top5']] == pytest.approx(theirs, abs=1e-12)
    assert mean_class_accuracy(scores, labels) == pytest.approx(
        functional.mean_class_accuracy(list(scores), list(labels)), abs=1e-12)


def test_merge_views_prob_differs_from_score():
    # One video, 3 views, 2 classes: two views mildly prefer class 0 with logits (2, 0), one view is extremely sure of
    # class 1 with (0, 20).
    #   'score': mean logits = (4/3, 20/3)                              -> class 1
    #   'prob' : softmax (2, 0) = (s, 1 - s) with s = 1 / (1 + e^-2) ~ 0.8808; softmax (0, 20) = (t, 1 - t) with
    #            t = 1 / (1 + e^20) ~ 2.1e-9; mean class 0 = (2s + t) / 3 ~ 0.5872 -> class 0
    # Softmax caps each view's vote at 1, so one overconfident view cannot outvote the others.
    scores = np.array([[[2.0, 0.0], [2.0, 0.0], [0.0, 20.0]]])
    prob = merge_views(scores, mode='prob')
    score = merge_views(scores, mode='score')
    np.testing.assert_allclose(score, [[4 / 3, 20 / 3]], rtol=1e-12)
    s = 1 / (1 + np.exp(-2.0))
    t = 1 / (1 + np.exp(20.0))
    np.testing.assert_allclose(prob, [[(2 * s + t) / 3, (2 * (1 - s) + (1 - t)) / 3]], rtol=1e-12)
    assert prob[0, 0] == pytest.approx(0.5872, abs=1e-4)
    assert prob.argmax(1)[0] == 0 and score.argmax(1)[0] == 1


def test_merge_views_matches_mmaction2_average_clips():
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(3, 15, 7)) * 3
    # mmaction2 BaseHead.average_clip('prob') is softmax over classes then the mean over clips.
    expected = torch.softmax(torch.from_numpy(logits), dim=2).mean(dim=1).numpy()
    np.testing.assert_allclose(merge_views(logits), expected, rtol=1e-12)
    np.testing.assert_allclose(merge_views(logits).sum(1), 1.0)
    np.testing.assert_allclose(merge_views(logits, mode='score'), logits.mean(1))


def test_merge_views_ragged_list_and_large_logits():
    # Video 0 has 1 view, video 1 has 2 views given as (K,) arrays; huge logits must not overflow.
    videos = [[np.array([1000.0, 0.0])], [np.array([0.0, 1000.0]), np.array([1000.0, 0.0])]]
    np.testing.assert_allclose(merge_views(videos), [[1.0, 0.0], [0.5, 0.5]])


def test_bad_input_errors():
    with pytest.raises(ValueError, match='mode'):
        merge_views(np.zeros((1, 2, 3)), mode='sum')
    with pytest.raises(ValueError, match='video 1 has 4 classes'):
        merge_views([np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ValueError, match='video 0 must hold'):
        merge_views([np.zeros((0, 3))])
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 4\)'):
        topk_accuracy(SCORES, np.array([0, 1, 2, 4]))
    with pytest.raises(ValueError, match='labels must have shape'):
        mean_class_accuracy(SCORES, LABELS[:3])
    with pytest.raises(ValueError, match='pred must lie'):
        confusion_matrix(np.array([0, 5]), np.array([0, 1]), num_classes=3)
