"""Write uint8 RGB frames to an H.264 file with PyAV (synthetic benchmarks and test fixtures).

Lossy mode encodes ``libx264`` in yuv420p, the layout of real datasets, so decoders are exercised as they are in
production. Lossless mode encodes ``libx264rgb`` at qp 0 in RGB, so decoding gives back the exact input pixels (no
RGB -> YUV rounding, no chroma subsampling); tests that check frame order or pixel values use it.

The file is written atomically (:mod:`tasks.data.files`): an interrupted run never leaves a half-written video under
the final name.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from tasks.data.files import atomic_path

__all__ = ['write_video']


def _fps_fraction(fps: float) -> Fraction:
    """``fps`` as an exact rational for the container time base (29.97 -> 2997/100, 30000/1001 stays NTSC)."""
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f'fps must be a positive finite number, got {fps!r}')
    return Fraction(fps).limit_denominator(10_000)


def _check_frame(frame: np.ndarray, index: int, size: tuple[int, int] | None) -> np.ndarray:
    """Validate one (H, W, 3) uint8 frame against the first frame's size; returns it C-contiguous."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f'frame {index}: expected a uint8 (H, W, 3) RGB array, got {frame.dtype} {frame.shape}')
    h, w = frame.shape[:2]
    if size is None and (h % 2 or w % 2 or h == 0 or w == 0):
        # yuv420p stores chroma at half resolution, so x264 rejects odd sizes. Lossless mode would accept them, but one
        # rule for both modes keeps a fixture switchable between them.
        raise ValueError(f'frame size {h}x{w} (HxW) must be non-zero and even in both dimensions for H.264')
    if size is not None and (h, w) != size:
        raise ValueError(f'frame {index}: size {h}x{w} differs from the first frame {size[0]}x{size[1]}')
    return np.ascontiguousarray(frame)


def _iter_frames(frames: np.ndarray | Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4:
            raise ValueError(f'frames: expected a (T, H, W, 3) array, got shape {frames.shape}')
        yield from frames  # views, no copy of the whole video
    else:
        yield from frames


def write_video(
        path: str | os.PathLike,
        frames: np.ndarray | Iterable[np.ndarray],
        fps: float,
        *,
        crf: int = 18,
        gop: int | None = None,
        lossless: bool = False,
        threads: int = 1,
        preset: str = 'medium',
) -> Path:
    """Encode RGB frames to an H.264 video.

    Args:
        path: destination file; the extension picks the container (``.mp4``, ``.mkv``, ``.avi`` ...). Missing parent
            folders are created.
        frames: uint8 RGB frames, either one (T, H, W, 3) array or an iterable of (H, W, 3) arrays (consumed once, so
            a generator streams a long video without holding it in memory). H and W must be even.
        fps: constant frame rate; frame i gets timestamp i / fps.
        crf: x264 constant rate factor for lossy mode (0-51, lower is better; 18 is visually lossless). Ignored when
            ``lossless``.
        gop: if given, a keyframe exactly every ``gop`` frames (x264 ``keyint=min-keyint=gop``, scene-cut detection
            off), so seek costs are predictable in benchmarks; ``None`` keeps x264's defaults (keyint 250, scene cuts).
        lossless: encode with ``libx264rgb`` at qp 0 in RGB, so decoding returns the input exactly.
        threads: x264 threads. x264's output depends on its thread count, and its default (1.5 x the CPUs this
            process may use) differs between machines, containers and CPU-pinned workers; the default 1 makes the
            same frames give the same bytes everywhere. 0 lets x264 choose (faster, machine-dependent files).
        preset: x264 speed preset (``ultrafast`` ... ``veryslow``); faster presets make bigger files, not worse
            frames at a given crf. Lossy mode also turns x264's macroblock tree off (``mbtree=0``): with it the same
            frames gave different bitstreams on repeated encodes at most frame sizes (seen at 64x48 and 160x120).

    Returns:
        The final path of the written file.

    Raises:
        ValueError: bad frames (wrong dtype/shape, odd or changing size, none at all) or bad ``fps``/``crf``/``gop``.
            Nothing is left on disk.
    """
    import av  # lazily, so that importing tasks.data.video stays cheap

    rate = _fps_fraction(fps)
    options = _x264_options(crf=crf, gop=gop, lossless=lossless, threads=threads, preset=preset)
    it = _iter_frames(frames)
    try:
        first = next(it)
    except StopIteration:
        raise ValueError(f'no frames to write to {str(path)!r}') from None
    first = _check_frame(first, 0, None)
    # the container closes (and flushes) before atomic_path renames the file
    with atomic_path(path) as tmp, av.open(str(tmp), mode='w', format=_container_format(Path(path))) as container:
        stream = container.add_stream('libx264rgb' if lossless else 'libx264', rate=rate)
        stream.height, stream.width = first.shape[:2]
        stream.pix_fmt = 'rgb24' if lossless else 'yuv420p'
        stream.options = options
        _encode(container, stream, rate, first, it)
    return Path(path)


def _x264_options(*, crf: int, gop: int | None, lossless: bool, threads: int, preset: str) -> dict[str, str]:
    """The encoder options of :func:`write_video` (its arguments of the same names), validated."""
    if not lossless and not 0 <= crf <= 51:
        raise ValueError(f'crf must be in [0, 51], got {crf}')
    if gop is not None and gop < 1:
        raise ValueError(f'gop must be >= 1, got {gop}')
    if threads < 0:
        raise ValueError(f'threads must be >= 0 (0: automatic), got {threads}')
    options = {'qp': '0'} if lossless else {'crf': str(crf)}
    options['threads'] = str(threads)
    options['preset'] = preset
    params = [] if lossless else ['mbtree=0']
    if gop is not None:
        params.append(f'keyint={gop}:min-keyint={gop}:scenecut=0')
    if params:
        options['x264-params'] = ':'.join(params)
    return options


def _encode(container: Any, stream: Any, rate: Fraction, first: np.ndarray, rest: Iterator[np.ndarray]) -> None:
    """Encode ``first`` and every frame of ``rest`` (checked against its size), then flush the encoder."""
    import av

    def encode(arr: np.ndarray, index: int) -> None:
        frame = av.VideoFrame.from_ndarray(arr, format='rgb24')
        frame.pts = index  # in units of 1/fps (the stream time base PyAV derives from `rate`)
        frame.time_base = 1 / rate
        for packet in stream.encode(frame):
            container.mux(packet)

    encode(first, 0)
    for n, arr in enumerate(rest, start=1):
        encode(_check_frame(arr, n, first.shape[:2]), n)
    for packet in stream.encode(None):  # flush the encoder's look-ahead
        container.mux(packet)


def _container_format(path: Path) -> str | None:
    """FFmpeg muxer for the destination suffix (the temporary name ends in ``.tmp<suffix>`` too; being explicit keeps
    the ``.tmp`` part from confusing format guessing)."""
    return {'.mp4': 'mp4', '.m4v': 'mp4', '.mov': 'mov', '.mkv': 'matroska', '.avi': 'avi'}.get(path.suffix.lower())
