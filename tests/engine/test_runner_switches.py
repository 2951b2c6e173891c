"""GPU speed switches of the Runner tools (``tasks/engine/runner.py``, ``tools/train.py``, ``configs/_base_``):
``--amp`` (bf16 / fp16 optimiser wrappers), TF32 from the config, cuDNN benchmark and pinned memory in the recipes.

What is checked, and against what:

* ``apply_amp`` against the config it was given: only the wrapper type (and for fp16 its dtype and loss scale) changes,
  every optimiser setting stays; the refusals name the problem (fp16 without CUDA, the other precision already set,
  a custom wrapper);
* a tiny pre-training run through ``tools/train.py --amp`` on the CPU: the Runner's wrapper is the bf16 one, the
  decoder runs in bfloat16 and the losses are finite;
* TF32: the torch flags read after the Runner's set-up, for ``tf32=True`` and ``tf32=False`` (restored afterwards);
* the recipe configs: cuDNN benchmark where the shapes are fixed, pinned memory in every real data loader.
"""
from __future__ import annotations

import glob
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip('mmaction', reason='the configs use mmaction2 registries and runtime')

from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.registry import HOOKS  # noqa: E402

from backbone.precision import cuda_tf32, cuda_tf32_settings, set_cuda_tf32  # noqa: E402
from tasks.engine.runner import apply_amp, build_runner  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FINETUNE = ROOT / 'configs/recognition/videomaev2/vit-giant-p14_videomaev2-hybrid-pt_16x4x1_kinetics-710.py'
PRETRAIN_TINY = ROOT / 'configs/pretrain/videomaev2/vit-test-p16_videomaev2-pt-2e_8x2x1_synthetic.py'
NO_CUDA = not torch.cuda.is_available()


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f'tool_{name}', ROOT / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _recipe_wrapper() -> Config:
    """The ViT-g K710 fine-tuning config with gradient accumulation added: clip_grad, paramwise_cfg, constructor and
    accumulative_counts all set."""
    cfg = Config.fromfile(FINETUNE)
    cfg.optim_wrapper.accumulative_counts = 4
    return cfg


# =====================================================================================================================
# --amp
# =====================================================================================================================
def test_bf16_switches_the_wrapper_type_only():
    cfg = _recipe_wrapper()
    before = cfg.optim_wrapper.to_dict()
    assert before['type'] == 'OptimWrapper' and before['clip_grad'] is not None
    apply_amp(cfg, 'bf16')
    after = cfg.optim_wrapper.to_dict()
    assert after.pop('type') == 'BF16AutocastOptimWrapper'
    before.pop('type')
    assert after == before
    apply_amp(cfg, 'bf16')  # already bf16: unchanged
    assert cfg.optim_wrapper.to_dict() == dict(after, type='BF16AutocastOptimWrapper')
    apply_amp(cfg, None)
    assert cfg.optim_wrapper.type == 'BF16AutocastOptimWrapper'


def test_bf16_wrapper_builds_with_the_recipe_settings():
    from mmengine.optim import build_optim_wrapper

    from tasks.classification.model import VideoMAEv2Classifier
    from tasks.engine import BF16AutocastOptimWrapper

    cfg = _recipe_wrapper()
    apply_amp(cfg, 'bf16')
    model = VideoMAEv2Classifier(backbone=dict(arch='vit_test', img_size=32, all_frames=4, num_classes=5))
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert isinstance(wrapper, BF16AutocastOptimWrapper)
    assert wrapper.clip_grad_kwargs == dict(cfg.optim_wrapper.clip_grad)
    assert wrapper._accumulative_counts == 4
    # the layer-decay constructor's parameter groups: one lr scale per layer, not one group
    assert len({g['lr'] for g in wrapper.optimizer.param_groups}) > 2


