"""Classify one's own videos with a classification config and checkpoint (``tools/infer.py``; docs/inference.md).

* :func:`classify_videos`: each video with the config's **test protocol**. The config's own test dataset is built on
  a generated list of the videos (same sampling, clips x crops, resize), run through the model's ``test_step`` as
  the test loop runs it, so the scores are exactly those ``tools/test.py`` writes to ``cls_scores.npz`` (softmax per
  view, then the mean over the views; docs/classification.md#test-protocols-and-metrics).
* :func:`classify_long`: an untrimmed video in sliding windows of the test clip (the config's ``clip_len`` frames
  every ``frame_interval``), a window every ``stride`` frames (default half a window), each window with the config's
  crops, merged as above; a window's times come from the container's timestamps.

Both load the checkpoint strictly (:func:`tasks.engine.runner.load_for_test`): a file that does not fit the config's
model stops the run naming the keys, instead of classifying with random weights.
"""
from __future__ import annotations

import copy
import csv
import io
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backbone.compile import compile_backbone
from backbone.timing import ForwardTimer
from tasks.data.files import write_json_atomic, write_text_atomic
from tasks.data.video import VideoDecodeError, VideoReader
from tasks.data.video.ids import video_id_of

from .dataset import class_name_list
from .transforms import multi_view_test

__all__ = ['CLASSIFIER_TYPES', 'InferError', 'ClassScore', 'VideoPrediction', 'WindowPrediction', 'LongPrediction',
           'Classifier', 'is_classification_config', 'load_classifier', 'configured_class_names', 'resolve_class_names',
           'classify_videos',
           'sliding_windows', 'classify_long', 'format_predictions', 'write_predictions']

#: model types of classification configs: ours, and stock mmaction2 recognizers around our backbone
CLASSIFIER_TYPES = ('VideoMAEv2Classifier', 'Recognizer3D')
# test dataset types whose list file can be swapped for the user's videos
_OUR_DATASET, _MMACTION_DATASET = 'VideoMAEv2ClsDataset', 'VideoDataset'


class InferError(ValueError):
    """A problem with the inputs of inference (a missing video, a config of another task, unknown label names)."""


@dataclass(frozen=True)
class ClassScore:
    """One of the top-k classes: index, name and merged score (probability)."""

    label: int
    name: str
    score: float


@dataclass
class VideoPrediction:
    """The test-protocol prediction of one video.

    Attributes:
        video: the path as given.
        video_id: its id (:func:`tasks.data.video.ids.video_id_of`).
        scores: (K,) float32 merged scores (mean over the views of the per-view softmax); None if it failed.
        topk: the best classes, best first.
        failure: why the video could not be decoded, or None.
    """

    video: str
    video_id: str
    scores: np.ndarray | None
    topk: list[ClassScore] = field(default_factory=list)
    failure: str | None = None


@dataclass
class WindowPrediction:
    """One sliding window of an untrimmed video.

    Attributes:
        index: window number.
        frames: (clip_len,) frame indices of the clip.
        start, end: seconds, from the first frame's timestamp to the end of the last frame.
        centre: seconds of the clip's centre frame (where the timeline draws the scores).
        scores: (K,) merged scores of the window's crops.
        topk: the best classes.
    """

    index: int
    frames: np.ndarray
    start: float
    end: float
    centre: float
    scores: np.ndarray
    topk: list[ClassScore]


@dataclass
class LongPrediction:
    """Per-window predictions of one untrimmed video, and its timeline picture."""

    video: str
    video_id: str
    duration: float
    num_frames: int
    windows: list[WindowPrediction]
    timeline: Path | None = None


# ---------------------------------------------------------------------------------------------------------------------
# model and class names
# ---------------------------------------------------------------------------------------------------------------------
def _type_name(value: Any) -> str:
    name = getattr(value, '__name__', str(value))
    return name.rsplit('.', 1)[-1]  # 'mmaction.Recognizer3D' -> 'Recognizer3D'


