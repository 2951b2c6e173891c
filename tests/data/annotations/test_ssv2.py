"""Something-Something v2 labels and split files, against hand-written files (broken ones too)."""
from __future__ import annotations

from tasks.data.annotations import read_ssv2_labels, read_ssv2_split


SSV2_LABELS = """
{
 "Holding something next to something": "0",
 "Putting something into something": "1",
 "Moving something up": "2"
}
"""

SSV2_TRAIN = """
[
 {"id": "78687", "label": "holding potato next to vicks vaporub bottle",
  "template": "Holding [something] next to [something]", "placeholders": ["potato", "vicks vaporub bottle"]},
 {"id": "42326", "label": "putting a pen into a cup", "template": "Putting [something] into [something]",
  "placeholders": ["a pen", "a cup"]},
 {"id": "100", "label": "moving cup up", "template": "Moving [something] up", "placeholders": ["cup"]}
]
"""


def test_ssv2_labels_and_split(tmp_path, write):
    labels = read_ssv2_labels(write('labels.json', SSV2_LABELS))
    assert labels == {'Holding something next to something': 0, 'Putting something into something': 1,
                      'Moving something up': 2}
    got = read_ssv2_split(write('train.json', SSV2_TRAIN), tmp_path / 'labels.json')
    assert [(e.id, e.label, e.template) for e in got] == [
        ('78687', 0, 'Holding something next to something'),
        ('42326', 1, 'Putting something into something'),
        ('100', 2, 'Moving something up')]
    assert got[0].placeholders == ('potato', 'vicks vaporub bottle')
    assert got[1].text == 'putting a pen into a cup'
    # the official test.json has ids only
    test = read_ssv2_split(write('test.json', '[{"id": "1"}, {"id": "2"}]'), labels)
    assert [(e.id, e.label, e.template) for e in test] == [('1', None, None), ('2', None, None)]


def test_ssv2_errors_name_the_line(write, raises_at):
    labels = read_ssv2_labels(write('labels.json', SSV2_LABELS))
    bad_class = write('a.json', """
        [
         {"id": "1", "template": "Moving [something] up"},
         {"id": "2",
          "template": "Moving [something] sideways"}
        ]
    """)
    with raises_at(bad_class, 3, "class 'Moving something sideways'.*not in the label map"):
        read_ssv2_split(bad_class, labels)
    dup = write('b.json', '[\n{"id": "7"},\n{"id": "8"},\n{"id": 7}\n]\n')
    with raises_at(dup, 4, "id '7' already used on line 2"):
        read_ssv2_split(dup, labels)
    no_id = write('c.json', '[\n{"id": "7"},\n{"template": "Moving [something] up"}\n]\n')
    with raises_at(no_id, 3, 'missing or invalid "id"'):
        read_ssv2_split(no_id, labels)
    syntax = write('d.json', '[\n{"id": "7"},\n{"id": "8",}\n]\n')
    with raises_at(syntax, 3, 'invalid JSON'):
        read_ssv2_split(syntax, labels)
    bad_labels = write('labels2.json', '{\n "a": "0",\n "b": "x",\n "c": "1"\n}\n')
    with raises_at(bad_labels, 3, "class 'b': id must be an integer"):
        read_ssv2_labels(bad_labels)
    shared = write('labels3.json', '{\n "a": "0",\n "b": "1",\n "c": "1"\n}\n')
    with raises_at(shared, 4, "id 1 already used by 'b'"):
        read_ssv2_labels(shared)