def test_fp16_switches_to_mmengine_amp_with_dynamic_loss_scaling(monkeypatch):
    cfg = _recipe_wrapper()
    before = cfg.optim_wrapper.to_dict()
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)  # the transformation only; nothing is built
    apply_amp(cfg, 'fp16')
    after = cfg.optim_wrapper.to_dict()
    assert (after.pop('type'), after.pop('dtype'), after.pop('loss_scale')) == ('AmpOptimWrapper', 'float16', 'dynamic')
    before.pop('type')
    assert after == before
    # a config's own static loss scale stays
    cfg = _recipe_wrapper()
    cfg.optim_wrapper.update(type='AmpOptimWrapper', loss_scale=512.0)
    apply_amp(cfg, 'fp16')
    assert cfg.optim_wrapper.loss_scale == 512.0


@pytest.mark.skipif(not NO_CUDA, reason='the refusal is for machines without CUDA')
def test_fp16_is_refused_without_cuda(tmp_path):
    with pytest.raises(RuntimeError, match='--amp fp16 needs a CUDA GPU'):
        apply_amp(_recipe_wrapper(), 'fp16')
    # through the command line, before anything is built or written
    with pytest.raises(RuntimeError, match='--amp fp16 needs a CUDA GPU'):
        load_tool('train').main([str(PRETRAIN_TINY), '--amp', 'fp16', '--work-dir', str(tmp_path / 'work')])
    assert not (tmp_path / 'work').exists()


@pytest.mark.parametrize('wrapper, mode, message', [
    (dict(type='AmpOptimWrapper'), 'bf16', r"already trains in float16 \(optim_wrapper.type='AmpOptimWrapper'\)"),
    (dict(type='AmpOptimWrapper', dtype='bfloat16'), 'fp16', 'already trains in bfloat16'),
    (dict(type='BF16AutocastOptimWrapper'), 'fp16', 'already trains in bfloat16'),
    (dict(type='MyWrapper'), 'bf16', r"optim_wrapper.type='MyWrapper' is not one --amp can switch"),
    (dict(type='OptimWrapper'), 'fp32', "must be 'bf16' or 'fp16'"),
])
def test_conflicting_configs_are_refused(wrapper, mode, message):
    cfg = Config(dict(optim_wrapper=dict(wrapper, optimizer=dict(type='AdamW', lr=1e-3))))
    with pytest.raises(ValueError, match=message):
        apply_amp(cfg, mode)
    with pytest.raises(ValueError, match='no optim_wrapper'):
        apply_amp(Config(dict(model=dict())), 'bf16')


@HOOKS.register_module(force=True)
class AmpProbeHook(Hook):
    """Records the Runner's optimiser wrapper and the dtype of the decoder head's output in training steps."""

    seen: dict = {}

    def before_train(self, runner) -> None:
        AmpProbeHook.seen = dict(wrapper=type(runner.optim_wrapper).__name__, dtypes=[])
        head = runner.model.backbone.decoder.head
        head.register_forward_hook(lambda m, i, out: AmpProbeHook.seen['dtypes'].append(out.dtype))


def test_train_with_amp_runs_bf16_on_the_cpu(tmp_path, one_thread):
    """``tools/train.py CONFIG --amp``: 2 iterations of the tiny pre-training config on 4 small videos."""
    pytest.importorskip('av', reason='the videos are written with PyAV')
    import json

    from tasks.data.video import write_video

    rng = np.random.default_rng(0)
    for k in range(4):
        write_video(tmp_path / 'videos' / f'{k}.mp4', rng.integers(0, 255, (16, 48, 64, 3), dtype=np.uint8), fps=30)
    (tmp_path / 'list.txt').write_text(''.join(f'videos/{k}.mp4 0\n' for k in range(4)))
    options = {'model.img_size': 32, 'model.all_frames': 8, 'train_dataloader.batch_size': 2,
               'train_dataloader.num_workers': 0, 'train_dataloader.persistent_workers': False,
               'train_dataloader.dataset.ann_file': str(tmp_path / 'list.txt'),
               'train_dataloader.dataset.data_prefix': str(tmp_path), 'train_dataloader.dataset.input_size': 32,
               'train_dataloader.dataset.num_sample': 2, 'train_cfg.max_epochs': 1,
               'custom_hooks': [dict(type='PretrainLossCurveHook', interval=100), dict(type='AmpProbeHook')]}
    cfg = Config.fromfile(PRETRAIN_TINY)
    cfg.merge_from_dict(options)
    cfg.dump(str(tmp_path / 'tiny.py'))
    load_tool('train').main([str(tmp_path / 'tiny.py'), '--amp', '--work-dir', str(tmp_path / 'work')])
    assert AmpProbeHook.seen['wrapper'] == 'BF16AutocastOptimWrapper'
    assert AmpProbeHook.seen['dtypes'] == [torch.bfloat16] * 2  # autocast in both training steps
    curve = json.loads((tmp_path / 'work' / 'loss_curve.json').read_text())
    assert curve['iter'] == [1, 2] and all(math.isfinite(v) and v > 0 for v in curve['loss'])


