"""Clip-feature extraction from untrimmed videos into the feature store (``tools/extract_features.py``).

One code path computes the features, for the store and on-line inside tasks:

* :mod:`.preprocess`: :class:`Preprocess`, decoded uint8 frames -> model input (the official TAD ``squash``, or
  short-side resize + centre crop; ImageNet normalisation optional);
* :mod:`.clips`: :func:`build_model`, :func:`sample_windows` (the official TAD windows,
  docs/thumos14.md#official-feature-extractor), :func:`iter_clip_batches` (every frame decoded once although windows
  overlap, docs/video_decoding.md), :func:`forward_clips` and :func:`extract_video_features` for one video;
* :mod:`.inputs`: :func:`list_videos`; :mod:`.provenance`: :class:`ExtractConfig` and :func:`make_store_info`;
* :mod:`.decode`: decoding ahead of the model; :mod:`.run`: :func:`extract_to_store`, resumable, crash-safe and
  distributed; :mod:`.cli`: :func:`main`.
"""
from .cli import build_parser, config_from_args, main
from .clips import ComputeDType, build_model, extract_video_features, forward_clips, iter_clip_batches, sample_windows
from .inputs import VIDEO_EXTENSIONS, ExtractError, list_videos
from .preprocess import Preprocess
from .provenance import ExtractConfig, make_store_info
from .run import ExtractResult, extract_to_store

__all__ = [
    'VIDEO_EXTENSIONS', 'ComputeDType', 'Preprocess', 'ExtractConfig', 'ExtractResult', 'ExtractError',
    'build_model', 'list_videos', 'sample_windows', 'iter_clip_batches', 'forward_clips', 'extract_video_features',
    'make_store_info', 'extract_to_store', 'build_parser', 'config_from_args', 'main',
]
