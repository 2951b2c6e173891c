#!/usr/bin/env python
"""Frame-level AVA mAP@0.5 of a submission csv (official ActivityNet protocol, or mmaction2's variant).

Usage::

    python tools/eval_ava.py --gt ava_val_v2.2.csv --pred predictions.csv \\
        --label-map ava_action_list_v2.2_for_activitynet_2019.pbtxt \\
        --exclude ava_val_excluded_timestamps_v2.2.csv --out work_dirs/ava/result.json [--protocol mmaction2]

Prints the AP of every label-map class and the mean, next to three references: random detections on the
submission's own boxes (every box with every class, uniform random scores), the same on as many randomly placed boxes
(no localisation either; ``--baseline-seeds 0`` skips both) and perfect scores on its boxes (1 where a box overlaps a
true box of the class, else 0: the ceiling those boxes allow). ``--out`` writes the numbers as JSON and the
per-class chart next to it (``result.png``; ``--plot`` to choose another path). A thin command line over
:func:`tasks.detection.evaluation.evaluate_and_report`; docs/ava.md#evaluation says how the two protocols differ.

Exit status: 0 on success, 2 for a missing or malformed file (the message names the file and line).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='AVA frame-level mAP at IoU 0.5')
    parser.add_argument('--gt', required=True, help='ground-truth csv (ava_val_v2.2.csv)')
    parser.add_argument('--pred', required=True,
                        help='submission csv: video_id,timestamp,x1,y1,x2,y2,action_id,score (no header)')
    parser.add_argument('--label-map', required=True, help='label-map pbtxt listing the evaluated classes')
    parser.add_argument('--exclude', help='excluded-timestamps csv (video_id,timestamp)')
    parser.add_argument('--out', help='write the result as JSON here (and the chart next to it)')
    parser.add_argument('--plot', help='per-class AP chart (PNG); default: --out with .png, none without --out')
    parser.add_argument('--protocol', choices=['official', 'mmaction2'], default='official',
                        help='official ActivityNet protocol (default) or mmaction2 1.1.0\'s variant')
    parser.add_argument('--iou', type=float, default=0.5, help='matching IoU threshold (default 0.5)')
    parser.add_argument('--baseline-seeds', type=int, default=3,
                        help='seeds averaged for the random-detection baseline (0: skip it)')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        from tasks.data.annotations import AnnotationError
        from tasks.detection.evaluation import evaluate_and_report
    except ImportError as err:
        print(f'eval_ava: error: cannot import the suite ({err}); install it with `pip install -e .` or set '
              'PYTHONPATH to the repository root', file=sys.stderr)
        return 2
    try:
        evaluate_and_report(args.gt, args.pred, args.label_map, args.exclude or None, protocol=args.protocol,
                            iou_threshold=args.iou, baseline_seeds=args.baseline_seeds, out=args.out, plot=args.plot)
    except AnnotationError as err:
        print(f'eval_ava: error: {err}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
