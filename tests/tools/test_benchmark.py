"""Smoke tests of ``tools/benchmark.py``: every subcommand in-process on tiny settings (``backbone``, ``extract`` and
``pretrain`` on the ``vit_test`` preset, ``store`` on 5 videos of 16 x 8 features, ``memory`` on 1- and 2-s videos;
``all`` in test_benchmark_all.py), and the shared helpers. Nothing here asserts speed or memory; the numbers are
checked for structure, sign and internal consistency (every ratio and projection recomputed from the raw times, sizes
and peaks in the JSON, every target verdict from the stated thresholds), and the FLOP count, model and compiled-model
parity, file sizes and token counts against independently known answers."""
from __future__ import annotations

import contextlib
import io
import json
import math
import statistics
from pathlib import Path

import pytest
import torch

from tests.tools.benchmark_kit import load_tool, parse_table, run_tool, temporary_files

FRAMES, IMG, BATCH, REPEATS = 4, 32, 2, 2


@pytest.fixture(scope='module')
def tool():
    return load_tool()


@pytest.fixture(scope='module')
def backbone_run(tool, tmp_path_factory):
    """One run of ``benchmark.py backbone`` on vit_test: (JSON payload, stdout)."""
    pytest.importorskip('transformers', reason='the backbone benchmark times transformers VideoMAEModel as reference')
    path = tmp_path_factory.mktemp('bench') / 'out' / 'backbone.json'
    threads = torch.get_num_threads()
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
            code = tool.main(['backbone', '--arch', 'vit_test', '--frames', str(FRAMES), '--img-size', str(IMG),
                              '--batch', str(BATCH), '--warmup', '1', '--repeats', str(REPEATS), '--threads', '1',
                              '--peak-size', '64', '--no-compile', '--json', str(path)])
    finally:
        torch.set_num_threads(threads)  # --threads is process-wide; do not leak it into other tests
    assert code == 0
    assert temporary_files(path.parent) == []
    return json.loads(path.read_text()), stdout.getvalue()


