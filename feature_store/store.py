"""HDF5 feature store: one file, one ``[num_clips, C]`` dataset per video, with the provenance inside the file.

The layout is documented in ``feature_store/README.md`` and can be read with plain h5py (``h5[video_id][()]``), which
is what ActionFormer's ActivityNet loader and TSP-style readers do (docs/feature_caching.md). What we add over those files is the
provenance none of them store: per-video fps, frame count, clip length, stride and the centre frame of every row
(dataset attributes), and model, checkpoint hash, preprocessing, dtype and the full extraction config (file
attributes), so that features can be mapped back to seconds and mixed-up extractions are refused (docs/thumos14.md#time-and-feature-rows).

**Time convention.** Row ``i`` of a video is the clip whose centre frame is ``centre_frames[i]``; its time is
``centre_frames[i] / fps`` seconds. For the official TAD windows (16 frames starting at ``s``) the centre frame is
``s + 8`` (``ClipSample.centres``, ``start + clip_len // 2``), not the geometric middle ``s + 7.5``: this is the
point ActionFormer assigns to a feature, ``t = (grid * feat_stride + 0.5 * num_frames) / fps`` (docs/thumos14.md#time-and-feature-rows), and
OpenTAD's ``offset_frames=8``.

**Integrity.** A dataset exists under a video id only when its data and attributes are fully written
(:meth:`FeatureStore.add` writes under ``__incomplete__/`` and renames). Whole files are made by :func:`build_store`,
which writes ``<out>.tmp`` and renames it over ``<out>`` with ``os.replace``, so a process killed at any moment
leaves either the old file or the new one. Extractors write one small part file per finished video
(:func:`write_part`) and turn them into a store with :func:`build_store`.

Example::

    info = StoreInfo(arch='vit_giant_patch14_224', checkpoint_sha256=sha, feature_kind='pooled',
                     preprocessing={'resize': 'squash', 'size': 224, 'normalize': None, 'frame_dtype': 'uint8'},
                     dtype='float32', config=cfg)
    sample = sliding_window_sample(n, clip_len=16, stride=4, fps=fps)
    write_part('work/parts', 'video_test_0000004', feats, VideoFeatureMeta.from_clip_sample(
        'video_test_0000004', sample, stride=4))
    build_store('feats.h5', info, read_parts('work/parts'), base='feats.h5')

    with FeatureStore.open('feats.h5') as store:
        feats, meta = store.read('video_test_0000004')       # (T, C), VideoFeatureMeta
        t = meta.row_to_seconds(np.arange(len(feats)))        # centre time of every row
"""
from __future__ import annotations

import bisect
import hashlib
import json
import math
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import h5py
import numpy as np

if TYPE_CHECKING:
    from tasks.data.video.sampling import ClipSample

__all__ = [
    'SCHEMA_VERSION', 'FeatureStoreError', 'UnknownVideoError', 'VideoFeatureMeta', 'StoreInfo', 'FeatureStore',
    'build_store', 'write_part', 'read_parts', 'part_ids', 'part_path', 'merge_stores',
]

SCHEMA_VERSION = 1
"""Version of the file layout written by this module; readers refuse files with a newer version."""

StoreDType = Literal['float32', 'float16']
Compression = Literal['gzip'] | None

INCOMPLETE_GROUP = '__incomplete__'
"""Group holding datasets that are being written; never a video id, removed when empty."""

_CONFIG_KEYS_THAT_MATTER = ('clip_len', 'frame_interval', 'stride')
_META_ATTRS = ('fps', 'num_frames', 'duration', 'clip_len', 'frame_interval', 'stride', 'centre_frames')
_FLOAT16_MAX = float(np.finfo(np.float16).max)


class FeatureStoreError(Exception):
    """A feature store (or part file) is missing, unreadable, inconsistent or incompatible; the message names it."""


