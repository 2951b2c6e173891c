"""Per-video metadata of a store (:class:`VideoFeatureMeta`): how the rows were made, and rows <-> seconds.

Row ``i`` is the clip whose centre frame is ``centre_frames[i]``; for the official TAD windows that is ``start + 8``
(docs/thumos14.md#time-and-feature-rows). Its time is ``centre_times[i]``, the container's presentation time of that
frame, where the store records it (every store written since; exact for variable-frame-rate video), else
``centre_frames[i] / fps`` (docs/feature_caching.md#time-from-the-container).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import FeatureStoreError

if TYPE_CHECKING:
    from tasks.data.video.sampling import ClipSample

__all__ = ['META_ATTRS', 'OPTIONAL_META_ATTRS', 'VideoFeatureMeta']

META_ATTRS = ('fps', 'num_frames', 'duration', 'clip_len', 'frame_interval', 'stride', 'centre_frames')
"""The per-video dataset attributes a reader needs (``offset_frames`` is written too, derived)."""

OPTIONAL_META_ATTRS = ('centre_times', 'variable_frame_rate', 'decoder', 'timestamps', 'input_size')
"""Per-video attributes of stores written since container timestamps were recorded; older stores lack them.
``timestamps`` and ``input_size`` belong to ``featmap`` stores (AVA keyframes) only."""


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
        centre_times: (num_clips,) float64 presentation time in seconds of every row's centre frame, relative to
            the first frame, from the container's timestamps; None in stores written before it was recorded.
        variable_frame_rate: the video's timestamps deviate from a constant frame rate by more than half a frame
            period (then ``centre_frames / fps`` would be wrong, and ``centre_times`` is what places the rows).
        decoder: the decoder that read the video (``'decord'`` or ``'pyav'``; with ``backend='auto'`` it varies
            by file); None where not recorded.
        timestamps: ``featmap`` stores: (num_rows,) int64 keyframe time of every row in the annotation's clock
            (AVA's integer seconds, e.g. 902), increasing; the key a detection dataset looks a keyframe up by.
        input_size: ``featmap`` stores: (h, w) of the resized clip before padding to whole patches; the person
            boxes are scaled to it (the map has ``ceil(h / p) x ceil(w / p)`` cells).
    """

    video_id: str
    fps: float
    num_frames: int
    duration: float
    clip_len: int
    frame_interval: int
    stride: int
    centre_frames: np.ndarray
    centre_times: np.ndarray | None = None
    variable_frame_rate: bool = False
    decoder: str | None = None
    timestamps: np.ndarray | None = None
    input_size: tuple[int, int] | None = None

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
        self.variable_frame_rate = bool(self.variable_frame_rate)
        self.decoder = None if self.decoder is None else str(self.decoder)
        problems = []
        if self.centre_times is not None:
            times = np.asarray(self.centre_times, dtype=np.float64)
            if times.shape != self.centre_frames.shape:
                problems.append(f'centre_times has shape {times.shape}, expected one per row {centres.shape}')
            elif not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
                problems.append('centre_times must be finite and strictly increasing')
            self.centre_times = times
        if self.timestamps is not None:
            stamps = np.asarray(self.timestamps)
            if stamps.shape != self.centre_frames.shape:
                problems.append(f'timestamps has shape {stamps.shape}, expected one per row {centres.shape}')
            elif np.any(np.diff(stamps) <= 0) or not np.all(stamps == np.round(stamps)):
                problems.append('timestamps must be strictly increasing integers (keyframe seconds)')
            self.timestamps = stamps.astype(np.int64)
        if self.input_size is not None:
            size = tuple(int(v) for v in np.asarray(self.input_size).reshape(-1))
            if len(size) != 2 or min(size) < 1:
                problems.append(f'input_size must be (h, w) > 0, got {self.input_size}')
            self.input_size = size
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
    def from_clip_sample(cls, video_id: str, sample: ClipSample, stride: int, timestamps: np.ndarray | None = None,
                         variable_frame_rate: bool = False, decoder: str | None = None) -> VideoFeatureMeta:
        """Metadata of features computed from ``sample`` (one row per clip, in order).

        Args:
            video_id: key of the video.
            sample: the clips (``tasks.data.video.sampling``); must carry ``fps``.
            stride: frames between consecutive clips, as given to the sampler (also needed for one-clip videos,
                where it cannot be read off the centres).
            timestamps: (num_frames,) presentation time of every frame in seconds (``VideoMeta.timestamps``);
                gives ``centre_times``, relative to the first frame.
            variable_frame_rate: ``VideoMeta.variable_frame_rate``.
            decoder: ``VideoMeta.backend``.
        """
        if not sample.fps:
            raise ValueError(f'{video_id}: the ClipSample has no fps (pass fps= to the sampler); the store needs it '
                             'to map rows to seconds')
        steps = np.unique(np.diff(sample.centres))
        if steps.size == 1 and int(steps[0]) != stride:
            raise ValueError(f'{video_id}: stride={stride} but the clip centres are {int(steps[0])} frames apart '
                             f'(sampler {sample.sampler!r})')
        times = None
        if timestamps is not None:
            timestamps = np.asarray(timestamps, dtype=np.float64)
            if timestamps.shape != (sample.num_frames,):
                raise ValueError(f'{video_id}: {timestamps.shape[0]} timestamps for {sample.num_frames} frames')
            times = timestamps[sample.centres] - timestamps[0]
        return cls(video_id=video_id, fps=sample.fps, num_frames=sample.num_frames,
                   duration=sample.num_frames / sample.fps, clip_len=sample.clip_len,
                   frame_interval=sample.frame_interval or 0, stride=stride, centre_frames=sample.centres,
                   centre_times=times, variable_frame_rate=variable_frame_rate, decoder=decoder)

    @property
    def num_rows(self) -> int:
        return int(self.centre_frames.shape[0])

    @property
    def offset_frames(self) -> int:
        """Centre frame of the first row (8 for official 16-frame windows from frame 0)."""
        return int(self.centre_frames[0])

    @property
    def centre_seconds(self) -> np.ndarray:
        """(num_rows,) centre time of every row in seconds (``centre_times`` where recorded)."""
        return self.centre_times if self.centre_times is not None else self.centre_frames / self.fps

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
        """Centre time in seconds of (fractional) rows.

        With ``centre_times``: linear between neighbouring rows' times, and ``stride / fps`` seconds per row before
        the first and after the last row. Without (older stores): ``row_to_frame(rows) / fps``, which for official
        windows (offset 8, stride 4) is ActionFormer's ``(grid * 4 + 0.5 * 16) / fps``.

        Args:
            rows: row indices, may be fractional or outside ``[0, num_rows - 1]``.
            clip: clamp the result to ``[0, duration]``, as ActionFormer does for predicted segments.
        """
        if self.centre_times is None:
            t = self.row_to_frame(rows) / self.fps
        else:
            r = np.asarray(rows, dtype=np.float64)
            c, last, step = self.centre_times, self.num_rows - 1, self.stride / self.fps
            inside = np.interp(r, np.arange(self.num_rows, dtype=np.float64), c)
            t = np.where(r < 0, c[0] + r * step, np.where(r > last, c[-1] + (r - last) * step, inside))
        return np.clip(t, 0.0, self.duration) if clip else t

    def seconds_to_row(self, t: np.ndarray | float) -> np.ndarray:
        """(Fractional) row whose centre is at time ``t`` seconds; inverse of :meth:`row_to_seconds`."""
        t = np.asarray(t, dtype=np.float64)
        if self.centre_times is None:
            return self.frame_to_row(t * self.fps)
        c, last, step = self.centre_times, self.num_rows - 1, self.stride / self.fps
        inside = np.interp(t, c, np.arange(self.num_rows, dtype=np.float64))
        return np.where(t < c[0], (t - c[0]) / step, np.where(t > c[-1], last + (t - c[-1]) / step, inside))

    # ---------------------------------------------------------------------------------------------------------------
    def to_attrs(self) -> dict[str, Any]:
        """HDF5 dataset attributes (README: "Per-video attributes")."""
        attrs = {'fps': np.float64(self.fps), 'num_frames': np.int64(self.num_frames),
                 'duration': np.float64(self.duration), 'clip_len': np.int64(self.clip_len),
                 'frame_interval': np.int64(self.frame_interval), 'stride': np.int64(self.stride),
                 'centre_frames': self.centre_frames, 'offset_frames': np.int64(self.offset_frames)}
        if self.centre_times is not None:
            attrs['centre_times'] = self.centre_times
            attrs['variable_frame_rate'] = np.int64(self.variable_frame_rate)
        if self.decoder is not None:
            attrs['decoder'] = self.decoder
        if self.timestamps is not None:
            attrs['timestamps'] = self.timestamps
        if self.input_size is not None:
            attrs['input_size'] = np.asarray(self.input_size, dtype=np.int64)
        return attrs

    @classmethod
    def from_attrs(cls, video_id: str, attrs: Mapping[str, Any], where: str = '') -> VideoFeatureMeta:
        missing = [n for n in META_ATTRS if n not in attrs]
        if missing:
            raise FeatureStoreError(f'{where}: dataset {video_id!r} lacks attributes {missing}')
        optional = {n: attrs[n] for n in OPTIONAL_META_ATTRS if n in attrs}
        return cls(video_id=video_id, **{n: attrs[n] for n in META_ATTRS}, **optional)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (lists for arrays), as written in the npy sidecar."""
        d = asdict(self)
        d['centre_frames'] = self.centre_frames.tolist()
        d['offset_frames'] = self.offset_frames
        if self.centre_times is None:
            del d['centre_times'], d['variable_frame_rate']  # as stores written before: no key rather than null
        else:
            d['centre_times'] = self.centre_times.tolist()
        if self.decoder is None:
            del d['decoder']
        for name in ('timestamps', 'input_size'):  # absent, not null, outside featmap stores
            if d[name] is None:
                del d[name]
        if self.timestamps is not None:
            d['timestamps'] = self.timestamps.tolist()
        if self.input_size is not None:
            d['input_size'] = list(self.input_size)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VideoFeatureMeta:
        names = ('video_id', *META_ATTRS)
        missing = [n for n in names if n not in d]
        if missing:
            raise ValueError(f'video metadata lacks {missing}')
        return cls(**{n: d[n] for n in names}, **{n: d[n] for n in OPTIONAL_META_ATTRS if n in d})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VideoFeatureMeta):
            return NotImplemented
        return (self.to_attrs().keys() == other.to_attrs().keys() and self.video_id == other.video_id
                and all(np.array_equal(a, other.to_attrs()[k]) for k, a in self.to_attrs().items()))
