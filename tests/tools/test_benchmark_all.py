"""``tools/benchmark.py all``: the tiny plan run on the CPU (every section written, with numbers), a failed section
recorded while the others run, and the GPU plan's command lines parsed and validated here, where they cannot run."""
from __future__ import annotations

import json
import math

import pytest
import torch

from tests.tools.benchmark_kit import load_tool, run_tool


@pytest.fixture(scope='module')
def tool():
    return load_tool()


@pytest.fixture(scope='module')
def all_run(tool, tmp_path_factory):
    """``all --tiny`` on the CPU, without the compiled rows (test_backbone_compiled_rows_* covers those)."""
    pytest.importorskip('transformers', reason='the backbone section times transformers VideoMAEModel as reference')
    pytest.importorskip('decord', reason='the extract section compares with the official loop, which reads with decord')
    tmp = tmp_path_factory.mktemp('all')
    return run_tool(tool, ['all', '--tiny', '--device', 'cpu', '--threads', '1', '--no-compile',
                       '--cache-dir', str(tmp / 'cache')], tmp / 'all.json')


def _numbers(tree) -> list[float]:
    """Every int or float leaf of a JSON tree (booleans left out)."""
    if isinstance(tree, dict):
        return [v for value in tree.values() for v in _numbers(value)]
    if isinstance(tree, list):
        return [v for value in tree for v in _numbers(value)]
    return [tree] if isinstance(tree, (int, float)) and not isinstance(tree, bool) else []


def test_all_tiny_writes_every_section_with_numbers(all_run):
    payload, stdout = all_run
    assert (payload['command'], payload['plan'], payload['complete'], payload['errors']) == ('all', 'tiny', True, {})
    sections = payload['sections']
    assert list(sections) == ['store', 'pretrain', 'backbone_vit_test', 'extract']
    for name, section in sections.items():
        assert section['command'] == name.split('_')[0]
        values = _numbers(section)
        assert len(values) > 10 and all(math.isfinite(v) for v in values), name
        assert payload['seconds'][name] > 0
    assert 'machine' in payload and payload['machine']['torch_threads'] == 1
    backbone = sections['backbone_vit_test']
    assert [(r['dtype'], r['impl']) for r in backbone['rows']] == [
        ('fp32', 'ours'), ('fp32', 'hf_sdpa'), ('bf16', 'ours'), ('bf16', 'hf_sdpa')]
    assert all(r['clips_per_s'] > 0 and r['peak_pct'] > 0 for r in backbone['rows'])
    # the options of `all` reach the sections whose command takes them
    assert (backbone['config']['device'], backbone['config']['threads'], backbone['config']['compile']) == (
        'cpu', 1, False)
    extract = sections['extract']
    r = extract['result']
    # a 2-s, 30-fps video: 60 frames, windows at range(0, 45, 4); --max-windows 0 runs every one, nothing projected
    assert r['windows_run'] == r['windows_total'] == 12
    for loop in (r['official'], *r['ours'].values()):
        assert loop['basis'] == 'measured' and loop['total_s'] == loop['measured']['total_s']
    assert set(extract['speedup']) == {'fp32', 'bf16', 'decode'} and extract['meets']['features_fp32']
    assert sections['pretrain']['modes']['dual']['gflops_forward'] > 0
    assert sections['store']['speedup']['fp32']['read_sequential'] > 0
    assert stdout.count(' benchmark: ') == 4 and 'all: 4 sections in ' in stdout and 'failed: none' in stdout


def test_all_records_a_failed_section_and_runs_the_others(tool, tmp_path, monkeypatch, capsys):
    def broken(args):
        raise RuntimeError('disk full (test)')

    monkeypatch.setattr(tool, 'run_store', broken)
    path = tmp_path / 'all.json'
    threads = torch.get_num_threads()
    try:
        code = tool.main(['all', '--tiny', '--device', 'cpu', '--sections', 'pretrain', 'store', '--json', str(path)])
    finally:
        torch.set_num_threads(threads)
    assert code == 1
    payload = json.loads(path.read_text())
    assert payload['errors'] == {'store': 'RuntimeError: disk full (test)'}
    assert payload['sections']['store'] == {'error': 'RuntimeError: disk full (test)',
                                            'argv': [*tool.ALL_PLANS['tiny']['store'], '--seed', '0']}
    assert list(payload['sections']) == ['store', 'pretrain']  # plan order; pretrain ran after the failure
    assert payload['sections']['pretrain']['command'] == 'pretrain' and payload['complete']
    assert 'all: 2 sections in ' in capsys.readouterr().out


def test_all_full_plan_parses_for_a_gpu(tool):
    # The full plan only runs on a GPU: check here that every section's command line parses and validates.
    parser = tool.build_parser()
    args = parser.parse_args(['all', '--device', 'cuda', '--threads', '4', '--no-compile'])
    sections = {}
    for name, argv in tool.ALL_PLANS['full'].items():
        sections[name] = section = parser.parse_args(tool.section_argv(args, argv))
        assert section.command == argv[0]
        assert getattr(section, 'validate', lambda _: None)(section) is None
        assert getattr(section, 'device', 'cuda') == 'cuda' and getattr(section, 'threads', 4) == 4
    assert [sections[n].arch for n in ('backbone_vit_base', 'backbone_vit_giant', 'extract', 'pretrain')] == [
        'vit_base', 'vit_giant', 'vit_giant', 'vit_base']
    assert sections['backbone_vit_giant'].no_compile and sections['backbone_vit_giant'].dtypes == ['fp32', 'bf16']
    e = sections['extract']
    assert (e.img_size, e.video_seconds, e.max_windows, e.dtypes) == (224, 60.0, 0, ['fp32', 'bf16'])
