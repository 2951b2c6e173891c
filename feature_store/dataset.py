"""Torch dataset over a feature store: one item per video, ``(features (T, C) float32, meta dict)``.

HDF5 handles must not cross a ``fork`` (a handle shared by DataLoader workers returns garbage or crashes), so the
file is opened lazily, on the first item read in each process, and reopened in a process other than the one that
opened it (docs/video_decoding.md).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .store import FeatureStore

__all__ = ['FeatureDataset', 'collate_features']


class FeatureDataset(Dataset):
    """Features of the videos of a store, one item per video id.

    Items are ``(features, meta)``: features a (T, C) float32 tensor (float16 stores are upcast), meta a dict with
    ``video_id``, ``fps``, ``num_frames``, ``duration``, ``clip_len``, ``frame_interval``, ``stride``,
    ``offset_frames`` and ``centre_frames`` (int64 numpy array, one per row). Batch with :func:`collate_features`.

    ``__init__`` opens the file only to list the ids and check them, then closes it; no handle is kept, so the
    dataset can be pickled to spawn workers and forked into fork workers.

    Args:
        path: the store.
        ids: videos to serve, in this order (default: all, sorted). Unknown ids are an error naming them.
    """

    def __init__(self, path: str | os.PathLike, ids: Sequence[str] | None = None) -> None:
        self.path = Path(path)
        with FeatureStore.open(self.path) as store:
            store.require_kind('pooled', 'FeatureDataset')  # a featmap store: its own dataset (tasks.detection)
            all_ids = store.ids()
            self.info = store.info
        if ids is None:
            self.ids = all_ids
        else:
            known = set(all_ids)
            missing = [i for i in ids if i not in known]
            if missing:
                raise KeyError(f'{len(missing)} video ids not in feature store {self.path}: {missing[:5]}')
            self.ids = list(ids)
        self._store: FeatureStore | None = None
        self._pid: int | None = None

    def _open(self) -> FeatureStore:
        if self._store is None or self._pid != os.getpid():
            # after a fork the inherited handle belongs to the parent: drop it without closing (closing would
            # touch the parent's HDF5 state) and open a fresh one
            self._store = FeatureStore.open(self.path)
            self._pid = os.getpid()
        return self._store

    @property
    def handle_pid(self) -> int | None:
        """Id of the process that opened the HDF5 handle the dataset holds (None: none yet). A forked worker
        inherits the parent's until it reads an item, which then opens its own."""
        return self._pid

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        video_id = self.ids[index]
        features, meta = self._open().read(video_id, dtype=np.float32)
        info = meta.to_attrs()
        info['video_id'] = video_id
        info = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in info.items()}
        return torch.from_numpy(np.ascontiguousarray(features)), info

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state['_store'], state['_pid'] = None, None  # h5py handles cannot be pickled (spawn workers)
        return state

    def close(self) -> None:
        if self._store is not None and self._pid == os.getpid():
            self._store.close()
        self._store = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: h5py may already be gone
            pass

    @staticmethod
    def collate(batch: Sequence[tuple[torch.Tensor, dict[str, Any]]]) -> dict[str, Any]:
        """Same as :func:`collate_features`, for ``DataLoader(ds, collate_fn=ds.collate)``."""
        return collate_features(batch)


def collate_features(batch: Sequence[tuple[torch.Tensor, dict[str, Any]]]) -> dict[str, Any]:
    """Pad a list of ``(features (T_i, C), meta)`` items to the longest video.

    Returns:
        ``{'features': (B, T_max, C) float32, zeros in the padding; 'mask': (B, T_max) bool, True on real rows;
        'lengths': (B,) int64 T_i; 'meta': list of the B meta dicts}``. ActionFormer wants (B, C, T) features and a
        (B, 1, T) mask: ``features.transpose(1, 2)``, ``mask[:, None]``.
    """
    if not batch:
        raise ValueError('collate_features got an empty batch')
    lengths = torch.tensor([f.shape[0] for f, _ in batch], dtype=torch.int64)
    dims = {f.shape[1] for f, _ in batch}
    if len(dims) != 1:
        raise ValueError(f'cannot batch videos with different feature dims {sorted(dims)}')
    out = batch[0][0].new_zeros((len(batch), int(lengths.max()), dims.pop()))
    for i, (f, _) in enumerate(batch):
        out[i, :f.shape[0]] = f
    mask = torch.arange(out.shape[1])[None] < lengths[:, None]
    return {'features': out, 'mask': mask, 'lengths': lengths, 'meta': [m for _, m in batch]}
