"""Read-speed and size benchmark: one HDF5 store vs one ``.npy`` per video, float32 and float16.

:func:`bench_store` is wired into ``tools/benchmark.py store``; it writes random features for ``num_videos`` videos
in four layouts and times, on a warm page cache (the files were just written, as on a machine that re-reads its
features every epoch):

* writing them (``build_store`` / one ``np.save`` per video);
* reading every video in id order (``read_sequential_s``) and in a random order (``read_random_s``): the store via
  :meth:`FeatureStore.read_features`, npy via ``np.load`` (features only in both: npy folders keep their metadata in a
  sidecar read once); for the store also :meth:`FeatureStore.read` with each video's metadata (``read_with_meta_s``),
  plain h5py ``h5[video_id][()]`` in id order, as ecosystem readers do (``read_plain_h5py_s``), and the metadata
  alone (``meta_ms``, per video: 8 HDF5 attributes);
* random windows of ``window`` rows (``window_ms``, per window): the store via :meth:`FeatureStore.read_window`, npy
  via ``np.load(mmap_mode='r')`` slices (how training crops are read);
* the bytes on disk.

Medians over ``repeats`` runs, with the four layouts interleaved inside each repeat so that machine noise hits them
alike.
"""
from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .store import FeatureStore, StoreInfo, VideoFeatureMeta, build_store

__all__ = ['bench_store']

LAYOUTS = ('h5_fp32', 'h5_fp16', 'npy_fp32', 'npy_fp16')


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob('*') if p.is_file())


