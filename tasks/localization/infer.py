"""Localize actions in one's own untrimmed videos with an ActionFormer config and checkpoint (``tools/infer.py``;
docs/inference.md).

Each video's clip features are extracted on the fly with the feature store's own extraction functions
(:func:`feature_store.extract.sample_windows`, :func:`~feature_store.extract.iter_clip_batches`,
:func:`~feature_store.extract.forward_clips`, :func:`~feature_store.extract.windows_meta`), with the settings the
detector was trained on. Those come from a feature store's provenance (``--features STORE.h5``, or the config's
``feature_store`` when it exists): a store records the backbone, its checkpoint's SHA-256, the windows and the
preprocessing, and the settings rebuilt here must pass the store's own rule (:meth:`feature_store.StoreInfo.
differences`), the backbone file included. Without a store they come from the test dataset's ``online`` settings
or ``--extract KEY=VALUE`` options (the keys of :func:`tasks.localization.dataset.online_extract_config`).

The detector then runs its test step as ``tools/test.py`` does: ActionFormer's decoding, Soft-NMS, and rows ->
seconds with the video's :class:`feature_store.VideoFeatureMeta` (the clip centres from the container's
timestamps, docs/thumos14.md#time-and-feature-rows).
"""
from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backbone.compile import compile_backbone
from backbone.timing import ForwardTimer
from tasks.data.files import write_json_atomic, write_text_atomic
from tasks.data.progress import progress_bar
from tasks.data.video import VideoDecodeError, VideoReader
from tasks.data.video.ids import video_id_of

from .dataset import online_extract_config

__all__ = ['LOCALIZER_TYPES', 'LocalizeError', 'Segment', 'VideoSegments', 'Localizer', 'is_localization_config',
           'extraction_from_store', 'load_localizer', 'resolve_class_names', 'localize_videos', 'format_segments',
           'write_segments']

LOCALIZER_TYPES = ('ActionFormerTAD',)
# Settings that change only the features' last digits (device, TF32): the on-the-fly features need not match them to
# give the detector its inputs (the storage dtype is matched: the features are rounded as the store rounds them).
_IGNORED = ('config.device_type', 'config.tf32_matmul', 'config.tf32_conv')


class LocalizeError(ValueError):
    """A problem with the inputs of localization: a missing video, settings that cannot be derived or do not fit."""


@dataclass(frozen=True)
class Segment:
    """A detected action: seconds, class and score."""

    start: float
    end: float
    label: int
    name: str
    score: float


@dataclass
class VideoSegments:
    """The detections of one video, best first.

    Attributes:
        video: the path as given.
        video_id: its id.
        duration: seconds (from the container).
        num_rows: feature rows (windows) the detector saw.
        centre_times: (num_rows,) seconds of every row's clip centre.
        segments: every detection after Soft-NMS, by descending score.
        timeline: the picture of the best segments, if drawn.
    """

    video: str
    video_id: str
    duration: float
    num_rows: int
    centre_times: np.ndarray
    segments: list[Segment]
    timeline: Path | None = None


@dataclass
class Localizer:
    """An ActionFormer config's model (checkpoint loaded strictly) and the backbone that makes its features.

    ``compiled_blocks``: the backbone's transformer blocks compiled (``--compile``); ``timer``: the seconds of the
    backbone's forward batches, the warm-up apart (:class:`backbone.timing.ForwardTimer`).
    """

    config: str
    cfg: Any  # mmengine Config
    model: torch.nn.Module
    backbone: torch.nn.Module
    extract: Any  # feature_store.extract.ExtractConfig
    device: torch.device
    num_classes: int
    settings_from: str = ''
    compiled_blocks: int = 0
    timer: ForwardTimer = field(default_factory=ForwardTimer)


def _type_name(value: Any) -> str:
    return getattr(value, '__name__', str(value)).rsplit('.', 1)[-1]


def is_localization_config(cfg: Mapping[str, Any]) -> bool:
    """Whether ``cfg.model.type`` is a detector :func:`load_localizer` takes."""
    return _type_name((cfg.get('model') or {}).get('type', '')) in LOCALIZER_TYPES


