"""Features of one video: the model (:func:`build_model`), its windows (:func:`sample_windows`), batches of
preprocessed windows that decode every frame once (:func:`iter_clip_batches`) and the forward pass
(:func:`forward_clips`), chained by :func:`extract_video_features`. The extraction tool and on-line features inside
tasks run these same functions, so both give the same rows.

Example::

    model = build_model('vit_giant', checkpoint='vit_g_hybrid_pt_1200e_k710_ft.pth', img_size=224, frames=16)
    pre = Preprocess(resize='squash', size=(224, 224), normalize=False)
    with VideoReader('video_test_0000004.mp4') as reader:
        feats = extract_video_features(model, reader, sample_windows(reader, 16, 1, 4), pre)   # (T, 1408)
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np
import torch
import torch.nn as nn

from tasks.data.video import VideoReader, frames_at_rate, sliding_window_sample
from tasks.data.video.sampling import ClipSample

from ..meta import VideoFeatureMeta

__all__ = ['ComputeDType', 'build_model', 'sample_windows', 'windows_meta', 'iter_clip_batches', 'forward_clips',
           'extract_video_features']

ComputeDType = Literal['fp32', 'bf16']


def sample_windows(reader: VideoReader, clip_len: int = 16, frame_interval: int = 1, stride: int = 4,
                   fps: float | None = None) -> ClipSample:
    """The official TAD windows of a video: starts ``range(0, n - span + 1, stride)``, trailing frames dropped
    (:func:`tasks.data.video.sliding_window_sample` in ``'official'`` mode), with the video's fps for the store.

    With ``fps``, the windows run over the video resampled to ``fps`` frames per second by its timestamps
    (:func:`tasks.data.video.frames_at_rate`): ``indices`` are the decoded frames to read, while ``centres``,
    ``num_frames`` and ``fps`` describe the resampled video, whose frame k is at ``k / fps`` seconds.
    """
    if fps is None:
        return sliding_window_sample(reader.num_frames, clip_len=clip_len, frame_interval=frame_interval,
                                     stride=stride, mode='official', fps=reader.fps)
    frames = frames_at_rate(reader.timestamps, reader.duration, fps)
    grid = sliding_window_sample(len(frames), clip_len=clip_len, frame_interval=frame_interval, stride=stride,
                                 mode='official', fps=fps)
    return dataclasses.replace(grid, indices=frames[grid.indices], sampler=f'{grid.sampler}@{fps:g}fps')


def windows_meta(video_id: str, reader: VideoReader, sample: ClipSample, stride: int,
                 fps: float | None = None) -> VideoFeatureMeta:
    """The store metadata of :func:`sample_windows` ``(reader, ..., stride, fps)``: row times from the container's
    timestamps, or on the resampled clock ``k / fps``, which is uniform by construction."""
    if fps is None:
        return VideoFeatureMeta.from_clip_sample(
            video_id, sample, stride=stride, timestamps=reader.timestamps,
            variable_frame_rate=reader.meta.variable_frame_rate, decoder=reader.meta.backend)
    return VideoFeatureMeta.from_clip_sample(video_id, sample, stride=stride,
                                             timestamps=np.arange(sample.num_frames) / fps,
                                             decoder=reader.meta.backend)


def build_model(arch: str, *, checkpoint: str | os.PathLike | None = None, img_size: int | tuple[int, int] = 224,
                frames: int = 16, seed: int = 0, fused_attn: bool = True, patch_size: int | None = None,
                featmap: bool = False) -> nn.Module:
    """A :class:`backbone.VideoMAEv2ViT` without head in eval mode, loaded from ``checkpoint`` (any layout
    :func:`backbone.load_checkpoint` reads; a classification head is dropped), or randomly initialised from ``seed``
    (deterministic, so that resumed and distributed runs agree without a checkpoint). The global RNG is untouched.
    ``patch_size`` overrides the preset's (e.g. the 8-px tiny configs); None keeps it. ``featmap``: the AVA
    detector's backbone instead (``featmap_norm=True``, no ``fc_norm``), for ``forward_featmap``."""
    from backbone import VideoMAEv2ViT, load_checkpoint

    extra = {} if patch_size is None else {'patch_size': patch_size}
    if featmap:
        extra.update(featmap_norm=True, fc_norm=False)
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

