"""Annotation readers against small hand-written files in the real formats, including broken ones.

Every expected value below is read off the fixture text by hand; malformed files must raise AnnotationError naming the
file and the right line (or key).
"""
from __future__ import annotations

import pickle
import re
import textwrap

import numpy as np
import pytest

from tasks.data.annotations import (
    AnnotationError,
    AVABox,
    group_by_keyframe,
    read_actionformer_json,
    read_ava_csv,
    read_ava_excluded,
    read_ava_label_map,
    read_ava_proposals,
    read_class_map,
    read_kinetics_csv,
    read_opentad_json,
    read_ssv2_labels,
    read_ssv2_split,
    read_thumos_txt,
    read_video_list,
)


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip('\n'))
    return path


def raises_at(path, line: int | None = None, match: str = '', key: str | None = None):
    """pytest.raises for an AnnotationError that names ``path`` and ``line``/``key``."""
    where = f', line {line}:' if line is not None else (f", key '{key}':" if key is not None else ':')
    return pytest.raises(AnnotationError, match=re.escape(f'{path}{where}') + f'.*{match}')


# ----------------------------------------------------------------------------------------------------------------------
# video lists


def test_video_list_and_rawframe_list(tmp_path):
    videos = write(tmp_path, 'list.txt', """
        a/b.mp4 3
        c.mp4 0

        d.mp4 12
    """)
    got = read_video_list(videos)
    assert [(e.path, e.label, e.total_frames, e.line) for e in got] == [
        ('a/b.mp4', 3, None, 1), ('c.mp4', 0, None, 2), ('d.mp4', 12, None, 4)]
    assert read_video_list(videos, root='/data/k400')[0].path == '/data/k400/a/b.mp4'

    frames = write(tmp_path, 'frames.txt', """
        smth/1 47 173
        smth/2 30 0
    """)
    got = read_video_list(frames, format='rawframes')
    assert [(e.path, e.total_frames, e.label) for e in got] == [('smth/1', 47, 173), ('smth/2', 30, 0)]


@pytest.mark.parametrize('text, fmt, line, match', [
    ('a.mp4 1\nb.mp4\n', 'video', 2, 'expected 2 fields'),
    ('a.mp4 1\nmy video.mp4 2\n', 'video', 2, 'expected 2 fields'),  # mmaction2 splits on spaces too
    ('a.mp4 x\n', 'video', 1, 'label must be an integer'),
    ('a.mp4 1\n\nb.mp4 -1\n', 'video', 3, 'label must be >= 0'),
    ('a.mp4 5\n', 'video', 1, 'out of range for 5 classes'),
    ('f/1 10 2\nf/2 0 1\n', 'rawframes', 2, 'total_frames must be >= 1'),
    ('f/1 2\n', 'rawframes', 1, 'expected 3 fields'),
])
def test_video_list_errors(tmp_path, text, fmt, line, match):
    path = tmp_path / 'bad.txt'
    path.write_text(text)
    with raises_at(path, line, match):
        read_video_list(path, format=fmt, num_classes=5)


def test_missing_file_is_an_annotation_error(tmp_path):
    with raises_at(tmp_path / 'nope.txt', match='file not found'):
        read_video_list(tmp_path / 'nope.txt')


# ----------------------------------------------------------------------------------------------------------------------
# Something-Something v2

SSV2_LABELS = """
{
 "Holding something next to something": "0",
 "Putting something into something": "1",
 "Moving something up": "2"
}
"""

SSV2_TRAIN = """
[
 {"id": "78687", "label": "holding potato next to vicks vaporub bottle",
  "template": "Holding [something] next to [something]", "placeholders": ["potato", "vicks vaporub bottle"]},
 {"id": "42326", "label": "putting a pen into a cup", "template": "Putting [something] into [something]",
  "placeholders": ["a pen", "a cup"]},
 {"id": "100", "label": "moving cup up", "template": "Moving [something] up", "placeholders": ["cup"]}
]
"""


