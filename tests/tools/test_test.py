"""``tools/test.py`` and the strict checkpoint loading behind it (``tasks/engine/runner.py``).

* :func:`tasks.engine.runner.load_for_test` on a tiny model: official / HF / mmengine files load and reproduce the
  weights exactly; a pre-training file (no head), a head of the wrong size or extra weights raise ``CheckpointError``
  naming the keys; a model with a ``label_map`` gets a 710-way head sliced;
* ``fill_out_dirs``: only metrics whose class takes ``out_dir`` and leave it unset get the work directory;
* end to end: the stock mmaction2 ViT config (shrunk to ``vit_test`` at 32 px, 5 clips x 3 crops unchanged) with
  ``test_evaluator = [VideoClsMetric, AccMetric]`` on generated mp4 files. The per-video scores written by
  ``VideoClsMetric`` must equal the mean over the 15 views of softmax(our model), computed by hand from the same
  pipeline, for an official-layout and an mmaction2-layout checkpoint; the metrics must equal mmaction2's own
  ``AccMetric`` and the hand-computed values; a checkpoint with a wrong head stops the run before testing.
* (slow) the same under ``torchrun`` with 2 gloo processes gives the same per-video scores;
* our classification config on the tiny synthetic set with videos missing from the list (one test batch of only
  missing videos): one process and 2 gloo processes under ``torchrun`` give the same metrics and per-video scores,
  the missing videos counted and left out, and only rank 0 prints the table and writes ``results.json``; a list
  whose only entry is missing ends with an error naming it.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

pytest.importorskip('mmaction', reason='the end-to-end test runs a stock mmaction2 config')
pytest.importorskip('decord', reason="the mmaction2 test pipeline decodes with decord")
pytest.importorskip('av', reason='test videos are written with PyAV')

from mmengine.config import Config  # noqa: E402

from backbone import CheckpointError, VideoMAEv2ViT, convert_state_dict  # noqa: E402
from tasks.engine.runner import fill_out_dirs, load_for_test, metrics_table  # noqa: E402
from tasks.data.video import write_video  # noqa: E402
from tests.torchrun_kit import run_torchrun  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STOCK_CONFIG = ROOT / 'configs' / 'recognition' / 'videomaev2' / \
    'vit-base-p16_videomaev2-vit-g-dist-k710-pre_16x4x1_kinetics-400.py'
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]) * 255
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]) * 255
IMG, NUM_CLASSES = 32, 6


@pytest.fixture(autouse=True)
def _skip_env_report(monkeypatch):
    """The Runner logs a system report (compilers, CUDA, OpenCV ...) that takes ~5 s per Runner on this machine;
    it is only logged, so the tests skip it."""
    import mmengine.runner.runner as runner_module
    monkeypatch.setattr(runner_module, 'collect_env', lambda: {'collect_env': 'skipped in tests'})


def load_tool():
    spec = importlib.util.spec_from_file_location('tool_test', ROOT / 'tools' / 'test.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------------------------------
# Strict loading on a tiny model
# ---------------------------------------------------------------------------------------------------------------------
class TinyClassifier(nn.Module):
    """A model whose only weights are a ViT named ``backbone`` with its head inside (our classification layout)."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.backbone = VideoMAEv2ViT('vit_test', img_size=32, all_frames=4, num_classes=num_classes)