# ---------------------------------------------------------------------------------------------------------------------
# extraction settings
# ---------------------------------------------------------------------------------------------------------------------
def _resolved(checkpoint: str | os.PathLike | None) -> str | None:
    """A released backbone name as its file in the Hugging Face cache (docs/checkpoints.md#released-weights-by-name);
    any other missing path unchanged (the callers name what is missing)."""
    from backbone import CheckpointError, is_released_name, resolve_checkpoint

    if checkpoint is None:
        return None
    try:
        return str(resolve_checkpoint(checkpoint))
    except CheckpointError as err:
        if is_released_name(str(checkpoint)):  # the hub's own message says what to do (log in, download, a path)
            raise LocalizeError(str(err)) from None
        return str(checkpoint)


def extraction_from_store(info: Any, where: str, backbone_checkpoint: str | os.PathLike | None = None):
    """:class:`feature_store.extract.ExtractConfig` that makes the features a store's provenance describes.

    The backbone file is ``backbone_checkpoint`` or the path the store recorded; its SHA-256 must equal the store's.

    Raises:
        LocalizeError: a store that does not record its extraction (e.g. imported npy features), a backbone file
            that is missing or is not the one the features were made with, or any other provenance difference.
    """
    from feature_store import checkpoint_id, describe_differences
    from feature_store.extract import ExtractConfig, Preprocess, make_store_info

    config, pre = info.config or {}, info.preprocessing or {}
    model, sampling = config.get('model'), config.get('sampling')
    if not isinstance(model, Mapping) or not isinstance(sampling, Mapping) or 'resize' not in pre:
        raise LocalizeError(f'{where} does not record how its features were extracted (model, sampling and '
                            'preprocessing in its provenance: a store imported from npy files?); give the '
                            'extraction settings with --extract arch=... checkpoint=... size=... instead')
    checkpoint = backbone_checkpoint if backbone_checkpoint is not None else model.get('checkpoint')
    checkpoint = _resolved(checkpoint)
    if checkpoint is not None and not Path(checkpoint).is_file():
        origin = '--backbone-checkpoint' if backbone_checkpoint is not None else f'the backbone recorded in {where}'
        raise LocalizeError(f'{origin}: {checkpoint}: no such file; pass --backbone-checkpoint with the file the '
                            f'features were made from (SHA-256 {info.checkpoint_sha256})')
    size = tuple(int(v) for v in pre['size'])
    preprocess = Preprocess(pre['resize'], size, pre.get('short_side'), normalize=pre.get('normalize') is not None)
    decoder = config.get('decoder') or {}
    extra = {'patch_size': int(model['patch_size'])} if model.get('patch_size') is not None else {}
    cfg = ExtractConfig(
        arch=model.get('arch', info.arch), checkpoint=str(checkpoint) if checkpoint is not None else None,
        seed=int(model.get('init_seed') or 0), img_size=tuple(int(v) for v in model['img_size']),
        frames=int(model['frames']), clip_len=int(sampling['clip_len']),
        frame_interval=int(sampling.get('frame_interval', 1)), stride=int(sampling['stride']),
        sample_fps=sampling.get('sample_fps'), preprocess=preprocess, dtype=config.get('compute_dtype', 'fp32'),
        batch_size=int(config.get('batch_size', 16)), backend=decoder.get('backend', 'auto'), store_dtype=info.dtype,
        fused_attn=bool(model.get('fused_attn', True)), **extra)
    sha = checkpoint_id(cfg.checkpoint, cfg.seed)
    differences = [d for d in info.differences(make_store_info(cfg, sha)) if d.field not in _IGNORED]
    if any(d.field == 'checkpoint_sha256' for d in differences):
        raise LocalizeError(f'the backbone {cfg.checkpoint or "(random init)"} is not the one the features of {where} '
                            f'were made with (SHA-256 {sha} vs {info.checkpoint_sha256}); pass '
                            '--backbone-checkpoint with that file')
    if differences:
        raise LocalizeError(f'cannot rebuild the extraction of {where}: '
                            f'{describe_differences(differences, "store", "rebuilt")}')
    return cfg


