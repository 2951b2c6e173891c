#!/usr/bin/env python
"""Export a feature store as one ``.npy`` per video (the official extractor's, ActionFormer's and OpenTAD's layout).

Usage::

    python tools/export_features.py work_dirs/th14_vit_g_16_4.h5 work_dirs/th14_npy

Writes ``OUT_DIR/<video_id>.npy`` (float32 [T, C]; an id with '/' becomes a sub-folder) and ``features_meta.json``
(the provenance and every video's time grid; ``tools/import_features.py`` reads the folder back into an equal store).
Exit status 0, or 1 when refused (a missing store, an OUT_DIR that is not empty). Needs the repository installed
(``pip install -e .``) or its root on ``PYTHONPATH``. Everything is in :func:`feature_store.export_npy`.
"""
import sys

from feature_store.cli import export_main

if __name__ == '__main__':
    sys.exit(export_main())
