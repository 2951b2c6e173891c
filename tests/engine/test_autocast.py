"""Every task head under bf16 autocast: losses, scores and decoded outputs in float32, close to an fp32 run; and
``BF16AutocastOptimWrapper`` autocasting on the model's device, not the machine's.

Each model runs the same tiny input twice, in fp32 and under ``torch.autocast('cpu', dtype=torch.bfloat16)``.

Tolerance. bfloat16 keeps 8 significant bits: rounding a value to bf16 moves it by at most u = 2^-8 of itself. A
matmul or conv under autocast rounds its inputs and its output, so each such layer adds an error of about u of the
activations' scale, and the independent errors of L layers in a row add in quadrature to about sqrt(L) u. We allow
4 sqrt(L) u of the largest fp32 magnitude (``tolerance``; 4 standard deviations, for the largest of up to a few
hundred outputs), with L counted per model below; the errors measured here stay below half of it. A result computed
in bf16 after the network (a sigmoid, a loss, a decoded distance) would be rounded to 8 bits once more: the float32
dtype checks catch that, and the ActionFormer and AVA tests below compare such results with float32 ones exactly.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tasks.classification.model import VideoMAEv2Classifier
from tasks.detection import VideoMAEv2AVADetector
from tasks.localization.model import ActionFormerTAD, TADDataPreprocessor
from tasks.pretrain.model import VideoMAEv2PretrainModel

pytestmark = pytest.mark.usefixtures('one_thread')  # tiny tensors: one intra-op thread (tests/conftest.py)

U = 2.0 ** -8  # bf16 unit roundoff (8 significant bits)
TINY_VIT = dict(arch='vit_test', img_size=32, all_frames=4)
# bf16 layers from the input to the output: vit_test has a patch-embedding conv and 2 blocks of 6 matmuls (qkv,
# q @ k, attention @ v, proj, fc1, fc2); the classifier adds its head, the AVA head RoIAlign's bf16 output and fc_cls,
# pre-training the encoder-to-decoder projection, 2 decoder blocks and the decoder head. The tiny ActionFormer has
# 2 embedding convs, 7 blocks of 7 (q/k/v conv, q/k/v projection, q @ k, attention @ v, proj, 2 MLP convs) and
# 3 head convs.
LAYERS = dict(classifier=14, ava=15, pretrain=27, actionformer=54)


def tolerance(layers: int) -> float:
    """Relative tolerance of an autocast result after ``layers`` bf16 layers (module docstring)."""
    return 4 * layers ** 0.5 * U


def assert_near_fp32(actual: torch.Tensor, expected: torch.Tensor, layers: int) -> None:
    """float32, and within ``tolerance(layers)`` of the largest magnitude of the fp32 result."""
    assert actual.dtype == torch.float32, actual.dtype
    scale = float(expected.abs().max())
    torch.testing.assert_close(actual, expected, rtol=0, atol=tolerance(layers) * scale)


def bf16():
    return torch.autocast('cpu', dtype=torch.bfloat16)


def randomise_(model: torch.nn.Module) -> torch.nn.Module:
    """Random values in every parameter (the heads start near zero), so that logits and losses are O(1)."""
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn_like(param))
    return model


# --------------------------------------------------------------------------------------------------------------------
# the optimiser wrapper
# --------------------------------------------------------------------------------------------------------------------
def test_bf16_wrapper_autocasts_on_the_models_device(monkeypatch):
    """A CPU model on a machine with CUDA: mmengine's own choice would be CUDA autocast, under which CPU ops stay
    float32. The wrapper autocasts where the model is."""
    import mmengine.device.utils

    from tasks.engine import BF16AutocastOptimWrapper

    # what mmengine sees on a GPU machine (it decides its DEVICE once, at import)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *args, **kwargs: True)
    monkeypatch.setattr(mmengine.device.utils, 'DEVICE', 'cuda')
    model = torch.nn.Linear(4, 3)
    wrapper = BF16AutocastOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    x = torch.randn(2, 4)
    with wrapper.optim_context(model):
        assert model(x).dtype == torch.bfloat16
    assert model(x).dtype == torch.float32  # only inside the context


# --------------------------------------------------------------------------------------------------------------------
# classification, distillation, pre-training
# --------------------------------------------------------------------------------------------------------------------
def test_classification_losses_and_scores(tmp_path):
    teacher = randomise_(VideoMAEv2Classifier(backbone=dict(TINY_VIT, num_classes=5)).backbone)
    torch.save({'module': teacher.state_dict()}, tmp_path / 'teacher.pth')
    model = VideoMAEv2Classifier(backbone=dict(TINY_VIT, num_classes=5), label_smoothing=0.1,
                                 distill=dict(teacher=dict(TINY_VIT, num_classes=5,
                                                           checkpoint=str(tmp_path / 'teacher.pth')),
                                              temperature=3.0, alpha=0.5)).eval()
    randomise_(model)
    x = torch.randn(4, 3, 4, 32, 32)
    samples = dict(label=torch.tensor([0, 3]), num_views=2, index=torch.arange(2),
                   video_id=['a', 'b'])
    soft = dict(samples, soft_target=torch.softmax(torch.randn(4, 5), -1))
    with torch.no_grad():
        runs = []
        for cast in (False, True):
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=cast):
                runs.append((model.loss(x, samples), model.loss(x, soft),
                             torch.stack([p['pred_score'] for p in model.predict(x, samples)])))
    (hard, soft_loss, scores), (hard_bf, soft_bf, scores_bf) = runs
    assert set(hard) == {'loss_kd', 'loss_cls'}
    for ref, out in ((hard, hard_bf), (soft_loss, soft_bf)):
        for key in ref:
            assert_near_fp32(out[key], ref[key], LAYERS['classifier'])
    assert_near_fp32(scores_bf, scores, LAYERS['classifier'])


def test_pretraining_loss():
    from backbone.masking import DualMaskGenerator

    model = VideoMAEv2PretrainModel('vit_test', img_size=32, all_frames=4)
    gen, rng = DualMaskGenerator((2, 2, 2), encoder_ratio=0.5), np.random.default_rng(0)
    masks = [torch.from_numpy(np.stack(m)) for m in zip(*(gen(rng) for _ in range(2)))]
    samples = dict(encoder_mask=masks[0], decoder_mask=masks[1])
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        ref = model(x, samples, mode='loss')['loss']
        with bf16():
            out = model(x, samples, mode='loss')['loss']
    assert_near_fp32(out, ref, LAYERS['pretrain'])


# --------------------------------------------------------------------------------------------------------------------
# AVA
# --------------------------------------------------------------------------------------------------------------------
def _ava() -> tuple[VideoMAEv2AVADetector, torch.Tensor, list[dict]]:
    model = VideoMAEv2AVADetector(backbone=dict(arch='vit_test', img_size=64, all_frames=4),
                                  roi_head=dict(num_classes=5)).eval()
    x = torch.randn(2, 3, 4, 64, 64)
    samples = [dict(boxes=torch.tensor([[3.0, 5.0, 40.0, 60.0]]), labels=torch.tensor([[1., 0, 0, 1, 0]]),
                    video_id='a', timestamp=902, norm_boxes=torch.tensor([[0.05, 0.08, 0.62, 0.94]])),
               dict(boxes=torch.tensor([[10.0, 11.0, 50.0, 33.0], [0.0, 0.0, 64.0, 64.0]]),
                    labels=torch.tensor([[0., 1, 0, 0, 0], [0, 0, 1, 0, 1]]), video_id='b', timestamp=903,
                    norm_boxes=torch.tensor([[0.16, 0.17, 0.78, 0.52], [0.0, 0.0, 1.0, 1.0]]))]
    return model, x, samples


def test_ava_loss_and_scores():
    model, x, samples = _ava()
    with torch.no_grad():
        ref_loss = model(x, samples, mode='loss')
        ref_scores = torch.cat([p['scores'] for p in model(x, samples, mode='predict')])
        with bf16():
            loss = model(x, samples, mode='loss')
            scores = torch.cat([p['scores'] for p in model(x, samples, mode='predict')])
            logits = model(x, samples, mode='tensor')
    assert logits.dtype == torch.float32
    assert_near_fp32(loss['loss_action_cls'], ref_loss['loss_action_cls'], LAYERS['ava'])
    assert loss['recall_thr05'].dtype == loss['prec_thr05'].dtype == torch.float32
    assert_near_fp32(scores, ref_scores, LAYERS['ava'])
    # the sigmoid itself in float32: the scores are exactly those of the (bf16-computed) logits, not rounded to
    # 8 bits, which would tie the close scores that the AVA mAP ranks
    torch.testing.assert_close(scores, torch.sigmoid(logits.float()), rtol=1e-6, atol=0)


def test_ava_boxes_are_not_rounded_to_bf16():
    """A bf16 feature map (autocast) and boxes with fractional edges beyond 256 px, where bf16 steps by 2 px: the RoI
    features are those of the float32 boxes, as if the map alone were bf16."""
    from torchvision.ops import roi_align

    from tasks.detection.model import VideoMAEv2RoIHead

    head = VideoMAEv2RoIHead(in_channels=8, num_classes=3, spatial_scale=1 / 16, output_size=4)
    featmap = torch.randn(1, 8, 2, 24, 24).to(torch.bfloat16)  # 384 x 384 input pixels
    rois = torch.tensor([[0.0, 257.3, 261.7, 301.1, 339.9]])
    expected = roi_align(featmap.mean(dim=2).float(), rois, output_size=4, spatial_scale=1 / 16, sampling_ratio=0,
                         aligned=True).to(torch.bfloat16)
    torch.testing.assert_close(head.roi_features(featmap, rois), expected, rtol=0, atol=0)
    rounded = roi_align(featmap.mean(dim=2).float(), rois.to(torch.bfloat16).float(), output_size=4,
                        spatial_scale=1 / 16, sampling_ratio=0, aligned=True).to(torch.bfloat16)
    assert not torch.equal(rounded, expected)  # rounding the boxes would have shown


# --------------------------------------------------------------------------------------------------------------------
# ActionFormer
# --------------------------------------------------------------------------------------------------------------------
def _actionformer() -> ActionFormerTAD:
    return ActionFormerTAD(8, 3, embed_dim=16, head_dim=16, window=5).eval()


def test_actionformer_losses_and_outputs():
    model = _actionformer()
    pre = TADDataPreprocessor(max_seq_len=64)
    samples = [{'segments': torch.tensor([[10., 20.], [30., 55.]]), 'labels': torch.tensor([1, 2])},
               {'segments': torch.tensor([[5., 40.]]), 'labels': torch.tensor([0])}]
    data = pre({'inputs': [torch.randn(8, 50), torch.randn(8, 60)], 'data_samples': samples}, training=True)
    runs = []
    with torch.no_grad():
        for cast in (False, True):
            model.loss_norm = 100.0  # the same EMA state for both runs
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=cast):
                runs.append((model(**data, mode='loss'), model(**data, mode='tensor')))
    (ref_loss, (ref_logits, ref_dists, _)), (loss, (logits, dists, _)) = runs
    for key in ('loss_cls', 'loss_reg'):
        assert_near_fp32(loss[key], ref_loss[key], LAYERS['actionformer'])
    for ref, out in zip(ref_logits + ref_dists, logits + dists):
        assert_near_fp32(out, ref, LAYERS['actionformer'])
    # the targets too (their multi-hot sum is a matmul, which autocast would run in bf16)
    points = model.points([d.shape[1] for d in dists])
    with bf16():
        cls_t, reg_t = model.assign(points, samples[0]['segments'], samples[0]['labels'])
    assert cls_t.dtype == reg_t.dtype == torch.float32 and cls_t.sum() > 0


def test_actionformer_decodes_long_distances_in_float32():
    """Given head outputs that bf16 represents exactly, the distances and decoded segments under autocast equal the
    fp32 ones. A distance of 100 x 1.2371 = 123.71 strides is where bf16's steps are 0.5 stride: in bf16 it would
    be 123.5, 0.21 stride off, which is 6.7 rows (about 1 s of THUMOS14 video) at stride 32."""
    model = _actionformer()
    scale = 1.2371
    with torch.no_grad():
        # every point predicts the same: zero output weights, biases exact in bf16
        model.reg_head.out.weight.zero_()
        model.reg_head.out.bias.fill_(100.0)
        model.cls_head.out.weight.zero_()
        model.cls_head.out.bias.copy_(torch.tensor([-1.0, -2.0, -3.0]))
        for s in model.reg_scales:
            s.fill_(scale)
    x, samples = torch.randn(1, 8, 64), [{'length': 64}]
    expected = float(torch.tensor(scale) * 100.0)  # the fp32 product, 123.71
    with torch.no_grad():
        ref = model(x, samples, mode='tensor')
        with bf16():
            out = model(x, samples, mode='tensor')
            segs, scores, labels = model.candidates(*out, index=0)
    for d in out[1]:
        assert d.dtype == torch.float32
        torch.testing.assert_close(d, torch.full_like(d, expected), rtol=0, atol=0)
    ref_segs, ref_scores, ref_labels = model.candidates(*ref, index=0)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(segs, ref_segs, rtol=1e-6)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-6)
    # by hand: point i of the stride-32 level decodes to [32 i - 32 d, 32 i + 32 d], d = 123.71 in fp32
    coarse = segs[-6:-4]  # the last level: 2 points x 3 classes by score, class 0 (the top score) first
    np.testing.assert_allclose(coarse, [[-32 * expected, 32 * expected], [32 - 32 * expected, 32 + 32 * expected]],
                               rtol=1e-6)
