"""Feature store: HDF5 layout read back with plain h5py, row <-> seconds conventions, crash safety, the one
provenance rule (append, merge, npy import), merging, the torch dataset with worker processes, npy export/import and
error messages."""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import tomllib
from datetime import datetime, timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from feature_store import (
    FeatureDataset, FeatureStore, FeatureStoreError, ProvenanceDifference, StoreInfo, UnknownVideoError,
    VideoFeatureMeta, build_store, collate_features, export_npy, import_npy, merge_stores, part_ids, part_path,
    read_parts, write_part,
)
from feature_store.cli import merge_main
from feature_store.extract import ExtractConfig, Preprocess, make_store_info
from feature_store.info import MISSING
from tasks.data.video.sampling import segment_sample, sliding_window_sample

REPO = Path(__file__).resolve().parents[2]


def make_info(**overrides) -> StoreInfo:
    kwargs = dict(arch='vit_test', checkpoint_sha256='0f' * 32, feature_kind='pooled',
                  preprocessing={'resize': 'squash', 'size': 224, 'normalize': None, 'frame_dtype': 'uint8'},
                  dtype='float32', config={'sampling': {'clip_len': 16, 'frame_interval': 1, 'stride': 4},
                                           'batch_size': 8, 'shard': 0})
    kwargs.update(overrides)
    return StoreInfo(**kwargs)


def official_meta(video_id: str, num_frames: int, fps: float = 30.0, stride: int = 4) -> VideoFeatureMeta:
    sample = sliding_window_sample(num_frames, clip_len=16, stride=stride, fps=fps)
    return VideoFeatureMeta.from_clip_sample(video_id, sample, stride=stride)