def _extraction(cfg: Any, config: str, features: str | os.PathLike | None, extract: Mapping[str, Any] | None,
                backbone_checkpoint: str | os.PathLike | None) -> tuple[Any, str]:
    """(ExtractConfig, where its settings came from): ``features``, else ``extract`` options, else the config's
    store if it exists, else its test dataset's ``online`` settings."""
    from feature_store import FeatureStore

    dataset = cfg.test_dataloader.get('dataset', {}) if cfg.get('test_dataloader') else {}
    if features is None and not extract:
        store = dataset.get('feature_store') or cfg.get('feature_store')
        if store and Path(store).is_file():
            features = store
    if features is not None:
        if not Path(features).is_file():
            raise LocalizeError(f'--features {features}: no such feature store')
        with FeatureStore.open(features) as store:
            info = store.info
        return extraction_from_store(info, f'feature store {features}', backbone_checkpoint), f'store {features}'
    online = dict(extract or dataset.get('online') or {})
    if backbone_checkpoint is not None:
        online['checkpoint'] = str(backbone_checkpoint)
    if 'arch' not in online:
        raise LocalizeError(
            f'{config}: cannot tell how to extract the features this detector was trained on: its feature store '
            f'{dataset.get("feature_store")!r} does not exist here and its test dataset has no online settings; give '
            '--features STORE.h5 (a store made with those settings) or --extract arch=... checkpoint=... size=HxW '
            '[clip_len=16 stride=4 normalize=False ...]')
    if online.get('checkpoint') is None and not online.get('random_init'):
        raise LocalizeError('--extract without checkpoint=... (or --backbone-checkpoint) would extract features of '
                            'a randomly initialised backbone; add random_init=True if that is what you mean')
    online['checkpoint'] = _resolved(online.get('checkpoint'))
    if online.get('checkpoint') is not None and not Path(online['checkpoint']).is_file():
        raise LocalizeError(f'backbone checkpoint {online["checkpoint"]}: no such file')
    size = online.get('size')
    if isinstance(size, str) and 'x' in size.lower():  # --extract size=96x128
        online['size'] = tuple(int(v) for v in size.lower().split('x'))
    try:
        return online_extract_config(online), '--extract options' if extract else 'the config\'s online settings'
    except (TypeError, ValueError) as e:
        raise LocalizeError(f'extraction settings {online}: {e}') from None


def load_localizer(config: str | os.PathLike, checkpoint: str | os.PathLike, *, features: str | os.PathLike | None
                   = None, extract: Mapping[str, Any] | None = None,
                   backbone_checkpoint: str | os.PathLike | None = None, device: str | torch.device | None = None,
                   cfg_options: Mapping[str, Any] | None = None, compile: bool = False) -> Localizer:
    """The detector (``checkpoint`` loaded strictly, :func:`tasks.engine.runner.load_for_test`) and its backbone.

    ``compile``: compile the backbone's transformer blocks on ``device`` (:func:`backbone.compile.compile_backbone`;
    the detector has none), as does the config's ``compile_backbone`` (:func:`tasks.engine.runner.compile_options`).
    Compiling changes no extraction setting: the features stay those of the store.

    Raises:
        LocalizeError: not an ActionFormer config; extraction settings that cannot be derived or do not fit; a
            backbone whose width is not the detector's ``in_dim``.
        backbone.CheckpointError: a checkpoint that does not fit the detector (names the keys).
    """
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    from backbone import resolve_checkpoint
    from tasks.engine.runner import apply_compile, apply_tf32, compile_options, load_for_test

    cfg = Config.fromfile(str(config))
    cfg.merge_from_dict(dict(cfg_options or {}))
    if not is_localization_config(cfg):
        raise LocalizeError(f'{config}: model.type {(cfg.get("model") or {}).get("type")!r} is not a detector '
                            f'({", ".join(LOCALIZER_TYPES)})')
    checkpoint = resolve_checkpoint(checkpoint)  # before extracting: a path, or a released name (docs/checkpoints.md)
    xcfg, source = _extraction(cfg, str(config), features, extract, backbone_checkpoint)
    dev = torch.device(device) if device is not None else torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    xcfg = replace(xcfg, device=str(dev))
    backbone = xcfg.build_model()
    in_dim = int(cfg.model['in_dim'])
    if backbone.embed_dim != in_dim:
        raise LocalizeError(f'{config}: the detector takes {in_dim}-d features (model.in_dim) but the backbone from '
                            f'{source} ({xcfg.arch}) gives {backbone.embed_dim}-d ones')
    apply_tf32(cfg)
    apply_compile(cfg, compile)
    options = compile_options(cfg)  # a wrong config value stops the run before the model is built
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    model = MODELS.build(cfg.model)
    load_for_test(model, checkpoint)
    backbone = backbone.to(dev)
    compiled = compile_backbone(backbone, **options) if options is not None else 0
    return Localizer(str(config), cfg, model.to(dev).eval(), backbone, xcfg, dev, int(cfg.model['num_classes']),
                     source, compiled)


