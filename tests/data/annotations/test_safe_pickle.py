"""The restricted unpickler: files whose pickle names code (os.system, eval, getattr chains, a class, a numpy function,
also nested in valid data or in an object array) and numpy states that no numpy writes (which crash a plain
``pickle.load``) are refused naming what they name, before anything runs; real proposal files written by numpy 2.x
and 1.x with protocols 0-5 read to exactly what ``pickle.load`` gives on those trusted files."""
from __future__ import annotations

import argparse
import io
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.data.annotations import AnnotationError, load_restricted_pickle, read_ava_proposals
from tasks.data.annotations.safe_pickle import NUMERIC_KINDS, interned_numpy_dtype

REPO = Path(__file__).resolve().parents[3]
SYSTEM = f'{os.system.__module__}.system'  # posix.system on Linux


class Call:
    """Pickles as ``func(*args)``: how a pickle runs code when it is loaded."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def touch(marker: Path) -> Call:
    return Call(os.system, f'touch {marker}')


def valid_proposals() -> dict:
    rng = np.random.default_rng(0)
    return {'-5KQ66BBWC4,0902': rng.random((3, 5)).astype(np.float32),
            '-5KQ66BBWC4,0903': rng.random((2, 5)),  # float64, as some tools write them
            'abc,1798': np.zeros((0, 5), np.float32),
            'f_order,0904': np.asfortranarray(rng.random((4, 5))),
            'big_endian,0905': rng.random((1, 5)).astype('>f8'),
            'list,0906': [[0.1, 0.2, 0.3, 0.4, np.float32(0.9)]]}


def assert_same(got, expected) -> None:
    """Equal values, and every array of the same dtype, shape and memory order."""
    assert type(got) is type(expected)
    if isinstance(expected, np.ndarray):
        assert got.dtype == expected.dtype and got.shape == expected.shape
        assert got.flags.f_contiguous == expected.flags.f_contiguous
        np.testing.assert_array_equal(got, expected)
    elif isinstance(expected, dict | list | tuple):
        assert len(got) == len(expected)
        pairs = zip(got.items(), expected.items()) if isinstance(expected, dict) else zip(got, expected)
        for a, b in pairs:
            assert_same(a, b)
    else:
        assert got == expected and type(got) is type(expected)


class Numpy1Pickler(pickle._Pickler):
    """Writes numpy's functions under their numpy 1.x module names (numpy.core.*), as a numpy 1.x install does."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_global(self, obj, name=None):
        module = getattr(obj, '__module__', '') or ''
        if not module.startswith('numpy._core'):
            return super().save_global(obj, name)
        module, name = 'numpy.core' + module[len('numpy._core'):], name or obj.__qualname__
        if self.proto >= 4:
            self.save(module)
            self.save(name)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f'{module}\n{name}\n'.encode())
        self.memoize(obj)
    dispatch[types.FunctionType] = save_global


# ---------------------------------------------------------------------------------------------------------------------
# payloads: refused before they run
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('protocol', range(6))
def test_os_system_payload_is_refused_before_it_runs(tmp_path, protocol):
    marker, path = tmp_path / 'ran', tmp_path / 'proposals.pkl'
    payload = pickle.dumps({'vid,0902': touch(marker)}, protocol=protocol)
    pickle.loads(payload)  # the payload is live: a plain unpickler runs it
    assert marker.exists()
    marker.unlink()
    path.write_bytes(payload)
    with pytest.raises(AnnotationError, match=rf'{path}: refused to unpickle: {SYSTEM} is not allowed'):
        read_ava_proposals(path)
    assert not marker.exists()


