"""Pre-training data: a video list -> per sample, ``num_sample`` augmented and masked views of one decoded clip (the
official ``HybridVideoMAE`` with repeated augmentation, docs/pretraining.md#recipe).

A video that fails to decode is reported once and replaced by another of the list, so an epoch never stops on a bad
file. Every random draw of a sample comes from generators seeded by ``(seed, epoch, index)``, the epoch arriving with
the key from :class:`tasks.data.epoch_sampler.EpochIndexSampler`, so a sample does not depend on the worker, the
number of processes or the batch it lands in.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.registry import DATASETS, FUNCTIONS

from backbone.masking import DecoderMaskKind, MaskKind
from tasks.data.annotations import AnnotationError, read_kinetics_csv, read_ssv2_split, read_video_list
from tasks.data.video import dense_sample
from tasks.data.video.cache import DecodedVideoCache, open_video
from tasks.data.video.rawframes import read_rawframes
from tasks.data.video.reader import Backend
from tasks.data.video.retry import load_with_replacements, sample_seeds

from .transforms import PretrainAugmentation

__all__ = ['VideoRecord', 'read_pretrain_list', 'VideoMAEv2PretrainDataset', 'videomaev2_pretrain_collate',
           'sample_seeds']

AnnFormat = Literal['video', 'rawframes', 'ssv2', 'kinetics']
SampleKey = int | tuple[int, int]


@dataclass(frozen=True)
class VideoRecord:
    """One entry of the pre-training list.

    Attributes:
        path: video file, or frame folder for raw frames.
        total_frames: frame count for raw frames; ``None`` for video files (read from the container).
        source: ``<list file>, line <n>`` (or entry n for JSON), for messages about this video.
    """

    path: str
    total_frames: int | None
    source: str


def read_pretrain_list(ann_file: str | os.PathLike, ann_format: AnnFormat = 'video', *,
                       data_prefix: str | os.PathLike | None = None, label_file: str | os.PathLike | None = None,
                       video_ext: str = '.mp4') -> list[VideoRecord]:
    """The videos of any list format of :mod:`tasks.data.annotations` (labels are read, checked and ignored).

    Args:
        ann_file: the list.
        ann_format: ``'video'`` (``path label``, mmaction2 ``VideoDataset``), ``'rawframes'`` (``frame_dir
            total_frames label``), ``'ssv2'`` (a Something-Something v2 split json; files ``<id><video_ext>``) or
            ``'kinetics'`` (an official Kinetics csv; files ``<youtube_id>_<start:06d>_<end:06d><video_ext>``).
        data_prefix: folder the listed paths are relative to.
        label_file: SSv2 ``labels.json``; defaults to ``labels.json`` next to ``ann_file``.
        video_ext: file extension for the formats that list ids rather than files (SSv2: ``'.webm'``).

    Raises:
        AnnotationError: a malformed list (naming the file and line) or an empty one.
    """
    if ann_format in ('video', 'rawframes'):
        entries = read_video_list(ann_file, format=ann_format, root=data_prefix)
        records = [VideoRecord(e.path, e.total_frames, f'{ann_file}, line {e.line}') for e in entries]
    elif ann_format == 'ssv2':
        labels = label_file if label_file is not None else Path(ann_file).with_name('labels.json')
        entries = read_ssv2_split(ann_file, labels)
        records = [VideoRecord(_join(data_prefix, e.id + video_ext), None, f'{ann_file}, entry {i}')
                   for i, e in enumerate(entries)]
    elif ann_format == 'kinetics':
        entries = read_kinetics_csv(ann_file)
        records = [VideoRecord(_join(data_prefix, e.clip_name + video_ext), None, f'{ann_file}, line {e.line}')
                   for e in entries]
    else:
        raise ValueError(f"ann_format must be 'video', 'rawframes', 'ssv2' or 'kinetics', got {ann_format!r}")
    if not records:
        raise AnnotationError(ann_file, 'the list holds no videos')
    return records


def _join(prefix: str | os.PathLike | None, name: str) -> str:
    return os.path.join(prefix, name) if prefix is not None else name


@DATASETS.register_module()
class VideoMAEv2PretrainDataset(torch.utils.data.Dataset):
    """Videos -> ``num_sample`` (crop, encoder mask, decoder mask) views per decoded clip (official recipe defaults).

    A sample (``dataset[(epoch, index)]``, or ``dataset[index]`` for epoch 0) is a dict:

    * ``inputs``: uint8 (num_sample, 3, T, S, S), RGB 0-255;
    * ``encoder_mask`` / ``decoder_mask``: bool (num_sample, N), N = T/tubelet * (S/patch)^2, True = masked/dropped;
    * ``index``: the list index of the video the views come from (differs from the key after a replacement);
    * ``failed``: ``(path, reason)`` of every video that failed while producing this sample (usually empty).

    Args:
        ann_file: the video list (see :func:`read_pretrain_list` for the formats).
        videos: video files to use instead of a list (e.g. one video to visualise); exclusive with ``ann_file``.
        data_prefix: folder the listed paths are relative to.
        ann_format: ``'video'``, ``'rawframes'``, ``'ssv2'`` or ``'kinetics'``.
        label_file: SSv2 ``labels.json`` (default: next to ``ann_file``).
        video_ext: extension of SSv2 / Kinetics files.
        filename_tmpl: frame file names of raw-frame folders.
        start_index: number of the first frame file (1 for SSv2's ``img_00001.jpg``).
        clip_len: frames per clip (16).
        frame_interval: step between frames (4; the official SSv2 frames at 12 fps use 2).
        input_size: crop side S (224).
        patch_size: the model's patch side (16; 14 for ViT-g).
        tubelet_size: frames per token (2).
        scales: multi-scale crop scales.
        num_sample: views per decoded video (repeated augmentation; 4 in the V2 recipe).
        encoder_mask: encoder mask kind (``'tube'``).
        encoder_mask_ratio: rho_e (0.9).
        decoder_mask: decoder mask kind (``'run_cell'``; ``'none'`` for V1).
        decoder_mask_ratio: rho_d (0.5).
        backend: video decoder: ``'auto'`` (decord, PyAV where decord cannot read the file), ``'decord'``
            (official) or ``'pyav'`` (docs/video_decoding.md#video-formats).
        antialias: see :class:`~tasks.pretrain.transforms.PretrainAugmentation`.
        seed: base seed of every per-sample generator (the same in every process; a config sets it, since the
            Runner passes its seed only to the sampler).
        max_attempts: videos tried for one sample before giving up (a whole list that cannot be decoded should stop
            the run with a clear error rather than loop forever).
        cache_videos_mb: keep up to this many MiB of whole decoded videos in each process
            (:class:`~tasks.data.video.cache.DecodedVideoCache`), so a small training set is decoded once, not once per
            epoch; the frames are the same. 0 (default) decodes every sample afresh.
    """

    def __init__(self, ann_file: str | None = None, data_prefix: str | None = None, ann_format: AnnFormat = 'video', *,
                 videos: Sequence[str] | None = None,
                 label_file: str | None = None, video_ext: str = '.mp4', filename_tmpl: str = 'img_{:05}.jpg',
                 start_index: int = 1, clip_len: int = 16, frame_interval: int = 4, input_size: int = 224,
                 patch_size: int = 16, tubelet_size: int = 2, scales: Sequence[float] = (1, .875, .75, .66),
                 num_sample: int = 4, encoder_mask: MaskKind = 'tube', encoder_mask_ratio: float = 0.9,
                 decoder_mask: DecoderMaskKind = 'run_cell', decoder_mask_ratio: float = 0.5,
                 backend: Backend = 'auto', antialias: bool = True, seed: int = 0,
                 max_attempts: int = 20, cache_videos_mb: float = 0):
        if num_sample < 1:
            raise ValueError(f'num_sample must be >= 1, got {num_sample}')
        if frame_interval < 1:
            raise ValueError(f'frame_interval must be >= 1, got {frame_interval}')
        if seed < 0:
            raise ValueError(f'seed must be >= 0, got {seed}')
        if (ann_file is None) == (videos is None):
            raise ValueError('give either ann_file (a video list) or videos (a list of files), not both or neither')
        if ann_file is not None:
            self.ann_file = str(ann_file)
            self.records = read_pretrain_list(ann_file, ann_format, data_prefix=data_prefix, label_file=label_file,
                                              video_ext=video_ext)
        else:
            self.ann_file = '<videos>'
            self.records = [VideoRecord(_join(data_prefix, v), None, f'videos[{i}]') for i, v in enumerate(videos)]
            if not self.records:
                raise ValueError('videos is empty')
        self.clip_len = clip_len
        self.frame_interval = frame_interval
        self.num_sample = num_sample
        self.filename_tmpl = filename_tmpl
        self.start_index = start_index
        self.backend = backend
        self.video_cache = DecodedVideoCache(cache_videos_mb, backend) if cache_videos_mb > 0 else None
        self.seed = seed
        self.max_attempts = max_attempts
        self.augment = PretrainAugmentation(
            clip_len=clip_len, input_size=input_size, patch_size=patch_size, tubelet_size=tubelet_size,
            scales=scales, encoder_mask=encoder_mask, encoder_mask_ratio=encoder_mask_ratio,
            decoder_mask=decoder_mask, decoder_mask_ratio=decoder_mask_ratio, antialias=antialias)
        #: metainfo recorded in checkpoints by the Runner (and compared on resume)
        self.metainfo = dict(ann_file=self.ann_file, num_videos=len(self.records), clip_len=clip_len,
                             frame_interval=frame_interval, input_size=input_size, num_sample=num_sample,
                             token_grid=self.augment.grid)
        self._failed: dict[str, str] = {}  # path -> reason, per process: a broken file is reported once

    def __len__(self) -> int:
        return len(self.records)

    # ------------------------------------------------------------------------------------------------------------------

    def load_clip(self, record: VideoRecord, generator: torch.Generator) -> torch.Tensor:
        """Decode the ``clip_len`` frames of one random window: uint8 (T, H, W, 3).

        Raises:
            VideoDecodeError: the video (or a frame file) cannot be read.
        """
        if record.total_frames is not None:  # raw frames: the count comes from the list
            sample = dense_sample(record.total_frames, clip_len=self.clip_len, frame_interval=self.frame_interval,
                                  protocol='mmaction2', generator=generator)
            return read_rawframes(record.path, sample.indices[0], self.filename_tmpl, self.start_index)
        with open_video(record.path, self.backend, self.video_cache) as reader:
            sample = dense_sample(reader.num_frames, clip_len=self.clip_len, frame_interval=self.frame_interval,
                                  protocol='mmaction2', fps=reader.fps, generator=generator)
            return reader.get_frames(sample.indices[0])

    def views(self, frames: torch.Tensor, generator: torch.Generator, rng: np.random.Generator,
              num_sample: int | None = None) -> dict[str, torch.Tensor]:
        """``num_sample`` augmented, masked views of one decoded clip, stacked."""
        views = [self.augment(frames, generator, rng) for _ in range(num_sample or self.num_sample)]
        return dict(inputs=torch.stack([v.clip for v in views]),
                    encoder_mask=torch.stack([v.encoder_mask for v in views]),
                    decoder_mask=torch.stack([v.decoder_mask for v in views]))

    def __getitem__(self, key: SampleKey) -> dict[str, Any]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        index = int(index)
        if not 0 <= index < len(self.records):
            raise IndexError(f'index {index} out of range for {len(self.records)} videos')
        frames, current, generator, rng, failed = load_with_replacements(
            len(self.records), index, epoch, seed=self.seed, max_attempts=self.max_attempts, known_bad=self._failed,
            path_of=lambda i: self.records[i].path, load=lambda i, g: self.load_clip(self.records[i], g),
            report=self._report, source=self.ann_file)
        return dict(self.views(frames, generator, rng), index=current, failed=tuple(failed))

    def _report(self, i: int, reason: str) -> None:
        record = self.records[i]
        self._failed[record.path] = reason
        print_log(f'skipping {record.path} ({record.source}): {reason}', logger='current', level=logging.WARNING)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.ann_file!r}: {len(self)} videos, {self.clip_len}x{self.frame_interval} '
                f'clips, {self.num_sample} views each, {self.augment!r})')


@FUNCTIONS.register_module()
def videomaev2_pretrain_collate(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack samples of :class:`VideoMAEv2PretrainDataset` into the model's input dict.

    Returns:
        ``inputs``: uint8 (B, num_sample, 3, T, S, S); ``data_samples``: ``encoder_mask`` / ``decoder_mask`` bool
        (B, num_sample, N), ``index`` int64 (B,), ``failed``: the ``(path, reason)`` pairs of the whole batch.
    """
    if not batch:
        raise ValueError('cannot collate an empty batch')
    return dict(
        inputs=torch.stack([s['inputs'] for s in batch]),
        data_samples=dict(
            encoder_mask=torch.stack([s['encoder_mask'] for s in batch]),
            decoder_mask=torch.stack([s['decoder_mask'] for s in batch]),
            index=torch.tensor([s['index'] for s in batch], dtype=torch.int64),
            failed=[f for s in batch for f in s['failed']]))

