"""Embedded synthetic video benchmarks: temporal-order classification, AVA-like detection, THUMOS-like localisation.

They let every task run end to end without downloading a dataset, with labels that can only be learnt from motion.
See ``README.md`` in this folder for the classes, the file formats and the time conventions, and
``tools/make_synthetic.py`` (or ``python -m tasks.data.synthetic``) for the command line.
"""
from .build import GENERATOR_VERSION, MANIFEST, PRESETS, Preset, generate, is_complete, read_manifest

__all__ = ['GENERATOR_VERSION', 'MANIFEST', 'PRESETS', 'Preset', 'generate', 'is_complete', 'read_manifest']
