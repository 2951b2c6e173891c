"""tools/evaluate.py and tasks/evaluate: suite files checked on load, fingerprinted resumable runs, the report beside
the published figures, and comparisons of runs.

The runner's logic (re-use, resume after an interruption, subsets, --fresh) is tested with a stage type that only
counts its runs; the shipped tiny suite runs for real (the tools in subprocesses) from a released checkpoint name in
an offline hub cache laid out in tmp_path.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from tasks.evaluate import STAGE_TYPES, SuiteError, compare_runs, load_suite, run_suite, write_report
from tasks.evaluate import stages as S
from tasks.evaluate.run import record_path
from tests.hub_kit import offline_hub, snapshot_dir

ROOT = Path(__file__).resolve().parents[2]
TINY_SUITE = ROOT / 'configs' / 'suites' / 'synthetic_tiny.py'
DEMO_SUITE = ROOT / 'configs' / 'suites' / 'synthetic_demo.py'


def main(argv: list[str]) -> int:
    """``tools/evaluate.py``'s main (tools/ is no package)."""
    spec = importlib.util.spec_from_file_location('tool_evaluate', ROOT / 'tools' / 'evaluate.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool.main(argv)


# --- suite files ----------------------------------------------------------------------------------------------------
BASE = """
name = 'test suite'
data_root = 'data'
stages = [
    dict(name='data', type='synthetic', preset='tiny'),
    dict(name='features', type='extract', videos='{data_root}/videos', args=['--arch', 'vit_test']),
    dict(name='probe', type='probe', train='{features.store}', labels=['{data_root}/train.txt']),
]
report = [dict(name='top-1', stage='probe', key='linear.top1', published=50.0, source='paper, Table 1', scale=100)]
"""

MALFORMED = {  # case: (text replaced in BASE, replacement, the error)
    'no stages': ("stages = [", "stagez = [", r'stages: missing, or not a non-empty list'),
    'stage type': ("type='extract'", "type='extrakt'",
                   r"stages\[1\] \(features\)\.type: 'extrakt' is not a stage type \(choose from synthetic, extract"),
    'unknown parameter': ("videos=", "vidoes=", r"stages\[1\] \(features\)\.vidoes: not a parameter of a 'extract' "
                                                r'stage \(its parameters: videos, args'),
    'missing parameter': (", labels=['{data_root}/train.txt']", '', r"stages\[2\] \(probe\)\.labels: missing"),
    'kind': ("args=['--arch', 'vit_test']", "args='--arch vit_test'",
             r"stages\[1\] \(features\)\.args: '--arch vit_test' is not a list of strings"),
    'later stage': ("'{features.store}'", "'{probe.result}'",
                    r"stages\[2\] \(probe\)\.train: \{probe\.result\} names no earlier stage "
                    r'\(earlier: data, features'),
    'no such output': ("'{features.store}'", "'{features.checkpoint}'",
                       r"stages\[2\] \(probe\)\.train: \{features\.checkpoint\}: a 'extract' stage has no output "
                       r"'checkpoint' \(its outputs: store\)"),
    'unknown name': ("'{data_root}/videos'", "'{dataroot}/videos'",
                     r"stages\[1\] \(features\)\.videos: \{dataroot\} is not a name a stage may use"),
    'duplicate stage': ("name='probe'", "name='features'",
                        r"stages\[2\] \(features\)\.name: 'features' is already a stage"),
    'report stage': ("stage='probe', key", "stage='prob', key", r"report\[0\]\.stage: 'prob' is not a stage"),
    'published source': (", source='paper, Table 1'", '', r'report\[0\]\.source: a published figure needs its source'),
    'report key': ("published=50.0", "publihsed=50.0", r'report\[0\]\.publihsed: not a key of a report entry'),
    'syntax': ("stages = [", "stages = [[,", r'cannot be read as a config'),
}


@pytest.mark.parametrize('case', list(MALFORMED))
def test_a_malformed_suite_is_an_error_naming_the_file_and_key(tmp_path, case):
    old, new, message = MALFORMED[case]
    assert old in BASE, old
    text = BASE.replace(old, new, 1)
    path = tmp_path / 'suite.py'
    path.write_text(text)
    load_suite_ok = tmp_path / 'ok.py'
    load_suite_ok.write_text(BASE)
    assert load_suite(load_suite_ok).stage('probe').depends == ('features',)  # the unedited file is fine
    with pytest.raises(SuiteError, match=message) as info:
        load_suite(path)
    assert str(info.value).startswith(f'{path}: ')


def test_a_missing_config_file_and_a_missing_suite_are_named(tmp_path):
    path = tmp_path / 'suite.py'
    path.write_text(BASE.replace("dict(name='data', type='synthetic', preset='tiny'),",
                                 "dict(name='data', type='train', config='configs/nowhere.py'),"))
    with pytest.raises(SuiteError, match=r"stages\[0\] \(data\)\.config: configs/nowhere\.py: no such config file"):
        load_suite(path)
    with pytest.raises(SuiteError, match=r'nothing\.py: no such suite file'):
        load_suite(tmp_path / 'nothing.py')


def test_the_shipped_suites_load():
    suites = sorted((ROOT / 'configs' / 'suites').glob('*.py'))
    assert TINY_SUITE in suites
    for path in suites:
        suite = load_suite(path)
        assert suite.report, path  # every suite reports something


# --- the runner, with a stage type that counts its runs -------------------------------------------------------------
COUNTING = """
name = 'counting'
data_root = 'data'
stages = [
    dict(name='a', type='count', text='{data_root}'),
    dict(name='b', type='count', text='{a.out}'),
    dict(name='c', type='count', text='{b.out}'),
]
report = [dict(name='c value', stage='c', key='n', baseline=dict(stage='a', key='n', label='first stage'))]
"""


@pytest.fixture
def counting(tmp_path, monkeypatch):
    """A stage type ``count``: writes ``<stage>/out.txt`` (its text + 1 line) and reports the number of lines; the
    stages run are listed in ``calls``; ``interrupt`` names a stage that is stopped (Ctrl-C) after writing."""
    calls, interrupt = [], set()

    def run(ctx: S.StageContext) -> S.StageResult:
        calls.append(ctx.name)
        source = Path(ctx.params['text'])
        lines = (source.read_text() if source.is_file() else '') + f'{ctx.name}\n'
        out = ctx.dir / 'out.txt'
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(lines)
        if ctx.name in interrupt:
            raise KeyboardInterrupt
        picture = ctx.dir / 'count.png'  # one grey level per line
        Image.new('L', (4, 4), 40 * lines.count('\n')).save(picture)
        return S.StageResult(outputs={'out': str(out)}, metrics={'n': float(lines.count('\n'))}, files=[str(out)],
                             pictures=[str(picture)])

    monkeypatch.setitem(STAGE_TYPES, 'count', S.StageType(run, {'text': ('str', S.REQUIRED)}, ('out',)))
    path = tmp_path / 'counting.py'
    monkeypatch.chdir(tmp_path)  # data_root = 'data' is tmp_path/data
    (tmp_path / 'data').mkdir()  # stage a reads the data root: it must exist before the run starts
    path.write_text(COUNTING)
    return load_suite(path), calls, interrupt


def test_a_second_run_reuses_everything_and_an_interrupted_stage_is_redone(tmp_path, counting):
    suite, calls, interrupt = counting
    work = tmp_path / 'work'
    interrupt.add('b')
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, work)
    assert calls == ['a', 'b'] and record_path(work, 'a').is_file()
    assert not record_path(work, 'b').exists()  # killed mid-stage: no complete-looking record
    interrupt.clear()
    summary = run_suite(suite, work)
    assert calls == ['a', 'b', 'b', 'c'] and summary['reused'] == ['a'] and summary['ran'] == ['b', 'c']
    assert summary['records']['c']['metrics'] == {'n': 3.0}
    again = run_suite(suite, work)
    assert calls == ['a', 'b', 'b', 'c'] and again['reused'] == ['a', 'b', 'c'] and again['ran'] == []
    interrupt.add('c')  # a redo (--fresh) stopped midway: the old record is not taken for the new result
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, work, stages=['c'], fresh=True)
    assert not record_path(work, 'c').exists()
    interrupt.clear()
    assert run_suite(suite, work)['ran'] == ['c']
    # a torn record (a crash on a file system without atomic rename) is not a result
    record_path(work, 'c').write_text('{"fingerprint": "')
    assert run_suite(suite, work)['ran'] == ['c']
    assert calls == ['a', 'b', 'b', 'c', 'c', 'c', 'c']


