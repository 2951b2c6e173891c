"""The released VideoMAE V2 weights by name: the table :data:`RELEASED`.

The official files live in the Hugging Face model repo ``OpenGVLab/VideoMAE2`` (the old download links are dead;
docs/checkpoints.md#released-weights-by-name). :data:`RELEASED` lists those whose path in the repo is known exactly;
``load_checkpoint(model, 'vit_b_k710_distill')`` and every tool's ``--checkpoint`` take these names because the one
checkpoint reader resolves them (:func:`backbone.checkpoint_io.resolve_checkpoint`, through the Hugging Face hub
cache). This module imports nothing of the suite, so the reader can import it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ['RELEASED', 'ReleasedCheckpoint', 'is_released_name', 'released']


@dataclass(frozen=True)
class ReleasedCheckpoint:
    """One released file.

    Attributes:
        name: our name for it (``vit_<size>_<what>``; docs/checkpoints.md#released-weights-by-name).
        repo_id: the Hugging Face model repo.
        filename: the file's path inside the repo.
        arch: the :data:`backbone.ARCH_PRESETS` name it fits.
        num_classes: rows of its head (0: no head, pre-training weights).
        labels: the label set its head rows follow (:func:`tasks.data.labels.class_names`), or None.
        layout: the layout :func:`backbone.checkpoint_layouts.detect_layout` finds in it, or None where no public
            source says (the loader detects it anyway).
        dtype: the stored float type.
        note: what else a user should know.
    """

    name: str
    repo_id: str
    filename: str
    arch: str
    num_classes: int
    labels: str | None
    layout: Literal['official', 'pretrain'] | None
    dtype: Literal['float16', 'float32']
    note: str = ''


_REPO = 'OpenGVLab/VideoMAE2'

#: The released files whose path in ``OpenGVLab/VideoMAE2`` is known exactly (file list, sizes, dtypes and wrappers:
#: the model repo's listing as summarised in docs/checkpoints.md). Left out: ViT-B pre-training (its file name under
#: ``mae-b/`` is not known exactly) and ``mae-g/vit_g_ps14_ak_ft_ckpt_7_clean.pth`` (its content is not documented).
RELEASED: dict[str, ReleasedCheckpoint] = {c.name: c for c in (
    ReleasedCheckpoint('vit_g_hybrid_pt', _REPO, 'mae-g/vit_g_hybrid_pt_1200e.pth', 'vit_giant', 0, None, 'pretrain',
                       'float32', 'dual-masked pre-training on UnlabeledHybrid, 1200 epochs: encoder + decoder'),
    ReleasedCheckpoint('vit_g_k710_ft', _REPO, 'mae-g/vit_g_hybrid_pt_1200e_k710_ft.pth', 'vit_giant', 710, 'k710',
                       'official', 'float16', 'K710 post-pre-training; slice the head with label_710to400.json etc.'),
    ReleasedCheckpoint('vit_g_ssv2_ft', _REPO, 'mae-g/vit_g_hybrid_pt_1200e_ssv2_ft.pth', 'vit_giant', 174, 'ssv2',
                       'official', 'float16', 'fine-tuned on Something-Something V2'),
    ReleasedCheckpoint('vit_s_k710_distill', _REPO, 'distill/vit_s_k710_dl_from_giant.pth', 'vit_small', 710, 'k710',
                       'official', 'float16', 'distilled from ViT-g on K710'),
    ReleasedCheckpoint('vit_b_k710_distill', _REPO, 'distill/vit_b_k710_dl_from_giant.pth', 'vit_base', 710, 'k710',
                       'official', 'float16', 'distilled from ViT-g on K710'),
    ReleasedCheckpoint('vit_l_hybrid_pt', _REPO, 'mae-l/pytorch_model.bin', 'vit_large', 0, None, None, 'float32',
                       'pre-trained ViT-L (2.43 GB); whether it holds the decoder is checked on load'),
    ReleasedCheckpoint('vit_h_hybrid_pt', _REPO, 'mae-h/pytorch_model.bin', 'vit_huge', 0, None, None, 'float32',
                       'pre-trained ViT-H (5.05 GB); whether it holds the decoder is checked on load'),
)}


def released(name: str) -> ReleasedCheckpoint:
    """The table entry of a released name.

    Raises:
        KeyError: an unknown name (the message lists the known ones).
    """
    try:
        return RELEASED[name]
    except KeyError:
        raise KeyError(f'{name!r} is not a released checkpoint name; known: {", ".join(RELEASED)}') from None


def is_released_name(src: object) -> bool:
    """Whether ``src`` is a name of :data:`RELEASED` (a string or path-like that is not an existing path)."""
    return isinstance(src, (str, os.PathLike)) and str(src) in RELEASED and not Path(src).exists()
