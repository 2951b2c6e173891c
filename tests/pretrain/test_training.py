"""Dual-masked pre-training through mmengine (``tasks/pretrain``, ``configs/pretrain``, ``tools/train.py``,
``tools/visualize_reconstruction.py``).

What is checked, and against what:

* data: frame windows against hand-derived indices (a lossless video whose frame i has a colour that encodes i),
  mask counts against docs/pretraining.md#tube-mask, determinism per (seed, epoch, index), every list format of
  tasks/data/annotations, and broken videos being replaced and reported instead of stopping the epoch;
* recipe: the five configs against the numbers of docs/pretraining.md#recipe, weight decay per parameter against the
  official rule (1-D, bias, pos_embed, mask_token -> 0), and the lr per iteration against the official
  ``utils.cosine_scheduler`` formula;
* training: a few iterations of the tiny config through the Runner (finite loss, curve PNG/JSON, lr scaled from the
  batch of videos); ``tools/train.py --resume`` continuing from the saved iteration and reproducing the uninterrupted
  run's losses; 2 gloo processes with batch b against 1 process with batch 2b (same losses, same weights); the skip
  list and the curve history of the hook;
* bf16 autocast on the CPU, and the reconstruction picture (its pixel size and what each row shows).
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip('mmaction', reason='the pre-training configs use mmaction2 registries and runtime')
av = pytest.importorskip('av', reason='test videos are written with PyAV')

from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from backbone import ARCH_PRESETS  # noqa: E402
from tasks.data.annotations import AnnotationError  # noqa: E402
from tasks.engine import BF16AutocastOptimWrapper, load_trusted_checkpoint  # noqa: E402
from tasks.pretrain import (VideoMAEv2PretrainDataset, VideoMAEv2PretrainModel, read_pretrain_list,  # noqa: E402
                            videomaev2_pretrain_collate)
from tasks.data.epoch_sampler import EpochIndexSampler  # noqa: E402
from tasks.data.video import write_video  # noqa: E402
from tests.torchrun_kit import run_torchrun  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / 'configs' / 'pretrain' / 'videomaev2'
TINY = CONFIG_DIR / 'vit-test-p16_videomaev2-pt-2e_8x2x1_synthetic.py'
RECIPES = {
    'vit_small': CONFIG_DIR / 'vit-small-p16_videomaev2-pt-200e_16x4x1_unlabeled-hybrid.py',
    'vit_base': CONFIG_DIR / 'vit-base-p16_videomaev2-pt-200e_16x4x1_unlabeled-hybrid.py',
    'vit_large': CONFIG_DIR / 'vit-large-p16_videomaev2-pt-300e_16x4x1_unlabeled-hybrid.py',
    'vit_huge': CONFIG_DIR / 'vit-huge-p16_videomaev2-pt-300e_16x4x1_unlabeled-hybrid.py',
    'vit_giant': CONFIG_DIR / 'vit-giant-p14_videomaev2-pt-300e_16x4x1_unlabeled-hybrid.py',
}
# docs/pretraining.md#recipe (ViT-S reuses the ViT-B recipe: there is no official V2 ViT-S pre-training script).
# arch: (--lr, epochs, warmup epochs, clip_grad, with_cp, patch)
RECIPE = {
    'vit_small': (1e-3, 200, 20, None, False, 16),
    'vit_base': (1e-3, 200, 20, None, False, 16),
    'vit_large': (1e-3, 300, 30, None, False, 16),
    'vit_huge': (1e-3, 300, 30, None, True, 16),
    'vit_giant': (6e-4, 300, 30, 0.02, True, 14),
}
# Official defaults, scaled like --lr (run_mae_pretraining.py).
WARMUP_LR, MIN_LR = 1e-6, 1e-5
# GPUs of the official scripts (docs/pretraining.md#recipe; ViT-S: the ViT-B recipe), 32 videos each.
GPUS = {'vit_small': 32, 'vit_base': 32, 'vit_large': 48, 'vit_huge': 64, 'vit_giant': 64}

CLIP_LEN, INTERVAL, CROP = 8, 2, 32  # test clips: 8 frames every 2nd, 32x32 crops -> 4 x 2 x 2 = 16 tokens


# ----------------------------------------------------------------------------------------------------------------------
# fixtures: small videos written into a temporary folder
# ----------------------------------------------------------------------------------------------------------------------
def index_colour(i: int) -> tuple[int, int, int]:
    """The flat colour of frame i of the index video: R and G together encode i (0..255)."""
    return (i * 7) % 256, (i * 7) // 256 * 40 + 20, 200 - i


def textured_frames(seed: int, num_frames: int = 16, height: int = 48, width: int = 64) -> np.ndarray:
    """Random texture panning one pixel per frame, with a bright square moving down: something to reconstruct."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 160, (height, width, 3)).astype(np.int64)
    frames = []
    for i in range(num_frames):
        image = np.roll(base, i, axis=1)
        image[(2 * i) % (height - 8):(2 * i) % (height - 8) + 8, 20:28] = 255
        frames.append(image.clip(0, 255).astype(np.uint8))
    return np.stack(frames)


