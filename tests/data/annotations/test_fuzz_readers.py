"""Property-based tests (hypothesis) of every annotation reader and of the prediction files the evaluators read.

Per format, two properties:

- a file written from random valid content parses to exactly that content, also with a UTF-8 BOM and CRLF line ends;
- arbitrary bytes, arbitrary JSON documents built from the format's own keys, and valid files mutated (characters,
  fields and lines deleted, duplicated or swapped; NaN, inf, huge, negative and non-ASCII numbers, empty fields,
  brackets, quotes, escapes, a BOM, CRLF, non-UTF-8 bytes, very long lines injected) either parse to well-typed values
  that keep the format's rules or raise AnnotationError naming the file and the line; never another exception, and
  never longer than the per-example deadline (a hang fails it). The proposal pickles: test_fuzz_proposals.py.

``make test`` runs a fixed, derandomized set of FAST examples per property; the ``slow`` variants run LONG random ones.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.data.annotations import (AnnotationError, AVABox, KineticsEntry, SSv2Entry, TADAnnotations, TADSegment,
                                    VideoListEntry, read_actionformer_json, read_annotations, read_ava_csv,
                                    read_ava_excluded, read_ava_label_map, read_class_names, read_kinetics_csv,
                                    read_opentad_json, read_ssv2_labels, read_ssv2_split, read_thumos_txt,
                                    read_video_list)
from tasks.detection.evaluation import DetectionRow, read_ava_detections
from tasks.localization.evaluation import read_predictions

FAST = 100
LONG = 3000
BASE = settings(deadline=2000, database=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
FAST_SETTINGS = settings(BASE, max_examples=FAST, derandomize=True)
LONG_SETTINGS = settings(BASE, max_examples=LONG)

# ----------------------------------------------------------------------------------------------------------------------
# atoms
# ----------------------------------------------------------------------------------------------------------------------
NO_SPACE = st.characters(blacklist_categories=('Cs', 'Cc', 'Zs', 'Zl', 'Zp'), blacklist_characters='\ufeff')
WORD = st.text(NO_SPACE, min_size=1, max_size=10)
# words joined by spaces, also by those at which str.splitlines() (but no csv or text file reader) breaks a line
PHRASE = st.tuples(st.lists(WORD, min_size=1, max_size=3), st.sampled_from([' ', ' ', '\x0c', '\x1c', '\x85', '\u2028'])
                   ).map(lambda ws: ws[1].join(ws[0]))
VID = st.text(string.ascii_letters + string.digits + '-_', min_size=1, max_size=11)
SECONDS = st.integers(0, 10 ** 6).map(lambda v: v / 100)
UNIT = st.integers(0, 1000).map(lambda v: v / 1000)
TEMPLATES = ['Putting [something] on [something]', 'Pushing [something] from left to right', 'Holding [something]']
SSV2_LABELS = {t.replace('[', '').replace(']', ''): i for i, t in enumerate(TEMPLATES)}


def pair(strategy):
    """Two sorted draws: (start, end) or (x1, x2)."""
    return st.lists(strategy, min_size=2, max_size=2).map(lambda v: tuple(sorted(v)))


# ----------------------------------------------------------------------------------------------------------------------
# valid files and what they hold: each strategy gives (text, expected parse)
# ----------------------------------------------------------------------------------------------------------------------
@st.composite
def video_list(draw, rawframes: bool):
    lines, expected = [], []
    for path, total, label in draw(st.lists(st.tuples(WORD, st.integers(1, 10 ** 6), st.integers(0, 10 ** 6)),
                                            min_size=1, max_size=6)):
        lines += [''] * draw(st.integers(0, 1))
        sep = draw(st.sampled_from([' ', '\t', '  ']))
        lines.append(sep.join([path, str(total), str(label)] if rawframes else [path, str(label)]))
        expected.append(VideoListEntry(path, label, total if rawframes else None, len(lines)))
    return '\n'.join(lines) + '\n', expected


@st.composite
def kinetics_csv(draw):
    labelled, is_cc = draw(st.booleans()), draw(st.booleans())
    header = ['label'] * labelled + ['youtube_id', 'time_start', 'time_end', 'split'] + ['is_cc'] * is_cc
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator='\n')
    writer.writerow(header)
    expected = []
    rows = draw(st.lists(st.tuples(PHRASE, VID, st.integers(0, 10 ** 5), st.integers(1, 30),
                                   st.sampled_from(['train', 'validate', 'test'])), min_size=1, max_size=6))
    for n, (label, vid, start, length, split) in enumerate(rows, start=2):
        times = [draw(st.sampled_from(['{}', '{}.0', '{:06d}'])).format(t) for t in (start, start + length)]
        writer.writerow([label] * labelled + [vid, *times, split] + ['0'] * is_cc)
        expected.append(KineticsEntry(vid, start, start + length, split, label if labelled else None, n))
    return buf.getvalue(), expected


@st.composite
def class_names_txt(draw):
    names = draw(st.lists(PHRASE, unique=True, min_size=1, max_size=6))
    return '\n'.join(names) + draw(st.sampled_from(['', '\n', '\n\n'])), names


@st.composite
def ssv2_labels(draw):
    names = draw(st.lists(PHRASE, unique=True, min_size=1, max_size=6))
    ids = draw(st.permutations(range(len(names))))
    mapping = {n: str(i) for n, i in zip(names, ids)}
    return json.dumps(mapping, indent=draw(st.sampled_from([None, 1, 4])), ensure_ascii=draw(st.booleans())), \
        {n: int(i) for n, i in mapping.items()}


@st.composite
def ssv2_split(draw):
    items, expected = [], []
    for vid in draw(st.lists(st.integers(0, 10 ** 6), unique=True, min_size=1, max_size=6)):
        vid = str(vid) if draw(st.booleans()) else vid  # ids are numbers or strings in the wild
        if draw(st.integers(0, 3)) == 0:  # a test entry: the id only
            items.append({'id': vid})
            expected.append(SSv2Entry(str(vid), None, None))
            continue
        template = draw(st.sampled_from(TEMPLATES))
        objects = draw(st.lists(PHRASE, max_size=2))
        text = template.replace('[something]', objects[0] if objects else 'something')
        items.append({'id': vid, 'label': text, 'template': template, 'placeholders': objects})
        name = template.replace('[', '').replace(']', '')
        expected.append(SSv2Entry(str(vid), SSV2_LABELS[name], name, text, tuple(objects)))
    return json.dumps(items, indent=draw(st.sampled_from([None, 2]))), expected


@st.composite
def ava_csv(draw):
    """Rows of a few boxes, so that several rows of one box are merged (first row's person id and line kept)."""
    boxes = draw(st.lists(st.tuples(st.sampled_from(['-5KQ66BBWC4', 'b_1']), st.integers(900, 903), pair(UNIT),
                                    pair(UNIT)), min_size=1, max_size=3, unique=True))
    lines, merged = [], {}
    for b, action, person in draw(st.lists(st.tuples(st.integers(0, len(boxes) - 1), st.integers(1, 80),
                                                     st.none() | st.integers(0, 99)), min_size=1, max_size=8)):
        vid, ts, (x1, x2), (y1, y2) = boxes[b]
        lines.append(f'{vid},{ts:04d},{x1:.3f},{y1:.3f},{x2:.3f},{y2:.3f},{action}'
                     + ('' if person is None else f',{person}'))
        rec = merged.setdefault((vid, ts, (x1, y1, x2, y2)), [set(), -1 if person is None else person, len(lines)])
        rec[0].add(action)
    expected = [AVABox(v, t, box, tuple(sorted(a)), p, n) for (v, t, box), (a, p, n) in merged.items()]
    return '\n'.join(lines) + '\n', expected


@st.composite
def ava_label_map(draw):
    layout = draw(st.sampled_from(['item', 'label']))
    names = draw(st.lists(st.text(st.characters(blacklist_categories=('Cs', 'Cc')), max_size=12), min_size=1,
                          max_size=5))
    ids = draw(st.lists(st.integers(0, 10 ** 6), unique=True, min_size=len(names), max_size=len(names)))
    blocks = []
    for name, i in zip(names, ids):
        quoted = '"' + name.replace('\\', '\\\\').replace('"', '\\"') + '"'
        ws = draw(st.sampled_from([' ', '\n  ', '\n']))
        body = f'name: {quoted}{ws}id: {i}' if layout == 'item' else \
            f'name: {quoted}{ws}label_id: {i}{ws}label_type: PERSON_MOVEMENT'
        blocks.append(draw(st.sampled_from(['', '# comment\n'])) + f'{layout} {{{ws}{body}{ws}}}\n')
    return ''.join(blocks), dict(zip(ids, names))


@st.composite
def ava_excluded(draw):
    rows = draw(st.lists(st.tuples(VID, st.integers(0, 9999)), min_size=1, max_size=6))
    return ''.join(f'{v},{t:04d}\n' for v, t in rows), set(rows)


@st.composite
def thumos_txt(draw):
    rows = [(v, s, e) for v, (s, e) in draw(st.lists(st.tuples(VID, pair(SECONDS)), min_size=1, max_size=6))]
    return ''.join(f'{v} {s} {e}\n' for v, s, e in rows), rows


@st.composite
def tad_json(draw, layout: str):
    """An ActionFormer or OpenTAD json; the expected parse is ({video: fields but the line}, classes)."""
    classes = draw(st.lists(PHRASE.filter(lambda s: s != 'Ambiguous'), unique=True, min_size=1, max_size=4))
    ids = draw(st.lists(st.integers(0, 30), unique=True, min_size=len(classes), max_size=len(classes)))
    af = layout == 'actionformer'
    db, videos = {}, {}
    for vid in draw(st.lists(VID, unique=True, min_size=1, max_size=4)):
        subset = draw(st.sampled_from(['Validation', 'Test'] if af else ['training', 'validation']))
        duration, fps = draw(SECONDS.filter(bool)), draw(st.sampled_from([25.0, 30, 29.97]))
        anns, found, ambiguous = [], [], []
        for k, (s, e) in draw(st.lists(st.tuples(st.integers(-1, len(classes) - 1), pair(SECONDS)), max_size=3)):
            if k < 0:
                anns.append({'label': 'Ambiguous', 'segment': [s, e]})
                ambiguous.append((s, e))
            else:
                anns.append({'label': classes[k], 'segment': [s, e]})
                if af:
                    anns[-1].update({'segment(frames)': [s * fps, e * fps], 'label_id': ids[k]})
                found.append((s, e, k))
        extra = {'fps': fps} if af else {'frame': draw(st.integers(1, 10 ** 6))}
        db[vid] = {'subset': subset, 'duration': duration, **extra, 'annotations': anns}
        videos[vid] = (subset, duration, float(fps) if af else None, None if af else extra['frame'], found, ambiguous)
    used = sorted({k for v in videos.values() for _, _, k in v[4]})
    names = sorted(classes[k] for k in used)  # OpenTAD's default class map: the sorted labels
    label_id = {k: ids[k] if af else names.index(classes[k]) for k in used}
    expected = {vid: (*v[:4], [TADSegment(s, e, classes[k], label_id[k]) for s, e, k in v[4]], v[5])
                for vid, v in videos.items()}
    return json.dumps({'version': 'fuzz', 'database': db}, indent=draw(st.sampled_from([None, 2]))), \
        (expected, dict(sorted((label_id[k], classes[k]) for k in used)))


@st.composite
def tad_predictions(draw):
    """An ActivityNet-style result json (``{"results": ...}`` or the bare mapping)."""
    entries = st.lists(st.tuples(pair(SECONDS), PHRASE, UNIT), min_size=1, max_size=3)
    results = {vid: [{'segment': list(seg), 'label': label, 'score': score} for seg, label, score in draw(entries)]
               for vid in draw(st.lists(VID.filter(lambda v: v != 'results'), unique=True, min_size=1, max_size=4))}
    doc = {'version': 'fuzz', 'results': results, 'external_data': {}} if draw(st.booleans()) else results
    return json.dumps(doc, indent=draw(st.sampled_from([None, 1]))), results


@st.composite
def ava_detections(draw):
    """An AVA submission csv: boxes may leave the frame and scores be negative (both taken as they are)."""
    coord = st.integers(-100, 1100).map(lambda v: v / 1000)
    rows = [DetectionRow(*r) for r in draw(st.lists(st.tuples(VID, st.integers(0, 9999), coord, coord, coord, coord,
                                                               st.integers(1, 80), st.floats(-1e6, 1e6)),
                                                     min_size=1, max_size=6))]
    return ''.join(f'{r.video_id},{r.timestamp:04d},{r.x1},{r.y1},{r.x2},{r.y2},{r.action_id},{r.score!r}\n'
                   for r in rows), rows


# ----------------------------------------------------------------------------------------------------------------------
# mutations and arbitrary input
# ----------------------------------------------------------------------------------------------------------------------
# what a mutation puts in, by kind; a kind is drawn first, so that no kind is starved by a long list of another
TOKENS = {
    'number': ['NaN', 'nan', 'Infinity', '-inf', '1e400', '-1e400', '-1', '-0', '0', '1.5', '1e5', '\u0663', '1_0',
               '0x1F'],
    'huge': ['1' * 400, '9' * 5000, 'x' * 140_000, '[' * 3000, '{"a": ' * 3000],
    'syntax': ['', '"', "'", ',', ':', '{', '}', '[', ']', '#', 'null', 'true', 'item {', 'label', '"segment": [',
               'Ambiguous'],
    'escape': ['\\', '\\x41', '\\u12', '\\\n', '"\\ud800"', '\\101', '\\t', '\\\''],
    'space': [' ', '\t', '\r', '\r\n', '\n', '\u2028', '\x85', '\x0c', '\x00', '\ufeff'],
}
# what replaces a number
NUMBERS = {'number': TOKENS['number'], 'huge': ['1' * 400, '-' + '9' * 400, '9' * 5000],
           'type': ['""', 'null', 'true', '[]', '{}', '"1"', '[0, 1]']}


def token(draw, kinds: dict[str, list[str]] = TOKENS) -> str:
    return draw(st.sampled_from(kinds[draw(st.sampled_from(sorted(kinds)))]))


JSON_KEYS = ['database', 'subset', 'duration', 'fps', 'frame', 'annotations', 'label', 'segment', 'segment(frames)',
             'label_id', 'results', 'score', 'id', 'template', 'placeholders', 'Validation', 'v', 'Ambiguous']
JSON_SCALARS = (st.none() | st.booleans() | st.integers(-10 ** 6, 10 ** 6) | st.floats() | st.text(max_size=6)
                | st.sampled_from([10 ** 400, -(10 ** 400), 2 ** 64, -1, math.nan, math.inf])
                | st.sampled_from(JSON_KEYS))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda c: st.lists(c, max_size=3) | st.dictionaries(
    st.sampled_from(JSON_KEYS) | st.text(max_size=4), c, max_size=3), max_leaves=12)


