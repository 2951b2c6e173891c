#!/usr/bin/env python
"""Extract VideoMAE V2 clip features of untrimmed videos into one HDF5 feature store.

A thin command line over :mod:`feature_store.extract` (:mod:`feature_store.extract.run` describes the resumable,
crash-safe and distributed behaviour). The defaults are the official TAD extractor's
(docs/thumos14.md#official-feature-extractor): 16-frame windows every 4 frames, squash to 224x224, /255, no mean/std;
the settings are printed at start (docs/feature_caching.md#extraction-defaults). Examples::

    # official THUMOS14 features: name the model and its weights, the rest is the default
    python tools/extract_features.py thumos14/videos --out work_dirs/th14_vit_g_16_4.h5 --arch vit_giant \\
        --checkpoint vit_g_hybrid_pt_1200e_k710_ft.pth
    # one video; or a tree of folders, ids keeping the folders (a/x.mp4 -> a/x); half-size storage
    python tools/extract_features.py my_video.mp4 --out mine.h5 --arch vit_giant --checkpoint CKPT
    python tools/extract_features.py clips/ --recursive --id-from relpath --store-dtype fp16 --out clips.h5 ...
    # THUMOS14 on 8 GPUs: ranks take every 8th video, rank 0 merges the shards
    torchrun --nproc_per_node 8 tools/extract_features.py thumos14/videos --out th14.h5 ...

Without ``--checkpoint`` (or a ``--config`` with ``load_from``) it stops; ``--random-init`` asks for an untrained model.

A rerun skips the videos already complete; one run writes a store at a time (OUT.h5.lock; ``--wait-lock`` waits).
Exit status: 0 when every video was extracted, 3 when some could not be decoded (listed on stderr and in
OUT.h5.failures.json), 2 for bad arguments, a store made with other settings, a store another run is writing, or a
failed write (a full disk: free space and rerun).
"""
from __future__ import annotations

import sys

if __name__ == '__main__':
    try:
        from feature_store.extract import main
    except ImportError as err:
        print(f'extract_features: error: cannot import the suite ({err}); install it with `pip install -e .` or set '
              'PYTHONPATH to the repository root', file=sys.stderr)
        sys.exit(2)
    sys.exit(main())
