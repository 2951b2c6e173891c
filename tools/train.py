#!/usr/bin/env python
"""Train from a config with the mmengine Runner (VideoMAE V2 pre-training: ``configs/pretrain/``).

Usage::

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CHECKPOINT]] [--cfg-options KEY=VALUE ...]
    torchrun --nproc_per_node 8 tools/train.py CONFIG --launcher pytorch

Parse the arguments, merge them into the config, build the Runner, train (mmaction2's ``tools/train.py`` pattern).
The repository must be importable (``pip install -e .`` or ``PYTHONPATH=<repo root>``): configs load our code with
``custom_imports``.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from mmengine.config import Config, DictAction

from tasks.engine.runner import build_runner, cpu_backend, finish_distributed, resolve_work_dir, set_local_rank


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Train a model from an mmengine config')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='folder for logs, checkpoints and the loss curve (default: the config\'s '
                                           'work_dir, else ./work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CHECKPOINT',
                        help='resume training (model, optimiser, schedulers, epoch and iteration) from CHECKPOINT, or '
                             'without a value from the newest checkpoint in the work directory')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config settings, e.g. train_dataloader.batch_size=8 '
                             'train_cfg.max_epochs=10 (key=value pairs; lists as key="[a,b]")')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='distributed launcher: "pytorch" under torchrun')
    # torch.distributed.launch (not torchrun) passes --local-rank; accept it and hand it on as the environment does.
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0, help=argparse.SUPPRESS)
    return parser


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command line to the config."""
    cfg.launcher = args.launcher
    cfg.merge_from_dict(args.cfg_options)
    resolve_work_dir(cfg, args.work_dir, args.config)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None  # the Runner looks up `last_checkpoint` in the work directory
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.launcher != 'none':
        cpu_backend(cfg, 'tools/train.py')
    return cfg


def main(argv: Sequence[str] | None = None) -> None:
    args = get_args_parser().parse_args(argv)
    set_local_rank(args)
    cfg = merge_args(Config.fromfile(args.config), args)
    runner = build_runner(cfg)  # the config's own runner_type if it names one
    # Resuming reads an mmengine checkpoint, which pickles the message hub: allow exactly its classes under torch's
    # weights-only loading (torch >= 2.6 refuses them otherwise; docs/ecosystem.md, mmengine #1655).
    from tasks.engine.checkpoint import mmengine_checkpoint_globals

    with mmengine_checkpoint_globals():
        runner.train()
    finish_distributed()


if __name__ == '__main__':
    main()
