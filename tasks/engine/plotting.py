"""Charts shared by the task evaluators (matplotlib, Agg backend, written atomically as PNG)."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tasks.data.files import atomic_path

__all__ = ['per_class_bars']


def per_class_bars(path: str | os.PathLike, names: Sequence[str], values: Sequence[float], *, xlabel: str,
                   title: str, lines: Sequence[tuple[float, str, str, str]] = (),
                   missing: Sequence[bool] | None = None, xmax: float = 1.0) -> Path:
    """Horizontal bar chart of one value per class, first class at the top.

    Args:
        names: class labels, one per bar.
        values: bar lengths (a missing class's value is drawn as given, usually 0).
        lines: vertical reference lines ``(x, legend label, colour, linestyle)``, e.g. the mean and a baseline.
        missing: per class, True to draw the bar grey (no ground truth, not evaluated).
    Returns the path written.
    """
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt

    missing = list(missing) if missing is not None else [False] * len(names)
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.22 * len(names)))
    ax.barh(range(len(names)), values, color=['#cccccc' if m else '#4c72b0' for m in missing])
    ax.set_yticks(range(len(names)), list(names), fontsize=7 if len(names) > 20 else 9)
    ax.invert_yaxis()
    ax.set_xlim(0, xmax)
    ax.set_xlabel(xlabel)
    for x, label, colour, style in lines:
        ax.axvline(x, color=colour, linestyle=style, label=label)
    if lines:
        ax.legend(loc='lower right', fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(path)