def test_a_subset_reads_earlier_results_and_fresh_redoes_only_it(tmp_path, counting):
    suite, calls, _ = counting
    work = tmp_path / 'work'
    with pytest.raises(SuiteError, match=r"stage 'b' uses the outputs of stage 'a', which has no up-to-date result.*"
                                         r'add a to --stages'):
        run_suite(suite, work, stages=['b'])
    with pytest.raises(SuiteError, match=r'--stages x: not a stage of .*counting\.py \(its stages: a, b, c\)'):
        run_suite(suite, work, stages=['x'])
    assert calls == []
    run_suite(suite, work)
    summary = run_suite(suite, work, stages=['c'], fresh=True)
    assert calls == ['a', 'b', 'c', 'c'] and summary['ran'] == ['c'] and set(summary['records']) == {'a', 'b', 'c'}
    # redoing b makes c's result stale (it was made from b's old output): c has no result until it is run
    summary = run_suite(suite, work, stages=['b'], fresh=True)
    assert summary['missing'] == ['c'] and 'c' not in summary['records']
    with pytest.raises(SuiteError, match="stage 'c' uses the outputs of stage 'b'"):
        run_suite(suite, work, stages=['a', 'c'], fresh=True)  # a redone: b is stale now
    # another data root is another input of every stage; it is checked before anything runs
    with pytest.raises(SuiteError, match=r"inputs missing under data root .*other.*\n  stage 'a': text: .*other not found"):
        run_suite(suite, work, data_root=tmp_path / 'other')
    (tmp_path / 'other').mkdir()
    summary = run_suite(suite, work, data_root=tmp_path / 'other')
    assert summary['ran'] == ['a', 'b', 'c']


