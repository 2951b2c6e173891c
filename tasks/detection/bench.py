"""What AVA from cached feature maps saves: the time of a training epoch of the RoI head behind an on-line frozen
backbone against the same head reading the stored maps, and the one-time extraction, on a rendered synthetic AVA set.

Usage::

    python -m tasks.detection.bench [--videos 2] [--seconds 15] [--epochs 3] [--json OUT]

Both runs use the tiny synthetic AVA configs (the on-line one with its backbone frozen, ``requires_grad=False``, so
that it pays the backbone's forward every epoch but no backward through it, as a frozen-backbone evaluation would)
and the same keyframes, batch size and epochs; times are wall-clock seconds of ``Runner.train()`` per epoch, after
the Runner is built. docs/ava.md#from-cached-feature-maps.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ['bench_cached_epochs', 'main']

REPO = Path(__file__).resolve().parents[2]
ONLINE = REPO / 'configs/detection/ava/vit-test-p8_videomaev2_1xb8-8x4x1-40e-adamw_synthetic-ava.py'
CACHED = REPO / 'configs/detection/ava/vit-test-p8_videomaev2-frozen-featmaps_1xb8-40e-adamw_synthetic-ava.py'


def _render(root: Path, videos: int, seconds: int, seed: int) -> Path:
    from tasks.data.synthetic import ava

    cfg = ava.AVAConfig(128, 96, duration=seconds, train_videos=videos, val_videos=0, max_actors=3)
    jobs = ava.make_jobs(cfg, seed, root)
    ava.write_annotations(root, jobs, [ava.run_job(job) for job in jobs])
    return root


def _train_seconds(config: Path, root: Path, work: Path, epochs: int, extra: dict, freeze_backbone: bool) -> float:
    """Seconds per epoch of ``Runner.train()`` for ``config`` pointed at ``root`` (its ``data_root``)."""
    from mmengine.model import is_model_wrapper

    from tasks.engine.runner import build_runner, load_config

    cfg = load_config(str(config), str(work), {'data_root': str(root), **extra})
    cfg.merge_from_dict({'train_cfg.max_epochs': epochs, 'train_dataloader.num_workers': 0,
                         'train_dataloader.persistent_workers': False, 'default_hooks.checkpoint.interval': epochs,
                         'default_hooks.logger.interval': 1000, 'visualizer.vis_backends': []})
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=epochs)]
    runner = build_runner(cfg)
    if freeze_backbone:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model.backbone.requires_grad_(False)
    start = time.perf_counter()
    runner.train()
    return (time.perf_counter() - start) / epochs


def bench_cached_epochs(root: str | Path | None = None, *, videos: int = 2, seconds: int = 15, epochs: int = 3,
                        seed: int = 0) -> dict[str, Any]:
    """Render ``videos`` synthetic AVA videos into ``root`` (a temporary folder by default), extract their keyframe
    maps once, then train the head for ``epochs`` on-line (frozen backbone) and from the store.

    Returns:
        ``keyframes``, ``extract_s`` (one-time), ``online_epoch_s``, ``cached_epoch_s``, ``speedup`` (on-line /
        cached), ``store_bytes_per_keyframe``.
    """
    from feature_store import FeatureStore
    from feature_store.extract import main as extract
    from tasks.data.annotations import read_ava_csv

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(root) if root is not None else Path(tmp)
        _render(root, videos, seconds, seed)
        train_csv = root / 'annotations' / 'ava_train_v2.2.csv'
        keyframes = len({(b.video_id, b.timestamp) for b in read_ava_csv(train_csv)})
        store = root / 'featmaps' / 'vit-test-p8_random-init.h5'  # where the cached config reads, under data_root
        start = time.perf_counter()
        status = extract([str(root / 'videos'), '--kind', 'featmap', '--config', str(ONLINE), '--random-init',
                          '--keyframes', str(train_csv), '--out', str(store), '--no-progress', '--device', 'cpu'])
        extract_s = time.perf_counter() - start
        if status != 0:
            raise RuntimeError(f'feature-map extraction failed with status {status}')
        with FeatureStore.open(store) as s:
            maps = sum(int(s.read_features(v).nbytes) for v in s.ids())
        maps_per_keyframe = maps / max(keyframes, 1)
        online = _train_seconds(ONLINE, root, root / 'work_online', epochs, {}, freeze_backbone=True)
        cached = _train_seconds(CACHED, root, root / 'work_cached', epochs, {}, freeze_backbone=False)
    return {'videos': videos, 'keyframes': keyframes, 'epochs': epochs, 'extract_s': extract_s,
            'online_epoch_s': online, 'cached_epoch_s': cached, 'speedup': online / cached,
            'store_bytes_per_keyframe': maps_per_keyframe}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--videos', type=int, default=2, help='synthetic training videos (default 2)')
    parser.add_argument('--seconds', type=int, default=15, help='length of each video (default 15: 11 keyframes)')
    parser.add_argument('--epochs', type=int, default=3, help='epochs of each run (default 3)')
    parser.add_argument('--json', help='also write the result here')
    args = parser.parse_args(argv)
    result = bench_cached_epochs(videos=args.videos, seconds=args.seconds, epochs=args.epochs)
    print(f"{result['keyframes']} keyframes: extraction once {result['extract_s']:.1f} s; per epoch on-line (frozen "
          f"backbone) {result['online_epoch_s']:.2f} s, cached {result['cached_epoch_s']:.2f} s: "
          f"{result['speedup']:.1f}x; {result['store_bytes_per_keyframe'] / 1024:.1f} KiB of maps per keyframe")
    if args.json:
        from tasks.data.files import write_json_atomic

        write_json_atomic(args.json, result)
    return result


if __name__ == '__main__':
    main()
