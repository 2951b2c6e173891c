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