class UnknownVideoError(FeatureStoreError, KeyError):
    """A video id is not in a store. Also a ``KeyError``, so ``except KeyError`` works as for a dict."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def _package_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version('videomaev2-suite')
        except PackageNotFoundError:
            pass
        import tomllib  # source checkout without `pip install -e .`: read pyproject.toml
        pyproject = Path(__file__).resolve().parents[1] / 'pyproject.toml'
        return f"{tomllib.loads(pyproject.read_text())['project']['version']}+source"
    except Exception:  # version lookup is provenance only; never fail a write over it
        return 'unknown'


# =====================================================================================================================
# Metadata
# =====================================================================================================================
@dataclass(eq=False)
class VideoFeatureMeta:
    """How the rows of one video's features were made, and the mapping between rows and seconds.

    Attributes:
        video_id: key of the video in the store.
        fps: frame rate of the decoded video (native; the official extractor does not resample).
        num_frames: frames in the video.
        duration: video length in seconds (``num_frames / fps`` unless the container says otherwise).
        clip_len: frames per clip.
        frame_interval: step between the frames of a clip; 0 when it varies (segment sampling).
        stride: frames between consecutive clips (4 for THUMOS14, docs/thumos14.md#official-feature-extractor).
        centre_frames: (num_clips,) int64 centre frame of every row (``ClipSample.centres``), increasing.
    """

    video_id: str
    fps: float
    num_frames: int
    duration: float
    clip_len: int
    frame_interval: int
    stride: int
    centre_frames: np.ndarray

    def __post_init__(self) -> None:
        self.video_id = str(self.video_id)
        self.fps = float(self.fps)
        self.num_frames = int(self.num_frames)
        self.duration = float(self.duration)
        self.clip_len = int(self.clip_len)
        self.frame_interval = int(self.frame_interval)
        self.stride = int(self.stride)
        centres = np.asarray(self.centre_frames)
        if centres.ndim != 1 or centres.size == 0:
            raise ValueError(f'{self.video_id}: centre_frames must be a non-empty 1-D array, got shape {centres.shape}')
        if not np.issubdtype(centres.dtype, np.integer):
            if not np.all(centres == np.round(centres)):
                raise ValueError(f'{self.video_id}: centre_frames must be integer frame indices')
        self.centre_frames = centres.astype(np.int64)
        problems = []
        if not (math.isfinite(self.fps) and self.fps > 0):
            problems.append(f'fps must be positive, got {self.fps}')
        if self.num_frames < 1:
            problems.append(f'num_frames must be >= 1, got {self.num_frames}')
        if not (math.isfinite(self.duration) and self.duration > 0):
            problems.append(f'duration must be positive, got {self.duration}')
        if self.clip_len < 1:
            problems.append(f'clip_len must be >= 1, got {self.clip_len}')
        if self.frame_interval < 0:
            problems.append(f'frame_interval must be >= 0 (0: varies), got {self.frame_interval}')
        if self.stride < 1:
            problems.append(f'stride must be >= 1, got {self.stride}')
        if np.any(np.diff(self.centre_frames) <= 0):
            problems.append('centre_frames must be strictly increasing')
        if problems:
            raise ValueError(f'{self.video_id}: ' + '; '.join(problems))

    # ---------------------------------------------------------------------------------------------------------------
    @classmethod
    def from_clip_sample(cls, video_id: str, sample: ClipSample, stride: int) -> VideoFeatureMeta:
        """Metadata of features computed from ``sample`` (one row per clip, in order).

        Args:
            video_id: key of the video.
            sample: the clips (``tasks.data.video.sampling``); must carry ``fps``.
            stride: frames between consecutive clips, as given to the sampler (also needed for one-clip videos,
                where it cannot be read off the centres).
        """
        if not sample.fps:
            raise ValueError(f'{video_id}: the ClipSample has no fps (pass fps= to the sampler); the store needs it '
                             'to map rows to seconds')
        steps = np.unique(np.diff(sample.centres))
        if steps.size == 1 and int(steps[0]) != stride:
            raise ValueError(f'{video_id}: stride={stride} but the clip centres are {int(steps[0])} frames apart '
                             f'(sampler {sample.sampler!r})')
        return cls(video_id=video_id, fps=sample.fps, num_frames=sample.num_frames,
                   duration=sample.num_frames / sample.fps, clip_len=sample.clip_len,
                   frame_interval=sample.frame_interval or 0, stride=stride, centre_frames=sample.centres)

    @property
    def num_rows(self) -> int:
        return int(self.centre_frames.shape[0])

    @property
    def offset_frames(self) -> int:
        """Centre frame of the first row (8 for official 16-frame windows from frame 0)."""
        return int(self.centre_frames[0])

    @property
    def centre_seconds(self) -> np.ndarray:
        """(num_rows,) centre time of every row in seconds."""
        return self.centre_frames / self.fps

    def _is_regular(self) -> bool:
        return bool(np.all(np.diff(self.centre_frames) == self.stride))

    def row_to_frame(self, rows: np.ndarray | float) -> np.ndarray:
        """Centre frame (float) of (fractional) rows: linear between neighbouring rows, and ``stride`` frames per
        row before the first and after the last row (e.g. for segment boundaries that extend past the grid)."""
        r = np.asarray(rows, dtype=np.float64)
        if self._is_regular():  # the usual case, in closed form: offset + r * stride
            return self.offset_frames + r * self.stride
        c = self.centre_frames.astype(np.float64)
        last = self.num_rows - 1
        inside = np.interp(r, np.arange(self.num_rows, dtype=np.float64), c)
        return np.where(r < 0, c[0] + r * self.stride, np.where(r > last, c[-1] + (r - last) * self.stride, inside))

    def frame_to_row(self, frames: np.ndarray | float) -> np.ndarray:
        """Inverse of :meth:`row_to_frame` (float rows)."""
        f = np.asarray(frames, dtype=np.float64)
        if self._is_regular():
            return (f - self.offset_frames) / self.stride
        c = self.centre_frames.astype(np.float64)
        last = self.num_rows - 1
        inside = np.interp(f, c, np.arange(self.num_rows, dtype=np.float64))
        return np.where(f < c[0], (f - c[0]) / self.stride,
                        np.where(f > c[-1], last + (f - c[-1]) / self.stride, inside))

    def row_to_seconds(self, rows: np.ndarray | float, clip: bool = False) -> np.ndarray:
        """Centre time in seconds of (fractional) rows, ``row_to_frame(rows) / fps``.

        For official windows (offset 8, stride 4) this is ActionFormer's ``(grid * 4 + 0.5 * 16) / fps``.

        Args:
            rows: row indices, may be fractional or outside ``[0, num_rows - 1]``.
            clip: clamp the result to ``[0, duration]``, as ActionFormer does for predicted segments.
        """
        t = self.row_to_frame(rows) / self.fps
        return np.clip(t, 0.0, self.duration) if clip else t

    def seconds_to_row(self, t: np.ndarray | float) -> np.ndarray:
        """(Fractional) row whose centre is at time ``t`` seconds; inverse of :meth:`row_to_seconds`."""
        return self.frame_to_row(np.asarray(t, dtype=np.float64) * self.fps)

    # ---------------------------------------------------------------------------------------------------------------
    def to_attrs(self) -> dict[str, Any]:
        """HDF5 dataset attributes (README: "Per-video attributes")."""
        return {'fps': np.float64(self.fps), 'num_frames': np.int64(self.num_frames),
                'duration': np.float64(self.duration), 'clip_len': np.int64(self.clip_len),
                'frame_interval': np.int64(self.frame_interval), 'stride': np.int64(self.stride),
                'centre_frames': self.centre_frames, 'offset_frames': np.int64(self.offset_frames)}

    @classmethod
    def from_attrs(cls, video_id: str, attrs: Mapping[str, Any], where: str = '') -> VideoFeatureMeta:
        missing = [n for n in _META_ATTRS if n not in attrs]
        if missing:
            raise FeatureStoreError(f'{where}: dataset {video_id!r} lacks attributes {missing}')
        return cls(video_id=video_id, **{n: attrs[n] for n in _META_ATTRS})

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (lists for arrays), as written in the npy sidecar."""
        d = asdict(self)
        d['centre_frames'] = self.centre_frames.tolist()
        d['offset_frames'] = self.offset_frames
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VideoFeatureMeta:
        names = ('video_id', 'fps', 'num_frames', 'duration', 'clip_len', 'frame_interval', 'stride', 'centre_frames')
        missing = [n for n in names if n not in d]
        if missing:
            raise ValueError(f'video metadata lacks {missing}')
        return cls(**{n: d[n] for n in names})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VideoFeatureMeta):
            return NotImplemented
        return (self.to_attrs().keys() == other.to_attrs().keys() and self.video_id == other.video_id
                and all(np.array_equal(a, other.to_attrs()[k]) for k, a in self.to_attrs().items()))


