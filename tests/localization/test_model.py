"""ActionFormer-style detector (tasks/localization/model.py): losses against torchvision / hand values, local attention
against dense attention written out, padding invariance, the assignment of a hand-placed instance, the recipe's
optimiser parameter groups, and post-processing to seconds.
"""
from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from feature_store import VideoFeatureMeta
from tasks.localization.model import (
    ActionFormerTAD, LocalMaskedAttention, TADDataPreprocessor, diou_loss_1d, sigmoid_focal_loss,
)

CONFIG = 'configs/localization/thumos14/actionformer_vit-giant-p14_videomaev2-k710-ft-feat_16x4_thumos14.py'


pytestmark = pytest.mark.usefixtures('one_thread')  # tiny tensors: one intra-op thread (tests/conftest.py)


def tiny(**kw) -> ActionFormerTAD:
    kw.setdefault('embed_dim', 16)
    kw.setdefault('head_dim', 16)
    kw.setdefault('window', 5)
    return ActionFormerTAD(8, 3, **kw)


def test_focal_loss_matches_torchvision():
    from torchvision.ops import sigmoid_focal_loss as reference

    logits = torch.randn(50, 4) * 3
    targets = (torch.rand(50, 4) > 0.7).float()
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets), reference(logits, targets, reduction='sum'))


def test_diou_loss_by_hand():
    # pred (2, 3), target (1, 5) around the same point: intersection min(2,1) + min(3,5) = 4, union 5 + 6 - 4 = 7,
    # enclosing 2 + 5 = 7, centre offset ((3 - 2) - (5 - 1)) / 2 = -1.5 -> 1 - 4/7 + (1.5/7)^2
    loss = diou_loss_1d(torch.tensor([[2., 3.], [1., 1.]]), torch.tensor([[1., 5.], [1., 1.]]))
    assert loss.item() == pytest.approx(1 - 4 / 7 + (1.5 / 7) ** 2)  # the identical pair adds 0


@pytest.mark.parametrize('stride', [1, 2])
def test_local_attention_equals_dense_attention_written_out(stride):
    torch.manual_seed(0)
    attn = LocalMaskedAttention(8, num_heads=2, window=5, stride=stride).eval()
    x = torch.randn(2, 8, 24)
    mask = (torch.arange(24)[None] < torch.tensor([24, 15])[:, None])[:, None]
    out, out_mask = attn(x, mask)
    # reference: the same projections, then softmax over all keys with |i - j| <= 2 and j real
    q, m = attn.q_conv(x, mask)
    k, _ = attn.k_conv(x, mask)
    v, _ = attn.v_conv(x, mask)
    q, k, v = attn.q_proj(attn.q_norm(q)), attn.k_proj(attn.k_norm(k)), attn.v_proj(attn.v_norm(v))
    t = q.shape[-1]
    ref = torch.zeros_like(q)
    for b in range(2):
        for h in range(2):
            qh, kh, vh = (z[b, 4 * h:4 * h + 4] for z in (q, k, v))                   # (4, T)
            scores = (qh.T @ kh) / 2.0                                                  # scale 1/sqrt(4)
            i, j = torch.meshgrid(torch.arange(t), torch.arange(t), indexing='ij')
            allowed = ((i - j).abs() <= 2) & m[b, 0][None, :]
            scores = scores.masked_fill(~allowed, float('-inf'))
            weights = torch.nan_to_num(scores.softmax(-1))
            ref[b, 4 * h:4 * h + 4] = vh @ weights.T
    ref = attn.proj(ref) * m
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert torch.equal(out_mask, m)
    # the gathered-window path gives the same numbers as the band-masked one
    attn.dense_max_len = 0
    torch.testing.assert_close(attn(x, mask)[0], out, atol=1e-5, rtol=1e-5)


