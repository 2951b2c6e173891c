"""Read-speed and size benchmark of the store against one ``.npy`` per video, float32 and float16, on a warm page
cache (``tools/benchmark.py store``; results in ``feature_store/README.md``, Speed)."""
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

from backbone.bench import machine_line
from backbone.tables import records_table

from .info import StoreInfo
from .meta import VideoFeatureMeta
from .store import FeatureStore, build_store

__all__ = ['STORE_TARGETS', 'bench_store', 'format_store_report', 'store_summary']

LAYOUTS = ('h5_fp32', 'h5_fp16', 'npy_fp32', 'npy_fp16')


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob('*') if p.is_file())


def _videos(num_videos: int, rows: int, dim: int, rng: np.random.Generator
            ) -> tuple[dict[str, np.ndarray], dict[str, VideoFeatureMeta]]:
    """Random (rows, dim) float32 features of ``num_videos`` videos of official windows, and their metadata."""
    ids = [f'video_{i:05d}' for i in range(num_videos)]
    num_frames = (rows - 1) * 4 + 16
    # values of the size seen in ViT features (docs/video_decoding.md: up to ~13)
    feats = {v: (rng.standard_normal((rows, dim)) * 3).astype(np.float32) for v in ids}
    meta = {v: VideoFeatureMeta(v, fps=30.0, num_frames=num_frames, duration=num_frames / 30, clip_len=16,
                                frame_interval=1, stride=4, centre_frames=8 + 4 * np.arange(rows)) for v in ids}
    return feats, meta


def _write(layout: str, path: Path, feats: dict[str, np.ndarray], meta: dict[str, VideoFeatureMeta]) -> None:
    """Write every video in ``layout``: one store, or one ``.npy`` per video."""
    dtype = 'float16' if layout.endswith('fp16') else 'float32'
    if layout.startswith('h5'):
        info = StoreInfo(arch='bench', checkpoint_sha256='0' * 64, feature_kind='pooled', preprocessing={},
                         dtype=dtype, config={'clip_len': 16, 'frame_interval': 1, 'stride': 4})
        build_store(path, info, ((v, feats[v], meta[v]) for v in feats))
    else:
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir()
        for v, f in feats.items():
            np.save(path / f'{v}.npy', f.astype(dtype))


def _read_store(path: Path, ids: list[str], how: str) -> None:
    with FeatureStore.open(path) as store:
        read = {'features': store.read_features, 'with_meta': store.read, 'meta': store.meta}[how]
        for v in ids:
            read(v)


def _read_npy(path: Path, ids: list[str]) -> None:
    for v in ids:
        np.load(path / f'{v}.npy')


def _read_plain_h5py(path: Path, ids: list[str]) -> None:
    with h5py.File(path, 'r') as f:
        for v in ids:
            f[v][()]


def _read_windows(layout: str, path: Path, windows: list[tuple[str, int]], size: int) -> None:
    if layout.startswith('h5'):
        with FeatureStore.open(path) as store:
            for v, s in windows:
                store.read_window(v, s, s + size)
    else:
        for v, s in windows:
            np.array(np.load(path / f'{v}.npy', mmap_mode='r')[s:s + size])


def _time_reads(layout: str, path: Path, ids: list[str], order: list[str], windows: list[tuple[str, int]],
                size: int) -> dict[str, float]:
    """One round of every read measure of ``layout`` (seconds; ``*_ms`` per window or video)."""
    is_store = layout.startswith('h5')

    def read_all(which: list[str]) -> Callable[[], None]:
        return (lambda: _read_store(path, which, 'features')) if is_store else (lambda: _read_npy(path, which))
    times = {'read_sequential_s': _timed(read_all(ids)), 'read_random_s': _timed(read_all(order)),
             'window_ms': _timed(lambda: _read_windows(layout, path, windows, size)) / len(windows) * 1e3}
    if is_store:
        times['read_with_meta_s'] = _timed(lambda: _read_store(path, ids, 'with_meta'))
        times['read_plain_h5py_s'] = _timed(lambda: _read_plain_h5py(path, ids))
        times['meta_ms'] = _timed(lambda: _read_store(path, ids, 'meta')) / len(ids) * 1e3
    return times


