#!/usr/bin/env python
"""The main job behind ``make demo``: the whole suite on the embedded synthetic benchmark (:mod:`tasks.demo`).

    python tools/demo.py [--preset default] [--work-dir work_dirs/demo] [--data-root data/synthetic] [--fresh]
                         [--stages data pretrain ...]

Generates the benchmark, pre-trains a tiny VideoMAE V2 with dual masking, extracts features into the HDF5 store,
and evaluates classification (linear probe and k-NN, fine-tune with multi-view test), AVA-like detection and
THUMOS-like localization; prints one results table and leaves ``results.json`` and the pictures in the work folder.
A second run re-uses the cached benchmark, weights, features and trained models (``--fresh`` to redo everything).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as a plain script from a checkout
    sys.path.insert(0, str(ROOT))

from tasks.demo import STAGES, Demo, DemoError, run  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--preset', default='default', choices=['default', 'tiny'],
                        help='synthetic benchmark preset (default; tiny: seconds, for tests)')
    parser.add_argument('--work-dir', type=Path, default=ROOT / 'work_dirs' / 'demo')
    parser.add_argument('--data-root', type=Path, default=None,
                        help='where the benchmark is generated (default data/synthetic; data/synthetic-tiny for tiny)')
    parser.add_argument('--fresh', action='store_true', help='ignore cached stages and redo everything')
    parser.add_argument('--stages', nargs='+', choices=list(STAGES), default=None,
                        help='run only these stages (each needs the results of the ones before it, from the cache)')
    args = parser.parse_args(argv)
    default_root = 'synthetic' if args.preset == 'default' else f'synthetic-{args.preset}'
    data_root = args.data_root or ROOT / 'data' / default_root
    demo = Demo(work_dir=args.work_dir.resolve(), data_root=data_root.resolve(), preset=args.preset, fresh=args.fresh)
    try:
        run(demo, args.stages)
    except DemoError as err:
        print(f'\ndemo stopped: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