def bench_store(tmpdir: str | os.PathLike, num_videos: int = 200, rows: int = 256, dim: int = 768,
                window: int = 64, num_windows: int = 200, repeats: int = 3, seed: int = 0) -> dict[str, Any]:
    """Time reading ``num_videos`` videos of ``rows`` x ``dim`` features from a store and from npy files.

    Defaults: 200 videos of 256 rows (a 35-s video at 30 fps, stride 4) of ViT-B width 768, i.e. 157 MB in
    float32. Files go under ``tmpdir/bench_store`` and are removed at the end.

    Returns:
        ``{'params': {...}, 'results': {layout: {'bytes', 'write_s', 'read_sequential_s', 'read_random_s',
        'window_ms'} (+ 'read_plain_h5py_s', 'meta_ms' for the store)}, 'ratios': {...}}`` for layouts ``h5_fp32``,
        ``h5_fp16``, ``npy_fp32``, ``npy_fp16``; ``ratios`` holds store time / npy time for the same dtype (above
        1: the store is slower) and fp16 bytes / fp32 bytes. The store's ``write_s`` includes validating the
        features (finite, fp16 range) and an fsync, which ``np.save`` does not do.
    """
    root = Path(tmpdir) / 'bench_store'
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    ids = [f'video_{i:05d}' for i in range(num_videos)]
    # values of the size seen in ViT features (docs/video_decoding.md: up to ~13)
    feats = {v: (rng.standard_normal((rows, dim)) * 3).astype(np.float32) for v in ids}
    meta = {v: VideoFeatureMeta(v, fps=30.0, num_frames=(rows - 1) * 4 + 16, duration=((rows - 1) * 4 + 16) / 30,
                                clip_len=16, frame_interval=1, stride=4, centre_frames=8 + 4 * np.arange(rows))
            for v in ids}
    paths = {'h5_fp32': root / 'f32.h5', 'h5_fp16': root / 'f16.h5', 'npy_fp32': root / 'npy32',
             'npy_fp16': root / 'npy16'}

    def write(layout: str) -> None:
        path = paths[layout]
        dtype = 'float16' if layout.endswith('fp16') else 'float32'
        if layout.startswith('h5'):
            info = StoreInfo(arch='bench', checkpoint_sha256='0' * 64, feature_kind='pooled', preprocessing={},
                             dtype=dtype, config={'clip_len': 16, 'frame_interval': 1, 'stride': 4})
            build_store(path, info, ((v, feats[v], meta[v]) for v in ids))
        else:
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir()
            for v in ids:
                np.save(path / f'{v}.npy', feats[v].astype(dtype))

    order = list(ids)
    rng.shuffle(order)
    starts = rng.integers(0, max(rows - window, 0) + 1, size=num_windows)
    win_ids = rng.choice(ids, size=num_windows)

    def read_all(layout: str, which: list[str]) -> Callable[[], None]:
        path = paths[layout]
        if layout.startswith('h5'):
            def run() -> None:
                with FeatureStore.open(path) as store:
                    for v in which:
                        store.read_features(v)
        else:
            def run() -> None:
                for v in which:
                    np.load(path / f'{v}.npy')
        return run

    def read_plain(layout: str) -> Callable[[], None]:
        def run() -> None:
            with h5py.File(paths[layout], 'r') as f:
                for v in ids:
                    f[v][()]
        return run

    def read_with_meta(layout: str) -> Callable[[], None]:
        def run() -> None:
            with FeatureStore.open(paths[layout]) as store:
                for v in ids:
                    store.read(v)
        return run

    def read_meta(layout: str) -> Callable[[], None]:
        def run() -> None:
            with FeatureStore.open(paths[layout]) as store:
                for v in ids:
                    store.meta(v)
        return run

    def read_windows(layout: str) -> Callable[[], None]:
        path = paths[layout]
        if layout.startswith('h5'):
            def run() -> None:
                with FeatureStore.open(path) as store:
                    for v, s in zip(win_ids, starts):
                        store.read_window(v, int(s), int(s) + window)
        else:
            def run() -> None:
                for v, s in zip(win_ids, starts):
                    np.array(np.load(path / f'{v}.npy', mmap_mode='r')[s:s + window])
        return run

    times: dict[str, dict[str, list[float]]] = {
        k: {'write_s': [], 'read_sequential_s': [], 'read_random_s': [], 'window_ms': []}
        | ({'read_with_meta_s': [], 'read_plain_h5py_s': [], 'meta_ms': []} if k.startswith('h5') else {})
        for k in LAYOUTS}
    try:
        for _ in range(repeats):
            for layout in LAYOUTS:
                times[layout]['write_s'].append(_timed(lambda: write(layout)))
            for layout in LAYOUTS:
                times[layout]['read_sequential_s'].append(_timed(read_all(layout, ids)))
                times[layout]['read_random_s'].append(_timed(read_all(layout, order)))
                times[layout]['window_ms'].append(_timed(read_windows(layout)) / num_windows * 1e3)
                if layout.startswith('h5'):
                    times[layout]['read_with_meta_s'].append(_timed(read_with_meta(layout)))
                    times[layout]['read_plain_h5py_s'].append(_timed(read_plain(layout)))
                    times[layout]['meta_ms'].append(_timed(read_meta(layout)) / num_videos * 1e3)
        results = {k: {'bytes': _size(paths[k]), **{m: statistics.median(v) for m, v in times[k].items()}}
                   for k in LAYOUTS}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ratios: dict[str, float] = {}
    for dt in ('fp32', 'fp16'):
        for m in ('write_s', 'read_sequential_s', 'read_random_s', 'window_ms'):
            ratios[f'h5/npy {m} {dt}'] = results[f'h5_{dt}'][m] / results[f'npy_{dt}'][m]
        for m in ('read_plain_h5py_s', 'read_with_meta_s'):
            ratios[f'h5/npy {m} {dt}'] = results[f'h5_{dt}'][m] / results[f'npy_{dt}']['read_sequential_s']
    ratios['bytes fp16/fp32 h5'] = results['h5_fp16']['bytes'] / results['h5_fp32']['bytes']
    return {'params': {'num_videos': num_videos, 'rows': rows, 'dim': dim, 'window': window,
                       'num_windows': num_windows, 'repeats': repeats, 'cache': 'warm'},
            'results': results, 'ratios': ratios}


if __name__ == '__main__':  # quick look without tools/benchmark.py: python -m feature_store.bench [TMPDIR]
    import json
    import sys
    import tempfile
    print(json.dumps(bench_store(sys.argv[1] if len(sys.argv) > 1 else tempfile.gettempdir()), indent=1))
