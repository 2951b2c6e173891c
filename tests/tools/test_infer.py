"""``tools/infer.py`` (``tasks/classification/infer.py``, ``tasks/localization/infer.py``) on the tiny synthetic
benchmark, with weights made here.

* classification of 2 videos: the top-k scores printed and written (json, csv) are those ``tools/test.py`` writes to
  ``cls_scores.npz`` for the same videos with the same config and checkpoint, so the protocol is the config's test
  protocol (2 clips x 3 crops, softmax per view, mean);
* ``--long``: windows cover the whole video, times are the container's timestamps, the timeline is a PNG of the
  expected size, and every window's scores equal the model run by hand on the same frames (decoded by index, the
  config's crops, ImageNet normalisation, softmax per crop, mean);
* localization: features extracted on the fly with the settings a feature store records give the segments the
  detector finds on that store's own features and centre times; the ``--extract`` route gives the same; a backbone
  file that is not the store's is refused;
* errors: a missing video, a config of neither task, a checkpoint that does not fit, class names of the wrong count;
* the stock mmaction2 config (``Recognizer3D`` and its own pipeline) gives the scores computed by hand in
  ``tests/tools/test_test.py``.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip('av', reason='the synthetic benchmark is written with PyAV')

from tasks.data.video import VideoReader  # noqa: E402
from tests.tools.test_test import stock_run  # noqa: E402,F401  (the shrunk stock config, its videos and hand scores)

ROOT = Path(__file__).resolve().parents[2]
CLS_CONFIG = ROOT / 'configs' / 'recognition' / 'videomaev2' / 'vit-test-p16_videomaev2-ft_8x4x1_synthetic.py'
TAD_CONFIG = ROOT / 'configs' / 'localization' / 'thumos14' / \
    'actionformer_vit-test-p16_synthetic-feat_16x4_synthetic-thumos.py'
NEITHER_CONFIG = ROOT / 'configs' / 'pretrain' / 'videomaev2' / 'vit-test-p16_videomaev2-pt-2e_8x2x1_synthetic.py'
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1, 1) * 255
STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1, 1) * 255


def load_tool():
    spec = importlib.util.spec_from_file_location('tool_infer', ROOT / 'tools' / 'infer.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _skip_env_report(monkeypatch):
    """The Runner's system report (~5 s per Runner) is only logged; skipped as in tests/tools/test_test.py."""
    import mmengine.runner.runner as runner_module
    monkeypatch.setattr(runner_module, 'collect_env', lambda: {'collect_env': 'skipped in tests'})


@pytest.fixture(scope='module')
def bench(tmp_path_factory):
    """The tiny benchmark, a classification config testing in one process, a classifier checkpoint whose head
    spreads the scores, a 7-class checkpoint that does not fit, and a one-thread torch for the module."""
    from tasks.classification.model import VideoMAEv2Classifier
    from tasks.data.synthetic import generate

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors on a shared machine
    root = tmp_path_factory.mktemp('infer')
    generate(root / 'syn', 'tiny', 0, workers=1, log=lambda msg: None)
    config = root / 'cls.py'
    # 16-frame tiny clips: clips of 8 frames every 2nd frame, as tests/tools/test_test.py tests them
    config.write_text(f"_base_ = ['{CLS_CONFIG}']\n"
                      "test_dataloader = dict(num_workers=0, persistent_workers=False,\n"
                      "                       dataset=dict(frame_interval=2))\n"
                      "test_evaluator = dict(plot=False)\n"
                      "visualizer = dict(vis_backends=[])\n")
    torch.manual_seed(0)
    model = VideoMAEv2Classifier(backbone=dict(arch='vit_test', img_size=96, all_frames=8, num_classes=10))
    with torch.no_grad():  # the recipe's 0.001-scaled head gives 0.1 everywhere, which would rank nothing
        model.backbone.head.weight.normal_(0, 1.0)
        model.backbone.head.bias.normal_(0, 0.5)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, root / 'cls.pth')
    wrong = VideoMAEv2Classifier(backbone=dict(arch='vit_test', img_size=96, all_frames=8, num_classes=7))
    torch.save({'state_dict': wrong.state_dict(), 'meta': {}}, root / 'cls7.pth')
    data = root / 'syn' / 'classification'
    listed = [line.split() for line in (data / 'val_list_videos.txt').read_text().splitlines()][:2]
    yield dict(root=root, config=config, checkpoint=root / 'cls.pth', model=model.eval(), data=data,
               videos=[data / path for path, _ in listed], listed=listed,
               long_video=sorted((root / 'syn' / 'thumos' / 'videos').glob('*.mp4'))[0])
    torch.set_num_threads(threads)


