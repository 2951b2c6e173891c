#!/usr/bin/env python
"""Train from a config with the mmengine Runner (pre-training: ``configs/pretrain/``; fine-tuning:
``configs/recognition/``, ``configs/detection/``, ``configs/localization/``).

Usage::

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CHECKPOINT]] [--amp [{bf16,fp16}]]
                          [--cfg-options KEY=VALUE ...]
    torchrun --nproc_per_node 8 tools/train.py CONFIG --launcher pytorch

The library behind it is :func:`tasks.engine.runner.train_config`. The repository must be importable
(``pip install -e .`` or ``PYTHONPATH=<repo root>``): configs load our code with ``custom_imports``.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from tasks.engine.runner import add_runner_options, train_config


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Train a model from an mmengine config')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='folder for logs, checkpoints and the loss curve (default: the config\'s '
                                           'work_dir, else ./work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='CHECKPOINT',
                        help='resume training (model, optimiser, schedulers, epoch and iteration) from CHECKPOINT, or '
                             'without a value from the newest checkpoint in the work directory')
    parser.add_argument('--amp', nargs='?', const='bf16', choices=['bf16', 'fp16'], default=None,
                        help='mixed precision: without a value bfloat16 autocast (CPU or GPU, no loss scaling); '
                             '"fp16": float16 autocast with dynamic loss scaling (mmengine AmpOptimWrapper, GPU only). '
                             'Default: the config\'s optim_wrapper (float32 in every recipe)')
    add_runner_options(parser, 'train_dataloader.batch_size=8 train_cfg.max_epochs=10')
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = get_args_parser().parse_args(argv)
    train_config(args.config, work_dir=args.work_dir, resume=args.resume, cfg_options=args.cfg_options,
                 launcher=args.launcher, local_rank=args.local_rank, amp=args.amp)


if __name__ == '__main__':
    main()
