"""tasks.data.files: a destination is replaced whole or left as it was."""
from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

from tasks.data.files import (
    atomic_path, check_free_space, leftover_temporaries, write_bytes_atomic, write_json_atomic, write_text_atomic,
)


def test_writes_create_folders_and_replace_whole(tmp_path):
    out = tmp_path / 'a' / 'b' / 'r.json'
    write_json_atomic(out, {'x': 1})
    assert json.loads(out.read_text()) == {'x': 1} and out.read_text().endswith('\n')
    write_text_atomic(out, 'second')
    assert out.read_text() == 'second'
    write_bytes_atomic(out, b'\x00\x01')
    assert out.read_bytes() == b'\x00\x01'
    assert sorted(p.name for p in out.parent.iterdir()) == ['r.json']  # no temporary left behind


def test_error_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    out = tmp_path / 'r.txt'
    out.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            tmp.write_text('half')
            raise RuntimeError('killed mid-write')
    assert out.read_text() == 'old'
    assert [p.name for p in tmp_path.iterdir()] == ['r.txt']


def test_temporary_keeps_the_suffix_for_format_guessing_writers(tmp_path):
    out = tmp_path / 'f.npy'
    with atomic_path(out) as tmp:
        assert tmp.suffix == '.npy' and tmp.parent == tmp_path and tmp.name.startswith('.')
        np.save(tmp, np.arange(3))  # np.save adds '.npy' unless the name already ends in it
    np.testing.assert_array_equal(np.load(out), [0, 1, 2])


def test_written_files_get_the_umask_permissions(tmp_path):
    import os
    old = os.umask(0o022)
    try:
        out = write_text_atomic(tmp_path / 'r.txt', 'x')
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644  # not mkstemp's owner-only 0600


def test_leftover_temporaries_are_those_of_killed_writes_only(tmp_path):
    out = tmp_path / 'store.h5'
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(out) as tmp:
            killed = tmp.with_name(tmp.name.replace('.tmp', 'f.tmp'))  # what a SIGKILL would leave: no cleanup ran
            killed.write_bytes(b'half')
            raise KeyboardInterrupt
    (tmp_path / '.store.notes.txt').write_text('a user file')
    (tmp_path / '.other.0a1b.tmp.h5').write_bytes(b'another store')
    assert leftover_temporaries(out) == [killed]


def test_a_failed_write_names_the_destination_not_the_temporary(tmp_path):
    out = tmp_path / 'store.h5'
    out.write_text('old')
    for error in [OSError(errno.ENOSPC, 'No space left on device', '/somewhere/.store.0123.tmp.h5'),
                  # HDF5's way: the errno only inside the message
                  OSError("Can't synchronously write data (file write failed: ..., errno = 28, error message = 'No "
                          "space left on device', ...)")]:
        with pytest.raises(OSError) as e:
            with atomic_path(out) as tmp:
                if error.filename:
                    error.filename = str(tmp)
                raise error
        assert (e.value.errno, e.value.strerror, e.value.filename) == (errno.ENOSPC, os.strerror(errno.ENOSPC),
                                                                       str(out))
        assert e.value.__cause__ is error
    # an error about another file is not renamed
    with pytest.raises(FileNotFoundError) as e:
        with atomic_path(out):
            open(tmp_path / 'missing' / 'x')
    assert e.value.filename == str(tmp_path / 'missing' / 'x')
    assert out.read_text() == 'old' and leftover_temporaries(out) == []


def test_check_free_space_allocates_and_releases(tmp_path):
    out = tmp_path / 'store.h5'
    check_free_space(out, 1 << 20)  # 1 MiB fits
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OSError) as e:
        check_free_space(out, 1 << 62)  # 4 EiB does not, on any file system (ENOSPC, or EFBIG past its size limit)
    assert e.value.errno in (errno.ENOSPC, errno.EFBIG) and e.value.filename == str(out)
    assert 'MiB needed' in e.value.strerror
    assert list(tmp_path.iterdir()) == []
