"""The videos of an extraction run: a folder of videos or a text file of paths, keyed by
:func:`tasks.data.video.ids.video_id_of` (the file name up to the first '.')."""
from __future__ import annotations

import os
from pathlib import Path

from tasks.data.video.ids import video_id_of

__all__ = ['VIDEO_EXTENSIONS', 'ExtractError', 'list_videos']

VIDEO_EXTENSIONS = frozenset({'.mp4', '.m4v', '.mkv', '.webm', '.avi', '.mov', '.mpg', '.mpeg', '.flv', '.wmv', '.3gp',
                              '.ts', '.mts'})
"""Suffixes taken from an INPUT folder (a list file may name any file)."""


class ExtractError(RuntimeError):
    """A run that cannot start or finish (incompatible store, bad input list); the message says what to do."""


def list_videos(source: str | os.PathLike) -> list[tuple[str, Path]]:
    """``(video_id, path)`` sorted by id, from a folder (its files with a video suffix, :data:`VIDEO_EXTENSIONS`; not
    recursive; hidden files skipped) or a text file of paths (one per line; blank lines and ``#`` comments skipped;
    relative paths are relative to the list file's folder, so the list travels with the data).

    Raises:
        ExtractError: ``source`` missing, no videos, an empty id, or two files with the same id.
    """
    src = Path(source)
    if src.is_dir():
        paths = [p for p in src.iterdir()
                 if p.is_file() and not p.name.startswith('.') and p.suffix.lower() in VIDEO_EXTENSIONS]
        where = {p: f'{src}' for p in paths}
    elif src.is_file():
        paths, where = [], {}
        for lineno, line in enumerate(src.read_text().splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            p = Path(line)
            p = p if p.is_absolute() else src.parent / p
            if not video_id_of(p):
                raise ExtractError(f'{src}:{lineno}: {line!r} gives an empty video id (the name before the first '
                                   "'.')")
            paths.append(p)
            where[p] = f'{src}:{lineno}'
    else:
        raise ExtractError(f'input {src} is neither a folder of videos nor a text file of video paths')
    if not paths:
        raise ExtractError(f'no videos in {src} (suffixes {", ".join(sorted(VIDEO_EXTENSIONS))})' if src.is_dir()
                           else f'{src} lists no videos')
    seen: dict[str, Path] = {}
    for p in paths:
        vid = video_id_of(p)
        if vid in seen and seen[vid] != p:
            raise ExtractError(f'video id {vid!r} is given twice: {seen[vid]} ({where[seen[vid]]}) and {p} '
                               f'({where[p]}); ids are the file names up to the first "."')
        seen[vid] = p
    return sorted(seen.items())
