"""Cost of dual masking vs encoder-only masking (VideoMAE V1) on one model, same clip, same encoder mask: forward
FLOPs, training-step time and the activations saved for backward (docs/pretraining.md#cost-of-decoder-masking).

:func:`bench_pretrain` returns plain dicts; ``tools/benchmark.py pretrain`` prints them (:func:`pretrain_summary`,
:func:`format_pretrain_report`) and writes them, and ``python -m backbone.bench_pretrain`` prints the dict as JSON.
"""
from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Literal

import numpy as np
import torch

from .bench import machine_line, synchronize
from .flops import count_flops
from .masking import DualMaskGenerator
from .pretrain import VideoMAEv2Pretrainer
from .tables import records_table

__all__ = ['PAPER', 'PAPER_STEP_TIME_RATIO', 'TARGETS', 'bench_pretrain', 'format_pretrain_report',
           'pretrain_summary', 'saved_activation_bytes']

#: V2 paper, Tables 1 and 2 (ViT-B on SSv2, 16x224, ρe = 0.9, ρd = 0.5): multiply-adds in G and feature-map memory.
PAPER = {'gflops_v1': 35.48, 'gflops_dual': 25.87, 'mems_v1': 631.0, 'mems_dual': 328.0}
PAPER['flops_ratio'] = PAPER['gflops_v1'] / PAPER['gflops_dual']      # 1.3715
PAPER['mems_ratio'] = PAPER['mems_v1'] / PAPER['mems_dual']           # 1.924
#: V2 paper Table 2: the whole pre-training of ViT-B on SSv2 takes 28.4 h (encoder-only) vs 15.9 h (dual), 64 GPUs.
PAPER_STEP_TIME_RATIO = 28.4 / 15.9
#: Targets: FLOP ratio within 3% of the paper's, step time >= 1.3x, saved activations >= 1.6x.
TARGETS = {'flops_ratio_rel_tol': 0.03, 'step_time_ratio_min': 1.3, 'memory_ratio_min': 1.6}

