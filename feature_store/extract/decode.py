"""Decoding ahead of the model: per-video batches of preprocessed windows from ``num_workers`` DataLoader processes
(:func:`clip_batches`) or one background thread (:func:`threaded`), so that decoding overlaps the forward passes."""
from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from tasks.data.video import VideoDecodeError, VideoReader

from .clips import iter_clip_batches, sample_windows, windows_meta
from .provenance import ExtractConfig

__all__ = ['num_cpus', 'default_batch_size', 'default_num_workers', 'threaded', 'clip_batches']


def num_cpus() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_batch_size(device: torch.device) -> int:
    """Windows per forward when none are asked for: 16 on CUDA; 4 on the CPU, where a batch's activations outgrow
    the caches (ViT-S at 224 px, 2-core EPYC: 0.42 s a clip in bf16 at batch 4, 0.49 at 16; fp32 0.78 vs 0.82)."""
    return 16 if device.type == 'cuda' else 4


def default_num_workers(device: torch.device) -> int:
    """Decoding processes when none are asked for: 2 next to a CPU model, which needs the cores itself; on CUDA this
    rank's share of the cores (``LOCAL_WORLD_SIZE`` ranks per machine) less one for the main process, at most 8.

    One worker decodes and preprocesses about 37 windows/s of a 240p video on one core (447 windows in 12.2 s,
    docs/experiments.md#earlier-benchmark-runs), fewer at 360p, while a GPU runs ViT-S/B at hundreds of clips/s; the
    cap of 8 bounds the host memory of the batches they prefetch (2 each, 154 MB at 16 x 3 x 16 x 224 x 224 float32).
    """
    if device.type != 'cuda':
        return 2
    share = num_cpus() // max(1, int(os.environ.get('LOCAL_WORLD_SIZE', '1')))
    return max(1, min(share - 1, 8))


class _ClipBatches(torch.utils.data.IterableDataset):
    """Per-video batches of preprocessed windows; worker w of W takes videos w, w + W, ... of ``videos``.

    Items (dicts, so they cross process boundaries as-is): ``{'video', 'clips', 'last', 'meta', 'decode_s'}`` for a
    batch (``meta`` with the last one; ``decode_s``: wall seconds this decoder spent making it, opening the video
    included for the first), or ``{'video', 'error'}`` when a video fails (possibly after some batches).
    """

    def __init__(self, videos: Sequence[tuple[int, str, Path]], cfg: ExtractConfig):
        self.videos = list(videos)
        self.cfg = cfg

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        mine = self.videos if info is None else self.videos[info.id::info.num_workers]
        cfg = self.cfg
        for index, vid, path in mine:
            try:
                start = time.perf_counter()
                with VideoReader(path, cfg.backend, num_threads=1) as reader:
                    sample = sample_windows(reader, cfg.clip_len, cfg.frame_interval, cfg.stride, cfg.sample_fps)
                    meta = windows_meta(vid, reader, sample, cfg.stride, cfg.sample_fps)
                    done = 0
                    for _, clips in iter_clip_batches(reader, sample, cfg.preprocess, cfg.batch_size,
                                                      chunk_size=cfg.chunk_size):
                        done += len(clips)
                        last = done == sample.num_clips
                        # timed without the wait at ``yield`` (a full queue), which is not decoding's cost
                        seconds = time.perf_counter() - start
                        yield {'video': index, 'clips': clips, 'last': last, 'meta': meta if last else None,
                               'decode_s': seconds}
                        start = time.perf_counter()
            except VideoDecodeError as e:
                yield {'video': index, 'error': e.reason}


def _identity(item: Any) -> Any:
    return item


def _worker_init(_: int) -> None:
    # Preprocessing in a worker is single-threaded: W workers x N intra-op threads would oversubscribe the CPU that
    # the model (in the main process) needs.
    torch.set_num_threads(1)


def threaded(items: Iterable[Any], depth: int) -> Iterator[Any]:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead. The model's torch kernels release the
    GIL, so decoding overlaps the forward passes without extra processes."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(end)
        except BaseException as e:  # re-raised in the consumer
            q.put(e)

    thread = threading.Thread(target=produce, name='clip-decoder', daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _pinned(items: Iterable[dict]) -> Iterator[dict]:
    for item in items:
        if 'clips' in item:
            item['clips'] = item['clips'].pin_memory()
        yield item


def clip_batches(videos: Sequence[tuple[int, str, Path]], cfg: ExtractConfig, pin_memory: bool) -> Iterator[dict]:
    """Batches of ``(index, video_id, path)`` videos, in ``cfg.num_workers`` processes (0: a background thread; None:
    2): ``{'video': index, 'clips', 'last', 'meta', 'decode_s'}`` per batch (``meta`` with the last; ``decode_s``: the
    seconds its decoder spent on it), ``{'video', 'error'}`` when a video cannot be decoded. ``pin_memory``: clips in
    page-locked memory, so that copies to the GPU are asynchronous (in the decoding thread or the DataLoader's
    pinning thread)."""
    dataset = _ClipBatches(videos, cfg)
    num_workers = 2 if cfg.num_workers is None else cfg.num_workers
    if num_workers == 0:
        return threaded(_pinned(dataset) if pin_memory else dataset, depth=2)
    workers = min(num_workers, len(videos))
    return iter(torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=workers, collate_fn=_identity, worker_init_fn=_worker_init,
        pin_memory=pin_memory, prefetch_factor=2, persistent_workers=False))


