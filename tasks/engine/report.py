"""Plain-text tables for what the tools print: one writer for results, benchmarks and the demo summary.

The writer lives on the backbone floor (:mod:`backbone.tables`), where the benchmark reports use it too.
"""
from backbone.tables import records_table, text_table

__all__ = ['records_table', 'text_table']
