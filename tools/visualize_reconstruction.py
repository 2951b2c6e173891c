#!/usr/bin/env python
"""Show what a dual-masked pre-trained model reconstructs, as in the VideoMAE papers' figures.

Usage::

    python tools/visualize_reconstruction.py CONFIG CHECKPOINT VIDEO --out recon.png [--seed 0] [--scale 2]

VIDEO is a video file, or an mmaction2 video list (``.txt``), whose first video is drawn (a validation list gives a
clip the model did not train on, whatever the benchmark's file names).

One clip is sampled and masked as in training; :mod:`tasks.pretrain.reconstruction` describes the picture (one column
per frame; the crop, the encoder's view, the loss patches, the reconstruction) and its size. The printed line gives
the pixel MSE of the reconstruction at the loss patches next to that of the clip's flat mean colour. CHECKPOINT is a
``tools/train.py`` checkpoint (``backbone.*`` keys) or an official VideoMAE V2 pre-training file of the config's
architecture.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from tasks.data.annotations import AnnotationError, read_video_list
from tasks.data.video import VideoDecodeError
from tasks.pretrain.reconstruction import visualize_reconstruction


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Draw the reconstruction of one masked clip by a pre-trained model')
    parser.add_argument('config', help='the pre-training config')
    parser.add_argument('checkpoint', help='checkpoint from tools/train.py or an official pre-training file')
    parser.add_argument('video', help='video file, or a video list (.txt) whose first video is drawn')
    parser.add_argument('--out', required=True, help='PNG to write')
    parser.add_argument('--seed', type=int, default=0, help='draw of the frame window, crop and masks (default 0)')
    parser.add_argument('--scale', type=int, default=None,
                        help='integer upscaling of every tile (default: 2 for crops under 128 px, else 1)')
    parser.add_argument('--device', default='cpu', help='torch device (default cpu)')
    return parser


def main(argv: Sequence[str] | None = None) -> str:
    args = get_args_parser().parse_args(argv)
    try:
        video = first_listed_video(args.video) if args.video.endswith('.txt') else args.video
        visualize_reconstruction(args.config, args.checkpoint, video, args.out, seed=args.seed,
                                 scale=args.scale, device=args.device)
    except (VideoDecodeError, AnnotationError) as e:
        raise SystemExit(f'visualize_reconstruction: {e}') from None
    return args.out


def first_listed_video(list_file: str) -> str:
    """The first video of an mmaction2 list, relative to the list's folder.

    Raises:
        AnnotationError: an unreadable or empty list.
    """
    entries = read_video_list(list_file)
    if not entries:
        raise AnnotationError(list_file, 'no videos listed')
    return str(Path(list_file).parent / entries[0].path)


if __name__ == '__main__':
    main()
