"""AVA frame-mAP evaluator (tasks/detection/evaluation.py) and its command line (tools/eval_ava.py).

What is checked, and against what:

* hand-derived fixtures (every AP worked out in the comments): excluded timestamps, keyframes without ground truth,
  duplicate detections, a class with ground truth but no detection, a class outside the label map, the official
  50-detection cap and invalid boxes, each under both protocols, where they differ;
* parity with mmaction2 1.1.0's own ``ava_eval`` on random fixtures (the ``mmaction2`` protocol exactly; the
  ``official`` protocol on fixtures where the two tools must agree);
* malformed submission rows are reported with file and line; the CLI prints, writes the JSON and the PNG.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tasks.data.annotations import AnnotationError, read_ava_csv
from tasks.detection.evaluation import (DetectionRow, boxes_of, evaluate_ava, evaluate_ava_files, oracle_baseline,
                                        oracle_detections, random_baseline, random_boxes, read_ava_detections,
                                        read_ground_truth, reference_maps, voc_average_precision,
                                        write_ava_detections)

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, 'PYTHONPATH': str(ROOT)}

LABEL_MAP = 'item {\n  name: "stand"\n  id: 1\n}\nitem {\n  name: "jump"\n  id: 3\n}\n' \
            'item {\n  name: "spin"\n  id: 4\n}\nitem {\n  name: "pulse"\n  id: 5\n}\n'
P = (0.1, 0.1, 0.4, 0.9)
P_ = (0.11, 0.1, 0.4, 0.9)  # IoU(P, P_) = 0.29 / 0.3 > 0.5
Q = (0.5, 0.1, 0.9, 0.9)
R = (0.2, 0.2, 0.6, 0.6)
FAR = (0.7, 0.0, 0.9, 0.2)


def _row(vid, ts, box, *rest):
    return ','.join([vid, f'{ts:04d}', *(f'{v:g}' for v in box), *(str(r) for r in rest)])


GT_ROWS = [
    _row('vidA', 902, P, 1, 0), _row('vidA', 902, P, 3, 0),
    _row('vidA', 902, Q, 1, 1),
    _row('vidA', 903, P, 1, 0), _row('vidA', 903, P, 2, 0),  # action 2 is not in the label map
    _row('vidA', 904, P, 5, 0),  # an excluded keyframe that still has a row
    _row('vidB', 902, R, 5, 0), _row('vidB', 902, R, 4, 0),  # class 4 is never detected
]
DET_ROWS = [
    _row('vidA', 902, P_, 1, 0.9),   # class 1 TP (P)
    _row('vidA', 902, Q, 1, 0.8),    # class 1 TP (Q)
    _row('vidA', 902, P_, 3, 0.7),   # class 3 TP
    _row('vidA', 902, P, 1, 0.6),    # class 1 duplicate of P: FP
    _row('vidA', 903, P, 1, 0.5),    # class 1 TP
    _row('vidA', 903, P, 5, 0.95),   # class 5 FP (no class-5 box on this keyframe)
    _row('vidA', 903, P, 2, 0.99),   # class 2 is not evaluated: ignored
    _row('vidA', 904, P, 5, 0.99),   # excluded keyframe: ignored
    _row('vidA', 905, P, 1, 0.85),   # keyframe without ground truth
    _row('vidB', 902, R, 5, 0.4),    # class 5 TP
    _row('vidB', 902, R, 3, 0.75),   # class 3 FP
]
EXCLUDED = 'vidA,0904\n'

# Official protocol, by hand:
#   class 1: positives P@902, Q@902, P@903 = 3. Ranked: .9 T, .85 F (905 has no GT), .8 T, .6 F (duplicate), .5 T.
#            precision 1, 1/2, 2/3, 1/2, 3/5 at recall 1/3, 1/3, 2/3, 2/3, 1; made monotone: 1, 2/3, 2/3, .6, .6
#            AP = 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/5 = 34/45
#   class 3: 1 positive. .75 F, .7 T -> precision 1/2 at recall 1: AP = 1/2
#   class 4: 1 positive, no detection: AP = 0
#   class 5: 1 positive (the excluded keyframe's row is dropped). .95 F, .4 T -> AP = 1/2
OFFICIAL_AP = {1: 34 / 45, 3: 0.5, 4: 0.0, 5: 0.5}
# mmaction2 variant, by hand:
#   class 1: the .85 detection on 905 is dropped. .9 T, .8 T, .6 F, .5 T -> precision 1, 1, 2/3, 3/4 at recall
#            1/3, 2/3, 2/3, 1 -> AP = 1/3 + 1/3 + 1/3 * 3/4 = 11/12
#   class 3: AP = 1/2 as above
#   class 4: no detection -> left out of the mean
#   class 5: 2 positives (the excluded keyframe's row still counts), .95 F, .4 T -> recall 1/2 at precision 1/2:
#            AP = 1/4
MMACTION_AP = {1: 11 / 12, 3: 0.5, 4: math.nan, 5: 0.25}


@pytest.fixture()
def files(tmp_path):
    paths = {'gt': tmp_path / 'gt.csv', 'pred': tmp_path / 'pred.csv', 'labels': tmp_path / 'labels.pbtxt',
             'exclude': tmp_path / 'excluded.csv'}
    paths['gt'].write_text('\n'.join(GT_ROWS) + '\n')
    paths['pred'].write_text('\n'.join(DET_ROWS) + '\n')
    paths['labels'].write_text(LABEL_MAP)
    paths['exclude'].write_text(EXCLUDED)
    return paths


def _assert_ap(result, expected):
    assert set(result.ap) == set(expected)
    for c, v in expected.items():
        if math.isnan(v):
            assert math.isnan(result.ap[c]), (c, result.ap[c])
        else:
            assert result.ap[c] == pytest.approx(v, abs=1e-12), c
    valid = [v for v in expected.values() if not math.isnan(v)]
    assert result.mAP == pytest.approx(sum(valid) / len(valid), abs=1e-12)


def test_official_protocol_hand_derived(files):
    result = evaluate_ava_files(files['gt'], files['pred'], files['labels'], files['exclude'], protocol='official')
    _assert_ap(result, OFFICIAL_AP)
    assert result.num_gt == {1: 3, 3: 1, 4: 1, 5: 1}
    # class 1: 5 scored detections (905 included); class 5: the excluded keyframe's one is not scored
    assert result.num_detections == {1: 5, 3: 2, 4: 0, 5: 2}
    # the printed table: these numbers, and the mean (34/45 + 1/2 + 0 + 1/2) / 4 = 0.4389
    assert result.format_table().splitlines() == [
        'id      AP  GT  dets  class',
        ' 1  0.7556   3     5  stand',
        ' 3  0.5000   1     2  jump',
        ' 4  0.0000   1     0  spin',
        ' 5  0.5000   1     2  pulse',
        'frame mAP@0.5 (official protocol): 0.4389 over 4 classes']


def test_mmaction2_protocol_hand_derived(files):
    result = evaluate_ava_files(files['gt'], files['pred'], files['labels'], files['exclude'], protocol='mmaction2')
    _assert_ap(result, MMACTION_AP)
    assert result.num_gt == {1: 3, 3: 1, 4: 1, 5: 2}
    # class 4 is left out of the mean: '-' in the table, (11/12 + 1/2 + 1/4) / 3 = 0.5556 over 3 classes
    assert result.format_table().splitlines()[3] == ' 4       -   1     0  spin'
    assert result.format_table().endswith('frame mAP@0.5 (mmaction2 protocol): 0.5556 over 3 classes')
    assert result.extras['num_detections_on_keyframes_without_gt'] == 1
    # all four evaluated ids are <= 14: the "person movement" sub-mAP is the mAP
    assert result.extras['person_movement'] == pytest.approx(result.mAP)
    assert math.isnan(result.extras['object_manipulation'])


def test_without_exclusions_the_excluded_keyframe_counts(files):
    # No exclusion file: vidA,0904 is a normal keyframe. Class 5 has 2 positives; .99 T (904), .95 F, .4 T ->
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> AP = 1/2 + 1/2 * 2/3 = 5/6
    result = evaluate_ava_files(files['gt'], files['pred'], files['labels'], None, protocol='official')
    assert result.ap[5] == pytest.approx(5 / 6)
    assert result.ap[1] == pytest.approx(34 / 45)


def test_official_cap_of_50_detections_per_keyframe():
    gt = _gt([('v', 902, P, (1,))])
    label_map = {1: 'stand'}
    # 50 false positives (scores .5 .. .99) and the one true positive with the lowest score, .1
    dets = [DetectionRow('v', 902, *FAR, 1, 0.5 + 0.01 * i) for i in range(50)] + [DetectionRow('v', 902, *P, 1, 0.1)]
    # official: the heap keeps the 50 best, the true positive is the 51st -> no true positive: AP 0
    assert evaluate_ava(gt, dets, label_map, protocol='official').ap[1] == 0.0
    # without the cap / mmaction2: ranked last, precision 1/51 at recall 1
    assert evaluate_ava(gt, dets, label_map, protocol='official', max_detections=None).ap[1] == pytest.approx(1 / 51)
    assert evaluate_ava(gt, dets, label_map, protocol='mmaction2').ap[1] == pytest.approx(1 / 51, rel=1e-6)
    # the cap counts rows of evaluated classes only: 60 rows of a class outside the label map change nothing
    other = [DetectionRow('v', 902, *FAR, 7, 0.99) for _ in range(60)]
    assert evaluate_ava(gt, other + [DetectionRow('v', 902, *P, 1, 0.1)], label_map).ap[1] == 1.0


def test_invalid_boxes():
    gt = _gt([('v', 902, P, (1,))])
    reversed_box = DetectionRow('v', 902, 0.4, 0.1, 0.1, 0.9, 1, 0.9)  # x2 < x1
    empty_box = DetectionRow('v', 902, 0.4, 0.1, 0.4, 0.9, 1, 0.9)  # x2 == x1
    true_box = DetectionRow('v', 902, *P, 1, 0.8)
    # official: both are dropped before matching -> the true box alone: AP 1
    for bad in (reversed_box, empty_box):
        result = evaluate_ava(gt, [bad, true_box], {1: 'a'}, protocol='official')
        assert result.ap[1] == 1.0 and result.extras['num_invalid_boxes_dropped'] == 1
    # mmaction2: an empty box is a false positive ranked first -> precision 1/2 at recall 1; a reversed box is an
    # error there (its BoxList raises), reported with the keyframe
    assert evaluate_ava(gt, [empty_box, true_box], {1: 'a'}, protocol='mmaction2').ap[1] == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r'keyframe v,0902: .* x2 < x1'):
        evaluate_ava(gt, [reversed_box, true_box], {1: 'a'}, protocol='mmaction2')


def test_greedy_match_to_the_best_box_only():
    # Ground-truth boxes A and B overlap. The first detection matches A. The second overlaps A best (IoU 0.4/0.55 =
    # 0.73) and B enough too (0.35/0.6 = 0.58), but it does NOT fall back to the free B: a duplicate of A -> FP.
    # The third detection is B itself: TP.
    a, b = (0.0, 0.0, 0.5, 1.0), (0.2, 0.0, 0.7, 1.0)
    d2 = (0.1, 0.0, 0.55, 1.0)
    gt = _gt([('v', 902, a, (1,)), ('v', 902, b, (1,))])
    dets = [DetectionRow('v', 902, *a, 1, 0.9), DetectionRow('v', 902, *d2, 1, 0.8), DetectionRow('v', 902, *b, 1, 0.7)]
    # T, F, T: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> AP = 1/2 + 1/2 * 2/3 = 5/6
    for protocol in ('official', 'mmaction2'):
        assert evaluate_ava(gt, dets, {1: 'a'}, protocol=protocol).ap[1] == pytest.approx(5 / 6)


def test_iou_threshold_is_inclusive():
    # IoU exactly 0.5 (a box of half the area inside the ground truth) is a true positive
    gt = _gt([('v', 902, (0.0, 0.0, 0.5, 0.5), (1,))])
    det = [DetectionRow('v', 902, 0.0, 0.0, 0.25, 0.5, 1, 0.5)]
    assert evaluate_ava(gt, det, {1: 'a'}).ap[1] == 1.0


def test_voc_average_precision_hand_values():
    # ranked T F T with 4 positives: precision 1, 1/2, 2/3 at recall 1/4, 1/4, 1/2 -> 1/4 + 1/4 * 2/3 = 5/12
    assert voc_average_precision(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 4) == pytest.approx(5 / 12)
    assert voc_average_precision(np.zeros(0), np.zeros(0, bool), 3) == 0.0
    assert math.isnan(voc_average_precision(np.array([0.5]), np.array([False]), 0))


def test_random_baseline_is_the_share_of_positives():
    # 200 keyframes with one box each, labelled 1 on 30 % of them; random scores on the true boxes: the AP of a
    # random ranking approaches the share of positives (0.3)
    rng = np.random.default_rng(0)
    rows, boxes = [], {}
    for i in range(200):
        acts = (1,) if rng.random() < 0.3 else (2,)
        rows.append(('v', 902 + i, P, acts))
        boxes[('v', 902 + i)] = np.array([P])
    gt = _gt(rows)
    positives = sum(1 for r in rows if r[3] == (1,)) / len(rows)
    mean, std = random_baseline(gt, boxes, {1: 'a'}, seeds=range(5))
    assert mean == pytest.approx(positives, abs=0.08)
    assert std < 0.1


def test_randomly_placed_boxes_score_far_below_random_scores_on_the_proposals():
    # The share test's keyframes: the true box P on each, class 1 on ~30 % of them, proposals P and Q (nobody). Random
    # scores on the proposals reach about the share of positive boxes, 0.3 x 1/2 = 0.15; the same number of boxes
    # placed at random seldom overlap P by IoU >= 0.5, so almost no detection is a true positive and the AP collapses.
    rng = np.random.default_rng(0)
    rows = [('v', 902 + i, P, (1,) if rng.random() < 0.3 else (2,)) for i in range(200)]
    gt = _gt(rows)
    boxes = {('v', 902 + i): np.array([P, Q]) for i in range(200)}
    placed = random_boxes(boxes, np.random.default_rng(1))
    assert placed.keys() == boxes.keys()
    stacked = np.concatenate(list(placed.values()))
    assert stacked.shape == (400, 4) and stacked.min() >= 0 and stacked.max() <= 1
    assert (stacked[:, 2] >= stacked[:, 0]).all() and (stacked[:, 3] >= stacked[:, 1]).all()
    # the edges are sorted uniform pairs: a side's expected length is 1/3
    assert (stacked[:, 2] - stacked[:, 0]).mean() == pytest.approx(1 / 3, abs=0.04)
    on_proposals = random_baseline(gt, boxes, {1: 'a'}, seeds=range(3))[0]
    floor, std = random_baseline(gt, boxes, {1: 'a'}, seeds=range(3), place_randomly=True)
    assert on_proposals == pytest.approx(0.15, abs=0.05) and floor < 0.03 and std < 0.03
    # without place_randomly the draws are the ones random_baseline always made (the reported numbers do not move)
    assert random_baseline(gt, boxes, {1: 'a'}, seeds=[4]) == random_baseline(gt, boxes, {1: 'a'}, seeds=[4],
                                                                               place_randomly=False)


def test_oracle_scores_give_the_ceiling_of_the_proposals():
    # keyframe 902: P does class 1, Q does class 3; the proposals find P (as P_) and a far box, and miss Q.
    # Perfect scores: class 1 ranks its one true box first (AP 1); class 3 has no proposal on Q (AP 0): mAP 0.5.
    gt = _gt([('v', 902, P, (1,)), ('v', 902, Q, (3,))])
    boxes = {('v', 902): np.array([P_, FAR])}
    rows = oracle_detections(gt, boxes, [1, 3])
    assert sorted((r.action_id, r.x1, r.score) for r in rows) == [(1, P_[0], 1.0), (1, FAR[0], 0.0),
                                                                  (3, P_[0], 0.0), (3, FAR[0], 0.0)]
    assert oracle_baseline(gt, boxes, {1: 'a', 3: 'b'}) == pytest.approx(0.5)
    # with Q proposed too, every class reaches AP 1; of the two boxes on P, the better one (P itself) claims it and
    # the other scores 0, so it cannot rank as a false positive among the true ones
    boxes = {('v', 902): np.array([P_, P, Q, FAR])}
    scores = {(r.action_id, r.x1): r.score for r in oracle_detections(gt, boxes, [1, 3])}
    assert scores[(1, P[0])] == 1.0 and scores[(1, P_[0])] == 0.0 and scores[(3, Q[0])] == 1.0
    assert oracle_baseline(gt, boxes, {1: 'a', 3: 'b'}) == pytest.approx(1.0)
    # it bounds the random baseline from above, and random scores cannot beat it
    assert random_baseline(gt, boxes, {1: 'a', 3: 'b'})[0] < 1.0



def test_reference_maps_are_the_result_json_keys():
    # the oracle fixture above, whose perfect-scores mAP is 0.5 by hand; the random references are those of
    # random_baseline on the same seeds (NaN when there are none, so the metric writes null and the tool omits them)
    gt = _gt([('v', 902, P, (1,)), ('v', 902, Q, (3,))])
    boxes = {('v', 902): np.array([P_, FAR])}
    refs = reference_maps(gt, boxes, {1: 'a', 3: 'b'}, seeds=range(2))
    assert refs['oracle_scores_mAP'] == pytest.approx(0.5)
    assert (refs['random_detections_mAP'], refs['random_detections_mAP_std']) == random_baseline(
        gt, boxes, {1: 'a', 3: 'b'}, seeds=range(2))
    assert (refs['random_boxes_mAP'], refs['random_boxes_mAP_std']) == random_baseline(
        gt, boxes, {1: 'a', 3: 'b'}, seeds=range(2), place_randomly=True)
    none = reference_maps(gt, boxes, {1: 'a', 3: 'b'}, seeds=())
    assert none.keys() == refs.keys() and none['oracle_scores_mAP'] == pytest.approx(0.5)
    assert all(np.isnan(v) for k, v in none.items() if k.startswith('random'))

def test_detection_csv_round_trip_and_errors(tmp_path):
    rows = [DetectionRow('-abc', 902, 0.1, 0.2, 0.3, 0.4, 12, 0.123456789)]
    path = tmp_path / 'p.csv'
    assert write_ava_detections(path, rows) == 1
    assert path.read_text() == '-abc,0902,0.1000,0.2000,0.3000,0.4000,12,0.123457\n'
    back = read_ava_detections(path)
    assert back[0][:7] == rows[0][:7] and back[0].score == pytest.approx(0.123457)
    assert boxes_of(back)[('-abc', 902)].tolist() == [[0.1, 0.2, 0.3, 0.4]]

    bad = tmp_path / 'bad.csv'
    bad.write_text('v,0902,0.1,0.1,0.2,0.2,1,0.5\nv,0902,0.1,0.1,0.2,0.2,1\n')
    with pytest.raises(AnnotationError, match=r'bad\.csv, line 2: expected 8 fields'):
        read_ava_detections(bad)
    bad.write_text('v,0902,0.1,0.1,0.2,0.2,1,0.5\n\nv,0902,0.1,0.1,0.2,0.2,1,nan\n')
    with pytest.raises(AnnotationError, match=r'line 3: score must be finite'):
        read_ava_detections(bad)
    bad.write_text('v,9o2,0.1,0.1,0.2,0.2,1,0.5\n')
    with pytest.raises(AnnotationError, match=r'line 1: timestamp must be an integer'):
        read_ava_detections(bad)


def _gt(rows):
    """AVABox list from (video, ts, box, actions) tuples, through the real csv reader."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / 'gt.csv'
        path.write_text(''.join(f'{_row(v, t, b, a, i)}\n' for i, (v, t, b, acts) in enumerate(rows) for a in acts))
        return read_ava_csv(path)