def test_backbone_json_structure(backbone_run):
    payload, _ = backbone_run
    assert payload['command'] == 'backbone'
    assert set(payload['speedup']) == {'fp32', 'bf16'}
    assert all(v > 0 for v in payload['speedup'].values())
    assert all(v > 0 for v in payload['peak_gflops'].values())
    assert payload['config']['tokens_per_clip'] == (FRAMES // 2) * (IMG // 16) ** 2
    assert payload['machine']['torch_threads'] == 1
    assert {(r['dtype'], r['impl']) for r in payload['rows']} == {
        (d, i) for d in ('fp32', 'bf16') for i in ('ours', 'hf_sdpa')}
    assert payload['compile'] == {'requested': False, 'unavailable_reason': None}  # --no-compile: no compiled rows
    assert payload['speedup_compiled'] == {}
    for row in payload['rows']:
        for key in ('clips_per_s', 'clips_per_s_min', 'clips_per_s_max', 'ms_per_clip', 'gflop_per_clip', 'gflops',
                    'peak_gflops', 'peak_pct', 'speedup'):
            assert math.isfinite(row[key]) and row[key] > 0, (row['dtype'], row['impl'], key, row[key])
        assert len(row['times_s']) == REPEATS and all(t > 0 for t in row['times_s'])
        assert row['clips_per_s_min'] <= row['clips_per_s'] <= row['clips_per_s_max']
        # Derived columns follow from the raw times.
        assert row['clips_per_s'] == pytest.approx(statistics.median(BATCH / t for t in row['times_s']))
        assert row['ms_per_clip'] == pytest.approx(1000 / row['clips_per_s'])
        assert row['peak_pct'] == pytest.approx(100 * row['gflops'] / payload['peak_gflops'][row['dtype']])


def test_backbone_flops_match_hand_count(backbone_run):
    # vit_test: C=64, L=2, MLP 256, patch 16, tubelet 2. Per clip: Conv3d 2*N*C*(3*2*16*16); per block the Linears
    # qkv (C->3C), proj (C->C), fc1 (C->4C), fc2 (4C->C) = 2*N*12*C^2, and attention q@k^T plus attn@v = 2 * 2*N^2*C.
    n, c, depth = (FRAMES // 2) * (IMG // 16) ** 2, 64, 2
    expected = 2 * n * c * (3 * 2 * 16 * 16) + depth * (2 * n * 12 * c * c + 4 * n * n * c)
    payload, _ = backbone_run
    for row in payload['rows']:
        assert row['gflop_per_clip'] * 1e9 == pytest.approx(expected, rel=1e-9), (row['dtype'], row['impl'])


def test_backbone_models_agree_and_speedup_is_paired_ratio(backbone_run):
    payload, _ = backbone_run
    # Same weights through the HF conversion: the encoders compute the same tokens.
    assert payload['max_abs_diff']['fp32'] <= 1e-5
    assert payload['max_abs_diff']['bf16'] <= 5e-2  # bf16 rounding (eps 2^-8) on O(1) activations
    rows = {(r['dtype'], r['impl']): r for r in payload['rows']}
    for dtype, value in payload['speedup'].items():
        ours, ref = rows[dtype, 'ours']['times_s'], rows[dtype, 'hf_sdpa']['times_s']
        assert value == pytest.approx(statistics.median(r / o for o, r in zip(ours, ref)))
        assert rows[dtype, 'ours']['speedup'] == pytest.approx(value)


def test_backbone_target_verdicts_follow_from_rows(backbone_run):
    payload, stdout = backbone_run
    rows = {(r['dtype'], r['impl']): r for r in payload['rows']}
    targets = payload['targets']
    assert targets == {'fp32': {'speedup_min': 1.0, 'peak_pct_min': 85.0, 'compiled_max_abs_diff': 1e-5},
                       'bf16': {'speedup_min': 1.25, 'peak_pct_min': 70.0}}
    assert payload['best_impl'] == {'fp32': 'ours', 'bf16': 'ours'}  # the only one of ours without compilation
    for dtype in ('fp32', 'bf16'):
        ours = rows[dtype, 'ours']
        assert payload['meets'][f'{dtype}_speedup'] == (ours['speedup'] >= targets[dtype]['speedup_min'])
        assert payload['meets'][f'{dtype}_peak_pct'] == (ours['peak_pct'] >= targets[dtype]['peak_pct_min'])
        word = 'met' if payload['meets'][f'{dtype}_speedup'] else 'BELOW'
        assert (f"{dtype} targets (ours, the faster of ours): {ours['speedup']:.3f}x transformers "
                f"(>= {targets[dtype]['speedup_min']:g}x: {word})") in stdout
    assert 'fp32_compiled_equal' not in payload['meets']
    assert 'compiled rows skipped (--no-compile)' in stdout


def test_backbone_prints_table(backbone_run):
    _, stdout = backbone_run
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith('arch'))
    for column in ('dtype', 'impl', 'clips/s', 'ms/clip', 'GFLOP/s', '% peak', 'speedup'):
        assert column in lines[header]
    body = lines[header + 2:header + 6]
    assert [line.split()[:3] for line in body] == [
        ['vit_test', 'fp32', 'ours'], ['vit_test', 'fp32', 'hf_sdpa'],
        ['vit_test', 'bf16', 'ours'], ['vit_test', 'bf16', 'hf_sdpa']]


def _backbone_fp32(tool, tmp_path: Path) -> tuple[dict, str]:
    """A short ``benchmark.py backbone`` in fp32 only, compiled rows included where they can run."""
    pytest.importorskip('transformers', reason='the backbone benchmark times transformers VideoMAEModel as reference')
    return run_tool(tool, ['backbone', '--arch', 'vit_test', '--frames', str(FRAMES), '--img-size', str(IMG), '--batch',
                       str(BATCH), '--warmup', '0', '--repeats', '1', '--threads', '1', '--peak-size', '64',
                       '--dtypes', 'fp32'], tmp_path / 'backbone.json')


def test_backbone_compiled_rows_equal_eager_with_compile_time_apart(tool, tmp_path):
    from backbone.compile import compile_unavailable_reason

    if (reason := compile_unavailable_reason()) is not None:
        pytest.skip(f'torch.compile cannot run here: {reason}')
    payload, stdout = _backbone_fp32(tool, tmp_path)
    rows = {r['impl']: r for r in payload['rows']}
    assert list(rows) == ['ours', 'ours_compiled', 'hf_sdpa']
    c = payload['compile']['fp32']
    assert c['compile_s'] == pytest.approx(c['first_call_s'] - c['steady_call_s'])
    # compiling is paid in the first call, which is kept out of the timed (steady) calls behind clips/s
    assert c['first_call_s'] > max(rows['ours_compiled']['times_s'])
    assert c['max_abs_diff_vs_eager'] <= 1e-5 and payload['meets']['fp32_compiled_equal']
    assert rows['ours_compiled']['max_abs_diff'] == c['max_abs_diff_vs_eager']
    assert rows['ours_compiled']['gflop_per_clip'] == rows['ours']['gflop_per_clip']  # the same computation
    [hf], [compiled] = rows['hf_sdpa']['times_s'], rows['ours_compiled']['times_s']
    assert payload['speedup_compiled']['fp32'] == pytest.approx(hf / compiled)
    assert rows['ours_compiled']['speedup'] == pytest.approx(hf / compiled)
    assert f"compile time (first call minus a steady call, not in clips/s): fp32 {c['compile_s']:.2f} s" in stdout


def test_backbone_skips_compiled_rows_with_the_reason(tool, tmp_path, monkeypatch):
    import backbone.bench

    monkeypatch.setattr(backbone.bench, 'compile_unavailable_reason', lambda device='cpu': 'no C++ compiler (test)')
    payload, stdout = _backbone_fp32(tool, tmp_path)
    assert [r['impl'] for r in payload['rows']] == ['ours', 'hf_sdpa']
    assert payload['compile'] == {'requested': True, 'unavailable_reason': 'no C++ compiler (test)'}
    assert 'compiled rows skipped: torch.compile is not available here (no C++ compiler (test))' in stdout


@pytest.mark.parametrize('argv, message', [
    (['backbone', '--repeats', '0'], 'argument --repeats: must be >= 1, got 0'),
    (['backbone', '--batch', 'two'], "argument --batch: invalid int value: 'two'"),
    (['backbone', '--dtypes', 'fp8'], "invalid choice: 'fp8'"),
    (['backbone', '--arch', 'vit_tiny'], "invalid choice: 'vit_tiny'"),
    ([], 'COMMAND'),
])
def test_cli_rejects_bad_arguments(tool, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        tool.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_fused_attention_flops_equal_the_explicit_product_on_this_device():
    # Some torch releases have no flop formula for the CPU SDPA kernel (attention then counted 0): the fused call must
    # count q @ k^T and attn @ v like the explicit version, 2 * (2 * B*H*N*N*D) forward, and its backward by torch's
    # formula for the fused kernels.
    from backbone.flops import count_flops
    b, h, n, d = 2, 3, 10, 8
    q, k, v = (torch.randn(b, h, n, d, requires_grad=True) for _ in range(3))
    fused = count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v))
    explicit = count_flops(lambda: ((q @ k.transpose(-2, -1)).softmax(-1) @ v))
    assert fused == explicit == 2 * 2 * b * h * n * n * d
    explicit_train = count_flops(lambda: ((q @ k.transpose(-2, -1)).softmax(-1) @ v).sum().backward())
    assert explicit_train == 3 * explicit  # autograd's backward: 4 products of the forward's size
    fused_train = count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v).sum().backward())
    # torch's formula for the fused (CUDA) backward kernels counts a 5th product: they recompute q @ k^T
    assert fused_train == fused + 5 * fused // 2


