"""Loading mmengine-written training checkpoints under torch's weights-only unpickler.

torch >= 2.6 loads with ``weights_only=True`` by default and refuses the Python objects an mmengine training checkpoint
pickles next to the tensors (the message hub's ``HistoryBuffer`` and numpy scalars; docs/ecosystem.md, mmengine #1655).
Rather than turning the safety check off for every file (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``), the context manager
below allows exactly those classes.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from backbone.checkpoint import training_checkpoint_globals

__all__ = ['mmengine_checkpoint_globals', 'load_trusted_checkpoint']


def mmengine_checkpoint_globals():
    """Within the block, ``torch.load(weights_only=True)`` accepts mmengine's checkpoint objects (and no others).

    The allow-list lives with the checkpoint loader (:func:`backbone.checkpoint.training_checkpoint_globals`), so that
    every reader of our training runs (extraction, tests, conversion) accepts the same classes.
    """
    return training_checkpoint_globals()


def load_trusted_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """An mmengine training checkpoint as a dict (``state_dict``, ``meta``, ``message_hub``, ...), on the CPU."""
    # torch < 2.5 cannot allow-list classes; the caller vouches for the file (it is one of our training runs)
    weights_only = hasattr(torch.serialization, 'safe_globals')
    with mmengine_checkpoint_globals():
        return torch.load(path, map_location='cpu', weights_only=weights_only)
