"""THUMOS14-style evaluator (tasks/localization/evaluation.py) and ``tools/eval_tad.py`` on hand-derived fixtures.

The fixture (one class "A" with 3 instances, one class "B" with 1) is small enough to derive every AP on paper;
the derivation is written next to each expected value. The same ground truth is written once as ActionFormer json
and once as OpenTAD json, which must give the same numbers.
"""
from __future__ import annotations

import json
import math
from unittest import mock

import numpy as np
import pytest

from tasks.engine.ap import interpolated_ap
from tasks.localization.evaluation import (
    GroundTruth, evaluate_detection, format_table, random_baseline, random_predictions, read_ground_truth, segment_iou,
)

# Ground truth (seconds). v1 and v2 are test videos; v3 is a test video without instances; v9 is a training video.
INSTANCES = {
    'v1': [(0, 10, 'A'), (20, 30, 'A'), (0.0005, 10.0004, 'A')],  # the third duplicates the first (within 1e-3 s)
    'v2': [(5, 15, 'A'), (0, 4, 'B')],
    'v3': [],
}
AMBIGUOUS = {'v1': [(9, 12), (29, 40)], 'v2': [], 'v3': [(5, 8)]}


def det(vid, s, e, label, score):
    return vid, {'segment': [s, e], 'label': label, 'score': score}


DETECTIONS = [
    det('v1', 0, 10, 'A', 0.9),    # IoU 1 with v1 A[0, 10]                      -> TP at every threshold
    det('v1', 1, 10, 'A', 0.8),    # IoU 0.9 with the same (locked), 0 with [20, 30] -> FP; overlaps Ambiguous [9, 12]
    det('v2', 5, 13, 'A', 0.7),    # IoU 8/10 = 0.8 with v2 A[5, 15]             -> TP
    det('v1', 28, 35, 'A', 0.65),  # IoU 2/15 with [20, 30] -> FP; overlaps Ambiguous [29, 40]
    det('v1', 20, 26, 'A', 0.6),   # IoU 6/10 = 0.6: TP at <= 0.6 (tIoU >= threshold matches), FP at 0.7
    det('v3', 0, 5, 'A', 0.5),     # video without instances -> FP; touches Ambiguous [5, 8] without overlap
    det('v2', 0, 4, 'B', 0.3),     # exact -> TP: AP(B) = 1
    det('v2', 0, 4, 'C', 0.99),    # class without ground truth: ignored
    det('v9', 0, 4, 'B', 0.99),    # video outside the evaluated set: ignored
]


def predictions(skip=()):
    out = {}
    for i, (vid, d) in enumerate(DETECTIONS):
        if i not in skip:
            out.setdefault(vid, []).append(d)
    return out


def gt():
    return GroundTruth.from_instances(INSTANCES, AMBIGUOUS, classes=['A', 'B', 'C'])


# ---------------------------------------------------------------------------------------------------------------------
def test_segment_iou_and_interpolated_ap_by_hand():
    np.testing.assert_allclose(segment_iou((0, 10), [[5, 15], [10, 20], [2, 4], [-5, 25]]),
                               [5 / 15, 0, 2 / 10, 10 / 30])
    # precision 1, .5, 2/3 at recall 1/3, 1/3, 2/3: envelope 1 over [0, 1/3], 2/3 over [1/3, 2/3]
    assert interpolated_ap([1, .5, 2 / 3], [1 / 3, 1 / 3, 2 / 3]) == pytest.approx(1 / 3 + 2 / 9)


def test_duplicate_and_empty_ground_truth_are_removed():
    g = GroundTruth.from_instances({'v': [(0, 10, 'A'), (0.001, 9.999, 'A'), (0, 10, 'B'), (3, 3.0005, 'A')]})
    # the 2nd duplicates the 1st (both ends within 1e-3 s); the same interval with another label is kept
    # (THUMOS14 CliffDiving is also Diving); the last is shorter than 1e-3 s
    assert g.num_instances('A') == 1 and g.num_instances('B') == 1 and g.removed == 2


