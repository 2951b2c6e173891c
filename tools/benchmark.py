#!/usr/bin/env python
"""Speed benchmarks of the VideoMAE V2 suite, one subcommand per component (``-h`` after a name lists its options).

``backbone`` (:func:`backbone.bench.bench_backbone`): our ViT, eager and compiled, vs transformers' ``VideoMAEModel``
(SDPA), clips/s and % of the matmul peak;
``store`` (:func:`feature_store.bench.bench_store`): HDF5 feature store vs one ``.npy`` per video, reads and size;
``extract`` (:func:`feature_store.bench_extract.bench_extract`): our extractor vs the official per-window loop over a
whole video;
``memory`` (:func:`feature_store.bench_memory.bench_memory`): peak memory of extraction, a short vs a long video;
``pretrain`` (:func:`backbone.bench_pretrain.bench_pretrain`): dual masking vs encoder-only masking (V1);
``all``: backbone (ViT-B, ViT-g), extract (ViT-g), pretrain and store in one run and one JSON, sized for one GPU
(``--tiny``: a CPU smoke run).
Tables go to stdout, progress to stderr; ``--json PATH`` writes the numbers with the machine description, the ratios
(``speedup``; ``worst_ratio`` for memory; ``flop_ratio``, ``time_ratio``, ``memory_ratio`` for pretrain) and, where
there are targets, ``targets`` and ``meets``. Each report lives beside its benchmark (``format_*_report``).

    python tools/benchmark.py backbone --arch vit_base --batch 4 --dtypes bf16 --json work_dirs/bench.json
    python tools/benchmark.py extract --max-windows 0 --device cuda --dtypes fp32 bf16 --video my.mp4
    python tools/benchmark.py all --device cuda --json work_dirs/bench_gpu.json
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from backbone import ARCH_PRESETS, PRETRAIN_PRESETS
from backbone.bench import DTYPES, machine_info
from backbone.bench_cli import (add_clip_options, common_parser, envelope, existing_file, log, non_negative_int,
                                positive_float, positive_int, prepare)
from feature_store.bench_extract import bench_video_path
from feature_store.bench_memory import MEMORY_VIDEO
from tasks.data.files import write_json_atomic


def finish(args: argparse.Namespace, command: str, machine: dict[str, Any], body: dict[str, Any],
           report: Callable[[dict[str, Any]], str]) -> dict[str, Any]:
    """The JSON payload (which command, when, on what machine, then ``body``): printed by ``report``, written to
    ``--json PATH`` when given, and returned."""
    payload = envelope(command, machine, body)
    print(report(payload), flush=True)
    if args.json:
        write_json_atomic(args.json, payload)
        log(f'wrote {args.json}')
    return payload


# --- backbone: our VideoMAEv2ViT, eager and compiled, vs transformers' VideoMAEModel (SDPA) ---------------------------
def add_backbone_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'backbone', parents=[common_parser()],
        help='clips/s of VideoMAEv2ViT (eager, compiled) vs transformers VideoMAEModel (SDPA), same weights and dtype',
        description='Inference throughput (clips/s) of our backbone (VideoMAEv2ViT.forward_tokens), eager and with '
                    "its blocks compiled, and of transformers' VideoMAEModel with SDPA attention, same size, same "
                    'weights, same dtype, timed in interleaved repeats; plus FLOPs per clip, the fraction of the '
                    'matmul peak measured first, the compile time (apart from clips/s) and the targets.')
    add_clip_options(parser, ARCH_PRESETS, 'vit_small', 'backbone preset', 'clips per forward')
    parser.add_argument('--dtypes', nargs='+', default=['fp32', 'bf16'], choices=sorted(DTYPES),
                        help='dtypes to run; every model and the input are cast (default: fp32 bf16)')
    parser.add_argument('--no-compile', action='store_true',
                        help='skip the compiled rows (torch.compile needs a C++ compiler on CPU, Triton on CUDA; '
                             'where it cannot run, the rows are skipped with the reason)')
    parser.add_argument('--profile', action='store_true',
                        help='after timing, profile one forward of each model per dtype (torch.profiler) and print '
                             'the top operators by self time')
    parser.set_defaults(func=run_backbone)


def run_backbone(args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`backbone.bench.bench_backbone`; print the report; return (and optionally write) the payload."""
    from backbone.bench import bench_backbone, format_backbone_report

    device, machine = prepare(args.device)
    try:
        result = bench_backbone(args.arch, frames=args.frames, img_size=args.img_size, batch=args.batch,
                                dtypes=args.dtypes, warmup=args.warmup, repeats=args.repeats, device=device,
                                peak_size=args.peak_size, seed=args.seed, compiled=not args.no_compile,
                                profile=args.profile, log=log)
    except ImportError as exc:
        raise SystemExit(str(exc)) from exc
    for text in result.pop('profiles'):
        print(text)
    return finish(args, 'backbone', machine, result, format_backbone_report)


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
    """Run :func:`feature_store.bench.bench_store`; print the report; return (and optionally write) the payload."""
    from feature_store.bench import bench_store, format_store_report, store_summary

    # numpy and h5py read on this thread only, so torch's thread count plays no part; the load is still recorded.
    machine = machine_info(torch.device('cpu'))
    tmpdir = args.tmpdir or tempfile.gettempdir()
    log(f'store: {args.num_videos} videos x {args.rows} rows x {args.dim} dims under {tmpdir}, '
        f'{args.repeats} rounds')
    bench = bench_store(tmpdir, num_videos=args.num_videos, rows=args.rows, dim=args.dim, window=args.window,
                        num_windows=args.num_windows, repeats=args.repeats, seed=args.seed)
    body = {'config': bench['params'] | {'seed': args.seed, 'tmpdir': tmpdir}, **store_summary(bench['results']),
            'results': bench['results']}
    return finish(args, 'store', machine, body, format_store_report)


