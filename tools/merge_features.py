#!/usr/bin/env python
"""Merge feature-store shards into one store.

Usage::

    python tools/merge_features.py work_dirs/th14_feats.h5 work_dirs/shard0.h5 work_dirs/shard1.h5

Refuses exactly the shards that extraction refuses to append to (:meth:`feature_store.StoreInfo.differences`; the
error names the shard and the differing fields with both values), and videos that appear in several shards with
different content: exit status 1. Needs the repository installed (``pip install -e .``) or its root on
``PYTHONPATH``. Everything is in :func:`feature_store.merge_stores`.
"""
import sys

from feature_store.cli import merge_main

if __name__ == '__main__':
    sys.exit(merge_main())
