"""The shared error type and parsing helpers of the annotation readers."""
from __future__ import annotations

import pickle

import pytest

from tasks.data.annotations import AnnotationError
from tasks.data.annotations.common import csv_rows, parse_float, parse_int, text_lines
from tasks.data.annotations.located_json import LocatedJSON


def test_annotation_error_survives_pickling(tmp_path):
    # DataLoader workers send exceptions to the main process by pickling them
    err = AnnotationError(tmp_path / 'x.csv', 'bad thing', line=7)
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, ValueError)
    assert (back.line, back.reason, str(back)) == (7, 'bad thing', f'{tmp_path / "x.csv"}, line 7: bad thing')


def test_numbers_are_parsed_strictly(tmp_path):
    f = tmp_path / 'f.csv'
    assert parse_int(f, 3, '0902', 'timestamp') == 902 and parse_int(f, 3, ' 7 ', 'id', minimum=7) == 7
    for bad, message in (('3.0', "must be an integer, got '3.0'"), (True, 'must be an integer, got True'),
                         ('-1', 'must be >= 0, got -1')):
        with pytest.raises(AnnotationError, match=f'{f.name}, line 3: x {message}'):
            parse_int(f, 3, bad, 'x', minimum=0)
    assert parse_float(f, None, '1e-3', 'score') == 0.001
    with pytest.raises(AnnotationError, match="x must be finite, got 'inf'"):
        parse_float(f, 1, 'inf', 'x')
    with pytest.raises(AnnotationError, match='x must be a number, got None'):
        parse_float(f, 1, None, 'x')


def test_lines_and_csv_rows_keep_the_file_line_numbers(tmp_path):
    path = tmp_path / 'rows.csv'
    path.write_text('a, 1\n\n  \n"two\nlines",2\n,\nb,3\n')
    # blank rows are skipped; a quoted field spanning lines 4-5 is one row that starts on line 4
    assert list(csv_rows(path)) == [(1, ['a', '1']), (4, ['two\nlines', '2']), (7, ['b', '3'])]
    assert list(text_lines(path)) == [(1, 'a, 1'), (4, '"two'), (5, 'lines",2'), (6, ','), (7, 'b,3')]
    path.write_bytes(b'\xff\xfe')
    with pytest.raises(AnnotationError, match='rows.csv: not UTF-8 text'):
        list(text_lines(path))


def test_located_json_knows_the_line_of_every_entry(tmp_path):
    path = tmp_path / 'doc.json'
    path.write_text('{\n  "a": [\n    {"x": 1},\n\n    {"y": [2,\n 3]}\n  ],\n  "b": 4\n}\n')
    doc = LocatedJSON(path, depth=2)
    assert doc.root == {'a': [{'x': 1}, {'y': [2, 3]}], 'b': 4}
    first, second = doc.root['a']
    assert (doc.line_of(doc.root), doc.line_of(doc.root['a']), doc.line_of(first), doc.line_of(second)) == (1, 2, 3, 5)
    assert (doc.line_of_key(doc.root, 'a'), doc.line_of_key(doc.root, 'b')) == (2, 8)
    assert doc.line_of(4, default=-1) == -1  # scalars have no line of their own
    path.write_text('{"a": 1,\n "a": 2}')
    with pytest.raises(AnnotationError, match="doc.json, line 2: duplicate key 'a'"):
        LocatedJSON(path, depth=1)
