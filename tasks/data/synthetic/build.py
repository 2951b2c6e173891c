"""Build the whole synthetic benchmark into one folder: presets, parallel rendering, manifest, skip-if-complete.

The folder's layout, the determinism guarantees and the manifest are described in ``tasks/data/synthetic/README.md``.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from tasks.data.files import write_json_atomic

from . import ava, classification, thumos
from .ava import AVAConfig
from .classification import ClassificationConfig
from .thumos import THUMOSConfig

# Bump whenever a change alters the generated files, so stale folders are regenerated instead of reused.
GENERATOR_VERSION = '3'
MANIFEST = 'manifest.json'

PresetName = Literal['tiny', 'default']


@dataclass(frozen=True)
class Preset:
    """The settings of each task's generator."""

    classification: ClassificationConfig
    ava: AVAConfig
    thumos: THUMOSConfig


# Every video is 128x96. libx264's default mb-tree rate control gives run-to-run different bitstreams at most sizes
# (even single-threaded); tasks.data.video.write_video turns mb-tree off, which makes every size tried reproducible.
PRESETS: dict[str, Preset] = {
    # for tests: ~1k small frames in total, a few seconds on one core
    'tiny': Preset(
        classification=ClassificationConfig(128, 96, num_frames=16, fps=30, train_per_class=1, val_per_class=1),
        ava=AVAConfig(128, 96, duration=5, train_videos=1, val_videos=1, max_actors=3),
        thumos=THUMOSConfig(128, 96, duration=6, fps=30, val_videos=1, test_videos=1),
    ),
    # for the main job: 64-frame clips (one 16x4 Kinetics-style window), 60-s THUMOS videos at 30 fps; about 90 CPU-s
    # to render and encode (2 cores: ~45 s). 48 training videos per class: with 16 the tiny fine-tune over-fitted
    # (configs/recognition/videomaev2/vit-test-p16_videomaev2-ft_8x4x1_synthetic.py has the measurements); 10
    # validation videos per class make a top-1 step 1 % instead of 2.5 %.
    'default': Preset(
        classification=ClassificationConfig(128, 96, num_frames=64, fps=30, train_per_class=48, val_per_class=10),
        ava=AVAConfig(128, 96, duration=12, train_videos=8, val_videos=3, max_actors=4),
        thumos=THUMOSConfig(128, 96, duration=60, fps=30, val_videos=4, test_videos=3),
    ),
}

_TASKS = {'classification': classification, 'ava': ava, 'thumos': thumos}


def _cost(job) -> float:
    """Rough rendering + encoding cost of a job (frames x pixels), to hand out the long videos first."""
    frames = job.num_frames if hasattr(job, 'num_frames') else job.duration * 30
    return frames * job.width * job.height


def _mp_context() -> multiprocessing.context.BaseContext:
    """``fork`` where there is one: the workers inherit the modules already imported here (``tasks.data.video`` pulls in
    torch, whose import costs seconds per spawned worker), and they only run numpy and PyAV, never torch or OpenMP,
    so threads the parent may have do not matter. Elsewhere ``spawn``."""
    if 'fork' in multiprocessing.get_all_start_methods():
        from tasks.data.video import writer  # noqa: F401  (imported before forking, once)
        return multiprocessing.get_context('fork')
    return multiprocessing.get_context('spawn')