def at(draw, seq) -> int:
    return draw(st.integers(0, len(seq)))


def edit_chars(draw, text: str) -> str:
    i = at(draw, text)
    j = min(len(text), i + draw(st.integers(1, 8)))
    op = draw(st.sampled_from(['delete', 'duplicate', 'swap', 'insert']))
    if op == 'delete':
        return text[:i] + text[j:]
    if op == 'duplicate':
        return text[:j] + text[i:j] + text[j:]
    if op == 'swap' and j - i >= 2:
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    return text[:i] + token(draw) + text[i:]


def edit_field(draw, text: str) -> str:
    lines = text.split('\n')
    n = draw(st.integers(0, len(lines) - 1))
    sep = draw(st.sampled_from([',', ' ', ': ']))
    fields = lines[n].split(sep)
    k = draw(st.integers(0, len(fields) - 1))
    op = draw(st.sampled_from(['replace', 'delete', 'duplicate']))
    if op == 'replace':
        fields[k] = token(draw)
    elif op == 'delete':
        del fields[k]
    else:
        fields.insert(k, fields[k])
    lines[n] = sep.join(fields)
    return '\n'.join(lines)


def edit_lines(draw, text: str) -> str:
    lines = text.split('\n')
    i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
    op = draw(st.sampled_from(['delete', 'duplicate', 'swap']))
    if op == 'delete':
        del lines[i]
    elif op == 'duplicate':
        lines.insert(j, lines[i])
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return '\n'.join(lines)