def is_classification_config(cfg: Mapping[str, Any]) -> bool:
    """Whether ``cfg.model.type`` is a classifier :func:`load_classifier` takes."""
    return _type_name((cfg.get('model') or {}).get('type', '')) in CLASSIFIER_TYPES


@dataclass
class Classifier:
    """A classification config's model with its checkpoint loaded strictly, on ``device``, in eval mode.

    ``compiled_blocks``: its transformer blocks compiled (``--compile``, :func:`backbone.compile.compile_backbone`);
    ``timer``: the seconds of its forward batches, the warm-up apart (:class:`backbone.timing.ForwardTimer`).
    """

    config: str
    cfg: Any  # mmengine Config
    model: torch.nn.Module
    device: torch.device
    num_classes: int
    compiled_blocks: int = 0
    timer: ForwardTimer = field(default_factory=ForwardTimer)


def _num_classes(cfg: Mapping[str, Any]) -> int:
    model = cfg['model']
    if _type_name(model['type']) == 'VideoMAEv2Classifier':
        return int(model['backbone']['num_classes'])
    return int(model['cls_head']['num_classes'])


def load_classifier(config: str | os.PathLike, checkpoint: str | os.PathLike, *, device: str | torch.device | None
                    = None, cfg_options: Mapping[str, Any] | None = None, compile: bool = False) -> Classifier:
    """Build the config's model and load ``checkpoint`` strictly (:func:`tasks.engine.runner.load_for_test`).

    ``compile``: compile its transformer blocks on ``device`` (:func:`backbone.compile.compile_backbone`; lazy, the
    first batch pays it; where compilation is unavailable a one-line warning and eager), as does the config's
    ``compile_backbone`` (:func:`tasks.engine.runner.compile_options`).

    Raises:
        InferError: the config is not a classification config.
        backbone.CheckpointError: the checkpoint does not fit the model (names the keys).
    """
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    from backbone import resolve_checkpoint
    from tasks.engine.runner import apply_compile, apply_tf32, compile_options, load_for_test

    cfg = Config.fromfile(str(config))
    cfg.merge_from_dict(dict(cfg_options or {}))
    if not is_classification_config(cfg):
        raise InferError(f'{config}: model.type {(cfg.get("model") or {}).get("type")!r} is not a classifier '
                         f'({", ".join(CLASSIFIER_TYPES)})')
    checkpoint = resolve_checkpoint(checkpoint)  # a path, or a released name (docs/checkpoints.md)
    apply_tf32(cfg)
    apply_compile(cfg, compile)
    options = compile_options(cfg)  # a wrong config value stops the run before the model is built
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    model = MODELS.build(cfg.model)
    load_for_test(model, checkpoint)
    dev = torch.device(device) if device is not None else torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    model = model.to(dev).eval()
    # on its device: the probe and the kernels are the device's
    compiled = compile_backbone(model, **options) if options is not None else 0
    return Classifier(str(config), cfg, model, dev, _num_classes(cfg), compiled)


def configured_class_names(cfg: Any) -> Any:
    """The class names a config gives: its test dataset's ``class_names``, else its test metric's (a label-set name,
    a file or a list; None when neither names them)."""
    names = cfg.test_dataloader.dataset.get('class_names')
    evaluator = cfg.get('test_evaluator')
    if names is None and isinstance(evaluator, dict):
        names = evaluator.get('class_names')
    return names


