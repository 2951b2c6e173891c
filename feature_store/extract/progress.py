"""The extraction's progress bar and speed (:class:`Progress`): videos done, and clips/s with the warm-up kept apart."""
from __future__ import annotations

import sys
import time
from collections.abc import Hashable

from backbone.timing import WarmupSplit

__all__ = ['Progress']


class Progress:
    """Videos done and clips/s on stderr (tqdm; ``enabled=False`` on ranks other than 0 still counts).

    Each batch is timed from the end of the one before (decoding waits, part files and all), and the first batch of
    each shape is warm-up (:class:`backbone.timing.WarmupSplit`), kept apart from the steady state whose clips/s the
    bar shows: a rate that includes minutes of compilation says nothing about the hours after it. ``split`` holds the
    counts (``rewarm()`` it when the model is compiled).
    """

    def __init__(self, total: int, enabled: bool):
        from tasks.data.progress import progress_bar

        self.bar = progress_bar(total, 'video', 'extract', enabled)
        self.split = WarmupSplit()
        self._last = time.perf_counter()

    def add_clips(self, n: int, shape: Hashable = None) -> None:
        """Count a batch of ``n`` clips that has just finished; ``shape``: what makes a batch new to the model (its
        size), None for all alike."""
        now = time.perf_counter()
        seconds, self._last = now - self._last, now
        if self.split.add(seconds, n, shape):
            self.bar.set_postfix_str(f'{self.split.steady_rate:.1f} clips/s', refresh=False)

    def video_done(self) -> None:
        self.bar.update(1)

    def write(self, message: str) -> None:
        self.bar.write(message, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()