def _flatten(d: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f'{prefix}.{k}' if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


@dataclass
class StoreInfo:
    """File-level provenance of a store (README: "File attributes").

    Attributes:
        arch: backbone preset, e.g. ``'vit_giant_patch14_224'``.
        checkpoint_sha256: hex SHA-256 of the checkpoint file the features came from.
        feature_kind: what a row is, e.g. ``'pooled'`` (``forward_features``, mean-pooled tokens).
        preprocessing: resize mode and size, normalisation (or ``None``), frame dtype, ... (JSON-serialisable).
        dtype: storage dtype, ``'float32'`` or ``'float16'`` (docs/video_decoding.md: float16 halves the size).
        config: the full extraction config (JSON-serialisable).
        schema_version: layout version (:data:`SCHEMA_VERSION`).
        package_version: version of this suite that wrote the file.
        created: ISO-8601 UTC time the file was written (set on write; ignored by :meth:`compatible_with`).
    """

    arch: str
    checkpoint_sha256: str
    feature_kind: str
    preprocessing: dict
    dtype: StoreDType
    config: dict
    schema_version: int = SCHEMA_VERSION
    package_version: str = field(default_factory=_package_version)
    created: str | None = None

    def __post_init__(self) -> None:
        if self.dtype not in ('float32', 'float16'):
            raise ValueError(f"dtype must be 'float32' or 'float16', got {self.dtype!r}")
        for name in ('preprocessing', 'config'):
            try:
                json.dumps(getattr(self, name))
            except TypeError as e:
                raise ValueError(f'StoreInfo.{name} must be JSON-serialisable: {e}') from None

    def compatible_with(self, other: StoreInfo) -> list[str]:
        """Fields that differ in a way that makes features not interchangeable (empty if compatible).

        Compared: ``arch``, ``checkpoint_sha256``, ``feature_kind``, ``preprocessing``, ``dtype``, and every config
        entry named ``clip_len``, ``frame_interval`` or ``stride`` at any depth (reported as ``config.<dotted
        path>``). Other config entries (paths, shard lists, batch size), versions and times may differ.
        """
        diff = [name for name in ('arch', 'checkpoint_sha256', 'feature_kind', 'preprocessing', 'dtype')
                if getattr(self, name) != getattr(other, name)]
        mine, theirs = _flatten(self.config), _flatten(other.config)
        for key in sorted(set(mine) | set(theirs)):
            if key.rsplit('.', 1)[-1] in _CONFIG_KEYS_THAT_MATTER and mine.get(key, '<missing>') != theirs.get(
                    key, '<missing>'):
                diff.append(f'config.{key}')
        return diff

    def to_attrs(self) -> dict[str, Any]:
        return {'schema_version': np.int64(self.schema_version), 'arch': self.arch,
                'checkpoint_sha256': self.checkpoint_sha256, 'feature_kind': self.feature_kind,
                'preprocessing': json.dumps(self.preprocessing, sort_keys=True), 'dtype': self.dtype,
                'package_version': self.package_version, 'config': json.dumps(self.config, sort_keys=True),
                'created': self.created or datetime.now(timezone.utc).isoformat(timespec='seconds')}

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], where: str) -> StoreInfo:
        names = ('arch', 'checkpoint_sha256', 'feature_kind', 'preprocessing', 'dtype', 'config', 'package_version')
        missing = [n for n in names if n not in attrs]
        if missing:
            raise FeatureStoreError(f'{where}: file attributes {missing} are missing (not a feature store written by '
                                    'this suite, or a damaged one)')
        values = {n: _as_str(attrs[n]) for n in names}
        try:
            values['preprocessing'] = json.loads(values['preprocessing'])
            values['config'] = json.loads(values['config'])
        except json.JSONDecodeError as e:
            raise FeatureStoreError(f'{where}: file attribute preprocessing/config is not valid JSON: {e}') from None
        return cls(**values, schema_version=int(attrs['schema_version']),
                   created=_as_str(attrs['created']) if 'created' in attrs else None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StoreInfo:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _read_meta_attrs(ds: h5py.Dataset) -> dict[str, Any]:
    """The per-video attributes, through the low-level API with the dtypes and shapes we write (float64/int64
    scalars, ``centre_frames`` one int64 per row). Reading 7 attributes through ``ds.attrs`` costs ~0.6 ms, more
    than reading a (256, 768) float32 dataset, mostly spent building each attribute's numpy dtype and shape; this
    takes about half of that. Missing attributes are left out (the caller names them)."""
    out: dict[str, Any] = {}
    for name in _META_ATTRS:
        try:
            attr = h5py.h5a.open(ds.id, name.encode())
        except KeyError:
            continue
        if name == 'centre_frames':
            value = np.empty(ds.shape[:1], np.int64)
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


def _as_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# =====================================================================================================================
# The store
# =====================================================================================================================
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
                 compression: Compression = None, compression_opts: int | None = None) -> None:
        self._file = file
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
        """Open an existing store; errors name the file and say what is wrong (missing, not HDF5, wrong schema)."""
        path = Path(path)
        if mode not in ('r', 'a'):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        if not path.exists():
            raise FileNotFoundError(f'feature store {path} does not exist')
        if path.is_dir():
            raise FeatureStoreError(f'feature store {path} is a directory, not an HDF5 file')
        if not h5py.is_hdf5(path):
            raise FeatureStoreError(f'{path} is not an HDF5 file (a .npy folder? see feature_store.import_npy)')
        try:
            file = h5py.File(path, mode)
        except OSError as e:
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
            return cls(file, path, writable=mode == 'a')
        except BaseException:
            file.close()
            raise

    @classmethod
    def create(cls, path: str | os.PathLike, info: StoreInfo, *, overwrite: bool = False,
               compression: Compression = None, compression_opts: int | None = None) -> FeatureStore:
        """Create an empty store with ``info`` as file attributes.

        Args:
            path: file to create.
            info: provenance; ``created`` is set to now if empty.
            overwrite: replace an existing file (otherwise an existing file is an error).
            compression: ``None`` (contiguous, the fastest to read, docs/video_decoding.md) or ``'gzip'`` (chunked; saves only
                7-13% on features at a 10-26x read cost).
            compression_opts: gzip level 0-9.
        """
        path = Path(path)
        if compression not in (None, 'gzip'):
            raise ValueError(f"compression must be None or 'gzip', got {compression!r}")
        if path.exists() and not overwrite:
            raise FileExistsError(f'{path} exists; pass overwrite=True, or use build_store() to update it safely')
        path.parent.mkdir(parents=True, exist_ok=True)
        file = h5py.File(path, 'w')
        try:
            file.attrs.update(info.to_attrs())
            return cls(file, path, writable=True, compression=compression, compression_opts=compression_opts)
        except BaseException:
            file.close()
            raise

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._file.id.valid:
            return
        if self.writable and INCOMPLETE_GROUP in self._file and len(self._file[INCOMPLETE_GROUP]) == 0:
            del self._file[INCOMPLETE_GROUP]
        self._file.close()

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
                      'chunks': (min(len(data), 256), data.shape[1])}
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
        if a.ndim != 2:
            raise ValueError(f'{video_id}: features must be (num_clips, C), got shape {a.shape}')
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


