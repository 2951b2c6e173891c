"""The ``featmap`` feature kind of the store (docs/feature_caching.md#feature-maps-for-ava): (K, C, H', W') per video,
one keyframe per HDF5 chunk, keyframe timestamps and input size as attributes, a part file round trip, and a store of
one kind refused by readers of the other."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from feature_store import FeatureStore, FeatureStoreError, StoreInfo, VideoFeatureMeta, build_store, read_parts, write_part


def featmap_info(dtype: str = 'float16', kind: str = 'featmap') -> StoreInfo:
    return StoreInfo(arch='vit_test', checkpoint_sha256='random-init:0', feature_kind=kind,
                     preprocessing={'short_side': 96}, dtype=dtype,
                     config={'model': {'patch_size': 8, 'img_size': [96, 96]}, 'sampling': {'clip_len': 8}})


def keyframe_meta(video_id: str = 'v') -> VideoFeatureMeta:
    return VideoFeatureMeta(video_id=video_id, fps=30.0, num_frames=210, duration=7.0, clip_len=8, frame_interval=4,
                            stride=30, centre_frames=np.array([60, 90, 120]), centre_times=np.array([2.0, 3.0, 4.0]),
                            timestamps=np.array([902, 903, 904]), input_size=(96, 128))


def test_featmap_round_trip_chunks_and_attrs(tmp_path):
    maps = np.random.default_rng(0).standard_normal((3, 64, 12, 16)).astype(np.float32)
    with FeatureStore.create(tmp_path / 's.h5', featmap_info()) as store:
        store.add('v', maps, keyframe_meta())
    with FeatureStore.open(tmp_path / 's.h5') as store:
        one = store.read_window('v', 1, 2)
        meta = store.meta('v')
        assert store.read_features('v').dtype == np.float16
    np.testing.assert_array_equal(one[0], maps[1].astype(np.float16))
    assert meta.timestamps.tolist() == [902, 903, 904] and meta.input_size == (96, 128)
    assert meta == keyframe_meta()
    with h5py.File(tmp_path / 's.h5') as f:  # plain h5py: one keyframe per chunk, attributes readable
        assert f['v'].chunks == (1, 64, 12, 16)
        assert f['v'].attrs['timestamps'].tolist() == [902, 903, 904]
        assert f.attrs['feature_kind'] == 'featmap'


def test_featmap_part_file_round_trip(tmp_path):
    maps = np.ones((3, 4, 2, 3), np.float32)
    write_part(tmp_path / 'parts', 'v', maps, keyframe_meta())
    (vid, got, meta), = read_parts(tmp_path / 'parts')
    np.testing.assert_array_equal(got, maps)
    assert meta == keyframe_meta()
    build_store(tmp_path / 's.h5', featmap_info('float32'), read_parts(tmp_path / 'parts'))
    with FeatureStore.open(tmp_path / 's.h5') as store:
        np.testing.assert_array_equal(store.read_features('v'), maps)


def test_shapes_of_the_other_kind_are_refused(tmp_path):
    with FeatureStore.create(tmp_path / 'f.h5', featmap_info()) as store, pytest.raises(ValueError, match='featmap'):
        store.add('v', np.ones((3, 64), np.float32), keyframe_meta())
    with FeatureStore.create(tmp_path / 'p.h5', featmap_info(kind='pooled')) as store, \
            pytest.raises(ValueError, match='pooled'):
        store.add('v', np.ones((3, 4, 2, 3), np.float32), keyframe_meta())


def test_a_store_of_one_kind_is_never_read_as_the_other(tmp_path):
    from feature_store import FeatureDataset, export_npy

    with FeatureStore.create(tmp_path / 'f.h5', featmap_info()) as store:
        store.add('v', np.ones((3, 4, 2, 3), np.float32), keyframe_meta())
    with pytest.raises(FeatureStoreError, match="holds 'featmap' features.*FeatureDataset reads 'pooled'"):
        FeatureDataset(tmp_path / 'f.h5')
    with pytest.raises(FeatureStoreError, match='export_npy'):
        export_npy(tmp_path / 'f.h5', tmp_path / 'npy')
    with FeatureStore.open(tmp_path / 'f.h5') as store:
        assert store.require_kind('featmap', 'x') is store
    # the provenance rule: same settings, other kind -> not interchangeable (no merge, no append)
    diff = featmap_info().differences(featmap_info(kind='pooled'))
    assert [d.field for d in diff] == ['feature_kind']
