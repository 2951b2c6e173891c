"""Fast backbone comparison on cached features: a linear probe and k-NN on pooled per-video features
(docs/classification.md#linear-probe-and-k-nn).

Both read the feature store, so a backbone is compared in seconds to minutes without running it again;
``tools/linear_probe.py`` is the command line. Labels come from any list :mod:`tasks.data.annotations` reads
(:func:`read_labels`) and are matched to store ids the way the extractor names videos (:func:`match_labels`).
"""
from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from feature_store import FeatureStore, StoreInfo, describe_differences
from tasks.data.annotations import (AnnotationError, read_kinetics_csv, read_ssv2_labels, read_ssv2_split,
                                    read_video_list)
from tasks.data.video.ids import video_id_of

from .dataset import read_class_names
from .evaluation import topk_accuracy

__all__ = ['LabelEntry', 'LinearProbe', 'ProbeError', 'ProbeResult', 'read_labels', 'pooled_features', 'match_labels',
           'predict', 'safe_lr', 'LinearProbeConfig', 'train_linear_probe', 'knn_scores', 'probe_stores']

Pool = Literal['mean', 'centre']
Vote = Literal['weighted', 'majority']


class ProbeError(ValueError):
    """Inputs that cannot be probed (labels that do not match the store, incompatible stores); the message says why."""


# =====================================================================================================================
# Labels
# =====================================================================================================================
@dataclass(frozen=True)
class LabelEntry:
    """One labelled video.

    Attributes:
        ids: store keys that may hold the video, in order of preference.
        label: 0-based class id.
        where: ``file:line`` (or ``file``) of the entry, for error messages.
    """

    ids: tuple[str, ...]
    label: int
    where: str


def _detect_format(path: Path) -> str:
    if path.suffix == '.json':
        return 'ssv2'
    if path.suffix == '.csv':
        return 'kinetics'
    return 'list'


def read_labels(path: str | os.PathLike, label_map: str | os.PathLike | Sequence[str] | Mapping[str, int] | None = None,
                ) -> tuple[list[LabelEntry], list[str] | None]:
    """Read a label file of any classification format.

    Each entry lists the store ids that may hold its video, named as the extractor names videos
    (:func:`tasks.data.video.ids.video_id_of`, the file name up to the first '.'): ``video_id_of(path)`` for an
    mmaction2 video list (``path label``), ``video_id_of(frame_dir)`` for a raw-frame list (``frame_dir total_frames
    label``), the entry ``id`` for SSv2 (files ``<id>.webm``), and for a Kinetics csv
    ``<youtube_id>_<start:06d>_<end:06d>`` (the official download scripts' clip names), then the bare ``youtube_id``.

    Args:
        path: an mmaction2 video / raw-frame list, an SSv2 split json, or a Kinetics csv (chosen by the suffix:
            ``.json`` SSv2, ``.csv`` Kinetics, anything else a list).
        label_map: class names for formats that name classes (SSv2 ``labels.json`` path or mapping, or a names file,
            one a line in id order like mmaction2's ``label_map_k400.txt``, or a list for Kinetics). SSv2 defaults
            to the ``labels.json`` beside ``path``; Kinetics to the sorted class names of this file.

    Returns:
        (entries, class names in id order, or None when the format has numeric labels only).

    Raises:
        AnnotationError: a malformed file, an unknown class name, or an unlabelled entry.
    """
    path = Path(path)
    fmt = _detect_format(path)
    if fmt == 'list':
        first = next((line.split() for line in _nonblank(path)), None)
        if first is None:
            raise AnnotationError(path, 'no entries')
        layout = 'rawframes' if len(first) == 3 else 'video'
        entries = read_video_list(path, format=layout)
        return [LabelEntry((video_id_of(e.path),), e.label, f'{path}:{e.line}') for e in entries], None
    if fmt == 'ssv2':
        if label_map is None:
            label_map = path.with_name('labels.json')
        if not isinstance(label_map, Mapping):
            label_map = read_ssv2_labels(label_map)
        out = []
        for e in read_ssv2_split(path, label_map):
            if e.label is None:
                raise AnnotationError(path, f'video {e.id} has no template/label (a test split?); the probe needs '
                                            'labelled videos')
            out.append(LabelEntry((e.id,), e.label, f'{path} (id {e.id})'))
        names = [None] * (max(label_map.values()) + 1)
        for name, idx in label_map.items():
            names[idx] = name
        return out, [n if n is not None else f'class {i}' for i, n in enumerate(names)]
    # Kinetics
    rows = read_kinetics_csv(path)
    if label_map is None:
        names = sorted({r.label for r in rows if r.label is not None})
    elif isinstance(label_map, (str, os.PathLike)):
        names = read_class_names(label_map)
    elif isinstance(label_map, Mapping):
        names = [n for n, _ in sorted(label_map.items(), key=lambda item: item[1])]
    else:
        names = list(label_map)
    index = {n: i for i, n in enumerate(names)}
    out = []
    for r in rows:
        if r.label is None:
            raise AnnotationError(path, 'no label column (a test csv?); the probe needs labelled videos', line=r.line)
        if r.label not in index:
            raise AnnotationError(path, f'class {r.label!r} is not in the label map ({len(names)} classes)',
                                  line=r.line)
        out.append(LabelEntry((r.clip_name, r.youtube_id), index[r.label], f'{path}:{r.line}'))
    return out, names