def _ratios(results: dict[str, dict[str, float]]) -> dict[str, float]:
    """Store time / npy time for the same dtype (above 1: the store is slower), and fp16 / fp32 bytes."""
    ratios: dict[str, float] = {}
    for dt in ('fp32', 'fp16'):
        h5, npy = results[f'h5_{dt}'], results[f'npy_{dt}']
        for m in ('write_s', 'read_sequential_s', 'read_random_s', 'window_ms'):
            ratios[f'h5/npy {m} {dt}'] = h5[m] / npy[m]
        for m in ('read_plain_h5py_s', 'read_with_meta_s'):
            ratios[f'h5/npy {m} {dt}'] = h5[m] / npy['read_sequential_s']
    ratios['bytes fp16/fp32 h5'] = results['h5_fp16']['bytes'] / results['h5_fp32']['bytes']
    return ratios


def bench_store(tmpdir: str | os.PathLike, num_videos: int = 200, rows: int = 256, dim: int = 768,
                window: int = 64, num_windows: int = 200, repeats: int = 3, seed: int = 0) -> dict[str, Any]:
    """Time reading ``num_videos`` videos of ``rows`` x ``dim`` features from a store and from npy files.

    Defaults: 200 videos of 256 rows (a 35-s video at 30 fps, stride 4) of ViT-B width 768, i.e. 157 MB in
    float32. Files go under ``tmpdir/bench_store`` and are removed at the end. Every measure is the median over
    ``repeats`` rounds, with the four layouts interleaved in each round.

    Returns:
        ``{'params': {...}, 'results': {layout: {...}}, 'ratios': {...}}`` for layouts ``h5_fp32``, ``h5_fp16``,
        ``npy_fp32``, ``npy_fp16``. Per layout: ``bytes`` on disk; ``write_s`` (``build_store``, which also
        validates the features and fsyncs, or one ``np.save`` per video); ``read_sequential_s`` /
        ``read_random_s``, every video's features in id / random order (:meth:`FeatureStore.read_features` or
        ``np.load``); ``window_ms`` per random window of ``window`` rows (:meth:`FeatureStore.read_window` or an
        ``np.load(mmap_mode='r')`` slice); for the store also ``read_with_meta_s`` (:meth:`FeatureStore.read`),
        ``read_plain_h5py_s`` (``h5[video_id][()]``, as ecosystem readers do) and ``meta_ms`` per video.
        ``ratios``: store time / npy time for the same dtype (above 1: the store is slower), and fp16 bytes / fp32
        bytes.
    """
    root = Path(tmpdir) / 'bench_store'
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    feats, meta = _videos(num_videos, rows, dim, rng)
    ids = list(feats)
    paths = {'h5_fp32': root / 'f32.h5', 'h5_fp16': root / 'f16.h5', 'npy_fp32': root / 'npy32',
             'npy_fp16': root / 'npy16'}
    order = list(ids)
    rng.shuffle(order)
    starts = rng.integers(0, max(rows - window, 0) + 1, size=num_windows)
    windows = [(str(v), int(s)) for v, s in zip(rng.choice(ids, size=num_windows), starts)]
    times: dict[str, dict[str, list[float]]] = {k: {} for k in LAYOUTS}
    try:
        for _ in range(repeats):  # the layouts interleaved in every round, so that machine noise hits them alike
            for layout in LAYOUTS:
                times[layout].setdefault('write_s', []).append(
                    _timed(lambda: _write(layout, paths[layout], feats, meta)))
            for layout in LAYOUTS:
                for name, t in _time_reads(layout, paths[layout], ids, order, windows, window).items():
                    times[layout].setdefault(name, []).append(t)
        results = {k: {'bytes': _size(paths[k]), **{m: statistics.median(v) for m, v in times[k].items()}}
                   for k in LAYOUTS}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {'params': {'num_videos': num_videos, 'rows': rows, 'dim': dim, 'window': window,
                       'num_windows': num_windows, 'repeats': repeats, 'cache': 'warm'},
            'results': results, 'ratios': _ratios(results)}


if __name__ == '__main__':  # quick look without tools/benchmark.py: python -m feature_store.bench [TMPDIR]
    import json
    import sys
    import tempfile
    print(json.dumps(bench_store(sys.argv[1] if len(sys.argv) > 1 else tempfile.gettempdir()), indent=1))


#: Targets: reading every video from the store, in id order and in a random order, is no slower than one ``.npy`` per
#: video of the same dtype (npy time / store time >= 1), and the float16 store is smaller on disk than the float32
#: ``.npy`` files the official extractor writes.
STORE_TARGETS = {'read_speedup_min': 1.0, 'size_ratio_fp16_max': 1.0}
#: (name in ``speedup``, key in :func:`feature_store.bench.bench_store`'s results)
STORE_TIMES = (('read_sequential', 'read_sequential_s'), ('read_random', 'read_random_s'), ('window', 'window_ms'),
               ('write', 'write_s'))


