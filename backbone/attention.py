"""Self-attention kernels of the ViT: which one runs for which input, and the blocked bf16 one for CPUs.

On CUDA and in float32, ``F.scaled_dot_product_attention`` (flash / memory-efficient kernels) is the fastest we have.
On a CPU in bfloat16 it is not: torch's CPU flash-attention kernel reached about 130-150 GFLOP/s on a 2-core AVX-512
bf16 machine where a bf16 GEMM of the same operands reaches 290-360 (docs/speed.md). :func:`blocked_attention` runs the
two products as oneDNN bf16 GEMMs over blocks of query rows, with torch's softmax between them (it reduces in float32
and writes bf16), so each block's scores stay in cache. It is used only where it wins: CPU, bf16, and no autograd
(the blocks' softmax outputs would all be kept for backward, N^2 per head, where flash attention keeps O(N)).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ['BLOCK_ROWS', 'BLOCK_SCORES', 'attention', 'blocked_attention', 'uses_blocked_attention']

#: Query rows per block, and the number of scores (heads x rows x keys) one block may hold: about 2 MiB of bf16, so a
#: block's scores stay in a core's L2/L3 between the two products. Chosen by measurement (docs/speed.md).
BLOCK_ROWS = 192
BLOCK_SCORES = 1 << 20


def uses_blocked_attention(q: torch.Tensor, dropout_p: float = 0.0) -> bool:
    """Whether :func:`attention` takes the blocked bf16 path for ``q``: CPU, bf16, no dropout, no autograd graph."""
    return (q.device.type == 'cpu' and q.dtype == torch.bfloat16 and dropout_p == 0.0
            and not (torch.is_grad_enabled() and q.requires_grad))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, dropout_p: float = 0.0) -> torch.Tensor:
    """softmax(scale * q k^T) v: (B, H, N, D) x3 -> (B, N, H * D), by the fastest kernel for the input."""
    batch, heads, tokens, head_dim = q.shape
    if uses_blocked_attention(q, dropout_p):
        return blocked_attention(q, k, v, scale)
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=scale)
    return out.transpose(1, 2).reshape(batch, tokens, heads * head_dim)


def blocked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, *,
                      block_rows: int = BLOCK_ROWS, block_scores: int = BLOCK_SCORES) -> torch.Tensor:
    """softmax(scale * q k^T) v over blocks of query rows: (B, H, N, D) x3 -> (B, N, H * D), in ``q``'s dtype.

    Each block is ``bmm`` -> ``softmax`` -> ``bmm`` into its slice of the output. Every query row sees every key, so
    this is exact attention (not an approximation); the rounding differs from a fused kernel's in that the scores and
    the probabilities are rounded to ``q``'s dtype (each GEMM writes it), as in the official explicit-softmax code.
    Autocast is switched off inside: the inputs already have the dtype to compute in, and autocast would run the
    softmax in float32 and write float32 scores, which costs more than the two products together.
    """
    batch, heads, tokens, head_dim = q.shape
    with torch.autocast(q.device.type, enabled=False):
        # each operand copied once into the layout bmm reads fastest (O(N) work, against O(N^2) in the products); the
        # scale is folded into q (exact for head_dim 64: 1/8). contiguous(): with batch 1, reshape of a (B, H, ...)
        # view is still a strided view, which bmm would copy again for every block.
        q = (q * scale).reshape(batch * heads, tokens, head_dim).contiguous()
        # k^T laid out (D, N): oneDNN's bf16 GEMM on a transposed view of k ran 2.5x slower (docs/speed.md)
        keys_t = k.transpose(-2, -1).reshape(batch * heads, head_dim, tokens).contiguous()
        v = v.reshape(batch * heads, tokens, head_dim).contiguous()
        out = torch.empty_like(q)
        # as few blocks as block_rows allows, of ceil(N / blocks) rows: 1568 tokens -> 8 x 175 + 168, not 8 x 192 + 32
        rows = -(-tokens // -(-tokens // block_rows))
        group = max(1, min(batch * heads, block_scores // (rows * tokens)))  # heads per block
        for h in range(0, batch * heads, group):
            h_end = min(h + group, batch * heads)
            for r in range(0, tokens, rows):
                r_end = min(r + rows, tokens)
                scores = torch.bmm(q[h:h_end, r:r_end], keys_t[h:h_end])
                torch.bmm(torch.softmax(scores, dim=-1), v[h:h_end], out=out[h:h_end, r:r_end])
        return out.view(batch, heads, tokens, head_dim).transpose(1, 2).reshape(batch, tokens, heads * head_dim)
