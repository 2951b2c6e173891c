"""Linear probe and k-NN on cached features (``tasks/classification/probe.py``, ``tools/linear_probe.py``).

Every expected value is known independently of the code: linearly separable hand-made features (probe and k-NN
accuracy 1), k-NN class scores derived by hand from cosines, the Bayes accuracy of two Gaussian classes (the probe
must come close to it), BatchNorm statistics equal to the training-set moments, the safe step size of a feature
matrix with known eigenvalues, and the store ids of every label format (``tasks.data.video.ids.video_id_of``).
"""
from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from feature_store import FeatureStore, StoreInfo, VideoFeatureMeta
from tasks.data.annotations import AnnotationError
from tasks.classification.probe import (LinearProbeConfig, ProbeError, knn_scores, match_labels, pooled_features,
                                        predict, probe_stores, read_labels, safe_lr, train_linear_probe)

ROOT = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures('one_thread')  # tiny tensors: one intra-op thread (tests/conftest.py)


def make_store(path: Path, videos: dict[str, np.ndarray], checkpoint: str = 'a' * 64, **config) -> Path:
    """A store holding ``videos`` (id -> (T, C) rows), one row per 16-frame clip every 8 frames."""
    info = StoreInfo(arch='vit_test', checkpoint_sha256=checkpoint, feature_kind='pooled',
                     preprocessing={'resize': 'short_side', 'size': 32}, dtype='float32',
                     config={'clip_len': 16, 'frame_interval': 1, 'stride': 8, **config})
    with FeatureStore.create(path, info, overwrite=True) as store:
        for vid, rows in videos.items():
            rows = np.asarray(rows, dtype=np.float32)
            meta = VideoFeatureMeta(vid, fps=30.0, num_frames=16 + 8 * (len(rows) - 1), duration=1.0, clip_len=16,
                                    frame_interval=1, stride=8, centre_frames=8 + 8 * np.arange(len(rows)))
            store.add(vid, rows, meta)
    return path


def write_list(path: Path, entries: list[tuple[str, int]]) -> Path:
    path.write_text(''.join(f'videos/{vid}.mp4 {label}\n' for vid, label in entries))
    return path


def separable(rng: np.random.Generator, per_class: int, num_classes: int = 3, dim: int = 8, prefix: str = 'v'):
    """Class c = 4 e_c + noise (std 0.3) in every row; 3 rows per video."""
    videos, labels = {}, []
    for c in range(num_classes):
        for i in range(per_class):
            vid = f'{prefix}{c}_{i}'
            rows = rng.normal(0, 0.3, (3, dim))
            rows[:, c] += 4
            videos[vid] = rows
            labels.append((vid, c))
    return videos, labels


# ---------------------------------------------------------------------------------------------------------------------
# End to end on separable features
# ---------------------------------------------------------------------------------------------------------------------
def test_separable_classes_give_perfect_accuracy(tmp_path):
    rng = np.random.default_rng(0)
    train, train_labels = separable(rng, 10, prefix='t')
    val, val_labels = separable(rng, 4, prefix='v')
    # Unlabelled videos in the store are ignored (one store may hold several splits).
    store = make_store(tmp_path / 'feats.h5', {**train, **val, 'unlabelled': rng.normal(size=(2, 8))})
    result = probe_stores(store, store, write_list(tmp_path / 'train.txt', train_labels),
                          write_list(tmp_path / 'val.txt', val_labels))
    assert result.linear == {'top1': 1.0, 'train_top1': 1.0}  # K = 3 <= 5: no top-5
    assert result.knn == {'top1': 1.0}
    assert result.summary['num_train'] == 30 and result.summary['num_val'] == 12
    assert result.summary['num_classes'] == 3 and result.summary['feature_dim'] == 8


