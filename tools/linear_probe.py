#!/usr/bin/env python
"""Linear probe and k-NN on cached features: compare backbones without fine-tuning them.

Usage::

    python tools/linear_probe.py TRAIN.h5 VAL.h5 --labels TRAIN_LABELS [VAL_LABELS] [--out probe.json]

TRAIN.h5 and VAL.h5 are feature stores written by ``tools/extract_features.py`` (the same file when it holds both
splits); label files are mmaction2 video / raw-frame lists, SSv2 split json files or Kinetics csv files
(:func:`tasks.classification.probe.read_labels`). Prints top-1 (and top-5 with more than 5 classes) of both probes
and writes them with the settings to ``--out``. The methods: docs/classification.md#linear-probe-and-k-nn.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from feature_store import FeatureStoreError
from tasks.classification.probe import LinearProbeConfig, ProbeError, probe_stores
from tasks.data.annotations import AnnotationError
from tasks.data.files import write_json_atomic


def get_args_parser() -> argparse.ArgumentParser:
    defaults = LinearProbeConfig()
    parser = argparse.ArgumentParser(description='Linear probe and k-NN on pooled features from feature stores')
    parser.add_argument('train', metavar='TRAIN.h5', help='feature store of the training videos')
    parser.add_argument('val', metavar='VAL.h5', help='feature store of the validation videos (may be TRAIN.h5)')
    parser.add_argument('--labels', nargs='+', required=True, metavar='LABELS',
                        help='training label file, then optionally the validation one (video list, SSv2 json, '
                             'Kinetics csv); one file is used for both stores')
    parser.add_argument('--label-map', help='class names: SSv2 labels.json, or a text file with one class name a '
                                            'line in id order (Kinetics)')
    parser.add_argument('--pool', choices=['mean', 'centre'], default='mean',
                        help='per-video feature: the mean of the clips (default) or the middle clip')
    parser.add_argument('--allow-missing', action='store_true',
                        help='skip labelled videos that are not in the store instead of stopping')
    group = parser.add_argument_group('linear probe')
    group.add_argument('--epochs', type=int, default=defaults.epochs,
                       help=f'passes over the training set (default {defaults.epochs})')
    group.add_argument('--lr', type=float, default=None,
                       help='peak SGD learning rate (default: 1 / L, the safe gradient-descent step for the features)')
    group.add_argument('--weight-decay', type=float, default=defaults.weight_decay,
                       help=f'on the linear weight ({defaults.weight_decay}, as MAE)')
    group.add_argument('--warmup-epochs', type=int, default=defaults.warmup_epochs,
                       help=f'linear warm-up epochs ({defaults.warmup_epochs})')
    group.add_argument('--batch-size', type=int, default=None,
                       help='videos per step (default: the whole training set in one batch)')
    group = parser.add_argument_group('k-NN')
    group.add_argument('--k', type=int, default=20, help='neighbours (20)')
    group.add_argument('--temperature', type=float, default=0.07, help='vote weight exp(cos / T) (0.07)')
    group.add_argument('--vote', choices=['weighted', 'majority'], default='weighted',
                       help='temperature-weighted votes (DINO, default) or one vote per neighbour')
    parser.add_argument('--device', default='cpu', help='cpu or cuda (default cpu)')
    parser.add_argument('--seed', type=int, default=0, help='probe init and batch order (0)')
    parser.add_argument('--out', help='write the results json here')
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = get_args_parser().parse_args(argv)
    if len(args.labels) > 2:
        raise SystemExit('linear_probe: --labels takes one or two files (training, then validation)')
    config = LinearProbeConfig(epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay,
                               warmup_epochs=args.warmup_epochs, batch_size=args.batch_size, seed=args.seed)
    start = time.perf_counter()
    try:
        result = probe_stores(args.train, args.val, args.labels[0], args.labels[1] if len(args.labels) > 1 else None,
                              label_map=args.label_map, pool=args.pool, linear=config, k=args.k,
                              temperature=args.temperature, vote=args.vote, allow_missing=args.allow_missing,
                              device=args.device)
    except (ProbeError, AnnotationError, FeatureStoreError, FileNotFoundError) as err:
        print(f'linear_probe: {err}', file=sys.stderr)
        raise SystemExit(2) from None
    result.summary['seconds'] = round(time.perf_counter() - start, 3)
    s = result.summary
    print(f'{s["num_train"]} training / {s["num_val"]} validation videos, {s["num_classes"]} classes, '
          f'{s["feature_dim"]}-d features ({s["features"]["arch"]}), {s["seconds"]:.1f} s')
    print(f'linear probe lr {s["linear_config"]["lr_used"]:.4g} ({"given" if args.lr else "1 / L"}), '
          f'{args.epochs} epochs')
    for name, acc in (('linear probe', result.linear), (f'k-NN (k={args.k}, {args.vote})', result.knn)):
        print(f'{name:<24} ' + '  '.join(f'{key} {value:.4f}' for key, value in acc.items()))
    if args.out:
        write_json_atomic(args.out, result.to_dict())
        print(f'results written to {args.out}')
    return result.to_dict()


if __name__ == '__main__':
    main()