def resolve_class_names(labels: str | os.PathLike | None, cfg: Any, num_classes: int) -> list[str]:
    """``--labels`` (a text file, one name a line, or a shipped label set's name), else the test dataset's
    ``class_map``, else the classes of its annotation file if it exists here, else ``class N``.

    Raises:
        LocalizeError: unreadable names, or another number of names than the detector's classes.
    """
    from tasks.data.annotations import AnnotationError, class_names, read_annotations, read_class_names

    dataset = cfg.test_dataloader.get('dataset', {}) if cfg.get('test_dataloader') else {}
    names: list[str] | None = None
    where = '--labels'
    try:
        if labels is not None:
            try:
                from tasks.data.labels import class_names as shipped
            except ImportError:
                shipped = None
            if shipped is not None:
                names = list(shipped(str(labels)))
            elif not Path(labels).is_file():
                raise LocalizeError(f'--labels {labels}: no such file (a text file with one class name a line)')
            else:
                names = read_class_names(labels)
        elif dataset.get('class_map') is not None:
            where, class_map = 'the config\'s class_map', dataset['class_map']
            names = read_class_names(class_map) if isinstance(class_map, (str, os.PathLike)) else list(class_map)
        elif dataset.get('ann_file') and Path(dataset['ann_file']).is_file():
            where = dataset['ann_file']
            names = class_names(read_annotations(dataset['ann_file']), None, dataset['ann_file'])
    except (AnnotationError, KeyError, ValueError, OSError) as e:
        raise LocalizeError(f'{where}: {e}') from None
    if names is None:
        return [f'class {i}' for i in range(num_classes)]
    if len(names) != num_classes:
        raise LocalizeError(f'{where}: {len(names)} class names for a detector of {num_classes} classes')
    return names


# ---------------------------------------------------------------------------------------------------------------------
# localization
# ---------------------------------------------------------------------------------------------------------------------
def _features(loc: Localizer, video: str, label: str, progress: bool) -> tuple[torch.Tensor, Any]:
    """(rows (T, C) on the device, VideoFeatureMeta) of one video, as ``tools/extract_features.py`` stores them."""
    from feature_store.extract import default_batch_size, forward_clips, iter_clip_batches, sample_windows, windows_meta

    x = loc.extract
    batch_size = x.batch_size or default_batch_size(torch.device(loc.device))
    with VideoReader(video, x.backend) as reader:
        sample = sample_windows(reader, x.clip_len, x.frame_interval, x.stride, fps=x.sample_fps)
        meta = windows_meta(video_id_of(video), reader, sample, x.stride, fps=x.sample_fps)
        rows = []
        with progress_bar(sample.num_clips, 'window', label, progress) as bar:
            for _, clips in iter_clip_batches(reader, sample, x.preprocess, batch_size, chunk_size=x.chunk_size):
                with loc.timer.batch(loc.device, shape=len(clips)):
                    rows.append(forward_clips(loc.backbone, clips, x.dtype))
                bar.update(len(clips))
    rows = torch.cat(rows)
    # rounded as the store rounds its rows, so that the detector sees what it would read from a float16 store
    return (rows.half().float() if x.store_dtype == 'float16' else rows), meta


