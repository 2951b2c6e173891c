"""Frames -> model input for feature extraction (:class:`Preprocess`), applied once per decoded frame."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from tasks.data.video import transforms as T

__all__ = ['ResizeMode', 'Preprocess']

ResizeMode = Literal['squash', 'short_side']


@dataclass(frozen=True)
class Preprocess:
    """Frames -> model input, applied once per decoded chunk of frames (a picklable callable for data workers).

    ``'squash'`` is the official TAD preprocessing (docs/thumos14.md#official-feature-extractor): /255, then bilinear
    ``F.interpolate`` to ``size`` (aspect ratio lost, no antialias), through
    :func:`tasks.data.video.transforms.squash_resize` for square sizes, so the input is bit-identical to the official
    extractor's. ``'short_side'`` keeps the aspect ratio: short side to ``short_side`` px, then a central ``size``
    crop, /255. ``normalize`` then applies ImageNet mean/std (what the models were trained with; the official TAD
    features do without, OpenGVLab/VideoMAEv2 issue #62).

    The defaults are the official TAD preprocessing (squash to 224x224, no mean/std), here as in
    ``tools/extract_features.py`` and the localization dataset's on-line extraction, so that features made without
    naming any option equal the published ones (docs/feature_caching.md#extraction-defaults).

    Attributes:
        resize: ``'squash'`` or ``'short_side'``.
        size: (h, w) of the model input: the squash target, or the crop.
        short_side: the short side after resizing (``'short_side'`` only).
        normalize: ImageNet mean/std after /255 (default False, as the official TAD features).
    """

    resize: ResizeMode = 'squash'
    size: tuple[int, int] = (224, 224)
    short_side: int | None = None
    normalize: bool = False

    def __post_init__(self) -> None:
        if self.resize not in ('squash', 'short_side'):
            raise ValueError(f"resize must be 'squash' or 'short_side', got {self.resize!r}")
        h, w = self.size
        if h < 1 or w < 1:
            raise ValueError(f'size must be positive, got {self.size}')
        if self.resize == 'short_side':
            if self.short_side is None or self.short_side < min(h, w):
                raise ValueError(f'short_side resize needs short_side >= the crop {h}x{w}, got {self.short_side}')
        elif self.short_side is not None:
            raise ValueError('short_side is only used with resize="short_side"')

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (k, H, W, 3) -> float32 (3, k, h, w): the frames of one chunk, channels first as the ViT takes them."""
        h, w = self.size
        if self.resize == 'squash':
            if h == w:
                x = T.squash_resize(frames, h)  # (3, k, h, w), the official op order: /255 then interpolate
            else:  # same ops and order; squash_resize takes a square side only
                x = T.resize(frames.float() / 255, (h, w)).transpose(0, 1)
        else:
            x = T.center_crop(T.short_side_resize(frames, self.short_side), (h, w))  # (k, 3, h, w), 0-255
            x = (x / 255).transpose(0, 1)
        if self.normalize:  # mean/std given on the 0-1 scale of x
            x = T.normalize(x.transpose(0, 1), [m / 255 for m in T.IMAGENET_MEAN],
                            [s / 255 for s in T.IMAGENET_STD]).transpose(0, 1)
        return x.contiguous()

    def summary(self) -> str:
        """One line for people, e.g. ``'squash to 224x224 (bilinear, /255), no mean/std (the official TAD
        preprocessing)'``."""
        h, w = self.size
        how = (f'squash to {h}x{w}' if self.resize == 'squash'
               else f'short side to {self.short_side}, central {h}x{w} crop')
        official = self.resize == 'squash' and not self.normalize and self.size == (224, 224)
        norm = 'ImageNet mean/std' if self.normalize else 'no mean/std'
        return f'{how} (bilinear, /255), {norm}' + (' (the official TAD preprocessing)' if official else '')

    def describe(self) -> dict[str, Any]:
        """The ``preprocessing`` provenance of a store (JSON)."""
        d: dict[str, Any] = {'resize': self.resize, 'size': list(self.size), 'interpolation': 'bilinear',
                             'align_corners': False, 'antialias': False, 'frame_dtype': 'uint8', 'scale': '1/255'}
        if self.resize == 'short_side':
            d.update(short_side=self.short_side, crop='center')
        d['normalize'] = {'mean': list(T.IMAGENET_MEAN), 'std': list(T.IMAGENET_STD), 'scale': '0-255'} \
            if self.normalize else None
        return d