# ----------------------------------------------------------------------------------------------------------------------
# parity with mmaction2's ava_eval
# ----------------------------------------------------------------------------------------------------------------------

def _random_fixture(tmp_path, seed, *, official_compatible=False):
    """Random ground truth, detections, label map and exclusions written as files.

    ``official_compatible``: no ground truth on excluded keyframes, <= 50 detections per keyframe, every class
    detected and every box valid, i.e. the cases where the official tool and mmaction2 with
    ``ignore_empty_frames=False`` must agree. Boxes are valid in every case (mmaction2 refuses reversed ones).
    """
    rng = np.random.default_rng(seed)
    ids = [1, 2, 4, 5, 7, 15, 70]
    label_ids = [1, 4, 5, 7, 15, 70]  # 2 is in the csv files but not evaluated
    gt_lines, det_lines, excluded = [], [], []
    for v in range(4):
        vid = f'vid{v}'
        for ts in range(902, 910):
            key_excluded = rng.random() < 0.15
            if key_excluded:
                excluded.append(f'{vid},{ts:04d}')
            if rng.random() < 0.2 or (key_excluded and official_compatible):
                gt_boxes = []  # keyframe without ground truth
            else:
                gt_boxes = []
                for p in range(int(rng.integers(1, 4))):
                    x1, y1 = rng.uniform(0, 0.6, size=2)
                    box = (round(x1, 3), round(y1, 3), round(x1 + rng.uniform(0.1, 0.4), 3),
                           round(y1 + rng.uniform(0.1, 0.4), 3))
                    acts = rng.choice(ids, size=int(rng.integers(1, 4)), replace=False)
                    gt_lines += [_row(vid, ts, box, int(a), p) for a in acts]
                    gt_boxes.append(box)
            cands = gt_boxes + [tuple(np.round(rng.uniform(0, 1, 4) * [0.5, 0.5, 0.5, 0.5] + [0, 0, 0.5, 0.5], 3))]
            for box in cands:
                for a in ids:
                    if rng.random() < 0.5:
                        j = np.array(box) + rng.normal(0, 0.03, 4)
                        det_lines.append(_row(vid, ts, tuple(np.round(j, 4)), a, round(float(rng.random()), 6)))
    det_lines = [r for r in det_lines if _valid(r)]  # mmaction2 refuses reversed boxes
    if official_compatible:  # every class detected at least once
        det_lines += [_row('vid0', 902, (0.1, 0.1, 0.2, 0.2), a, 0.01) for a in label_ids]
    paths = {k: tmp_path / f'{k}_{seed}.{ext}' for k, ext in
             (('gt', 'csv'), ('pred', 'csv'), ('labels', 'pbtxt'), ('exclude', 'csv'))}
    paths['gt'].write_text('\n'.join(gt_lines) + '\n')
    paths['pred'].write_text('\n'.join(det_lines) + '\n')
    paths['labels'].write_text(''.join(f'item {{\n  name: "a{i}"\n  id: {i}\n}}\n' for i in label_ids))
    paths['exclude'].write_text('\n'.join(excluded) + '\n')
    return paths