def test_count_flops_and_summarize():
    from backbone.bench import summarize
    from backbone.flops import count_flops
    linear = torch.nn.Linear(8, 5)
    x = torch.randn(3, 8)
    assert count_flops(lambda: linear(x)) == 2 * 3 * 8 * 5  # one multiply-add per weight per row
    stats = summarize([4.0, 1.0, 2.0])
    assert (stats.median, stats.minimum, stats.maximum) == (2.0, 1.0, 4.0)
    assert stats.spread_pct == pytest.approx(75.0)  # half of (4 - 1), as a percentage of 2


# ---------------------------------------------------------------------------------------------------------------------
# store
# ---------------------------------------------------------------------------------------------------------------------
VIDEOS, ROWS, DIM = 5, 16, 8


@pytest.fixture(scope='module')
def store_run(tool, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('store')
    payload, stdout = run_tool(tool, ['store', '--num-videos', str(VIDEOS), '--rows', str(ROWS), '--dim', str(DIM),
                                  '--window', '4', '--num-windows', '10', '--repeats', '2', '--tmpdir', str(tmp)],
                           tmp / 'store.json')
    return payload, stdout, tmp


def test_store_json_structure_and_sizes(store_run):
    payload, _, tmp = store_run
    assert payload['command'] == 'store'
    assert payload['config']['num_videos'] == VIDEOS and payload['config']['repeats'] == 2
    results = payload['results']
    assert set(results) == {'h5_fp32', 'h5_fp16', 'npy_fp32', 'npy_fp16'}
    for layout, r in results.items():
        for key in ('write_s', 'read_sequential_s', 'read_random_s', 'window_ms'):
            assert math.isfinite(r[key]) and r[key] > 0, (layout, key)
    # One .npy per video: the 128-byte npy v1 header plus rows x dim values of 4 or 2 bytes.
    assert results['npy_fp32']['bytes'] == VIDEOS * (128 + ROWS * DIM * 4)
    assert results['npy_fp16']['bytes'] == VIDEOS * (128 + ROWS * DIM * 2)
    assert results['h5_fp16']['bytes'] < results['h5_fp32']['bytes']
    assert not (tmp / 'bench_store').exists()  # the benchmark cleans up after itself


def test_store_ratios_follow_from_raw_numbers(store_run):
    payload, _, _ = store_run
    results, speedup = payload['results'], payload['speedup']
    for dt in ('fp32', 'fp16'):
        store, npy = results[f'h5_{dt}'], results[f'npy_{dt}']
        # npy time / store time: above 1 means the store is faster
        assert speedup[dt]['read_sequential'] == pytest.approx(npy['read_sequential_s'] / store['read_sequential_s'])
        assert speedup[dt]['read_random'] == pytest.approx(npy['read_random_s'] / store['read_random_s'])
        assert speedup[dt]['window'] == pytest.approx(npy['window_ms'] / store['window_ms'])
        for order in ('read_sequential', 'read_random'):
            assert payload['meets'][f'{order}_{dt}'] == (speedup[dt][order] >= 1.0)
    assert payload['size_ratio_fp16'] == pytest.approx(results['h5_fp16']['bytes'] / results['npy_fp32']['bytes'])
    assert payload['size_ratios']['h5_fp16/h5_fp32'] == pytest.approx(
        results['h5_fp16']['bytes'] / results['h5_fp32']['bytes'])
    assert payload['meets']['size_fp16'] == (results['h5_fp16']['bytes'] < results['npy_fp32']['bytes'])


def test_store_prints_table(store_run):
    payload, stdout, _ = store_run
    header, body = parse_table(stdout, 'layout')
    for column in ('dtype', 'size MB', 'sequential s', 'random s', 'window ms'):
        assert column in header
    assert [row[:2] for row in body] == [['HDF5 store', 'fp32'], ['npy per video', 'fp32'],
                                         ['HDF5 store', 'fp16'], ['npy per video', 'fp16']]
    # sequential seconds as printed, 3 decimals
    assert float(body[1][3]) == pytest.approx(payload['results']['npy_fp32']['read_sequential_s'], abs=5e-4)


# ---------------------------------------------------------------------------------------------------------------------
# extract
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def extract_run(tool, tmp_path_factory):
    """No --video: the tool generates a 1-s benchmark video (30 frames at 30 fps) into --cache-dir."""
    pytest.importorskip('decord', reason='the official loop being compared reads with decord')
    tmp = tmp_path_factory.mktemp('extract')
    payload, stdout = run_tool(tool, ['extract', '--arch', 'vit_test', '--img-size', '32',
                                  '--cache-dir', str(tmp / 'cache'), '--video-seconds', '1', '--max-windows', '3',
                                  '--batch-size', '2', '--threads', '1'], tmp / 'extract.json')
    return payload, stdout, tmp / 'cache'


def test_extract_generates_and_reuses_the_video(tool, extract_run):
    payload, _, cache = extract_run
    video = Path(payload['config']['video'])
    assert video.parent == cache and [p.name for p in cache.iterdir()] == [video.name]  # no temporary left over
    r = payload['result']
    assert (r['num_frames'], r['fps'], r['width'], r['height']) == (30, 30.0, 320, 240)
    mtime = video.stat().st_mtime_ns
    with contextlib.redirect_stderr(io.StringIO()):
        assert tool.bench_video_path(cache, 1.0, 0) == video
    assert video.stat().st_mtime_ns == mtime  # found, not re-encoded


def test_extract_json_structure_and_projection(extract_run):
    from feature_store.extract import model_threads

    payload, _, _ = extract_run
    r = payload['result']
    # 16-frame windows every 4 frames over 30 frames start at 0, 4, 8, 12 (the official range(0, n - 15, 4)); 3 of
    # them spread over the video: the first, the last and the one at linspace(0, 3, 3)[1] = 1.5 -> 2
    assert (r['windows_total'], r['windows_run'], r['window_indices']) == (4, 3, [0, 2, 3])
    assert list(r['ours']) == ['fp32', 'bf16']  # the default --dtypes, both in the same run
    off = r['official']
    assert (off['batch_size'], off['dtype'], r['ours']['fp32']['batch_size']) == (1, 'fp32', 2)
    # the official loop: decoding of every window measured without the model, plus model time per window x 4
    assert r['decode_only_all_windows']['windows'] == 4
    assert off['basis'] == 'projected' and off['measured']['windows'] == 3
    assert off['decode_s'] == r['decode_only_all_windows']['official_s']
    assert off['model_s'] == pytest.approx(off['measured']['model_s'] / 3 * 4)
    for loop in (off, *r['ours'].values()):
        m = loop['measured']
        assert 0 < m['decode_s'] and 0 < m['model_s'] and 0 < m['total_s']
        assert loop['total_s'] == pytest.approx(loop['decode_s'] + loop['model_s'])
        assert loop['decode_fraction'] == pytest.approx(loop['decode_s'] / loop['total_s'])
        assert loop['clips_per_s'] == pytest.approx(4 / loop['total_s'])
    for ours in r['ours'].values():
        # ours decodes every frame even when sampling: its measured decoding is the whole video's
        assert ours['decode_s'] == ours['measured']['decode_s']
        assert ours['model_s'] == pytest.approx(ours['measured']['model_s'] / 3 * 4)
        # its model threads: the extractor's rule on the measured costs, within --threads 1
        rule = ours['thread_rule']
        decided = model_threads(rule['cores'], 0, rule['decode_ms_per_clip'], rule['model_ms_per_clip'])
        assert ours['torch_threads'] == rule['threads'] == min(1, decided)


def test_extract_features_ratios_and_verdicts(extract_run):
    payload, _, _ = extract_run
    r, speedup, targets = payload['result'], payload['speedup'], payload['targets']
    assert r['features']['fp32']['max_abs_diff'] <= 1e-4  # the same weights and the same computation in both loops
    assert r['features']['bf16']['cosine_min'] >= 0.999  # bf16 autocast rounds, but keeps the direction
    assert 0 < r['features']['fp32']['max_abs_diff'] < r['features']['bf16']['max_abs_diff']
    for dtype in ('fp32', 'bf16'):
        assert speedup[dtype] == pytest.approx(r['official']['total_s'] / r['ours'][dtype]['total_s'])
        assert payload['decode_fraction'][f'ours_{dtype}'] == r['ours'][dtype]['decode_fraction']
    assert speedup['decode'] == pytest.approx(r['official']['decode_s'] / r['ours']['fp32']['decode_s'])
    assert targets['speedup_min'] == {'fp32': 2.0, 'bf16': 3.0}
    assert payload['meets'] == {
        'speedup_fp32': speedup['fp32'] >= 2.0, 'speedup_bf16': speedup['bf16'] >= 3.0,
        'ours_decode_fraction': max(payload['decode_fraction'][f'ours_{d}'] for d in ('fp32', 'bf16')) < 0.10,
        'features_fp32': True, 'features_bf16': True}


def test_extract_prints_table(extract_run):
    payload, stdout, _ = extract_run
    header, body = parse_table(stdout, 'loop')
    for column in ('whole video', 'total s', 'decode s', 'model s', 'decode %', 'clips/s', 'speedup'):
        assert column in header
    assert [row[:2] for row in body] == [['official', 'fp32'], ['ours', 'fp32'], ['ours', 'bf16']]
    assert [row[5] for row in body] == ['projected'] * 3
    assert float(body[2][-1]) == pytest.approx(payload['speedup']['bf16'], abs=0.005)
    assert float(body[1][-3]) == pytest.approx(100 * payload['decode_fraction']['ours_fp32'], abs=0.05)
    assert '3 of 4 windows, spread evenly over the whole video, through the models' in stdout
    assert 'projected whole video: decoding of every window (official: measured without the model' in stdout
    word = 'met' if payload['meets']['speedup_fp32'] else 'BELOW'
    assert f"ours fp32 {payload['speedup']['fp32']:.2f}x (>= 2x: {word})" in stdout


def test_spread_windows_cover_the_whole_video():
    from feature_store.bench_extract import spread_windows

    picked = spread_windows(447, 16)  # a 60-s, 30-fps video's windows
    assert len(picked) == 16 and (picked[0], picked[-1]) == (0, 446)
    assert {b - a for a, b in zip(picked, picked[1:])} <= {29, 30}  # 446 / 15 = 29.7 apart
    assert spread_windows(5, None) == spread_windows(5, 5) == spread_windows(5, 9) == [0, 1, 2, 3, 4]
    assert spread_windows(5, 1) == [0]


# ---------------------------------------------------------------------------------------------------------------------
# pretrain
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def pretrain_run(tool, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('pretrain')
    return run_tool(tool, ['pretrain', '--arch', 'vit_test', '--img-size', '32', '--frames', '4', '--steps', '1',
                       '--warmup', '0'], tmp / 'pretrain.json')


def test_pretrain_json_structure_and_tokens(pretrain_run):
    payload, _ = pretrain_run
    assert payload['command'] == 'pretrain'
    assert payload['config']['threads'] == 1 and payload['machine']['torch_threads'] == 1  # the documented default
    assert payload['config']['grid'] == [2, 2, 2]
    modes = payload['modes']
    # Grid 2 x 2 x 2 = 8 tokens. Tube mask 0.9 hides int(0.9 * 4) = 3 of 4 positions per frame: 2 visible.
    # V1's decoder gets every token back (8); dual keeps half of them (4) next to the 2 visible ones.
    assert modes['v1']['encoder_tokens'] == modes['dual']['encoder_tokens'] == 2
    assert (modes['v1']['decoder_tokens'], modes['dual']['decoder_tokens']) == (8, 6)
    for mode in modes.values():
        assert mode['gmacs_forward'] == pytest.approx(mode['gflops_forward'] / 2)
        assert 0 < mode['gflops_forward'] < mode['gflops_train']
        assert len(mode['step_times_s']) == 1 and mode['step_time_s'] == mode['step_times_s'][0] > 0
        assert mode['saved_activation_mb'] > 0
    # the less the decoder sees, the less it costs
    assert modes['v1']['gflops_forward'] > modes['dual']['gflops_forward']


def test_pretrain_ratios_and_verdicts_follow_from_raw_numbers(pretrain_run):
    payload, _ = pretrain_run
    v1, dual = payload['modes']['v1'], payload['modes']['dual']
    assert payload['flop_ratio'] == pytest.approx(v1['gflops_forward'] / dual['gflops_forward'])
    assert payload['time_ratio'] == pytest.approx(v1['step_time_s'] / dual['step_time_s'])
    assert payload['memory_ratio'] == pytest.approx(v1['saved_activation_mb'] / dual['saved_activation_mb'])
    paper_ratio = 35.48 / 25.87  # V2 paper Table 2 (multiply-adds), ViT-B 16x224
    assert payload['meets'] == {'flops_ratio': abs(payload['flop_ratio'] / paper_ratio - 1) <= 0.03,
                                'step_time_ratio': payload['time_ratio'] >= 1.3,
                                'memory_ratio': payload['memory_ratio'] >= 1.6}


def test_pretrain_prints_tables(pretrain_run):
    payload, stdout = pretrain_run
    header, body = parse_table(stdout, 'mode')
    for column in ('GFLOPs fwd', 'GMACs fwd', 'step s', 'saved act. MiB'):
        assert column in header
    assert [row[0] for row in body] == ['dual (ours)', 'v1 (ours)', 'dual (paper)', 'v1 (paper)']
    assert body[3][3] == '35.48' and body[2][3] == '25.87'  # the paper's numbers under GMACs
    _, ratios = parse_table(stdout, 'v1/dual')
    assert [row[0] for row in ratios][::2] == ['FLOPs fwd', 'step time', 'saved activations']
    assert float(ratios[0][1]) == pytest.approx(payload['flop_ratio'], abs=5e-5)
    assert float(ratios[0][2]) == pytest.approx(35.48 / 25.87, abs=5e-5)


# ---------------------------------------------------------------------------------------------------------------------
# memory (the measurement itself is checked against known allocations in tests/feature_store/test_bench_memory.py)
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def memory_run(tool, tmp_path_factory):
    """Two generated 640x360 videos of 1 and 2 s, extracted by PyAV with one decoding worker."""
    tmp = tmp_path_factory.mktemp('memory')
    payload, stdout = run_tool(tool, ['memory', '--seconds', '1', '2', '--backends', 'pyav', '--num-workers', '1',
                                  '--cache-dir', str(tmp / 'cache'), '--batch-size', '4'], tmp / 'memory.json')
    return payload, stdout, tmp / 'cache'


def test_memory_generates_the_videos_once(tool, memory_run):
    from tasks.data.video import VideoReader

    payload, _, cache = memory_run
    videos = [Path(v) for v in payload['config']['videos']]
    assert sorted(p.name for p in cache.iterdir()) == sorted(v.name for v in videos)
    for video, frames in zip(videos, (30, 60)):
        with VideoReader(video, 'pyav') as r:
            assert (r.num_frames, r.fps, r.meta.width, r.meta.height) == (frames, 30.0, 640, 360)
    mtime = videos[1].stat().st_mtime_ns
    with contextlib.redirect_stderr(io.StringIO()):
        assert tool.bench_video_path(cache, 2.0, 0, tool.MEMORY_VIDEO) == videos[1]
    assert videos[1].stat().st_mtime_ns == mtime  # found, not re-encoded


def test_memory_json_ratio_from_the_two_peaks(memory_run):
    payload, _, _ = memory_run
    assert '--num-workers' not in payload['config']['extract_args']  # set per row
    [row] = payload['rows']
    assert (row['backend'], row['num_workers']) == ('pyav', 1)
    for name in ('short', 'long'):
        m = row[name]
        assert len(m['workers_mb']) <= 1  # a worker shorter-lived than two samples is not counted
        assert m['peak_mb'] == pytest.approx(m['main_mb'] + sum(m['workers_mb']))
        assert 100 < m['main_mb'] and m['tree_rss_sampled_mb'] <= m['peak_mb']  # torch alone takes more than 100
        assert m['seconds'] > 0
    assert row['ratio'] == pytest.approx(row['long']['peak_mb'] / row['short']['peak_mb'])
    assert payload['worst_ratio'] == row['ratio']
    assert payload['meets'] == {'ratio': row['ratio'] <= payload['targets']['ratio_max'] == 1.5}


def test_memory_prints_table(memory_run):
    payload, stdout, _ = memory_run
    header, body = parse_table(stdout, 'backend')
    for column in ('short MiB', 'long MiB', 'long/short'):
        assert column in header
    [row] = body
    assert row[:2] == ['pyav', '1']
    assert float(row[4]) == pytest.approx(payload['rows'][0]['ratio'], abs=0.005)
    assert f"largest long/short ratio (target <= 1.5): {payload['worst_ratio']:.2f}" in stdout


# ---------------------------------------------------------------------------------------------------------------------
# argument handling shared by the subcommands
# ---------------------------------------------------------------------------------------------------------------------
def test_subcommand_defaults_do_not_leak(tool):
    # argparse shares a parent parser's option objects with every child: one parent per subcommand keeps pretrain's
    # defaults (1 thread, 1 warm-up step) out of the other commands.
    parser = tool.build_parser()
    backbone, pretrain = parser.parse_args(['backbone']), parser.parse_args(['pretrain'])
    assert (backbone.threads, backbone.warmup, backbone.repeats) == (None, 2, 5)
    assert (pretrain.threads, pretrain.warmup, pretrain.steps) == (1, 1, 2)
    assert parser.parse_args(['store']).repeats == 3
    extract = parser.parse_args(['extract'])
    assert (extract.arch, extract.max_windows, extract.video, extract.threads) == ('vit_small', None, None, None)
    assert extract.dtypes == ['fp32', 'bf16'] and parser.parse_args(['extract', '--dtype', 'bf16']).dtypes == ['bf16']
    every = parser.parse_args(['all'])
    assert (every.tiny, every.sections, every.threads, every.no_compile) == (False, None, None, False)
    assert every.device == ('cuda' if torch.cuda.is_available() else 'cpu')


@pytest.mark.parametrize('argv, message', [
    (['store', '--rows', '16', '--window', '32'], 'store: --window 32 is longer than a video (--rows 16)'),
    (['store', '--threads', '2'], 'unrecognized arguments: --threads 2'),  # store reads with numpy: no torch threads
    (['extract', '--video', 'no/such/video.mp4'], 'no such file: no/such/video.mp4'),
    (['extract', '--dtype', 'fp16'], "invalid choice: 'fp16'"),
    (['extract', '--max-windows', '-1'], 'must be >= 0'),
    (['memory', '--backends', 'opencv'], "invalid choice: 'opencv'"),
    (['memory', '--seconds', '60'], 'expected 2 arguments'),
    (['pretrain', '--arch', 'vit_tiny'], "invalid choice: 'vit_tiny'"),
    (['pretrain', '--steps', '0'], 'must be >= 1'),
    (['all', '--tiny', '--sections', 'extract', 'nope'],
     "all: --sections: unknown ['nope']; this plan has store pretrain backbone_vit_test extract"),
    (['all', '--device', 'cpu'], 'all: --device cpu: the full plan (ViT-g) is sized for a GPU; on a CPU add --tiny'),
])
def test_new_subcommands_reject_bad_arguments(tool, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        tool.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_pretrain_report_shows_gpu_peak_memory(pretrain_run):
    from backbone.bench_pretrain import format_pretrain_report

    # On CUDA, bench_pretrain adds the peak allocated memory per mode and its ratio; no GPU needed to print them.
    payload = json.loads(json.dumps(pretrain_run[0]))
    payload['modes']['dual']['peak_allocated_mb'], payload['modes']['v1']['peak_allocated_mb'] = 1000.0, 1500.0
    payload['ratios']['peak_allocated'] = 1.5
    stdout = format_pretrain_report(payload)
    header, body = parse_table(stdout, 'mode')
    assert header.split('  ')[-1].strip() == 'peak alloc. MiB'
    assert [row[-1] for row in body[:2]] == ['1000', '1500']
    _, ratios = parse_table(stdout, 'v1/dual')
    assert ratios[-1][:2] == ['peak allocated', '1.5000']
