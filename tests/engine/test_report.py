"""tasks.engine.report (text_table, records_table) against hand-written tables."""
from __future__ import annotations

import pytest

from tasks.engine.report import records_table, text_table


def test_alignment_and_rule():
    table = text_table(['name', 'AP'], [['walk', '0.5'], ['run fast', '12.25']], right=[False, True])
    assert table.splitlines() == [
        'name         AP',
        '--------  -----',
        'walk        0.5',
        'run fast  12.25',
    ]


def test_no_rule_and_left_default():
    assert text_table(['a', 'bb'], [['ccc', 'd']], rule=False) == 'a    bb\nccc  d'


def test_ragged_row_is_refused_with_its_number():
    with pytest.raises(ValueError, match='row 1 has 1 cells for 2 columns'):
        text_table(['a', 'b'], [['1', '2'], ['3']])


def test_records_table_formats_by_spec_and_marks_missing_values():
    records = [{'name': 'a', 'value': 1.5, 'n': 3}, {'name': 'long', 'value': 10.25}]
    text = records_table(records, [('name', 'name', 's'), ('value', 'value', '.2f'), ('count', 'n', 'd')])
    assert text.splitlines() == ['name  value  count',
                                 '----  -----  -----',
                                 'a      1.50      3',
                                 'long  10.25      -']
