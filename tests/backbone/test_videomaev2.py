"""Tests of the VideoMAE V2 ViT (``backbone/videomaev2.py``) and its position tables (``backbone/pos_embed.py``).

Every expected value comes from outside the code under test: the exact sizes of docs/backbone.md#sizes (cross-checked by
a hand formula), Hugging Face transformers' ``VideoMAEForVideoClassification`` and mmaction2's ``VisionTransformer`` as
reference implementations, hand-written formulas (sinusoid, linear interpolation, attention), and properties that must
hold (checkpointing changes nothing, init statistics, drop-path schedule).

Sections: 1 sizes -> 2 HF parity -> 3 attention -> 4 checkpointing -> 5 position tables and input sizes -> 6 init
-> 7 precision and feature maps -> 8 registry. Everything runs on CPU with the tiny ``vit_test`` preset (64-d, 2 blocks,
4 heads, patch 16) except the size tests, which build the full presets on the meta device (no memory, no compute).
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from backbone import (VideoMAEv2ViT, convert_state_dict, load_checkpoint, official_finetune_pos_embed,
                      resize_pos_embed, sinusoid_table)
from backbone.videomaev2 import Attention, DropPath, Mlp

# vit_test geometry used throughout: C = 64, 2 blocks, 4 heads, patch 16, tubelet 2.
DIM, DEPTH, HEADS, PATCH = 64, 2, 4, 16
NUM_CLASSES = 5


def _clip(batch: int = 2, frames: int = 4, height: int = 32, width: int = 32) -> torch.Tensor:
    """A random clip (B, 3, T, H, W)."""
    return torch.randn(batch, 3, frames, height, width)


def _randomise_(model: nn.Module, std: float = 0.1) -> nn.Module:
    """Perturb every parameter so that zero-initialised ones (q_bias, v_bias, LayerNorm bias, head) matter too."""
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * std)
    return model


# =====================================================================================================================
# 1. Sizes (docs/backbone.md#sizes)
# =====================================================================================================================
# docs/backbone.md#sizes: arch -> (patch, C, L, heads, head dim, MLP hidden, exact parameters without head,
# tokens of 16x224^2).
SIZES = {
    'vit_small': (16, 384, 12, 6, 64, 1536, 21_879_936, 1568),
    'vit_base': (16, 768, 12, 12, 64, 3072, 86_227_200, 1568),
    'vit_large': (16, 1024, 24, 16, 64, 4096, 303_860_736, 1568),
    'vit_huge': (16, 1280, 32, 16, 80, 5120, 631_607_040, 1568),
    'vit_giant': (14, 1408, 40, 16, 88, 6144, 1_011_610_752, 2048),
}


def _hand_param_count(patch: int, dim: int, depth: int, mlp_hidden: int) -> int:
    """Parameters without head, counted by hand from the module list in docs/backbone.md#sizes,
    docs/backbone.md#embedding-attention-and-blocks."""
    patch_embed = 3 * 2 * patch * patch * dim + dim                  # Conv3d weight + bias
    attn = 3 * dim * dim + 2 * dim + dim * dim + dim                 # qkv (no bias), q_bias, v_bias, proj
    mlp = dim * mlp_hidden + mlp_hidden + mlp_hidden * dim + dim     # fc1, fc2
    block = 2 * 2 * dim + attn + mlp                                 # norm1, norm2
    return patch_embed + depth * block + 2 * dim                     # + fc_norm


def _meta_model(arch: str, **kwargs) -> VideoMAEv2ViT:
    # The meta device allocates nothing, so the 1B-parameter ViT-g is built in a fraction of a second.
    with torch.device('meta'):
        return VideoMAEv2ViT(arch, **kwargs)


@pytest.mark.parametrize('arch', list(SIZES))
def test_preset_geometry(arch):
    patch, dim, depth, heads, head_dim, mlp_hidden, _, _ = SIZES[arch]
    model = _meta_model(arch)
    assert (model.patch_size, model.embed_dim, model.depth, model.num_heads) == (patch, dim, depth, heads)
    assert model.blocks[0].attn.head_dim == head_dim
    assert model.blocks[0].mlp.fc1.out_features == mlp_hidden  # ViT-g: int(1408 * 48 / 11) = 6144
    assert model.patch_embed.proj.kernel_size == (2, patch, patch) == model.patch_embed.proj.stride
    assert all(isinstance(m.eps, float) and m.eps == 1e-6 for m in model.modules() if isinstance(m, nn.LayerNorm))


