"""On a CUDA device (marker ``cuda``: skipped on machines without one, tests/conftest.py): the backbone, feature
extraction and one training step of every task on the GPU against the same computation on the CPU.

Tolerances are relative errors of whole tensors, ``||gpu - cpu|| / ||cpu||`` (:func:`rel_err`), set about ten times
above what each precision gives on these tiny models (measured on the CPU against float64: float32 ~7e-7, inputs
rounded to TF32 ~3e-4 to 7e-4, bfloat16 autocast ~5e-3):

* ``FP32_TOL`` 1e-5 (features, logits, losses): float32 with TF32 off
  (:func:`backbone.precision.cuda_tf32_settings`) on both sides, so that only the order of the sums differs. A training step's weight update gets ``UPDATE_TOL`` 1e-4: the backward adds atomic
  (unordered) sums and cuDNN's choice of algorithm.
* ``TF32_TOL`` 5e-3: TF32 keeps 11 significant bits (unit roundoff 2^-11 ~ 4.9e-4); cuDNN convolutions (the patch
  embedding) use it by default, float32 matmuls when ``torch.backends.cuda.matmul`` allows it.
* ``BF16_TOL`` 5e-2: bfloat16 keeps 8 significant bits (2^-8 ~ 3.9e-3); the band of the CPU bf16 tests. A bf16
  step's weight update gets ``BF16_UPDATE_TOL`` 0.25: the backward through bf16 activations reaches the first layers
  less accurately (on the CPU, against the float32 step: 6e-3 to 1e-2 for the ViT tasks, 0.1 for ActionFormer's
  16-channel input convolutions).

Losses and decoding stay float32 under autocast, so a bf16 step's losses are float32 tensors.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from backbone.precision import cuda_tf32_settings
from tests.feature_store.conftest import videos  # noqa: F401 (the three H.264 fixture videos)
from tests.feature_store.extract_kit import FRAMES, TINY

pytestmark = pytest.mark.cuda

GPU = torch.device('cuda')
FP32_TOL, UPDATE_TOL, TF32_TOL, BF16_TOL, BF16_UPDATE_TOL = 1e-5, 1e-4, 5e-3, 5e-2, 0.25


def rel_err(got: torch.Tensor | np.ndarray, expected: torch.Tensor | np.ndarray) -> float:
    """``||got - expected|| / ||expected||`` in float64, on the CPU."""
    got, expected = (t.detach().cpu().double() if isinstance(t, torch.Tensor) else torch.from_numpy(t).double()
                     for t in (got, expected))
    return float((got - expected).norm() / expected.norm())


def randomised(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Every weight moved off its init (zero biases, unit norms), so that all of them matter."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model


def skip_without_bf16() -> None:
    if not torch.cuda.is_bf16_supported():
        pytest.skip(f'{torch.cuda.get_device_name()} has no bfloat16')


# ---------------------------------------------------------------------------------------------------------------------
# backbone
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('fused_attn', [True, False], ids=['sdpa', 'explicit'])
def test_backbone_fp32_on_the_gpu_matches_the_cpu(tiny_vit, fused_attn):
    model = randomised(tiny_vit(num_classes=5, fused_attn=fused_attn))
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        feats, logits = model.forward_features(x), model(x)
        gpu = copy.deepcopy(model).to(GPU)
        for enabled, tol in ((False, FP32_TOL), (True, TF32_TOL)):
            with cuda_tf32_settings(enabled):
                got_feats, got_logits = gpu.forward_features(x.to(GPU)), gpu(x.to(GPU))
            assert got_feats.device.type == 'cuda' and got_feats.dtype == torch.float32
            assert got_feats.shape == (2, 64) and got_logits.shape == (2, 5)
            assert rel_err(got_feats, feats) <= tol, f'tf32={enabled}'
            assert rel_err(got_logits, logits) <= tol, f'tf32={enabled}'


def test_backbone_bf16_autocast_on_the_gpu_is_close_to_the_cpu_fp32(tiny_vit):
    skip_without_bf16()
    model = randomised(tiny_vit(num_classes=5))
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        feats, logits = model.forward_features(x), model(x)
        gpu = copy.deepcopy(model).to(GPU)
        with torch.autocast('cuda', dtype=torch.bfloat16):
            got_feats, got_logits = gpu.forward_features(x.to(GPU)), gpu(x.to(GPU))
    assert next(gpu.parameters()).dtype == torch.float32  # autocast casts per op, the weights stay float32
    assert FP32_TOL < rel_err(got_feats, feats) <= BF16_TOL  # bfloat16 did run, within its precision
    assert rel_err(got_logits, logits) <= BF16_TOL


# ---------------------------------------------------------------------------------------------------------------------
# feature extraction
# ---------------------------------------------------------------------------------------------------------------------
def test_extraction_on_the_gpu_matches_the_cpu_and_records_the_device(videos, tmp_path, capsys):  # noqa: F811
    from feature_store import FeatureStore
    from feature_store.extract import main

    cpu = tmp_path / 'cpu.h5'
    assert main([str(videos), '--out', str(cpu), *TINY]) == 0  # TINY: --device cpu
    for enabled, tol in ((False, FP32_TOL), (True, TF32_TOL)):
        gpu = tmp_path / f'gpu_tf32_{enabled}.h5'
        with cuda_tf32_settings(enabled):
            assert main([str(videos), '--out', str(gpu), *TINY, '--device', 'cuda']) == 0  # later options win
        with FeatureStore.open(cpu) as c, FeatureStore.open(gpu) as g:
            assert c.ids() == g.ids() == sorted(FRAMES)
            assert (c.info.config['device_type'], g.info.config['device_type']) == ('cpu', 'cuda')
            assert (c.info.config['tf32_matmul'], c.info.config['tf32_conv']) == (None, None)  # not on the CPU
            assert (g.info.config['tf32_matmul'], g.info.config['tf32_conv']) == (enabled, enabled)
            for vid in c.ids():
                (fc, mc), (fg, mg) = c.read(vid), g.read(vid)
                assert fg.dtype == np.float32 and fg.shape == fc.shape
                assert mg.to_dict() == mc.to_dict()  # the same windows
                assert rel_err(fg, fc) <= tol, (vid, enabled)
    # one store never mixes devices: a CPU run refuses to append to a GPU store
    capsys.readouterr()
    assert main([str(videos), '--out', str(gpu), *TINY]) == 2
    assert "device_type: 'cuda' (stored) vs 'cpu' (this run)" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------------
# one training step per task: the same weights and inputs on the CPU (float32) and on the GPU
# ---------------------------------------------------------------------------------------------------------------------
def one_step(model, batch: dict, precision: str, lr: float = 0.05) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """``model.train_step`` with plain SGD (the update is ``-lr * grad``, linear in the gradient), under bf16
    autocast for ``precision='bf16'``. Returns the logged losses and the flattened update of every parameter, on the
    CPU."""
    from mmengine.optim import OptimWrapper

    from tasks.engine import BF16AutocastOptimWrapper

    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    wrapper = BF16AutocastOptimWrapper(optimizer=optimizer) if precision == 'bf16' else OptimWrapper(optimizer)
    log = model.train_step(copy.deepcopy(batch), wrapper)
    losses = {k: v.detach().cpu() for k, v in log.items() if k.startswith('loss')}
    update = torch.cat([(p.detach() - before[name]).flatten().cpu() for name, p in model.named_parameters()])
    return losses, update


def check_step_on_the_gpu(model, batch: dict, precision: str) -> None:
    """One step of ``model`` on the CPU in float32 and of a copy on the GPU in ``precision``: finite float32 losses,
    close to the CPU's, and weight updates close to the CPU's."""
    if precision == 'bf16':
        skip_without_bf16()
    gpu_model = copy.deepcopy(model).to(GPU)
    with cuda_tf32_settings(False):
        expected, expected_update = one_step(model, batch, 'fp32')
        losses, update = one_step(gpu_model, batch, precision)
    assert next(gpu_model.parameters()).device.type == 'cuda'
    assert losses.keys() == expected.keys() and 'loss' in losses
    tol = FP32_TOL if precision == 'fp32' else BF16_TOL
    for key, value in losses.items():
        assert value.dtype == torch.float32 and math.isfinite(float(value)), (key, value)
        # relative to the loss, or to 1e-3 for a loss near 0
        assert abs(float(value) - float(expected[key])) <= tol * max(abs(float(expected[key])), 1e-3), \
            (key, float(value), float(expected[key]))
    assert float(expected_update.norm()) > 0 and torch.isfinite(update).all()
    assert rel_err(update, expected_update) <= (UPDATE_TOL if precision == 'fp32' else BF16_UPDATE_TOL)


PRECISIONS = pytest.mark.parametrize('precision', ['fp32', 'bf16'])


@PRECISIONS
def test_classification_step_with_an_online_teacher(tmp_path, precision):
    """Fine-tuning with distillation: the teacher, held outside the module tree, follows the inputs to the GPU."""
    from backbone import VideoMAEv2ViT
    from tasks.classification.model import VideoMAEv2Classifier

    tiny = dict(arch='vit_test', img_size=32, all_frames=4, num_classes=3)
    teacher = tmp_path / 'teacher.pth'
    torch.save({'module': randomised(VideoMAEv2ViT(**tiny), seed=2).state_dict()}, teacher)
    model = randomised(VideoMAEv2Classifier(backbone=tiny, distill=dict(teacher=dict(tiny, checkpoint=str(teacher)),
                                                                        alpha=0.5)))
    batch = dict(inputs=torch.randint(0, 256, (2, 2, 3, 4, 32, 32), dtype=torch.uint8),  # 2 videos x 2 views
                 data_samples=dict(label=torch.tensor([0, 2]), index=torch.tensor([0, 1]), video_id=['a', 'b']))
    check_step_on_the_gpu(model, batch, precision)


@PRECISIONS
def test_pretraining_step(precision):
    from backbone.masking import DualMaskGenerator
    from tasks.pretrain import VideoMAEv2PretrainModel

    model = randomised(VideoMAEv2PretrainModel('vit_test', img_size=64, all_frames=4))
    gen, rng = DualMaskGenerator((2, 4, 4), encoder_ratio=0.75), np.random.default_rng(0)  # 8 visible of 32 tokens
    masks = [[gen(rng) for _ in range(2)] for _ in range(2)]  # 2 videos x 2 views
    batch = dict(inputs=torch.randint(0, 256, (2, 2, 3, 4, 64, 64), dtype=torch.uint8),
                 data_samples=dict(encoder_mask=torch.from_numpy(np.array([[e for e, _ in v] for v in masks])),
                                   decoder_mask=torch.from_numpy(np.array([[d for _, d in v] for v in masks])),
                                   index=torch.tensor([0, 1]), failed=[]))
    check_step_on_the_gpu(model, batch, precision)


@PRECISIONS
def test_ava_detection_step(precision):
    from tasks.detection import VideoMAEv2AVADetector

    model = randomised(VideoMAEv2AVADetector(backbone=dict(arch='vit_test', img_size=32, all_frames=4),
                                             roi_head=dict(num_classes=3, dropout=0.0)))
    clips = [torch.randint(0, 256, (3, 4, 32, 32)).float() for _ in range(2)]
    samples = [dict(boxes=torch.tensor([[0.0, 0.0, 16.0, 32.0], [8.0, 4.0, 30.0, 28.0]]),
                    labels=torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])),
               dict(boxes=torch.tensor([[4.0, 4.0, 20.0, 24.0]]), labels=torch.tensor([[0.0, 0.0, 1.0]]))]
    check_step_on_the_gpu(model, dict(inputs=clips, data_samples=samples), precision)


@PRECISIONS
def test_actionformer_step(precision):
    from tasks.localization.model import ActionFormerTAD

    model = ActionFormerTAD(8, 3, embed_dim=16, head_dim=16, window=5, drop_path=0.0,
                            data_preprocessor=dict(type='TADDataPreprocessor', max_seq_len=64))
    randomised(model)
    feats = [torch.randn(8, 50), torch.randn(8, 60)]
    samples = [{'segments': torch.tensor([[10.0, 20.0], [30.0, 41.0]]), 'labels': torch.tensor([1, 2])},
               {'segments': torch.tensor([[5.0, 12.0]]), 'labels': torch.tensor([0])}]
    check_step_on_the_gpu(model, dict(inputs=feats, data_samples=samples), precision)
