"""Layer-wise lr decay (docs/classification.md#fine-tuning-recipe): parameter groups, the mmengine constructor,
scheduler behaviour, parity with mmaction2's constructor."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from backbone import VideoMAEv2ViT
from tasks.engine.layer_decay import VideoMAEv2LayerDecayConstructor, get_layer_id, param_groups_layer_decay

# Weight matrices / kernels of one block: the only block parameters that keep weight decay (norms, biases, q/v bias are
# 1-D).
BLOCK_DECAYED = ('attn.qkv.weight', 'attn.proj.weight', 'mlp.fc1.weight', 'mlp.fc2.weight')


def per_param(model: nn.Module, groups: list[dict]) -> dict[str, dict]:
    """name -> the group (lr, lr_scale, weight_decay, group_name) holding that parameter, checking it is unique."""
    by_id = {}
    for group in groups:
        for param in group['params']:
            assert id(param) not in by_id, 'a parameter is in two groups'
            by_id[id(param)] = group
    return {name: by_id[id(p)] for name, p in model.named_parameters() if id(p) in by_id}


def test_vit_test_ids_and_scales(tiny_vit):
    # vit_test: L = 2 blocks. With decay 0.5, scale = 0.5^(3 - id):
    #   patch_embed (id 0) -> 0.125, blocks.0 (id 1) -> 0.25, blocks.1 (id 2) -> 0.5, fc_norm/head (id 3) -> 1.
    model = tiny_vit(num_classes=5)
    expected = {'patch_embed.': (0, 0.125), 'blocks.0.': (1, 0.25), 'blocks.1.': (2, 0.5),
                'fc_norm.': (3, 1.0), 'head.': (3, 1.0)}
    groups = param_groups_layer_decay(model, base_lr=0.01, weight_decay=0.05, layer_decay=0.5)
    table = per_param(model, groups)
    assert set(table) == {name for name, _ in model.named_parameters()}  # every trainable parameter placed once
    for name, group in table.items():
        (layer_id, scale), = [v for prefix, v in expected.items() if name.startswith(prefix)]
        assert group['group_name'].startswith(f'layer_{layer_id}_'), name
        assert group['lr_scale'] == scale, name
        assert group['lr'] == pytest.approx(0.01 * scale), name
    # The groups carry exactly the keys torch needs plus the bookkeeping ones.
    assert all(set(g) == {'params', 'lr', 'lr_scale', 'weight_decay', 'group_name'} for g in groups)


def test_vit_base_scales_on_meta_device():
    # ViT-B, L = 12, decay 0.75: blocks.k -> 0.75^(12 - k), head -> 1, patch_embed -> 0.75^13.
    with torch.device('meta'):
        model = VideoMAEv2ViT('vit_base', num_classes=400)
    groups = param_groups_layer_decay(model, base_lr=1e-3, weight_decay=0.05, layer_decay=0.75)
    table = per_param(model, groups)
    assert len(table) == len(list(model.parameters()))
    assert table['patch_embed.proj.weight']['lr_scale'] == pytest.approx(0.75 ** 13)
    assert table['blocks.0.attn.qkv.weight']['lr_scale'] == pytest.approx(0.75 ** 12)
    assert table['blocks.5.mlp.fc1.bias']['lr_scale'] == pytest.approx(0.75 ** 7)
    assert table['blocks.11.norm2.weight']['lr_scale'] == pytest.approx(0.75)
    assert table['fc_norm.weight']['lr_scale'] == 1.0
    assert table['head.weight']['lr_scale'] == 1.0
    assert table['head.weight']['lr'] == pytest.approx(1e-3)
    # 14 layer ids (0..13), each with a decayed and an undecayed group: patch_embed weight/bias, every block's
    # matrices and 1-D params, the head weight and fc_norm/head bias.
    assert len(groups) == 28
    assert sorted({g['group_name'] for g in groups}) == sorted(
        f'layer_{i}_{kind}' for i in range(14) for kind in ('decay', 'no_decay'))


def test_no_weight_decay_membership(tiny_vit):
    model = tiny_vit(num_classes=5, use_learnable_pos_emb=True)
    assert 'pos_embed' in model.no_weight_decay()
    groups = param_groups_layer_decay(model, base_lr=1.0, weight_decay=0.05, layer_decay=0.75)
    table = per_param(model, groups)
    decayed = {name for name, g in table.items() if g['weight_decay'] == 0.05}
    undecayed = {name for name, g in table.items() if g['weight_decay'] == 0.0}
    # Only the kernels/matrices keep decay; the 3-D learnable pos_embed is skipped through no_weight_decay().
    assert decayed == {'patch_embed.proj.weight', 'head.weight'} | {
        f'blocks.{k}.{suffix}' for k in range(2) for suffix in BLOCK_DECAYED}
    assert 'pos_embed' in undecayed and table['pos_embed']['lr_scale'] == pytest.approx(0.75 ** 3)
    assert {'blocks.0.attn.q_bias', 'blocks.1.attn.v_bias', 'fc_norm.weight', 'head.bias'} <= undecayed
    assert decayed | undecayed == {name for name, _ in model.named_parameters()}


class _Recognizer(nn.Module):
    """mmaction2-like wrapper: ``backbone`` + a ``cls_head`` with a 2-D ``scale`` parameter and a bias."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.cls_head = nn.Module()
        self.cls_head.fc = nn.Linear(backbone.embed_dim, 3)
        self.cls_head.scale = nn.Parameter(torch.ones(1, 1))  # 2-D but named '.scale' -> no decay


