"""Fixtures of the annotation-reader tests: write a fixture file, expect an AnnotationError at a file and line."""
from __future__ import annotations

import re
import textwrap

import pytest

from tasks.data.annotations import AnnotationError


@pytest.fixture
def write(tmp_path):
    """``write(name, text)``: ``text`` (dedented, leading newline dropped) as ``tmp_path / name``; returns the path."""
    def write_file(name: str, text: str):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip('\n'))
        return path
    return write_file


@pytest.fixture
def raises_at():
    """``raises_at(path, line=None, match='', key=None)``: pytest.raises for an AnnotationError naming ``path`` and
    ``line`` (or ``key``)."""
    def expect(path, line: int | None = None, match: str = '', key: str | None = None):
        where = f', line {line}:' if line is not None else (f", key '{key}':" if key is not None else ':')
        return pytest.raises(AnnotationError, match=re.escape(f'{path}{where}') + f'.*{match}')
    return expect
