"""Property-based tests (hypothesis) of the AVA person-proposals reader, as test_fuzz_readers.py does for the text
formats: a pickle written from random proposals (protocols 0-5; numpy float32 / float64 arrays and nested lists)
reads back exactly; arbitrary bytes and such pickles with bytes deleted, duplicated, flipped, truncated or with pickle
opcodes put in (calls, globals, huge lengths) either read as well-typed proposals or raise AnnotationError naming the
file (and the key), never another exception, never past the deadline. That no pickle runs code is
test_safe_pickle.py's subject.
"""
from __future__ import annotations

import pickle
import string

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tasks.data.annotations import AnnotationError, read_ava_proposals

FAST = 100
LONG = 3000
BASE = settings(deadline=2000, database=None, suppress_health_check=[HealthCheck.too_slow])
VID = st.text(string.ascii_letters + string.digits + '-_', min_size=1, max_size=11)
# pickle opcodes and arguments a mutation puts in: globals and calls (refused), containers, huge lengths, STOP
OPCODES = [b'cos\nsystem\n', b'c__builtin__\neval\n', b'\x8c\x05numpy\x8c\x05dtype\x93', b'R', b'b', b'(', b')', b']',
           b'}', b'.', b'0', b'N', b'\x88', b'\x94', b'h\x00', b'\x8e' + b'\xff' * 7 + b'\x7f', b'B\xff\xff\xff\x7f',
           b'\x95' + b'\xff' * 8, b'L' + b'9' * 5000 + b'L\n', b'F1e400\n', b'Fnan\n', b'\x81', b'\x92', b'\x8f']


@st.composite
def proposals_pickle(draw):
    """(pickle bytes, {(video_id, timestamp): (N, 4|5) float32}) for random proposals."""
    data, expected = {}, {}
    for vid, ts in draw(st.lists(st.tuples(VID, st.integers(0, 9999)), min_size=1, max_size=4, unique=True)):
        n, width = draw(st.integers(0, 3)), draw(st.sampled_from([4, 5]))
        rows = draw(hnp.arrays(np.float64, (n, width), elements=st.floats(0, 1, width=32)))
        kind = draw(st.sampled_from(['float32', 'float64', 'list']))
        data[f'{vid},{ts:04d}'] = rows.tolist() if kind == 'list' else rows.astype(kind)
        expected[(vid, ts)] = rows.astype(np.float32) if n else np.zeros((0, 5), np.float32)
    return pickle.dumps(data, protocol=draw(st.integers(0, pickle.HIGHEST_PROTOCOL))), expected


@st.composite
def mutated_pickle(draw):
    data = draw(proposals_pickle())[0]
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(data)))
        j = min(len(data), i + draw(st.integers(1, 8)))
        op = draw(st.sampled_from(['delete', 'duplicate', 'flip', 'insert', 'opcode', 'truncate']))
        if op == 'delete':
            data = data[:i] + data[j:]
        elif op == 'duplicate':
            data = data[:j] + data[i:j] + data[j:]
        elif op == 'flip' and i < len(data):
            data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:]
        elif op == 'insert':
            data = data[:i] + draw(st.binary(min_size=1, max_size=4)) + data[i:]
        elif op == 'opcode':
            data = data[:i] + draw(st.sampled_from(OPCODES)) + data[i:]
        else:
            data = data[:i]
    return data


def check_proposals(proposals):
    assert isinstance(proposals, dict)
    for (vid, ts), boxes in proposals.items():
        assert isinstance(vid, str) and vid and type(ts) is int and ts >= 0
        assert isinstance(boxes, np.ndarray) and boxes.dtype == np.float32 and boxes.ndim == 2
        assert boxes.shape[1] in (4, 5) and np.isfinite(boxes).all()


@pytest.fixture(scope='module')
def path(tmp_path_factory):
    return tmp_path_factory.mktemp('fuzz') / 'ava_dense_proposals_val.pkl'


def write(path, data: bytes) -> None:
    path.unlink(missing_ok=True)  # a new file: truncating one costs an ext4 flush (see test_fuzz_readers.py)
    path.write_bytes(data)


def reads_as_written(path, data: bytes, expected) -> None:
    write(path, data)
    got = read_ava_proposals(path)
    check_proposals(got)
    assert set(got) == set(expected)
    for key, boxes in expected.items():
        np.testing.assert_array_equal(got[key], boxes)


def reads_or_names_the_file(path, data: bytes) -> None:
    write(path, data)
    try:
        proposals = read_ava_proposals(path)
    except AnnotationError as e:
        assert e.path == path and str(e).startswith(f'{path}') and e.line is None, str(e)
        return
    check_proposals(proposals)


@settings(BASE, max_examples=FAST, derandomize=True)
@given(proposals_pickle())
def test_valid_proposals_read_back_exactly(path, written):
    reads_as_written(path, *written)


@settings(BASE, max_examples=FAST, derandomize=True)
@given(mutated_pickle() | st.binary(max_size=400))
def test_arbitrary_and_mutated_pickles_read_or_name_the_file(path, data):
    reads_or_names_the_file(path, data)


@pytest.mark.slow
@settings(BASE, max_examples=LONG)
@given(proposals_pickle())
def test_valid_proposals_long_run(path, written):
    reads_as_written(path, *written)


@pytest.mark.slow
@settings(BASE, max_examples=LONG)
@given(mutated_pickle() | st.binary(max_size=400))
def test_arbitrary_and_mutated_pickles_long_run(path, data):
    reads_or_names_the_file(path, data)