def test_the_report_puts_each_result_beside_the_published_figure_and_baseline(tmp_path, counting):
    suite, _, _ = counting
    path = tmp_path / 'published.py'
    path.write_text(COUNTING.replace("key='n',", "key='n', scale=10, published=25.0, source='a paper, Table 2',", 1))
    suite = load_suite(path)
    summary = run_suite(suite, tmp_path / 'work')
    text = write_report(summary)
    # c counts 3 lines, a 1: times the scale 10
    assert 'c value  30.0    25.0       +5.0        10.0 (first stage)' in text.splitlines()
    results = json.loads((tmp_path / 'work' / 'results.json').read_text())
    [row] = results['metrics']
    assert (row['value'], row['published'], row['difference'], row['baseline']) == (30.0, 25.0, 5.0, 10.0)
    assert row['source'] == 'a paper, Table 2' and set(row['provenance']) == {'a', 'b', 'c'}
    assert row['provenance']['c']['date'] and row['provenance']['c']['package_version']
    assert results['suite']['sha256'] == suite.sha256 and results['ran'] == ['a', 'b', 'c']
    report = (tmp_path / 'work' / 'report.md').read_text()
    assert '| c value | 30.0 | 25.0 | +5.0 | 10.0 (first stage) |' in report and 'a paper, Table 2' in report
    with Image.open(tmp_path / 'work' / 'summary.png') as image:  # a whole PNG with more than one colour drawn
        assert image.format == 'PNG' and len(image.convert('RGB').getcolors(maxcolors=1 << 24)) > 1
    # each stage's pictures are copied up beside the report, named after their stage, and shown in it
    for stage, lines in (('a', 1), ('b', 2), ('c', 3)):
        with Image.open(tmp_path / 'work' / f'{stage}_count.png') as image:
            assert image.getpixel((0, 0)) == 40 * lines
        assert f'![{stage}_count.png]({stage}_count.png)' in report
    assert text.splitlines()[-1].endswith('report.md, results.json, summary.png, a_count.png, b_count.png, c_count.png')

    # a second run of another suite version: compared side by side, with the differences to the first run
    more = COUNTING.replace("text='{b.out}'),", "text='{b.out}'),\n    dict(name='d', type='count', text='{a.out}'),")
    (tmp_path / 'more.py').write_text(more.replace("stage='c'", "stage='d'"))
    write_report(run_suite(load_suite(tmp_path / 'more.py'), tmp_path / 'work2'))
    lines = compare_runs([tmp_path / 'work', tmp_path / 'work2']).splitlines()
    assert lines[0].split() == ['metric', 'work', 'work2', '(diff)', 'published']
    assert lines[2].split() == ['c', 'value', '30.0', '2.000', '(-28.000)', '25.0']
    with pytest.raises(SuiteError, match=r'nowhere/results\.json: no results of a suite run here'):
        compare_runs([tmp_path / 'work', tmp_path / 'nowhere'])


