"""Readers for the annotation files of every benchmark the tasks use (real and synthetic alike), one module a family.

:mod:`.lists` (mmaction2 video lists, Kinetics csv), :mod:`.ssv2`, :mod:`.ava` and :mod:`.tad` (THUMOS14 json and txt);
the formats are described in docs/classification.md#data, docs/ava.md#files-and-frames and
docs/thumos14.md#annotation-formats. Every reader returns plain dataclasses / dicts and raises one exception type,
:class:`AnnotationError`, naming the file, the line (or the key, for pickles) and what is wrong. Pickles are read by
:mod:`.safe_pickle`, which builds plain data only and runs nothing a file names (docs/security.md#pickles).
"""
from .ava import AVABox, group_by_keyframe, read_ava_csv, read_ava_excluded, read_ava_label_map, read_ava_proposals
from .common import AnnotationError, read_class_names
from .lists import KineticsEntry, VideoListEntry, read_kinetics_csv, read_video_list
from .safe_pickle import RestrictedUnpickler, UnsafePickleError, load_restricted_pickle
from .ssv2 import SSv2Entry, read_ssv2_labels, read_ssv2_split, ssv2_class_name
from .tad import (AMBIGUOUS, AnnFormat, TADAnnotations, TADSegment, TADVideo, class_names, detect_format,
                  read_actionformer_json, read_annotations, read_opentad_json, read_thumos_txt,
                  resolve_subset)

__all__ = [
    'AnnotationError', 'read_class_names',
    'RestrictedUnpickler', 'UnsafePickleError', 'load_restricted_pickle',
    'VideoListEntry', 'read_video_list',
    'SSv2Entry', 'read_ssv2_labels', 'read_ssv2_split', 'ssv2_class_name',
    'KineticsEntry', 'read_kinetics_csv',
    'AVABox', 'read_ava_csv', 'read_ava_label_map', 'read_ava_excluded', 'read_ava_proposals', 'group_by_keyframe',
    'TADSegment', 'TADVideo', 'TADAnnotations', 'read_actionformer_json', 'read_opentad_json',
    'read_thumos_txt', 'AMBIGUOUS', 'AnnFormat', 'detect_format', 'read_annotations', 'class_names', 'resolve_subset',
]
