"""The time axis of a store: rows <-> seconds from the container's timestamps (``centre_times``), and through fps
for stores written before it was recorded.

The variable-frame-rate case is the one the user found: 100 frames at 25 fps, then 12.5 fps. Frame 200 is at
100 / 25 + 100 / 12.5 = 12.0 s by hand; the average-fps mapping puts it 0.7 s away.
"""
from __future__ import annotations

import numpy as np
import pytest

from feature_store import FeatureStore, StoreInfo, VideoFeatureMeta, build_store
from tasks.data.video.sampling import sliding_window_sample


def vfr_timestamps(n: int = 300) -> np.ndarray:
    i = np.arange(n, dtype=np.float64)
    return np.where(i < 100, i / 25, 4.0 + (i - 100) / 12.5)


def vfr_meta(video_id: str = 'phone') -> VideoFeatureMeta:
    ts = vfr_timestamps()
    fps = len(ts) / (ts[-1] + 1 / 12.5)  # what the container reports as average rate: 15.79
    sample = sliding_window_sample(len(ts), clip_len=16, stride=4, fps=fps)
    return VideoFeatureMeta.from_clip_sample(video_id, sample, stride=4, timestamps=ts, variable_frame_rate=True)


def test_centre_times_place_rows_of_a_variable_frame_rate_video():
    meta = vfr_meta()
    # official windows: row r is centred on frame 4 r + 8, so frame 200 is row 48
    assert meta.centre_frames[48] == 200
    assert meta.row_to_seconds(48) == pytest.approx(12.0)
    assert meta.row_to_seconds(48) - meta.centre_frames[48] / meta.fps == pytest.approx(12.0 - 200 / meta.fps)
    assert abs(12.0 - 200 / meta.fps) > 0.6  # the error the fps mapping made
    assert meta.row_to_seconds(23) == pytest.approx(100 / 25)  # frame 100, the switch
    assert meta.row_to_seconds(22.5) == pytest.approx((96 / 25 + 100 / 25) / 2)  # between rows 22, 23: linear
    # inverse, inside and beyond the rows (stride / fps seconds per row there)
    for t in (0.5, 4.0, 7.3, 12.0, 20.0):
        assert meta.row_to_seconds(meta.seconds_to_row(t)) == pytest.approx(t)
    last = meta.num_rows - 1
    assert meta.row_to_seconds(last + 2) == pytest.approx(meta.centre_times[-1] + 2 * 4 / meta.fps)
    assert meta.row_to_seconds(-1) == pytest.approx(meta.centre_times[0] - 4 / meta.fps)
    assert meta.row_to_seconds(last + 100, clip=True) == pytest.approx(meta.duration)


def test_constant_frame_rate_gives_the_fps_mapping():
    """For a constant-rate video the recorded times equal ActionFormer's (grid * 4 + 8) / fps."""
    n, fps = 120, 29.97
    sample = sliding_window_sample(n, clip_len=16, stride=4, fps=fps)
    with_times = VideoFeatureMeta.from_clip_sample('v', sample, stride=4, timestamps=np.arange(n) / fps)
    without = VideoFeatureMeta.from_clip_sample('v', sample, stride=4)
    rows = np.linspace(-2, with_times.num_rows + 2, 57)
    np.testing.assert_allclose(with_times.row_to_seconds(rows), (rows * 4 + 8) / fps, atol=1e-9)
    np.testing.assert_allclose(without.row_to_seconds(rows), (rows * 4 + 8) / fps, atol=1e-9)
    np.testing.assert_allclose(with_times.seconds_to_row([1.0, 2.5]), without.seconds_to_row([1.0, 2.5]), atol=1e-9)


def test_times_are_relative_to_the_first_frame_and_checked():
    ts = vfr_timestamps() + 1.5  # a stream that starts at 1.5 s
    sample = sliding_window_sample(len(ts), clip_len=16, stride=4, fps=15.0)
    meta = VideoFeatureMeta.from_clip_sample('v', sample, stride=4, timestamps=ts)
    assert meta.centre_times[0] == pytest.approx(8 / 25)
    with pytest.raises(ValueError, match='timestamps for 300 frames'):
        VideoFeatureMeta.from_clip_sample('v', sample, stride=4, timestamps=ts[:-1])
    with pytest.raises(ValueError, match='centre_times must be finite and strictly increasing'):
        VideoFeatureMeta('v', 15.0, 300, 20.0, 16, 1, 4, np.array([8, 12]), centre_times=np.array([1.0, 1.0]))


def test_store_round_trip_and_older_stores(tmp_path):
    info = StoreInfo(arch='vit_test', checkpoint_sha256='random-init:0', feature_kind='clip_mean',
                     preprocessing={}, dtype='float32', config={})
    meta = vfr_meta()
    old = VideoFeatureMeta.from_clip_sample('old', sliding_window_sample(40, clip_len=16, stride=4, fps=25.0),
                                            stride=4)
    feats = {m.video_id: np.zeros((m.num_rows, 3), np.float32) for m in (meta, old)}
    out = build_store(tmp_path / 's.h5', info, ((m.video_id, feats[m.video_id], m) for m in (meta, old)))
    with FeatureStore.open(out) as store:
        back = store.meta('phone')
        assert back == meta and back.variable_frame_rate
        np.testing.assert_array_equal(back.centre_times, meta.centre_times)
        assert store.meta('old').centre_times is None  # written without: read through fps as before
        assert store.meta('old').row_to_seconds(1) == pytest.approx(12 / 25)
    assert VideoFeatureMeta.from_dict(meta.to_dict()) == meta  # the npy sidecar keeps them too
    assert 'centre_times' not in old.to_dict()
