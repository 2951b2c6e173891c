#!/usr/bin/env python
"""Show what a dual-masked pre-trained model reconstructs, as in the VideoMAE papers' figures.

Usage::

    python tools/visualize_reconstruction.py CONFIG CHECKPOINT VIDEO --out recon.png [--seed 0] [--scale 2]

One clip is sampled and masked exactly as in training (the config's ``train_dataloader.dataset`` settings: frame
window, multi-scale crop, tube and running-cell masks; ``--seed`` picks the draw) and the picture has one column per
frame and four rows:

1. **original**: the crop the model gets;
2. **encoder input**: the same with the encoder-masked patches grey (about 10% of the patches stay);
3. **decoder targets**: the patches the loss covers, decoder-kept *and* encoder-masked (the rest grey);
4. **reconstruction**: the model's predictions at those patches, mapped back to pixels with each patch's own
   per-channel mean and standard deviation (the targets are normalised per patch, so the prediction carries no
   brightness or contrast of its own).

The title and the printed line give the pixel MSE of the reconstruction at the loss patches next to that of the
clip's flat mean colour: a reconstruction that shows where things are beats the flat colour.

Picture size in pixels, with S the crop side, T the clip length and ``--scale`` k::

    width  = 120 + T * k*S + (T - 1) * 2
    height = 4 * k*S + 3 * 2

CHECKPOINT is a checkpoint written by ``tools/train.py`` (``backbone.*`` keys) or an official VideoMAE V2
pre-training file of the config's architecture.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import torch

LABEL_WIDTH = 120  # px of row labels left of the frames
GAP = 2  # px between tiles
GREY = 0.5  # fill of the hidden patches, on the [0, 1] scale
ROWS = ('original', 'encoder input', 'decoder targets', 'reconstruction')


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Draw the reconstruction of one masked clip by a pre-trained model')
    parser.add_argument('config', help='the pre-training config')
    parser.add_argument('checkpoint', help='checkpoint from tools/train.py or an official pre-training file')
    parser.add_argument('video', help='video file')
    parser.add_argument('--out', required=True, help='PNG to write')
    parser.add_argument('--seed', type=int, default=0, help='draw of the frame window, crop and masks (default 0)')
    parser.add_argument('--scale', type=int, default=None,
                        help='integer upscaling of every tile (default: 2 for crops under 128 px, else 1)')
    parser.add_argument('--device', default='cpu', help='torch device (default cpu)')
    return parser


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
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def load_model(cfg, checkpoint: str, device: str):
    """Build the config's model and load a tools/train.py or official pre-training checkpoint into it."""
    from mmengine.registry import MODELS, init_default_scope

    from backbone.pretrain import load_pretrain_checkpoint
    from tasks.engine.checkpoint import load_trusted_checkpoint

    init_default_scope(cfg.get('default_scope', 'mmaction'))
    model = MODELS.build(cfg.model)
    try:
        ckpt = load_trusted_checkpoint(checkpoint)
    except Exception:  # e.g. safetensors or a missing file: the official-layout loader below reads it or says why
        ckpt = None
    state = ckpt.get('state_dict') if isinstance(ckpt, dict) else None
    if state is not None and any(k.startswith('backbone.') for k in state):
        model.load_state_dict(state, strict=True)
    else:
        load_pretrain_checkpoint(model.backbone, checkpoint)
    return model.to(device).eval()


def main(argv: Sequence[str] | None = None) -> str:
    args = get_args_parser().parse_args(argv)
    from mmengine.config import Config

    from tasks.pretrain import VideoMAEv2PretrainDataset, sample_seeds, videomaev2_pretrain_collate
    from tasks.data.video import VideoDecodeError

    cfg = Config.fromfile(args.config)
    model = load_model(cfg, args.checkpoint, args.device)

    # The training data settings, one view of the given video, seeded by --seed.
    data_cfg = {k: v for k, v in cfg.train_dataloader.dataset.items()
                if k not in ('type', 'ann_file', 'data_prefix', 'ann_format', 'label_file', 'video_ext')}
    data_cfg.update(num_sample=1, seed=args.seed)
    dataset = VideoMAEv2PretrainDataset(videos=[args.video], **data_cfg)
    generator, rng = sample_seeds(args.seed, 0, 0)
    try:
        frames = dataset.load_clip(dataset.records[0], generator)
    except VideoDecodeError as e:
        raise SystemExit(f'visualize_reconstruction: {e}') from None
    sample = dict(dataset.views(frames, generator, rng), index=0, failed=())
    with torch.no_grad():
        data = model.data_preprocessor(videomaev2_pretrain_collate([sample]))
        video, samples = data['inputs'], data['data_samples']
        enc, dec = samples['encoder_mask'], samples['decoder_mask']
        loss = float(model(video, samples, mode='loss')['loss'])
        recon = model(video, samples, mode='predict')[0]  # (3, T, S, S) in [0, 1]

    pretrainer = model.backbone
    grid = pretrainer.encoder.patch_embed.grid(video)
    patch, tubelet = pretrainer.patch_size, pretrainer.tubelet_size
    visible = token_mask_to_pixels((~enc[0]).cpu(), grid, patch, tubelet)  # (T, S, S) True: the encoder sees it
    target = token_mask_to_pixels((enc[0] & ~dec[0]).cpu(), grid, patch, tubelet)  # where the loss applies
    original = sample['inputs'][0].float() / 255  # (3, T, S, S)
    grey = torch.full_like(original, GREY)
    rows = [original, torch.where(visible, original, grey), torch.where(target, original, grey),
            torch.where(target, recon.cpu(), grey)]
    size = original.shape[-1]
    scale = args.scale or (2 if size < 128 else 1)
    pixel_mse, flat_mse = reconstruction_errors(original, recon.cpu(), target)
    title = (f'{args.video}: {int((~enc[0]).sum())} of {enc.shape[1]} tokens visible to the encoder; loss {loss:.4f}; '
             f'pixel MSE {pixel_mse:.4f} (the clip\'s flat mean colour: {flat_mse:.4f})')
    save_picture(compose(rows, scale), args.out, title)
    width, height = picture_size(original.shape[1], size, scale)
    print(f'wrote {args.out} ({width}x{height} px); loss on this clip {loss:.4f}; pixel MSE of the reconstruction '
          f'{pixel_mse:.4f}, of the clip\'s flat mean colour {flat_mse:.4f}')
    return args.out


if __name__ == '__main__':
    main()
