"""Inference speed of :class:`~backbone.VideoMAEv2ViT` next to transformers' ``VideoMAEModel`` (SDPA attention),
same size, same weights, same dtype, and the timing helpers every benchmark of the suite shares.

:func:`bench_backbone` returns plain dicts; ``tools/benchmark.py backbone`` prints and writes them.
"""
from __future__ import annotations

import copy
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from .flops import count_flops
from .videomaev2 import VideoMAEv2ViT

__all__ = ['DTYPES', 'IMPLS', 'Stats', 'bench_backbone', 'cpu_model', 'hf_reference', 'machine_info',
           'matmul_peak_gflops', 'profile_table', 'summarize', 'synchronize', 'time_call']

DTYPES: dict[str, torch.dtype] = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}

#: What each implementation runs. Both stop at the last block's tokens: HF ``VideoMAEModel`` with
#: ``use_mean_pooling=True`` has no final norm (the pooling norm ``fc_norm`` lives in the classification model), and
#: ``VideoMAEv2ViT.forward_tokens`` is patch embed + pos embed + blocks, without pooling or ``fc_norm``.
IMPLS = {
    'ours': 'backbone.VideoMAEv2ViT.forward_tokens',
    'hf_sdpa': "transformers.VideoMAEModel(attn_implementation='sdpa').last_hidden_state",
}


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels; CUDA runs asynchronously, so a timer read without this measures only the launch."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall-clock seconds of one ``fn()``, synchronising the device before and after."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


@dataclass
class Stats:
    """Summary of repeated throughput measurements (items per second)."""

    median: float
    minimum: float
    maximum: float

    @property
    def spread_pct(self) -> float:
        """Half the min-max range as a percentage of the median (the '+-' in the table)."""
        return 50.0 * (self.maximum - self.minimum) / self.median


def summarize(values: Sequence[float]) -> Stats:
    """Median and range; the median is robust to the odd repeat slowed down by another process."""
    if not values:
        raise ValueError('no measurements to summarise')
    return Stats(statistics.median(values), min(values), max(values))


def matmul_peak_gflops(dtype: torch.dtype, device: torch.device, size: int, repeats: int = 5) -> float:
    """Measured matmul peak: GFLOP/s of the fastest of ``repeats`` (size x size) @ (size x size) products.

    What the BLAS attains on this machine with the current thread count, not the vendor's theoretical peak, so
    "fraction of peak" says how close a model gets to a large dense GEMM.
    """
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    with torch.inference_mode():
        torch.mm(a, b, out=out)  # warm-up: the first call picks kernels and allocates workspace
        best = min(time_call(lambda: torch.mm(a, b, out=out), device) for _ in range(repeats))
    return 2.0 * size ** 3 / best / 1e9


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as fh:
            for line in fh:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict[str, Any]:
    """Where the numbers came from: CPU/GPU, core and thread counts, load average, library versions."""
    info: dict[str, Any] = {
        'platform': platform.platform(),
        'python': platform.python_version(),
        'cpu': cpu_model(),
        'cpu_count': os.cpu_count(),
        'torch_threads': torch.get_num_threads(),
        'torch': torch.__version__,
        'cpu_capability': torch.backends.cpu.get_cpu_capability(),
        'mkldnn': torch.backends.mkldnn.is_available(),
        'device': str(device),
    }
    if hasattr(os, 'getloadavg'):
        # Other processes on the machine are the main source of noise; record how busy it was.
        info['loadavg_1m_at_start'] = round(os.getloadavg()[0], 2)
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
        info['cuda'] = torch.version.cuda
    try:
        import transformers
        info['transformers'] = transformers.__version__
    except ImportError:
        pass
    return info