def edit_number(draw, text: str) -> str:
    spans = [m.span() for m in re.finditer(r'-?\d+(?:\.\d+)?', text)]
    if not spans:
        return text
    i, j = draw(st.sampled_from(spans))
    return text[:i] + token(draw, NUMBERS) + text[j:]


def edit_string(draw, text: str) -> str:
    """Put a token inside a quoted string (a JSON value, a pbtxt name, a quoted csv field)."""
    spans = [m.span() for m in re.finditer(r'"[^"\n]*"', text)]
    if not spans:
        return text
    i, j = draw(st.sampled_from(spans))
    k = draw(st.integers(i + 1, j - 1))
    return text[:k] + token(draw) + text[k:]


def edit_bytes(draw, data: bytes) -> bytes:
    op = draw(st.sampled_from(['none', 'none', 'bom', 'crlf', 'insert', 'truncate', 'latin-1']))
    i = at(draw, data)
    if op == 'bom':
        return b'\xef\xbb\xbf' + data
    if op == 'crlf':
        return data.replace(b'\n', b'\r\n')
    if op == 'insert':
        return data[:i] + draw(st.binary(min_size=1, max_size=4)) + data[i:]
    if op == 'truncate':
        return data[:i]
    if op == 'latin-1':
        return data.decode('utf-8').encode('latin-1', 'replace')
    return data


