"""Peak resident memory of feature extraction on a short and a long video with the same settings
(``tools/benchmark.py memory``): memory that grows with the video's length shows as a ratio well above 1.

:func:`measure_peak` runs a function in a child Python process and samples the child's process tree from this one;
:func:`measure_extraction` runs ``tools/extract_features.py`` (:func:`feature_store.extract.main`) on one video that
way, and :func:`bench_memory` both videos for each backend and ``num_workers``. The peak of a tree is the child's
``VmHWM`` (the kernel's high-water mark, read by the child as it ends) plus each decoding worker's last sampled
``VmHWM``: an upper bound of what the tree held at once, as pages the workers share with the main process after the
fork count in each.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from backbone.bench import machine_line
from backbone.tables import records_table

__all__ = ['MEMORY_TARGETS', 'MEMORY_VIDEO', 'bench_memory', 'format_memory_report', 'measure_extraction',
           'measure_peak', 'memory_summary']

#: The long video's peak may be at most this many times the short one's (a 10-min video against a 1-min one).
MEMORY_TARGETS = {'ratio_max': 1.5}
#: The generated videos (:func:`feature_store.bench_extract.bench_video_path`): 360p, 30 fps, 8-px blocks moving 2 px
#: a frame (about 1 Mbit/s), encoded fast: ultrafast, all cores.
MEMORY_VIDEO = dict(fps=30.0, height=360, width=640, gop=250, block=8, shift=2, preset='ultrafast', threads=0)

# The child: TARGET(argv) ('package.module:function' or 'file.py:function'), then its own high-water mark.
_CHILD = '''
import importlib, json, runpy, sys
module, _, function = sys.argv[2].rpartition(':')
space = runpy.run_path(module) if module.endswith('.py') else vars(importlib.import_module(module))
code = space[function](sys.argv[3:])
with open('/proc/self/status') as f:
    status = dict(line.split(':', 1) for line in f if ':' in line)
with open(sys.argv[1], 'w') as f:
    json.dump({'exit': code, 'hwm_kb': int(status['VmHWM'].split()[0])}, f)
sys.exit(code)
'''


def _status_kb(pid: int, keys: tuple[str, ...]) -> dict[str, int]:
    """``/proc/PID/status`` fields in kB ({} once the process is gone)."""
    try:
        with open(f'/proc/{pid}/status') as f:
            fields = dict(line.split(':', 1) for line in f if ':' in line)
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return {k: int(fields[k].split()[0]) for k in keys if k in fields}


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the kernel's per-thread ``children`` lists)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f'/proc/{parent}/task')
        except FileNotFoundError:
            continue
        for tid in tasks:
            try:
                with open(f'/proc/{parent}/task/{tid}/children') as f:
                    kids = [int(k) for k in f.read().split()]
            except FileNotFoundError:
                continue
            found += kids
            todo += kids
    return found


class _TreeSampler(threading.Thread):
    """Every ``interval`` s: each descendant's ``VmHWM`` and the tree's summed ``VmRSS``. A descendant counts from its
    second sample on: a process started with ``vfork`` (``subprocess``) reports its parent's memory until it execs."""

    def __init__(self, pid: int, interval: float):
        super().__init__(name='rss-sampler', daemon=True)
        self.pid, self.interval = pid, interval
        self.hwm_kb: dict[int, int] = {}
        self.seen: dict[int, int] = {}
        self.tree_rss_kb = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            total = _status_kb(self.pid, ('VmRSS',)).get('VmRSS', 0)
            for pid in _descendants(self.pid):
                s = _status_kb(pid, ('VmHWM', 'VmRSS'))
                self.seen[pid] = self.seen.get(pid, 0) + bool(s)
                if s and self.seen[pid] > 1:
                    self.hwm_kb[pid] = max(self.hwm_kb.get(pid, 0), s['VmHWM'])
                    total += s['VmRSS']
            self.tree_rss_kb = max(self.tree_rss_kb, total)
            self.stop.wait(self.interval)