def hf_reference(ours: VideoMAEv2ViT) -> nn.Module:
    """transformers ``VideoMAEModel`` of the same size as ``ours``, SDPA attention, loaded with ``ours``' weights.

    Raises:
        ImportError: transformers is not installed.
        RuntimeError: the converted state dict does not account for the HF model exactly.
    """
    try:
        from transformers.models.videomae import VideoMAEConfig, VideoMAEModel
    except ImportError as exc:  # an optional (test) dependency of the suite
        raise ImportError("the backbone benchmark needs transformers as the reference: pip install -e '.[test]'"
                          ) from exc
    from . import convert_state_dict

    config = VideoMAEConfig(
        image_size=ours.grid_size[1] * ours.patch_size, patch_size=ours.patch_size, num_channels=3,
        num_frames=ours.grid_size[0] * ours.tubelet_size, tubelet_size=ours.tubelet_size,
        hidden_size=ours.embed_dim, num_hidden_layers=ours.depth, num_attention_heads=ours.num_heads,
        intermediate_size=ours.blocks[0].mlp.fc1.out_features, hidden_act='gelu', hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, layer_norm_eps=1e-6, qkv_bias=True, use_mean_pooling=True,
        attn_implementation='sdpa')
    reference = VideoMAEModel(config)
    if reference.config._attn_implementation != 'sdpa':
        raise RuntimeError(f'transformers picked attention {reference.config._attn_implementation!r}, not sdpa')
    state = {}
    for key, value in convert_state_dict(ours.state_dict(), 'hf').items():
        if key.startswith('fc_norm.'):
            continue  # the pooling norm belongs to VideoMAEForVideoClassification, not to the encoder
        if not key.startswith('videomae.'):
            raise RuntimeError(f'unexpected key {key!r} in the HF conversion of our state dict')
        state[key[len('videomae.'):]] = value
    reference.load_state_dict(state, strict=True)  # raises with the missing/unexpected key lists
    return reference.eval()


def profile_table(fn: Callable[[], Any], device: torch.device, rows: int = 12) -> str:
    """torch.profiler's table of the operators of one ``fn()``, by self time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    with profile(activities=activities) as prof:
        fn()
        synchronize(device)
    sort_by = 'self_device_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    return prof.key_averages().table(sort_by=sort_by, row_limit=rows)


def _interleaved_times(fns: dict[str, Callable[[], Any]], warmup: int, repeats: int, device: torch.device,
                       say: Callable[[int, dict[str, list[float]]], None]) -> dict[str, list[float]]:
    """Seconds per call of each function over ``repeats`` rounds, after ``warmup`` untimed rounds.

    The order alternates (A B, B A, ...), so slow drifts of a shared machine and any advantage of running second
    (warm caches) fall on every function alike.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {impl: [] for impl in fns}
    for i in range(repeats):
        for impl in (list(fns) if i % 2 == 0 else list(fns)[::-1]):
            times[impl].append(time_call(fns[impl], device))
        say(i, times)
    return times


def _bench_dtype(ours: VideoMAEv2ViT, reference: nn.Module, clip: torch.Tensor, name: str, *, warmup: int,
                 repeats: int, device: torch.device, profile: bool,
                 log: Callable[[str], None]) -> tuple[dict[str, Any], list[str]]:
    """Both models in one dtype: (``{'flops', 'times', 'max_abs_diff'}``, profiler tables if ``profile``)."""
    dtype, batch = DTYPES[name], clip.shape[0]
    ours = copy.deepcopy(ours).to(device=device, dtype=dtype)
    reference = copy.deepcopy(reference).to(device=device, dtype=dtype)
    # Each model gets its own input layout, contiguous: ours (B, 3, T, H, W), HF (B, T, 3, H, W).
    x_ours = clip.to(device=device, dtype=dtype)
    x_ref = clip.permute(0, 2, 1, 3, 4).contiguous().to(device=device, dtype=dtype)
    fns: dict[str, Callable[[], torch.Tensor]] = {
        'ours': lambda: ours.forward_tokens(x_ours),
        'hf_sdpa': lambda: reference(pixel_values=x_ref).last_hidden_state,
    }

    def say(i: int, times: dict[str, list[float]]) -> None:
        log(f'{name}: repeat {i + 1}/{repeats}: '
            + ', '.join(f'{impl} {batch / times[impl][-1]:.3f} clips/s' for impl in fns))

    with torch.inference_mode():
        # Same weights, same input -> same tokens (up to the dtype's rounding).
        diff = (fns['ours']().float() - fns['hf_sdpa']().float()).abs().max().item()
        flops = {impl: count_flops(fn) for impl, fn in fns.items()}
        log(f'{name}: max |ours - hf| = {diff:.3g}; '
            + ', '.join(f'{impl} {f / batch / 1e9:.2f} GFLOP/clip' for impl, f in flops.items()))
        times = _interleaved_times(fns, warmup, repeats, device, say)
        profiles = [f'--- profile: {ours.arch} {name} {impl} ---\n{profile_table(fn, device)}'
                    for impl, fn in fns.items()] if profile else []
    return {'flops': flops, 'times': times, 'max_abs_diff': diff}, profiles