def make_video(video_id: str, num_frames: int, dim: int = 6, seed: int = 0, **kw):
    meta = official_meta(video_id, num_frames, **kw)
    feats = np.random.default_rng(seed).standard_normal((meta.num_rows, dim)).astype(np.float32)
    return video_id, feats, meta


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hidden_files(folder: Path) -> list[str]:
    """Temporary files (written under hidden names beside their target)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith('.'))


# ---------------------------------------------------------------------------------------------------------------------
# layout and round trip
# ---------------------------------------------------------------------------------------------------------------------
def test_round_trip_every_attribute_also_with_plain_h5py(tmp_path):
    path = tmp_path / 'f.h5'
    videos = [make_video('video_test_0000004', 100, seed=1), make_video('cls/a b%.mp4', 16, seed=2, fps=25.0)]
    info = make_info()
    build_store(path, info, videos)

    # our API
    with FeatureStore.open(path) as store:
        assert store.ids() == sorted(v for v, _, _ in videos)
        assert len(store) == 2 and 'cls/a b%.mp4' in store and 'cls' not in store and 'nope' not in store
        got = store.info
        for name in ('arch', 'checkpoint_sha256', 'feature_kind', 'preprocessing', 'dtype', 'config',
                     'schema_version'):
            assert getattr(got, name) == getattr(info, name), name
        for video_id, feats, meta in videos:
            data, m = store.read(video_id)
            np.testing.assert_array_equal(data, feats)
            assert m == meta

    # plain h5py, as an ecosystem reader would see it
    with h5py.File(path, 'r') as f:
        assert f.attrs['schema_version'] == 1 and f.attrs['arch'] == 'vit_test'
        assert f.attrs['checkpoint_sha256'] == '0f' * 32 and f.attrs['feature_kind'] == 'pooled'
        assert f.attrs['dtype'] == 'float32'
        assert json.loads(f.attrs['preprocessing']) == info.preprocessing
        assert json.loads(f.attrs['config']) == info.config
        version = tomllib.loads((REPO / 'pyproject.toml').read_text())['project']['version']
        assert f.attrs['package_version'] in (version, version + '+source')  # installed, or a source checkout
        created = datetime.fromisoformat(f.attrs['created'])  # ISO-8601 UTC, to the second
        assert created.utcoffset() == timedelta(0) and created.microsecond == 0
        ds = f['video_test_0000004']
        assert ds.dtype == np.float32 and ds.shape == (22, 6)  # floor((100 - 16) / 4) + 1 official windows
        assert ds.chunks is None and ds.compression is None  # contiguous, uncompressed (docs/video_decoding.md)
        np.testing.assert_array_equal(ds[()], videos[0][1])
        a = ds.attrs
        assert a['fps'] == 30.0 and a['num_frames'] == 100 and a['clip_len'] == 16 and a['frame_interval'] == 1
        assert a['stride'] == 4 and a['offset_frames'] == 8
        assert a['duration'] == pytest.approx(100 / 30)
        np.testing.assert_array_equal(a['centre_frames'], 8 + 4 * np.arange(22))  # window start + 8
        # an id with '/' is a nested group, so h5[video_id] works as ActionFormer's hdf5 loader indexes it
        short = f['cls/a b%.mp4']
        assert short.shape == (1, 6) and short.attrs['fps'] == 25.0 and list(short.attrs['centre_frames']) == [8]
        assert set(f.keys()) == {'video_test_0000004', 'cls'}  # no leftover __incomplete__ group


def test_reads_by_rows_and_seconds(tmp_path):
    path = tmp_path / 'f.h5'
    vid, feats, meta = make_video('v', 100, fps=10.0)  # centres 8, 12, ... frames = 0.8, 1.2, ... s
    build_store(path, make_info(), [(vid, feats, meta)])
    with FeatureStore.open(path) as store:
        np.testing.assert_array_equal(store.read_window('v', 3, 7), feats[3:7])
        np.testing.assert_array_equal(store.read_window('v', 20, 99), feats[20:])
        rows_feats, rows = store.read_seconds('v', 1.0, 2.0)  # centres 1.2, 1.6, 2.0 (inclusive)
        assert rows.tolist() == [1, 2, 3]
        np.testing.assert_array_equal(rows_feats, feats[1:4])
        assert store.read_seconds('v', 0.0, 0.7)[1].size == 0
        assert store.read('v', dtype=np.float64)[0].dtype == np.float64
        with pytest.raises(ValueError, match='start'):
            store.read_window('v', 5, 2)


# ---------------------------------------------------------------------------------------------------------------------
# rows <-> seconds
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('fps', [30.0, 29.97, 25.0, 12.5])
@pytest.mark.parametrize('stride', [1, 4, 16])
def test_official_windows_follow_the_actionformer_convention(fps, stride):
    """Official windows (16 frames from frame 0, docs/thumos14.md#official-feature-extractor) centred at start + 8:
    ActionFormer's t = (grid * feat_stride + 0.5 * num_frames) / fps and grid = (t * fps - 0.5 * num_frames) /
    feat_stride."""
    meta = official_meta('v', 400, fps=fps, stride=stride)
    assert meta.offset_frames == 8  # s + 8, not the geometric middle s + 7.5
    assert meta.num_rows == (400 - 16) // stride + 1
    grid = np.array([-1.5, 0.0, 0.25, 1.0, 7.5, meta.num_rows - 1, meta.num_rows + 3.0])
    t_actionformer = (grid * stride + 0.5 * 16) / fps
    np.testing.assert_allclose(meta.row_to_seconds(grid), t_actionformer, rtol=1e-13, atol=0)
    t = np.array([0.0, 0.3, 1.0, 7.77, 12.0])
    np.testing.assert_allclose(meta.seconds_to_row(t), (t * fps - 0.5 * 16) / stride, rtol=1e-13, atol=1e-13)
    # round trips
    np.testing.assert_allclose(meta.seconds_to_row(meta.row_to_seconds(grid)), grid, rtol=0, atol=1e-12)
    np.testing.assert_allclose(meta.row_to_seconds(meta.seconds_to_row(t)), t, rtol=0, atol=1e-12)
    # integer rows land exactly on the stored centre frames
    np.testing.assert_allclose(meta.row_to_seconds(np.arange(meta.num_rows)), meta.centre_frames / fps, rtol=1e-15)
    # ActionFormer clips predictions to [0, duration]
    assert meta.row_to_seconds(-10.0, clip=True) == 0.0
    assert meta.row_to_seconds(1e6, clip=True) == pytest.approx(400 / fps)


@pytest.mark.parametrize('stride', [2, 4, 16])
def test_centred_windows_offset(stride):
    """mmaction2 UntrimmedSampleFrames centres clips at stride//2 + k*stride (docs/feature_caching.md)."""
    meta = VideoFeatureMeta.from_clip_sample(
        'v', sliding_window_sample(200, clip_len=16, stride=stride, mode='centred', fps=24.0), stride=stride)
    assert meta.offset_frames == stride // 2
    rows = np.array([0.0, 2.5, 10.0])
    np.testing.assert_allclose(meta.row_to_seconds(rows), (stride // 2 + rows * stride) / 24.0, rtol=1e-14)
    np.testing.assert_allclose(meta.seconds_to_row(meta.row_to_seconds(rows)), rows, atol=1e-12)


def test_irregular_centres_interpolate_linearly():
    meta = VideoFeatureMeta('v', fps=10.0, num_frames=60, duration=6.0, clip_len=1, frame_interval=0, stride=10,
                            centre_frames=np.array([0, 10, 30]))
    rows = np.array([-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
    frames = np.array([-10.0, 0.0, 5.0, 10.0, 20.0, 30.0, 40.0])  # stride frames per row outside the grid
    np.testing.assert_allclose(meta.row_to_seconds(rows), frames / 10.0, rtol=1e-15)
    np.testing.assert_allclose(meta.seconds_to_row(frames / 10.0), rows, rtol=1e-15, atol=1e-15)


def test_meta_from_clip_sample_checks():
    with pytest.raises(ValueError, match='fps'):
        VideoFeatureMeta.from_clip_sample('v', sliding_window_sample(100), stride=4)
    with pytest.raises(ValueError, match='stride=8 but the clip centres are 4 frames apart'):
        VideoFeatureMeta.from_clip_sample('v', sliding_window_sample(100, stride=4, fps=30.0), stride=8)
    seg = VideoFeatureMeta.from_clip_sample('v', segment_sample(64, num_segments=8, test_mode=True, fps=30.0),
                                            stride=8)
    assert seg.frame_interval == 0 and seg.clip_len == 8  # segment sampling has no fixed interval
    with pytest.raises(ValueError, match='strictly increasing'):
        VideoFeatureMeta('v', 30.0, 10, 1 / 3, 16, 1, 4, np.array([8, 8]))


# ---------------------------------------------------------------------------------------------------------------------
# integrity: temporary datasets, atomic files, part files
# ---------------------------------------------------------------------------------------------------------------------
def test_add_writes_under_a_temporary_name_and_renames(tmp_path, monkeypatch):
    path = tmp_path / 'f.h5'
    vid, feats, meta = make_video('a/b', 40)
    seen = {}
    real_move = h5py.Group.move

    def spy_move(group, source, dest):
        # at the moment of the rename, the real id does not exist and the temporary dataset is complete
        seen['real_id_present'] = dest in group
        seen['tmp'] = source
        seen['tmp_data'] = group[source][()]
        seen['tmp_attrs'] = dict(group[source].attrs)
        return real_move(group, source, dest)
    monkeypatch.setattr(h5py.Group, 'move', spy_move)
    with FeatureStore.create(path, make_info()) as store:
        store.add(vid, feats, meta)
    assert seen['real_id_present'] is False and seen['tmp'].startswith('__incomplete__/')
    np.testing.assert_array_equal(seen['tmp_data'], feats)
    assert seen['tmp_attrs']['stride'] == 4 and len(seen['tmp_attrs']['centre_frames']) == meta.num_rows

    # a failure after the data but before the attributes are written leaves nothing under the id
    monkeypatch.setattr(h5py.Group, 'move', real_move)

    def failing_to_attrs(self):
        raise RuntimeError('simulated crash while writing attributes')
    with FeatureStore.open(path, 'a') as store:
        monkeypatch.setattr(VideoFeatureMeta, 'to_attrs', failing_to_attrs)
        vid2, feats2, meta2 = make_video('c', 40)
        with pytest.raises(RuntimeError, match='simulated'):
            store.add(vid2, feats2, meta2)
        monkeypatch.undo()
        assert 'c' not in store and store.ids() == ['a/b']
    with h5py.File(path, 'r') as f:
        assert 'c' not in f and len(f['__incomplete__']) == 1  # the partial write is quarantined
    with FeatureStore.open(path) as store:
        assert store.ids() == ['a/b']


def test_build_store_is_atomic_when_the_parts_iterator_raises(tmp_path):
    out = tmp_path / 'f.h5'
    build_store(out, make_info(), [make_video('old', 40)])
    before = sha(out)

    def parts():
        yield make_video('new1', 40, seed=3)
        raise RuntimeError('extractor crashed')
    with pytest.raises(RuntimeError, match='extractor crashed'):
        build_store(out, make_info(), parts(), base=out)
    assert sha(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['f.h5']  # the temporary file is gone
    with FeatureStore.open(out) as store:
        assert store.ids() == ['old']


def test_build_store_survives_sigkill(tmp_path):
    """A process killed (SIGKILL) in the middle of build_store leaves the old file intact and openable; the killed
    build's hidden temporary file is ignored by readers and deleted by the next build of the same file (but not of
    another file whose name starts alike)."""
    out = tmp_path / 'f.h5'
    build_store(out, make_info(), [make_video('old', 40)])
    before = sha(out)
    flag = tmp_path / 'writing'
    script = textwrap.dedent(f"""
        import time
        import numpy as np
        from feature_store import StoreInfo, VideoFeatureMeta, build_store
        info = StoreInfo(**{make_info().to_dict()!r})
        def parts():
            for i in range(1000):
                meta = VideoFeatureMeta('new%d' % i, 30.0, 40, 4 / 3, 16, 1, 4, 8 + 4 * np.arange(7))
                yield meta.video_id, np.zeros((7, 6), np.float32), meta
                if i == 3:
                    open({str(flag)!r}, 'w').close()
                    time.sleep(60)
        build_store({str(out)!r}, info, parts(), base={str(out)!r})
    """)
    proc = subprocess.Popen([sys.executable, '-c', script], cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        while not flag.exists():
            assert proc.poll() is None, 'writer exited early'
            assert time.monotonic() < deadline, 'writer never started'
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    (stale,) = hidden_files(tmp_path)  # the half-written new file
    assert stale.startswith('.f.') and stale.endswith('.tmp.h5')
    assert sha(out) == before
    with FeatureStore.open(out) as store:
        assert store.ids() == ['old']
    build_store(tmp_path / 'f.x.h5', make_info(), [make_video('other', 40)])  # another store: leaves it alone
    assert hidden_files(tmp_path) == [stale]
    build_store(out, make_info(), [make_video('new0', 40)], base=out)
    with FeatureStore.open(out) as store:
        assert store.ids() == ['new0', 'old']
    assert hidden_files(tmp_path) == []


def test_build_store_with_base_keeps_old_videos_and_parts_replace_them(tmp_path):
    out = tmp_path / 'f.h5'
    old_a, old_b = make_video('a', 40, seed=1), make_video('b', 40, seed=2)
    build_store(out, make_info(), [old_a, old_b])
    new_b, new_c = make_video('b', 44, seed=5), make_video('c', 40, seed=6)
    build_store(out, make_info(config={'sampling': {'clip_len': 16, 'frame_interval': 1, 'stride': 4},
                                       'shard': 1}), [new_b, new_c], base=out)
    with FeatureStore.open(out) as store:
        assert store.ids() == ['a', 'b', 'c']
        for vid, feats, meta in (old_a, new_b, new_c):
            data, m = store.read(vid)
            np.testing.assert_array_equal(data, feats)
            assert m == meta
        assert store.info.config['shard'] == 1  # the new file carries the new info
    with pytest.raises(FeatureStoreError, match='given twice'):
        build_store(out, make_info(), [make_video('x', 40), make_video('x', 40)])
    with pytest.raises(FeatureStoreError, match=r"base store .*: arch: 'vit_test' \(base\) vs 'vit_base' \(new\)$"):
        build_store(out, make_info(arch='vit_base'), [], base=out)


def test_part_files(tmp_path):
    folder = tmp_path / 'parts'
    ids = ['plain', 'a/b/c', '50% off', '.hidden', 'x' * 300]
    videos = [make_video(v, 40 + 4 * i, seed=i) for i, v in enumerate(ids)]
    # percent-encoded, a leading '.' encoded too (never a hidden file), long ids cut to 150 characters + a hash
    long_name = 'x' * 150 + '~' + hashlib.sha1(('x' * 300).encode()).hexdigest()[:16] + '.npz'
    names = ['plain.npz', 'a%2Fb%2Fc.npz', '50%25%20off.npz', '%2Ehidden.npz', long_name]
    assert [write_part(folder, *v) for v in videos] == [folder / name for name in names]
    assert part_path(folder, 'a/b/c') == folder / 'a%2Fb%2Fc.npz'
    (folder / '.plain.npz.123.tmp').write_bytes(b'half-written')  # a killed writer's leftover
    assert part_ids(folder) == sorted(ids)
    got = {vid: (f, m) for vid, f, m in read_parts(folder)}
    assert sorted(got) == sorted(ids)
    for vid, feats, meta in videos:
        np.testing.assert_array_equal(got[vid][0], feats)
        assert got[vid][1] == meta
    # a part file and its store agree
    build_store(tmp_path / 'f.h5', make_info(), read_parts(folder))
    with FeatureStore.open(tmp_path / 'f.h5') as store:
        assert store.ids() == sorted(ids)
    (folder / 'broken.npz').write_bytes(b'not a zip')
    with pytest.raises(FeatureStoreError, match='broken.npz'):
        part_ids(folder)


def test_video_id_validation_and_append_only(tmp_path):
    with FeatureStore.create(tmp_path / 'f.h5', make_info()) as store:
        for bad in ('', 'a//b', 'a/./b', '../x', '/abs', '__incomplete__/x'):
            with pytest.raises(ValueError, match='video id'):
                store.add(bad, *make_video(bad or 'e', 40)[1:])
        store.add(*make_video('a', 40))
        with pytest.raises(FeatureStoreError, match="'a' already exists"):
            store.add(*make_video('a', 40))
        with pytest.raises(FeatureStoreError, match="cannot store video 'a/x'.*prefix"):
            store.add(*make_video('a/x', 40))  # 'a' is a video, so it cannot be a group
        assert store.ids() == ['a']
        with pytest.raises(ValueError, match='meta is for video'):
            store.add('b', *make_video('c', 40)[1:])
        with pytest.raises(ValueError, match='feature dim 5 differs'):
            store.add(*make_video('d', 40, dim=5))
        vid, feats, meta = make_video('n', 40)
        feats[2, 1] = np.nan
        with pytest.raises(ValueError, match='NaN'):
            store.add(vid, feats, meta)
        with pytest.raises(ValueError, match='rows'):
            store.add('m', np.zeros((3, 6), np.float32), make_video('m', 40)[2])
    with FeatureStore.open(tmp_path / 'f.h5') as store:
        with pytest.raises(FeatureStoreError, match='read-only'):
            store.add(*make_video('z', 40))


# ---------------------------------------------------------------------------------------------------------------------
# compatibility and merging
# ---------------------------------------------------------------------------------------------------------------------
def test_differences_name_the_fields_that_matter_with_both_values():
    a = make_info()
    assert a.differences(make_info(config={'sampling': {'clip_len': 16, 'frame_interval': 1, 'stride': 4},
                                           'shard': 7, 'batch_size': 1}, package_version='9.9')) == []
    preprocessing = {'resize': 'short_side', 'size': 224, 'normalize': 'imagenet', 'frame_dtype': 'uint8'}
    b = make_info(checkpoint_sha256='11' * 32, dtype='float16', preprocessing=preprocessing,
                  config={'sampling': {'clip_len': 16, 'frame_interval': 2, 'stride': 16}})
    assert a.differences(b) == [
        ProvenanceDifference('checkpoint_sha256', '0f' * 32, '11' * 32),
        ProvenanceDifference('preprocessing', a.preprocessing, preprocessing),
        ProvenanceDifference('dtype', 'float32', 'float16'),
        ProvenanceDifference('config.sampling.frame_interval', 1, 2),
        ProvenanceDifference('config.sampling.stride', 4, 16)]
    assert a.compatible_with(b) == ['checkpoint_sha256', 'preprocessing', 'dtype', 'config.sampling.frame_interval',
                                    'config.sampling.stride']


# The extraction's own provenance (tools/extract_features.py ... --arch vit_test --resize 32x32 --clip-len 4
# --stride 2) and single changes of it: the rule must name exactly the one field, with both values.
BASE_RUN = dict(arch='vit_test', clip_len=4, stride=2, preprocess=Preprocess('squash', (32, 32)))
ONE_CHANGE = [
    ({'img_size': (64, 64)}, 'config.model.img_size', [32, 32], [64, 64]),
    ({'frames': 8}, 'config.model.frames', 4, 8),
    ({'dtype': 'bf16'}, 'config.compute_dtype', 'fp32', 'bf16'),
    ({'patch_size': 8}, 'config.model.patch_size', MISSING, 8),  # recorded only when given
    ({'frame_interval': 2}, 'config.sampling.frame_interval', 1, 2),
    ({'sampler': 'sliding/centred'}, 'config.sampling.sampler', 'sliding/official', 'sliding/centred'),
]


def run_info(**changes) -> StoreInfo:
    sampler = changes.pop('sampler', None)
    info = make_store_info(ExtractConfig(**{**BASE_RUN, **changes}), 'random-init:0')
    if sampler is not None:  # the extractor has one sampler; another tool may record a different one
        info.config['sampling']['sampler'] = sampler
    return info


def test_settings_that_do_not_change_the_features_are_compatible():
    assert run_info().differences(run_info(batch_size=3, num_workers=0, device='cpu', backend='pyav',
                                           fused_attn=False, chunk_size=5)) == []


@pytest.mark.parametrize('change, field, old, new', ONE_CHANGE, ids=[c[1] for c in ONE_CHANGE])
def test_append_merge_and_npy_import_refuse_the_same_difference(tmp_path, capsys, change, field, old, new):
    stored, other = run_info(), run_info(**change)
    assert stored.differences(other) == [ProvenanceDifference(field, old, new)]
    named = re.escape(f'{field}: {old!r}')
    build_store(tmp_path / 'a.h5', stored, [make_video('a', 40)])
    build_store(tmp_path / 'b.h5', other, [make_video('b', 40)])
    # appending (build_store onto a base store, what extraction does)
    with pytest.raises(FeatureStoreError, match=f'base store .*a.h5 .*{named} \\(base\\) vs {re.escape(repr(new))}'):
        build_store(tmp_path / 'a.h5', other, [make_video('c', 40)], base=tmp_path / 'a.h5')
    # merging shards, from Python and from the command line
    with pytest.raises(FeatureStoreError, match=f'shard .*b.h5 is incompatible with .*a.h5: differing {named}'):
        merge_stores([tmp_path / 'a.h5', tmp_path / 'b.h5'], tmp_path / 'm.h5')
    capsys.readouterr()
    assert merge_main([str(tmp_path / 'm.h5'), str(tmp_path / 'a.h5'), str(tmp_path / 'b.h5')]) == 1
    assert f'{field}: {old!r} (a.h5) vs {new!r} (b.h5)' in capsys.readouterr().err
    # importing an npy export with another info
    export_npy(tmp_path / 'a.h5', tmp_path / 'npy')
    with pytest.raises(FeatureStoreError, match=f'info argument describes other features .*{named}'):
        import_npy(tmp_path / 'npy', tmp_path / 'c.h5', info=other)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.h5', 'b.h5', 'npy']  # nothing written, no temporaries
    import_npy(tmp_path / 'npy', tmp_path / 'c.h5', info=run_info(batch_size=1))  # the same features: accepted


def test_merge_stores(tmp_path):
    va, vb, vc = make_video('a', 40, seed=1), make_video('b', 44, seed=2), make_video('c', 48, seed=3)
    build_store(tmp_path / 's0.h5', make_info(), [va, vb])
    build_store(tmp_path / 's1.h5', make_info(config={'sampling': {'clip_len': 16, 'frame_interval': 1, 'stride': 4},
                                                      'shard': 1}), [vb, vc])  # b in both, identical
    merged = merge_stores([tmp_path / 's0.h5', tmp_path / 's1.h5'], tmp_path / 'm.h5')
    with FeatureStore.open(merged) as store:
        assert store.ids() == ['a', 'b', 'c']
        assert store.info.config['shard'] == 0  # the first shard's info
        for vid, feats, meta in (va, vb, vc):
            data, m = store.read(vid)
            np.testing.assert_array_equal(data, feats)
            assert m == meta

    build_store(tmp_path / 'bad_stride.h5', make_info(config={'sampling': {'clip_len': 16, 'frame_interval': 1,
                                                                           'stride': 16}}), [make_video('d', 40)])
    with pytest.raises(FeatureStoreError, match=r'shard .*bad_stride\.h5 .*differing config\.sampling\.stride: '
                                                r'4 \(s0\.h5\) vs 16 \(bad_stride\.h5\)$'):
        merge_stores([tmp_path / 's0.h5', tmp_path / 'bad_stride.h5'], tmp_path / 'm2.h5')
    build_store(tmp_path / 'other_ckpt.h5', make_info(checkpoint_sha256='ee' * 32), [make_video('d', 40)])
    assert merge_main([str(tmp_path / 'm3.h5'), str(tmp_path / 's0.h5'), str(tmp_path / 'other_ckpt.h5')]) == 1
    assert not (tmp_path / 'm3.h5').exists() and hidden_files(tmp_path) == []

    build_store(tmp_path / 'conflict.h5', make_info(), [make_video('a', 40, seed=99)])  # same id, other values
    with pytest.raises(FeatureStoreError, match="'a' is in .*s0.h5 and .*conflict.h5 with different"):
        merge_stores([tmp_path / 's0.h5', tmp_path / 'conflict.h5'], tmp_path / 'm4.h5')
    assert not (tmp_path / 'm4.h5').exists()


def test_merge_cli(tmp_path, capsys):
    build_store(tmp_path / 's0.h5', make_info(), [make_video('a', 40)])
    build_store(tmp_path / 's1.h5', make_info(), [make_video('b', 40)])
    assert merge_main([str(tmp_path / 'm.h5'), str(tmp_path / 's0.h5'), str(tmp_path / 's1.h5')]) == 0
    assert '2 videos from 2 shards' in capsys.readouterr().out
    proc = subprocess.run([sys.executable, str(REPO / 'tools/merge_features.py'), '--help'], cwd=REPO,
                          env={**os.environ, 'PYTHONPATH': str(REPO)}, capture_output=True, text=True)
    assert proc.returncode == 0 and 'SHARDS' in proc.stdout.upper()


# ---------------------------------------------------------------------------------------------------------------------
# torch dataset
# ---------------------------------------------------------------------------------------------------------------------
class _PidRecordingDataset(FeatureDataset):
    """Records in each item which process read it and whether the handle used was opened in that process."""

    def __getitem__(self, index):
        feats, meta = super().__getitem__(index)
        meta['pid'], meta['own_handle'] = os.getpid(), self.handle_pid == os.getpid()
        return feats, meta


def test_dataloader_with_two_workers_reads_correct_data(tmp_path):
    path = tmp_path / 'f.h5'
    videos = [make_video(f'v{i}', 16 + 12 * i, seed=i, dim=4) for i in range(6)]  # 1, 4, 7, ... rows
    build_store(path, make_info(), videos)
    ds = _PidRecordingDataset(path)
    assert ds.handle_pid is None  # no handle opened by __init__
    feats0, meta0 = ds[0]  # opens a handle in this (parent) process; workers must not reuse it
    assert ds.handle_pid == os.getpid()
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, collate_fn=ds.collate,
                                         multiprocessing_context='fork')
    by_id = {v: (f, m) for v, f, m in videos}
    seen = []
    for batch in loader:
        assert batch['features'].dtype == torch.float32
        for i, meta in enumerate(batch['meta']):
            feats, m = by_id[meta['video_id']]
            n = len(feats)
            assert batch['lengths'][i] == n and batch['mask'][i].sum() == n and batch['mask'][i, :n].all()
            torch.testing.assert_close(batch['features'][i, :n], torch.from_numpy(feats), rtol=0, atol=0)
            assert (batch['features'][i, n:] == 0).all()
            np.testing.assert_array_equal(meta['centre_frames'], m.centre_frames)
            assert meta['stride'] == 4 and meta['fps'] == 30.0
            assert meta['own_handle'] and meta['pid'] != os.getpid()  # opened after the fork, in the worker
            seen.append(meta['video_id'])
    assert sorted(seen) == sorted(by_id)
    torch.testing.assert_close(feats0, torch.from_numpy(videos[0][1]))
    with pytest.raises(KeyError, match="not in feature store"):
        FeatureDataset(path, ids=['v1', 'missing'])


def test_collate_pads_and_masks():
    a, b = torch.ones(2, 3), torch.full((4, 3), 2.0)
    out = collate_features([(a, {'video_id': 'a'}), (b, {'video_id': 'b'})])
    assert out['features'].shape == (2, 4, 3)
    assert out['mask'].tolist() == [[True, True, False, False], [True] * 4]
    assert out['features'][0].sum() == 6 and out['features'][1].sum() == 24
    with pytest.raises(ValueError, match='different feature dims'):
        collate_features([(a, {}), (torch.ones(2, 5), {})])


# ---------------------------------------------------------------------------------------------------------------------
# npy export / import, float16, gzip
# ---------------------------------------------------------------------------------------------------------------------
def test_npy_export_import_round_trip(tmp_path):
    videos = [make_video('video_test_1', 60, seed=1), make_video('sub/video_2', 40, seed=2, fps=25.0)]
    build_store(tmp_path / 'f.h5', make_info(), videos)
    sidecar = export_npy(tmp_path / 'f.h5', tmp_path / 'npy')
    assert sidecar == tmp_path / 'npy' / 'features_meta.json'
    for vid, feats, meta in videos:  # the ActionFormer / OpenTAD layout: <folder>/<id>.npy, float32 [T, C]
        arr = np.load(tmp_path / 'npy' / f'{vid}.npy')
        assert arr.dtype == np.float32
        np.testing.assert_array_equal(arr, feats)
    doc = json.loads(sidecar.read_text())
    assert doc['videos']['sub/video_2']['fps'] == 25.0 and doc['videos']['sub/video_2']['offset_frames'] == 8
    assert doc['info']['arch'] == 'vit_test'

    import_npy(tmp_path / 'npy', tmp_path / 'back.h5')
    with FeatureStore.open(tmp_path / 'back.h5') as store:
        assert store.ids() == sorted(v for v, _, _ in videos)
        assert store.info.compatible_with(make_info()) == []
        for vid, feats, meta in videos:
            data, m = store.read(vid)
            np.testing.assert_array_equal(data, feats)
            assert m == meta


def test_import_bare_npy_needs_the_metadata_as_arguments(tmp_path):
    folder = tmp_path / 'bare'  # like the official extractor's output: no provenance at all
    folder.mkdir()
    feats = {'a': np.random.default_rng(0).standard_normal((22, 6)).astype(np.float32),
             'b': np.random.default_rng(1).standard_normal((5, 6)).astype(np.float32)}
    for vid, f in feats.items():
        np.save(folder / f'{vid}.npy', f)
    with pytest.raises(ValueError, match=r'no features_meta.json.*pass fps=, clip_len=, stride='):
        import_npy(folder, tmp_path / 'x.h5')
    with pytest.raises(ValueError, match="fps has no entry for video 'b'"):
        import_npy(folder, tmp_path / 'x.h5', make_info(), fps={'a': 30.0}, num_frames=100, clip_len=16, stride=4)
    import_npy(folder, tmp_path / 'x.h5', make_info(), fps={'a': 30.0, 'b': 25.0}, num_frames={'a': 100, 'b': 32},
               clip_len=16, stride=4)
    with FeatureStore.open(tmp_path / 'x.h5') as store:
        data, meta = store.read('a')
        np.testing.assert_array_equal(data, feats['a'])
        np.testing.assert_array_equal(meta.centre_frames, 8 + 4 * np.arange(22))  # default offset clip_len // 2
        assert store.meta('b').fps == 25.0 and store.meta('b').duration == pytest.approx(32 / 25)
    assert hidden_files(tmp_path) == [] and hidden_files(folder) == []


def test_float16_storage(tmp_path):
    vid, feats, meta = make_video('v', 400, dim=64)
    feats *= 4.0
    build_store(tmp_path / 'f32.h5', make_info(), [(vid, feats, meta)])
    build_store(tmp_path / 'f16.h5', make_info(dtype='float16'), [(vid, feats, meta)])
    with h5py.File(tmp_path / 'f16.h5', 'r') as f:
        assert f['v'].dtype == np.float16 and f.attrs['dtype'] == 'float16'
    with FeatureStore.open(tmp_path / 'f16.h5') as store:
        data, _ = store.read('v')
        np.testing.assert_array_equal(data, feats.astype(np.float16))
        # float16 keeps 11 significant bits: relative error <= 2**-11
        assert np.all(np.abs(data.astype(np.float32) - feats) <= np.abs(feats) * 2.0 ** -11 + 1e-7)
    with FeatureStore.open(tmp_path / 'f32.h5') as s32, FeatureStore.open(tmp_path / 'f16.h5') as s16:
        assert s32.info.compatible_with(s16.info) == ['dtype']
    data_bytes = meta.num_rows * 64
    size32, size16 = (tmp_path / 'f32.h5').stat().st_size, (tmp_path / 'f16.h5').stat().st_size
    assert size32 - size16 == 2 * data_bytes  # the contiguous data part halves, nothing else changes
    ds = FeatureDataset(tmp_path / 'f16.h5')
    assert ds[0][0].dtype == torch.float32
    with pytest.raises(ValueError, match='overflow float16'):
        build_store(tmp_path / 'big.h5', make_info(dtype='float16'), [(vid, feats * 1e5, meta)])


def test_gzip_option(tmp_path):
    vid, feats, meta = make_video('v', 200)
    build_store(tmp_path / 'z.h5', make_info(), [(vid, feats, meta)], compression='gzip', compression_opts=4)
    with h5py.File(tmp_path / 'z.h5', 'r') as f:
        assert f['v'].compression == 'gzip' and f['v'].chunks is not None
        np.testing.assert_array_equal(f['v'][()], feats)


# ---------------------------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------------------------
def test_clear_errors(tmp_path):
    missing = tmp_path / 'missing.h5'
    with pytest.raises(FileNotFoundError, match=f'feature store {missing} does not exist'):
        FeatureStore.open(missing)
    text = tmp_path / 'notes.h5'
    text.write_text('hello')
    with pytest.raises(FeatureStoreError, match=f'{text} is not an HDF5 file'):
        FeatureStore.open(text)
    foreign = tmp_path / 'tsp.h5'  # an HDF5 feature file from elsewhere, without our attributes
    with h5py.File(foreign, 'w') as f:
        f['v'] = np.zeros((3, 4), np.float32)
    with pytest.raises(FeatureStoreError, match=f"{foreign} .*no 'schema_version'"):
        FeatureStore.open(foreign)
    newer = tmp_path / 'newer.h5'
    build_store(newer, make_info(), [make_video('v', 40)])
    with h5py.File(newer, 'a') as f:
        f.attrs['schema_version'] = 99
    with pytest.raises(FeatureStoreError, match='schema_version 99, newer than the 1'):
        FeatureStore.open(newer)
    good = tmp_path / 'good.h5'
    build_store(good, make_info(), [make_video('v', 40)])
    with FeatureStore.open(good) as store:
        with pytest.raises(UnknownVideoError, match=f"video id 'video_x' is not in feature store {good}") as e:
            store.read('video_x')
        assert isinstance(e.value, KeyError)
        with pytest.raises(KeyError, match='video_x'):
            store.meta('video_x')
    with pytest.raises(FileExistsError, match='build_store'):
        FeatureStore.create(good, make_info())
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float16'"):
        make_info(dtype='bfloat16')


def test_bench_store_smoke(tmp_path):
    """The timings depend on the machine; the sizes, the measures taken and the ratios between them do not."""
    from feature_store.bench import bench_store
    res = bench_store(tmp_path, num_videos=4, rows=32, dim=16, repeats=1)
    reads = ['bytes', 'write_s', 'read_sequential_s', 'read_random_s', 'window_ms']
    for kind in ('h5_fp32', 'h5_fp16', 'npy_fp32', 'npy_fp16'):
        store_only = ['read_with_meta_s', 'read_plain_h5py_s', 'meta_ms'] if kind.startswith('h5') else []
        assert list(res['results'][kind]) == reads + store_only
    sizes = {kind: r['bytes'] for kind, r in res['results'].items()}
    # npy: 4 videos * (32 rows * 16 dims * 4 or 2 bytes + a 128-byte v1 header); the store's contiguous data halves
    assert (sizes['npy_fp32'], sizes['npy_fp16']) == (4 * (32 * 16 * 4 + 128), 4 * (32 * 16 * 2 + 128))
    assert sizes['h5_fp32'] - sizes['h5_fp16'] == 4 * 32 * 16 * 2
    results, ratios = res['results'], res['ratios']
    assert ratios['bytes fp16/fp32 h5'] == sizes['h5_fp16'] / sizes['h5_fp32']
    for dt in ('fp32', 'fp16'):
        assert ratios[f'h5/npy window_ms {dt}'] == results[f'h5_{dt}']['window_ms'] / results[f'npy_{dt}']['window_ms']
        assert ratios[f'h5/npy read_plain_h5py_s {dt}'] == (results[f'h5_{dt}']['read_plain_h5py_s']
                                                             / results[f'npy_{dt}']['read_sequential_s'])
    assert res['params'] == {'num_videos': 4, 'rows': 32, 'dim': 16, 'window': 64, 'num_windows': 200, 'repeats': 1,
                             'cache': 'warm'}
    assert not (tmp_path / 'bench_store').exists()


def test_bad_per_video_attributes_are_reported(tmp_path):
    path = tmp_path / 'f.h5'
    build_store(path, make_info(), [make_video('v', 40), make_video('w', 40), make_video('x', 40)])
    with h5py.File(path, 'a') as f:
        f['v'].attrs['centre_frames'] = np.arange(3)  # 7 rows in the dataset
        del f['w'].attrs['stride']
        f['x'].attrs['fps'] = np.float32(25.0)  # another writer's dtypes are converted
        f['x'].attrs['centre_frames'] = (8 + 4 * np.arange(7)).astype(np.int32)
    with FeatureStore.open(path) as store:
        with pytest.raises(FeatureStoreError, match="'/v' .*'centre_frames' has 3 values, expected 7"):
            store.meta('v')
        with pytest.raises(FeatureStoreError, match=r"'w' lacks attributes \['stride'\]"):
            store.read('w')
        meta = store.meta('x')
        assert meta.fps == 25.0 and meta.centre_frames.dtype == np.int64 and meta.centre_frames[-1] == 32


def test_read_features_is_the_data_of_read_and_rejects_non_videos(tmp_path):
    """The fast low-level read returns exactly what the high-level path and plain h5py return, in either dtype."""
    path = tmp_path / 'f.h5'
    videos = [make_video('a', 60, seed=3), make_video('dir/b', 40, seed=4)]
    build_store(path, make_info(), videos)
    with FeatureStore.open(path) as store, h5py.File(path, 'r') as f:
        for video_id, feats, _ in videos:
            got = store.read_features(video_id)
            np.testing.assert_array_equal(got, feats)
            np.testing.assert_array_equal(got, f[video_id][()])
            assert got.dtype == np.float32 and got.flags.writeable
            assert store.read_features(video_id, np.float64).dtype == np.float64
        for bad in ('missing', 'dir', '__incomplete__/x'):  # absent, a group, the reserved scratch group
            with pytest.raises(UnknownVideoError, match=f"video id '{bad}' is not in feature store"):
                store.read_features(bad)


@pytest.mark.parametrize('start,stop', [(0, 5), (3, 9), (10, 13), (12, 100), (13, 13), (50, 60), (0, 0)])
def test_read_window_matches_numpy_slicing(tmp_path, start, stop):
    path = tmp_path / 'f.h5'
    video = make_video('a', 60, seed=5)  # (60 - 16) // 4 + 1 = 12 rows
    build_store(path, make_info(), [video])
    with FeatureStore.open(path) as store:
        got = store.read_window('a', start, stop)
    assert got.shape[0] == len(range(12)[start:stop])
    np.testing.assert_array_equal(got, video[1][start:stop])


# ---------------------------------------------------------------------------------------------------------------------
# npy and part files are never unpickled (docs/security.md#npy-and-npz-files)
# ---------------------------------------------------------------------------------------------------------------------
class Call:
    """Pickles as ``func(*args)``: what an object array's pickle can make its loader run."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_npy_and_part_files_with_pickles_are_refused_naming_the_file(tmp_path):
    import pickle

    marker = tmp_path / 'ran'
    payload = np.empty(1, dtype=object)
    payload[0] = Call(os.system, f'touch {marker}')
    bare = tmp_path / 'bare'
    bare.mkdir()
    np.save(bare / 'a.npy', payload, allow_pickle=True)
    np.load(bare / 'a.npy', allow_pickle=True)  # the payload is live: numpy's unpickling runs it
    assert marker.exists()
    marker.unlink()
    facts = dict(fps=30.0, num_frames=100, clip_len=16, stride=4)
    for content, found in ((None, "Array can't be memory-mapped: Python objects in dtype"),
                           (pickle.dumps(payload[0]), 'pickled (object) data'),
                           (b'\x93NUMPY\x01\x00', 'EOF')):
        if content is not None:
            (bare / 'a.npy').write_bytes(content)
        with pytest.raises(FeatureStoreError, match=rf'{bare / "a.npy"}: not a readable .npy array of numbers '
                                                    rf'.*{re.escape(found)}'):
            import_npy(bare, tmp_path / 'x.h5', make_info(), **facts)
    np.savez(bare / 'a.npy', features=np.zeros((3, 4)))
    (bare / 'a.npy.npz').rename(bare / 'a.npy')
    with pytest.raises(FeatureStoreError, match=rf'{bare / "a.npy"}: expected a 2-d \[T, C\] array of numbers, found '
                                                'an .npz archive'):
        import_npy(bare, tmp_path / 'x.h5', make_info(), **facts)
    np.save(bare / 'a.npy', np.array(['text', 'rows']))
    with pytest.raises(FeatureStoreError, match=r'found a <U4 array of shape \(2,\)'):
        import_npy(bare, tmp_path / 'x.h5', make_info(), **facts)
    # with a sidecar, each file is read whole
    build_store(tmp_path / 'f.h5', make_info(), [make_video('v', 40)])
    export_npy(tmp_path / 'f.h5', tmp_path / 'npy')
    np.save(tmp_path / 'npy' / 'v.npy', payload, allow_pickle=True)
    with pytest.raises(FeatureStoreError, match=rf'{tmp_path / "npy" / "v.npy"}: .*Object arrays cannot be loaded'):
        import_npy(tmp_path / 'npy', tmp_path / 'y.h5')
    # a part file
    parts = tmp_path / 'parts'
    path = write_part(parts, *make_video('v', 40))
    with np.load(path) as part:
        meta = part['meta']
    np.savez(path, features=payload, video_id=np.array('v'), meta=meta)
    with pytest.raises(FeatureStoreError, match=rf'part file {path} is unreadable: Object arrays cannot be loaded'):
        list(read_parts(parts))
    assert not marker.exists()
    assert not (tmp_path / 'x.h5').exists() and not (tmp_path / 'y.h5').exists()
