"""AVA csv, label map, excluded timestamps and proposals, against hand-written files (broken ones too)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from tasks.data.annotations import (AVABox, group_by_keyframe, read_ava_csv, read_ava_excluded, read_ava_label_map,
                                    read_ava_proposals)


def test_ava_csv_merges_rows_into_multi_label_boxes(write):
    path = write('ava_val_v2.2.csv', """
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
def test_ava_csv_errors(tmp_path, row, match, raises_at):
    path = tmp_path / 'ava.csv'
    path.write_text('vid,0902,0.1,0.2,0.3,0.4,1,0\n\n' + row + '\n')
    if match is None:  # same box as row 1: merged, and the first row's person id is kept
        assert [(b.action_ids, b.person_id) for b in read_ava_csv(path)] == [((1, 3), 0)]
    else:
        with raises_at(path, 3, match):
            read_ava_csv(path)


def test_ava_label_map_both_layouts(write):
    item = write('ava_action_list_v2.2_for_activitynet_2019.pbtxt', """
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
    label = write('ava_action_list_v2.2.pbtxt', """
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
def test_ava_label_map_errors(tmp_path, text, line, match, raises_at):
    path = tmp_path / 'map.pbtxt'
    path.write_text(text)
    with raises_at(path, line, match):
        read_ava_label_map(path)


def test_ava_excluded_timestamps(write, raises_at):
    path = write('excluded.csv', """
        -5KQ66BBWC4,0934
        053oq2xB3oU,1200
    """)
    assert read_ava_excluded(path) == {('-5KQ66BBWC4', 934), ('053oq2xB3oU', 1200)}
    bad = write('bad.csv', 'a,0934\nb,0935,1\n')
    with raises_at(bad, 2, 'expected 2 fields'):
        read_ava_excluded(bad)


def test_ava_proposals(tmp_path, raises_at):
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