def test_ssv2_labels_and_split(tmp_path):
    labels = read_ssv2_labels(write(tmp_path, 'labels.json', SSV2_LABELS))
    assert labels == {'Holding something next to something': 0, 'Putting something into something': 1,
                      'Moving something up': 2}
    got = read_ssv2_split(write(tmp_path, 'train.json', SSV2_TRAIN), tmp_path / 'labels.json')
    assert [(e.id, e.label, e.template) for e in got] == [
        ('78687', 0, 'Holding something next to something'),
        ('42326', 1, 'Putting something into something'),
        ('100', 2, 'Moving something up')]
    assert got[0].placeholders == ('potato', 'vicks vaporub bottle')
    assert got[1].text == 'putting a pen into a cup'
    # the official test.json has ids only
    test = read_ssv2_split(write(tmp_path, 'test.json', '[{"id": "1"}, {"id": "2"}]'), labels)
    assert [(e.id, e.label, e.template) for e in test] == [('1', None, None), ('2', None, None)]


def test_ssv2_errors_name_the_line(tmp_path):
    labels = read_ssv2_labels(write(tmp_path, 'labels.json', SSV2_LABELS))
    bad_class = write(tmp_path, 'a.json', """
        [
         {"id": "1", "template": "Moving [something] up"},
         {"id": "2",
          "template": "Moving [something] sideways"}
        ]
    """)
    with raises_at(bad_class, 3, "class 'Moving something sideways'.*not in the label map"):
        read_ssv2_split(bad_class, labels)
    dup = write(tmp_path, 'b.json', '[\n{"id": "7"},\n{"id": "8"},\n{"id": 7}\n]\n')
    with raises_at(dup, 4, "id '7' already used on line 2"):
        read_ssv2_split(dup, labels)
    no_id = write(tmp_path, 'c.json', '[\n{"id": "7"},\n{"template": "Moving [something] up"}\n]\n')
    with raises_at(no_id, 3, 'missing or invalid "id"'):
        read_ssv2_split(no_id, labels)
    syntax = write(tmp_path, 'd.json', '[\n{"id": "7"},\n{"id": "8",}\n]\n')
    with raises_at(syntax, 3, 'invalid JSON'):
        read_ssv2_split(syntax, labels)
    bad_labels = write(tmp_path, 'labels2.json', '{\n "a": "0",\n "b": "x",\n "c": "1"\n}\n')
    with raises_at(bad_labels, 3, "class 'b': id must be an integer"):
        read_ssv2_labels(bad_labels)
    shared = write(tmp_path, 'labels3.json', '{\n "a": "0",\n "b": "1",\n "c": "1"\n}\n')
    with raises_at(shared, 4, "id 1 already used by 'b'"):
        read_ssv2_labels(shared)


# ----------------------------------------------------------------------------------------------------------------------
# Kinetics


def test_kinetics_csv(tmp_path):
    path = write(tmp_path, 'train.csv', """
        label,youtube_id,time_start,time_end,split,is_cc
        abseiling,---QUuC4vJs,3,13,train,0
        "passing American football (in game), twice",--GkrdYZ9Tc,0,10,train,0
        zumba,-0ZJdh9T7Ss,12.0,22.0,train,1
    """)
    got = read_kinetics_csv(path)
    assert [(e.label, e.youtube_id, e.time_start, e.time_end, e.split, e.line) for e in got] == [
        ('abseiling', '---QUuC4vJs', 3, 13, 'train', 2),
        ('passing American football (in game), twice', '--GkrdYZ9Tc', 0, 10, 'train', 3),
        ('zumba', '-0ZJdh9T7Ss', 12, 22, 'train', 4)]
    assert got[0].clip_name == '---QUuC4vJs_000003_000013'
    test = read_kinetics_csv(write(tmp_path, 'test.csv', 'youtube_id,time_start,time_end,split\nabc,0,10,test\n'))
    assert test[0].label is None and test[0].clip_name == 'abc_000000_000010'