def test_map_matches_hand_derivation():
    r = evaluate_detection(gt(), predictions(skip={3}))
    assert r.classes == ['A', 'B'] and r.num_gt == [3, 1]
    assert r.ignored == {'videos': 1, 'classes': 1}
    # A at 0.3-0.6, by score: TP FP TP TP FP; precision 1 .5 .67 .75 .6 at recall 1/3 1/3 2/3 1 1
    #   envelope at the recall steps: 1, .75, .75 -> AP = (1 + .75 + .75) / 3 = 5/6
    # A at 0.7 (the 0.6-IoU detection is now a FP): TP FP TP FP FP -> (1 + 2/3) / 3 = 5/9
    ap_a = [5 / 6] * 4 + [5 / 9]
    np.testing.assert_allclose(r.ap[:, 0], ap_a)
    np.testing.assert_allclose(r.ap[:, 1], 1.0)
    np.testing.assert_allclose(r.map_per_tiou, [(a + 1) / 2 for a in ap_a])
    assert r.average_map == pytest.approx(np.mean([(a + 1) / 2 for a in ap_a]))


def test_ambiguous_rule_drops_unmatched_overlapping_detections_only():
    plain = evaluate_detection(gt(), predictions())
    # at 0.5: TP FP TP FP(0.65) TP FP: envelope 1, 2/3, .6 at recall 1/3, 2/3, 1 -> (1 + 2/3 + 3/5) / 3 = 34/45
    assert plain.ap[2, 0] == pytest.approx(34 / 45)
    aware = evaluate_detection(gt(), predictions(), ambiguous_aware=True)
    # the FPs at 0.8 and 0.65 overlap Ambiguous intervals of v1 and leave; the TP at 0.9 overlaps [9, 12] too but
    # stays; the FP in v3 only touches [5, 8] (intersection 0) and stays:
    #   0.3-0.6: TP TP TP FP -> AP 1;   0.7: TP TP FP FP -> 2/3
    np.testing.assert_allclose(aware.ap[:, 0], [1, 1, 1, 1, 2 / 3])
    # equivalently: the plain evaluator without those two detections
    np.testing.assert_allclose(aware.ap, evaluate_detection(gt(), predictions(skip={1, 3})).ap)


def test_perfect_and_random_predictions():
    g = gt()
    perfect = {v: [{'segment': [s, e], 'label': l, 'score': 1.0} for (s, e), l in zip(g.segments[v], g.labels[v])]
               for v in g.videos}
    assert evaluate_detection(g, perfect).average_map == pytest.approx(1.0)
    rnd = random_predictions(g, per_video=50, seed=3, durations={'v1': 40, 'v2': 20, 'v3': 10})
    assert {len(d) for d in rnd.values()} == {50}
    segs = np.array([d['segment'] for d in rnd['v2']])
    assert segs.min() >= 0 and segs.max() <= 20 and np.all(segs[:, 1] > segs[:, 0])
    durations = {'v1': 40, 'v2': 20, 'v3': 10}
    base = random_baseline(g, durations=durations)
    # the baseline is random_predictions evaluated like a model, AP averaged over the seeds 0, 1, 2
    runs = [evaluate_detection(g, random_predictions(g, seed=s, durations=durations)) for s in (0, 1, 2)]
    np.testing.assert_allclose(base.ap, np.mean([r.ap for r in runs], axis=0))
    assert base.average_map == pytest.approx(np.mean([r.average_map for r in runs]))


def test_table_of_the_hand_derived_result():
    r = evaluate_detection(gt(), predictions(skip={3}))
    # mAP per tIoU: (5/6 + 1) / 2 = 91.67 % at 0.3-0.6, (5/9 + 1) / 2 = 77.78 % at 0.7; A's average over the
    # thresholds (4 x 5/6 + 5/9) / 5 = 77.78 %
    assert format_table(r, per_class=True).splitlines() == [
        'tIoU       0.30    0.40    0.50    0.60    0.70     avg',
        '-------  ------  ------  ------  ------  ------  ------',
        'mAP (%)   91.67   91.67   91.67   91.67   77.78   88.89',
        '  A       83.33   83.33   83.33   83.33   55.56   77.78',
        '  B      100.00  100.00  100.00  100.00  100.00  100.00']