@st.composite
def mutated(draw, valid):
    """A valid file after 1-4 edits of its characters, fields, lines, numbers or strings, then perhaps of its bytes."""
    text = draw(valid)[0]
    for _ in range(draw(st.integers(1, 4))):
        text = draw(st.sampled_from([edit_chars, edit_field, edit_lines, edit_number, edit_string]))(draw, text)
    return edit_bytes(draw, text.encode('utf-8', 'surrogatepass'))


def json_nodes(doc, out=None) -> list[tuple[Any, Any]]:
    """Every (container, key) of a JSON document."""
    out = [] if out is None else out
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in list(items):
        out.append((doc, key))
        json_nodes(value, out)
    return out


@st.composite
def json_mutated(draw, valid):
    """A valid JSON file with 1-3 of its values replaced by arbitrary JSON values or deleted."""
    doc = json.loads(draw(valid)[0])
    for _ in range(draw(st.integers(1, 3))):
        nodes = json_nodes(doc)
        if not nodes:
            break
        container, key = draw(st.sampled_from(nodes))
        if draw(st.booleans()):
            del container[key]
        else:
            container[key] = draw(JSON_VALUES)
    return json.dumps(doc).encode()


ARBITRARY = st.binary(max_size=400) | st.text(max_size=400).map(lambda t: t.encode('utf-8', 'surrogatepass'))
JSON_DOCS = JSON_VALUES.map(lambda d: json.dumps(d).encode())