def test_wrapped_model_scale_rule_extra_list_and_frozen(tiny_vit):
    model = _Recognizer(tiny_vit(num_classes=0))
    model.backbone.patch_embed.proj.bias.requires_grad_(False)
    groups = param_groups_layer_decay(model, base_lr=1.0, weight_decay=0.1, layer_decay=0.5,
                                      no_weight_decay_list=['cls_head.fc.weight'])
    table = per_param(model, groups)
    assert 'backbone.patch_embed.proj.bias' not in table  # frozen: left out
    assert table['backbone.patch_embed.proj.weight']['lr_scale'] == 0.125  # prefix stripped: id 0
    assert table['backbone.blocks.1.mlp.fc2.weight']['lr_scale'] == 0.5
    for name in ('cls_head.fc.weight', 'cls_head.fc.bias', 'cls_head.scale'):
        assert table[name]['lr_scale'] == 1.0 and table[name]['weight_decay'] == 0.0, name
    assert table['backbone.blocks.0.attn.qkv.weight']['weight_decay'] == 0.1


def test_bad_input(tiny_vit):
    model = tiny_vit()
    with pytest.raises(ValueError, match='layer_decay must lie in'):
        param_groups_layer_decay(model, 1.0, 0.05, 1.5)
    with pytest.raises(ValueError, match=r"does not have: \['head.wieght'\]"):
        param_groups_layer_decay(model, 1.0, 0.05, 0.75, no_weight_decay_list=['head.wieght'])
    with pytest.raises(ValueError, match='exactly one submodule with get_num_layers'):
        param_groups_layer_decay(nn.Linear(2, 2), 1.0, 0.05, 0.75)
    with pytest.raises(ValueError, match='block 5'):
        get_layer_id('blocks.5.norm1.weight', num_layers=2)


def test_constructor_builds_adamw_with_the_groups(tiny_vit):
    from mmengine.optim import build_optim_wrapper

    import tasks.engine  # noqa: F401  registers the constructor
    model = tiny_vit(num_classes=5)
    cfg = dict(constructor='VideoMAEv2LayerDecayConstructor', paramwise_cfg=dict(layer_decay_rate=0.75),
               optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05))
    optimizer = build_optim_wrapper(model, cfg).optimizer
    assert isinstance(optimizer, torch.optim.AdamW)
    expected = per_param(model, param_groups_layer_decay(model, 2e-3, 0.05, 0.75))
    got = per_param(model, optimizer.param_groups)
    assert set(got) == set(expected)
    for name, group in got.items():
        for key in ('lr', 'lr_scale', 'weight_decay', 'group_name'):
            assert group[key] == expected[name][key], (name, key)
        assert group['betas'] == (0.9, 0.999) and group['eps'] == 1e-8
    assert got['blocks.0.mlp.fc1.weight']['lr'] == pytest.approx(2e-3 * 0.75 ** 2)
    with pytest.raises(ValueError, match='layer_decay_rate'):
        VideoMAEv2LayerDecayConstructor(dict(optimizer=dict(type='AdamW', lr=1e-3)), dict(decay_rate=0.75))


def test_mmaction_scope_finds_the_constructor():
    registry = pytest.importorskip('mmaction.registry', reason='mmaction2 scope lookup needs mmaction2')
    import tasks.classification  # noqa: F401
    assert registry.OPTIM_WRAPPER_CONSTRUCTORS.get('VideoMAEv2LayerDecayConstructor') is \
        VideoMAEv2LayerDecayConstructor