def test_a_suite_that_needs_a_checkpoint_says_so_before_running(tmp_path, counting):
    _, calls, _ = counting
    path = tmp_path / 'weights.py'
    path.write_text(COUNTING.replace("text='{b.out}'", "text='{checkpoint}'"))
    with pytest.raises(SuiteError, match=r"weights\.py: stages c use the suite's checkpoint, and there is none: pass "
                                         r'--checkpoint'):
        run_suite(load_suite(path), tmp_path / 'work')
    assert calls == []
    weights = tmp_path / 'w.pth'
    weights.write_bytes(b'weights')
    summary = run_suite(load_suite(path), tmp_path / 'work', checkpoint=str(weights))
    assert summary['checkpoint']['sha256'] == _sha256(weights) and summary['ran'] == ['a', 'b', 'c']
    weights.write_bytes(b'other weights')  # another checkpoint: only the stage that uses it is redone
    assert run_suite(load_suite(path), tmp_path / 'work', checkpoint=str(weights))['ran'] == ['c']


def test_a_missing_metric_names_the_report_key(tmp_path, counting):
    suite, _, _ = counting
    path = tmp_path / 'typo.py'
    path.write_text(COUNTING.replace("key='n',", "key='m',", 1))
    summary = run_suite(load_suite(path), tmp_path / 'work')
    with pytest.raises(SuiteError, match=r"typo\.py: report\[0\] \(c value\)\.key: no metric 'm' in the stage's "
                                         r'results \(its metrics: n\)'):
        write_report(summary)


# --- the shipped tiny suite, for real -------------------------------------------------------------------------------
@pytest.fixture
def hub_checkpoint(tmp_path, monkeypatch):
    """The released name ``vit_s_k710_distill`` in an offline hub cache in tmp_path, holding tiny ``vit_test`` weights
    (the suite extracts with ``--arch vit_test``); any socket connection fails the test."""
    from backbone import RELEASED, VideoMAEv2ViT

    cache = offline_hub(tmp_path / 'hub', monkeypatch)
    entry = RELEASED['vit_s_k710_distill']
    path = snapshot_dir(cache, entry.repo_id) / entry.filename
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save({'module': VideoMAEv2ViT('vit_test', img_size=(96, 128), all_frames=8).state_dict()}, path)
    return entry.name, path


def test_the_tiny_suite_from_a_released_name_to_the_report(tmp_path, monkeypatch, hub_checkpoint, capsys):
    """Real tools on the tiny synthetic benchmark (the stages of the pre-trained backbone): a run stopped (Ctrl-C) in
    the probe resumes there; a second run runs no tool and prints the same table."""
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')  # the tools' subprocesses on the CPU, also on a GPU machine
    name, path = hub_checkpoint
    work, data = tmp_path / 'work', tmp_path / 'data'
    args = [str(TINY_SUITE), '--checkpoint', name, '--work-dir', str(work), '--data-root', str(data),
            '--stages', 'data', 'features', 'probe']
    real_run_tool = S.run_tool

    def stopped_in_probe(stage, script, *a, **kw):
        real_run_tool(stage, script, *a, **kw)
        if stage == 'probe':  # the tool has written its output; the stage is stopped before its record
            raise KeyboardInterrupt
    monkeypatch.setattr(S, 'run_tool', stopped_in_probe)
    assert main(args) == 130
    assert [p.stem for p in sorted((work / 'stages').iterdir())] == ['data', 'features']
    monkeypatch.setattr(S, 'run_tool', real_run_tool)
    assert main(args) == 0
    results = json.loads((work / 'results.json').read_text())
    assert results['ran'] == ['probe'] and results['reused'] == ['data', 'features']
    assert results['missing'] == ['features_random', 'probe_random', 'thumos_features', 'thumos', 'ava']
    assert results['checkpoint']['name'] == name
    assert results['checkpoint']['sha256'] == _sha256(path) == results['stages']['features']['provenance'][
        'checkpoint_sha256']
    row = results['metrics'][0]
    probe = json.loads((work / 'probe' / 'probe.json').read_text())
    assert row['name'] == 'linear probe top-1 (%)' and row['value'] == pytest.approx(100 * probe['linear']['top1'])
    assert row['baseline'] is None  # its stage (probe_random) was not run
    store = str(work / 'features' / 'features.h5')
    assert set(row['provenance']) == {'probe', 'features'}  # the number's stage and the stages it read
    assert row['provenance']['probe']['store'] == [store] * 2 and row['provenance']['probe']['features.store'] == store
    assert row['provenance']['features']['checkpoint_sha256'] == _sha256(path)
    assert _sha256(path) in (work / 'report.md').read_text()
    first = capsys.readouterr().out

    def no_tool(*a, **kw):
        raise AssertionError(f'a tool ran on an unchanged suite: {a}')
    monkeypatch.setattr(S, 'run_tool', no_tool)
    assert main(args) == 0
    assert json.loads((work / 'results.json').read_text())['metrics'] == results['metrics']
    table = first.split('\n\n')[-1].splitlines()[:4]
    assert table[0].split() == ['metric', 'result', 'published', 'difference', 'baseline']
    assert table == capsys.readouterr().out.split('\n\n')[-1].splitlines()[:4]


