#!/usr/bin/env python
"""Speed benchmarks of the VideoMAE V2 suite, one subcommand per component (``-h`` after a name lists its options).

``backbone`` (:func:`backbone.bench.bench_backbone`): our ViT vs transformers' ``VideoMAEModel`` (SDPA), clips/s;
``store`` (:func:`feature_store.bench.bench_store`): HDF5 feature store vs one ``.npy`` per video, reads and size;
``extract`` (:func:`feature_store.bench_extract.bench_extract`): our extractor vs the official per-window loop;
``memory`` (:func:`feature_store.bench_memory.bench_memory`): peak memory of extraction, a short vs a long video;
``pretrain`` (:func:`backbone.bench_pretrain.bench_pretrain`): dual masking vs encoder-only masking (V1).
Tables go to stdout, progress to stderr; ``--json PATH`` writes the numbers with the machine description, the ratios
(``speedup``; ``worst_ratio`` for memory; ``flop_ratio``, ``time_ratio``, ``memory_ratio`` for pretrain) and, where
there are targets, ``meets``.

    python tools/benchmark.py backbone --arch vit_base --batch 4 --dtypes bf16 --json work_dirs/bench.json
    python tools/benchmark.py extract --max-windows 0 --device cuda --dtype bf16 --video my.mp4
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from backbone import ARCH_PRESETS, PRETRAIN_PRESETS
from backbone.bench import DTYPES, machine_info
from tasks.data.files import write_json_atomic
from tasks.engine.report import records_table

_START = time.perf_counter()


# --- shared by every subcommand ---------------------------------------------------------------------------------------
def log(message: str) -> None:
    """Progress line on stderr, stamped with the seconds since start, so stdout carries only the results."""
    print(f'[{time.perf_counter() - _START:7.1f}s] {message}', file=sys.stderr, flush=True)


def prepare(device_name: str) -> tuple[torch.device, dict[str, Any]]:
    """The ``torch.device`` (a clear error when the accelerator is not there) and the machine record, with a warning
    when the machine is already busy. Called after ``--threads`` is applied, so the record and the warning see it."""
    device = torch.device(device_name)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit(f'--device {device_name}: CUDA is not available on this machine (torch {torch.__version__})')
    machine = machine_info(device)
    warn_if_busy(machine)
    return device, machine


def warn_if_busy(machine: dict[str, Any]) -> None:
    """Warn when other processes already occupy cores our threads need (the load average counts runnable tasks):
    on an oversubscribed CPU, OpenMP threads wait for each other at every barrier and timings become meaningless."""
    load, cores, threads = machine.get('loadavg_1m_at_start'), machine['cpu_count'], machine['torch_threads']
    if load is not None and cores and load + threads > cores + 0.5:
        hint = ' (consider a smaller --threads)' if threads > 1 else ''
        log(f'warning: load average {load:.1f} on {cores} cores before starting; with {threads} torch threads '
            f'the cores are oversubscribed and timings will be noisy{hint}')


def finish(args: argparse.Namespace, command: str, machine: dict[str, Any], body: dict[str, Any],
           report: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """The JSON payload (which command, when, on what machine, then ``body``): printed by ``report``, written to
    ``--json PATH`` when given, and returned."""
    if hasattr(os, 'getloadavg'):
        machine['loadavg_1m_at_end'] = round(os.getloadavg()[0], 2)
    payload = {'command': command, 'created': datetime.now(timezone.utc).isoformat(timespec='seconds'),
               'machine': machine, **body}
    report(payload)
    if args.json:
        write_json_atomic(args.json, payload)
        log(f'wrote {args.json}')
    return payload


def print_machine_line(machine: dict[str, Any]) -> None:
    print(f"machine: {machine.get('gpu', machine['cpu'])}, {machine['cpu_count']} CPUs; torch {machine['torch']}; "
          f"load avg {machine.get('loadavg_1m_at_start', '?')} -> {machine.get('loadavg_1m_at_end', '?')}")


def checked_type(convert: Callable[[str], Any], test: Callable[[Any], bool], message: str) -> Callable[[str], Any]:
    """An argparse ``type``: ``convert(text)``, refused with ``message`` (``{}``: the text) unless ``test`` holds."""
    def parse(text: str) -> Any:
        value = convert(text)
        if not test(value):
            raise argparse.ArgumentTypeError(message.format(text))
        return value
    parse.__name__ = convert.__name__  # argparse names it in "invalid int value: 'x'"
    return parse


positive_int = checked_type(int, lambda v: v >= 1, 'must be >= 1, got {}')
non_negative_int = checked_type(int, lambda v: v >= 0, 'must be >= 0, got {}')
positive_float = checked_type(float, lambda v: v > 0, 'must be > 0, got {}')
existing_file = checked_type(str, lambda v: Path(v).is_file(), 'no such file: {}')

#: Options :func:`common_parser` can add; each subcommand takes the ones that mean something to it.
COMMON_OPTIONS = ('warmup', 'repeats', 'threads', 'device', 'peak_size', 'seed', 'json')


def common_parser(include: Sequence[str] = COMMON_OPTIONS, helps: dict[str, str] | None = None,
                  **defaults: Any) -> argparse.ArgumentParser:
    """Options the subcommands share, added to a subparser as a parent (so they go after the command name).

    A fresh parent per subcommand: argparse shares a parent's action objects with every child, so a default set on one
    subcommand would otherwise leak into the others.

    Args:
        include: which of :data:`COMMON_OPTIONS` to add (an option a command would ignore is left out rather than
            silently accepted).
        helps: help text replacing the generic one, per option name.
        **defaults: default per option name (``warmup=1``, ``threads=1`` ...).
    """
    unknown = (set(include) | set(helps or {}) | set(defaults)) - set(COMMON_OPTIONS)
    if unknown:
        raise ValueError(f'unknown common options {sorted(unknown)}; known: {COMMON_OPTIONS}')
    helps = {
        'warmup': 'untimed runs of each implementation before timing',
        'repeats': 'timed runs of each implementation, interleaved',
        'threads': f'torch intra-op threads (torch default: {torch.get_num_threads()} here)',
        'device': "'cpu' or 'cuda[:N]'",
        'peak_size': 'side of the square matmul that measures the machine peak (default: 2048 on CPU, 8192 on GPU)',
        'seed': 'seed for weights and inputs',
        'json': 'also write the results as JSON to PATH',
    } | (helps or {})
    defaults = {'warmup': 2, 'repeats': 5, 'threads': None, 'device': 'cpu', 'peak_size': None, 'seed': 0,
                'json': None} | defaults
    types = {'warmup': non_negative_int, 'repeats': positive_int, 'threads': positive_int,
             'peak_size': positive_int, 'seed': int}
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group('measurement')
    for name in (n for n in COMMON_OPTIONS if n in include):
        shown = '' if defaults[name] is None else ' (default: %(default)s)'
        group.add_argument('--' + name.replace('_', '-'), type=types.get(name, str), default=defaults[name],
                           metavar='PATH' if name == 'json' else None, help=helps[name].replace('%', '%%') + shown)
    return parser


def add_clip_options(parser: argparse.ArgumentParser, presets: Sequence[str], arch: str, arch_help: str,
                     batch_help: str) -> None:
    """``--arch``, ``--batch``, ``--frames``, ``--img-size`` of the commands that run a model on random clips."""
    parser.add_argument('--arch', default=arch, choices=sorted(presets), help=arch_help + ' (default: %(default)s)')
    parser.add_argument('--batch', type=positive_int, default=1, help=batch_help + ' (default: %(default)s)')
    parser.add_argument('--frames', type=positive_int, default=16, help='frames per clip (default: %(default)s)')
    parser.add_argument('--img-size', type=positive_int, default=224, help='frame side in px (default: %(default)s)')


# --- backbone: our VideoMAEv2ViT vs transformers' VideoMAEModel (SDPA) ------------------------------------------------
def add_backbone_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'backbone', parents=[common_parser()],
        help='clips/s of VideoMAEv2ViT vs transformers VideoMAEModel (SDPA), same weights and dtype',
        description='Inference throughput (clips/s) of our backbone (VideoMAEv2ViT.forward_tokens) and of '
                    "transformers' VideoMAEModel with SDPA attention, same size, same weights, same dtype, timed in "
                    'interleaved repeats; plus FLOPs per clip and the fraction of the measured matmul peak.')
    add_clip_options(parser, ARCH_PRESETS, 'vit_small', 'backbone preset', 'clips per forward')
    parser.add_argument('--dtypes', nargs='+', default=['fp32', 'bf16'], choices=sorted(DTYPES),
                        help='dtypes to run; both models and inputs are cast (default: fp32 bf16)')
    parser.add_argument('--profile', action='store_true',
                        help='after timing, profile one forward of each model per dtype (torch.profiler) and print '
                             'the top operators by self time')
    parser.set_defaults(func=run_backbone)


def run_backbone(args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`backbone.bench.bench_backbone`; print the table; return (and optionally write) the payload."""
    from backbone.bench import bench_backbone

    device, machine = prepare(args.device)
    try:
        result = bench_backbone(args.arch, frames=args.frames, img_size=args.img_size, batch=args.batch,
                                dtypes=args.dtypes, warmup=args.warmup, repeats=args.repeats, device=device,
                                peak_size=args.peak_size, seed=args.seed, profile=args.profile, log=log)
    except ImportError as exc:
        raise SystemExit(str(exc)) from exc
    for text in result.pop('profiles'):
        print(text)
    return finish(args, 'backbone', machine, result, print_backbone_report)