def _lrs(optimizer) -> list[float]:
    return [g['lr'] for g in optimizer.param_groups]


def test_mmengine_schedulers_keep_the_layer_scale(tiny_vit):
    from mmengine.optim import CosineAnnealingLR, LinearLR

    model = tiny_vit(num_classes=5)
    lr, warmup_lr, min_lr = 1e-3, 1e-8, 1e-6
    scales = None
    for floor in ('ratio', 'absolute'):
        groups = param_groups_layer_decay(model, lr, 0.05, 0.5)
        scales = [g['lr_scale'] for g in groups]
        optimizer = torch.optim.AdamW(groups, lr=lr)
        # Official recipe in mmengine terms: linear warm-up from warmup_lr, then cosine to min_lr.
        warmup = LinearLR(optimizer, start_factor=warmup_lr / lr, by_epoch=False, begin=0, end=5)
        floor_kw = dict(eta_min_ratio=min_lr / lr) if floor == 'ratio' else dict(eta_min=min_lr)
        cosine = CosineAnnealingLR(optimizer, by_epoch=False, begin=5, end=20, T_max=15, **floor_kw)
        history = [_lrs(optimizer)]
        for _ in range(20):
            optimizer.step()
            warmup.step()
            cosine.step()
            history.append(_lrs(optimizer))
        # mmengine applies the cosine on steps begin..end-1, so after 20 steps the last value is t = 14 of T_max = 15:
        # floor + (start - floor) * (1 + cos(pi * 14 / 15)) / 2, with start = lr * scale for each group.
        c = (1 + math.cos(math.pi * 14 / 15)) / 2
        if floor == 'ratio':
            # Official: group lr = schedule value * lr_scale at every iteration.
            for step, lrs in enumerate(history):
                top = lrs[scales.index(1.0)]
                assert lrs == pytest.approx([top * s for s in scales], rel=1e-9), step
            assert history[0] == pytest.approx([warmup_lr * s for s in scales])
            assert history[5] == pytest.approx([lr * s for s in scales])
            assert history[-1] == pytest.approx([(min_lr + (lr - min_lr) * c) * s for s in scales], rel=1e-9)
        else:
            # An absolute eta_min is the same floor for every group: the per-layer ratio drifts towards 1.
            assert history[-1] == pytest.approx([min_lr + (lr * s - min_lr) * c for s in scales], rel=1e-9)
            # patch_embed / head: (1e-6 + 1.24e-4 c) / (1e-6 + 9.99e-4 c) with c = 0.010926 is 0.1976, not 0.125
            ratio = history[-1][scales.index(0.125)] / history[-1][scales.index(1.0)]
            assert ratio == pytest.approx(0.1976, abs=1e-4)
    assert len(set(scales)) == 4


def test_parity_with_mmaction2_constructor(tiny_vit):
    constructors = pytest.importorskip('mmaction.engine.optimizers.layer_decay_optim_wrapper_constructor',
                                       reason="mmaction2's constructor is the reference for this test")

    # mmaction2 dispatches on the backbone class name containing 'VisionTransformer'.
    class VisionTransformerForParity(VideoMAEv2ViT):
        pass

    for learnable_pos in (False, True):
        backbone = VisionTransformerForParity('vit_test', img_size=32, all_frames=4, num_classes=0,
                                              use_learnable_pos_emb=learnable_pos)
        model = nn.Module()
        model.backbone = backbone
        model.cls_head = nn.Linear(backbone.embed_dim, 3)
        theirs_wrapper = constructors.LearningRateDecayOptimizerConstructor(
            dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
            dict(num_layers=2, decay_rate=0.75, decay_type='layer_wise'))(model)
        theirs = per_param(model, theirs_wrapper.optimizer.param_groups)
        ours = per_param(model, param_groups_layer_decay(model, 1e-3, 0.05, 0.75))
        assert set(theirs) == set(ours)
        for name in ours:
            assert ours[name]['lr_scale'] == pytest.approx(theirs[name]['lr_scale']), name
            assert ours[name]['lr'] == pytest.approx(theirs[name]['lr']), name
            # Documented difference: mmaction2 ignores no_weight_decay(), so a learnable (3-D) pos_embed is decayed.
            if name == 'backbone.pos_embed':
                assert (ours[name]['weight_decay'], theirs[name]['weight_decay']) == (0.0, 0.05)
            else:
                assert ours[name]['weight_decay'] == theirs[name]['weight_decay'], name
        assert ('backbone.pos_embed' in ours) == learnable_pos
