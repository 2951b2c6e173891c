#!/usr/bin/env python
"""Classify or localize actions in one's own videos with a config and its checkpoint (docs/inference.md).

Usage::

    python tools/infer.py VIDEO... --config CFG --checkpoint CKPT [--out FILE.json|FILE.csv] [--topk K]
                          [--long [--stride N]] [--labels NAMES] [--device D] [--compile]

* A classification config (``configs/recognition/``): each video with the config's test protocol (its clips x
  crops, softmax per view, then the mean), the top-k classes printed; ``--long`` classifies an untrimmed video in
  sliding windows and draws a timeline of the top classes (``<video id>.timeline.png``).
* An ActionFormer config (``configs/localization/thumos14/``): features extracted on the fly with the settings of
  the feature store the detector was trained on (``--features STORE.h5``, or the config's store), then the detected
  segments (start, end in seconds, class, score) printed and drawn (``<video id>.segments.png``).

The checkpoint is loaded strictly: a file that does not fit the config's model stops the run, naming the keys.
``--compile`` compiles the backbone's transformer blocks (torch.compile, :mod:`backbone.compile`; same outputs;
docs/inference.md#compiling-the-backbone): worth it for many or long videos, mostly on a GPU. The first batch pays
the compilation, so the speed line on stderr gives it apart from the steady state; where compilation is unavailable
one line says why and the run stays eager.
Pictures go to ``--plot-dir``, by default the folder of ``--out``, else the current folder. An error (a missing video
or checkpoint, a config of another task, a checkpoint that does not fit) ends the run with a one-line message and
exit status 1.

The library behind it is :mod:`tasks.classification.infer` and :mod:`tasks.localization.infer`.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmengine.config import DictAction

if TYPE_CHECKING:
    from backbone.timing import ForwardTimer


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Classify or localize actions in videos with a config and checkpoint')
    parser.add_argument('videos', nargs='+', metavar='VIDEO', help='video files')
    parser.add_argument('--config', required=True, help='a classification or ActionFormer config')
    parser.add_argument('--checkpoint', required=True, help='the model\'s weights (loaded strictly)')
    parser.add_argument('--out', metavar='FILE', help='write the results as .json or .csv')
    parser.add_argument('--topk', type=int, default=5, help='classes per video or window, segments printed and '
                                                            'drawn per video (default 5)')
    parser.add_argument('--labels', metavar='NAMES', help='class names: a text file with one name a line, or a '
                                                          'shipped label set (kinetics400, ...); default: the '
                                                          'config\'s, else "class N"')
    parser.add_argument('--device', help='cpu, cuda, cuda:N (default: cuda if available)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the backbone\'s transformer blocks (same outputs; the first batch pays '
                             'the compilation, seconds to a minute, once per input shape; eager where unavailable)')
    parser.add_argument('--plot-dir', metavar='DIR', help='folder of the timeline pictures (default: the folder of '
                                                          '--out, else the current folder)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    cls = parser.add_argument_group('classification')
    cls.add_argument('--long', action='store_true', help='untrimmed videos: sliding windows of the test clip, '
                                                         'per-window top-k and a timeline picture')
    cls.add_argument('--stride', type=int, help='--long: frames between window starts (default: half a window)')
    cls.add_argument('--frame-interval', type=int, help='--long: step between a window\'s frames (default: the '
                                                        'config\'s test frame_interval)')
    cls.add_argument('--batch-size', type=int, default=8, help='--long: windows per forward (default 8)')
    loc = parser.add_argument_group('localization')
    loc.add_argument('--features', metavar='STORE.h5', help='feature store whose recorded extraction settings (and '
                                                            'backbone) give the features (default: the config\'s '
                                                            'feature_store, when it exists)')
    loc.add_argument('--backbone-checkpoint', help='the backbone the features were made with, where the store\'s '
                                                   'recorded path does not exist here (its SHA-256 is checked)')
    loc.add_argument('--extract', nargs='+', action=DictAction, metavar='KEY=VALUE',
                     help='extraction settings without a store, e.g. arch=vit_giant checkpoint=CKPT size=224 '
                          'clip_len=16 stride=4 normalize=False')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={}, metavar='KEY=VALUE',
                        help='override config settings')
    return parser


def speed_line(model: str, compiled_blocks: int, timer: ForwardTimer) -> str:
    """E.g. ``'classifier (2 blocks compiled): compile + first batch 5.71 s, then 3 batches in 0.15 s (0.050
    s/batch)'``: the compilation (in the first batch of each shape) apart from the steady state."""
    compiled = f' ({compiled_blocks} blocks compiled)' if compiled_blocks else ''
    return f'{model}{compiled}: {timer.summary(compiled=compiled_blocks > 0)}'


