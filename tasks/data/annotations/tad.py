"""Temporal action detection annotations (THUMOS14): ActionFormer json, OpenTAD json and class map, the official txt
files, and the format sniffing, class-name and subset rules that read them (docs/thumos14.md#annotation-formats).
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .common import AnnotationError, PathLike, parse_float, parse_int, read_class_names, read_text, text_lines
from .located_json import LocatedJSON

__all__ = ['AMBIGUOUS', 'AnnFormat', 'TADSegment', 'TADVideo', 'TADAnnotations', 'read_actionformer_json',
           'read_opentad_json', 'read_thumos_txt', 'detect_format', 'read_annotations',
           'class_names', 'resolve_subset']

# THUMOS14 marks unclear instances with this pseudo-class; they are not a class to detect (docs/thumos14.md#evaluation).
AMBIGUOUS = 'Ambiguous'

AnnFormat = Literal['auto', 'actionformer', 'opentad']


@dataclass(frozen=True)
class TADSegment:
    """One action instance.

    Attributes:
        start: start in seconds.
        end: end in seconds (may exceed the duration in real THUMOS14 files; docs/thumos14.md#classes-and-splits).
        label: class name.
        label_id: 0-based class id.
    """

    start: float
    end: float
    label: str
    label_id: int


@dataclass
class TADVideo:
    """One untrimmed video.

    Attributes:
        video_id: the video id (also the feature / video file stem).
        subset: the subset name as written in the file (ActionFormer ``Validation``/``Test``; OpenTAD
            ``training``/``validation``).
        duration: length in seconds.
        fps: frame rate (ActionFormer json), else ``None``.
        num_frames: frame count (OpenTAD ``frame``), else ``None``.
        segments: the action instances, Ambiguous ones excluded.
        ambiguous: ``(start, end)`` of the ``Ambiguous`` instances (not a class; see docs/thumos14.md#evaluation).
        line: line where this video's entry starts.
    """

    video_id: str
    subset: str
    duration: float
    fps: float | None = None
    num_frames: int | None = None
    segments: list[TADSegment] = field(default_factory=list)
    ambiguous: list[tuple[float, float]] = field(default_factory=list)
    line: int = 0


@dataclass
class TADAnnotations:
    """A temporal-detection annotation file.

    Attributes:
        videos: video id -> :class:`TADVideo`, in file order.
        classes: label id -> class name.
    """

    videos: dict[str, TADVideo]
    classes: dict[int, str]

    def subset(self, *names: str) -> list[TADVideo]:
        """Videos whose subset is one of ``names`` (case-insensitive, as ActionFormer compares them)."""
        wanted = {n.lower() for n in names}
        return [v for v in self.videos.values() if v.subset.lower() in wanted]


def _tad_database(path: PathLike, depth: int) -> tuple[LocatedJSON, dict]:
    doc = LocatedJSON(path, depth=depth)
    if not isinstance(doc.root, dict) or not isinstance(doc.root.get('database'), dict):
        raise AnnotationError(path, 'expected a JSON object with a "database" object', line=1)
    return doc, doc.root['database']


def _tad_video_fields(path: PathLike, line: int | None, vid: str, info: Any) -> tuple[str, float, list]:
    if not isinstance(info, dict):
        raise AnnotationError(path, f'video {vid!r}: expected an object, got {type(info).__name__}', line=line)
    subset = info.get('subset')
    if not isinstance(subset, str):
        raise AnnotationError(path, f'video {vid!r}: missing or non-string "subset"', line=line)
    if 'duration' not in info:
        raise AnnotationError(path, f'video {vid!r}: missing "duration"', line=line)
    duration = parse_float(path, line, info['duration'], f'video {vid!r}: duration')
    if duration <= 0:
        raise AnnotationError(path, f'video {vid!r}: duration must be > 0, got {duration}', line=line)
    annotations = info.get('annotations', [])
    if not isinstance(annotations, list):
        raise AnnotationError(path, f'video {vid!r}: "annotations" must be a list', line=line)
    return subset, duration, annotations


def _tad_segment(path: PathLike, line: int | None, vid: str, ann: Any) -> tuple[str, float, float]:
    if not isinstance(ann, dict):
        raise AnnotationError(path, f'video {vid!r}: annotation is not an object', line=line)
    label = ann.get('label')
    if not isinstance(label, str) or not label:
        raise AnnotationError(path, f'video {vid!r}: annotation without a string "label"', line=line)
    seg = ann.get('segment')
    if not isinstance(seg, list) or len(seg) != 2:
        raise AnnotationError(path, f'video {vid!r}: "segment" must be [start, end] in seconds, got {seg!r}',
                              line=line)
    start = parse_float(path, line, seg[0], f'video {vid!r}: segment start')
    end = parse_float(path, line, seg[1], f'video {vid!r}: segment end')
    if start < 0 or end < start:
        raise AnnotationError(path, f'video {vid!r}: segment [{start}, {end}] is negative or ends before it '
                                    f'starts', line=line)
    return label, start, end


def read_actionformer_json(path: PathLike) -> TADAnnotations:
    """Read an ActionFormer THUMOS14 json.

    Layout: ``{"database": {vid: {"subset": "Validation"|"Test", "duration": s, "fps": f, "annotations": [{"label",
    "segment": [s, e], "segment(frames)": [fs, fe], "label_id"}]}}}``. ``Ambiguous`` annotations (which ActionFormer's
    own file leaves out) go to :attr:`TADVideo.ambiguous` if present.

    Raises:
        AnnotationError: a missing/invalid field, a segment that ends before it starts, or a label whose id differs
            between annotations (ids must be one-to-one with names).
    """
    doc, db = _tad_database(path, depth=4)
    classes: dict[int, str] = {}
    by_name: dict[str, int] = {}
    videos = {}
    for vid, info in db.items():
        vline = doc.line_of(info) or doc.line_of_key(db, vid)
        subset, duration, annotations = _tad_video_fields(path, vline, vid, info)
        fps = None
        if 'fps' in info:
            fps = parse_float(path, vline, info['fps'], f'video {vid!r}: fps')
            if fps <= 0:
                raise AnnotationError(path, f'video {vid!r}: fps must be > 0, got {fps}', line=vline)
        video = TADVideo(vid, subset, duration, fps=fps, line=vline or 0)
        for j, ann in enumerate(annotations):
            aline = doc.line_of_item(annotations, j) or vline
            label, start, end = _tad_segment(path, aline, vid, ann)
            if label == AMBIGUOUS:
                video.ambiguous.append((start, end))
                continue
            if 'label_id' not in ann:
                raise AnnotationError(path, f'video {vid!r}: annotation {label!r} has no "label_id"', line=aline)
            lid = parse_int(path, aline, ann['label_id'], f'video {vid!r}: label_id', minimum=0)
            if by_name.setdefault(label, lid) != lid or classes.setdefault(lid, label) != label:
                raise AnnotationError(path, f'video {vid!r}: label {label!r} with id {lid} contradicts an earlier '
                                            f'annotation ({label!r} -> {by_name[label]}, {lid} -> {classes[lid]!r})',
                                      line=aline)
            frames = ann.get('segment(frames)')
            if frames is not None and (not isinstance(frames, list) or len(frames) != 2):
                raise AnnotationError(path, f'video {vid!r}: "segment(frames)" must be [start, end]', line=aline)
            video.segments.append(TADSegment(start, end, label, lid))
        videos[vid] = video
    return TADAnnotations(videos=videos, classes=dict(sorted(classes.items())))


def read_opentad_json(path: PathLike, class_map: Sequence[str] | PathLike | None = None) -> TADAnnotations:
    """Read an OpenTAD THUMOS14 json.

    Layout: ``{"database": {vid: {"subset": "training"|"validation", "duration": s, "frame": n, "annotations":
    [{"label", "segment": [s, e]}]}}}``. ``Ambiguous`` annotations go to :attr:`TADVideo.ambiguous`, as OpenTAD skips
    them.

    Args:
        path: the json.
        class_map: class names in id order (or the path of ``category_idx.txt``); ``None`` sorts the labels found
            (OpenTAD builds its default map the same way).

    Raises:
        AnnotationError: a missing/invalid field, a segment that ends before it starts, or a label not in
            ``class_map``.
    """
    doc, db = _tad_database(path, depth=4)
    if isinstance(class_map, (str, os.PathLike)):
        class_map = read_class_names(class_map)
    raw = []
    for vid, info in db.items():
        vline = doc.line_of(info) or doc.line_of_key(db, vid)
        subset, duration, annotations = _tad_video_fields(path, vline, vid, info)
        frames = None
        if 'frame' in info:
            frames = parse_int(path, vline, info['frame'], f'video {vid!r}: frame', minimum=1)
        video = TADVideo(vid, subset, duration, num_frames=frames, line=vline or 0)
        segments = []
        for j, ann in enumerate(annotations):
            aline = doc.line_of_item(annotations, j) or vline
            segments.append((aline, *_tad_segment(path, aline, vid, ann)))
        raw.append((video, segments))
    if class_map is None:
        class_map = sorted({label for _, anns in raw for _, label, _, _ in anns if label != AMBIGUOUS})
    index = {name: i for i, name in enumerate(class_map)}
    videos = {}
    for video, anns in raw:
        for line, label, start, end in anns:
            if label == AMBIGUOUS:
                video.ambiguous.append((start, end))
            elif label not in index:
                raise AnnotationError(path, f'video {video.video_id!r}: label {label!r} is not in the class map',
                                      line=line)
            else:
                video.segments.append(TADSegment(start, end, label, index[label]))
        videos[video.video_id] = video
    return TADAnnotations(videos=videos, classes=dict(enumerate(class_map)))


def read_thumos_txt(path: PathLike) -> list[tuple[str, float, float]]:
    """Read an official THUMOS14 per-class (or ``Ambiguous_*.txt``) file: ``video t_start t_end`` lines, seconds.

    Raises:
        AnnotationError: a line without 3 fields, non-numeric times or an end before the start.
    """
    out = []
    for n, line in text_lines(path):
        fields = line.split()
        if len(fields) != 3:
            raise AnnotationError(path, f'expected 3 fields (video t_start t_end), got {len(fields)}', line=n)
        start = parse_float(path, n, fields[1], 't_start')
        end = parse_float(path, n, fields[2], 't_end')
        if end < start:
            raise AnnotationError(path, f't_end {end} is before t_start {start}', line=n)
        out.append((fields[0], start, end))
    return out


def _sniff_format(path: Path) -> Literal['actionformer', 'opentad']:
    """ActionFormer annotations carry ``label_id`` (and per-video ``fps``); OpenTAD's carry neither."""
    try:
        doc = json.loads(read_text(path))
    except (AnnotationError, ValueError, RecursionError):  # unreadable, not JSON, a 5000-digit number, [[[[...
        return 'actionformer'  # let the reader produce the precise error
    db = doc.get('database') if isinstance(doc, dict) else None
    if isinstance(db, dict):
        for info in db.values():
            if not isinstance(info, dict):
                break
            if 'fps' in info:
                return 'actionformer'
            if 'frame' in info:
                return 'opentad'
            annotations = info.get('annotations')
            for ann in annotations if isinstance(annotations, list) else []:
                if isinstance(ann, dict):
                    return 'actionformer' if 'label_id' in ann else 'opentad'
    return 'actionformer'


def detect_format(path: PathLike, ann_format: AnnFormat = 'auto') -> Literal['actionformer', 'opentad']:
    """The format of an annotation json: ``ann_format`` unless ``'auto'``, else ActionFormer when videos carry
    ``fps`` or annotations ``label_id``, OpenTAD when they carry ``frame``."""
    if ann_format not in ('auto', 'actionformer', 'opentad'):
        raise ValueError(f"ann_format must be 'auto', 'actionformer' or 'opentad', got {ann_format!r}")
    return _sniff_format(Path(path)) if ann_format == 'auto' else ann_format


def _class_map_beside(path: PathLike, class_map: Sequence[str] | PathLike | None) -> Sequence[str] | PathLike | None:
    """``class_map``, or else the ``category_idx.txt`` next to the annotation file if there is one."""
    if class_map is None and (Path(path).parent / 'category_idx.txt').is_file():
        return Path(path).parent / 'category_idx.txt'
    return class_map


def read_annotations(path: PathLike, ann_format: AnnFormat = 'auto',
                     class_map: Sequence[str] | PathLike | None = None) -> TADAnnotations:
    """Read an ActionFormer or OpenTAD THUMOS14 json (``'auto'``: :func:`detect_format`). ``class_map`` is OpenTAD's
    ``category_idx.txt`` (default: ``category_idx.txt`` next to the json if it exists, else the sorted labels)."""
    fmt = detect_format(path, ann_format)
    if fmt == 'actionformer':
        return read_actionformer_json(path)
    return read_opentad_json(path, _class_map_beside(path, class_map))


def class_names(ann: TADAnnotations, class_map: Sequence[str] | PathLike | None = None,
                path: PathLike = '<annotations>') -> list[str]:
    """All class names in id order. ActionFormer files only name the classes they use, so a subset-only or small
    file may miss ids: then ``class_map`` (names in id order, or OpenTAD's ``category_idx.txt``; default: the one
    next to the json) completes them, and must agree with every ``label_id`` of the file.

    Raises:
        AnnotationError: ids that are not 0..K-1 and no class map, or a class map contradicting the file.
    """
    class_map = _class_map_beside(path, class_map)
    if isinstance(class_map, (str, os.PathLike)):
        class_map = read_class_names(class_map)
    if class_map is None:
        if sorted(ann.classes) != list(range(len(ann.classes))):
            raise AnnotationError(path, f'class ids {sorted(ann.classes)} are not 0..{len(ann.classes) - 1} (the '
                                        'file does not use every class); give the class names in id order '
                                        '(class_map, e.g. a category_idx.txt)')
        return [ann.classes[i] for i in range(len(ann.classes))]
    names = list(class_map)
    wrong = {i: n for i, n in ann.classes.items() if i >= len(names) or names[i] != n}
    if wrong:
        raise AnnotationError(path, f'label ids/names {wrong} disagree with the class map {names}')
    return names


# Logical splits -> the subset names each format uses (docs/thumos14.md#classes-and-splits).
_SPLITS = {'actionformer': {'train': 'validation', 'test': 'test'},
           'opentad': {'train': 'training', 'test': 'validation'}}


def resolve_subset(ann: TADAnnotations, subset: str, ann_format: Literal['actionformer', 'opentad'],
                   where: PathLike = '<annotations>') -> list[str]:
    """Subset names in the file for ``subset``: ``'train'`` (THUMOS14 validation videos: ActionFormer
    ``Validation``, OpenTAD ``training``) or ``'test'`` (ActionFormer ``Test``, OpenTAD ``validation``); any other
    value is taken literally (case-insensitive).

    Raises:
        AnnotationError: no video of the file is in that subset (the message lists the subsets there are).
    """
    present = {v.subset.lower() for v in ann.videos.values()}
    names = [_SPLITS[ann_format].get(subset.lower(), subset.lower())]
    if not present & set(names):
        raise AnnotationError(where, f'no video in subset {subset!r} (looked for {names} in this {ann_format} '
                                     f'file); the file has subsets {sorted(present)}')
    return names