# --- extract: our feature extractor vs the official per-window loop, over one whole video -----------------------------
def add_extract_command(subparsers: argparse._SubParsersAction) -> None:
    common = common_parser(('threads', 'device', 'seed', 'json'), helps={
        'threads': "torch intra-op threads of the official loop, and the most ours gets from the extractor's rule "
                   f'(all cores when decoding is cheap; torch default: {torch.get_num_threads()} here)',
        'seed': 'seed of the generated video (both models get the same weights: --checkpoint, or one random init)'})
    parser = subparsers.add_parser(
        'extract', parents=[common],
        help='feature extraction over a whole video: our extractor (per dtype) vs the official per-window loop',
        description="Runs the official VideoMAE V2 TAD extraction loop (one decord get_batch per window, batch 1, "
                    "fp32, explicit attention) and ours (decode once, batched, fused attention) in each --dtypes on "
                    "the same video with the same weights, and reports the whole-video time, its decoding share and "
                    "the ratio: measured over every window, or projected from windows spread evenly over the video "
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
                        help='windows run through the models, spread evenly over the whole video, from which the '
                             'whole-video times are projected; 0 = every window (default: every window on CUDA, '
                             'one --batch-size but at least 8 on the CPU)')
    parser.add_argument('--batch-size', type=positive_int, default=None,
                        help="windows per forward in our loop; the official loop uses 1 (default: the extractor's, "
                             '16 on CUDA and 4 on the CPU)')
    parser.add_argument('--dtypes', '--dtype', nargs='+', default=['fp32', 'bf16'], choices=('fp32', 'bf16'),
                        help='our compute dtypes, one run of our loop each; the official loop is fp32 '
                             '(default: fp32 bf16)')
    parser.add_argument('--img-size', type=positive_int, default=224,
                        help='side the frames are squashed to (default: %(default)s)')
    parser.add_argument('--no-decode-only', action='store_true',
                        help='when sampling windows, project the official decoding of every window from the sampled '
                             'ones instead of timing it without the model')
    parser.set_defaults(func=run_extract)