def test_outputs_do_not_depend_on_padding():
    torch.manual_seed(0)
    model = tiny(drop_path=0.1).eval()
    x = torch.randn(1, 8, 50)
    outs = []
    for total in (64, 128):  # 50 real rows padded to 64 and to 128 rows (junk in the padding)
        padded = torch.randn(1, 8, total) * 10
        padded[..., :50] = x
        logits, dists, masks = model(padded, [{'length': 50}], mode='tensor')
        outs.append([(l[0, m[0]], d[0, m[0]]) for l, d, m in zip(logits, dists, masks)])
    for (l1, d1), (l2, d2) in zip(*outs):
        torch.testing.assert_close(l1, l2, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(d1, d2, atol=1e-5, rtol=1e-4)
    # and a sequence that fills its batch exactly (no padding at all) matches a padded copy
    x = torch.randn(1, 8, 64)
    exact = model(x, [{'length': 64}], mode='tensor')[0][0]
    padded = model(F.pad(x, (0, 64)), [{'length': 64}], mode='tensor')[0][0][:, :64]
    torch.testing.assert_close(exact, padded, atol=1e-5, rtol=1e-4)


def test_assignment_of_a_hand_placed_instance():
    model = tiny()
    points = model.points([64 // 2 ** i for i in range(6)])
    cls, reg = model.assign(points, torch.tensor([[10., 20.]]), torch.tensor([2]))
    positive = torch.nonzero(cls.sum(1)).squeeze(1)
    got = {(int(points[p, 3]), int(points[p, 0])): reg[p].tolist() for p in positive}
    # centre 15, radius 1.5 strides, strictly inside [10, 20], max(left, right) in the level's range:
    #   stride 1 (0-4): rows 14-16 reach 5-6 > 4, none;  stride 2 (4-8): rows 14 and 16 (reach 6), 12 and 18 are
    #   on the centre-sampling border;  stride 4 (8-16): row 12 (reach 8, inclusive), row 16 reaches only 6
    # targets are (row - 10, 20 - row) in units of the stride
    assert got == {(2, 14): [2.0, 3.0], (2, 16): [3.0, 2.0], (4, 12): [0.5, 2.0]}
    assert torch.all(cls[positive, 2] == 1) and cls.sum() == 3
    # the same interval labelled twice (THUMOS14 CliffDiving + Diving) gives multi-hot targets
    cls2, _ = model.assign(points, torch.tensor([[10., 20.], [10., 20.]]), torch.tensor([0, 2]))
    assert torch.equal(cls2.sum(0), torch.tensor([3., 0., 3.]))
    # a point inside two instances takes the shorter one
    cls3, reg3 = model.assign(points, torch.tensor([[10., 20.], [13., 17.]]), torch.tensor([0, 1]))
    row15 = torch.nonzero((points[:, 0] == 15) & (points[:, 3] == 1)).item()  # stride 1, reach 2 for [13, 17]
    assert cls3[row15].tolist() == [0.0, 1.0, 0.0] and reg3[row15].tolist() == [2.0, 2.0]


def test_loss_and_prediction_to_seconds():
    torch.manual_seed(0)
    model = tiny()
    pre = TADDataPreprocessor(max_seq_len=64)
    feats = [torch.randn(8, 50), torch.randn(8, 60)]
    samples = [{'segments': torch.tensor([[10., 20.]]), 'labels': torch.tensor([1])},
               {'segments': torch.zeros(0, 2), 'labels': torch.zeros(0, dtype=torch.long)}]
    data = pre({'inputs': feats, 'data_samples': samples}, training=True)
    assert data['inputs'].shape == (2, 8, 64) and [s['length'] for s in data['data_samples']] == [50, 60]
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_reg'} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.loss_norm == pytest.approx(0.9 * 100 + 0.1 * 3)  # 3 positives (previous test's instance)
    # prediction: rows -> seconds through the video's own metadata (official windows at 25 fps: (r * 4 + 8) / 25)
    meta = VideoFeatureMeta('v', fps=25.0, num_frames=215, duration=8.6, clip_len=16, frame_interval=1, stride=4,
                            centre_frames=np.arange(50) * 4 + 8)
    model.eval()
    test = pre({'inputs': feats[:1], 'data_samples': [{'video_id': 'v', 'meta': meta, 'duration': 8.6}]})
    assert test['inputs'].shape == (1, 8, 64)
    (pred,) = model(**test, mode='predict')
    assert pred['video_id'] == 'v' and 0 < len(pred['scores']) <= 200
    assert np.all(np.diff(pred['scores']) <= 0) and pred['segments'].min() >= 0 and pred['segments'].max() <= 8.6
    # the same conversion by hand on the raw candidates
    logits, dists, masks = model(test['inputs'], test['data_samples'], mode='tensor')
    segs, scores, labels = model.candidates(logits, dists, masks, 0)
    from tasks.localization.nms import batched_soft_nms
    rows, _, _ = batched_soft_nms(segs, scores, labels)
    np.testing.assert_allclose(pred['segments'], np.clip((rows * 4 + 8) / 25, 0, 8.6), atol=1e-9)


def test_recipe_optimizer_decays_only_conv_weights():
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    cfg = Config.fromfile(CONFIG)
    model = tiny()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {id(p): g['weight_decay'] for g in wrapper.optimizer.param_groups for p in g['params']}
    for name, p in model.named_parameters():
        module = model.get_submodule(name.rsplit('.', 1)[0]) if '.' in name else model
        is_conv_weight = isinstance(module, (torch.nn.Conv1d, torch.nn.Linear)) and name.endswith('weight')
        assert decay[id(p)] == (0.05 if is_conv_weight else 0.0), name
    assert wrapper.optimizer.defaults['lr'] == 1e-4 and wrapper.clip_grad_kwargs['max_norm'] == 1.0
    ema = [h for h in cfg.custom_hooks if h['type'] == 'EMAHook'][0]
    assert 1 - ema['momentum'] == pytest.approx(0.999)  # mmengine: ema = (1 - momentum) ema + momentum param


def test_loss_equals_the_losses_over_valid_points_and_positives():
    """The loss, written with masks (no host syncs), against the definition with boolean indexing: the focal loss over
    the real points and the DIoU loss over the positives, each divided by the updated EMA of the positives; a batch
    without instances has a zero DIoU loss that still reaches the regression head, with zero gradient."""
    torch.manual_seed(0)
    model = tiny(drop_path=0.0)
    with torch.no_grad():
        for p in model.parameters():  # O(1) outputs: a fresh head predicts the prior everywhere
            p.add_(0.1 * torch.randn_like(p))
    pre = TADDataPreprocessor(max_seq_len=64)
    feats = [torch.randn(8, 50), torch.randn(8, 60)]
    samples = [{'segments': torch.tensor([[10., 20.], [30., 55.]]), 'labels': torch.tensor([1, 2])},
               {'segments': torch.tensor([[5., 40.]]), 'labels': torch.tensor([0])}]
    data = pre({'inputs': feats, 'data_samples': samples}, training=True)
    losses = model(**data, mode='loss')
    logits, dists, masks = model(data['inputs'], data['data_samples'], mode='tensor')
    points = model.points([l.shape[1] for l in logits])
    cls_t, reg_t = (torch.stack(t) for t in zip(*(model.assign(points, s['segments'], s['labels']) for s in samples)))
    valid = torch.cat(masks, dim=1)
    positive = (cls_t.sum(-1) > 0) & valid
    norm = 0.9 * 100 + 0.1 * int(positive.sum())
    assert model.loss_norm == pytest.approx(norm) and int(positive.sum()) > 0
    expected_cls = sigmoid_focal_loss(torch.cat(logits, 1)[valid], cls_t[valid]) / norm
    expected_reg = diou_loss_1d(torch.cat(dists, 1)[positive], reg_t[positive]) / norm
    torch.testing.assert_close(losses['loss_cls'], expected_cls)
    torch.testing.assert_close(losses['loss_reg'], expected_reg)
    # no instances at all: loss_reg is exactly 0, and backward gives the regression head zero gradients
    empty = [{'segments': torch.zeros(0, 2), 'labels': torch.zeros(0, dtype=torch.long)}] * 2
    data = pre({'inputs': feats, 'data_samples': empty}, training=True)
    losses = model(**data, mode='loss')
    assert float(losses['loss_reg'].detach()) == 0.0
    model.zero_grad()
    losses['loss_reg'].backward()
    assert model.reg_head.out.weight.grad is not None and not model.reg_head.out.weight.grad.any()
