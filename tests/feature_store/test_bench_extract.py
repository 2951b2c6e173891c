"""The extraction benchmark's body (:func:`feature_store.bench_extract.bench_extract`) on the tiny fixture videos: both
loops on the same windows spread over the video, its warm-up and thread-rule forwards in the timed dtype and shapes,
and the default number of windows. The command around it is tested in tests/tools/test_benchmark.py."""
from __future__ import annotations

import pytest

from tests.feature_store.extract_kit import FRAMES, num_windows

pytest.importorskip('decord', reason='the official loop being compared reads with decord')


def test_bench_extract_runs_both_loops_on_the_same_windows(videos):
    from feature_store.bench_extract import bench_extract

    r = bench_extract(videos / 'vid_a.mp4', 'vit_test', img_size=32, batch_size=2, max_windows=3)
    total = num_windows(FRAMES['vid_a'], 16, 4)  # 40 frames: starts 0, 4, ..., 24
    assert (r['windows_total'], r['windows_run'], r['window_indices']) == (total, 3, [0, total // 2, total - 1])
    # the official loop and ours compute the same features for the same windows
    assert r['features']['fp32']['max_abs_diff'] <= 1e-4 and r['features']['fp32']['cosine_min'] > 0.99999
    for loop in (r['official'], r['ours']['fp32']):
        m = loop['measured']
        assert 0 < m['decode_s'] <= m['total_s'] and 0 < m['model_s'] <= m['total_s'] and m['windows'] == 3
        assert loop['basis'] == 'projected'
        assert loop['decode_fraction'] == pytest.approx(loop['decode_s'] / loop['total_s'])
    assert r['decode_only_all_windows']['windows'] == total
    rule = r['ours']['fp32']['thread_rule']  # on the CPU: the extractor's rule on measured costs
    assert r['ours']['fp32']['torch_threads'] == rule['threads'] >= 1
    assert rule['decode_ms_per_clip'] > 0 and rule['model_ms_per_clip'] > 0


def test_bench_extract_warms_up_and_times_in_the_timed_dtype_and_batch_shapes(videos, monkeypatch):
    import feature_store.bench_extract as bench

    calls = []
    forward = bench.forward_clips

    def recorded(model, clips, dtype='fp32'):
        calls.append((tuple(clips.shape), dtype))
        return forward(model, clips, dtype)

    monkeypatch.setattr(bench, 'forward_clips', recorded)
    r = bench.bench_extract(videos / 'vid_a.mp4', 'vit_test', img_size=32, batch_size=2, max_windows=5,
                            dtypes=('bf16',), decode_only=False)
    # 5 of 7 windows at linspace(0, 6, 5) = 0, 1.5, 3, 4.5, 6, rounded half to even
    assert r['window_indices'] == [0, 2, 3, 4, 6] and 'decode_only_all_windows' not in r
    clip = (3, 16, 32, 32)
    # warm-up: ours in bf16 at its last, smaller batch (1) and its full one (2); then the official loop's fp32 batch 1
    # (which it then runs by itself, without forward_clips)
    assert calls[:3] == [((1, *clip), 'bf16'), ((2, *clip), 'bf16'), ((1, *clip), 'fp32')]
    # the thread rule: one clip twice (the second timed); then ours, timed: the 5 windows regrouped as 2 + 2 + 1
    assert calls[3:5] == [((1, *clip), 'bf16')] * 2
    assert calls[5:] == [((2, *clip), 'bf16'), ((2, *clip), 'bf16'), ((1, *clip), 'bf16')]
    assert r['features']['bf16']['cosine_min'] >= 0.999


def test_bench_extract_default_windows_cover_a_batch():
    from feature_store.bench_extract import default_max_windows

    assert default_max_windows(32, 'cpu') == 32 and default_max_windows(4, 'cpu') == 16
    assert default_max_windows(16, 'cuda') is None  # every window
