"""Real encoders for the video tests: small clips in the codecs and containers that public datasets ship, written with
the encoders PyAV bundles (libx264, libx265, libvpx-vp9, SVT-AV1, mpeg4, mjpeg; aac and opus audio).

Every clip shows :func:`scene`: a diagonal brightness ramp (so any rotation or mirroring of the picture is visible)
under stripes that scroll 2 pixels a frame (so every pixel changes between frames and a decoded frame can only match
the source frame of its own index) and a square that moves across. The tests compare decoded frames with these
source frames, the independent truth.

:func:`write_clips` encodes in a child process: decord loads its bundled FFmpeg 4.1 libraries with RTLD_GLOBAL, and
once it is imported PyAV's VP9 encoder binds to decord's older libvpx and fails to open ("Invalid argument").
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

H, W = 64, 96  # stored frame size; W * 3 = 288 bytes per RGB row is 32-byte aligned, which decord needs


def scene(n: int, h: int = H, w: int = W) -> np.ndarray:
    """uint8 (n, h, w, 3) RGB frames of moderate colour, like camera footage (see the module docstring)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    ramp = 50 + 110 * (0.65 * x / w + 0.35 * y / h)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        luma = ramp + 30 * np.sin(2 * np.pi * (x + 2 * i) / 24)
        rgb = np.stack([luma + 20 * np.sin(2 * np.pi * y / h), luma, luma + 20 * np.cos(2 * np.pi * x / w)], -1)
        cy, cx = (3 + 2 * i) % (h - 14), (4 + 3 * i) % (w - 14)
        rgb[cy:cy + 12, cx:cx + 12] = (225, 205, 175)
        rgb[cy + 4:cy + 8, cx + 4:cx + 8] = (30, 30, 40)
        out[i] = np.clip(np.round(rgb), 0, 255)
    return out


@dataclass(frozen=True)
class Clip:
    """How to encode one test clip.

    Attributes:
        codec: PyAV encoder name; pix_fmt: what it encodes; fps: nominal rate (the stream's rate and time base).
        options: encoder options; codec_tag: the fourcc to write (e.g. 'XVID' in AVI); audio: an audio encoder to
        add a second stream with; rotation: degrees clockwise a player must turn the picture (display matrix);
        mirrored: the display matrix also mirrors it; pts: explicit presentation times in units of ``time_base``
        (variable frame rate); frames: number of frames; size: (H, W); muxer: container options.
    """

    codec: str
    pix_fmt: str = 'yuv420p'
    fps: Fraction = Fraction(25)
    options: dict[str, str] = field(default_factory=dict)
    codec_tag: str | None = None
    audio: str | None = None
    rotation: int = 0
    mirrored: bool = False
    pts: tuple[int, ...] | None = None
    time_base: Fraction | None = None
    frames: int = 30
    size: tuple[int, int] = (H, W)
    muxer: dict[str, str] = field(default_factory=dict)

    def timestamps(self) -> np.ndarray:
        """The presentation time of every frame in seconds, relative to the first: the truth for ``timestamps``."""
        if self.pts is None:
            return np.arange(self.frames) / float(self.fps)
        pts = np.asarray(self.pts, dtype=np.float64)
        return (pts - pts[0]) * float(self.time_base)


X264 = {'crf': '14', 'threads': '1', 'bf': '3'}  # B-frames, so decode order differs from presentation order