def run_extract(args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`feature_store.bench_extract.bench_extract`; print the report; return (and optionally write) it."""
    from feature_store.bench_extract import bench_extract, default_max_windows, extract_summary, format_extract_report

    from feature_store.extract import default_batch_size

    device, machine = prepare(args.device)
    args.batch_size = args.batch_size or default_batch_size(device)
    video = Path(args.video) if args.video else bench_video_path(args.cache_dir, args.video_seconds, args.seed,
                                                                 log=log)
    max_windows = default_max_windows(args.batch_size, device) if args.max_windows is None else args.max_windows or None
    windows = 'every window' if max_windows is None else f'{max_windows} windows spread over the video'
    log(f'extract: {args.arch} at {args.img_size} px on {video}, {windows}, dtypes {" ".join(args.dtypes)}, '
        f'device {device}, {torch.get_num_threads()} threads')
    result = bench_extract(video, args.arch, checkpoint=args.checkpoint, img_size=args.img_size,
                           batch_size=args.batch_size, dtypes=args.dtypes, device=str(device),
                           max_windows=max_windows, decode_only=not args.no_decode_only, log=log)
    config = {'arch': args.arch, 'checkpoint': args.checkpoint, 'video': str(video), 'img_size': args.img_size,
              'max_windows': max_windows or 0, 'batch_size': args.batch_size, 'dtypes': args.dtypes,
              'device': str(device), 'threads': torch.get_num_threads(), 'seed': args.seed}
    return finish(args, 'extract', machine, {'config': config, **extract_summary(result), 'result': result},
                  format_extract_report)


# --- memory: peak resident memory of extraction, a short vs a long video ----------------------------------------------
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
    """Run :func:`feature_store.bench_memory.bench_memory`; print the report; return (and optionally write) it."""
    from feature_store.bench_memory import bench_memory, format_memory_report, memory_summary

    machine = machine_info(torch.device('cpu'))
    videos = args.videos or [bench_video_path(args.cache_dir, s, args.seed, MEMORY_VIDEO, log=log)
                             for s in args.seconds]
    extract_args = ['--arch', args.arch, '--resize', str(args.img_size), '--batch-size', str(args.batch_size),
                    '--device', 'cpu']
    rows = bench_memory(*videos, backends=args.backends, num_workers=args.num_workers, extract_args=extract_args,
                        log=log)
    config = {'videos': [str(v) for v in videos], 'arch': args.arch, 'img_size': args.img_size,
              'batch_size': args.batch_size, 'extract_args': extract_args, 'seed': args.seed}
    return finish(args, 'memory', machine, {'config': config, **memory_summary(rows), 'rows': rows},
                  format_memory_report)


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
    """Run :func:`backbone.bench_pretrain.bench_pretrain`; print the report; return (and optionally write) it."""
    from backbone.bench_pretrain import bench_pretrain, format_pretrain_report, pretrain_summary

    device, machine = prepare(args.device)
    log(f'pretrain: {args.arch}, {args.frames}x{args.img_size}px, batch {args.batch}, {args.dtype}, '
        f'{args.warmup} + {args.steps} steps per mode, device {device}, {torch.get_num_threads()} threads')
    result = bench_pretrain(args.arch, args.batch, img_size=args.img_size, frames=args.frames, steps=args.steps,
                            warmup=args.warmup, device=device, dtype=args.dtype, fused_attn=args.fused_attn,
                            with_cp=args.with_cp, threads=args.threads, seed=args.seed, log=log)
    return finish(args, 'pretrain', machine, pretrain_summary(result), format_pretrain_report)


# --- all: every benchmark a GPU run needs, one JSON -------------------------------------------------------------------
#: What ``all`` runs: section name -> the command line of one subcommand (options every command takes, as --device,
#: are added). ``full`` is sized for one recent GPU in at most 8 minutes, an estimate (no GPU has run it yet): about
#: 2-3 min compiling 4 backbone graphs, 1.5 min for the official ViT-g loop over the 447 windows of a 60-s video, 1 min
#: for ours in fp32 and bf16, under 1 min for the rest. ``tiny`` runs on a CPU in well under a minute.
ALL_PLANS: dict[str, dict[str, list[str]]] = {
    'full': {
        'store': ['store'],
        'pretrain': ['pretrain', '--arch', 'vit_base', '--batch', '8', '--warmup', '2', '--steps', '5'],
        'backbone_vit_base': ['backbone', '--arch', 'vit_base', '--batch', '8', '--warmup', '3', '--repeats', '10'],
        'backbone_vit_giant': ['backbone', '--arch', 'vit_giant', '--batch', '2', '--warmup', '2', '--repeats', '5'],
        'extract': ['extract', '--arch', 'vit_giant', '--img-size', '224', '--video-seconds', '60', '--max-windows',
                    '0', '--dtypes', 'fp32', 'bf16'],
    },
    'tiny': {
        'store': ['store', '--num-videos', '5', '--rows', '16', '--dim', '8', '--window', '4', '--num-windows', '10',
                  '--repeats', '1'],
        'pretrain': ['pretrain', '--arch', 'vit_test', '--img-size', '32', '--frames', '4', '--warmup', '0',
                     '--steps', '1'],
        'backbone_vit_test': ['backbone', '--arch', 'vit_test', '--frames', '4', '--img-size', '32', '--batch', '2',
                              '--warmup', '0', '--repeats', '1', '--peak-size', '64'],
        'extract': ['extract', '--arch', 'vit_test', '--img-size', '32', '--video-seconds', '2', '--max-windows', '0',
                    '--batch-size', '4', '--dtypes', 'fp32', 'bf16'],
    },
}
#: Options of ``all`` passed on to the sections whose command takes them.
PASSED_ON = {'device': ('backbone', 'extract', 'pretrain'), 'threads': ('backbone', 'extract', 'pretrain'),
             'seed': ('backbone', 'extract', 'pretrain', 'store'), 'cache_dir': ('extract',),
             'no_compile': ('backbone',)}


def add_all_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'all', parents=[common_parser(('threads', 'device', 'seed', 'json'),
                                      device='cuda' if torch.cuda.is_available() else 'cpu',
                                      helps={'device': "'cpu' or 'cuda[:N]'; the full plan needs a GPU, and the "
                                                       "default is cuda where there is one"})],
        help='backbone, extract, pretrain and store in one run and one JSON, sized for one GPU (--tiny: a CPU)',
        description='Runs ' + '; '.join(' '.join(argv) for argv in ALL_PLANS['full'].values()) + '. Sized to finish '
                    'in at most 8 minutes on one recent GPU (an estimate). The JSON is rewritten after each section; '
                    'a section that fails records its error there, the others still run, and the exit code is 1.')
    parser.add_argument('--tiny', action='store_true',
                        help='vit_test, a 2-s video, 1 repeat: a smoke run on a CPU in well under a minute')
    parser.add_argument('--sections', nargs='+', default=None, metavar='NAME',
                        help=f"run only these sections (full: {' '.join(ALL_PLANS['full'])}; tiny: "
                             f"{' '.join(ALL_PLANS['tiny'])})")
    parser.add_argument('--cache-dir', default='work_dirs/bench',
                        help='where the generated video is kept between runs (default: %(default)s)')
    parser.add_argument('--no-compile', action='store_true', help='skip the compiled backbone rows')
    parser.set_defaults(func=run_all, validate=validate_all)


def validate_all(args: argparse.Namespace) -> str | None:
    plan = ALL_PLANS['tiny' if args.tiny else 'full']
    if args.sections and (unknown := sorted(set(args.sections) - set(plan))):
        return f"--sections: unknown {unknown}; this plan has {' '.join(plan)}"
    if not args.tiny and torch.device(args.device).type == 'cpu':
        return f'--device {args.device}: the full plan (ViT-g) is sized for a GPU; on a CPU add --tiny'
    return None


def section_argv(args: argparse.Namespace, argv: list[str]) -> list[str]:
    """A section's command line with the options of ``all`` its command takes."""
    extra = []
    for name, commands in PASSED_ON.items():
        value = getattr(args, name)
        if argv[0] in commands and value is not None and value is not False:
            flag = '--' + name.replace('_', '-')
            extra += [flag] if value is True else [flag, str(value)]
    return [*argv, *extra]


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Run every section of the plan in this process; rewrite ``--json`` after each; return the combined payload
    (``sections``: name -> the command's payload, or ``{'error', 'argv'}``; ``errors``; ``seconds``)."""
    plan_name = 'tiny' if args.tiny else 'full'
    plan = {k: v for k, v in ALL_PLANS[plan_name].items() if not args.sections or k in args.sections}
    device, machine = prepare(args.device)
    body: dict[str, Any] = {'plan': plan_name, 'sections': {}, 'errors': {}, 'seconds': {}, 'complete': False}
    parser, threads = build_parser(), torch.get_num_threads()
    for name, argv in plan.items():
        argv = section_argv(args, argv)
        log(f'all: section {name}: benchmark.py {" ".join(argv)}')
        start = time.perf_counter()
        try:
            section = parser.parse_args(argv)
            if (problem := getattr(section, 'validate', lambda _: None)(section)) is not None:
                raise ValueError(f'{argv[0]}: {problem}')
            if getattr(section, 'threads', None) is not None:
                torch.set_num_threads(section.threads)
            body['sections'][name] = section.func(section)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - one failed section must not stop the others
            message = f'{type(exc).__name__}: {exc}'
            log(f'all: section {name} failed: {message}')
            body['sections'][name] = {'error': message, 'argv': argv}
            body['errors'][name] = message
        finally:
            torch.set_num_threads(threads)
        body['seconds'][name] = time.perf_counter() - start
        if args.json:
            write_json_atomic(args.json, envelope('all', dict(machine), body))
    body['complete'] = True
    payload = envelope('all', machine, body)
    print(f"all: {len(plan)} sections in {sum(body['seconds'].values()):.0f} s on {device}; failed: "
          f"{', '.join(body['errors']) or 'none'}")
    if args.json:
        write_json_atomic(args.json, payload)
        log(f'wrote {args.json}')
    return payload


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
    add_all_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    validate = getattr(args, 'validate', None)
    if validate is not None and (problem := validate(args)):
        parser.error(f'{args.command}: {problem}')
    if getattr(args, 'threads', None) is not None:
        torch.set_num_threads(args.threads)
    payload = args.func(args)
    return 1 if payload.get('errors') else 0


if __name__ == '__main__':
    sys.exit(main())
