"""Frame-accurate video reading with decord (default) or PyAV behind one interface.

Random access (:meth:`VideoReader.get_frames`) serves the few frames per clip of classification and AVA; sliding
windows (:meth:`VideoReader.iter_windows`) serve whole untrimmed videos for temporal localization and decode each
frame once (docs/video_decoding.md#decode-once-cut-windows-from-a-buffer). Indices are 0-based presentation order,
clipped to the video; every failure to open or decode a file raises :class:`~tasks.data.video.errors.VideoDecodeError`
naming the file and the reason.
"""
from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch

from .errors import VideoDecodeError

try:
    import decord

    _HAS_DECORD = True
except ImportError:  # decord has no wheels for some platforms (e.g. macOS arm64); PyAV still works
    decord = None
    _HAS_DECORD = False

__all__ = ['Backend', 'VideoMeta', 'VideoReader', 'Window']

Backend = Literal['decord', 'pyav']
FrameTransform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class VideoMeta:
    """What the container says about the video stream.

    Attributes:
        path: the video file.
        backend: the decoder that read it.
        num_frames: frames in the stream, counted from the container's packets (not the header's estimate).
        fps: the stream's average frame rate; for a variable-frame-rate video use ``timestamps`` instead.
        timestamps: (num_frames,) float64 presentation time of every frame in seconds, from the container's
            timestamps, relative to the stream start (so the first frame is usually at 0).
        duration: seconds covered by the frames: last timestamp - first timestamp + one average frame period.
        height: frame height in pixels.
        width: frame width in pixels.
    """

    path: Path
    backend: Backend
    num_frames: int
    fps: float
    timestamps: np.ndarray = field(repr=False)
    duration: float
    height: int
    width: int


class Window(NamedTuple):
    """One clip from :meth:`VideoReader.iter_windows`.

    Attributes:
        index: position of the window in the requested window array.
        frame_indices: (L,) int64 frame indices of the clip (after clipping to the video).
        frames: the clip's frames stacked along ``frame_dim``: uint8 (L, H, W, 3) without a transform.
    """

    index: int
    frame_indices: np.ndarray
    frames: torch.Tensor


# --------------------------------------------------------------------------------------------------------------------
# backends: each reads a sorted, unique, in-range int64 array of frame indices into a uint8 (k, H, W, 3) array
# --------------------------------------------------------------------------------------------------------------------

def _average_fps(rate: float | Fraction | None, timestamps: np.ndarray) -> float:
    """The container's average rate if it is usable, else the mean rate of the timestamps (0/0 rates exist)."""
    if rate is not None and np.isfinite(float(rate)) and float(rate) > 0:
        return float(rate)
    if len(timestamps) > 1 and timestamps[-1] > timestamps[0]:
        return (len(timestamps) - 1) / float(timestamps[-1] - timestamps[0])
    raise ValueError('the container reports no frame rate and the timestamps do not give one')


def _probe(path: Path) -> None:
    """Open the container with PyAV and check it has a video stream with a decoder.

    decord's bundled FFmpeg opens plain text files through its ``tty`` demuxer as a one-frame "video", and the official
    code skips files under 1 KB because decord could hang on them; a cheap PyAV header probe rejects both cases
    with a clear reason before decord sees the file.
    """
    import av

    try:
        with av.open(str(path)) as container:
            streams = container.streams.video
            if not streams:
                raise VideoDecodeError(path, 'the container has no video stream')
            codec = streams[0].codec_context
            if codec is None:
                raise VideoDecodeError(path, 'no decoder for the video stream')
            if codec.name in ('ansi', 'bintext', 'xbin', 'idf', 'tty'):  # text rendered as video by FFmpeg
                raise VideoDecodeError(path, f'the "video" stream is text ({codec.name})')
    except VideoDecodeError:
        raise
    except Exception as e:  # av.error.* (InvalidDataError for non-videos and truncated MP4s), OSError
        raise VideoDecodeError(path, f'not a readable video container ({type(e).__name__}: {e})') from None


