"""Every task trained by 2 gloo processes under torchrun (``tools/train.py --launcher pytorch``) on the CPU, against
one process, and the per-rank seeding (``diff_rank_seed``). Pre-training's 2-process test is in
tests/pretrain/test_training.py.

What is compared, and why it must be equal:

* classification fine-tuning with an online distillation teacher: 2 processes x batch b against 1 process x batch 2b.
  The loss is a mean over the batch, so DDP's average of the two ranks' gradients is the 1-process gradient;
* AVA and ActionFormer: 2 processes x batch 1 against 1 process x batch 1 accumulating 2 iterations per step
  (``optim_wrapper.accumulative_counts=2``). Their losses are means (AVA: over a rank's labelled RoIs) or sums divided
  by a per-rank normaliser (ActionFormer's EMA of the number of positives), so a rank's gradient depends on how the
  global batch is split: DDP averages per-rank losses exactly as gradient accumulation averages per-iteration ones.
  ActionFormer's normaliser is held constant (``loss_norm_momentum=1``), since each rank keeps its own EMA, and its
  weight EMA hook is off, since it updates once per iteration;
* rank-seeded randomness (Mixup/CutMix, dropout, drop path, erasing noise) is off in these runs (the tiny configs
  already have none), as with ``diff_rank_seed=True`` each rank draws its own.

The last test checks that seeding: Mixup lambdas and drop-path masks differ between the ranks, while the sampler's
shuffle and every sample, a pure function of (dataset seed, epoch, index), do not.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip('mmaction', reason='the configs use mmaction2 registries and runtime')
pytest.importorskip('av', reason='the synthetic videos are written with PyAV')

from mmengine.config import Config  # noqa: E402

from tasks.engine import load_trusted_checkpoint  # noqa: E402
from tasks.engine.runner import train_config  # noqa: E402
from tests.classification.test_finetune import CONFIGS as CLS_CONFIGS  # noqa: E402
from tests.detection.test_end_to_end import CONFIG as AVA_CONFIG, retarget, small_ava  # noqa: E402,F401
from tests.localization.test_train import build_cfg as tad_cfg, make_benchmark  # noqa: E402
from tests.torchrun_kit import run_torchrun  # noqa: E402


def train_both(cfg: Config, tmp_path: Path, ddp: dict, single: dict, lr: float) -> tuple[dict, dict, dict]:
    """Train ``cfg`` (no validation) with SGD at ``lr`` by 2 processes (``--cfg-options`` ``ddp``, scalars) and by
    this process (options ``single``).

    SGD, not the recipes' AdamW: Adam's first steps are about lr * sign(g), so a weight whose gradients nearly cancel
    moves by a whole step either way with the rounding of another summation order (2 ranks against 1 process, one
    thread against several); SGD's step is proportional to the gradient, so the two runs differ by rounding only.

    Returns:
        The state dicts of the last epoch: (2 processes, 1 process, 1 process one epoch earlier).
    """
    epochs = cfg.train_cfg.max_epochs
    cfg.optim_wrapper.optimizer = dict(type='SGD', lr=lr, momentum=0.9, weight_decay=0.0)
    cfg.default_hooks.checkpoint.update(interval=1, max_keep_ckpts=2, save_best=None)
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    path = tmp_path / 'config.py'
    cfg.dump(path)
    options = [f'{k}={v}' for k, v in ddp.items()]
    run_torchrun('train', [path, '--launcher', 'pytorch', '--work-dir', tmp_path / 'ddp',
                           *(['--cfg-options', *options] if options else [])])
    train_config(str(path), work_dir=str(tmp_path / 'single'), cfg_options=single)

    def state(run: str, epoch: int) -> dict:
        return load_trusted_checkpoint(tmp_path / run / f'epoch_{epoch}.pth')['state_dict']
    return state('ddp', epochs), state('single', epochs), state('single', epochs - 1)


def cls_cfg(root: Path, options: dict) -> Config:
    """The tiny fine-tuning config on the tiny synthetic preset in ``root``: training only, no loader workers."""
    cfg = Config.fromfile(str(CLS_CONFIGS / 'vit-test-p16_videomaev2-ft_8x4x1_synthetic.py'))
    data = str(root / 'classification')
    cfg.merge_from_dict({'train_dataloader.dataset.ann_file': f'{data}/train_list_videos.txt',
                         'train_dataloader.dataset.data_prefix': data, 'train_dataloader.num_workers': 0,
                         'train_dataloader.persistent_workers': False, 'visualizer.vis_backends': [],
                         'train_dataloader.dataset.frame_interval': 2,  # the tiny preset's 16-frame clips
                         **options})
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    return cfg


def assert_same_weights(two: dict, one: dict, before: dict, atol: float = 1e-6) -> None:
    assert two.keys() == one.keys()
    for key in one:
        diff = float((two[key] - one[key]).abs().max())
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=atol, msg=f'{key}: max difference {diff:.2e}')
    # not vacuous: the last epoch moved the weights far beyond the tolerance
    assert max(float((one[k] - before[k]).abs().max()) for k in one) > 1e-3


# ---------------------------------------------------------------------------------------------------------------------
# AVA
# ---------------------------------------------------------------------------------------------------------------------
def test_ava_two_processes_match_one_process_accumulating(small_ava, tmp_path):  # noqa: F811
    """Fails while any detector parameter gets no gradient (DDP: "Expected to have finished reduction in the prior
    iteration" at the second step): the ViT's pooling norm was never used by the feature map."""
    from tasks.data.annotations import read_ava_csv

    ann = small_ava / 'annotations' / 'ava_train_v2.2.csv'
    keyframes = {(b.video_id, b.timestamp) for b in read_ava_csv(ann)}
    assert len(keyframes) % 2 == 0  # no sampler padding: both runs see every keyframe once per epoch
    cfg = retarget(Config.fromfile(str(AVA_CONFIG)), small_ava)
    cfg.merge_from_dict({'train_dataloader.batch_size': 1, 'train_cfg.max_epochs': 2, 'model.roi_head.dropout': 0.0})
    cfg.param_scheduler = []  # one lr for every step: the 1-process run has twice the iterations
    two, one, before = train_both(cfg, tmp_path, {}, {'optim_wrapper.accumulative_counts': 2}, lr=0.1)
    assert not any('fc_norm' in k for k in one)
    assert_same_weights(two, one, before)


# ---------------------------------------------------------------------------------------------------------------------
# classification fine-tuning with an online teacher
# ---------------------------------------------------------------------------------------------------------------------
def test_distillation_fine_tune_two_processes_match_one_process(tmp_path):
    from backbone import VideoMAEv2ViT
    from tasks.data.synthetic import generate

    generate(tmp_path / 'syn', 'tiny', 0, workers=1, log=lambda msg: None)  # 10 training videos
    torch.manual_seed(3)
    teacher = VideoMAEv2ViT('vit_test', img_size=96, all_frames=8, num_classes=10, init_scale=1.0)
    torch.save({'module': teacher.state_dict()}, tmp_path / 'teacher.pth')
    cfg = cls_cfg(tmp_path / 'syn', {'train_cfg.max_epochs': 2})
    cfg.model.distill = dict(teacher=dict(arch='vit_test', img_size=96, all_frames=8, num_classes=10,
                                          checkpoint=str(tmp_path / 'teacher.pth')), temperature=3.0, alpha=0.5)
    cfg.param_scheduler = []
    # No Mixup, erasing or drop path in the tiny config: nothing rank-seeded reaches the loss.
    assert cfg.model.data_preprocessor.mixup is None and cfg.train_dataloader.dataset.reprob == 0
    assert cfg.model.backbone.drop_path_rate == 0
    # 10 videos: 2 x 5 per step against 1 x 10
    two, one, before = train_both(cfg, tmp_path, {'train_dataloader.batch_size': 5},
                                  {'train_dataloader.batch_size': 10}, lr=0.2)
    assert not any(k.startswith('_teacher') for k in one)  # the teacher is no part of the student
    assert_same_weights(two, one, before)


# ---------------------------------------------------------------------------------------------------------------------
# ActionFormer on stored features
# ---------------------------------------------------------------------------------------------------------------------
def test_actionformer_two_processes_match_one_process_accumulating(tmp_path):
    ann, store = make_benchmark(tmp_path, train=4, test=1)
    cfg = tad_cfg(tmp_path, ann, store, epochs=2)
    cfg.merge_from_dict({'train_dataloader.batch_size': 1, 'model.loss_norm_momentum': 1.0,
                         'auto_scale_lr.enable': False})
    cfg.param_scheduler = []
    cfg.custom_hooks = []  # the EMA of the weights moves once per iteration, not per step
    assert cfg.model.drop_path == 0 and cfg.model.get('input_drop', 0) == 0
    two, one, before = train_both(cfg, tmp_path, {}, {'optim_wrapper.accumulative_counts': 2}, lr=0.1)
    assert_same_weights(two, one, before)


# ---------------------------------------------------------------------------------------------------------------------
# seeding per rank
# ---------------------------------------------------------------------------------------------------------------------
PROBE = '''
"""Build the Runner of a config under torchrun, then save this rank's seeded draws and some samples."""
import sys

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.model import is_model_wrapper

from backbone.videomaev2 import DropPath
from tasks.engine.runner import build_runner, cpu_backend, finish_distributed

cfg = Config.fromfile(sys.argv[1])
cfg.launcher, cfg.work_dir = 'pytorch', sys.argv[2]
cpu_backend(cfg)
runner = build_runner(cfg)  # seeds the global generators: seed + rank with diff_rank_seed
model = runner.model.module if is_model_wrapper(runner.model) else runner.model
loader = runner.train_loop.dataloader
batch = next(iter(loader))
mixed = model.data_preprocessor(batch, training=True)['data_samples']
torch.save(dict(lam=float(mixed['mix_lam']), drop_path=DropPath(0.5).train()(torch.ones(64, 1)).flatten(),
                sampler_seed=loader.sampler.seed, batch=batch['inputs'], keys=list(iter(loader.sampler))[:2],
                samples=[loader.dataset[(1, i)]['inputs'] for i in range(3)]),
           f'{sys.argv[2]}/rank{dist.get_rank()}.pt')
finish_distributed()
'''


def test_ranks_draw_their_own_mixup_but_load_the_same_samples(tmp_path, one_thread):
    # one thread here as in the ranks: the crop's resize rounds 0.02 % of the pixels by 1 the other way with two
    from tasks.classification import VideoMAEv2ClsDataset
    from tasks.data.synthetic import generate

    generate(tmp_path / 'syn', 'tiny', 0, workers=1, log=lambda msg: None)
    cfg = cls_cfg(tmp_path / 'syn', {'train_dataloader.batch_size': 2})
    cfg.model.data_preprocessor.mixup = dict(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5)
    assert cfg.randomness.diff_rank_seed  # the fine-tuning runtime's setting
    cfg.dump(tmp_path / 'config.py')
    (tmp_path / 'probe.py').write_text(PROBE)
    run_torchrun(tmp_path / 'probe.py', [tmp_path / 'config.py', tmp_path])
    ranks = [torch.load(tmp_path / f'rank{r}.pt', weights_only=False) for r in (0, 1)]
    # seed + rank: each process mixes its batch with its own lambda and drops its own paths
    assert ranks[0]['lam'] != ranks[1]['lam']
    assert not torch.equal(ranks[0]['drop_path'], ranks[1]['drop_path'])
    # ... while the sampler shuffles with one seed: the ranks take disjoint halves of one permutation
    assert ranks[0]['sampler_seed'] == ranks[1]['sampler_seed']
    assert not set(ranks[0]['keys']) & set(ranks[1]['keys'])
    # ... and a sample is the same whichever process loads it, and the same as one loaded here, outside any Runner
    dataset = VideoMAEv2ClsDataset(**{k: v for k, v in cfg.train_dataloader.dataset.items() if k != 'type'})
    for i in range(3):
        expected = dataset[(1, i)]['inputs']
        assert torch.equal(ranks[0]['samples'][i], expected) and torch.equal(ranks[1]['samples'][i], expected)
    # the batch each rank drew first is made of such samples (its sampler's first epoch-0 keys)
    for rank in ranks:
        first = [dataset[key]['inputs'] for key in rank['keys']]
        assert torch.equal(rank['batch'], torch.stack(first))
