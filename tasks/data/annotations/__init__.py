"""Readers for the annotation files of every benchmark the tasks use (real and synthetic alike).

Formats (docs/classification.md#data, docs/ava.md#files-and-frames, docs/thumos14.md#annotation-formats):

* **Video lists** (mmaction2 ``VideoDataset`` / ``RawframeDataset``): ``path label`` or
  ``frame_dir total_frames label``, whitespace-separated, one video a line.
* **Something-Something v2**: ``labels.json`` (class name -> id string) and ``train.json`` / ``validation.json`` /
  ``test.json`` (lists of ``{"id", "label", "template", "placeholders"}``); the class of an entry is its template with
  the ``[`` ``]`` brackets removed.
* **Kinetics** official csv: ``label,youtube_id,time_start,time_end,split[,is_cc]`` with a header (test files have no
  ``label`` column).
* **AVA**: the ``ava_{train,val}_v2.2.csv`` rows ``video_id,timestamp,x1,y1,x2,y2,action_id,person_id`` (one row per
  (box, action), merged here into one record per box with all its actions), the label-map pbtxt, the excluded-timestamps
  csv and the person-proposals pickle.
* **THUMOS14**: ActionFormer json, OpenTAD json (+ its ``category_idx.txt`` class map) and the official per-class /
  ``Ambiguous`` txt files.

Every reader returns plain dataclasses / dicts and raises one exception type, :class:`AnnotationError`, naming the
file, the line (or the key, for pickles) and what is wrong, so a broken file is found without a debugger.
"""
from __future__ import annotations

import bisect
import csv
import json
import math
import os
import pickle
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    'AnnotationError',
    'VideoListEntry', 'read_video_list',
    'SSv2Entry', 'read_ssv2_labels', 'read_ssv2_split',
    'KineticsEntry', 'read_kinetics_csv',
    'AVABox', 'read_ava_csv', 'read_ava_label_map', 'read_ava_excluded', 'read_ava_proposals', 'group_by_keyframe',
    'TADSegment', 'TADVideo', 'TADAnnotations', 'read_actionformer_json', 'read_opentad_json', 'read_class_map',
    'read_thumos_txt', 'AMBIGUOUS',
]

PathLike = str | os.PathLike

# THUMOS14 marks unclear instances with this pseudo-class; they are not a class to detect (docs/thumos14.md#annotation-formats, docs/thumos14.md#evaluation).
AMBIGUOUS = 'Ambiguous'


class AnnotationError(ValueError):
    """A malformed annotation file.

    The message reads ``<file>, line <n>: <what is wrong>`` (or ``<file>, key '<k>': ...`` for pickles, ``<file>: ...``
    for whole-file problems).

    Attributes:
        path: the file.
        line: 1-based line number of the offending entry, if the format has lines.
        key: the offending key, for formats without lines (pickles).
        reason: what is wrong, in words.
    """

    def __init__(self, path: PathLike, reason: str, *, line: int | None = None, key: str | None = None):
        self.path = Path(path)
        self.line = line
        self.key = key
        self.reason = reason
        where = f', line {line}' if line is not None else (f', key {key!r}' if key is not None else '')
        super().__init__(f'{self.path}{where}: {reason}')

    def __reduce__(self):
        # keyword-only arguments do not survive the default exception pickling (DataLoader workers pickle errors)
        return _rebuild_error, (self.path, self.reason, self.line, self.key)


def _rebuild_error(path, reason, line, key) -> AnnotationError:
    return AnnotationError(path, reason, line=line, key=key)


# ----------------------------------------------------------------------------------------------------------------------
# small parsing helpers


def _read_text(path: PathLike) -> str:
    try:
        return Path(path).read_text(encoding='utf-8')
    except FileNotFoundError:
        raise AnnotationError(path, 'file not found') from None
    except UnicodeDecodeError as e:
        raise AnnotationError(path, f'not UTF-8 text ({e.reason} at byte {e.start})') from None


