"""TF32 for float32 work on CUDA: read, set, and set for a block. One place, because torch has two APIs for it.

On Ampere and newer GPUs, float32 matmuls (cuBLAS) and convolutions (cuDNN: the patch embedding) may round their
inputs to TF32's 10 mantissa bits (about 1e-3 relative error per product, several times faster). torch >= 2.9 has
the ``fp32_precision`` settings, and its legacy getters (``allow_tf32``, ``torch.get_float32_matmul_precision()``)
raise once those have been used, so everything here uses the new settings where they exist and the legacy flags
only on older torch. ``torch.set_float32_matmul_precision('high')`` is not used: it also switches CPU (oneDNN)
matmuls. These are process-wide flags, read by CUDA kernels only; CPU results do not change.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ['cuda_tf32', 'set_cuda_tf32', 'cuda_tf32_settings']


def _new_api() -> bool:
    return hasattr(torch.backends.cudnn, 'conv')  # torch >= 2.9


def _settings() -> list[tuple[object, str]]:
    """(owner, attribute) of the matmul and the convolution setting."""
    if _new_api():
        return [(torch.backends.cuda.matmul, 'fp32_precision'), (torch.backends.cudnn.conv, 'fp32_precision')]
    return [(torch.backends.cuda.matmul, 'allow_tf32'), (torch.backends.cudnn, 'allow_tf32')]


def cuda_tf32() -> tuple[bool, bool]:
    """(matmuls, convolutions): whether float32 work on CUDA may run in TF32 now. On torch >= 2.9 ``'none'`` means
    the default, which is IEEE for matmuls (the legacy setters write the new settings too)."""
    if _new_api():
        return (torch.backends.cuda.matmul.fp32_precision == 'tf32',
                torch.backends.cudnn.conv.fp32_precision == 'tf32')
    return bool(torch.backends.cuda.matmul.allow_tf32), bool(torch.backends.cudnn.allow_tf32)


def set_cuda_tf32(matmul: bool, conv: bool | None = None) -> None:
    """Allow TF32 for float32 matmuls and convolutions on CUDA, or keep IEEE float32 (``conv`` defaults to
    ``matmul``)."""
    conv = matmul if conv is None else conv
    for (owner, name), on in zip(_settings(), (matmul, conv)):
        setattr(owner, name, ('tf32' if on else 'ieee') if _new_api() else bool(on))


@contextlib.contextmanager
def cuda_tf32_settings(matmul: bool, conv: bool | None = None) -> Iterator[None]:
    """:func:`set_cuda_tf32` inside the block; the previous settings (also torch's unset ``'none'``) after it."""
    saved = [(owner, name, getattr(owner, name)) for owner, name in _settings()]
    try:
        set_cuda_tf32(matmul, conv)
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)
