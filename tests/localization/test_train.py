"""End to end: the synthetic THUMOS14 config trained and tested with the mmengine Runner on features that encode the
actions, to check that the whole chain (store -> dataset -> detector -> Soft-NMS -> seconds -> metric) learns.

The features are constructed, not extracted: inside an instance of class c, channel c is 1 (plus noise); elsewhere
every channel is noise. A detector that learns finds every instance, so the average mAP must be high, and far above the
random-detection baseline the metric reports next to it. The store records official 16-frame windows every 4
frames at 30 fps, so instance boundaries in seconds fall between feature rows as they do in real data.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from feature_store import FeatureStore, StoreInfo, VideoFeatureMeta
from tasks.engine.checkpoint import mmengine_checkpoint_globals
from tasks.data.video import sliding_window_sample

CONFIG = 'configs/localization/thumos14/actionformer_vit-test-p16_synthetic-feat_16x4_synthetic-thumos.py'
FPS, ROWS, DIM, CLASSES = 30.0, 192, 8, ('Bounce', 'Dash', 'Flash')


def make_benchmark(root: Path, train: int, test: int, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    num_frames = 16 + 4 * (ROWS - 1)  # official windows: exactly ROWS clips
    info = StoreInfo(arch='constructed', checkpoint_sha256='none', feature_kind='pooled', preprocessing={},
                     dtype='float32', config={'sampling': {'clip_len': 16, 'stride': 4}})
    db = {}
    store_path = root / 'feats.h5'
    with FeatureStore.create(store_path, info) as store:
        for split, count in (('Validation', train), ('Test', test)):
            for i in range(count):
                vid = f'video_{split.lower()}_{i:07d}'
                meta = VideoFeatureMeta.from_clip_sample(
                    vid, sliding_window_sample(num_frames, clip_len=16, stride=4, fps=FPS), stride=4)
                feats = rng.normal(0, 0.1, (ROWS, DIM))
                t = meta.centre_seconds
                anns, start = [], rng.uniform(0.5, 3)
                while True:
                    length = rng.uniform(1.5, 6.0)
                    if start + length > t[-1] - 0.5:
                        break
                    c = int(rng.integers(len(CLASSES)))
                    feats[(t >= start) & (t < start + length), c] += 1.0
                    anns.append({'label': CLASSES[c], 'segment': [round(start, 2), round(start + length, 2)],
                                 'label_id': c})
                    start += length + rng.uniform(1.0, 4.0)
                store.add(vid, feats, meta)
                db[vid] = {'subset': split, 'duration': num_frames / FPS, 'fps': FPS, 'annotations': anns}
    ann = root / 'thumos14.json'
    ann.write_text(json.dumps({'database': db}))
    (root / 'category_idx.txt').write_text(''.join(c + '\n' for c in CLASSES))
    return ann, store_path


def build_cfg(root: Path, ann: Path, store: Path, epochs: int) -> Config:
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict({
        'train_dataloader.dataset.ann_file': str(ann), 'train_dataloader.dataset.feature_store': str(store),
        'test_dataloader.dataset.ann_file': str(ann), 'test_dataloader.dataset.feature_store': str(store),
        'train_dataloader.dataset.max_seq_len': ROWS, 'model.data_preprocessor.max_seq_len': ROWS,
        'model.in_dim': DIM, 'model.num_classes': len(CLASSES), 'model.embed_dim': 32, 'model.head_dim': 32,
        'train_cfg.max_epochs': epochs, 'default_hooks.checkpoint.interval': epochs,
        'default_hooks.logger.interval': 50, 'test_evaluator.out_dir': str(root / 'out')})
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=2, convert_to_iter_based=True),
        dict(type='CosineAnnealingLR', eta_min=1e-8, by_epoch=True, begin=2, end=epochs, T_max=epochs - 2,
             convert_to_iter_based=True)]
    # 3 steps per epoch: an EMA decay of 0.9 leaves 0.9^(3 * epochs) < 1e-3 of the first step's weights
    cfg.custom_hooks = [dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=0.1)]
    cfg.work_dir = str(root / 'work')
    cfg.visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
    return cfg


def train_and_test(root: Path, train: int, test: int, epochs: int) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors on a shared 2-core machine
    try:
        ann, store = make_benchmark(root, train, test)
        cfg = build_cfg(root, ann, store, epochs)
        Runner.from_cfg(cfg).train()
        # Test the saved checkpoint in a fresh Runner, as tools/test.py does: the checkpoint holds the EMA weights.
        # (runner.test() right after runner.train() would not: EMAHook.before_run rebuilds the average from the raw
        # weights at the start of every run.)
        cfg.load_from = str(root / 'work' / f'epoch_{epochs}.pth')
        with mmengine_checkpoint_globals():  # torch >= 2.6 loads weights only (docs/ecosystem.md)
            return Runner.from_cfg(cfg).test()
    finally:
        torch.set_num_threads(threads)


def test_synthetic_config_learns_constructed_features(tmp_path):
    # 90 steps: instances are found (mAP@0.3 near 1) but boundaries are still loose; the slow test trains longer
    metrics = train_and_test(tmp_path, train=6, test=3, epochs=30)
    assert metrics['tad/mAP@0.30'] > 0.8, metrics
    assert metrics['tad/mAP'] > metrics['tad/random_mAP'] + 0.2, metrics
    # the metric's files (tools/test.py points out_dir at the work directory)
    preds = json.loads((tmp_path / 'out' / 'tad_predictions.json').read_text())['results']
    assert sorted(preds) == [f'video_test_{i:07d}' for i in range(3)]
    assert all(0 < len(d) <= 200 and set(d[0]) == {'segment', 'label', 'score'} for d in preds.values())
    saved = json.loads((tmp_path / 'out' / 'tad_results.json').read_text())
    assert saved['average_mAP'] == pytest.approx(metrics['tad/mAP'])
    assert set(saved['per_class_AP']) == set(CLASSES)
    # the charts (PNG IHDR: width, height at bytes 16..24): 5 x 3.5 in and 7 x (1.2 + 0.22 per class) in at 100 dpi
    for name, size in (('tad_map_vs_tiou.png', (500, 350)),
                       ('tad_per_class_ap.png', (700, round(100 * (1.2 + 0.22 * len(CLASSES)))))):
        png = (tmp_path / 'out' / name).read_bytes()
        assert png[:8] == b'\x89PNG\r\n\x1a\n'
        assert (int.from_bytes(png[16:20], 'big'), int.from_bytes(png[20:24], 'big')) == size, name


@pytest.mark.slow
def test_synthetic_config_reaches_high_map(tmp_path):
    metrics = train_and_test(tmp_path, train=6, test=3, epochs=80)  # 240 steps, ~3 min on a busy 2-core machine
    assert metrics['tad/mAP'] > 0.9 and metrics['tad/mAP@0.70'] > 0.8, metrics


def test_feature_configs_differ_only_in_features():
    folder = Path('configs/localization/thumos14')
    g = Config.fromfile(folder / 'actionformer_vit-giant-p14_videomaev2-k710-ft-feat_16x4_thumos14.py')
    assert g.model.in_dim == 1408 and g.train_cfg.max_epochs == 35 and g.train_dataloader.batch_size == 2
    assert g.model.window == 19 and g.model.center_sample_radius == 1.5 and len(g.model.regression_ranges) == 6
    assert g.model.test_cfg == dict(pre_nms_thresh=0.001, pre_nms_topk=2000, duration_thresh=0.05, nms_sigma=0.5,
                                    min_score=0.001, max_seg_num=200)
    for name, dim in (('vit-base-p16_videomaev2-vit-g-dist-k710', 768), ('vit-small-p16_videomaev2-vit-g-dist-k710',
                                                                        384)):
        c = Config.fromfile(folder / f'actionformer_{name}-feat_16x4_thumos14.py')
        assert c.model.in_dim == dim
        assert c.train_dataloader.dataset.feature_store == c.test_dataloader.dataset.feature_store != \
            g.train_dataloader.dataset.feature_store
        for key in ('optim_wrapper', 'param_scheduler', 'custom_hooks', 'train_cfg'):
            assert c[key] == g[key], key
        assert {k: v for k, v in c.model.items() if k != 'in_dim'} == {k: v for k, v in g.model.items()
                                                                         if k != 'in_dim'}