@pytest.mark.parametrize('payload, named', [
    (lambda m: pickle.dumps({'v,0902': Call(eval, f"__import__('os').system('touch {m}')")}), 'builtins.eval'),
    (lambda m: pickle.dumps(Call(exec, f"open('{m}', 'w')")), 'builtins.exec'),
    # getattr(__import__('os'), 'system')('touch m'), written opcode by opcode
    (lambda m: f'cbuiltins\ngetattr\n(cbuiltins\n__import__\n(Vos\ntRVsystem\ntR(Vtouch {m}\ntR.'.encode(),
     'builtins.getattr'),
    (lambda m: pickle.dumps({'v,0902': Call(np.save, str(m), np.zeros(1))}), 'numpy.save'),
    (lambda m: pickle.dumps({'v,0902': Call(np.load, str(m))}), 'numpy.load'),
    (lambda m: pickle.dumps(argparse.Namespace(x=1), protocol=1), 'copy_reg._reconstructor'),
    (lambda m: pickle.dumps(argparse.Namespace(x=1), protocol=4), 'argparse.Namespace'),
    (lambda m: pickle.dumps(Call(subprocess.run, ['touch', str(m)])), 'subprocess.run'),
    (lambda m: pickle.dumps(types.SimpleNamespace(a=1)), 'types.SimpleNamespace'),
    (lambda m: f'(Vtouch {m}\nios\nsystem\n.'.encode(), 'os.system'),  # protocol 0's INST: os.system('touch m')
], ids=['eval', 'exec', 'getattr-chain', 'numpy.save', 'numpy.load', 'copyreg', 'class', 'subprocess', 'types',
        'inst'])
def test_other_code_is_refused_naming_it(tmp_path, payload, named):
    marker, path = tmp_path / 'ran', tmp_path / 'proposals.pkl'
    path.write_bytes(payload(marker))
    with pytest.raises(AnnotationError, match=rf'refused to unpickle: {named} is not allowed'):
        load_restricted_pickle(path)
    assert not marker.exists()


def test_payload_nested_in_valid_data_or_an_object_array_is_refused(tmp_path):
    marker, path = tmp_path / 'ran', tmp_path / 'proposals.pkl'
    data = valid_proposals()
    data['-5KQ66BBWC4,0903'] = [np.zeros(5), {'deep': (1, [touch(marker)])}]
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(AnnotationError, match=SYSTEM):
        read_ava_proposals(path)
    objects = np.empty(2, dtype=object)
    objects[:] = [np.zeros(5), touch(marker)]
    for protocol in range(6):
        path.write_bytes(pickle.dumps({'v,0902': objects}, protocol=protocol))
        with pytest.raises(AnnotationError, match='dtype object is not a plain numeric dtype'):
            read_ava_proposals(path)
    assert not marker.exists()


def crafted_array_pickle(dtype_state: tuple, data: bytes, spec: str = 'V8') -> bytes:
    """A protocol-2 pickle of ``_reconstruct(ndarray, (0,), b'b')`` whose dtype and array states are given: numpy's
    own ``__setstate__`` accepts these and then reads ``data`` as object pointers."""
    reconstruct = np.empty(0).__reduce__()[0]

    class DType:
        def __reduce__(self):
            return np.dtype, (spec, False, True), dtype_state

    class Array:
        def __reduce__(self):
            return reconstruct, (np.ndarray, (0,), b'b'), (1, (1,), DType(), False, data)
    return pickle.dumps({'v,0902': Array()}, protocol=2)