BACKBONE_COLUMNS = [
    ('arch', 'arch', 's'), ('dtype', 'dtype', 's'), ('impl', 'impl', 's'), ('clips/s', 'clips_per_s', '.3f'),
    ('+-%', 'spread_pct', '.1f'), ('ms/clip', 'ms_per_clip', '.1f'), ('GFLOP/clip', 'gflop_per_clip', '.4g'),
    ('GFLOP/s', 'gflops', '.1f'), ('% peak', 'peak_pct', '.1f'), ('speedup', 'speedup', '.3f'),
    ('max|diff|', 'max_abs_diff', '.2e'),
]


def print_backbone_report(payload: dict[str, Any]) -> None:
    cfg, machine = payload['config'], payload['machine']
    print(f"backbone benchmark: {cfg['arch']}, {cfg['frames']}x{cfg['img_size']}px ({cfg['tokens_per_clip']} tokens), "
          f"batch {cfg['batch']}, {cfg['repeats']} interleaved repeats after {cfg['warmup']} warm-up, "
          f"device {cfg['device']}, {cfg['threads']} threads")
    print(f"machine: {machine.get('gpu', machine['cpu'])}; torch {machine['torch']}, "
          f"transformers {machine.get('transformers', '?')}; load avg {machine.get('loadavg_1m_at_start', '?')} -> "
          f"{machine.get('loadavg_1m_at_end', '?')}")
    print('matmul peak: ' + ', '.join(f'{k} {v:.1f} GFLOP/s' for k, v in payload['peak_gflops'].items()))
    print(records_table(payload['rows'], BACKBONE_COLUMNS))
    print('clips/s: median of the repeats, +-% half their range; speedup: ours/hf throughput, median over '
          'interleaved pairs; % peak: FLOP-counted GFLOP/s over the measured matmul peak')
    verdict = ', '.join(f"{k} {v:.3f}x ({'ok' if v >= 1.0 else 'BELOW target'})" for k, v in payload['speedup'].items())
    print(f'ours vs reference (target >= 1.0x): {verdict}')


