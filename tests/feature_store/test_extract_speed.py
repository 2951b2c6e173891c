"""Speed options of the extraction (issue 22): the CPU model's threads by what decoding costs, ``--compile`` and
``--dtype bf16``, and the warm-up kept apart from the steady clips/s.

What is checked against what: the thread rule against hand-chosen per-clip times; a real run's decision against the
rule applied to the times it reports; compiled features against the eager reference store (1e-5) and a compiled run
appending to an eager store; bf16 features against fp32 ones by per-clip cosine similarity (>= 0.999, the issue's
bound), on the tiny fixtures and (slow) vit_small at 224 px on the synthetic benchmark video.
"""
from __future__ import annotations

import re
import time

import numpy as np
import pytest
import torch

from backbone.compile import compile_unavailable_reason
from feature_store import FeatureStore
from feature_store.extract import (
    DECODE_STALL, ExtractConfig, Preprocess, build_model, decode_share_max, extract_to_store, extract_video_features,
    main, model_threads, sample_windows,
)
from feature_store.extract.decode import num_cpus
from feature_store.extract.progress import Progress
from feature_store.extract.threads import ThreadPlan
from tasks.data.video import VideoReader
from tests.feature_store.extract_kit import FRAMES, TINY

pytestmark = pytest.mark.usefixtures('one_thread')  # tiny tensors: one intra-op thread (tests/conftest.py)


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` (N, C) with the same row of ``b``."""
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# ---------------------------------------------------------------------------------------------------------------------
# model threads
# ---------------------------------------------------------------------------------------------------------------------
def test_model_threads_rule_on_hand_chosen_times():
    # vit_small on 2 cores: ~1.7 s a clip on one thread, decoding a 240p window ~17 ms (1 %): every core
    assert model_threads(2, 0, decode_s=0.017, model_s=1.7) == 2
    assert model_threads(2, 2, decode_s=0.017, model_s=1.7) == 2  # cheap decoding in processes: the same
    # the same model at 32 px, where decoding costs a third of the model's time: a core is left to the decoder
    assert model_threads(2, 0, decode_s=0.0063, model_s=0.019) == 1
    # the bound on 2 cores is (1 - 1/2) / DECODE_STALL: 1 s of model on one thread against 0.5 s on two plus stalls
    assert decode_share_max(2, 0) == 0.5 / DECODE_STALL
    assert model_threads(2, 0, decode_s=0.5 / DECODE_STALL, model_s=1.0) == 2
    assert model_threads(2, 0, decode_s=0.5 / DECODE_STALL * 1.01, model_s=1.0) == 1
    # 4 cores, 1 decoder: every core iff 3/4 m + 4 d <= m, i.e. d <= m / 16 at DECODE_STALL 4
    assert model_threads(4, 1, decode_s=1.0, model_s=16.0, stall=4.0) == 4
    assert model_threads(4, 1, decode_s=1.01, model_s=16.0, stall=4.0) == 3
    assert model_threads(4, 1, decode_s=0.2, model_s=1.0, stall=1.0) == 4  # 0.75 + 0.2 <= 1
    # more cores gain less from one more: 2 % of the model's time keeps the decoder's core on 16 cores
    assert model_threads(16, 0, decode_s=0.02, model_s=1.0, stall=4.0) == 15
    assert model_threads(16, 0, decode_s=0.01, model_s=1.0, stall=4.0) == 16
    assert model_threads(8, 3, decode_s=0.005, model_s=0.010) == 5  # 3 decoding processes keep 3 cores
    assert model_threads(2, 4, decode_s=1.0, model_s=1.0) == 1  # never below one thread
    assert model_threads(1, 0, decode_s=1.0, model_s=1.0) == 1
    assert model_threads(4, 1, decode_s=0.0, model_s=0.0) == 3  # nothing measured: the cautious choice
    with pytest.raises(ValueError, match='cores must be >= 1'):
        model_threads(0, 0, 0.1, 1.0)


def test_thread_plan_times_the_batches_after_the_first_then_decides_once():
    plan = ThreadPlan(cores=4, workers=1, cap=4)
    assert (plan.threads, plan.decided) == (3, False)  # cores - decoders while timing
    assert not plan.record(16, decode_s=50.0, model_s=1.0)  # the first batch (warm-up) is not timed
    assert not plan.record(16, decode_s=0.16, model_s=16.0)
    assert plan.record(8, decode_s=0.08, model_s=8.0)  # 0.24 s / 24 clips vs 24 s / 24 clips: 1 %
    assert (plan.threads, plan.decided) == (4, True)
    assert plan.reason == ("4 of 4 cores: decoding takes 10.00 ms a clip, 1.0 % of the model's 1000.00 ms (every core "
                           f'up to {25 / DECODE_STALL:.1f} % here; --model-threads N to choose)')
    assert not plan.record(16, decode_s=100.0, model_s=1.0)  # decided: later batches change nothing
    assert plan.threads == 4
    # expensive decoding keeps the decoder's core; the cap (OMP_NUM_THREADS, torchrun) bounds a decision
    plan = ThreadPlan(cores=4, workers=0, cap=2, skip=0, measure=1)
    assert plan.threads == 2
    assert plan.record(4, decode_s=2.0, model_s=4.0) and plan.threads == 2
    plan = ThreadPlan(cores=4, workers=0, cap=2, skip=0, measure=1)
    assert plan.record(4, decode_s=0.0, model_s=4.0) and plan.threads == 2
    # --model-threads: at once, not capped; nothing beside the model (featmaps): every allowed thread at once
    assert (ThreadPlan(4, 2, cap=1, fixed=3).threads, ThreadPlan(4, 2, cap=1, fixed=3).decided) == (3, True)
    assert (ThreadPlan(4, None, cap=4).threads, ThreadPlan(4, None, cap=4).decided) == (4, True)


def test_a_run_decides_its_threads_by_the_rule_and_restores_them(videos, reference, tmp_path, capsys):
    torch.set_num_threads(2)  # the cap: two threads for the model if decoding is cheap
    cfg = ExtractConfig(arch='vit_test', preprocess=Preprocess('squash', (32, 32)), clip_len=4, stride=2,
                        batch_size=4, num_workers=0, device='cpu')
    result = extract_to_store(videos / 'vid_a.mp4', tmp_path / 'out.h5', cfg, progress=False)
    assert torch.get_num_threads() == 2  # restored after the run
    # 19 windows, 5 batches: the 2nd and 3rd are timed; the decision is the rule's on their times
    assert result.decode_share is not None
    assert result.model_threads == min(2, model_threads(num_cpus(), 0, result.decode_share, 1.0))
    timed_with = min(2, max(1, num_cpus() - 1))  # one core left to the decoding thread while timing
    said = 'extract_features: model threads: ' in capsys.readouterr().err  # said when it changes the threads
    assert said == (result.model_threads != timed_with)
    with FeatureStore.open(result.out) as store, FeatureStore.open(reference) as ref:
        np.testing.assert_allclose(store.read('vid_a')[0], ref.read('vid_a')[0], rtol=0, atol=1e-5)


def test_batch_size_defaults_to_the_device_and_is_recorded(videos, tmp_path):
    """No --batch-size: 4 windows per forward on the CPU (16 on CUDA), resolved before the store's config is written
    (the batch size is information there, not provenance)."""
    from feature_store.extract import default_batch_size

    assert (default_batch_size(torch.device('cpu')), default_batch_size(torch.device('cuda', 1))) == (4, 16)
    cfg = ExtractConfig(arch='vit_test', preprocess=Preprocess('squash', (32, 32)), clip_len=4, stride=2,
                        num_workers=0, device='cpu')
    assert cfg.batch_size is None
    result = extract_to_store(videos / 'vid_b.mp4', tmp_path / 'out.h5', cfg, progress=False)
    with FeatureStore.open(result.out) as store:
        assert store.info.config['batch_size'] == 4
    with pytest.raises(ValueError, match='batch_size must be >= 1, got 0'):
        ExtractConfig(batch_size=0)


def test_model_threads_option_is_used_as_given(videos, tmp_path, capsys):
    cfg = ExtractConfig(arch='vit_test', preprocess=Preprocess('squash', (32, 32)), clip_len=4, stride=2,
                        batch_size=4, num_workers=0, device='cpu', model_threads=2)
    result = extract_to_store(videos / 'vid_b.mp4', tmp_path / 'out.h5', cfg, progress=False)
    assert result.model_threads == 2 and torch.get_num_threads() == 1
    with pytest.raises(ValueError, match='model_threads must be >= 1, got 0'):
        ExtractConfig(model_threads=0)
    with pytest.raises(SystemExit):
        main([str(videos), '--out', str(tmp_path / 'x.h5'), *TINY, '--model-threads', '0'])
    assert 'argument --model-threads: must be >= 1, got 0' in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------------
# warm-up and steady state
# ---------------------------------------------------------------------------------------------------------------------
def test_progress_keeps_the_first_batch_of_each_shape_apart(monkeypatch):
    clock = iter([0.0, 1.0, 3.0, 6.0, 10.0, 15.0, 21.0, 28.0, 36.0])  # batches of 1, 2, ... 8 s
    monkeypatch.setattr(time, 'perf_counter', lambda: next(clock))
    progress = Progress(total=1, enabled=False)
    for n in (16, 16, 16, 5, 16, 5):
        progress.add_clips(n, shape=n)
    # warm-up: the first 16 (1 s) and the first 5 (4 s); steady: 16, 16, 16, 5 clips in 2 + 3 + 5 + 6 s
    split = progress.split
    assert (split.warmup_items, split.warmup_s) == (21, 5.0)
    assert (split.steady_items, split.steady_s, split.steady_rate) == (53, 16.0, 53 / 16)
    split.rewarm()  # compiled: the next batch of each shape compiles
    progress.add_clips(16, shape=16)  # 7 s, warm-up again
    progress.add_clips(16, shape=16)  # 8 s
    assert (split.warmup_items, split.warmup_s, split.steady_items, split.steady_s) == (37, 12.0, 69, 24.0)
    progress.close()


def test_summary_line_gives_the_steady_rate_and_the_warmup(videos, tmp_path, capsys):
    out = tmp_path / 'out.h5'
    assert main([str(videos / 'vid_c.mp4'), '--out', str(out), *TINY]) == 0
    last = capsys.readouterr().err.strip().splitlines()[-1]
    # 29 windows in batches of 4: the first full batch and the last (1 window) are warm-up, 24 clips steady
    assert re.fullmatch(rf'{re.escape(str(out))}: 1 videos extracted \(29 clips, [\d.]+ clips/s after a warm-up of '
                        r'[\d.]+ s for the first 5 clips; 1 model thread \(decoding [\d.]+ % of the model\'s '
                        r'time\)\), 0 already complete, 0 failed', last), last


# ---------------------------------------------------------------------------------------------------------------------
# --compile
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.skipif(compile_unavailable_reason() is not None,
                    reason=f'torch.compile cannot run here: {compile_unavailable_reason()}')
def test_compiled_extraction_equals_eager_and_appends_to_an_eager_store(videos, reference, tmp_path, capsys):
    out = tmp_path / 'out.h5'
    assert main([str(videos / 'vid_a.mp4'), '--out', str(out), *TINY]) == 0  # eager
    capsys.readouterr()
    # compiled after the thread decision (3 batches), so vid_b's later batches and vid_c run compiled blocks
    assert main([str(videos), '--out', str(out), *TINY, '--compile']) == 0  # appended: not a provenance change
    err = capsys.readouterr().err
    assert 'compute     fp32, torch.compile' in err and '(compilation included)' in err, err
    with FeatureStore.open(out) as store, FeatureStore.open(reference) as ref:
        assert store.ids() == sorted(FRAMES)
        assert store.info.config['compile'] is True and not store.info.differences(ref.info)
        for vid in FRAMES:
            diff = np.abs(store.read(vid)[0] - ref.read(vid)[0]).max()
            assert diff <= 1e-5, (vid, diff)


# ---------------------------------------------------------------------------------------------------------------------
# bf16
# ---------------------------------------------------------------------------------------------------------------------
def test_bf16_extraction_is_within_cosine_0999_of_fp32(videos, reference, tmp_path):
    out = tmp_path / 'bf16.h5'
    assert main([str(videos), '--out', str(out), *TINY, '--dtype', 'bf16']) == 0
    with FeatureStore.open(out) as low, FeatureStore.open(reference) as ref:
        for vid in FRAMES:
            a, b = low.read(vid)[0], ref.read(vid)[0]
            assert not np.array_equal(a, b)  # bf16 did run: 8 mantissa bits
            assert _cosine_rows(a, b).min() >= 0.999, (vid, _cosine_rows(a, b).min())


@pytest.mark.slow
def test_bf16_vit_small_at_224_on_the_benchmark_video_is_within_cosine_0999(tmp_path):
    """vit_small (random init: no released weights in the tests) at 224 px on 4 windows of the synthetic benchmark
    video (:func:`feature_store.bench_extract.make_bench_video`, 320x240), batch 4."""
    from feature_store.bench_extract import make_bench_video

    torch.set_num_threads(2)
    video = make_bench_video(tmp_path / 'bench.mp4', seconds=1.0)  # 30 frames: windows at 0, 4, 8, 12
    model = build_model('vit_small', img_size=224, frames=16)
    pre = Preprocess('squash', (224, 224))
    rows = {}
    for dtype in ('fp32', 'bf16'):
        with VideoReader(video) as reader:
            sample = sample_windows(reader, 16, 1, 4)
            assert sample.num_clips == 4
            rows[dtype] = extract_video_features(model, reader, sample, pre, batch_size=4, dtype=dtype).numpy()
    assert _cosine_rows(rows['bf16'], rows['fp32']).min() >= 0.999, _cosine_rows(rows['bf16'], rows['fp32'])
