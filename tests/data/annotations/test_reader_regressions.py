"""One example per reader bug the property tests (test_fuzz_readers.py) found, so each stays fixed without hypothesis.

Each test names the input and what the reader did with it before the fix.
"""
from __future__ import annotations

import json

import pytest

from tasks.data.annotations import (AnnotationError, detect_format, read_actionformer_json, read_annotations,
                                    read_ava_csv, read_ava_label_map, read_class_names, read_kinetics_csv,
                                    read_opentad_json, read_ssv2_labels, read_ssv2_split, read_video_list)
from tasks.data.annotations.common import parse_float, parse_int

BOM = '\ufeff'
VIDEO = '{"subset": "Test", "duration": 33.5, "fps": 30.0, "annotations": []}'


def test_a_leading_byte_order_mark_is_not_part_of_the_first_field(write):
    # before: the BOM stayed in the first field ('\ufeffa.mp4'; the Kinetics header '\ufefflabel', so the optional
    # label column was silently lost) and JSON / pbtxt files were refused as invalid
    assert read_video_list(write('list.txt', BOM + 'a.mp4 3\n'))[0].path == 'a.mp4'
    kinetics = read_kinetics_csv(write('k400.csv', BOM + 'label,youtube_id,time_start,time_end,split\n'
                                                         'abseiling,abc,1,11,train\n'))
    assert [(e.youtube_id, e.label) for e in kinetics] == [('abc', 'abseiling')]
    assert read_ava_csv(write('ava.csv', BOM + 'v,0902,0.1,0.2,0.3,0.4,3\n'))[0].video_id == 'v'
    assert read_ssv2_labels(write('labels.json', BOM + '{"Holding something": "0"}')) == {'Holding something': 0}
    assert read_ava_label_map(write('map.pbtxt', BOM + 'item { name: "a" id: 1 }\n')) == {1: 'a'}
    af = write('thumos14.json', BOM + '{"database": {"v": ' + VIDEO + '}}')
    assert detect_format(af) == 'actionformer' and list(read_annotations(af).videos) == ['v']


def test_lines_end_where_a_text_file_reader_ends_them(write, raises_at):
    # before: str.splitlines() also broke lines at \x0c, \x1c, \x85, \u2028 ..., so a Kinetics label holding one was
    # cut into two csv rows ("expected 5 fields") and a class name into two names
    path = write('k400.csv', 'label,youtube_id,time_start,time_end,split\n'
                             'tai\u2028chi,abc,1,11,train\nair\x85drumming,def,2,12,train\n')
    assert [e.label for e in read_kinetics_csv(path)] == ['tai\u2028chi', 'air\x85drumming']
    assert read_class_names(write('classes.txt', 'a\x0cb\nc\x1cd\n')) == ['a\x0cb', 'c\x1cd']
    # ... and line numbers count \n, \r\n and \r only
    bad = write('bad.txt', 'a 1\r\nb\x85 2\rd\n')  # \x85 is whitespace inside line 2, as for mmaction2's split()
    with raises_at(bad, 3, r"expected 2 fields \(path label\), got 1: 'd'"):
        read_video_list(bad)


def test_a_number_too_large_for_a_float_is_refused_with_its_line(write, raises_at):
    # before: OverflowError (float() of a 400-digit JSON integer)
    path = write('thumos14.json', '{"database": {\n"v": ' + VIDEO.replace('33.5', '1' + '0' * 400) + '}}')
    with raises_at(path, 2, r"video 'v': duration must be finite, got 10{34}\.\.\.00$"):
        read_actionformer_json(path)
    with pytest.raises(AnnotationError, match='x must be finite'):
        parse_float(path, 1, 10 ** 400, 'x')


def test_a_number_with_more_digits_than_python_reads_is_refused_with_its_line(write, raises_at):
    # before: ValueError "Exceeds the limit (4300 digits) for integer string conversion" out of the JSON decoder
    # (every JSON reader) and out of int() in the pbtxt reader
    path = write('labels.json', '{"a": "0",\n "b": ' + '9' * 5000 + '}')
    with raises_at(path, 2, r'invalid JSON: Exceeds the limit \(4300 digits\)'):
        read_ssv2_labels(path)
    pbtxt = write('map.pbtxt', 'item {\n name: "a"\n id: ' + '9' * 5000 + '\n}\n')
    with raises_at(pbtxt, 3, r"id must be an integer, got '9{34}\.\.\.9'$"):
        read_ava_label_map(pbtxt)
    with pytest.raises(AnnotationError, match=r"n must be an integer, got '999.*\.\.\.9'$"):
        parse_int(pbtxt, 1, '9' * 5000, 'n')


def test_deep_nesting_is_refused_with_its_line(write, raises_at):
    # before: RecursionError out of the JSON decoder
    path = write('validation.json', '[\n{"id": 1},\n' + '[' * 100_000 + ']' * 100_000 + '\n]')
    with raises_at(path, 3, 'invalid JSON: nested too deeply'):
        read_ssv2_split(path, {})


@pytest.mark.parametrize('data', [
    b'\x80{"database": {}}',                                      # before: UnicodeDecodeError
    b'[' * 100_000,                                               # before: RecursionError
    b'{"database": {"v": {"duration": ' + b'9' * 5000 + b'}}}',   # before: ValueError (4300 digits)
    b'{"database": {"v": {"subset": "Test", "annotations": 5}}}',  # before: TypeError ('int' is not iterable)
])
def test_format_sniffing_leaves_a_broken_file_to_the_reader(tmp_path, data):
    path = tmp_path / 'thumos14.json'
    path.write_bytes(data)
    assert detect_format(path) == 'actionformer'
    with pytest.raises(AnnotationError, match=f'^{path}'):
        read_annotations(path)


def test_pbtxt_names_take_the_text_format_escapes_and_refuse_others(write, raises_at):
    # before: json.loads read the name, so \' and a raw tab raised JSONDecodeError, and so did \x41
    path = write('map.pbtxt', 'item { name: "it\\\'s \\"a\\"\\\\b\\tc\td" id: 1 }\n')
    assert read_ava_label_map(path) == {1: 'it\'s "a"\\b\tc\td'}
    bad = write('bad.pbtxt', 'item { name: "a" id: 1 }\nitem {\n name: "\\x41"\n id: 2 }\n')
    with raises_at(bad, 3, r"unsupported escape '\\\\x' in '\"\\\\x41\"'"):
        read_ava_label_map(bad)


def test_an_entry_that_is_not_an_object_is_named_with_its_line(write, raises_at):
    # before: the error had no line (the parser only knew the lines of objects and lists, not of null or 5)
    path = write('validation.json', '[\n {"id": 1},\n null\n]')
    with raises_at(path, 3, 'entry 1: expected an object, got NoneType'):
        read_ssv2_split(path, {})
    for reader in (read_actionformer_json, read_opentad_json):
        tad = write('tad.json', json.dumps({'database': {'v': 5}}, indent=1))
        with raises_at(tad, 3, "video 'v': expected an object, got int"):
            reader(tad)
        tad = write('tad.json', '{"database": {"v": {"subset": "Test", "duration": 5, "annotations": [\n{"label": "A", '
                                '"segment": [0, 1], "label_id": 0},\n"A"]}}}')
        with raises_at(tad, 3, "video 'v': annotation is not an object"):
            reader(tad)
