#!/usr/bin/env python
"""Evaluate temporal action detections: mAP per tIoU and their average (THUMOS14 protocol, docs/thumos14.md#evaluation).

Usage::

    python tools/eval_tad.py --gt GT.json --pred PRED.json [--subset test] [--tiou 0.3 0.4 0.5 0.6 0.7]
                             [--ambiguous-aware] [--out RESULT.json] [--plot RESULT.png] [--per-class]

``GT.json``: ActionFormer or OpenTAD annotations (detected from the content; ``--format`` forces one).
``PRED.json``: ``{"results": {video: [{"segment": [s, e], "label": name, "score": x}]}}``. ``--subset`` is
``train`` (THUMOS14 validation videos), ``test`` or a subset name as written in the file. The evaluator is the
ActivityNet one (duplicate ground truth removed, greedy score-ordered matching, all-point interpolated AP; Ambiguous
segments are not a class); ``--ambiguous-aware`` adds the THUMOS14 kit's rule that drops unmatched detections
overlapping an Ambiguous segment. Prints a table with the random-detection baseline, writes per-class AP to
``--out``, the mAP-vs-tIoU chart to ``--plot`` (default: ``--out`` with ``.png``) and the per-class AP chart next to
it (``<plot name>_per_class.png``). Exit status 2 on bad input.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tasks.data.annotations import AnnotationError
from tasks.localization.evaluation import (
    DEFAULT_TIOUS, GroundTruth, evaluate_detection, format_table, plot_map_vs_tiou, plot_per_class_ap, random_baseline,
    detect_format, read_annotations, read_predictions, resolve_subset,
)


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
        fmt = detect_format(args.gt, args.format)
        ann = read_annotations(args.gt, fmt, args.class_map)
        subset = resolve_subset(ann, args.subset, fmt, args.gt)
        gt = GroundTruth.from_annotations(ann, subset)
        preds = read_predictions(args.pred)
        result = evaluate_detection(gt, preds, args.tiou, args.ambiguous_aware)
    except (AnnotationError, ValueError, FileNotFoundError) as e:
        print(f'eval_tad: error: {e}', file=sys.stderr)
        return 2
    durations = {v.video_id: v.duration for v in ann.subset(*subset)}
    baseline = None if args.no_baseline else random_baseline(gt, args.tiou, args.ambiguous_aware,
                                                             durations=durations)
    print(f'{args.gt} subset {subset}: {len(gt.videos)} videos, {gt.num_instances()} instances '
          f'({gt.removed} duplicates/empty removed), {len(result.classes)} classes; '
          f'{result.num_predictions} detections'
          + (f' ({result.ignored["videos"]} on other videos and {result.ignored["classes"]} of other classes '
             'ignored)' if any(result.ignored.values()) else '')
          + ('; Ambiguous-aware' if args.ambiguous_aware else ''))
    print(format_table(result, baseline, per_class=args.per_class))
    if args.out:
        payload = result.to_dict()
        payload.update(gt=str(args.gt), pred=str(args.pred), subset=subset, videos=len(gt.videos))
        if baseline is not None:
            payload['random_baseline'] = {'average_mAP': baseline.average_map,
                                          'mAP': {f'{t:.2f}': float(m) for t, m in
                                                  zip(baseline.tious, baseline.map_per_tiou)}}
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f'.{out.name}.tmp')
        tmp.write_text(json.dumps(payload, indent=1) + '\n')
        os.replace(tmp, out)
        print(f'wrote {out}')
    plot = args.plot or (str(Path(args.out).with_suffix('.png')) if args.out else None)
    if plot:
        print(f'wrote {plot_map_vs_tiou(result, plot, baseline)}')
        per_class = Path(plot).with_name(f'{Path(plot).stem}_per_class.png')
        print(f'wrote {plot_per_class_ap(result, per_class, baseline)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
