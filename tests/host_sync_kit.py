"""Find, on the CPU, the operations that would make the host wait for a GPU.

On CUDA an operation whose output size or Python value depends on the data (``nonzero``, a boolean-mask index,
``.item()`` / ``int(t)`` / ``bool(t)``) copies to the host and waits for the device. :class:`SyncOps` records those
operations through torch's dispatcher, so a CPU test can assert that a step has none. ``.tolist()`` and ``.cpu()`` of
a CPU tensor do not dispatch and are not seen: use this for device-side code, with host-side inputs where the code
expects them on the host.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ['SyncOps']

_DATA_DEPENDENT = {'aten.nonzero.default', 'aten._local_scalar_dense.default', 'aten.masked_select.default',
                   'aten.is_nonzero.default', 'aten.item.default'}


def _has_mask_index(args: tuple) -> bool:
    """A boolean (or uint8) tensor among the indices of ``aten.index`` / ``aten.index_put``: an implicit nonzero."""
    return any(isinstance(t, torch.Tensor) and t.dtype in (torch.bool, torch.uint8)
               for a in args if isinstance(a, (list, tuple)) for t in a)


class SyncOps(TorchDispatchMode):
    """Context manager; ``ops`` lists the names of the data-dependent operations run inside it, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = str(func)
        if name in _DATA_DEPENDENT or (name.startswith('aten.index') and _has_mask_index(args)):
            self.ops.append(name)
        return func(*args, **(kwargs or {}))
