"""Loading mmengine-written training checkpoints under torch's weights-only unpickler.

torch >= 2.6 loads with ``weights_only=True`` by default and refuses the Python objects an mmengine training checkpoint
pickles next to the tensors (the message hub's ``HistoryBuffer`` and numpy scalars; REFERENCE 8, mmengine #1655).
Rather than turning the safety check off for every file (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``), the context manager
below allows exactly those classes.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

__all__ = ['mmengine_checkpoint_globals', 'load_trusted_checkpoint']


def _allowed() -> list[Any]:
    """What mmengine 0.10 pickles into a training checkpoint besides tensors and builtin containers."""
    from mmengine.logging.history_buffer import HistoryBuffer

    multiarray = (np._core if hasattr(np, '_core') else np.core).multiarray
    allowed: list[Any] = [
        HistoryBuffer,  # the message hub's loss/lr/time histories
        # A HistoryBuffer pickles its statistics table as getattr(HistoryBuffer, 'min') etc. The weights-only
        # unpickler still refuses to *call* anything not allowed here, so getattr can only look attributes up.
        getattr,
        np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,  # numpy histories and scalars
    ]
    # numpy >= 1.25 pickles dtypes through their classes (np.dtypes.Float64DType, ...)
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        allowed += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith('DType')]
    return allowed


@contextlib.contextmanager
def mmengine_checkpoint_globals() -> Iterator[None]:
    """Within the block, ``torch.load(weights_only=True)`` accepts mmengine's checkpoint objects (and no others)."""
    safe_globals = getattr(torch.serialization, 'safe_globals', None)
    if safe_globals is None:  # torch < 2.5: no allow-list, and torch.load defaults to weights_only=False anyway
        yield
        return
    with safe_globals(_allowed()):
        yield


def load_trusted_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """An mmengine training checkpoint as a dict (``state_dict``, ``meta``, ``message_hub``, ...), on the CPU."""
    # torch < 2.5 cannot allow-list classes; the caller vouches for the file (it is one of our training runs)
    weights_only = hasattr(torch.serialization, 'safe_globals')
    with mmengine_checkpoint_globals():
        return torch.load(path, map_location='cpu', weights_only=weights_only)