def localize_videos(videos: Sequence[str | os.PathLike], loc: Localizer, names: Sequence[str], *,
                    plot_dir: str | os.PathLike | None = None, plot_segments: int = 10,
                    progress: bool = True) -> list[VideoSegments]:
    """Detect actions in every video (features extracted on the fly, then the detector's test step).

    Args:
        plot_dir: folder of the ``<video_id>.segments.png`` pictures of the ``plot_segments`` best segments; None
            draws none.

    Raises:
        LocalizeError: a missing video (before anything runs) or one that cannot be decoded.
    """
    if not videos:
        raise LocalizeError('no videos given')
    missing = [str(v) for v in videos if not Path(v).is_file()]
    if missing:
        raise LocalizeError(f'{len(missing)} of {len(videos)} videos do not exist: {", ".join(missing[:5])}')
    results = []
    for n, video in enumerate(map(str, videos)):
        try:
            feats, meta = _features(loc, video, f'video {n + 1}/{len(videos)}', progress)
        except VideoDecodeError as e:
            raise LocalizeError(f'{video}: cannot be decoded ({e.reason})') from None
        sample = dict(video_id=meta.video_id, meta=meta, row_offset=0, duration=float(meta.duration))
        with torch.no_grad():
            pred = loc.model.test_step(dict(inputs=[feats.T.contiguous()], data_samples=[sample]))[0]
        order = np.argsort(-np.asarray(pred['scores']), kind='stable')
        segments = [Segment(float(pred['segments'][i, 0]), float(pred['segments'][i, 1]), int(pred['labels'][i]),
                            names[int(pred['labels'][i])], float(pred['scores'][i])) for i in order]
        result = VideoSegments(video, meta.video_id, float(meta.duration), meta.num_rows,
                               np.asarray(meta.centre_seconds, dtype=np.float64), segments)
        if plot_dir is not None:
            from tasks.engine.plotting import segment_timeline

            best = segments[:plot_segments]
            result.timeline = segment_timeline(
                Path(plot_dir) / f'{result.video_id}.segments.png', [(s.start, s.end, s.name, s.score) for s in best],
                duration=result.duration, title=f'{Path(video).name}: the {len(best)} best segments')
        results.append(result)
    return results


# ---------------------------------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------------------------------
def format_segments(results: Sequence[VideoSegments], top: int = 5) -> str:
    """The printed report: per video its ``top`` best segments."""
    blocks = []
    for r in results:
        lines = [f'{r.video}: {len(r.segments)} segments over {r.duration:.2f} s ({r.num_rows} feature rows)'
                 + (f', timeline {r.timeline}' if r.timeline else '')]
        lines += [f'  {s.start:8.2f} - {s.end:8.2f} s  {s.score:.4f}  {s.name} ({s.label})' for s in r.segments[:top]]
        blocks.append('\n'.join(lines))
    return '\n'.join(blocks)


def write_segments(path: str | os.PathLike, results: Sequence[VideoSegments],
                   header: Mapping[str, Any] | None = None) -> Path:
    """Every segment of every video, atomically, as JSON (``header`` + ``videos``) or CSV (one row per segment).

    Raises:
        LocalizeError: a suffix other than ``.json`` or ``.csv``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == '.json':
        write_json_atomic(path, dict(header or {}, videos=[
            dict(video=r.video, video_id=r.video_id, duration=r.duration, num_rows=r.num_rows,
                 timeline=str(r.timeline) if r.timeline else None,
                 segments=[dict(start=s.start, end=s.end, label=s.label, name=s.name, score=s.score)
                           for s in r.segments]) for r in results]))
        return path
    if suffix != '.csv':
        raise LocalizeError(f'--out {path}: write .json or .csv')
    text = io.StringIO()
    writer = csv.writer(text, lineterminator='\n')
    writer.writerow(['video', 'start', 'end', 'label', 'name', 'score'])
    writer.writerows([r.video, repr(s.start), repr(s.end), s.label, s.name, repr(s.score)]
                     for r in results for s in r.segments)
    write_text_atomic(path, text.getvalue())
    return path