def resolve_class_names(labels: str | os.PathLike | Sequence[str] | None, configured: Any,
                        num_classes: int) -> list[str]:
    """Names of the ``num_classes`` classes.

    ``labels`` (``--labels``: a shipped label set's name such as ``'kinetics400'``, or a text file with one name a
    line) wins, then the config's ``class_names`` (a list, a file or a label-set name); without either the classes
    are called ``class N``. Label-set names are resolved by ``tasks.data.labels.class_names`` where it exists.

    Raises:
        InferError: an unknown name or missing file, or a list with another number of names than the head's classes.
    """
    source = labels if labels is not None else configured
    if source is None:
        return [f'class {i}' for i in range(num_classes)]
    where = '--labels' if labels is not None else 'the config\'s class_names'
    if isinstance(source, (str, os.PathLike)):
        names = _names_from(source, where)
    else:
        names = class_name_list(list(source))
    if len(names) != num_classes:
        what = f'{where} {source}' if isinstance(source, (str, os.PathLike)) else where
        raise InferError(f'{what}: {len(names)} names for a head of {num_classes} classes')
    return names


def _names_from(source: str | os.PathLike, where: str) -> list[str]:
    try:  # the shipped label maps, where that module exists (names or files)
        from tasks.data.labels import class_names
    except ImportError:
        class_names = None
    if class_names is not None:
        try:
            return list(class_names(str(source)))
        except (KeyError, ValueError, FileNotFoundError, OSError) as e:
            raise InferError(f'{where} {source}: {e}') from None
    if not Path(source).is_file():
        raise InferError(f'{where} {source}: no such file (a text file with one class name a line)')
    return class_name_list(source)


def _topk(scores: np.ndarray, names: Sequence[str], k: int) -> list[ClassScore]:
    order = np.argsort(-scores, kind='stable')[:k]  # ties: lower index first
    return [ClassScore(int(i), names[int(i)], float(scores[i])) for i in order]


def _check_videos(videos: Sequence[str | os.PathLike]) -> None:
    if not videos:
        raise InferError('no videos given')
    missing = [str(v) for v in videos if not Path(v).is_file()]
    if missing:
        raise InferError(f'{len(missing)} of {len(videos)} videos do not exist: {", ".join(missing[:5])}')


def _progress(total: int, unit: str, enabled: bool, desc: str):
    from tasks.data.progress import progress_bar

    return progress_bar(total, unit, desc, enabled)


# ---------------------------------------------------------------------------------------------------------------------
# the test protocol
# ---------------------------------------------------------------------------------------------------------------------
def _dataset_cfg(clf: Classifier, list_file: Path) -> dict:
    """The config's test dataset, reading ``list_file`` (``path 0`` lines, absolute paths) instead of its list."""
    ds = copy.deepcopy(clf.cfg.test_dataloader.dataset)
    kind = _type_name(ds.get('type'))
    if kind == _OUR_DATASET:
        ds.update(ann_file=str(list_file), data_prefix=None, ann_format='video', label_file=None)
    elif kind == _MMACTION_DATASET:
        ds.update(ann_file=str(list_file), data_prefix=dict(video=''))
    else:
        raise InferError(f'{clf.config}: test_dataloader.dataset.type {ds.get("type")!r} is not one whose video list '
                         f'infer can replace ({_OUR_DATASET}, {_MMACTION_DATASET})')
    return ds


def _pred_score(sample: Any) -> tuple[torch.Tensor | None, int | None, Any]:
    """(scores, dataset index, failure) of one ``test_step`` output: our dict or an mmaction2 ``ActionDataSample``."""
    if isinstance(sample, Mapping):
        return sample.get('pred_score'), sample.get('index'), sample.get('failure')
    return sample.pred_scores.item, None, None  # mmaction2 1.x keeps the scores in a LabelData