def test_cli_json_and_determinism(tmp_path, capsys):
    """tools/linear_probe.py: prints both probes, writes the json; same seed -> same result, top-5 with K > 5."""
    rng = np.random.default_rng(1)
    # 6 classes with overlapping clouds (noise std 1.5 around 1.0 e_c), so accuracies are neither 0 nor 1.
    videos, labels = {}, []
    for c in range(6):
        for i in range(12):
            rows = rng.normal(0, 1.5, (2, 6))
            rows[:, c] += 1.0
            videos[f'v{c}_{i}'] = rows
            labels.append((f'v{c}_{i}', c))
    store = make_store(tmp_path / 'feats.h5', videos)
    train = write_list(tmp_path / 'train.txt', [e for e in labels if int(e[0].split('_')[1]) < 8])
    val = write_list(tmp_path / 'val.txt', [e for e in labels if int(e[0].split('_')[1]) >= 8])
    spec = importlib.util.spec_from_file_location('tool_linear_probe', ROOT / 'tools' / 'linear_probe.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    args = [str(store), str(store), '--labels', str(train), str(val), '--batch-size', '16', '--epochs', '30']
    first = tool.main(args + ['--out', str(tmp_path / 'a.json'), '--seed', '3'])
    second = tool.main(args + ['--out', str(tmp_path / 'b.json'), '--seed', '3'])
    other = tool.main(args + ['--seed', '4'])
    printed = capsys.readouterr().out
    assert 'linear probe' in printed and 'k-NN (k=20, weighted)' in printed
    saved = json.loads((tmp_path / 'a.json').read_text())
    assert saved['linear'] == first['linear'] and set(saved['linear']) == {'top1', 'top5', 'train_top1'}
    # the tool reports what the library computes, and k-NN what a direct numpy k-NN gives
    direct = probe_stores(store, store, train, val, linear=LinearProbeConfig(epochs=30, batch_size=16, seed=3))
    assert saved['linear'] == direct.linear
    assert saved['knn'] == {'top1': numpy_knn_top1(videos, train, val), 'top5': direct.knn['top5']}
    assert first['linear'] == second['linear'] and first['knn'] == second['knn']
    assert first['knn'] == other['knn']  # k-NN has no randomness
    assert saved['num_train'] == 48 and saved['num_val'] == 24 and saved['features']['arch'] == 'vit_test'
    with pytest.raises(SystemExit) as exit_info:  # a missing labelled video: exit status 2, message on stderr
        tool.main([str(store), str(store), '--labels', str(write_list(tmp_path / 'x.txt', [('nope', 0), ('v0_0', 0)]))])
    assert exit_info.value.code == 2
    assert 'nope' in capsys.readouterr().err


def numpy_knn_top1(videos: dict[str, np.ndarray], train: Path, val: Path, k: int = 20, t: float = 0.07) -> float:
    """DINO's weighted k-NN top-1 on mean-pooled videos, written out with numpy."""
    def split(path):
        pairs = [line.split() for line in path.read_text().splitlines()]
        x = np.stack([videos[Path(p).stem].astype(np.float32).mean(0) for p, _ in pairs])
        return x / np.linalg.norm(x, axis=1, keepdims=True), np.array([int(c) for _, c in pairs])
    (bank, bank_y), (query, query_y) = split(train), split(val)
    sim = query @ bank.T
    hits = 0
    for q in range(len(query)):
        nearest = np.argsort(-sim[q])[:k]
        votes = np.bincount(bank_y[nearest], weights=np.exp(sim[q, nearest] / t),
                            minlength=bank_y.max() + 1)
        hits += int(votes.argmax() == query_y[q])
    return hits / len(query)


def test_same_seed_same_weights():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(40, 5)).astype(np.float32), rng.integers(0, 3, 40)
    cfg = LinearProbeConfig(epochs=5, batch_size=8, seed=7)
    a, b = train_linear_probe(x, y, 3, cfg), train_linear_probe(x, y, 3, cfg)
    c = train_linear_probe(x, y, 3, LinearProbeConfig(epochs=5, batch_size=8, seed=8))
    assert torch.equal(a.head.weight, b.head.weight)
    assert not torch.equal(a.head.weight, c.head.weight)