def _rows(arch: str, name: str, batch: int, measured: dict[str, Any], peak: float,
          speedup: float) -> list[dict[str, Any]]:
    """One table row per implementation: throughput, FLOP rate and fraction of the matmul peak."""
    rows = []
    for impl, times in measured['times'].items():
        stats = summarize([batch / t for t in times])
        gflop_per_clip = measured['flops'][impl] / batch / 1e9
        rows.append({
            'arch': arch, 'dtype': name, 'impl': impl, 'runs': IMPLS[impl], 'batch': batch,
            'clips_per_s': stats.median, 'clips_per_s_min': stats.minimum, 'clips_per_s_max': stats.maximum,
            'spread_pct': stats.spread_pct, 'ms_per_clip': 1000.0 / stats.median,
            'gflop_per_clip': gflop_per_clip, 'gflops': gflop_per_clip * stats.median,
            'peak_gflops': peak, 'peak_pct': 100.0 * gflop_per_clip * stats.median / peak,
            'speedup': speedup if impl == 'ours' else 1.0, 'max_abs_diff': measured['max_abs_diff'],
            'times_s': times,
        })
    return rows


def bench_backbone(arch: str = 'vit_small', *, frames: int = 16, img_size: int = 224, batch: int = 1,
                   dtypes: Sequence[str] = ('fp32', 'bf16'), warmup: int = 2, repeats: int = 5,
                   device: str | torch.device = 'cpu', peak_size: int | None = None, seed: int = 0,
                   profile: bool = False, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Clips/s of our backbone and of transformers' ``VideoMAEModel`` (SDPA) per dtype, timed in interleaved repeats.

    Args:
        dtypes: names in :data:`DTYPES`; both models and the input are cast.
        peak_size: side of the square matmul that measures the machine peak (default: 2048 on CPU, 8192 on GPU).
        profile: also profile one forward of each model per dtype (``torch.profiler`` tables under ``profiles``).
        log: progress callback; silent by default.

    Returns:
        ``{'config', 'peak_gflops': {dtype: GFLOP/s}, 'speedup': {dtype: ours/hf}, 'max_abs_diff': {dtype: ...},
        'rows': [...], 'profiles': [...]}``; ``speedup`` is the median over interleaved pairs of hf time / our time;
        each row holds one (dtype, impl): ``clips_per_s`` (median) and its min/max, ``ms_per_clip``,
        ``gflop_per_clip``, ``gflops``, ``peak_pct``, ``times_s`` (seconds per forward of ``batch`` clips).
    """
    say = log or (lambda message: None)
    device = torch.device(device)
    peak_size = peak_size or (8192 if device.type == 'cuda' else 2048)
    torch.manual_seed(seed)
    ours = VideoMAEv2ViT(arch, img_size=img_size, all_frames=frames).eval()
    reference = hf_reference(ours)
    tokens = ours.pos_embed.shape[1]
    say(f'backbone {arch}: {frames}x{img_size}px, batch {batch}, {tokens} tokens/clip, '
        f'{ours.num_params() / 1e6:.1f}M params, device {device}, {torch.get_num_threads()} threads')
    clip = torch.randn(batch, 3, frames, img_size, img_size, generator=torch.Generator().manual_seed(seed))

    config = {'arch': arch, 'frames': frames, 'img_size': img_size, 'batch': batch, 'tokens_per_clip': tokens,
              'dtypes': list(dtypes), 'warmup': warmup, 'repeats': repeats, 'threads': torch.get_num_threads(),
              'device': str(device), 'peak_size': peak_size, 'seed': seed, 'impls': IMPLS}
    result: dict[str, Any] = {'config': config, 'peak_gflops': {}, 'speedup': {}, 'max_abs_diff': {}, 'rows': [],
                              'profiles': []}
    for name in dtypes:
        say(f'{name}: measuring matmul peak ({peak_size}x{peak_size})')
        peak = result['peak_gflops'][name] = matmul_peak_gflops(DTYPES[name], device, peak_size)
        say(f'{name}: matmul peak {peak:.1f} GFLOP/s')
        measured, profiles = _bench_dtype(ours, reference, clip, name, warmup=warmup, repeats=repeats,
                                          device=device, profile=profile, log=say)
        # Ratio per interleaved pair, then the median: each pair ran back to back under the same machine load.
        times = measured['times']
        speedup = statistics.median(r / o for o, r in zip(times['ours'], times['hf_sdpa']))
        result['speedup'][name] = speedup
        result['max_abs_diff'][name] = measured['max_abs_diff']
        result['rows'] += _rows(arch, name, batch, measured, peak, speedup)
        result['profiles'] += profiles
    return result