Mode = Literal['dual', 'v1']
Masks = dict[str, tuple[torch.Tensor, torch.Tensor]]


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
        batch: clips per step; FLOPs and memory are reported per clip.
        steps: timed training steps per mode (after ``warmup`` untimed ones), the modes alternating step by step.
        dtype: ``fp32`` or autocast in ``bf16``/``fp16`` (the official recipe uses fp16 autocast on GPU).
        fused_attn: SDPA (True) or the official explicit softmax (False), which keeps the attention map for backward.
        with_cp: activation checkpointing (saved-activation bytes then shrink to the block inputs).
        threads: CPU intra-op threads for the run (restored afterwards); None keeps torch's setting. On a shared
            machine 1 thread is steadier: a parallel region waits for its slowest thread.
        log: progress callback (e.g. ``print``); silent by default.

    Returns:
        ``{'config': ..., 'modes': {mode: {...}}, 'ratios': {...}, 'paper': PAPER, 'targets': ..., 'meets': ...}``;
        per mode: ``encoder_tokens``, ``decoder_tokens``, ``gflops_forward``, ``gmacs_forward`` (= GFLOPs / 2, what
        the paper calls "FLOPs"), ``gflops_train`` (forward + backward), ``step_time_s`` (median wall time),
        ``step_time_min_s``, ``step_times_s``, ``step_cpu_time_s`` (median CPU time of this process, less sensitive
        to other processes than wall time), ``saved_activation_mb`` (per clip, MiB) and, on CUDA,
        ``peak_allocated_mb``. Ratios are v1 / dual.
    """
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        say = log or (lambda message: None)
        device = torch.device(device)
        autocast_dtype = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}[dtype]

        def autocast() -> AbstractContextManager:
            return torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)

        torch.manual_seed(seed)
        model = VideoMAEv2Pretrainer(arch, img_size=img_size, all_frames=frames, fused_attn=fused_attn,
                                     with_cp=with_cp).to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)
        video = torch.randn(batch, 3, frames, img_size, img_size,
                            generator=torch.Generator().manual_seed(seed)).to(device)
        masks = _masks(model.grid_size, batch, encoder_ratio, decoder_ratio, seed, device)
        results = {}
        for mode in modes:
            results[mode] = entry = _costs(model, optimizer, video, *masks[mode], autocast)
            say(f"{mode}: {entry['decoder_tokens']} decoder tokens, {entry['gmacs_forward']:.2f} GMACs forward and "
                f"{entry['saved_activation_mb']:.0f} MiB saved for backward per clip")
        _time_steps(model, optimizer, video, {mode: masks[mode] for mode in modes}, results, warmup=warmup,
                    steps=steps, device=device, autocast=autocast, say=say)
        payload: dict[str, Any] = {
            'config': dict(arch=arch, batch=batch, frames=frames, img_size=img_size, grid=list(model.grid_size),
                           encoder_ratio=encoder_ratio, decoder_ratio=decoder_ratio, device=str(device), dtype=dtype,
                           fused_attn=fused_attn, with_cp=with_cp, steps=steps, warmup=warmup,
                           threads=torch.get_num_threads()),
            'modes': results, 'paper': PAPER, 'targets': TARGETS,
        }
        if {'dual', 'v1'} <= set(results):
            payload['ratios'] = _ratios(results['v1'], results['dual'])
            payload['meets'] = _meets(payload['ratios'])
        return payload
    finally:
        torch.set_num_threads(previous_threads)


def _masks(grid: tuple[int, int, int], batch: int, encoder_ratio: float, decoder_ratio: float, seed: int,
           device: torch.device) -> Masks:
    """(encoder mask, decoder mask) per mode, (B, N) bool, True = hidden: one tube encoder mask for both modes;
    ``dual`` hides half of the decoder's tokens by running cells, ``v1`` gives the decoder every masked token."""
    rng = np.random.default_rng(seed)
    dual = DualMaskGenerator(grid, 'tube', encoder_ratio, 'run_cell', decoder_ratio)
    pairs = [dual(rng) for _ in range(batch)]
    mask = torch.from_numpy(np.stack([m for m, _ in pairs])).to(device)
    return {'dual': (mask, torch.from_numpy(np.stack([d for _, d in pairs])).to(device)), 'v1': (mask, ~mask)}


def _costs(model: VideoMAEv2Pretrainer, optimizer: torch.optim.Optimizer, video: torch.Tensor,
           enc_mask: torch.Tensor, dec_mask: torch.Tensor,
           autocast: Callable[[], AbstractContextManager]) -> dict[str, Any]:
    """Token counts, forward and training FLOPs per clip, and the activations saved for backward per clip."""
    batch = video.shape[0]
    entry: dict[str, Any] = {'encoder_tokens': int((~enc_mask[0]).sum()),
                             'decoder_tokens': int((~enc_mask[0]).sum() + (~dec_mask[0]).sum())}
    with torch.no_grad(), autocast():
        flops_fwd = count_flops(lambda: model(video, enc_mask, dec_mask))
    with autocast():
        flops_train = count_flops(lambda: model.loss(video, enc_mask, dec_mask).backward())
    optimizer.zero_grad(set_to_none=True)
    entry.update(gflops_forward=flops_fwd / batch / 1e9, gmacs_forward=flops_fwd / batch / 2e9,
                 gflops_train=flops_train / batch / 1e9)
    with autocast():
        saved, loss = saved_activation_bytes(model, lambda: model.loss(video, enc_mask, dec_mask))
    loss.backward()
    optimizer.zero_grad(set_to_none=True)
    entry['saved_activation_mb'] = saved / batch / 2 ** 20
    return entry