def _lines(path: PathLike) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped line) for every non-blank line."""
    for n, line in enumerate(_read_text(path).splitlines(), start=1):
        line = line.strip()
        if line:
            yield n, line


def _int(path: PathLike, line: int | None, value: Any, what: str, *, minimum: int | None = None) -> int:
    """Parse an integer field (``'0902'`` -> 902; ``'3.0'`` and ``True`` are rejected)."""
    if isinstance(value, bool):
        raise AnnotationError(path, f'{what} must be an integer, got {value!r}', line=line)
    if isinstance(value, int):
        out = value
    else:
        try:
            out = int(str(value).strip())
        except ValueError:
            raise AnnotationError(path, f'{what} must be an integer, got {value!r}', line=line) from None
    if minimum is not None and out < minimum:
        raise AnnotationError(path, f'{what} must be >= {minimum}, got {out}', line=line)
    return out


def _float(path: PathLike, line: int | None, value: Any, what: str) -> float:
    """Parse a finite float field."""
    if isinstance(value, bool):
        raise AnnotationError(path, f'{what} must be a number, got {value!r}', line=line)
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise AnnotationError(path, f'{what} must be a number, got {value!r}', line=line) from None
    if not math.isfinite(out):
        raise AnnotationError(path, f'{what} must be finite, got {value!r}', line=line)
    return out


def _csv_rows(path: PathLike) -> Iterator[tuple[int, list[str]]]:
    """(line number where the row starts, fields) for every non-empty csv row."""
    text = _read_text(path)
    reader = csv.reader(text.splitlines(keepends=True))
    start = 1
    try:
        for row in reader:
            # reader.line_num is the line the row *ends* on; a row spans several lines only inside quotes
            if row and any(f.strip() for f in row):
                yield start, [f.strip() for f in row]
            start = reader.line_num + 1
    except csv.Error as e:
        raise AnnotationError(path, f'bad csv: {e}', line=reader.line_num) from None


class _LocatedJSON:
    """Parse JSON and remember the line where each dict/list starts, so errors can name the line of an entry.

    Containers down to ``depth`` levels are walked here; deeper values (e.g. each SSv2 entry, each THUMOS annotation)
    are decoded in one C call by ``json.JSONDecoder.raw_decode``, which keeps parsing the 169k SSv2 training entries
    about as fast as ``json.load``.
    """

    def __init__(self, path: PathLike, depth: int):
        self.path = path
        self.text = _read_text(path)
        self._newlines = [m.start() for m in re.finditer('\n', self.text)]
        self._lines: dict[int, int] = {}
        self._key_lines: dict[tuple[int, str], int] = {}
        self._decoder = json.JSONDecoder()
        self._keep: list[Any] = []  # keeps located objects alive so that their id() stays unique
        pos = self._ws(0)
        if pos == len(self.text):
            raise AnnotationError(path, 'empty file, expected JSON', line=1)
        self.root, end = self._parse(pos, depth)
        end = self._ws(end)
        if end != len(self.text):
            raise AnnotationError(path, 'extra data after the JSON value', line=self.line_at(end))

    def line_at(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1

    def line_of(self, obj: Any, default: int | None = None) -> int | None:
        """Line where container ``obj`` starts (``default`` for scalars and unknown objects)."""
        return self._lines.get(id(obj), default)

    def line_of_key(self, obj: dict, key: str) -> int | None:
        """Line of ``"key":`` inside an object this parser walked itself (depth above the limit)."""
        return self._key_lines.get((id(obj), key))

    def _ws(self, pos: int) -> int:
        while pos < len(self.text) and self.text[pos] in ' \t\r\n':
            pos += 1
        return pos

    def _fail(self, pos: int, reason: str):
        raise AnnotationError(self.path, f'invalid JSON: {reason}', line=self.line_at(pos))

    def _decode(self, pos: int) -> tuple[Any, int]:
        try:
            return self._decoder.raw_decode(self.text, pos)
        except json.JSONDecodeError as e:
            raise AnnotationError(self.path, f'invalid JSON: {e.msg} (column {e.colno})', line=e.lineno) from None

    def _record(self, obj: Any, pos: int) -> None:
        if isinstance(obj, (dict, list)):
            self._lines[id(obj)] = self.line_at(pos)
            self._keep.append(obj)

    def _parse(self, pos: int, depth: int) -> tuple[Any, int]:
        if pos >= len(self.text):
            self._fail(pos, 'unexpected end of file')
        ch = self.text[pos]
        if depth <= 0 or ch not in '[{':
            obj, end = self._decode(pos)
            self._record(obj, pos)
            return obj, end
        close = ']' if ch == '[' else '}'
        out: Any = [] if ch == '[' else {}
        self._record(out, pos)
        i = self._ws(pos + 1)
        if i < len(self.text) and self.text[i] == close:
            return out, i + 1
        while True:
            if ch == '{':
                if i >= len(self.text) or self.text[i] != '"':
                    self._fail(i, 'expected a string key')
                key, i = self._decode(i)
                i = self._ws(i)
                if i >= len(self.text) or self.text[i] != ':':
                    self._fail(i, "expected ':' after a key")
                key_line = self.line_at(i)
                value, i = self._parse(self._ws(i + 1), depth - 1)
                if key in out:
                    raise AnnotationError(self.path, f'duplicate key {key!r}', line=key_line)
                out[key] = value
                self._key_lines[(id(out), key)] = key_line
            else:
                value, i = self._parse(i, depth - 1)
                out.append(value)
            i = self._ws(i)
            if i < len(self.text) and self.text[i] == ',':
                i = self._ws(i + 1)
            elif i < len(self.text) and self.text[i] == close:
                return out, i + 1
            else:
                self._fail(i, f"expected ',' or '{close}'")


# ----------------------------------------------------------------------------------------------------------------------
# classification: video lists, SSv2, Kinetics


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
    for n, line in _lines(path):
        fields = line.split()
        if len(fields) != expected:
            raise AnnotationError(path, f'expected {expected} fields ({layout}), got {len(fields)}: {line!r}', line=n)
        label = _int(path, n, fields[-1], 'label', minimum=0)
        if num_classes is not None and label >= num_classes:
            raise AnnotationError(path, f'label {label} out of range for {num_classes} classes', line=n)
        total = _int(path, n, fields[1], 'total_frames', minimum=1) if format == 'rawframes' else None
        video = os.path.join(root, fields[0]) if root is not None else fields[0]
        out.append(VideoListEntry(path=video, label=label, total_frames=total, line=n))
    return out


@dataclass(frozen=True)
class SSv2Entry:
    """One Something-Something v2 video.

    Attributes:
        id: the video id (the file is ``<id>.webm`` in the official release).
        label: class id from ``labels.json``; ``None`` for unlabelled (test) entries.
        template: the class name, i.e. the template with ``[`` ``]`` removed (``None`` when unlabelled).
        text: the entry's ``label`` field, the template filled with the placeholders.
        placeholders: the objects filled into the template.
    """

    id: str
    label: int | None
    template: str | None
    text: str | None = None
    placeholders: tuple[str, ...] = ()


def _ssv2_class_name(template: str) -> str:
    # SSv2's labels.json keys are the templates without the brackets around the placeholders
    return template.replace('[', '').replace(']', '')


def read_ssv2_labels(path: PathLike) -> dict[str, int]:
    """Read SSv2 ``labels.json``: ``{"Approaching something with your camera": "0", ...}`` -> name -> int id.

    Raises:
        AnnotationError: not an object, an id that is not a non-negative integer (or integer string), or two classes
            sharing an id.
    """
    doc = _LocatedJSON(path, depth=1)
    if not isinstance(doc.root, dict):
        raise AnnotationError(path, f'expected a JSON object mapping class names to ids, got {type(doc.root).__name__}',
                              line=1)
    out: dict[str, int] = {}
    seen: dict[int, str] = {}
    for name, value in doc.root.items():
        line = doc.line_of_key(doc.root, name)
        if isinstance(value, str) and not value.strip().isdigit():
            raise AnnotationError(path, f'class {name!r}: id must be an integer string, got {value!r}', line=line)
        idx = _int(path, line, value, f'class {name!r}: id', minimum=0)
        if idx in seen:
            raise AnnotationError(path, f'class {name!r}: id {idx} already used by {seen[idx]!r}', line=line)
        seen[idx] = name
        out[name] = idx
    return out


def read_ssv2_split(path: PathLike, labels: Mapping[str, int] | PathLike) -> list[SSv2Entry]:
    """Read an SSv2 split file (``train.json``, ``validation.json`` or ``test.json``).

    Args:
        path: the split file, a JSON list of ``{"id", "label", "template", "placeholders"}`` (test: ``{"id"}`` only).
        labels: the class map from :func:`read_ssv2_labels`, or the path of ``labels.json``.

    Raises:
        AnnotationError: an entry that is not an object, lacks ``id``, has a template that is not a string or whose
            class is not in ``labels``, a duplicate id, or placeholders that are not a list of strings.
    """
    if not isinstance(labels, Mapping):
        labels = read_ssv2_labels(labels)
    doc = _LocatedJSON(path, depth=1)
    if not isinstance(doc.root, list):
        raise AnnotationError(path, f'expected a JSON list of videos, got {type(doc.root).__name__}', line=1)
    out = []
    seen: dict[str, int] = {}
    for i, item in enumerate(doc.root):
        line = doc.line_of(item)
        if not isinstance(item, dict):
            raise AnnotationError(path, f'entry {i}: expected an object, got {type(item).__name__}', line=line)
        if 'id' not in item or isinstance(item['id'], (dict, list, bool)) or item['id'] is None:
            raise AnnotationError(path, f'entry {i}: missing or invalid "id"', line=line)
        vid = str(item['id'])
        if vid in seen:
            raise AnnotationError(path, f'entry {i}: id {vid!r} already used on line {seen[vid]}', line=line)
        seen[vid] = line or 0
        template = item.get('template')
        label = name = None
        if template is not None:
            if not isinstance(template, str):
                raise AnnotationError(path, f'video {vid}: "template" must be a string', line=line)
            name = _ssv2_class_name(template)
            if name not in labels:
                raise AnnotationError(path, f'video {vid}: class {name!r} (template {template!r}) is not in the '
                                            f'label map', line=line)
            label = labels[name]
        placeholders = item.get('placeholders', [])
        if not isinstance(placeholders, list) or not all(isinstance(p, str) for p in placeholders):
            raise AnnotationError(path, f'video {vid}: "placeholders" must be a list of strings', line=line)
        text = item.get('label')
        if text is not None and not isinstance(text, str):
            raise AnnotationError(path, f'video {vid}: "label" must be a string', line=line)
        out.append(SSv2Entry(id=vid, label=label, template=name, text=text, placeholders=tuple(placeholders)))
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
    rows = _csv_rows(path)
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
        start = _int(path, n, _integral(row[col['time_start']]), 'time_start', minimum=0)
        end = _int(path, n, _integral(row[col['time_end']]), 'time_end', minimum=0)
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


# ----------------------------------------------------------------------------------------------------------------------
# AVA


@dataclass(frozen=True)
class AVABox:
    """One annotated box of one AVA keyframe, with every action its rows give it.

    Attributes:
        video_id: the video.
        timestamp: the keyframe, integer seconds of the original video (902-1798 for AVA).
        box: ``(x1, y1, x2, y2)`` normalised to [0, 1].
        action_ids: the actions of this box, sorted, de-duplicated (AVA ids are 1-based).
        person_id: the per-video person (track) id; ``-1`` if the csv has no such column.
        line: line of the first row of this box.
    """

    video_id: str
    timestamp: int
    box: tuple[float, float, float, float]
    action_ids: tuple[int, ...]
    person_id: int = -1
    line: int = 0

    def multi_hot(self, num_classes: int) -> np.ndarray:
        """(num_classes,) float32 with ``out[action_id] = 1``.

        Ids index the vector directly, so AVA's 1-based ids need ``num_classes=81`` (index 0 is mmaction2's
        background slot and stays 0).
        """
        out = np.zeros(num_classes, dtype=np.float32)
        for a in self.action_ids:
            if a >= num_classes:
                raise ValueError(f'action id {a} does not fit a {num_classes}-class vector')
            out[a] = 1.0
        return out


def read_ava_csv(path: PathLike, *, keep_ids: Collection[int] | None = None) -> list[AVABox]:
    """Read an AVA csv and merge its (box, action) rows into one :class:`AVABox` per (video, timestamp, box).

    Rows are ``video_id, timestamp, x1, y1, x2, y2, action_id[, person_id]`` without a header. Rows of one box are
    recognised by equal parsed coordinates (as mmaction2 does), so ``0.1`` and ``0.100`` are the same box.

    Args:
        path: the csv.
        keep_ids: if given, rows whose action is not in it are dropped (e.g. the 60 evaluated ids of the label map);
            a box left with no action is dropped too.

    Returns:
        Boxes in the order of their first row.

    Raises:
        AnnotationError: a row without 7 or 8 fields, a non-integer timestamp/action/person id, a coordinate outside
            [0, 1], or x2 < x1 / y2 < y1.
    """
    merged: dict[tuple, dict] = {}
    for n, row in _csv_rows(path):
        if len(row) not in (7, 8):
            raise AnnotationError(path, f'expected 8 fields (video_id,timestamp,x1,y1,x2,y2,action_id,person_id), '
                                        f'got {len(row)}', line=n)
        vid = row[0]
        if not vid:
            raise AnnotationError(path, 'empty video_id', line=n)
        ts = _int(path, n, row[1], 'timestamp', minimum=0)
        box = tuple(_float(path, n, v, name) for v, name in zip(row[2:6], ('x1', 'y1', 'x2', 'y2')))
        for v, name in zip(box, ('x1', 'y1', 'x2', 'y2')):
            if not 0.0 <= v <= 1.0:
                raise AnnotationError(path, f'{name} = {v} is outside [0, 1] (boxes must be normalised)', line=n)
        if box[2] < box[0] or box[3] < box[1]:
            raise AnnotationError(path, f'box {box} has x2 < x1 or y2 < y1', line=n)
        action = _int(path, n, row[6], 'action_id', minimum=1)
        person = _int(path, n, row[7], 'person_id', minimum=0) if len(row) == 8 else -1
        if keep_ids is not None and action not in keep_ids:
            continue
        key = (vid, ts, box)
        rec = merged.setdefault(key, {'actions': set(), 'person': person, 'line': n})
        rec['actions'].add(action)
    return [AVABox(vid, ts, box, tuple(sorted(r['actions'])), r['person'], r['line'])
            for (vid, ts, box), r in merged.items()]


def group_by_keyframe(boxes: Sequence[AVABox]) -> dict[tuple[str, int], list[AVABox]]:
    """``(video_id, timestamp)`` -> that keyframe's boxes, in input order."""
    out: dict[tuple[str, int], list[AVABox]] = {}
    for b in boxes:
        out.setdefault((b.video_id, b.timestamp), []).append(b)
    return out