# --- store: one HDF5 feature store vs one .npy per video --------------------------------------------------------------
def add_store_command(subparsers: argparse._SubParsersAction) -> None:
    common = common_parser(('repeats', 'seed', 'json'), repeats=3, helps={
        'repeats': 'timed rounds; each writes and reads all four layouts, interleaved',
        'seed': 'seed for the random features and the read orders'})
    parser = subparsers.add_parser(
        'store', parents=[common],
        help='read speed and size of the HDF5 feature store vs one .npy per video, float32 and float16',
        description='Writes random features for NUM_VIDEOS videos as one HDF5 feature store and as one .npy per '
                    'video, each in float32 and float16, then times reading every video in id order and in a random '
                    'order, and random windows of rows, on a warm page cache (feature_store.bench.bench_store).')
    parser.add_argument('--num-videos', type=positive_int, default=200, help='videos (default: %(default)s)')
    parser.add_argument('--rows', type=positive_int, default=256,
                        help='feature rows (clips) per video (default: %(default)s, a 35-s video at stride 4)')
    parser.add_argument('--dim', type=positive_int, default=768, help='feature width (default: %(default)s, ViT-B)')
    parser.add_argument('--window', type=positive_int, default=64,
                        help='rows per random window read, as a training crop (default: %(default)s)')
    parser.add_argument('--num-windows', type=positive_int, default=200,
                        help='random windows read per layout (default: %(default)s)')
    parser.add_argument('--tmpdir', default=None,
                        help='folder whose file system is measured; the files go to TMPDIR/bench_store and are '
                             'removed at the end (default: the system temporary folder)')
    parser.set_defaults(func=run_store, validate=validate_store)


def validate_store(args: argparse.Namespace) -> str | None:
    if args.window > args.rows:
        return f'--window {args.window} is longer than a video (--rows {args.rows})'
    return None


