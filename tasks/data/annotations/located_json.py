"""A JSON parser that remembers the line of every object, so an annotation error can name the line of its entry."""
from __future__ import annotations

import bisect
import json
import re
from typing import Any

from .common import AnnotationError, PathLike, read_text

__all__ = ['LocatedJSON']


class LocatedJSON:
    """Parse JSON and remember the line where each dict/list starts, so errors can name the line of an entry.

    Containers down to ``depth`` levels are walked here; deeper values (e.g. each SSv2 entry, each THUMOS annotation)
    are decoded in one C call by ``json.JSONDecoder.raw_decode``, which keeps parsing the 169k SSv2 training entries
    about as fast as ``json.load``.
    """

    def __init__(self, path: PathLike, depth: int):
        self.path = path
        self.text = read_text(path)
        self._newlines = [m.start() for m in re.finditer('\n', self.text)]
        self._lines: dict[int, int] = {}
        self._key_lines: dict[tuple[int, str], int] = {}
        self._item_lines: dict[tuple[int, int], int] = {}
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

    def line_of_item(self, obj: list, index: int) -> int | None:
        """Line where item ``index`` of a list this parser walked itself starts (scalars included)."""
        return self._item_lines.get((id(obj), index))

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
        except ValueError as e:  # Python's limit of 4300 digits for an int (the advice after ';' is not for users)
            raise AnnotationError(self.path, f'invalid JSON: {str(e).split(";")[0]}', line=self.line_at(pos)) from None
        except RecursionError:  # the C decoder recurses once per nested [ or {
            raise AnnotationError(self.path, 'invalid JSON: nested too deeply', line=self.line_at(pos)) from None

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
                self._item_lines[(id(out), len(out))] = self.line_at(i)
                value, i = self._parse(i, depth - 1)
                out.append(value)
            i = self._ws(i)
            if i < len(self.text) and self.text[i] == ',':
                i = self._ws(i + 1)
            elif i < len(self.text) and self.text[i] == close:
                return out, i + 1
            else:
                self._fail(i, f"expected ',' or '{close}'")

