"""Clip-feature extraction from untrimmed videos into the HDF5 feature store (``tools/extract_features.py``).

One code path computes the features, both for the store and on-line inside tasks:

* :class:`Preprocess` turns decoded uint8 frames into model input, once per frame (the official TAD ``squash`` to
  224x224 without mean/std, or short-side resize + centre crop; ImageNet normalisation optional);
* :func:`sample_windows` gives the official TAD windows (16 consecutive frames every 4, docs/thumos14.md#official-feature-extractor);
* :func:`iter_clip_batches` cuts batches of windows with :meth:`tasks.data.video.VideoReader.iter_windows`, which decodes
  every frame once although windows overlap (23-31x less decoding than one ``get_batch`` per window, docs/video_decoding.md);
* :func:`forward_clips` runs :meth:`backbone.VideoMAEv2ViT.forward_features` in fp32 or bf16;
* :func:`extract_video_features` chains the three for one video.

:func:`extract_to_store` runs that over many videos with the decoding ahead of the model (``num_workers`` DataLoader
processes, or a background thread), resumable and crash-safe:

* every finished video becomes a part file (:func:`feature_store.write_part`, atomic) in ``OUT.rank{r}.parts/``;
* ``OUT`` is only ever written by :func:`feature_store.build_store` (``OUT.tmp`` then ``os.replace``) from the
  existing ``OUT`` plus the parts, after which the parts are deleted; under ``torchrun`` every rank folds its parts
  into its own shard ``OUT.rank{r}`` and rank 0 merges the shards (:func:`feature_store.merge_stores`);
* a rerun first collects the ids already in ``OUT``, in shards and in part files, and extracts only the others. So a
  process killed at any moment (SIGKILL included) leaves complete files only, and the rerun ends with the same file
  as an uninterrupted run.

Provenance (:func:`make_store_info`) records model, checkpoint SHA-256 (``random-init:<seed>`` without a checkpoint),
preprocessing, windows and compute dtype; appending to a store whose provenance differs is refused with the differing
fields named (:func:`provenance_differences`).

Example (on-line features inside a task, identical to the cached ones)::

    model = build_model('vit_giant', checkpoint='vit_g_hybrid_pt_1200e_k710_ft.pth', img_size=224, frames=16)
    pre = Preprocess(resize='squash', size=(224, 224), normalize=False)
    with VideoReader('video_test_0000004.mp4') as reader:
        feats = extract_video_features(model, reader, sample_windows(reader, 16, 1, 4), pre)   # (T, 1408)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import queue
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn

from tasks.data.video import VideoDecodeError, VideoReader, sliding_window_sample
from tasks.data.video import transforms as T
from tasks.data.video.reader import Backend
from tasks.data.video.sampling import ClipSample

from .store import (
    FeatureStore, FeatureStoreError, StoreInfo, VideoFeatureMeta, build_store, merge_stores, part_ids, read_parts,
    write_part,
)

__all__ = [
    'VIDEO_EXTENSIONS', 'ComputeDType', 'Preprocess', 'ExtractConfig', 'ExtractResult', 'ExtractError',
    'build_model', 'checkpoint_id', 'video_id_of', 'list_videos', 'sample_windows', 'iter_clip_batches',
    'forward_clips', 'extract_video_features', 'make_store_info', 'provenance_differences', 'extract_to_store',
    'build_parser', 'main',
]

ComputeDType = Literal['fp32', 'bf16']
ResizeMode = Literal['squash', 'short_side']

#: Suffixes taken from an INPUT folder (a list file may name any file).
VIDEO_EXTENSIONS = frozenset({'.mp4', '.m4v', '.mkv', '.webm', '.avi', '.mov', '.mpg', '.mpeg', '.flv', '.wmv', '.3gp',
                              '.ts', '.mts'})

#: Config entries that change the features but that :meth:`StoreInfo.compatible_with` does not look at (it compares
#: arch, checkpoint, feature kind, preprocessing, storage dtype and clip_len/frame_interval/stride).
_EXTRA_PROVENANCE = ('model.img_size', 'model.frames', 'sampling.sampler', 'compute_dtype')

#: How long ranks that finish early wait at a barrier for the slowest one (a share can take hours on a big model).
_DIST_TIMEOUT = timedelta(hours=24)

_PARTS_INFO = 'info.json'


class ExtractError(RuntimeError):
    """A run that cannot start or finish (incompatible store, bad input list); the message says what to do."""


# =====================================================================================================================
# Preprocessing, sampling, model
# =====================================================================================================================
@dataclass(frozen=True)
class Preprocess:
    """Frames -> model input, applied once per decoded chunk of frames (a picklable callable for data workers).

    ``'squash'`` is the official TAD preprocessing (docs/thumos14.md#official-feature-extractor): /255, then bilinear ``F.interpolate`` to ``size``
    (aspect ratio lost, no antialias), through :func:`tasks.data.video.transforms.squash_resize` for square sizes, so the
    input is bit-identical to the official extractor's. ``'short_side'`` keeps the aspect ratio: short side to
    ``short_side`` px, then a central ``size`` crop, /255. ``normalize`` then applies ImageNet mean/std (what the
    models were trained with; the official TAD features do without, VideoMAEv2 issue #62).

    Attributes:
        resize: ``'squash'`` or ``'short_side'``.
        size: (h, w) of the model input: the squash target, or the crop.
        short_side: the short side after resizing (``'short_side'`` only).
        normalize: ImageNet mean/std after /255.
    """

    resize: ResizeMode = 'squash'
    size: tuple[int, int] = (224, 224)
    short_side: int | None = None
    normalize: bool = True

    def __post_init__(self) -> None:
        if self.resize not in ('squash', 'short_side'):
            raise ValueError(f"resize must be 'squash' or 'short_side', got {self.resize!r}")
        h, w = self.size
        if h < 1 or w < 1:
            raise ValueError(f'size must be positive, got {self.size}')
        if self.resize == 'short_side':
            if self.short_side is None or self.short_side < min(h, w):
                raise ValueError(f'short_side resize needs short_side >= the crop {h}x{w}, got {self.short_side}')
        elif self.short_side is not None:
            raise ValueError('short_side is only used with resize="short_side"')

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (k, H, W, 3) -> float32 (3, k, h, w): the frames of one chunk, channels first as the ViT takes them."""
        h, w = self.size
        if self.resize == 'squash':
            if h == w:
                x = T.squash_resize(frames, h)  # (3, k, h, w), the official op order: /255 then interpolate
            else:  # same ops and order; squash_resize takes a square side only
                x = T.resize(frames.float() / 255, (h, w)).transpose(0, 1)
        else:
            x = T.center_crop(T.short_side_resize(frames, self.short_side), (h, w))  # (k, 3, h, w), 0-255
            x = (x / 255).transpose(0, 1)
        if self.normalize:  # mean/std given on the 0-1 scale of x
            x = T.normalize(x.transpose(0, 1), [m / 255 for m in T.IMAGENET_MEAN],
                            [s / 255 for s in T.IMAGENET_STD]).transpose(0, 1)
        return x.contiguous()

    def describe(self) -> dict[str, Any]:
        """The ``preprocessing`` provenance of a store (JSON)."""
        d: dict[str, Any] = {'resize': self.resize, 'size': list(self.size), 'interpolation': 'bilinear',
                             'align_corners': False, 'antialias': False, 'frame_dtype': 'uint8', 'scale': '1/255'}
        if self.resize == 'short_side':
            d.update(short_side=self.short_side, crop='center')
        d['normalize'] = {'mean': list(T.IMAGENET_MEAN), 'std': list(T.IMAGENET_STD), 'scale': '0-255'} \
            if self.normalize else None
        return d


def sample_windows(reader: VideoReader, clip_len: int = 16, frame_interval: int = 1, stride: int = 4) -> ClipSample:
    """The official TAD windows of a video: starts ``range(0, n - span + 1, stride)``, trailing frames dropped
    (:func:`tasks.data.video.sliding_window_sample` in ``'official'`` mode), with the video's fps for the store."""
    return sliding_window_sample(reader.num_frames, clip_len=clip_len, frame_interval=frame_interval, stride=stride,
                                 mode='official', fps=reader.fps)


def checkpoint_id(path: str | os.PathLike | None, seed: int = 0) -> str:
    """SHA-256 (hex) of a checkpoint file, or ``'random-init:<seed>'`` when there is none."""
    if path is None:
        return f'random-init:{seed}'
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def build_model(arch: str, *, checkpoint: str | os.PathLike | None = None, img_size: int | tuple[int, int] = 224,
                frames: int = 16, seed: int = 0, fused_attn: bool = True, patch_size: int | None = None) -> nn.Module:
    """A :class:`backbone.VideoMAEv2ViT` without head in eval mode, loaded from ``checkpoint`` (any layout
    :func:`backbone.load_checkpoint` reads; a classification head is dropped), or randomly initialised from ``seed``
    (deterministic, so that resumed and distributed runs agree without a checkpoint). The global RNG is untouched.
    ``patch_size`` overrides the preset's (e.g. the 8-px tiny configs); None keeps it."""
    from backbone import VideoMAEv2ViT, load_checkpoint

    extra = {} if patch_size is None else {'patch_size': patch_size}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VideoMAEv2ViT(arch, img_size=img_size, all_frames=frames, num_classes=0, fused_attn=fused_attn,
                              **extra)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model.eval()


def iter_clip_batches(reader: VideoReader, sample: ClipSample, preprocess: Callable[[torch.Tensor], torch.Tensor],
                      batch_size: int = 16, *, chunk_size: int = 16) -> Iterator[tuple[int, torch.Tensor]]:
    """Batches of preprocessed windows of one video, each frame decoded and preprocessed once.

    Args:
        reader: the open video.
        sample: its windows, ``sample.indices`` (num_clips, clip_len), sorted by start.
        preprocess: uint8 (k, H, W, 3) -> (3, k, h, w), e.g. :class:`Preprocess`.
        batch_size: windows per batch (the last batch may be smaller).
        chunk_size: frames per decoder call.

    Yields:
        ``(index of the batch's first window, clips (B, 3, clip_len, h, w) float32)``.

    Raises:
        VideoDecodeError: the video cannot be decoded (also part-way through).
    """
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    num_windows = len(sample.indices)
    batch: torch.Tensor | None = None
    first = filled = 0
    for window in reader.iter_windows(sample.indices, transform=preprocess, frame_dim=1, chunk_size=chunk_size):
        if batch is None:
            # Copy each window into a preallocated batch: torch.stack of the finished list was 5x slower on CPU
            # (12.6 vs 2.4 ms per 16x224x224 window), as much as decoding and resizing together.
            first, filled = window.index, 0
            batch = torch.empty((min(batch_size, num_windows - first), *window.frames.shape),
                                dtype=window.frames.dtype)
        batch[filled].copy_(window.frames)
        filled += 1
        if filled == len(batch):
            yield first, batch
            batch = None


@torch.no_grad()
def forward_clips(model: nn.Module, clips: torch.Tensor, dtype: ComputeDType = 'fp32') -> torch.Tensor:
    """``model.forward_features`` of a batch of clips (B, 3, T, h, w) -> (B, C) float32 on the model's device.

    ``'fp32'`` runs with autocast explicitly off (the official extractor's setting, also inside a caller's autocast
    region); ``'bf16'`` under ``torch.autocast(bfloat16)``, which keeps LayerNorm and softmax in fp32.
    """
    if dtype not in ('fp32', 'bf16'):
        raise ValueError(f"dtype must be 'fp32' or 'bf16', got {dtype!r}")
    device = next(model.parameters()).device
    x = clips.to(device, non_blocking=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == 'bf16'):
        out = model.forward_features(x)
    return out.float()


def extract_video_features(model: nn.Module, reader: VideoReader, sample: ClipSample,
                           preprocess: Callable[[torch.Tensor], torch.Tensor], *, batch_size: int = 16,
                           dtype: ComputeDType = 'fp32', chunk_size: int = 16) -> torch.Tensor:
    """Features of every window of one video, as the extraction tool stores them (same functions, same order).

    Args:
        model: a VideoMAE V2 ViT in eval mode (:func:`build_model`).
        reader: the open video.
        sample: its windows (:func:`sample_windows`).
        preprocess: frame transform (:class:`Preprocess`).
        batch_size: windows per forward.
        dtype: ``'fp32'`` or ``'bf16'`` compute.
        chunk_size: frames per decoder call.

    Returns:
        (num_clips, C) float32 on the model's device; row i is window i of ``sample``.
    """
    rows = [forward_clips(model, clips, dtype)
            for _, clips in iter_clip_batches(reader, sample, preprocess, batch_size, chunk_size=chunk_size)]
    return torch.cat(rows)


# =====================================================================================================================
# Inputs and provenance
# =====================================================================================================================
def video_id_of(path: str | os.PathLike) -> str:
    """Store key of a video: its file name up to the first '.', as the official extractor names its ``.npy`` files
    (``video_test_0000004.mp4`` -> ``video_test_0000004``)."""
    return Path(path).name.split('.')[0]


def list_videos(source: str | os.PathLike) -> list[tuple[str, Path]]:
    """``(video_id, path)`` sorted by id, from a folder (its files with a video suffix, :data:`VIDEO_EXTENSIONS`; not
    recursive; hidden files skipped) or a text file of paths (one per line; blank lines and ``#`` comments skipped;
    relative paths are relative to the list file's folder, so the list travels with the data).

    Raises:
        ExtractError: ``source`` missing, no videos, an empty id, or two files with the same id.
    """
    src = Path(source)
    if src.is_dir():
        paths = [p for p in src.iterdir()
                 if p.is_file() and not p.name.startswith('.') and p.suffix.lower() in VIDEO_EXTENSIONS]
        where = {p: f'{src}' for p in paths}
    elif src.is_file():
        paths, where = [], {}
        for lineno, line in enumerate(src.read_text().splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            p = Path(line)
            p = p if p.is_absolute() else src.parent / p
            if not video_id_of(p):
                raise ExtractError(f'{src}:{lineno}: {line!r} gives an empty video id (the name before the first '
                                   "'.')")
            paths.append(p)
            where[p] = f'{src}:{lineno}'
    else:
        raise ExtractError(f'input {src} is neither a folder of videos nor a text file of video paths')
    if not paths:
        raise ExtractError(f'no videos in {src} (suffixes {", ".join(sorted(VIDEO_EXTENSIONS))})' if src.is_dir()
                           else f'{src} lists no videos')
    seen: dict[str, Path] = {}
    for p in paths:
        vid = video_id_of(p)
        if vid in seen and seen[vid] != p:
            raise ExtractError(f'video id {vid!r} is given twice: {seen[vid]} ({where[seen[vid]]}) and {p} '
                               f'({where[p]}); ids are the file names up to the first "."')
        seen[vid] = p
    return sorted(seen.items())


def _flatten(d: dict[str, Any], prefix: str = '') -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = v
    return out


def provenance_differences(old: StoreInfo, new: StoreInfo) -> list[str]:
    """Fields whose difference makes features of ``old`` and ``new`` not interchangeable: those of
    :meth:`StoreInfo.compatible_with` plus model input size/frames, sampler and compute dtype (``config.*``)."""
    diff = list(old.compatible_with(new))
    a, b = _flatten(old.config), _flatten(new.config)
    diff += [f'config.{k}' for k in _EXTRA_PROVENANCE if a.get(k, '<missing>') != b.get(k, '<missing>')]
    return diff


def _describe_diff(old: StoreInfo, new: StoreInfo, fields: Sequence[str]) -> str:
    a, b = _flatten(old.config), _flatten(new.config)
    parts = []
    for name in fields:
        if name.startswith('config.'):
            key = name[len('config.'):]
            was, now = a.get(key, '<missing>'), b.get(key, '<missing>')
        else:
            was, now = getattr(old, name), getattr(new, name)
        parts.append(f'{name}: {was!r} (stored) vs {now!r} (this run)')
    return '; '.join(parts)


@dataclass
class ExtractConfig:
    """Everything that decides the features, plus how the run is executed.

    Attributes:
        arch: backbone preset (``vit_small`` ... ``vit_giant``, ``vit_test``).
        checkpoint: weights file (any layout :func:`backbone.load_checkpoint` reads); ``None``: random init.
        seed: random-init seed when there is no checkpoint.
        img_size: (h, w) the model is constructed for (fixes its position table); default: the input size.
        frames: clip length the model is constructed for; default: ``clip_len``.
        clip_len: frames per window (16, docs/thumos14.md#official-feature-extractor).
        frame_interval: step between the frames of a window (1: consecutive frames, as the official extractor).
        stride: frames between window starts (4 for THUMOS14, 16 for FineAction).
        preprocess: frame transform.
        dtype: compute dtype; features are stored as float32 either way.
        batch_size: windows per forward.
        num_workers: decoding processes (0: one background thread).
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'``...; default: CUDA when available (one GPU per rank).
        backend: video decoder (decord and PyAV give identical frames, docs/video_decoding.md).
        fused_attn: ``scaled_dot_product_attention`` (True) or the official explicit softmax.
        chunk_size: frames per decoder call.
        patch_size: spatial patch size when it differs from the preset's (None: the preset's).
    """

    arch: str = 'vit_giant'
    checkpoint: str | None = None
    seed: int = 0
    img_size: tuple[int, int] | None = None
    frames: int | None = None
    clip_len: int = 16
    frame_interval: int = 1
    stride: int = 4
    preprocess: Preprocess = field(default_factory=Preprocess)
    dtype: ComputeDType = 'fp32'
    batch_size: int = 16
    num_workers: int = 2
    device: str | None = None
    backend: Backend = 'decord'
    fused_attn: bool = True
    chunk_size: int = 16
    patch_size: int | None = None

    def __post_init__(self) -> None:
        for name in ('clip_len', 'frame_interval', 'stride', 'batch_size', 'chunk_size'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
        if self.num_workers < 0:
            raise ValueError(f'num_workers must be >= 0, got {self.num_workers}')
        if self.dtype not in ('fp32', 'bf16'):
            raise ValueError(f"dtype must be 'fp32' or 'bf16', got {self.dtype!r}")

    @property
    def model_img_size(self) -> tuple[int, int]:
        return tuple(self.img_size) if self.img_size is not None else tuple(self.preprocess.size)

    @property
    def model_frames(self) -> int:
        return self.frames if self.frames is not None else self.clip_len

    def build_model(self) -> nn.Module:
        return build_model(self.arch, checkpoint=self.checkpoint, img_size=self.model_img_size,
                           frames=self.model_frames, seed=self.seed, fused_attn=self.fused_attn,
                           patch_size=self.patch_size)


def make_store_info(cfg: ExtractConfig, checkpoint_sha: str, device: torch.device | str = 'cpu') -> StoreInfo:
    """Provenance of a store written with ``cfg``. Only settings go into it (no output path, process count or
    worker count), so a resumed, a distributed and a plain run of the same settings write the same attributes."""
    decoder_version = 'unknown'
    try:
        from importlib.metadata import version
        decoder_version = version('decord' if cfg.backend == 'decord' else 'av')
    except Exception:  # provenance only
        pass
    config = {
        'model': {'arch': cfg.arch, 'img_size': list(cfg.model_img_size), 'frames': cfg.model_frames,
                  'checkpoint': str(cfg.checkpoint) if cfg.checkpoint is not None else None,
                  'init_seed': None if cfg.checkpoint is not None else cfg.seed, 'fused_attn': cfg.fused_attn,
                  'output': 'forward_features: fc_norm(mean of tokens)',
                  # only when it differs from the preset's, so stores written before this key existed still match
                  **({'patch_size': cfg.patch_size} if cfg.patch_size is not None else {})},
        'sampling': {'sampler': 'sliding/official', 'clip_len': cfg.clip_len, 'frame_interval': cfg.frame_interval,
                     'stride': cfg.stride},
        'compute_dtype': cfg.dtype,
        'batch_size': cfg.batch_size,
        'device_type': torch.device(device).type,
        'decoder': {'backend': cfg.backend, 'version': decoder_version},
        'torch_version': torch.__version__,
    }
    return StoreInfo(arch=cfg.arch, checkpoint_sha256=checkpoint_sha, feature_kind='pooled',
                     preprocessing=cfg.preprocess.describe(), dtype='float32', config=config)


# =====================================================================================================================
# Decoding ahead of the model
# =====================================================================================================================
class _ClipBatches(torch.utils.data.IterableDataset):
    """Per-video batches of preprocessed windows; worker w of W takes videos w, w + W, ... of ``videos``.

    Items (dicts, so they cross process boundaries as-is): ``{'video', 'clips', 'last', 'meta'}`` for a batch
    (``meta`` with the last one), or ``{'video', 'error'}`` when a video fails (possibly after some batches).
    """

    def __init__(self, videos: Sequence[tuple[int, str, Path]], cfg: ExtractConfig):
        self.videos = list(videos)
        self.cfg = cfg

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        mine = self.videos if info is None else self.videos[info.id::info.num_workers]
        cfg = self.cfg
        for index, vid, path in mine:
            try:
                with VideoReader(path, cfg.backend, num_threads=1) as reader:
                    sample = sample_windows(reader, cfg.clip_len, cfg.frame_interval, cfg.stride)
                    meta = VideoFeatureMeta.from_clip_sample(vid, sample, stride=cfg.stride)
                    done = 0
                    for _, clips in iter_clip_batches(reader, sample, cfg.preprocess, cfg.batch_size,
                                                      chunk_size=cfg.chunk_size):
                        done += len(clips)
                        last = done == sample.num_clips
                        yield {'video': index, 'clips': clips, 'last': last, 'meta': meta if last else None}
            except VideoDecodeError as e:
                yield {'video': index, 'error': e.reason}


def _identity(item: Any) -> Any:
    return item


def _worker_init(_: int) -> None:
    # Preprocessing in a worker is single-threaded: W workers x N intra-op threads would oversubscribe the CPU that
    # the model (in the main process) needs.
    torch.set_num_threads(1)


def _threaded(items: Iterable[Any], depth: int) -> Iterator[Any]:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead. The model's torch kernels release the
    GIL, so decoding overlaps the forward passes without extra processes."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(end)
        except BaseException as e:  # re-raised in the consumer
            q.put(e)

    thread = threading.Thread(target=produce, name='clip-decoder', daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _clip_batches(videos: Sequence[tuple[int, str, Path]], cfg: ExtractConfig, pin_memory: bool) -> Iterator[dict]:
    dataset = _ClipBatches(videos, cfg)
    if cfg.num_workers == 0:
        return _threaded(dataset, depth=2)
    workers = min(cfg.num_workers, len(videos))
    return iter(torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=workers, collate_fn=_identity, worker_init_fn=_worker_init,
        pin_memory=pin_memory, prefetch_factor=2, persistent_workers=False))


# =====================================================================================================================
# Runs: parts -> shard -> store
# =====================================================================================================================
@dataclass
class ExtractResult:
    """What a run did (on rank 0: for all ranks).

    Attributes:
        out: the store.
        extracted: ids extracted by this run.
        skipped: ids already complete (in the store, a shard or a part file) and not extracted again.
        failed: ``{'video_id', 'path', 'reason'}`` for every video that could not be decoded.
        num_clips: windows run through the model.
        seconds: wall time of the extraction loop.
    """

    out: Path
    extracted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    num_clips: int = 0
    seconds: float = 0.0


class _Dist:
    """Rank, world size and collectives; a no-op stand-in in a single process."""

    def __init__(self, device: torch.device) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.world = int(os.environ.get('WORLD_SIZE', '1'))
        self.rank = int(os.environ.get('RANK', '0'))
        self.owns_group = False
        if self.world > 1 and not dist.is_initialized():
            # NCCL needs one GPU per rank; CPU runs (and CPU tests) use gloo.
            dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo', timeout=_DIST_TIMEOUT)
            self.owns_group = True
        if self.world > 1:
            self.world, self.rank = dist.get_world_size(), dist.get_rank()

    def barrier(self) -> None:
        if self.world > 1:
            self.dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """``obj`` of rank 0 on every rank."""
        if self.world == 1:
            return obj
        box = [obj]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        self.dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.owns_group:
            self.dist.destroy_process_group()


def _resolve_device(name: str | None, local_rank: int) -> torch.device:
    if name is None:
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(name)
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise ExtractError(f'--device {name}: CUDA is not available')
        if device.index is None:  # one GPU per rank under torchrun
            device = torch.device('cuda', local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def _num_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _shard_path(out: Path, rank: int) -> Path:
    return out.with_name(f'{out.name}.rank{rank}')


def _parts_dir(out: Path, rank: int) -> Path:
    return out.with_name(f'{out.name}.rank{rank}.parts')


def _ranked(out: Path, suffix: str) -> dict[int, Path]:
    """Existing ``OUT.rank<k><suffix>`` paths by k (shards with suffix '', part folders with '.parts')."""
    pattern = re.compile(re.escape(out.name) + r'\.rank(\d+)' + re.escape(suffix) + '$')
    found = {}
    if out.parent.is_dir():
        for p in out.parent.iterdir():
            m = pattern.match(p.name)
            if m:
                found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def _write_json_atomic(path: Path, payload: Any) -> None:
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    with open(tmp, 'w') as f:
        json.dump(payload, f, indent=1, sort_keys=True)
        f.write('\n')
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _parts_info(folder: Path) -> StoreInfo | None:
    path = folder / _PARTS_INFO
    if not path.exists():
        return None
    try:
        return StoreInfo.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, ValueError) as e:
        raise ExtractError(f'{path} is unreadable ({e}); delete {folder} to discard its part files') from None


def _prepare(out: Path, info: StoreInfo, overwrite: bool) -> tuple[bool, list[str]]:
    """Rank 0, before any work: check what earlier runs left and collect the ids that are already complete.

    Returns ``(use_base, done)``: whether ``out`` is kept (appended to), and the complete ids in ``out`` (if kept),
    shards and part folders. Leftovers whose provenance differs are deleted with ``overwrite``, else refused.
    """
    done: set[str] = set()
    use_base = out.exists() and not overwrite
    if use_base:
        with FeatureStore.open(out) as store:
            diff = provenance_differences(store.info, info)
            if diff:
                what = _describe_diff(store.info, info, diff)
                raise ExtractError(f'{out} was made with different settings, refusing to append ({what}); pass '
                                   '--overwrite to replace it, or write to another file')
            done.update(store.ids())
    for rank, shard in _ranked(out, '').items():
        with FeatureStore.open(shard) as store:
            diff = provenance_differences(store.info, info)
            if not diff:
                done.update(store.ids())
                continue
            what = _describe_diff(store.info, info, diff)
        if not overwrite:
            raise ExtractError(f'{shard} (left by an interrupted run) was made with different settings ({what}); '
                               'pass --overwrite to discard it')
        shard.unlink()
    for rank, folder in _ranked(out, '.parts').items():
        old = _parts_info(folder)
        ids = part_ids(folder)
        if old is None and not ids:
            continue  # created, then killed before anything was written
        diff = provenance_differences(old, info) if old is not None else ['info.json (missing)']
        if not diff:
            done.update(ids)
            continue
        if not overwrite:
            what = _describe_diff(old, info, diff) if old is not None else 'no info.json'
            raise ExtractError(f'{folder} (part files of an interrupted run) was made with different settings '
                               f'({what}); pass --overwrite to discard it')
        shutil.rmtree(folder)
    # Part folders of ranks this run does not have (an earlier run with more processes) are folded into their shards
    # by rank 0 at the end (_merge); their ids count as complete here.
    return use_base, sorted(done)


def _open_parts(folder: Path, info: StoreInfo) -> None:
    """Create a part folder holding ``info.json`` (the provenance its parts are checked against on resume)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / _PARTS_INFO).exists():
        _write_json_atomic(folder / _PARTS_INFO, info.to_dict())


def _fold_parts(folder: Path, target: Path, info: StoreInfo, base: Path | None) -> None:
    """``target`` = ``base`` + the parts in ``folder`` (atomically), then delete the parts. Without parts, a target
    that is its own base is left as it is (a rerun with nothing to do does not rewrite the store)."""
    has_parts = folder.exists() and bool(part_ids(folder))
    if has_parts or base != target:
        build_store(target, info, read_parts(folder) if has_parts else iter(()), base=base)
    if folder.exists():
        shutil.rmtree(folder)


class _Progress:
    """Videos done, clips/s and ETA on stderr (tqdm), on rank 0 only."""

    def __init__(self, total: int, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit='video', file=sys.stderr, disable=not enabled, dynamic_ncols=True,
                        smoothing=0.1, desc='extract')
        self.clips = 0
        self.start = time.perf_counter()

    def add_clips(self, n: int) -> None:
        self.clips += n
        rate = self.clips / max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix_str(f'{rate:.1f} clips/s', refresh=False)

    def video_done(self) -> None:
        self.bar.update(1)

    def write(self, message: str) -> None:
        self.bar.write(message, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def _extract_share(model: nn.Module, todo: Sequence[tuple[int, str, Path]], cfg: ExtractConfig, parts: Path,
                   progress: _Progress) -> tuple[list[str], list[dict[str, str]], int]:
    """Run the model over ``todo``, writing one part file per finished video. Returns (done ids, failures, clips)."""
    device = next(model.parameters()).device
    pending: dict[int, list[torch.Tensor]] = {}
    done: list[str] = []
    failures: list[dict[str, str]] = []
    clips_total = 0
    by_index = {index: (vid, path) for index, vid, path in todo}
    if not todo:
        return done, failures, 0
    for item in _clip_batches(todo, cfg, pin_memory=device.type == 'cuda'):
        index = item['video']
        vid, path = by_index[index]
        if 'error' in item:
            pending.pop(index, None)
            failures.append({'video_id': vid, 'path': str(path), 'reason': item['error']})
            progress.write(f'extract_features: skipping {vid} ({path}): {item["error"]}')
            progress.video_done()
            continue
        feats = forward_clips(model, item['clips'], cfg.dtype)
        pending.setdefault(index, []).append(feats.cpu())
        clips_total += len(feats)
        progress.add_clips(len(feats))
        if item['last']:
            rows = torch.cat(pending.pop(index)).numpy()
            write_part(parts, vid, rows, item['meta'])
            done.append(vid)
            progress.video_done()
    return done, failures, clips_total


def extract_to_store(source: str | os.PathLike | Sequence[tuple[str, Path]], out: str | os.PathLike,
                     cfg: ExtractConfig, *, overwrite: bool = False, progress: bool = True) -> ExtractResult:
    """Extract the features of every video of ``source`` into the store ``out`` (resumable, crash-safe, and
    distributed under ``torchrun``: see the module docstring).

    Args:
        source: a folder of videos, a text file of paths, or ``(video_id, path)`` pairs.
        out: the HDF5 store to write or append to.
        cfg: model, windows, preprocessing and execution settings.
        overwrite: replace ``out`` (and discard leftovers of interrupted runs with other settings) instead of
            appending to it.
        progress: show the progress bar (rank 0).

    Returns:
        :class:`ExtractResult`; videos that could not be decoded are in ``failed`` (and ``OUT.failures.json``), the
        others are extracted.

    Raises:
        ExtractError: ``out`` (or a leftover shard/part folder) was made with different settings, or a bad input.
    """
    out = Path(out)
    device = _resolve_device(cfg.device, int(os.environ.get('LOCAL_RANK', '0')))
    dist = _Dist(device)
    try:
        return _run(source, out, cfg, overwrite, progress, dist, device)
    finally:
        dist.close()


def _run(source: str | os.PathLike | Sequence[tuple[str, Path]], out: Path, cfg: ExtractConfig, overwrite: bool,
         progress: bool, dist: _Dist, device: torch.device) -> ExtractResult:
    rank, world = dist.rank, dist.world
    videos = list_videos(source) if isinstance(source, (str, os.PathLike)) else sorted(
        (str(v), Path(p)) for v, p in source)
    info = make_store_info(cfg, checkpoint_id(cfg.checkpoint, cfg.seed), device)
    out.parent.mkdir(parents=True, exist_ok=True)

    # 1. rank 0 checks the leftovers of earlier runs and collects the complete ids; everyone gets the verdict.
    verdict: tuple[str | None, bool, list[str]]
    if rank == 0:
        try:
            use_base, done = _prepare(out, info, overwrite)
            verdict = (None, use_base, done)
        except (ExtractError, FeatureStoreError) as e:
            verdict = (str(e), False, [])
    else:
        verdict = (None, False, [])
    error, use_base, done_list = dist.broadcast(verdict)
    if error is not None:
        raise ExtractError(error)
    done = set(done_list)
    parts = _parts_dir(out, rank)
    _open_parts(parts, info)
    model = cfg.build_model().to(device)

    # 2. this rank's share (sorted index modulo world size), minus what is complete.
    share = [(i, vid, path) for i, (vid, path) in enumerate(videos) if i % world == rank]
    todo = [t for t in share if t[1] not in done]
    bar = _Progress(len(todo), enabled=progress and rank == 0)
    threads = torch.get_num_threads()
    if device.type == 'cpu':
        # The decoders (worker processes or the decoding thread) need cores too. With every core also running a
        # model thread, the model's OpenMP threads wait on each other while a decoder holds a core: measured 5-10x
        # slower forwards on a 2-core machine. So the model gets the cores the decoders leave.
        # (Only ever lowered: torchrun already sets one thread per process.)
        torch.set_num_threads(min(threads, max(1, _num_cpus() - max(cfg.num_workers, 1))))
    start = time.perf_counter()
    try:
        extracted, failures, clips = _extract_share(model, todo, cfg, parts, bar)
    finally:
        bar.close()
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - start
    del model

    # 3. parts -> shard (or straight into OUT in a single process), then rank 0 merges.
    if world == 1:
        _fold_parts(parts, out, info, base=out if use_base else None)
    else:
        shard = _shard_path(out, rank)
        _fold_parts(parts, shard, info, base=shard if shard.exists() else None)
    gathered = dist.gather((extracted, failures, clips))
    dist.barrier()  # every shard is complete
    merge_error = None
    if rank == 0:
        try:
            _merge(out, info, world, use_base)
        except (FeatureStoreError, OSError) as e:
            merge_error = f'merging the shards into {out} failed: {e}'
    merge_error = dist.broadcast(merge_error)
    if merge_error is not None:
        raise ExtractError(merge_error)

    result = ExtractResult(out=out, seconds=seconds)
    for ext, fail, n in gathered:
        result.extracted += ext
        result.failed += fail
        result.num_clips += n
    result.extracted.sort()
    result.failed.sort(key=lambda f: f['video_id'])
    result.skipped = sorted(vid for vid, _ in videos if vid in done)
    if rank == 0:
        failures_path = out.with_name(out.name + '.failures.json')
        if result.failed:
            _write_json_atomic(failures_path, result.failed)
        else:
            failures_path.unlink(missing_ok=True)
    return result


def _merge(out: Path, info: StoreInfo, world: int, use_base: bool) -> None:
    """Rank 0: fold stale part folders into their shards, merge all shards (and ``out``) into ``out``, delete them."""
    for rank, folder in _ranked(out, '.parts').items():  # left by an earlier run with more processes
        shard = _shard_path(out, rank)
        _fold_parts(folder, shard, info, base=shard if shard.exists() else None)
    shards = list(_ranked(out, '').values())
    if not shards:
        return
    # This run's shards first: merge_stores writes the first input's provenance, which is this run's.
    sources = shards if world > 1 else [out, *shards]
    if world > 1 and use_base and out.exists():
        sources.append(out)
    merge_stores(sources, out)
    for shard in shards:
        shard.unlink()


# =====================================================================================================================
# Command line (tools/extract_features.py)
# =====================================================================================================================
PROG = 'extract_features'


def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r'\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*', text)
    if not m:
        raise ValueError(f'expected HxW (e.g. 224x224) or a single side, got {text!r}')
    h = int(m.group(1))
    w = int(m.group(2)) if m.group(2) else h
    if h < 1 or w < 1:
        raise ValueError(f'sizes must be positive, got {text!r}')
    return h, w


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f'must be >= 1, got {value}')
    return value


def build_parser() -> argparse.ArgumentParser:
    def typed(fn: Callable[[str], Any], name: str) -> Callable[[str], Any]:
        def parse(text: str) -> Any:
            try:
                return fn(text)
            except ValueError as e:
                raise argparse.ArgumentTypeError(str(e)) from None
        parse.__name__ = name
        return parse

    size, positive = typed(_size, 'size'), typed(_positive, 'positive int')
    parser = argparse.ArgumentParser(
        prog=PROG, description='Extract VideoMAE V2 clip features of untrimmed videos into one HDF5 feature store '
                               '(resumable; run under torchrun for several processes/GPUs). Exit status: 0 done, '
                               '2 bad arguments or incompatible store, 3 some videos could not be decoded (every '
                               'rank returns 3; torchrun itself then reports a failure with status 1).')
    parser.add_argument('input', metavar='INPUT', help='folder of videos, or a text file of video paths (one per '
                                                       'line, relative to the file\'s folder)')
    parser.add_argument('--out', required=True, metavar='OUT.h5', help='feature store to create or append to')
    model = parser.add_argument_group('model')
    model.add_argument('--arch', help='backbone preset: vit_small, vit_base, vit_large, vit_huge, vit_giant, vit_test '
                                      '(default vit_giant, or the config\'s)')
    model.add_argument('--checkpoint', help='weights, any VideoMAE layout (official, mmaction2, HF); without it the '
                                            'model is randomly initialised from --seed')
    model.add_argument('--config', help='mmengine/mmaction2 config: arch, img_size, all_frames from model.backbone and '
                                        'the checkpoint from load_from (explicit options win)')
    model.add_argument('--seed', type=int, default=0, help='random-init seed without a checkpoint (default 0)')
    model.add_argument('--img-size', type=size, help='frame size HxW the model is built for (default: the input '
                                                     'size)')
    model.add_argument('--frames', type=positive, help='clip length the model is built for (default: --clip-len)')
    model.add_argument('--patch-size', type=positive, help="spatial patch size, where it is not the preset's (e.g. "
                                                          "8 for the tiny 8-px configs; default: the preset's, "
                                                          "or the config's)")
    model.add_argument('--explicit-attn', action='store_true',
                       help='the official explicit softmax attention instead of fused SDPA')
    win = parser.add_argument_group('windows (defaults: the official THUMOS14 extractor, docs/thumos14.md#official-feature-extractor)')
    win.add_argument('--clip-len', type=positive, default=16, help='frames per window (16)')
    win.add_argument('--frame-interval', type=positive, default=1, help='step between frames of a window (1)')
    win.add_argument('--stride', type=positive, default=4, help='frames between window starts (4)')
    pre = parser.add_argument_group('preprocessing')
    pre.add_argument('--resize', type=size, help='squash every frame to HxW (height x width), aspect ratio lost: '
                                                 'the official TAD preprocessing (default 224x224)')
    pre.add_argument('--short-side', type=positive, metavar='N', help='instead: short side to N px, then --crop')
    pre.add_argument('--crop', choices=('center',), default='center', help='crop after --short-side: an N x N '
                                                                          'central crop')
    pre.add_argument('--no-normalize', action='store_true', help='no ImageNet mean/std (the official TAD features '
                                                                 'are made without)')
    run = parser.add_argument_group('execution')
    run.add_argument('--dtype', choices=('fp32', 'bf16'), default='fp32', help='compute dtype (stored as float32)')
    run.add_argument('--batch-size', type=positive, default=16, help='windows per forward (16)')
    run.add_argument('--num-workers', type=int, default=2, help='decoding processes; 0: a background thread (2)')
    run.add_argument('--device', help='cpu, cuda, cuda:N (default: cuda if available; one GPU per torchrun rank)')
    run.add_argument('--backend', choices=('decord', 'pyav'), default='decord', help='video decoder (decord)')
    run.add_argument('--overwrite', action='store_true',
                     help='replace OUT.h5 instead of appending to it, and discard leftovers of interrupted runs made '
                          'with other settings (part files and shards made with these settings are still reused)')
    run.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser


def _config_model(path: str) -> dict[str, Any]:
    """arch / img_size / all_frames / patch_size / checkpoint from an mmengine config (``model.backbone`` and
    ``load_from``)."""
    from mmengine.config import Config

    cfg = Config.fromfile(path)
    model = cfg.get('model', {})
    backbone = model.get('backbone', model)
    if backbone.get('type') not in (None, 'VideoMAEv2ViT', 'mmaction.VideoMAEv2ViT'):
        raise ValueError(f'{path}: model.backbone.type is {backbone.get("type")!r}, not VideoMAEv2ViT')
    found: dict[str, Any] = {}
    if 'arch' in backbone:
        found['arch'] = backbone['arch']
    if 'img_size' in backbone:
        img = backbone['img_size']
        found['img_size'] = (int(img), int(img)) if isinstance(img, int) else tuple(int(v) for v in img)
    if 'all_frames' in backbone:
        found['frames'] = int(backbone['all_frames'])
    if backbone.get('patch_size') is not None:
        found['patch_size'] = int(backbone['patch_size'])
    ckpt = cfg.get('load_from') or backbone.get('pretrained')
    if ckpt:
        # mmengine reads load_from relative to the working directory; a path next to the config is accepted too
        beside = Path(path).parent / ckpt
        found['checkpoint'] = str(beside if not Path(ckpt).exists() and beside.exists() else ckpt)
    return found


def config_from_args(args: argparse.Namespace) -> ExtractConfig:
    """:class:`ExtractConfig` from parsed command-line arguments (``ValueError`` names the bad option)."""
    from_cfg = _config_model(args.config) if args.config else {}
    if args.resize is not None and args.short_side is not None:
        raise ValueError('--resize (squash) and --short-side (resize + crop) exclude each other')
    if args.short_side is not None:
        pre = Preprocess('short_side', (args.short_side, args.short_side), args.short_side,
                         normalize=not args.no_normalize)
    else:
        pre = Preprocess('squash', args.resize or (224, 224), normalize=not args.no_normalize)
    checkpoint = args.checkpoint or from_cfg.get('checkpoint')
    if checkpoint is not None and not Path(checkpoint).is_file():
        origin = '--checkpoint' if args.checkpoint else f'load_from of {args.config}'
        raise ValueError(f'{origin}: {checkpoint}: no such file')
    return ExtractConfig(
        arch=args.arch or from_cfg.get('arch', 'vit_giant'), checkpoint=checkpoint, seed=args.seed,
        img_size=args.img_size or from_cfg.get('img_size'), frames=args.frames or from_cfg.get('frames'),
        clip_len=args.clip_len, frame_interval=args.frame_interval, stride=args.stride, preprocess=pre,
        dtype=args.dtype, batch_size=args.batch_size, num_workers=args.num_workers, device=args.device,
        backend=args.backend, fused_attn=not args.explicit_attn,
        patch_size=args.patch_size or from_cfg.get('patch_size'))


def main(argv: Sequence[str] | None = None) -> int:
    """``tools/extract_features.py``; returns the exit status (0, 2 or 3)."""
    from backbone import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
        result = extract_to_store(args.input, args.out, cfg, overwrite=args.overwrite, progress=not args.no_progress)
    except (ExtractError, FeatureStoreError, CheckpointError, ValueError, KeyError, OSError) as e:
        message = ' '.join(str(e).split())  # one line, whatever the exception text holds
        print(f'{PROG}: error: {message}', file=sys.stderr)
        return 2
    if int(os.environ.get('RANK', '0')) == 0:
        rate = result.num_clips / result.seconds if result.seconds > 0 else 0.0
        print(f'{result.out}: {len(result.extracted)} videos extracted ({result.num_clips} clips, {rate:.1f} clips/s), '
              f'{len(result.skipped)} already complete, {len(result.failed)} failed', file=sys.stderr)
        if result.failed:
            print(f'{PROG}: {len(result.failed)} videos could not be decoded, listed in '
                  f'{result.out.name}.failures.json:', file=sys.stderr)
            for f in result.failed:
                print(f'  {f["video_id"]} ({f["path"]}): {f["reason"]}', file=sys.stderr)
    return 3 if result.failed else 0