_PBTXT_TOKEN = re.compile(r'\s+|#[^\n]*|(?P<str>"(?:[^"\\\n]|\\.)*")|(?P<word>[A-Za-z_][A-Za-z0-9_]*)'
                          r'|(?P<num>-?\d+(?:\.\d*)?)|(?P<sym>[{}:])')


def read_ava_label_map(path: PathLike) -> dict[int, str]:
    """Read an AVA label-map pbtxt -> ``{id: name}`` in file order.

    Accepts both layouts AVA ships: ``item { name: "..." id: N }`` (the 60-class ActivityNet list) and
    ``label { name: "..." label_id: N label_type: ... }`` (the full 80-class list). Other fields are ignored.

    Raises:
        AnnotationError: a syntax error, a block without a name or id, a non-integer id, or a duplicate id.
    """
    text = _read_text(path)
    tokens: list[tuple[str, str, int]] = []  # (kind, value, line)
    pos, line = 0, 1
    while pos < len(text):
        m = _PBTXT_TOKEN.match(text, pos)
        if m is None:
            raise AnnotationError(path, f'unexpected character {text[pos]!r}', line=line)
        kind = m.lastgroup
        if kind is not None:
            tokens.append((kind, m.group(kind), line))
        line += m.group(0).count('\n')
        pos = m.end()

    out: dict[int, str] = {}
    i = 0

    def expect(kinds: tuple[str, ...], values: tuple[str, ...] | None = None) -> tuple[str, str, int]:
        nonlocal i
        if i >= len(tokens):
            raise AnnotationError(path, 'unexpected end of file inside a block', line=line)
        tok = tokens[i]
        if tok[0] not in kinds or (values is not None and tok[1] not in values):
            want = ' or '.join(repr(v) for v in values) if values else ' or '.join(kinds)
            raise AnnotationError(path, f'expected {want}, got {tok[1]!r}', line=tok[2])
        i += 1
        return tok

    while i < len(tokens):
        _, _, block_line = expect(('word',), ('item', 'label'))
        expect(('sym',), ('{',))
        fields: dict[str, tuple[str, str, int]] = {}
        while i < len(tokens) and tokens[i][1] != '}':
            _, key, key_line = expect(('word',))
            expect(('sym',), (':',))
            kind, value, _ = expect(('str', 'num', 'word'))
            if key in fields:
                raise AnnotationError(path, f'field {key!r} given twice in one block', line=key_line)
            fields[key] = (kind, value, key_line)
        expect(('sym',), ('}',))
        id_key = 'id' if 'id' in fields else 'label_id'
        if 'name' not in fields or id_key not in fields:
            raise AnnotationError(path, 'block lacks a "name" or an "id"/"label_id" field', line=block_line)
        kind, value, vline = fields['name']
        if kind != 'str':
            raise AnnotationError(path, f'name must be a quoted string, got {value}', line=vline)
        name = json.loads(value)  # pbtxt escapes are a superset of what AVA uses; JSON covers \" and \\
        kind, value, vline = fields[id_key]
        if kind != 'num' or not re.fullmatch(r'-?\d+', value):
            raise AnnotationError(path, f'{id_key} must be an integer, got {value}', line=vline)
        idx = int(value)
        if idx in out:
            raise AnnotationError(path, f'id {idx} ({name!r}) already used by {out[idx]!r}', line=vline)
        out[idx] = name
    if not out:
        raise AnnotationError(path, 'no "item"/"label" blocks found')
    return out


