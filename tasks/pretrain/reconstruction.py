"""What a dual-masked pre-trained model reconstructs, drawn as in the VideoMAE papers' figures
(``tools/visualize_reconstruction.py``).

One clip is sampled and masked exactly as in training (the config's ``train_dataloader.dataset`` settings); the
picture has one column per frame and four rows: the crop, the encoder's view (masked patches grey), the decoder's
loss patches, and the model's predictions there, mapped back to pixels with each patch's own mean and standard
deviation. Its size in pixels, for crop side S, clip length T and integer scale k, is
``(120 + T * k*S + (T - 1) * 2) x (4 * k*S + 3 * 2)``.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from backbone import load_checkpoint
from tasks.data.files import atomic_path
from tasks.data.video.retry import sample_seeds

from .dataset import VideoMAEv2PretrainDataset, videomaev2_pretrain_collate

__all__ = ['compose', 'load_model', 'picture_size', 'reconstruction_errors', 'save_picture', 'token_mask_to_pixels',
           'visualize_reconstruction']

LABEL_WIDTH = 120  # px of row labels left of the frames
GAP = 2  # px between tiles
GREY = 0.5  # fill of the hidden patches, on the [0, 1] scale
ROWS = ('original', 'encoder input', 'decoder targets', 'reconstruction')


def picture_size(clip_len: int, crop: int, scale: int) -> tuple[int, int]:
    """(width, height) in pixels of the picture for T frames of S x S crops at integer ``scale``."""
    tile = crop * scale
    return LABEL_WIDTH + clip_len * tile + (clip_len - 1) * GAP, len(ROWS) * tile + (len(ROWS) - 1) * GAP


def token_mask_to_pixels(mask: torch.Tensor, grid: Sequence[int], patch: int, tubelet: int) -> torch.Tensor:
    """(N,) token mask in the model's order (T', H', W') -> (T, H, W) pixel mask."""
    t, h, w = grid
    m = mask.reshape(t, h, w)
    return m.repeat_interleave(tubelet, 0).repeat_interleave(patch, 1).repeat_interleave(patch, 2)


def reconstruction_errors(original: torch.Tensor, recon: torch.Tensor, where: torch.Tensor) -> tuple[float, float]:
    """Pixel MSE of the reconstruction at the loss patches, and of the clip's mean colour there (a flat picture).

    Args:
        original, recon: (3, T, S, S) clips in [0, 1].
        where: (T, S, S) bool, the pixels of the loss patches.

    Returns:
        (reconstruction MSE, flat-colour MSE); a reconstruction that shows layout beats the flat colour.
    """
    target = original[:, where]                                     # (3, P)
    flat = original.mean(dim=(1, 2, 3))[:, None]                    # (3, 1) the clip's mean colour
    return float((recon[:, where] - target).pow(2).mean()), float((flat - target).pow(2).mean())


def compose(rows: Sequence[torch.Tensor], scale: int) -> np.ndarray:
    """Rows of clips (3, T, S, S) in [0, 1] -> one (height, width - LABEL_WIDTH, 3) float image, white gaps."""
    _, frames, size, _ = rows[0].shape
    tile = size * scale
    width, height = picture_size(frames, size, scale)
    canvas = np.ones((height, width - LABEL_WIDTH, 3), dtype=np.float32)
    for r, clip in enumerate(rows):
        img = clip.clamp(0, 1).permute(1, 2, 3, 0).cpu().numpy()  # (T, S, S, 3)
        if scale > 1:
            img = img.repeat(scale, axis=1).repeat(scale, axis=2)
        top = r * (tile + GAP)
        for f in range(frames):
            left = f * (tile + GAP)
            canvas[top:top + tile, left:left + tile] = img[f]
    return canvas


def save_picture(canvas: np.ndarray, path: str, title: str = '') -> None:
    """Write the canvas with row labels at exactly ``picture_size`` pixels (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt

    height, inner = canvas.shape[:2]
    width = inner + LABEL_WIDTH
    full = np.ones((height, width, 3), dtype=np.float32)
    full[:, LABEL_WIDTH:] = canvas
    dpi = 100
    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(full, interpolation='nearest', aspect='auto', extent=(0, width, height, 0))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis('off')
    tile = (height - (len(ROWS) - 1) * GAP) / len(ROWS)
    for r, label in enumerate(ROWS):
        ax.text(LABEL_WIDTH - 6, r * (tile + GAP) + tile / 2, label, ha='right', va='center', fontsize=9)
    if title:
        ax.text(4, 2, title, ha='left', va='top', fontsize=7, color='0.3')
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)