# ---------------------------------------------------------------------------------------------------------------------
# The probe's parts against known answers
# ---------------------------------------------------------------------------------------------------------------------
def test_probe_reaches_bayes_accuracy():
    """Two Gaussian classes N(+-mu, I) in 16-d with |2 mu| = d: the Bayes classifier is linear, accuracy Phi(d / 2).
    A linear probe trained on 2000 samples must come within 2.5 points of it on 4000 held-out samples (the sampling
    sd of the held-out accuracy is ~0.7 points)."""
    rng = np.random.default_rng(3)
    d = 2.0
    mu = np.zeros(16)
    mu[:4] = d / 2 / 2  # |mu| = d / 2 spread over 4 dimensions: sqrt(4 x 0.25) = 1
    def sample(n):
        y = rng.integers(0, 2, n)
        return (rng.normal(size=(n, 16)) + np.where(y[:, None] == 1, mu, -mu)).astype(np.float32), y
    x_train, y_train = sample(2000)
    x_val, y_val = sample(4000)
    bayes = 0.5 * (1 + math.erf(d / 2 / math.sqrt(2)))  # Phi(1) = 0.8413
    probe = train_linear_probe(x_train, y_train, 2, LinearProbeConfig())
    accuracy = float((predict(probe, x_val).argmax(1) == y_val).mean())
    assert bayes - 0.025 < accuracy < bayes + 0.025


def test_batchnorm_is_the_training_set_standardisation():
    """No affine parameters; the running statistics are the training-set mean and (unbiased) variance, in full-batch
    and in equal mini-batches (cumulative average, momentum=None)."""
    rng = np.random.default_rng(4)
    x = (rng.normal(size=(64, 6)) * [1, 2, 3, 4, 5, 6] + [10, -3, 0, 1, 2, 5]).astype(np.float32)
    y = rng.integers(0, 4, 64)
    for batch in (None, 16):
        probe = train_linear_probe(x, y, 4, LinearProbeConfig(epochs=3, batch_size=batch))
        assert not list(probe.norm.parameters())
        torch.testing.assert_close(probe.norm.running_mean, torch.from_numpy(x.mean(0)), rtol=1e-5, atol=1e-5)
        if batch is None:  # one batch: its unbiased variance exactly
            torch.testing.assert_close(probe.norm.running_var, torch.from_numpy(x.var(0, ddof=1)), rtol=1e-5,
                                       atol=1e-5)


def test_safe_lr_from_known_eigenvalues():
    """Columns u, u, u, v with u, v orthogonal +-1 patterns (mean 0, variance 1): the correlation matrix has
    eigenvalues 3, 1, 0, 0, so L = 3 / 2 and the safe step is 2 / 3. With weakly correlated columns lambda_max < 1
    and the bias input's 1 sets L = 1 / 2: step 2."""
    u = np.tile([1.0, -1.0], 8)
    v = np.repeat([1.0, -1.0], 8)
    assert safe_lr(np.stack([u, u, u, v], axis=1)) == pytest.approx(2 / 3, rel=1e-5)
    assert safe_lr(np.stack([u, v], axis=1)) == pytest.approx(2.0, rel=1e-5)


def test_knn_scores_by_hand():
    """4 training videos in 2-d, query (2, 1), k = 3. Cosines: (1,0) 2/sqrt5, (0,1) 1/sqrt5, (1,1) 3/sqrt10,
    (-1,0) -2/sqrt5, so the 3 nearest are (1,1) [class 1], (1,0) [class 0], (0,1) [class 1]."""
    train = np.array([[1, 0], [0, 1], [1, 1], [-1, 0]], dtype=np.float32)
    labels = np.array([0, 1, 1, 2])
    query = np.array([[2, 1]], dtype=np.float32) * 7  # the scale of a feature does not matter (cosine)
    t = 0.5
    c10, c01, c11 = 2 / math.sqrt(5), 1 / math.sqrt(5), 3 / math.sqrt(10)
    expected = [math.exp(c10 / t), math.exp(c11 / t) + math.exp(c01 / t), 0.0]
    np.testing.assert_allclose(knn_scores(train, labels, query, 3, k=3, temperature=t)[0], expected, rtol=1e-5)
    np.testing.assert_array_equal(knn_scores(train, labels, query, 3, k=3, vote='majority')[0], [1, 2, 0])
    # k larger than the bank: every training video votes.
    np.testing.assert_array_equal(knn_scores(train, labels, query, 3, k=50, vote='majority')[0], [1, 2, 1])
    # Chunked queries give the same scores.
    queries = np.random.default_rng(5).normal(size=(10, 2)).astype(np.float32)
    np.testing.assert_allclose(knn_scores(train, labels, queries, 3, k=2, chunk=3),
                               knn_scores(train, labels, queries, 3, k=2), rtol=1e-6)