@pytest.mark.parametrize('arch', list(SIZES))
def test_param_count_without_head(arch):
    patch, dim, depth, _, _, mlp_hidden, expected, _ = SIZES[arch]
    model = _meta_model(arch)
    assert model.num_params() == expected
    assert sum(p.numel() for p in model.parameters()) == expected  # num_classes=0: no head at all
    # The published numbers and the hand formula agree, so neither is a typo.
    assert _hand_param_count(patch, dim, depth, mlp_hidden) == expected


@pytest.mark.parametrize('arch', list(SIZES))
def test_token_count_16x224(arch):
    expected = SIZES[arch][-1]
    model = _meta_model(arch)
    clip = torch.empty(1, 3, 16, 224, 224, device='meta')
    assert math.prod(model.patch_embed.grid(clip)) == expected
    assert model.patch_embed(clip).shape == (1, expected, model.embed_dim)
    assert model.pos_embed.shape == (1, expected, model.embed_dim)


@pytest.mark.parametrize('arch, num_classes', [('vit_base', 400), ('vit_small', 174), ('vit_giant', 710)])
def test_head_adds_ck_plus_k(arch, num_classes):
    model = _meta_model(arch, num_classes=num_classes)
    width = model.embed_dim
    total = sum(p.numel() for p in model.parameters())
    assert total == SIZES[arch][6] + width * num_classes + num_classes
    assert model.num_params(exclude_head=True) == SIZES[arch][6]
    if arch == 'vit_base':  # VideoMAEv2 issue #13 reports 86,534,800 for ViT-B with the K400 head
        assert total == 86_534_800


@pytest.mark.parametrize('per_module', [False, True], ids=['to_empty', 'to_empty-per-module'])
def test_meta_model_materialises_with_fixed_buffers(tiny_vit, per_module):
    """meta -> to_empty -> load_state_dict must give the real model, although pos_embed/k_bias are in no state dict.

    ``per_module`` is the FSDP path, which calls ``to_empty(recurse=False)`` on every submodule.
    """
    reference = _randomise_(tiny_vit(num_classes=NUM_CLASSES))
    model = _meta_model('vit_test', img_size=32, all_frames=4, num_classes=NUM_CLASSES)
    # Deterministic mode fills uninitialised memory with NaN, so an unfilled buffer cannot pass by luck.
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        for module in (model.modules() if per_module else [model]):
            module.to_empty(device='cpu', recurse=not per_module)
    finally:
        torch.use_deterministic_algorithms(deterministic)
    model.load_state_dict(reference.state_dict())
    assert torch.equal(model.pos_embed, sinusoid_table(8, DIM))
    assert all(torch.count_nonzero(blk.attn.k_bias) == 0 for blk in model.blocks)
    clip = _clip()
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(clip), reference(clip), atol=0, rtol=0)


def test_state_dict_has_no_k_bias_and_no_fixed_pos_embed(tiny_vit):
    keys = set(tiny_vit().state_dict())
    assert not any('k_bias' in k for k in keys)
    assert 'pos_embed' not in keys
    for i in range(DEPTH):
        assert {f'blocks.{i}.attn.q_bias', f'blocks.{i}.attn.v_bias', f'blocks.{i}.attn.qkv.weight'} <= keys
        assert f'blocks.{i}.attn.qkv.bias' not in keys  # the BEiT layout: qkv is a Linear without bias
    # A learnable table (no released model uses one) is a real parameter and must be saved.
    assert 'pos_embed' in tiny_vit(use_learnable_pos_emb=True).state_dict()


# =====================================================================================================================
# 2. Numerical parity with Hugging Face transformers' VideoMAE (docs/checkpoints.md#transformers-layout)
# =====================================================================================================================
@pytest.fixture(scope='module')
def hf_model():
    """Factory of tiny ``VideoMAEForVideoClassification`` models matching ``vit_test``, with the official eps."""
    transformers = pytest.importorskip('transformers', reason='transformers is the reference for the parity tests')
    # transformers imports lazily: resolve the classes here so the import cost is not charged to the first test.
    classes = transformers.VideoMAEConfig, transformers.VideoMAEForVideoClassification
    return lambda image_size=32: _hf_model(*classes, image_size)


