"""The HDF5 feature store: one file, one ``[num_clips, C]`` dataset per video with its metadata as attributes and
the provenance as file attributes (layout and examples: ``feature_store/README.md``; plain h5py reads it).

:class:`FeatureStore` opens, reads and appends (a dataset exists under a video id only when complete);
:func:`build_store` writes whole files atomically and :func:`merge_stores` merges shards; both refuse stores whose
provenance differs (docs/feature_caching.md#the-provenance-rule).
"""
from __future__ import annotations

import bisect
import contextlib
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

from tasks.data.files import atomic_path, check_free_space, leftover_temporaries

from .errors import FeatureStoreError, UnknownVideoError
from .info import FEATURE_KINDS, SCHEMA_VERSION, StoreInfo, describe_differences
from .lock import store_lock
from .meta import META_ATTRS, OPTIONAL_META_ATTRS, VideoFeatureMeta

__all__ = ['INCOMPLETE_GROUP', 'FeatureStore', 'check_video_id', 'build_store', 'merge_stores']

Compression = Literal['gzip'] | None

INCOMPLETE_GROUP = '__incomplete__'
"""Group holding datasets that are being written; never a video id, removed when empty."""

_FLOAT16_MAX = float(np.finfo(np.float16).max)
_STORE_OVERHEAD = 1 << 20  # HDF5 headers, attributes and free-space slack of a store, beyond its data


def _read_meta_attrs(ds: h5py.Dataset) -> dict[str, Any]:
    """The per-video attributes, through the low-level API with the dtypes and shapes we write (float64/int64
    scalars, ``centre_frames`` one int64 and ``centre_times`` one float64 per row). Reading 7 attributes through ``ds.attrs`` costs ~0.6 ms, more
    than reading a (256, 768) float32 dataset, mostly spent building each attribute's numpy dtype and shape; this
    takes about half of that. Missing attributes are left out (the caller names them)."""
    out: dict[str, Any] = {}
    if h5py.h5a.exists(ds.id, b'decoder'):  # the one string attribute
        out['decoder'] = ds.attrs['decoder']
    for name in (*META_ATTRS, *OPTIONAL_META_ATTRS):
        if name == 'decoder':
            continue
        try:
            attr = h5py.h5a.open(ds.id, name.encode())
        except KeyError:
            continue
        if name in ('centre_frames', 'centre_times', 'timestamps'):
            value = np.empty(ds.shape[:1], np.float64 if name == 'centre_times' else np.int64)
        elif name == 'input_size':
            value = np.empty(2, np.int64)
        else:
            value = np.empty((), np.float64 if name in ('fps', 'duration') else np.int64)
        # the low-level read does not check the buffer size: check the element count first
        count = attr.get_space().get_simple_extent_npoints()
        if count != value.size:
            raise FeatureStoreError(f'dataset {ds.name!r} in {ds.file.filename}: attribute {name!r} has {count} '
                                    f'values, expected {value.size}' + (' (one per row)' if value.ndim else ''))
        try:
            attr.read(value)  # HDF5 converts other numeric types (e.g. int32, float32 written by another tool)
        except (OSError, TypeError, ValueError) as e:
            raise FeatureStoreError(f'dataset {ds.name!r} in {ds.file.filename}: attribute {name!r} is not '
                                    f'numeric: {e}') from e
        out[name] = value[()] if value.ndim == 0 else value
    return out


def check_video_id(video_id: str) -> str:
    """Validate a video id: non-empty, '/'-separated parts that are neither empty, '.' nor '..' (HDF5 would
    silently normalise them), and not under the reserved ``__incomplete__`` group."""
    if not isinstance(video_id, str) or not video_id:
        raise ValueError(f'video id must be a non-empty string, got {video_id!r}')
    parts = video_id.split('/')
    if any(p in ('', '.', '..') for p in parts):
        raise ValueError(f"video id {video_id!r} has an empty, '.' or '..' path component; HDF5 cannot store it "
                         'under that exact name')
    if parts[0] == INCOMPLETE_GROUP:
        raise ValueError(f'video id {video_id!r} uses the reserved name {INCOMPLETE_GROUP!r}')
    return video_id


