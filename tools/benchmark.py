#!/usr/bin/env python
"""Speed benchmarks for the VideoMAE V2 suite, one subcommand per component.

Subcommands:

* ``backbone``: inference throughput (clips/s) of our :class:`backbone.VideoMAEv2ViT` next to Hugging Face
  transformers' ``VideoMAEModel`` with SDPA attention, same size, same weights, same dtype, in one run; plus the
  FLOPs of one forward and the fraction of the machine's measured matmul peak that each model reaches.

Later subcommands (``extract``, ``store``, ``pretrain``) reuse the shared helpers below: :func:`time_call` (timing
with device synchronisation), :func:`summarize`, :func:`count_flops`, :func:`matmul_peak_gflops`,
:func:`machine_info`, :func:`format_table` and :func:`write_json`, plus the common options of :func:`common_parser`.

Usage (from the repository root, after ``pip install -e .`` or ``make venv``)::

    python tools/benchmark.py backbone                               # vit_small, 16x224, batch 1, fp32 and bf16
    python tools/benchmark.py backbone --arch vit_base --batch 4 --dtypes bf16 --json work_dirs/bench.json
    python tools/benchmark.py backbone --device cuda --repeats 20 --profile

The table goes to stdout, progress to stderr. ``--json PATH`` writes the same table with the machine description and
the per-dtype throughput ratio ours/reference under ``speedup``.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

if TYPE_CHECKING:
    from backbone import VideoMAEv2ViT

DTypeName = Literal['fp32', 'bf16', 'fp16']
DTYPES: dict[str, torch.dtype] = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}

_START = time.perf_counter()


# =====================================================================================================================
# Shared helpers (used by every subcommand)
# =====================================================================================================================
def log(message: str) -> None:
    """Progress line on stderr, stamped with the seconds since start, so stdout carries only the results."""
    print(f'[{time.perf_counter() - _START:7.1f}s] {message}', file=sys.stderr, flush=True)


def resolve_device(name: str) -> torch.device:
    """``torch.device`` for ``name``, with a clear error when the accelerator is not there."""
    device = torch.device(name)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit(f'--device {name}: CUDA is not available on this machine (torch {torch.__version__})')
    return device


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


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one ``fn()`` as counted by ``torch.utils.flop_counter`` (matmuls, convolutions, SDPA; a multiply-add
    counts 2). Elementwise ops, norms and softmax are not counted, so achieved GFLOP/s is a lower bound of the work."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul_peak_gflops(dtype: torch.dtype, device: torch.device, size: int, repeats: int = 5) -> float:
    """Measured matmul peak: GFLOP/s of the fastest of ``repeats`` (size x size) @ (size x size) products.

    This is what the BLAS (MKL/oneDNN on CPU, cuBLAS on GPU) attains on this machine with the current thread count,
    not the vendor's theoretical peak, so "fraction of peak" says how close a model gets to a large dense GEMM.
    """
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    with torch.inference_mode():
        torch.mm(a, b, out=out)  # warm-up: first call picks kernels and allocates workspace
        best = min(time_call(lambda: torch.mm(a, b, out=out), device) for _ in range(repeats))
    return 2.0 * size ** 3 / best / 1e9


def _cpu_model() -> str:
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as fh:
            for line in fh:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict[str, Any]:
    """Where the numbers came from: CPU/GPU, core and thread counts, load, library versions."""
    info: dict[str, Any] = {
        'platform': platform.platform(),
        'python': platform.python_version(),
        'cpu': _cpu_model(),
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


def warn_if_busy(machine: dict[str, Any]) -> None:
    """Warn when other processes already occupy cores our threads need (the load average counts runnable tasks).

    On an oversubscribed CPU, OpenMP threads wait for each other at every barrier, which can slow small ops by orders
    of magnitude and makes timings meaningless; ``--threads`` below the free core count avoids that.
    """
    load, cores, threads = machine.get('loadavg_1m_at_start'), machine['cpu_count'], machine['torch_threads']
    if load is not None and cores and load + threads > cores + 0.5:
        log(f'warning: load average {load:.1f} on {cores} cores before starting; with {threads} torch threads '
            'the cores are oversubscribed and timings will be noisy (consider a smaller --threads)')


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """Plain-text table. ``columns`` are (header, row key, format spec); numbers are right-aligned."""
    cells = [[format(row[key], spec) if row.get(key) is not None else '-' for _, key, spec in columns]
             for row in rows]
    headers = [header for header, _, _ in columns]
    widths = [max(len(headers[i]), *(len(r[i]) for r in cells)) for i in range(len(columns))]
    numeric = [bool(rows) and isinstance(rows[0].get(key), (int, float)) for _, key, _ in columns]

    def line(values: Sequence[str]) -> str:
        return '  '.join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return '\n'.join([line(headers), line(['-' * w for w in widths]), *(line(r) for r in cells)])


def write_json(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` through a temporary file and a rename, so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text(json.dumps(payload, indent=2) + '\n', encoding='utf-8')
    os.replace(tmp, path)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {value}')
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f'must be >= 0, got {value}')
    return value


def common_parser() -> argparse.ArgumentParser:
    """Options every subcommand shares (added to each subparser as a parent, so they go after the command name)."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group('measurement')
    group.add_argument('--warmup', type=_non_negative_int, default=2,
                       help='untimed runs of each implementation before timing (default: %(default)s)')
    group.add_argument('--repeats', type=_positive_int, default=5,
                       help='timed runs of each implementation, interleaved (default: %(default)s)')
    group.add_argument('--threads', type=_positive_int, default=None,
                       help='torch intra-op threads (default: torch default, %d here)' % torch.get_num_threads())
    group.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:N]' (default: %(default)s)")
    group.add_argument('--peak-size', type=_positive_int, default=None,
                       help='side of the square matmul that measures the machine peak (default: 2048 on CPU, '
                            '8192 on GPU)')
    group.add_argument('--seed', type=int, default=0, help='seed for weights and inputs (default: %(default)s)')
    group.add_argument('--json', metavar='PATH', default=None, help='also write the results as JSON to PATH')
    return parser


