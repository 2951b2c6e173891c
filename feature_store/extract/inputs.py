"""The videos of an extraction run (:func:`find_videos`): one video file, a folder of videos (``recursive`` or not) or
a text file of paths, keyed by :func:`tasks.data.video.ids.video_id_of` (the file name up to the first '.') or by the
path relative to the folder (``id_from='relpath'``: ``a/x.mp4`` -> ``a/x``)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, NamedTuple

from tasks.data.video.ids import video_id_of

__all__ = ['VIDEO_EXTENSIONS', 'IdFrom', 'ExtractError', 'VideoInput', 'find_videos', 'list_videos', 'is_video_path']

VIDEO_EXTENSIONS = frozenset({'.mp4', '.m4v', '.mkv', '.webm', '.avi', '.mov', '.mpg', '.mpeg', '.flv', '.wmv', '.3gp',
                              '.ts', '.mts'})
"""Suffixes taken from an INPUT folder, and that make an INPUT file a video rather than a list (a list file may name
any file)."""

IdFrom = Literal['stem', 'relpath']

_TEXT_SNIFF_BYTES = 8192


class ExtractError(RuntimeError):
    """A run that cannot start or finish (incompatible store, bad input list); the message says what to do."""


class VideoInput(NamedTuple):
    """One video of a run: its id, its file, and the list line that named it (``'list.txt:LINE'``; None for a
    folder or a single file)."""

    video_id: str
    path: Path
    line: str | None


def is_video_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` has a video suffix (:data:`VIDEO_EXTENSIONS`, any case)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _is_text(path: Path) -> bool:
    """A list file is UTF-8 text without NUL bytes; every video container starts with binary headers."""
    with open(path, 'rb') as f:
        head = f.read(_TEXT_SNIFF_BYTES)
    if b'\0' in head:
        return False
    try:
        head.decode('utf-8')
    except UnicodeDecodeError as e:  # a multi-byte character cut at the end of the sniffed block is still text
        return e.start >= len(head) - 3
    return True


def _relpath_id(path: Path, root: Path) -> str | None:
    """``a/b/x.part1.mp4`` under ``root`` -> ``'a/b/x'`` (the folders, then the id rule on the name); None when
    ``path`` is not under ``root``."""
    try:
        relative = Path(os.path.normpath(path)).relative_to(os.path.normpath(root))
    except ValueError:
        return None
    return '/'.join([*relative.parts[:-1], video_id_of(relative)])


def _from_folder(src: Path, recursive: bool) -> list[tuple[Path, str | None]]:
    found = src.rglob('*') if recursive else src.iterdir()
    paths = sorted(p for p in found if p.is_file() and is_video_path(p)
                   and not any(part.startswith('.') for part in p.relative_to(src).parts))  # hidden files, folders
    if not paths:
        nested = not recursive and any(p.is_dir() and not p.name.startswith('.') for p in src.iterdir())
        raise ExtractError(f'no videos in {src} (suffixes {", ".join(sorted(VIDEO_EXTENSIONS))})'
                           + ('; it has sub-folders: pass --recursive to search them' if nested else ''))
    return [(p, None) for p in paths]


def _from_list(src: Path) -> list[tuple[Path, str | None]]:
    entries = []
    for lineno, line in enumerate(src.read_text(encoding='utf-8').splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        p = Path(line)
        entries.append((p if p.is_absolute() else src.parent / p, f'{src}:{lineno}'))
    if not entries:
        raise ExtractError(f'{src} lists no videos (one path per line; blank lines and # comments are skipped)')
    return entries


def find_videos(source: str | os.PathLike, *, recursive: bool = False, id_from: IdFrom = 'stem') -> list[VideoInput]:
    """The videos of ``source``, sorted by id.

    ``source`` is one of:

    * a **video file**: a file with a video suffix (:data:`VIDEO_EXTENSIONS`), or any file that is not UTF-8 text
      (a video without a known suffix; the decoder judges it later);
    * a **folder**: its files with a video suffix, hidden files and folders skipped; sub-folders too with
      ``recursive``;
    * a **list file**: UTF-8 text, one path per line (blank lines and ``#`` comments skipped), relative paths
      relative to the list file's folder, so the list travels with the data. Each video's ``line`` is
      ``'list.txt:LINE'``, so that a line whose file cannot be decoded is reported by its line.

    Ids: ``'stem'`` is the file name up to the first '.' (:func:`tasks.data.video.ids.video_id_of`); ``'relpath'``
    is the path relative to the folder (the list file's folder for a list), '/'-separated, with that rule applied to
    the file name: ``a/x.mp4`` -> ``'a/x'``, so that equal names in different folders stay apart.

    Raises:
        ExtractError: ``source`` missing, no videos, an id that is empty or has a '.'/'..' component, a relpath of
            a file outside the folder, or two files with the same id (naming both and where they were given).
    """
    if id_from not in ('stem', 'relpath'):
        raise ValueError(f"id_from must be 'stem' or 'relpath', got {id_from!r}")
    src = Path(source)
    if src.is_dir():
        entries, root = _from_folder(src, recursive), src
    elif src.is_file():
        if is_video_path(src) or not _is_text(src):
            entries, root = [(src, None)], src.parent
        else:
            entries, root = _from_list(src), src.parent
    else:
        raise ExtractError(f'input {src} is neither a folder of videos nor a file (a video, or a text file of video '
                           'paths): it does not exist')
    videos: dict[str, VideoInput] = {}
    for path, line in entries:
        where = line or str(root)
        vid = video_id_of(path) if id_from == 'stem' else _relpath_id(path, root)
        if vid is None:
            raise ExtractError(f'{where}: {path} is not under {root}, so --id-from relpath cannot name it; list it '
                               'by a path inside the list file\'s folder, or use --id-from stem')
        if not vid or any(part in ('', '.', '..') for part in vid.split('/')):
            raise ExtractError(f"{where}: {path} gives the video id {vid!r}, which is empty or has an empty, '.' or "
                               "'..' part (ids are the file names up to the first '.')")
        seen = videos.get(vid)
        if seen is not None and os.path.normpath(seen.path) != os.path.normpath(path):
            hint = '; --id-from relpath keeps the folders in the ids (a/x.mp4 -> a/x)' if id_from == 'stem' else ''
            raise ExtractError(f'video id {vid!r} is given twice: {seen.path} ({seen.line or root}) and {path} '
                               f'({where}); ids are the file names up to the first "."{hint}')
        videos[vid] = VideoInput(vid, path, line)
    return [videos[vid] for vid in sorted(videos)]


def list_videos(source: str | os.PathLike, *, recursive: bool = False,
                id_from: IdFrom = 'stem') -> list[tuple[str, Path]]:
    """``(video_id, path)`` pairs of :func:`find_videos`, sorted by id."""
    return [(v.video_id, v.path) for v in find_videos(source, recursive=recursive, id_from=id_from)]
