"""What the AVA evaluator does with detections no model should give and with detections it cannot score
(docs/ava.md#evaluation): a NaN or infinite score or coordinate is refused naming the keyframe; rows of classes outside
the label map are ignored; rows on keyframes without ground truth are false positives (official) or ignored (mmaction2).
Property-based (hypothesis) and by example; the submission csv reader's fuzzing is in
tests/data/annotations/test_fuzz_readers.py."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.data.annotations import AnnotationError, AVABox
from tasks.detection.evaluation import DetectionRow, evaluate_ava, read_ava_detections
from tasks.detection.metric import VideoMAEv2AVAMetric

EXAMPLES = 100
LABEL_MAP = {1: 'stand', 2: 'sit'}
GT = [AVABox('v', 902, (0.1, 0.1, 0.5, 0.5), (1,), 0), AVABox('v', 902, (0.5, 0.5, 0.9, 0.9), (2,), 1),
      AVABox('v', 903, (0.2, 0.2, 0.6, 0.6), (1, 2), 0)]


def test_a_non_finite_detection_is_refused_naming_its_keyframe():
    good = DetectionRow('v', 902, 0.1, 0.1, 0.5, 0.5, 1, 0.9)
    # before: the NaN was ranked like a number (first, by np.argsort(scores)[::-1]) and a NaN box matched nothing
    for bad in (good._replace(score=math.nan), good._replace(x2=math.inf)):
        for protocol in ('official', 'mmaction2'):
            with pytest.raises(ValueError, match='detection v,0902 action 1: score and box must be finite'):
                evaluate_ava(GT, [good, bad], LABEL_MAP, protocol=protocol)
    # a row of a class outside the label map is ignored, whatever it holds
    ignored = good._replace(action_id=3, score=math.nan)
    assert evaluate_ava(GT, [good, ignored], LABEL_MAP).ap == evaluate_ava(GT, [good], LABEL_MAP).ap


def test_the_submission_reader_names_the_file_and_line_of_a_non_finite_number(tmp_path):
    path = tmp_path / 'ava_predictions.csv'
    path.write_text('v,0902,0.1,0.1,0.5,0.5,1,0.9\nv,0902,0.1,0.1,0.5,0.5,2,nan\n')
    with pytest.raises(AnnotationError, match=f"{path}, line 2: score must be finite, got 'nan'"):
        read_ava_detections(path)


def test_the_metric_refuses_a_model_output_with_nan(tmp_path):
    (tmp_path / 'gt.csv').write_text('v,0902,0.1,0.1,0.5,0.5,1,0\n')
    (tmp_path / 'map.pbtxt').write_text('item { name: "stand" id: 1 }\n')
    metric = VideoMAEv2AVAMetric(str(tmp_path / 'gt.csv'), str(tmp_path / 'map.pbtxt'), baseline_seeds=0)
    sample = {'video_id': 'v', 'timestamp': 902, 'boxes': [[0.1, 0.1, 0.5, 0.5]], 'scores': [[np.nan]]}
    # before: NaN >= action_thr is False, so the row left the csv and the mAP without a word
    with pytest.raises(ValueError, match='keyframe v,0902 has non-finite boxes or scores'):
        metric.process({}, [sample])


BOX = st.sampled_from([(0.1, 0.1, 0.5, 0.5), (0.5, 0.5, 0.9, 0.9), (0.2, 0.2, 0.6, 0.6), (0.12, 0.1, 0.5, 0.52),
                       (0.5, 0.1, 0.1, 0.5), (0.3, 0.3, 0.3, 0.3), (0.1, 0.1, math.nan, 0.5)])
ROW = st.builds(lambda vid, ts, box, action, score: DetectionRow(vid, ts, *box, action, score),
                st.sampled_from(['v', 'w']), st.sampled_from([902, 903, 904]), BOX, st.sampled_from([1, 2, 3]),
                st.sampled_from([0.1, 0.5, 0.5, 0.9, -1.0, math.nan, math.inf]))


def same(a: dict, b: dict) -> bool:
    return all(a[c] == b[c] or (math.isnan(a[c]) and math.isnan(b[c])) for c in a)


@settings(max_examples=EXAMPLES, deadline=2000, derandomize=True, database=None)
@given(st.lists(ROW, max_size=8))
def test_detections_are_refused_or_scored_by_the_documented_rules(rows):
    finite = [r for r in rows if all(map(math.isfinite, (r.x1, r.y1, r.x2, r.y2, r.score)))]
    if any(r not in finite and r.action_id in LABEL_MAP for r in rows):
        with pytest.raises(ValueError, match='score and box must be finite'):
            evaluate_ava(GT, rows, LABEL_MAP)
        return
    result = evaluate_ava(GT, rows, LABEL_MAP)
    assert all(math.isnan(v) or 0 <= v <= 1 for v in result.ap.values()) and 0 <= result.mAP <= 1
    # rows of classes outside the label map change nothing
    in_map = [r for r in rows if r.action_id in LABEL_MAP]
    assert same(result.ap, evaluate_ava(GT, in_map, LABEL_MAP).ap)
    # official: rows on keyframes without ground truth are false positives, so leaving them out never lowers an AP
    on_gt = [r for r in in_map if (r.video_id, r.timestamp) in {('v', 902), ('v', 903)}]
    without = evaluate_ava(GT, on_gt, LABEL_MAP).ap
    assert all(result.ap[c] <= without[c] + 1e-12 for c in LABEL_MAP)
    # mmaction2 ignores those keyframes (and refuses reversed boxes, so only valid ones here)
    valid = [r for r in in_map if r.x1 <= r.x2 and r.y1 <= r.y2]
    assert same(evaluate_ava(GT, valid, LABEL_MAP, protocol='mmaction2').ap,
                evaluate_ava(GT, [r for r in valid if r in on_gt], LABEL_MAP, protocol='mmaction2').ap)
