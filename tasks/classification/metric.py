"""``VideoClsMetric``: video-level top-k and mean class accuracy for the mmengine Runner, with per-video outputs.

Each data sample carries one ``(K,)`` score vector per video, its views already merged by the model
(docs/classification.md#test-protocols-and-metrics); the arithmetic is :mod:`tasks.classification.evaluation`.
Metric names follow mmaction2's ``AccMetric`` (``acc/top1``, ``acc/top5``, ``acc/mean1``), so a config can swap one
for the other without touching ``save_best``.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.registry import METRICS

from tasks.data.files import atomic_path, write_json_atomic, write_text_atomic
from tasks.data.labels import class_names as read_class_names
from tasks.data.video.ids import video_id_of

from .evaluation import confusion_matrix, mean_class_accuracy, topk_accuracy

__all__ = ['NoDecodedVideoError', 'VideoClsMetric', 'plot_confusion', 'per_class_accuracy']

ScoreFormat = Literal['npz', 'jsonl']


def _as_dict(sample: Any) -> Mapping[str, Any]:
    """A data sample as a mapping: mmengine's Evaluator passes ``to_dict()`` output, direct callers may not."""
    if isinstance(sample, Mapping):
        return sample
    if hasattr(sample, 'to_dict'):  # mmengine BaseDataElement (ActionDataSample)
        return sample.to_dict()
    raise TypeError(f'VideoClsMetric: a data sample must be a dict or an ActionDataSample, got {type(sample).__name__}')


def _field(sample: Mapping[str, Any], names: Sequence[str]) -> Any:
    """The first of ``names`` present in ``sample``; a ``LabelData`` dict (``{'item': x}``) is unwrapped."""
    for name in names:
        if name in sample and sample[name] is not None:
            value = sample[name]
            if isinstance(value, Mapping):
                if 'item' not in value:
                    raise ValueError(f'VideoClsMetric: {name} is a dict without an "item" entry: keys {list(value)}')
                value = value['item']
            elif hasattr(value, 'item') and not isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
                value = value.item  # LabelData passed as an object
            return value
    return None


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu().numpy() if value.is_floating_point() else value.detach().cpu().numpy()
    return np.asarray(value)


