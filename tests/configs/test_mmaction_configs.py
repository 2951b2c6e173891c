"""mmaction2 configs for the distilled VideoMAE V2 ViT-S/B on Kinetics-400 (``configs/``).

Three levels:

* the child configs parse and hold the 16x4x1, 5 clips x 3 crops protocol of
  docs/classification.md#test-protocols-and-metrics, and build (on the meta device) exactly the docs/backbone.md#sizes
  model sizes;
* the unmodified test pipeline turns a generated video into 15 views at the hand-derived frame indices and crops;
* one child config, shrunk to the tiny ``vit_test`` backbone, runs through ``mmengine.runner.Runner.test()`` on
  generated mp4 files with a checkpoint converted to the mmaction2 layout: the runner must hold exactly those weights,
  and its per-video scores and metrics must equal the mean over 15 views of softmax(our model) computed by hand.
"""
from __future__ import annotations

import copy
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip('mmaction', reason='the configs need mmaction2 (pip install mmaction2==1.1.0 mmcv-lite==2.0.1)')
pytest.importorskip('decord', reason="the configs' test pipeline decodes with decord")
av = pytest.importorskip('av', reason='the synthetic test videos are written with PyAV')

from mmengine.config import Config  # noqa: E402
from mmengine.dataset import Compose  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from backbone import ARCH_PRESETS, VideoMAEv2ViT, convert_state_dict  # noqa: E402

CONFIG_DIR = Path(__file__).resolve().parents[2] / 'configs' / 'recognition' / 'videomaev2'
CONFIGS = {
    'vit_base': CONFIG_DIR / 'vit-base-p16_videomaev2-vit-g-dist-k710-pre_16x4x1_kinetics-400.py',
    'vit_small': CONFIG_DIR / 'vit-small-p16_videomaev2-vit-g-dist-k710-pre_16x4x1_kinetics-400.py',
}
# docs/backbone.md#sizes: width C and the exact parameter count without the head.
WIDTH = {'vit_base': 768, 'vit_small': 384}
PARAMS_WITHOUT_HEAD = {'vit_base': 86_227_200, 'vit_small': 21_879_936}
# ImageNet statistics on the 0-1 scale; the configs must state them on the 0-255 scale of decoded frames.
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]) * 255
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]) * 255
PIPELINE_TYPES = ['DecordInit', 'SampleFrames', 'DecordDecode', 'Resize', 'ThreeCrop', 'FormatShape',
                  'PackActionInputs']