def run_store(args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`feature_store.bench.bench_store`; print the table; return (and optionally write) the payload."""
    from feature_store.bench import bench_store, store_summary

    # numpy and h5py read on this thread only, so torch's thread count plays no part; the load is still recorded.
    machine = machine_info(torch.device('cpu'))
    tmpdir = args.tmpdir or tempfile.gettempdir()
    log(f'store: {args.num_videos} videos x {args.rows} rows x {args.dim} dims under {tmpdir}, '
        f'{args.repeats} rounds')
    bench = bench_store(tmpdir, num_videos=args.num_videos, rows=args.rows, dim=args.dim, window=args.window,
                        num_windows=args.num_windows, repeats=args.repeats, seed=args.seed)
    body = {'config': bench['params'] | {'seed': args.seed, 'tmpdir': tmpdir}, **store_summary(bench['results']),
            'results': bench['results']}
    return finish(args, 'store', machine, body, print_store_report)


STORE_COLUMNS = [
    ('layout', 'layout', 's'), ('dtype', 'dtype', 's'), ('size MB', 'size_mb', '.1f'),
    ('sequential s', 'read_sequential_s', '.3f'), ('random s', 'read_random_s', '.3f'),
    ('window ms', 'window_ms', '.3f'), ('write s', 'write_s', '.3f'), ('seq x', 'speedup_sequential', '.2f'),
    ('random x', 'speedup_random', '.2f'), ('window x', 'speedup_window', '.2f'),
]


def print_store_report(payload: dict[str, Any]) -> None:
    cfg, results, speedup = payload['config'], payload['results'], payload['speedup']
    print(f"store benchmark: {cfg['num_videos']} videos x {cfg['rows']} rows x {cfg['dim']} dims, windows of "
          f"{cfg['window']} rows x {cfg['num_windows']}, median of {cfg['repeats']} interleaved rounds, warm page "
          f"cache, under {cfg['tmpdir']}")
    print_machine_line(payload['machine'])
    rows = []
    for dt in ('fp32', 'fp16'):
        for kind, name in (('h5', 'HDF5 store'), ('npy', 'npy per video')):
            r = results[f'{kind}_{dt}']
            row = {'layout': name, 'dtype': dt, 'size_mb': r['bytes'] / 1e6, **r}
            if kind == 'h5':
                row |= {'speedup_sequential': speedup[dt]['read_sequential'],
                        'speedup_random': speedup[dt]['read_random'], 'speedup_window': speedup[dt]['window']}
            rows.append(row)
    print(records_table(rows, STORE_COLUMNS))
    print('times: medians; sequential/random: every video read whole, in id / shuffled order (features only, as '
          'np.load); window: one random window; x: npy time / store time, above 1 = the store is faster')

    def per_dtype(key: str, spec: str, unit: str) -> str:
        return ', '.join(f"{dt} {results[f'h5_{dt}'][key]:{spec}} {unit}" for dt in ('fp32', 'fp16'))

    print(f"store reads in id order with each video's metadata (FeatureStore.read): "
          f"{per_dtype('read_with_meta_s', '.3f', 's')}; with plain h5py h5[id][()]: "
          f"{per_dtype('read_plain_h5py_s', '.3f', 's')}; metadata alone: {per_dtype('meta_ms', '.3f', 'ms/video')}")
    meets = payload['meets']
    reads = ', '.join(f"{what} {dt} {speedup[dt][what]:.2f}x ({'ok' if meets[f'{what}_{dt}'] else 'BELOW target'})"
                      for dt in ('fp32', 'fp16') for what in ('read_sequential', 'read_random'))
    print(f'store vs npy reads (target >= 1.0x): {reads}')
    print(f"float16 store / float32 npy on disk: {payload['size_ratio_fp16']:.3f} "
          f"({'ok' if meets['size_fp16'] else 'NOT smaller'})")


# --- extract: our feature extractor vs the official per-window loop, end to end on one video --------------------------
#: Targets: ours at least 3x faster end to end, with decoding under 10% of its wall time.
BENCH_VIDEO = {'fps': 30.0, 'height': 240, 'width': 320, 'gop': 250}


def add_extract_command(subparsers: argparse._SubParsersAction) -> None:
    common = common_parser(('threads', 'device', 'seed', 'json'), helps={
        'threads': 'torch intra-op threads of the official loop; ours leaves one core to its decoding thread '
                   f'(torch default: {torch.get_num_threads()} here)',
        'seed': 'seed of the generated video (both models get the same weights: --checkpoint, or one random init)'})
    parser = subparsers.add_parser(
        'extract', parents=[common],
        help='end-to-end feature extraction: our extractor vs the official per-window loop, on one video',
        description="Runs the official VideoMAE V2 TAD extraction loop (one decord get_batch per window, batch 1, "
                    "fp32, explicit attention) and ours (decode once, batched, fused attention) on the same video "
                    "with the same weights, and times the whole run and its decoding "
                    "(feature_store.bench_extract.bench_extract).")
    parser.add_argument('--arch', default='vit_small', choices=sorted(ARCH_PRESETS),
                        help='backbone preset (default: %(default)s)')
    parser.add_argument('--checkpoint', default=None, help='weights for both models (default: the same random init)')
    parser.add_argument('--video', type=existing_file, default=None,
                        help='video to extract (default: a synthetic 320x240 30-fps H.264 video of --video-seconds, '
                             'generated once into --cache-dir)')
    parser.add_argument('--cache-dir', default='work_dirs/bench',
                        help='where the generated video is kept between runs (default: %(default)s)')
    parser.add_argument('--video-seconds', type=positive_float, default=60.0,
                        help='length of the generated video (default: %(default)s)')
    parser.add_argument('--max-windows', type=non_negative_int, default=None,
                        help='windows run through the models from the start of the video; 0 = all (default: all '
                             'on CUDA, one --batch-size but at least 8 on the CPU). Decoding is also timed over '
                             'every window, without the model, unless --no-decode-only')
    parser.add_argument('--batch-size', type=positive_int, default=16,
                        help='windows per forward in our loop; the official loop uses 1 (default: %(default)s)')
    parser.add_argument('--dtype', default='fp32', choices=('fp32', 'bf16'),
                        help='our compute dtype; the official loop is fp32 (default: %(default)s)')
    parser.add_argument('--img-size', type=positive_int, default=224,
                        help='side the frames are squashed to (default: %(default)s)')
    parser.add_argument('--no-decode-only', action='store_true',
                        help='skip timing the decoding of every window without the model')
    parser.set_defaults(func=run_extract)


def bench_video_path(cache_dir: str | os.PathLike, seconds: float = 60.0, seed: int = 0,
                     spec: dict[str, Any] = BENCH_VIDEO) -> Path:
    """The synthetic benchmark video of ``spec`` in ``cache_dir``, generated on first use; named by its settings, so
    a cached file is only reused for the same settings (the video writer renames a finished file into place)."""
    from feature_store.bench_extract import make_bench_video

    v, extra = dict(spec), {k: spec[k] for k in ('block', 'shift', 'preset', 'threads') if k in spec}
    tags = ''.join(f'_{k}{extra[k]}' for k in ('block', 'shift', 'preset') if k in extra)
    path = Path(cache_dir) / f"bench_{seconds:g}s_{v['width']}x{v['height']}_gop{v['gop']}{tags}_seed{seed}.mp4"
    if path.is_file():
        log(f'reusing {path}')
        return path
    log(f'generating a {seconds:g}-s benchmark video at {path}')
    return Path(make_bench_video(path, seconds=seconds, fps=v['fps'], height=v['height'], width=v['width'],
                                 gop=v['gop'], seed=seed, **extra))


def run_extract(args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`feature_store.bench_extract.bench_extract`; print the table; return (and optionally write) it."""
    from feature_store.bench_extract import bench_extract, default_max_windows, extract_summary

    device, machine = prepare(args.device)
    video = Path(args.video) if args.video else bench_video_path(args.cache_dir, args.video_seconds, args.seed)
    max_windows = default_max_windows(args.batch_size, device) if args.max_windows is None else args.max_windows or None
    windows = 'all' if max_windows is None else f'the first {max_windows}'
    log(f'extract: {args.arch} at {args.img_size} px on {video}, {windows} windows, device {device}, '
        f'{torch.get_num_threads()} threads')
    result = bench_extract(video, args.arch, checkpoint=args.checkpoint, img_size=args.img_size,
                           batch_size=args.batch_size, dtype=args.dtype, device=str(device),
                           max_windows=max_windows, decode_only=not args.no_decode_only)
    config = {'arch': args.arch, 'checkpoint': args.checkpoint, 'video': str(video), 'img_size': args.img_size,
              'max_windows': max_windows or 0, 'batch_size': args.batch_size, 'dtype': args.dtype,
              'device': str(device), 'threads': torch.get_num_threads(), 'seed': args.seed}
    return finish(args, 'extract', machine, {'config': config, **extract_summary(result), 'result': result},
                  print_extract_report)


EXTRACT_COLUMNS = [
    ('loop', 'loop', 's'), ('batch', 'batch_size', 'd'), ('dtype', 'dtype', 's'), ('attention', 'attention', 's'),
    ('threads', 'torch_threads', 'd'), ('total s', 'total_s', '.2f'), ('decode s', 'decode_s', '.2f'),
    ('model s', 'model_s', '.2f'), ('decode %', 'decode_pct', '.1f'), ('clips/s', 'clips_per_s', '.3f'),
]


def print_extract_report(payload: dict[str, Any]) -> None:
    r = payload['result']
    print(f"extract benchmark: {r['arch']} at {r['img_size']} px, {r['clip_len']}-frame windows every {r['stride']} "
          f"frames; {r['windows_run']} of {r['windows_total']} windows through the models; device {r['device']}")
    print(f"video: {r['video']} ({r['num_frames']} frames, {r['fps']:g} fps, {r['width']}x{r['height']})")
    print_machine_line(payload['machine'])
    rows = [{'loop': loop, **r[loop], 'decode_pct': 100 * payload['decode_fraction'][loop]}
            for loop in ('official', 'ours')]
    print(records_table(rows, EXTRACT_COLUMNS))
    print('decode s: decoding + preprocessing (ours: in its decoding thread, overlapping the model); '
          f"max |official - ours| feature difference {r['max_abs_diff']:.2e}")
    if 'decode_only_all_windows' in r:
        d = r['decode_only_all_windows']
        print(f"decoding + preprocessing of all {d['windows']} windows, no model: official {d['official_s']:.2f} s, "
              f"ours {d['ours_s']:.2f} s ({payload['speedup']['decode_only_all_windows']:.1f}x)")
    meets, targets = payload['meets'], payload['targets']
    print(f"ours vs official end to end (target >= {targets['speedup_min']:g}x): "
          f"{payload['speedup']['end_to_end']:.2f}x ({'ok' if meets['speedup'] else 'BELOW target'}); "
          f"ours decode fraction (target < {100 * targets['ours_decode_fraction_max']:g}%): "
          f"{100 * payload['decode_fraction']['ours']:.1f}% "
          f"({'ok' if meets['ours_decode_fraction'] else 'ABOVE target'})")


# --- memory: peak resident memory of extraction, a short vs a long video ----------------------------------------------
#: 360p, 30 fps, 8-px blocks moving 2 px a frame (about 1 Mbit/s), encoded fast: ultrafast, all cores.
MEMORY_VIDEO = dict(fps=30.0, height=360, width=640, gop=250, block=8, shift=2, preset='ultrafast', threads=0)


def add_memory_command(subparsers: argparse._SubParsersAction) -> None:
    from tasks.data.video import BACKENDS

    parser = subparsers.add_parser(
        'memory', parents=[common_parser(('seed', 'json'), helps={'seed': 'seed of the generated videos'})],
        help='peak resident memory of feature extraction on a short and a long video, and their ratio',
        description='Runs tools/extract_features.py in a child process on a short and a long video with the same '
                    'settings, per backend and --num-workers, and reports the peak resident memory of its process '
                    'tree (feature_store.bench_memory). Memory that grows with the video shows as a ratio above 1.')
    parser.add_argument('--seconds', type=positive_float, nargs=2, default=[60.0, 600.0], metavar=('SHORT', 'LONG'),
                        help='lengths of the generated 640x360 videos (default: 60 600)')
    parser.add_argument('--videos', type=existing_file, nargs=2, metavar=('SHORT', 'LONG'),
                        help='measure these videos instead of generated ones')
    parser.add_argument('--cache-dir', default='work_dirs/bench',
                        help='where generated videos are kept between runs (default: %(default)s)')
    parser.add_argument('--backends', nargs='+', choices=BACKENDS, default=list(BACKENDS), help='(default: all)')
    parser.add_argument('--num-workers', type=non_negative_int, nargs='+', default=[0, 2],
                        help='decoding processes, each value a run (default: 0 2)')
    parser.add_argument('--arch', default='vit_test', choices=sorted(ARCH_PRESETS),
                        help='backbone preset (default: %(default)s)')
    parser.add_argument('--img-size', type=positive_int, default=32,
                        help='side the frames are squashed to (default: %(default)s)')
    parser.add_argument('--batch-size', type=positive_int, default=16, help='windows per forward (default: 16)')
    parser.set_defaults(func=run_memory)


def run_memory(args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`feature_store.bench_memory.bench_memory`; print the table; return (and optionally write) it."""
    from feature_store.bench_memory import bench_memory, memory_summary

    machine = machine_info(torch.device('cpu'))
    videos = args.videos or [bench_video_path(args.cache_dir, s, args.seed, MEMORY_VIDEO) for s in args.seconds]
    extract_args = ['--arch', args.arch, '--resize', str(args.img_size), '--batch-size', str(args.batch_size),
                    '--device', 'cpu']
    rows = bench_memory(*videos, backends=args.backends, num_workers=args.num_workers, extract_args=extract_args,
                        log=log)
    config = {'videos': [str(v) for v in videos], 'arch': args.arch, 'img_size': args.img_size,
              'batch_size': args.batch_size, 'extract_args': extract_args, 'seed': args.seed}
    return finish(args, 'memory', machine, {'config': config, **memory_summary(rows), 'rows': rows},
                  print_memory_report)


MEMORY_COLUMNS = [('backend', 'backend', 's'), ('workers', 'num_workers', 'd'), ('short MiB', 'short_mb', '.0f'),
                  ('long MiB', 'long_mb', '.0f'), ('long/short', 'ratio', '.2f'), ('short s', 'short_s', '.1f'),
                  ('long s', 'long_s', '.1f'), ('', 'verdict', 's')]


def print_memory_report(payload: dict[str, Any]) -> None:
    cfg, limit = payload['config'], payload['targets']['ratio_max']
    print(f"memory benchmark: tools/extract_features.py {' '.join(cfg['extract_args'])}, stride 4, on "
          f"{cfg['videos'][0]} (short) and {cfg['videos'][1]} (long)")
    print_machine_line(payload['machine'])
    rows = [{'backend': r['backend'], 'num_workers': r['num_workers'], 'short_mb': r['short']['peak_mb'],
             'long_mb': r['long']['peak_mb'], 'ratio': r['ratio'], 'short_s': r['short']['seconds'],
             'long_s': r['long']['seconds'], 'verdict': 'ok' if r['ratio'] <= limit else 'ABOVE target'}
            for r in payload['rows']]
    print(records_table(rows, MEMORY_COLUMNS))
    print('MiB: peak resident memory of the process tree, VmHWM of the extraction process plus that of each decoding '
          'worker (an upper bound: pages shared after the fork count in each); workers: --num-workers, of which one '
          'video uses one')
    print(f"largest long/short ratio (target <= {limit:g}): {payload['worst_ratio']:.2f} "
          f"({'ok' if payload['meets']['ratio'] else 'ABOVE target'})")


# --- pretrain: dual masking vs encoder-only masking (VideoMAE V1), V2 paper Tables 1 and 2 ----------------------------
def add_pretrain_command(subparsers: argparse._SubParsersAction) -> None:
    common = common_parser(('warmup', 'threads', 'device', 'seed', 'json'), warmup=1, threads=1, helps={
        'warmup': 'untimed training steps per mode before timing',
        'threads': 'torch intra-op threads. 1 by default: on a shared machine a parallel region waits for its '
                   'slowest thread, and on a 2-core machine the v1/dual time ratio is only meaningful with 1 thread '
                   '(with 2 it drowns in contention)',
        'seed': 'seed for the weights, the clip and the masks'})
    parser = subparsers.add_parser(
        'pretrain', parents=[common],
        help='FLOPs, training-step time and activation memory of dual masking vs encoder-only masking (V1)',
        description='Builds one VideoMAE V2 pre-training model and measures, for the same clip and encoder mask, '
                    'dual masking (running-cell decoder mask) against encoder-only masking: forward FLOPs, training '
                    'step time and the activations saved for backward, next to the V2 paper '
                    '(backbone.bench_pretrain.bench_pretrain).')
    add_clip_options(parser, PRETRAIN_PRESETS, 'vit_base', "pre-training preset (the paper's comparison)",
                     'clips per step')
    parser.add_argument('--steps', type=positive_int, default=2,
                        help='timed training steps per mode, the modes alternating (default: %(default)s)')
    parser.add_argument('--dtype', default='fp32', choices=('fp32', 'bf16', 'fp16'),
                        help='fp32, or autocast to bf16/fp16 (default: %(default)s)')
    parser.add_argument('--fused-attn', action='store_true',
                        help="SDPA attention instead of the official explicit softmax (which keeps the attention map "
                             "for backward)")
    parser.add_argument('--with-cp', action='store_true', help='activation checkpointing')
    parser.set_defaults(func=run_pretrain)


def run_pretrain(args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`backbone.bench_pretrain.bench_pretrain`; print the table; return (and optionally write) it."""
    from backbone.bench_pretrain import bench_pretrain

    device, machine = prepare(args.device)
    log(f'pretrain: {args.arch}, {args.frames}x{args.img_size}px, batch {args.batch}, {args.dtype}, '
        f'{args.warmup} + {args.steps} steps per mode, device {device}, {torch.get_num_threads()} threads')
    result = bench_pretrain(args.arch, args.batch, img_size=args.img_size, frames=args.frames, steps=args.steps,
                            warmup=args.warmup, device=device, dtype=args.dtype, fused_attn=args.fused_attn,
                            with_cp=args.with_cp, threads=args.threads, seed=args.seed, log=log)
    ratios = result['ratios']
    body = {'config': result['config'], 'flop_ratio': ratios['flops_forward'], 'time_ratio': ratios['step_time'],
            'memory_ratio': ratios['activation_memory'], 'ratios': ratios, 'meets': result['meets'],
            'targets': result['targets'], 'paper': result['paper'], 'modes': result['modes']}
    return finish(args, 'pretrain', machine, body, print_pretrain_report)


PRETRAIN_COLUMNS = [
    ('mode', 'mode', 's'), ('dec. tokens', 'decoder_tokens', 'd'), ('GFLOPs fwd', 'gflops_forward', '.2f'),
    ('GMACs fwd', 'gmacs_forward', '.2f'), ('GFLOPs fwd+bwd', 'gflops_train', '.1f'), ('step s', 'step_time_s', '.2f'),
    ('CPU s', 'step_cpu_time_s', '.2f'), ('saved act. MiB', 'saved_activation_mb', '.0f'),
]
RATIO_COLUMNS = [
    ('v1/dual', 'what', 's'), ('ours', 'ours', '.4f'), ('paper', 'paper', '.4f'), ('target', 'target', 's'),
    ('', 'verdict', 's'),
]


def print_pretrain_report(payload: dict[str, Any]) -> None:
    from backbone.bench_pretrain import PAPER_STEP_TIME_RATIO

    cfg, modes, paper = payload['config'], payload['modes'], payload['paper']
    targets, meets, ratios = payload['targets'], payload['meets'], payload['ratios']
    attention = 'SDPA' if cfg['fused_attn'] else 'explicit softmax'
    print(f"pretrain benchmark: {cfg['arch']}, {cfg['frames']}x{cfg['img_size']}px, batch {cfg['batch']}, "
          f"{cfg['dtype']}, {attention} attention{', checkpointing' if cfg['with_cp'] else ''}; encoder mask "
          f"{cfg['encoder_ratio']:g}, decoder mask {cfg['decoder_ratio']:g}; median of {cfg['steps']} alternating "
          f"steps after {cfg['warmup']} warm-up; device {cfg['device']}, {cfg['threads']} threads")
    print_machine_line(payload['machine'])
    rows = [{'mode': 'dual (ours)', **modes['dual']}, {'mode': 'v1 (ours)', **modes['v1']},
            {'mode': 'dual (paper)', 'gmacs_forward': paper['gflops_dual'], 'saved_activation_mb': paper['mems_dual']},
            {'mode': 'v1 (paper)', 'gmacs_forward': paper['gflops_v1'], 'saved_activation_mb': paper['mems_v1']}]
    columns = list(PRETRAIN_COLUMNS)
    if 'peak_allocated_mb' in modes['dual']:
        columns.append(('peak alloc. MiB', 'peak_allocated_mb', '.0f'))
    print(records_table(rows, columns))
    print('GFLOPs: torch.utils.flop_counter, a multiply-add = 2 FLOPs, so GMACs = GFLOPs / 2 is what the paper calls '
          '"FLOPs"; step: median wall time of forward + backward + AdamW; saved act.: tensors autograd keeps for '
          'backward, per clip (the paper\'s "Mems", feature-map memory, printed as "M")')

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
    print(records_table(ratio_rows, RATIO_COLUMNS))
    print('paper step time: whole pre-training, 28.4 h vs 15.9 h on 64 GPUs (Table 2)')


# --- entry point ------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='benchmark.py', description=__doc__.split('\n\n', 1)[0],
        epilog='Run "benchmark.py COMMAND -h" for the options of a command.')
    subparsers = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    add_backbone_command(subparsers)
    add_store_command(subparsers)
    add_extract_command(subparsers)
    add_memory_command(subparsers)
    add_pretrain_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    validate = getattr(args, 'validate', None)
    if validate is not None and (problem := validate(args)):
        parser.error(f'{args.command}: {problem}')
    if getattr(args, 'threads', None) is not None:
        torch.set_num_threads(args.threads)
    args.func(args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