def store_summary(results: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Ratios of :func:`feature_store.bench.bench_store` results that the targets are stated in.

    Returns:
        ``speedup[dtype][what]``: npy time / store time for the same dtype (above 1: the store is faster);
        ``size_ratio_fp16``: bytes of the float16 store / bytes of the float32 npy files; ``size_ratios``: the other
        size comparisons; ``meets``: each target.
    """
    speedup = {dt: {name: results[f'npy_{dt}'][key] / results[f'h5_{dt}'][key] for name, key in STORE_TIMES}
               for dt in ('fp32', 'fp16')}
    size = {layout: results[layout]['bytes'] for layout in results}
    size_ratio_fp16 = size['h5_fp16'] / size['npy_fp32']
    meets = {f'{what}_{dt}': speedup[dt][what] >= STORE_TARGETS['read_speedup_min']
             for dt in ('fp32', 'fp16') for what in ('read_sequential', 'read_random')}
    meets['size_fp16'] = size_ratio_fp16 < STORE_TARGETS['size_ratio_fp16_max']
    return {
        'speedup': speedup,
        'size_ratio_fp16': size_ratio_fp16,
        'size_ratios': {'h5_fp16/h5_fp32': size['h5_fp16'] / size['h5_fp32'],
                        'h5_fp32/npy_fp32': size['h5_fp32'] / size['npy_fp32'],
                        'h5_fp16/npy_fp16': size['h5_fp16'] / size['npy_fp16']},
        'targets': STORE_TARGETS,
        'meets': meets,
    }


STORE_COLUMNS = [
    ('layout', 'layout', 's'), ('dtype', 'dtype', 's'), ('size MB', 'size_mb', '.1f'),
    ('sequential s', 'read_sequential_s', '.3f'), ('random s', 'read_random_s', '.3f'),
    ('window ms', 'window_ms', '.3f'), ('write s', 'write_s', '.3f'), ('seq x', 'speedup_sequential', '.2f'),
    ('random x', 'speedup_random', '.2f'), ('window x', 'speedup_window', '.2f'),
]


def format_store_report(payload: dict[str, Any]) -> str:
    """The text report of ``tools/benchmark.py store``: one row per layout and dtype, then the targets."""
    cfg, results, speedup, meets = payload['config'], payload['results'], payload['speedup'], payload['meets']
    rows = []
    for dt in ('fp32', 'fp16'):
        for kind, name in (('h5', 'HDF5 store'), ('npy', 'npy per video')):
            r = results[f'{kind}_{dt}']
            row = {'layout': name, 'dtype': dt, 'size_mb': r['bytes'] / 1e6, **r}
            if kind == 'h5':
                row |= {'speedup_sequential': speedup[dt]['read_sequential'],
                        'speedup_random': speedup[dt]['read_random'], 'speedup_window': speedup[dt]['window']}
            rows.append(row)

    def per_dtype(key: str, spec: str, unit: str) -> str:
        return ', '.join(f"{dt} {results[f'h5_{dt}'][key]:{spec}} {unit}" for dt in ('fp32', 'fp16'))

    reads = ', '.join(f"{what} {dt} {speedup[dt][what]:.2f}x ({'ok' if meets[f'{what}_{dt}'] else 'BELOW target'})"
                      for dt in ('fp32', 'fp16') for what in ('read_sequential', 'read_random'))
    return '\n'.join([
        f"store benchmark: {cfg['num_videos']} videos x {cfg['rows']} rows x {cfg['dim']} dims, windows of "
        f"{cfg['window']} rows x {cfg['num_windows']}, median of {cfg['repeats']} interleaved rounds, warm page "
        f"cache, under {cfg['tmpdir']}",
        machine_line(payload['machine']),
        records_table(rows, STORE_COLUMNS),
        'times: medians; sequential/random: every video read whole, in id / shuffled order (features only, as '
        'np.load); window: one random window; x: npy time / store time, above 1 = the store is faster',
        f"store reads in id order with each video's metadata (FeatureStore.read): "
        f"{per_dtype('read_with_meta_s', '.3f', 's')}; with plain h5py h5[id][()]: "
        f"{per_dtype('read_plain_h5py_s', '.3f', 's')}; metadata alone: {per_dtype('meta_ms', '.3f', 'ms/video')}",
        f'store vs npy reads (target >= 1.0x): {reads}',
        f"float16 store / float32 npy on disk: {payload['size_ratio_fp16']:.3f} "
        f"({'ok' if meets['size_fp16'] else 'NOT smaller'})",
    ])