@pytest.mark.parametrize('body, line, match', [
    ('label,youtube_id,time_start,time_end,split\na,x,0,10,train\nb,y,0,10\n', 3, 'expected 5 fields'),
    ('label,youtube_id,time_start,time_end,split\na,x,10,10,train\n', 2, 'time_end 10 is not after'),
    ('label,youtube_id,time_start,time_end,split\na,x,0,1.5,train\n', 2, 'time_end must be an integer'),
    ('label,youtube_id,start,time_end,split\na,x,0,10,train\n', 1, r"lacks the column\(s\) \['time_start'\]"),
])
def test_kinetics_errors(tmp_path, body, line, match):
    path = tmp_path / 'k.csv'
    path.write_text(body)
    with raises_at(path, line, match):
        read_kinetics_csv(path)


# ----------------------------------------------------------------------------------------------------------------------
# AVA


def test_ava_csv_merges_rows_into_multi_label_boxes(tmp_path):
    path = write(tmp_path, 'ava_val_v2.2.csv', """
        -5KQ66BBWC4,0902,0.077,0.151,0.283,0.811,80,1
        -5KQ66BBWC4,0902,0.332,0.194,0.481,0.891,9,0
        -5KQ66BBWC4,0902,0.077,0.151,0.283,0.811,12,1
        -5KQ66BBWC4,0902,0.332,0.194,0.481,0.891,80,0
        -5KQ66BBWC4,0902,0.0770,0.1510,0.283,0.811,12,1
        -5KQ66BBWC4,0903,0.077,0.151,0.283,0.811,79,1
        1j20qq1JyX4,1798,0.0,0.5,1.0,1.0,17
    """)
    got = read_ava_csv(path)
    assert got == [
        AVABox('-5KQ66BBWC4', 902, (0.077, 0.151, 0.283, 0.811), (12, 80), 1, 1),
        AVABox('-5KQ66BBWC4', 902, (0.332, 0.194, 0.481, 0.891), (9, 80), 0, 2),
        AVABox('-5KQ66BBWC4', 903, (0.077, 0.151, 0.283, 0.811), (79,), 1, 6),
        AVABox('1j20qq1JyX4', 1798, (0.0, 0.5, 1.0, 1.0), (17,), -1, 7),
    ]
    hot = got[0].multi_hot(81)
    assert hot.shape == (81,) and hot.dtype == np.float32
    assert np.flatnonzero(hot).tolist() == [12, 80]
    frames = group_by_keyframe(got)
    assert list(frames) == [('-5KQ66BBWC4', 902), ('-5KQ66BBWC4', 903), ('1j20qq1JyX4', 1798)]
    assert len(frames[('-5KQ66BBWC4', 902)]) == 2
    # only evaluated ids: the 903 box (79 only) and the 1798 box (17 only) disappear, 80 is dropped from the others;
    # boxes come in the order of their first kept row (box 1's first row has action 80)
    kept = read_ava_csv(path, keep_ids={9, 12})
    assert [(b.timestamp, b.action_ids) for b in kept] == [(902, (9,)), (902, (12,))]


@pytest.mark.parametrize('row, match', [
    ('vid,0902,0.1,0.2,1.2,0.4,3,0', r'x2 = 1.2 is outside \[0, 1\]'),
    ('vid,0902,0.5,0.2,0.3,0.4,3,0', 'x2 < x1'),
    ('vid,0902,0.1,0.2,0.3,0.4,3', None),  # 7 fields are accepted (no person id)
    ('vid,0902,0.1,0.2,0.3,0.4', 'expected 8 fields'),
    ('vid,902.5,0.1,0.2,0.3,0.4,3,0', 'timestamp must be an integer'),
    ('vid,0902,0.1,0.2,0.3,0.4,0,0', 'action_id must be >= 1'),
    ('vid,0902,0.1,nan,0.3,0.4,3,0', 'y1 must be finite'),
])
def test_ava_csv_errors(tmp_path, row, match):
    path = tmp_path / 'ava.csv'
    path.write_text('vid,0902,0.1,0.2,0.3,0.4,1,0\n\n' + row + '\n')
    if match is None:  # same box as row 1: merged, and the first row's person id is kept
        assert [(b.action_ids, b.person_id) for b in read_ava_csv(path)] == [((1, 3), 0)]
    else:
        with raises_at(path, 3, match):
            read_ava_csv(path)


