"""What a video file holds, read once with PyAV before a decoder opens it.

:func:`probe_video` says why a file is not a usable video (empty, not a video container, audio only, truncated), and
for a usable one indexes the video stream from its packets: the presentation timestamps of every frame, the
keyframes, and the display orientation (the container's display matrix, which a player applies). Both backends decode
from this one index, so they agree on the frame count and the timestamps by construction
(docs/video_decoding.md#video-formats).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import VideoDecodeError

__all__ = ['ALL_ORIENTATIONS', 'Orientation', 'VideoProbe', 'decord_orientation', 'frame_rate_deviation',
           'orientation_from_matrix', 'probe_video']

_log = logging.getLogger(__name__)

# FFmpeg renders these "codecs" from plain text files (its tty demuxer takes almost any text)
_TEXT_CODECS = ('ansi', 'bintext', 'xbin', 'idf', 'tty')
# top-level ISO-BMFF (MP4 / QuickTime) box types that may open a file
_MP4_FIRST_BOXES = (b'ftyp', b'moov', b'mdat', b'free', b'wide', b'skip', b'pnot')


@dataclass(frozen=True)
class Orientation:
    """How a stored frame is turned into the picture a player shows (FFmpeg's display matrix).

    Attributes:
        rotation: degrees clockwise (0, 90, 180 or 270) the stored picture is turned to show it upright. This is
            the number in the MP4 ``rotate`` tag and in phone metadata; FFmpeg's ``av_display_rotation_get`` and
            PyAV's ``VideoFrame.rotation`` report the same turn counterclockwise (e.g. -90 for 90).
        mirrored: the stored picture is mirrored left-right before it is rotated.
    """

    rotation: int = 0
    mirrored: bool = False

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """Stored frames (..., H, W, C) -> displayed frames (a view; 90 and 270 swap H and W)."""
        out = frames[..., ::-1, :] if self.mirrored else frames
        return np.rot90(out, (-self.rotation // 90) % 4, axes=(-3, -2))  # np.rot90 turns counterclockwise

    def correction_after(self, applied: Orientation) -> Orientation:
        """The orientation that turns frames already turned by ``applied`` into this one."""
        grid = np.arange(6).reshape(2, 3, 1)  # no symmetry, so exactly one candidate matches
        want, have = self.apply(grid), applied.apply(grid)
        return next(o for o in ALL_ORIENTATIONS if np.array_equal(o.apply(have), want))


ALL_ORIENTATIONS = tuple(Orientation(r, m) for m in (False, True) for r in (0, 90, 180, 270))


def orientation_from_matrix(matrix) -> Orientation | None:
    """The orientation of FFmpeg's 3x3 display matrix (9 ints, 16.16 fixed point, row-major), or None when it is not
    a multiple of 90 degrees (FFmpeg then rotates by an arbitrary angle; we do not).

    FFmpeg maps a source pixel (x, y) to the displayed (a x + c y, b x + d y) with a, b, c, d = matrix[0, 1, 3, 4]
    (libavutil/display.h), after normalising each column to unit length as ``av_display_rotation_get`` does.
    """
    a, b, c, d = (float(matrix[i]) for i in (0, 1, 3, 4))
    sx, sy = math.hypot(a, c), math.hypot(b, d)
    if sx == 0 or sy == 0:
        return None
    unit = [a / sx, b / sy, c / sx, d / sy]
    if any(min(abs(v), abs(abs(v) - 1)) > 1e-3 for v in unit):
        return None
    a, b, c, d = (round(v) for v in unit)
    ys, xs = np.mgrid[0:2, 0:3]
    xd, yd = a * xs + c * ys, b * xs + d * ys
    xd, yd = xd - xd.min(), yd - yd.min()
    if (xd.max() + 1) * (yd.max() + 1) != 6:  # two source pixels on one displayed pixel: not a right angle
        return None
    shown = np.empty((yd.max() + 1, xd.max() + 1, 1), dtype=int)
    shown[yd, xd, 0] = np.arange(6).reshape(2, 3)
    grid = np.arange(6).reshape(2, 3, 1)
    return next((o for o in ALL_ORIENTATIONS if np.array_equal(o.apply(grid), shown)), None)


def decord_orientation(matrix, container: str) -> Orientation:
    """What decord 0.6 applies itself: the rotation part only (a mirrored matrix comes out rotated, not mirrored),
    and only where its bundled FFmpeg 4.1 exports a display matrix, MP4/QuickTime (not Matroska/WebM, whose matrix
    newer FFmpeg reads). decord turns by ``int(-av_display_rotation_get)`` when that is 90, 180 or 270 (its
    ``VideoReader::GetRotation``); tests/data/video checks this model against decord."""
    if matrix is None or 'mov' not in container.split(','):
        return Orientation()
    sx, sy = math.hypot(matrix[0], matrix[3]), math.hypot(matrix[1], matrix[4])
    if sx == 0 or sy == 0:
        return Orientation()
    theta = math.atan2(matrix[1] / sy, matrix[0] / sx) * 180 / math.pi % 360  # clockwise, as decord computes it
    return Orientation(int(theta)) if int(theta) in (90, 180, 270) else Orientation()


def frame_rate_deviation(timestamps: np.ndarray) -> float:
    """The largest distance of a frame's timestamp from a constant-rate timeline through the first and last frame
    (frame i at i x the average period), in average frame periods; 0 for fewer than three frames."""
    n = len(timestamps)
    if n < 3 or timestamps[-1] <= timestamps[0]:
        return 0.0
    period = (timestamps[-1] - timestamps[0]) / (n - 1)
    ideal = timestamps[0] + np.arange(n) * period
    return float(np.abs(timestamps - ideal).max() / period)


@dataclass(frozen=True)
class VideoProbe:
    """The video stream of a file as its packets describe it (see :func:`probe_video`).

    Attributes:
        path: the file.
        container: FFmpeg's demuxer name (``'mov,mp4,m4a,3gp,3g2,mj2'``, ``'matroska,webm'``, ``'avi'`` ...).
        codec: FFmpeg's name of the video codec (``'h264'``, ``'vp9'``, ``'av1'`` ...).
        stream_index: the video stream read.
        pts: (N,) int64 presentation timestamps of the frames in presentation order, in ``time_base`` units.
        time_base: seconds per ``pts`` unit.
        keyframes: int64 indices (into ``pts``) of the keyframes.
        timestamps: (N,) float64 seconds of the frames, relative to the first frame.
        fps: the average frame rate.
        stored_size: (height, width) of the decoded frames before orientation.
        orientation: what a player does to show them; ``display_matrix`` is the raw matrix (None without one).
    """

    path: Path
    container: str
    codec: str
    stream_index: int
    pts: np.ndarray = field(repr=False)
    time_base: Fraction
    keyframes: np.ndarray = field(repr=False)
    timestamps: np.ndarray = field(repr=False)
    fps: float
    stored_size: tuple[int, int]
    orientation: Orientation
    display_matrix: tuple[int, ...] | None = field(default=None, repr=False)

    @property
    def num_frames(self) -> int:
        return len(self.pts)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the displayed frames."""
        h, w = self.stored_size
        return (w, h) if self.orientation.rotation in (90, 270) else (h, w)


def probe_video(path: str | Path) -> VideoProbe:
    """Open ``path`` with PyAV, index its video stream from the packets and decode the first frame.

    Raises:
        VideoDecodeError: with a reason naming what the file is: ``file does not exist``, ``empty file (0 bytes)``,
            ``not a video container (...)``, ``no video stream (the file has only audio: aac)``, ``truncated: ...``,
            or a stream that has no frames or whose first frame does not decode.
    """
    import av

    path = Path(path)
    _check_file(path)
    try:
        container = av.open(str(path))
    except Exception as e:  # av.error.InvalidDataError for non-videos and MP4s without their index, OSError ...
        raise VideoDecodeError(path, _unopenable_reason(path, e)) from None
    with container:
        stream = _video_stream(path, container)
        truncation = _mp4_truncation(path) if _container_kind(path) == 'MP4' else None
        if truncation:
            raise VideoDecodeError(path, f'truncated: {truncation}')
        pts, keyframes, first = _index(path, container, stream)
        matrix = _display_matrix(first)
        time_base = stream.time_base or Fraction(1, 1)
        timestamps = (pts - pts[0]).astype(np.float64) * (time_base.numerator / time_base.denominator)
        orientation = orientation_from_matrix(matrix) if matrix is not None else Orientation()
        if orientation is None:
            _log.warning('%s: the display matrix %s does not turn by a multiple of 90 degrees; frames are returned '
                         'as stored', path, matrix)
            orientation = Orientation()
        return VideoProbe(
            path=path, container=container.format.name, codec=stream.codec_context.codec.canonical_name,
            stream_index=stream.index, pts=pts, time_base=time_base, keyframes=keyframes, timestamps=timestamps,
            fps=_average_fps(path, stream.average_rate, timestamps), stored_size=(first.height, first.width),
            orientation=orientation, display_matrix=matrix)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoDecodeError(path, 'file does not exist')
    if not path.is_file():
        raise VideoDecodeError(path, 'not a regular file')
    if path.stat().st_size == 0:
        raise VideoDecodeError(path, 'empty file (0 bytes)')


def _container_kind(path: Path) -> str | None:
    """The container a file's first bytes announce: 'MP4', 'Matroska/WebM', 'AVI', or None."""
    with open(path, 'rb') as f:
        head = f.read(12)
    if head[4:8] in _MP4_FIRST_BOXES:
        return 'MP4'
    if head[:4] == b'\x1a\x45\xdf\xa3':
        return 'Matroska/WebM'
    if head[:4] == b'RIFF' and head[8:12] == b'AVI ':
        return 'AVI'
    return None


def _mp4_truncation(path: Path) -> str | None:
    """Why an MP4 is cut short, from its top-level boxes (size + type headers), or None when they are complete."""
    size = path.stat().st_size
    seen = []
    with open(path, 'rb') as f:
        offset = 0
        while offset + 8 <= size:
            f.seek(offset)
            header = f.read(16)
            length, kind = int.from_bytes(header[:4], 'big'), header[4:8].decode('latin-1')
            if length == 1 and len(header) == 16:  # 64-bit size follows the type
                length = int.from_bytes(header[8:16], 'big')
            elif length == 0:  # the box runs to the end of the file
                length = size - offset
            if length < 8:
                return None  # not a box structure we understand; let FFmpeg judge
            if offset + length > size:
                return (f"the '{kind}' box at byte {offset} declares {length} bytes but the file ends after "
                        f'{size - offset}')
            seen.append(kind)
            offset += length
    if 'moov' not in seen:
        return "no 'moov' box (the MP4 index, which encoders write last), so the file was cut short"
    return None


def _unopenable_reason(path: Path, error: Exception) -> str:
    detail = f'{type(error).__name__}: {getattr(error, "strerror", None) or error}'
    kind = _container_kind(path)
    if kind is None:
        return f'not a video container (FFmpeg recognises no media format in it; {detail})'
    truncation = _mp4_truncation(path) if kind == 'MP4' else None
    if truncation:
        return f'truncated: {truncation}'
    return f'truncated or corrupt {kind} file (its header is there but FFmpeg cannot read it; {detail})'


def _video_stream(path: Path, container):
    """The video stream a player shows (FFmpeg's best), skipping cover pictures of audio files."""
    import av

    videos = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not videos:
        audio = [s.codec_context.name if s.codec_context else '?' for s in container.streams.audio]
        if audio:
            return _fail(path, f'no video stream (the file has only audio: {", ".join(audio)})')
        kinds = sorted({s.type for s in container.streams})
        return _fail(path, f'no video stream (streams: {", ".join(kinds) or "none"})')
    best = container.streams.best('video')
    stream = best if best in videos else videos[0]
    if stream.codec_context is None:
        _fail(path, f'no decoder for its video codec ({stream.codec.name}) in the FFmpeg that PyAV bundles')
    if stream.codec_context.codec.canonical_name in _TEXT_CODECS:
        _fail(path, f'not a video container (FFmpeg reads it as text: {stream.codec_context.codec.canonical_name})')
    return stream


def _fail(path: Path, reason: str):
    raise VideoDecodeError(path, reason)


def _index(path: Path, container, stream) -> tuple[np.ndarray, np.ndarray, object]:
    """Sorted presentation timestamps, keyframe indices and the first decoded frame, in one pass over the packets.

    Packets the demuxer marks as discarded (before an MP4 edit list's start) yield no frame and are not counted.
    B-frames make decode order differ from presentation order, hence the sort.
    """
    pts, key_pts, first, last_corrupt, decode_error = [], [], None, False, None
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the demuxer's flush packet
                continue
            if first is None:
                try:  # a stream cut mid-GOP may start with packets that do not decode; the first frame counts
                    first = next(iter(stream.decode(packet)), None)
                except Exception as e:  # av.error.InvalidDataError ...
                    decode_error = e
            last_corrupt = packet.is_corrupt
            if packet.is_discard:
                continue
            t = packet.pts if packet.pts is not None else packet.dts
            if t is None:
                _fail(path, 'packets carry no timestamps; cannot index frames')
            pts.append(t)
            if packet.is_keyframe:
                key_pts.append(t)
        if first is None:
            first = next(iter(stream.decode(None)), None)  # frames held back by the decoder (B-frame delay)
    except VideoDecodeError:
        raise
    except Exception as e:
        raise VideoDecodeError(path, f'PyAV could not read its packets or first frame ({type(e).__name__}: {e}), '
                                     'the file may be truncated or corrupt') from None
    if last_corrupt:
        _fail(path, 'truncated: the last packet is cut short (FFmpeg: partial file)')
    if not pts:
        _fail(path, 'the video stream has no frames')
    if first is None:
        why = f' ({type(decode_error).__name__}: {decode_error})' if decode_error is not None else ''
        _fail(path, f'no frame of the video stream decodes{why}')
    order = np.sort(np.asarray(pts, dtype=np.int64))
    position = {int(t): i for i, t in enumerate(order)}
    keys = np.asarray(sorted(position[int(t)] for t in key_pts), dtype=np.int64)
    return order, keys, first


def _display_matrix(frame) -> tuple[int, ...] | None:
    """The frame's display matrix (FFmpeg copies the stream's onto every decoded frame), or None."""
    try:
        data = bytes(frame.side_data['DISPLAYMATRIX'])
    except (KeyError, TypeError, ValueError):
        return None
    return tuple(int(v) for v in np.frombuffer(data[:36], dtype='<i4')) if len(data) >= 36 else None


def _average_fps(path: Path, rate: Fraction | None, timestamps: np.ndarray) -> float:
    """The container's average rate if it is usable, else the mean rate of the timestamps (0/0 rates exist)."""
    if rate is not None and np.isfinite(float(rate)) and float(rate) > 0:
        return float(rate)
    if len(timestamps) > 1 and timestamps[-1] > timestamps[0]:
        return (len(timestamps) - 1) / float(timestamps[-1] - timestamps[0])
    raise VideoDecodeError(path, 'the container reports no frame rate and the timestamps do not give one')