# =====================================================================================================================
# Whole-file writes, part files, merging
# =====================================================================================================================
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
                compression: Compression = None, compression_opts: int | None = None) -> Path:
    """Write a complete store to ``out_path`` atomically: the parts plus the videos of ``base``.

    The new file is written to ``<out_path>.tmp`` (a stale one from a killed run is overwritten), fsynced and
    renamed over ``out_path`` with ``os.replace``. A finished file is never modified in place, so a crash or SIGKILL
    at any moment leaves the old ``out_path`` (or none) or the complete new one; an exception (also one raised by
    the ``parts`` iterator) removes the ``.tmp`` file and leaves ``out_path`` untouched.

    ``base`` may be ``out_path`` itself (resuming an extraction). Its info must be compatible with ``info``
    (:meth:`StoreInfo.compatible_with`); the new file carries ``info``. A part whose id is also in ``base``
    replaces it (a re-extraction). The parts are written first and the remaining base videos after them, which
    gives the same result as copying the base first and never leaves dead space in the file.

    Args:
        out_path: the store to write.
        info: provenance of the new file.
        parts: ``(video_id, features (T, C), meta)`` for each video, consumed once (e.g. :func:`read_parts`).
        base: an existing store whose videos are kept.
        compression: see :meth:`FeatureStore.create`.
        compression_opts: gzip level.

    Returns:
        ``out_path`` as a Path.
    """
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + '.tmp')
    base_store = FeatureStore.open(base) if base is not None else None
    try:
        if base_store is not None:
            diff = base_store.info.compatible_with(info)
            if diff:
                raise FeatureStoreError(f'base store {base} is incompatible with the new info: differing {diff}')
        written: set[str] = set()
        try:
            with FeatureStore.create(tmp, info, overwrite=True, compression=compression,
                                     compression_opts=compression_opts) as out:
                for video_id, features, meta in parts:
                    if video_id in written:
                        raise FeatureStoreError(f'build_store({out_path}): video {video_id!r} is given twice')
                    out.add(video_id, features, meta)
                    written.add(video_id)
                if base_store is not None:
                    for video_id in base_store.ids():
                        if video_id not in written:
                            data, meta = base_store.read(video_id)
                            out.add(video_id, data, meta)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    finally:
        if base_store is not None:
            base_store.close()
    _fsync_path(tmp)
    os.replace(tmp, out_path)
    _fsync_path(out_path.parent, directory=True)
    return out_path


