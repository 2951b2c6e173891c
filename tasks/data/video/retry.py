"""Per-sample seeds and the broken-video replacement loop shared by every training dataset.

A training sample is a pure function of ``(seed, epoch, index)``: :func:`sample_seeds` turns the tuple into
independent torch and numpy generators, so the data do not depend on worker count or process rank. When a video
cannot be decoded, :func:`load_with_replacements` reports it once per process and draws a replacement from a stream
of its own, so that trying a known-bad file and skipping it straight away give the same sample.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch

from .errors import VideoDecodeError

T = TypeVar('T')


def sample_seeds(seed: int, epoch: int, index: int, attempt: int = 0) -> tuple[torch.Generator, np.random.Generator]:
    """Independent torch and numpy generators for one sample, a pure function of its arguments.

    ``numpy.random.SeedSequence`` hashes the tuple, so neighbouring indices or epochs get unrelated streams.
    """
    sequence = np.random.SeedSequence([seed, epoch, index, attempt])
    torch_seq, numpy_seq = sequence.spawn(2)
    generator = torch.Generator().manual_seed(int(torch_seq.generate_state(1, np.uint64)[0] >> np.uint64(1)))
    return generator, np.random.default_rng(numpy_seq)


def load_with_replacements(
        num_items: int,
        index: int,
        epoch: int,
        *,
        seed: int,
        max_attempts: int,
        known_bad: dict[str, str],
        path_of: Callable[[int], str],
        load: Callable[[int, torch.Generator], T],
        report: Callable[[int, str], None],
        source: str,
) -> tuple[T, int, torch.Generator, np.random.Generator, list[tuple[str, str]]]:
    """Load training sample ``index`` of ``epoch``, replacing items whose video cannot be decoded.

    Args:
        num_items: the dataset's length; replacements are drawn uniformly from it.
        known_bad: path -> reason of the files this process has already found broken (updated by ``report``);
            they are skipped without another decode attempt.
        path_of: the video path of item ``i``.
        load: decodes item ``i`` with the attempt's torch generator; raises :class:`VideoDecodeError`.
        report: called once for each newly found broken item ``i`` with the reason; must record it in
            ``known_bad`` (and is where the dataset logs it, naming its annotation line).
        source: names the annotation file in the error raised when every attempt fails.

    Returns:
        (loaded value, index of the item that was used, its torch generator, its numpy generator, the
        ``(path, reason)`` of every item skipped on the way).

    Raises:
        RuntimeError: ``max_attempts`` items in a row could not be decoded.
    """
    replacements = np.random.default_rng(np.random.SeedSequence([seed, epoch, index, 2 ** 31]))
    failed: list[tuple[str, str]] = []
    current = index
    for attempt in range(max_attempts):
        path = path_of(current)
        if path not in known_bad:
            generator, rng = sample_seeds(seed, epoch, index, attempt)
            try:
                value = load(current, generator)
            except VideoDecodeError as e:
                report(current, e.reason)
                known_bad.setdefault(path, e.reason)
            else:
                return value, current, generator, rng, failed
        failed.append((path, known_bad[path]))
        current = int(replacements.integers(num_items))
    raise RuntimeError(
        f'{source}: {max_attempts} videos in a row failed to decode for sample {index} (epoch {epoch}); the last '
        f'errors: ' + '; '.join(f'{p}: {r}' for p, r in failed[-3:]))