@pytest.fixture(scope='module')
def videos(tmp_path_factory) -> dict:
    """8 textured training videos (+ list), a lossless 40-frame index video, and broken files."""
    root = tmp_path_factory.mktemp('pretrain_videos')
    names = []
    for k in range(8):
        write_video(root / 'videos' / f'{k}.mp4', textured_frames(k), fps=30)
        names.append(f'videos/{k}.mp4')
    (root / 'train_list.txt').write_text(''.join(f'{n} {k % 3}\n' for k, n in enumerate(names)))
    index = np.stack([np.broadcast_to(np.array(index_colour(i), np.uint8), (48, 64, 3)) for i in range(40)])
    write_video(root / 'index.mp4', index, fps=30, lossless=True)
    (root / 'not_a_video.mp4').write_text('this is text, not H.264\n' * 100)
    return dict(root=root, list=root / 'train_list.txt', names=names, index=root / 'index.mp4')


def tiny_dataset(ann_file=None, root=None, **kwargs) -> VideoMAEv2PretrainDataset:
    args = dict(clip_len=CLIP_LEN, frame_interval=INTERVAL, input_size=CROP, num_sample=2)
    args.update(kwargs)
    return VideoMAEv2PretrainDataset(ann_file=str(ann_file) if ann_file else None,
                                     data_prefix=str(root) if root else None, **args)