def _hf_model(config_cls, model_cls, image_size: int | tuple[int, int], num_frames: int = 4):
    config = config_cls(
        hidden_size=DIM, num_hidden_layers=DEPTH, num_attention_heads=HEADS, intermediate_size=4 * DIM,
        image_size=image_size, num_frames=num_frames, patch_size=PATCH, tubelet_size=2, layer_norm_eps=1e-6,
        use_mean_pooling=True, qv_bias=True, num_labels=NUM_CLASSES,
        # The eager path is HF's explicit softmax, independent of our SDPA call.
        attn_implementation='eager')
    model = model_cls(config).eval()
    # HF builds fc_norm as nn.LayerNorm(hidden) with the default eps 1e-5, while the official model (and ours) uses
    # 1e-6; align it so the comparison measures the architecture, not this known HF discrepancy.
    model.fc_norm.eps = 1e-6
    return model


def _hf_outputs(hf, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(last hidden state (B, N, C), logits (B, K)); HF takes pixel_values as (B, T, C, H, W)."""
    pixel_values = clip.transpose(1, 2)
    with torch.no_grad():
        return hf.videomae(pixel_values).last_hidden_state, hf(pixel_values).logits


def _our_outputs(model: VideoMAEv2ViT, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return model.forward_tokens(clip), model(clip)


@pytest.mark.parametrize('fused_attn', [True, False])
def test_matches_hf_given_our_weights(tiny_vit, hf_model, fused_attn):
    model = _randomise_(tiny_vit(num_classes=NUM_CLASSES, fused_attn=fused_attn))
    hf = hf_model()
    hf.load_state_dict(convert_state_dict(model.state_dict(), 'hf'), strict=True)
    clip = _clip()
    (tokens, logits), (ref_tokens, ref_logits) = _our_outputs(model, clip), _hf_outputs(hf, clip)
    assert tokens.shape == ref_tokens.shape == (2, 8, DIM)
    torch.testing.assert_close(tokens, ref_tokens, atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=0)
    assert logits.abs().max() > 1e-2  # the head is not (close to) zero, so the logits comparison means something


def test_matches_hf_given_hf_weights(tiny_vit, hf_model):
    hf = _randomise_(hf_model())  # HF's own random init, perturbed so its zero biases and unit LN weights vary
    model = tiny_vit(num_classes=NUM_CLASSES)
    result = load_checkpoint(model, hf.state_dict())
    assert result.layout == 'hf' and result.missing == [] and result.unexpected == []
    clip = _clip()
    (tokens, logits), (ref_tokens, ref_logits) = _our_outputs(model, clip), _hf_outputs(hf, clip)
    torch.testing.assert_close(tokens, ref_tokens, atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=0)


def test_matches_hf_non_square(tiny_vit, hf_model):
    """32x48 frames: 2 x 2 x 3 = 12 tokens, width-major within a slice, for a model built at that size."""
    model = _randomise_(tiny_vit(num_classes=NUM_CLASSES, img_size=(32, 48)))
    hf = hf_model(image_size=(32, 48))
    hf.load_state_dict(convert_state_dict(model.state_dict(), 'hf'), strict=True)
    clip = _clip(height=32, width=48)
    (tokens, logits), (ref_tokens, ref_logits) = _our_outputs(model, clip), _hf_outputs(hf, clip)
    assert tokens.shape == (2, 12, DIM)
    torch.testing.assert_close(tokens, ref_tokens, atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=0)


def test_sinusoid_policy_matches_hf_built_at_runtime_size(tiny_vit, hf_model):
    """A 32x32 model run on 32x48 with ``pos_embed_policy='sinusoid'`` is the official model built at 32x48."""
    model = _randomise_(tiny_vit(num_classes=NUM_CLASSES, pos_embed_policy='sinusoid'))
    hf = hf_model(image_size=(32, 48))
    hf.load_state_dict(convert_state_dict(model.state_dict(), 'hf'), strict=True)
    clip = _clip(height=32, width=48)
    (tokens, logits), (ref_tokens, ref_logits) = _our_outputs(model, clip), _hf_outputs(hf, clip)
    torch.testing.assert_close(tokens, ref_tokens, atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=0)


# =====================================================================================================================
# 3. Attention: SDPA vs explicit softmax vs a hand-written reference (docs/backbone.md#embedding-attention-and-blocks)
# =====================================================================================================================
def _reference_attention(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T * scale) v with q = x Wq + q_bias, k = x Wk (no bias), v = x Wv + v_bias, then proj."""
    w_q, w_k, w_v = attn.qkv.weight.chunk(3, dim=0)
    q, k, v = F.linear(x, w_q, attn.q_bias), F.linear(x, w_k), F.linear(x, w_v, attn.v_bias)
    batch, tokens, dim = x.shape

    def heads(t):
        return t.reshape(batch, tokens, attn.num_heads, dim // attn.num_heads).transpose(1, 2)

    weights = torch.softmax(heads(q) @ heads(k).transpose(-2, -1) * attn.scale, dim=-1)
    return attn.proj((weights @ heads(v)).transpose(1, 2).reshape(batch, tokens, dim))


@pytest.mark.parametrize('tokens', [1, 7, 8, 33])
@pytest.mark.parametrize('qk_scale', [None, 0.1])
def test_sdpa_equals_explicit_attention(tokens, qk_scale):
    attn = _randomise_(Attention(DIM, HEADS, qk_scale=qk_scale)).eval()  # no attention mask: VideoMAE uses none
    x = torch.randn(3, tokens, DIM)
    with torch.no_grad():
        attn.fused_attn = True
        fused = attn(x)
        attn.fused_attn = False
        explicit = attn(x)
        reference = _reference_attention(attn, x)
    assert attn.scale == (qk_scale or (DIM // HEADS) ** -0.5)
    torch.testing.assert_close(fused, explicit, atol=1e-6, rtol=0)
    torch.testing.assert_close(explicit, reference, atol=1e-6, rtol=0)


def test_sdpa_equals_explicit_in_full_model(tiny_vit):
    """Odd token count: 6 frames x 16x48 px -> 3 x 1 x 3 = 9 tokens."""
    fused = _randomise_(tiny_vit(num_classes=NUM_CLASSES, all_frames=6, img_size=(16, 48)))
    explicit = tiny_vit(num_classes=NUM_CLASSES, all_frames=6, img_size=(16, 48), fused_attn=False)
    explicit.load_state_dict(fused.state_dict())
    clip = _clip(frames=6, height=16, width=48)
    with torch.no_grad():
        assert fused.forward_tokens(clip).shape[1] == 9
        torch.testing.assert_close(fused(clip), explicit(clip), atol=1e-6, rtol=0)


def test_mlp_has_dropout_only_after_fc2():
    """Official and HF MLP: fc1 -> GELU -> fc2 -> Dropout (no dropout after the activation, unlike timm's Mlp)."""
    mlp = _randomise_(Mlp(DIM, 4 * DIM, drop=0.5)).train()
    x = torch.randn(2, 5, DIM)
    torch.manual_seed(1)
    out = mlp(x)
    torch.manual_seed(1)  # the same single dropout mask, drawn once
    expected = F.dropout(mlp.fc2(F.gelu(mlp.fc1(x))), p=0.5, training=True)
    torch.testing.assert_close(out, expected, atol=0, rtol=0)


# =====================================================================================================================
# 4. Activation checkpointing (docs/backbone.md#pooling-head-and-initialisation)
# =====================================================================================================================
def _train_step(model: VideoMAEv2ViT, clip: torch.Tensor, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad()
    torch.manual_seed(seed)
    out = model(clip)
    (out.square().sum() + out.sum()).backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def _count_block_calls(model: VideoMAEv2ViT) -> list[int]:
    """Wrap every block's ``forward`` to count its runs (forward hooks do not fire during checkpoint recomputation)."""
    calls: list[int] = []
    for blk in model.blocks:
        def counted(x, _forward=blk.forward):
            calls.append(1)
            return _forward(x)
        blk.forward = counted
    return calls


def test_checkpointing_gives_identical_outputs_and_grads(tiny_vit):
    kwargs = dict(num_classes=NUM_CLASSES, drop_path_rate=0.5, drop_rate=0.1, attn_drop_rate=0.1)
    plain = _randomise_(tiny_vit(**kwargs)).train()
    ckpt = tiny_vit(with_cp=True, **kwargs).train()
    ckpt.load_state_dict(plain.state_dict())
    calls = _count_block_calls(ckpt)

    clip = _clip()
    out, grads = _train_step(plain, clip, seed=7)
    out_cp, grads_cp = _train_step(ckpt, clip, seed=7)
    # Each block ran twice (forward + recomputation in backward), so checkpointing was really on.
    assert len(calls) == 2 * DEPTH
    torch.testing.assert_close(out_cp, out, atol=0, rtol=0)
    assert grads_cp.keys() == grads.keys()
    for name in grads:
        torch.testing.assert_close(grads_cp[name], grads[name], atol=1e-6, rtol=1e-5, msg=name)
    # The stochastic layers are active: another seed gives other outputs (otherwise the test above proves little).
    other, _ = _train_step(plain, clip, seed=8)
    assert not torch.allclose(other, out)


def test_checkpointing_is_skipped_without_grad(tiny_vit):
    model = tiny_vit(with_cp=True)
    calls = _count_block_calls(model)
    with torch.no_grad():
        model(_clip())
    assert len(calls) == DEPTH


# =====================================================================================================================
# 5. Position tables and input sizes (docs/backbone.md#position-embedding)
# =====================================================================================================================
@pytest.mark.parametrize('pos, j', [(0, 0), (0, 1), (1, 0), (1, 1), (5, 2), (5, 3), (7, 10), (1567, 62), (1567, 63)])
def test_sinusoid_table_entries(pos, j):
    dim = 64
    table = sinusoid_table(1568, dim)
    assert table.shape == (1, 1568, dim) and table.dtype == torch.float32
    angle = pos / 10000 ** (2 * (j // 2) / dim)
    expected = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    assert table[0, pos, j].item() == pytest.approx(expected, abs=1e-7)


def test_resize_pos_embed_identity():
    table = torch.randn(1, 2 * 3 * 4, 8)
    assert torch.equal(resize_pos_embed(table, (2, 3, 4), (2, 3, 4)), table)


def test_resize_pos_embed_spatial_is_bicubic_per_slice():
    src, dst, channels = (3, 4, 5), (3, 6, 7), 8
    table = torch.randn(1, math.prod(src), channels)
    out = resize_pos_embed(table, src, dst)
    assert out.shape == (1, math.prod(dst), channels)
    grid = table.reshape(*src, channels)
    for t in range(src[0]):
        expected = F.interpolate(grid[t].permute(2, 0, 1)[None], size=dst[1:], mode='bicubic', align_corners=False)
        got = out.reshape(*dst, channels)[t].permute(2, 0, 1)
        torch.testing.assert_close(got, expected[0], atol=1e-6, rtol=0)


def test_resize_pos_embed_time_is_linear():
    """2 -> 4 slices with align_corners=False samples positions -0.25, 0.25, 0.75, 1.25 (clamped to [0, 1])."""
    table = torch.randn(1, 2 * 3 * 3, 4)
    out = resize_pos_embed(table, (2, 3, 3), (4, 3, 3)).reshape(4, 9, 4)
    s0, s1 = table.reshape(2, 9, 4)
    expected = torch.stack([s0, 0.75 * s0 + 0.25 * s1, 0.25 * s0 + 0.75 * s1, s1])
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_resize_pos_embed_rejects_wrong_token_count():
    with pytest.raises(ValueError, match=r'24 tokens, grid \(2, 3, 5\) needs 30'):
        resize_pos_embed(torch.zeros(1, 24, 4), (2, 3, 5), (2, 3, 5))


def _tokens_with_table(model: VideoMAEv2ViT, clip: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """The forward path written out: patch embed + given table -> blocks."""
    x = model.patch_embed.proj(clip).flatten(2).transpose(1, 2) + table
    for blk in model.blocks:
        x = blk(x)
    return x


@pytest.mark.parametrize('frames, height, width, grid', [(4, 48, 64, (2, 3, 4)), (8, 32, 32, (4, 2, 2)),
                                                         (8, 64, 48, (4, 4, 3))])
def test_interpolate_policy_uses_resized_table(tiny_vit, frames, height, width, grid):
    model = _randomise_(tiny_vit())
    clip = _clip(frames=frames, height=height, width=width)
    table = model.pos_embed_for(grid)
    torch.testing.assert_close(table, resize_pos_embed(sinusoid_table(8, DIM), (2, 2, 2), grid), atol=1e-6, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_tokens(clip), _tokens_with_table(model, clip, table),
                                   atol=1e-5, rtol=0)
        assert model.forward_featmap(clip).shape == (2, DIM, *grid)


def test_interpolate_policy_matches_mmaction2(tiny_vit):
    """mmaction2's detection ViT (built at 32 px, run at 48x64) resizes bicubic per slice, then norm -> feature map."""
    vit_mae = pytest.importorskip('mmaction.models.backbones.vit_mae', reason='mmaction2 is the reference here')
    model = _randomise_(tiny_vit(featmap_norm=True))
    reference = vit_mae.VisionTransformer(
        img_size=32, patch_size=PATCH, embed_dims=DIM, depth=DEPTH, num_heads=HEADS, num_frames=4,
        use_mean_pooling=False, return_feat_map=True).eval()
    # The detection ViT (use_mean_pooling=False) has `norm` and no `fc_norm`.
    state = {k.removeprefix('backbone.'): v for k, v in
             convert_state_dict(model.state_dict(), 'mmaction2', grid=model.grid_size).items()
             if not k.startswith('backbone.fc_norm.')}
    reference.load_state_dict(state, strict=True)
    clip = _clip(height=48, width=64)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_featmap(clip), reference(clip), atol=1e-5, rtol=0)


def test_sinusoid_policy_gives_fresh_table(tiny_vit):
    model = tiny_vit(pos_embed_policy='sinusoid')
    torch.testing.assert_close(model.pos_embed_for((2, 3, 4)), sinusoid_table(24, DIM), atol=0, rtol=0)
    # ... which is exactly the table of a model constructed at that size.
    torch.testing.assert_close(model.pos_embed_for((2, 3, 4)), tiny_vit(img_size=(48, 64)).pos_embed, atol=0, rtol=0)


@pytest.mark.parametrize('frames, size, patch', [(16, 224, 16), (16, 224, 14), (16, 320, 16), (16, 266, 14)])
def test_official_finetune_pos_embed_identity_at_16_frames(frames, size, patch):
    """At 16 frames the script's spatial step reads a table already built for the new size: a no-op."""
    table = sinusoid_table(frames // 2 * (size // patch) ** 2, 8)
    assert torch.equal(official_finetune_pos_embed(table, frames, size, patch), table)


def test_official_finetune_pos_embed_64x266_vit_g():
    """ViT-g (p14) at 64 frames x 266 px: the script's two steps, redone by hand.

    The model's own table has 32 x 19 x 19 = 11552 tokens. Step 1 assumes 8 slices of a square grid:
    sqrt(11552 / 8) = 38, so it sees 8 slices of 38x38 and resizes them bicubic to 266 / 14 = 19: 8 x 361 = 2888
    tokens. Step 2 sees 8 slices of 19x19 and resizes linearly to 32 slices: 32 x 361 = 11552 tokens again.
    """
    channels = 6  # the operation is per channel; a narrow table keeps the test fast
    table = sinusoid_table(11552, channels)
    out = official_finetune_pos_embed(table, num_frames=64, input_size=266, patch_size=14)
    assert out.shape == (1, 11552, channels)

    slices = table.reshape(8, 38, 38, channels).permute(0, 3, 1, 2)
    step1 = F.interpolate(slices, size=(19, 19), mode='bicubic', align_corners=False)  # (8, C, 19, 19)
    # Linear 8 -> 32 with align_corners=False: source position (i + 0.5) * 8 / 32 - 0.5, clamped at both ends.
    expected = []
    for i in range(32):
        src = min(max((i + 0.5) * 8 / 32 - 0.5, 0.0), 7.0)
        lo = int(math.floor(src))
        hi, frac = min(lo + 1, 7), src - lo
        expected.append((1 - frac) * step1[lo] + frac * step1[hi])
    expected = torch.stack(expected).permute(0, 2, 3, 1).reshape(1, 11552, channels)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    # It is neither the fresh 64-frame table nor a clean resize of the native 16 x 224 px table
    # (docs/backbone.md#position-embedding).
    assert not torch.allclose(out, table, atol=1e-3)
    clean = resize_pos_embed(sinusoid_table(8 * 16 * 16, channels), (8, 16, 16), (32, 19, 19))
    assert not torch.allclose(out, clean, atol=1e-3)


@pytest.mark.parametrize('shape, message', [
    ((1, 3, 3, 32, 32), r'3 frames x 32x32 px does not tile into tubelets of 2 frames x 16x16'),  # odd T
    ((1, 3, 4, 40, 32), r'4 frames x 40x32 px does not tile'),  # H is not a multiple of the patch
    ((1, 3, 4, 32, 24), r'4 frames x 32x24 px does not tile'),
    ((3, 4, 32, 32), r'expected a clip tensor \(B, C, T, H, W\)'),
    ((1, 1, 4, 32, 32), 'clip has 1 channels'),
])
def test_bad_inputs_raise_clear_errors(tiny_vit, shape, message):
    with pytest.raises(ValueError, match=message):
        tiny_vit()(torch.zeros(shape))


@pytest.mark.parametrize('kwargs, message', [
    (dict(img_size=40), r'4 frames x 40x40 px does not tile into 2x16x16'),
    (dict(all_frames=5), r'5 frames x 32x32 px does not tile'),
    (dict(pos_embed_policy='nearest'), "pos_embed_policy must be 'interpolate' or 'sinusoid'"),
    (dict(embed_dim=66), 'embed_dim 66 is not divisible by num_heads 4'),
])
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VideoMAEv2ViT('vit_test', **{'img_size': 32, 'all_frames': 4, **kwargs})


def test_unknown_arch_lists_choices():
    with pytest.raises(KeyError, match='vit_small'):
        VideoMAEv2ViT('vit_tiny')


# =====================================================================================================================
# 6. Initialisation and drop-path schedule (docs/backbone.md#pooling-head-and-initialisation)
# =====================================================================================================================
def test_init_scale_multiplies_the_head_only(tiny_vit):
    torch.manual_seed(3)
    full = tiny_vit(num_classes=NUM_CLASSES, init_scale=1.0)
    torch.manual_seed(3)
    scaled = tiny_vit(num_classes=NUM_CLASSES, init_scale=0.001)
    torch.testing.assert_close(scaled.head.weight, full.head.weight * 0.001, atol=0, rtol=1e-6)
    assert torch.count_nonzero(full.head.weight) == full.head.weight.numel()
    torch.testing.assert_close(scaled.head.bias, full.head.bias * 0.001, atol=0, rtol=0)
    for (name, a), b in zip(full.named_parameters(), scaled.parameters()):
        if not name.startswith('head.'):
            assert torch.equal(a, b), name


@pytest.mark.parametrize('init_scale', [1.0, 0.001])
def test_head_init_statistics(tiny_vit, init_scale):
    head = tiny_vit(num_classes=2000, init_scale=init_scale).head  # 128,000 weights: sample std within ~0.4%
    assert head.weight.std().item() == pytest.approx(0.02 * init_scale, rel=0.03)
    assert head.weight.mean().abs().item() < 0.02 * init_scale * 0.02
    assert torch.count_nonzero(head.bias) == 0


def test_body_init(tiny_vit):
    model = tiny_vit(featmap_norm=True)
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 2 * DEPTH + 2  # norm1/norm2 per block, fc_norm, norm
    for norm in norms:
        assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)
    for blk in model.blocks:
        assert torch.count_nonzero(blk.attn.q_bias) == 0 and torch.count_nonzero(blk.attn.v_bias) == 0
        assert torch.count_nonzero(blk.attn.k_bias) == 0
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert all(torch.count_nonzero(m.bias) == 0 for m in linears if m.bias is not None)
    weights = torch.cat([m.weight.flatten() for m in linears])
    assert weights.std().item() == pytest.approx(0.02, rel=0.03)
    # Conv3d keeps PyTorch's default: uniform(+-1/sqrt(fan_in)), fan_in = 3 * 2 * 16 * 16.
    bound = 1 / math.sqrt(3 * 2 * PATCH * PATCH)
    conv = model.patch_embed.proj.weight
    assert conv.abs().max().item() <= bound
    assert conv.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)


@pytest.mark.parametrize('depth, rate', [(2, 0.1), (5, 0.3), (12, 0.2), (1, 0.2)])
def test_drop_path_schedule_is_linear(depth, rate):
    model = VideoMAEv2ViT('vit_test', img_size=32, all_frames=4, depth=depth, drop_path_rate=rate)
    got = [blk.drop_path.drop_prob if isinstance(blk.drop_path, DropPath) else 0.0 for blk in model.blocks]
    expected = torch.linspace(0, rate, depth).tolist()  # the official schedule
    assert got == pytest.approx(expected, abs=1e-7)
    assert isinstance(model.blocks[0].drop_path, nn.Identity)  # rate 0 is no layer at all, as upstream


# =====================================================================================================================
# 7. Precision and feature maps
# =====================================================================================================================
def test_bfloat16_model_close_to_fp32(tiny_vit):
    model = _randomise_(tiny_vit(), std=0.02)
    clip = _clip()
    with torch.no_grad():
        ref = model.forward_features(clip)
        out = model.to(torch.bfloat16).forward_features(clip.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.05)


def test_autocast_bfloat16_with_fp32_model(tiny_vit):
    model = _randomise_(tiny_vit(num_classes=NUM_CLASSES), std=0.02)
    clip = _clip()
    with torch.no_grad():
        ref = model(clip)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = model(clip)
    assert model.head.weight.dtype == torch.float32
    assert out.dtype == torch.bfloat16  # the head Linear ran in bf16
    torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.05)


def test_featmap_is_normed_tokens_in_grid_order(tiny_vit):
    model = _randomise_(tiny_vit(featmap_norm=True))
    assert isinstance(model.norm, nn.LayerNorm)
    clip = _clip(height=32, width=48)  # grid (2, 2, 3)
    with torch.no_grad():
        fmap = model.forward_featmap(clip)
        tokens = model.norm(model.forward_tokens(clip))
    assert fmap.shape == (2, DIM, 2, 2, 3)
    # Token n sits at (t, h, w) with n = (t * H' + h) * W' + w: time slowest
    # (docs/backbone.md#embedding-attention-and-blocks).
    for t, h, w in [(0, 0, 0), (0, 0, 2), (0, 1, 0), (1, 0, 1), (1, 1, 2)]:
        torch.testing.assert_close(fmap[:, :, t, h, w], tokens[:, (t * 2 + h) * 3 + w], atol=0, rtol=0)
    # Without featmap_norm the map holds the raw last-block tokens.
    plain = tiny_vit()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith('norm.')})
    with torch.no_grad():
        torch.testing.assert_close(plain.forward_featmap(clip).flatten(2).transpose(1, 2),
                                   model.forward_tokens(clip), atol=0, rtol=0)


def test_forward_without_head_returns_features(tiny_vit):
    model = tiny_vit()
    clip = _clip()
    with torch.no_grad():
        features = model(clip)
        expected = model.fc_norm(model.forward_tokens(clip).mean(dim=1))
    assert features.shape == (2, DIM)
    torch.testing.assert_close(features, expected, atol=0, rtol=0)


# =====================================================================================================================
# 8. mmaction2 registry
# =====================================================================================================================
def test_registered_in_mmaction_models():
    registry = pytest.importorskip('mmaction.registry', reason='registration only happens with mmaction2 installed')
    import backbone

    assert registry.MODELS.module_dict['VideoMAEv2ViT'] is VideoMAEv2ViT
    backbone.register_with_mmaction()  # idempotent: a second registration would raise KeyError in mmengine
    model = registry.MODELS.build(dict(type='VideoMAEv2ViT', arch='vit_test', img_size=32, all_frames=4))
    assert isinstance(model, VideoMAEv2ViT) and model.embed_dim == DIM
    with torch.no_grad():
        assert model.eval()(_clip()).shape == (2, DIM)


def test_built_from_config_loads_pretrained(tiny_vit, tmp_path):
    registry = pytest.importorskip('mmaction.registry', reason='registration only happens with mmaction2 installed')
    source = _randomise_(tiny_vit(num_classes=NUM_CLASSES))
    path = tmp_path / 'vit_test.pth'
    torch.save({'module': source.state_dict()}, path)  # the official fine-tuned layout
    model = registry.MODELS.build(dict(type='VideoMAEv2ViT', arch='vit_test', img_size=32, all_frames=4,
                                       num_classes=NUM_CLASSES, init_cfg=dict(type='Pretrained', checkpoint=str(path))))
    model.init_weights()
    clip = _clip()
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(clip), source(clip), atol=0, rtol=0)



def test_drop_path_drops_whole_samples_and_rescales():
    """Our local DropPath (timm's semantics): each sample is zeroed or scaled by 1/keep_prob; eval is the identity."""
    layer = DropPath(0.25).train()
    x = torch.ones(4000, 3, 5)
    y = layer(x)
    per_sample = y.flatten(1)
    assert torch.all((per_sample == 0).all(1) | torch.isclose(per_sample, torch.tensor(1 / 0.75)).all(1))
    kept = (per_sample != 0).all(1).float().mean().item()
    assert abs(kept - 0.75) < 0.03  # binomial std at n=4000 is ~0.007
    assert torch.equal(layer.eval()(x), x)