def measure_peak(target: str, argv: Sequence[str], *, interval: float = 0.05,
                 workdir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Peak memory of ``target(argv)`` run in a child Python process and of the processes it starts (Linux).

    Args:
        target: ``'package.module:function'`` or ``'path/file.py:function'``; the function takes the argument list
            and returns the exit status.
        argv: its arguments.
        interval: seconds between samples of the child's descendants.
        workdir: where the child's report goes (a temporary folder inside; default: the system's).

    Returns:
        ``main_mb``: the child's ``VmHWM``; ``workers_mb``: each descendant's last sampled ``VmHWM``; ``peak_mb``:
        their sum; ``tree_rss_sampled_mb``: the largest summed ``VmRSS`` of the tree in one sample (at most
        ``peak_mb``); ``seconds``: wall time. MiB = 2**20 bytes.

    Raises:
        RuntimeError: no ``/proc`` (not Linux), or the child failed (the end of its stderr is in the message).
    """
    if not Path('/proc/self/status').exists():
        raise RuntimeError('the memory benchmark reads /proc/<pid>/status and needs Linux')
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        report = Path(tmp) / 'report.json'
        start = time.perf_counter()
        with open(Path(tmp) / 'stderr.txt', 'w+') as err:
            proc = subprocess.Popen([sys.executable, '-c', _CHILD, str(report), target, *argv],
                                    stdout=subprocess.DEVNULL, stderr=err)
            sampler = _TreeSampler(proc.pid, interval)
            sampler.start()
            code = proc.wait()
            sampler.stop.set()
            sampler.join()
            err.seek(0)
            stderr = err.read()
        seconds = time.perf_counter() - start
        if code != 0 or not report.exists():
            raise RuntimeError(f'{target} {" ".join(argv)} failed (exit {code}): {stderr.strip()[-2000:]}')
        main = json.loads(report.read_text())['hwm_kb'] / 1024
    workers = [kb / 1024 for kb in sampler.hwm_kb.values()]
    return {'main_mb': main, 'workers_mb': workers, 'peak_mb': main + sum(workers),
            'tree_rss_sampled_mb': sampler.tree_rss_kb / 1024, 'seconds': seconds}


def measure_extraction(video: str | os.PathLike, extract_args: Sequence[str], *,
                       workdir: str | os.PathLike | None = None) -> dict[str, Any]:
    """:func:`measure_peak` of ``tools/extract_features.py VIDEO --out ... EXTRACT_ARGS`` (a fresh store); with
    ``--random-init`` added when ``extract_args`` name no weights (``--checkpoint``, ``--config``), since the weights'
    values do not change the memory."""
    weights = {'--checkpoint', '--config', '--random-init'}
    named = any(a.split('=')[0] in weights for a in extract_args)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        argv = [str(video), '--out', str(Path(tmp) / 'features.h5'), '--no-progress', *extract_args,
                *([] if named else ['--random-init'])]
        return measure_peak('feature_store.extract:main', argv, workdir=workdir)


def bench_memory(short_video: str | os.PathLike, long_video: str | os.PathLike, *, backends: Sequence[str],
                 num_workers: Sequence[int], extract_args: Sequence[str], workdir: str | os.PathLike | None = None,
                 log: Callable[[str], None] = lambda _: None) -> list[dict[str, Any]]:
    """:func:`measure_extraction` of both videos for every backend and ``num_workers``, same ``extract_args``.

    Returns:
        One row per (backend, num_workers): ``short`` and ``long`` (the measurements) and ``ratio`` (long
        ``peak_mb`` / short ``peak_mb``).
    """
    rows = []
    for backend in backends:
        for workers in num_workers:
            args = [*extract_args, '--backend', backend, '--num-workers', str(workers)]
            row: dict[str, Any] = {'backend': backend, 'num_workers': workers}
            for name, video in (('short', short_video), ('long', long_video)):
                log(f'memory: {backend}, {workers} workers, {name} video {video}')
                row[name] = measure_extraction(video, args, workdir=workdir)
            row['ratio'] = row['long']['peak_mb'] / row['short']['peak_mb']
            rows.append(row)
    return rows


def memory_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The largest long/short ratio over the rows and whether it meets :data:`MEMORY_TARGETS`."""
    worst = max(r['ratio'] for r in rows)
    return {'worst_ratio': worst, 'targets': MEMORY_TARGETS, 'meets': {'ratio': worst <= MEMORY_TARGETS['ratio_max']}}


MEMORY_COLUMNS = [('backend', 'backend', 's'), ('workers', 'num_workers', 'd'), ('short MiB', 'short_mb', '.0f'),
                  ('long MiB', 'long_mb', '.0f'), ('long/short', 'ratio', '.2f'), ('short s', 'short_s', '.1f'),
                  ('long s', 'long_s', '.1f'), ('', 'verdict', 's')]


def format_memory_report(payload: dict[str, Any]) -> str:
    """The text report of ``tools/benchmark.py memory``: one row per (backend, workers) and the largest ratio."""
    cfg, limit = payload['config'], payload['targets']['ratio_max']
    rows = [{'backend': r['backend'], 'num_workers': r['num_workers'], 'short_mb': r['short']['peak_mb'],
             'long_mb': r['long']['peak_mb'], 'ratio': r['ratio'], 'short_s': r['short']['seconds'],
             'long_s': r['long']['seconds'], 'verdict': 'ok' if r['ratio'] <= limit else 'ABOVE target'}
            for r in payload['rows']]
    return '\n'.join([
        f"memory benchmark: tools/extract_features.py {' '.join(cfg['extract_args'])}, stride 4, on "
        f"{cfg['videos'][0]} (short) and {cfg['videos'][1]} (long)",
        machine_line(payload['machine']),
        records_table(rows, MEMORY_COLUMNS),
        'MiB: peak resident memory of the process tree, VmHWM of the extraction process plus that of each decoding '
        'worker (an upper bound: pages shared after the fork count in each); workers: --num-workers, of which one '
        'video uses one',
        f"largest long/short ratio (target <= {limit:g}): {payload['worst_ratio']:.2f} "
        f"({'ok' if payload['meets']['ratio'] else 'ABOVE target'})",
    ])
