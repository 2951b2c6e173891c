"""Shared video layer: decode, sample, transform and write videos for every downstream task.

:class:`VideoReader` reads frames by index or as sliding windows that decode each frame once (decord or PyAV,
``backend='auto'`` picking per file), as a player shows them, with the container's timestamps;
the samplers (:func:`dense_sample`, :func:`segment_sample`, :func:`sliding_window_sample`, :func:`keyframe_sample`)
turn a frame count into clip indices plus the metadata later stages need (:class:`ClipSample`);
:mod:`.transforms` holds batched torch transforms; :func:`write_video` encodes H.264 files for the synthetic
benchmarks and tests. Every problem with a video file surfaces as one exception, :class:`VideoDecodeError`.
"""
from . import transforms
from .errors import VideoDecodeError
from .reader import BACKENDS, VideoMeta, VideoReader, Window
from .sampling import (
    ClipSample, dense_sample, frames_at_rate, keyframe_sample, segment_sample, sliding_window_sample,
)
from .writer import write_video

__all__ = [
    'BACKENDS', 'VideoDecodeError', 'VideoReader', 'VideoMeta', 'Window', 'ClipSample', 'dense_sample',
    'segment_sample', 'sliding_window_sample', 'keyframe_sample', 'frames_at_rate', 'write_video', 'transforms',
]
