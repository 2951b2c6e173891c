"""Fixtures of the extraction tests: three generated H.264 videos and an uninterrupted extraction of them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from feature_store.extract import main
from tasks.data.video import write_video
from tests.feature_store.extract_kit import FRAMES, TINY


@pytest.fixture(scope='session')
def videos(tmp_path_factory) -> Path:
    """vid_a/b/c.mp4: 40/52/60 frames of 64x48 at 25 fps, and a notes.txt that is not a video."""
    folder = tmp_path_factory.mktemp('videos')
    rng = np.random.default_rng(0)
    for name, n in FRAMES.items():
        # a random still background with a moving inverted bar, lossy H.264 with a GOP shorter than the video
        base = rng.integers(0, 256, (1, 48, 64, 3)).astype(np.float32)
        frames = np.repeat(base, n, axis=0)
        for t in range(n):
            frames[t, :, (t * 3) % 64:(t * 3) % 64 + 6] = 255 - frames[t, :, (t * 3) % 64:(t * 3) % 64 + 6]
        write_video(folder / f'{name}.mp4', frames.astype(np.uint8), 25, crf=20, gop=12)
    (folder / 'notes.txt').write_text('not a video, and not taken from a folder')
    return folder


@pytest.fixture(scope='session')
def reference(videos, tmp_path_factory) -> Path:
    """An uninterrupted single-process run over the three videos, on one thread as the runs the tests compare it with
    exactly (the tests' ``one_thread`` fixture, subprocesses under ``tests/torchrun_kit.py``'s ``cpu_env``)."""
    out = tmp_path_factory.mktemp('ref') / 'ref.h5'
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([str(videos), '--out', str(out), *TINY]) == 0
    finally:
        torch.set_num_threads(threads)
    return out
