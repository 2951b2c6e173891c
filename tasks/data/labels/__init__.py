"""Class names of the classification benchmarks, in the order of the official label files (class index = line).

Shipped: Kinetics-400, Kinetics-700, Kinetics-710 and Something-Something V2, each copied from a public file whose
repository, path and commit docs/labels.md records. Kinetics-600 is not shipped (no primary copy of its list could be
read): :func:`class_names` says which file to download, and a path to it works wherever a name does.

Names (case-insensitive): ``k400`` / ``kinetics400``, ``k600``, ``k700``, ``k710``, ``ssv2`` / ``sthv2``. A path may
be a text file with one name per line (``label_map_k400.txt``; mmaction2's ``name<TAB>index`` lines too), or a json
file holding a list of names, ``{name: index}`` (the official ``something-something-v2-labels.json``) or
``{index: name}`` (a transformers ``id2label``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ['LABEL_SETS', 'MISSING_LABEL_SETS', 'class_names', 'label_set_name']

_HERE = Path(__file__).resolve().parent

#: Shipped label sets: name -> data file in this package.
LABEL_SETS = {'k400': 'kinetics400.txt', 'k700': 'kinetics700.txt', 'k710': 'kinetics710.txt', 'ssv2': 'ssv2.txt'}
#: Label sets known but not shipped: name -> where to get the file (docs/labels.md).
MISSING_LABEL_SETS = {
    'k600': 'misc/label_map_k600.txt of OpenGVLab/VideoMAEv2 (the order the VideoMAE V2 K600 heads and '
            'label_710to600.json use)',
}
_ALIASES = {'kinetics400': 'k400', 'kinetics-400': 'k400', 'kinetics600': 'k600', 'kinetics-600': 'k600',
            'kinetics700': 'k700', 'kinetics-700': 'k700', 'kinetics710': 'k710', 'kinetics-710': 'k710',
            'sthv2': 'ssv2', 'something-something-v2': 'ssv2'}


def label_set_name(name: str) -> str | None:
    """The canonical name (``k400`` ...) of a label-set name or alias, or None if it is none of them."""
    key = _ALIASES.get(name.lower(), name.lower())
    return key if key in LABEL_SETS or key in MISSING_LABEL_SETS else None


def class_names(name_or_path: str | os.PathLike) -> list[str]:
    """The class names of a label set, index i = class i.

    Args:
        name_or_path: a label-set name (module docstring) or the path of a label file; an existing file wins over
            a name.

    Raises:
        FileNotFoundError: neither a file nor a known name, or a known set that is not shipped (saying which file
            to download and that its path can be passed instead).
        ValueError: a file that holds no names, an empty or duplicated name (naming the line), or json of another
            shape.
    """
    path = Path(name_or_path)
    if not path.is_file():
        key = label_set_name(str(name_or_path))
        if key in LABEL_SETS:
            path = _HERE / LABEL_SETS[key]
        elif key in MISSING_LABEL_SETS:
            raise FileNotFoundError(
                f'{name_or_path}: the {key} class names are not shipped (no primary copy was available; '
                f'docs/labels.md); download {MISSING_LABEL_SETS[key]} and pass its path instead of the name')
        else:
            known = ', '.join([*LABEL_SETS, *MISSING_LABEL_SETS])
            raise FileNotFoundError(f'{name_or_path}: no such label file, and not a label-set name (known: {known})')
    names = _read_json(path) if path.suffix == '.json' else _read_text(path)
    if not names:
        raise ValueError(f'{path}: holds no class names')
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if not name.strip():
            raise ValueError(f'{path}: class {index} has an empty name')
        if name in seen:
            raise ValueError(f'{path}: {name!r} is given twice (classes {seen[name]} and {index})')
        seen[name] = index
    return names


def _read_text(path: Path) -> list[str]:
    """One name a line, or mmaction2's ``name<TAB>index`` lines: the annotation readers' class-name reader."""
    from tasks.data.annotations import read_class_names

    return read_class_names(path)


def _read_json(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
    except json.JSONDecodeError as err:
        raise ValueError(f'{path}: not valid json ({err})') from err
    if isinstance(data, list) and all(isinstance(n, str) for n in data):
        return data
    if isinstance(data, dict) and data:
        # {name: index} (something-something-v2-labels.json) or {index: name} (transformers id2label)
        by_index = ({int(i): n for n, i in data.items()} if all(str(i).isdigit() for i in data.values())
                    else {int(i): n for i, n in data.items()} if all(str(i).isdigit() for i in data) else None)
        if by_index is not None and sorted(by_index) == list(range(len(by_index))):
            return [str(by_index[i]) for i in range(len(by_index))]
    raise ValueError(f'{path}: expected a json list of names, {{name: index}} or {{index: name}} with indices '
                     f'0..N-1, got {type(data).__name__}')
