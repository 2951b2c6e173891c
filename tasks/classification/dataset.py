"""Fine-tuning and test data for video classification: Kinetics-400/600/700/710, SSv2, UCF101/HMDB51 and the synthetic
benchmark, one mmengine dataset for all of them (docs/classification.md#data,
docs/classification.md#test-protocols-and-metrics).

:func:`read_cls_list` reads every supported list, :class:`VideoMAEv2ClsDataset` turns a video into training views or
all its test views, and the Kinetics-710 label-map helpers (:func:`read_class_names`, :func:`label_map_between`,
:func:`read_label_map_json`, :func:`write_label_map_json`, :func:`remap_labels`) move labels between label spaces
(docs/checkpoints.md#k710-heads-and-safe-loading).
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.registry import DATASETS, FUNCTIONS

from tasks.data.annotations import (AnnotationError, read_class_names, read_kinetics_csv, read_ssv2_split,
                                    read_video_list)
from tasks.data.video.rawframes import read_rawframes
from tasks.data.video import VideoDecodeError, dense_sample, segment_sample
from tasks.data.video.cache import DecodedVideoCache, open_video
from tasks.data.files import write_json_atomic
from tasks.data.video.ids import video_id_of
from tasks.data.video.reader import Backend
from tasks.data.video.retry import load_with_replacements, sample_seeds

from .transforms import ClsTrainAugmentation, multi_view_test

__all__ = ['ClsRecord', 'read_cls_list', 'read_class_names', 'label_map_between', 'read_label_map_json',
           'write_label_map_json', 'remap_labels', 'VideoMAEv2ClsDataset', 'videomaev2_cls_collate']

AnnFormat = Literal['video', 'rawframes', 'ssv2', 'kinetics']
Sampling = Literal['dense', 'segment']
SampleKey = int | tuple[int, int]


@dataclass(frozen=True)
class ClsRecord:
    """One labelled video.

    Attributes:
        path: video file, or frame folder for raw frames.
        label: 0-based class index.
        video_id: the name reported with predictions: file name up to its first '.' (the feature store's key,
            :func:`tasks.data.video.ids.video_id_of`), the SSv2 id, or the Kinetics clip name.
        total_frames: frame count of a raw-frame folder; ``None`` for video files.
        source: ``<list file>, line <n>`` (or entry n), for messages about this video.
    """

    path: str
    label: int
    video_id: str
    total_frames: int | None
    source: str


# ---------------------------------------------------------------------------------------------------------------------
# label maps
# ---------------------------------------------------------------------------------------------------------------------
def _name_key(name: str) -> str:
    # Kinetics label maps spell names with spaces, some csv mirrors with underscores; both mean the same class
    return ' '.join(name.replace('_', ' ').split()).lower()


def label_map_between(source: Sequence[str] | str | os.PathLike,
                      target: Sequence[str] | str | os.PathLike) -> list[int]:
    """Indices into ``source`` of every ``target`` class: ``label_710to400.json`` from the K710 and K400 name lists.

    Names match ignoring case and ``_`` vs space. Row i of a ``source``-way head becomes row i of the ``target`` head.

    Raises:
        AnnotationError: a target class that the source does not have, or two source classes with the same name.
    """
    src = read_class_names(source) if isinstance(source, (str, os.PathLike)) else list(source)
    tgt = read_class_names(target) if isinstance(target, (str, os.PathLike)) else list(target)
    where = str(target) if isinstance(target, (str, os.PathLike)) else '<target names>'
    index: dict[str, int] = {}
    for i, name in enumerate(src):
        key = _name_key(name)
        if key in index:
            raise AnnotationError(where, f'source classes {index[key]} and {i} are both named {name!r}')
        index[key] = i
    missing = [name for name in tgt if _name_key(name) not in index]
    if missing:
        raise AnnotationError(where, f'{len(missing)} target classes are not among the {len(src)} source classes: '
                                     f'{missing[:5]}')
    return [index[_name_key(name)] for name in tgt]


def read_label_map_json(path: str | os.PathLike, num_source: int | None = None) -> list[int]:
    """Read an official ``label_710to{400,600,700}.json``: a JSON list of source-class indices.

    Raises:
        AnnotationError: not a list of non-negative integers, an index >= ``num_source``, or an index used twice.
    """
    try:
        value = json.loads(Path(path).read_text(encoding='utf-8'))
    except OSError as e:
        raise AnnotationError(path, f'cannot read the label map ({e.strerror or e})') from None
    except json.JSONDecodeError as e:
        raise AnnotationError(path, f'invalid JSON: {e.msg}', line=e.lineno) from None
    if not isinstance(value, list) or not value:
        raise AnnotationError(path, f'expected a non-empty JSON list of class indices, got {type(value).__name__}')
    seen: dict[int, int] = {}
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise AnnotationError(path, f'entry {i} is {v!r}, not a non-negative integer class index')
        if num_source is not None and v >= num_source:
            raise AnnotationError(path, f'entry {i} is {v}, outside the {num_source} source classes')
        if v in seen:
            raise AnnotationError(path, f'entries {seen[v]} and {i} both take source class {v}')
        seen[v] = i
    return list(value)


def write_label_map_json(path: str | os.PathLike, indices: Sequence[int]) -> None:
    """Write a label map in the official layout (a one-line JSON list), atomically."""
    write_json_atomic(path, [int(i) for i in indices], indent=None)


def remap_labels(records: Sequence[ClsRecord], label_map: Sequence[int]) -> list[ClsRecord]:
    """Records with every label ``l`` replaced by ``label_map[l]`` (e.g. K400 labels -> K710 labels with the inverse
    direction of ``label_710to400``: pass ``label_710to400`` itself to move K400 labels into K710 indices).

    Raises:
        ValueError: a label outside ``label_map``, naming the video.
    """
    out = []
    for record in records:
        if not 0 <= record.label < len(label_map):
            raise ValueError(f'{record.source}: label {record.label} is outside the {len(label_map)}-entry label map')
        out.append(replace(record, label=int(label_map[record.label])))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# lists
# ---------------------------------------------------------------------------------------------------------------------
def _join(prefix: str | os.PathLike | None, name: str) -> str:
    return os.path.join(prefix, name) if prefix is not None else name


def class_name_list(class_names: str | os.PathLike | Sequence[str] | None) -> list[str] | None:
    """Class names from a shipped label set's name or a file (:func:`tasks.data.labels.class_names`) or a sequence;
    None stays None."""
    if class_names is None:
        return None
    if isinstance(class_names, (str, os.PathLike)):
        from tasks.data.labels import class_names as label_set

        return label_set(class_names)
    return [str(n) for n in class_names]


def read_cls_list(ann_file: str | os.PathLike, ann_format: AnnFormat = 'video', *,
                  data_prefix: str | os.PathLike | None = None, label_file: str | os.PathLike | None = None,
                  class_names: str | os.PathLike | Sequence[str] | None = None, video_ext: str = '.mp4',
                  num_classes: int | None = None) -> list[ClsRecord]:
    """The labelled videos of any supported list.

    Args:
        ann_file: the list.
        ann_format: ``'video'`` / ``'rawframes'`` (mmaction2 lists), ``'ssv2'`` (a split json; files
            ``<id><video_ext>``, ``.webm`` for the release) or ``'kinetics'`` (official csv; files
            ``<youtube_id>_<start:06d>_<end:06d><video_ext>``, as the official download scripts name them).
        data_prefix: folder the listed paths are relative to.
        label_file: SSv2 ``labels.json`` (default: next to ``ann_file``).
        class_names: Kinetics class names in label order (a ``label_map_k400.txt``-style file or a list); default:
            the csv's names sorted alphabetically, the order of the official label maps.
        video_ext: file extension for SSv2 / Kinetics.
        num_classes: if given, every label must lie in [0, num_classes).

    Raises:
        AnnotationError: a malformed list (file and line named), an unknown class, a label out of range, an unlabelled
            (test-split) entry, or an empty list.
    """
    if ann_format in ('video', 'rawframes'):
        entries = read_video_list(ann_file, format=ann_format, root=data_prefix, num_classes=num_classes)
        records = [ClsRecord(e.path, e.label, video_id_of(e.path), e.total_frames, f'{ann_file}, line {e.line}')
                   for e in entries]
    elif ann_format == 'ssv2':
        labels = label_file if label_file is not None else Path(ann_file).with_name('labels.json')
        records = []
        for i, e in enumerate(read_ssv2_split(ann_file, labels)):
            if e.label is None:
                raise AnnotationError(ann_file, f'entry {i} (video {e.id}) has no template, so no label; the test '
                                                'split cannot be used for fine-tuning or accuracy')
            records.append(ClsRecord(_join(data_prefix, e.id + video_ext), e.label, e.id, None,
                                     f'{ann_file}, entry {i}'))
    elif ann_format == 'kinetics':
        entries = read_kinetics_csv(ann_file)
        names = class_name_list(class_names)
        if names is None:
            names = sorted({e.label for e in entries if e.label is not None})
        index = {_name_key(n): i for i, n in enumerate(names)}
        records = []
        for e in entries:
            if e.label is None:
                raise AnnotationError(ann_file, f'{e.youtube_id} has no label (a test csv?)', line=e.line)
            if _name_key(e.label) not in index:
                raise AnnotationError(ann_file, f'class {e.label!r} is not in the class-name list '
                                                f'({len(names)} classes)', line=e.line)
            records.append(ClsRecord(_join(data_prefix, e.clip_name + video_ext), index[_name_key(e.label)],
                                     e.clip_name, None, f'{ann_file}, line {e.line}'))
    else:
        raise ValueError(f"ann_format must be 'video', 'rawframes', 'ssv2' or 'kinetics', got {ann_format!r}")
    if not records:
        raise AnnotationError(ann_file, 'the list holds no videos')
    if num_classes is not None:
        bad = [r for r in records if not 0 <= r.label < num_classes]
        if bad:
            raise AnnotationError(ann_file, f'{bad[0].source}: label {bad[0].label} is outside [0, {num_classes})')
    return records


# ---------------------------------------------------------------------------------------------------------------------
# dataset
# ---------------------------------------------------------------------------------------------------------------------
@DATASETS.register_module()
class VideoMAEv2ClsDataset(torch.utils.data.Dataset):
    """Labelled videos -> training views or all test views of one video (official VideoMAE V2 recipe defaults).

    A sample (``dataset[(epoch, index)]``, or ``dataset[index]`` for epoch 0) is a dict:

    * ``inputs``: uint8 (V, 3, T, S, S), RGB 0-255: V = ``num_sample`` training views, or ``num_clips * num_crops``
      test views (V = 0 for a test video that failed to decode);
    * ``label``: int class; ``index``: list index of the video the views come from (differs from the key after a
      training replacement); ``video_id``: its name;
    * ``erase_boxes``: int64 (V, recount, 4) random-erasing boxes ``(top, left, h, w)``, zero rows = none (training);
    * ``valid``: False for a test video that failed to decode; ``failed``: ``(path, reason)`` pairs of every video that
      failed while producing this sample.

    A training sample is one decoded clip, ``sampling='dense'`` (Kinetics: a random window of ``clip_len *
    frame_interval`` frames, :func:`tasks.data.video.dense_sample`) or ``'segment'`` (SSv2: one random frame per TSN
    segment, :func:`tasks.data.video.segment_sample`), and ``num_sample`` views of it augmented independently by
    :class:`~tasks.classification.transforms.ClsTrainAugmentation` (repeated augmentation). A test sample holds every
    view of one video: V = 15 for Kinetics (5 clips x 3 crops), V = 6 for SSv2 (2 temporal offsets, the segment
    starts and the segment midpoints, x 3 crops).

    A broken video (:class:`tasks.data.video.VideoDecodeError`) is reported once per process with its list entry and
    the reason. In training it is replaced by another video drawn from the sample's own seed, as the official loader
    does; in testing a replacement would score the wrong video (the official test loader substitutes a random one),
    so the sample comes back with ``valid=False`` and no views, and the metric leaves it out and counts it
    (docs/classification.md#test-protocols-and-metrics).

    Every random draw comes from generators seeded by ``(seed, epoch, index)``
    (:func:`tasks.data.video.retry.sample_seeds`); the epoch arrives in the key from
    :class:`tasks.data.epoch_sampler.EpochIndexSampler`.

    Args:
        ann_file: the list (see :func:`read_cls_list`).
        data_prefix: folder the listed paths are relative to.
        ann_format: ``'video'``, ``'rawframes'``, ``'ssv2'`` or ``'kinetics'``.
        label_file: SSv2 ``labels.json``.
        class_names: class names in label order, a file (one a line, ``label_map_k400.txt``) or a list: Kinetics
            csv labels are matched against them, and in every format they are recorded as ``metainfo['classes']``,
            which names the classes in the metric's outputs (``cls_results.json``, ``cls_confusion.png``).
        num_classes: check every label against it.
        video_ext: extension of SSv2 / Kinetics files.
        filename_tmpl: frame file names of raw-frame folders (SSv2: ``img_{:05}.jpg``).
        start_index: number of the first frame file (1 for SSv2).
        test_mode: test views instead of training views.
        sampling: ``'dense'`` (Kinetics, UCF101, HMDB51) or ``'segment'`` (SSv2).
        clip_len: frames per clip (16); the number of segments for ``'segment'``.
        frame_interval: step between frames of a dense clip (4 for Kinetics; HMDB51 uses 2).
        protocol: sampler protocol, ``'official'`` (VideoMAE V2) or ``'mmaction2'``.
        input_size: crop side S (224).
        short_side: test-time short side before cropping (224).
        num_clips: test clips per video (Kinetics 5, SSv2 2).
        num_crops: test crops per clip (3, or 1 for a centre crop; ``num_clips=1, num_crops=1`` is the single centre
            view the official code validates with during training).
        num_sample: training views per decoded video (official ``--num_sample 2``).
        rand_augment: timm RandAugment string, or None.
        rrc_scale: random-resized-crop area range.
        rrc_ratio: random-resized-crop aspect range.
        flip: random horizontal flip (official: on for Kinetics, off for SSv2).
        reprob: random-erasing probability (0.25).
        recount: random-erasing boxes per clip (1).
        reverse_prob: probability of playing a training clip backwards, with its label replaced by
            ``reverse_label_map[label]`` (not in the official recipe). For classes that come in time-reversed pairs
            (the synthetic benchmark: moving left / right, growing / shrinking ...) a reversed clip is a true sample
            of the partner class, and the same appearance then carries both labels, which takes away the shortcut of
            memorising each training video's look instead of its motion.
        reverse_label_map: the partner of every class (an involution: ``map[map[c]] == c``).
        backend: video decoder: ``'auto'`` (decord, PyAV where decord cannot read the file), ``'decord'``
            (official) or ``'pyav'`` (docs/video_decoding.md#video-formats).
        seed: base of every per-sample seed.
        max_attempts: videos tried for one training sample before giving up with an error.
        cache_videos_mb: keep up to this many MiB of whole decoded videos in each process
            (:class:`~tasks.data.video.cache.DecodedVideoCache`), so a small training set is decoded once, not once per
            epoch; the frames are the same. 0 (default) decodes every sample afresh.
    """

    def __init__(self, ann_file: str, data_prefix: str | None = None, ann_format: AnnFormat = 'video', *,
                 label_file: str | None = None, class_names: str | Sequence[str] | None = None,
                 num_classes: int | None = None, video_ext: str = '.mp4', filename_tmpl: str = 'img_{:05}.jpg',
                 start_index: int = 1, test_mode: bool = False, sampling: Sampling = 'dense', clip_len: int = 16,
                 frame_interval: int = 4, protocol: Literal['official', 'mmaction2'] = 'official',
                 input_size: int = 224, short_side: int = 224, num_clips: int = 5, num_crops: Literal[1, 3] = 3,
                 num_sample: int = 2, rand_augment: str | None = 'rand-m7-n4-mstd0.5-inc1',
                 rrc_scale: Sequence[float] = (0.08, 1.0), rrc_ratio: Sequence[float] = (0.75, 1.3333),
                 flip: bool = True, reprob: float = 0.25, recount: int = 1, reverse_prob: float = 0.0,
                 reverse_label_map: Sequence[int] | None = None,
                 backend: Backend = 'auto', seed: int = 0, max_attempts: int = 20,
                 cache_videos_mb: float = 0):
        if sampling not in ('dense', 'segment'):
            raise ValueError(f"sampling must be 'dense' or 'segment', got {sampling!r}")
        if num_sample < 1 or num_clips < 1 or clip_len < 1 or frame_interval < 1:
            raise ValueError(f'num_sample, num_clips, clip_len and frame_interval must be >= 1; got {num_sample}, '
                             f'{num_clips}, {clip_len}, {frame_interval}')
        if num_crops not in (1, 3):
            raise ValueError(f'num_crops must be 1 or 3, got {num_crops}')
        if seed < 0:
            raise ValueError(f'seed must be >= 0, got {seed}')
        if reverse_prob > 0:
            pairs = list(reverse_label_map or [])
            valid = all(isinstance(c, int) and 0 <= c < len(pairs) for c in pairs)
            if not pairs or not valid or any(pairs[pairs[i]] != i for i in range(len(pairs))):
                raise ValueError(f'reverse_prob > 0 needs reverse_label_map, a list with the time-reversed partner of '
                                 f'every class (map[map[c]] == c), got {reverse_label_map}')
        self.reverse_prob = reverse_prob
        self.reverse_label_map = list(reverse_label_map) if reverse_label_map is not None else None
        self.ann_file = str(ann_file)
        names = class_name_list(class_names)  # read once: the Kinetics reader matches labels against them
        self.records = read_cls_list(ann_file, ann_format, data_prefix=data_prefix, label_file=label_file,
                                     class_names=names, video_ext=video_ext, num_classes=num_classes)
        self.test_mode = test_mode
        self.sampling = sampling
        self.clip_len = clip_len
        self.frame_interval = frame_interval
        self.protocol = protocol
        self.input_size = input_size
        self.short_side = short_side
        self.num_clips = num_clips
        self.num_crops = num_crops
        self.num_sample = num_sample
        self.recount = recount
        self.filename_tmpl = filename_tmpl
        self.start_index = start_index
        self.backend = backend
        self.video_cache = DecodedVideoCache(cache_videos_mb, backend) if cache_videos_mb > 0 else None
        self.seed = seed
        self.max_attempts = max_attempts
        self.augment = None if test_mode else ClsTrainAugmentation(
            input_size=input_size, rand_augment=rand_augment, scale=tuple(rrc_scale), ratio=tuple(rrc_ratio),
            flip=flip, reprob=reprob, recount=recount)
        labels = [r.label for r in self.records]
        #: metainfo recorded in checkpoints by the Runner
        self.metainfo = dict(ann_file=self.ann_file, num_videos=len(self.records), test_mode=test_mode,
                             sampling=sampling, clip_len=clip_len, frame_interval=frame_interval,
                             input_size=input_size, num_views=self.num_views,
                             num_classes=num_classes if num_classes is not None else max(labels) + 1)
        if names is not None:
            # labels were checked against num_classes, or set it: equal counts cover every label
            if len(names) != self.metainfo['num_classes']:
                raise ValueError(f'class_names: {len(names)} names for {self.metainfo["num_classes"]} classes '
                                 f'(labels up to {max(labels)} in {self.ann_file})')
            self.metainfo['classes'] = tuple(names)
        self._failed: dict[str, str] = {}  # path -> reason, per process: each broken file is reported once

    @property
    def num_views(self) -> int:
        """Views per sample: ``num_sample`` (training) or ``num_clips * num_crops`` (testing)."""
        return self.num_clips * self.num_crops if self.test_mode else self.num_sample

    def __len__(self) -> int:
        return len(self.records)

    # --- decoding --------------------------------------------------------------------------------------------------
    def _indices(self, num_frames: int, fps: float | None, generator: torch.Generator) -> np.ndarray:
        """(clips, clip_len) frame indices: one random clip (training) or the test clips."""
        num_clips = self.num_clips if self.test_mode else 1
        if self.sampling == 'dense':
            sample = dense_sample(num_frames, clip_len=self.clip_len, frame_interval=self.frame_interval,
                                  num_clips=num_clips, test_mode=self.test_mode, protocol=self.protocol, fps=fps,
                                  generator=generator)
        else:
            sample = segment_sample(num_frames, num_segments=self.clip_len, num_clips=num_clips,
                                    test_mode=self.test_mode, protocol=self.protocol, fps=fps, generator=generator)
        return sample.indices

    def load_clips(self, record: ClsRecord, generator: torch.Generator) -> torch.Tensor:
        """Decode the sampled clips of one video: uint8 (clips, T, H, W, 3).

        Raises:
            VideoDecodeError: the video (or a frame file) cannot be read.
        """
        if record.total_frames is not None:
            indices = self._indices(record.total_frames, None, generator)
            frames = read_rawframes(record.path, indices.reshape(-1), self.filename_tmpl, self.start_index)
        else:
            with open_video(record.path, self.backend, self.video_cache) as reader:
                indices = self._indices(reader.num_frames, reader.fps, generator)
                frames = reader.get_frames(indices.reshape(-1))  # each frame decoded once, also across clips
        return frames.reshape(indices.shape[0], indices.shape[1], *frames.shape[1:])

    def _report(self, record: ClsRecord, reason: str) -> None:
        if record.path not in self._failed:
            self._failed[record.path] = reason
            print_log(f'skipping {record.path} ({record.source}): {reason}', logger='current',
                      level=logging.WARNING)

    # --- samples ---------------------------------------------------------------------------------------------------
    def _train_views(self, clip: torch.Tensor, generator: torch.Generator,
                     rng: np.random.Generator) -> dict[str, torch.Tensor]:
        views = [self.augment(clip, generator, rng) for _ in range(self.num_sample)]
        boxes = torch.zeros(len(views), self.recount, 4, dtype=torch.int64)
        for v, view in enumerate(views):
            for k, box in enumerate(view.erase_boxes[:self.recount]):
                boxes[v, k] = torch.tensor(box)
        return dict(inputs=torch.stack([v.clip for v in views]), erase_boxes=boxes)

    def __getitem__(self, key: SampleKey) -> dict[str, Any]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        index = int(index)
        if not 0 <= index < len(self.records):
            raise IndexError(f'index {index} out of range for {len(self.records)} videos')
        if self.test_mode:
            return self._test_sample(index)
        clips, current, generator, rng, failed = load_with_replacements(
            len(self.records), index, epoch, seed=self.seed, max_attempts=self.max_attempts, known_bad=self._failed,
            path_of=lambda i: self.records[i].path, load=lambda i, g: self.load_clips(self.records[i], g),
            report=lambda i, reason: self._report(self.records[i], reason), source=self.ann_file)
        record = self.records[current]
        clip, label = clips[0], record.label
        if self.reverse_prob > 0 and rng.random() < self.reverse_prob:
            clip, label = clip.flip(0), self.reverse_label_map[label]
        return dict(self._train_views(clip, generator, rng), label=label, index=current, video_id=record.video_id,
                    valid=True, failed=tuple(failed))

    def _test_sample(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        base = dict(label=record.label, index=index, video_id=record.video_id,
                    erase_boxes=torch.zeros(0, self.recount, 4, dtype=torch.int64))
        if record.path in self._failed:
            reason = self._failed[record.path]
        else:
            generator, _ = sample_seeds(self.seed, 0, index)  # test sampling is deterministic; unused
            try:
                clips = self.load_clips(record, generator)
            except VideoDecodeError as e:
                self._report(record, e.reason)
                reason = e.reason
            else:
                views = multi_view_test(clips, self.short_side, self.input_size, self.num_crops)
                return dict(base, inputs=views, valid=True, failed=())
        empty = torch.zeros(0, 3, self.clip_len, self.input_size, self.input_size, dtype=torch.uint8)
        return dict(base, inputs=empty, valid=False, failed=((record.path, reason),))

    def __repr__(self) -> str:
        mode = (f'test, {self.num_clips} clips x {self.num_crops} crops' if self.test_mode
                else f'train, {self.num_sample} views, {self.augment!r}')
        return (f'{type(self).__name__}({self.ann_file!r}: {len(self)} videos, {self.sampling} '
                f'{self.clip_len}x{self.frame_interval if self.sampling == "dense" else "seg"}, {mode})')


@FUNCTIONS.register_module()
def videomaev2_cls_collate(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack samples of :class:`VideoMAEv2ClsDataset` into the model's input dict.

    Test samples that failed to decode have no views; they are replaced by zero views so the batch stacks (V = 0
    when no video of the batch decoded), and ``valid`` tells the model to leave them out.

    Returns:
        ``inputs``: uint8 (B, V, 3, T, S, S); ``data_samples``: ``label`` int64 (B,), ``index`` int64 (B,),
        ``video_id`` list of B str, ``valid`` bool (B,), ``erase_boxes`` int64 (B, V, K, 4), ``failed`` (path, reason)
        pairs of the whole batch, ``failure`` list of B: the (path, reason) of an invalid sample, else None.
    """
    if not batch:
        raise ValueError('cannot collate an empty batch')
    views = max(s['inputs'].shape[0] for s in batch)
    shape = next((s['inputs'].shape[1:] for s in batch if s['inputs'].shape[0]), batch[0]['inputs'].shape[1:])
    inputs, boxes = [], []
    for s in batch:
        x, b = s['inputs'], s['erase_boxes']
        if x.shape[0] != views:
            if x.shape[0]:
                raise ValueError(f'samples with {x.shape[0]} and {views} views in one batch')
            x = torch.zeros(views, *shape, dtype=torch.uint8)
        if b.shape[0] != views:
            b = torch.zeros(views, *b.shape[1:], dtype=torch.int64)
        inputs.append(x)
        boxes.append(b)
    return dict(
        inputs=torch.stack(inputs),
        data_samples=dict(
            label=torch.tensor([s['label'] for s in batch], dtype=torch.int64),
            index=torch.tensor([s['index'] for s in batch], dtype=torch.int64),
            video_id=[s['video_id'] for s in batch],
            valid=torch.tensor([bool(s['valid']) for s in batch]),
            erase_boxes=torch.stack(boxes),
            failed=[f for s in batch for f in s['failed']],
            failure=[None if s['valid'] or not s['failed'] else tuple(s['failed'][-1]) for s in batch]))
