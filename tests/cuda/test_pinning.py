"""The CPU tests stay on the CPU of a GPU machine: their subprocesses and ``torchrun`` runs see no GPU
(``tests/torchrun_kit.py``: ``CUDA_VISIBLE_DEVICES=''``) and the in-process mmengine Runner is pinned to the CPU
(``tests/conftest.py``). The first test simulates a GPU machine and runs everywhere; the ``cuda`` ones check the same
on a real one (skipped elsewhere).
"""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.torchrun_kit import cpu_env, run_torchrun

# A GPU machine as the CUDA runtime answers: a device is visible unless CUDA_VISIBLE_DEVICES hides them all.
FAKE_GPU = '''import os
import torch
torch.cuda.is_available = lambda: os.environ.get('CUDA_VISIBLE_DEVICES') != ''
'''
# What the 2-process CPU tests rely on: tasks/engine/runner.py starts gloo, and says so, when it finds no GPU.
BACKEND = '''import torch.distributed as dist
from mmengine.config import Config
from tasks.engine.runner import cpu_backend, finish_distributed
cpu_backend(Config(dict(launcher='pytorch')), 'backend.py')
print('backend', dist.get_backend() if dist.is_initialized() else None, dist.get_world_size() if dist.is_initialized()
      else None, flush=True)
finish_distributed()
'''
GLOO = 'backend.py: no CUDA device, using the gloo backend instead of nccl'


def test_torchrun_processes_see_no_gpu_and_fall_back_to_gloo(tmp_path):
    """On a simulated GPU machine, ``run_torchrun``'s process sees no GPU: gloo, with the message the 2-process CPU
    tests assert. Given the GPU back (the environment those tests had before), it takes the CUDA path instead."""
    script = tmp_path / 'backend.py'
    script.write_text(FAKE_GPU + BACKEND)
    pinned = run_torchrun(script, [], nproc=1)
    assert GLOO in pinned.stdout and 'backend gloo 1' in pinned.stdout
    visible = run_torchrun(script, [], nproc=1, env={'CUDA_VISIBLE_DEVICES': '0'})
    assert GLOO not in visible.stdout and 'backend None None' in visible.stdout


@pytest.mark.cuda
def test_subprocesses_see_no_gpu():
    probe = 'import torch; print(torch.cuda.is_available(), torch.cuda.device_count())'
    proc = subprocess.run([sys.executable, '-c', probe], env=cpu_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ['False', '0'] and torch.cuda.is_available()  # while this process sees the GPU


@pytest.mark.cuda
def test_torchrun_falls_back_to_gloo_on_a_gpu_machine(tmp_path):
    script = tmp_path / 'backend.py'
    script.write_text(BACKEND)
    proc = run_torchrun(script, [], nproc=2)
    assert proc.stdout.count(GLOO) == 2 and proc.stdout.count('backend gloo 2') == 2


@pytest.mark.cuda
def test_the_runner_stays_on_the_cpu():
    import mmengine.device
    import mmengine.runner.runner as runner_module

    assert mmengine.device.get_device() == 'cuda'  # where mmengine's Runner would put the model
    assert runner_module.get_device() == 'cpu'  # tests/conftest.py pins it for the session
