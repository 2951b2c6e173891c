"""Speed of our feature extractor next to the official VideoMAE V2 TAD extractor loop, on one video
(``tools/benchmark.py extract``).

:func:`bench_extract` runs both with the same weights: the official loop (docs/thumos14.md#official-feature-extractor:
one decord ``get_batch`` of 16 frames per window, so every window re-decodes from the previous keyframe, ``/255``
and ``F.interpolate`` per window, batch 1, fp32, explicit attention) and ours
(:func:`~feature_store.extract.iter_clip_batches` decoding every frame once in a background thread, batched
fused-attention forwards), as ``tools/extract_features.py`` runs a video. :func:`make_bench_video` writes the
synthetic benchmark video.
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from backbone.bench import synchronize
from tasks.data.video import VideoReader, write_video

from .extract import ComputeDType, Preprocess, build_model, forward_clips, iter_clip_batches, sample_windows
from .extract.decode import num_cpus, threaded

__all__ = ['EXTRACT_TARGETS', 'bench_extract', 'default_max_windows', 'extract_summary', 'make_bench_video']


def make_bench_video(path: str | os.PathLike, seconds: float = 60.0, fps: float = 30.0, height: int = 240,
                     width: int = 320, gop: int = 250, seed: int = 0, *, block: int = 1, shift: int = 1,
                     preset: str = 'medium', threads: int = 1) -> Path:
    """A synthetic H.264 benchmark video (yuv420p, keyframe every ``gop`` frames as x264's default): a textured
    background of ``block``-px squares moving ``shift`` px a frame, with a moving bar, streamed to the encoder frame by
    frame. Coarse blocks compress to a realistic bitrate (8-px blocks: about 1 Mbit/s at 640x360), and
    ``preset='ultrafast'``, ``threads=0`` encode them fast (:func:`~tasks.data.video.write_video`)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (-(-height // block), -(-width // block), 3), dtype=np.uint8)
    background = np.ascontiguousarray(coarse.repeat(block, 0).repeat(block, 1)[:height, :width])
    n = int(round(seconds * fps))

    def frames() -> Iterator[np.ndarray]:
        for t in range(n):
            frame = np.roll(background, shift=t * shift, axis=1)
            x = (t * 4) % width
            frame[:, x:x + 16] = 255 - frame[:, x:x + 16]
            yield frame
    return write_video(path, frames(), fps, crf=23, gop=gop, preset=preset, threads=threads)


def _official_loop(model: torch.nn.Module, path: str, starts: list[int], clip_len: int, size: int,
                   device: torch.device, run_model: bool = True) -> tuple[np.ndarray | None, float, float, float]:
    """The official per-window loop; returns (features, wall s, s in get_batch + transform, s in the model)."""
    import decord

    t0 = time.perf_counter()
    vr = decord.VideoReader(path, num_threads=1, ctx=decord.cpu(0))
    decode = time.perf_counter() - t0
    model_s = 0.0
    rows = []
    for start_idx in starts:
        t = time.perf_counter()
        data = vr.get_batch(np.arange(start_idx, start_idx + clip_len)).asnumpy()
        frame = torch.from_numpy(data)  # (T, H, W, 3)
        frame_q = F.interpolate(frame.permute(3, 0, 1, 2).to(torch.float32) / 255, size=(size, size),
                                mode='bilinear', align_corners=False)  # (3, T, size, size)
        decode += time.perf_counter() - t
        if run_model:
            t = time.perf_counter()
            with torch.no_grad():
                rows.append(model.forward_features(frame_q.unsqueeze(0).to(device)).cpu().numpy())
            model_s += time.perf_counter() - t
    synchronize(device)
    return (np.vstack(rows) if rows else None), time.perf_counter() - t0, decode, model_s


class _ModelTime:
    """Seconds in the model: wall time on the CPU; on CUDA the GPU time between events around each forward, read at
    the end, so that timing does not make the host wait for every batch (which the extractor does not do)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == 'cuda'
        self.seconds = 0.0
        self.events: list[tuple[Any, Any]] = []

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self.events.append((start, end))
        else:
            t = time.perf_counter()
            yield
            self.seconds += time.perf_counter() - t

    def total(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            return self.seconds + sum(start.elapsed_time(end) for start, end in self.events) / 1000
        return self.seconds


def _ours(model: torch.nn.Module | None, path: str, clip_len: int, stride: int, size: int, batch_size: int,
          dtype: ComputeDType, max_windows: int | None) -> tuple[np.ndarray | None, float, float, float]:
    """Our loop, as the extractor runs a video (features stay on the model's device until the video ends); returns
    (features, wall s, s decoding + preprocessing in the decoding thread, s in the model)."""
    pre = Preprocess('squash', (size, size), normalize=False)
    decode = [0.0]
    t0 = time.perf_counter()
    reader = VideoReader(path, 'decord', num_threads=1)
    decode[0] += time.perf_counter() - t0
    try:
        sample = sample_windows(reader, clip_len, 1, stride)
        if max_windows is not None:
            sample = type(sample)(sample.indices[:max_windows], sample.centres[:max_windows], sample.num_frames,
                                  sample.fps, sample.clip_len, sample.frame_interval, sample.sampler)

        def timed() -> Iterator[tuple[int, torch.Tensor]]:
            it = iter_clip_batches(reader, sample, pre, batch_size)
            while True:
                t = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    return
                finally:
                    decode[0] += time.perf_counter() - t
                yield item

        rows = []
        model_time = _ModelTime(next(model.parameters()).device if model is not None else torch.device('cpu'))
        for _, clips in threaded(timed(), depth=2):
            if model is not None:
                with model_time():
                    rows.append(forward_clips(model, clips, dtype))
        feats = torch.cat(rows).cpu().numpy() if rows else None  # one copy, which waits for the GPU
    finally:
        reader.close()
    return feats, time.perf_counter() - t0, decode[0], model_time.total()


def default_max_windows(batch_size: int, device: str | torch.device) -> int | None:
    """Windows run through the models when not given: every window on CUDA; on the CPU one batch of ours, at least 8
    (the official loop takes minutes for 8 windows of vit_small at 224 px on 2 cores). A run of fewer windows than a
    batch would time a forward that the extractor never runs."""
    return None if torch.device(device).type == 'cuda' else max(batch_size, 8)


def bench_extract(video_path: str | os.PathLike, arch: str = 'vit_small', *, checkpoint: str | None = None,
                  img_size: int = 224, clip_len: int = 16, stride: int = 4, batch_size: int = 16,
                  dtype: ComputeDType = 'fp32', device: str = 'cpu', max_windows: int | None = None,
                  decode_only: bool = True) -> dict[str, Any]:
    """Time our extractor and the official loop on one video with the same weights.

    Args:
        video_path: the video (e.g. :func:`make_bench_video`, 60 s).
        arch: backbone preset (``vit_small`` by default; ``vit_test`` for a smoke run).
        checkpoint: weights for both models; ``None``: the same random init (seed 0) for both.
        img_size: squash size (224 officially).
        clip_len: frames per window.
        stride: frames between windows.
        batch_size: windows per forward in our loop (the official loop uses 1).
        dtype: our compute dtype (the official loop is always fp32).
        device: where the models run.
        max_windows: run only the first windows through the models (both loops; a big model on a small CPU); None:
            all (:func:`default_max_windows` is what ``tools/benchmark.py`` uses by default).
        decode_only: also time decoding + preprocessing of every window without the model, for both loops (what
            bounds the official loop on a GPU).

    Returns:
        A JSON-serialisable dict: video and settings, ``official`` and ``ours`` (``total_s``, ``decode_s``,
        ``model_s``, ``decode_fraction``, ``clips_per_s``), ``speedup`` (official / ours), ``max_abs_diff`` between
        the two feature arrays and, with ``decode_only``, ``decode_only_all_windows`` (``official_s``, ``ours_s``,
        ``speedup``). Our ``decode_s`` is measured in the decoding thread, where it overlaps the model, so
        ``decode_s + model_s`` can exceed ``total_s``.
    """
    path = str(video_path)
    dev = torch.device(device)
    with VideoReader(path) as reader:
        meta = reader.meta
    starts = list(range(0, meta.num_frames - clip_len + 1, stride))  # the official range(0, n - 15, 4) for 16
    run_starts = starts[:max_windows] if max_windows is not None else starts

    ours_model = build_model(arch, checkpoint=checkpoint, img_size=img_size, frames=clip_len).to(dev)
    official_model = build_model(arch, checkpoint=checkpoint, img_size=img_size, frames=clip_len,
                                 fused_attn=False).to(dev)

    # warm-up (first-call allocations, kernel selection and autocast's weight casts), not timed: each loop in the
    # dtype and batch shapes it is timed with (ours: full batches and the last, smaller one)
    shapes = {min(batch_size, len(run_starts)), len(run_starts) % batch_size} - {0}
    for b in sorted(shapes):
        forward_clips(ours_model, torch.zeros(b, 3, clip_len, img_size, img_size, device=dev), dtype)
    forward_clips(official_model, torch.zeros(1, 3, clip_len, img_size, img_size, device=dev))
    synchronize(dev)

    threads = torch.get_num_threads()
    ours_threads = min(threads, max(1, num_cpus() - 1)) if dev.type == 'cpu' else threads
    result: dict[str, Any] = {
        'video': path, 'num_frames': meta.num_frames, 'fps': meta.fps, 'height': meta.height, 'width': meta.width,
        'arch': arch, 'checkpoint': checkpoint, 'img_size': img_size, 'clip_len': clip_len, 'stride': stride,
        'windows_total': len(starts), 'windows_run': len(run_starts), 'device': str(dev),
        'official': {'batch_size': 1, 'dtype': 'fp32', 'attention': 'explicit', 'torch_threads': threads},
        'ours': {'batch_size': batch_size, 'dtype': dtype, 'attention': 'fused', 'torch_threads': ours_threads},
    }

    feats_off, total, decode, model_s = _official_loop(official_model, path, run_starts, clip_len, img_size, dev)
    result['official'].update(_times(total, decode, model_s, len(run_starts)))
    torch.set_num_threads(ours_threads)  # as tools/extract_features.py: leave a core to the decoding thread
    try:
        feats_ours, total, decode, model_s = _ours(ours_model, path, clip_len, stride, img_size, batch_size, dtype,
                                                   len(run_starts))
        result['ours'].update(_times(total, decode, model_s, len(run_starts)))
        if decode_only:
            _, ours_dec, _, _ = _ours(None, path, clip_len, stride, img_size, batch_size, dtype, None)
    finally:
        torch.set_num_threads(threads)
    result['speedup'] = result['official']['total_s'] / result['ours']['total_s']
    result['max_abs_diff'] = float(np.abs(feats_off - feats_ours).max()) if len(run_starts) else 0.0
    if decode_only:
        _, off_dec, _, _ = _official_loop(official_model, path, starts, clip_len, img_size, dev, run_model=False)
        result['decode_only_all_windows'] = {'windows': len(starts), 'official_s': off_dec, 'ours_s': ours_dec,
                                             'speedup': off_dec / ours_dec}
    return result


def _times(total: float, decode: float, model_s: float, clips: int) -> dict[str, float]:
    return {'total_s': total, 'decode_s': decode, 'model_s': model_s,
            'decode_fraction': decode / total if total > 0 else 0.0,
            'clips_per_s': clips / total if total > 0 else 0.0}


EXTRACT_TARGETS = {'speedup_min': 3.0, 'ours_decode_fraction_max': 0.10}
#: The synthetic benchmark video (docs/video_decoding.md): 30 fps, 320x240, a keyframe every 250 frames.


def extract_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The numbers of :func:`feature_store.bench_extract.bench_extract` that the targets are stated in.

    Returns:
        ``speedup``: official time / ours (``end_to_end``; ``decode_only_all_windows`` when measured);
        ``decode_fraction``: decode + preprocessing time / wall time per loop; ``meets``: each target.
    """
    speedup = {'end_to_end': result['official']['total_s'] / result['ours']['total_s']}
    if 'decode_only_all_windows' in result:
        d = result['decode_only_all_windows']
        speedup['decode_only_all_windows'] = d['official_s'] / d['ours_s']
    decode_fraction = {loop: result[loop]['decode_s'] / result[loop]['total_s'] for loop in ('official', 'ours')}
    return {
        'speedup': speedup,
        'decode_fraction': decode_fraction,
        'targets': EXTRACT_TARGETS,
        'meets': {'speedup': speedup['end_to_end'] >= EXTRACT_TARGETS['speedup_min'],
                  'ours_decode_fraction': decode_fraction['ours'] < EXTRACT_TARGETS['ours_decode_fraction_max']},
    }