def test_ava_label_map_both_layouts(tmp_path):
    item = write(tmp_path, 'ava_action_list_v2.2_for_activitynet_2019.pbtxt', """
        item {
          name: "bend/bow (at the waist)"
          id: 1
        }
        # a comment
        item { name: "crouch/kneel" id: 3 }
        item {
          name: "say \\"hi\\""
          id: 80
        }
    """)
    assert read_ava_label_map(item) == {1: 'bend/bow (at the waist)', 3: 'crouch/kneel', 80: 'say "hi"'}
    label = write(tmp_path, 'ava_action_list_v2.2.pbtxt', """
        label {
          name: "bend/bow (at the waist)"
          label_id: 1
          label_type: PERSON_MOVEMENT
        }
        label {
          name: "crawl"
          label_id: 2
          label_type: PERSON_MOVEMENT
        }
    """)
    assert read_ava_label_map(label) == {1: 'bend/bow (at the waist)', 2: 'crawl'}


@pytest.mark.parametrize('text, line, match', [
    ('item {\n  name: "a"\n  id: 1\n}\nitem {\n  name: "b"\n}\n', 5, 'lacks a "name" or an "id"'),
    ('item {\n  name: "a"\n  id: 1\n}\nitem {\n  name: "b"\n  id: 1\n}\n', 7, "id 1 .* already used by 'a'"),
    ('item {\n  name: "a"\n  id: 1\n\nitem {\n', 5, "expected ':', got '{'"),
    ('item {\n  name: "a"\n  id: 1.5\n}\n', 3, 'id must be an integer'),
    ('item {\n  name: "a"\n  id: 1\n}\nthing {\n}\n', 5, "expected 'item' or 'label'"),
    ('item {\n  name: "a"\n  id: 1\n}\n@\n', 5, "unexpected character '@'"),
])
def test_ava_label_map_errors(tmp_path, text, line, match):
    path = tmp_path / 'map.pbtxt'
    path.write_text(text)
    with raises_at(path, line, match):
        read_ava_label_map(path)


def test_ava_excluded_timestamps(tmp_path):
    path = write(tmp_path, 'excluded.csv', """
        -5KQ66BBWC4,0934
        053oq2xB3oU,1200
    """)
    assert read_ava_excluded(path) == {('-5KQ66BBWC4', 934), ('053oq2xB3oU', 1200)}
    bad = write(tmp_path, 'bad.csv', 'a,0934\nb,0935,1\n')
    with raises_at(bad, 2, 'expected 2 fields'):
        read_ava_excluded(bad)