# ----------------------------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------------------------
def test_clip_window_and_views_match_the_recipe(videos):
    """Frames come every `frame_interval` from a window starting in [0, n - clip_len * interval]; each view has
    the docs/pretraining.md#tube-mask, docs/pretraining.md#running-cell-mask mask counts; one decode serves all views
    (same frames, different crops and masks)."""
    data = tiny_dataset(videos=[str(videos['index'])], num_sample=3, scales=(1, .875, .75, .66))
    starts = set()
    for epoch in range(12):
        sample = data[(epoch, 0)]
        clips = sample['inputs']
        assert clips.shape == (3, 3, CLIP_LEN, CROP, CROP) and clips.dtype == torch.uint8
        # Flat frames stay flat through crop and resize, so every view shows the same frame colours.
        colours = clips[:, :, :, CROP // 2, CROP // 2].permute(0, 2, 1)  # (views, T, 3)
        assert (clips == colours[:, :, :, None, None].permute(0, 2, 1, 3, 4)).all()
        assert (colours == colours[0]).all()
        frame_ids = [[i for i in range(40) if tuple(c) == index_colour(i)] for c in colours[0].tolist()]
        assert all(len(f) == 1 for f in frame_ids), frame_ids
        frame_ids = [f[0] for f in frame_ids]
        start = frame_ids[0]
        assert frame_ids == [start + INTERVAL * j for j in range(CLIP_LEN)]
        assert 0 <= start <= 40 - CLIP_LEN * INTERVAL
        starts.add(start)
        # Tube 0.9 on a 2x2 grid: int(0.9 * 4) = 3 positions masked in all 4 slices -> 4 visible of 16 tokens;
        # running cell 0.5: 2 of every 2x2 cell dropped per slice -> 8 kept.
        enc, dec = sample['encoder_mask'], sample['decoder_mask']
        assert enc.shape == dec.shape == (3, 16) and enc.dtype == dec.dtype == torch.bool
        assert ((~enc).sum(1) == 4).all() and ((~dec).sum(1) == 8).all()
        assert (enc.reshape(3, 4, 4) == enc.reshape(3, 4, 4)[:, :1]).all()  # the same positions in every slice
    assert len(starts) > 3  # the window moves between epochs


def test_samples_are_deterministic_per_seed_epoch_and_index(videos):
    data = tiny_dataset(videos['list'], videos['root'])
    a, b = data[(3, 5)], data[(3, 5)]
    for key in ('inputs', 'encoder_mask', 'decoder_mask'):
        assert torch.equal(a[key], b[key])
    other_epoch, other_seed = data[(4, 5)], tiny_dataset(videos['list'], videos['root'], seed=1)[(3, 5)]
    for other in (other_epoch, other_seed):
        assert not (torch.equal(a['inputs'], other['inputs']) and torch.equal(a['encoder_mask'], other['encoder_mask']))
    # the two views of one sample differ (independent crops / masks)
    assert not torch.equal(a['encoder_mask'][0], a['encoder_mask'][1]) or not torch.equal(a['inputs'][0],
                                                                                          a['inputs'][1])


def test_sampler_shards_the_same_samples_as_one_process(videos):
    """2 ranks with batch b cover, batch by batch, the keys 1 rank with batch 2b covers (DefaultSampler sharding)."""
    from mmengine.registry import DATA_SAMPLERS
    assert DATA_SAMPLERS.get('VideoMAEv2PretrainSampler') is EpochIndexSampler  # the alias configs may name
    data = tiny_dataset(videos['list'], videos['root'])
    single = EpochIndexSampler(data, shuffle=True, seed=7)
    single.set_epoch(2)
    ranks = []
    for rank in range(2):
        s = EpochIndexSampler(data, shuffle=True, seed=7)
        s.rank, s.world_size = rank, 2
        s.num_samples, s.total_size = 4, 8
        s.set_epoch(2)
        ranks.append(list(s))
    keys = list(single)
    assert all(k[0] == 2 for k in keys) and sorted(k[1] for k in keys) == list(range(8))
    for it in range(2):  # batch 2 per rank vs batch 4
        assert set(ranks[0][2 * it:2 * it + 2] + ranks[1][2 * it:2 * it + 2]) == set(keys[4 * it:4 * it + 4])


def test_broken_videos_are_replaced_and_reported(videos, tmp_path):
    ann = tmp_path / 'list.txt'
    ann.write_text(f'{videos["names"][0]} 0\nnot_a_video.mp4 0\nmissing.mp4 1\n{videos["names"][1]} 2\n')
    data = tiny_dataset(ann, videos['root'])
    loader = torch.utils.data.DataLoader(data, batch_size=2, sampler=EpochIndexSampler(data, seed=0),
                                         collate_fn=videomaev2_pretrain_collate)
    batches = list(loader)  # the epoch completes
    failed = {Path(p).name for b in batches for p, _ in b['data_samples']['failed']}
    assert failed == {'not_a_video.mp4', 'missing.mp4'}
    used = torch.cat([b['data_samples']['index'] for b in batches])
    assert set(used.tolist()) <= {0, 3}  # only decodable videos produce clips
    sample = data[(0, 2)]
    assert sample['index'] in (0, 3) and sample['failed'][0][0].endswith('missing.mp4')
    assert 'does not exist' in sample['failed'][0][1]
    # a list where nothing decodes stops with the file and the reasons instead of looping
    (tmp_path / 'bad.txt').write_text('not_a_video.mp4 0\nmissing.mp4 0\n')
    with pytest.raises(RuntimeError, match=r'bad\.txt: 20 videos in a row failed'):
        tiny_dataset(tmp_path / 'bad.txt', videos['root'])[0]


def test_every_annotation_format_is_read(videos, tmp_path):
    from PIL import Image

    root = tmp_path
    # raw frames: img_00001.png ... (lossless), frame i has the value 10 * i
    frames_dir = root / 'frames' / 'clip0'
    frames_dir.mkdir(parents=True)
    for i in range(20):
        Image.fromarray(np.full((40, 40, 3), 10 * i, np.uint8)).save(frames_dir / f'img_{i + 1:05d}.png')
    (root / 'raw.txt').write_text('frames/clip0 20 3\n')
    data = tiny_dataset(root / 'raw.txt', root, ann_format='rawframes', filename_tmpl='img_{:05}.png',
                        num_sample=1)
    values = data[(0, 0)]['inputs'][0, 0, :, 0, 0].tolist()  # R channel of each frame
    start = values[0] // 10
    assert values == [10 * (start + INTERVAL * j) for j in range(CLIP_LEN)] and 0 <= start <= 20 - 16
    # SSv2 split json (+ labels.json next to it) and Kinetics csv: ids become file names
    (root / 'labels.json').write_text(json.dumps({'Pushing something': '0'}))
    (root / 'train.json').write_text(json.dumps([{'id': '42', 'template': 'Pushing [something]', 'label': 'x',
                                                  'placeholders': ['x']}]))
    (root / 'k400.csv').write_text('label,youtube_id,time_start,time_end,split\nabseiling,abc,10,20,train\n')
    assert [r.path for r in read_pretrain_list(root / 'train.json', 'ssv2', data_prefix='v', video_ext='.webm')] \
        == [os.path.join('v', '42.webm')]
    assert [r.path for r in read_pretrain_list(root / 'k400.csv', 'kinetics', data_prefix='k')] \
        == [os.path.join('k', 'abc_000010_000020.mp4')]
    # a malformed line is reported with its file and line number
    (root / 'broken.txt').write_text('a.mp4 1\nb.mp4\n')
    with pytest.raises(AnnotationError, match=r'broken\.txt, line 2'):
        read_pretrain_list(root / 'broken.txt')


def test_preprocessor_folds_views_and_normalises():
    model = VideoMAEv2PretrainModel('vit_test', img_size=32, all_frames=4)
    inputs = torch.zeros(2, 3, 3, 4, 32, 32, dtype=torch.uint8)
    inputs[1, 2, 0] = 255  # sample 1, view 2, red channel
    masks = torch.zeros(2, 3, 8, dtype=torch.bool)
    masks[1, 2, 5] = True
    out = model.data_preprocessor(dict(inputs=inputs, data_samples=dict(encoder_mask=masks, decoder_mask=~masks)))
    x = out['inputs']
    assert x.shape == (6, 3, 4, 32, 32) and x.dtype == torch.float32
    # ImageNet: (0 - 0.485) / 0.229 for black red, (1 - 0.485) / 0.229 for full red; view (1, 2) is row 5
    torch.testing.assert_close(x[0, 0, 0, 0, 0], torch.tensor((0 - 0.485) / 0.229))
    torch.testing.assert_close(x[5, 0, 0, 0, 0], torch.tensor((1 - 0.485) / 0.229))
    torch.testing.assert_close(x[5, 1, 0, 0, 0], torch.tensor((0 - 0.456) / 0.224))
    assert out['data_samples']['encoder_mask'].shape == (6, 8)
    assert out['data_samples']['encoder_mask'][5, 5] and out['data_samples']['encoder_mask'].sum() == 1


# ----------------------------------------------------------------------------------------------------------------------
# recipe
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('arch', list(RECIPES))
def test_configs_follow_the_official_recipe(arch):
    from tasks.pretrain import PretrainAugmentation

    lr, epochs, warmup, clip_grad, with_cp, patch = RECIPE[arch]
    cfg = Config.fromfile(RECIPES[arch])
    assert cfg.model.arch == arch and cfg.model.with_cp == with_cp and cfg.model.decoder_depth == 4
    assert ARCH_PRESETS[arch]['patch_size'] == patch
    data = cfg.train_dataloader
    assert data.batch_size == 32 and data.drop_last
    ds = data.dataset
    assert (ds.clip_len, ds.frame_interval, ds.input_size, ds.patch_size, ds.num_sample) == (16, 4, 224, patch, 4)
    assert tuple(ds.scales) == (1, .875, .75, .66)
    aug = PretrainAugmentation(**{k: ds[k] for k in ('clip_len', 'input_size', 'patch_size', 'scales', 'encoder_mask',
                                                     'encoder_mask_ratio', 'decoder_mask', 'decoder_mask_ratio')})
    enc, dec = aug.masks(np.random.default_rng(0))
    # docs/pretraining.md#tube-mask, docs/pretraining.md#masks-and-loss: 160 visible of 1568 and 784 decoded (p16);
    # 208 of 2048 and 1024 (ViT-g, p14)
    assert (int((~enc).sum()), int((~dec).sum()), enc.size) == ((160, 784, 1568) if patch == 16 else (208, 1024, 2048))
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, tuple(opt.betas), opt.weight_decay) == ('AdamW', (0.9, 0.95), 0.05)
    # the official --lr (per 256 videos) x the scripts' total batch / 256, the batch auto_scale_lr names (off)
    total = GPUS[arch] * data.batch_size
    assert math.isclose(opt.lr, lr * total / 256) and cfg.auto_scale_lr == dict(enable=False, base_batch_size=total)
    assert (cfg.optim_wrapper.clip_grad or {}).get('max_norm') == clip_grad
    assert cfg.train_cfg.max_epochs == epochs
    warm, cos = cfg.param_scheduler
    assert (warm.begin, warm.end, cos.begin, cos.end, cos.T_max) == (0, warmup, warmup, epochs, epochs - warmup)
    assert math.isclose(warm.start_factor, WARMUP_LR / lr) and math.isclose(cos.eta_min_ratio, MIN_LR / lr)


