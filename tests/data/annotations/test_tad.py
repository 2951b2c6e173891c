"""THUMOS14 annotations (ActionFormer json, OpenTAD json and class map, official txt), against hand-written files."""
from __future__ import annotations

import pytest

from tasks.data.annotations import (class_names, detect_format, read_actionformer_json, read_annotations,
                                    read_class_names, read_opentad_json, read_thumos_txt, resolve_subset)

ACTIONFORMER = """
{
  "version": "Thumos14-30fps",
  "database": {
    "video_validation_0000051": {
      "subset": "Validation",
      "duration": 169.79,
      "fps": 30.0,
      "annotations": [
        {"label": "Billiards", "segment": [2.2, 3.9], "segment(frames)": [66.0, 117.0], "label_id": 2},
        {"label": "CliffDiving", "segment": [10.0, 12.5], "segment(frames)": [300.0, 375.0], "label_id": 4},
        {"label": "Diving", "segment": [10.0, 12.5], "segment(frames)": [300.0, 375.0], "label_id": 7}
      ]
    },
    "video_test_0000004": {
      "subset": "Test",
      "duration": 33.5,
      "fps": 25.0,
      "annotations": [
        {"label": "Ambiguous", "segment": [0.2, 1.1]},
        {"label": "Billiards", "segment": [20.0, 26.0], "segment(frames)": [500.0, 650.0], "label_id": 2}
      ]
    }
  }
}
"""


def test_actionformer_json(write):
    got = read_actionformer_json(write('thumos14.json', ACTIONFORMER))
    assert got.classes == {2: 'Billiards', 4: 'CliffDiving', 7: 'Diving'}
    val = got.videos['video_validation_0000051']
    assert (val.subset, val.duration, val.fps, val.line) == ('Validation', 169.79, 30.0, 4)
    assert [(s.label, s.label_id, s.start, s.end) for s in val.segments] == [
        ('Billiards', 2, 2.2, 3.9), ('CliffDiving', 4, 10.0, 12.5), ('Diving', 7, 10.0, 12.5)]
    test = got.videos['video_test_0000004']
    assert test.ambiguous == [(0.2, 1.1)] and [s.label for s in test.segments] == ['Billiards']
    assert [v.video_id for v in got.subset('test')] == ['video_test_0000004']


@pytest.mark.parametrize('old, new, line, match', [
    ('"label": "Diving", "segment": [10.0, 12.5], "segment(frames)": [300.0, 375.0], "label_id": 7',
     '"label": "Diving", "segment": [10.0, 12.5], "segment(frames)": [300.0, 375.0], "label_id": 2',
     11, "label 'Diving' with id 2 contradicts"),
    ('"segment": [20.0, 26.0]', '"segment": [20.0, 16.0]', 20, r'segment \[20.0, 16.0\] .*ends before it starts'),
    ('"duration": 33.5,', '', 14, "video 'video_test_0000004': missing \"duration\""),
    ('"fps": 25.0', '"fps": 0', 14, 'fps must be > 0'),
    ('"video_test_0000004": {', '"video_validation_0000051": {', 14, "duplicate key 'video_validation_0000051'"),
])
def test_actionformer_errors(old, new, line, match, write, raises_at):
    assert old in ACTIONFORMER
    path = write('bad.json', ACTIONFORMER.replace(old, new))
    with raises_at(path, line, match):
        read_actionformer_json(path)


OPENTAD = """
{
  "database": {
    "video_validation_0000051": {
      "subset": "training",
      "duration": 169.79,
      "frame": 5094,
      "annotations": [
        {"label": "Billiards", "segment": [2.2, 3.9]},
        {"label": "Ambiguous", "segment": [5.0, 6.0]}
      ]
    },
    "video_test_0000004": {
      "subset": "validation",
      "duration": 33.5,
      "frame": 838,
      "annotations": [
        {"label": "BaseballPitch", "segment": [20.0, 26.0]}
      ]
    }
  }
}
"""


