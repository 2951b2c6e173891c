"""One progress-bar look for long work (extraction, inference): tqdm on stderr with the rate and the ETA."""
from __future__ import annotations

import sys
from typing import Any

__all__ = ['progress_bar']


def progress_bar(total: int, unit: str, desc: str, enabled: bool = True) -> Any:
    """A tqdm bar of ``total`` ``unit``s on stderr (so that stdout keeps only results), smoothed rate and ETA."""
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, file=sys.stderr, disable=not enabled, dynamic_ncols=True, smoothing=0.1,
                desc=desc)
