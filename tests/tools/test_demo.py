"""`make demo`: tools/evaluate.py on configs/suites/synthetic_demo.py (config relocation, tool failures, the whole run
on the tiny benchmark with its pictures and cache)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from mmengine.config import Config
from PIL import Image

from tasks.evaluate import StageError, load_suite
from tasks.evaluate import stages as S
from tasks.evaluate.tools import last_checkpoint, loss_curve_value, relocate_data, run_tool
from tests.tools.test_evaluate import DEMO_SUITE, main

ROOT = Path(__file__).resolve().parents[2]


def test_make_demo_is_the_demo_suite():
    proc = subprocess.run(['make', '-n', 'demo'], cwd=ROOT, capture_output=True, text=True, check=True)
    assert 'tools/evaluate.py configs/suites/synthetic_demo.py --work-dir work_dirs/demo' in proc.stdout


@pytest.mark.parametrize('stage', ['pretrain', 'ava', 'thumos'])
def test_relocated_configs_read_nothing_from_the_default_data_root(tmp_path, stage):
    config = load_suite(DEMO_SUITE).stage(stage).params['config']
    overrides = relocate_data(config, tmp_path / 'bench')
    assert overrides, 'the synthetic configs name their files under data/synthetic'
    cfg = Config.fromfile(str(ROOT / config), import_custom_modules=False)
    cfg.merge_from_dict(dict(o.split('=', 1) for o in overrides))

    def paths(node):
        if isinstance(node, dict):
            for v in node.values():
                yield from paths(v)
        elif isinstance(node, str):
            yield node

    # top-level strings (data_root = ..., ann_file = ...) are variables already spent inside the dicts
    flat = {k: v for k, v in cfg.to_dict().items() if isinstance(v, dict)}
    remaining = [p for p in paths(flat) if p.startswith('data/synthetic')]
    assert remaining == []
    moved = [p for p in paths(flat) if p.startswith(str(tmp_path / 'bench'))]
    assert len(moved) == len(overrides)


def test_a_failing_tool_stops_with_its_log(tmp_path):
    with pytest.raises(StageError) as info:
        run_tool('probe', 'tools/linear_probe.py', tmp_path / 'missing.h5', tmp_path / 'missing.h5',
                 '--labels', tmp_path / 'missing.txt', log_dir=tmp_path / 'logs')
    message = str(info.value)
    assert "stage 'probe' failed" in message and 'missing' in message
    assert (tmp_path / 'logs' / 'probe.log').is_file()


def test_curve_values_and_checkpoint_pointer(tmp_path):
    assert loss_curve_value({'iter': [1, 2], 'loss': [0.5, 0.25], 'lr': [1, 1]}, -1) == 0.25
    with pytest.raises(StageError, match='no loss values'):
        loss_curve_value({'iter': []}, 0)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_3.pth'))
    assert last_checkpoint(tmp_path) == tmp_path / 'epoch_3.pth'
    with pytest.raises(StageError, match='last_checkpoint'):
        last_checkpoint(tmp_path / 'nothing')


# The tiny preset has 10 classification training videos (fewer than a batch of 16, drop_last) and one THUMOS-like
# training video; shorter schedules keep the whole run to minutes.
TINY = ['--set', 'data.preset=tiny',
        '--cfg-options', 'pretrain.train_cfg.max_epochs=2', 'finetune.train_cfg.max_epochs=2',
        'finetune.train_dataloader.batch_size=5', 'ava.train_cfg.max_epochs=2', 'thumos.train_cfg.max_epochs=4',
        'thumos.train_dataloader.batch_size=1']
PICTURES = ('pretrain_loss_curve.png', 'reconstruction.png', 'finetune_cls_confusion.png', 'ava_per_class_ap.png',
            'thumos_tad_map_vs_tiou.png', 'thumos_tad_per_class_ap.png')


@pytest.mark.slow
def test_whole_demo_on_the_tiny_benchmark_then_reuses_its_cache(tmp_path, monkeypatch, capsys):
    """`make demo`'s suite end to end on the tiny preset with short schedules (from the command line's --set and
    per-stage --cfg-options): every row filled, the pictures copied up; a second run runs no tool; a stage redone
    alone updates its rows and keeps the others."""
    # The stages' tools run in subprocesses, on the CPU also where a GPU exists: a re-run stage must give the same
    # numbers, which GPU training does not promise (atomic adds in backward kernels).
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')
    work = tmp_path / 'work'
    args = [str(DEMO_SUITE), '--work-dir', str(work), '--data-root', str(tmp_path / 'data'), *TINY]
    assert main(args) == 0
    first = json.loads((work / 'results.json').read_text())
    rows = {r['name']: r for r in first['metrics']}
    assert all(r['value'] is not None for r in rows.values()), rows
    assert rows['fine-tune top-1, 2 clips x 3 crops']['baseline'] == 0.1
    # perfect scores on the same proposals bound the AVA-like mAP
    assert rows['AVA-like frame mAP@0.5']['value'] <= rows['AVA-like, ceiling of the proposals']['value'] + 1e-9
    curve = json.loads((work / 'pretrain' / 'train' / 'loss_curve.json').read_text())
    assert rows['pre-training loss, last iteration']['baseline'] == curve['loss'][0]
    assert rows['pre-training loss, last iteration']['value'] == curve['loss'][-1]
    for picture in PICTURES:
        with Image.open(work / picture) as image:  # a whole PNG with more than one colour drawn
            assert image.format == 'PNG', picture
            assert len(image.convert('RGB').getcolors(maxcolors=1 << 24)) > 1, picture
        assert f'![{picture}]({picture})' in (work / 'report.md').read_text()
    table = capsys.readouterr().out.split('\n\n')[-1]

    def no_tool(*a, **kw):
        raise AssertionError(f'a tool ran on an unchanged suite: {a}')
    monkeypatch.setattr(S, 'run_tool', no_tool)
    assert main(args) == 0
    second = json.loads((work / 'results.json').read_text())
    assert second['ran'] == [] and second['metrics'] == first['metrics']
    shown = 2 + len(rows)  # header, rule and one line per metric
    assert capsys.readouterr().out.split('\n\n')[-1].splitlines()[:shown] == table.splitlines()[:shown]
    monkeypatch.undo()
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')

    # AVA redone alone: its rows are recomputed (training on the CPU is deterministic), the others re-used
    assert main([*args, '--stages', 'ava', '--fresh']) == 0
    third = json.loads((work / 'results.json').read_text())
    assert third['ran'] == ['ava'] and third['missing'] == []
    assert [(m['name'], m['value']) for m in third['metrics']] == [(m['name'], m['value']) for m in first['metrics']]
