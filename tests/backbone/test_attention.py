"""The attention kernels: the blocked one is exact attention (float32 to float64 reference), its bf16 rounding is of the
same order as the fused kernel's, and the dispatch sends only CPU bf16 inference to it."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from backbone.attention import attention, blocked_attention, uses_blocked_attention


def reference(q, k, v, scale):
    """float64 softmax(scale q k^T) v, (B, H, N, D) -> (B, N, H * D)."""
    b, h, n, d = q.shape
    probs = torch.softmax(scale * q.double() @ k.double().transpose(-2, -1), dim=-1)
    return (probs @ v.double()).transpose(1, 2).reshape(b, n, h * d)


def qkv(b, h, n, d, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, n, d, generator=gen).to(dtype) for _ in range(3)]


@pytest.mark.parametrize('block_rows, block_scores', [
    (192, 1 << 20),  # defaults: one block of rows, all heads
    (7, 10 ** 9),    # rows not dividing N: a short last block
    (16, 16 * 37),   # one head per block
    (5, 5 * 37 * 4),  # four heads per block, 6 heads in all: a short last head group
])
def test_blocked_attention_is_exact_attention(block_rows, block_scores):
    q, k, v = qkv(2, 3, 37, 16)
    out = blocked_attention(q, k, v, 0.25, block_rows=block_rows, block_scores=block_scores)
    assert out.shape == (2, 37, 48) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), reference(q, k, v, 0.25), rtol=0, atol=2e-6)


def bf16(t):
    return t.to(torch.bfloat16).double()


@pytest.mark.parametrize('shape', [(1, 6, 1568 // 4, 64), (2, 16, 130, 88)])
def test_blocked_bf16_rounds_where_it_says(shape):
    """In bf16 the kernel rounds four times: q * scale, the scores (a bf16 GEMM's output), the probabilities (softmax
    in float32, written as bf16) and the output. A float64 emulation of exactly those roundings matches it to one bf16
    ulp at the output's scale (an fp32 accumulation may flip a score's rounding; nothing else differs)."""
    q, k, v = qkv(*shape, dtype=torch.bfloat16)
    b, h, n, d = shape
    scale = d ** -0.5
    scores = bf16(bf16(q.double() * scale) @ k.double().transpose(-2, -1))
    probs = bf16(torch.softmax(scores, dim=-1))
    emulated = bf16(probs @ v.double()).transpose(1, 2).reshape(b, n, h * d)
    ours = blocked_attention(q, k, v, scale)
    assert ours.dtype == torch.bfloat16
    ulp = 2.0 ** -7 * emulated.abs().max()  # bf16 keeps 8 significant bits: ulp(x) <= 2^-7 |x|
    assert (ours.double() - emulated).abs().max() <= ulp
    fused = F.scaled_dot_product_attention(q, k, v, scale=scale).transpose(1, 2).reshape(emulated.shape)
    truth = reference(q, k, v, scale)
    # of the order of the fused kernel's own bf16 error (which keeps scores and probabilities in float32)
    assert (ours.double() - truth).abs().max() <= 8 * (fused.double() - truth).abs().max()


def test_dispatch():
    q32, k, v = qkv(1, 2, 8, 4)
    q16 = q32.bfloat16()
    with torch.no_grad():
        assert uses_blocked_attention(q16)
        assert not uses_blocked_attention(q32)  # fp32: the fused kernel is at the GEMM peak already
        assert not uses_blocked_attention(q16, dropout_p=0.1)
    assert uses_blocked_attention(q16)  # grad mode on, but nothing to differentiate
    assert not uses_blocked_attention(q16.requires_grad_())  # training: flash attention keeps O(N) for backward


def test_attention_picks_blocked_in_bf16_and_fused_in_fp32(monkeypatch):
    import backbone.attention as module

    calls = []
    monkeypatch.setattr(module, 'blocked_attention', lambda *a, **kw: calls.append(a[0].dtype) or a[0])
    q, k, v = qkv(1, 2, 8, 4)
    with torch.no_grad():
        attention(q, k, v, 0.5)
        attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), 0.5)
    assert calls == [torch.bfloat16]


def test_vit_bf16_inference_uses_it_and_stays_close(tiny_vit):
    """A bf16 ViT forward (blocked attention) and one under CPU autocast are within bf16 rounding of fp32."""
    model = tiny_vit()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.inference_mode():
        fp32 = model.forward_features(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            autocast = model.forward_features(x)
        cast = model.to(torch.bfloat16).forward_features(x.bfloat16())
    for out in (autocast, cast):
        cos = F.cosine_similarity(out.float(), fp32, dim=-1)
        assert cos.min() > 0.999, cos


def test_blocked_attention_compiles(tiny_vit):
    """The compiled blocks trace the blocked path (Python loops over static shapes) and agree with eager bf16."""
    from backbone.compile import compile_backbone, compile_unavailable_reason

    reason = compile_unavailable_reason()
    if reason is not None:
        pytest.skip(f'torch.compile is not available here: {reason}')
    model = tiny_vit(img_size=64).to(torch.bfloat16)
    x = torch.randn(2, 3, 4, 64, 64).bfloat16()
    with torch.inference_mode():
        eager = model.forward_features(x).float()
        assert compile_backbone(model) == 2
        compiled = model.forward_features(x).float()
    assert F.cosine_similarity(eager, compiled, dim=-1).min() > 0.9999
