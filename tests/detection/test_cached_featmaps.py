"""AVA from cached feature maps (docs/ava.md#from-cached-feature-maps): ``tools/extract_features.py --kind featmap``
stores, for the small synthetic AVA video of ``small_ava``, the maps the on-line detector computes for the same
keyframe clips; the head-only detector gives the on-line detector's logits from them; the cached config trains and
tests end to end through the Runner with the same metric and outputs.

The on-line reference runs one clip per batch: clips of different sizes are padded in a batch, and padded tokens take
part in attention, so batched on-line maps differ from per-clip ones (docs/ava.md#from-cached-feature-maps).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip('mmaction', reason='the configs use mmaction2 registries and runtime')
pytest.importorskip('av', reason='the synthetic videos are written with PyAV')

from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from tests.detection.test_end_to_end import CONFIG, retarget, small_ava  # noqa: E402,F401

CACHED_CONFIG = CONFIG.with_name('vit-test-p8_videomaev2-frozen-featmaps_1xb8-40e-adamw_synthetic-ava.py')


@pytest.fixture(scope='module')
def detector_and_ckpt(small_ava, tmp_path_factory):
    """The on-line config's detector (seeded random init, eval mode) and its weights saved as a checkpoint."""
    from tasks.detection import VideoMAEv2AVADetector

    model_cfg = Config.fromfile(str(CONFIG)).model.to_dict()
    model_cfg.pop('type')
    torch.manual_seed(3)
    detector = VideoMAEv2AVADetector(**model_cfg).eval()
    ckpt = tmp_path_factory.mktemp('ckpt') / 'detector.pth'
    torch.save({'state_dict': detector.state_dict()}, ckpt)
    return detector, ckpt


def extract(small_ava: Path, ckpt: Path, out: Path, store_dtype: str) -> Path:
    from feature_store.extract import main

    status = main([str(small_ava / 'videos'), '--kind', 'featmap', '--config', str(CONFIG), '--checkpoint', str(ckpt),
                   '--keyframes', str(small_ava / 'annotations' / 'ava_train_v2.2.csv'), '--store-dtype', store_dtype,
                   '--out', str(out), '--no-progress', '--device', 'cpu'])
    assert status == 0
    return out


def online_dataset(small_ava: Path):
    from tasks.detection import VideoMAEv2AVADataset

    data = Config.fromfile(str(CONFIG)).test_dataloader.dataset.to_dict()
    data.pop('type')
    ann = small_ava / 'annotations'
    data.update(ann_file=str(ann / 'ava_train_v2.2.csv'), data_prefix=str(small_ava / 'videos'),
                exclude_file=None, proposal_file=None, label_file=None, cache_videos_mb=0, test_mode=True)
    return VideoMAEv2AVADataset(**data)


@pytest.mark.parametrize('store_dtype', ['fp32', 'fp16'])
def test_stored_maps_and_logits_equal_online(small_ava, detector_and_ckpt, tmp_path, store_dtype, one_thread):
    from feature_store import FeatureStore
    from tasks.detection import VideoMAEv2AVACachedDetector, VideoMAEv2AVAFeatmapDataset

    detector, ckpt = detector_and_ckpt
    store = extract(small_ava, ckpt, tmp_path / 'maps.h5', store_dtype)
    online = online_dataset(small_ava)
    cached_ds = VideoMAEv2AVAFeatmapDataset(online.ann_file, online.data_prefix, test_mode=True, num_classes=6,
                                            clip_len=8, frame_interval=4, fps=None, test_short_side=96,
                                            featmap_store=str(store))
    head = VideoMAEv2AVACachedDetector(in_channels=64, patch_size=8, roi_head=dict(num_classes=6, dropout=0.0)).eval()
    head.load_state_dict({k: v for k, v in detector.state_dict().items() if k.startswith('roi_head.')})
    with FeatureStore.open(store) as s:
        assert (s.info.feature_kind, s.info.dtype) == ('featmap', {'fp32': 'float32', 'fp16': 'float16'}[store_dtype])
        assert s.info.config['model']['patch_size'] == 8 and s.info.config['model']['img_size'] == [96, 96]
    assert len(online) == len(cached_ds) >= 2
    for i in range(len(online)):
        item, cached = online[i], cached_ds[i]
        assert (cached['data_samples']['video_id'], cached['data_samples']['timestamp']) == \
            (item['data_samples']['video_id'], item['data_samples']['timestamp'])
        with torch.no_grad():
            batch = detector.data_preprocessor({'inputs': [item['inputs']], 'data_samples': [item['data_samples']]})
            ref_map = detector.backbone.forward_featmap(batch['inputs']).mean(dim=2)[0]  # what the head pools
            ref_logits = detector.logits(batch['inputs'], [item['data_samples']])
            logits = head.logits([cached['inputs']], [cached['data_samples']])
        stored = cached['inputs'].float()
        assert stored.shape == ref_map.shape == (64, 12, 16)  # 96x128 frames, 8-px patches
        torch.testing.assert_close(cached['data_samples']['boxes'], item['data_samples']['boxes'], rtol=0, atol=0)
        if store_dtype == 'fp32':
            assert (stored - ref_map).abs().max() <= 1e-5
            assert (logits - ref_logits).abs().max() <= 1e-5
        else:
            # float16 keeps 11 significant bits: each value within half a unit in the last place, 2^-11 relative
            bound = ref_map.abs() * 2.0 ** -11 + 1e-5
            assert ((stored - ref_map).abs() <= bound).all()
            # the logits then move by the rounding averaged over RoIAlign cells through the Linear layer
            assert (logits - ref_logits).abs().max() <= 1e-2


def test_cached_config_trains_and_tests_end_to_end(small_ava, tmp_path):
    """A frozen (random-init) backbone evaluated on synthetic AVA from its maps, through the Runner, the metric and
    its files, as the on-line config does."""
    from feature_store.extract import main
    from tasks.detection.evaluation import evaluate_ava_files

    ann = small_ava / 'annotations'
    store = tmp_path / 'maps.h5'
    assert main([str(small_ava / 'videos'), '--kind', 'featmap', '--config', str(CONFIG), '--random-init',
                 '--keyframes', str(ann / 'ava_train_v2.2.csv'), '--out', str(store), '--no-progress',
                 '--device', 'cpu']) == 0
    cfg = retarget(Config.fromfile(str(CACHED_CONFIG)), small_ava)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.merge_from_dict({
        'train_dataloader.dataset.featmap_store': str(store), 'test_dataloader.dataset.featmap_store': str(store),
        'train_cfg.max_epochs': 3, 'default_hooks.checkpoint.interval': 3, 'default_hooks.logger.interval': 1000,
        'test_dataloader.dataset.ann_file': str(ann / 'ava_train_v2.2.csv'),
        'test_dataloader.dataset.exclude_file': str(ann / 'ava_train_excluded_timestamps_v2.2.csv'),
        'test_dataloader.dataset.proposal_file': None,
        'test_evaluator.ann_file': str(ann / 'ava_train_v2.2.csv'),
        'test_evaluator.exclude_file': str(ann / 'ava_train_excluded_timestamps_v2.2.csv'),
        'test_evaluator.out_dir': str(tmp_path / 'out'), 'test_evaluator.baseline_seeds': 2,
    })
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=3)]
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    assert {'ava/mAP', 'ava/mAP_random', 'ava/mAP_oracle'} <= set(metrics)
    assert metrics['ava/mAP_oracle'] == pytest.approx(1.0)  # ground-truth boxes, as the on-line test
    result = evaluate_ava_files(ann / 'ava_train_v2.2.csv', tmp_path / 'out' / 'ava_predictions.csv',
                                ann / 'ava_action_list_v2.2_for_activitynet_2019.pbtxt',
                                ann / 'ava_train_excluded_timestamps_v2.2.csv')
    assert result.mAP == pytest.approx(metrics['ava/mAP'], abs=1e-9)
    assert (tmp_path / 'work' / 'epoch_3.pth').exists()
    assert not any(k.startswith('backbone.') for k in torch.load(tmp_path / 'work' / 'epoch_3.pth',
                                                                 weights_only=False)['state_dict'])


def test_epoch_cost_command_runs_both_paths_on_the_same_keyframes(tmp_path, capsys):
    """``python -m tasks.detection.bench`` (the README's cost line): both trainings run on the rendered keyframes, and
    a keyframe's map is C x H' x W' float16 values: vit_test has 64 channels, and the 96 x 128 synthetic frames at
    patch 8 give 12 x 16 cells. Times are reported, not checked."""
    from tasks.detection.bench import main

    result = main(['--videos', '1', '--seconds', '7', '--epochs', '1', '--json', str(tmp_path / 'cost.json')])
    assert result['keyframes'] == 3  # keyframes T0 + 2 .. T0 + duration - 2
    assert result['online_epoch_s'] > 0 and result['cached_epoch_s'] > 0 and result['extract_s'] > 0
    assert result['store_bytes_per_keyframe'] == 64 * 12 * 16 * 2
    assert 'per epoch on-line (frozen backbone)' in capsys.readouterr().out
    assert (tmp_path / 'cost.json').is_file()