def test_pooling(tmp_path):
    rows = np.array([[0, 0], [1, 2], [5, 7], [10, 1]], dtype=np.float32)
    with FeatureStore.open(make_store(tmp_path / 's.h5', {'a': rows})) as store:
        np.testing.assert_allclose(pooled_features(store, 'a'), [4.0, 2.5])  # (0+1+5+10)/4, (0+2+7+1)/4
        np.testing.assert_array_equal(pooled_features(store, 'a', 'centre'), [1, 2])  # row (4 - 1) // 2 = 1


# ---------------------------------------------------------------------------------------------------------------------
# Label formats -> store ids
# ---------------------------------------------------------------------------------------------------------------------
def test_label_formats(tmp_path):
    # mmaction2 video list: the id is the file name up to the first '.', as the extractor names videos.
    (tmp_path / 'list.txt').write_text('videos/abc.mp4 2\nclip.part1.mkv 0\n')
    entries, names = read_labels(tmp_path / 'list.txt')
    assert [(e.ids, e.label) for e in entries] == [(('abc',), 2), (('clip',), 0)] and names is None
    assert entries[1].where.endswith('list.txt:2')
    # Raw-frame list: frame_dir total_frames label.
    (tmp_path / 'frames.txt').write_text('rawframes/xyz 120 4\n')
    assert [(e.ids, e.label) for e in read_labels(tmp_path / 'frames.txt')[0]] == [(('xyz',), 4)]
    # SSv2: ids from the json, classes from the labels.json beside it (templates without brackets).
    (tmp_path / 'labels.json').write_text(json.dumps({'Pushing something': '1', 'Holding something': '0'}))
    (tmp_path / 'validation.json').write_text(json.dumps([
        {'id': '42', 'label': 'pushing a cup', 'template': 'Pushing [something]', 'placeholders': ['a cup']},
        {'id': '7', 'label': 'holding a pen', 'template': 'Holding [something]', 'placeholders': ['a pen']}]))
    entries, names = read_labels(tmp_path / 'validation.json')
    assert [(e.ids, e.label) for e in entries] == [(('42',), 1), (('7',), 0)]
    assert names == ['Holding something', 'Pushing something']
    # Kinetics: clip names of the download scripts, then the bare YouTube id; classes sorted unless a map is given.
    (tmp_path / 'k.csv').write_text('label,youtube_id,time_start,time_end,split\n'
                                    'zumba,abc,10,20,val\nabseiling,def,0,10,val\n')
    entries, names = read_labels(tmp_path / 'k.csv')
    assert [(e.ids, e.label) for e in entries] == [(('abc_000010_000020', 'abc'), 1), (('def_000000_000010', 'def'), 0)]
    assert names == ['abseiling', 'zumba']
    (tmp_path / 'map.txt').write_text('zumba\nabseiling\nbowling\n')
    assert [e.label for e in read_labels(tmp_path / 'k.csv', tmp_path / 'map.txt')[0]] == [0, 1]
    (tmp_path / 'small_map.txt').write_text('zumba\n')
    with pytest.raises(AnnotationError, match=r'k.csv, line 3: class .abseiling. is not in the label map'):
        read_labels(tmp_path / 'k.csv', tmp_path / 'small_map.txt')


