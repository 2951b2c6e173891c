"""Smoke tests of ``tools/benchmark.py``: the ``backbone`` subcommand on the tiny ``vit_test`` preset, and the shared
helpers later subcommands reuse. Nothing here asserts speed; the numbers are checked for structure, sign and internal
consistency, and the FLOP count and model parity against independently known answers."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import statistics
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
FRAMES, IMG, BATCH, REPEATS = 4, 32, 2, 2


def _load_tool():
    # tools/ is a folder of scripts, not a package: load the file as a module (registered so dataclasses resolve).
    spec = importlib.util.spec_from_file_location('benchmark_tool', ROOT / 'tools' / 'benchmark.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tool():
    return _load_tool()


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
                              '--peak-size', '64', '--json', str(path)])
    finally:
        torch.set_num_threads(threads)  # --threads is process-wide; do not leak it into other tests
    assert code == 0
    assert not path.with_name(path.name + '.tmp').exists()
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


@pytest.mark.parametrize('argv, message', [
    (['backbone', '--repeats', '0'], 'must be >= 1'),
    (['backbone', '--dtypes', 'fp8'], "invalid choice: 'fp8'"),
    (['backbone', '--arch', 'vit_tiny'], "invalid choice: 'vit_tiny'"),
    ([], 'COMMAND'),
])
def test_cli_rejects_bad_arguments(tool, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        tool.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_count_flops_and_summarize(tool):
    linear = torch.nn.Linear(8, 5)
    x = torch.randn(3, 8)
    assert tool.count_flops(lambda: linear(x)) == 2 * 3 * 8 * 5  # one multiply-add per weight per row
    stats = tool.summarize([4.0, 1.0, 2.0])
    assert (stats.median, stats.minimum, stats.maximum) == (2.0, 1.0, 4.0)
    assert stats.spread_pct == pytest.approx(75.0)  # half of (4 - 1), as a percentage of 2


def test_format_table_aligns_columns(tool):
    rows = [{'name': 'a', 'value': 1.5}, {'name': 'long', 'value': 10.25}]
    text = tool.format_table(rows, [('name', 'name', 's'), ('value', 'value', '.2f')])
    assert text.splitlines() == ['name  value', '----  -----', 'a      1.50', 'long  10.25']