def test_bad_thresholds_and_empty_ground_truth():
    with pytest.raises(ValueError, match='tIoU'):
        evaluate_detection(gt(), {}, tious=[0.0, 0.5])
    with pytest.raises(ValueError, match='no instance'):
        evaluate_detection(GroundTruth.from_instances({'v': []}), {})
    assert evaluate_detection(gt(), {}).average_map == 0.0


# ---------------------------------------------------------------------------------------------------------------------
# files and the CLI
def write_gt_files(folder):
    """The fixture as ActionFormer json (test = v1-v3, v9 in Validation) and as OpenTAD json + class map."""
    af, ot = {}, {}
    subsets = {'v1': ('Test', 'validation'), 'v2': ('Test', 'validation'), 'v3': ('Test', 'validation'),
               'v9': ('Validation', 'training')}
    ids = {'A': 0, 'B': 1, 'C': 2}
    for vid, (af_sub, ot_sub) in subsets.items():
        inst = INSTANCES.get(vid, [(0, 4, 'B')])
        af[vid] = {'subset': af_sub, 'duration': 40.0, 'fps': 30.0,
                   'annotations': [{'label': l, 'segment': [s, e], 'label_id': ids[l]} for s, e, l in inst]}
        amb = [{'label': 'Ambiguous', 'segment': list(a)} for a in AMBIGUOUS.get(vid, [])]
        af[vid]['annotations'] += amb  # the reader keeps them aside as Ambiguous
        ot[vid] = {'subset': ot_sub, 'duration': 40.0, 'frame': 1200,
                   'annotations': [{'label': l, 'segment': [s, e]} for s, e, l in inst] + amb}
    (folder / 'af.json').write_text(json.dumps({'database': af}))
    (folder / 'ot.json').write_text(json.dumps({'database': ot}))
    (folder / 'category_idx.txt').write_text('A\nB\nC\n')
    preds = predictions()
    (folder / 'pred.json').write_text(json.dumps({'results': preds}))
    return folder / 'af.json', folder / 'ot.json', folder / 'pred.json'


def test_both_annotation_formats_give_the_same_ground_truth(tmp_path):
    af, ot, _ = write_gt_files(tmp_path)
    a, o = read_ground_truth(af, 'test'), read_ground_truth(ot, 'test')
    assert sorted(a.videos) == sorted(o.videos) == ['v1', 'v2', 'v3']
    for v in a.videos:
        np.testing.assert_array_equal(a.segments[v], o.segments[v])
        assert list(a.labels[v]) == list(o.labels[v])
        np.testing.assert_array_equal(a.ambiguous[v], o.ambiguous[v])
    assert read_ground_truth(ot, 'train').videos == ['v9']  # OpenTAD "training" = THUMOS14 validation videos


