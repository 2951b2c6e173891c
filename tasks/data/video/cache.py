"""Whole decoded videos kept in memory, for training sets small enough to fit.

A training run samples every video once per epoch, and decoding (not the model) dominates a small model's step on a
CPU: at 128x96, decoding the frames up to a 29-frame window costs ~20 ms, cropping and resizing the 8 sampled frames
~2 ms. :class:`DecodedVideoCache` decodes each video once per process and serves later samples from memory, with the
same frames a fresh decode gives. It is a per-process LRU bounded in bytes; with ``persistent_workers=True`` every
data-loader worker keeps its own across epochs (so budget ``num_workers x max_mb``).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from .reader import Backend, VideoMeta, VideoReader

__all__ = ['CachedVideo', 'DecodedVideoCache', 'open_video']


class CachedVideo:
    """The decoded frames of one video, read like a :class:`VideoReader` (``meta``, ``num_frames``, ``fps``,
    ``timestamps``, ``get_frames``).

    Args:
        meta: the reader's metadata of the video.
        frames: uint8 (N, H, W, 3), every frame in presentation order.
    """

    def __init__(self, meta: VideoMeta, frames: torch.Tensor):
        self.meta, self.frames = meta, frames

    @property
    def path(self) -> Path:
        return self.meta.path

    @property
    def fps(self) -> float:
        return self.meta.fps

    @property
    def timestamps(self) -> np.ndarray:
        return self.meta.timestamps

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def nbytes(self) -> int:
        return self.frames.numel() * self.frames.element_size()

    def get_frames(self, indices) -> torch.Tensor:
        """As :meth:`VideoReader.get_frames`: uint8 (*indices.shape, H, W, 3), indices clipped to the video."""
        idx = np.clip(np.asarray(indices, dtype=np.int64), 0, self.num_frames - 1)
        return self.frames[torch.from_numpy(idx)]

    def __enter__(self) -> CachedVideo:
        return self

    def __exit__(self, *exc) -> None:
        pass


class DecodedVideoCache:
    """Per-process LRU of :class:`CachedVideo`, at most ``max_mb`` MiB of frames (a larger video is not kept).

    Raises (from :meth:`get`): :class:`~tasks.data.video.errors.VideoDecodeError`, as :class:`VideoReader` does; a
    failed video is not cached.
    """

    def __init__(self, max_mb: float, backend: Backend = 'auto'):
        if max_mb <= 0:
            raise ValueError(f'max_mb must be > 0, got {max_mb}')
        self.max_bytes = int(max_mb * 2 ** 20)
        self.backend = backend
        self._videos: OrderedDict[str, CachedVideo] = OrderedDict()
        self._bytes = 0
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._videos)

    @property
    def paths(self) -> list[str]:
        """The cached videos' paths, least recently used first."""
        return list(self._videos)

    @property
    def nbytes(self) -> int:
        """Bytes of decoded frames held."""
        return self._bytes

    def get(self, path: str | os.PathLike) -> CachedVideo:
        key = os.fspath(path)
        video = self._videos.get(key)
        if video is not None:
            self.hits += 1
            self._videos.move_to_end(key)
            return video
        self.misses += 1
        with VideoReader(key, backend=self.backend) as reader:
            video = CachedVideo(reader.meta, reader.get_frames(np.arange(reader.num_frames)))
        if video.nbytes <= self.max_bytes:
            while self._bytes + video.nbytes > self.max_bytes:
                _, old = self._videos.popitem(last=False)
                self._bytes -= old.nbytes
            self._videos[key] = video
            self._bytes += video.nbytes
        return video

    def __getstate__(self) -> dict:
        # A dataset is pickled into spawned workers: each starts with an empty cache of its own.
        state = dict(self.__dict__)
        state.update(_videos=OrderedDict(), _bytes=0, hits=0, misses=0)
        return state


def open_video(path: str | os.PathLike, backend: Backend = 'auto',
               cache: DecodedVideoCache | None = None) -> VideoReader | CachedVideo:
    """A context manager reading ``path``: the cache's decoded copy when a cache is given, else a fresh reader."""
    return cache.get(path) if cache is not None else VideoReader(path, backend=backend)
