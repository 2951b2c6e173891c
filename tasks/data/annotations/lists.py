"""mmaction2 video / raw-frame lists and the official Kinetics csv (docs/classification.md#data)."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Literal

from .common import AnnotationError, PathLike, csv_rows, parse_int, text_lines

__all__ = ['VideoListEntry', 'read_video_list', 'KineticsEntry', 'read_kinetics_csv']


@dataclass(frozen=True)
class VideoListEntry:
    """One line of an mmaction2 video or raw-frame list.

    Attributes:
        path: the video file (or frame folder), joined to ``root`` when one was given.
        label: 0-based class index.
        total_frames: number of frames (raw-frame lists only; ``None`` for video lists).
        line: line number in the list file (for error messages further down the pipeline).
    """

    path: str
    label: int
    total_frames: int | None = None
    line: int = 0


def read_video_list(
        path: PathLike,
        *,
        format: Literal['video', 'rawframes'] = 'video',
        root: PathLike | None = None,
        num_classes: int | None = None,
) -> list[VideoListEntry]:
    """Read an mmaction2 list: ``path label`` (videos) or ``frame_dir total_frames label`` (raw frames).

    Fields are split on whitespace exactly as mmaction2 does, so paths cannot contain spaces. Blank lines are skipped.

    Args:
        path: the list file.
        format: ``'video'`` for ``path label``; ``'rawframes'`` for ``frame_dir total_frames label``.
        root: folder the listed paths are relative to (mmaction2's ``data_prefix``); ``None`` keeps them as written.
        num_classes: if given, labels must be in ``[0, num_classes)``.

    Raises:
        AnnotationError: wrong number of fields, a label or frame count that is not a non-negative integer, or a label
            out of range.
    """
    expected = 2 if format == 'video' else 3
    layout = 'path label' if format == 'video' else 'frame_dir total_frames label'
    out = []
    for n, line in text_lines(path):
        fields = line.split()
        if len(fields) != expected:
            raise AnnotationError(path, f'expected {expected} fields ({layout}), got {len(fields)}: {line!r}', line=n)
        label = parse_int(path, n, fields[-1], 'label', minimum=0)
        if num_classes is not None and label >= num_classes:
            raise AnnotationError(path, f'label {label} out of range for {num_classes} classes', line=n)
        total = parse_int(path, n, fields[1], 'total_frames', minimum=1) if format == 'rawframes' else None
        video = os.path.join(root, fields[0]) if root is not None else fields[0]
        out.append(VideoListEntry(path=video, label=label, total_frames=total, line=n))
    return out



@dataclass(frozen=True)
class KineticsEntry:
    """One row of a Kinetics csv.

    Attributes:
        youtube_id: the YouTube id.
        time_start: clip start in seconds.
        time_end: clip end in seconds.
        split: ``train`` / ``validate`` / ``test`` as written in the file.
        label: the class name; ``None`` in test files, which have no label column.
        line: line number in the csv.
    """

    youtube_id: str
    time_start: int
    time_end: int
    split: str
    label: str | None = None
    line: int = 0

    @property
    def clip_name(self) -> str:
        """File stem the official download scripts give the trimmed clip: ``<id>_<start:06d>_<end:06d>``."""
        return f'{self.youtube_id}_{self.time_start:06d}_{self.time_end:06d}'


def read_kinetics_csv(path: PathLike) -> list[KineticsEntry]:
    """Read an official Kinetics csv (``label,youtube_id,time_start,time_end,split[,is_cc]`` with a header).

    Extra columns (``is_cc``) are ignored; the ``label`` column may be absent (test files).

    Raises:
        AnnotationError: a missing required column, a row with the wrong number of fields, non-integer times, an end
            before the start or an empty id.
    """
    rows = csv_rows(path)
    try:
        n, header = next(rows)
    except StopIteration:
        raise AnnotationError(path, 'empty file, expected a header line', line=1) from None
    missing = [c for c in ('youtube_id', 'time_start', 'time_end', 'split') if c not in header]
    if missing:
        raise AnnotationError(path, f'header {header} lacks the column(s) {missing}', line=n)
    col = {name: i for i, name in enumerate(header)}
    out = []
    for n, row in rows:
        if len(row) != len(header):
            raise AnnotationError(path, f'expected {len(header)} fields like the header, got {len(row)}', line=n)
        vid = row[col['youtube_id']]
        if not vid:
            raise AnnotationError(path, 'empty youtube_id', line=n)
        start = parse_int(path, n, _integral(row[col['time_start']]), 'time_start', minimum=0)
        end = parse_int(path, n, _integral(row[col['time_end']]), 'time_end', minimum=0)
        if end <= start:
            raise AnnotationError(path, f'time_end {end} is not after time_start {start}', line=n)
        label = row[col['label']] if 'label' in col else None
        out.append(KineticsEntry(vid, start, end, row[col['split']], label or None, n))
    return out


def _integral(value: str) -> str:
    """``'10.0'`` -> ``'10'`` (some Kinetics csv versions write float seconds); anything else is passed through."""
    try:
        f = float(value)
    except ValueError:
        return value
    return str(int(f)) if math.isfinite(f) and f == int(f) else value

