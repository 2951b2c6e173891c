"""AVA keyframes -> (clip, boxes, multi-hot labels) samples, decoded from videos with :mod:`tasks.data.video`.

Reproduces mmaction2's AVA pipeline (``AVADataset`` + ``SampleAVAFrames`` + ``RandomRescale`` / ``RandomCrop`` /
``Flip`` / ``Resize``; docs/ava.md#files-and-frames, docs/ava.md#data-and-schedules) without mmdet, reading the
annotation files with :mod:`tasks.data.annotations`. :class:`VideoMAEv2AVADataset` says which keyframes and boxes
it uses and where it departs from mmaction2.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.registry import DATASETS, FUNCTIONS

from tasks.data.annotations import (AnnotationError, AVABox, group_by_keyframe, read_ava_csv, read_ava_excluded,
                               read_ava_label_map, read_ava_proposals)
from tasks.data.video import VideoDecodeError, keyframe_sample
from tasks.data.video.cache import DecodedVideoCache, open_video
from tasks.data.video.reader import Backend
from tasks.data.video.retry import load_with_replacements
from tasks.data.video.transforms import short_side_resize, to_tchw

__all__ = ['AVAKeyframe', 'VideoMAEv2AVADataset', 'VideoMAEv2AVAFeatmapDataset', 'videomaev2_ava_collate',
           'select_proposals']

KeyframeMode = Literal['all', 'annotated']


@dataclass(frozen=True)
class AVAKeyframe:
    """One sample: a keyframe with its boxes (normalised ``[x1, y1, x2, y2]``).

    Attributes:
        video_id: the video.
        timestamp: keyframe time, integer seconds.
        boxes: (N, 4) float32 boxes to classify: ground truth (+ matched proposals) in training, proposals at test.
        labels: (N, num_classes) float32 multi-hot targets, column j = action id j + 1 (zeros at test time).
        scores: (N,) float32 detector scores of the boxes (1 for ground truth).
        line: csv line of the keyframe's first ground-truth row (0 if it has none), for messages.
    """

    video_id: str
    timestamp: int
    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    line: int = 0


def select_proposals(proposals: np.ndarray | None, score_thr: float, max_proposals: int = 1000
                     ) -> tuple[np.ndarray, np.ndarray]:
    """mmaction2's proposal rule: boxes scoring >= min(score_thr, best score); the whole frame when there are none.

    Args:
        proposals: (N, 5) ``[x1, y1, x2, y2, score]`` or (N, 4) without scores (all kept), or None.

    Returns:
        boxes (M, 4) float32 and scores (M,) float32, in the file's order, at most ``max_proposals``.
    """
    if proposals is None or len(proposals) == 0:
        return np.array([[0.0, 0.0, 1.0, 1.0]], dtype=np.float32), np.ones(1, dtype=np.float32)
    proposals = np.asarray(proposals, dtype=np.float32)
    if proposals.shape[1] == 4:
        kept = proposals[:max_proposals]
        return kept, np.ones(len(kept), dtype=np.float32)
    thr = min(score_thr, float(proposals[:, 4].max()))
    kept = proposals[proposals[:, 4] >= thr][:max_proposals]
    return kept[:, :4].copy(), kept[:, 4].copy()


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from .evaluation import box_iou
    return box_iou(a.astype(np.float64), b.astype(np.float64))


@DATASETS.register_module()
class VideoMAEv2AVADataset(torch.utils.data.Dataset):
    """AVA-format spatio-temporal action detection data (real AVA v2.2 or the synthetic benchmark).

    A sample (``dataset[(epoch, index)]`` or ``dataset[index]``) is ``dict(inputs, data_samples)``:

    * ``inputs``: float32 (3, T, H, W) on the 0-255 scale (RGB), not normalised;
    * ``data_samples``: a dict with ``video_id``, ``timestamp``, ``boxes`` float32 (N, 4) in pixels of ``inputs``,
      ``norm_boxes`` (N, 4) the same boxes normalised as in the files (written to the submission unchanged),
      ``labels`` float32 (N, num_classes), ``scores`` (N,), ``img_shape`` (H, W) and ``failed`` (None or the reason
      the video could not be decoded).

    * **Keyframes**: one sample per ``(video_id, timestamp)``, excluded timestamps skipped. Training uses the
      keyframes of the annotation csv with their ground-truth boxes (rows merged into one box with every action).
      Testing uses, with ``keyframes='all'`` (the official protocol, which scores detections on every keyframe),
      every keyframe of the annotated videos that has proposals plus the annotated ones; ``'annotated'`` keeps only
      the annotated ones (mmaction2's val set).
    * **Clip**: :func:`tasks.data.video.keyframe_sample`, frame ``round(fps * (t - timestamp_start))`` (with
      ``fps=None`` the frame shown at ``t - timestamp_start`` by the container's timestamps), per-frame jitter in
      training.
    * **Boxes**: at test time the proposals (:func:`select_proposals`), or without a proposal file the ground truth
      (oracle localisation); in training the ground truth, plus with ``train_with_proposals`` the proposals whose IoU
      with a ground-truth box is >= ``proposal_iou`` (mmaction2's ``MaxIoUAssignerAVA``), labelled like that box.
    * **Spatial transforms**: in training boxes follow the rescale, crop and flip, clipped to the crop, and a box
      left with less than ``min_visible`` of its area is dropped, since its action may no longer be visible
      (mmaction2 keeps it clipped, even when empty). Frames whose size is not a multiple of the patch size are padded
      at the bottom/right by the data preprocessor, which leaves box coordinates unchanged.
    * **Broken videos** are reported once per process (file and reason). In training the sample is replaced by
      another keyframe; at test time it keeps its keyframe and boxes with a blank clip and ``failed`` set, so the
      metric writes no detection for it and lists it (its ground truth counts as missed).
    * **Randomness** (jitter, scale, crop, flip, replacements) comes from generators seeded by ``(seed, epoch,
      index)`` (:func:`tasks.data.video.retry.sample_seeds`), so a sample does not depend on the worker or process
      that loads it.

    Args:
        ann_file: ``ava_{train,val}_v2.2.csv``.
        data_prefix: folder of the videos, named ``<video_id><video_ext>``.
        label_file: label-map pbtxt; with ``labels_from_label_map`` only its classes are trained.
        exclude_file: excluded-timestamps csv.
        proposal_file: person-proposals pickle (test boxes; training boxes with ``train_with_proposals``).
        test_mode: test samples (proposals, no augmentation) instead of training samples.
        num_classes: length of the multi-hot vector, action ids 1..num_classes (80 for AVA).
        labels_from_label_map: train only the label-map classes (mmaction2's ``custom_classes``); other rows dropped.
        keyframes: test keyframes, ``'all'`` (official) or ``'annotated'`` (mmaction2).
        video_ext: extension of the video files.
        fps: frame rate used to find a keyframe's frame; None: the container's timestamps (the frame shown at
            the keyframe time; at AVA's constant 30 fps the same frame as ``round(30 * t)``).
        timestamp_start: time of frame 0 (900 for AVA's cut videos and the synthetic benchmark).
        clip_len: frames per clip (16).
        frame_interval: step between frames (4).
        train_scale: (min, max) short side of the random rescale in training.
        crop_size: side of the random square crop in training.
        flip_ratio: probability of a horizontal flip in training.
        min_visible: fraction of a box's area that must stay inside the crop for the box to be kept in training.
        test_short_side: short side at test time; None keeps the decoded size.
        person_det_score_thr: proposal score threshold (0.9).
        max_proposals: at most this many proposals per keyframe (mmaction2: 1000).
        train_with_proposals: add proposals matching a ground-truth box (IoU >= ``proposal_iou``) in training.
        proposal_iou: that IoU (0.9).
        backend: video decoder: ``'auto'`` (decord, PyAV where decord cannot read the file), ``'decord'``
            (official) or ``'pyav'`` (docs/video_decoding.md#video-formats).
        cache_videos_mb: keep up to this many MiB of whole decoded videos per process
            (:class:`~tasks.data.video.cache.DecodedVideoCache`) and cut every clip from memory; 0 (default) decodes
            each clip afresh. Only for small videos (the synthetic benchmark: 13 MB per 12-s 128x96 video); a random
            access into an H.264 file decodes from the previous keyframe (up to 250 frames), which made loading, not
            the tiny model, the cost of a CPU run (0.1-0.17 s per keyframe against 0.2 s for a whole video).
        seed: base seed of every per-sample generator.
        max_attempts: training keyframes tried for one sample before giving up (a dataset of broken videos stops).
    """

    def __init__(self, ann_file: str, data_prefix: str, *, label_file: str | None = None,
                 exclude_file: str | None = None, proposal_file: str | None = None, test_mode: bool = False,
                 num_classes: int = 80, labels_from_label_map: bool = False, keyframes: KeyframeMode = 'all',
                 video_ext: str = '.mp4', fps: float | None = None, timestamp_start: float = 900,
                 clip_len: int = 16, frame_interval: int = 4, train_scale: tuple[int, int] = (256, 320),
                 crop_size: int = 256, flip_ratio: float = 0.5, min_visible: float = 0.3,
                 test_short_side: int | None = 256, person_det_score_thr: float = 0.9, max_proposals: int = 1000,
                 train_with_proposals: bool = False, proposal_iou: float = 0.9,
                 backend: Backend = 'auto', cache_videos_mb: float = 0, seed: int = 0,
                 max_attempts: int = 20):
        if keyframes not in ('all', 'annotated'):
            raise ValueError(f"keyframes must be 'all' or 'annotated', got {keyframes!r}")
        if train_scale[0] > train_scale[1] or crop_size > train_scale[0]:
            raise ValueError(f'train_scale {train_scale} must be (min, max) with min >= crop_size ({crop_size})')
        if labels_from_label_map and label_file is None:
            raise ValueError('labels_from_label_map needs label_file')
        self.ann_file = str(ann_file)
        self.data_prefix = str(data_prefix)
        self.test_mode = test_mode
        self.num_classes = num_classes
        self.video_ext = video_ext
        self.fps = fps
        self.timestamp_start = timestamp_start
        self.clip_len = clip_len
        self.frame_interval = frame_interval
        self.train_scale = tuple(train_scale)
        self.crop_size = crop_size
        self.flip_ratio = flip_ratio
        self.min_visible = min_visible
        self.test_short_side = test_short_side
        self.backend = backend
        self.video_cache = DecodedVideoCache(cache_videos_mb, backend) if cache_videos_mb > 0 else None
        self.seed = seed
        self.max_attempts = max_attempts

        keep = set(read_ava_label_map(label_file)) if labels_from_label_map else None
        gt = read_ava_csv(ann_file, keep_ids=keep)
        for box in gt:
            if box.action_ids[-1] > num_classes:
                raise AnnotationError(ann_file, f'action id {box.action_ids[-1]} is larger than num_classes='
                                                f'{num_classes}', line=box.line)
        excluded = read_ava_excluded(exclude_file) if exclude_file is not None else set()
        proposals = read_ava_proposals(proposal_file) if proposal_file is not None else None
        by_key = {k: v for k, v in group_by_keyframe(gt).items() if k not in excluded}
        self.num_excluded = sum(1 for k in group_by_keyframe(gt) if k in excluded)

        self.samples: list[AVAKeyframe] = []
        if not test_mode:
            for key, boxes in by_key.items():
                self.samples.append(self._train_keyframe(key, boxes, proposals if train_with_proposals else None,
                                                         proposal_iou))
        else:
            keys = list(by_key)
            if proposals is not None and keyframes == 'all':
                videos = {k[0] for k in keys}
                extra = sorted(k for k in proposals if k[0] in videos and k not in by_key and k not in excluded)
                keys += extra
                order = {v: i for i, v in enumerate(dict.fromkeys(k[0] for k in by_key))}
                keys.sort(key=lambda k: (order[k[0]], k[1]))
            for key in keys:
                if proposals is not None:
                    boxes, scores = select_proposals(proposals.get(key), person_det_score_thr, max_proposals)
                else:
                    boxes = np.array([b.box for b in by_key[key]], dtype=np.float32).reshape(-1, 4)
                    scores = np.ones(len(boxes), dtype=np.float32)
                line = by_key[key][0].line if key in by_key else 0
                self.samples.append(AVAKeyframe(key[0], key[1], boxes, np.zeros((len(boxes), num_classes),
                                                                                 dtype=np.float32), scores, line))
        if not self.samples:
            raise AnnotationError(ann_file, 'no keyframes to use (every one excluded, or the file is empty)')
        #: metainfo recorded in checkpoints by the Runner
        self.metainfo = dict(ann_file=self.ann_file, num_keyframes=len(self.samples), num_classes=num_classes,
                             clip_len=clip_len, frame_interval=frame_interval, test_mode=test_mode)
        self._failed: dict[str, str] = {}  # path -> reason, per process: a broken file is reported once

    def _train_keyframe(self, key: tuple[str, int], boxes: Sequence[AVABox], proposals: dict | None,
                        proposal_iou: float) -> AVAKeyframe:
        gt_boxes = np.array([b.box for b in boxes], dtype=np.float32).reshape(-1, 4)
        labels = np.stack([b.multi_hot(self.num_classes + 1)[1:] for b in boxes])  # column j = action id j + 1
        scores = np.ones(len(gt_boxes), dtype=np.float32)
        if proposals is not None and key in proposals and len(proposals[key]):
            props = np.asarray(proposals[key], dtype=np.float32)[:, :4]
            iou = _iou(props, gt_boxes)
            best = iou.argmax(axis=1)
            match = iou[np.arange(len(props)), best] >= proposal_iou
            gt_boxes = np.concatenate([gt_boxes, props[match]])
            labels = np.concatenate([labels, labels[best[match]]])
            scores = np.concatenate([scores, np.ones(int(match.sum()), dtype=np.float32)])
        return AVAKeyframe(key[0], key[1], gt_boxes, labels.astype(np.float32), scores, boxes[0].line)

    def __len__(self) -> int:
        return len(self.samples)

    def video_path(self, video_id: str) -> str:
        return os.path.join(self.data_prefix, video_id + self.video_ext)

    # ------------------------------------------------------------------------------------------------------------------

    def load_clip(self, sample: AVAKeyframe, generator: torch.Generator | None) -> torch.Tensor:
        """uint8 (T, H, W, 3) frames of the keyframe's clip (jittered when ``generator`` is given, in training).

        Raises:
            VideoDecodeError: the video cannot be read.
        """
        path = self.video_path(sample.video_id)
        with open_video(path, self.backend, self.video_cache) as reader:
            clip = self._sample(reader.num_frames, sample.timestamp, reader.fps, generator, reader.timestamps)
            return reader.get_frames(clip.indices[0])

    def _sample(self, num_frames: int, timestamp: int, fps: float, generator: torch.Generator | None,
                timestamps: np.ndarray | None = None):
        # a configured fps is the protocol's frame clock (AVA: 30); without one, the container's timestamps place
        # the keyframe, which is also right for variable-frame-rate video
        return keyframe_sample(num_frames, timestamp, self.fps or fps, clip_len=self.clip_len,
                               frame_interval=self.frame_interval, timestamp_start=self.timestamp_start,
                               jitter=not self.test_mode, generator=generator,
                               timestamps=None if self.fps else timestamps)

    def _train_transform(self, frames: torch.Tensor, sample: AVAKeyframe, generator: torch.Generator
                         ) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]:
        """Random rescale + crop + flip; returns (3, T, S, S) float, pixel boxes, normalised boxes, labels."""
        low, high = self.train_scale
        short = int(torch.randint(low, high + 1, (), generator=generator))
        x = short_side_resize(frames, short)  # (T, 3, h, w) float32 0-255
        h, w = x.shape[-2:]
        s = self.crop_size
        scale = np.array([w, h, w, h], dtype=np.float32)
        boxes = sample.boxes * scale
        area = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-6)
        # Try a few crops for one that keeps a box: a training sample without boxes teaches nothing.
        for _ in range(10):
            top = int(torch.randint(0, h - s + 1, (), generator=generator))
            left = int(torch.randint(0, w - s + 1, (), generator=generator))
            crop = np.clip(boxes - np.array([left, top, left, top], dtype=np.float32), 0, s)
            visible = (crop[:, 2] - crop[:, 0]) * (crop[:, 3] - crop[:, 1]) / area
            keep = visible >= self.min_visible
            if keep.any():
                break
        x = x[..., top:top + s, left:left + s]
        crop, labels = crop[keep], sample.labels[keep]
        if float(torch.rand((), generator=generator)) < self.flip_ratio:
            x = x.flip(-1)
            crop = np.stack([s - crop[:, 2], crop[:, 1], s - crop[:, 0], crop[:, 3]], axis=1)
        norm = crop / np.float32(s)
        return x.transpose(0, 1).contiguous(), crop.astype(np.float32), norm.astype(np.float32), labels

    def _test_transform(self, frames: torch.Tensor, sample: AVAKeyframe) -> tuple[torch.Tensor, np.ndarray]:
        """Short-side resize only; returns (3, T, H, W) float and pixel boxes."""
        x = short_side_resize(frames, self.test_short_side) if self.test_short_side else to_tchw(frames).float()
        h, w = x.shape[-2:]
        return x.transpose(0, 1).contiguous(), sample.boxes * np.array([w, h, w, h], dtype=np.float32)

    def _report(self, path: str, reason: str, sample: AVAKeyframe) -> None:
        self._failed[path] = reason
        where = f'{self.ann_file}, line {sample.line}' if sample.line else self.ann_file
        print_log(f'skipping {path} ({where}): {reason}', logger='current', level=logging.WARNING)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        index = int(index)
        if not 0 <= index < len(self.samples):
            raise IndexError(f'index {index} out of range for {len(self.samples)} keyframes')
        if self.test_mode:
            return self._test_item(self.samples[index])
        frames, current, generator, _, failed = load_with_replacements(
            len(self.samples), index, epoch, seed=self.seed, max_attempts=self.max_attempts, known_bad=self._failed,
            path_of=lambda i: self.video_path(self.samples[i].video_id),
            load=lambda i, g: self.load_clip(self.samples[i], g),
            report=lambda i, reason: self._report(self.video_path(self.samples[i].video_id), reason, self.samples[i]),
            source=self.ann_file)
        sample = self.samples[current]
        clip, boxes, norm, labels = self._train_transform(frames, sample, generator)
        return dict(inputs=clip, data_samples=dict(
            video_id=sample.video_id, timestamp=sample.timestamp, boxes=torch.from_numpy(boxes),
            norm_boxes=torch.from_numpy(norm), labels=torch.from_numpy(np.ascontiguousarray(labels)),
            scores=torch.ones(len(boxes)), img_shape=tuple(clip.shape[-2:]), failed=None, skipped=tuple(failed)))

    def _test_item(self, sample: AVAKeyframe) -> dict[str, Any]:
        path = self.video_path(sample.video_id)
        reason = self._failed.get(path)
        if reason is None:
            try:
                frames = self.load_clip(sample, None)
            except VideoDecodeError as e:
                self._report(path, e.reason, sample)
                reason = e.reason
        if reason is not None:  # a blank clip keeps the sample (and its keyframe) in the evaluation
            side = self.test_short_side or self.crop_size
            frames = torch.zeros((self.clip_len, side, side, 3), dtype=torch.uint8)
        clip, boxes = self._test_transform(frames, sample)
        return dict(inputs=clip, data_samples=dict(
            video_id=sample.video_id, timestamp=sample.timestamp, boxes=torch.from_numpy(boxes),
            norm_boxes=torch.from_numpy(sample.boxes), labels=torch.from_numpy(sample.labels),
            scores=torch.from_numpy(sample.scores), img_shape=tuple(clip.shape[-2:]), failed=reason, skipped=()))

    def __repr__(self) -> str:
        mode = 'test' if self.test_mode else 'train'
        return (f'{type(self).__name__}({self.ann_file!r}, {mode}: {len(self)} keyframes, '
                f'{self.clip_len}x{self.frame_interval} clips)')


@DATASETS.register_module()
class VideoMAEv2AVAFeatmapDataset(VideoMAEv2AVADataset):
    """:class:`VideoMAEv2AVADataset` served from a ``featmap`` store: each sample's input is the stored map
    (C, H', W') of its keyframe instead of a decoded clip, with the same keyframes, boxes, labels and scores
    (docs/ava.md#from-cached-feature-maps).

    The store holds the test clip of every keyframe (no jitter, short side ``test_short_side``), so training from it
    has no augmentation: no random rescale, crop, flip or frame jitter; it is meant for a frozen backbone.

    Args:
        featmap_store: the store (``tools/extract_features.py --kind featmap``). Its provenance must match this
            dataset's clips (``clip_len``, ``frame_interval``, ``timestamp_start``, ``fps``, ``test_short_side``) and
            it must hold every keyframe of the dataset; both are checked here, with errors naming what differs or
            what is missing.
        **kwargs: those of :class:`VideoMAEv2AVADataset` (``data_prefix`` and the video options are unused).
    """

    def __init__(self, *args: Any, featmap_store: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        from feature_store import FeatureStore

        self.featmap_store = str(featmap_store)
        with FeatureStore.open(self.featmap_store) as store:
            store.require_kind('featmap', type(self).__name__)
            self._check_provenance(store.info)
            rows = {(vid, int(t)): (vid, i) for vid in store.ids()
                    for i, t in enumerate(store.meta(vid).timestamps)}
        missing = [(s.video_id, s.timestamp) for s in self.samples if (s.video_id, s.timestamp) not in rows]
        if missing:
            raise KeyError(f'{len(missing)} keyframes of {self.ann_file} are not in {self.featmap_store}: '
                           f'{", ".join(f"{v},{t}" for v, t in missing[:5])}{", ..." if len(missing) > 5 else ""}; '
                           'extract them with --keyframes (test keyframes that only the proposals have too)')
        self._rows = [rows[(s.video_id, s.timestamp)] for s in self.samples]
        self._store = None
        self._pid: int | None = None

    def _check_provenance(self, info: Any) -> None:
        sampling = info.config.get('sampling', {})
        expected = {'clip_len': self.clip_len, 'frame_interval': self.frame_interval,
                    'timestamp_start': self.timestamp_start, 'keyframe_fps': self.fps,
                    'short_side': self.test_short_side}
        stored = {**{k: sampling.get(k) for k in expected if k != 'short_side'},
                  'short_side': info.preprocessing.get('short_side')}
        differ = [f'{k}: {stored[k]!r} in the store vs {expected[k]!r} here' for k in expected
                  if stored[k] != expected[k] and not (stored[k] is not None and expected[k] is not None
                                                       and float(stored[k]) == float(expected[k]))]
        if differ:
            raise ValueError(f'{self.featmap_store} holds maps of other clips than {self.ann_file} asks for '
                             f'({"; ".join(differ)}); extract the store with this dataset\'s config')

    def _open(self):
        from feature_store import FeatureStore

        if self._store is None or self._pid != os.getpid():  # a handle per (forked) worker
            self._store = FeatureStore.open(self.featmap_store)
            self._pid = os.getpid()
        return self._store

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index = int(key[1] if isinstance(key, tuple) else key)
        if not 0 <= index < len(self.samples):
            raise IndexError(f'index {index} out of range for {len(self.samples)} keyframes')
        sample, (vid, row) = self.samples[index], self._rows[index]
        store = self._open()
        featmap = torch.from_numpy(store.read_window(vid, row, row + 1)[0])  # (C, H', W'), one chunk
        h, w = store.meta(vid).input_size
        boxes = sample.boxes * np.array([w, h, w, h], dtype=np.float32)
        return dict(inputs=featmap, data_samples=dict(
            video_id=sample.video_id, timestamp=sample.timestamp, boxes=torch.from_numpy(boxes),
            norm_boxes=torch.from_numpy(sample.boxes), labels=torch.from_numpy(np.ascontiguousarray(sample.labels)),
            scores=torch.from_numpy(sample.scores), img_shape=(h, w), failed=None, skipped=()))


@FUNCTIONS.register_module()
def videomaev2_ava_collate(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Keep clips as a list (test clips differ in size; the preprocessor pads them) and samples as a list of dicts."""
    if not batch:
        raise ValueError('cannot collate an empty batch')
    return dict(inputs=[s['inputs'] for s in batch], data_samples=[s['data_samples'] for s in batch])