class _DecordBackend:
    """decord ``VideoReader`` with bounded read-ahead.

    decord's ``NextFrame`` pushes another packet whenever the decoder thread has not produced a frame yet, so during
    a long sequential read it queues packets ahead of the consumer, and the decoded frames pile up in its frame queue
    (docs/video_decoding.md measured 66 MB -> 1.3 GB on a 60-s 360p video with a slow consumer). ``seek(0)`` clears
    those queues (``resets`` counts the clears). Doing it when a sequential read enters a new GOP costs two container
    seeks and no extra decoding, because decord's accurate seek then lands on the keyframe it was about to decode
    anyway. So the read-ahead is bounded by about one GOP (at least ``reset_min_frames`` frames between clears, so
    all-intra videos do not seek on every frame).
    """

    reset_min_frames = 64

    def __init__(self, path: Path, num_threads: int):
        if not _HAS_DECORD:
            raise ImportError("backend='decord' needs decord: `pip install decord` (or use backend='pyav')")
        _probe(path)
        try:
            self._vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=num_threads)
            self.num_frames = len(self._vr)
            ts = np.asarray(self._vr.get_frame_timestamp(np.arange(self.num_frames)), dtype=np.float64)
            self.timestamps = ts[:, 0] if ts.size else np.zeros(0)
            self.fps = _average_fps(self._vr.get_avg_fps(), self.timestamps) if self.num_frames else 0.0
            self.keyframes = np.asarray(self._vr.get_key_indices(), dtype=np.int64)
            # decord has no size query: decode frame 0 once, then rewind so sequential reads start at 0.
            first = self._vr[0].asnumpy() if self.num_frames else None
            self._vr.seek(0)
        except VideoDecodeError:
            raise
        except Exception as e:  # DECORDError, RuntimeError, AssertionError on a zero frame count
            raise VideoDecodeError(path, f'decord could not index it, the file may be truncated or corrupt '
                                         f'({type(e).__name__}: {_last_line(e)})') from None
        if first is not None and first.shape[2:] != (3,):
            # decord hands out FFmpeg's padded RGB rows as extra "channels" when the padded row length is a multiple
            # of the width (e.g. widths 16, 32, 48), and get_batch then fails; say so instead of decoding garbage.
            raise VideoDecodeError(path, f'decord returns frames of shape {first.shape} for width {first.shape[1]} '
                                         "(a decord bug with padded RGB rows); use backend='pyav' for this video")
        self.height, self.width = first.shape[:2] if first is not None else (0, 0)
        self._next = 0  # the frame decord returns next without seeking
        self._since_reset = 0
        self.resets = 0

    def _gop(self, i: int) -> int:
        return int(np.searchsorted(self.keyframes, i, side='right'))

    def read(self, indices: np.ndarray) -> np.ndarray:
        # one get_batch per GOP touched, so the queues can be cleared where a sequential read enters a new GOP
        gops = np.searchsorted(self.keyframes, indices, side='right')
        cuts = np.flatnonzero(np.diff(gops)) + 1
        return np.concatenate([self._read_gop(part) for part in np.split(indices, cuts)])

    def _read_gop(self, indices: np.ndarray) -> np.ndarray:
        k = int(indices[0])
        if (self._next > 0 and k >= self._next and self._since_reset >= self.reset_min_frames
                and self._gop(k) != self._gop(self._next - 1)):
            self._vr.seek(0)  # clear decord's queues; the next get_batch seeks accurately to k (see class docstring)
            self._since_reset = 0
            self.resets += 1
        frames = self._vr.get_batch(indices.tolist()).asnumpy()
        self._since_reset += int(indices[-1]) - k + 1
        self._next = int(indices[-1]) + 1
        return frames

    def close(self) -> None:
        self._vr = None


