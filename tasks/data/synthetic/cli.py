"""Command line of the synthetic benchmark generator (``tools/make_synthetic.py``,
``python -m tasks.data.synthetic``)."""
from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from .build import PRESETS, generate


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='Generate the embedded synthetic benchmarks (classification, AVA-like, THUMOS-like). A folder '
                    'that already holds a complete benchmark of the same preset, seed and generator version is '
                    'left as it is.')
    parser.add_argument('--out', required=True, help='destination folder')
    parser.add_argument('--preset', choices=sorted(PRESETS), default='default',
                        help="'tiny' for tests, 'default' for the main job (default: %(default)s)")
    parser.add_argument('--seed', type=int, default=0, help='non-negative random seed (default: %(default)s)')
    parser.add_argument('--workers', type=int, default=None,
                        help='rendering processes (default: one per CPU, at most 8; 1 = in-process)')
    parser.add_argument('--force', action='store_true', help='regenerate even if the folder is complete')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.seed < 0:
        get_args_parser().error('--seed must be >= 0')
    start = time.perf_counter()
    manifest = generate(args.out, args.preset, args.seed, workers=args.workers, force=args.force)
    print(f'done in {time.perf_counter() - start:.1f} s; counts: {manifest["counts"]}')
    return 0
