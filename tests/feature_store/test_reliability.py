"""One writer per store (feature_store/lock.py) and failed writes (a full disk) during extraction.

* the lock: held, re-entrant and released in one process; refused (naming the holder's pid, host and start time),
  waited for, and taken over when its holder died, across processes; the lock-file-only rules where the file
  system has no POSIX locks (dead pid, reused pid, another host);
* two extractions into one store: the second stops at once (exit 2, naming the first) or, with ``--wait-lock``, waits
  and then extracts nothing twice; started at the same moment, no run claims success unless the store holds every
  video; every other writer (``merge_features``, ``build_store``, ``FeatureStore.open(.., 'a')``) takes the lock;
* a full disk while writing a part file and while writing the store (ENOSPC injected), and a real write failure
  (a file-size limit, EFBIG from HDF5): the error names the file and what to do, no half-written store is left, and
  the rerun gives the store of an uninterrupted run.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import feature_store.lock as lock_module
import feature_store.parts as parts_module
from feature_store import FeatureStore, StoreLockedError, build_store, store_lock
from feature_store.cli import merge_main
from feature_store.extract import main
from feature_store.lock import lock_path
from tests.feature_store.extract_kit import REPO, TINY, leftovers, start_stopped, stores_equal
from tests.torchrun_kit import cpu_env

pytestmark = pytest.mark.usefixtures('one_thread')  # tiny tensors: one intra-op thread (tests/conftest.py)

LINUX = pytest.mark.skipif(not Path('/proc/self/stat').exists(), reason='reads process states from /proc (Linux)')

_HOLDER = '''
import sys
from feature_store import store_lock
with store_lock(sys.argv[1]):
    print('held', flush=True)
    sys.stdin.readline()  # hold until the test writes a line (or kills us)
'''


@pytest.fixture
def holder(tmp_path):
    """Start a process that holds the lock of a path until told to stop; yields a function path -> Popen."""
    procs: list[subprocess.Popen] = []

    def start(store: Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, '-c', _HOLDER, str(store)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env=cpu_env())
        procs.append(proc)
        assert proc.stdout.readline() == 'held\n'
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()


# ---------------------------------------------------------------------------------------------------------------------
# the lock
# ---------------------------------------------------------------------------------------------------------------------
def test_lock_is_held_reentrant_and_released(tmp_path):
    store = tmp_path / 'a.h5'
    with store_lock(store) as path:
        assert path == lock_path(store) == tmp_path / 'a.h5.lock'
        record = json.loads(path.read_text())
        assert (record['pid'], record['host']) == (os.getpid(), socket.gethostname())
        assert record['started'] and 'pytest' in record['command'] or record['command']
        with store_lock(store):  # the same process again (an extraction calling build_store)
            assert path.exists()
        assert path.exists()  # still held by the outer block
    assert not path.exists()


@LINUX
def test_lock_held_by_another_process_is_refused_waited_for_and_taken_over_when_it_dies(tmp_path, holder, caplog):
    store = tmp_path / 'a.h5'
    proc = holder(store)
    with pytest.raises(StoreLockedError) as e:
        with store_lock(store):
            pass
    assert e.value.holder['pid'] == proc.pid
    message = str(e.value)
    assert f'pid {proc.pid} on host {socket.gethostname()}, started ' in message and '--wait-lock' in message
    assert str(store) in message
    # --wait-lock: waits until the holder lets go, then holds the lock itself
    acquired = threading.Event()

    def waiter():
        with store_lock(store, wait=True, poll=0.05):
            acquired.set()
    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.5)
    assert not acquired.is_set()
    proc.stdin.write('done\n')
    proc.stdin.flush()
    thread.join(30)
    assert acquired.is_set() and proc.wait(30) == 0
    assert not lock_path(store).exists()
    # a holder killed with SIGKILL leaves its lock file; the kernel dropped its POSIX lock, so it is taken over
    proc = holder(store)
    proc.kill()
    proc.wait()
    assert json.loads(lock_path(store).read_text())['pid'] == proc.pid
    with caplog.at_level(logging.WARNING, logger='feature_store.lock'), store_lock(store):
        assert json.loads(lock_path(store).read_text())['pid'] == os.getpid()
    assert f'took over the lock left by pid {proc.pid}' in caplog.text


def _record(**changes):
    record = {'host': socket.gethostname(), 'pid': os.getppid(), 'process_start': None, 'started': '2026-01-01',
              'command': 'extract_features.py'}
    record.update(changes)
    return json.dumps(record)


@LINUX
def test_without_posix_locks_the_lock_file_decides(tmp_path, monkeypatch):
    """An NFS mount without lock support: a dead pid on this host (or a reused pid) is stale; a live one, or any
    holder on another host, is reported (with what to delete for the other host)."""
    monkeypatch.setattr(lock_module, 'fcntl', None)
    store = tmp_path / 'a.h5'
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    live_start = Path(f'/proc/{os.getppid()}/stat').read_text().rsplit(')', 1)[1].split()[19]
    for record, stale in [(_record(pid=dead.pid), True),
                          (_record(process_start=str(int(live_start) + 1)), True),  # the pid now runs another program
                          (_record(process_start=live_start), False),
                          (_record(pid=dead.pid, host='other-node'), False)]:
        lock_path(store).write_text(record)
        if stale:
            with store_lock(store):
                assert json.loads(lock_path(store).read_text())['pid'] == os.getpid()
            assert not lock_path(store).exists()
        else:
            with pytest.raises(StoreLockedError) as e:
                with store_lock(store):
                    pass
            other_host = 'other-node' in record
            assert (f'delete {lock_path(store)}' in str(e.value)) == other_host
            assert lock_path(store).read_text() == record  # untouched


@LINUX
def test_every_writer_takes_the_lock(tmp_path, holder, reference, capsys):
    out = tmp_path / 'out.h5'
    proc = holder(out)
    with FeatureStore.open(reference) as ref:
        info = ref.info
    with pytest.raises(StoreLockedError):
        build_store(out, info, iter(()))
    assert merge_main([str(out), str(reference)]) == 1
    assert f'pid {proc.pid}' in capsys.readouterr().err
    with pytest.raises(StoreLockedError):
        FeatureStore.create(out, info)
    assert not out.exists()
    held = tmp_path / 'ref.h5'
    held.write_bytes(reference.read_bytes())
    holder(held)
    with pytest.raises(StoreLockedError):
        FeatureStore.open(held, 'a')
    with FeatureStore.open(held) as store:  # readers take no lock
        assert len(store) == 3


# ---------------------------------------------------------------------------------------------------------------------
# two extractions into one store
# ---------------------------------------------------------------------------------------------------------------------
@LINUX
def test_second_extraction_stops_or_waits_while_the_first_runs(videos, reference, tmp_path, capsys):
    out = tmp_path / 'out.h5'
    first = start_stopped(tmp_path, 'after-first-part', [str(videos), '--out', str(out), *TINY])
    try:
        assert main([str(videos), '--out', str(out), *TINY]) == 2
        err = capsys.readouterr().err
        assert f'{out} is being written by another run: pid {first.pid} on host' in err
        assert not out.exists()
        # --wait-lock: the second run waits for the first, then finds every video complete
        codes = []
        waiter = threading.Thread(target=lambda: codes.append(
            main([str(videos), '--out', str(out), *TINY, '--wait-lock'])))
        waiter.start()
        time.sleep(1.0)
        assert not codes
        first.send_signal(signal.SIGCONT)
        assert first.wait(120) == 0
        waiter.join(120)
        assert codes == [0]
        assert 'out.h5: 0 videos extracted (0 clips, 0.0 clips/s), 3 already complete' in capsys.readouterr().err
    finally:
        first.kill()
        first.wait()
        first.stderr.close()
    stores_equal(out, reference)
    assert leftovers(out) == []


def test_two_extractions_started_together_never_both_claim_success_falsely(videos, reference, tmp_path):
    out = tmp_path / 'out.h5'
    cmd = [sys.executable, str(REPO / 'tools' / 'extract_features.py'), str(videos), '--out', str(out), *TINY]
    procs = [subprocess.Popen(cmd, env=cpu_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stderr.close()
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 2]), results
    for code, err in results:
        if code == 2:
            assert 'is being written by another run' in err
    # whoever claimed success left a store with every video, equal to an uninterrupted run
    stores_equal(out, reference)
    assert leftovers(out) == []


# ---------------------------------------------------------------------------------------------------------------------
# a full disk
# ---------------------------------------------------------------------------------------------------------------------
def test_disk_full_at_a_part_write_keeps_finished_videos_and_the_rerun_completes(videos, reference, tmp_path,
                                                                               monkeypatch, capsys):
    out = tmp_path / 'out.h5'
    savez = np.savez
    calls = []

    def full_disk_on_second(f, **arrays):
        calls.append(1)
        if len(calls) == 2:
            f.write(b'PK\x03\x04 half a part')
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        savez(f, **arrays)
    monkeypatch.setattr(parts_module.np, 'savez', full_disk_on_second)
    assert main([str(videos), '--out', str(out), *TINY]) == 2
    err = capsys.readouterr().err
    parts = tmp_path / 'out.h5.rank0.parts'
    assert f'writing {parts / "vid_b.npz"} failed: No space left on device. Free space on the file system of ' \
           f'{parts}' in err
    assert f'rerun the same command: the videos finished so far are kept (part files in {parts})' in err
    assert leftovers(out) == ['out.h5.rank0.parts']  # no store, no temporary, no lock
    assert sorted(p.name for p in parts.iterdir()) == ['info.json', 'vid_a.npz']
    monkeypatch.setattr(parts_module.np, 'savez', savez)
    assert main([str(videos), '--out', str(out), *TINY]) == 0
    stores_equal(out, reference)
    assert leftovers(out) == []


def test_disk_full_at_the_store_write_leaves_the_old_store_and_the_rerun_completes(videos, reference, tmp_path,
                                                                                  monkeypatch, capsys):
    out = tmp_path / 'out.h5'
    first = tmp_path / 'first.txt'
    first.write_text(f'{videos / "vid_b.mp4"}\n')
    assert main([str(first), '--out', str(out), *TINY]) == 0
    before = out.read_bytes()
    add = FeatureStore.add

    def full_disk_on_second(self, *args, **kwargs):
        if len(self) == 1:  # as HDF5 reports it: an errno, no file name
            raise OSError(errno.ENOSPC, "Can't synchronously write data (file write failed: errno = 28)")
        return add(self, *args, **kwargs)
    monkeypatch.setattr(FeatureStore, 'add', full_disk_on_second)
    assert main([str(videos), '--out', str(out), *TINY]) == 2
    err = capsys.readouterr().err
    assert f'writing {out} failed: No space left on device. Free space on the file system of {tmp_path}' in err
    assert out.read_bytes() == before
    assert leftovers(out) == ['out.h5.rank0.parts']
    monkeypatch.setattr(FeatureStore, 'add', add)
    assert main([str(videos), '--out', str(out), *TINY]) == 0
    stores_equal(out, reference)
    assert leftovers(out) == []


_LIMITED = '''
import resource, signal, sys
from feature_store.extract import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG instead of killing us
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.exit(main(sys.argv[2:]))
'''


@pytest.mark.skipif(not hasattr(resource, 'RLIMIT_FSIZE'), reason='needs a file-size limit (POSIX)')
def test_a_real_write_limit_is_found_before_hdf5_writes_and_the_rerun_completes(videos, reference, tmp_path):
    """A file-size limit smaller than the store but larger than a part file. HDF5 failing inside a write crashed the
    process (SIGSEGV in h5py's group.move, after EFBIG); the free space is now checked before the store is written,
    which also sees quotas and file-size limits."""
    out = tmp_path / 'out.h5'
    proc = subprocess.run([sys.executable, '-c', _LIMITED, str(reference.stat().st_size // 2), str(videos),
                           '--out', str(out), *TINY], env=cpu_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert f'writing {out} failed: File too large (1.0 MiB needed). Free space on the file system of {tmp_path}' \
        in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert leftovers(out) == ['out.h5.rank0.parts']  # three part files, no half-written store
    assert len(list((tmp_path / 'out.h5.rank0.parts').glob('*.npz'))) == 3
    assert main([str(videos), '--out', str(out), *TINY]) == 0
    stores_equal(out, reference)
    assert leftovers(out) == []
