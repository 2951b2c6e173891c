"""Fixed sinusoid position embeddings for VideoMAE V2 token grids.

The official model (OpenGVLab/VideoMAEv2: models/modeling_finetune.py) builds a 1-D sinusoid table over the N
flattened tokens (T' slowest, then H', then W') and never loads it from checkpoints. When the runtime grid differs from
the constructed one there are three policies in the wild (docs/backbone.md#position-embedding); all three are here:

* ``interpolate`` (mmaction2): resize the constructed table bicubic per temporal slice, linearly along time.
* ``sinusoid`` (official model built at the new size): a fresh 1-D table over the new N.
* :func:`official_finetune_pos_embed` (official ``run_class_finetuning.py``): the script's literal two-step resize.
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

PosEmbedPolicy = Literal['interpolate', 'sinusoid']


def sinusoid_table(num_positions: int, dim: int) -> torch.Tensor:
    """The official table: angle(pos, j) = pos / 10000^(2*floor(j/2)/dim), sin on even j, cos on odd j.

    Built in float64 (as the official numpy code is) and returned as float32.

    Returns:
        (1, num_positions, dim) float32 tensor.
    """
    position = np.arange(num_positions, dtype=np.float64)[:, None]
    exponent = 2 * (np.arange(dim) // 2) / dim
    angles = position / np.power(10000, exponent)[None, :]
    angles[:, 0::2] = np.sin(angles[:, 0::2])
    angles[:, 1::2] = np.cos(angles[:, 1::2])
    return torch.from_numpy(angles).float().unsqueeze(0)


def resize_pos_embed(table: torch.Tensor, src_grid: tuple[int, int, int],
                     dst_grid: tuple[int, int, int]) -> torch.Tensor:
    """Resize a (1, T'*H'*W', C) table from ``src_grid`` to ``dst_grid`` = (T', H', W').

    Space is resized bicubic per temporal slice with align_corners=False (mmaction2's VisionTransformer); time, when it
    differs, linearly with align_corners=False (the official fine-tuning script's temporal step).

    Returns:
        (1, prod(dst_grid), C) tensor of ``table``'s dtype.
    """
    (t0, h0, w0), (t1, h1, w1) = src_grid, dst_grid
    channels = table.shape[-1]
    if table.shape[1] != t0 * h0 * w0:
        raise ValueError(f'position table has {table.shape[1]} tokens, grid {src_grid} needs {t0 * h0 * w0}')
    dtype = table.dtype
    x = table.float().reshape(t0, h0, w0, channels)
    if (h0, w0) != (h1, w1):
        x = F.interpolate(x.permute(0, 3, 1, 2), size=(h1, w1), mode='bicubic', align_corners=False)
        x = x.permute(0, 2, 3, 1)  # (T0, H1, W1, C)
    if t0 != t1:
        x = x.permute(1, 2, 3, 0).reshape(h1 * w1, channels, t0)
        x = F.interpolate(x, size=t1, mode='linear', align_corners=False)
        x = x.reshape(h1, w1, channels, t1).permute(3, 0, 1, 2)
    return x.reshape(1, t1 * h1 * w1, channels).to(dtype)


def adapt_pos_embed(table: torch.Tensor, src_grid: tuple[int, int, int], dst_grid: tuple[int, int, int],
                    policy: PosEmbedPolicy) -> torch.Tensor:
    """The (1, N, C) table built for ``src_grid`` adapted to ``dst_grid`` by ``policy``: resized (``'interpolate'``)
    or a fresh sinusoid for the new grid (``'sinusoid'``), on the table's device. Returns (1, prod(dst_grid), C)."""
    if policy == 'interpolate':
        return resize_pos_embed(table, src_grid, dst_grid)
    return sinusoid_table(math.prod(dst_grid), table.shape[-1]).to(table.device)


def official_finetune_pos_embed(table: torch.Tensor, num_frames: int, input_size: int, patch_size: int,
                                tubelet_size: int = 2) -> torch.Tensor:
    """Reproduce the literal position-table edit of the official ``run_class_finetuning.py``.

    The script reads the model's table (already built for the new shape), reshapes it assuming 8 temporal slices and a
    square grid, resizes bicubic to ``input_size / patch_size``, then, if ``num_frames != 16``, reshapes again assuming
    8 slices and resizes linearly along time. At 16 frames this is the identity; for 64x266 it is *not* a clean resize
    of the 16x224 table, and this function is how to reproduce the published 64-frame numbers
    (docs/backbone.md#position-embedding).

    Args:
        table: (1, N, C) table built for ``num_frames`` x ``input_size``.

    Returns:
        (1, N, C) table.
    """
    slices = 16 // tubelet_size
    channels = table.shape[-1]
    x = table
    if input_size != 224:
        orig = int(math.sqrt(x.shape[1] / slices))
        new = input_size // patch_size
        if orig != new:
            x = x.reshape(-1, slices, orig, orig, channels).flatten(0, 1).permute(0, 3, 1, 2)
            x = F.interpolate(x.float(), size=(new, new), mode='bicubic', align_corners=False)
            x = x.permute(0, 2, 3, 1).reshape(1, -1, channels)
    if num_frames != 16:
        side = int(math.sqrt(x.shape[1] // slices))
        new_t = num_frames // tubelet_size
        x = x.reshape(1, slices, side, side, channels).permute(0, 2, 3, 4, 1).reshape(-1, channels, slices)
        x = F.interpolate(x.float(), size=new_t, mode='linear')
        x = x.reshape(1, side, side, channels, new_t).permute(0, 4, 1, 2, 3).flatten(1, 3)
    return x.to(table.dtype)