def official_cosine_schedule(lr: float, min_lr: float, warmup_lr: float, epochs: int, niter: int,
                             warmup_epochs: int) -> np.ndarray:
    """OpenGVLab/VideoMAEv2 utils.cosine_scheduler: linspace warmup, then a cosine over the remaining iterations."""
    warmup_iters = warmup_epochs * niter
    warm = np.linspace(warmup_lr, lr, warmup_iters)
    i = np.arange(epochs * niter - warmup_iters)
    return np.concatenate([warm, min_lr + 0.5 * (lr - min_lr) * (1 + np.cos(np.pi * i / len(i)))])


@pytest.mark.parametrize('arch, gpus, effective', [('vit_base', 32, 4e-3), ('vit_giant', 64, 4.8e-3)])
def test_lr_schedule_matches_the_official_one(arch, gpus, effective):
    """mmengine schedulers of the config, on the official GPU count (the lr as written, not auto-scaled), against the
    official per-iteration schedule (docs/pretraining.md#recipe effective lr)."""
    from mmengine.optim import OptimWrapper
    from mmengine.registry import PARAM_SCHEDULERS

    cfg = Config.fromfile(RECIPES[arch])
    total = gpus * cfg.train_dataloader.batch_size
    assert total == cfg.auto_scale_lr.base_batch_size and not cfg.auto_scale_lr.enable  # the lr as written
    lr = cfg.optim_wrapper.optimizer.lr
    assert math.isclose(lr, effective)
    scale = total / 256  # the official rule scales --lr, warmup_lr and min_lr alike
    niter = 2  # iterations per epoch: few, but more than one, so per-iteration conversion is exercised
    wrapper = OptimWrapper(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr))
    schedulers = [PARAM_SCHEDULERS.build(dict(s), default_args=dict(optimizer=wrapper, epoch_length=niter))
                  for s in cfg.param_scheduler]
    got = []
    for _ in range(cfg.train_cfg.max_epochs * niter):
        got.append(wrapper.optimizer.param_groups[0]['lr'])
        wrapper.step()  # no gradients: a no-op, in the order schedulers expect
        for s in schedulers:
            s.step()
    warmup = cfg.param_scheduler[0].end
    want = official_cosine_schedule(lr, MIN_LR * scale, WARMUP_LR * scale, cfg.train_cfg.max_epochs, niter, warmup)
    got = np.array(got)
    w = warmup * niter
    assert got[0] == pytest.approx(WARMUP_LR * scale, rel=1e-9)
    np.testing.assert_allclose(got[w:], want[w:], rtol=1e-9)  # the cosine part is the official one exactly
    # mmengine's linear warmup ends one step later than np.linspace: at most lr / warmup_iters apart
    assert np.abs(got[:w] - want[:w]).max() <= lr / w + 1e-12