def main(argv: Sequence[str] | None = None) -> list[Any]:
    from mmengine.config import Config

    from backbone import CheckpointError
    from tasks.classification import infer as cls
    from tasks.localization import infer as loc

    parser = get_args_parser()
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error(f'--topk must be >= 1, got {args.topk}')
    if args.out and Path(args.out).suffix.lower() not in ('.json', '.csv'):
        raise SystemExit(f'tools/infer.py: error: --out {args.out}: write .json or .csv')
    if not Path(args.config).is_file():
        raise SystemExit(f'tools/infer.py: error: config {args.config}: no such file')
    cfg = Config.fromfile(args.config)
    plot_dir = args.plot_dir or (str(Path(args.out).parent) if args.out else '.')
    progress = not args.no_progress
    header = dict(config=args.config, checkpoint=args.checkpoint)
    try:
        if cls.is_classification_config(cfg):
            clf = cls.load_classifier(args.config, args.checkpoint, device=args.device, cfg_options=args.cfg_options,
                                      compile=args.compile)
            names = cls.resolve_class_names(args.labels, cls.configured_class_names(clf.cfg), clf.num_classes)
            if args.long:
                results = cls.classify_long(args.videos, clf, names, topk=args.topk, stride=args.stride,
                                            frame_interval=args.frame_interval, batch_size=args.batch_size,
                                            plot_dir=plot_dir, progress=progress)
            else:
                results = cls.classify_videos(args.videos, clf, names, topk=args.topk, progress=progress)
            print(cls.format_predictions(results), flush=True)
            print(speed_line('classifier', clf.compiled_blocks, clf.timer), file=sys.stderr)
            if args.out:
                cls.write_predictions(args.out, results, dict(header, task='classification', long=args.long))
        elif loc.is_localization_config(cfg):
            model = loc.load_localizer(args.config, args.checkpoint, features=args.features, extract=args.extract,
                                       backbone_checkpoint=args.backbone_checkpoint, device=args.device,
                                       cfg_options=args.cfg_options, compile=args.compile)
            names = loc.resolve_class_names(args.labels, model.cfg, model.num_classes)
            results = loc.localize_videos(args.videos, model, names, plot_dir=plot_dir, plot_segments=args.topk,
                                          progress=progress)
            print(loc.format_segments(results, args.topk), flush=True)
            print(speed_line('feature backbone', model.compiled_blocks, model.timer), file=sys.stderr)
            if args.out:
                loc.write_segments(args.out, results, dict(header, task='localization', features=model.settings_from))
        else:
            raise SystemExit(f'tools/infer.py: error: {args.config}: model.type {cfg.get("model", {}).get("type")!r} '
                             f'is neither a classifier ({", ".join(cls.CLASSIFIER_TYPES)}) nor an action detector '
                             f'({", ".join(loc.LOCALIZER_TYPES)})')
    except (cls.InferError, loc.LocalizeError, CheckpointError) as e:  # the user's inputs: no traceback
        raise SystemExit(f'tools/infer.py: error: {e}') from None
    if args.out:
        print(f'results written to {args.out}', file=sys.stderr)
    return results


if __name__ == '__main__':
    main()