# ----------------------------------------------------------------------------------------------------------------------
# the rules a parse keeps, whatever the input
# ----------------------------------------------------------------------------------------------------------------------
def finite(*values) -> bool:
    return all(type(v) is float and math.isfinite(v) for v in values)


def check_list(entries):
    assert [e.line for e in entries] == sorted({e.line for e in entries})
    for e in entries:
        assert isinstance(e.path, str) and e.path and not any(c.isspace() for c in e.path)
        assert type(e.label) is int and e.label >= 0
        assert e.total_frames is None or (type(e.total_frames) is int and e.total_frames >= 1)


def check_kinetics(entries):
    for e in entries:
        assert isinstance(e.youtube_id, str) and e.youtube_id and isinstance(e.split, str)
        assert type(e.time_start) is int and type(e.time_end) is int and 0 <= e.time_start < e.time_end
        assert e.label is None or (isinstance(e.label, str) and e.label)


def check_names(names):
    assert names and len(set(names)) == len(names)
    assert all(isinstance(n, str) and n and n == n.strip() for n in names)


def check_ssv2_labels(mapping):
    assert all(isinstance(k, str) and type(v) is int and v >= 0 for k, v in mapping.items())
    assert len(set(mapping.values())) == len(mapping)


def check_ssv2_split(entries):
    assert len({e.id for e in entries}) == len(entries)
    for e in entries:
        assert isinstance(e.id, str) and all(isinstance(p, str) for p in e.placeholders)
        assert e.text is None or isinstance(e.text, str)
        assert (e.label, e.template) == (None, None) or SSV2_LABELS[e.template] == e.label