def test_kinetics_probe_matches_both_id_styles(tmp_path):
    rng = np.random.default_rng(6)
    rows = {c: rng.normal(0, 0.2, (2, 4)) + 3 * np.eye(4)[c] for c in range(2)}
    videos = {'a_000000_000010': rows[0], 'b': rows[1],  # one clip-named file, one named by YouTube id
              'c_000001_000011': rows[0] + 0.1, 'd': rows[1] + 0.1}
    store = make_store(tmp_path / 'k.h5', videos)
    (tmp_path / 'train.csv').write_text('label,youtube_id,time_start,time_end,split\n'
                                        'arm,a,0,10,train\nbow,b,5,15,train\n')
    (tmp_path / 'val.csv').write_text('label,youtube_id,time_start,time_end,split\n'
                                      'arm,c,1,11,validate\nbow,d,0,10,validate\n')
    result = probe_stores(store, store, tmp_path / 'train.csv', tmp_path / 'val.csv', k=1)
    assert result.knn == {'top1': 1.0} and result.summary['num_train'] == 2 and result.summary['num_val'] == 2
    (tmp_path / 'bad.csv').write_text('label,youtube_id,time_start,time_end,split\ncook,c,1,11,validate\n')
    with pytest.raises(AnnotationError, match="class 'cook' is not in the label map"):
        probe_stores(store, store, tmp_path / 'train.csv', tmp_path / 'bad.csv')


def test_input_errors(tmp_path):
    rng = np.random.default_rng(7)
    videos, labels = separable(rng, 3)
    store = make_store(tmp_path / 'a.h5', videos)
    train = write_list(tmp_path / 'train.txt', labels[::2] + [('ghost', 1)])
    val = write_list(tmp_path / 'val.txt', labels[1::2])
    with pytest.raises(ProbeError, match=r'1 labelled videos are not in .*a.h5: .*train.txt:\d+ \(ghost\)'):
        probe_stores(store, store, train, val)
    result = probe_stores(store, store, train, val, allow_missing=True)
    assert result.summary['missing_train'] == [f'{train}:{len(labels[::2]) + 1} (ghost)']
    with FeatureStore.open(store) as opened:
        ids, x, y, _ = match_labels(opened, read_labels(val)[0])
        assert ids == [vid for vid, _ in labels[1::2]] and x.shape == (len(ids), 8)
    # The same video on both sides of one store.
    with pytest.raises(ProbeError, match='both the training and the validation'):
        probe_stores(store, store, val, val)
    # A video labelled twice.
    with pytest.raises(ProbeError, match='labelled twice'):
        probe_stores(store, store, write_list(tmp_path / 'dup.txt', [labels[0], labels[0]]), val)
    # Features of another checkpoint.
    other = make_store(tmp_path / 'b.h5', videos, checkpoint='b' * 64)
    with pytest.raises(ProbeError, match=f"checkpoint_sha256: '{'a' * 64}' \\(a.h5\\) vs '{'b' * 64}' \\(b.h5\\)"):
        probe_stores(store, other, train, val, allow_missing=True)


@pytest.mark.parametrize('key, old, new', [('compute_dtype', 'fp32', 'bf16'), ('img_size', [32, 32], [64, 64]),
                                           ('frames', 16, 8)])
def test_stores_must_have_the_same_provenance_as_for_merging(tmp_path, key, old, new):
    """The probe asks the store's one rule (StoreInfo.differences): what merging refuses, it refuses."""
    videos, labels = separable(np.random.default_rng(8), 3)
    train = write_list(tmp_path / 'train.txt', labels[::2])
    val = write_list(tmp_path / 'val.txt', labels[1::2])
    a = make_store(tmp_path / 'a.h5', videos, **{key: old})
    with pytest.raises(ProbeError, match=f'{key}: {re.escape(repr(old))} \\(a.h5\\) vs {re.escape(repr(new))}'):
        probe_stores(a, make_store(tmp_path / 'b.h5', videos, **{key: new}), train, val)
    # settings that do not change the features (batch size, workers, a shard number) may differ; the device type
    # may not (tests/feature_store/test_extract_devices.py)
    same = make_store(tmp_path / 'c.h5', videos, **{key: old}, batch_size=3, num_workers=4, shard=1)
    assert probe_stores(a, same, train, val).knn == {'top1': 1.0}