def test_the_whole_tiny_suite_a_subset_and_a_comparison(tmp_path, monkeypatch, hub_checkpoint, capsys):
    """The whole tiny suite, killed (SIGKILL, tool and all) in its third stage, then resumed; a subset redoes one
    stage; a run with other weights compares side by side."""
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')
    name, _ = hub_checkpoint
    work, data = tmp_path / 'work', tmp_path / 'data'
    args = [str(TINY_SUITE), '--checkpoint', name, '--work-dir', str(work), '--data-root', str(data)]
    # the environment carries the offline hub cache (HF_HUB_OFFLINE, HF_HUB_CACHE) to the process
    proc = subprocess.Popen([sys.executable, str(ROOT / 'tools' / 'evaluate.py'), *args], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (work / 'logs' / 'features_random.log').exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the extraction has just started: its tool is killed with it
    proc.wait()
    assert sorted(p.name for p in (work / 'stages').iterdir()) == ['data.json', 'features.json']
    assert main(args) == 0
    results = json.loads((work / 'results.json').read_text())
    assert results['ran'] == ['features_random', 'probe', 'probe_random', 'thumos_features', 'thumos', 'ava']
    assert results['reused'] == ['data', 'features']
    rows = {r['name']: r for r in results['metrics']}
    assert all(r['value'] is not None and r['baseline'] is not None for r in rows.values()), rows
    # THUMOS from the checkpoint's features, read from the store the suite extracted
    assert rows['THUMOS-like average mAP (%), tIoU 0.3:0.7']['provenance']['thumos'][
        'thumos_features.store'] == str(work / 'thumos_features' / 'features.h5')
    assert {'thumos_tad_map_vs_tiou.png', 'ava_per_class_ap.png'} <= {p.name for p in work.glob('*.png')}
    random = json.loads((work / 'probe_random' / 'probe.json').read_text())
    assert rows['k-NN top-1 (%)']['baseline'] == pytest.approx(100 * random['knn']['top1'])
    assert main([*args, '--stages', 'probe', '--fresh']) == 0
    again = json.loads((work / 'results.json').read_text())
    assert again['ran'] == ['probe']

    def values(r):
        return [(m['name'], m['value'], m['baseline']) for m in r['metrics']]
    assert values(again) == values(results)  # the probe is deterministic; its date is new

    # another backbone on the same data, its random baseline not run
    other = tmp_path / 'other.pth'
    torch.manual_seed(1)
    from backbone import VideoMAEv2ViT
    torch.save({'module': VideoMAEv2ViT('vit_test', img_size=(96, 128), all_frames=8).state_dict()}, other)
    work2 = tmp_path / 'work2'
    assert main([str(TINY_SUITE), '--checkpoint', str(other), '--work-dir', str(work2), '--data-root', str(data),
                 '--stages', 'data', 'features', 'probe']) == 0
    capsys.readouterr()
    assert main(['--compare', str(work), str(work2)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ['metric', name, 'other.pth', '(diff)', 'published']
    theirs = json.loads((work2 / 'results.json').read_text())['metrics'][0]['value']
    ours = rows['linear probe top-1 (%)']['value']
    assert table[2].split()[-3:] == [f'{ours:.1f}', f'{theirs:.1f}', f'({theirs - ours:+.1f})']


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_command_line_checks_its_arguments(capsys):
    with pytest.raises(SystemExit):
        main([])
    assert 'give a SUITE to run, or --compare' in capsys.readouterr().err
    assert main([str(ROOT / 'configs' / 'suites' / 'nothing.py')]) == 1
    assert 'nothing.py: no such suite file' in capsys.readouterr().err