# =====================================================================================================================
# backbone: our VideoMAEv2ViT vs transformers' VideoMAEModel (SDPA)
# =====================================================================================================================
#: What each implementation runs. Both stop at the last block's tokens: HF ``VideoMAEModel`` with
#: ``use_mean_pooling=True`` has no final norm (the pooling norm ``fc_norm`` lives in the classification model), and
#: ``VideoMAEv2ViT.forward_tokens`` is patch embed + pos embed + blocks, without pooling or ``fc_norm``.
IMPLS = {
    'ours': 'backbone.VideoMAEv2ViT.forward_tokens',
    'hf_sdpa': "transformers.VideoMAEModel(attn_implementation='sdpa').last_hidden_state",
}


def add_backbone_command(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from backbone.videomaev2 import ARCH_PRESETS

    parser = subparsers.add_parser(
        'backbone', parents=[common],
        help='clips/s of VideoMAEv2ViT vs transformers VideoMAEModel (SDPA), same weights and dtype',
        description='Inference throughput (clips/s) of our backbone (VideoMAEv2ViT.forward_tokens) and of '
                    "transformers' VideoMAEModel with SDPA attention, same size, same weights, same dtype, timed in "
                    'interleaved repeats; plus FLOPs per clip and the fraction of the measured matmul peak.')
    parser.add_argument('--arch', default='vit_small', choices=sorted(ARCH_PRESETS),
                        help='backbone preset (default: %(default)s)')
    parser.add_argument('--frames', type=_positive_int, default=16, help='frames per clip (default: %(default)s)')
    parser.add_argument('--img-size', type=_positive_int, default=224, help='frame side in px (default: %(default)s)')
    parser.add_argument('--batch', type=_positive_int, default=1, help='clips per forward (default: %(default)s)')
    parser.add_argument('--dtypes', nargs='+', default=['fp32', 'bf16'], choices=sorted(DTYPES),
                        help='dtypes to run; both models and inputs are cast (default: fp32 bf16)')
    parser.add_argument('--profile', action='store_true',
                        help='after timing, profile one forward of each model per dtype (torch.profiler) and print '
                             'the top operators by self time')
    parser.set_defaults(func=run_backbone)


def build_reference(ours: VideoMAEv2ViT) -> nn.Module:
    """transformers ``VideoMAEModel`` of the same size as ``ours``, SDPA attention, loaded with ``ours``' weights.

    Raises:
        SystemExit: transformers is not installed.
        RuntimeError: the converted state dict does not account for the HF model exactly.
    """
    try:
        from transformers.models.videomae import VideoMAEConfig, VideoMAEModel
    except ImportError as exc:  # an optional (test) dependency of the suite
        raise SystemExit("the 'backbone' benchmark needs transformers as the reference: pip install -e '.[test]'"
                         ) from exc
    from backbone import convert_state_dict

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


def _profile_table(fn: Callable[[], Any], device: torch.device, rows: int = 12) -> str:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    with profile(activities=activities) as prof:
        fn()
        synchronize(device)
    sort_by = 'self_device_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    return prof.key_averages().table(sort_by=sort_by, row_limit=rows)


def run_backbone(args: argparse.Namespace) -> dict[str, Any]:
    """Time both models per dtype; print the table; return (and optionally write) the JSON payload."""
    from backbone import VideoMAEv2ViT

    device = resolve_device(args.device)
    machine = machine_info(device)
    warn_if_busy(machine)
    peak_size = args.peak_size or (8192 if device.type == 'cuda' else 2048)

    torch.manual_seed(args.seed)
    ours_master = VideoMAEv2ViT(args.arch, img_size=args.img_size, all_frames=args.frames).eval()
    reference_master = build_reference(ours_master)
    tokens = ours_master.pos_embed.shape[1]
    log(f'backbone {args.arch}: {args.frames}x{args.img_size}px, batch {args.batch}, {tokens} tokens/clip, '
        f'{ours_master.num_params() / 1e6:.1f}M params, device {device}, {torch.get_num_threads()} threads')

    gen = torch.Generator().manual_seed(args.seed)
    clip = torch.randn(args.batch, 3, args.frames, args.img_size, args.img_size, generator=gen)

    rows: list[dict[str, Any]] = []
    peaks: dict[str, float] = {}
    speedup: dict[str, float] = {}
    diffs: dict[str, float] = {}
    profiles: list[str] = []
    for name in args.dtypes:
        dtype = DTYPES[name]
        log(f'{name}: measuring matmul peak ({peak_size}x{peak_size})')
        peaks[name] = matmul_peak_gflops(dtype, device, peak_size)
        log(f'{name}: matmul peak {peaks[name]:.1f} GFLOP/s')

        ours = copy.deepcopy(ours_master).to(device=device, dtype=dtype)
        reference = copy.deepcopy(reference_master).to(device=device, dtype=dtype)
        # Each model gets its own input layout, contiguous: ours (B, 3, T, H, W), HF (B, T, 3, H, W).
        x_ours = clip.to(device=device, dtype=dtype)
        x_ref = clip.permute(0, 2, 1, 3, 4).contiguous().to(device=device, dtype=dtype)
        fns: dict[str, Callable[[], torch.Tensor]] = {
            'ours': lambda: ours.forward_tokens(x_ours),
            'hf_sdpa': lambda: reference(pixel_values=x_ref).last_hidden_state,
        }

        with torch.inference_mode():
            # Sanity: same weights, same input -> same tokens (up to the dtype's rounding).
            diffs[name] = (fns['ours']().float() - fns['hf_sdpa']().float()).abs().max().item()
            flops = {impl: count_flops(fn) for impl, fn in fns.items()}
            log(f'{name}: max |ours - hf| = {diffs[name]:.3g}; '
                + ', '.join(f'{impl} {f / args.batch / 1e9:.2f} GFLOP/clip' for impl, f in flops.items()))
            for _ in range(args.warmup):
                for fn in fns.values():
                    fn()
            times: dict[str, list[float]] = {impl: [] for impl in fns}
            for i in range(args.repeats):
                # Interleave, alternating who goes first (A B, B A, ...): slow drifts of a shared machine and any
                # advantage of running second (warm caches) fall on both models alike.
                order = list(fns) if i % 2 == 0 else list(fns)[::-1]
                for impl in order:
                    times[impl].append(time_call(fns[impl], device))
                log(f'{name}: repeat {i + 1}/{args.repeats}: '
                    + ', '.join(f'{impl} {args.batch / times[impl][-1]:.3f} clips/s' for impl in fns))
            if args.profile:
                for impl, fn in fns.items():
                    profiles.append(f'--- profile: {args.arch} {name} {impl} ---\n{_profile_table(fn, device)}')

        # Ratio per interleaved pair, then the median: each pair ran back to back under the same machine load.
        ratios = [t_ref / t_ours for t_ours, t_ref in zip(times['ours'], times['hf_sdpa'])]
        speedup[name] = statistics.median(ratios)
        for impl in fns:
            stats = summarize([args.batch / t for t in times[impl]])
            gflop_per_clip = flops[impl] / args.batch / 1e9
            rows.append({
                'arch': args.arch, 'dtype': name, 'impl': impl, 'runs': IMPLS[impl], 'batch': args.batch,
                'clips_per_s': stats.median, 'clips_per_s_min': stats.minimum, 'clips_per_s_max': stats.maximum,
                'spread_pct': stats.spread_pct, 'ms_per_clip': 1000.0 / stats.median,
                'gflop_per_clip': gflop_per_clip, 'gflops': gflop_per_clip * stats.median,
                'peak_gflops': peaks[name], 'peak_pct': 100.0 * gflop_per_clip * stats.median / peaks[name],
                'speedup': speedup[name] if impl == 'ours' else 1.0, 'max_abs_diff': diffs[name],
                'times_s': times[impl],
            })
        del ours, reference

    payload = {
        'command': 'backbone',
        'created': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        'config': {'arch': args.arch, 'frames': args.frames, 'img_size': args.img_size, 'batch': args.batch,
                   'tokens_per_clip': tokens, 'dtypes': list(args.dtypes), 'warmup': args.warmup,
                   'repeats': args.repeats, 'threads': torch.get_num_threads(), 'device': str(device),
                   'peak_size': peak_size, 'seed': args.seed, 'impls': IMPLS},
        'machine': machine,
        'peak_gflops': peaks,
        'speedup': speedup,
        'max_abs_diff': diffs,
        'rows': rows,
    }
    if hasattr(os, 'getloadavg'):
        machine['loadavg_1m_at_end'] = round(os.getloadavg()[0], 2)

    print_backbone_report(payload, profiles)
    if args.json:
        write_json(args.json, payload)
        log(f'wrote {args.json}')
    return payload


BACKBONE_COLUMNS = [
    ('arch', 'arch', 's'), ('dtype', 'dtype', 's'), ('impl', 'impl', 's'), ('clips/s', 'clips_per_s', '.3f'),
    ('+-%', 'spread_pct', '.1f'), ('ms/clip', 'ms_per_clip', '.1f'), ('GFLOP/clip', 'gflop_per_clip', '.4g'),
    ('GFLOP/s', 'gflops', '.1f'), ('% peak', 'peak_pct', '.1f'), ('speedup', 'speedup', '.3f'),
    ('max|diff|', 'max_abs_diff', '.2e'),
]


def print_backbone_report(payload: dict[str, Any], profiles: Sequence[str] = ()) -> None:
    cfg, machine = payload['config'], payload['machine']
    for text in profiles:
        print(text)
    print(f"backbone benchmark: {cfg['arch']}, {cfg['frames']}x{cfg['img_size']}px ({cfg['tokens_per_clip']} tokens), "
          f"batch {cfg['batch']}, {cfg['repeats']} interleaved repeats after {cfg['warmup']} warm-up, "
          f"device {cfg['device']}, {cfg['threads']} threads")
    print(f"machine: {machine.get('gpu', machine['cpu'])}; torch {machine['torch']}, "
          f"transformers {machine.get('transformers', '?')}; load avg {machine.get('loadavg_1m_at_start', '?')} -> "
          f"{machine.get('loadavg_1m_at_end', '?')}")
    print('matmul peak: ' + ', '.join(f'{k} {v:.1f} GFLOP/s' for k, v in payload['peak_gflops'].items()))
    print(format_table(payload['rows'], BACKBONE_COLUMNS))
    print('clips/s: median of the repeats, +-% half their range; speedup: ours/hf throughput, median over '
          'interleaved pairs; % peak: FLOP-counted GFLOP/s over the measured matmul peak')
    verdict = ', '.join(f"{k} {v:.3f}x ({'ok' if v >= 1.0 else 'BELOW target'})" for k, v in payload['speedup'].items())
    print(f'ours vs reference (target >= 1.0x): {verdict}')


# =====================================================================================================================
# Entry point
# =====================================================================================================================
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='benchmark.py', description=__doc__.split('\n\n', 1)[0],
        epilog='Run "benchmark.py COMMAND -h" for the options of a command.')
    subparsers = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    common = common_parser()
    add_backbone_command(subparsers, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        import backbone  # noqa: F401  (fail early with a hint rather than deep inside a subcommand)
    except ImportError as exc:
        raise SystemExit('cannot import the suite packages; run from an environment with the repository installed '
                         "(pip install -e . or make venv), or set PYTHONPATH to the repository root") from exc
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    args.func(args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
