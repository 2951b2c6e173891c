#!/usr/bin/env python
"""Generate the embedded synthetic benchmarks.

Usage::

    python tools/make_synthetic.py --out data/synthetic --preset default --seed 0

Needs the repository installed (``pip install -e .``, as ``make`` does) or its root on ``PYTHONPATH``; ``python -m
tasks.data.synthetic`` from the repository root works without either. Everything is in :mod:`tasks.data.synthetic`.
"""
import sys

from tasks.data.synthetic.cli import main

if __name__ == '__main__':
    sys.exit(main())
