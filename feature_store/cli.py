"""Command line of ``tools/merge_features.py`` (the extraction's is :mod:`feature_store.extract.cli`)."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .errors import FeatureStoreError
from .lock import store_lock
from .store import FeatureStore, merge_stores

__all__ = ['merge_main']


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