def read_ava_excluded(path: PathLike) -> set[tuple[str, int]]:
    """Read an excluded-timestamps csv (``video_id,timestamp`` rows) -> ``{(video_id, timestamp)}``.

    Raises:
        AnnotationError: a row without exactly 2 fields or a non-integer timestamp.
    """
    out = set()
    for n, row in _csv_rows(path):
        if len(row) != 2:
            raise AnnotationError(path, f'expected 2 fields (video_id,timestamp), got {len(row)}', line=n)
        if not row[0]:
            raise AnnotationError(path, 'empty video_id', line=n)
        out.add((row[0], _int(path, n, row[1], 'timestamp', minimum=0)))
    return out


_PROPOSAL_KEY = re.compile(r'(.+),(\d{4,})')


def read_ava_proposals(path: PathLike) -> dict[tuple[str, int], np.ndarray]:
    """Read a person-proposals pickle (mmaction2 layout) -> ``{(video_id, timestamp): (N, 4|5) float32}``.

    The pickle is a dict keyed ``"video_id,%04d"`` whose values are ``[x1, y1, x2, y2(, score)]`` rows, normalised.
    Only load pickles from a trusted source: unpickling runs code.

    Raises:
        AnnotationError: not a dict, a key not of the form ``video_id,NNNN``, or a value that is not an (N, 4) or
            (N, 5) array of finite numbers.
    """
    try:
        with open(path, 'rb') as f:
            data = pickle.load(f)
    except FileNotFoundError:
        raise AnnotationError(path, 'file not found') from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the same thing here
        raise AnnotationError(path, f'cannot unpickle: {type(e).__name__}: {e}') from None
    if not isinstance(data, dict):
        raise AnnotationError(path, f'expected a dict keyed "video_id,timestamp", got {type(data).__name__}')
    out = {}
    for key, value in data.items():
        m = _PROPOSAL_KEY.fullmatch(key) if isinstance(key, str) else None
        if m is None:
            raise AnnotationError(path, 'key is not of the form "video_id,%04d"', key=str(key))
        try:
            arr = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError):
            raise AnnotationError(path, f'value is not numeric ({type(value).__name__})', key=key) from None
        if arr.size == 0:
            arr = arr.reshape(0, 5)
        if arr.ndim != 2 or arr.shape[1] not in (4, 5):
            raise AnnotationError(path, f'expected an (N, 4) or (N, 5) array, got shape {arr.shape}', key=key)
        if not np.isfinite(arr).all():
            raise AnnotationError(path, 'non-finite values', key=key)
        out[(m.group(1), int(m.group(2)))] = arr
    return out


