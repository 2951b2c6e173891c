"""Shared test fixtures: seeded RNG and a tiny VideoMAE V2 model factory (the ``vit_test`` preset)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def tiny_vit():
    """Factory for tiny ViTs: 64-d, 2 blocks, 4 heads, 4 frames of 32x32 by default (8 tokens)."""
    from backbone import VideoMAEv2ViT

    def make(**kwargs):
        kwargs.setdefault('img_size', 32)
        kwargs.setdefault('all_frames', 4)
        return VideoMAEv2ViT('vit_test', **kwargs).eval()
    return make


@pytest.fixture
def one_thread():
    """Tiny tensors on a shared 2-core machine: one intra-op thread, since more only wait on each other (OpenMP spin
    contention made such tests up to 10x slower here); the thread count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
