"""Atomic file writes: every file the suite writes appears under its final name complete, or not at all.

A file is written under a temporary name in the destination folder (same file system, so the rename is atomic),
then renamed over the destination with ``os.replace``; an error or a kill before the rename leaves the destination
as it was and the temporary file is removed (or, after SIGKILL, left under a dot-name no reader looks for). An
``OSError`` while writing (a full disk) is raised naming the destination, not the temporary.
"""
from __future__ import annotations

import errno
import json
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ['atomic_path', 'leftover_temporaries', 'check_free_space', 'write_bytes_atomic', 'write_text_atomic',
           'write_json_atomic']


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path`` to write to; on leaving the block without an error it is renamed
    over ``path``, otherwise deleted. The temporary name ends in ``path``'s suffix, so writers that pick a format by
    the extension (matplotlib, ``np.save``, FFmpeg muxers) see the right one. Missing parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temporary(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _naming(e, path, tmp) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _naming(e: OSError, path: Path, tmp: Path) -> OSError:
    """``e`` about ``path`` rather than the temporary (or no file at all, as HDF5's errors): a full disk then reads
    ``[Errno 28] No space left on device: 'OUT.h5'``. Errors about other files pass unchanged."""
    code = e.errno
    if code is None:  # HDF5 puts the errno in its message only: "..., errno = 28, error message = ..."
        m = re.search(r'errno = (\d+)', str(e))
        code = int(m.group(1)) if m else None
    if code is None or e.filename not in (None, str(tmp), tmp):
        return e
    return OSError(code, os.strerror(code), str(path))


def _create_temporary(path: Path) -> Path:
    """A new empty file ``.<stem>.<random>.tmp<suffix>`` beside ``path``, with the permissions the umask gives a new
    file (``tempfile.mkstemp`` would make it owner-only, and the rename would keep that)."""
    while True:
        tmp = path.with_name(f'.{path.stem}.{secrets.token_hex(6)}.tmp{path.suffix}')
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


def leftover_temporaries(path: str | os.PathLike) -> list[Path]:
    """The temporaries that writes of ``path`` killed before their rename (SIGKILL, power loss) left beside it."""
    path = Path(path)
    pattern = re.compile(re.escape(f'.{path.stem}.') + r'[0-9a-f]+' + re.escape(f'.tmp{path.suffix}'))
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name))


def check_free_space(path: str | os.PathLike, nbytes: int) -> None:
    """Raise ``OSError`` (ENOSPC, EDQUOT or EFBIG, naming ``path``) unless ``nbytes`` can be written beside ``path``
    now. It allocates that much to a hidden file and deletes it, so quotas and file-size limits count too.

    For writers that cannot fail cleanly halfway: HDF5 may crash the process (a segfault, measured with h5py 3.x)
    when a write fails inside it, so a store's size is checked before it is written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    probe = _create_temporary(path.with_name(path.name + '.space'))
    try:
        fd = os.open(probe, os.O_WRONLY)
        try:
            if nbytes > 0 and hasattr(os, 'posix_fallocate'):
                os.posix_fallocate(fd, 0, nbytes)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise OSError(e.errno, f'{os.strerror(e.errno)} ({nbytes / 2**20:.1f} MiB needed)', str(path)) \
                    from None
            # EOPNOTSUPP/EINVAL: the file system cannot allocate ahead; the write itself will tell
        finally:
            os.close(fd)
    finally:
        probe.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    return write_bytes_atomic(path, text.encode('utf-8'))


def write_json_atomic(path: str | os.PathLike, payload: Any, *, indent: int | None = 2, **dumps_kwargs: Any) -> Path:
    """Write ``payload`` as JSON (with a final newline) to ``path`` atomically; returns ``path``."""
    return write_text_atomic(path, json.dumps(payload, indent=indent, **dumps_kwargs) + '\n')
