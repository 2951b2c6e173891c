#!/usr/bin/env python
"""Train from a config with the mmengine Runner (pre-training: ``configs/pretrain/``; fine-tuning:
``configs/recognition/``, ``configs/detection/``, ``configs/localization/``).

Usage::

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CHECKPOINT]] [--amp [{bf16,fp16}]] [--auto-scale-lr]
                          [--compile] [--cfg-options KEY=VALUE ...]
    torchrun --nproc_per_node 8 tools/train.py CONFIG --launcher pytorch

The config's lr is used as written: each recipe states the lr of its documented total batch (GPUs x per-GPU batch,
``auto_scale_lr.base_batch_size``). ``--auto-scale-lr`` scales it by this run's total batch / that one (mmaction2's
switch); without it a run with another total batch gets a one-line warning. ``--cfg-options data_root=DIR`` re-points
every dataloader (configs/README.md#data). Missing data files, and a training set smaller than one batch per process,
stop with a one-line message. ``--compile`` (or ``compile_backbone = True`` in the config) compiles the model's
transformer blocks with torch.compile in place: same results, same checkpoint keys
(docs/inference.md#compiling-the-backbone).

The library behind it is :func:`tasks.engine.runner.train_config`. The repository must be importable
(``pip install -e .`` or ``PYTHONPATH=<repo root>``): configs load our code with ``custom_imports``.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from tasks.engine.runner import DATA_ERRORS, add_runner_options, data_error_message, train_config


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
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the config\'s lr by this run\'s total batch (processes x '
                             'train_dataloader.batch_size) / auto_scale_lr.base_batch_size, the total batch the lr is '
                             'set for. Default: the lr as written (a warning when the total batch differs)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the model\'s transformer blocks in place (the config key '
                             'compile_backbone=True); checkpoints keep their keys; eager, with one line saying why, '
                             'where compilation is unavailable')
    add_runner_options(parser, 'data_root=DIR train_dataloader.batch_size=8 train_cfg.max_epochs=10')
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = get_args_parser().parse_args(argv)
    try:
        train_config(args.config, work_dir=args.work_dir, resume=args.resume, cfg_options=args.cfg_options,
                     launcher=args.launcher, local_rank=args.local_rank, amp=args.amp, auto_scale_lr=args.auto_scale_lr,
                     compile=args.compile)
    except DATA_ERRORS as e:  # the user's data, not a bug: the message without the traceback
        raise SystemExit(f'tools/train.py: {data_error_message(e)}') from None


if __name__ == '__main__':
    main()