def check_ava_csv(boxes):
    assert len({(b.video_id, b.timestamp, b.box) for b in boxes}) == len(boxes)
    for b in boxes:
        assert isinstance(b.video_id, str) and b.video_id and type(b.timestamp) is int and b.timestamp >= 0
        assert finite(*b.box) and all(0 <= v <= 1 for v in b.box) and b.box[0] <= b.box[2] and b.box[1] <= b.box[3]
        assert b.action_ids and list(b.action_ids) == sorted(set(b.action_ids)) and b.action_ids[0] >= 1
        assert all(type(a) is int for a in b.action_ids) and type(b.person_id) is int and b.person_id >= -1


def check_label_map(mapping):
    assert mapping and all(type(k) is int and isinstance(v, str) for k, v in mapping.items())


def check_excluded(keys):
    assert all(isinstance(v, str) and v and type(t) is int and t >= 0 for v, t in keys)


def check_thumos_txt(rows):
    assert all(isinstance(v, str) and v and finite(s, e) and s <= e for v, s, e in rows)


def check_tad(ann):
    assert isinstance(ann, TADAnnotations)
    assert all(type(i) is int and i >= 0 and isinstance(n, str) for i, n in ann.classes.items())
    for vid, v in ann.videos.items():
        assert vid == v.video_id and isinstance(v.subset, str) and finite(v.duration) and v.duration > 0
        assert v.fps is None or (finite(v.fps) and v.fps > 0)
        assert v.num_frames is None or (type(v.num_frames) is int and v.num_frames >= 1)
        for s in v.segments:
            assert finite(s.start, s.end) and 0 <= s.start <= s.end and ann.classes[s.label_id] == s.label
        assert all(finite(s, e) and 0 <= s <= e for s, e in v.ambiguous)


def check_predictions(results):
    for vid, dets in results.items():
        assert isinstance(vid, str)
        for d in dets:
            (s, e), label, score = d['segment'], d['label'], d['score']
            assert set(d) == {'segment', 'label', 'score'} and finite(s, e, score) and s <= e
            assert isinstance(label, str)


def check_detections(rows):
    for r in rows:
        assert isinstance(r, DetectionRow) and isinstance(r.video_id, str) and r.video_id
        assert type(r.timestamp) is int and r.timestamp >= 0 and type(r.action_id) is int and r.action_id >= 1
        assert finite(r.x1, r.y1, r.x2, r.y2, r.score)


def tad_content(ann: TADAnnotations):
    """What a generated TAD json holds: every field of every video but its line, and the classes."""
    return ({vid: (v.subset, v.duration, v.fps, v.num_frames, v.segments, v.ambiguous)
             for vid, v in ann.videos.items()}, ann.classes)


@dataclass(frozen=True)
class Case:
    name: str
    file: str
    read: Callable[[Path], Any]
    valid: Any  # strategy of (text, expected parse)
    check: Callable[[Any], None]
    content: Callable[[Any], Any] = lambda parsed: parsed  # the part of a parse a generated file fixes
    json: bool = False