def _valid(line):
    x1, y1, x2, y2 = map(float, line.split(',')[2:6])
    return x1 < x2 and y1 < y2


def _mmaction_ava_eval(paths, monkeypatch, ignore_empty_frames=True):
    ava_utils = pytest.importorskip('mmaction.evaluation.functional.ava_utils',
                                    reason='mmaction2 is the reference implementation for this test')

    class SerialPool:  # ava_eval opens a 32-process pool; the result does not depend on it
        def __init__(self, *args, **kwargs):
            pass

        def map(self, fn, items):
            return list(map(fn, items))

    monkeypatch.setattr(ava_utils.multiprocessing, 'Pool', SerialPool)
    return ava_utils.ava_eval(str(paths['pred']), 'mAP', str(paths['labels']), str(paths['gt']),
                              str(paths['exclude']), verbose=False, ignore_empty_frames=ignore_empty_frames)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_mmaction2_protocol_matches_mmaction2(tmp_path, monkeypatch, capsys, seed):
    paths = _random_fixture(tmp_path, seed)
    ref = _mmaction_ava_eval(paths, monkeypatch)
    ours = evaluate_ava_files(paths['gt'], paths['pred'], paths['labels'], paths['exclude'], protocol='mmaction2')
    assert ours.mAP == pytest.approx(ref['overall'], abs=1e-6)
    for name in ('person_movement', 'object_manipulation', 'person_interaction'):
        assert ours.extras[name] == pytest.approx(ref[name], abs=1e-6, nan_ok=True)
    # and the protocols really differ on these fixtures (empty keyframes, excluded ground truth)
    official = evaluate_ava_files(paths['gt'], paths['pred'], paths['labels'], paths['exclude'])
    assert abs(official.mAP - ours.mAP) > 1e-3


