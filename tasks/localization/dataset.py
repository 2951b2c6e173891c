"""THUMOS14-style detection data: annotations + clip features from the HDF5 feature store (``feature_store/``).

One item per video of the chosen subset: its features (C, T) and its instances as *fractional feature rows*. Seconds
are converted to rows with the store's own metadata (:meth:`feature_store.VideoFeatureMeta.seconds_to_row`: the fps,
stride and clip centres recorded at extraction), so no config carries a stride, fps or offset of its own, the
bookkeeping that most often breaks THUMOS14 numbers (docs/thumos14.md#time-and-feature-rows).
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.registry import DATASETS, FUNCTIONS

from feature_store import FeatureStore, VideoFeatureMeta
from feature_store.dataset import FeatureDataset

from tasks.data.annotations import AnnFormat, class_names, detect_format, read_annotations, resolve_subset

__all__ = ['FeatureWidthError', 'TADFeatureDataset', 'feature_width_message', 'online_extract_config', 'tad_collate',
           'truncate']


def online_extract_config(online: Mapping[str, Any]):
    """:class:`feature_store.extract.ExtractConfig` from the dataset's ``online`` dict.

    Keys: ``video_dir`` (required), ``video_ext`` ('.mp4'), ``resize`` ('squash' | 'short_side'), ``size``
    ((h, w) or one side, default 224), ``short_side``, ``normalize`` (False: the official TAD features have no mean/std,
    docs/thumos14.md#official-feature-extractor), and any :class:`~feature_store.extract.ExtractConfig` field
    (``arch``, ``checkpoint``, ``seed``, ``img_size``, ``frames``, ``clip_len``, ``frame_interval``, ``stride``,
    ``dtype``, ``batch_size``, ``num_workers``, ``device``, ``backend``). Without ``checkpoint``, ``random_init=True``
    must say that features of a randomly initialised backbone are meant (as ``tools/extract_features.py
    --random-init``).
    """
    from feature_store.extract import ExtractConfig, Preprocess

    opts = dict(online)
    opts.pop('video_dir', None)
    opts.pop('video_ext', None)
    random_init = bool(opts.pop('random_init', False))
    if (opts.get('checkpoint') is None) != random_init:
        raise ValueError('online extraction needs online["checkpoint"] (the backbone the features come from), or '
                         'random_init=True without a checkpoint for a randomly initialised backbone'
                         + (f'; got both ({opts["checkpoint"]})' if random_init else ''))
    size = opts.pop('size', 224)
    size = (int(size), int(size)) if isinstance(size, (int, float)) else tuple(int(v) for v in size)
    pre = Preprocess(opts.pop('resize', 'squash'), size, opts.pop('short_side', None),
                     normalize=bool(opts.pop('normalize', False)))
    if opts.get('img_size') is not None and not isinstance(opts['img_size'], (int, float)):
        opts['img_size'] = tuple(opts['img_size'])
    elif opts.get('img_size') is not None:
        opts['img_size'] = (int(opts['img_size']), int(opts['img_size']))
    try:
        return ExtractConfig(preprocess=pre, **opts)
    except TypeError as e:
        raise ValueError(f'online extraction: {e}') from None


def truncate(num_rows: int, segments: np.ndarray, rng: np.random.Generator, max_seq_len: int,
             trunc_thresh: float = 0.5, crop_ratio: Sequence[float] | None = (0.9, 1.0),
             max_trials: int = 200) -> tuple[int, int, np.ndarray]:
    """A random training window ``[start, start + length)`` of a video (ActionFormer's ``truncate_feats``).

    A video longer than ``max_seq_len`` rows gets a random ``max_seq_len`` window, a shorter one a random window of
    ``crop_ratio`` of its length; the window is redrawn until it keeps an instance.

    Args:
        num_rows: rows of the video.
        segments: (N, 2) instances in rows.
        rng: random source.
        max_seq_len: longest window.
        trunc_thresh: an instance is kept when at least this fraction of its length lies in the window; windows are
            redrawn until one instance is kept (when the video has any).
        crop_ratio: for videos of at most ``max_seq_len`` rows, the window length is drawn uniformly from
            ``[round(lo * n), round(hi * n)]`` (None: such videos are not cropped).
        max_trials: windows tried before taking the last one.

    Returns:
        ``(start, length, kept)``: kept is an index array into ``segments`` of the instances to keep (cut to the
        window and shifted by ``start`` by the caller).
    """
    n = num_rows
    all_idx = np.arange(len(segments))
    if n <= max_seq_len:
        if crop_ratio is None:
            return 0, n, all_idx
        length = int(rng.integers(max(round(crop_ratio[0] * n), 1), min(round(crop_ratio[1] * n), n) + 1))
        if length == n:
            return 0, n, all_idx
    else:
        length = max_seq_len
    start, kept = 0, all_idx[:0]
    for _ in range(max_trials):
        start = int(rng.integers(0, n - length + 1))
        inter = np.clip(np.minimum(start + length, segments[:, 1]) - np.maximum(start, segments[:, 0]), 0, None)
        ratio = inter / np.maximum(segments[:, 1] - segments[:, 0], 1e-12)
        kept = np.flatnonzero(ratio >= trunc_thresh)
        if len(kept) or not len(segments):
            break
    return start, length, kept


# The THUMOS14 feature configs, searched for those written for a given feature width.
_FEATURE_CONFIGS = Path(__file__).resolve().parents[2] / 'configs' / 'localization' / 'thumos14'


class FeatureWidthError(ValueError):
    """Features whose width is not the model's ``in_dim`` (a store made by another backbone than the config's)."""


def feature_width_message(width: int, in_dim: int, data_samples: Sequence[Mapping[str, Any]] = ()) -> str:
    """The error for ``width``-channel features fed to a model with ``in_dim``: the store (the samples'
    ``feature_store``), both numbers, and the feature configs (``configs/localization/thumos14/``, by their last
    ``in_dim=``) written for ``width``."""
    store = next((s['feature_store'] for s in data_samples if s.get('feature_store')), None)
    matching = []
    for path in sorted(_FEATURE_CONFIGS.glob('*.py')):
        dims = re.findall(r'\bin_dim=(\d+)', path.read_text())
        if dims and int(dims[-1]) == width:
            matching.append(path.name)
    source = f'feature store {store}' if store else 'the input'
    configs = (f'the feature configs for {width}-d features: {", ".join(matching)} (configs/localization/thumos14/)'
               if matching else f'no config in configs/localization/thumos14/ is for {width}-d features')
    return (f'{source} holds {width}-d features, but the config\'s model.in_dim={in_dim} (the features it was written '
            f'for); {configs}; or set --cfg-options model.in_dim={width}')


@DATASETS.register_module()
class TADFeatureDataset(torch.utils.data.Dataset):
    """Videos of one THUMOS14-style subset with their clip features and instances.

    An item (``dataset[index]`` or ``dataset[(epoch, index)]``) is ``{'inputs': (C, T) float32, 'data_samples':
    {...}}`` with ``video_id``, ``segments`` (N, 2) float32 rows relative to the window, ``labels`` (N,) int64,
    ``meta`` (the video's :class:`~feature_store.VideoFeatureMeta`, which
    :meth:`~tasks.localization.model.ActionFormerTAD.postprocess` uses to map predicted rows back to seconds),
    ``row_offset`` (first row of the window), ``duration`` (seconds, from the annotations), ``num_rows`` (rows of
    the whole video) and ``feature_store`` (the store's path).

    Construction checks (errors name the video and both files) that every video is in the store or is extracted
    on-line (``online=``, :func:`feature_store.extract.extract_to_store`, which refuses a store made with other
    settings, so cached and on-line features cannot be mixed up), and that the annotation's frame rate (ActionFormer
    ``fps``; OpenTAD ``frame / duration``) agrees with the store's within ``fps_rtol``: features of another encoding
    of the video would put every instance at the wrong rows.

    Training items are randomly cropped (:func:`truncate`); the model's data preprocessor then pads to
    ``max_seq_len``. The crops come from ``(seed, epoch, index)`` (the keys
    :class:`tasks.data.epoch_sampler.EpochIndexSampler` yields), so they differ between epochs and do not depend on
    workers.

    Args:
        ann_file: ActionFormer or OpenTAD json (``ann_format``).
        feature_store: HDF5 store holding the videos' features.
        subset: ``'train'`` (THUMOS14 validation videos), ``'test'``, or a subset name as written in the file
            (:func:`~tasks.data.annotations.resolve_subset`).
        ann_format: ``'auto'``, ``'actionformer'`` or ``'opentad'``.
        class_map: class names in id order or a ``category_idx.txt`` (default: the file next to the json, if any);
            needed for an ActionFormer file that does not use every class.
        test_mode: no cropping (whole videos).
        max_seq_len: training window (2304 rows for THUMOS14).
        trunc_thresh: see :func:`truncate`.
        crop_ratio: see :func:`truncate`.
        fps_rtol: allowed relative difference between the annotation's and the store's frame rate.
        online: extract videos missing from the store with these settings (:func:`online_extract_config`) and add
            them to it; None: a missing video is an error.
        seed: base seed of the crops.
    """

    def __init__(self, ann_file: str, feature_store: str, subset: str = 'train', *, ann_format: AnnFormat = 'auto',
                 class_map: str | Sequence[str] | None = None, test_mode: bool = False, max_seq_len: int = 2304,
                 trunc_thresh: float = 0.5, crop_ratio: Sequence[float] | None = (0.9, 1.0),
                 fps_rtol: float = 1e-3, online: Mapping[str, Any] | None = None, seed: int = 0):
        self.ann_file, self.store_path = str(ann_file), str(feature_store)
        fmt = detect_format(ann_file, ann_format)
        ann = read_annotations(ann_file, fmt, class_map)
        self.subset_names = resolve_subset(ann, subset, fmt, ann_file)
        self.videos = ann.subset(*self.subset_names)
        self.classes = class_names(ann, class_map, ann_file)
        self.test_mode, self.max_seq_len, self.trunc_thresh = test_mode, max_seq_len, trunc_thresh
        self.crop_ratio = tuple(crop_ratio) if crop_ratio is not None else None
        self.seed = seed
        ids = [v.video_id for v in self.videos]
        self._ensure_features(ids, online)
        with FeatureStore.open(self.store_path) as store:
            self.metas: dict[str, VideoFeatureMeta] = {vid: store.meta(vid) for vid in ids}
        self._check_fps(fps_rtol)
        self.features = FeatureDataset(self.store_path, ids)  # lazy, fork-safe HDF5 reads
        self.metainfo = dict(classes=tuple(self.classes), ann_file=self.ann_file, ann_format=fmt,
                             class_map=class_map if class_map is None or isinstance(class_map, str)
                             else list(class_map), subset=list(self.subset_names), feature_store=self.store_path,
                             durations={v.video_id: v.duration for v in self.videos})

    # -----------------------------------------------------------------------------------------------------------------
    def _ensure_features(self, ids: list[str], online: Mapping[str, Any] | None) -> None:
        path = Path(self.store_path)
        present: set[str] = set()
        if path.exists():
            with FeatureStore.open(path) as store:
                present = {vid for vid in ids if vid in store}
        missing = [vid for vid in ids if vid not in present]
        if not missing:
            return
        if online is None:
            where = f'feature store {path}' if path.exists() else f'feature store {path} (no such file)'
            raise FileNotFoundError(
                f'{len(missing)} of {len(ids)} videos of subset {self.subset_names} in {self.ann_file} are not in '
                f'{where}: {missing[:5]}{" ..." if len(missing) > 5 else ""}; extract them with '
                'tools/extract_features.py, or set the dataset\'s online=dict(video_dir=..., arch=..., ...) to '
                'extract and cache them on the fly')
        from feature_store.extract import extract_to_store

        if 'video_dir' not in online:
            raise ValueError('online extraction needs online["video_dir"], the folder of the videos')
        folder, ext = Path(online['video_dir']), online.get('video_ext', '.mp4')
        sources = [(vid, folder / f'{vid}{ext}') for vid in missing]
        absent = [str(p) for _, p in sources if not p.is_file()]
        if absent:
            raise FileNotFoundError(f'on-line extraction: {len(absent)} videos not found: {absent[:5]}')
        cfg = online_extract_config(online)
        print_log(f'extracting features of {len(missing)} videos missing from {path} ({cfg.arch}, clips of '
                  f'{cfg.clip_len} every {cfg.stride} frames) and caching them there', logger='current')
        result = extract_to_store(sources, path, cfg, progress=False)
        if result.failed:
            raise RuntimeError(f'on-line extraction failed for {len(result.failed)} videos: ' +
                               '; '.join(f'{f["video_id"]}: {f["reason"]}' for f in result.failed[:3]))

    def _check_fps(self, rtol: float) -> None:
        for video in self.videos:
            meta = self.metas[video.video_id]
            if video.fps is not None:
                ann_fps, source = video.fps, f'"fps" {video.fps:g}'
            elif video.num_frames is not None:
                ann_fps = video.num_frames / video.duration
                source = f'"frame" / "duration" = {video.num_frames} / {video.duration:g} = {ann_fps:.4f}'
            else:
                continue
            if abs(ann_fps - meta.fps) > rtol * meta.fps:
                raise ValueError(
                    f'{video.video_id}: frame rate in {self.ann_file} (line {video.line}: {source}) differs from the '
                    f'feature store {self.store_path} ({meta.fps:.4f} fps, {meta.num_frames} frames decoded); the '
                    'features come from another encoding of the video, or the annotations belong to another '
                    'release, and every instance would land on the wrong feature rows')
            if video.duration > meta.duration * 1.05 + 1.0:
                print_log(f'{video.video_id}: annotated duration {video.duration:.2f} s is longer than the '
                          f'{meta.duration:.2f} s the store decoded', logger='current', level=logging.WARNING)

    # -----------------------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        video = self.videos[int(index)]
        meta = self.metas[video.video_id]
        feats, _ = self.features[int(index)]                                                   # (T, C)
        segments = np.array([(s.start, s.end) for s in video.segments], dtype=np.float64).reshape(-1, 2)
        labels = np.array([s.label_id for s in video.segments], dtype=np.int64)
        rows = meta.seconds_to_row(segments).reshape(-1, 2) if len(segments) else segments
        start, length = 0, len(feats)
        if not self.test_mode:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(epoch), int(index)]))
            start, length, kept = truncate(len(feats), rows, rng, self.max_seq_len, self.trunc_thresh,
                                           self.crop_ratio)
            rows = np.clip(rows[kept], start, start + length) - start
            labels = labels[kept]
            feats = feats[start:start + length]
        # feature_store: named by the model's error for features of another width than its in_dim
        sample = dict(video_id=video.video_id, segments=torch.as_tensor(rows, dtype=torch.float32).reshape(-1, 2),
                      labels=torch.as_tensor(labels, dtype=torch.int64), meta=meta, row_offset=start,
                      duration=float(video.duration), num_rows=meta.num_rows, feature_store=self.store_path)
        return {'inputs': feats.T.contiguous(), 'data_samples': sample}

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.ann_file!r} subset {self.subset_names}, {len(self)} videos, '
                f'{len(self.classes)} classes, store {self.store_path!r}, test_mode={self.test_mode})')


@FUNCTIONS.register_module()
def tad_collate(batch: Sequence[dict[str, Any]]) -> dict[str, list]:
    """Lists of the items' ``inputs`` (C, T_i) and ``data_samples``; :class:`~tasks.localization.model.
    TADDataPreprocessor` pads them."""
    if not batch:
        raise ValueError('tad_collate got an empty batch')
    return {'inputs': [b['inputs'] for b in batch], 'data_samples': [b['data_samples'] for b in batch]}
