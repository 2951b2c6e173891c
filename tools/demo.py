"""The main job behind `make demo`.

For now: write a generated video, decode a Kinetics-style test clip from it with the shared video layer, run a
VideoMAE V2 backbone on it and print the feature shape and throughput. Later issues extend this into the full run on
the synthetic benchmark (pre-training, feature store, classification, AVA, THUMOS14).

    python tools/demo.py [--arch vit_small] [--checkpoint FILE] [--device cpu|cuda] [--work-dir work_dirs/demo]
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from backbone import ARCH_PRESETS, CheckpointError, VideoMAEv2ViT, load_checkpoint
from tasks.video import VideoDecodeError, VideoReader, dense_sample, write_video
from tasks.video import transforms as T


def make_demo_video(path: Path, seconds: float = 4.0, fps: int = 30, size: tuple[int, int] = (240, 320)) -> Path:
    """A textured disc moving left to right over a textured background, H.264 (T, 240, 320, 3)."""
    rng = np.random.default_rng(0)
    height, width = size
    background = (rng.random((height, width, 3)) * 80 + 60).astype(np.uint8)
    texture = (rng.random((height, width, 3)) * 120 + 120).astype(np.uint8)
    yy, xx = np.mgrid[:height, :width]
    num = int(seconds * fps)

    def frames():
        for t in range(num):
            cx = 40 + (width - 80) * t / max(num - 1, 1)
            cy = height / 2 + 30 * math.sin(2 * math.pi * t / num)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < 35 ** 2
            frame = background.copy()
            frame[disc] = texture[disc]
            yield frame

    return write_video(path, frames(), fps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--arch', default='vit_small', choices=sorted(ARCH_PRESETS))
    parser.add_argument('--checkpoint', help='optional weights in any supported layout (official, mmaction2, HF)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--repeats', type=int, default=3, help='timed forward passes per dtype')
    parser.add_argument('--work-dir', type=Path, default=Path('work_dirs/demo'))
    args = parser.parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)

    video = args.work_dir / 'demo_clip.mp4'
    if not video.exists():
        make_demo_video(video)
    try:
        with VideoReader(video) as reader:
            # Kinetics test protocol for one view: 16 frames at interval 4, short side 224, centre crop 224.
            sample = dense_sample(reader.num_frames, clip_len=16, frame_interval=4, num_clips=1, test_mode=True,
                                  fps=reader.fps)
            frames = reader.get_frames(sample.indices[0])  # (16, H, W, 3) uint8
            fps, num_frames = reader.fps, reader.num_frames
    except VideoDecodeError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    clip = T.normalize(T.center_crop(T.short_side_resize(frames, 224), 224))  # (16, 3, 224, 224)
    clip = T.to_cthw(clip).unsqueeze(0).to(args.device)  # (1, 3, 16, 224, 224)
    print(f'video {video}: {num_frames} frames at {fps:.1f} fps; clip frames {sample.indices[0].tolist()}')

    model = VideoMAEv2ViT(args.arch).eval().to(args.device)
    if args.checkpoint:
        try:
            result = load_checkpoint(model, args.checkpoint)
        except CheckpointError as err:
            print(f'error: {err}', file=sys.stderr)
            return 2
        print(f'loaded {args.checkpoint} ({result.layout} layout); fresh: {result.missing or "none"}')
    else:
        print('no --checkpoint given: random weights (official weights cannot be downloaded here)')
    print(f'{args.arch}: {model.num_params():,} parameters without head, {math.prod(model.grid_size)} tokens per clip')

    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        with torch.inference_mode(), torch.autocast(clip.device.type, dtype=dtype, enabled=dtype != torch.float32):
            features = model.forward_features(clip)  # warm-up, and the shape to report
            if clip.device.type == 'cuda':
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(args.repeats):
                model.forward_features(clip)
            if clip.device.type == 'cuda':
                torch.cuda.synchronize()
            seconds = (time.perf_counter() - start) / args.repeats
        rows.append((str(dtype).removeprefix('torch.'), tuple(features.shape), 1.0 / seconds, 1000 * seconds))
    print(f'\n{"dtype":<10}{"feature shape":<16}{"clips/s":>9}{"ms/clip":>10}   (device {args.device})')
    for name, shape, rate, ms in rows:
        print(f'{name:<10}{str(shape):<16}{rate:>9.2f}{ms:>10.1f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