# =====================================================================================================================
# TF32, cuDNN benchmark, pinned memory
# =====================================================================================================================
@pytest.fixture
def restore_backend_flags():
    """TF32 and cuDNN benchmark as they were before the test."""
    benchmark = torch.backends.cudnn.benchmark
    with cuda_tf32_settings(*cuda_tf32()):
        yield
    torch.backends.cudnn.benchmark = benchmark


@pytest.mark.parametrize('tf32', [True, False])
def test_tf32_and_cudnn_benchmark_are_set_before_the_runner_builds(tmp_path, restore_backend_flags, tf32):
    """The recipe default (``tf32 = True``) and ``--cfg-options tf32=False``, read from torch after the Runner's
    set-up (with the reader the feature store records them with); the pre-training runtime turns cuDNN benchmark on
    (mmengine's env_cfg)."""

    set_cuda_tf32(not tf32, not tf32)
    torch.backends.cudnn.benchmark = False
    assert cuda_tf32() == (not tf32, not tf32)
    cfg = Config.fromfile(PRETRAIN_TINY)
    assert cfg.tf32 is True and cfg.env_cfg.cudnn_benchmark is True
    cfg.merge_from_dict(dict(tf32=tf32, work_dir=str(tmp_path), train_dataloader=None, train_cfg=None,
                             optim_wrapper=None, param_scheduler=None))
    build_runner(cfg)
    assert cuda_tf32() == (tf32, tf32)
    assert torch.backends.cudnn.benchmark is True


def test_tf32_none_leaves_torch_alone(tmp_path, restore_backend_flags):
    from tasks.engine.runner import apply_tf32

    set_cuda_tf32(False, True)  # torch's defaults
    apply_tf32(Config(dict(tf32=None)))
    apply_tf32(Config(dict()))
    assert cuda_tf32() == (False, True)
    with pytest.raises(ValueError, match='tf32 must be True, False or None'):
        apply_tf32(Config(dict(tf32='yes')))


def _recipe_configs() -> list[str]:
    return sorted(p for p in glob.glob(str(ROOT / 'configs/**/*.py'), recursive=True)
                  if '_base_' not in p and 'synthetic' not in p and 'suites' not in Path(p).parts)


def test_recipes_benchmark_fixed_shapes_and_pin_memory():
    """cuDNN benchmark on for classification fine-tuning and pre-training (fixed clip sizes), off for AVA and THUMOS
    (test sizes vary); every loader of a real recipe pins memory, for the preprocessors' non_blocking copies."""
    configs = _recipe_configs()
    assert len(configs) > 30
    for path in configs:
        cfg = Config.fromfile(path)
        task = Path(path).parts[-3]
        assert cfg.tf32 is True, path
        # the test-only Kinetics configs of distilled checkpoints keep the shared runtime's setting
        assert cfg.env_cfg.cudnn_benchmark is (task in ('recognition', 'pretrain') and 'train_dataloader' in cfg), path
        for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            if cfg.get(name):
                assert cfg[name].get('pin_memory') is True, (path, name)


def test_preprocessors_copy_without_blocking():
    from tasks.classification.model import VideoMAEv2ClsPreprocessor
    from tasks.detection.model import VideoMAEv2AVAPreprocessor
    from tasks.localization.model import TADDataPreprocessor
    from tasks.pretrain.model import VideoMAEv2PretrainPreprocessor

    for cls in (VideoMAEv2ClsPreprocessor, VideoMAEv2AVAPreprocessor, TADDataPreprocessor,
                VideoMAEv2PretrainPreprocessor):
        assert cls()._non_blocking is True, cls.__name__
