"""The video-id rule: the key a video file gets in feature stores, predictions and label files."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ['video_id_of']


def video_id_of(path: str | os.PathLike) -> str:
    """The file (or frame folder) name up to its first '.', as the official extractor names its ``.npy`` files:
    ``videos/video_test_0000004.mp4`` -> ``video_test_0000004``, ``clip.part1.mkv`` -> ``clip``."""
    return Path(path).name.split('.')[0]
