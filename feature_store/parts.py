"""Part files: one small ``.npz`` per finished video, written atomically by an extractor and folded into a store by
:func:`feature_store.build_store` (``build_store(out, info, read_parts(folder), base=out)``)."""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import numpy as np

from tasks.data.files import atomic_path

from .errors import FeatureStoreError
from .meta import VideoFeatureMeta
from .store import check_video_id

__all__ = ['part_path', 'write_part', 'read_parts', 'part_ids']

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
    """Save one finished video to ``folder`` (atomically and fsynced: a part file is complete or absent; temporary
    files are hidden, so readers skip them). Overwrites an earlier part of the same video."""
    if meta.video_id != video_id:
        raise ValueError(f'write_part({video_id!r}): meta is for video {meta.video_id!r}')
    a = np.asarray(features)
    if a.ndim not in (2, 4) or a.shape[0] != meta.num_rows:  # (T, C) pooled rows or (K, C, H', W') featmaps
        raise ValueError(f'{video_id}: features shape {a.shape} does not match {meta.num_rows} centre_frames')
    path = part_path(folder, video_id)
    with atomic_path(path) as tmp, open(tmp, 'wb') as f:
        np.savez(f, features=a, video_id=np.array(video_id), meta=np.array(json.dumps(meta.to_dict())))
        f.flush()
        os.fsync(f.fileno())
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
    temporary files of unfinished writes are ignored)."""
    for path in _part_files(Path(folder)):
        video_id, features, meta = _load_part(path)
        assert features is not None
        yield video_id, features, meta
