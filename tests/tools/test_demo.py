"""The `make demo` job (tools/demo.py, tasks/demo.py): stage caching, config relocation, failures, the whole run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from mmengine.config import Config
from PIL import Image

from tasks import demo as D

ROOT = Path(__file__).resolve().parents[2]


def _demo(tmp_path, **kw) -> D.Demo:
    return D.Demo(work_dir=tmp_path / 'work', data_root=tmp_path / 'data', **kw)


def test_stage_cache_is_reused_only_for_the_same_inputs(tmp_path):
    demo = _demo(tmp_path)
    out = tmp_path / 'weights.pth'
    out.write_text('x')
    demo.complete('pretrain', 'key-a', [out], checkpoint=str(out))
    assert demo.cached('pretrain', 'key-a')['checkpoint'] == str(out)
    assert demo.reused == ['pretrain']
    assert demo.cached('pretrain', 'key-b') is None  # other inputs (config, data, options)
    assert _demo(tmp_path, fresh=True).cached('pretrain', 'key-a') is None  # --fresh
    out.unlink()
    assert demo.cached('pretrain', 'key-a') is None  # an output has gone
    # A torn record (a killed run) is not a cache hit either.
    demo.stage_record('probe').write_text('{"fingerprint": "key-a", "outp')
    assert demo.cached('probe', 'key-a') is None


def test_fingerprint_depends_on_every_part():
    base = D.fingerprint('pretrain', '1', 'abc', ['x=1'])
    assert base == D.fingerprint('pretrain', '1', 'abc', ['x=1'])
    assert len({base, D.fingerprint('pretrain', '1', 'abd', ['x=1']), D.fingerprint('pretrain', '1', 'abc', ['x=2']),
                D.fingerprint('features', '1', 'abc', ['x=1'])}) == 4


@pytest.mark.parametrize('config', [D.PRETRAIN_CONFIG, D.AVA_CONFIG, D.THUMOS_CONFIG])
def test_relocated_configs_read_nothing_from_the_default_data_root(tmp_path, config):
    overrides = D.relocate_data(config, tmp_path / 'bench')
    assert overrides, 'the synthetic configs name files under data/synthetic'
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


def test_a_failing_tool_stops_the_demo_with_its_log(tmp_path):
    demo = _demo(tmp_path)
    with pytest.raises(D.DemoError) as info:
        demo.run_tool('probe', 'tools/linear_probe.py', tmp_path / 'missing.h5', tmp_path / 'missing.h5',
                      '--labels', tmp_path / 'missing.txt')
    message = str(info.value)
    assert "stage 'probe' failed" in message and 'missing' in message
    assert (demo.log_dir / 'probe.log').is_file()


def test_a_stage_subset_reads_its_input_stage_from_the_earlier_results(tmp_path, monkeypatch):
    """`--stages thumos` takes the fine-tuned checkpoint from results.json; without one (or with its file gone) it
    stops with a message naming the stage to add, before running anything."""
    ran = []
    monkeypatch.setitem(D.STAGES, 'thumos', lambda demo: ran.append(demo.results['finetune']['checkpoint']))
    demo = _demo(tmp_path)
    with pytest.raises(D.DemoError, match="stage 'thumos' uses the results of stage 'finetune'.*add finetune before "
                                          "thumos to --stages"):
        D.run(demo, ['thumos'])
    checkpoint = tmp_path / 'epoch_1.pth'
    earlier = {'results': {'finetune': {'checkpoint': str(checkpoint), 'top1': 0.5, 'top5': 0.9, 'chance_top1': 0.1}},
               'preset': demo.preset, 'demo_version': D.DEMO_VERSION}
    demo.work_dir.mkdir(parents=True, exist_ok=True)
    (demo.work_dir / 'results.json').write_text(json.dumps(earlier))
    with pytest.raises(D.DemoError, match=r'its checkpoint .*epoch_1\.pth is gone'):
        D.run(_demo(tmp_path), ['thumos'])
    assert ran == []
    checkpoint.write_bytes(b'weights')
    summary = D.run(_demo(tmp_path), ['thumos'])
    assert ran == [str(checkpoint)]
    assert summary['results']['finetune'] == earlier['results']['finetune'] and summary['stages_run'] == ['thumos']
    # another preset's results are not used
    earlier['preset'] = 'default' if demo.preset != 'default' else 'tiny'
    (demo.work_dir / 'results.json').write_text(json.dumps(earlier))
    with pytest.raises(D.DemoError, match="no earlier run"):
        D.run(_demo(tmp_path), ['thumos'])


def test_table_puts_each_result_next_to_its_baseline(tmp_path):
    demo = _demo(tmp_path)
    demo.results = {
        'pretrain': {'first_loss': 0.27, 'last_loss': 0.015, 'checkpoint': 'x'},
        'probe': {'pretrained': {'linear_top1': 0.4, 'knn_top1': 0.3}, 'random': {'linear_top1': 0.1,
                                                                                  'knn_top1': 0.1}},
        'finetune': {'top1': 0.9, 'top5': 1.0, 'chance_top1': 0.1},
        'ava': {'mAP': 0.65, 'random_mAP': 0.52, 'random_boxes_mAP': 0.01, 'ceiling_mAP': 0.83},
        'thumos': {'average_mAP': 0.5, 'random_average_mAP': 0.1},
    }
    demo.timings['total'] = 125.0
    demo.reused = ['pretrain']
    rule = '  '.join('-' * w for w in (30, 33, 16, 38))
    assert D.results_table(demo, from_earlier=['ava']).splitlines() == [
        '',
        rule,
        'task                            metric                             result            baseline',
        rule,
        'pre-training (dual masking)     loss first -> last                 0.2700 -> 0.0150',
        'linear probe (cached features)  top-1, pre-trained vs random init  0.400             0.100 (random init)',
        'k-NN (cached features)          top-1, pre-trained vs random init  0.300             0.100 (random init)',
        'fine-tune, multi-view test      top-1 / top-5                      0.900 / 1.000     0.100 (chance)',
        'AVA-like detection              frame mAP@0.5                      0.650             '
        '0.520 (random scores on the proposals)',
        '                                random detections                                    '
        '0.010 (random boxes and scores)',
        '                                ceiling of the proposals                             0.830 (perfect scores)',
        'THUMOS-like localization        average mAP (tIoU 0.3:0.7)         0.500             '
        '0.100 (random predictions)',
        rule,
        'total 2:05; re-used from an earlier run: pretrain',
        "rows of the stages not run now (ava) are from the earlier run's results.json",
        f'outputs in {demo.work_dir}: results.json, loss_curve.png, reconstruction.png, cls_confusion.png, '
        'ava_per_class_ap.png, thumos_map_vs_tiou.png, thumos_per_class_ap.png',
    ]


def test_curve_values_and_checkpoint_pointer(tmp_path):
    assert D.loss_curve_value({'iter': [1, 2], 'loss': [0.5, 0.25], 'lr': [1, 1]}, -1) == 0.25
    with pytest.raises(D.DemoError, match='no loss values'):
        D.loss_curve_value({'iter': []}, 0)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_3.pth'))
    assert D.last_checkpoint(tmp_path) == tmp_path / 'epoch_3.pth'
    with pytest.raises(D.DemoError, match='last_checkpoint'):
        D.last_checkpoint(tmp_path / 'nothing')


def test_records_are_written_whole_and_read_back(tmp_path):
    demo = _demo(tmp_path)
    out = tmp_path / 'weights.pth'
    out.write_text('x')
    demo.complete('ava', 'key', [out], checkpoint=str(out), mAP=0.5)
    record = demo.stage_record('ava')
    assert json.loads(record.read_text()) == {'checkpoint': str(out), 'fingerprint': 'key', 'mAP': 0.5,
                                              'outputs': [str(out)]}
    assert [p.name for p in record.parent.iterdir()] == ['ava.json']  # no temporary file left beside it


@pytest.mark.slow
def test_whole_demo_on_the_tiny_benchmark_then_reuses_its_cache(tmp_path, monkeypatch):
    """`make demo` end to end on the tiny preset with short schedules; the second run re-uses every cached stage."""
    # The stages' tools run in subprocesses, on the CPU also where a GPU exists: a re-run stage must give the same
    # numbers, which GPU training does not promise (atomic adds in backward kernels).
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')
    short = {'pretrain': ['train_cfg.max_epochs=2'],
             # the tiny preset has 10 classification training videos, fewer than a batch of 16 (drop_last)
             'finetune': ['train_cfg.max_epochs=2', 'train_dataloader.batch_size=5'],
             'ava': ['train_cfg.max_epochs=2'],
             # the tiny preset has one THUMOS-like training video: batches of 1
             'thumos': ['train_cfg.max_epochs=4', 'train_dataloader.batch_size=1']}
    demo = D.Demo(work_dir=tmp_path / 'work', data_root=tmp_path / 'data', preset='tiny', overrides=short)
    first = D.run(demo)
    saved = json.loads((tmp_path / 'work' / 'results.json').read_text())
    assert saved == json.loads(json.dumps(first, sort_keys=True, default=float))  # results.json is the summary
    assert saved['results'].keys() >= {'pretrain', 'probe', 'finetune', 'ava', 'thumos'}
    for picture in ('loss_curve.png', 'reconstruction.png', 'cls_confusion.png', 'ava_per_class_ap.png',
                    'thumos_map_vs_tiou.png', 'thumos_per_class_ap.png'):
        with Image.open(tmp_path / 'work' / picture) as image:  # a whole PNG with more than one colour drawn
            assert image.format == 'PNG', picture
            assert len(image.convert('RGB').getcolors(maxcolors=1 << 24)) > 1, picture

    again = D.Demo(work_dir=tmp_path / 'work', data_root=tmp_path / 'data', preset='tiny', overrides=short)
    second = D.run(again)
    assert {'pretrain', 'finetune', 'ava', 'thumos'} <= set(second['reused'])
    assert second['results']['pretrain'] == first['results']['pretrain']

    # re-running one stage updates its entry and keeps the others'
    saved['results']['ava']['mAP'] = -1.0
    (tmp_path / 'work' / 'results.json').write_text(json.dumps(saved))
    D.run(D.Demo(work_dir=tmp_path / 'work', data_root=tmp_path / 'data', preset='tiny', overrides=short),
          ['data', 'ava'])
    third = json.loads((tmp_path / 'work' / 'results.json').read_text())
    assert third['stages_run'] == ['data', 'ava']
    assert third['results']['ava']['mAP'] == first['results']['ava']['mAP']
    assert third['results']['thumos'] == first['results']['thumos']
    assert third['results']['probe'] == first['results']['probe']
    # a stage alone takes its input (the fine-tuned checkpoint) from results.json
    fourth = D.run(D.Demo(work_dir=tmp_path / 'work', data_root=tmp_path / 'data', preset='tiny', overrides=short),
                   ['thumos'])
    assert fourth['results']['thumos'] == first['results']['thumos'] and 'thumos' in fourth['reused']
