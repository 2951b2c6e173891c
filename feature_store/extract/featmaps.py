"""Feature maps of AVA keyframes (``feature_kind='featmap'``): for every keyframe of a video the backbone's map of the
keyframe-centred clip after the mean over time, exactly what :class:`tasks.detection.VideoMAEv2RoIHead` pools
before RoIAlign, so that the RoI head can train and test from the store (docs/feature_caching.md#feature-maps-for-ava).

The clips are the detection dataset's test clips, made by the same functions
(:func:`tasks.data.video.keyframe_sample` without jitter, :func:`tasks.data.video.transforms.short_side_resize`), then
normalised and zero-padded to whole patches as :class:`tasks.detection.VideoMAEv2AVAPreprocessor` does for a batch
of one clip (tests/detection/test_cached_featmaps.py checks the maps against the detector's on-line ones).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from tasks.data.video import VideoDecodeError, VideoReader, keyframe_sample
from tasks.data.video.transforms import IMAGENET_MEAN, IMAGENET_STD, short_side_resize, to_tchw

from ..meta import VideoFeatureMeta
from ..parts import write_part
from .inputs import ExtractError

__all__ = ['KeyframeClips', 'read_keyframes', 'keyframe_clip', 'keyframe_maps', 'featmap_sizes']

_FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class KeyframeClips:
    """Which keyframes to extract and how their clips are made (the detection config's test clips).

    Attributes:
        keyframes: video id -> sorted, unique keyframe timestamps (integer seconds, AVA's clock).
        short_side: short side of the resized frames (the dataset's ``test_short_side``); None keeps the decoded
            size.
        timestamp_start: time of frame 0 in the keyframes' clock (900 for AVA's cut videos).
        fps: the frame clock that places a keyframe (the dataset's ``fps``); None: the container's timestamps.
        mean: per-channel mean on the 0-255 scale (the detector's preprocessor; ImageNet by default).
        std: per-channel std.
    """

    keyframes: dict[str, tuple[int, ...]]
    short_side: int | None = 256
    timestamp_start: float = 900
    fps: float | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    sources: tuple[str, ...] = field(default=(), compare=False)

    def describe(self) -> dict[str, Any]:
        """The ``preprocessing`` provenance of a featmap store."""
        return {'resize': 'short_side' if self.short_side else 'none', 'short_side': self.short_side, 'crop': None,
                'normalize': {'mean': list(self.mean), 'std': list(self.std)}, 'pad': 'zeros to whole patches',
                'frames': 'uint8 rgb'}


def read_keyframes(paths: Sequence[str | os.PathLike]) -> dict[str, tuple[int, ...]]:
    """Keyframes from AVA csv files (``video_id,timestamp,x1,y1,x2,y2,action,person``) or lists of
    ``video_id,timestamp`` lines; the union over the files, per video sorted and unique. Errors name file and line."""
    found: dict[str, set[int]] = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ExtractError(f'--keyframes {path}: no such file')
        for number, line in enumerate(path.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            fields = [f.strip() for f in line.split(',')]
            try:
                if len(fields) < 2 or not fields[0]:
                    raise ValueError
                stamp = float(fields[1])
                if stamp != int(stamp):
                    raise ValueError
            except ValueError:
                raise ExtractError(f'{path}:{number}: expected "video_id,timestamp[,...]" with an integer timestamp '
                                   f'(an AVA csv row or a keyframe list), got {line[:80]!r}') from None
            found.setdefault(fields[0], set()).add(int(stamp))
    if not found:
        raise ExtractError(f'--keyframes {", ".join(map(str, paths))}: no keyframes listed')
    return {vid: tuple(sorted(stamps)) for vid, stamps in sorted(found.items())}


def keyframe_clip(reader: VideoReader, timestamp: int, clip_len: int, frame_interval: int, clips: KeyframeClips
                  ) -> tuple[torch.Tensor, int]:
    """The detection dataset's test clip of one keyframe: ``((3, T, h, w) float32 on 0-255, centre frame)``.

    The same calls as :meth:`tasks.detection.VideoMAEv2AVADataset.load_clip` and ``_test_transform`` in test mode."""
    sample = keyframe_sample(reader.num_frames, timestamp, clips.fps or reader.fps, clip_len=clip_len,
                             frame_interval=frame_interval, timestamp_start=clips.timestamp_start, jitter=False,
                             timestamps=None if clips.fps else reader.timestamps)
    frames = reader.get_frames(sample.indices[0])
    x = short_side_resize(frames, clips.short_side) if clips.short_side else to_tchw(frames).float()
    return x.transpose(0, 1).contiguous(), int(sample.centres[0])


def _normalise_pad(clips: Sequence[torch.Tensor], mean: torch.Tensor, std: torch.Tensor, divisor: int
                   ) -> torch.Tensor:
    """(3, T, h, w) clips of one size -> (B, 3, T, H, W) normalised, zero-padded to a multiple of ``divisor``: the
    operations of :class:`tasks.detection.VideoMAEv2AVAPreprocessor`, in its order."""
    t, h, w = clips[0].shape[1:]
    ph, pw = -(-h // divisor) * divisor, -(-w // divisor) * divisor
    batch = clips[0].new_zeros((len(clips), 3, t, ph, pw), dtype=torch.float32)
    for i, c in enumerate(clips):
        batch[i, :, :, :h, :w] = (c.float() - mean) / std
    return batch


@torch.no_grad()
def keyframe_maps(model: nn.Module, reader: VideoReader, video_id: str, timestamps: Sequence[int], *, clip_len: int,
                  frame_interval: int, clips: KeyframeClips, dtype: str = 'fp32', batch_size: int = 8
                  ) -> tuple[np.ndarray, VideoFeatureMeta]:
    """Maps of a video's keyframes: ``((K, C, H', W') float32, meta)``, row k = ``timestamps[k]``.

    ``model`` is a :class:`backbone.VideoMAEv2ViT` with ``featmap_norm`` (the detector's backbone); the map of a clip
    is ``model.forward_featmap(clip).mean(dim=2)`` (B, C, H', W'), H' = ceil(h / p).
    """
    device = next(model.parameters()).device
    mean = torch.tensor(clips.mean, dtype=torch.float32).view(3, 1, 1, 1)
    std = torch.tensor(clips.std, dtype=torch.float32).view(3, 1, 1, 1)
    made = [keyframe_clip(reader, int(t), clip_len, frame_interval, clips) for t in timestamps]
    rows = []
    for start in range(0, len(made), batch_size):
        batch = _normalise_pad([c for c, _ in made[start:start + batch_size]], mean, std, model.patch_size)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == 'bf16'):
            featmap = model.forward_featmap(batch.to(device))
        rows.append(featmap.mean(dim=2).float().cpu())  # the head's temporal mean, in the backbone's dtype
    maps = torch.cat(rows).numpy()
    centres = np.array([c for _, c in made], dtype=np.int64)
    h, w = made[0][0].shape[-2:]
    times = reader.timestamps[centres] - reader.timestamps[0]
    meta = VideoFeatureMeta(
        video_id=video_id, fps=reader.fps, num_frames=reader.num_frames, duration=reader.duration, clip_len=clip_len,
        frame_interval=frame_interval,
        # keyframes are 1 s apart in AVA: the stride is the frames per second (rows of excluded seconds are absent)
        stride=max(1, int(round(clips.fps or reader.fps))), centre_frames=centres, centre_times=times,
        variable_frame_rate=reader.meta.variable_frame_rate, decoder=reader.meta.backend,
        timestamps=np.asarray(timestamps, dtype=np.int64), input_size=(int(h), int(w)))
    return maps, meta


def featmap_sizes(short_side: int, patch_size: int, aspect: float = 16 / 9) -> tuple[int, int]:
    """(H', W') of the map of a frame resized to ``short_side`` (landscape, ``aspect`` = width / height)."""
    w = int(round(short_side * aspect))
    return -(-short_side // patch_size), -(-w // patch_size)


def extract_featmap_share(model: nn.Module, todo: Sequence[tuple[int, str, Path]], cfg: Any, parts: Path,
                          progress: Any, lines: dict[str, str]) -> tuple[list[str], list[dict[str, str]], int]:
    """The featmap counterpart of the pooled loop in :mod:`feature_store.extract.run`: one part file per finished
    video (so a killed run resumes at the next video). Videos are decoded in this process, one at a time.
    Returns (done ids, failures, keyframes)."""
    clips: KeyframeClips = cfg.keyframe_clips
    done: list[str] = []
    failures: list[dict[str, str]] = []
    total = 0
    for _, vid, path in todo:
        try:
            with VideoReader(path, backend=cfg.backend) as reader:
                maps, meta = keyframe_maps(model, reader, vid, clips.keyframes[vid], clip_len=cfg.clip_len,
                                           frame_interval=cfg.frame_interval, clips=clips, dtype=cfg.dtype,
                                           batch_size=cfg.batch_size)
        except VideoDecodeError as e:
            reason = e.reason
        else:
            peak = float(np.abs(maps).max(initial=0.0)) if cfg.store_dtype == 'float16' else 0.0
            reason = (f'maps up to {peak:.4g} overflow float16 (max {_FLOAT16_MAX:.0f}); extract with '
                      '--store-dtype fp32') if peak > _FLOAT16_MAX else None
        if reason is not None:
            failure = {'video_id': vid, 'path': str(path), 'reason': reason}
            if vid in lines:
                failure['line'] = lines[vid]
            failures.append(failure)
            progress.write(f'extract_features: skipping {vid} ({path}): {reason}')
            progress.video_done()
            continue
        write_part(parts, vid, maps, meta)
        done.append(vid)
        total += len(maps)
        progress.add_clips(len(maps))
        progress.video_done()
    return done, failures, total
