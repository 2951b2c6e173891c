"""Frame-accurate video reading with decord or PyAV behind one interface; ``backend='auto'`` (the default) picks
decord where it can read the file and PyAV where it cannot (docs/video_decoding.md#video-formats).

Random access (:meth:`VideoReader.get_frames`) serves the few frames per clip of classification and AVA; sliding
windows (:meth:`VideoReader.iter_windows`) serve whole untrimmed videos for temporal localization and decode each
frame once (docs/video_decoding.md#decode-once-cut-windows-from-a-buffer). Indices are 0-based presentation order,
clipped to the video; frames come as a player shows them (the container's display matrix applied), and every
failure to open or decode a file raises :class:`~tasks.data.video.errors.VideoDecodeError` naming the file and the
reason.
"""
from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch

from .errors import VideoDecodeError
from .probe import Orientation, VideoProbe, decord_orientation, frame_rate_deviation, probe_video

try:
    import decord

    _HAS_DECORD = True
except ImportError:  # decord has no wheels for some platforms (e.g. macOS arm64); PyAV still works
    decord = None
    _HAS_DECORD = False

__all__ = ['BACKENDS', 'Backend', 'Decoder', 'VideoMeta', 'VideoReader', 'Window']

Backend = Literal['auto', 'decord', 'pyav']
Decoder = Literal['decord', 'pyav']
BACKENDS: tuple[Backend, ...] = ('auto', 'decord', 'pyav')
FrameTransform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class VideoMeta:
    """What the container says about the video stream.

    Attributes:
        path: the video file.
        backend: the decoder that read it, ``'decord'`` or ``'pyav'`` (what ``'auto'`` chose).
        num_frames: frames in the stream, counted from the container's packets (not the header's estimate).
        fps: the stream's average frame rate; for a variable-frame-rate video use ``timestamps`` instead.
        timestamps: (num_frames,) float64 presentation time of every frame in seconds, from the container's
            timestamps, relative to the first frame (so the first is 0). Both backends report the same.
        duration: seconds covered by the frames: last timestamp - first timestamp + one average frame period.
        height: height of the frames as shown (after ``rotation``), in pixels.
        width: width of the frames as shown, in pixels.
        codec: FFmpeg's name of the video codec (``'h264'``, ``'vp9'``, ``'av1'`` ...).
        rotation: degrees clockwise (0, 90, 180, 270) the stored frames were turned to show them as a player does,
            from the container's display matrix (the MP4 ``rotate`` tag of phone videos).
        mirrored: the display matrix also mirrors the picture (applied before ``rotation``; rare).
        variable_frame_rate: some frame's timestamp is more than half an average frame period away from a constant
            rate (frame i at i / fps), so frame indices do not give times; use ``timestamps``.
    """

    path: Path
    backend: Decoder
    num_frames: int
    fps: float
    timestamps: np.ndarray = field(repr=False)
    duration: float
    height: int
    width: int
    codec: str
    rotation: int
    mirrored: bool
    variable_frame_rate: bool


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
# backends: each decodes a sorted, unique, in-range int64 array of frame indices of a probed video (probe.py) into a
# uint8 (k, H, W, 3) array of displayed frames
# --------------------------------------------------------------------------------------------------------------------

