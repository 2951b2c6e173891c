#!/usr/bin/env python
"""Evaluate temporal action detections: mAP per tIoU and their average (THUMOS14 protocol, docs/thumos14.md#evaluation).

Usage::

    python tools/eval_tad.py --gt GT.json --pred PRED.json [--subset test] [--tiou 0.3 0.4 0.5 0.6 0.7]
                             [--ambiguous-aware] [--out RESULT.json] [--plot RESULT.png] [--per-class]

``GT.json``: ActionFormer or OpenTAD annotations (detected from the content; ``--format`` forces one).
``PRED.json``: ``{"results": {video: [{"segment": [s, e], "label": name, "score": x}]}}``. ``--subset`` is
``train`` (THUMOS14 validation videos), ``test`` or a subset name as written in the file. ``--ambiguous-aware``
applies the THUMOS14 kit's Ambiguous rule on top of the ActivityNet evaluator. Prints a table with the
random-detection baseline, writes per-class AP to ``--out``, the mAP-vs-tIoU chart to ``--plot`` (default: ``--out``
with ``.png``) and the per-class AP chart next to it (``<plot name>_per_class.png``). Exit status 2 on bad input.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tasks.data.annotations import AnnotationError
from tasks.localization.evaluation import DEFAULT_TIOUS, evaluate_and_report


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='eval_tad', description=__doc__.splitlines()[0])
    parser.add_argument('--gt', required=True, help='ground truth: ActionFormer or OpenTAD json')
    parser.add_argument('--pred', required=True, help='detections: {"results": {video: [{segment, label, score}]}}')
    parser.add_argument('--subset', default='test', help='train | test | a subset name in GT.json (default test)')
    parser.add_argument('--tiou', type=float, nargs='+', default=list(DEFAULT_TIOUS), help='thresholds')
    parser.add_argument('--ambiguous-aware', action='store_true',
                        help='drop unmatched detections overlapping an Ambiguous segment (THUMOS14 kit rule)')
    parser.add_argument('--format', choices=('auto', 'actionformer', 'opentad'), default='auto',
                        help='format of GT.json (default: detected)')
    parser.add_argument('--class-map', help="OpenTAD category_idx.txt (default: next to GT.json if present)")
    parser.add_argument('--out', help='write the results (mAP, per-class AP, counts) as json here')
    parser.add_argument('--plot', help='mAP-vs-tIoU PNG (default: --out with .png)')
    parser.add_argument('--per-class', action='store_true', help='also print per-class AP')
    parser.add_argument('--no-baseline', action='store_true', help='skip the random-detection baseline')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        evaluate_and_report(args.gt, args.pred, subset=args.subset, tious=args.tiou,
                            ambiguous_aware=args.ambiguous_aware, ann_format=args.format, class_map=args.class_map,
                            out=args.out, plot=args.plot, per_class=args.per_class, with_baseline=not args.no_baseline)
    except (AnnotationError, ValueError, FileNotFoundError) as e:
        print(f'eval_tad: error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