def test_opentad_json_with_and_without_class_map(write, raises_at):
    path = write('thumos_14_anno.json', OPENTAD)
    got = read_opentad_json(path)  # default map: the sorted labels, Ambiguous excluded
    assert got.classes == {0: 'BaseballPitch', 1: 'Billiards'}
    val = got.videos['video_validation_0000051']
    assert (val.subset, val.num_frames, val.fps) == ('training', 5094, None)
    assert [(s.label, s.label_id) for s in val.segments] == [('Billiards', 1)]
    assert val.ambiguous == [(5.0, 6.0)]
    class_map = write('category_idx.txt', 'BaseballPitch\nBasketballDunk\nBilliards\n')
    assert read_class_names(class_map) == ['BaseballPitch', 'BasketballDunk', 'Billiards']
    got = read_opentad_json(path, class_map)
    assert [(s.label, s.label_id) for s in got.videos['video_validation_0000051'].segments] == [('Billiards', 2)]
    assert [v.video_id for v in got.subset('training')] == ['video_validation_0000051']
    with raises_at(path, 17, "label 'BaseballPitch' is not in the class map"):
        read_opentad_json(path, ['Billiards'])
    bad = write('bad.json', OPENTAD.replace('"frame": 838', '"frame": "838x"'))
    with raises_at(bad, 12, 'frame must be an integer'):
        read_opentad_json(bad)
    dup = write('dup_map.txt', 'A\nB\nA\n')
    with raises_at(dup, 3, "class 'A' is listed twice \\(first on line 1\\)"):
        read_class_names(dup)


def test_thumos_official_txt(write, raises_at):
    path = write('Ambiguous_test.txt', """
        video_test_0000004  0.2  1.1
        video_test_0000026 15.3 17.0
    """)
    assert read_thumos_txt(path) == [('video_test_0000004', 0.2, 1.1), ('video_test_0000026', 15.3, 17.0)]
    bad = write('bad.txt', 'v 1.0 2.0\nv 3.0\n')
    with raises_at(bad, 2, 'expected 3 fields'):
        read_thumos_txt(bad)


def test_format_is_sniffed_from_the_content(write, tmp_path):
    af = write('a.json', ACTIONFORMER)
    ot = write('o.json', OPENTAD)
    # per-video fps (ActionFormer) or frame count (OpenTAD); without either, an annotation's label_id decides
    bare_af = write('b.json', '{"database": {"v": {"subset": "Test", "duration": 5, '
                              '"annotations": [{"label": "A", "segment": [0, 1], "label_id": 0}]}}}')
    bare_ot = write('c.json', '{"database": {"v": {"subset": "validation", "duration": 5, '
                              '"annotations": [{"label": "A", "segment": [0, 1]}]}}}')
    assert [detect_format(p) for p in (af, ot, bare_af, bare_ot)] == ['actionformer', 'opentad', 'actionformer',
                                                                      'opentad']
    assert detect_format(ot, 'actionformer') == 'actionformer'  # a forced format is not second-guessed
    # unreadable files go to the ActionFormer reader, whose error names the file
    assert detect_format(tmp_path / 'missing.json') == 'actionformer'
    with pytest.raises(ValueError, match="ann_format must be 'auto', 'actionformer' or 'opentad'"):
        detect_format(af, 'thumos')
    # read_annotations takes category_idx.txt from beside an OpenTAD json when there is one
    assert read_annotations(ot).classes == {0: 'BaseballPitch', 1: 'Billiards'}
    write('category_idx.txt', 'BaseballPitch\nBasketballDunk\nBilliards\n')
    assert read_annotations(ot).classes == {0: 'BaseballPitch', 1: 'BasketballDunk', 2: 'Billiards'}
    assert read_annotations(af).classes == {2: 'Billiards', 4: 'CliffDiving', 7: 'Diving'}


def test_class_names_and_subsets(write, raises_at):
    path = write('thumos14.json', ACTIONFORMER)
    ann = read_actionformer_json(path)
    # ids 2, 4, 7 only: a class map must fill the gaps, and agree with the file
    with raises_at(path, match=r'class ids \[2, 4, 7\] are not 0..2'):
        class_names(ann, path=path)
    names = ['a', 'b', 'Billiards', 'c', 'CliffDiving', 'd', 'e', 'Diving']
    assert class_names(ann, names, path) == names
    with raises_at(path, match=r"label ids/names \{7: 'Diving'\} disagree"):
        class_names(ann, names[:7] + ['Dive'], path)
    # THUMOS14 trains on its validation videos and tests on its test videos; OpenTAD renames both subsets
    assert resolve_subset(ann, 'train', 'actionformer') == ['validation']
    assert resolve_subset(ann, 'TEST', 'actionformer') == ['test']
    ot = read_opentad_json(write('o.json', OPENTAD))
    assert resolve_subset(ot, 'train', 'opentad') == ['training']
    assert resolve_subset(ot, 'test', 'opentad') == ['validation']
    with raises_at(path, match=r"no video in subset 'val'.*subsets \['test', 'validation'\]"):
        resolve_subset(ann, 'val', 'actionformer', path)