class _DecordUnusable(Exception):
    """decord cannot read a file that PyAV reads (``reason`` says why); ``backend='auto'`` then uses PyAV."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _decord_open_failure(probe: VideoProbe, error: Exception) -> str:
    message = _last_line(error)
    if 'cannot find video stream' in message:  # av_find_best_stream found no stream with a decoder
        return f'the codec {probe.codec!r} is not supported by decord (its bundled FFmpeg has no decoder for it)'
    return f'decord cannot open it ({type(error).__name__}: {message})'


class _DecordBackend:
    """decord ``VideoReader``, cleared after each read so that it decodes nothing while the caller works.

    decord 0.6's ``NextFrame`` pushes another packet whenever its decoder thread has not produced a frame yet, so a
    read leaves thousands of packets queued (every packet of a short video), and the decoder thread turns them all
    into RGB frames while the caller works: with a slow consumer, extraction grew by gigabytes, more on a longer video
    (docs/video_decoding.md#decord-memory). The reader therefore calls :meth:`clear` (``seek(0)`` stops decord's
    decoder thread and drops its queues; ``resets`` counts the calls) before it hands frames back. That costs two
    container seeks, and no decoding when the next read starts at a keyframe, where decord's accurate seek lands
    anyway; so a sequential reader reads whole GOPs at a time (:meth:`span`), at least ``min_read`` frames and at
    most ``max_read`` (what it holds). A GOP longer than ``max_read`` is read in pieces without clearing in between
    (clearing would decode again from its keyframe), so decord can decode ahead there; that is logged once per file.
    """

    min_read = 64
    max_read = 300
    name: Decoder = 'decord'

    def __init__(self, probe: VideoProbe, num_threads: int):
        if not _HAS_DECORD:
            raise ImportError("backend='decord' needs decord: `pip install decord` (or use backend='pyav' or 'auto')")
        try:
            self._vr = decord.VideoReader(str(probe.path), ctx=decord.cpu(0), num_threads=num_threads)
            count = len(self._vr)
            self.keyframes = np.asarray(self._vr.get_key_indices(), dtype=np.int64)
            # decord has no size query: decode frame 0 once, then rewind (which also clears its queues)
            first = self._vr[0].asnumpy() if count else None
            self._vr.seek(0)
        except Exception as e:  # DECORDError, RuntimeError, AssertionError on a zero frame count
            self._vr = None
            raise _DecordUnusable(_decord_open_failure(probe, e)) from None
        if count != probe.num_frames:
            raise _DecordUnusable(f'decord counts {count} frames where the container has {probe.num_frames}')
        if first.shape[2:] != (3,):
            # decord hands out FFmpeg's padded RGB rows as extra "channels" when the padded row length is a multiple
            # of the width (e.g. widths 16, 32, 48), and get_batch then fails; say so instead of decoding garbage.
            raise _DecordUnusable(f'decord returns frames of shape {first.shape} for width {first.shape[1]} '
                                  '(a decord bug with padded RGB rows)')
        # decord turns some display matrices itself (probe.decord_orientation); turn the rest of the way here
        applied = decord_orientation(probe.display_matrix, probe.container)
        h, w = probe.stored_size
        expected = (w, h) if applied.rotation in (90, 270) else (h, w)
        if first.shape[:2] != expected:
            raise _DecordUnusable(f'decord returns {first.shape[0]}x{first.shape[1]} frames where '
                                  f'{expected[0]}x{expected[1]} were expected (display matrix {probe.display_matrix})')
        self._correction = probe.orientation.correction_after(applied)
        self._path = probe.path
        self.num_frames = count
        self.height, self.width = probe.size
        self.resets = 0
        self._said_long_gop = False

    def span(self, indices: np.ndarray, chunk_size: int) -> tuple[int, bool]:
        """How many of the ascending ``indices`` a sequential reader decodes in one read, and whether that read
        clears decord's queues at its end: up to the first GOP end ``min_read`` frames on, else the last GOP end
        within ``max_read`` frames, else (a longer GOP) ``max_read`` frames without clearing."""
        first = int(indices[0])
        ends = np.append(self.keyframes[self.keyframes > first], self.num_frames)  # where a GOP ends (exclusive)
        reach = ends - first
        far = ends[reach >= self.min_read]
        if len(far) and far[0] - first <= self.max_read:
            stop, clear = int(far[0]), True
        elif np.any(reach <= self.max_read):
            stop, clear = int(ends[reach <= self.max_read][-1]), True
        else:
            stop, clear = first + self.max_read, False
            if not self._said_long_gop:
                self._said_long_gop = True
                _log.warning('%s: keyframes more than %d frames apart; decord may decode ahead of the reader within '
                             "such GOPs (memory); backend='pyav' decodes only what is read", self._path, self.max_read)
        return max(1, int(np.searchsorted(indices, stop))), clear

    def read(self, indices: np.ndarray) -> np.ndarray:
        # 16-frame get_batch calls were the fastest (docs/video_decoding.md#decoders); back to back, so that decord's
        # decoder thread has no time to run ahead
        chunks = [self._vr.get_batch(indices[i:i + 16].tolist()).asnumpy() for i in range(0, len(indices), 16)]
        frames = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
        if self._correction != Orientation():
            frames = np.ascontiguousarray(self._correction.apply(frames))
        return frames

    def clear(self) -> None:
        """Drop what decord queued ahead and stop its decoder thread (see the class docstring)."""
        self._vr.seek(0)
        self.resets += 1

    def close(self) -> None:
        self._vr = None


class _PyAVBackend:
    """PyAV demux + decode with a persistent decoder position, so ascending reads never decode a frame twice; frames
    are turned as the display matrix says."""

    name: Decoder = 'pyav'

    def __init__(self, probe: VideoProbe, num_threads: int):
        import av

        self._path = probe.path
        try:
            self._container = av.open(str(probe.path))
        except Exception as e:  # the file changed since the probe
            raise VideoDecodeError(probe.path, f'PyAV cannot open it ({type(e).__name__}: {e})') from None
        stream = self._stream = self._container.streams[probe.stream_index]
        if num_threads != 1:
            stream.thread_type = 'AUTO'
            stream.codec_context.thread_count = num_threads  # 0: FFmpeg picks
        self._pts = probe.pts
        self._pts_to_index = {int(t): i for i, t in enumerate(probe.pts)}
        self.keyframes = probe.keyframes
        self.num_frames = probe.num_frames
        self._orientation = probe.orientation
        self.height, self.width = probe.size
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
                    out[j] = self._orientation.apply(frame.to_ndarray(format='rgb24'))
                    break
                if index > i:
                    raise VideoDecodeError(self._path, f'frame {i} was never decoded (the decoder jumped to {index})')
        return out

    def span(self, indices: np.ndarray, chunk_size: int) -> tuple[int, bool]:
        """One chunk per read: PyAV decodes only what is asked for, so it needs no read-ahead."""
        return min(chunk_size, len(indices)), True

    def clear(self) -> None:
        """Nothing to clear: PyAV decodes nothing ahead."""

    def close(self) -> None:
        self._frames = None
        self._container.close()


def _last_line(e: BaseException) -> str:
    """The message line of a backend error (decord's carry a log prefix and sometimes a stack dump before it)."""
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else type(e).__name__


_log = logging.getLogger(__name__)
# (path, size, mtime) -> why decord cannot read the file: backend='auto' decides once per file and process
_decord_unusable: dict[tuple[str, int, int], str] = {}
_said_decord_missing = False


def _open_decoder(probe: VideoProbe, backend: Backend, num_threads: int) -> _DecordBackend | _PyAVBackend:
    """The decoder for ``backend`` (docs/video_decoding.md#video-formats): ``'auto'`` falls back to PyAV, logging
    the reason once per file, where decord cannot read what PyAV has probed."""
    global _said_decord_missing
    if backend == 'pyav':
        return _PyAVBackend(probe, num_threads)
    if backend == 'auto' and not _HAS_DECORD:
        if not _said_decord_missing:
            _said_decord_missing = True
            _log.warning("decord is not installed: backend='auto' reads every video with PyAV")
        return _PyAVBackend(probe, num_threads)
    stat = probe.path.stat()
    key = (str(probe.path.resolve()), stat.st_size, stat.st_mtime_ns)
    if backend == 'auto' and key in _decord_unusable:
        return _PyAVBackend(probe, num_threads)
    try:
        return _DecordBackend(probe, num_threads)
    except _DecordUnusable as e:
        if backend == 'decord':
            raise VideoDecodeError(probe.path, f"{e.reason}; backend='pyav' or backend='auto' reads it") from None
        _decord_unusable[key] = e.reason
        _log.warning('%s: decord cannot read it (%s); backend=auto reads it with PyAV', probe.path, e.reason)
        return _PyAVBackend(probe, num_threads)


# --------------------------------------------------------------------------------------------------------------------
# the reader
# --------------------------------------------------------------------------------------------------------------------

class VideoReader:
    """Read frames of one video by index, or as sliding windows that decode each frame once.

    Open one reader per video and per process (decoders are not fork- or thread-safe); it is a context manager.

    Args:
        path: the video file.
        backend: ``'auto'`` (default): decord, what the official VideoMAE V2 code uses, where decord can read the
            file, else PyAV (a codec decord's FFmpeg lacks, such as AV1, or a container decord cannot index); the
            choice is made once per file and process and logged once (WARNING) with the reason. ``'decord'`` fails
            on such a file instead, saying why; ``'pyav'`` always uses PyAV. Every backend returns the same frames,
            frame count and timestamps for the same file; ``meta.backend`` says which decoder read it.
        num_threads: decoder threads. 1 (the official extractor's setting) keeps data-loader workers from
            oversubscribing the CPU; 0 lets FFmpeg choose.

    Raises:
        VideoDecodeError: the file is missing, empty, not a video container, has no video stream, is truncated, or
            has no frames; or (``backend='decord'``) decord cannot read it.
    """

    def __init__(self, path: str | os.PathLike, backend: Backend = 'auto', *, num_threads: int = 1):
        self.path = Path(path)
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {", ".join(map(repr, BACKENDS))}, got {backend!r}')
        self.backend: Backend = backend
        probe = probe_video(self.path)
        self._backend = _open_decoder(probe, backend, num_threads)
        ts = probe.timestamps
        self.meta = VideoMeta(
            path=self.path, backend=self._backend.name, num_frames=probe.num_frames, fps=probe.fps, timestamps=ts,
            duration=float(ts[-1] - ts[0]) + 1.0 / probe.fps, height=self._backend.height,
            width=self._backend.width, codec=probe.codec, rotation=probe.orientation.rotation,
            mirrored=probe.orientation.mirrored, variable_frame_rate=frame_rate_deviation(ts) > 0.5)

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
        """The backend at work (None once closed): ``read(sorted indices)`` -> (N, H, W, 3) uint8, ``keyframes``,
        ``span`` and ``clear`` (how far a sequential read goes, and ending it); PyAV's counts ``frames_decoded``,
        decord's the ``resets`` that cleared its read-ahead."""
        return self._backend

    def __len__(self) -> int:
        return self.meta.num_frames

    def __repr__(self) -> str:
        m = self.meta
        return (f'VideoReader({str(self.path)!r}, backend={self.backend!r} ({m.backend}), frames={m.num_frames}, '
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

    def _read_ahead(self, upcoming: np.ndarray, chunk_size: int, transform: FrameTransform | None,
                    frame_dim: int) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """``(indices, frames)`` chunks of the next read of ``upcoming`` (sorted indices still needed): the backend
        decodes as far as it says (:meth:`_DecordBackend.span`: whole GOPs) chunk by chunk, back to back, and is
        cleared before anything is transformed or yielded, so decord decodes nothing while the caller works
        (docs/video_decoding.md#decord-memory); each raw chunk is dropped once transformed."""
        if self._backend is None:
            raise ValueError(f'{self!r} is closed')
        count, clear = self._backend.span(upcoming, chunk_size)
        chunks = [upcoming[i:min(i + chunk_size, count)] for i in range(0, count, chunk_size)]
        raw = [self._read_sorted(chunk) for chunk in chunks]
        if clear:
            self._backend.clear()
        raw.reverse()
        for chunk in chunks:
            frames = torch.from_numpy(raw.pop())
            if transform is not None:
                frames = transform(frames)
                if frames.shape[frame_dim] != len(chunk):
                    raise ValueError(f'transform output {tuple(frames.shape)} has {frames.shape[frame_dim]} '
                                     f'frames along dim {frame_dim}, expected {len(chunk)}')
            yield chunk, frames

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
        self._backend.clear()  # so that decord decodes nothing ahead while the caller works
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
        window needs it, so memory holds about one window span plus one chunk; with decord, plus the rest of the GOPs
        being read (up to 300 frames), as decord must not be left decoding ahead between reads
        (docs/video_decoding.md#decord-memory). The official extractor instead calls
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
                for chunk, frames in self._read_ahead(needed[pos:], chunk_size, transform, frame_dim):
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