def _time_steps(model: VideoMAEv2Pretrainer, optimizer: torch.optim.Optimizer, video: torch.Tensor, masks: Masks,
                results: dict[str, dict[str, Any]], *, warmup: int, steps: int, device: torch.device,
                autocast: Callable[[], AbstractContextManager], say: Callable[[str], None]) -> None:
    """Add the step times (and on CUDA the peak allocated memory) of each mode to ``results``.

    The modes alternate step by step, so a busy host slows both alike instead of whichever mode happened to run
    during the busy spell.
    """
    times: dict[str, list[float]] = {mode: [] for mode in masks}
    cpu_times: dict[str, list[float]] = {mode: [] for mode in masks}
    peaks = {mode: 0 for mode in masks}
    for step in range(warmup + steps):
        for mode, (enc_mask, dec_mask) in masks.items():
            if device.type == 'cuda':
                torch.cuda.reset_peak_memory_stats(device)
            synchronize(device)
            start, cpu_start = time.perf_counter(), time.process_time()
            with autocast():
                loss = model.loss(video, enc_mask, dec_mask)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            synchronize(device)
            if step >= warmup:
                times[mode].append(time.perf_counter() - start)
                cpu_times[mode].append(time.process_time() - cpu_start)
                say(f'{mode}: step {step - warmup + 1}/{steps} {times[mode][-1]:.2f} s '
                    f'({cpu_times[mode][-1]:.2f} s CPU)')
            if device.type == 'cuda':
                peaks[mode] = max(peaks[mode], torch.cuda.max_memory_allocated(device))
    for mode, entry in results.items():
        entry['step_times_s'] = times[mode]
        entry['step_time_s'] = statistics.median(times[mode]) if times[mode] else math.nan
        entry['step_time_min_s'] = min(times[mode], default=math.nan)
        entry['step_cpu_time_s'] = statistics.median(cpu_times[mode]) if cpu_times[mode] else math.nan
        if device.type == 'cuda':
            entry['peak_allocated_mb'] = peaks[mode] / 2 ** 20


def _ratios(v1: dict[str, Any], dual: dict[str, Any]) -> dict[str, float]:
    """v1 / dual for every cost."""
    ratios = {'flops_forward': v1['gflops_forward'] / dual['gflops_forward'],
              'flops_train': v1['gflops_train'] / dual['gflops_train'],
              'step_time': v1['step_time_s'] / dual['step_time_s'],
              'step_time_min': v1['step_time_min_s'] / dual['step_time_min_s'],
              'step_cpu_time': v1['step_cpu_time_s'] / dual['step_cpu_time_s'],
              'activation_memory': v1['saved_activation_mb'] / dual['saved_activation_mb']}
    if 'peak_allocated_mb' in v1:
        ratios['peak_allocated'] = v1['peak_allocated_mb'] / dual['peak_allocated_mb']
    return ratios


def _meets(ratios: dict[str, float]) -> dict[str, bool]:
    """Each of :data:`TARGETS`, met or not."""
    return {
        'flops_ratio': abs(ratios['flops_forward'] / PAPER['flops_ratio'] - 1) <= TARGETS['flops_ratio_rel_tol'],
        'step_time_ratio': ratios['step_time'] >= TARGETS['step_time_ratio_min'],
        'memory_ratio': ratios['activation_memory'] >= TARGETS['memory_ratio_min'],
    }