def per_class_accuracy(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(accuracy, count) per class: the recall hits / videos of that class, NaN for a class without videos."""
    matrix = confusion_matrix(preds, labels, num_classes)
    count = matrix.sum(axis=1)
    acc = np.full(num_classes, np.nan)
    np.divide(np.diag(matrix), count, out=acc, where=count > 0)
    return acc, count


class NoDecodedVideoError(ValueError):
    """No video of the evaluated set could be decoded: there is nothing to score."""


def _in_dataset_order(results: list[dict]) -> list[dict]:
    """Results sorted by dataset index, the first of each index kept, when every result has one; else as given."""
    if not results or any(r.get('index') is None for r in results):
        return results
    unique: dict[int, dict] = {}
    for r in results:
        unique.setdefault(r['index'], r)
    return [unique[i] for i in sorted(unique)]


def _name(result: Mapping[str, Any], position: int | None) -> str | None:
    """A video's id, else its dataset index, else its position among the results."""
    if result['video_id'] is not None:
        return result['video_id']
    if result.get('index') is not None:
        return str(result['index'])
    return None if position is None else str(position)


def _describe(failed: Sequence[Mapping[str, Any]], limit: int = 10) -> str:
    """``id (path: reason)`` of the first ``limit`` failed videos."""
    items = []
    for r in failed[:limit]:
        name = _name(r, None) or '?'
        items.append(f'{name} ({r["failure"][0]}: {r["failure"][1]})' if r.get('failure') else name)
    more = f' and {len(failed) - limit} more' if len(failed) > limit else ''
    return ', '.join(items) + more


@METRICS.register_module()
class VideoClsMetric(BaseMetric):
    """Top-k accuracy and mean class accuracy over videos, from per-video merged scores.

    Data samples may be plain dicts or mmaction2 ``ActionDataSample``s, in either mmaction2 spelling:

    ============  ========================================  ==============================================
    field         mmaction2 1.1.0 (``LabelData``)            mmaction2 1.2.0 / our classification model
    ============  ========================================  ==============================================
    scores        ``pred_scores['item']``: (K,)              ``pred_score``: (K,)
    label         ``gt_labels['item']``: (1,)                ``gt_label``: int, 0-d or (1,)
    video id      ``video_id`` or ``filename`` meta key      ``video_id``
    ============  ========================================  ==============================================

    A ``filename`` gives the id :func:`tasks.data.video.ids.video_id_of`; without either, a video is named by its
    ``index`` or else its position in the gathered results (mmengine gathers the ranks' results back into dataset
    order, so position ``i`` is line ``i`` of the annotation file).

    Videos that failed to decode come as samples with ``valid=False`` (and no scores; our classification model
    returns one sample per video so that mmengine's gathering stays in dataset order): they are left out of the
    metrics and counted as ``num_failed``. Samples with an ``index`` (dataset position) are put in index order and
    an index seen twice counts once, so results that reach the metric in another order, or twice, give the same
    numbers. A test set in which no video decoded is an error naming the failed videos.

    With ``out_dir``, rank 0 also writes (atomically) ``cls_scores.npz`` (``video_ids`` (N,) str, ``scores`` (N, K)
    float32, ``labels`` (N,), ``preds`` (N,), ``confusion`` (K, K) int64, row = ground truth) or ``cls_scores.jsonl``
    (one ``{"video_id", "label", "pred", "scores"}`` line per video), ``cls_results.json`` (metrics, counts,
    per-class accuracy, the failed videos with their reasons) and ``cls_confusion.png``; the scored videos only.

    Args:
        topk: the k of the reported ``top{k}`` accuracies (k larger than K gives 1.0, as "the label is among all
            classes").
        out_dir: folder for ``cls_scores.*``, ``cls_results.json`` and ``cls_confusion.png``; None writes nothing.
        score_format: ``'npz'`` (compact: Kinetics-400 val is 19,796 x 400 scores) or ``'jsonl'``.
        plot: write ``cls_confusion.png`` (needs matplotlib) when ``out_dir`` is set.
        class_names: names for ``cls_results.json`` and the chart: a label set (``'k400'``, ``'k710'``, ``'ssv2'``;
            :func:`tasks.data.labels.class_names`), a label file, or a list; None takes the dataset's
            ``metainfo['classes']`` if it has one. Names whose count differs from the scores' K are left out, with a
            warning.
        collect_device: ``'cpu'`` or ``'gpu'``, how results are gathered across ranks (mmengine).
        prefix: metric name prefix; default ``'acc'`` as mmaction2's ``AccMetric``.
    """

    default_prefix: str | None = 'acc'

    def __init__(self, topk: Sequence[int] = (1, 5), out_dir: str | os.PathLike | None = None,
                 score_format: ScoreFormat = 'npz', plot: bool = True,
                 class_names: str | os.PathLike | Sequence[str] | None = None, collect_device: str = 'cpu',
                 prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if isinstance(topk, int):
            topk = (topk,)
        topk = tuple(topk)
        if not topk or any(isinstance(k, bool) or int(k) != k or k < 1 for k in topk):
            raise ValueError(f'VideoClsMetric: topk must be positive integers, got {topk!r}')
        if score_format not in ('npz', 'jsonl'):
            raise ValueError(f"VideoClsMetric: score_format must be 'npz' or 'jsonl', got {score_format!r}")
        self.topk = tuple(int(k) for k in topk)
        self.out_dir = None if out_dir is None else str(out_dir)
        self.score_format = score_format
        self.plot = plot
        # Read now, so a wrong label-set name stops the run before testing rather than after it.
        self.class_names = (None if class_names is None else read_class_names(class_names)
                            if isinstance(class_names, (str, os.PathLike)) else [str(c) for c in class_names])

    # -----------------------------------------------------------------------------------------------------------------
    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Keep (video id, index, scores, label) of every video in the batch, or (video id, index, failure) of a
        video that failed to decode; runs on every rank."""
        for sample in data_samples:
            sample = _as_dict(sample)
            index = sample.get('index')
            index = None if index is None else int(index)
            video_id = sample.get('video_id')
            if video_id is None and sample.get('filename') is not None:
                video_id = video_id_of(sample['filename'])
            video_id = None if video_id is None else str(video_id)
            if not bool(sample.get('valid', True)):
                failure = sample.get('failure')
                self.results.append({'video_id': video_id, 'index': index, 'valid': False,
                                     'failure': None if failure is None else tuple(str(f) for f in failure)})
                continue
            scores = _field(sample, ('pred_score', 'pred_scores'))
            label = _field(sample, ('gt_label', 'gt_labels'))
            if scores is None or label is None:
                raise KeyError(f'VideoClsMetric: a data sample needs pred_score (or pred_scores) and gt_label (or '
                               f'gt_labels); got keys {sorted(sample)}')
            scores = _to_numpy(scores).astype(np.float64)
            label = _to_numpy(label)
            where = f'video {video_id!r}' if video_id is not None else 'a video'
            if scores.ndim != 1:
                raise ValueError(f'VideoClsMetric: {where} has pred_score of shape {scores.shape}; expected (K,) '
                                 'scores already merged over views (average_clips in the head)')
            if label.size != 1:
                raise ValueError(f'VideoClsMetric: {where} has {label.size} labels; this metric is single-label')
            if not np.all(np.isfinite(scores)):
                raise ValueError(f'VideoClsMetric: {where} has non-finite scores')
            self.results.append({'video_id': video_id, 'index': index, 'valid': True,
                                 'scores': scores.astype(np.float32), 'label': int(label.reshape(-1)[0])})

    def compute_metrics(self, results: list[dict]) -> dict[str, Any]:
        """Metrics over the videos that decoded, and their count of failed ones (rank 0, after mmengine gathered
        every rank's results)."""
        results = _in_dataset_order(results)
        failed = [r for r in results if not r['valid']]
        results = [r for r in results if r['valid']]
        if failed and results:
            print_log(f'VideoClsMetric: {len(failed)} of {len(failed) + len(results)} videos failed to decode and are '
                      f'left out of the metrics: {_describe(failed)}', logger='current', level=logging.WARNING)
        if not results:
            if failed:
                raise NoDecodedVideoError(f'VideoClsMetric: none of the {len(failed)} test videos could be decoded, nothing to '
                                 f'score; failed: {_describe(failed)}')
            raise ValueError('VideoClsMetric: no videos were evaluated (empty test set?)')
        sizes = {r['scores'].shape[0] for r in results}
        if len(sizes) != 1:
            raise ValueError(f'VideoClsMetric: videos have scores over different numbers of classes: {sorted(sizes)}')
        scores = np.stack([r['scores'] for r in results]).astype(np.float64)
        labels = np.array([r['label'] for r in results], dtype=np.int64)
        num_classes = scores.shape[1]
        if labels.min() < 0 or labels.max() >= num_classes:
            bad = int(np.flatnonzero((labels < 0) | (labels >= num_classes))[0])
            raise ValueError(f'VideoClsMetric: video {results[bad]["video_id"] or bad} has label {labels[bad]}, '
                             f'outside the {num_classes} classes of its scores')
        video_ids = [_name(r, i) for i, r in enumerate(results)]

        metrics: dict[str, Any] = {k: v for k, v in topk_accuracy(scores, labels, self.topk).items()}
        metrics['mean1'] = mean_class_accuracy(scores, labels)
        metrics['num_failed'] = len(failed)
        if self.out_dir is not None:
            self._write_outputs(video_ids, scores, labels, metrics, failed)
        return metrics

    # -----------------------------------------------------------------------------------------------------------------
    def _class_names(self, num_classes: int) -> list[str] | None:
        if self.class_names is not None:
            if len(self.class_names) == num_classes:
                return self.class_names
            print_log(f'VideoClsMetric: class_names has {len(self.class_names)} names for scores of {num_classes} '
                      'classes; the outputs show class indices only', logger='current', level=logging.WARNING)
            return None
        classes = (self.dataset_meta or {}).get('classes')
        if classes is not None and len(classes) == num_classes:
            return [str(c) for c in classes]
        return None

    def _write_outputs(self, video_ids: list[str], scores: np.ndarray, labels: np.ndarray,
                       metrics: dict[str, Any], failed: list[dict]) -> None:
        out = Path(self.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        num_classes = scores.shape[1]
        preds = scores.argmax(axis=1)
        matrix = confusion_matrix(preds, labels, num_classes)
        acc, count = per_class_accuracy(labels, preds, num_classes)
        names = self._class_names(num_classes)

        if self.score_format == 'npz':
            with atomic_path(out / 'cls_scores.npz') as tmp:
                np.savez(tmp, video_ids=np.array(video_ids, dtype=str), scores=scores.astype(np.float32),
                         labels=labels, preds=preds, confusion=matrix)
        else:
            lines = [json.dumps({'video_id': v, 'label': int(y), 'pred': int(p), 'scores': s.tolist()})
                     for v, y, p, s in zip(video_ids, labels, preds, scores.astype(np.float32))]
            write_text_atomic(out / 'cls_scores.jsonl', '\n'.join(lines) + '\n')

        summary = {
            'metrics': {f'{self.prefix}/{k}': v if isinstance(v, int) else float(v) for k, v in metrics.items()},
            'num_videos': len(video_ids),
            'num_failed': len(failed),
            'failed': [{'video_id': _name(r, None), 'index': r['index'],
                        'path': r['failure'][0] if r['failure'] else None,
                        'reason': r['failure'][1] if r['failure'] else None} for r in failed],
            'num_classes': num_classes,
            'topk': list(self.topk),
            'merge': 'per-video scores as given by the model (softmax per view, then the mean: '
                     'docs/classification.md#test-protocols-and-metrics)',
            'mean_class_accuracy': 'mean recall over the classes in ground truth or predictions (mmaction2)',
            'per_class': [{'class': c, 'name': names[c] if names else None, 'num_videos': int(count[c]),
                           'accuracy': None if np.isnan(acc[c]) else float(acc[c])} for c in range(num_classes)],
            'scores_file': f'cls_scores.{self.score_format}',
            'created': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        }
        write_json_atomic(out / 'cls_results.json', summary)
        if self.plot:
            plot_confusion(matrix, out / 'cls_confusion.png', names=names,
                           title=f'top-1 {metrics["top1"]:.3f}, mean class acc. {metrics["mean1"]:.3f}, '
                                 f'{len(video_ids)} videos')


def plot_confusion(matrix: np.ndarray, path: str | os.PathLike, names: Sequence[str] | None = None,
                   title: str = '') -> None:
    """Save the row-normalised confusion matrix next to a bar chart of per-class accuracy (matplotlib Agg).

    Args:
        matrix: (K, K) counts, row = ground truth, column = prediction.
        path: the PNG to write.
        names: K class names for the tick labels (shown only up to 40 classes).
        title: figure title.
    """
    import matplotlib
    matplotlib.use('Agg', force=False)  # no display needed; a no-op when a backend is already in use
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    num_classes = matrix.shape[0]
    count = matrix.sum(axis=1)
    rows = np.divide(matrix, count[:, None], out=np.zeros(matrix.shape), where=count[:, None] > 0)
    acc = np.where(count > 0, np.diag(rows), np.nan)
    show_names = num_classes <= 40
    labels = list(names) if (names is not None and show_names) else [str(i) for i in range(num_classes)]
    side = min(4 + 0.3 * num_classes, 16)
    fig, (ax_m, ax_b) = plt.subplots(1, 2, figsize=(2 * side, side), gridspec_kw={'width_ratios': [1, 1]})
    image = ax_m.imshow(rows, cmap='Blues', vmin=0, vmax=1, interpolation='nearest')
    ax_m.set_xlabel('predicted class')
    ax_m.set_ylabel('ground-truth class')
    ax_m.set_title('confusion matrix (each row sums to 1)')
    fig.colorbar(image, ax=ax_m, fraction=0.046, pad=0.04)
    positions = np.arange(num_classes)
    ax_b.barh(positions, np.nan_to_num(acc, nan=0.0), color='C0')
    ax_b.set_xlim(0, 1.15)
    ax_b.set_ylim(num_classes - 0.5, -0.5)  # class 0 on top, as in the matrix
    ax_b.set_xlabel('accuracy (recall over the videos of the class)')
    ax_b.set_title('per-class accuracy')
    if show_names:
        for ax in (ax_m, ax_b):
            ax.set_yticks(positions, labels)
        ax_m.set_xticks(positions, labels, rotation=90)
        for c in range(num_classes):  # hits / videos, or n/a for a class without videos
            text = f'{int(matrix[c, c])}/{int(count[c])}' if count[c] else 'n/a'
            ax_b.text(min(np.nan_to_num(acc[c]), 1.0) + 0.01, c, text, va='center', fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, bbox_inches='tight')
    plt.close(fig)