def test_numpy_states_no_numpy_writes_are_refused_without_crashing(tmp_path):
    """A structured dtype claiming an object field at offset 0 (flags without numpy's list pickling), filled with
    0x41 bytes: a plain ``pickle.load`` builds an array of wild object pointers, and the reader then segfaults. The
    reader runs in a child process so that the old behaviour fails this test instead of killing pytest."""
    object_field = (3, '|', None, ('a',), {'a': (np.dtype('O'), 0)}, 8, 1, 1)
    wide_field = (3, '|', None, ('a',), {'a': (np.dtype('f8'), 4)}, 8, 1, 0)  # 8 bytes at offset 4 of an 8-byte item
    cases = {'object_field': crafted_array_pickle(object_field, b'A' * 8),
             'float_with_object_field': crafted_array_pickle(object_field, b'A' * 8, spec='f8'),
             'float_with_fields': crafted_array_pickle(wide_field, b'A' * 8, spec='f8'),
             'float_with_object_flags': crafted_array_pickle((3, '<', None, None, None, -1, -1, 1), b'A' * 8, 'f8'),
             'short_data': crafted_array_pickle((3, '<', None, None, None, -1, -1, 0), b'A' * 4, 'f8')}
    for name, payload in cases.items():
        (tmp_path / f'{name}.pkl').write_bytes(payload)
    script = textwrap.dedent(f'''
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(REPO)!r})
        from tasks.data.annotations import AnnotationError, read_ava_proposals
        for path in sorted(Path({str(tmp_path)!r}).glob('*.pkl')):
            try:
                read_ava_proposals(path)
                print(path.stem, 'read')
            except AnnotationError as e:
                print(path.stem, 'refused:', e.reason)
    ''')
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f'the reader crashed (exit {done.returncode}): {done.stderr[-2000:]}'
    lines = dict(line.split(' ', 1) for line in done.stdout.splitlines())
    assert lines == {
        'float_with_fields': 'refused: refused to unpickle: dtype float64 with the state ' + repr(wide_field)
                             + ', which numpy does not write for it',
        'float_with_object_field': "refused: refused to unpickle: numpy.dtype('O8'): dtype object is not a plain "
                                   'numeric dtype (only bool, integer, float and complex arrays are read)',
        'float_with_object_flags': 'refused: refused to unpickle: dtype float64 with the state '
                                   "(3, '<', None, None, None, -1, -1, 1), which numpy does not write for it",
        'object_field': "refused: refused to unpickle: numpy.dtype('V8'): dtype |V8 is not a plain numeric dtype "
                        '(only bool, integer, float and complex arrays are read)',
        'short_data': 'refused: refused to unpickle: array of (1,) x float64: its data is not 8 bytes',
    }


# ---------------------------------------------------------------------------------------------------------------------
# real files read as pickle.load reads them
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('numpy_1', [False, True], ids=['numpy2-names', 'numpy1-names'])
@pytest.mark.parametrize('protocol', range(6))
def test_proposal_files_read_as_pickle_load_reads_them(tmp_path, protocol, numpy_1):
    def write(data) -> bytes:
        buffer = io.BytesIO()
        (Numpy1Pickler if numpy_1 else pickle.Pickler)(buffer, protocol=protocol).dump(data)
        path.write_bytes(buffer.getvalue())
        return buffer.getvalue()

    path = tmp_path / 'proposals.pkl'
    written = write({**valid_proposals(), 'scalars': [np.float32(1.5), np.int64(-3), np.bool_(True)], 'text': 'x',
                     'bytes': (b'', b'\x00\xff'), 'sets': [{1, 2}, frozenset({'a'})], 'none': None})
    assert (b'numpy.core.' in written, b'numpy._core.' in written) == (numpy_1, not numpy_1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)  # numpy 2 warns when a pickle names numpy.core
        trusted = pickle.loads(written)
    assert_same(load_restricted_pickle(path), trusted)
    write(valid_proposals())
    got = read_ava_proposals(path)
    assert len(got) == len(valid_proposals())
    for key, value in valid_proposals().items():
        vid, ts = key.split(',')
        np.testing.assert_array_equal(got[(vid, int(ts))], np.asarray(value, np.float32).reshape(-1, 5))


@pytest.mark.parametrize('content, reason', [
    (b'', 'cannot unpickle: EOFError'),
    (b'\x80\x04garbage', 'cannot unpickle'),
    (b'not a pickle at all', 'cannot unpickle'),
])
def test_truncated_or_garbage_files(tmp_path, content, reason):
    path = tmp_path / 'proposals.pkl'
    path.write_bytes(content)
    with pytest.raises(AnnotationError, match=f'{path}: {reason}'):
        load_restricted_pickle(path)


