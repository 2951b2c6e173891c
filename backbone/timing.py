"""Wall time of a model's batches with the warm-up apart, so that ``--compile`` reports what compiling costs (paid in
the first batch of each input shape, :mod:`backbone.compile`) separately from the steady-state speed.

:class:`WarmupSplit` is the one accounting rule (the extraction's progress bar uses it too); :class:`ForwardTimer`
times ``with`` blocks with it."""
from __future__ import annotations

import time
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

import torch

__all__ = ['ForwardTimer', 'WarmupSplit']


class WarmupSplit:
    """Seconds and items of timed batches: the first batch of each ``shape`` (allocations, kernel selection, and with
    ``--compile`` the compilation: a new shape, such as a video's last smaller batch, compiles again) is warm-up, the
    others the steady state, whose rate says what the hours after the warm-up will take."""

    def __init__(self) -> None:
        self.warmup_s = self.steady_s = 0.0
        self.warmup_items = self.steady_items = self.steady_batches = 0
        self.shapes: set[Hashable] = set()

    def add(self, seconds: float, items: int = 1, shape: Hashable = None) -> bool:
        """Count one batch of ``items`` that took ``seconds``; True if it was steady state (its shape seen before)."""
        if shape in self.shapes:
            self.steady_s += seconds
            self.steady_items += items
            self.steady_batches += 1
            return True
        self.shapes.add(shape)
        self.warmup_s += seconds
        self.warmup_items += items
        return False

    def rewarm(self) -> None:
        """The model has changed (compiled): the next batch of each shape is warm-up again."""
        self.shapes.clear()

    @property
    def steady_rate(self) -> float:
        """Steady-state items per second (0 before a batch of a known shape)."""
        return self.steady_items / self.steady_s if self.steady_s > 0 else 0.0


class ForwardTimer(WarmupSplit):
    """:class:`WarmupSplit` of forward batches timed as ``with timer.batch(device, shape):`` blocks."""

    @contextmanager
    def batch(self, device: torch.device | str | None = None, shape: Hashable = None) -> Iterator[None]:
        """Time the ``with`` body as one batch of ``shape`` (what makes a batch new to the model, e.g. its size; None
        for all alike). On CUDA the device's queued work is waited for, so that the seconds are the batch's."""
        start = time.perf_counter()
        yield
        if device is not None and torch.device(device).type == 'cuda':
            torch.cuda.synchronize(device)
        self.add(time.perf_counter() - start, 1, shape)

    def summary(self, compiled: bool = False) -> str:
        """E.g. ``'compile + first batch 7.21 s, then 5 batches in 3.10 s (0.620 s/batch)'``."""
        if not self.shapes:
            return 'no batch run'
        shapes = len(self.shapes)
        first = 'first batch' if shapes == 1 else f'first batches of {shapes} shapes'
        first = f'{"compile + " if compiled else ""}{first} {self.warmup_s:.2f} s'
        if not self.steady_batches:
            return first
        batches = f'{self.steady_batches} batch{"es" if self.steady_batches > 1 else ""}'
        return f'{first}, then {batches} in {self.steady_s:.2f} s ({self.steady_s / self.steady_batches:.3f} s/batch)'