def test_weight_decay_follows_the_official_rule():
    from mmengine.optim import build_optim_wrapper

    cfg = Config.fromfile(RECIPES['vit_base'])
    model = VideoMAEv2PretrainModel('vit_test', img_size=32, all_frames=4)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {id(p): g['weight_decay'] for g in wrapper.optimizer.param_groups for p in g['params']}
    names = dict(model.named_parameters())
    assert len(decay) == len(names)
    for name, p in names.items():
        # run_mae_pretraining.py / optim_factory: no decay for 1-D parameters, biases and no_weight_decay() names
        exempt = p.ndim == 1 or name.endswith('.bias') or name.split('.')[-1] in ('pos_embed', 'mask_token')
        assert decay[id(p)] == (0.0 if exempt else 0.05), name
    assert decay[id(names['backbone.mask_token'])] == 0.0 and names['backbone.mask_token'].ndim == 3
    assert wrapper.optimizer.defaults['betas'] == (0.9, 0.95)


# ----------------------------------------------------------------------------------------------------------------------
# training through the Runner
# ----------------------------------------------------------------------------------------------------------------------
def tiny_cfg(videos, work_dir: Path, config: Path = TINY) -> Config:
    """A tiny config shrunk to 32-px crops of the 8 fixture videos, 2 views each, batch 2, 2 epochs."""
    cfg = Config.fromfile(config)
    cfg.model.update(img_size=CROP, all_frames=CLIP_LEN)
    cfg.train_dataloader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.update(ann_file=str(videos['list']), data_prefix=str(videos['root']),
                                        input_size=CROP, num_sample=2)
    cfg.train_cfg.max_epochs = 2
    cfg.default_hooks.checkpoint.interval = 1
    cfg.default_hooks.logger.interval = 1
    cfg.custom_hooks = [dict(type='PretrainLossCurveHook', interval=100)]  # drawn after each epoch
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = work_dir.name
    return cfg


def curve(work_dir: Path) -> dict:
    return json.loads((work_dir / 'loss_curve.json').read_text())


@pytest.fixture(scope='module')
def trained(videos, tmp_path_factory) -> Path:
    """2 epochs x 4 iterations of the tiny config (checkpoints after each epoch)."""
    work = tmp_path_factory.mktemp('runs') / 'full'
    Runner.from_cfg(tiny_cfg(videos, work)).train()
    return work


def test_training_runs_and_draws_the_loss_curve(trained):
    import matplotlib.pyplot as plt

    c = curve(trained)
    assert c['iter'] == list(range(1, 9))  # 8 videos / batch 2 = 4 iterations per epoch, 2 epochs
    assert all(math.isfinite(v) and v > 0 for v in c['loss'])
    # lr of iteration 1: the config's 1e-3 as written (auto_scale_lr off: not scaled to batch 2) x warmup
    # start factor 1e-3
    assert c['lr'][0] == pytest.approx(1e-3 * 1e-3, rel=1e-6)
    image = plt.imread(trained / 'loss_curve.png')
    assert image.shape == (600, 800, 4)  # figsize (8, 6) at 100 dpi
    assert (trained / 'epoch_1.pth').exists() and (trained / 'epoch_2.pth').exists()