# ----------------------------------------------------------------------------------------------------------------------
# THUMOS14 / temporal action detection


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


def _tad_database(path: PathLike, depth: int) -> tuple[_LocatedJSON, dict]:
    doc = _LocatedJSON(path, depth=depth)
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
    duration = _float(path, line, info['duration'], f'video {vid!r}: duration')
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
    start = _float(path, line, seg[0], f'video {vid!r}: segment start')
    end = _float(path, line, seg[1], f'video {vid!r}: segment end')
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
        vline = doc.line_of(info)
        subset, duration, annotations = _tad_video_fields(path, vline, vid, info)
        fps = None
        if 'fps' in info:
            fps = _float(path, vline, info['fps'], f'video {vid!r}: fps')
            if fps <= 0:
                raise AnnotationError(path, f'video {vid!r}: fps must be > 0, got {fps}', line=vline)
        video = TADVideo(vid, subset, duration, fps=fps, line=vline or 0)
        for ann in annotations:
            aline = doc.line_of(ann, vline)
            label, start, end = _tad_segment(path, aline, vid, ann)
            if label == AMBIGUOUS:
                video.ambiguous.append((start, end))
                continue
            if 'label_id' not in ann:
                raise AnnotationError(path, f'video {vid!r}: annotation {label!r} has no "label_id"', line=aline)
            lid = _int(path, aline, ann['label_id'], f'video {vid!r}: label_id', minimum=0)
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


