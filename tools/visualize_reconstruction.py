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
pre-training file of the config's architecture. The library behind it is
:func:`tasks.pretrain.reconstruction.visualize_reconstruction`.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from tasks.data.video import VideoDecodeError
from tasks.pretrain.reconstruction import visualize_reconstruction


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


def main(argv: Sequence[str] | None = None) -> str:
    args = get_args_parser().parse_args(argv)
    try:
        visualize_reconstruction(args.config, args.checkpoint, args.video, args.out, seed=args.seed,
                                 scale=args.scale, device=args.device)
    except VideoDecodeError as e:
        raise SystemExit(f'visualize_reconstruction: {e}') from None
    return args.out


if __name__ == '__main__':
    main()