_PART_SUFFIX = '.npz'


def part_path(folder: str | os.PathLike, video_id: str) -> Path:
    """Part file of a video: the id percent-encoded (``/`` -> ``%2F``, a leading ``.`` -> ``%2E``) + ``.npz``; ids
    whose encoding is over 200 characters are cut and made unique with a hash. The id itself is stored inside."""
    check_video_id(video_id)
    name = quote(video_id, safe='')
    if name.startswith('.'):
        name = '%2E' + name[1:]
    if len(name) > 200:
        name = f'{name[:150]}~{hashlib.sha1(video_id.encode()).hexdigest()[:16]}'
    return Path(folder) / (name + _PART_SUFFIX)


def write_part(folder: str | os.PathLike, video_id: str, features: np.ndarray, meta: VideoFeatureMeta) -> Path:
    """Save one finished video to ``folder`` as a small ``.npz`` (temp name, then ``os.replace``), so a part file
    either is complete or does not exist. Overwrites an earlier part of the same video."""
    if meta.video_id != video_id:
        raise ValueError(f'write_part({video_id!r}): meta is for video {meta.video_id!r}')
    a = np.asarray(features)
    if a.ndim != 2 or a.shape[0] != meta.num_rows:
        raise ValueError(f'{video_id}: features shape {a.shape} does not match {meta.num_rows} centre_frames')
    path = part_path(folder, video_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    try:
        with open(tmp, 'wb') as f:
            np.savez(f, features=a, video_id=np.array(video_id), meta=np.array(json.dumps(meta.to_dict())))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _part_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f'part folder {folder} does not exist')
    return sorted(p for p in folder.iterdir() if p.name.endswith(_PART_SUFFIX) and not p.name.startswith('.'))