class _PyAVBackend:
    """PyAV demux + decode with a persistent decoder position, so ascending reads never decode a frame twice."""

    def __init__(self, path: Path, num_threads: int):
        import av

        self._path = path
        try:
            self._container = av.open(str(path))
        except Exception as e:
            raise VideoDecodeError(path, f'not a readable video container ({type(e).__name__}: {e})') from None
        try:
            if not self._container.streams.video:
                raise VideoDecodeError(path, 'the container has no video stream')
            stream = self._stream = self._container.streams.video[0]
            if num_threads != 1:
                stream.thread_type = 'AUTO'
                stream.codec_context.thread_count = num_threads  # 0: FFmpeg picks
            # Index from packets, without decoding: presentation timestamps and keyframes (B-frames make decode
            # order differ from presentation order, so sort by pts).
            pts, key_pts = [], []
            for packet in self._container.demux(stream):
                if packet.size == 0:  # the demuxer's flush packet
                    continue
                t = packet.pts if packet.pts is not None else packet.dts
                if t is None:
                    raise VideoDecodeError(path, 'packets carry no timestamps; cannot index frames')
                pts.append(t)
                if packet.is_keyframe:
                    key_pts.append(t)
            self._pts = np.sort(np.asarray(pts, dtype=np.int64))
            self._pts_to_index = {int(t): i for i, t in enumerate(self._pts)}
            self.num_frames = len(self._pts)
            start = stream.start_time if stream.start_time is not None else (int(self._pts[0]) if pts else 0)
            self.timestamps = (self._pts - start).astype(np.float64) * float(stream.time_base)
            self.keyframes = np.asarray(sorted(self._pts_to_index[int(t)] for t in key_pts), dtype=np.int64)
            self.fps = _average_fps(stream.average_rate, self.timestamps) if self.num_frames else 0.0
            self.height, self.width = stream.codec_context.height, stream.codec_context.width
        except VideoDecodeError:
            self._container.close()
            raise
        except Exception as e:
            self._container.close()
            raise VideoDecodeError(path, f'PyAV could not index it ({type(e).__name__}: {e})') from None
        self._frames = None  # decode generator, positioned by _seek
        self._next = -1  # index of the frame _frames yields next (-1: not started)
        self._last = -1  # index of the last frame pulled from the decoder
        self.frames_decoded = 0  # frames pulled from the decoder; tests use it to check nothing is decoded twice

    def _seek(self, key_index: int) -> None:
        self._container.seek(int(self._pts[key_index]), stream=self._stream, backward=True, any_frame=False)
        self._frames = self._container.decode(self._stream)
        self._last = key_index - 1
        self._next = key_index  # what the decoder should yield first; _pull corrects it from the frame's pts

    def _pull(self):
        """Next decoded frame and its presentation index."""
        frame = next(self._frames)
        self.frames_decoded += 1
        index = self._pts_to_index.get(frame.pts) if frame.pts is not None else None
        self._last = index if index is not None else self._last + 1
        self._next = self._last + 1
        return self._last, frame

    def read(self, indices: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), self.height, self.width, 3), dtype=np.uint8)
        for j, i in enumerate(indices.tolist()):
            before = int(np.searchsorted(self.keyframes, i, side='right')) - 1
            key = int(self.keyframes[before]) if before >= 0 else 0  # the keyframe at or before frame i
            # Seek when going backwards or when a keyframe lies between the decoder and the target (skip a GOP).
            if self._frames is None or i < self._next or key > self._next:
                self._seek(key)
            while True:
                try:
                    index, frame = self._pull()
                except StopIteration:
                    raise VideoDecodeError(
                        self._path, f'the stream ends before frame {i} although the container lists '
                                    f'{self.num_frames} frames (truncated or corrupt file)') from None
                if index == i:
                    out[j] = frame.to_ndarray(format='rgb24')
                    break
                if index > i:
                    raise VideoDecodeError(self._path, f'frame {i} was never decoded (the decoder jumped to {index})')
        return out

    def close(self) -> None:
        self._frames = None
        self._container.close()


def _last_line(e: BaseException) -> str:
    """The message line of a backend error (decord's carry a log prefix and sometimes a stack dump before it)."""
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else type(e).__name__


# --------------------------------------------------------------------------------------------------------------------
# the reader
# --------------------------------------------------------------------------------------------------------------------

