"""What the THUMOS14 evaluator does with predictions no model should give and with predictions it cannot score
(docs/thumos14.md#evaluation): NaN, infinity, reversed segments and malformed entries are refused naming the file, line,
video and entry; zero-length segments are false positives; videos outside the ground truth and classes without
instances are ignored and counted. Property-based (hypothesis) and by example; the reader's fuzzing is in
tests/data/annotations/test_fuzz_readers.py."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.data.annotations import AnnotationError
from tasks.localization.evaluation import GroundTruth, evaluate_detection, read_predictions

EXAMPLES = 100


def gt():
    """Class A twice in v1, B once in v2; C is a class without instances in this subset."""
    return GroundTruth.from_instances({'v1': [(0, 10, 'A'), (20, 30, 'A')], 'v2': [(5, 15, 'B')]},
                                      classes=['A', 'B', 'C'])


def entry(segment='[0, 10]', label='"A"', score='0.9'):
    return f'{{"segment": {segment}, "label": {label}, "score": {score}}}'


@pytest.mark.parametrize('text, line, match', [
    # before: ValueError "... has a non-finite value" without the line
    ('{"results": {\n"v1": [\n' + entry() + ',\n' + entry(score='NaN') + '\n]}}', 4,
     r"results\['v1'\]\[1\]: score must be finite, got nan"),
    # before: accepted (a false positive that can never match)
    ('{"results": {\n"v1": [\n' + entry(segment='[5, 1]') + '\n]}}', 3,
     r"results\['v1'\]\[0\]: segment \[5.0, 1.0\] ends before it starts"),
    # before: accepted as the class "3", so ignored without a word
    ('{"v1": [\n' + entry(label='3') + '\n]}', 2, r"results\['v1'\]\[0\]: \"label\" must be a class name, got 3"),
    # before: OverflowError
    ('{"results": {"v1": [\n' + entry(segment='[1' + '0' * 400 + ', 2]') + ']}}', 2,
     r"results\['v1'\]\[0\]: segment start must be finite, got 10{34}\.\.\.00$"),
    ('{"results": {"v1": [\n' + entry(segment='"0-10"') + ']}}', 2,
     r"results\['v1'\]\[0\]: \"segment\" must be \[start, end\], got '0-10'"),
    ('{"results": {"v1": [\n{"segment": [0, 1], "score": 1}]}}', 2, r"results\['v1'\]\[0\] needs \"segment\""),
    ('{"results": {"v1": [],\n"v1": []}}', 2, "duplicate key 'v1'"),   # before: the second list silently won
    ('{"results": [\n]}', 1, r'expected \{"results"'),
    ('\n' + '[' * 100_000, 2, 'invalid JSON: nested too deeply'),  # before: RecursionError
])
def test_prediction_file_errors_name_the_file_and_line(tmp_path, text, line, match):
    path = tmp_path / 'result.json'
    path.write_text(text)
    with pytest.raises(AnnotationError, match=re.escape(f'{path}, line {line}: ') + match):
        read_predictions(path)


def test_prediction_file_encoding_and_absence(tmp_path):
    path = tmp_path / 'result.json'
    path.write_bytes(b'\xef\xbb\xbf{"v1": [' + entry().encode() + b']}')  # before: refused ("Unexpected UTF-8 BOM")
    assert read_predictions(path) == {'v1': [{'segment': [0.0, 10.0], 'label': 'A', 'score': 0.9}]}
    path.write_bytes(b'{"v1": "\xff"}')  # before: UnicodeDecodeError
    with pytest.raises(AnnotationError, match=re.escape(f'{path}: not UTF-8 text')):
        read_predictions(path)
    with pytest.raises(AnnotationError, match=re.escape(f'{tmp_path / "none.json"}: file not found')):
        read_predictions(tmp_path / 'none.json')


def test_in_memory_predictions_are_held_to_the_same_rule():
    # before: a NaN score was sorted like any number (np.argsort puts it last) and a reversed segment was a silent FP
    for bad, match in (({'segment': [0, 10], 'label': 'A', 'score': float('nan')}, 'score must be finite, got nan'),
                       ({'segment': [10, 0], 'label': 'A', 'score': 0.5}, 'ends before it starts'),
                       ({'segment': [0, 10], 'score': 0.5}, 'needs "segment"')):
        preds = {'v1': [{'segment': [0, 10], 'label': 'A', 'score': 0.9}, bad]}
        with pytest.raises(ValueError, match=re.escape("<predictions>: results['v1'][1]") + '.*' + match):
            evaluate_detection(gt(), preds)


def test_a_zero_length_segment_is_a_false_positive():
    # by hand, class A (2 instances): FP (zero length, 0.9), TP (0.8), TP (0.7): precision 1/2, 2/3 at recall 1/2, 1;
    # the envelope is 2/3 over both recall steps -> AP 2/3; class B: one exact TP -> 1
    preds = {'v1': [{'segment': [5, 5], 'label': 'A', 'score': 0.9},
                    {'segment': [0, 10], 'label': 'A', 'score': 0.8},
                    {'segment': [20, 30], 'label': 'A', 'score': 0.7}],
             'v2': [{'segment': [5, 15], 'label': 'B', 'score': 0.5}]}
    result = evaluate_detection(gt(), preds)
    np.testing.assert_allclose(result.ap, [[2 / 3, 1.0]] * 5)


NUMBER = st.sampled_from([0.0, 5.0, 10.0, 12.5, 20.0, 30.0, -1.0, math.nan, math.inf, -math.inf])
ENTRY = st.fixed_dictionaries({'segment': st.lists(NUMBER, min_size=2, max_size=2),
                               'label': st.sampled_from(['A', 'B', 'C', 'Z']),
                               'score': st.sampled_from([0.1, 0.5, 0.5, 0.9, -3.0, math.nan, math.inf])})
PREDICTIONS = st.dictionaries(st.sampled_from(['v1', 'v2', 'v9']), st.lists(ENTRY, max_size=5), max_size=3)


def malformed(d) -> bool:
    (s, e), score = d['segment'], d['score']
    return not all(map(math.isfinite, (s, e, score))) or e < s


@settings(max_examples=EXAMPLES, deadline=2000, derandomize=True, database=None)
@given(PREDICTIONS)
def test_predictions_are_refused_or_scored_with_the_unscorable_ones_left_out(predictions):
    entries = [(vid, d) for vid, dets in predictions.items() for d in dets]
    if any(malformed(d) for _, d in entries):
        with pytest.raises(ValueError, match=re.escape('<predictions>: results[')):
            evaluate_detection(gt(), predictions)
        return
    result = evaluate_detection(gt(), predictions)
    # the documented rule: v9 is not in the ground truth, C has no instance and Z is no class; all three are
    # counted and scored as if they were not there
    assert result.ignored == {'videos': sum(v == 'v9' for v, _ in entries),
                              'classes': sum(v != 'v9' and d['label'] in 'CZ' for v, d in entries)}
    kept = {v: [d for d in dets if d['label'] in 'AB'] for v, dets in predictions.items() if v != 'v9'}
    np.testing.assert_array_equal(result.ap, evaluate_detection(gt(), kept).ap)
    assert result.classes == ['A', 'B'] and np.all((result.ap >= 0) & (result.ap <= 1))