CASES = [
    Case('video_list', 'train_list_videos.txt', read_video_list, video_list(False), check_list),
    Case('rawframe_list', 'train_list_rawframes.txt', lambda p: read_video_list(p, format='rawframes'),
         video_list(True), check_list),
    Case('kinetics_csv', 'kinetics_400_val.csv', read_kinetics_csv, kinetics_csv(), check_kinetics),
    Case('class_names', 'label_map_k400.txt', read_class_names, class_names_txt(), check_names),
    Case('ssv2_labels', 'labels.json', read_ssv2_labels, ssv2_labels(), check_ssv2_labels, json=True),
    Case('ssv2_split', 'validation.json', lambda p: read_ssv2_split(p, SSV2_LABELS), ssv2_split(), check_ssv2_split,
         json=True),
    Case('ava_csv', 'ava_val_v2.2.csv', read_ava_csv, ava_csv(), check_ava_csv),
    Case('ava_label_map', 'ava_action_list_v2.2.pbtxt', read_ava_label_map, ava_label_map(), check_label_map),
    Case('ava_excluded', 'ava_val_excluded_timestamps_v2.2.csv', read_ava_excluded, ava_excluded(), check_excluded),
    Case('thumos_txt', 'Billiards_test.txt', read_thumos_txt, thumos_txt(), check_thumos_txt),
    Case('actionformer_json', 'thumos14.json', read_actionformer_json, tad_json('actionformer'), check_tad,
         tad_content, json=True),
    Case('opentad_json', 'thumos_14_anno.json', read_opentad_json, tad_json('opentad'), check_tad, tad_content,
         json=True),
    Case('tad_json_auto', 'annotations.json', read_annotations, tad_json('actionformer') | tad_json('opentad'),
         check_tad, tad_content, json=True),
    Case('tad_predictions', 'result.json', read_predictions, tad_predictions(), check_predictions, json=True),
    Case('ava_detections', 'ava_predictions.csv', read_ava_detections, ava_detections(), check_detections),
]
FUZZ_INPUT = {c.name: st.one_of(mutated(c.valid), ARBITRARY, *([json_mutated(c.valid), JSON_DOCS] if c.json else []))
              for c in CASES}
# errors about the whole file, which has no line to name
WHOLE_FILE = ('not UTF-8 text', 'the file lists no class names', 'no "item"/"label" blocks found')


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp('fuzz')


def file_of(folder: Path, case: Case) -> Path:
    (folder / case.name).mkdir(exist_ok=True)  # one folder a case: no category_idx.txt beside a TAD json
    return folder / case.name / case.file


def write(path: Path, data: bytes) -> None:
    # a new file each time: truncating one costs a flush on ext4 (auto_da_alloc), 10x the time of a whole example
    path.unlink(missing_ok=True)
    path.write_bytes(data)


def parses_as_written(case: Case, path: Path, text: str, expected) -> None:
    """The file, also with a BOM and CRLF line ends, parses to exactly what it was written from."""
    for data in (text.encode(), b'\xef\xbb\xbf' + text.replace('\n', '\r\n').encode()):
        write(path, data)
        parsed = case.read(path)
        case.check(parsed)
        assert case.content(parsed) == expected


def parses_or_names_file_and_line(case: Case, path: Path, data: bytes) -> None:
    """Either a parse that keeps the format's rules or an AnnotationError naming this file and a line of it."""
    write(path, data)
    try:
        parsed = case.read(path)
    except AnnotationError as e:
        assert e.path == path and str(e).startswith(f'{path}'), str(e)
        if e.line is None:
            assert e.reason.startswith(WHOLE_FILE), f'no line in: {e}'
        else:
            text = data.decode('utf-8', 'replace')
            assert 1 <= e.line <= max(text.count('\n'), len(text.splitlines())) + 1, str(e)
        return
    case.check(parsed)


@pytest.mark.parametrize('case', CASES, ids=[c.name for c in CASES])
@FAST_SETTINGS
@given(data=st.data())
def test_valid_files_parse_to_what_they_were_written_from(case, folder, data):
    parses_as_written(case, file_of(folder, case), *data.draw(case.valid))


@pytest.mark.parametrize('case', CASES, ids=[c.name for c in CASES])
@FAST_SETTINGS
@given(data=st.data())
def test_arbitrary_and_mutated_files_parse_or_name_the_file_and_line(case, folder, data):
    parses_or_names_file_and_line(case, file_of(folder, case), data.draw(FUZZ_INPUT[case.name]))


@pytest.mark.slow
@pytest.mark.parametrize('case', CASES, ids=[c.name for c in CASES])
@LONG_SETTINGS
@given(data=st.data())
def test_valid_files_long_run(case, folder, data):
    parses_as_written(case, file_of(folder, case), *data.draw(case.valid))


@pytest.mark.slow
@pytest.mark.parametrize('case', CASES, ids=[c.name for c in CASES])
@LONG_SETTINGS
@given(data=st.data())
def test_arbitrary_and_mutated_files_long_run(case, folder, data):
    parses_or_names_file_and_line(case, file_of(folder, case), data.draw(FUZZ_INPUT[case.name]))
