#!/usr/bin/env python
"""Test a checkpoint with a config's ``test_dataloader`` / ``test_evaluator`` through the mmengine Runner.

Usage::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out RESULTS.json] [--amp] [--compile]
                         [--cfg-options KEY=VALUE ...]
    torchrun --nproc_per_node 8 tools/test.py CONFIG CHECKPOINT --launcher pytorch

Works for every task whose config has a test loop (classification, AVA, THUMOS14). CHECKPOINT is loaded strictly:
every model weight must come from the file and every file weight must be used, so a wrong file stops the run instead
of testing random weights (mmengine checkpoints of the same config, mmaction2 recognizer files, official / HF files
for a model whose ViT is its ``backbone``); the config's ``load_from`` is ignored. Metrics that write files put them
in the work directory; the metrics go to ``<work_dir>/results.json`` (or ``--out``) and are printed as a table, by
rank 0 under a launcher. ``--cfg-options data_root=DIR`` re-points the test data (configs/README.md#data); a missing
or malformed data file stops with a one-line message. Videos that fail to decode are counted and left out
(docs/classification.md#test-protocols-and-metrics); a classification test set in which none decodes stops with a
message naming them. ``--compile`` (or ``compile_backbone = True`` in the config) compiles the model's transformer
blocks with torch.compile (same scores; docs/inference.md#compiling-the-backbone).
The library behind it is :func:`tasks.engine.runner.evaluate_checkpoint`.

The repository must be importable (``pip install -e .`` or ``PYTHONPATH=<repo root>``).
"""
from __future__ import annotations

import argparse
import os.path as osp
from collections.abc import Sequence
from typing import Any

from tasks.classification.metric import NoDecodedVideoError
from tasks.engine.runner import DATA_ERRORS, add_runner_options, data_error_message, evaluate_checkpoint


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Test a checkpoint with an mmengine config (strict loading)')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint to test: mmengine, mmaction2, official or HF layout; loaded '
                                           'strictly (the config\'s load_from is ignored)')
    parser.add_argument('--work-dir', help='folder for logs, metric outputs and results.json (default: the config\'s '
                                           'work_dir, else ./work_dirs/<config name>)')
    parser.add_argument('--out', help='write the metrics json here instead of <work_dir>/results.json')
    parser.add_argument('--amp', action='store_true',
                        help='test under bfloat16 autocast on the model\'s device (CPU or CUDA); scores and decoding '
                             'stay float32')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the model\'s transformer blocks (the config key compile_backbone=True); '
                             'eager, with one line saying why, where compilation is unavailable')
    add_runner_options(parser, 'data_root=DIR test_dataloader.batch_size=1')
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = get_args_parser().parse_args(argv)
    from backbone import RELEASED, is_released_name  # a released name is fetched by the loader (docs/checkpoints.md)

    if not osp.isfile(args.checkpoint) and not is_released_name(args.checkpoint):
        raise SystemExit(f'tools/test.py: checkpoint {args.checkpoint} does not exist and is not a released '
                         f'checkpoint name ({", ".join(RELEASED)})')
    try:
        return evaluate_checkpoint(args.config, args.checkpoint, work_dir=args.work_dir, out=args.out,
                                   cfg_options=args.cfg_options, launcher=args.launcher, local_rank=args.local_rank,
                                   amp=args.amp, compile=args.compile)
    except NoDecodedVideoError as e:  # the user's data, not a bug: the message without the traceback
        raise SystemExit(f'tools/test.py: {e}') from None
    except DATA_ERRORS as e:  # a missing or malformed data file: likewise
        raise SystemExit(f'tools/test.py: {data_error_message(e)}') from None


if __name__ == '__main__':
    main()