def _load_part(path: Path, with_features: bool = True) -> tuple[str, np.ndarray | None, VideoFeatureMeta]:
    try:
        with np.load(path, allow_pickle=False) as z:
            video_id = str(z['video_id'])
            meta = VideoFeatureMeta.from_dict(json.loads(str(z['meta'])))
            features = z['features'] if with_features else None
    except Exception as e:
        raise FeatureStoreError(f'part file {path} is unreadable: {e}') from e
    return video_id, features, meta


def part_ids(folder: str | os.PathLike) -> list[str]:
    """Ids of the videos with a part file in ``folder`` (features are not loaded)."""
    return sorted(_load_part(p, with_features=False)[0] for p in _part_files(Path(folder)))


def read_parts(folder: str | os.PathLike) -> Iterator[tuple[str, np.ndarray, VideoFeatureMeta]]:
    """Yield ``(video_id, features, meta)`` from the part files in ``folder`` one at a time (sorted by file name;
    temp files of unfinished writes are ignored). Feed it to :func:`build_store`."""
    for path in _part_files(Path(folder)):
        video_id, features, meta = _load_part(path)
        assert features is not None
        yield video_id, features, meta


def merge_stores(shards: Sequence[str | os.PathLike], out: str | os.PathLike) -> Path:
    """Merge shard stores (e.g. one per GPU) into ``out`` with :func:`build_store`.

    Every shard's info must be compatible with the first one's (the error names the shard and the differing
    fields); the output carries the first shard's info. A video in several shards must have identical features and
    metadata there (it is then written once), otherwise the merge is refused.
    """
    if not shards:
        raise ValueError('merge_stores needs at least one shard')
    shards = [Path(s) for s in shards]
    with FeatureStore.open(shards[0]) as first:
        info = first.info
    for shard in shards[1:]:
        with FeatureStore.open(shard) as s:
            diff = info.compatible_with(s.info)
        if diff:
            raise FeatureStoreError(f'shard {shard} is incompatible with {shards[0]}: differing {", ".join(diff)}')

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

    return build_store(out, info, parts())


def __getattr__(name: str) -> Any:
    # The torch dataset and the npy converters live in their own modules (torch is not needed to read a store);
    # they are reachable from here too so that every public name of the package is importable from this module.
    if name in ('FeatureDataset', 'collate_features'):
        from . import dataset
        return getattr(dataset, name)
    if name in ('export_npy', 'import_npy'):
        from . import npy
        return getattr(npy, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