def read_class_map(path: PathLike) -> list[str]:
    """Read an OpenTAD class map (``category_idx.txt``: one class name a line, line order = 0-based id).

    Raises:
        AnnotationError: a duplicate name or an empty file.
    """
    names = []
    seen: dict[str, int] = {}
    for n, line in _lines(path):
        if line in seen:
            raise AnnotationError(path, f'class {line!r} already listed on line {seen[line]}', line=n)
        seen[line] = n
        names.append(line)
    if not names:
        raise AnnotationError(path, 'no class names')
    return names


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
        class_map = read_class_map(class_map)
    raw = []
    for vid, info in db.items():
        vline = doc.line_of(info)
        subset, duration, annotations = _tad_video_fields(path, vline, vid, info)
        frames = None
        if 'frame' in info:
            frames = _int(path, vline, info['frame'], f'video {vid!r}: frame', minimum=1)
        video = TADVideo(vid, subset, duration, num_frames=frames, line=vline or 0)
        segments = []
        for ann in annotations:
            aline = doc.line_of(ann, vline)
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
    for n, line in _lines(path):
        fields = line.split()
        if len(fields) != 3:
            raise AnnotationError(path, f'expected 3 fields (video t_start t_end), got {len(fields)}', line=n)
        start = _float(path, n, fields[1], 't_start')
        end = _float(path, n, fields[2], 't_end')
        if end < start:
            raise AnnotationError(path, f't_end {end} is before t_start {start}', line=n)
        out.append((fields[0], start, end))
    return out
