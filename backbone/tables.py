"""Plain-text tables for what the tools print: one writer for results, benchmarks and the demo summary.

On the backbone floor because the benchmark reports beside the bodies they report (``backbone/bench*.py``,
``feature_store/bench*.py``) print tables too; ``tasks.engine.report`` re-exports it for the engine and the tasks.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ['records_table', 'text_table']


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[bool] | None = None,
               rule: bool = True) -> str:
    """Columns padded to their widest cell, separated by two spaces, trailing spaces removed.

    Args:
        header: the column titles.
        rows: the cells, already formatted as strings; each row has ``len(header)`` cells.
        right: per column, True to right-align (numbers); default: every column left-aligned.
        rule: a line of dashes under the header.
    """
    right = list(right) if right is not None else [False] * len(header)
    for n, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f'row {n} has {len(row)} cells for {len(header)} columns: {list(row)}')
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return '  '.join(str(c).rjust(w) if r else str(c).ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

    out = [line(header)]
    if rule:
        out.append(line(['-' * w for w in widths]))
    return '\n'.join(out + [line(r) for r in rows])


def records_table(records: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """:func:`text_table` of dicts. ``columns``: (title, key, format spec) each; a missing or None value prints
    ``-``; a column is right-aligned when the first record holds a number under its key."""
    cells = [[format(r[key], spec) if r.get(key) is not None else '-' for _, key, spec in columns] for r in records]
    right = [bool(records) and isinstance(records[0].get(key), (int, float)) for _, key, _ in columns]
    return text_table([title for title, _, _ in columns], cells, right=right)