def _run(item: tuple[str, object]) -> object:
    task, job = item
    return _TASKS[task].run_job(job)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (the manifest records it for every file)."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(out: str | os.PathLike) -> dict | None:
    """The manifest of ``out``, or ``None`` if there is none or it cannot be parsed."""
    try:
        return json.loads((Path(out) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def is_complete(out: str | os.PathLike, preset: PresetName, seed: int) -> bool:
    """True if ``out`` holds a finished benchmark of this generator version, preset (with the same settings) and seed,
    with every listed file present at its recorded size."""
    manifest = read_manifest(out)
    if not manifest or (manifest.get('generator'), manifest.get('version'), manifest.get('preset'),
                        manifest.get('seed')) != ('tasks.data.synthetic', GENERATOR_VERSION, preset, seed):
        return False
    if preset in PRESETS and manifest.get('config') != asdict(PRESETS[preset]):  # the preset was edited since
        return False
    for rel, info in manifest.get('files', {}).items():
        p = Path(out) / rel
        if not p.is_file() or p.stat().st_size != info.get('bytes'):
            return False
    return True


def _render(items: list[tuple[str, object]], workers: int | None) -> tuple[list, int]:
    """Run every (task, job), the longest first, in ``workers`` processes (None: one per CPU, at most 8; 1: in this
    process). Returns the results in ``items`` order and the number of workers."""
    order = sorted(range(len(items)), key=lambda i: -_cost(items[i][1]))
    workers = min(8, os.cpu_count() or 1) if workers is None else max(1, workers)
    results: list = [None] * len(items)
    if workers == 1:
        for i in order:
            results[i] = _run(items[i])
    else:
        with ProcessPoolExecutor(workers, mp_context=_mp_context()) as pool:
            for i, res in zip(order, pool.map(_run, [items[i] for i in order])):
                results[i] = res
    return results, workers


def _remove_stale(out: Path, old: dict | None, files: list[str]) -> None:
    """Delete the files an earlier benchmark in ``out`` listed that this one does not have."""
    if old and isinstance(old.get('files'), dict):
        root = out.resolve()
        for rel in set(old['files']) - set(files):
            p = (out / rel).resolve()
            if p.is_relative_to(root) and p.is_file():
                p.unlink()


def generate(
        out: str | os.PathLike,
        preset: PresetName = 'default',
        seed: int = 0,
        *,
        workers: int | None = None,
        force: bool = False,
        log: Callable[[str], None] = print,
) -> dict:
    """Generate the benchmark into ``out`` (or reuse it if it is already complete).

    Args:
        out: destination folder (created if missing).
        preset: ``'tiny'`` for tests, ``'default'`` for the main job.
        seed: non-negative integer; the same seed gives the same annotation files and decoded frames (and the same
            mp4 bytes with the same FFmpeg/x264 build and thread count), whatever the number of workers.
        workers: rendering processes; ``None`` uses one per CPU, at most 8; 1 renders in this process.
        force: regenerate even if ``out`` already holds this benchmark.
        log: progress messages.

    Returns:
        The manifest (also written to ``out/manifest.json``).
    """
    if preset not in PRESETS:
        raise ValueError(f'unknown preset {preset!r}; choose from {sorted(PRESETS)}')
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f'seed must be a non-negative integer, got {seed!r}')
    out = Path(out)
    if not force and is_complete(out, preset, seed):
        log(f'{out}: complete {preset} benchmark (seed {seed}, version {GENERATOR_VERSION}) found; nothing to do')
        return read_manifest(out)
    cfg = PRESETS[preset]
    old = read_manifest(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # from here on the folder does not look complete

    start = time.perf_counter()
    jobs = {task: module.make_jobs(getattr(cfg, task), seed, out / task) for task, module in _TASKS.items()}
    items = [(task, job) for task, js in jobs.items() for job in js]
    results, workers = _render(items, workers)
    log(f'rendered and encoded {len(items)} videos in {time.perf_counter() - start:.1f} s with {workers} worker(s)')

    files: list[str] = []
    counts: dict = {}
    offset = 0
    for task, js in jobs.items():
        rel, counts[task] = _TASKS[task].write_annotations(out / task, js, results[offset:offset + len(js)])
        offset += len(js)
        files += [f'{task}/{r}' for r in rel]
    _remove_stale(out, old, files)

    manifest = {
        'generator': 'tasks.data.synthetic',
        'version': GENERATOR_VERSION,
        'preset': preset,
        'seed': seed,
        'config': asdict(cfg),
        'counts': counts,
        'files': {rel: {'bytes': (out / rel).stat().st_size, 'sha256': file_sha256(out / rel)}
                  for rel in sorted(files)},
    }
    write_json_atomic(out / MANIFEST, manifest, indent=2)
    log(f'{out}: {preset} benchmark (seed {seed}) written in {time.perf_counter() - start:.1f} s, '
        f'{len(files)} files')
    return manifest
