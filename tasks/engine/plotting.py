"""Charts shared by the task evaluators and ``tools/infer.py`` (matplotlib, Agg backend, written atomically as PNG)."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tasks.data.files import atomic_path

__all__ = ['per_class_bars', 'score_timeline', 'segment_timeline']


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
    return _save(fig, ax, title, path)


def _pyplot():
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    return plt


def _save(fig, ax, title: str, path: str | os.PathLike) -> Path:
    """Title, tight layout, an atomic PNG write at 100 dpi, and the figure closed."""
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    _pyplot().close(fig)
    return Path(path)


def score_timeline(path: str | os.PathLike, times: Sequence[float], scores: Sequence[Sequence[float]],
                   names: Sequence[str], *, title: str, duration: float | None = None,
                   spans: Sequence[tuple[float, float]] | None = None) -> Path:
    """Scores of a few classes over the time of one video, one line per class (``tools/infer.py --long``).

    Args:
        times: (W,) seconds at which each window's scores are drawn (its centre).
        scores: (W, K) scores in [0, 1], one column per class in ``names``.
        names: the K class names of the columns (the legend).
        duration: the video's length in seconds (x-axis end); default: the last time.
        spans: (W,) ``(start, end)`` seconds of each window, drawn as a rug under the lines so that gaps and
            overlaps between windows show.
    Returns the path written.
    """
    import numpy as np

    plt = _pyplot()
    times = np.asarray(times, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64).reshape(len(times), -1)
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for k, name in enumerate(names):
        ax.plot(times, scores[:, k], marker='o', markersize=3, linewidth=1.4, label=name)
    if spans is not None:
        for i, (start, end) in enumerate(spans):  # alternate heights so that overlapping windows stay apart
            y = -0.04 - 0.025 * (i % 2)
            ax.plot([start, end], [y, y], color='#888888', linewidth=2, solid_capstyle='butt')
    end = duration if duration is not None else (float(times.max()) if len(times) else 1.0)
    ax.set_xlim(0, max(end, 1e-3))
    ax.set_ylim(-0.08, 1.02)
    ax.set_xlabel('time (s)')
    ax.set_ylabel('score')
    ax.grid(alpha=0.3)
    ax.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return _save(fig, ax, title, path)


def segment_timeline(path: str | os.PathLike, segments: Sequence[tuple[float, float, str, float]], *,
                     duration: float, title: str, max_rows: int = 10) -> Path:
    """Detected segments of one video on a time axis, one row per class (``tools/infer.py`` localization).

    Args:
        segments: ``(start s, end s, class name, score)``; the darker a bar, the higher its score (relative to the
            best), which is written at its start.
        duration: the video's length in seconds (x-axis end).
        max_rows: at most this many classes, those with the best segment first.
    Returns the path written.
    """
    plt = _pyplot()
    best: dict[str, float] = {}
    for _, _, name, score in segments:
        best[name] = max(best.get(name, 0.0), float(score))
    rows = sorted(best, key=lambda n: -best[n])[:max_rows]
    top = max(best.values(), default=1.0) or 1.0
    fig, ax = plt.subplots(figsize=(9, 1.4 + 0.35 * max(len(rows), 1)))
    for r, name in enumerate(rows):
        for start, end, label, score in segments:
            if label == name:  # shaded relative to the best segment, so that low-score detectors still show
                ax.barh(r, end - start, left=start, height=0.7, color='#c44e52', edgecolor='#7f2a2d',
                        linewidth=0.5, alpha=0.25 + 0.75 * float(score) / top)
                ax.text(start, r, f' {score:.2f}', va='center', ha='left', fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_ylim(len(rows) - 0.5 if rows else 0.5, -0.5)
    ax.set_xlim(0, max(duration, 1e-3))
    ax.set_xlabel('time (s)')
    ax.grid(axis='x', alpha=0.3)
    return _save(fig, ax, title if rows else f'{title} (no segments)', path)
