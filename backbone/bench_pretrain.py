"""Cost of dual masking vs encoder-only masking (VideoMAE V1), side by side (V2 paper, Tables 1 and 2).

:func:`bench_pretrain` builds one :class:`~backbone.pretrain.VideoMAEv2Pretrainer` and measures, for the same clip
and the same tube encoder mask:

* ``dual``: running-cell decoder mask (ρd = 0.5): the decoder sees N_vis + N/2 tokens (944 at ViT-B 16x224);
* ``v1``: no decoder mask: the decoder reconstructs every encoder-masked token (N_vis + N·ρe = 1568).

For each: FLOPs of one forward and of forward + backward (``torch.utils.flop_counter``: matmuls, convolutions and
attention, a multiply-add counted as 2, so ``gmacs_forward`` is the number the paper calls "FLOPs"); the wall time of
a training step (forward, backward, AdamW step; median of ``steps`` after ``warmup``); and the bytes of the tensors
autograd saves for backward (the feature maps held between forward and backward, counted once per storage,
parameters excluded), which is what the paper's "Mems" column compares. On CUDA the peak allocated memory of a step
is reported as well.

Paper (ViT-B, 16x224, SSv2): 35.48 vs 25.87 GFLOPs (ratio 1.371) and 631M vs 328M feature-map memory (1.92).
The official attention is the explicit softmax, which keeps the (heads, L, L) attention map for backward; the default
``fused_attn=False`` measures that. With SDPA the map is not stored and the memory gap narrows.

Measured on this project's shared 2-core CPU (torch 2.x, fp32, batch 1, ViT-B 16x224, ``threads=1``, 3 interleaved
steps after 1 warm-up): forward 25.84 vs 35.44 GMACs (ratio 1.3715; paper 1.3715), forward+backward 151.3 vs 208.9
GFLOPs; step 3.16 vs 4.94 s (1.56x; CPU time 1.54x); saved activations 303 vs 514 MiB per clip (1.70x). With SDPA
(``fused_attn=True``) the saved activations are 196 vs 260 MiB (1.33x) and the CPU-time ratio 1.22x. With torch's
default 2 threads on the busy host, wall times were 3-4x longer and the ratio drowned in contention (0.9-1.3x).

``tools/benchmark.py pretrain`` wraps this function; ``python -m backbone.bench_pretrain`` prints the dict as JSON.
"""
from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch

from .flops import count_flops
from .masking import DualMaskGenerator
from .pretrain import VideoMAEv2Pretrainer

#: V2 paper, Tables 1 and 2 (ViT-B on SSv2, 16x224, ρe = 0.9, ρd = 0.5).
PAPER = {'gflops_v1': 35.48, 'gflops_dual': 25.87, 'mems_v1': 631.0, 'mems_dual': 328.0}
PAPER['flops_ratio'] = PAPER['gflops_v1'] / PAPER['gflops_dual']      # 1.3715
PAPER['mems_ratio'] = PAPER['mems_v1'] / PAPER['mems_dual']           # 1.924
#: Acceptance targets of the issue: FLOP ratio within 3% of the paper's, step time >= 1.3x, memory >= 1.6x.
TARGETS = {'flops_ratio_rel_tol': 0.03, 'step_time_ratio_min': 1.3, 'memory_ratio_min': 1.6}

Mode = Literal['dual', 'v1']


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def saved_activation_bytes(model: torch.nn.Module, fn: Callable[[], torch.Tensor]) -> tuple[int, torch.Tensor]:
    """Bytes of the distinct storages autograd saves for backward while ``fn()`` runs, parameters excluded.

    Saved tensors stay alive until backward, so their storages cannot be reused within the forward: counting each
    storage once gives the activation memory held at the end of the forward (views of one buffer count once).

    Returns:
        (bytes, the output of ``fn``), so the caller can run backward on it.
    """
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = fn()
    return sum(storages.values()), out