def _nonblank(path: Path):
    try:
        text = path.read_text(encoding='utf-8')
    except FileNotFoundError:
        raise AnnotationError(path, 'file not found') from None
    return (line for line in text.splitlines() if line.strip())


# =====================================================================================================================
# Features
# =====================================================================================================================
def pooled_features(store: FeatureStore, video_id: str, pool: Pool = 'mean') -> np.ndarray:
    """(C,) float32 feature of one video: the mean of its rows, or its middle row (``(T - 1) // 2``).

    A row is one clip, so ``'mean'`` counts every clip of the video equally (the feature-space analogue of averaging
    over test views) and ``'centre'`` is a single-clip probe. Rows of ``pooled`` stores are already
    ``fc_norm(mean of tokens)`` (docs/backbone.md#pooling-head-and-initialisation).
    """
    rows = store.read_features(video_id, dtype=np.float32)
    if pool == 'mean':
        return rows.mean(axis=0, dtype=np.float64).astype(np.float32)
    if pool == 'centre':
        return rows[(len(rows) - 1) // 2]
    raise ValueError(f"pool must be 'mean' or 'centre', got {pool!r}")


def match_labels(store: FeatureStore, entries: Sequence[LabelEntry], pool: Pool = 'mean',
                 allow_missing: bool = False) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """Features and labels of the labelled videos found in ``store``.

    Videos of the store without a label are ignored, so one store may hold both splits.

    Returns:
        (video ids, features (N, C) float32, labels (N,) int64, labelled entries not in the store, as ``where``).

    Raises:
        ProbeError: a labelled video missing (unless ``allow_missing``), the same video labelled twice, or no match.
    """
    available = set(store.ids())
    ids, feats, labels, missing = [], [], [], []
    seen: dict[str, str] = {}
    for entry in entries:
        vid = next((i for i in entry.ids if i in available), None)
        if vid is None:
            missing.append(f'{entry.where} ({" or ".join(entry.ids)})')
            continue
        if vid in seen:
            raise ProbeError(f'video {vid!r} is labelled twice: {seen[vid]} and {entry.where}')
        seen[vid] = entry.where
        ids.append(vid)
        feats.append(pooled_features(store, vid, pool))
        labels.append(entry.label)
    if missing and not allow_missing:
        raise ProbeError(f'{len(missing)} labelled videos are not in {store.path}: {", ".join(missing[:5])}'
                         f'{" ..." if len(missing) > 5 else ""} (store ids are file names up to the first "."; '
                         'pass --allow-missing to probe the others)')
    if not ids:
        raise ProbeError(f'no labelled video is in {store.path} ({len(available)} videos, e.g. '
                         f'{sorted(available)[:3]})')
    return ids, np.stack(feats), np.asarray(labels, dtype=np.int64), missing


# =====================================================================================================================
# Linear probe
# =====================================================================================================================
@dataclass
class LinearProbeConfig:
    """Linear-probe settings (the choices: docs/classification.md#linear-probe-and-k-nn).

    Attributes:
        epochs: passes over the training set (= steps when full-batch).
        lr: peak learning rate of SGD (after warm-up); None: :func:`safe_lr` of the training features.
        momentum: SGD momentum.
        weight_decay: L2 on the linear weight (MAE: 0).
        warmup_epochs: linear warm-up from 0 to ``lr``; then cosine to 0.
        batch_size: None = full batch: an epoch is one step, there is no order to seed, and BatchNorm's batch
            statistics are the training-set statistics. Otherwise batches come from a seeded permutation.
        seed: weight init and batch order.
    """

    epochs: int = 200
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 0.0
    warmup_epochs: int = 10
    batch_size: int | None = None
    seed: int = 0


class LinearProbe(nn.Module):
    """MAE's probe head: BatchNorm1d without affine parameters, then Linear(C, K)."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        # momentum=None: cumulative average of the batch statistics = the training-set statistics (equal batches)
        self.norm = nn.BatchNorm1d(dim, affine=False, eps=1e-6, momentum=None)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C) features -> (N, K) logits."""
        return self.head(self.norm(x))


def _lr_at(step: int, total: int, warmup: int, lr: float) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.5 * lr * (1 + math.cos(math.pi * progress))


def safe_lr(train_x: np.ndarray | torch.Tensor, max_rows: int = 65536) -> float:
    """1 / L for cross-entropy on BatchNorm-standardised ``train_x`` (N, C): L = max(1, lambda_max) / 2.

    lambda_max is the largest eigenvalue of the correlation matrix of the standardised features (estimated on at most
    ``max_rows`` evenly spaced rows; the estimate only sets a step size), the ``1`` stands for the bias input, and
    1/2 bounds the curvature of softmax cross-entropy. Heavy-ball momentum 0.9 is stable up to 3.8 / L, so this step
    cannot diverge. ViT features are strongly correlated and lambda_max grows with the width, hence a value per
    backbone rather than one lr for all.
    """
    x = torch.as_tensor(train_x, dtype=torch.float64)
    if len(x) > max_rows:
        x = x[torch.linspace(0, len(x) - 1, max_rows).long()]
    z = (x - x.mean(0)) / (x.var(0, unbiased=False) + 1e-6).sqrt()  # what BatchNorm computes
    lam = float(torch.linalg.eigvalsh(z.T @ z / len(z))[-1])
    return 2.0 / max(lam, 1.0)


def train_linear_probe(train_x: np.ndarray, train_y: np.ndarray, num_classes: int, cfg: LinearProbeConfig,
                       device: str | torch.device = 'cpu') -> LinearProbe:
    """Train the probe; returns it in eval mode (``probe.lr`` holds the learning rate used).

    Args:
        train_x: (N, C) features.
        train_y: (N,) labels in [0, num_classes).
        num_classes: K.
        cfg: settings.
        device: where to train.
    """
    if cfg.epochs < 1 or (cfg.lr is not None and cfg.lr <= 0):
        raise ValueError(f'epochs must be >= 1 and lr > 0, got {cfg.epochs} and {cfg.lr}')
    lr = safe_lr(train_x) if cfg.lr is None else cfg.lr
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        probe = LinearProbe(train_x.shape[1], num_classes).to(device)
    x = torch.as_tensor(train_x, dtype=torch.float32, device=device)
    y = torch.as_tensor(train_y, dtype=torch.int64, device=device)
    n = len(x)
    batch = n if cfg.batch_size is None else min(cfg.batch_size, n)
    if batch < 2:
        raise ValueError('the linear probe needs at least 2 training videos per batch (BatchNorm statistics)')
    steps_per_epoch = n // batch  # drop the last partial batch: BatchNorm statistics from a few videos are noise
    total = cfg.epochs * steps_per_epoch
    # weight decay on the weight only (the bias is a 1-D parameter: MAE's no-decay rule)
    optimizer = torch.optim.SGD([{'params': [probe.head.weight], 'weight_decay': cfg.weight_decay},
                                 {'params': [probe.head.bias], 'weight_decay': 0.0}],
                                lr=lr, momentum=cfg.momentum)
    probe.train()
    step = 0
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=gen).to(device) if batch < n else None
        for b in range(steps_per_epoch):
            index = order[b * batch:(b + 1) * batch] if order is not None else slice(None)
            for group in optimizer.param_groups:
                group['lr'] = _lr_at(step, total, cfg.warmup_epochs * steps_per_epoch, lr)
            loss = F.cross_entropy(probe(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    if not torch.isfinite(loss):
        raise FloatingPointError(f'the linear probe diverged at lr {lr:g} (loss {loss.item()}); lower --lr')
    probe.lr = lr
    return probe.eval()


@torch.no_grad()
def predict(probe: LinearProbe, x: np.ndarray, device: str | torch.device = 'cpu') -> np.ndarray:
    """(N, K) float64 softmax scores."""
    logits = probe(torch.as_tensor(x, dtype=torch.float32, device=device))
    return logits.double().softmax(dim=-1).cpu().numpy()


# =====================================================================================================================
# k-NN
# =====================================================================================================================
@torch.no_grad()
def knn_scores(train_x: np.ndarray, train_y: np.ndarray, query_x: np.ndarray, num_classes: int, k: int = 20,
               temperature: float = 0.07, vote: Vote = 'weighted', chunk: int = 4096,
               device: str | torch.device = 'cpu') -> np.ndarray:
    """(Q, K) class scores of the queries: summed votes of their ``k`` most cosine-similar training videos.

    Args:
        train_x: (N, C) training features (the memory bank).
        train_y: (N,) training labels.
        query_x: (Q, C) features to classify.
        num_classes: K.
        k: neighbours (at most N).
        temperature: weighted votes are ``exp(cos / temperature)``.
        vote: ``'weighted'`` (DINO) or ``'majority'`` (one vote per neighbour; ties go to the lower class id).
        chunk: queries per similarity block (memory: chunk x N).
        device: where to compute.
    """
    if vote not in ('weighted', 'majority'):
        raise ValueError(f"vote must be 'weighted' or 'majority', got {vote!r}")
    if k < 1:
        raise ValueError(f'k must be >= 1, got {k}')
    k = min(k, len(train_x))
    bank = F.normalize(torch.as_tensor(train_x, dtype=torch.float32, device=device), dim=1)
    labels = torch.as_tensor(train_y, dtype=torch.int64, device=device)
    out = []
    for start in range(0, len(query_x), chunk):
        q = F.normalize(torch.as_tensor(query_x[start:start + chunk], dtype=torch.float32, device=device), dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)  # (q, k), most similar first
        weight = (sim / temperature).exp() if vote == 'weighted' else torch.ones_like(sim)
        scores = torch.zeros(len(q), num_classes, dtype=torch.float64, device=device)
        scores.scatter_add_(1, labels[idx], weight.double())
        out.append(scores.cpu())
    return torch.cat(out).numpy()


# =====================================================================================================================
# Both probes on two stores
# =====================================================================================================================
def _topk(num_classes: int) -> tuple[int, ...]:
    return (1, 5) if num_classes > 5 else (1,)


@dataclass
class ProbeResult:
    """What :func:`probe_stores` measured, as written to json."""

    linear: dict[str, float]
    knn: dict[str, float]
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {'linear': self.linear, 'knn': self.knn, **self.summary}


@contextlib.contextmanager
def _small_problem_threads(num_values: int, device: str | torch.device) -> Iterator[None]:
    """One CPU thread for small feature matrices (< 2^20 values): there, intra-op threads only add synchronisation,
    which on a busy machine made the synthetic-benchmark probe 5x slower (20 s vs 4 s, same results)."""
    if torch.device(device).type != 'cpu' or num_values >= 1 << 20:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _check_compatible(train: StoreInfo, val: StoreInfo, train_path: Path, val_path: Path) -> None:
    differences = train.differences(val)
    if differences:
        raise ProbeError(f'{train_path} and {val_path} hold features of different extractions '
                         f'({describe_differences(differences, train_path.name, val_path.name)}); a probe trained on '
                         'one cannot be tested on the other')


def probe_stores(train_store: str | os.PathLike, val_store: str | os.PathLike, train_labels: str | os.PathLike,
                 val_labels: str | os.PathLike | None = None, *, label_map: str | os.PathLike | None = None,
                 pool: Pool = 'mean', linear: LinearProbeConfig | None = None, k: int = 20,
                 temperature: float = 0.07, vote: Vote = 'weighted', allow_missing: bool = False,
                 device: str | torch.device = 'cpu') -> ProbeResult:
    """Linear probe and k-NN: train on ``train_store`` videos labelled in ``train_labels``, test on ``val_store``.

    Args:
        train_store / val_store: feature stores (may be the same file).
        train_labels / val_labels: label files; ``val_labels`` None reuses ``train_labels`` (only sensible with two
            different stores).
        label_map: class names for SSv2 / Kinetics label files (see :func:`read_labels`).
        pool: per-video pooling of the store rows.
        linear: linear-probe settings.
        k / temperature / vote: k-NN settings.
        allow_missing: skip labelled videos that are not in the store (reported in the summary).
        device: ``cpu`` or ``cuda``.
    """
    linear = linear or LinearProbeConfig()
    train_entries, train_names = read_labels(train_labels, label_map)
    if val_labels is None:
        val_labels = train_labels
    val_map = label_map
    if val_map is None and train_names is not None and Path(val_labels).suffix == '.csv':
        val_map = train_names  # Kinetics without a label map: the classes of the training csv, in the same order
    val_entries, val_names = read_labels(val_labels, val_map)
    if train_names is not None and val_names is not None and train_names != val_names:
        raise ProbeError(f'{train_labels} and {val_labels} define different class lists')
    with FeatureStore.open(train_store) as tr, FeatureStore.open(val_store) as va:
        _check_compatible(tr.info, va.info, tr.path, va.path)
        train_ids, train_x, train_y, train_missing = match_labels(tr, train_entries, pool, allow_missing)
        val_ids, val_x, val_y, val_missing = match_labels(va, val_entries, pool, allow_missing)
        info = tr.info
    overlap = set(train_ids) & set(val_ids) if Path(train_store).resolve() == Path(val_store).resolve() else set()
    if overlap:
        raise ProbeError(f'{len(overlap)} videos are in both the training and the validation labels '
                         f'(e.g. {sorted(overlap)[:3]}); the probe would be tested on its training data')
    num_classes = int(max(train_y.max(), val_y.max())) + 1
    if train_names is not None:
        num_classes = max(num_classes, len(train_names))
    ks = _topk(num_classes)

    with _small_problem_threads(train_x.size, device):
        probe = train_linear_probe(train_x, train_y, num_classes, linear, device)
        linear_scores = predict(probe, val_x, device)
        linear_acc = topk_accuracy(linear_scores, val_y, ks)
        linear_acc['train_top1'] = topk_accuracy(predict(probe, train_x, device), train_y, (1,))['top1']
        knn = topk_accuracy(knn_scores(train_x, train_y, val_x, num_classes, k, temperature, vote, device=device),
                            val_y, ks)
    summary = {
        'num_train': len(train_ids), 'num_val': len(val_ids), 'num_classes': num_classes,
        'feature_dim': int(train_x.shape[1]), 'pool': pool,
        'linear_config': {**linear.__dict__, 'lr_used': probe.lr, 'head': 'BatchNorm1d(affine=False) + Linear',
                          'optimizer': 'SGD, cosine schedule'},
        'knn_config': {'k': k, 'temperature': temperature, 'vote': vote, 'similarity': 'cosine'},
        'train_store': str(train_store), 'val_store': str(val_store),
        'train_labels': str(train_labels), 'val_labels': str(val_labels),
        'features': {'arch': info.arch, 'checkpoint_sha256': info.checkpoint_sha256,
                     'feature_kind': info.feature_kind, 'preprocessing': info.preprocessing},
        'missing_train': train_missing, 'missing_val': val_missing,
    }
    return ProbeResult(linear=linear_acc, knn=knn, summary=summary)