#: name -> clip: one per container and codec that public datasets ship, plus display rotations and variable rates
CLIPS: dict[str, Clip] = {
    'ssv2_vp9.webm': Clip('libvpx-vp9', fps=Fraction(12), audio='libopus',
                          options={'crf': '12', 'b': '0', 'deadline': 'good', 'cpu-used': '5', 'threads': '1'}),
    'ucf_xvid.avi': Clip('mpeg4', fps=Fraction(30000, 1001), codec_tag='XVID',
                         options={'qmin': '1', 'qmax': '3', 'bf': '2'}),
    'hmdb_mpeg4.avi': Clip('mpeg4', fps=Fraction(30000, 1001), options={'qmin': '1', 'qmax': '3'}),
    'h264_bframes_aac.mp4': Clip('libx264', audio='aac', options=X264),
    'h264.mkv': Clip('libx264', options=X264),
    # the index (moov) in front, as web downloads have it
    'h264_faststart.mp4': Clip('libx264', options=X264, muxer={'movflags': 'faststart'}),
    'hevc.mp4': Clip('libx265', options={'crf': '14', 'x265-params': 'log-level=error:pools=1:frame-threads=1'}),
    'av1.mp4': Clip('libsvtav1', options={'crf': '12', 'preset': '12'}),
    'h264_10bit.mp4': Clip('libx264', pix_fmt='yuv420p10le', options=X264),
    'mjpeg.avi': Clip('mjpeg', pix_fmt='yuvj420p', options={'qmin': '1', 'qmax': '3'}),
    'gray.mkv': Clip('libx264', pix_fmt='gray', options=X264),
    'yuv444_odd.mp4': Clip('libx264', pix_fmt='yuv444p', size=(47, 95), options=X264),
    'five_frames.mp4': Clip('libx264', frames=5, options=X264),
    'rot90.mp4': Clip('libx264', rotation=90, options=X264),
    'rot180.mp4': Clip('libx264', rotation=180, options=X264),
    'rot270.mp4': Clip('libx264', rotation=270, options=X264),
    'rot90.mkv': Clip('libx264', rotation=90, options=X264),
    'rot180.webm': Clip('libvpx-vp9', rotation=180, options={'crf': '12', 'b': '0', 'cpu-used': '8'}),
    'mirrored.mp4': Clip('libx264', mirrored=True, options=X264),
    # 20 frames at 25 fps, then 20 at 12.5 fps (the phone video, shortened)
    'vfr_two_rates.mp4': Clip('libx264', frames=40, options=X264, time_base=Fraction(1, 90000),
                              pts=tuple(3600 * i for i in range(20)) + tuple(72000 + 7200 * i for i in range(20))),
    # 30 fps with every timestamp up to 0.3 frame periods off the ideal clock (a phone's capture jitter)
    'vfr_jitter.mp4': Clip('libx264', frames=40, options=X264, time_base=Fraction(1, 90000),
                           pts=tuple(int(3000 * i + j) for i, j in enumerate(
                               np.random.default_rng(7).uniform(-900, 900, 40).round()))),
}


def encode(path: Path, clip: Clip) -> np.ndarray:
    """Write ``clip`` to ``path``; returns the source frames, (frames, H, W, 3) uint8 RGB."""
    import av

    frames = scene(clip.frames, *clip.size)
    time_base = clip.time_base or 1 / clip.fps
    with av.open(str(path), 'w', options=clip.muxer) as container:
        stream = container.add_stream(clip.codec, rate=clip.fps)
        stream.height, stream.width = clip.size
        stream.pix_fmt = clip.pix_fmt
        stream.options = dict(clip.options)
        stream.codec_context.time_base = time_base
        if clip.codec_tag:
            stream.codec_tag = clip.codec_tag
        if clip.rotation or clip.mirrored:
            stream.set_display_rotation(-clip.rotation, hflip=clip.mirrored)  # PyAV counts counterclockwise
        audio = container.add_stream(clip.audio, rate=48000) if clip.audio else None
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format='rgb24')
            frame.pts = clip.pts[i] if clip.pts else i
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if audio is not None:
            _encode_tone(container, audio, seconds=float(clip.timestamps()[-1]) + 0.1)
    return frames


def _encode_tone(container, stream, seconds: float) -> None:
    """A 440 Hz mono tone of ``seconds`` into the audio ``stream``."""
    import av

    rate, size = 48000, stream.codec_context.frame_size or 1024
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(int(rate * seconds)) / rate)).astype(np.float32)
    for start in range(0, len(tone) - size + 1, size):
        frame = av.AudioFrame.from_ndarray(tone[None, start:start + size], format='fltp', layout='mono')
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_audio_only(path: Path, codec: str = 'aac', seconds: float = 1.0) -> Path:
    """An audio-only file (e.g. an ``.mp4`` / ``.m4a`` with one aac stream)."""
    import av

    with av.open(str(path), 'w') as container:
        _encode_tone(container, container.add_stream(codec, rate=48000), seconds)
    return path


def write_clips(folder: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Encode ``names`` (default: all of :data:`CLIPS`) into ``folder`` in a child process without decord (see the
    module docstring); returns name -> path. The source frames are ``scene(clip.frames, *clip.size)``."""
    names = list(CLIPS) if names is None else names
    subprocess.run([sys.executable, __file__, str(folder), *names], check=True, capture_output=True)
    return {name: folder / name for name in names}


if __name__ == '__main__':
    for name in sys.argv[2:]:
        encode(Path(sys.argv[1]) / name, CLIPS[name])
