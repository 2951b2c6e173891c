#!/usr/bin/env python
"""Evaluate a backbone across benchmarks in one command: the stages of a suite file, then one report.

    python tools/evaluate.py SUITE [--checkpoint NAME_OR_PATH] [--work-dir DIR] [--data-root DIR]
                             [--stages NAME ...] [--fresh] [--dry-run]
                             [--cfg-options STAGE.KEY=VALUE ...] [--set STAGE.PARAM=VALUE ...]
                             [--launcher {none,pytorch,slurm} --gpus N [--partition P]]
    python tools/evaluate.py --compare DIR1 DIR2 ...

SUITE is a suite config (``configs/suites/``; the format: :mod:`tasks.evaluate.suite`). Each stage runs the tool a
user would, with its log in ``DIR/logs/``, and is re-used while its inputs are unchanged; a run stopped mid-stage
(Ctrl-C, a crash) resumes at that stage. Before anything runs, every input the stages read under the data root is
checked. The report (our result, the published figure, the difference and the baseline per metric) is printed and
written to ``DIR/report.md`` and ``DIR/results.json`` with the provenance of every number, the stages' pictures beside
them. ``--dry-run`` prints the commands instead; ``--compare`` lays the reports of several runs side by side.
"""
from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Sequence
from typing import Any
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
    parser.add_argument('--dry-run', action='store_true',
                        help='print the command each stage would run (earlier outputs as <stage.output>); run nothing')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='STAGE.KEY=VALUE',
                        help="a config override for one stage (finetune.train_cfg.max_epochs=1), after the suite's own")
    parser.add_argument('--set', nargs='+', default=[], metavar='STAGE.PARAM=VALUE', dest='changes',
                        help="a stage parameter instead of the suite's (data.preset=tiny); VALUE is read as a Python "
                             'literal where it is one ([...], 3, True), else as a string')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'],
                        help="how every stage that can run distributed runs, instead of the suite's: one process, "
                             "torchrun on this machine, or slurm's srun (with --partition)")
    parser.add_argument('--gpus', type=int, help="processes (GPUs) of every distributed stage (default: each stage's "
                                                 'own where its launcher is of the same type, else 1)')
    parser.add_argument('--partition', help='slurm partition (--launcher slurm; alone: of the stages that use slurm)')
    parser.add_argument('--compare', nargs='+', metavar='DIR', help='print the reports of these runs side by side')
    return parser


def stage_assignments(items: Sequence[str], option: str, literal: bool) -> dict[str, dict[str, Any]]:
    """``['finetune.a.b=1']`` as ``{'finetune': {'a.b': '1'}}``; with ``literal``, values read as Python literals.

    Raises:
        argparse.ArgumentTypeError: an item that is not STAGE.KEY=VALUE (main turns it into a usage error).
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        target, sep, value = item.partition('=')
        stage, dot, key = target.partition('.')
        if not (sep and dot and stage and key):
            raise argparse.ArgumentTypeError(f'{option} {item}: expected STAGE.KEY=VALUE')
        if literal:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                pass  # a plain string
        out.setdefault(stage, {})[key] = value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = get_args_parser()
    args = parser.parse_args(argv)
    if (args.suite is None) == (args.compare is None):
        parser.error('give a SUITE to run, or --compare DIR1 DIR2 ... (not both)')
    if args.gpus is not None and args.gpus < 1:
        parser.error(f'--gpus {args.gpus}: a positive number of processes')
    if args.gpus is not None and args.launcher in (None, 'none'):
        parser.error('--gpus needs --launcher pytorch or slurm')
    try:
        changes = stage_assignments(args.changes, '--set', literal=True)
        options = {stage: [f'{k}={v}' for k, v in kv.items()]
                   for stage, kv in stage_assignments(args.cfg_options, '--cfg-options', literal=False).items()}
    except argparse.ArgumentTypeError as err:
        parser.error(str(err))
    given = {'type': args.launcher, 'gpus': args.gpus, 'partition': args.partition}
    launcher = {k: v for k, v in given.items() if v is not None} or None
    from backbone import CheckpointError
    from tasks.evaluate import (StageError, SuiteError, compare_runs, format_plan, load_suite, plan_suite, run_suite,
                                write_report)

    try:
        if args.compare:
            print(compare_runs(args.compare))
            return 0
        suite = load_suite(args.suite, changes, options, launcher)
        work = args.work_dir or ROOT / 'work_dirs' / 'evaluate' / Path(args.suite).stem
        if args.dry_run:
            print(format_plan(plan_suite(suite, work, checkpoint=args.checkpoint, stages=args.stages,
                                         data_root=args.data_root)))
            return 0
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
