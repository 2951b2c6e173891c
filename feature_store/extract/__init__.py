"""Clip-feature extraction from untrimmed videos into the feature store (``tools/extract_features.py``).

One code path computes the features, for the store and on-line inside tasks: :mod:`.preprocess` (frames -> model
input), :mod:`.clips` (the model, the official TAD windows of docs/thumos14.md#official-feature-extractor, each frame
decoded once although windows overlap, docs/video_decoding.md#decode-once-cut-windows-from-a-buffer),
:mod:`.inputs` (the videos: a file, a folder or a list), :mod:`.provenance` (:class:`ExtractConfig`, the store's
info), :mod:`.decode` (decoding ahead of the model), :mod:`.threads` (the CPU model's threads by what decoding costs,
:func:`model_threads`; ``--compile``), :mod:`.progress` (clips/s after the warm-up), :mod:`.run`
(:func:`extract_to_store`: resumable, crash-safe, distributed) and :mod:`.cli`.
"""
from .cli import build_parser, config_from_args, main
from .clips import (
    ComputeDType, build_model, extract_video_features, forward_clips, iter_clip_batches, sample_windows, windows_meta,
)
from .decode import default_batch_size
from .inputs import VIDEO_EXTENSIONS, ExtractError, VideoInput, find_videos, is_video_path, list_videos
from .preprocess import Preprocess
from .provenance import ExtractConfig, make_store_info
from .run import ExtractResult, extract_to_store
from .threads import DECODE_STALL, decode_share_max, model_threads

__all__ = [
    'VIDEO_EXTENSIONS', 'ComputeDType', 'Preprocess', 'ExtractConfig', 'ExtractResult', 'ExtractError',
    'VideoInput', 'find_videos', 'is_video_path', 'build_model', 'list_videos', 'sample_windows', 'windows_meta',
    'iter_clip_batches', 'forward_clips', 'extract_video_features',
    'make_store_info', 'extract_to_store', 'build_parser', 'config_from_args', 'main', 'DECODE_STALL',
    'decode_share_max', 'model_threads', 'default_batch_size',
]