def test_long_patch8_config_has_one_token_grid_and_trains(videos, tmp_path):
    """The 80-epoch 8-px config: model and masks on the same grid, the cosine ends at its last iteration, and it
    trains (32-px fixture crops: a 4 x 4 grid of 8-px patches, 2 of 16 positions visible per slice)."""
    config = CONFIG_DIR / 'vit-test-p8_videomaev2-pt-80e_8x2x1_synthetic.py'
    cfg = Config.fromfile(config)
    assert cfg.model.patch_size == cfg.train_dataloader.dataset.patch_size == 8
    iterations = cfg.train_cfg.max_epochs * 480 // cfg.train_dataloader.batch_size  # default preset: 480 videos
    assert cfg.param_scheduler[-1]['end'] == iterations == 9600
    work = tmp_path / 'p8'
    Runner.from_cfg(tiny_cfg(videos, work, config)).train()
    c = curve(work)
    assert c['iter'] == list(range(1, 9)) and all(math.isfinite(v) and v > 0 for v in c['loss'])
    state = torch.load(work / 'epoch_2.pth', map_location='cpu', weights_only=False)['state_dict']
    assert state['backbone.encoder.patch_embed.proj.weight'].shape[-2:] == (8, 8)


def test_resume_continues_from_the_saved_iteration(videos, trained, tmp_path):
    """`tools/train.py --resume` in a work dir whose newest checkpoint is epoch 1: training restarts at iteration 4
    and reproduces the losses of the uninterrupted run (per-sample seeds, sampler epoch, optimiser and scheduler
    state all come back), and the loss curve continues the saved one."""
    work = tmp_path / 'resumed'
    work.mkdir()
    shutil.copy(trained / 'epoch_1.pth', work / 'epoch_1.pth')
    (work / 'last_checkpoint').write_text(str(work / 'epoch_1.pth'))
    cfg_file = tmp_path / 'tiny.py'
    tiny_cfg(videos, work).dump(str(cfg_file))
    load_tool('train').main([str(cfg_file), '--work-dir', str(work), '--resume'])
    log = next(work.glob('*/*.log')).read_text()
    assert 'resumed epoch: 1, iter: 4' in log
    full, resumed = curve(trained), curve(work)
    assert resumed['iter'] == list(range(1, 9))  # 1-4 restored from the checkpoint, 5-8 trained here
    np.testing.assert_allclose(resumed['loss'], full['loss'], rtol=1e-5)
    np.testing.assert_allclose(resumed['lr'], full['lr'], rtol=1e-9)
    assert (work / 'epoch_2.pth').exists()


def test_trained_encoder_loads_into_the_downstream_vit(trained):
    """The checkpoint's `backbone.encoder.*` keys go to VideoMAEv2ViT through the generic loader."""
    from backbone import VideoMAEv2ViT, load_checkpoint

    state = load_trusted_checkpoint(trained / 'epoch_2.pth')['state_dict']
    vit = VideoMAEv2ViT('vit_test', img_size=CROP, all_frames=CLIP_LEN, num_classes=0)
    load_checkpoint(vit, dict(state))
    torch.testing.assert_close(vit.blocks[1].attn.qkv.weight, state['backbone.encoder.blocks.1.attn.qkv.weight'])
    torch.testing.assert_close(vit.patch_embed.proj.weight, state['backbone.encoder.patch_embed.proj.weight'])