def test_ava_proposals(tmp_path):
    path = tmp_path / 'proposals.pkl'
    data = {
        '-5KQ66BBWC4,0902': np.array([[0.1, 0.2, 0.3, 0.4, 0.99], [0.0, 0.0, 1.0, 1.0, 0.5]], dtype=np.float64),
        '-5KQ66BBWC4,0903': [[0.1, 0.2, 0.3, 0.4]],
        'abc,1798': np.zeros((0, 5)),
    }
    path.write_bytes(pickle.dumps(data))
    got = read_ava_proposals(path)
    assert set(got) == {('-5KQ66BBWC4', 902), ('-5KQ66BBWC4', 903), ('abc', 1798)}
    assert got[('-5KQ66BBWC4', 902)].dtype == np.float32
    np.testing.assert_allclose(got[('-5KQ66BBWC4', 902)], data['-5KQ66BBWC4,0902'], rtol=1e-6)
    assert got[('-5KQ66BBWC4', 903)].shape == (1, 4) and got[('abc', 1798)].shape == (0, 5)

    path.write_bytes(pickle.dumps({'vid,0902': np.zeros((2, 5)), 'vid-0903': np.zeros((1, 5))}))
    with raises_at(path, key='vid-0903', match='video_id,%04d'):
        read_ava_proposals(path)
    path.write_bytes(pickle.dumps({'vid,0902': np.zeros((2, 3))}))
    with raises_at(path, key='vid,0902', match=r'\(N, 4\) or \(N, 5\).*\(2, 3\)'):
        read_ava_proposals(path)
    path.write_bytes(pickle.dumps([1, 2]))
    with raises_at(path, match='expected a dict'):
        read_ava_proposals(path)


# ----------------------------------------------------------------------------------------------------------------------
# THUMOS14

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


def test_actionformer_json(tmp_path):
    got = read_actionformer_json(write(tmp_path, 'thumos14.json', ACTIONFORMER))
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
def test_actionformer_errors(tmp_path, old, new, line, match):
    assert old in ACTIONFORMER
    path = write(tmp_path, 'bad.json', ACTIONFORMER.replace(old, new))
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


def test_opentad_json_with_and_without_class_map(tmp_path):
    path = write(tmp_path, 'thumos_14_anno.json', OPENTAD)
    got = read_opentad_json(path)  # default map: the sorted labels, Ambiguous excluded
    assert got.classes == {0: 'BaseballPitch', 1: 'Billiards'}
    val = got.videos['video_validation_0000051']
    assert (val.subset, val.num_frames, val.fps) == ('training', 5094, None)
    assert [(s.label, s.label_id) for s in val.segments] == [('Billiards', 1)]
    assert val.ambiguous == [(5.0, 6.0)]
    class_map = write(tmp_path, 'category_idx.txt', 'BaseballPitch\nBasketballDunk\nBilliards\n')
    assert read_class_map(class_map) == ['BaseballPitch', 'BasketballDunk', 'Billiards']
    got = read_opentad_json(path, class_map)
    assert [(s.label, s.label_id) for s in got.videos['video_validation_0000051'].segments] == [('Billiards', 2)]
    assert [v.video_id for v in got.subset('training')] == ['video_validation_0000051']
    with raises_at(path, 17, "label 'BaseballPitch' is not in the class map"):
        read_opentad_json(path, ['Billiards'])
    bad = write(tmp_path, 'bad.json', OPENTAD.replace('"frame": 838', '"frame": "838x"'))
    with raises_at(bad, 12, 'frame must be an integer'):
        read_opentad_json(bad)
    dup = write(tmp_path, 'dup_map.txt', 'A\nB\nA\n')
    with raises_at(dup, 3, "class 'A' already listed on line 1"):
        read_class_map(dup)


def test_thumos_official_txt(tmp_path):
    path = write(tmp_path, 'Ambiguous_test.txt', """
        video_test_0000004  0.2  1.1
        video_test_0000026 15.3 17.0
    """)
    assert read_thumos_txt(path) == [('video_test_0000004', 0.2, 1.1), ('video_test_0000026', 15.3, 17.0)]
    bad = write(tmp_path, 'bad.txt', 'v 1.0 2.0\nv 3.0\n')
    with raises_at(bad, 2, 'expected 3 fields'):
        read_thumos_txt(bad)


def test_annotation_error_survives_pickling(tmp_path):
    # DataLoader workers send exceptions to the main process by pickling them
    err = AnnotationError(tmp_path / 'x.csv', 'bad thing', line=7)
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, ValueError)
    assert (back.line, back.reason, str(back)) == (7, 'bad thing', f'{tmp_path / "x.csv"}, line 7: bad thing')