def args_for(bench, *extra) -> list[str]:
    return ['--config', str(bench['config']), '--checkpoint', str(bench['checkpoint']), '--device', 'cpu',
            '--no-progress', *map(str, extra)]


# ---------------------------------------------------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------------------------------------------------
def test_classification_scores_are_those_of_the_test_protocol(bench, tmp_path, capsys):
    from tasks.engine.runner import evaluate_checkpoint

    out = tmp_path / 'top.json'
    results = load_tool().main([*map(str, bench['videos']), *args_for(bench, '--topk', 3, '--out', out)])
    printed = capsys.readouterr().out
    # tools/test.py's metric path on the same two videos, same config and checkpoint
    (tmp_path / 'list.txt').write_text(''.join(f'{path} {label}\n' for path, label in bench['listed']))
    evaluate_checkpoint(str(bench['config']), str(bench['checkpoint']), work_dir=str(tmp_path / 'work'),
                        cfg_options={'test_dataloader.dataset.ann_file': str(tmp_path / 'list.txt'),
                                     'test_dataloader.dataset.data_prefix': str(bench['data']),
                                     'experiment_name': 'test_infer_cls'})
    with np.load(tmp_path / 'work' / 'cls_scores.npz') as npz:
        reference, ids = npz['scores'], npz['video_ids'].tolist()
    assert ids == [v.name.split('.')[0] for v in bench['videos']]
    written = json.loads(out.read_text())['videos']
    assert [Path(v['video']) for v in written] == bench['videos']
    for i, video in enumerate(written):
        order = np.argsort(-reference[i], kind='stable')[:3]
        assert [c['label'] for c in video['topk']] == order.tolist()
        np.testing.assert_allclose([c['score'] for c in video['topk']], reference[i][order], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(results[i].scores, reference[i], rtol=1e-5, atol=1e-7)
        assert video['failure'] is None
        # printed: rank, score with 4 decimals, the config's class name, the index
        best = video['topk'][0]
        assert re.search(rf'^  1\. {best["score"]:.4f}  {re.escape(best["name"])} \({best["label"]}\)$', printed, re.M)
    # names from the config's class_names, and scores spread enough for the ranking to mean something
    from mmengine.config import Config

    names = Config.fromfile(bench['config']).test_dataloader.dataset.class_names
    assert all(c['name'] == names[c['label']] for video in written for c in video['topk'])
    assert np.ptp(reference, axis=1).min() > 0.05

    # csv: one row per video and rank, the same numbers; --labels renames the classes
    labels = tmp_path / 'names.txt'
    labels.write_text(''.join(f'name {i}\n' for i in range(10)))
    load_tool().main([*map(str, bench['videos']), *args_for(bench, '--topk', 2, '--out', tmp_path / 'top.csv',
                                                            '--labels', labels)])
    rows = list(csv.DictReader((tmp_path / 'top.csv').open()))
    assert [(r['video'], r['rank']) for r in rows] == [(str(v), k) for v in bench['videos'] for k in ('1', '2')]
    for r in rows:
        i = [str(v) for v in bench['videos']].index(r['video'])
        assert r['name'] == f'name {r["label"]}'
        assert float(r['score']) == pytest.approx(reference[i][int(r['label'])], rel=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# untrimmed videos
# ---------------------------------------------------------------------------------------------------------------------
def test_long_windows_cover_the_video_and_match_the_model_by_hand(bench, tmp_path):
    from PIL import Image

    from tasks.classification.transforms import multi_view_test

    video = bench['long_video']
    out = tmp_path / 'long.json'
    load_tool().main([str(video), *args_for(bench, '--long', '--out', out, '--batch-size', 3)])
    result = json.loads(out.read_text())['videos'][0]
    windows = result['windows']
    with VideoReader(video) as reader:
        n, timestamps = reader.num_frames, reader.timestamps
        # clips of 8 frames every 2nd (the config's test clip): 15-frame windows, a new one every 8 frames
        starts = [w['first_frame'] for w in windows]
        assert starts[:-1] == list(range(0, n - 15 + 1, 8)) and windows[-1]['last_frame'] == n - 1
        assert all(b['first_frame'] <= a['last_frame'] + 1 for a, b in zip(windows, windows[1:]))  # no gap
        assert result['num_frames'] == n and result['duration'] == pytest.approx(reader.duration)
        model = bench['model']
        for w in windows:
            frames = np.arange(w['first_frame'], w['last_frame'] + 1, 2)
            assert len(frames) == 8
            assert w['start'] == pytest.approx(timestamps[frames[0]])
            assert w['centre'] == pytest.approx(timestamps[frames[4]])
            views = multi_view_test(reader.get_frames(frames)[None], 96, 96, 3)  # the config's 3 crops
            with torch.no_grad():
                probs = model.backbone((views.float() - MEAN) / STD).softmax(-1).mean(0).numpy()
            order = np.argsort(-probs, kind='stable')[:5]
            assert [c['label'] for c in w['topk']] == order.tolist()
            np.testing.assert_allclose([c['score'] for c in w['topk']], probs[order], rtol=1e-5, atol=1e-7)
    picture = Path(result['timeline'])
    assert picture == tmp_path / f'{video.stem}.timeline.png'
    assert picture.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    with Image.open(picture) as image:
        assert image.size == (900, 360)  # 9 x 3.6 inches at 100 dpi


# ---------------------------------------------------------------------------------------------------------------------
# localization
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def tad(bench):
    """A tiny backbone file, a store of one video extracted with it (16-frame windows every 4, squash 32x32, no
    mean/std), and an ActionFormer checkpoint of the synthetic config (64-d input) with a spread classifier."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    from backbone import VideoMAEv2ViT
    from feature_store.extract import ExtractConfig, Preprocess, extract_to_store

    root = bench['root'] / 'tad'
    root.mkdir()
    torch.manual_seed(1)
    torch.save({'model': VideoMAEv2ViT('vit_test', img_size=32, all_frames=16, num_classes=0).state_dict()},
               root / 'backbone.pth')
    torch.save({'model': VideoMAEv2ViT('vit_test', img_size=32, all_frames=16, num_classes=0).state_dict()},
               root / 'other_backbone.pth')
    video = bench['long_video']
    (root / 'videos').mkdir()
    (root / 'videos' / video.name).symlink_to(video)
    extract = ExtractConfig(arch='vit_test', checkpoint=str(root / 'backbone.pth'), clip_len=16, stride=4,
                            preprocess=Preprocess('squash', (32, 32), normalize=False), device='cpu', num_workers=0)
    extract_to_store(root / 'videos', root / 'feats.h5', extract, progress=False)
    cfg = Config.fromfile(TAD_CONFIG)
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    with torch.no_grad():  # scores well above the 0.01 prior, so the ranking is not all ties
        model.cls_head.out.bias.zero_()
        model.cls_head.out.weight.normal_(0, 0.5)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, root / 'tad.pth')
    return dict(root=root, video=video, store=root / 'feats.h5', checkpoint=root / 'tad.pth', model=model.eval())


def test_localization_on_the_fly_gives_the_segments_of_the_store(bench, tad, tmp_path, capsys, monkeypatch):
    from feature_store import FeatureStore

    # the config's relative ann_file (data/synthetic/...) would name the classes wherever `make demo` generated it
    monkeypatch.chdir(tmp_path)
    out = tmp_path / 'segments.json'
    load_tool().main([str(tad['video']), '--config', str(TAD_CONFIG), '--checkpoint', str(tad['checkpoint']),
                      '--features', str(tad['store']), '--device', 'cpu', '--no-progress', '--out', str(out)])
    written = json.loads(out.read_text())
    segments = written['videos'][0]['segments']
    assert written['task'] == 'localization' and segments
    # the detector on the store's own features and metadata (its row -> seconds map: the stored centre times)
    with FeatureStore.open(tad['store']) as store:
        feats, meta = store.read(tad['video'].stem)
    assert written['videos'][0]['num_rows'] == len(feats) == len(meta.centre_times)
    sample = dict(video_id=meta.video_id, meta=meta, row_offset=0, duration=meta.duration)
    with torch.no_grad():
        expected = tad['model'].test_step(dict(inputs=[torch.from_numpy(np.asarray(feats)).T.contiguous()],
                                                data_samples=[sample]))[0]
    order = np.argsort(-expected['scores'], kind='stable')
    np.testing.assert_allclose([[s['start'], s['end']] for s in segments], expected['segments'][order], atol=1e-5)
    np.testing.assert_allclose([s['score'] for s in segments], expected['scores'][order], rtol=1e-4, atol=1e-6)
    assert [s['label'] for s in segments] == expected['labels'][order].tolist()
    assert all(0 <= s['start'] <= s['end'] <= meta.duration for s in segments)
    # a segment of whole rows maps onto the stored centre times: rows -> seconds is the store's own
    assert meta.row_to_seconds(np.arange(len(feats))) == pytest.approx(meta.centre_times)
    printed = capsys.readouterr().out
    best = segments[0]
    assert re.search(rf'^ +{best["start"]:.2f} - +{best["end"]:.2f} s  {best["score"]:.4f}  class {best["label"]} '
                     rf'\({best["label"]}\)$', printed, re.M)
    picture = tmp_path / f'{tad["video"].stem}.segments.png'
    assert written['videos'][0]['timeline'] == str(picture) and picture.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'

    # the same settings given as --extract options (no store) give the same segments, written as csv
    load_tool().main([str(tad['video']), '--config', str(TAD_CONFIG), '--checkpoint', str(tad['checkpoint']),
                      '--extract', 'arch=vit_test', f'checkpoint={tad["root"] / "backbone.pth"}', 'size=32',
                      'clip_len=16', 'stride=4', 'normalize=False', '--device', 'cpu', '--no-progress',
                      '--out', str(tmp_path / 'segments.csv')])
    rows = list(csv.DictReader((tmp_path / 'segments.csv').open()))
    np.testing.assert_allclose([[float(r['start']), float(r['end'])] for r in rows],
                               [[s['start'], s['end']] for s in segments], atol=1e-5)


def test_localization_refuses_a_backbone_that_is_not_the_stores(bench, tad):
    base = [str(tad['video']), '--config', str(TAD_CONFIG), '--checkpoint', str(tad['checkpoint']), '--device', 'cpu',
            '--no-progress']
    with pytest.raises(SystemExit, match=r'the backbone .*other_backbone\.pth is not the one the features of feature '
                                         r'store .*feats\.h5 were made with'):
        load_tool().main([*base, '--features', str(tad['store']),
                          '--backbone-checkpoint', str(tad['root'] / 'other_backbone.pth')])
    # the config's own store does not exist here and it has no online settings: say what to give
    with pytest.raises(SystemExit, match=r'cannot tell how to extract the features .* give --features STORE\.h5'):
        load_tool().main(base)
    # a 384-d backbone for the 64-d detector
    with pytest.raises(SystemExit, match=r'the detector takes 64-d features \(model\.in_dim\) but the backbone from '
                                         r'--extract options \(vit_small\) gives 384-d ones'):
        load_tool().main([*base, '--extract', 'arch=vit_small', 'size=32', 'random_init=True'])


# ---------------------------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------------------------
def test_clear_errors(bench, tmp_path):
    tool = load_tool()
    video = str(bench['videos'][0])
    with pytest.raises(SystemExit, match=r'^tools/infer\.py: error: 1 of 2 videos do not exist: .*nope\.mp4$'):
        tool.main([video, str(tmp_path / 'nope.mp4'), *args_for(bench)])
    with pytest.raises(SystemExit, match=r"model\.type 'VideoMAEv2PretrainModel' is neither a classifier "
                                         r"\(VideoMAEv2Classifier, Recognizer3D\) nor an action detector "
                                         r"\(ActionFormerTAD\)"):
        tool.main([video, '--config', str(NEITHER_CONFIG), '--checkpoint', str(bench['checkpoint'])])
    with pytest.raises(SystemExit, match=r'cls7\.pth \(official layout\) does not fit the model '
                                         r'VideoMAEv2Classifier.*shape of backbone\.head\.weight: '
                                         r'checkpoint \(7, 64\) vs model \(10, 64\)'):
        tool.main([video, '--config', str(bench['config']), '--checkpoint', str(bench['root'] / 'cls7.pth')])
    # --checkpoint goes through the one loader's resolver: a path or a released name (the README's Quick start)
    with pytest.raises(SystemExit, match=r'vit_b_k710_distil: no such checkpoint file, and not a released '
                                         r'checkpoint name \(known names: .*vit_b_k710_distill'):
        tool.main([video, '--config', str(bench['config']), '--checkpoint', 'vit_b_k710_distil'])
    (tmp_path / 'three.txt').write_text('a\nb\nc\n')
    with pytest.raises(SystemExit, match=r'--labels .*three\.txt: 3 names for a head of 10 classes'):
        tool.main([video, *args_for(bench, '--labels', tmp_path / 'three.txt')])
    with pytest.raises(SystemExit, match=r'--out .*x\.txt: write \.json or \.csv'):
        tool.main([video, *args_for(bench, '--out', tmp_path / 'x.txt')])


# ---------------------------------------------------------------------------------------------------------------------
# a stock mmaction2 config
# ---------------------------------------------------------------------------------------------------------------------
def test_stock_mmaction2_config_gives_the_hand_scores(stock_run, tmp_path):
    """The stock mmaction2 ViT config (Recognizer3D, its own pipeline: 5 clips x 3 crops) through infer gives the
    mean over the 15 views of softmax(our model), computed by hand in ``tests/tools/test_test.py``'s fixture."""
    run = stock_run
    videos = [str(run['root'] / f'{name}.mp4') for name in run['names']]
    results = load_tool().main([*videos, '--config', str(run['root'] / 'config.py'), '--checkpoint',
                                str(run['root'] / 'mmaction2.pth'), '--device', 'cpu', '--no-progress'])
    np.testing.assert_allclose(np.stack([r.scores for r in results]), run['hand'], rtol=1e-5, atol=1e-6)
    assert [r.topk[0].label for r in results] == run['hand'].argmax(axis=1).tolist()