def test_loss_curve_hook_lists_skipped_videos_and_keeps_history(tmp_path):
    """The hook writes the failures of an epoch once per video, and its history survives a checkpoint round trip."""
    import logging
    from types import SimpleNamespace

    from tasks.pretrain import PretrainLossCurveHook

    hook = PretrainLossCurveHook(interval=100)
    runner = SimpleNamespace(work_dir=str(tmp_path), epoch=0, iter=0, experiment_name='unit',
                             logger=logging.getLogger('pretrain-test'),
                             optim_wrapper=SimpleNamespace(get_lr=lambda: {'lr': [0.5]}))
    failed = [('a.mp4', 'file does not exist'), ('b.mp4', 'truncated')]
    for it, loss in enumerate([2.0, 1.5, 1.25]):
        runner.iter = it
        batch = dict(data_samples=dict(failed=failed[:1] if it else failed))
        hook.after_train_iter(runner, it, batch, dict(loss=torch.tensor(loss)))
    hook.after_train_epoch(runner)
    lines = (tmp_path / 'skipped_videos.txt').read_text().splitlines()
    assert lines == ['epoch 0\ta.mp4\tfile does not exist', 'epoch 0\tb.mp4\ttruncated']
    assert curve(tmp_path) == dict(iter=[1, 2, 3], loss=[2.0, 1.5, 1.25], lr=[0.5, 0.5, 0.5])
    checkpoint = {}
    hook.before_save_checkpoint(runner, checkpoint)
    restored = PretrainLossCurveHook()
    restored.after_load_checkpoint(runner, checkpoint)
    runner.iter = 2  # resumed after iteration 2: the third point is dropped, it will be trained again
    restored.before_train(runner)
    assert (restored.iters, restored.losses) == ([1, 2], [2.0, 1.5])


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f'tool_{name}', ROOT / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_processes_match_one_process_with_the_same_global_batch(videos, tmp_path):
    """torchrun, 2 gloo processes x batch 2 vs 1 process x batch 4: same per-iteration loss and final weights."""
    options = lambda work, bs: [  # noqa: E731
        '--work-dir', str(work), '--cfg-options', f'train_dataloader.batch_size={bs}',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        f'train_dataloader.dataset.ann_file={videos["list"]}', f'train_dataloader.dataset.data_prefix={videos["root"]}',
        f'train_dataloader.dataset.input_size={CROP}', 'train_dataloader.dataset.num_sample=2',
        f'model.img_size={CROP}', 'train_cfg.max_epochs=2', 'default_hooks.checkpoint.interval=1',
        # a large lr (0.1 per 256 videos at the global batch of 4) and a 2-iteration warmup (the config's is 40) so
        # that the weights move visibly in 4 steps
        'optim_wrapper.optimizer.lr=0.0015625', 'param_scheduler.0.end=2', 'param_scheduler.1.begin=2',
        'param_scheduler.1.end=4', 'param_scheduler.1.T_max=2']
    # both runs on the CPU: torchrun's processes see no GPU (so gloo, and its message), this one's Runner is pinned
    # (tests/conftest.py)
    ddp = run_torchrun('train', [TINY, '--launcher', 'pytorch', *options(tmp_path / 'ddp', 2)])
    assert 'using the gloo backend' in ddp.stdout
    load_tool('train').main([str(TINY), *options(tmp_path / 'single', 4)])
    one, two = curve(tmp_path / 'single'), curve(tmp_path / 'ddp')
    assert one['iter'] == two['iter'] == [1, 2, 3, 4]  # 8 videos / global batch 4, 2 epochs
    np.testing.assert_allclose(two['loss'], one['loss'], rtol=1e-5)
    a = load_trusted_checkpoint(tmp_path / 'single' / 'epoch_2.pth')['state_dict']
    b = load_trusted_checkpoint(tmp_path / 'ddp' / 'epoch_2.pth')['state_dict']
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6, msg=key)
    # the comparison is not vacuous: the second epoch moved the weights far more than the tolerance
    before = load_trusted_checkpoint(tmp_path / 'single' / 'epoch_1.pth')['state_dict']
    assert max(float((a[k] - before[k]).abs().max()) for k in a) > 1e-3


# ----------------------------------------------------------------------------------------------------------------------
# bf16 and the reconstruction picture
# ----------------------------------------------------------------------------------------------------------------------
def test_bf16_autocast_wrapper_trains_on_cpu(videos):
    from mmengine.optim import AmpOptimWrapper

    model = VideoMAEv2PretrainModel('vit_test', img_size=CROP, all_frames=CLIP_LEN)
    wrapper = BF16AutocastOptimWrapper(optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3))
    data = videomaev2_pretrain_collate([tiny_dataset(videos['list'], videos['root'])[i] for i in range(2)])
    dtypes = []
    hook = model.backbone.decoder.head.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    with torch.no_grad():
        fp32_loss = float(model(**model.data_preprocessor(data), mode='loss')['loss'])
    log = model.train_step(data, wrapper)
    hook.remove()
    assert dtypes == [torch.float32, torch.bfloat16]  # autocast only inside the wrapper's context
    bf16_loss = float(log['loss'].detach())
    assert math.isfinite(bf16_loss) and bf16_loss == pytest.approx(fp32_loss, rel=2e-2)
    if not torch.cuda.is_available():  # why the wrapper exists: mmengine's AMP wrapper insists on a GPU
        with pytest.raises(AssertionError, match='only available'):
            AmpOptimWrapper(dtype='bfloat16', optimizer=torch.optim.AdamW(model.parameters()))
    with pytest.raises(ValueError, match='bfloat16'):
        BF16AutocastOptimWrapper(dtype='float16', optimizer=torch.optim.AdamW(model.parameters()))
    # the recipe's optimiser settings carry over when a config switches the wrapper type
    from mmengine.optim import build_optim_wrapper

    cfg = Config.fromfile(RECIPES['vit_giant'])
    cfg.merge_from_dict({'optim_wrapper.type': 'BF16AutocastOptimWrapper'})
    built = build_optim_wrapper(model, cfg.optim_wrapper)
    assert isinstance(built, BF16AutocastOptimWrapper) and built.clip_grad_kwargs == dict(max_norm=0.02, norm_type=2)


