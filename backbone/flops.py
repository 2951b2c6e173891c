"""FLOP counting for the benchmarks: ``torch.utils.flop_counter`` with every attention kernel counted.

``FlopCounterMode`` counts matmuls, convolutions and the CUDA attention kernels, but some torch releases (2.14
among them) have no formula for the CPU kernel that ``F.scaled_dot_product_attention`` dispatches to
(``aten._scaled_dot_product_flash_attention_for_cpu`` and its backward), so attention silently counted 0 FLOPs on
CPU. :func:`count_flops` registers torch's own SDPA formulas for those ops when they are missing, so a model with
fused attention counts the same FLOPs as one that spells out ``q @ k^T`` and ``attn @ v``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils import flop_counter

__all__ = ['count_flops']

_aten = torch.ops.aten


def _register_cpu_attention_formulas() -> None:
    forward = getattr(_aten, '_scaled_dot_product_flash_attention_for_cpu', None)
    backward = getattr(_aten, '_scaled_dot_product_flash_attention_for_cpu_backward', None)
    if forward is not None and forward not in flop_counter.flop_registry:
        def forward_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
            return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)
        flop_counter.register_flop_formula(forward)(forward_flops)
    if backward is not None and backward not in flop_counter.flop_registry:
        def backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                           **kwargs) -> int:
            return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)
        flop_counter.register_flop_formula(backward)(backward_flops)


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one ``fn()`` (matmuls, convolutions, attention; a multiply-add counts 2). Elementwise ops, norms and
    softmax are not counted, so achieved GFLOP/s is a lower bound of the work."""
    _register_cpu_attention_formulas()
    with flop_counter.FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())
