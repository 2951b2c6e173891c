"""Frame samplers: which frames make up each clip, plus the metadata later stages need.

Every sampler is a pure function of the frame count (and of a ``torch.Generator`` when it is random) returning a
:class:`ClipSample`: frame indices clipped to the video, with the fps, frame count and centre frame of every clip, so
that features map back to time without out-of-band settings. A video shorter than a clip is padded by repeating its
last frame; nothing wraps around to the start (mmaction2's default ``'loop'`` does). Each sampler's docstring names
the official or mmaction2 sampler it reproduces and where it pads differently.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

__all__ = ['ClipSample', 'dense_sample', 'segment_sample', 'sliding_window_sample', 'keyframe_sample',
           'frames_at_rate']

Protocol = Literal['official', 'mmaction2']
SlidingMode = Literal['official', 'centred']


@dataclass(frozen=True)
class ClipSample:
    """Frame indices of the clips taken from one video, with what is needed to interpret them.

    Attributes:
        indices: (num_clips, clip_len) int64 frame indices, in ``[0, num_frames - 1]``.
        centres: (num_clips,) int64 centre frame of every clip before clipping to the video: the frame at position
            ``clip_len // 2``, ``start + (clip_len // 2) * frame_interval`` for regular clips; may lie outside the
            video for padded clips. For the official TAD windows (16 frames from ``start``) it is ``start + 8``, the
            point ActionFormer assigns to a feature and OpenTAD's ``offset_frames=8``
            (docs/thumos14.md#time-and-feature-rows); for ``centred`` windows it is mmaction2's clip centre.
        num_frames: frames in the video.
        fps: frame rate of the video if the caller gave it, else ``None``.
        clip_len: frames per clip.
        frame_interval: step between consecutive frames of a clip (``None`` for segment sampling, where it varies).
        sampler: how the clips were made, e.g. ``'dense/official/test'``; recorded as provenance.
    """

    indices: np.ndarray
    centres: np.ndarray
    num_frames: int
    fps: float | None
    clip_len: int
    frame_interval: int | None
    sampler: str

    @property
    def num_clips(self) -> int:
        return int(self.indices.shape[0])

    @property
    def centre_seconds(self) -> np.ndarray:
        """(num_clips,) clip centres in seconds, ``centres / fps`` (constant frame rate; for a variable-rate video
        index the reader's ``timestamps`` with the clipped centres instead)."""
        if not self.fps:
            raise ValueError('this ClipSample was made without fps; pass fps= to the sampler')
        return self.centres / self.fps


def _check(num_frames: int, **positive: int) -> None:
    if num_frames < 1:
        raise ValueError(f'num_frames must be >= 1 (an empty video cannot be sampled), got {num_frames}')
    for name, value in positive.items():
        if value < 1:
            raise ValueError(f'{name} must be >= 1, got {value}')


def _check_protocol(protocol: str) -> None:
    if protocol not in ('official', 'mmaction2'):
        raise ValueError(f"protocol must be 'official' or 'mmaction2', got {protocol!r}")


def _randint(high: int, size: int, generator: torch.Generator | None) -> np.ndarray:
    """``size`` integers uniform in [0, high), from a torch generator (so one seed drives samplers and transforms)."""
    return torch.randint(high, (size,), generator=generator).numpy().astype(np.int64)


def _make(nominal: np.ndarray, num_frames: int, fps: float | None, clip_len: int, frame_interval: int | None,
          sampler: str) -> ClipSample:
    nominal = np.asarray(nominal, dtype=np.int64).reshape(-1, clip_len)
    return ClipSample(
        indices=np.clip(nominal, 0, num_frames - 1), centres=nominal[:, clip_len // 2].copy(),
        num_frames=num_frames, fps=fps, clip_len=clip_len, frame_interval=frame_interval, sampler=sampler)


# --------------------------------------------------------------------------------------------------------------------
# dense clips (Kinetics)
# --------------------------------------------------------------------------------------------------------------------

def dense_sample(
        num_frames: int,
        *,
        clip_len: int = 16,
        frame_interval: int = 4,
        num_clips: int = 1,
        test_mode: bool = False,
        protocol: Protocol = 'official',
        fps: float | None = None,
        generator: torch.Generator | None = None,
) -> ClipSample:
    """Clips of ``clip_len`` frames spaced by about ``frame_interval`` (Kinetics: 16 x 4, 5 test clips).

    ``protocol='official'`` (OpenGVLab/VideoMAEv2 ``VideoClsDataset``):

    * train (one clip): a window of ``clip_len * frame_interval`` frames ending at a random ``end`` in
      ``[span, num_frames)``, with ``clip_len`` evenly spaced frames ``start + floor(j * span / (clip_len - 1))``,
      the last one clipped to ``end - 1``. Videos of at most ``span`` frames take ``num_frames // frame_interval``
      evenly spaced frames and pad with the last frame.
    * test: take every ``frame_interval``-th frame (0, 4, 8, ...), pad that list to ``clip_len`` with its last entry,
      and cut ``num_clips`` runs of ``clip_len`` at starts ``int(k * (m - clip_len) / (num_clips - 1))`` of the list
      (m its length); a single clip starts at ``(m - clip_len) // 2``.

    ``protocol='mmaction2'``: ``SampleFrames(clip_len, frame_interval, num_clips, test_mode,
    out_of_bound_opt='repeat_last')``: test starts ``round(k * max(n - span', 0) / (num_clips - 1))`` with
    ``span' = (clip_len - 1) * frame_interval + 1`` (one start ``max(n - span', 0) // 2`` for a single clip); train
    starts uniform in ``[0, n - clip_len * frame_interval]`` per equal part of the video; frames past the end repeat
    the clip's last valid frame.

    Args:
        num_frames: frames in the video.
        clip_len: frames per clip.
        frame_interval: step between frames.
        num_clips: clips to take (test: evenly spaced views; official train supports only 1).
        test_mode: deterministic test sampling instead of random training sampling.
        protocol: ``'official'`` or ``'mmaction2'``.
        fps: recorded in the result for time conversion.
        generator: randomness for training sampling.
    """
    _check(num_frames, clip_len=clip_len, frame_interval=frame_interval, num_clips=num_clips)
    _check_protocol(protocol)
    sample = _dense_official if protocol == 'official' else _dense_mmaction2
    return sample(num_frames, clip_len, frame_interval, num_clips, test_mode, fps, generator)


def _dense_official(n: int, L: int, step: int, num_clips: int, test_mode: bool, fps: float | None,
                    generator: torch.Generator | None) -> ClipSample:
    """:func:`dense_sample` with ``protocol='official'``."""
    mode = 'test' if test_mode else 'train'
    if test_mode:
        sub = list(range(0, n, step))
        sub += [sub[-1]] * (L - len(sub))  # pad with the last sampled frame, as the official loader does
        m = len(sub)
        if num_clips > 1:
            t_step = max((m - L) / (num_clips - 1), 0.0)
            starts = [int(k * t_step) for k in range(num_clips)]
        else:  # the official formula divides by zero here; take the middle clip
            starts = [(m - L) // 2]
        nominal = np.array([[sub[s + j] for j in range(L)] for s in starts])
        # sub[s + j] == (s + j) * step except in the padding, so the nominal centre is (s + L // 2) * step
        sample = _make(nominal, n, fps, L, step, f'dense/official/{mode}')
        centres = np.array([(s + L // 2) * step for s in starts], dtype=np.int64)
        return ClipSample(sample.indices, centres, n, fps, L, step, sample.sampler)
    if num_clips != 1:
        raise ValueError('official dense training sampling takes one clip per video (num_clips=1)')
    span = L * step
    if n <= span:
        k = n // step
        idx = np.concatenate([np.linspace(0, n, num=k), np.full(L - k, float(n))])
        nominal = np.clip(idx, 0, n - 1).astype(np.int64)
    else:
        end = span + int(_randint(n - span, 1, generator)[0])  # uniform in [span, n)
        start = end - span
        nominal = np.clip(np.linspace(start, end, num=L), start, end - 1).astype(np.int64)
    return _make(nominal[None], n, fps, L, step, f'dense/official/{mode}')


def _dense_mmaction2(n: int, L: int, step: int, num_clips: int, test_mode: bool, fps: float | None,
                     generator: torch.Generator | None) -> ClipSample:
    """:func:`dense_sample` with ``protocol='mmaction2'`` (``SampleFrames``, ``out_of_bound_opt='repeat_last'``)."""
    mode = 'test' if test_mode else 'train'
    if test_mode:
        span = (L - 1) * step + 1
        max_offset = max(n - span, 0)
        if num_clips > 1:
            starts = np.round(np.arange(num_clips) * (max_offset / float(num_clips - 1)))
        else:
            starts = np.array([max_offset // 2])
    else:
        span = L * step
        avg = (n - span + 1) // num_clips
        if avg > 0:
            starts = np.arange(num_clips) * avg + _randint(avg, num_clips, generator)
        elif n > max(num_clips, span):
            starts = np.sort(_randint(n - span + 1, num_clips, generator))
        elif avg == 0:
            starts = np.round(np.arange(num_clips) * ((n - span + 1.0) / num_clips))
        else:
            starts = np.zeros(num_clips)
    nominal = starts.astype(np.int64)[:, None] + np.arange(L)[None] * step
    # repeat_last: frames past the end become the clip's last in-range frame
    last_valid = np.where(nominal < n, nominal, -1).max(axis=1, keepdims=True)
    indices = np.where(nominal < n, nominal, np.maximum(last_valid, 0))
    return ClipSample(np.clip(indices, 0, n - 1), nominal[:, L // 2].copy(), n, fps, L, step,
                      f'dense/mmaction2/{mode}')


# --------------------------------------------------------------------------------------------------------------------
# segments (SSv2, TSN)
# --------------------------------------------------------------------------------------------------------------------

def segment_sample(
        num_frames: int,
        *,
        num_segments: int = 16,
        num_clips: int = 1,
        test_mode: bool = False,
        protocol: Protocol = 'official',
        fps: float | None = None,
        generator: torch.Generator | None = None,
) -> ClipSample:
    """One frame from each of ``num_segments`` equal segments (TSN; SSv2 uses 16 segments, 2 test clips).

    ``protocol='official'`` (MCG-NJU/VideoMAE ``SSVideoClsDataset``, which VideoMAE V2 inherits):

    * train: segment length ``a = n // S``; frame ``i * a + randint(a)`` for segment i. For ``n < S`` the official
      loader returns frame 0 S times; we pad instead (``min(i, n - 1)``, the last frame repeated).
    * test: with ``tick = n / S``, clip k takes ``int(tick * i + k * tick / num_clips)``: for the official two clips,
      the segment starts ``int(tick * i)`` and the segment midpoints ``int(tick * i + tick / 2)``. (The official code
      gathers both lists, sorts them and slices ``[k::2]``, which gives the same two lists.)

    ``protocol='mmaction2'`` (``UniformSample``): ``seg = (n - 1) / S``; train frame ``randint(round(seg * i),
    round(seg * (i + 1)) + 1)``; test clip k frame ``round(seg * i) + int(seg / (num_clips + 1) * (k + 1))``.

    Args:
        num_frames: frames in the video.
        num_segments: segments = frames per clip.
        num_clips: test views (offsets within the segments); training takes one clip.
        test_mode: deterministic test sampling.
        protocol: ``'official'`` or ``'mmaction2'``.
        fps: recorded in the result.
        generator: randomness for training sampling.
    """
    _check(num_frames, num_segments=num_segments, num_clips=num_clips)
    _check_protocol(protocol)
    n, S = num_frames, num_segments
    mode = 'test' if test_mode else 'train'
    seg = np.arange(S)
    if protocol == 'official':
        if test_mode:
            tick = n / float(S)
            # k * tick / num_clips is 0 and tick / 2 for the official two clips
            nominal = np.array([[int(tick * i + k * tick / num_clips) for i in seg] for k in range(num_clips)])
        else:
            if num_clips != 1:
                raise ValueError('segment training sampling takes one clip per video (num_clips=1)')
            a = n // S
            nominal = (seg * a + _randint(a, S, generator))[None] if a > 0 else np.minimum(seg, n - 1)[None]
    else:
        size = (n - 1) / S
        starts = np.array([int(np.round(size * i)) for i in seg])
        if test_mode:
            duration = size / (num_clips + 1)
            nominal = np.stack([starts + int(duration * (k + 1)) for k in range(num_clips)])
        else:
            if num_clips != 1:
                raise ValueError('segment training sampling takes one clip per video (num_clips=1)')
            ends = np.array([int(np.round(size * (i + 1))) for i in seg])
            nominal = (starts + np.floor(torch.rand(S, generator=generator, dtype=torch.float64).numpy()
                                         * (ends - starts + 1)).astype(np.int64))[None]
    return _make(nominal, n, fps, S, None, f'segment/{protocol}/{mode}')


# --------------------------------------------------------------------------------------------------------------------
# sliding windows (temporal localization)
# --------------------------------------------------------------------------------------------------------------------

def sliding_window_sample(
        num_frames: int,
        *,
        clip_len: int = 16,
        frame_interval: int = 1,
        stride: int = 4,
        mode: SlidingMode = 'official',
        fps: float | None = None,
) -> ClipSample:
    """Overlapping clips over a whole video, for frozen-feature temporal localization.

    * ``'official'`` (OpenGVLab/VideoMAEv2 ``extract_tad_feature.py``): clips start at frame 0 and every ``stride``
      frames, ``range(0, n - span + 1, stride)`` with ``span = (clip_len - 1) * frame_interval + 1``; trailing frames
      that do not fill a clip are dropped. Clip k is centred (:attr:`ClipSample.centres`) on ``k * stride +
      (clip_len // 2) * frame_interval`` (frame 8 + 4k for 16 frames at stride 4). A video shorter than one clip
      gives one clip padded with its last frame (the official script would fail on it).
    * ``'centred'`` (mmaction2 ``UntrimmedSampleFrames``): clip centres at ``stride // 2 + k * stride`` for every
      centre inside the video, frames ``centre + (j - clip_len // 2) * frame_interval`` clipped to the video, so
      the first and last clips repeat edge frames and every part of the video is covered. A video of at most
      ``stride // 2`` frames gives one padded clip (mmaction2 gives none and fails).

    Args:
        num_frames: frames in the video.
        clip_len: frames per clip.
        frame_interval: step between frames of a clip (1 for the official extractor).
        stride: frames between consecutive clip starts (4 for THUMOS14, 16 for FineAction).
        mode: ``'official'`` or ``'centred'``.
        fps: recorded in the result.
    """
    _check(num_frames, clip_len=clip_len, frame_interval=frame_interval, stride=stride)
    n, L = num_frames, clip_len
    offsets = np.arange(L) * frame_interval
    if mode == 'official':
        span = (L - 1) * frame_interval + 1
        starts = np.arange(0, max(n - span + 1, 1), stride)
        nominal = starts[:, None] + offsets[None]
    elif mode == 'centred':
        centres = np.arange(stride // 2, max(n, stride // 2 + 1), stride)  # at least one clip, padded
        nominal = centres[:, None] + (offsets - (L // 2) * frame_interval)[None]
    else:
        raise ValueError(f"mode must be 'official' or 'centred', got {mode!r}")
    return _make(nominal, n, fps, L, frame_interval, f'sliding/{mode}/stride{stride}')


# --------------------------------------------------------------------------------------------------------------------
# keyframe-centred clips (AVA)
# --------------------------------------------------------------------------------------------------------------------

def keyframe_sample(
        num_frames: int,
        timestamp: float,
        fps: float,
        *,
        clip_len: int = 16,
        frame_interval: int = 4,
        timestamp_start: float = 0.0,
        jitter: bool = False,
        generator: torch.Generator | None = None,
        timestamps: np.ndarray | None = None,
) -> ClipSample:
    """A clip centred on the frame shown at ``timestamp`` (AVA keyframes; mmaction2 ``SampleAVAFrames``).

    The centre frame is ``round(fps * (timestamp - timestamp_start))`` (AVA clips cut at 900 s use
    ``timestamp_start=900``), or, given the frames' ``timestamps``, the frame whose presentation time is nearest to
    ``timestamp - timestamp_start`` (the same frame at a constant rate; the right one at a variable rate); frames are ``centre + (j - clip_len // 2) * frame_interval`` for j < clip_len, i.e. 8
    before and 7 after for 16 x 4. Training jitter adds an independent offset to every frame, uniform in
    ``[floor(-fi / 2), ceil(fi / 2) - 1]`` (-2..1 for fi = 4), as mmaction2 does. Frames outside the video are
    clipped to the first/last frame. mmaction2 computes the centre without rounding (so it needs an integer
    ``fps * (timestamp - timestamp_start)``) and adds ``start_index`` twice for raw frames; we use 0-based video
    frames.

    Args:
        num_frames: frames in the video.
        timestamp: keyframe time in seconds.
        fps: frame rate of the video.
        clip_len: frames per clip.
        frame_interval: step between frames.
        timestamp_start: time of frame 0 in the same clock as ``timestamp``.
        jitter: training-time per-frame jitter.
        generator: randomness for the jitter.
        timestamps: (num_frames,) presentation time of every frame in seconds from the first
            (``VideoMeta.timestamps``); None: frames at ``fps``.
    """
    _check(num_frames, clip_len=clip_len, frame_interval=frame_interval)
    if not fps > 0:
        raise ValueError(f'fps must be positive, got {fps}')
    if timestamps is None:
        centre = int(round(fps * (timestamp - timestamp_start)))
    else:
        centre = _nearest_frame(np.asarray(timestamps, dtype=np.float64), timestamp - timestamp_start, num_frames)
    nominal = centre + (np.arange(clip_len) - clip_len // 2) * frame_interval
    if jitter:
        low, high = (-frame_interval) // 2, (frame_interval + 1) // 2
        nominal = nominal + low + _randint(high - low, clip_len, generator)
    sample = _make(nominal[None], num_frames, fps, clip_len, frame_interval,
                   f"keyframe/{'train' if jitter else 'test'}")
    # the centre is the keyframe itself, also when jitter moved the frame at position clip_len // 2
    return ClipSample(sample.indices, np.array([centre]), num_frames, fps, clip_len, frame_interval, sample.sampler)


_TIE = 1e-9  # seconds: instants halfway between two frames (up to float error) take the earlier frame


def frames_at_rate(timestamps: np.ndarray, duration: float, rate: float) -> np.ndarray:
    """The frames to take for a video resampled to ``rate`` frames per second by its timestamps: for every instant
    ``k / rate`` (k = 0 .. floor(duration * rate) - 1) the frame shown nearest to it (FFmpeg's ``fps`` filter, the
    way the video_features extractor's ``extraction_fps`` resamples). Frames repeat when ``rate`` exceeds the video's
    and are skipped when it is lower; a variable-frame-rate video gets a uniform time axis.

    Args:
        timestamps: (num_frames,) presentation times in seconds from the first frame (``VideoMeta.timestamps``).
        duration: seconds the video covers (``VideoMeta.duration``).
        rate: output frames per second.

    Returns:
        (K,) int64 indices into the video's frames, non-decreasing.
    """
    ts = np.asarray(timestamps, dtype=np.float64)
    if not rate > 0:
        raise ValueError(f'rate must be positive, got {rate}')
    count = max(1, int(np.floor(duration * rate + 1e-6)))
    instants = np.arange(count) / rate
    right = np.clip(np.searchsorted(ts, instants), 1, len(ts) - 1) if len(ts) > 1 else np.zeros(count, np.int64)
    if len(ts) == 1:
        return right.astype(np.int64)
    left = right - 1
    nearer_left = instants - ts[left] <= ts[right] - instants + _TIE  # the earlier frame on a tie
    return np.where(nearer_left, left, right).astype(np.int64)


def _nearest_frame(timestamps: np.ndarray, t: float, num_frames: int) -> int:
    """Index of the frame shown nearest to ``t`` seconds (the earlier one on a tie); frames before the first or after
    the last are extrapolated at the average period, so that clipping treats them as frame arithmetic would."""
    if timestamps.shape != (num_frames,):
        raise ValueError(f'{timestamps.shape[0]} timestamps for {num_frames} frames')
    period = (timestamps[-1] - timestamps[0]) / (num_frames - 1) if num_frames > 1 else 1.0
    if t < timestamps[0] or t > timestamps[-1]:
        edge = 0 if t < timestamps[0] else num_frames - 1
        return edge + int(round((t - timestamps[edge]) / period))
    i = int(np.searchsorted(timestamps, t))
    return i if i == 0 or timestamps[i] - t < t - timestamps[i - 1] - _TIE else i - 1
