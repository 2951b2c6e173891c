"""Something-Something v2 ``labels.json`` and split files (docs/classification.md#data)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .common import AnnotationError, PathLike, parse_int
from .located_json import LocatedJSON

__all__ = ['SSv2Entry', 'read_ssv2_labels', 'read_ssv2_split', 'ssv2_class_name']


@dataclass(frozen=True)
class SSv2Entry:
    """One Something-Something v2 video.

    Attributes:
        id: the video id (the file is ``<id>.webm`` in the official release).
        label: class id from ``labels.json``; ``None`` for unlabelled (test) entries.
        template: the class name, i.e. the template with ``[`` ``]`` removed (``None`` when unlabelled).
        text: the entry's ``label`` field, the template filled with the placeholders.
        placeholders: the objects filled into the template.
    """

    id: str
    label: int | None
    template: str | None
    text: str | None = None
    placeholders: tuple[str, ...] = ()


def ssv2_class_name(template: str) -> str:
    """The class name of a template: SSv2's ``labels.json`` keys are the templates without the ``[`` ``]``."""
    return template.replace('[', '').replace(']', '')


def read_ssv2_labels(path: PathLike) -> dict[str, int]:
    """Read SSv2 ``labels.json``: ``{"Approaching something with your camera": "0", ...}`` -> name -> int id.

    Raises:
        AnnotationError: not an object, an id that is not a non-negative integer (or integer string), or two classes
            sharing an id.
    """
    doc = LocatedJSON(path, depth=1)
    if not isinstance(doc.root, dict):
        raise AnnotationError(path, f'expected a JSON object mapping class names to ids, got {type(doc.root).__name__}',
                              line=1)
    out: dict[str, int] = {}
    seen: dict[int, str] = {}
    for name, value in doc.root.items():
        line = doc.line_of_key(doc.root, name)
        if isinstance(value, str) and not value.strip().isdigit():
            raise AnnotationError(path, f'class {name!r}: id must be an integer string, got {value!r}', line=line)
        idx = parse_int(path, line, value, f'class {name!r}: id', minimum=0)
        if idx in seen:
            raise AnnotationError(path, f'class {name!r}: id {idx} already used by {seen[idx]!r}', line=line)
        seen[idx] = name
        out[name] = idx
    return out


def read_ssv2_split(path: PathLike, labels: Mapping[str, int] | PathLike) -> list[SSv2Entry]:
    """Read an SSv2 split file (``train.json``, ``validation.json`` or ``test.json``).

    Args:
        path: the split file, a JSON list of ``{"id", "label", "template", "placeholders"}`` (test: ``{"id"}`` only).
        labels: the class map from :func:`read_ssv2_labels`, or the path of ``labels.json``.

    Raises:
        AnnotationError: an entry that is not an object, lacks ``id``, has a template that is not a string or whose
            class is not in ``labels``, a duplicate id, or placeholders that are not a list of strings.
    """
    if not isinstance(labels, Mapping):
        labels = read_ssv2_labels(labels)
    doc = LocatedJSON(path, depth=1)
    if not isinstance(doc.root, list):
        raise AnnotationError(path, f'expected a JSON list of videos, got {type(doc.root).__name__}', line=1)
    out = []
    seen: dict[str, int] = {}
    for i, item in enumerate(doc.root):
        line = doc.line_of_item(doc.root, i)
        if not isinstance(item, dict):
            raise AnnotationError(path, f'entry {i}: expected an object, got {type(item).__name__}', line=line)
        if 'id' not in item or isinstance(item['id'], (dict, list, bool)) or item['id'] is None:
            raise AnnotationError(path, f'entry {i}: missing or invalid "id"', line=line)
        vid = str(item['id'])
        if vid in seen:
            raise AnnotationError(path, f'entry {i}: id {vid!r} already used on line {seen[vid]}', line=line)
        seen[vid] = line or 0
        template = item.get('template')
        label = name = None
        if template is not None:
            if not isinstance(template, str):
                raise AnnotationError(path, f'video {vid}: "template" must be a string', line=line)
            name = ssv2_class_name(template)
            if name not in labels:
                raise AnnotationError(path, f'video {vid}: class {name!r} (template {template!r}) is not in the '
                                            f'label map', line=line)
            label = labels[name]
        placeholders = item.get('placeholders', [])
        if not isinstance(placeholders, list) or not all(isinstance(p, str) for p in placeholders):
            raise AnnotationError(path, f'video {vid}: "placeholders" must be a list of strings', line=line)
        text = item.get('label')
        if text is not None and not isinstance(text, str):
            raise AnnotationError(path, f'video {vid}: "label" must be a string', line=line)
        out.append(SSv2Entry(id=vid, label=label, template=name, text=text, placeholders=tuple(placeholders)))
    return out


