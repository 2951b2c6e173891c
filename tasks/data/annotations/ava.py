"""AVA annotation files: box csv, label-map pbtxt, excluded timestamps, person proposals (docs/ava.md#files-and-frames).
"""
from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from .common import AnnotationError, PathLike, csv_rows, parse_float, parse_int, read_text, shown
from .safe_pickle import load_restricted_pickle

__all__ = ['AVABox', 'read_ava_csv', 'group_by_keyframe', 'read_ava_label_map', 'read_ava_excluded',
           'read_ava_proposals']


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
    for n, row in csv_rows(path):
        if len(row) not in (7, 8):
            raise AnnotationError(path, f'expected 8 fields (video_id,timestamp,x1,y1,x2,y2,action_id,person_id), '
                                        f'got {len(row)}', line=n)
        vid = row[0]
        if not vid:
            raise AnnotationError(path, 'empty video_id', line=n)
        ts = parse_int(path, n, row[1], 'timestamp', minimum=0)
        box = tuple(parse_float(path, n, v, name) for v, name in zip(row[2:6], ('x1', 'y1', 'x2', 'y2')))
        for v, name in zip(box, ('x1', 'y1', 'x2', 'y2')):
            if not 0.0 <= v <= 1.0:
                raise AnnotationError(path, f'{name} = {v} is outside [0, 1] (boxes must be normalised)', line=n)
        if box[2] < box[0] or box[3] < box[1]:
            raise AnnotationError(path, f'box {box} has x2 < x1 or y2 < y1', line=n)
        action = parse_int(path, n, row[6], 'action_id', minimum=1)
        person = parse_int(path, n, row[7], 'person_id', minimum=0) if len(row) == 8 else -1
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
# the protobuf text-format escapes a class name can need; octal and hex byte escapes are refused by name
_PBTXT_ESCAPES = {'"': '"', "'": "'", '\\': '\\', 'n': '\n', 't': '\t', 'r': '\r'}


def _pbtxt_string(path: PathLike, line: int, quoted: str) -> str:
    """The text of a quoted pbtxt string token (the tokenizer guarantees that every backslash escapes a character)."""
    parts = re.split(r'(\\.)', quoted[1:-1])  # escapes at the odd indices
    for i in range(1, len(parts), 2):
        if parts[i][1] not in _PBTXT_ESCAPES:
            raise AnnotationError(path, f'unsupported escape {parts[i]!r} in {shown(quoted)} (only \\" \\\' \\\\ \\n '
                                        '\\t \\r)', line=line)
        parts[i] = _PBTXT_ESCAPES[parts[i][1]]
    return ''.join(parts)


def read_ava_label_map(path: PathLike) -> dict[int, str]:
    """Read an AVA label-map pbtxt -> ``{id: name}`` in file order.

    Accepts both layouts AVA ships: ``item { name: "..." id: N }`` (the 60-class ActivityNet list) and
    ``label { name: "..." label_id: N label_type: ... }`` (the full 80-class list). Other fields are ignored.

    Raises:
        AnnotationError: a syntax error, a block without a name or id, a non-integer id, a duplicate id, or an escape
            in a name other than \\" \\' \\\\ \\n \\t \\r.
    """
    text = read_text(path)
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
        name = _pbtxt_string(path, vline, value)
        kind, value, vline = fields[id_key]
        if kind != 'num' or not re.fullmatch(r'-?\d+', value):
            raise AnnotationError(path, f'{id_key} must be an integer, got {value}', line=vline)
        idx = parse_int(path, vline, value, id_key)
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
    for n, row in csv_rows(path):
        if len(row) != 2:
            raise AnnotationError(path, f'expected 2 fields (video_id,timestamp), got {len(row)}', line=n)
        if not row[0]:
            raise AnnotationError(path, 'empty video_id', line=n)
        out.add((row[0], parse_int(path, n, row[1], 'timestamp', minimum=0)))
    return out


_PROPOSAL_KEY = re.compile(r'(.+),([0-9]{4,9})')  # ASCII digits, few enough for int()


def _is_rows(value: object) -> bool:
    """An array, or a list of rows of 4 or 5 numbers: what ``np.asarray`` can take in time linear in the pickle's size.
    Lists that share themselves (``v = [v, v]`` 40 times: 200 bytes of pickle) would expand to 2**40 numbers."""
    if isinstance(value, np.ndarray):
        return True
    return isinstance(value, (list, tuple)) and all(
        isinstance(r, (list, tuple, np.ndarray)) and len(r) in (4, 5)
        and (r.ndim == 1 if isinstance(r, np.ndarray) else all(isinstance(x, (int, float, np.number)) for x in r))
        for r in value)


def read_ava_proposals(path: PathLike) -> dict[tuple[str, int], np.ndarray]:
    """Read a person-proposals pickle (mmaction2 layout) -> ``{(video_id, timestamp): (N, 4|5) float32}``.

    The pickle is a dict keyed ``"video_id,%04d"`` whose values are ``[x1, y1, x2, y2(, score)]`` rows, normalised.
    It is read with :func:`~.safe_pickle.load_restricted_pickle`, which builds plain data and numeric numpy arrays
    only and runs nothing the file names (docs/security.md#pickles).

    Raises:
        AnnotationError: a pickle that names anything else (naming it), a corrupt pickle, not a dict, a key not of
            the form ``video_id,NNNN``, or a value that is not an (N, 4) or (N, 5) array of finite numbers.
    """
    data = load_restricted_pickle(path)
    if not isinstance(data, dict):
        raise AnnotationError(path, f'expected a dict keyed "video_id,timestamp", got {type(data).__name__}')
    out = {}
    for key, value in data.items():
        m = _PROPOSAL_KEY.fullmatch(key) if isinstance(key, str) else None
        if m is None:
            raise AnnotationError(path, 'key is not of the form "video_id,%04d"',
                                  key=key[:60] if isinstance(key, str) else shown(key))
        if not _is_rows(value):
            raise AnnotationError(path, f'expected an (N, 4) or (N, 5) array or a list of such rows, got '
                                        f'{type(value).__name__}', key=key)
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

