"""Per-view augmentation of VideoMAE V2 pre-training (the official ``DataAugmentationForVideoMAEv2``,
docs/pretraining.md#recipe): one multi-scale crop of a decoded clip, the same for every frame, rounded back to uint8
(normalised later, on the device), with no flip and no colour jitter; then an encoder mask (tube) and a decoder mask
(running cell) over its token grid (:class:`backbone.masking.DualMaskGenerator`).

Every random draw comes from generators passed in by the caller, so a view is a pure function of (frames, seeds).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from backbone.masking import DecoderMaskKind, DualMaskGenerator, MaskKind
from tasks.data.video.transforms import multi_scale_crop, to_cthw

__all__ = ['PretrainView', 'PretrainAugmentation']


@dataclass(frozen=True)
class PretrainView:
    """One augmented, masked view of a clip.

    Attributes:
        clip: uint8 (3, T, S, S) RGB crop on the 0-255 scale (not normalised).
        encoder_mask: (N,) bool, N = T' * H' * W'; True = hidden from the encoder.
        decoder_mask: (N,) bool; True = dropped from the decoder (neither decoded nor in the loss).
    """

    clip: torch.Tensor
    encoder_mask: torch.Tensor
    decoder_mask: torch.Tensor


class PretrainAugmentation:
    """Multi-scale crop + dual masks for one view (``DataAugmentationForVideoMAEv2``).

    Args:
        clip_len: frames per clip (T); must be a multiple of ``tubelet_size``.
        input_size: side S of the square crop the model sees; must be a multiple of ``patch_size``.
        patch_size: spatial patch side p of the model (16; 14 for ViT-g).
        tubelet_size: frames per token (2 in every VideoMAE model).
        scales: crop sides as fractions of the short side (TSN ``GroupMultiScaleCrop``).
        encoder_mask: encoder mask kind (the official script accepts only ``'tube'``).
        encoder_mask_ratio: rho_e.
        decoder_mask: decoder mask kind; ``'none'`` (or ratio 0) gives VideoMAE V1 (decode every masked token).
        decoder_mask_ratio: rho_d.
        antialias: filter when downscaling. The official crop is resized by PIL, whose bilinear filter widens with
            the downscale factor; torch's ``antialias=True`` reproduces that filter.

    Raises:
        ValueError: sizes that do not divide into tokens, or mask settings the generators reject.
    """

    def __init__(self, clip_len: int = 16, input_size: int = 224, patch_size: int = 16, tubelet_size: int = 2,
                 scales: Sequence[float] = (1, .875, .75, .66), encoder_mask: MaskKind = 'tube',
                 encoder_mask_ratio: float = 0.9, decoder_mask: DecoderMaskKind = 'run_cell',
                 decoder_mask_ratio: float = 0.5, antialias: bool = True):
        if clip_len % tubelet_size:
            raise ValueError(f'clip_len {clip_len} is not a multiple of tubelet_size {tubelet_size}')
        if input_size % patch_size:
            raise ValueError(f'input_size {input_size} is not a multiple of patch_size {patch_size}')
        self.clip_len = clip_len
        self.input_size = input_size
        self.scales = tuple(float(s) for s in scales)
        self.antialias = antialias
        #: token grid (T', H', W') the masks are drawn over
        self.grid = (clip_len // tubelet_size, input_size // patch_size, input_size // patch_size)
        self.masks = DualMaskGenerator(self.grid, encoder_mask, encoder_mask_ratio, decoder_mask, decoder_mask_ratio)

    @property
    def num_tokens(self) -> int:
        return self.grid[0] * self.grid[1] * self.grid[2]

    def __call__(self, frames: torch.Tensor, generator: torch.Generator, rng: np.random.Generator) -> PretrainView:
        """Augment and mask one view.

        Args:
            frames: uint8 (T, H, W, 3) decoded clip (what :meth:`tasks.data.video.VideoReader.get_frames` returns).
            generator: draws the crop.
            rng: draws the masks.
        """
        if frames.ndim != 4 or frames.shape[0] != self.clip_len:
            raise ValueError(f'expected {self.clip_len} frames (T, H, W, 3), got shape {tuple(frames.shape)}')
        crop = multi_scale_crop(frames, self.input_size, scales=self.scales, generator=generator,
                                antialias=self.antialias)  # float32 (T, 3, S, S) on 0-255
        clip = to_cthw(crop.round_().clamp_(0, 255).to(torch.uint8))
        encoder_mask, decoder_mask = self.masks(rng)
        return PretrainView(clip, torch.from_numpy(encoder_mask), torch.from_numpy(decoder_mask))

    def __repr__(self) -> str:
        return (f'PretrainAugmentation(clip_len={self.clip_len}, input_size={self.input_size}, scales={self.scales}, '
                f'grid={self.grid}, masks={self.masks!r})')
