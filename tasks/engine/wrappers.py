"""mmengine wrappers every task uses: bfloat16 autocast on CPU or CUDA for training and testing, and DDP for CPU
modules (gloo).

Importing this module registers ``BF16AutocastOptimWrapper`` (OPTIM_WRAPPERS), ``BF16TestLoop`` (LOOPS) and
``DeviceAgnosticDDP`` (MODEL_WRAPPERS) in mmengine's root registries.
"""
from __future__ import annotations

import itertools
from contextlib import contextmanager
from typing import Any, Literal

import torch
import torch.nn as nn
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import OptimWrapper
from mmengine.registry import LOOPS, MODEL_WRAPPERS, OPTIM_WRAPPERS
from mmengine.runner import TestLoop

__all__ = ['BF16AutocastOptimWrapper', 'BF16TestLoop', 'DeviceAgnosticDDP', 'use_bf16_test_loop']


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


@LOOPS.register_module()
class BF16TestLoop(TestLoop):
    """mmengine's ``TestLoop`` with every test step under bfloat16 autocast on the model's device
    (``tools/test.py --amp``).

    ``TestLoop(fp16=True)`` only gives float16, and its ``autocast(enabled=fp16)`` around each step would switch an
    outer bfloat16 autocast off; so the step is run here. The task models keep scores, losses and decoding in float32
    under autocast (tests/engine/test_autocast.py); half-precision tensors other models return (mmaction2's heads
    average their scores in bfloat16) become float32 before the metrics, which may hand them to numpy.
    """

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: Any) -> None:
        from mmengine.runner.loops import _update_losses

        self.runner.call_hook('before_test_iter', batch_idx=idx, data_batch=data_batch)
        with torch.autocast(_device_type(self.runner.model) or 'cpu', dtype=torch.bfloat16):
            outputs = _as_float32(self.runner.model.test_step(data_batch))
        outputs, self.test_loss = _update_losses(outputs, self.test_loss)
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook('after_test_iter', batch_idx=idx, data_batch=data_batch, outputs=outputs)


def _as_float32(value: Any) -> Any:
    """``value`` with every bfloat16/float16 tensor in it as float32 (dicts, lists, tuples, mmengine data elements)."""
    from mmengine.structures import BaseDataElement

    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype in (torch.bfloat16, torch.float16) else value
    if isinstance(value, BaseDataElement):
        for key in value.keys():
            setattr(value, key, _as_float32(getattr(value, key)))
        return value
    if isinstance(value, dict):
        return {k: _as_float32(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_as_float32(v) for v in value)
    return value


def use_bf16_test_loop(cfg: Any) -> None:
    """Test under bfloat16 autocast: the config's ``test_cfg`` becomes a :class:`BF16TestLoop`, in place.

    Raises:
        ValueError: a config without a test loop, or whose loop is another custom type or asks for float16.
    """
    loop = cfg.get('test_cfg')
    if not isinstance(loop, dict) or loop.get('type', 'TestLoop') not in ('TestLoop', 'BF16TestLoop'):
        raise ValueError(f'--amp: the config\'s test_cfg {loop!r} is not mmengine\'s TestLoop, so it cannot be run '
                         'under bfloat16 autocast')
    if loop.get('fp16'):
        raise ValueError('--amp (bfloat16) and test_cfg.fp16=True (float16) exclude each other: drop one')
    cfg.test_cfg = dict(loop, type='BF16TestLoop')


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
