#!/usr/bin/env python
"""Build a feature store from a folder of per-video ``.npy`` files.

Usage::

    # a folder written by tools/export_features.py: provenance and time grids come from its features_meta.json
    python tools/import_features.py work_dirs/th14_npy work_dirs/th14_back.h5
    # a plain folder (e.g. the released VideoMAE V2 THUMOS14 features): give the time grid, and what is known of
    # the provenance; per-video fps from an ActionFormer json with --annotations instead of --fps
    python tools/import_features.py th14_mae_g_16_4 th14_mae_g_16_4.h5 --annotations thumos14.json \\
        --stride 4 --clip-len 16 --arch vit_giant --preprocessing official-tad

Exit status 0, 1 when refused (a missing grid option, a grid option given for a folder with a sidecar, an unreadable
file, an existing OUT.h5 without ``--overwrite``), 2 for bad arguments. Needs the repository installed
(``pip install -e .``) or its root on ``PYTHONPATH``. Everything is in :func:`feature_store.import_npy`.
"""
import sys

from feature_store.cli import import_main

if __name__ == '__main__':
    sys.exit(import_main())