class FeatureStore:
    """A feature store file opened for reading (``'r'``) or appending (``'a'``, or after :meth:`create`).

    Use :meth:`open` / :meth:`create`, as context managers. Ids containing '/' are stored as nested HDF5 groups, so
    ``h5[video_id]`` works in plain h5py for every id.
    """

    def __init__(self, file: h5py.File, path: Path, writable: bool,
                 compression: Compression = None, compression_opts: int | None = None,
                 lock: contextlib.ExitStack | None = None) -> None:
        self._file = file
        self._lock = lock  # the store's lock (feature_store.lock), released by close()
        self.path = path
        self.writable = writable
        self.compression = compression
        self.compression_opts = compression_opts
        self.info = StoreInfo.from_attrs(file.attrs, str(path))
        self._ids: list[str] | None = None
        self._meta_cache: dict[str, VideoFeatureMeta] = {}
        self._dim: tuple[str, int] | None = None  # (a video, its feature dim): every video must have the same C

    # ---------------------------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, mode: Literal['r', 'a'] = 'r') -> FeatureStore:
        """Open an existing store; errors name the file and say what is wrong (missing, not HDF5, wrong schema).
        ``'a'`` (append in place) holds the store's lock until :meth:`close` (:class:`StoreLockedError` if another
        process holds it); ``'r'`` takes none."""
        path = Path(path)
        if mode not in ('r', 'a'):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        if not path.exists():
            raise FileNotFoundError(f'feature store {path} does not exist')
        if path.is_dir():
            raise FeatureStoreError(f'feature store {path} is a directory, not an HDF5 file')
        if not h5py.is_hdf5(path):
            raise FeatureStoreError(f'{path} is not an HDF5 file (a .npy folder? see feature_store.import_npy)')
        lock = _locked(path) if mode == 'a' else None
        try:
            file = h5py.File(path, mode)
        except OSError as e:
            if lock is not None:
                lock.close()
            raise FeatureStoreError(f'cannot open feature store {path}: {e}') from e
        try:
            version = file.attrs.get('schema_version')
            if version is None:
                raise FeatureStoreError(f'{path} is an HDF5 file but not a feature store of this suite: it has no '
                                        "'schema_version' file attribute")
            if int(version) > SCHEMA_VERSION:
                raise FeatureStoreError(f'{path} has schema_version {int(version)}, newer than the '
                                        f'{SCHEMA_VERSION} this code reads; update the suite')
            if int(version) < 1:
                raise FeatureStoreError(f'{path}: invalid schema_version {version!r}')
            return cls(file, path, writable=mode == 'a', lock=lock)
        except BaseException:
            file.close()
            if lock is not None:
                lock.close()
            raise

    @classmethod
    def create(cls, path: str | os.PathLike, info: StoreInfo, *, overwrite: bool = False,
               compression: Compression = None, compression_opts: int | None = None,
               lock: bool = True) -> FeatureStore:
        """Create an empty store with ``info`` as file attributes.

        Args:
            path: file to create.
            info: provenance; ``created`` is set to now if empty.
            overwrite: replace an existing file (otherwise an existing file is an error).
            compression: ``None`` (contiguous, the fastest to read) or ``'gzip'`` (chunked; saves only 7-13% on
                features at a 10-26x read cost, docs/video_decoding.md).
            compression_opts: gzip level 0-9.
            lock: hold the store's lock until :meth:`close` (:func:`build_store` writes a temporary file under the
                lock of the store it replaces, and passes False).
        """
        path = Path(path)
        if compression not in (None, 'gzip'):
            raise ValueError(f"compression must be None or 'gzip', got {compression!r}")
        if path.exists() and not overwrite:
            raise FileExistsError(f'{path} exists; pass overwrite=True, or use build_store() to update it safely')
        path.parent.mkdir(parents=True, exist_ok=True)
        stack = _locked(path) if lock else None
        try:
            file = h5py.File(path, 'w')
        except BaseException:
            if stack is not None:
                stack.close()
            raise
        try:
            file.attrs.update(info.to_attrs())
            return cls(file, path, writable=True, compression=compression, compression_opts=compression_opts,
                       lock=stack)
        except BaseException:
            file.close()
            if stack is not None:
                stack.close()
            raise

    def require_kind(self, kind: str, reader: str) -> FeatureStore:
        """Refuse a store whose rows are not ``kind`` (:data:`~feature_store.info.FEATURE_KINDS`): a ``featmap``
        store read as ``pooled`` rows (or the reverse) would fail later with a shape error, or not at all.
        ``reader`` names who reads it, for the message. Returns the store."""
        if kind not in FEATURE_KINDS:
            raise ValueError(f'unknown feature kind {kind!r}; one of {sorted(FEATURE_KINDS)}')
        if self.info.feature_kind != kind:
            raise FeatureStoreError(
                f'{self.path} holds {self.info.feature_kind!r} features '
                f'({FEATURE_KINDS.get(self.info.feature_kind, "unknown kind")}), but {reader} reads {kind!r} '
                f'features ({FEATURE_KINDS[kind]}); extract a store with --kind {kind}')
        return self

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except (OSError, RuntimeError):
            pass  # the error in flight (e.g. a full disk) says what went wrong; closing then fails the same way

    def close(self) -> None:
        if not self._file.id.valid:
            return
        try:
            if self.writable and INCOMPLETE_GROUP in self._file and len(self._file[INCOMPLETE_GROUP]) == 0:
                del self._file[INCOMPLETE_GROUP]
            self._file.close()
        except RuntimeError as e:  # HDF5 reports a failed final write (a full disk) as a RuntimeError
            m = re.search(r'errno = (\d+)', str(e))
            if m is None:
                raise FeatureStoreError(f'closing {self.path} failed: {e}') from e
            raise OSError(int(m.group(1)), os.strerror(int(m.group(1))), str(self.path)) from e
        finally:
            if self._lock is not None:
                self._lock.close()
                self._lock = None

    def flush(self) -> None:
        """Push written data to the OS (HDF5's own buffers); not an fsync."""
        self._file.flush()

    def __repr__(self) -> str:
        return f'FeatureStore({str(self.path)!r}, {len(self)} videos, {self.info.arch}, {self.info.dtype})'

    # ---------------------------------------------------------------------------------------------------------------
    def ids(self) -> list[str]:
        """Sorted ids of the complete videos (datasets outside ``__incomplete__``, nested groups included)."""
        if self._ids is None:
            found: list[str] = []

            def visit(name: str, obj: h5py.HLObject) -> None:
                if isinstance(obj, h5py.Dataset) and name.split('/', 1)[0] != INCOMPLETE_GROUP:
                    found.append(name)
            self._file.visititems(visit)
            self._ids = sorted(found)
        return list(self._ids)

    def __contains__(self, video_id: object) -> bool:
        if not isinstance(video_id, str) or not video_id or video_id.split('/', 1)[0] == INCOMPLETE_GROUP:
            return False
        obj = self._file.get(video_id)
        return isinstance(obj, h5py.Dataset)

    def __len__(self) -> int:
        return len(self.ids())

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids())

    def _dataset(self, video_id: str) -> h5py.Dataset:
        try:
            obj = self._file[video_id]
        except (KeyError, ValueError, TypeError):
            obj = None
        if not isinstance(obj, h5py.Dataset) or video_id.split('/', 1)[0] == INCOMPLETE_GROUP:
            raise UnknownVideoError(f'video id {video_id!r} is not in feature store {self.path} '
                                    f'({len(self)} videos)')
        return obj

    def meta(self, video_id: str) -> VideoFeatureMeta:
        """Metadata of one video, from its dataset attributes (cached while the store is open)."""
        return self._meta(video_id, None)

    def _meta(self, video_id: str, ds: h5py.Dataset | None) -> VideoFeatureMeta:
        meta = self._meta_cache.get(video_id)
        if meta is None:
            ds = self._dataset(video_id) if ds is None else ds
            meta = VideoFeatureMeta.from_attrs(video_id, _read_meta_attrs(ds), where=str(self.path))
            meta.centre_frames.setflags(write=False)  # shared by every caller of the cache
            if meta.centre_times is not None:
                meta.centre_times.setflags(write=False)
            self._meta_cache[video_id] = meta
        return meta

    def _dataset_id(self, video_id: str) -> h5py.h5d.DatasetID | None:
        """Low-level handle of a video's dataset, or None when ``video_id`` names no plain dataset (the caller then
        goes through :meth:`_dataset`, which raises the clear :class:`UnknownVideoError`)."""
        if video_id.split('/', 1)[0] == INCOMPLETE_GROUP:
            return None
        try:
            return h5py.h5d.open(self._file.id, video_id.encode())
        except (KeyError, ValueError, TypeError):
            return None

    def read_features(self, video_id: str, dtype: np.dtype | type | None = None) -> np.ndarray:
        """All rows of one video, (T, C), in the stored dtype unless ``dtype`` is given; no metadata (the analogue of
        ``np.load`` on a per-video ``.npy``).

        Reads through the low-level API into a preallocated array: building an ``h5py.Dataset`` object and its
        selection costs more than reading a (256, 768) float32 dataset (measured 4x slower than this path).
        """
        dsid = self._dataset_id(video_id)
        if dsid is None:
            return self._dataset(video_id)[()]  # raises UnknownVideoError
        data = np.empty(dsid.shape, dsid.dtype)
        if data.size:
            dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, data)
        return data if dtype is None else data.astype(dtype, copy=False)

    def read(self, video_id: str, dtype: np.dtype | type | None = None) -> tuple[np.ndarray, VideoFeatureMeta]:
        """All rows of one video: ``(features (T, C) in the stored dtype unless dtype is given, meta)``."""
        return self.read_features(video_id, dtype), self.meta(video_id)

    def read_window(self, video_id: str, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` of one video (stop past the end is clipped, as in a numpy slice)."""
        if start < 0 or stop < start:
            raise ValueError(f'{video_id}: need 0 <= start <= stop, got start={start}, stop={stop}')
        dsid = self._dataset_id(video_id)
        if dsid is None:
            return self._dataset(video_id)[start:stop]  # raises UnknownVideoError
        # a hyperslab read into a preallocated array, without building an h5py.Dataset and its selection
        rows, rest = dsid.shape[0], tuple(dsid.shape[1:])
        start, stop = min(start, rows), min(stop, rows)
        out = np.empty((stop - start,) + rest, dsid.dtype)
        if out.size:
            file_space = dsid.get_space()
            file_space.select_hyperslab((start,) + (0,) * len(rest), out.shape)
            dsid.read(h5py.h5s.create_simple(out.shape), file_space, out)
        return out

    def read_seconds(self, video_id: str, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Rows whose centre time lies in ``[t0, t1]`` seconds: ``(features (k, C), row indices (k,))``."""
        meta = self.meta(video_id)
        t = meta.centre_seconds
        lo, hi = int(np.searchsorted(t, t0, side='left')), int(np.searchsorted(t, t1, side='right'))
        hi = max(hi, lo)
        return self._dataset(video_id)[lo:hi], np.arange(lo, hi)

    # ---------------------------------------------------------------------------------------------------------------
    def add(self, video_id: str, features: np.ndarray, meta: VideoFeatureMeta) -> None:
        """Write one video. Data and attributes go to ``__incomplete__/<random>`` first and are renamed to the id
        only when complete, so a dataset under a real id is never partial.

        Args:
            video_id: key; must equal ``meta.video_id``.
            features: (num_clips, C) floats, cast to the store dtype.
            meta: row metadata; ``len(meta.centre_frames)`` must equal ``num_clips``.
        """
        if not self.writable:
            raise FeatureStoreError(f'{self.path} is open read-only; use FeatureStore.open(path, "a") or build_store')
        check_video_id(video_id)
        if meta.video_id != video_id:
            raise ValueError(f'add({video_id!r}): meta is for video {meta.video_id!r}')
        data = self._check_features(video_id, features, meta)
        existing = self._file.get(video_id, getlink=False) if video_id.split('/')[0] in self._file else None
        if existing is not None:
            kind = 'video' if isinstance(existing, h5py.Dataset) else 'group of videos'
            raise FeatureStoreError(f'{self.path}: {video_id!r} already exists (a {kind}); stores are append-only, '
                                    'use build_store to replace videos')
        tmp = f'{INCOMPLETE_GROUP}/{uuid.uuid4().hex}'
        kwargs: dict[str, Any] = {}
        if self.compression:
            kwargs = {'compression': self.compression, 'compression_opts': self.compression_opts,
                      'chunks': (min(len(data), 256), *data.shape[1:])}
        if data.ndim == 4:  # a featmap: one keyframe per chunk, so that a dataset reads one keyframe alone
            kwargs['chunks'] = (1, *data.shape[1:])
        ds = self._file.create_dataset(tmp, data=data, **kwargs)
        ds.attrs.update(meta.to_attrs())
        try:
            self._file.move(tmp, video_id)
        except (ValueError, KeyError, OSError) as e:
            del self._file[tmp]
            raise FeatureStoreError(f'{self.path}: cannot store video {video_id!r}: {e} (does a prefix of the id '
                                    'name an existing video?)') from e
        if self._ids is not None:
            bisect.insort(self._ids, video_id)
        if self._dim is None:
            self._dim = (video_id, int(data.shape[1]))

    def _check_features(self, video_id: str, features: np.ndarray, meta: VideoFeatureMeta) -> np.ndarray:
        a = np.asarray(features)
        featmap = self.info.feature_kind == 'featmap'
        if a.ndim != (4 if featmap else 2):
            want = '(num_keyframes, C, H\', W\')' if featmap else '(num_clips, C)'
            raise ValueError(f'{video_id}: a {self.info.feature_kind!r} store takes features {want}, got shape '
                             f'{a.shape}')
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f'{video_id}: features must be floating point, got {a.dtype}')
        if a.shape[0] != meta.num_rows:
            raise ValueError(f'{video_id}: {a.shape[0]} feature rows but {meta.num_rows} centre_frames')
        if not np.all(np.isfinite(a)):
            raise ValueError(f'{video_id}: features contain NaN or inf')
        if self.info.dtype == 'float16' and np.abs(a).max(initial=0.0) > _FLOAT16_MAX:
            raise ValueError(f'{video_id}: values up to {np.abs(a).max():.4g} overflow float16; store float32')
        if self._dim is None and self.ids():
            self._dim = (self.ids()[0], int(self._file[self.ids()[0]].shape[1]))
        if self._dim is not None and a.shape[1] != self._dim[1]:
            raise ValueError(f'{video_id}: feature dim {a.shape[1]} differs from the store\'s {self._dim[1]} '
                             f'({self._dim[0]!r} in {self.path})')
        return a.astype(self.info.dtype, copy=False)


def _locked(path: Path) -> contextlib.ExitStack:
    """The store's lock, held until the returned stack is closed."""
    stack = contextlib.ExitStack()
    stack.enter_context(store_lock(path))
    return stack


def _fsync_path(path: Path, directory: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, 'O_DIRECTORY', 0) if directory else 0))
    except OSError:  # e.g. directories cannot be opened on some platforms
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def build_store(out_path: str | os.PathLike, info: StoreInfo,
                parts: Iterable[tuple[str, np.ndarray, VideoFeatureMeta]],
                base: str | os.PathLike | None = None, *,
                compression: Compression = None, compression_opts: int | None = None,
                size_hint: int | None = None) -> Path:
    """Write a complete store to ``out_path`` atomically: the parts plus the videos of ``base``.

    The new file is written under a temporary name beside ``out_path`` (temporaries of killed builds are deleted
    first), fsynced and renamed over ``out_path``. A finished file is never modified in place, so a crash or SIGKILL
    at any moment leaves the old ``out_path`` (or none) or the complete new one; an exception (also one raised by
    the ``parts`` iterator) removes the temporary file and leaves ``out_path`` untouched.

    ``base`` may be ``out_path`` itself (resuming an extraction); its provenance must equal ``info``'s
    (:meth:`StoreInfo.differences`), and the new file carries ``info``. A part whose id is also in ``base`` replaces
    it (a re-extraction). The parts are written first and the remaining base videos after them.

    Args:
        out_path: the store to write.
        info: provenance of the new file.
        parts: ``(video_id, features (T, C), meta)`` for each video, consumed once (e.g. :func:`read_parts`).
        base: an existing store whose videos are kept.
        compression: see :meth:`FeatureStore.create`.
        compression_opts: gzip level.
        size_hint: about how many bytes the parts take (e.g. their files' sizes); the free space for them plus
            ``base`` is checked before anything is written (:func:`tasks.data.files.check_free_space`), because
            HDF5 may crash the process when a write fails inside it.

    Returns:
        ``out_path`` as a Path.

    Raises:
        StoreLockedError: another process holds ``out_path``'s lock (docs/feature_caching.md#one-writer-per-store).
    """
    out_path = Path(out_path)
    with store_lock(out_path):
        if size_hint is not None:
            base_size = Path(base).stat().st_size if base is not None else 0
            check_free_space(out_path, size_hint + base_size + _STORE_OVERHEAD)
        _build_locked(out_path, info, parts, base, compression, compression_opts)
    return out_path


def _build_locked(out_path: Path, info: StoreInfo, parts: Iterable[tuple[str, np.ndarray, VideoFeatureMeta]],
                  base: str | os.PathLike | None, compression: Compression, compression_opts: int | None) -> None:
    # under the lock no other writer's temporary can be in progress: those left are of killed builds
    for leftover in leftover_temporaries(out_path):  # each can be as large as the store
        leftover.unlink(missing_ok=True)
    with atomic_path(out_path) as tmp:
        with (FeatureStore.open(base) if base is not None else contextlib.nullcontext()) as base_store, \
                FeatureStore.create(tmp, info, overwrite=True, compression=compression,
                                    compression_opts=compression_opts, lock=False) as out:
            if base_store is not None:
                differences = base_store.info.differences(info)
                if differences:
                    raise FeatureStoreError(f'base store {base} holds features made differently: '
                                            f'{describe_differences(differences, "base", "new")}')
            written = _add_all(out, parts, out_path)
            for video_id in base_store.ids() if base_store is not None else ():
                if video_id not in written:
                    out.add(video_id, *base_store.read(video_id))
        _fsync_path(tmp)
    _fsync_path(out_path.parent, directory=True)


def _add_all(out: FeatureStore, parts: Iterable[tuple[str, np.ndarray, VideoFeatureMeta]], name: Path) -> set[str]:
    written: set[str] = set()
    for video_id, features, meta in parts:
        if video_id in written:
            raise FeatureStoreError(f'build_store({name}): video {video_id!r} is given twice')
        out.add(video_id, features, meta)
        written.add(video_id)
    return written


def merge_stores(shards: Sequence[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Merge shard stores (e.g. one per GPU) into ``out`` with :func:`build_store`.

    Every shard's provenance must equal the first one's (:meth:`StoreInfo.differences`; the error names the shard
    and the differing fields with both values); the output carries the first shard's info. A video in several
    shards must have identical features and metadata there (it is then written once), otherwise the merge is
    refused.
    """
    if not shards:
        raise ValueError('merge_stores needs at least one shard')
    shards = [Path(s) for s in shards]
    with FeatureStore.open(shards[0]) as first:
        info = first.info
    for shard in shards[1:]:
        with FeatureStore.open(shard) as s:
            differences = info.differences(s.info)
        if differences:
            raise FeatureStoreError(f'shard {shard} is incompatible with {shards[0]}: differing '
                                    f'{describe_differences(differences, shards[0].name, shard.name)}')

    def parts() -> Iterator[tuple[str, np.ndarray, VideoFeatureMeta]]:
        seen: dict[str, Path] = {}
        for shard in shards:
            with FeatureStore.open(shard) as s:
                for video_id in s.ids():
                    data, meta = s.read(video_id)
                    if video_id in seen:
                        with FeatureStore.open(seen[video_id]) as earlier:
                            data0, meta0 = earlier.read(video_id)
                        if not (np.array_equal(data0, data) and meta0 == meta):
                            raise FeatureStoreError(f'video {video_id!r} is in {seen[video_id]} and {shard} with '
                                                    'different features or metadata; refusing to merge')
                        continue
                    seen[video_id] = shard
                    yield video_id, data, meta

    return build_store(out, info, parts(), size_hint=sum(s.stat().st_size for s in shards))
