"""Samplers against hand-computed indices and against mmaction2's own sampling transforms."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from tasks.data.video import ClipSample, dense_sample, keyframe_sample, segment_sample, sliding_window_sample


@pytest.fixture(scope='module')
def mm():
    """mmaction2's ``datasets/transforms/loading.py`` (SampleFrames, UniformSample, ...).

    Loaded from its file with registration disabled, so the test neither pays for ``mmaction.datasets`` (which
    imports scipy.stats and every dataset) nor registers the classes twice if another test imports them normally.
    """
    mmaction = pytest.importorskip('mmaction', reason='mmaction2 is the reference implementation')
    from mmaction.registry import TRANSFORMS

    path = Path(mmaction.__file__).parent / 'datasets' / 'transforms' / 'loading.py'
    spec = importlib.util.spec_from_file_location('_mmaction_loading_reference', path)
    module = importlib.util.module_from_spec(spec)
    with mock.patch.object(TRANSFORMS, 'register_module', lambda *a, **k: (lambda cls: cls)):
        spec.loader.exec_module(module)
    return module


FRAME_COUNTS = [1, 5, 15, 16, 30, 60, 61, 63, 64, 65, 100, 237, 300, 1001]


# --------------------------------------------------------------------------------------------------------------------
# dense (Kinetics)
# --------------------------------------------------------------------------------------------------------------------

def test_dense_official_test_hand_computed():
    # every 4th frame of 300 -> 75 entries; 5 starts int(k * (75 - 16) / 4) = int(k * 14.75) = 0, 14, 29, 44, 59
    s = dense_sample(300, num_clips=5, test_mode=True, fps=30.0)
    starts = [0, 14, 29, 44, 59]
    np.testing.assert_array_equal(s.indices, [[4 * (b + j) for j in range(16)] for b in starts])
    np.testing.assert_array_equal(s.centres, [4 * (b + 8) for b in starts])
    assert (s.num_clips, s.clip_len, s.frame_interval, s.num_frames, s.fps) == (5, 16, 4, 300, 30.0)
    np.testing.assert_allclose(s.centre_seconds, np.array([4 * (b + 8) for b in starts]) / 30.0)
    one = dense_sample(300, num_clips=1, test_mode=True)  # the middle run: start (75 - 16) // 2 = 29
    np.testing.assert_array_equal(one.indices, [[4 * (29 + j) for j in range(16)]])


@pytest.mark.parametrize('n', FRAME_COUNTS)
def test_dense_official_test_matches_restated_loader(n):
    """VideoClsDataset test mode restated: a buffer of every 4th frame, padded, sliced at int(k * step)."""
    buffer = list(range(0, n, 4))
    while len(buffer) < 16:
        buffer.append(buffer[-1])
    step = max(1.0 * (len(buffer) - 16) / (5 - 1), 0)
    expected = [buffer[int(k * step):int(k * step) + 16] for k in range(5)]
    np.testing.assert_array_equal(dense_sample(n, num_clips=5, test_mode=True).indices, expected)


def test_dense_official_test_short_video_pads_with_last_sampled_frame():
    # 30 frames -> 0, 4, ..., 28 (8 entries), padded with 28 to 16; every clip is the same
    s = dense_sample(30, num_clips=5, test_mode=True)
    expected = [0, 4, 8, 12, 16, 20, 24, 28] + [28] * 8
    np.testing.assert_array_equal(s.indices, [expected] * 5)


def test_dense_official_train_window():
    # a 64-frame window [start, start + 64): 16 evenly spaced frames start + floor(j * 64 / 15), the last clipped to 63
    offsets = [(j * 64) // 15 for j in range(15)] + [63]
    starts = set()
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        s = dense_sample(300, generator=g)
        start = s.indices[0, 0]
        np.testing.assert_array_equal(s.indices[0], start + np.array(offsets))
        assert s.centres[0] == start + offsets[8]
        starts.add(int(start))
    assert min(starts) >= 0 and max(starts) <= 235  # end uniform in [64, 300), start = end - 64
    assert len(starts) > 100  # actually random
    a = dense_sample(300, generator=torch.Generator().manual_seed(5)).indices
    b = dense_sample(300, generator=torch.Generator().manual_seed(5)).indices
    np.testing.assert_array_equal(a, b)


def test_dense_official_train_short_video():
    # 20 frames <= 64: 20 // 4 = 5 evenly spaced frames linspace(0, 20, 5) = 0, 5, 10, 15, 20 -> clipped to 19,
    # then padded with the last frame
    s = dense_sample(20, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(s.indices[0], [0, 5, 10, 15] + [19] * 12)


def test_dense_mmaction2_test_hand_computed():
    # span' = 15 * 4 + 1 = 61, max offset 239, starts round(k * 59.75) = 0, 60, 120 (119.5 rounds to even), 179, 239
    s = dense_sample(300, num_clips=5, test_mode=True, protocol='mmaction2')
    np.testing.assert_array_equal(s.indices[:, 0], [0, 60, 120, 179, 239])
    np.testing.assert_array_equal(s.indices[:, 15], [60, 120, 180, 239, 299])


@pytest.mark.parametrize('num_clips', [1, 2, 5])
def test_dense_mmaction2_test_matches_sampleframes(mm, num_clips):
    ref = mm.SampleFrames(16, 4, num_clips, test_mode=True, out_of_bound_opt='repeat_last')
    for n in FRAME_COUNTS:
        expected = ref.transform({'total_frames': n, 'start_index': 0})['frame_inds']
        ours = dense_sample(n, num_clips=num_clips, test_mode=True, protocol='mmaction2')
        np.testing.assert_array_equal(ours.indices.ravel(), expected, err_msg=f'n={n}')


def test_dense_mmaction2_train_range():
    g = torch.Generator().manual_seed(1)
    starts = {int(dense_sample(300, protocol='mmaction2', generator=g).indices[0, 0]) for _ in range(300)}
    assert min(starts) >= 0 and max(starts) <= 300 - 64  # avg_interval = 237: start in [0, 236]
    s = dense_sample(300, protocol='mmaction2', generator=g)
    np.testing.assert_array_equal(np.diff(s.indices[0]), 4)


# --------------------------------------------------------------------------------------------------------------------
# segments (SSv2)
# --------------------------------------------------------------------------------------------------------------------

def _official_ssv2_test(n: int, segments: int = 16) -> list[list[int]]:
    """The official test procedure restated: both offset lists, sorted together, then every other entry."""
    tick = n / float(segments)
    both = sorted([int(tick / 2.0 + tick * x) for x in range(segments)] + [int(tick * x) for x in range(segments)])
    return [both[0::2], both[1::2]]


def test_segment_official_test_hand_computed():
    # n = 50, tick = 50 / 16: starts floor(50 i / 16), midpoints floor((50 i + 25) / 16), in exact integer arithmetic
    s = segment_sample(50, num_clips=2, test_mode=True)
    np.testing.assert_array_equal(s.indices[0], [(50 * i) // 16 for i in range(16)])
    np.testing.assert_array_equal(s.indices[1], [(50 * i + 25) // 16 for i in range(16)])
    assert s.frame_interval is None and s.sampler == 'segment/official/test'


@pytest.mark.parametrize('n', FRAME_COUNTS)
def test_segment_official_test_matches_sorted_formulation(n):
    np.testing.assert_array_equal(segment_sample(n, num_clips=2, test_mode=True).indices, _official_ssv2_test(n))


def test_segment_official_train():
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(100):
        idx = segment_sample(50, generator=g).indices[0]  # segment length 50 // 16 = 3: frame 3 i + {0, 1, 2}
        offsets = idx - 3 * np.arange(16)
        assert offsets.min() >= 0 and offsets.max() <= 2
        seen.update(offsets.tolist())
    assert seen == {0, 1, 2}
    # shorter than the number of segments: each frame once, then the last frame repeated
    np.testing.assert_array_equal(segment_sample(10, generator=g).indices[0], list(range(10)) + [9] * 6)


@pytest.mark.parametrize('num_clips', [1, 2, 3])
def test_segment_mmaction2_test_matches_uniformsample(mm, num_clips):
    ref = mm.UniformSample(16, num_clips, test_mode=True)
    for n in FRAME_COUNTS:
        expected = ref.transform({'total_frames': n, 'start_index': 0})['frame_inds']
        ours = segment_sample(n, num_clips=num_clips, test_mode=True, protocol='mmaction2')
        np.testing.assert_array_equal(ours.indices.ravel(), expected, err_msg=f'n={n}')


def test_segment_mmaction2_train_within_segments():
    g = torch.Generator().manual_seed(0)
    size = (100 - 1) / 16
    lo = np.array([int(np.round(size * i)) for i in range(16)])
    hi = np.array([int(np.round(size * (i + 1))) for i in range(16)])
    for _ in range(50):
        idx = segment_sample(100, protocol='mmaction2', generator=g).indices[0]
        assert np.all(idx >= lo) and np.all(idx <= hi)


# --------------------------------------------------------------------------------------------------------------------
# sliding windows (temporal localization)
# --------------------------------------------------------------------------------------------------------------------

def test_sliding_official_hand_computed():
    # extract_tad_feature.py: range(0, n - 15, 4) for n = 40 -> 0, 4, ..., 24 (7 = (40 - 16) // 4 + 1 clips)
    s = sliding_window_sample(40, clip_len=16, stride=4, fps=25.0)
    assert s.num_clips == len(range(0, 40 - 15, 4)) == 7
    np.testing.assert_array_equal(s.indices, [list(range(b, b + 16)) for b in range(0, 25, 4)])
    np.testing.assert_array_equal(s.centres, [b + 8 for b in range(0, 25, 4)])  # ActionFormer's 0.5 * num_frames
    # FineAction: stride 16
    np.testing.assert_array_equal(sliding_window_sample(70, stride=16).indices[:, 0], [0, 16, 32, 48])


def test_sliding_official_frame_interval_and_short_video():
    s = sliding_window_sample(20, clip_len=4, frame_interval=3, stride=5)  # span 10: starts 0, 5, 10
    np.testing.assert_array_equal(s.indices, [[0, 3, 6, 9], [5, 8, 11, 14], [10, 13, 16, 19]])
    np.testing.assert_array_equal(s.centres, [6, 11, 16])
    short = sliding_window_sample(10, clip_len=16, stride=4)  # one clip, padded with the last frame
    np.testing.assert_array_equal(short.indices, [list(range(10)) + [9] * 6])


def test_sliding_centred_hand_computed():
    # centres 4 // 2 + 4 k = 2, 6 for n = 10; frames centre - 2 .. centre + 1, clipped
    s = sliding_window_sample(10, clip_len=4, stride=4, mode='centred')
    np.testing.assert_array_equal(s.indices, [[0, 1, 2, 3], [4, 5, 6, 7]])
    np.testing.assert_array_equal(s.centres, [2, 6])
    s = sliding_window_sample(10, clip_len=8, stride=4, mode='centred')
    np.testing.assert_array_equal(s.indices, [[0, 0, 0, 1, 2, 3, 4, 5], [2, 3, 4, 5, 6, 7, 8, 9]])


@pytest.mark.parametrize('clip_len, stride, interval', [(16, 4, 1), (16, 16, 1), (8, 8, 2), (15, 4, 3)])
def test_sliding_centred_matches_untrimmedsampleframes(mm, clip_len, stride, interval):
    ref = mm.UntrimmedSampleFrames(clip_len, stride, interval)
    for n in FRAME_COUNTS:
        if n <= stride // 2:
            continue  # mmaction2 makes no clip and fails; we pad one
        expected = ref.transform({'total_frames': n, 'start_index': 0})['frame_inds']
        ours = sliding_window_sample(n, clip_len=clip_len, frame_interval=interval, stride=stride, mode='centred')
        np.testing.assert_array_equal(ours.indices.ravel(), expected, err_msg=f'n={n}')


# --------------------------------------------------------------------------------------------------------------------
# keyframe (AVA)
# --------------------------------------------------------------------------------------------------------------------

def test_keyframe_hand_computed():
    # keyframe 902 s in a clip starting at 900 s, 30 fps -> frame 60; 8 frames before and 7 after at interval 4
    s = keyframe_sample(27030, 902, 30, timestamp_start=900)
    np.testing.assert_array_equal(s.indices[0], np.arange(28, 90, 4))
    assert s.centres[0] == 60 and s.centre_seconds[0] == pytest.approx(2.0)
    edge = keyframe_sample(100, 900.1, 30, timestamp_start=900)  # centre frame 3: frames before 0 clipped
    np.testing.assert_array_equal(edge.indices[0], np.clip(3 + 4 * (np.arange(16) - 8), 0, 99))


def test_keyframe_matches_sampleavaframes(mm):
    for clip_len, interval in [(16, 4), (15, 3), (8, 8)]:
        ref = mm.SampleAVAFrames(clip_len, interval, test_mode=True)
        for n in [10, 100, 5000]:
            for t in [0, 1, 2, 5, 166]:
                results = {'fps': 30, 'timestamp': 900 + t, 'timestamp_start': 900, 'total_frames': n}
                expected = ref.transform(results)['frame_inds']
                ours = keyframe_sample(n, 900 + t, 30, clip_len=clip_len, frame_interval=interval,
                                       timestamp_start=900)
                np.testing.assert_array_equal(ours.indices[0], expected, err_msg=f'n={n} t={t}')


def test_keyframe_jitter():
    g = torch.Generator().manual_seed(0)
    base = 60 + 4 * (np.arange(16) - 8)
    seen = set()
    for _ in range(50):
        s = keyframe_sample(1000, 902, 30, timestamp_start=900, jitter=True, generator=g)
        seen.update((s.indices[0] - base).tolist())
        assert s.centres[0] == 60
    assert seen == {-2, -1, 0, 1}  # randint(-4 // 2, (4 + 1) // 2) as in mmaction2


# --------------------------------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------------------------------

def test_bad_arguments():
    with pytest.raises(ValueError, match='num_frames'):
        dense_sample(0)
    with pytest.raises(ValueError, match='protocol'):
        segment_sample(10, protocol='tsn')
    with pytest.raises(ValueError, match='mode'):
        sliding_window_sample(10, mode='middle')
    with pytest.raises(ValueError, match='stride'):
        sliding_window_sample(10, stride=0)
    with pytest.raises(ValueError, match='fps'):
        sliding_window_sample(10).centre_seconds
    assert isinstance(sliding_window_sample(10), ClipSample)


def test_keyframe_by_timestamps_is_the_frame_shown_at_that_time():
    # constant 30 fps: the same frame as round(30 * (t - start)), for every AVA second of a 15-minute clip
    ts = np.arange(27001) / 30
    for t in (900, 901, 1350, 1799):
        by_time = keyframe_sample(len(ts), t, 30.0, timestamp_start=900, timestamps=ts)
        assert by_time.centres[0] == keyframe_sample(len(ts), t, 30.0, timestamp_start=900).centres[0]
    # variable rate (30 fps for 10 s, then 15 fps): frame arithmetic at the average rate misses by seconds
    ts = np.concatenate([np.arange(300) / 30, 10 + np.arange(300) / 15])
    avg = len(ts) / (ts[-1] + 1 / 15)
    sample = keyframe_sample(len(ts), 920, avg, timestamp_start=900, timestamps=ts)
    assert sample.centres[0] == 300 + 150  # 20 s = 10 s at 30 fps + 10 s at 15 fps, by hand
    assert abs(ts[int(round(avg * 20))] - 20) > 3  # what the average rate would give
    assert list(sample.indices[0][:2]) == [450 - 8 * 4, 450 - 7 * 4]
    # between two frames: the nearer one (the earlier on a tie); outside the video: clipped as before
    assert keyframe_sample(len(ts), 900 + 10 + 1 / 15 * 0.6, avg, timestamp_start=900,
                           timestamps=ts).centres[0] == 301
    late = keyframe_sample(len(ts), 900 + 60, avg, timestamp_start=900, timestamps=ts)
    assert late.indices[0].max() == len(ts) - 1


def test_frames_at_rate_takes_the_frame_shown_nearest_each_instant():
    from tasks.data.video import frames_at_rate

    ts = np.arange(90) / 30  # 3 s at 30 fps
    np.testing.assert_array_equal(frames_at_rate(ts, 3.0, 15), np.arange(0, 90, 2))  # every other frame
    np.testing.assert_array_equal(frames_at_rate(ts, 3.0, 60), np.repeat(np.arange(90), 2))  # each twice
    assert len(frames_at_rate(ts, 3.0, 7)) == 21
    # a variable rate against brute force: argmin |ts - k / rate| (earliest on a tie)
    ts = np.concatenate([np.arange(20) / 25, 0.8 + np.arange(20) / 12.5])
    got = frames_at_rate(ts, 2.4, 8)
    want = [int(np.argmin(np.abs(ts - k / 8))) for k in range(19)]
    np.testing.assert_array_equal(got, want)
    assert frames_at_rate(np.array([0.0]), 0.04, 25).tolist() == [0]  # a one-frame video
    with pytest.raises(ValueError, match='rate must be positive'):
        frames_at_rate(ts, 2.4, 0)
