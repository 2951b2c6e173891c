"""mmengine glue for pre-training: the data preprocessor and the ``BaseModel`` wrapper.

The pre-training model sits under the attribute ``backbone``, so checkpoints hold ``backbone.encoder.*``:
:func:`backbone.load_checkpoint` reads them as it reads the official pre-training files (whole into a
``VideoMAEv2Pretrainer``, the encoder into a downstream ``VideoMAEv2ViT``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn as nn
from mmengine.model import BaseDataPreprocessor, BaseModel
from mmengine.registry import MODELS

from backbone.pretrain import VideoMAEv2Pretrainer
from tasks.data.video.transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = ['VideoMAEv2PretrainPreprocessor', 'VideoMAEv2PretrainModel']


@MODELS.register_module()
class VideoMAEv2PretrainPreprocessor(BaseDataPreprocessor):
    """Move a collated batch to the device, fold the repeated-augmentation views into the batch and normalise.

    Args:
        mean: per-channel mean on the scale of the inputs (ImageNet on 0-255 by default).
        std: per-channel std on that scale.
        non_blocking: asynchronous host-to-device copies (they overlap the step when the loader pins memory).

    The masks stay on the host: the model counts their visible and kept tokens there, which on a GPU would be a
    sync per step, and moves them to the device itself (:meth:`backbone.pretrain.VideoMAEv2Pretrainer.check_masks`).
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 non_blocking: bool = True):
        super().__init__(non_blocking)
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f'mean and std need 3 values (RGB), got {mean} and {std}')
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1, 1), persistent=False)

    def forward(self, data: dict, training: bool = False) -> dict[str, Any]:
        """
        Args:
            data: ``inputs`` (B, V, 3, T, H, W) or (B, 3, T, H, W) on 0-255; ``data_samples`` with ``encoder_mask``
                and ``decoder_mask`` (B, V, N) or (B, N).

        Returns:
            ``inputs`` float32 (B*V, 3, T, H, W) normalised, on the device; ``data_samples`` with masks bool (B*V, N)
            where they came from (the host, from a data loader) and the rest (``index``, ``failed``) as collated, on
            the device.
        """
        samples = dict(data.get('data_samples') or {})
        masks = {key: samples.pop(key) for key in ('encoder_mask', 'decoder_mask') if key in samples}
        data = self.cast_data(dict(data, data_samples=samples))
        inputs, samples = data['inputs'], dict(data['data_samples'], **masks)
        if inputs.ndim == 6:
            inputs = inputs.flatten(0, 1)
        if inputs.ndim != 5 or inputs.shape[1] != 3:
            raise ValueError(f'expected inputs (B, V, 3, T, H, W) or (B, 3, T, H, W), got {tuple(inputs.shape)}')
        for key in ('encoder_mask', 'decoder_mask'):
            if key not in samples:
                raise KeyError(f'data_samples has no {key!r} (keys: {sorted(samples)})')
            mask = samples[key]
            samples[key] = (mask.flatten(0, 1) if mask.ndim == 3 else mask).bool()
            if samples[key].shape[0] != inputs.shape[0]:
                raise ValueError(f'{key} has {samples[key].shape[0]} rows for {inputs.shape[0]} clips')
        return dict(inputs=(inputs.float() - self.mean) / self.std, data_samples=samples)


@MODELS.register_module()
class VideoMAEv2PretrainModel(BaseModel):
    """mmengine model around :class:`backbone.pretrain.VideoMAEv2Pretrainer` (dual-masked pre-training).

    Data flow of one training step (ViT-B recipe, per GPU)::

        collate: inputs uint8 (32, 4, 3, 16, 224, 224), masks bool (32, 4, 1568)      32 videos x 4 views
          -> VideoMAEv2PretrainPreprocessor: to the device, views folded into the batch, ImageNet normalisation
             inputs float (128, 3, 16, 224, 224), masks (128, 1568)
          -> forward(mode='loss') -> backbone.loss(...) -> {'loss': scalar}

    Args:
        arch: encoder preset (``vit_small`` ... ``vit_giant``, ``vit_test``).
        data_preprocessor: config of the preprocessor (default :class:`VideoMAEv2PretrainPreprocessor`).
        init_cfg: mmengine init config (unused by the model itself; fresh weights follow the official init).
        **kwargs: passed to :class:`~backbone.pretrain.VideoMAEv2Pretrainer` (``img_size``, ``all_frames``,
            ``decoder_depth``, ``with_cp``, ``normalize_target``, ``drop_path_rate``, ...).
    """

    def __init__(self, arch: str = 'vit_base', data_preprocessor: dict | nn.Module | None = None,
                 init_cfg: dict | None = None, **kwargs: Any):
        if data_preprocessor is None:
            data_preprocessor = dict(type='VideoMAEv2PretrainPreprocessor')
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = VideoMAEv2Pretrainer(arch, **kwargs)

    def forward(self, inputs: torch.Tensor, data_samples: dict | None = None,
                mode: Literal['loss', 'predict', 'tensor'] = 'loss') -> dict[str, torch.Tensor] | torch.Tensor:
        """
        Args:
            inputs: normalised clips (B, 3, T, H, W).
            data_samples: ``encoder_mask`` and ``decoder_mask``, bool (B, N), True = masked / dropped.
            mode: ``'loss'`` -> ``{'loss': scalar}``; ``'tensor'`` -> predictions (B, N_kept, 3*tubelet*p^2) for the
                decoder-kept tokens; ``'predict'`` -> the reconstructed clip (B, 3, T, H, W) in [0, 1] pixels
                (predictions at the decoder-kept tokens, the original elsewhere).
        """
        if data_samples is None or 'encoder_mask' not in data_samples:
            raise ValueError('pre-training needs data_samples with encoder_mask and decoder_mask')
        mask, decode_mask = data_samples['encoder_mask'], data_samples.get('decoder_mask')
        if mode == 'loss':
            return dict(loss=self.backbone.loss(inputs, mask, decode_mask))
        if mode == 'tensor':
            return self.backbone(inputs, mask, decode_mask)
        if mode == 'predict':
            return self.backbone.reconstruct(inputs, mask, decode_mask)
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")
