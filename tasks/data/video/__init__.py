"""Shared video layer: decode, sample, transform and write videos for every downstream task.

* :class:`VideoReader` reads frames by index or as sliding windows that decode each frame once, with decord (the
  default, as in the official code) or PyAV behind the same interface, and exposes fps, frame count, duration and
  per-frame container timestamps (:class:`VideoMeta`).
* Samplers turn a frame count into clip indices plus the metadata needed later (:class:`ClipSample`):
  :func:`dense_sample` (Kinetics), :func:`segment_sample` (SSv2), :func:`sliding_window_sample` (temporal
  localization, ``official`` or ``centred``) and :func:`keyframe_sample` (AVA).
* :mod:`tasks.data.video.transforms` holds batched torch transforms (resize, crops, flip, normalisation, and the
  official TAD ``squash_resize``).
* :func:`write_video` encodes H.264 files (lossless RGB on request) for synthetic benchmarks and tests.

Every problem with a video file surfaces as one exception, :class:`VideoDecodeError` (``.path``, ``.reason``).

Example::

    from tasks.data.video import VideoReader, sliding_window_sample
    from tasks.data.video.transforms import squash_resize

    with VideoReader('video.mp4') as reader:
        sample = sliding_window_sample(reader.num_frames, clip_len=16, stride=4, fps=reader.fps)
        for w in reader.iter_windows(sample.indices, transform=squash_resize, frame_dim=1):
            clip = w.frames  # (3, 16, 224, 224) float in [0, 1], as the official TAD extractor feeds the model
"""
from . import transforms
from .errors import VideoDecodeError
from .reader import VideoMeta, VideoReader, Window
from .sampling import ClipSample, dense_sample, keyframe_sample, segment_sample, sliding_window_sample
from .writer import write_video

__all__ = [
    'VideoDecodeError', 'VideoReader', 'VideoMeta', 'Window', 'ClipSample', 'dense_sample', 'segment_sample',
    'sliding_window_sample', 'keyframe_sample', 'write_video', 'transforms',
]
