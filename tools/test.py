#!/usr/bin/env python
"""Test a checkpoint with a config's ``test_dataloader`` / ``test_evaluator`` through the mmengine Runner.

Usage::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out RESULTS.json] [--cfg-options KEY=VALUE ...]
    torchrun --nproc_per_node 8 tools/test.py CONFIG CHECKPOINT --launcher pytorch

Works for every task whose config has a test loop (classification, AVA, THUMOS14): parse the arguments, merge them
into the config, build the Runner, load CHECKPOINT, test, write the metrics (mmaction2's ``tools/test.py`` pattern).

* **CHECKPOINT is loaded strictly** (:func:`tasks.engine.runner.load_for_test`): every model weight must come from the file
  and every file weight must be used, so a wrong file stops the run instead of testing random weights. Accepted:
  mmengine checkpoints of the same config (``tools/train.py`` output), mmaction2 recognizer files, and official /
  HF VideoMAE files when the model's ViT is its ``backbone`` (official names under ``backbone.``, or the mmaction2
  layout for a stock ``Recognizer3D``). The config's ``load_from`` is ignored.
* **Per-metric outputs**: every metric in ``test_evaluator`` (a dict or a list, or an Evaluator dict's ``metrics``)
  whose class takes an ``out_dir`` argument and does not set it writes its files into the work directory
  (``VideoClsMetric``: ``cls_scores.npz``, ``cls_results.json``, ``cls_confusion.png``).
* **Results**: the metrics dict goes to ``<work_dir>/results.json`` (or ``--out``) on rank 0, and a short table is
  printed.

The repository must be importable (``pip install -e .`` or ``PYTHONPATH=<repo root>``).
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import os.path as osp
from collections.abc import Sequence
from typing import Any

from mmengine.config import Config, DictAction

from tasks.engine.runner import (StrictCheckpointHook, build_runner, cpu_backend, finish_distributed, resolve_work_dir,
                          set_local_rank)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Test a checkpoint with an mmengine config (strict loading)')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint to test: mmengine, mmaction2, official or HF layout; loaded '
                                           'strictly (the config\'s load_from is ignored)')
    parser.add_argument('--work-dir', help='folder for logs, metric outputs and results.json (default: the config\'s '
                                           'work_dir, else ./work_dirs/<config name>)')
    parser.add_argument('--out', help='write the metrics json here instead of <work_dir>/results.json')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config settings, e.g. test_dataloader.batch_size=1 '
                             'test_dataloader.dataset.ann_file=LIST (key=value pairs; lists as key="[a,b]")')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='distributed launcher: "pytorch" under torchrun')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0, help=argparse.SUPPRESS)
    return parser


def _metric_configs(evaluator: Any) -> list[Any]:
    """The metric config dicts of a ``test_evaluator``: one dict, a list of them, or ``dict(type=..., metrics=...)``."""
    if isinstance(evaluator, (list, tuple)):
        return [m for item in evaluator for m in _metric_configs(item)]
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        return _metric_configs(evaluator['metrics'])
    return [evaluator] if isinstance(evaluator, dict) else []


def _metric_class(metric_type: Any, scope: str | None) -> type | None:
    """The class a metric config's ``type`` names (a registered name, possibly ``scope.Name``, or a class)."""
    if inspect.isclass(metric_type):
        return metric_type
    from mmengine.registry import METRICS

    try:
        with METRICS.switch_scope_and_registry(scope) as registry:
            return registry.get(metric_type)
    except Exception:  # unknown here: the Runner will report it when it builds the evaluator
        return None


def fill_out_dirs(cfg: Config, out_dir: str) -> list[str]:
    """Set ``out_dir=out_dir`` in every test metric config whose class accepts ``out_dir`` and that leaves it unset.

    Returns:
        The ``type`` names of the metrics that got it.
    """
    filled = []
    for metric in _metric_configs(cfg.get('test_evaluator')):
        if 'out_dir' in metric or 'type' not in metric:
            continue
        cls = _metric_class(metric['type'], cfg.get('default_scope'))
        if cls is None:
            continue
        if 'out_dir' in inspect.signature(cls.__init__).parameters:
            metric['out_dir'] = out_dir
            filled.append(str(getattr(metric['type'], '__name__', metric['type'])))
    return filled


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command line to the config."""
    cfg.launcher = args.launcher
    cfg.merge_from_dict(args.cfg_options)
    resolve_work_dir(cfg, args.work_dir, args.config)
    cfg.work_dir = osp.abspath(cfg.work_dir)
    # We load CHECKPOINT ourselves, strictly (StrictCheckpointHook); mmengine's load_from would load non-strictly.
    cfg.load_from, cfg.resume = None, False
    fill_out_dirs(cfg, cfg.work_dir)
    if args.launcher != 'none':
        cpu_backend(cfg, 'tools/test.py')
    return cfg


def _jsonable(value: Any) -> Any:
    """Metric values as JSON: numpy / torch scalars and arrays become numbers and lists."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, 'tolist'):  # numpy and torch, scalars included
        return value.tolist()
    return value


def format_table(metrics: dict[str, Any]) -> str:
    """``name  value`` lines, numbers with 4 decimals."""
    if not metrics:
        return '(no metrics)'
    width = max(len(str(k)) for k in metrics)
    lines = []
    for key, value in metrics.items():
        value = _jsonable(value)
        text = f'{value:.4f}' if isinstance(value, float) else str(value)
        lines.append(f'{str(key):<{width}}  {text}')
    return '\n'.join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = get_args_parser().parse_args(argv)
    set_local_rank(args)
    cfg = merge_args(Config.fromfile(args.config), args)
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'tools/test.py: checkpoint {args.checkpoint} does not exist')
    runner = build_runner(cfg)
    runner.register_hook(StrictCheckpointHook(args.checkpoint))
    from tasks.engine.checkpoint import mmengine_checkpoint_globals

    with mmengine_checkpoint_globals():
        metrics = runner.test()
    finish_distributed()

    from mmengine.dist import is_main_process

    if is_main_process():
        out = args.out or osp.join(cfg.work_dir, 'results.json')
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
        with open(out, 'w') as f:
            json.dump(_jsonable(dict(metrics)), f, indent=2)
            f.write('\n')
        print(f'\n{format_table(dict(metrics))}\nmetrics written to {out}', flush=True)
    return dict(metrics)


if __name__ == '__main__':
    main()
