"""Conversion to and from the one-``.npy``-per-video layout of VideoMAE V2, ActionFormer and OpenTAD
(docs/feature_caching.md#one-npy-file-per-video).

:func:`export_npy` writes the npy files plus a ``features_meta.json`` sidecar holding the provenance and per-video
metadata npy files cannot; :func:`import_npy` reads such a folder back into a store, or a bare folder given the facts
as arguments. The sidecar's format: ``feature_store/README.md``, "npy export and import".
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tasks.data.files import atomic_path, write_json_atomic

from .errors import FeatureStoreError
from .info import SCHEMA_VERSION, StoreInfo, describe_differences
from .meta import VideoFeatureMeta
from .store import FeatureStore, build_store

__all__ = ['SIDECAR_NAME', 'export_npy', 'import_npy']

SIDECAR_NAME = 'features_meta.json'
_SIDECAR_FORMAT = 'videomaev2-suite features_meta'


def export_npy(store_path: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Write every video of a store as ``<folder>/<video_id>.npy`` (float32 [T, C]) plus ``features_meta.json``.

    An id with '/' becomes a sub-folder, which is what ``os.path.join(feat_folder, video_id + '.npy')`` in the
    ActionFormer and OpenTAD loaders expects. Each file is written under a temporary name and renamed; the sidecar
    is written last, so a folder with a sidecar is complete. Returns the sidecar path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    videos: dict[str, Any] = {}
    with FeatureStore.open(store_path) as store:
        store.require_kind('pooled', 'export_npy (the one-.npy-per-video layout of ActionFormer and OpenTAD)')
        info = store.info
        for video_id in store.ids():
            features, meta = store.read(video_id, dtype=np.float32)
            with atomic_path(folder / f'{video_id}.npy') as tmp:
                np.save(tmp, features)
            videos[video_id] = meta.to_dict()
    return write_json_atomic(folder / SIDECAR_NAME, {'format': _SIDECAR_FORMAT, 'schema_version': SCHEMA_VERSION,
                                                     'info': info.to_dict(), 'videos': videos}, indent=1)


def _npy_files(folder: Path) -> dict[str, Path]:
    """Video id (path relative to ``folder`` without ``.npy``, '/'-separated) -> file. Hidden files are skipped:
    they are the temporary files of an interrupted export."""
    found = {}
    for p in sorted(folder.rglob('*.npy')):
        relative = p.relative_to(folder)
        if not any(part.startswith('.') for part in relative.parts):
            found[relative.with_suffix('').as_posix()] = p
    return found


def _read_npy(path: Path, mmap_mode: str | None = None) -> np.ndarray:
    """A per-video ``.npy``: a 2-d array of numbers, never unpickled (an object array's pickle could run code,
    docs/security.md#npy-and-npz-files)."""
    try:
        features = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:  # object arrays, pickles, truncated or foreign files
        raise FeatureStoreError(f'{path}: not a readable .npy array of numbers ({e})') from e
    if not isinstance(features, np.ndarray):  # np.load opens a zip archive as an .npz, whatever its name
        features.close()
        raise FeatureStoreError(f'{path}: expected a 2-d [T, C] array of numbers, found an .npz archive')
    if features.dtype.kind not in 'fiu' or features.ndim != 2:
        raise FeatureStoreError(f'{path}: expected a 2-d [T, C] array of numbers, found a {features.dtype} array '
                                f'of shape {features.shape}')
    return features


def _per_video(value: float | Mapping[str, float] | None, video_id: str, name: str) -> Any:
    if isinstance(value, Mapping):
        if video_id not in value:
            raise ValueError(f'{name} has no entry for video {video_id!r}')
        return value[video_id]
    return value


def _sidecar_metadata(folder: Path, files: Mapping[str, Path], info: StoreInfo | None
                      ) -> tuple[StoreInfo, dict[str, VideoFeatureMeta]]:
    """Info and per-video metadata from ``features_meta.json``; an ``info`` given must have the same provenance."""
    sidecar = folder / SIDECAR_NAME
    try:
        doc = json.loads(sidecar.read_text())
        if doc.get('format') != _SIDECAR_FORMAT:
            raise ValueError(f"'format' is {doc.get('format')!r}, expected {_SIDECAR_FORMAT!r}")
        side_info = StoreInfo.from_dict(doc['info'])
        metas = {vid: VideoFeatureMeta.from_dict(m) for vid, m in doc['videos'].items()}
    except (ValueError, KeyError, TypeError) as e:
        raise FeatureStoreError(f'{sidecar}: not a valid features_meta.json: {e}') from e
    differences = side_info.differences(info) if info is not None else []
    if differences:
        raise FeatureStoreError(f'the info argument describes other features than {sidecar}: '
                                f'{describe_differences(differences, SIDECAR_NAME, "argument")}')
    unlisted, absent = sorted(set(files) - set(metas)), sorted(set(metas) - set(files))
    if unlisted or absent:
        raise FeatureStoreError(f'{folder}: npy files and {SIDECAR_NAME} disagree: no metadata for '
                                f'{unlisted[:5]}, no .npy for {absent[:5]}')
    return info if info is not None else side_info, metas


def _grid_metadata(video_id: str, rows: int, fps: float | Mapping[str, float],
                   num_frames: int | Mapping[str, int] | None, clip_len: int, frame_interval: int, stride: int,
                   offset: int) -> VideoFeatureMeta:
    """Metadata of a bare ``.npy`` of ``rows`` rows on the regular grid ``offset + row * stride``; without
    ``num_frames``, the fewest frames that hold the last window (its start + span; the true count may exceed it by up
    to ``stride - 1`` frames, the trailing frames no window covers)."""
    v_fps = float(_per_video(fps, video_id, 'fps'))
    if num_frames is None:
        last_centre = offset + (rows - 1) * stride
        v_frames = last_centre + (clip_len - 1 - clip_len // 2) * frame_interval + 1
    else:
        v_frames = int(_per_video(num_frames, video_id, 'num_frames'))
    return VideoFeatureMeta(video_id=video_id, fps=v_fps, num_frames=v_frames, duration=v_frames / v_fps,
                            clip_len=clip_len, frame_interval=frame_interval, stride=stride,
                            centre_frames=offset + np.arange(rows) * stride)


def _bare_info(folder: Path, arrays: Mapping[str, tuple[tuple[int, ...], np.dtype]], *, arch: str | None,
               checkpoint_sha256: str | None, feature_kind: str, preprocessing: Mapping[str, Any] | None,
               grid: Mapping[str, Any]) -> StoreInfo:
    """The provenance of a bare npy folder from what the caller knows; what nobody said is recorded as unknown.

    An unknown checkpoint becomes ``'unknown:npy:<digest>'``, a digest of the folder's ids, shapes and dtypes: the
    same folder imported twice (anywhere) gives interchangeable stores, while two different unknown sources never
    pass the provenance rule as one, as a shared ``'unknown'`` would.
    """
    if checkpoint_sha256 is None:
        digest = hashlib.sha256()
        for video_id, (shape, dtype) in sorted(arrays.items()):
            digest.update(f'{video_id}\0{shape}\0{dtype.str}\n'.encode())
        checkpoint_sha256 = f'unknown:npy:{digest.hexdigest()[:16]}'
    dtype = 'float16' if arrays and all(d == np.float16 for _, d in arrays.values()) else 'float32'
    # windows from frame 0 every stride frames are the official sampler's (what extraction records)
    official = grid['offset_frames'] == (grid['clip_len'] // 2) * grid['frame_interval']
    sampler = 'sliding/official' if official else f'sliding/offset{grid["offset_frames"]}'
    config = {'sampling': {'sampler': sampler, **grid}, 'source': {'npy_folder': str(folder)}}
    return StoreInfo(arch=arch or 'unknown', checkpoint_sha256=checkpoint_sha256, feature_kind=feature_kind,
                     preprocessing=dict(preprocessing) if preprocessing is not None else {}, dtype=dtype,
                     config=config)


def _bare_metadata(folder: Path, files: Mapping[str, Path], info: StoreInfo | None,
                   fps: float | Mapping[str, float], num_frames: int | Mapping[str, int] | None,
                   grid: Mapping[str, int], provenance: Mapping[str, Any]
                   ) -> tuple[StoreInfo, dict[str, VideoFeatureMeta]]:
    """Info (``info``, else :func:`_bare_info` of ``provenance``) and per-video metadata on the regular ``grid`` for
    a folder without sidecar."""
    arrays = {}  # shape and dtype only: an open memory map per file would run out of file handles
    for video_id, path in files.items():
        a = _read_npy(path, mmap_mode='r')
        arrays[video_id] = (a.shape, a.dtype)
        del a
    metas = {video_id: _grid_metadata(video_id, shape[0], fps, num_frames, grid['clip_len'], grid['frame_interval'],
                                      grid['stride'], grid['offset_frames'])
             for video_id, (shape, _) in arrays.items()}
    if info is None and arrays:
        info = _bare_info(folder, arrays, grid=grid, **provenance)
    return info, metas


def _option(name: str) -> str:
    """The ``tools/import_features.py`` option of an :func:`import_npy` argument."""
    return '--' + name.replace('_', '-')


def import_npy(folder: str | os.PathLike, out_path: str | os.PathLike, info: StoreInfo | None = None, *,
               fps: float | Mapping[str, float] | None = None,
               num_frames: int | Mapping[str, int] | None = None,
               clip_len: int | None = None, stride: int | None = None, frame_interval: int = 1,
               offset_frames: int | None = None, arch: str | None = None, checkpoint_sha256: str | None = None,
               feature_kind: str = 'pooled', preprocessing: Mapping[str, Any] | None = None) -> Path:
    """Build a store at ``out_path`` (atomically, :func:`build_store`) from a folder of per-video ``.npy`` files.

    With a ``features_meta.json`` sidecar (from :func:`export_npy`) the info and metadata come from it; an ``info``
    argument must then be compatible with the sidecar's, and the grid arguments must not be given. **Without a
    sidecar** (the official extractor's output, ActionFormer's and OpenTAD's feature folders) the time grid is not
    in the files, so ``fps``, ``clip_len`` and ``stride`` are required (fps as one value or a mapping video id ->
    value, e.g. from the ActionFormer json's ``fps``), and every video gets the regular grid
    ``centre_frames = offset_frames + row * stride``. The provenance is ``info`` if given, else built from ``arch``,
    ``checkpoint_sha256``, ``feature_kind`` and ``preprocessing``, with whatever is not given recorded as unknown.

    Args:
        folder: the npy files, searched recursively (an id's '/' is a sub-folder).
        out_path: the store to write.
        info: file provenance (optional: by default from the sidecar, or from the keyword arguments below).
        fps: frame rate, per video or for all (required without a sidecar).
        num_frames: video length in frames, per video or for all (without a sidecar; default the fewest frames
            that hold every row's window, which may be up to ``stride - 1`` short).
        clip_len: frames per clip (required without a sidecar).
        stride: frames between rows (required without a sidecar).
        frame_interval: step between frames of a clip (without a sidecar; 1 for the official TAD features).
        offset_frames: centre frame of row 0 (without a sidecar); default ``(clip_len // 2) * frame_interval``,
            i.e. 8 for official 16-frame windows from frame 0, ActionFormer's convention
            (docs/thumos14.md#time-and-feature-rows).
        arch: backbone of the features, e.g. ``'vit_giant'`` (without a sidecar or ``info``; default ``'unknown'``).
        checkpoint_sha256: SHA-256 of the checkpoint (:func:`~feature_store.checkpoint_id`; without a sidecar or
            ``info``; default ``'unknown:npy:<digest of the folder's ids and shapes>'``).
        feature_kind: what a row is (without a sidecar or ``info``; default ``'pooled'``).
        preprocessing: the preprocessing record (without a sidecar or ``info``; default ``{}``, unknown).

    Raises:
        ValueError: no sidecar and a required grid argument missing (all missing ones are named), or a grid
            argument given with a sidecar.
        FeatureStoreError: an unreadable file, an empty folder, an ``info`` that differs from the sidecar's.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'npy folder {folder} does not exist')
    files = _npy_files(folder)
    if (folder / SIDECAR_NAME).exists():
        given = [name for name, value in (('fps', fps), ('num_frames', num_frames), ('clip_len', clip_len),
                                          ('stride', stride), ('offset_frames', offset_frames)) if value is not None]
        if given:
            raise ValueError(f'{folder} has a {SIDECAR_NAME}, which gives every video\'s time grid: do not pass '
                             f'{", ".join(m + "=" for m in given)} ({", ".join(_option(m) for m in given)} on the '
                             'command line)')
        info, metas = _sidecar_metadata(folder, files, info)
    else:
        missing = [name for name, value in (('fps', fps), ('clip_len', clip_len), ('stride', stride))
                   if value is None]
        if missing:
            raise ValueError(f'{folder} has no {SIDECAR_NAME}, so the features carry no time grid: pass '
                             f'{", ".join(m + "=" for m in missing)} (fps per video or for all; on the command line '
                             f'{", ".join(_option(m) for m in missing)})')
        offset = (clip_len // 2) * frame_interval if offset_frames is None else offset_frames
        grid = {'clip_len': clip_len, 'frame_interval': frame_interval, 'stride': stride, 'offset_frames': offset}
        info, metas = _bare_metadata(folder, files, info, fps, num_frames, grid,
                                     dict(arch=arch, checkpoint_sha256=checkpoint_sha256, feature_kind=feature_kind,
                                          preprocessing=preprocessing))
    if not files:
        raise FeatureStoreError(f'{folder} holds no .npy files')

    def parts() -> Iterator[tuple[str, np.ndarray, VideoFeatureMeta]]:
        for video_id, path in files.items():
            features = _read_npy(path)
            if features.shape[0] != metas[video_id].num_rows:
                raise FeatureStoreError(f'{path}: shape {features.shape} does not match the '
                                        f'{metas[video_id].num_rows} rows of its metadata')
            yield video_id, features, metas[video_id]

    return build_store(out_path, info, parts())