def test_eval_tad_cli(tmp_path, capsys):
    from tools.eval_tad import main

    af, ot, pred = write_gt_files(tmp_path)
    out = tmp_path / 'res' / 'result.json'
    assert main(['--gt', str(ot), '--pred', str(pred), '--subset', 'test', '--out', str(out), '--per-class']) == 0
    printed = capsys.readouterr().out
    saved = json.loads(out.read_text())
    # with the 0.65 FP: 34/45 at 0.3-0.6 (above); at 0.7: TP FP TP FP FP FP -> (1 + 2/3) / 3 = 5/9
    np.testing.assert_allclose(saved['per_class_AP']['A']['0.70'], 5 / 9)
    np.testing.assert_allclose(saved['per_class_AP']['A']['0.50'], 34 / 45)
    assert saved['per_class_AP']['B'] == {k: 1.0 for k in ('0.30', '0.40', '0.50', '0.60', '0.70')}
    assert math.isclose(saved['average_mAP'], np.mean([(34 / 45 + 1) / 2] * 4 + [(5 / 9 + 1) / 2]))
    # the baseline row is random_baseline on the same ground truth (every video 40 s long in the file)
    test_gt = read_ground_truth(ot, 'test')
    base = random_baseline(test_gt, durations=dict.fromkeys(test_gt.videos, 40.0))
    assert saved['random_baseline']['average_mAP'] == pytest.approx(base.average_map)
    assert saved['random_baseline']['mAP'] == pytest.approx(
        {f'{t:.2f}': m for t, m in zip(base.tious, base.map_per_tiou)})
    # the charts (PNG IHDR: width, height at bytes 16..24): 5 x 3.5 in and 7 x (1.2 + 0.22 x 2 classes) in at 100 dpi
    for name, size in (('result.png', (500, 350)), ('result_per_class.png', (700, 164))):
        png = (tmp_path / 'res' / name).read_bytes()
        assert png[:8] == b'\x89PNG\r\n\x1a\n'
        assert (int.from_bytes(png[16:20], 'big'), int.from_bytes(png[20:24], 'big')) == size, name
    # the per-class chart's bars are each class's AP averaged over the five tIoUs (hand values above)
    from tasks.localization import evaluation
    with mock.patch('tasks.engine.plotting.per_class_bars') as bars:
        evaluation.plot_per_class_ap(evaluation.DetectionResult(
            tious=np.array([0.3, 0.4, 0.5, 0.6, 0.7]), classes=['A', 'B'],
            ap=np.array([[34 / 45, 1]] * 4 + [[5 / 9, 1]]), num_gt=[3, 1], num_predictions=7, ambiguous_aware=False),
            tmp_path / 'chart.png')
    (path, names, values), kwargs = bars.call_args
    assert names == ['A', 'B'] and np.allclose(values, [(4 * 34 / 45 + 5 / 9) / 5, 1.0])
    assert kwargs['xlabel'] == 'AP averaged over tIoU 0.3-0.7'
    assert kwargs['lines'][0][0] == pytest.approx(np.mean([(4 * 34 / 45 + 5 / 9) / 5, 1.0]))
    assert 'mAP (%)' in printed and 'random (%)' in printed and '  A' in printed
    # the ActionFormer file and --ambiguous-aware
    assert main(['--gt', str(af), '--pred', str(pred), '--ambiguous-aware', '--out', str(tmp_path / 'aw.json'),
                 '--no-baseline']) == 0
    aware = json.loads((tmp_path / 'aw.json').read_text())
    np.testing.assert_allclose([aware['per_class_AP']['A'][k] for k in ('0.30', '0.70')], [1, 2 / 3])
    # bad input: a clear message and status 2
    assert main(['--gt', str(af), '--pred', str(pred), '--subset', 'nosuch']) == 2
    assert "no video in subset 'nosuch'" in capsys.readouterr().err
    (tmp_path / 'bad.json').write_text(json.dumps({'results': {'v1': [{'segment': [0, 1], 'score': 1}]}}))
    assert main(['--gt', str(af), '--pred', str(tmp_path / 'bad.json')]) == 2
    assert "results['v1'][0]" in capsys.readouterr().err


def test_metric_counts_a_video_gathered_twice_once(tmp_path):
    """The hand-derived numbers of the CLI test above through the mmengine metric, also when a video's result arrives
    twice (a sampler's padding left in the gathered results): counted twice, v1's detections would add false
    positives."""
    from tasks.localization.metric import TADmAPMetric

    af, _, _ = write_gt_files(tmp_path)
    ids = {'A': 0, 'B': 1, 'C': 2}
    results = []
    for vid, dets in predictions().items():
        results.append({'video_id': vid, 'segments': [d['segment'] for d in dets],
                        'scores': [d['score'] for d in dets], 'labels': [ids[d['label']] for d in dets]})
    expected = np.mean([(34 / 45 + 1) / 2] * 4 + [(5 / 9 + 1) / 2])
    for given in (results, [*results, results[0]]):
        metric = TADmAPMetric(ann_file=str(af), subset='test', random_baseline=False)
        metric.process({}, given)
        assert metric.evaluate(len(given))['tad/mAP'] == pytest.approx(expected)