def pretrain_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of ``tools/benchmark.py pretrain``: :func:`bench_pretrain`'s result with the three headline
    ratios (v1 / dual) on top, ``flop_ratio``, ``time_ratio`` and ``memory_ratio``."""
    ratios = result['ratios']
    return {'config': result['config'], 'flop_ratio': ratios['flops_forward'], 'time_ratio': ratios['step_time'],
            'memory_ratio': ratios['activation_memory'], 'ratios': ratios, 'meets': result['meets'],
            'targets': result['targets'], 'paper': result['paper'], 'modes': result['modes']}


PRETRAIN_COLUMNS = [
    ('mode', 'mode', 's'), ('dec. tokens', 'decoder_tokens', 'd'), ('GFLOPs fwd', 'gflops_forward', '.2f'),
    ('GMACs fwd', 'gmacs_forward', '.2f'), ('GFLOPs fwd+bwd', 'gflops_train', '.1f'), ('step s', 'step_time_s', '.2f'),
    ('CPU s', 'step_cpu_time_s', '.2f'), ('saved act. MiB', 'saved_activation_mb', '.0f'),
]
RATIO_COLUMNS = [
    ('v1/dual', 'what', 's'), ('ours', 'ours', '.4f'), ('paper', 'paper', '.4f'), ('target', 'target', 's'),
    ('', 'verdict', 's'),
]


def format_pretrain_report(payload: dict[str, Any]) -> str:
    """The text report of ``tools/benchmark.py pretrain``: settings, machine, the costs per mode next to the paper's,
    and the v1/dual ratios against their targets."""
    cfg, modes, paper = payload['config'], payload['modes'], payload['paper']
    targets, meets, ratios = payload['targets'], payload['meets'], payload['ratios']
    attention = 'SDPA' if cfg['fused_attn'] else 'explicit softmax'
    rows = [{'mode': 'dual (ours)', **modes['dual']}, {'mode': 'v1 (ours)', **modes['v1']},
            {'mode': 'dual (paper)', 'gmacs_forward': paper['gflops_dual'], 'saved_activation_mb': paper['mems_dual']},
            {'mode': 'v1 (paper)', 'gmacs_forward': paper['gflops_v1'], 'saved_activation_mb': paper['mems_v1']}]
    columns = list(PRETRAIN_COLUMNS)
    if 'peak_allocated_mb' in modes['dual']:
        columns.append(('peak alloc. MiB', 'peak_allocated_mb', '.0f'))

    def verdict(key: str) -> str:
        return 'ok' if meets[key] else 'MISSED'

    ratio_rows = [
        {'what': 'FLOPs fwd', 'ours': payload['flop_ratio'], 'paper': paper['flops_ratio'],
         'target': f"within {100 * targets['flops_ratio_rel_tol']:g}% of paper", 'verdict': verdict('flops_ratio')},
        {'what': 'FLOPs fwd+bwd', 'ours': ratios['flops_train']},
        {'what': 'step time', 'ours': payload['time_ratio'], 'paper': PAPER_STEP_TIME_RATIO,
         'target': f">= {targets['step_time_ratio_min']:g}", 'verdict': verdict('step_time_ratio')},
        {'what': 'step CPU time', 'ours': ratios['step_cpu_time']},
        {'what': 'saved activations', 'ours': payload['memory_ratio'], 'paper': paper['mems_ratio'],
         'target': f">= {targets['memory_ratio_min']:g}", 'verdict': verdict('memory_ratio')},
    ]
    if 'peak_allocated' in ratios:
        ratio_rows.append({'what': 'peak allocated', 'ours': ratios['peak_allocated']})
    return '\n'.join([
        f"pretrain benchmark: {cfg['arch']}, {cfg['frames']}x{cfg['img_size']}px, batch {cfg['batch']}, "
        f"{cfg['dtype']}, {attention} attention{', checkpointing' if cfg['with_cp'] else ''}; encoder mask "
        f"{cfg['encoder_ratio']:g}, decoder mask {cfg['decoder_ratio']:g}; median of {cfg['steps']} alternating "
        f"steps after {cfg['warmup']} warm-up; device {cfg['device']}, {cfg['threads']} threads",
        machine_line(payload['machine']),
        records_table(rows, columns),
        'GFLOPs: torch.utils.flop_counter, a multiply-add = 2 FLOPs, so GMACs = GFLOPs / 2 is what the paper calls '
        '"FLOPs"; step: median wall time of forward + backward + AdamW; saved act.: tensors autograd keeps for '
        'backward, per clip (the paper\'s "Mems", feature-map memory, printed as "M")',
        records_table(ratio_rows, RATIO_COLUMNS),
        'paper step time: whole pre-training, 28.4 h vs 15.9 h on 64 GPUs (Table 2)',
    ])


if __name__ == '__main__':  # pragma: no cover - manual run: python -m backbone.bench_pretrain
    print(json.dumps(bench_pretrain(log=lambda m: print(m, flush=True)), indent=2))
