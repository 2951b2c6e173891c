"""mmaction2 video / raw-frame lists and the Kinetics csv, against hand-written files (broken ones too)."""
from __future__ import annotations

import pytest

from tasks.data.annotations import read_kinetics_csv, read_video_list


def test_video_list_and_rawframe_list(write):
    videos = write('list.txt', """
        a/b.mp4 3
        c.mp4 0

        d.mp4 12
    """)
    got = read_video_list(videos)
    assert [(e.path, e.label, e.total_frames, e.line) for e in got] == [
        ('a/b.mp4', 3, None, 1), ('c.mp4', 0, None, 2), ('d.mp4', 12, None, 4)]
    assert read_video_list(videos, root='/data/k400')[0].path == '/data/k400/a/b.mp4'

    frames = write('frames.txt', """
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
def test_video_list_errors(tmp_path, text, fmt, line, match, raises_at):
    path = tmp_path / 'bad.txt'
    path.write_text(text)
    with raises_at(path, line, match):
        read_video_list(path, format=fmt, num_classes=5)


def test_missing_file_is_an_annotation_error(tmp_path, raises_at):
    with raises_at(tmp_path / 'nope.txt', match='file not found'):
        read_video_list(tmp_path / 'nope.txt')


def test_kinetics_csv(write):
    path = write('train.csv', """
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
    test = read_kinetics_csv(write('test.csv', 'youtube_id,time_start,time_end,split\nabc,0,10,test\n'))
    assert test[0].label is None and test[0].clip_name == 'abc_000000_000010'


@pytest.mark.parametrize('body, line, match', [
    ('label,youtube_id,time_start,time_end,split\na,x,0,10,train\nb,y,0,10\n', 3, 'expected 5 fields'),
    ('label,youtube_id,time_start,time_end,split\na,x,10,10,train\n', 2, 'time_end 10 is not after'),
    ('label,youtube_id,time_start,time_end,split\na,x,0,1.5,train\n', 2, 'time_end must be an integer'),
    ('label,youtube_id,start,time_end,split\na,x,0,10,train\n', 1, r"lacks the column\(s\) \['time_start'\]"),
])
def test_kinetics_errors(tmp_path, body, line, match, raises_at):
    path = tmp_path / 'k.csv'
    path.write_text(body)
    with raises_at(path, line, match):
        read_kinetics_csv(path)
