"""mmengine wrappers every task's training uses: bfloat16 autocast on CPU or CUDA, and DDP for CPU modules (gloo).

Importing this module registers ``BF16AutocastOptimWrapper`` (OPTIM_WRAPPERS) and ``DeviceAgnosticDDP``
(MODEL_WRAPPERS) in mmengine's root registries.
"""
from __future__ import annotations

import itertools
from contextlib import contextmanager
from typing import Any, Literal

import torch
import torch.nn as nn
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import OptimWrapper
from mmengine.registry import MODEL_WRAPPERS, OPTIM_WRAPPERS

__all__ = ['BF16AutocastOptimWrapper', 'DeviceAgnosticDDP']


@OPTIM_WRAPPERS.register_module()
class BF16AutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` that runs the forward pass under bfloat16 autocast, on CPU or CUDA.

    mmengine's ``AmpOptimWrapper(dtype='bfloat16')`` does the same autocast but refuses to be built without a GPU
    (it asserts CUDA/NPU/MLU/MUSA for its float16 ``GradScaler``). bfloat16 has float32's exponent range, so gradients
    need no loss scaling, and this wrapper has no scaler; its state dict is the plain optimiser's, so runs resume
    across the two wrappers. The official recipe uses float16 autocast with a loss scaler on GPUs
    (docs/pretraining.md#masks-and-loss); use ``AmpOptimWrapper`` for that.

    Autocast runs on the model's device type (that of its first parameter), not on the one mmengine guesses from the
    machine (CUDA whenever a GPU exists): a model kept on the CPU of a GPU machine is autocast on the CPU.

    Args:
        dtype: the autocast dtype; only ``'bfloat16'``.
        **kwargs: ``optimizer``, ``clip_grad``, ``accumulative_counts`` as for ``OptimWrapper``.
    """

    def __init__(self, dtype: Literal['bfloat16'] = 'bfloat16', **kwargs: Any):
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(f"BF16AutocastOptimWrapper supports dtype='bfloat16' only (float16 needs a loss scaler: "
                             f"use mmengine's AmpOptimWrapper on a GPU), got {dtype!r}")
        super().__init__(**kwargs)
        self.cast_dtype = torch.bfloat16

    @contextmanager
    def optim_context(self, model: nn.Module):
        from mmengine.runner.amp import autocast

        with super().optim_context(model), autocast(device_type=_device_type(model), dtype=self.cast_dtype):
            yield


def _device_type(model: nn.Module) -> str | None:
    """The device type of the model's first parameter (or buffer); None, mmengine's choice, when it has neither."""
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    return None if first is None else first.device.type


@MODEL_WRAPPERS.register_module()
class DeviceAgnosticDDP(MMDistributedDataParallel):
    """mmengine's DDP wrapper that also wraps CPU modules (gloo), for distributed runs on machines without GPUs.

    The Runner always passes ``device_ids=[LOCAL_RANK]``, which torch's DDP accepts only for GPU modules; for a module
    on the CPU it is dropped. ``tools/train.py`` selects this wrapper when ``--launcher pytorch`` finds no CUDA.
    """

    def __init__(self, module: nn.Module, device_ids: list[int] | None = None, **kwargs: Any):
        if all(p.device.type == 'cpu' for p in module.parameters()):
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)
