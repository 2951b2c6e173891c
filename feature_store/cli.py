"""Command lines of ``tools/merge_features.py``, ``tools/export_features.py`` and ``tools/import_features.py`` (the
extraction's is :mod:`feature_store.extract.cli`)."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import FeatureStoreError
from .info import checkpoint_id
from .lock import store_lock
from .npy import SIDECAR_NAME, export_npy, import_npy
from .store import FeatureStore, merge_stores

__all__ = ['merge_main', 'export_main', 'import_main']


def merge_main(argv: Sequence[str] | None = None) -> int:
    """``merge_features.py OUT SHARD...``: merge shard stores into OUT (written atomically; OUT may be a shard)."""
    parser = argparse.ArgumentParser(
        prog='merge_features.py',
        description='Merge feature-store shards (e.g. one per GPU) into one store. The shards must have the '
                    'provenance that extraction requires to append: model, checkpoint, feature kind, preprocessing, '
                    'storage dtype, model input size and frames, patch size, window sampler, clip_len, '
                    'frame_interval, stride and compute dtype; a video in several shards must be identical in all '
                    'of them. OUT is written under a temporary name and renamed, holding OUT.lock (one writer '
                    'per store). Exit status: 0 merged, 1 refused (or OUT locked by another run).')
    parser.add_argument('out', help='merged store to write')
    parser.add_argument('shards', nargs='+', help='stores to merge')
    parser.add_argument('--wait-lock', action='store_true', help='wait while another run writes OUT')
    args = parser.parse_args(argv)
    try:
        with store_lock(args.out, wait=args.wait_lock):
            out = merge_stores(args.shards, args.out)
    except (FeatureStoreError, OSError) as e:
        print(f'merge_features: error: {e}', file=sys.stderr)
        return 1
    with FeatureStore.open(out) as store:
        print(f'{out}: {len(store)} videos from {len(args.shards)} shards ({store.info.arch}, {store.info.dtype})')
    return 0


def export_main(argv: Sequence[str] | None = None) -> int:
    """``export_features.py STORE OUT_DIR``: one float32 ``.npy`` per video plus ``features_meta.json``."""
    parser = argparse.ArgumentParser(
        prog='export_features.py',
        description='Write every video of a feature store as OUT_DIR/<video_id>.npy (float32 [T, C], the layout '
                    'the official VideoMAE V2 extractor writes and ActionFormer and OpenTAD read; an id with "/" '
                    f'becomes a sub-folder) plus OUT_DIR/{SIDECAR_NAME} (the provenance and every video\'s time '
                    'grid, which import_features.py reads back). Exit status: 0 written, 1 refused.')
    parser.add_argument('store', metavar='STORE', help='feature store (.h5) to export')
    parser.add_argument('out_dir', metavar='OUT_DIR', help='folder to write (must be empty or absent)')
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    try:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise FeatureStoreError(f'{out} is not an empty folder: export into a new one (files left from another '
                                    f'export would disagree with its {SIDECAR_NAME})')
        sidecar = export_npy(args.store, out)
        with FeatureStore.open(args.store) as store:
            count, dtype = len(store), store.info.dtype
    except (FeatureStoreError, OSError) as e:
        print(f'export_features: error: {e}', file=sys.stderr)
        return 1
    print(f'{out}: {count} videos as float32 .npy (stored as {dtype}), provenance and time grids in {sidecar.name}')
    return 0


def _per_video_fps(path: str) -> tuple[dict[str, float], dict[str, int]]:
    """Per-video fps and frame counts (``round(duration * fps)``) from an ActionFormer THUMOS14 json."""
    from tasks.data.annotations import read_actionformer_json

    videos = read_actionformer_json(path).videos
    no_fps = [vid for vid, v in videos.items() if v.fps is None]
    if no_fps:
        raise ValueError(f'{path}: videos without "fps": {", ".join(no_fps[:5])}' + (' ...' if len(no_fps) > 5
                                                                                     else ''))
    return ({vid: float(v.fps) for vid, v in videos.items()},
            {vid: max(1, round(v.duration * v.fps)) for vid, v in videos.items()})


def import_main(argv: Sequence[str] | None = None) -> int:
    """``import_features.py NPY_DIR OUT.h5 --fps F --stride S --clip-len C ...``: a store from an npy folder."""
    parser = argparse.ArgumentParser(
        prog='import_features.py',
        description='Build a feature store from a folder of per-video .npy files [T, C]. A folder written by '
                    f'export_features.py carries its provenance and time grids in {SIDECAR_NAME}; a plain folder '
                    '(the official extractor\'s output, ActionFormer or OpenTAD features) does not, so give its '
                    'grid: --fps (or --annotations) --stride --clip-len, and what you know of its provenance '
                    '(--arch, --checkpoint, --preprocessing; unknown otherwise). Row r of a video is the window '
                    'centred on frame --offset-frames + r * --stride. Exit status: 0 written, 1 refused, 2 bad '
                    'arguments.')
    parser.add_argument('npy_dir', metavar='NPY_DIR', help='folder of <video_id>.npy files (searched recursively)')
    parser.add_argument('out', metavar='OUT.h5', help='store to write (refused if it exists, unless --overwrite)')
    grid = parser.add_argument_group(f'time grid (a plain folder only; {SIDECAR_NAME} has it otherwise)')
    grid.add_argument('--fps', type=float, help='frame rate of every video')
    grid.add_argument('--annotations', metavar='JSON',
                      help='instead of --fps: each video\'s fps and frame count (duration x fps) from an '
                           'ActionFormer THUMOS14 json')
    grid.add_argument('--stride', type=int, help='frames between rows (4 for the official THUMOS14 features)')
    grid.add_argument('--clip-len', type=int, help='frames per window (16 for the official features)')
    grid.add_argument('--frame-interval', type=int, default=1, help='step between the frames of a window (1)')
    grid.add_argument('--offset-frames', type=int,
                      help='centre frame of row 0 (default clip_len // 2 x frame_interval: 8 for windows of 16 '
                           'frames from frame 0, ActionFormer\'s convention)')
    grid.add_argument('--num-frames', type=int, help='frames of every video (default: --annotations, else the fewest '
                                                     'frames that hold the last window)')
    prov = parser.add_argument_group('provenance (a plain folder only; recorded as unknown when not given)')
    prov.add_argument('--arch', help='backbone of the features, e.g. vit_giant')
    weights = prov.add_mutually_exclusive_group()
    weights.add_argument('--checkpoint', help='checkpoint file the features were made with (its SHA-256 is recorded)')
    weights.add_argument('--checkpoint-sha256', help='instead: its SHA-256 (hex)')
    prov.add_argument('--feature-kind', default='pooled', help='what a row is (default pooled: mean of the tokens)')
    prov.add_argument('--preprocessing', choices=('official-tad',),
                      help='official-tad: the official TAD extractor\'s (squash to 224x224, /255, no mean/std), as '
                           'tools/extract_features.py records it by default')
    parser.add_argument('--overwrite', action='store_true', help='replace OUT.h5 if it exists')
    args = parser.parse_args(argv)
    if args.fps is not None and args.annotations is not None:
        parser.error('--fps and --annotations exclude each other')
    try:
        fps, num_frames = args.fps, args.num_frames
        if args.annotations is not None:
            fps, from_json = _per_video_fps(args.annotations)
            num_frames = num_frames if num_frames is not None else from_json
        preprocessing = None
        if args.preprocessing == 'official-tad':
            from .extract.preprocess import Preprocess  # torch: only when asked

            preprocessing = Preprocess().describe()
        provenance = {'arch': args.arch, 'feature_kind': args.feature_kind, 'preprocessing': preprocessing,
                      'checkpoint_sha256': checkpoint_id(args.checkpoint) if args.checkpoint
                      else args.checkpoint_sha256}
        given = sorted(k for k in ('arch', 'checkpoint', 'checkpoint_sha256', 'preprocessing')
                       if getattr(args, k) is not None)
        if (Path(args.npy_dir) / SIDECAR_NAME).exists() and given:
            raise ValueError(f'{args.npy_dir} has a {SIDECAR_NAME}, which gives the provenance: do not pass '
                             + ', '.join('--' + k.replace('_', '-') for k in given))
        with store_lock(args.out):  # held from the check to the rename (build_store takes it again: re-entrant)
            if Path(args.out).exists() and not args.overwrite:
                raise FeatureStoreError(f'{args.out} exists: pass --overwrite to replace it, or write another file')
            out = import_npy(args.npy_dir, args.out, fps=fps, num_frames=num_frames, clip_len=args.clip_len,
                             stride=args.stride, frame_interval=args.frame_interval,
                             offset_frames=args.offset_frames, **provenance)
    except (FeatureStoreError, ValueError, OSError) as e:
        print(f'import_features: error: {e}', file=sys.stderr)
        return 1
    with FeatureStore.open(out) as store:
        info = store.info
        print(f'{out}: {len(store)} videos ({info.arch}, {info.dtype}, checkpoint {info.checkpoint_sha256})')
    return 0