def load_model(cfg: Any, checkpoint: str | os.PathLike, device: str = 'cpu') -> torch.nn.Module:
    """The config's model with a ``tools/train.py`` checkpoint or an official pre-training file loaded whole."""
    from mmengine.registry import MODELS, init_default_scope

    init_default_scope(cfg.get('default_scope', 'mmaction'))
    model = MODELS.build(cfg.model)
    load_checkpoint(model, checkpoint)
    return model.to(device).eval()


def _masked_sample(cfg: Any, video: str, seed: int) -> dict[str, Any]:
    """One view of ``video`` with the training data settings, its draw seeded by ``seed``."""
    data_cfg = {k: v for k, v in cfg.train_dataloader.dataset.items()
                if k not in ('type', 'ann_file', 'data_prefix', 'ann_format', 'label_file', 'video_ext')}
    data_cfg.update(num_sample=1, seed=seed)
    dataset = VideoMAEv2PretrainDataset(videos=[video], **data_cfg)
    generator, rng = sample_seeds(seed, 0, 0)
    frames = dataset.load_clip(dataset.records[0], generator)
    return dict(dataset.views(frames, generator, rng), index=0, failed=())


def visualize_reconstruction(config: str, checkpoint: str, video: str, out: str, *, seed: int = 0,
                             scale: int | None = None, device: str = 'cpu') -> str:
    """Draw the reconstruction of one masked clip of ``video`` to the PNG ``out``; print and return a summary line.

    Args:
        config: the pre-training config.
        checkpoint: a ``tools/train.py`` checkpoint or an official pre-training file.
        seed: the draw of the frame window, crop and masks.
        scale: integer upscaling of every tile (default: 2 for crops under 128 px, else 1).

    Raises:
        VideoDecodeError: the video cannot be decoded.
    """
    from mmengine.config import Config

    cfg = Config.fromfile(config)
    model = load_model(cfg, checkpoint, device)
    sample = _masked_sample(cfg, video, seed)
    with torch.no_grad():
        data = model.data_preprocessor(videomaev2_pretrain_collate([sample]))
        clip, samples = data['inputs'], data['data_samples']
        enc, dec = samples['encoder_mask'], samples['decoder_mask']
        loss = float(model(clip, samples, mode='loss')['loss'])
        recon = model(clip, samples, mode='predict')[0].cpu()  # (3, T, S, S) in [0, 1]

    pretrainer = model.backbone
    grid = pretrainer.encoder.patch_embed.grid(clip)
    patch, tubelet = pretrainer.patch_size, pretrainer.tubelet_size
    visible = token_mask_to_pixels((~enc[0]).cpu(), grid, patch, tubelet)  # (T, S, S) True: the encoder sees it
    target = token_mask_to_pixels((enc[0] & ~dec[0]).cpu(), grid, patch, tubelet)  # where the loss applies
    original = sample['inputs'][0].float() / 255  # (3, T, S, S)
    grey = torch.full_like(original, GREY)
    rows = [original, torch.where(visible, original, grey), torch.where(target, original, grey),
            torch.where(target, recon, grey)]
    size = original.shape[-1]
    scale = scale or (2 if size < 128 else 1)
    pixel_mse, flat_mse = reconstruction_errors(original, recon, target)
    title = (f'{video}: {int((~enc[0]).sum())} of {enc.shape[1]} tokens visible to the encoder; loss {loss:.4f}; '
             f'pixel MSE {pixel_mse:.4f} (the clip\'s flat mean colour: {flat_mse:.4f})')
    save_picture(compose(rows, scale), out, title)
    width, height = picture_size(original.shape[1], size, scale)
    summary = (f'wrote {out} ({width}x{height} px); loss on this clip {loss:.4f}; pixel MSE of the reconstruction '
               f'{pixel_mse:.4f}, of the clip\'s flat mean colour {flat_mse:.4f}')
    print(summary, flush=True)
    return summary