def test_every_truncation_of_a_real_file_is_an_annotation_error(tmp_path):
    whole = pickle.dumps(valid_proposals(), protocol=4)
    path = tmp_path / 'proposals.pkl'
    for end in range(0, len(whole) - 1, 7):
        path.write_bytes(whole[:end])
        with pytest.raises(AnnotationError, match=f'{path}: cannot unpickle'):
            load_restricted_pickle(path)
    with pytest.raises(AnnotationError, match='file not found'):
        load_restricted_pickle(tmp_path / 'missing.pkl')
    with pytest.raises(AnnotationError, match='cannot read it'):
        load_restricted_pickle(tmp_path)


@settings(max_examples=300, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(protocol=st.integers(0, 5), flips=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)),
                                                  min_size=1, max_size=4))
def test_mutated_files_load_or_fail_cleanly(tmp_path, protocol, flips):
    """Changed bytes in a real file (opcodes, lengths, dtype and array states) either read as plain data or raise
    AnnotationError: no other exception, no crash, and never an object array or a non-numeric dtype."""
    data = bytearray(pickle.dumps(valid_proposals(), protocol=protocol))
    for at, value in flips:
        data[at % len(data)] = value
    path = tmp_path / 'mutated.pkl'
    path.write_bytes(bytes(data))
    try:
        got = load_restricted_pickle(path)
    except AnnotationError:
        return
    stack = [got]
    while stack:
        value = stack.pop()
        if isinstance(value, np.ndarray | np.generic):
            assert value.dtype.kind in NUMERIC_KINDS and value.dtype.fields is None
        elif isinstance(value, dict):
            stack += list(value.keys()) + list(value.values())
        elif isinstance(value, list | tuple | set | frozenset):
            stack += list(value)
        else:
            assert value is None or isinstance(value, str | bytes | int | float | complex)


def test_numpys_shared_dtypes_ignore_any_state():
    """What the torch allow-list relies on (interned_numpy_dtype): numpy's shared numeric dtypes stay what they are
    whatever state a pickle gives them, so torch may apply a BUILD to them."""
    evil = (3, '>', None, ('a',), {'a': (np.dtype('O'), 0)}, 64, 1, 63)
    for code in np.typecodes['All']:
        dtype = np.dtype(code)
        if dtype.kind not in NUMERIC_KINDS:
            continue
        shared = interned_numpy_dtype(dtype.kind + str(dtype.itemsize))
        before = (shared.str, shared.flags, shared.fields, shared.itemsize)
        shared.__setstate__(evil)
        assert (shared.str, shared.flags, shared.fields, shared.itemsize) == before, code


def test_a_huge_announced_bytearray_is_refused_before_it_is_allocated(tmp_path):
    path = tmp_path / 'p.pkl'
    path.write_bytes(b'\x80\x05\x96' + struct.pack('<Q', 16 * 2**30) + b'.')  # 20 bytes asking for 16 GB
    with pytest.raises(AnnotationError, match='BYTEARRAY8 announces 17179869184 bytes'):
        read_ava_proposals(path)


def test_self_sharing_lists_are_refused_not_expanded(tmp_path):
    value = [0.5] * 4
    for _ in range(40):  # ~200 bytes of pickle that np.asarray would expand to 2**40 numbers
        value = [value, value]
    path = tmp_path / 'p.pkl'
    path.write_bytes(pickle.dumps({'vid,0902': value}))
    with pytest.raises(AnnotationError, match=r"key 'vid,0902': expected an \(N, 4\) or \(N, 5\) array"):
        read_ava_proposals(path)
    path.write_bytes(pickle.dumps({'v,' + '1' * 5000: [[0, 0, 1, 1]]}))  # a key too long for int()
    with pytest.raises(AnnotationError, match='key is not of the form'):
        read_ava_proposals(path)