@pytest.mark.parametrize('seed', [3, 4])
def test_official_protocol_matches_mmaction2_where_they_agree(tmp_path, monkeypatch, capsys, seed):
    # mmaction2's ava_eval with ignore_empty_frames=False scores detections on keyframes without ground truth as
    # false positives, like the official tool; on fixtures without the other differences both must agree.
    paths = _random_fixture(tmp_path, seed, official_compatible=True)
    ref = _mmaction_ava_eval(paths, monkeypatch, ignore_empty_frames=False)
    ours = evaluate_ava_files(paths['gt'], paths['pred'], paths['labels'], paths['exclude'], protocol='official')
    assert ours.mAP == pytest.approx(ref['overall'], abs=1e-6)


# ----------------------------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------------------------

def _eval_ava_main():
    """tools/eval_ava.py's main(), imported from the file (tools/ is not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('eval_ava_cli', ROOT / 'tools' / 'eval_ava.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_cli_prints_writes_json_and_png(files, tmp_path, capsys):
    main = _eval_ava_main()
    out = tmp_path / 'res' / 'result.json'
    assert main(['--gt', str(files['gt']), '--pred', str(files['pred']), '--label-map', str(files['labels']),
                 '--exclude', str(files['exclude']), '--out', str(out)]) == 0
    expected_map = sum(OFFICIAL_AP.values()) / 4
    assert f'{expected_map:.4f}' in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data['protocol'] == 'official'
    assert data['mAP'] == pytest.approx(expected_map)
    assert {c['id']: c['ap'] for c in data['per_class']} == pytest.approx(OFFICIAL_AP)
    # the random references are reference_maps' on the submission's own boxes (3 seeds by default)
    label_map, gt, excluded = read_ground_truth(files['gt'], files['labels'], files['exclude'])
    refs = reference_maps(gt, boxes_of(read_ava_detections(files['pred'])), label_map, excluded, seeds=range(3))
    assert {k: data[k] for k in refs} == pytest.approx(refs)
    # perfect scores: every true box of an evaluated class is one of the submission's boxes (P@902 and P@903 for
    # class 1 with Q@902, P@902 for class 3, R for classes 4 and 5), each ranked first -> AP 1 everywhere
    assert data['oracle_scores_mAP'] == 1.0
    # the chart: 700 px wide, (1.2 + 0.22 x 4 classes) inches high at 100 dpi (PNG IHDR: width, height at 16..24)
    png = out.with_suffix('.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n'
    assert (int.from_bytes(png[16:20], 'big'), int.from_bytes(png[20:24], 'big')) == (700, 208)

    assert main(['--gt', str(files['gt']), '--pred', str(files['pred']), '--label-map', str(files['labels']),
                 '--exclude', str(files['exclude']), '--protocol', 'mmaction2', '--baseline-seeds', '0']) == 0
    assert f'{(11 / 12 + 0.5 + 0.25) / 3:.4f}' in capsys.readouterr().out


def test_cli_reports_malformed_rows(files, capsys):
    files['pred'].write_text(DET_ROWS[0] + '\nvidA,0902,0.1,0.1\n')
    main = _eval_ava_main()
    assert main(['--gt', str(files['gt']), '--pred', str(files['pred']), '--label-map', str(files['labels'])]) == 2
    assert 'pred.csv, line 2: expected 8 fields' in capsys.readouterr().err


def test_cli_runs_as_a_script(files):
    # the file itself, as a user runs it (repository root on PYTHONPATH, as without `pip install -e .`)
    proc = subprocess.run([sys.executable, str(ROOT / 'tools' / 'eval_ava.py'), '--gt', str(files['gt']), '--pred',
                           str(files['pred']), '--label-map', str(files['labels']), '--baseline-seeds', '0'],
                          capture_output=True, text=True, cwd=ROOT, timeout=300, env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert 'frame mAP@0.5 (official protocol)' in proc.stdout


# ---------------------------------------------------------------------------------------------------------------------
# the mmengine metric
# ---------------------------------------------------------------------------------------------------------------------
def _keyframe_results() -> list[dict]:
    """DET_ROWS as the detector returns them: per keyframe, its boxes (N, 4) and scores (N, 5) of classes 1-5."""
    per_keyframe: dict[tuple[str, int], dict] = {}
    for line in DET_ROWS:
        vid, ts, *box, action, score = line.split(',')
        r = per_keyframe.setdefault((vid, int(ts)), dict(video_id=vid, timestamp=int(ts), boxes=[], scores=[]))
        key = tuple(float(v) for v in box)
        if key not in r['boxes']:
            r['boxes'].append(key)
            r['scores'].append([0.0] * 5)
        r['scores'][r['boxes'].index(key)][int(action) - 1] = float(score)
    return [dict(r, boxes=np.array(r['boxes']), scores=np.array(r['scores']), failed=None)
            for r in per_keyframe.values()]


def test_metric_counts_a_keyframe_gathered_twice_once(files):
    """The hand-derived official APs through the mmengine metric, also when a keyframe arrives twice (a sampler's
    padding left in the gathered results): counted twice, vidA 902's class-1 detections would add false positives."""
    from tasks.detection.metric import VideoMAEv2AVAMetric

    results = _keyframe_results()
    expected_map = sum(OFFICIAL_AP.values()) / len(OFFICIAL_AP)
    for given in (results, [results[1], *results, results[0]]):
        metric = VideoMAEv2AVAMetric(str(files['gt']), str(files['labels']), str(files['exclude']), baseline_seeds=0)
        metric.process({}, given)
        metrics = metric.evaluate(len(given))
        assert metrics['ava/mAP'] == pytest.approx(expected_map, abs=1e-12)
        assert metrics['ava/AP/stand'] == pytest.approx(34 / 45, abs=1e-12)
