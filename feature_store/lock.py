"""One writer per store: an exclusive lock file ``OUT.h5.lock`` beside the store (docs/feature_caching.md#one-writer-per-store).

The lock file holds its holder (host, pid, start time, command) as JSON and is kept POSIX-locked (``fcntl.lockf``)
by the holder for as long as it holds the store. The kernel (or the NFS lock manager) drops that lock when the
holder dies, however it dies, so a lock file whose POSIX lock can be taken is stale: the next writer takes it over
and says whose it was. Where the file system has no POSIX locks (an NFS mount with ``nolock``), the lock file
alone decides: a holder on this host that is no longer running is detected by its pid and process start time; one
on another host is reported, with what to delete if that run is gone.

Locks are re-entrant within a process (an extraction holding ``OUT.h5`` calls :func:`build_store` on it); other
threads of the same process share them. Readers take no lock: a store is only ever replaced whole.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import FeatureStoreError

__all__ = ['StoreLockedError', 'lock_path', 'store_lock']

logger = logging.getLogger(__name__)

try:
    import fcntl
except ImportError:  # Windows: the lock file alone decides
    fcntl = None  # type: ignore[assignment]


class StoreLockedError(FeatureStoreError):
    """Another process holds the store's lock. ``holder``: what its lock file says (host, pid, started, command)."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder

    def __reduce__(self):  # keep ``holder`` through pickling (DataLoader workers, torch.distributed broadcasts)
        return type(self), (self.args[0], self.holder)


def lock_path(store: str | os.PathLike) -> Path:
    """The lock file of a store: ``OUT.h5`` -> ``OUT.h5.lock``."""
    store = Path(store)
    return store.with_name(store.name + '.lock')


# lock file (resolved) -> [fd, depth]; a POSIX lock belongs to the process, and closing *any* descriptor of the file
# in this process would drop it, so the process opens each lock file once and counts re-entries.
_held: dict[str, list[int]] = {}
_held_guard = threading.Lock()


@contextmanager
def store_lock(store: str | os.PathLike, *, wait: bool = False, poll: float = 1.0) -> Iterator[Path]:
    """Hold the exclusive lock of ``store`` within the block (yields the lock file's path).

    Args:
        store: the store file (it need not exist yet).
        wait: wait until the holder releases the lock instead of raising.
        poll: seconds between attempts while waiting.

    Raises:
        StoreLockedError: another process holds it (and ``wait`` is false); the message names the holder.
    """
    path = lock_path(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    with _held_guard:  # held while acquiring too: a second thread's lockf would succeed (same process)
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
        else:
            _held[key] = entry = [_acquire(path, wait, poll), 1]
    try:
        yield path
    finally:
        with _held_guard:
            entry[1] -= 1
            last = entry[1] == 0
            if last:
                del _held[key]
        if last:
            _release(path, entry[0])


def _acquire(path: Path, wait: bool, poll: float) -> int:
    announced = False
    while True:
        outcome = _try_acquire(path)
        if isinstance(outcome, int):
            return outcome
        if not wait:
            raise StoreLockedError(_held_message(path, outcome), outcome)
        if not announced:
            logger.warning('waiting for %s to be released by %s', path, _describe(outcome))
            announced = True
        time.sleep(poll)


def _try_acquire(path: Path) -> int | dict[str, Any]:
    """The lock's descriptor if this process now holds it, else what the holder's lock file says."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            fd = None
        if fd is not None:  # created: the lock is ours if no one took its POSIX lock in between
            if _posix_lock(fd) is not False:
                _write_holder(fd)
                return fd
            os.close(fd)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:  # released meanwhile
            continue
        got = _posix_lock(fd)
        if got and not _same_file(fd, path):  # locked a file its holder had just deleted: start again
            os.close(fd)
            continue
        holder = _read_holder(fd)
        if got:  # the POSIX lock was free: whoever wrote the file is gone (or is still writing it: see below)
            _write_holder(fd)
            if holder:
                logger.warning('%s: took over the lock left by %s, which is no longer running', path,
                               _describe(holder))
            return fd
        os.close(fd)
        if got is None and holder and _dead_here(holder):  # no POSIX locks here: judge by pid and start time
            logger.warning('%s: removing the lock left by %s, which is no longer running', path, _describe(holder))
            path.unlink(missing_ok=True)
            continue
        return holder


def _posix_lock(fd: int) -> bool | None:
    """Take the POSIX lock of ``fd`` without waiting: True taken, False held by another process, None when the file
    system does not support POSIX locks."""
    if fcntl is None:
        return None
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EAGAIN):
            return False
        if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return None
        raise


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _process_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), which tells a reused pid from the holder."""
    try:
        return Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _holder_record() -> dict[str, Any]:
    return {'host': socket.gethostname(), 'pid': os.getpid(), 'process_start': _process_start(os.getpid()),
            'started': datetime.now(timezone.utc).isoformat(timespec='seconds'),
            'command': ' '.join(sys.argv)[:500]}


def _write_holder(fd: int) -> None:
    data = (json.dumps(_holder_record(), indent=1) + '\n').encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    os.fsync(fd)


def _read_holder(fd: int) -> dict[str, Any]:
    """The holder's record, or ``{}`` while the file is being written (or is not one of ours)."""
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 65536, offset):
        chunks.append(chunk)
        offset += len(chunk)
    try:
        record = json.loads(b''.join(chunks))
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _dead_here(holder: dict[str, Any]) -> bool:
    """The holder ran on this host and its process is gone (or its pid now belongs to another process)."""
    if holder.get('host') != socket.gethostname() or not isinstance(holder.get('pid'), int):
        return False
    pid = holder['pid']
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    start = holder.get('process_start')
    return start is not None and _process_start(pid) not in (None, start)


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return 'another process (its lock file is being written)'
    return (f"pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')}"
            + (f" ({holder['command']})" if holder.get('command') else ''))


def _held_message(path: Path, holder: dict[str, Any]) -> str:
    store = path.with_name(path.name[:-len('.lock')])
    here = holder.get('host') == socket.gethostname()
    return (f'{store} is being written by another run: {_describe(holder)}. Wait for it to finish (or pass '
            f'--wait-lock to wait); ' + ('' if here else f'if that run is gone (its host crashed), delete {path}; ')
            + 'two runs writing one store would lose videos')


def _release(path: Path, fd: int) -> None:
    """Delete the lock file, then drop the POSIX lock (in that order, so that a waiting process that then gets the
    POSIX lock sees the file is gone and starts again)."""
    try:
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)