def classify_videos(videos: Sequence[str | os.PathLike], clf: Classifier, names: Sequence[str], *, topk: int = 5,
                    progress: bool = True) -> list[VideoPrediction]:
    """Classify every video with the config's test protocol, in the order given.

    A video that cannot be decoded gets ``failure`` (the dataset's reason) and no scores; the others are classified.

    Raises:
        InferError: a video that does not exist (before anything runs), or a config whose test dataset type infer
            cannot point at the videos.
    """
    from mmengine.runner import Runner

    _check_videos(videos)
    videos = [str(v) for v in videos]
    scores: dict[int, np.ndarray] = {}
    failures: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix='infer-') as tmp:
        # mmaction2 lists split on whitespace, so every video is listed through a link without spaces; its number
        # gives the video back
        lines = []
        for i, video in enumerate(videos):
            link = Path(tmp) / f'{i}{Path(video).suffix}'
            link.symlink_to(Path(video).resolve())
            lines.append(f'{link} 0\n')
        (Path(tmp) / 'list.txt').write_text(''.join(lines))
        loader_cfg = copy.deepcopy(clf.cfg.test_dataloader)
        loader_cfg['dataset'] = _dataset_cfg(clf, Path(tmp) / 'list.txt')
        # a few videos: worker processes would cost more to start than they save
        workers = int(loader_cfg.get('num_workers', 0)) if len(videos) > int(loader_cfg.get('batch_size', 1)) else 0
        loader_cfg.update(num_workers=workers, persistent_workers=workers > 0)
        loader = Runner.build_dataloader(loader_cfg)
        position = 0
        bar = _progress(len(videos), 'video', progress, 'classify')
        try:
            for batch in loader:
                with torch.no_grad(), clf.timer.batch(clf.device, shape=len(batch['inputs'])):
                    outputs = clf.model.test_step(batch)
                for sample in outputs:
                    score, index, failure = _pred_score(sample)
                    index = position if index is None else int(index)
                    position += 1
                    if score is None:
                        failures[index] = failure[1] if failure else 'could not be decoded'
                    else:
                        scores[index] = score.detach().float().cpu().numpy()
                bar.update(len(outputs))
        finally:
            bar.close()
    out = []
    for i, video in enumerate(videos):
        s = scores.get(i)
        out.append(VideoPrediction(video, video_id_of(video), s, _topk(s, names, topk) if s is not None else [],
                                   failures.get(i) if s is None else None))
    return out


# ---------------------------------------------------------------------------------------------------------------------
# untrimmed videos
# ---------------------------------------------------------------------------------------------------------------------
def sliding_windows(num_frames: int, clip_len: int, frame_interval: int, stride: int) -> np.ndarray:
    """(W, clip_len) frame indices of windows that cover the whole video.

    Windows start every ``stride`` frames from frame 0 (the official TAD windows, :func:`tasks.data.video.
    sliding_window_sample`); where the last one ends before the last frame, one more window ending on it is added,
    so no frame is left out. A video shorter than a window gives one window repeating its last frame.
    """
    from tasks.data.video import sliding_window_sample

    sample = sliding_window_sample(num_frames, clip_len=clip_len, frame_interval=frame_interval, stride=stride)
    indices = np.clip(sample.indices, 0, num_frames - 1)
    span = (clip_len - 1) * frame_interval + 1
    if num_frames > span and indices[-1, -1] < num_frames - 1:
        indices = np.concatenate([indices, (num_frames - span + np.arange(clip_len) * frame_interval)[None]])
    return indices


def _long_protocol(clf: Classifier, frame_interval: int | None) -> dict[str, Any]:
    ds = clf.cfg.test_dataloader.dataset
    if _type_name(ds.get('type')) != _OUR_DATASET:
        raise InferError(f'{clf.config}: --long needs a {_OUR_DATASET} test dataset (clip length, frame interval, '
                         f'resize and crops); this config has {ds.get("type")!r}')
    sampling = ds.get('sampling', 'dense')
    interval = frame_interval if frame_interval is not None else ds.get('frame_interval', 4)
    if sampling != 'dense' and frame_interval is None:
        raise InferError(f'{clf.config}: the test clips are {sampling!r}-sampled over the whole video (SSv2 '
                         'style), which has no window length; give --frame-interval to cut windows of clip_len '
                         'frames')
    return dict(clip_len=int(ds.get('clip_len', 16)), frame_interval=int(interval),
                short_side=int(ds.get('short_side', 224)), input_size=int(ds.get('input_size', 224)),
                num_crops=int(ds.get('num_crops', 3)), backend=ds.get('backend', 'auto'))