def bench_pretrain(arch: str = 'vit_base', batch: int = 1, *, img_size: int = 224, frames: int = 16,
                   encoder_ratio: float = 0.9, decoder_ratio: float = 0.5, steps: int = 2, warmup: int = 1,
                   device: str | torch.device = 'cpu', dtype: Literal['fp32', 'bf16', 'fp16'] = 'fp32',
                   fused_attn: bool = False, with_cp: bool = False, modes: tuple[Mode, ...] = ('dual', 'v1'),
                   threads: int | None = None, seed: int = 0,
                   log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure dual masking against encoder-only masking at one model size.

    Args:
        arch: pre-training preset (``vit_base`` is the paper's comparison).
        batch: clips per step; FLOPs and memory are also reported per clip.
        steps: timed training steps per mode (after ``warmup`` untimed ones). ViT-B on a 2-core CPU takes seconds
            per step; 2 is enough to see the ratio.
        dtype: ``fp32`` or autocast in ``bf16``/``fp16`` (the official recipe uses fp16 autocast on GPU).
        fused_attn: SDPA (True) or the official explicit softmax (False).
        with_cp: activation checkpointing (saved-activation bytes then shrink to the block inputs).
        threads: CPU intra-op threads for the run (restored afterwards); None keeps torch's setting. On a shared
            machine 1 thread is steadier: a parallel region waits for its slowest thread.
        log: progress callback (e.g. ``print``); silent by default.

    Returns:
        ``{'config': ..., 'modes': {mode: {...}}, 'ratios': {...}, 'paper': PAPER, 'targets': ..., 'meets': ...}``;
        per mode: ``encoder_tokens``, ``decoder_tokens``, ``gflops_forward``, ``gmacs_forward``, ``gflops_train``
        (forward + backward), ``step_time_s`` (median wall time), ``step_time_min_s``, ``step_times_s``,
        ``step_cpu_time_s`` (median CPU time of this process, less sensitive to other processes than wall time),
        ``saved_activation_mb`` (per clip, MiB) and, on CUDA, ``peak_allocated_mb``. Ratios are v1 / dual.
    """
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _bench(arch, batch, img_size, frames, encoder_ratio, decoder_ratio, steps, warmup, device, dtype,
                      fused_attn, with_cp, modes, seed, log)
    finally:
        torch.set_num_threads(previous_threads)


def _bench(arch: str, batch: int, img_size: int, frames: int, encoder_ratio: float, decoder_ratio: float, steps: int,
           warmup: int, device: str | torch.device, dtype: str, fused_attn: bool, with_cp: bool,
           modes: tuple[Mode, ...], seed: int, log: Callable[[str], None] | None) -> dict[str, Any]:
    say = log or (lambda message: None)
    device = torch.device(device)
    autocast_dtype = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}[dtype]
    torch.manual_seed(seed)
    model = VideoMAEv2Pretrainer(arch, img_size=img_size, all_frames=frames, fused_attn=fused_attn,
                                 with_cp=with_cp).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)
    video = torch.randn(batch, 3, frames, img_size, img_size, generator=torch.Generator().manual_seed(seed)).to(device)
    grid = model.grid_size
    rng = np.random.default_rng(seed)
    dual = DualMaskGenerator(grid, 'tube', encoder_ratio, 'run_cell', decoder_ratio)
    pairs = [dual(rng) for _ in range(batch)]
    mask = torch.from_numpy(np.stack([m for m, _ in pairs])).to(device)
    masks = {'dual': (mask, torch.from_numpy(np.stack([d for _, d in pairs])).to(device)), 'v1': (mask, ~mask)}

    def autocast():
        return torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)

    results: dict[str, dict[str, Any]] = {}
    for mode in modes:
        enc_mask, dec_mask = masks[mode]
        loss_fn = lambda: model.loss(video, enc_mask, dec_mask)  # noqa: E731
        entry: dict[str, Any] = {'encoder_tokens': int((~enc_mask[0]).sum()),
                                 'decoder_tokens': int((~enc_mask[0]).sum() + (~dec_mask[0]).sum())}
        with torch.no_grad(), autocast():
            flops_fwd = count_flops(lambda: model(video, enc_mask, dec_mask))
        with autocast():
            flops_train = count_flops(lambda: loss_fn().backward())
        optimizer.zero_grad(set_to_none=True)
        entry.update(gflops_forward=flops_fwd / batch / 1e9, gmacs_forward=flops_fwd / batch / 2e9,
                     gflops_train=flops_train / batch / 1e9)
        say(f'{mode}: {entry["decoder_tokens"]} decoder tokens, {entry["gmacs_forward"]:.2f} GMACs forward per clip')

        with autocast():
            saved, loss = saved_activation_bytes(model, loss_fn)
        loss.backward()
        optimizer.zero_grad(set_to_none=True)
        entry['saved_activation_mb'] = saved / batch / 2 ** 20
        say(f'{mode}: {entry["saved_activation_mb"]:.0f} MiB saved for backward per clip')

        results[mode] = entry

    # Timing: the modes alternate step by step, so a busy host (other processes on a shared machine) slows both alike
    # instead of whichever mode happened to run during the busy spell.
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    cpu_times: dict[str, list[float]] = {mode: [] for mode in modes}
    if device.type == 'cuda':
        peaks = {mode: 0 for mode in modes}
    for step in range(warmup + steps):
        for mode in modes:
            enc_mask, dec_mask = masks[mode]
            if device.type == 'cuda':
                torch.cuda.reset_peak_memory_stats(device)
            _sync(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            with autocast():
                loss = model.loss(video, enc_mask, dec_mask)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            _sync(device)
            if step >= warmup:
                times[mode].append(time.perf_counter() - start)
                cpu_times[mode].append(time.process_time() - cpu_start)
                say(f'{mode}: step {step - warmup + 1}/{steps} {times[mode][-1]:.2f} s '
                    f'({cpu_times[mode][-1]:.2f} s CPU)')
            if device.type == 'cuda':
                peaks[mode] = max(peaks[mode], torch.cuda.max_memory_allocated(device))
    for mode in modes:
        entry = results[mode]
        entry['step_times_s'] = times[mode]
        entry['step_time_s'] = statistics.median(times[mode]) if times[mode] else math.nan
        entry['step_time_min_s'] = min(times[mode], default=math.nan)
        entry['step_cpu_time_s'] = statistics.median(cpu_times[mode]) if cpu_times[mode] else math.nan
        if device.type == 'cuda':
            entry['peak_allocated_mb'] = peaks[mode] / 2 ** 20

    payload: dict[str, Any] = {
        'config': dict(arch=arch, batch=batch, frames=frames, img_size=img_size, grid=list(grid),
                       encoder_ratio=encoder_ratio, decoder_ratio=decoder_ratio, device=str(device), dtype=dtype,
                       fused_attn=fused_attn, with_cp=with_cp, steps=steps, warmup=warmup,
                       threads=torch.get_num_threads()),
        'modes': results, 'paper': PAPER, 'targets': TARGETS,
    }
    if {'dual', 'v1'} <= set(results):
        v1, dl = results['v1'], results['dual']
        ratios = {'flops_forward': v1['gflops_forward'] / dl['gflops_forward'],
                  'flops_train': v1['gflops_train'] / dl['gflops_train'],
                  'step_time': v1['step_time_s'] / dl['step_time_s'],
                  'step_time_min': v1['step_time_min_s'] / dl['step_time_min_s'],
                  'step_cpu_time': v1['step_cpu_time_s'] / dl['step_cpu_time_s'],
                  'activation_memory': v1['saved_activation_mb'] / dl['saved_activation_mb']}
        if 'peak_allocated_mb' in v1:
            ratios['peak_allocated'] = v1['peak_allocated_mb'] / dl['peak_allocated_mb']
        payload['ratios'] = ratios
        payload['meets'] = {
            'flops_ratio': abs(ratios['flops_forward'] / PAPER['flops_ratio'] - 1) <= TARGETS['flops_ratio_rel_tol'],
            'step_time_ratio': ratios['step_time'] >= TARGETS['step_time_ratio_min'],
            'memory_ratio': ratios['activation_memory'] >= TARGETS['memory_ratio_min'],
        }
    return payload


if __name__ == '__main__':  # pragma: no cover - manual run: python -m backbone.bench_pretrain
    print(json.dumps(bench_pretrain(log=lambda m: print(m, flush=True)), indent=2))
