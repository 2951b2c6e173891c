"""Multi-process runs for tests: a free port, an environment pinned to the CPU, and ``torchrun`` of a repository tool.

Every 2-process test runs on gloo and on the CPU, also on a machine with GPUs: ``CUDA_VISIBLE_DEVICES=''`` hides
them, so that a test meant for the CPU compares CPU numbers with CPU numbers and sees the gloo fallback.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

__all__ = ['REPO', 'cpu_env', 'free_port', 'run_torchrun']


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def cpu_env(extra: Mapping[str, str] | None = None, threads: int = 1) -> dict[str, str]:
    """This process's environment with the repository importable, no visible GPU and ``threads`` OpenMP threads."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS=str(threads), CUDA_VISIBLE_DEVICES='')
    env.update(extra or {})
    return env


def run_torchrun(tool: str | os.PathLike, args: Sequence[str], *, nproc: int = 2, env: Mapping[str, str] | None = None,
                 timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node NPROC TOOL ARGS`` on the CPU (:func:`cpu_env`), output captured as text.

    Args:
        tool: a script path, or a name under ``tools/`` (``'train'`` -> ``tools/train.py``).
        check: assert exit status 0, showing the end of both streams otherwise.
    """
    script = Path(tool) if os.sep in str(tool) or str(tool).endswith('.py') else REPO / 'tools' / f'{tool}.py'
    torchrun = Path(sys.executable).with_name('torchrun')
    proc = subprocess.run(
        [str(torchrun), '--nproc_per_node', str(nproc), '--master_addr', '127.0.0.1', '--master_port',
         str(free_port()), str(script), *map(str, args)],
        env=cpu_env(env), capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc
