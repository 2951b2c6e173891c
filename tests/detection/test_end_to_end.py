"""AVA end to end through the synthetic config and the mmengine Runner: train, test, submission csv, evaluation.

* quick: a 7-s synthetic AVA video (4 keyframes, 3 actors) rendered into a temporary folder; the synthetic config
  trained through ``Runner.from_cfg(cfg).train()`` until it fits those keyframes, then ``.test()`` on the same
  keyframes with their ground-truth boxes. Its mAP must be close to 1 while random scores on the same boxes reach
  only the share of positives, and the files the metric writes must evaluate to the same numbers with
  ``tools/eval_ava.py``'s functions;
* slow (``-m slow``): the ``default`` synthetic preset (8 train + 3 val videos of 12 s), the synthetic config as it
  is (proposals at test time, official protocol): the mAP on unseen videos must be far above random detections.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip('mmaction', reason='the configs use mmaction2 registries and runtime')
pytest.importorskip('av', reason='the synthetic videos are written with PyAV')

from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'configs' / 'detection' / 'ava' / 'vit-test-p8_videomaev2_1xb8-8x4x1-40e-adamw_synthetic-ava.py'
CONFIG_DATA_ROOT = 'data/synthetic/ava'


def render_ava(root: Path, *, duration: int, train_videos: int, val_videos: int, max_actors: int, seed: int) -> Path:
    """Render a small AVA-like benchmark with the synthetic generator's own functions (no preset needed)."""
    from tasks.data.synthetic import ava

    cfg = ava.AVAConfig(128, 96, duration=duration, train_videos=train_videos, val_videos=val_videos,
                        max_actors=max_actors)
    jobs = ava.make_jobs(cfg, seed, root)
    ava.write_annotations(root, jobs, [ava.run_job(job) for job in jobs])
    return root


def retarget(cfg: Config, data_root: Path) -> Config:
    """Point every path of the config at ``data_root`` instead of the repository's data/synthetic/ava."""
    def fix(node):
        if isinstance(node, dict):
            return {k: fix(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fix(v) for v in node]
        if isinstance(node, str) and node.startswith(CONFIG_DATA_ROOT):
            return str(data_root) + node[len(CONFIG_DATA_ROOT):]
        return node
    for key in ('train_dataloader', 'test_dataloader', 'test_evaluator'):
        cfg[key] = fix(cfg[key].to_dict() if hasattr(cfg[key], 'to_dict') else cfg[key])
    return cfg


@pytest.fixture(scope='module')
def small_ava(tmp_path_factory):
    # One 7-s training video: keyframes 902..905, 3 actors, none excluded (seed 5). Every evaluated class occurs on
    # 33-67 % of the 12 boxes, so random scores stay far from a perfect ranking.
    return render_ava(tmp_path_factory.mktemp('ava_small'), duration=7, train_videos=1, val_videos=0, max_actors=3,
                      seed=5)


def test_config_overfits_training_keyframes(small_ava, tmp_path):
    from tasks.data.annotations import read_ava_csv
    from tasks.detection.evaluation import evaluate_ava_files, plot_per_class_ap

    ann = small_ava / 'annotations'
    cfg = retarget(Config.fromfile(str(CONFIG)), small_ava)
    cfg.work_dir = str(tmp_path / 'work')
    n_train = len({(b.video_id, b.timestamp) for b in read_ava_csv(ann / 'ava_train_v2.2.csv')})
    assert n_train >= 2
    # Fit the training keyframes: every keyframe in each step, no dropout, a fixed lr, 50 steps.
    cfg.merge_from_dict({
        'train_dataloader.batch_size': n_train, 'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'model.roi_head.dropout': 0.0, 'optim_wrapper.optimizer.lr': 5e-3,
        'train_cfg.max_epochs': 50, 'default_hooks.checkpoint.interval': 50, 'default_hooks.logger.interval': 1000,
        # test on the training keyframes, with their ground-truth boxes (no proposal file: oracle localisation)
        'test_dataloader.num_workers': 0,
        'test_dataloader.dataset.ann_file': str(ann / 'ava_train_v2.2.csv'),
        'test_dataloader.dataset.exclude_file': str(ann / 'ava_train_excluded_timestamps_v2.2.csv'),
        'test_dataloader.dataset.proposal_file': None,
        'test_evaluator.ann_file': str(ann / 'ava_train_v2.2.csv'),
        'test_evaluator.exclude_file': str(ann / 'ava_train_excluded_timestamps_v2.2.csv'),
        'test_evaluator.out_dir': str(tmp_path / 'out'),
        'test_evaluator.baseline_seeds': 20,
    })
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=50)]
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    # every evaluated class that occurs is recognised on the keyframes it was trained on ...
    assert metrics['ava/mAP'] > 0.9, metrics
    # ... while random scores on the same boxes only reach about the share of boxes showing each class
    assert metrics['ava/mAP_random'] < 0.7, metrics
    assert metrics['ava/mAP'] - metrics['ava/mAP_random'] > 0.25, metrics
    # ... and random boxes with random scores (no localisation either) score next to nothing
    assert metrics['ava/mAP_random_boxes'] < 0.1, metrics
    # the proposals are the true boxes here, so perfect action scores would reach 1
    assert metrics['ava/mAP_oracle'] == pytest.approx(1.0), metrics

    # the metric's files: the submission csv evaluates to the same numbers, the JSON and the PNG are there
    out = tmp_path / 'out'
    result = evaluate_ava_files(ann / 'ava_train_v2.2.csv', out / 'ava_predictions.csv',
                                ann / 'ava_action_list_v2.2_for_activitynet_2019.pbtxt',
                                ann / 'ava_train_excluded_timestamps_v2.2.csv')
    assert result.mAP == pytest.approx(metrics['ava/mAP'], abs=1e-9)
    data = json.loads((out / 'ava_results.json').read_text())
    assert data['mAP'] == pytest.approx(metrics['ava/mAP'], abs=1e-9)
    assert data['random_detections_mAP'] == pytest.approx(metrics['ava/mAP_random'], abs=1e-9)
    assert data['random_boxes_mAP'] == pytest.approx(metrics['ava/mAP_random_boxes'], abs=1e-9)
    assert data['oracle_scores_mAP'] == pytest.approx(1.0)
    assert {c['name'] for c in data['per_class']} == {'stand', 'walk', 'jump', 'spin', 'pulse'}
    # the chart is the per-class AP of the csv's own evaluation, 700 px wide and (1.2 + 0.22 x 5 classes) inches high
    from PIL import Image

    plot_per_class_ap(result, tmp_path / 'expected.png', baseline=data['random_detections_mAP'],
                      ceiling=data['oracle_scores_mAP'])
    with Image.open(out / 'ava_per_class_ap.png') as drawn, Image.open(tmp_path / 'expected.png') as reference:
        assert (drawn.format, drawn.size) == ('PNG', (700, 230))
        np.testing.assert_array_equal(np.asarray(drawn), np.asarray(reference))
    rows = (out / 'ava_predictions.csv').read_text().splitlines()
    assert rows and all(len(r.split(',')) == 8 for r in rows)
    assert {int(r.split(',')[6]) for r in rows} <= {1, 2, 3, 4, 5}  # 'flash' (6) is trained but not written


def test_metric_without_out_dir_writes_nothing(small_ava, tmp_path, monkeypatch):
    # tools/test.py fills out_dir only when it is unset; with None the metric returns numbers and writes no file
    from tasks.detection import VideoMAEv2AVAMetric

    ann = small_ava / 'annotations'
    metric = VideoMAEv2AVAMetric(str(ann / 'ava_train_v2.2.csv'),
                                 str(ann / 'ava_action_list_v2.2_for_activitynet_2019.pbtxt'), baseline_seeds=1)
    monkeypatch.chdir(tmp_path)
    metric.process({}, [dict(video_id='x', timestamp=902, boxes=np.array([[0, 0, 1, 1]]), scores=np.full((1, 6), .5),
                             failed=None)])
    metrics = metric.compute_metrics(metric.results)
    assert metrics['mAP'] == 0.0 and not any(tmp_path.iterdir())


@pytest.mark.slow
def test_default_preset_above_random(tmp_path):
    """The demo setting: the synthetic config on the `default` preset, tested on unseen videos with proposals."""
    from tasks.data.synthetic import generate

    out = tmp_path / 'synthetic'
    generate(out, 'default', seed=0)
    cfg = retarget(Config.fromfile(str(CONFIG)), out / 'ava')
    cfg.work_dir = str(tmp_path / 'work')
    cfg.merge_from_dict({'test_evaluator.out_dir': str(tmp_path / 'work')})
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    # measured: 0.703 against 0.522 +- 0.019 for random scores on the same proposals and 0.000 for random boxes
    # (seed-0 benchmark; the run is deterministic). Per class stand/walk/jump/spin gain 0.2-0.3 AP over their share of
    # boxes; pulse (a +-22 % size change) is not learnt by this tiny model in 40 epochs.
    assert not math.isnan(metrics['ava/mAP'])
    assert metrics['ava/mAP'] > 0.6 and metrics['ava/mAP'] > metrics['ava/mAP_random'] + 0.08, metrics
    assert metrics['ava/mAP_random_boxes'] < 0.1, metrics
    shutil.rmtree(out, ignore_errors=True)
