#!/usr/bin/env python
"""Evaluate a backbone across benchmarks in one command: the stages of a suite file, then one report.

    python tools/evaluate.py SUITE [--checkpoint NAME_OR_PATH] [--work-dir DIR] [--data-root DIR]
                             [--stages NAME ...] [--fresh]
    python tools/evaluate.py --compare DIR1 DIR2 ...

SUITE is a suite config (``configs/suites/``; the format: :mod:`tasks.evaluate.suite`). Each stage runs the tool a
user would, with its log in ``DIR/logs/``, and is re-used while its inputs are unchanged; a run stopped mid-stage
(Ctrl-C, a crash) resumes at that stage. The report (our result, the published figure, the difference and the
baseline per metric) is printed and written to ``DIR/report.md`` and ``DIR/results.json`` with the provenance of every
number. ``--compare`` lays the reports of several runs side by side.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as a plain script from a checkout
    sys.path.insert(0, str(ROOT))


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('suite', nargs='?', metavar='SUITE', help='suite config file (configs/suites/*.py)')
    parser.add_argument('--checkpoint', metavar='NAME_OR_PATH',
                        help="the backbone: a checkpoint file or a released name (default: the suite's checkpoint)")
    parser.add_argument('--work-dir', type=Path, help='outputs, logs and the report (default work_dirs/evaluate/'
                                                      '<suite file name>)')
    parser.add_argument('--data-root', help="instead of the suite's data_root")
    parser.add_argument('--stages', nargs='+', metavar='NAME', help='run only these stages (the ones they read must '
                                                                    'have up-to-date results from an earlier run)')
    parser.add_argument('--fresh', action='store_true',
                        help='redo the stages run even where their inputs are unchanged')
    parser.add_argument('--compare', nargs='+', metavar='DIR', help='print the reports of these runs side by side')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = get_args_parser()
    args = parser.parse_args(argv)
    if (args.suite is None) == (args.compare is None):
        parser.error('give a SUITE to run, or --compare DIR1 DIR2 ... (not both)')
    from backbone import CheckpointError
    from tasks.evaluate import StageError, SuiteError, compare_runs, load_suite, run_suite, write_report

    try:
        if args.compare:
            print(compare_runs(args.compare))
            return 0
        suite = load_suite(args.suite)
        work = args.work_dir or ROOT / 'work_dirs' / 'evaluate' / Path(args.suite).stem
        summary = run_suite(suite, work, checkpoint=args.checkpoint, stages=args.stages, fresh=args.fresh,
                            data_root=args.data_root)
        print(write_report(summary))
    except (SuiteError, StageError, CheckpointError) as err:
        print(f'\nevaluate stopped: {err}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('\nevaluate interrupted: the stage under way left no result; run the same command again to resume '
              'there', file=sys.stderr)
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
