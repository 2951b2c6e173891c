"""Shared test fixtures: seeded RNG and a tiny VideoMAE V2 model factory (the ``vit_test`` preset); the ``cuda`` marker
(skipped where torch sees no CUDA device) and the CPU pin of the in-process mmengine Runner."""
from __future__ import annotations

import pytest
import torch

CUDA_SKIP_REASON = 'needs a CUDA device (torch.cuda.is_available() is False)'


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked ``cuda`` on a machine without CUDA; they run wherever CUDA exists (``-m 'not slow'`` keeps
    them). Asking torch here, before any test runs, also fixes this process's view of the GPUs before a test hides
    them from its subprocesses by setting ``CUDA_VISIBLE_DEVICES`` (the CUDA runtime reads it once per process)."""
    marked = [item for item in items if item.get_closest_marker('cuda')]
    if marked and not torch.cuda.is_available():
        for item in marked:
            item.add_marker(pytest.mark.skip(reason=CUDA_SKIP_REASON))


@pytest.fixture(scope='session', autouse=True)
def _runner_on_the_cpu():
    """The CPU tests mean the CPU: they compare the Runner's numbers with ones computed here on the CPU, at float32
    tolerances. mmengine's Runner moves the model to ``mmengine.device.get_device()``, CUDA whenever a GPU exists, and
    a process that has initialised CUDA cannot hide it again (subprocesses get ``CUDA_VISIBLE_DEVICES=''`` from
    ``tests/torchrun_kit.py``), so the Runner's own ``get_device`` answers 'cpu' for the whole session. Session-wide,
    so that module-scoped fixtures that train are pinned too; the ``cuda`` tests run their models without the Runner.
    """
    import mmengine.runner.runner as runner_module

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runner_module, 'get_device', lambda: 'cpu')
        yield


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