class VideoReader:
    """Read frames of one video by index, or as sliding windows that decode each frame once.

    Open one reader per video and per process (decoders are not fork- or thread-safe); it is a context manager.

    Args:
        path: the video file.
        backend: ``'decord'`` (default; what the official VideoMAE V2 code uses) or ``'pyav'``. Both return the
            same RGB frames for the same file.
        num_threads: decoder threads. 1 (the official extractor's setting) keeps data-loader workers from
            oversubscribing the CPU; 0 lets FFmpeg choose.

    Raises:
        VideoDecodeError: the file is missing, empty, not a video, truncated, or has no frames.
    """

    def __init__(self, path: str | os.PathLike, backend: Backend = 'decord', *, num_threads: int = 1):
        self.path = Path(path)
        if backend not in ('decord', 'pyav'):
            raise ValueError(f"backend must be 'decord' or 'pyav', got {backend!r}")
        self.backend: Backend = backend
        if not self.path.exists():
            raise VideoDecodeError(self.path, 'file does not exist')
        if not self.path.is_file():
            raise VideoDecodeError(self.path, 'not a regular file')
        if self.path.stat().st_size == 0:
            raise VideoDecodeError(self.path, 'file is empty (0 bytes)')
        impl = _DecordBackend if backend == 'decord' else _PyAVBackend
        self._backend = impl(self.path, num_threads)
        b = self._backend
        if b.num_frames == 0:
            b.close()
            raise VideoDecodeError(self.path, 'the video stream has no frames')
        ts = b.timestamps
        self.meta = VideoMeta(
            path=self.path, backend=backend, num_frames=b.num_frames, fps=b.fps, timestamps=ts,
            duration=float(ts[-1] - ts[0]) + 1.0 / b.fps, height=b.height, width=b.width)

    # metadata shortcuts ------------------------------------------------------------------------------------------

    @property
    def num_frames(self) -> int:
        return self.meta.num_frames

    @property
    def fps(self) -> float:
        return self.meta.fps

    @property
    def duration(self) -> float:
        return self.meta.duration

    @property
    def timestamps(self) -> np.ndarray:
        return self.meta.timestamps

    @property
    def decoder(self) -> _DecordBackend | _PyAVBackend | None:
        """The backend at work (None once closed): ``read(sorted indices)`` -> (N, H, W, 3) uint8, ``keyframes``;
        PyAV's counts ``frames_decoded``, decord's the read-ahead ``resets``."""
        return self._backend

    def __len__(self) -> int:
        return self.meta.num_frames

    def __repr__(self) -> str:
        m = self.meta
        return (f'VideoReader({str(self.path)!r}, backend={self.backend!r}, frames={m.num_frames}, '
                f'fps={m.fps:.3f}, size={m.height}x{m.width})')

    # reading --------------------------------------------------------------------------------------------------------

    def _read_sorted(self, indices: np.ndarray) -> np.ndarray:
        """Decode sorted unique in-range indices; backend errors become VideoDecodeError."""
        if self._backend is None:
            raise ValueError(f'{self!r} is closed')
        try:
            return self._backend.read(indices)
        except VideoDecodeError:
            raise
        except Exception as e:
            raise VideoDecodeError(
                self.path, f'decoding frames {int(indices[0])}..{int(indices[-1])} failed, the file may be truncated '
                           f'or corrupt ({type(e).__name__}: {_last_line(e)})') from None

    def clip_indices(self, indices) -> np.ndarray:
        """``indices`` as int64, clipped to ``[0, num_frames - 1]``: a clip running past the end repeats the last
        frame; indices never wrap and are never an error."""
        return np.clip(np.asarray(indices, dtype=np.int64), 0, self.num_frames - 1)

    def get_frames(self, indices) -> torch.Tensor:
        """Frames at the given indices, in the given order (repeats allowed).

        The requested frames are decoded once each, in ascending order, and gathered into the requested order.

        Args:
            indices: int array-like of any shape, e.g. (T,) or a sampler's (num_clips, clip_len); clipped to the video.

        Returns:
            uint8 tensor (*indices.shape, H, W, 3), RGB.
        """
        idx = self.clip_indices(indices)
        if idx.size == 0:
            return torch.empty((*idx.shape, self.meta.height, self.meta.width, 3), dtype=torch.uint8)
        unique, inverse = np.unique(idx.ravel(), return_inverse=True)
        frames = torch.from_numpy(self._read_sorted(unique))
        return frames[torch.from_numpy(inverse)].reshape(*idx.shape, *frames.shape[1:])

    def iter_windows(
            self,
            windows,
            *,
            transform: FrameTransform | None = None,
            frame_dim: int = 0,
            chunk_size: int = 16,
    ) -> Iterator[Window]:
        """Yield clips over the video, decoding (and transforming) every needed frame exactly once.

        Frames are decoded in ascending order in chunks of ``chunk_size``; a frame stays in the buffer until no later
        window needs it, so memory holds about one window span plus one chunk. The official extractor instead calls
        ``get_batch`` per window, which decodes again from the previous keyframe every time
        (docs/video_decoding.md#decode-once-cut-windows-from-a-buffer). The official TAD input::

            with VideoReader('video.mp4') as reader:
                sample = sliding_window_sample(reader.num_frames, clip_len=16, stride=4, fps=reader.fps)
                for w in reader.iter_windows(sample.indices, transform=squash_resize, frame_dim=1):
                    clip = w.frames  # (3, 16, 224, 224) float in [0, 1]

        Args:
            windows: (num_windows, clip_len) frame indices, e.g. ``sliding_window_sample(...).indices``. Clipped to the
                video. Windows must be ordered by their first (smallest) frame, as every sliding sampler produces.
            transform: applied once to each decoded chunk, uint8 (k, H, W, 3) -> a tensor whose dimension
                ``frame_dim`` has size k (e.g. :func:`~tasks.data.video.transforms.squash_resize` with ``frame_dim=1``
                gives the official TAD input (3, L, 224, 224) per window). Resizing here, not per window, resizes
                each frame once (docs/video_decoding.md: per-window resizing cost more than decoding).
            frame_dim: the frame dimension of the transform's output; windows are stacked along it.
            chunk_size: frames per decoder call (16-frame ``get_batch`` chunks were fastest for decord).

        Yields:
            :class:`Window` ``(index, frame_indices, frames)`` in window order.
        """
        win = self.clip_indices(windows)
        if win.ndim != 2:
            raise ValueError(f'windows must be (num_windows, clip_len), got shape {win.shape}')
        if chunk_size < 1:
            raise ValueError(f'chunk_size must be >= 1, got {chunk_size}')
        if len(win) == 0:
            return
        lo, hi = win.min(axis=1), win.max(axis=1)
        if np.any(np.diff(lo) < 0):
            bad = int(np.argmax(np.diff(lo) < 0)) + 1
            raise ValueError(f'windows must be sorted by first frame; window {bad} starts at {lo[bad]} '
                             f'before window {bad - 1} at {lo[bad - 1]}')
        needed = np.unique(win)
        buffer: dict[int, torch.Tensor] = {}
        order: deque[int] = deque()  # buffered frame indices, ascending
        pos = 0  # next position in `needed` to decode
        for w in range(len(win)):
            while pos < len(needed) and needed[pos] <= hi[w]:
                chunk = needed[pos:pos + chunk_size]
                frames = torch.from_numpy(self._read_sorted(chunk))
                if transform is not None:
                    frames = transform(frames)
                    if frames.shape[frame_dim] != len(chunk):
                        raise ValueError(f'transform output {tuple(frames.shape)} has {frames.shape[frame_dim]} '
                                         f'frames along dim {frame_dim}, expected {len(chunk)}')
                for j, f in enumerate(chunk.tolist()):
                    buffer[f] = frames.select(frame_dim, j)
                    order.append(f)
                pos += len(chunk)
            while order and order[0] < lo[w]:  # no window from w on needs these
                del buffer[order.popleft()]
            clip = torch.stack([buffer[f] for f in win[w].tolist()], dim=frame_dim)
            yield Window(w, win[w], clip)

    # lifetime -------------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the decoder (also done on garbage collection)."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
