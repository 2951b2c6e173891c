"""Inference speed of :class:`~backbone.VideoMAEv2ViT`, eager and compiled, next to transformers'
``VideoMAEModel`` (SDPA attention), same size, same weights, same dtype, and the timing helpers every benchmark of the
suite shares.

:func:`bench_backbone` returns plain dicts; ``tools/benchmark.py backbone`` prints them
(:func:`format_backbone_report`) and writes them.
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

from .compile import compile_backbone, compile_unavailable_reason
from .flops import count_flops
from .tables import records_table
from .videomaev2 import VideoMAEv2ViT

__all__ = ['BACKBONE_TARGETS', 'DTYPES', 'IMPLS', 'Stats', 'backbone_verdicts', 'bench_backbone', 'cpu_model',
           'format_backbone_report', 'hf_reference', 'machine_info', 'machine_line', 'matmul_peak_gflops',
           'profile_table', 'summarize', 'synchronize', 'time_call', 'verdict']

DTYPES: dict[str, torch.dtype] = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}

#: What each implementation runs. Both stop at the last block's tokens: HF ``VideoMAEModel`` with
#: ``use_mean_pooling=True`` has no final norm (the pooling norm ``fc_norm`` lives in the classification model), and
#: ``VideoMAEv2ViT.forward_tokens`` is patch embed + pos embed + blocks, without pooling or ``fc_norm``.
IMPLS = {
    'ours': 'backbone.VideoMAEv2ViT.forward_tokens',
    'ours_compiled': 'backbone.VideoMAEv2ViT.forward_tokens, blocks compiled by backbone.compile.compile_backbone',
    'hf_sdpa': "transformers.VideoMAEModel(attn_implementation='sdpa').last_hidden_state",
}

#: Targets on a 2-core CPU (issue 22), met by the faster of ours (eager or compiled): throughput against transformers
#: and fraction of the dtype's measured matmul peak; compiled tokens equal to eager within ``compiled_max_abs_diff``.
BACKBONE_TARGETS = {
    'fp32': {'speedup_min': 1.0, 'peak_pct_min': 85.0, 'compiled_max_abs_diff': 1e-5},
    'bf16': {'speedup_min': 1.25, 'peak_pct_min': 70.0},
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

    The order alternates (A B C, C B A, ...), so slow drifts of a shared machine and any advantage of running second
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


def _compile_copy(ours: VideoMAEv2ViT, x: torch.Tensor, eager: torch.Tensor, device: torch.device,
                  log: Callable[[str], None]) -> tuple[VideoMAEv2ViT, dict[str, float]]:
    """A copy of ``ours`` (already in the timed dtype and device) with its blocks compiled; its first call (which
    compiles) and a steady call (the fastest of 3: compiler worker processes may still hold cores) timed; its tokens
    compared with the eager ``eager`` (B, N, C).

    The copy comes first: ``copy.deepcopy`` of a compiled module gives eager blocks again.
    """
    compiled = copy.deepcopy(ours)
    if compile_backbone(compiled, log=log) == 0:
        raise RuntimeError(f'compile_backbone compiled no block of {ours.arch}')
    first = time_call(lambda: compiled.forward_tokens(x), device)
    steady = min(time_call(lambda: compiled.forward_tokens(x), device) for _ in range(3))
    diff = (compiled.forward_tokens(x).float() - eager.float()).abs().max().item()
    return compiled, {'first_call_s': first, 'steady_call_s': steady, 'compile_s': first - steady,
                      'max_abs_diff_vs_eager': diff}


def _bench_dtype(ours: VideoMAEv2ViT, reference: nn.Module, clip: torch.Tensor, name: str, *, warmup: int,
                 repeats: int, device: torch.device, compiled: bool, profile: bool,
                 log: Callable[[str], None]) -> tuple[dict[str, Any], list[str]]:
    """Every implementation in one dtype: (``{'flops', 'times', 'max_abs_diff'}`` and, with ``compiled``,
    ``'compile'``; profiler tables if ``profile``)."""
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

    measured: dict[str, Any] = {}
    with torch.inference_mode():
        # Same weights, same input -> same tokens (up to the dtype's rounding).
        eager = fns['ours']()
        measured['max_abs_diff'] = (eager.float() - fns['hf_sdpa']().float()).abs().max().item()
        measured['flops'] = {impl: count_flops(fn) for impl, fn in fns.items()}
        log(f"{name}: max |ours - hf| = {measured['max_abs_diff']:.3g}; "
            + ', '.join(f'{impl} {f / batch / 1e9:.2f} GFLOP/clip' for impl, f in measured['flops'].items()))
        if compiled:
            log(f'{name}: compiling the blocks of a copy of ours')
            fast, measured['compile'] = _compile_copy(ours, x_ours, eager, device, log)
            fns = {'ours': fns['ours'], 'ours_compiled': lambda: fast.forward_tokens(x_ours), 'hf_sdpa': fns['hf_sdpa']}
            measured['flops']['ours_compiled'] = measured['flops']['ours']  # the same computation, fused
            c = measured['compile']
            log(f"{name}: compile {c['compile_s']:.1f} s; max |compiled - eager| = {c['max_abs_diff_vs_eager']:.3g}")
        measured['times'] = _interleaved_times(fns, warmup, repeats, device, say)
        profiles = [f'--- profile: {ours.arch} {name} {impl} ---\n{profile_table(fn, device)}'
                    for impl, fn in fns.items()] if profile else []
    return measured, profiles


def _rows(arch: str, name: str, batch: int, measured: dict[str, Any], peak: float,
          speedups: dict[str, float]) -> list[dict[str, Any]]:
    """One table row per implementation: throughput, FLOP rate and fraction of the matmul peak."""
    rows = []
    for impl, times in measured['times'].items():
        stats = summarize([batch / t for t in times])
        gflop_per_clip = measured['flops'][impl] / batch / 1e9
        diff = measured['compile']['max_abs_diff_vs_eager'] if impl == 'ours_compiled' else measured['max_abs_diff']
        rows.append({
            'arch': arch, 'dtype': name, 'impl': impl, 'runs': IMPLS[impl], 'batch': batch,
            'clips_per_s': stats.median, 'clips_per_s_min': stats.minimum, 'clips_per_s_max': stats.maximum,
            'spread_pct': stats.spread_pct, 'ms_per_clip': 1000.0 / stats.median,
            'gflop_per_clip': gflop_per_clip, 'gflops': gflop_per_clip * stats.median,
            'peak_gflops': peak, 'peak_pct': 100.0 * gflop_per_clip * stats.median / peak,
            'speedup': speedups.get(impl, 1.0), 'max_abs_diff': diff, 'times_s': times,
        })
    return rows


def bench_backbone(arch: str = 'vit_small', *, frames: int = 16, img_size: int = 224, batch: int = 1,
                   dtypes: Sequence[str] = ('fp32', 'bf16'), warmup: int = 2, repeats: int = 5,
                   device: str | torch.device = 'cpu', peak_size: int | None = None, seed: int = 0,
                   compiled: bool = True, profile: bool = False,
                   log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Clips/s of our backbone, eager and compiled, and of transformers' ``VideoMAEModel`` (SDPA) per dtype, timed in
    interleaved repeats after measuring the dtype's matmul peak.

    Args:
        dtypes: names in :data:`DTYPES`; every model and the input are cast.
        peak_size: side of the square matmul that measures the machine peak (default: 2048 on CPU, 8192 on GPU).
        compiled: also time a copy of ours with its blocks compiled (:func:`backbone.compile.compile_backbone`);
            skipped, with the reason under ``compile``, where torch.compile cannot run here.
        profile: also profile one forward of each model per dtype (``torch.profiler`` tables under ``profiles``).
        log: progress callback; silent by default.

    Returns:
        ``{'config', 'peak_gflops': {dtype: GFLOP/s}, 'speedup': {dtype: ours/hf}, 'speedup_compiled' (the same for
        the compiled copy), 'max_abs_diff': {dtype: ours vs hf}, 'compile', 'rows', 'targets', 'meets', 'best_impl',
        'profiles'}``; a speedup is the median over interleaved rounds of hf time / our time; each row holds one
        (dtype, impl): ``clips_per_s`` (median) and its min/max, ``ms_per_clip``, ``gflop_per_clip``, ``gflops``,
        ``peak_pct``, ``times_s`` (seconds per forward of ``batch`` clips). ``compile``: ``requested``,
        ``unavailable_reason`` and per dtype ``compile_s`` (first call minus a steady call, never in clips/s),
        ``first_call_s``, ``steady_call_s``, ``max_abs_diff_vs_eager``.
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
    reason = compile_unavailable_reason(device) if compiled else None
    if reason is not None:
        say(f'compiled rows skipped: torch.compile is not available on {device.type} here ({reason})')

    config = {'arch': arch, 'frames': frames, 'img_size': img_size, 'batch': batch, 'tokens_per_clip': tokens,
              'dtypes': list(dtypes), 'warmup': warmup, 'repeats': repeats, 'threads': torch.get_num_threads(),
              'device': str(device), 'peak_size': peak_size, 'seed': seed, 'impls': IMPLS, 'compile': compiled}
    result: dict[str, Any] = {'config': config, 'peak_gflops': {}, 'speedup': {}, 'speedup_compiled': {},
                              'max_abs_diff': {}, 'compile': {'requested': compiled, 'unavailable_reason': reason},
                              'rows': [], 'profiles': []}
    for name in dtypes:
        say(f'{name}: measuring matmul peak ({peak_size}x{peak_size})')
        peak = result['peak_gflops'][name] = matmul_peak_gflops(DTYPES[name], device, peak_size)
        say(f'{name}: matmul peak {peak:.1f} GFLOP/s')
        measured, profiles = _bench_dtype(ours, reference, clip, name, warmup=warmup, repeats=repeats,
                                          device=device, compiled=compiled and reason is None, profile=profile,
                                          log=say)
        # Ratio per interleaved round, then the median: each round ran back to back under the same machine load.
        times = measured['times']
        speedups = {impl: statistics.median(r / o for o, r in zip(times[impl], times['hf_sdpa']))
                    for impl in times if impl != 'hf_sdpa'}
        result['speedup'][name] = speedups['ours']
        if 'ours_compiled' in speedups:
            result['speedup_compiled'][name] = speedups['ours_compiled']
            result['compile'][name] = measured['compile']
        result['max_abs_diff'][name] = measured['max_abs_diff']
        result['rows'] += _rows(arch, name, batch, measured, peak, speedups)
        result['profiles'] += profiles
    return result | backbone_verdicts(result['rows'], result['compile'])


def backbone_verdicts(rows: Sequence[dict[str, Any]], compiled: dict[str, Any]) -> dict[str, Any]:
    """Each target of :data:`BACKBONE_TARGETS` met or not, by the faster of ours (eager or compiled) per dtype.

    Returns:
        ``{'targets', 'meets': {'fp32_speedup', 'fp32_peak_pct', 'fp32_compiled_equal', 'bf16_speedup', ...},
        'best_impl': {dtype: impl}}`` for the dtypes that were run and have targets.
    """
    meets, best_impl = {}, {}
    for name, target in BACKBONE_TARGETS.items():
        ours = [r for r in rows if r['dtype'] == name and r['impl'] != 'hf_sdpa']
        if not ours:
            continue
        best = max(ours, key=lambda r: r['clips_per_s'])
        best_impl[name] = best['impl']
        meets[f'{name}_speedup'] = best['speedup'] >= target['speedup_min']
        meets[f'{name}_peak_pct'] = best['peak_pct'] >= target['peak_pct_min']
        if 'compiled_max_abs_diff' in target and name in compiled:
            meets[f'{name}_compiled_equal'] = (compiled[name]['max_abs_diff_vs_eager']
                                               <= target['compiled_max_abs_diff'])
    return {'targets': BACKBONE_TARGETS, 'meets': meets, 'best_impl': best_impl}


def verdict(met: bool) -> str:
    """How every report marks a target: ``met`` or ``BELOW``."""
    return 'met' if met else 'BELOW'


def machine_line(machine: dict[str, Any]) -> str:
    """One line naming the machine of a payload: CPU or GPU, cores, torch version and the load before and after."""
    return (f"machine: {machine.get('gpu', machine['cpu'])}, {machine['cpu_count']} CPUs; torch {machine['torch']}; "
            f"load avg {machine.get('loadavg_1m_at_start', '?')} -> {machine.get('loadavg_1m_at_end', '?')}")


BACKBONE_COLUMNS = [
    ('arch', 'arch', 's'), ('dtype', 'dtype', 's'), ('impl', 'impl', 's'), ('clips/s', 'clips_per_s', '.3f'),
    ('+-%', 'spread_pct', '.1f'), ('ms/clip', 'ms_per_clip', '.1f'), ('GFLOP/clip', 'gflop_per_clip', '.4g'),
    ('GFLOP/s', 'gflops', '.1f'), ('% peak', 'peak_pct', '.1f'), ('speedup', 'speedup', '.3f'),
    ('max|diff|', 'max_abs_diff', '.2e'),
]


def format_backbone_report(payload: dict[str, Any]) -> str:
    """The text report of ``tools/benchmark.py backbone``: settings, machine, peaks, the table, compile and targets."""
    cfg, machine, comp = payload['config'], payload['machine'], payload['compile']
    lines = [
        f"backbone benchmark: {cfg['arch']}, {cfg['frames']}x{cfg['img_size']}px ({cfg['tokens_per_clip']} tokens), "
        f"batch {cfg['batch']}, {cfg['repeats']} interleaved repeats after {cfg['warmup']} warm-up, "
        f"device {cfg['device']}, {cfg['threads']} threads",
        f"{machine_line(machine)}; transformers {machine.get('transformers', '?')}",
        'matmul peak: ' + ', '.join(f'{k} {v:.1f} GFLOP/s' for k, v in payload['peak_gflops'].items()),
        records_table(payload['rows'], BACKBONE_COLUMNS),
        'clips/s: median of the repeats, +-% half their range; speedup: ours/hf throughput, median over interleaved '
        'rounds; % peak: FLOP-counted GFLOP/s over the measured matmul peak; max|diff|: vs hf (ours_compiled: vs '
        'eager ours)',
    ]
    compiled = [d for d in payload['peak_gflops'] if d in comp]
    if compiled:
        lines.append('compile time (first call minus a steady call, not in clips/s): ' + ', '.join(
            f"{d} {comp[d]['compile_s']:.2f} s" for d in compiled))
    elif comp['requested']:
        lines.append(f"compiled rows skipped: torch.compile is not available here ({comp['unavailable_reason']})")
    else:
        lines.append('compiled rows skipped (--no-compile)')
    targets, meets = payload['targets'], payload['meets']
    for name, impl in payload['best_impl'].items():
        t, row = targets[name], next(r for r in payload['rows'] if (r['dtype'], r['impl']) == (name, impl))
        text = (f"{name} targets ({impl}, the faster of ours): {row['speedup']:.3f}x transformers (>= "
                f"{t['speedup_min']:g}x: {verdict(meets[f'{name}_speedup'])}), {row['peak_pct']:.1f}% of the matmul "
                f"peak (>= {t['peak_pct_min']:g}%: {verdict(meets[f'{name}_peak_pct'])})")
        if f'{name}_compiled_equal' in meets:
            text += (f"; compiled vs eager max|diff| {comp[name]['max_abs_diff_vs_eager']:.2e} (<= "
                     f"{t['compiled_max_abs_diff']:g}: {verdict(meets[f'{name}_compiled_equal'])})")
        lines.append(text)
    return '\n'.join(lines)