def write_video(path: Path, num_frames: int = 80, width: int = 64, height: int = 48, seed: int = 0) -> None:
    """Write an H.264 mp4: a random texture tinted by ``seed``, shifted one pixel per frame (so the crops differ),
    with a colour cast that moves to the next RGB channel every 20 frames (so the clips differ)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 96, (height, width, 3)).astype(np.int64)
    base[..., seed % 3] += 60
    with av.open(str(path), 'w') as container:
        stream = container.add_stream('libx264', rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, 'yuv420p'
        for i in range(num_frames):
            image = np.roll(base, i, axis=1)
            image[..., (seed + i // 20) % 3] += 100
            frame = av.VideoFrame.from_ndarray(image.clip(0, 255).astype(np.uint8), format='rgb24')
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def expected_clip_starts(num_frames: int, clip_len: int = 16, interval: int = 4, num_clips: int = 5) -> np.ndarray:
    """Test-mode clip starts of mmaction2's SampleFrames, derived by hand.

    A clip covers (clip_len - 1) * interval + 1 frames from its first to its last frame (61 for 16x4); the starts
    are evenly spaced from 0 to max(num_frames - 61, 0) and rounded half to even, so the last clip ends on the last
    frame.
    """
    last = max(num_frames - ((clip_len - 1) * interval + 1), 0)
    return np.round(np.arange(num_clips) * last / (num_clips - 1))


@pytest.mark.parametrize('arch', ['vit_base', 'vit_small'])
def test_config_settings(arch):
    cfg = Config.fromfile(CONFIGS[arch])
    assert cfg.default_scope == 'mmaction'
    assert cfg.custom_imports == dict(imports=['backbone'], allow_failed_imports=False)
    assert Path(cfg.load_from).name.startswith(CONFIGS[arch].name.split('_16x4x1')[0])  # its own weights

    model = cfg.model
    assert model.type == 'Recognizer3D'
    assert model.backbone == dict(type='VideoMAEv2ViT', arch=arch, img_size=224, all_frames=16, num_classes=0)
    assert model.cls_head == dict(type='TimeSformerHead', num_classes=400, in_channels=WIDTH[arch],
                                  average_clips='prob')
    assert ARCH_PRESETS[arch]['embed_dim'] == WIDTH[arch]
    preprocessor = model.data_preprocessor
    assert preprocessor.type == 'ActionDataPreprocessor' and preprocessor.format_shape == 'NCTHW'
    torch.testing.assert_close(torch.tensor(preprocessor.mean), IMAGENET_MEAN)
    torch.testing.assert_close(torch.tensor(preprocessor.std), IMAGENET_STD)

    pipeline = cfg.test_dataloader.dataset.pipeline
    assert pipeline == cfg.test_pipeline
    assert [step.type for step in pipeline] == PIPELINE_TYPES
    sample, resize, crop = pipeline[1], pipeline[3], pipeline[4]
    assert sample == dict(type='SampleFrames', clip_len=16, frame_interval=4, num_clips=5, test_mode=True)
    assert resize.scale == (-1, 224) and crop.crop_size == 224 and pipeline[5].input_format == 'NCTHW'
    # ThreeCrop: 5 clips x 3 crops = the 15 views of docs/classification.md#test-protocols-and-metrics
    assert sample.num_clips * 3 == 15

    loader = cfg.test_dataloader
    assert loader.batch_size == 1 and loader.sampler == dict(type='DefaultSampler', shuffle=False)
    assert loader.dataset.type == 'VideoDataset' and loader.dataset.test_mode
    assert loader.dataset.ann_file == cfg.ann_file_test and loader.dataset.data_prefix == dict(video='videos_val')
    assert loader.dataset.data_root == cfg.data_root == 'data/kinetics400'  # one key re-points list and videos
    assert cfg.test_evaluator == dict(type='AccMetric') and cfg.test_cfg == dict(type='TestLoop')

    # The config builds the docs/backbone.md#sizes model through mmaction2's registry (meta device: no memory, no init
    # cost).
    from mmaction.registry import MODELS
    init_default_scope('mmaction')
    with torch.device('meta'):
        recognizer = MODELS.build(cfg.model)
    assert isinstance(recognizer.backbone, VideoMAEv2ViT)
    assert sum(p.numel() for p in recognizer.backbone.parameters()) == PARAMS_WITHOUT_HEAD[arch]
    assert sum(p.numel() for p in recognizer.cls_head.parameters()) == WIDTH[arch] * 400 + 400


def test_config_pipeline_gives_15_views(tmp_path):
    """The unmodified ViT-B test pipeline on an 80-frame 64x48 video: 5 clips at the hand-derived frames x 3 crops."""
    video = tmp_path / 'clip.mp4'
    write_video(video, num_frames=80, width=64, height=48)
    cfg = Config.fromfile(CONFIGS['vit_base'])
    init_default_scope('mmaction')
    results = dict(filename=str(video), label=3, start_index=0, modality='RGB')
    results = Compose(copy.deepcopy(cfg.test_pipeline[:-1]))(results)  # stop before packing: keep the metadata

    # 80 frames: starts at 19 * k / 4 = 0, 4.75, 9.5, 14.25, 19 -> 0, 5, 10, 14, 19 (the last clip ends on frame
    # 19 + 15 * 4 = 79); every 4th frame within a clip.
    starts = expected_clip_starts(80)
    np.testing.assert_array_equal(starts, [0, 5, 10, 14, 19])
    np.testing.assert_array_equal(results['frame_inds'], (starts[:, None] + 4 * np.arange(16)).ravel())
    # Short side 48 -> 224, long side 64 * 224 / 48 = 298.7 -> 299; three 224 crops along the width, step
    # (299 - 224) // 2 = 37: left, centre, right.
    assert results['img_shape'] == (224, 224)
    np.testing.assert_array_equal(np.unique(results['crop_bbox'], axis=0),
                                  [[0, 0, 224, 224], [37, 0, 261, 224], [74, 0, 298, 224]])
    assert results['imgs'].shape == (15, 3, 16, 224, 224)  # (views, C, T, H, W)
    assert results['imgs'].dtype == np.uint8


def _mean_class_accuracy(pred: list[int], labels: list[int], include_predicted: bool = True) -> float:
    """Mean per-class recall (docs/classification.md#test-protocols-and-metrics): over the classes in GT or
    predictions, prediction-only classes counting 0 (``include_predicted``); without it, over the GT classes only."""
    classes = set(labels) | set(pred) if include_predicted else set(labels)
    recalls = []
    for cls in sorted(classes):
        hits = [p == cls for p, y in zip(pred, labels) if y == cls]
        recalls.append(sum(hits) / len(hits) if hits else 0.0)
    return float(np.mean(recalls))


def test_runner_tests_converted_checkpoint(tmp_path):
    """Runner.from_cfg(cfg).test() with a tiny converted checkpoint equals the 15-view softmax mean done by hand."""
    from mmengine.runner import Runner

    num_source_classes, label_map = 10, [7, 2, 9, 0, 4, 5]  # a 10-way head sliced to 6 classes, as K710 -> K400
    img_size, num_videos = 32, 3

    # The child config, shrunk for CPU: tiny backbone, 32 px frames and crops; the stock classes and sampling stay.
    cfg = Config.fromfile(CONFIGS['vit_base'])
    cfg.model.backbone.update(arch='vit_test', img_size=img_size)
    cfg.model.cls_head.update(in_channels=64, num_classes=len(label_map))
    pipeline = cfg.test_dataloader.dataset.pipeline
    pipeline[3].scale, pipeline[4].crop_size = (-1, img_size), img_size
    init_default_scope('mmaction')
    transform = Compose(copy.deepcopy(pipeline))
    videos = []  # normalised views (15, 3, 16, 32, 32) per video, from the same pipeline as the runner's
    for i in range(num_videos):
        write_video(tmp_path / f'video_{i}.mp4', num_frames=80, seed=i)
        views = transform(dict(filename=str(tmp_path / f'video_{i}.mp4'), label=0, start_index=0, modality='RGB'))
        views = views['inputs'].float()
        assert views.shape == (15, 3, 16, img_size, img_size)
        videos.append((views - IMAGENET_MEAN.view(3, 1, 1, 1)) / IMAGENET_STD.view(3, 1, 1, 1))

    # Official-layout weights of a tiny model. Its 10-way head is random, except that the rows kept as classes
    # 0, 1, 2 point along the mean feature of videos 0, 1, 2, so that the videos get different top-1 classes.
    official = VideoMAEv2ViT('vit_test', img_size=img_size, all_frames=16, num_classes=num_source_classes).eval()
    with torch.no_grad():
        features = torch.stack([official.forward_features(v).mean(dim=0) for v in videos])  # (videos, C)
        directions = features - features.mean(dim=0)
        official.head.weight.normal_(0, 0.3)
        official.head.bias.normal_(0, 0.3)
        for j in range(num_videos):
            official.head.weight[label_map[j]] = directions[j] / directions[j].norm()
    source = official.state_dict()
    ckpt = convert_state_dict(source, 'mmaction2', grid=(8, img_size // 16, img_size // 16))
    assert ckpt['cls_head.fc_cls.weight'].shape == (num_source_classes, 64)
    for key in ('cls_head.fc_cls.weight', 'cls_head.fc_cls.bias'):
        # new row i = source row label_map[i] (docs/checkpoints.md#k710-heads-and-safe-loading)
        ckpt[key] = ckpt[key][label_map]
    ckpt_path = tmp_path / 'tiny_mmaction2.pth'
    torch.save({'state_dict': ckpt, 'meta': {'label_map': label_map, 'source': 'vit_test'}}, ckpt_path)

    # Hand computation: our model (head sliced by hand) on each of the 15 views, softmax per view, mean.
    hand_model = VideoMAEv2ViT('vit_test', img_size=img_size, all_frames=16, num_classes=len(label_map)).eval()
    hand_model.load_state_dict(dict(source, **{'head.weight': source['head.weight'][label_map],
                                               'head.bias': source['head.bias'][label_map]}))
    hand_scores = []
    for views in videos:
        with torch.no_grad():
            logits = hand_model(views)  # (15, K)
        hand_scores.append(logits.softmax(dim=-1).mean(dim=0))
        # 'prob' must differ from averaging logits ('score'), or this test could not tell them apart.
        assert not torch.allclose(hand_scores[-1], logits.mean(dim=0).softmax(dim=-1), atol=1e-4)
    hand_scores = torch.stack(hand_scores)  # (videos, K)

    # Labels chosen from the hand scores: video 0 right at top-1, video 1 only within top-5 (2nd), video 2 wrong
    # (last of 6), so top-1 = 1/3 and top-5 = 2/3.
    order = hand_scores.argsort(dim=-1, descending=True)
    gaps = hand_scores.sort(dim=-1, descending=True).values.diff(dim=-1).abs()
    assert gaps.min() > 1e-4, 'classes too close to rank robustly; change the seed'
    labels = [int(order[0, 0]), int(order[1, 1]), int(order[2, -1])]
    pred = order[:, 0].tolist()
    # Some predicted class is in no label, so that this also checks which classes the mean runs over.
    mean1 = _mean_class_accuracy(pred, labels)
    assert mean1 != pytest.approx(_mean_class_accuracy(pred, labels, include_predicted=False))
    (tmp_path / 'val_list.txt').write_text(''.join(f'video_{i}.mp4 {y}\n' for i, y in enumerate(labels)))

    cfg.test_dataloader.update(num_workers=0, persistent_workers=False)
    cfg.test_dataloader.dataset.update(ann_file=str(tmp_path / 'val_list.txt'), data_prefix=dict(video=str(tmp_path)))
    dump = tmp_path / 'predictions.pkl'
    cfg.test_evaluator = [cfg.test_evaluator, dict(type='DumpResults', out_file_path=str(dump))]
    cfg.work_dir = str(tmp_path / 'work_dir')
    cfg.experiment_name = f'test_mmaction_configs_{tmp_path.name}'  # unique logger/visualizer instance names
    cfg.load_from = str(ckpt_path)
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()

    # The runner holds exactly the converted weights.
    model = runner.model
    backbone_state = model.backbone.state_dict()
    expected_backbone = {k: v for k, v in source.items() if not k.startswith('head.')}
    assert set(backbone_state) == set(expected_backbone)
    not_loaded = [k for k in backbone_state if not torch.equal(backbone_state[k], expected_backbone[k])]
    assert not not_loaded, (f'load_from did not load {not_loaded}: VideoMAEv2ViT must accept the mmaction2 key names '
                            '(patch_embed.projection, mlp.layers.0.0, mlp.layers.1, pos_embed) of '
                            'docs/checkpoints.md#mmaction2-layout')
    assert torch.equal(model.cls_head.fc_cls.weight, source['head.weight'][label_map])
    assert torch.equal(model.cls_head.fc_cls.bias, source['head.bias'][label_map])
    # Strict loading (what a careful tool should do: mmengine's load_from only warns) accepts the file as it is.
    runner.load_checkpoint(str(ckpt_path), strict=True)

    # Per-video scores: Recognizer3D + TimeSformerHead(average_clips='prob') = mean over views of softmax.
    with open(dump, 'rb') as f:
        dumped = pickle.load(f)
    assert [int(d['gt_labels']['item']) for d in dumped] == labels  # DefaultSampler(shuffle=False): file order
    runner_scores = torch.stack([d['pred_scores']['item'] for d in dumped])
    torch.testing.assert_close(runner_scores, hand_scores, rtol=1e-5, atol=1e-6)

    assert set(metrics) == {'acc/top1', 'acc/top5', 'acc/mean1'}
    assert metrics['acc/top1'] == pytest.approx(1 / 3)
    assert metrics['acc/top5'] == pytest.approx(2 / 3)
    assert metrics['acc/mean1'] == pytest.approx(mean1)