def test_reconstruction_picture(videos, trained, tmp_path, monkeypatch):
    from tasks.pretrain import reconstruction

    tool = load_tool('visualize_reconstruction')
    out = tmp_path / 'recon.png'
    rows = {}
    monkeypatch.setattr(reconstruction, 'compose',
                        lambda r, s, f=reconstruction.compose: (rows.update(rows=r), f(r, s))[1])
    cfg = tiny_cfg(videos, tmp_path / 'cfgdir')
    cfg_file = tmp_path / 'tiny.py'
    cfg.dump(str(cfg_file))
    tool.main([str(cfg_file), str(trained / 'epoch_2.pth'), str(videos['root'] / videos['names'][0]),
               '--out', str(out), '--scale', '3'])
    import matplotlib.pyplot as plt

    image = plt.imread(out)
    # documented size: width 120 + T * k*S + (T - 1) * 2, height 4 * k*S + 3 * 2 (T = 8, S = 32, k = 3)
    assert image.shape[:2] == (4 * 96 + 6, 120 + 8 * 96 + 7 * 2)
    original, encoder_view, targets, recon = rows['rows']
    grey = torch.full_like(original, 0.5)
    seen = (encoder_view != grey).any(0)  # (T, S, S) pixels the encoder sees
    # 4 visible tokens of 16: a quarter of the pixels, shown unchanged
    assert seen.float().mean() == pytest.approx(0.25)
    assert torch.equal(encoder_view[:, seen], original[:, seen])
    target_px = (targets != grey).any(0)
    assert not (target_px & seen).any()  # the loss covers only encoder-masked patches
    assert torch.equal((recon != grey).any(0), target_px)  # predictions exactly where the targets are
    assert target_px.float().mean() == pytest.approx(0.375)  # 8 kept tokens, 2 of them visible: 6 of 16


def test_reconstruction_errors_compare_with_the_flat_clip_colour():
    from tasks.pretrain.reconstruction import reconstruction_errors

    # a clip whose left half is 0 and right half 1 (mean 0.5); the loss patches are the left column of pixels
    original = torch.zeros(3, 2, 4, 4)
    original[..., 2:] = 1.0
    where = torch.zeros(2, 4, 4, dtype=torch.bool)
    where[..., 0] = True
    perfect, flat = reconstruction_errors(original, original.clone(), where)
    assert perfect == 0.0 and flat == pytest.approx(0.25)  # (0 - 0.5)^2
    # predicting 0.1 where the truth is 0: 0.01, better than the flat colour
    assert reconstruction_errors(original, original + 0.1, where) == (pytest.approx(0.01), pytest.approx(0.25))


# ----------------------------------------------------------------------------------------------------------------------
# the longer run (not in CI)
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_tiny_config_learns_on_the_synthetic_benchmark(tmp_path):
    """The tiny config as shipped, on the `default` synthetic benchmark (generated here), for its 2 epochs (240
    iterations with 480 training videos; a few minutes): the loss falls well below its start, a reconstruction is
    drawn."""
    from tasks.data.synthetic.build import generate

    bench = tmp_path / 'synthetic'
    generate(bench, 'default', 0)
    cls = bench / 'classification'
    work = tmp_path / 'work'
    cfg = Config.fromfile(TINY)
    cfg.train_dataloader.dataset.update(ann_file=str(cls / 'train_list_videos.txt'), data_prefix=str(cls))
    cfg.work_dir, cfg.experiment_name = str(work), 'slow'
    Runner.from_cfg(cfg).train()
    losses = curve(work)['loss']
    first, last = float(np.mean(losses[:10])), float(np.mean(losses[-10:]))
    print(f'tiny pre-training: {len(losses)} iterations, loss {first:.4f} (mean of the first 10) -> {last:.4f} '
          f'(last 10)')
    videos_listed = len((cls / 'train_list_videos.txt').read_text().splitlines())
    assert len(losses) == videos_listed // 4 * 2  # batch 4 (drop_last), 2 epochs
    assert last < 0.5 * first
    out = load_tool('visualize_reconstruction').main(
        [str(TINY), str(work / 'epoch_2.pth'), str(cls / 'videos' / '1.mp4'), '--out', str(work / 'recon.png')])
    assert Path(out).exists()
