"""What every annotation reader shares: the one error type and the parsers of text lines, numbers and csv rows."""
from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ['PathLike', 'AnnotationError', 'read_text', 'text_lines', 'read_class_names', 'shown', 'parse_int',
           'parse_float', 'csv_rows']

PathLike = str | os.PathLike


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


def read_text(path: PathLike) -> str:
    """The file as UTF-8 text, without the byte-order mark some Windows editors write first; a missing or undecodable
    file is an :class:`AnnotationError`."""
    try:
        return Path(path).read_text(encoding='utf-8-sig')
    except FileNotFoundError:
        raise AnnotationError(path, 'file not found') from None
    except UnicodeDecodeError as e:
        raise AnnotationError(path, f'not UTF-8 text ({e.reason} at byte {e.start})') from None
    except OSError as e:  # a folder, no permission, an I/O error
        raise AnnotationError(path, f'cannot read it ({e.strerror or e})') from None


def text_lines(path: PathLike) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped line) for every non-blank line.

    Lines end at \\n, \\r\\n or \\r, as when Python (and so mmaction2) iterates over a text file; the other
    characters ``str.splitlines()`` breaks at (\\x0c, \\x1c-\\x1e, \\x85, \\u2028, \\u2029) stay inside the line.
    """
    for n, line in enumerate(io.StringIO(read_text(path), newline=None), start=1):
        line = line.strip()
        if line:
            yield n, line


def read_class_names(path: PathLike) -> list[str]:
    """Class names, one a line, blank lines skipped; line order = class index (Kinetics ``label_map_k400.txt``,
    OpenTAD ``category_idx.txt``). mmaction2's ``name<TAB>index`` lines (``label_map_k710.txt``) give the name, the
    index checked to be the line's class index.

    Raises:
        AnnotationError: a missing or unreadable file, no names, a name listed twice (naming both lines), or an index
            after a tab that is not the class index.
    """
    names: list[str] = []
    seen: dict[str, int] = {}
    for n, line in text_lines(path):
        name, tab, index = line.partition('\t')
        name = name.strip()
        if tab and index.strip() != str(len(names)):
            raise AnnotationError(path, f'index {index.strip()!r} after the tab, expected {len(names)}', line=n)
        if not name:
            raise AnnotationError(path, 'a line without a class name', line=n)
        if name in seen:
            raise AnnotationError(path, f'class {name!r} is listed twice (first on line {seen[name]})', line=n)
        seen[name] = n
        names.append(name)
    if not names:
        raise AnnotationError(path, 'the file lists no class names')
    return names


def shown(value: Any, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters, for error messages about fields that may be megabytes long."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4300-digit str limit
        text = f'<{type(value).__name__} too long to show>'
    return text if len(text) <= limit else f'{text[:limit - 5]}...{text[-2:]}'


def parse_int(path: PathLike, line: int | None, value: Any, what: str, *, minimum: int | None = None) -> int:
    """Parse an integer field (``'0902'`` -> 902; ``'3.0'`` and ``True`` are rejected)."""
    if isinstance(value, bool):
        raise AnnotationError(path, f'{what} must be an integer, got {value!r}', line=line)
    if isinstance(value, int):
        out = value
    else:
        try:
            out = int(str(value).strip())
        except ValueError:  # also more digits than Python converts (4300)
            raise AnnotationError(path, f'{what} must be an integer, got {shown(value)}', line=line) from None
    if minimum is not None and out < minimum:
        raise AnnotationError(path, f'{what} must be >= {minimum}, got {shown(out)}', line=line)
    return out


def parse_float(path: PathLike, line: int | None, value: Any, what: str) -> float:
    """Parse a finite float field."""
    if isinstance(value, bool):
        raise AnnotationError(path, f'{what} must be a number, got {value!r}', line=line)
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise AnnotationError(path, f'{what} must be a number, got {shown(value)}', line=line) from None
    except OverflowError:  # an integer beyond the float range (a JSON number with 400 digits)
        raise AnnotationError(path, f'{what} must be finite, got {shown(value)}', line=line) from None
    if not math.isfinite(out):
        raise AnnotationError(path, f'{what} must be finite, got {shown(value)}', line=line)
    return out


def csv_rows(path: PathLike) -> Iterator[tuple[int, list[str]]]:
    """(line number where the row starts, fields) for every non-empty csv row."""
    # newline='' as the csv module asks: rows end at \n, \r\n or \r only, not at the other characters that
    # str.splitlines() breaks on (\x0c, \x1c, \x85, \u2028, ...), which may sit inside a field
    reader = csv.reader(io.StringIO(read_text(path), newline=''))
    start = 1
    try:
        for row in reader:
            # reader.line_num is the line the row *ends* on; a row spans several lines only inside quotes
            if row and any(f.strip() for f in row):
                yield start, [f.strip() for f in row]
            start = reader.line_num + 1
    except csv.Error as e:
        raise AnnotationError(path, f'bad csv: {e}', line=reader.line_num) from None