def _window_scores(clf: Classifier, views: list[torch.Tensor]) -> np.ndarray:
    """(B, K) merged scores of B windows' views (each uint8 (V, 3, T, S, S)), through the model's ``test_step``."""
    inputs = torch.stack(views)
    batch = dict(inputs=inputs, data_samples=dict(label=torch.zeros(len(views), dtype=torch.int64)))
    with torch.no_grad(), clf.timer.batch(clf.device, shape=len(views)):
        outputs = clf.model.test_step(batch)
    return np.stack([_pred_score(o)[0].detach().float().cpu().numpy() for o in outputs])


def classify_long(videos: Sequence[str | os.PathLike], clf: Classifier, names: Sequence[str], *, topk: int = 5,
                  stride: int | None = None, frame_interval: int | None = None, batch_size: int = 8,
                  plot_dir: str | os.PathLike | None = None, plot_classes: int = 5,
                  progress: bool = True) -> list[LongPrediction]:
    """Sliding-window classification of untrimmed videos, with a timeline PNG per video.

    Args:
        stride: frames between window starts (default: half a window, ``clip_len * frame_interval // 2``).
        frame_interval: step between a window's frames (default: the config's test ``frame_interval``).
        batch_size: windows per forward.
        plot_dir: folder of the ``<video_id>.timeline.png`` pictures (the ``plot_classes`` classes with the highest
            window score); None draws none.

    Raises:
        InferError: a missing video, a config without a dense-sampled test dataset, a video that cannot be decoded.
    """
    _check_videos(videos)
    proto = _long_protocol(clf, frame_interval)
    clip_len, interval = proto['clip_len'], proto['frame_interval']
    stride = stride if stride is not None else max(clip_len * interval // 2, 1)
    if stride < 1 or batch_size < 1:
        raise InferError(f'stride and batch size must be >= 1, got {stride} and {batch_size}')
    results = []
    for n, video in enumerate(videos):
        try:
            with VideoReader(video, proto['backend']) as reader:
                windows = sliding_windows(reader.num_frames, clip_len, interval, stride)
                timestamps, duration = reader.timestamps, reader.duration
                label = f'video {n + 1}/{len(videos)}'
                bar = _progress(len(windows), 'window', progress, label)
                rows, pending = [], []
                try:
                    for window in reader.iter_windows(windows):
                        pending.append(multi_view_test(window.frames[None], proto['short_side'], proto['input_size'],
                                                       proto['num_crops']))
                        if len(pending) == batch_size or window.index == len(windows) - 1:
                            rows.append(_window_scores(clf, pending))
                            bar.update(len(pending))
                            pending = []
                finally:
                    bar.close()
                num_frames = reader.num_frames
        except VideoDecodeError as e:
            raise InferError(f'{video}: cannot be decoded ({e.reason})') from None
        scores = np.concatenate(rows)
        # a frame lasts until the next one's timestamp; the last one for the mean frame duration
        ends = np.append(timestamps[1:], duration)
        centre = np.clip(windows[:, 0] + (clip_len // 2) * interval, 0, num_frames - 1)
        items = [WindowPrediction(i, windows[i], float(timestamps[windows[i, 0]]), float(ends[windows[i, -1]]),
                                  float(timestamps[centre[i]]), scores[i], _topk(scores[i], names, topk))
                 for i in range(len(windows))]
        result = LongPrediction(str(video), video_id_of(video), float(duration), int(num_frames), items)
        if plot_dir is not None:
            result.timeline = _plot_long(result, names, Path(plot_dir), plot_classes)
        results.append(result)
    return results


def _plot_long(result: LongPrediction, names: Sequence[str], folder: Path, num: int) -> Path:
    from tasks.engine.plotting import score_timeline

    scores = np.stack([w.scores for w in result.windows])
    best = np.argsort(-scores.max(axis=0), kind='stable')[:num]
    return score_timeline(folder / f'{result.video_id}.timeline.png', [w.centre for w in result.windows],
                          scores[:, best], [names[i] for i in best], duration=result.duration,
                          spans=[(w.start, w.end) for w in result.windows],
                          title=f'{Path(result.video).name}: {len(result.windows)} windows, top {len(best)} classes')


# ---------------------------------------------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------------------------------------------
def _topk_text(topk: Sequence[ClassScore]) -> str:
    return '\n'.join(f'  {r + 1}. {c.score:.4f}  {c.name} ({c.label})' for r, c in enumerate(topk))


def format_predictions(results: Sequence[VideoPrediction | LongPrediction]) -> str:
    """The printed report: per video its top-k (or, for a long video, each window's top class)."""
    blocks = []
    for r in results:
        if isinstance(r, LongPrediction):
            lines = [f'{r.video}: {len(r.windows)} windows over {r.duration:.2f} s'
                     + (f', timeline {r.timeline}' if r.timeline else '')]
            for w in r.windows:
                best = w.topk[0]
                lines.append(f'  {w.start:8.2f} - {w.end:8.2f} s  {best.score:.4f}  {best.name} ({best.label})')
            blocks.append('\n'.join(lines))
        elif r.failure is not None:
            blocks.append(f'{r.video}: not classified, {r.failure}')
        else:
            blocks.append(f'{r.video}\n{_topk_text(r.topk)}')
    return '\n'.join(blocks)


def _topk_json(topk: Sequence[ClassScore]) -> list[dict[str, Any]]:
    return [dict(label=c.label, name=c.name, score=c.score) for c in topk]


def _as_json(r: VideoPrediction | LongPrediction) -> dict[str, Any]:
    if isinstance(r, LongPrediction):
        return dict(video=r.video, video_id=r.video_id, duration=r.duration, num_frames=r.num_frames,
                    timeline=str(r.timeline) if r.timeline else None,
                    windows=[dict(index=w.index, start=w.start, end=w.end, centre=w.centre,
                                  first_frame=int(w.frames[0]), last_frame=int(w.frames[-1]), topk=_topk_json(w.topk))
                             for w in r.windows])
    return dict(video=r.video, video_id=r.video_id, topk=_topk_json(r.topk), failure=r.failure)


def write_predictions(path: str | os.PathLike, results: Sequence[VideoPrediction | LongPrediction],
                      header: Mapping[str, Any] | None = None) -> Path:
    """Write ``results`` atomically as JSON (``header`` + ``videos``) or CSV (one row per video, window and rank),
    chosen by the suffix of ``path``.

    Raises:
        InferError: a suffix other than ``.json`` or ``.csv``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == '.json':
        write_json_atomic(path, dict(header or {}, videos=[_as_json(r) for r in results]))
        return path
    if suffix != '.csv':
        raise InferError(f'--out {path}: write .json or .csv')
    text = io.StringIO()
    writer = csv.writer(text, lineterminator='\n')
    rows: list[list[Any]] = []
    if any(isinstance(r, LongPrediction) for r in results):
        writer.writerow(['video', 'window', 'start', 'end', 'rank', 'label', 'name', 'score'])
        for r in results:
            for w in r.windows:
                rows += [[r.video, w.index, f'{w.start:.6f}', f'{w.end:.6f}', k + 1, c.label, c.name, repr(c.score)]
                         for k, c in enumerate(w.topk)]
    else:
        writer.writerow(['video', 'rank', 'label', 'name', 'score', 'failure'])
        for r in results:
            rows += [[r.video, k + 1, c.label, c.name, repr(c.score), ''] for k, c in enumerate(r.topk)]
            if r.failure is not None:
                rows.append([r.video, '', '', '', '', r.failure])
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())
    return path