def randomised(model: nn.Module, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return model


def assert_same_weights(model: nn.Module, reference: dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    assert set(state) == set(reference)
    for key, value in reference.items():
        assert torch.equal(state[key], value.to(state[key].dtype)), key


@pytest.mark.parametrize('layout', ['official-module-fp16', 'hf', 'mmaction2', 'mmengine'])
def test_load_for_test_layouts(tmp_path, layout):
    source = randomised(TinyClassifier(), seed=1)
    reference = source.state_dict()
    official = source.backbone.state_dict()
    path = tmp_path / 'ckpt.pth'
    if layout == 'official-module-fp16':  # DeepSpeed: fp16 under 'module' (docs/checkpoints.md#released-files)
        reference = {k: v.half().float() for k, v in reference.items()}
        torch.save({'module': {k: v.half() for k, v in official.items()}}, path)
        expected_layout = 'official'
    elif layout in ('hf', 'mmaction2'):  # mmaction2: a recognizer file with its fixed pos_embed, which is dropped
        torch.save(convert_state_dict(official, layout, grid=(2, 2, 2)), path)
        expected_layout = layout
    else:  # what tools/train.py writes: state_dict + meta + message hub with a HistoryBuffer (needs the allow-list)
        from mmengine.logging import HistoryBuffer
        torch.save({'meta': {'epoch': 3}, 'state_dict': {f'module.{k}': v for k, v in reference.items()},
                    'message_hub': {'log_scalars': {'train/loss': HistoryBuffer([1.0, 0.5], [1, 1])}}}, path)
        expected_layout = 'official'
    model = randomised(TinyClassifier(), seed=2)
    layout_used, loaded = load_for_test(model, path)
    assert layout_used == expected_layout
    assert sorted(loaded) == sorted(reference)  # in the model's names, as EMA hooks receive them
    assert_same_weights(model, reference)


def test_load_for_test_slices_the_head_of_a_model_with_a_label_map(tmp_path):
    """A classifier's label_map applies in strict loading as in its load_from: row i of the head = file row map[i]."""
    source = randomised(TinyClassifier(10), seed=1).backbone.state_dict()
    torch.save({'module': source}, tmp_path / 'k10.pth')
    model = TinyClassifier(3)
    model.label_map = [9, 0, 4]
    load_for_test(model, tmp_path / 'k10.pth')
    assert torch.equal(model.backbone.head.weight, source['head.weight'][[9, 0, 4]])
    assert torch.equal(model.backbone.head.bias, source['head.bias'][[9, 0, 4]])
    assert torch.equal(model.backbone.fc_norm.weight, source['fc_norm.weight'])


def test_load_for_test_refuses_partial_checkpoints(tmp_path):
    official = randomised(TinyClassifier(), seed=1).backbone.state_dict()
    # Pre-training file: encoder only (+ decoder keys); the classifier's fc_norm and head would stay random.
    pretrain = {f'encoder.{k}': v for k, v in official.items() if not k.startswith(('head.', 'fc_norm.'))}
    pretrain['encoder.norm.weight'], pretrain['encoder.norm.bias'] = torch.ones(64), torch.zeros(64)
    pretrain['decoder.head.weight'] = torch.zeros(1536, 32)
    torch.save({'model': pretrain}, tmp_path / 'pretrain.pth')
    with pytest.raises(CheckpointError, match=r'(?s)pretrain.pth \(pretrain layout\) does not fit the model '
                                              r'TinyClassifier: 4 model keys missing from the checkpoint: '
                                              r'backbone\.fc_norm\.bias, backbone\.fc_norm\.weight.*'
                                              r'checkpoint keys the model does not have: decoder\.head\.weight.*'
                                              r'no classifier'):
        load_for_test(TinyClassifier(), tmp_path / 'pretrain.pth')
    # A 10-way head for a 4-class model: shape error on the head, in the model's names.
    torch.save({'module': randomised(TinyClassifier(10), 1).backbone.state_dict()}, tmp_path / 'k10.pth')
    with pytest.raises(CheckpointError, match=r'shape of backbone\.head\.weight: checkpoint \(10, 64\) vs model '
                                              r'\(4, 64\)'):
        load_for_test(TinyClassifier(), tmp_path / 'k10.pth')
    # Extra weights are refused too.
    torch.save({'module': dict(official, extra=torch.zeros(1))}, tmp_path / 'extra.pth')
    with pytest.raises(CheckpointError, match='1 checkpoint keys the model does not have: extra$'):
        load_for_test(TinyClassifier(), tmp_path / 'extra.pth')
    with pytest.raises(CheckpointError, match='no such checkpoint'):
        load_for_test(TinyClassifier(), tmp_path / 'missing.pth')


def test_metrics_table():
    """Names left-aligned to the longest, numbers with 4 decimals, numpy scalars as numbers."""
    table = metrics_table({'acc/top1': 1 / 3, 'acc/mean1': np.float32(0.5), 'count': 3})
    assert table == ('metric     value\n'
                     'acc/top1   0.3333\n'
                     'acc/mean1  0.5000\n'
                     'count      3')
    assert metrics_table({}) == '(no metrics)'


# ---------------------------------------------------------------------------------------------------------------------
# out_dir contract
# ---------------------------------------------------------------------------------------------------------------------
def test_fill_out_dirs():
    cfg = Config(dict(default_scope='mmaction', custom_imports=dict(imports=['tasks.classification.metric']),
                      test_evaluator=[dict(type='VideoClsMetric'), dict(type='AccMetric'),
                                      dict(type='VideoClsMetric', out_dir='/keep', prefix='b'),
                                      dict(type='mmaction.AccMetric', prefix='c')]))
    import tasks.classification.metric  # noqa: F401
    assert fill_out_dirs(cfg, '/work') == ['VideoClsMetric']
    assert cfg.test_evaluator[0].out_dir == '/work'
    assert 'out_dir' not in cfg.test_evaluator[1] and 'out_dir' not in cfg.test_evaluator[3]  # AccMetric has none
    assert cfg.test_evaluator[2].out_dir == '/keep'
    # An Evaluator dict holding its metrics, and a single metric dict.
    cfg = Config(dict(test_evaluator=dict(type='Evaluator', metrics=[dict(type='VideoClsMetric')])))
    assert fill_out_dirs(cfg, '/w') == ['VideoClsMetric'] and cfg.test_evaluator.metrics[0].out_dir == '/w'
    cfg = Config(dict(test_evaluator=dict(type='VideoClsMetric')))
    fill_out_dirs(cfg, '/w')
    assert cfg.test_evaluator.out_dir == '/w'


# ---------------------------------------------------------------------------------------------------------------------
# End to end with the stock mmaction2 config
# ---------------------------------------------------------------------------------------------------------------------
def make_video(path: Path, seed: int, num_frames: int = 72) -> None:
    """64x48 texture shifting one pixel per frame, with a colour cast moving to the next channel every 20 frames (so
    clips and crops see different content)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 110, (48, 64, 3))
    base[..., seed % 3] += 60
    frames = []
    for i in range(num_frames):
        image = np.roll(base, i, axis=1)
        image[..., (seed + i // 20) % 3] += 80
        frames.append(image.clip(0, 255).astype(np.uint8))
    write_video(path, np.stack(frames), fps=30, preset='ultrafast')


@pytest.fixture(scope='module')
def stock_run(tmp_path_factory):
    """Three videos, a shrunk stock config file, an official and an mmaction2 checkpoint, and the hand scores."""
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope

    root = tmp_path_factory.mktemp('stock')
    names = ['vid_a', 'vid_b', 'vid_c']
    for i, name in enumerate(names):
        make_video(root / f'{name}.mp4', seed=i)

    cfg = Config.fromfile(STOCK_CONFIG)
    cfg.custom_imports = dict(imports=['backbone', 'tasks.classification.metric'], allow_failed_imports=False)
    cfg.model.backbone.update(arch='vit_test', img_size=IMG)
    cfg.model.cls_head.update(in_channels=64, num_classes=NUM_CLASSES)
    pipeline = cfg.test_dataloader.dataset.pipeline
    pipeline[3].scale, pipeline[4].crop_size = (-1, IMG), IMG
    pipeline[-1].meta_keys = ('img_shape', 'filename')  # so VideoClsMetric names videos by file
    cfg.test_dataloader.update(num_workers=0, persistent_workers=False)
    cfg.test_dataloader.dataset.update(ann_file=str(root / 'list.txt'), data_prefix=dict(video=str(root)))
    # mmaction2's own metric next to ours, under another prefix: an independent implementation of the same numbers.
    cfg.test_evaluator = [dict(type='VideoClsMetric'), dict(type='AccMetric', prefix='mmaction2')]
    cfg.load_from = str(root / 'does-not-exist.pth')  # must be ignored: the tool loads CHECKPOINT
    cfg.default_hooks.logger.interval = 1

    # Hand computation: the same pipeline (minus packing) -> normalise -> our model -> softmax per view -> mean.
    init_default_scope('mmaction')
    transform = Compose(copy.deepcopy(pipeline))
    torch.manual_seed(0)  # module-scoped: the autouse per-test seed has not run yet
    model = VideoMAEv2ViT('vit_test', img_size=IMG, all_frames=16, num_classes=NUM_CLASSES).eval()
    views = []
    for name in names:
        packed = transform(dict(filename=str(root / f'{name}.mp4'), label=0, start_index=0, modality='RGB'))
        assert packed['inputs'].shape == (15, 3, 16, IMG, IMG)  # 5 clips x 3 crops
        views.append((packed['inputs'].float() - IMAGENET_MEAN.view(3, 1, 1, 1)) / IMAGENET_STD.view(3, 1, 1, 1))
    with torch.no_grad():
        # Spread the head so the videos get different classes: rows 0..2 point along each video's mean feature.
        features = torch.stack([model.forward_features(v).mean(0) for v in views])
        directions = features - features.mean(0)
        model.head.weight.normal_(0, 0.3)
        model.head.bias.normal_(0, 0.3)
        model.head.weight[:3] = directions / directions.norm(dim=1, keepdim=True)
        logits = [model(v) for v in views]  # (15, K) each
    hand = torch.stack([lg.softmax(-1).mean(0) for lg in logits]).numpy()
    # 'prob' merging must differ from averaging logits, or the comparison could not tell them apart.
    assert not np.allclose(hand, torch.stack([lg.mean(0).softmax(-1) for lg in logits]).numpy(), atol=1e-4)

    # Labels from the hand scores: video 0 right, video 1 second (top-5 only), video 2 last of 6 (wrong).
    order = np.argsort(-hand, axis=1)
    assert np.diff(np.sort(hand, axis=1), axis=1).min() > 1e-4, 'scores too close to rank robustly'
    labels = [int(order[0, 0]), int(order[1, 1]), int(order[2, -1])]
    (root / 'list.txt').write_text(''.join(f'{n}.mp4 {y}\n' for n, y in zip(names, labels)))
    pred = order[:, 0]
    classes = sorted(set(labels) | set(pred.tolist()))
    recalls = [np.mean([p == c for p, y in zip(pred, labels) if y == c]) if c in labels else 0.0 for c in classes]

    official = model.state_dict()
    torch.save({'module': {k: v.half() for k, v in official.items()}}, root / 'official_fp16.pth')
    torch.save({'state_dict': convert_state_dict(official, 'mmaction2', grid=(8, IMG // 16, IMG // 16)),
                'meta': {}}, root / 'mmaction2.pth')
    torch.save({'module': VideoMAEv2ViT('vit_test', img_size=IMG, num_classes=NUM_CLASSES + 1).state_dict()},
               root / 'wrong_head.pth')
    cfg.dump(root / 'config.py')
    with torch.no_grad():  # scores of the fp16-rounded weights, for the official file
        model.load_state_dict({k: v.half().float() for k, v in official.items()})
        hand_fp16 = torch.stack([model(v).softmax(-1).mean(0) for v in views]).numpy()
    return dict(root=root, names=names, labels=labels, hand=hand, hand_fp16=hand_fp16,
                expected={'top1': 1 / 3, 'top5': 2 / 3, 'mean1': float(np.mean(recalls))})


def check_outputs(work: Path, run: dict, hand: np.ndarray, metrics: dict) -> None:
    with np.load(work / 'cls_scores.npz') as npz:
        assert npz['video_ids'].tolist() == run['names']  # ids from the file names, in list order
        np.testing.assert_array_equal(npz['labels'], run['labels'])
        np.testing.assert_allclose(npz['scores'], hand, rtol=1e-5, atol=1e-6)
    expected = run['expected']
    for prefix in ('acc', 'mmaction2'):  # ours and mmaction2's AccMetric agree with the hand values
        assert {k: metrics[f'{prefix}/{k}'] for k in expected} == pytest.approx(expected)
    assert json.loads((work / 'cls_results.json').read_text())['metrics'] == pytest.approx(
        {**{f'acc/{k}': v for k, v in expected.items()}, 'acc/num_failed': 0})
    # the picture is the confusion matrix of the hand-ranked predictions against the list's labels
    from PIL import Image

    from tasks.classification.metric import plot_confusion

    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (np.array(run['labels']), hand.argmax(axis=1)), 1)
    plot_confusion(matrix, work / 'expected.png', title=f"top-1 {expected['top1']:.3f}, mean class acc. "
                                                        f"{expected['mean1']:.3f}, {len(run['names'])} videos")
    with Image.open(work / 'cls_confusion.png') as drawn, Image.open(work / 'expected.png') as reference:
        assert drawn.format == 'PNG'
        np.testing.assert_array_equal(np.asarray(drawn), np.asarray(reference))


@pytest.mark.parametrize('checkpoint, ema', [('official_fp16.pth', False), ('mmaction2.pth', False),
                                             ('mmaction2.pth', True)])
def test_stock_config_end_to_end(stock_run, tmp_path, capsys, checkpoint, ema):
    """With ``EMAHook`` the averaged copy is made in ``before_run``, before the checkpoint is loaded; it must
    receive the loaded weights (``after_load_checkpoint``), or the test would swap in a random model."""
    run = stock_run
    work = tmp_path / 'work'
    out = tmp_path / 'metrics' / 'm.json'
    config = run['root'] / 'config.py'
    if ema:
        config = tmp_path / 'ema.py'
        config.write_text(f"_base_ = ['{run['root'] / 'config.py'}']\ncustom_hooks = [dict(type='EMAHook')]\n")
    args = [str(config), str(run['root'] / checkpoint), '--work-dir', str(work),
            '--cfg-options', f'experiment_name=test_tool_{checkpoint}_{ema}']
    if checkpoint == 'mmaction2.pth':
        args += ['--out', str(out)]
    metrics = load_tool().main(args)
    hand = run['hand_fp16'] if checkpoint == 'official_fp16.pth' else run['hand']
    check_outputs(work, run, hand, metrics)
    written = json.loads((out if checkpoint == 'mmaction2.pth' else work / 'results.json').read_text())
    assert written == pytest.approx(metrics)
    printed = capsys.readouterr().out
    assert re.search(rf'^acc/top1 +{run["expected"]["top1"]:.4f}$', printed, re.M)  # the table: name, value


def test_wrong_checkpoint_stops_before_testing(stock_run, tmp_path):
    run = stock_run
    with pytest.raises(CheckpointError, match=r'wrong_head\.pth \(official layout\) does not fit the model '
                                              r'Recognizer3D: .*shape of cls_head\.fc_cls\.weight: checkpoint '
                                              r'\(7, 64\) vs model \(6, 64\)'):
        load_tool().main([str(run['root'] / 'config.py'), str(run['root'] / 'wrong_head.pth'),
                          '--work-dir', str(tmp_path), '--cfg-options', 'experiment_name=test_tool_wrong'])
    assert not (tmp_path / 'results.json').exists() and not (tmp_path / 'cls_scores.npz').exists()
    with pytest.raises(SystemExit, match='does not exist'):
        load_tool().main([str(run['root'] / 'config.py'), str(tmp_path / 'nothing.pth'), '--work-dir', str(tmp_path)])


@pytest.mark.slow
def test_torchrun_two_processes(stock_run, tmp_path):
    """2 gloo processes: mmengine gathers both ranks' videos back into list order; same scores as one process."""
    run = stock_run
    proc = run_torchrun('test', [run['root'] / 'config.py', run['root'] / 'mmaction2.pth', '--work-dir', tmp_path,
                                 '--launcher', 'pytorch'])
    assert 'using the gloo backend' in proc.stdout  # the processes see no GPU (tests/torchrun_kit.py)
    metrics = json.loads((tmp_path / 'results.json').read_text())
    check_outputs(tmp_path, run, run['hand'], metrics)


# ---------------------------------------------------------------------------------------------------------------------
# Our classification config with missing videos, in one and in two processes
# ---------------------------------------------------------------------------------------------------------------------
SYNTHETIC_CONFIG = ROOT / 'configs' / 'recognition' / 'videomaev2' / 'vit-test-p16_videomaev2-ft_8x4x1_synthetic.py'


@pytest.fixture(scope='module')
def synthetic_run(tmp_path_factory):
    """The tiny synthetic classification set, a list of 4 videos and 3 missing ones, a config testing it in batches
    of 2, and a checkpoint of the config's model.

    List order v0, m1, v1, v2, m2, m3, v3: one process sees the batch (m2, m3) with no video that decodes; two
    processes get indices 0, 2, 4, 6 and 1, 3, 5 plus index 0 again as the sampler's padding, so a rank that drops
    its failed videos returns fewer results than samples and mmengine's gather keeps the padding (v0 twice)."""
    from tasks.classification.model import VideoMAEv2Classifier
    from tasks.data.synthetic import generate

    root = tmp_path_factory.mktemp('synthetic')
    generate(root / 'syn', 'tiny', 0, workers=1, log=lambda msg: None)
    data = root / 'syn' / 'classification'
    listed = [line.split() for line in (data / 'val_list_videos.txt').read_text().splitlines()][:4]
    entries = [listed[0], ['videos/missing1.mp4', '1'], listed[1], listed[2], ['videos/missing2.mp4', '2'],
               ['videos/missing3.mp4', '3'], listed[3]]
    (root / 'list.txt').write_text(''.join(f'{path} {label}\n' for path, label in entries))
    config = root / 'config.py'
    config.write_text(
        f"_base_ = ['{SYNTHETIC_CONFIG}']\n"
        f"test_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(\n"
        f"    ann_file='{root / 'list.txt'}', data_prefix='{data}', frame_interval=2))\n"
        "test_evaluator = dict(plot=False)\n"
        "visualizer = dict(vis_backends=[])\n")
    torch.manual_seed(0)
    model = VideoMAEv2Classifier(backbone=dict(arch='vit_test', img_size=96, all_frames=8, num_classes=10))
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, root / 'model.pth')
    return dict(root=root, config=config, checkpoint=root / 'model.pth',
                videos=[Path(path).name.split('.')[0] for path, _ in listed[:4]],
                labels=[int(label) for _, label in listed[:4]], missing=['missing1', 'missing2', 'missing3'])


def check_synthetic_outputs(work: Path, run: dict, metrics: dict) -> None:
    """The 4 decoded videos in list order, the metrics recomputed from their scores, the 3 missing ones counted."""
    with np.load(work / 'cls_scores.npz') as npz:
        assert npz['video_ids'].tolist() == run['videos']
        np.testing.assert_array_equal(npz['labels'], run['labels'])
        ranked = np.argsort(-npz['scores'], axis=1)
    labels = np.array(run['labels'])
    assert metrics['acc/top1'] == pytest.approx(np.mean(ranked[:, 0] == labels))
    assert metrics['acc/top5'] == pytest.approx(np.mean([y in r[:5] for y, r in zip(labels, ranked)]))
    assert metrics['acc/num_failed'] == 3
    results = json.loads((work / 'cls_results.json').read_text())
    assert results['num_videos'] == 4 and results['num_failed'] == 3
    assert [f['video_id'] for f in results['failed']] == run['missing']
    assert all(f['path'].endswith(f'{f["video_id"]}.mp4') and f['reason'] for f in results['failed'])


def test_missing_videos_in_one_and_two_processes(synthetic_run, tmp_path, capsys):
    """One process (a batch with no decodable video included), then ``torchrun`` with 2 gloo processes: the same
    metrics and per-video scores, and the table printed and results.json written once."""
    run = synthetic_run
    args = [str(run['config']), str(run['checkpoint'])]
    single = load_tool().main(args + ['--work-dir', str(tmp_path / 'one'),
                                      '--cfg-options', 'experiment_name=test_tool_synthetic_one'])
    check_synthetic_outputs(tmp_path / 'one', run, single)
    assert capsys.readouterr().out.count('metrics written to') == 1

    proc = run_torchrun('test', args + ['--work-dir', str(tmp_path / 'two'), '--launcher', 'pytorch'])
    streams = proc.stdout + proc.stderr
    # rank 0 alone prints the table; a second rank would print it too, and write results.json with it
    assert streams.count('metrics written to') == 1, streams[-3000:]
    assert len(re.findall(r'^acc/num_failed +3$', streams, re.M)) == 1
    two = json.loads((tmp_path / 'two' / 'results.json').read_text())
    check_synthetic_outputs(tmp_path / 'two', run, two)
    assert two == pytest.approx(json.loads((tmp_path / 'one' / 'results.json').read_text()))
    with np.load(tmp_path / 'one' / 'cls_scores.npz') as one, np.load(tmp_path / 'two' / 'cls_scores.npz') as two:
        assert two['video_ids'].tolist() == one['video_ids'].tolist()
        np.testing.assert_allclose(two['scores'], one['scores'], rtol=1e-5, atol=1e-6)


def test_a_list_with_no_decodable_video_names_it(synthetic_run, tmp_path):
    """Issue: a list whose only entry is missing stopped with ZeroDivisionError deep in the model."""
    run = synthetic_run
    (tmp_path / 'only_missing.txt').write_text('videos/missing1.mp4 1\n')
    with pytest.raises(SystemExit, match=r'^tools/test\.py: VideoClsMetric: none of the 1 test videos could be '
                                         r'decoded.*failed: missing1 \(.*missing1\.mp4: '):
        load_tool().main([str(run['config']), str(run['checkpoint']), '--work-dir', str(tmp_path),
                          '--cfg-options', f'test_dataloader.dataset.ann_file={tmp_path / "only_missing.txt"}',
                          'experiment_name=test_tool_synthetic_none'])
    assert not (tmp_path / 'results.json').exists()


def test_amp_tests_under_bf16_autocast(stock_run, tmp_path):
    """``--amp``: the same stock run under bfloat16 autocast. bf16 keeps 8 significant bits, so the softmax scores
    move by about 2^-8 of the logits' scale; they must differ from the fp32 ones (autocast was on) yet stay within
    2e-2 of the hand-computed scores, and the ranking of this set (its top-1/top-5) must not change."""
    run = stock_run
    work = tmp_path / 'work'
    metrics = load_tool().main([str(run['root'] / 'config.py'), str(run['root'] / 'mmaction2.pth'), '--amp',
                                '--work-dir', str(work), '--cfg-options', 'experiment_name=test_tool_amp'])
    with np.load(work / 'cls_scores.npz') as npz:
        scores = npz['scores']
    assert not np.array_equal(scores, run['hand'].astype(scores.dtype))
    np.testing.assert_allclose(scores, run['hand'], atol=2e-2)
    assert {k: metrics[f'acc/{k}'] for k in run['expected']} == pytest.approx(run['expected'])


def test_amp_refuses_a_float16_test_loop():
    from mmengine.config import Config

    from tasks.engine.wrappers import use_bf16_test_loop

    cfg = Config(dict(test_cfg=dict(type='TestLoop')))
    use_bf16_test_loop(cfg)
    assert cfg.test_cfg == dict(type='BF16TestLoop')
    with pytest.raises(ValueError, match='exclude each other'):
        use_bf16_test_loop(Config(dict(test_cfg=dict(type='TestLoop', fp16=True))))
    with pytest.raises(ValueError, match='not mmengine'):
        use_bf16_test_loop(Config(dict(test_cfg=dict(type='MyLoop'))))
