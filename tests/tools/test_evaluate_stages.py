"""tools/evaluate.py's stage machinery: the generic `tool` stage with declared outputs, launchers (torchrun, srun),
per-stage --cfg-options / --set on the command line, --dry-run, and the check of every input before a run starts."""
from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from feature_store import FeatureStore
from tasks.evaluate import StageError, SuiteError, load_suite, plan_suite, run_suite
from tasks.evaluate.tools import ROOT, launch_command
from tests.tools.test_evaluate import TINY_SUITE, main

TOOL_SUITE = """
name = 'tool stages'
data_root = 'data'
checkpoint = None
stages = [
    dict(name='convert', type='tool', script='tools/convert_checkpoint.py',
         args=['{checkpoint}', '{stage_dir}/mm.pth', '--to', 'mmaction2', '--label-map', '{data_root}/map.json',
               '--img-size', '32', '--num-frames', '4'],
         outputs=dict(checkpoint='{stage_dir}/mm.pth')),
    dict(name='again', type='tool', script='tools/convert_checkpoint.py',
         args=['{convert.checkpoint}', '{stage_dir}/hf.safetensors', '--to', 'official'],
         outputs=dict(weights='{stage_dir}/official.pth')),
]
report = []
"""


@pytest.fixture
def tool_suite(tmp_path, monkeypatch):
    """TOOL_SUITE in tmp_path with data/map.json and a tiny official K710-style checkpoint (4-frame 32-px vit_test)."""
    from backbone import VideoMAEv2ViT

    monkeypatch.chdir(tmp_path)
    (tmp_path / 'data').mkdir()
    label_map = [709, 0, 355, 42]
    (tmp_path / 'data' / 'map.json').write_text(json.dumps(label_map))
    torch.manual_seed(0)
    state = VideoMAEv2ViT('vit_test', num_classes=710, img_size=32, all_frames=4).state_dict()
    torch.save({'module': state}, tmp_path / 'k710.pth')
    path = tmp_path / 'suite.py'
    path.write_text(TOOL_SUITE)
    return path, state, label_map


def test_a_tool_stage_hands_its_declared_outputs_on_and_a_missing_one_is_an_error(tmp_path, tool_suite):
    path, state, label_map = tool_suite
    suite = load_suite(path)
    assert suite.stage('again').depends == ('convert',) and suite.stage('convert').outputs == ('checkpoint',)
    with pytest.raises(StageError, match=r"stage 'again': tools/convert_checkpoint\.py finished without writing the "
                                         r'declared outputs weights \(.*again/official\.pth\)'):
        run_suite(suite, tmp_path / 'work', checkpoint=str(tmp_path / 'k710.pth'))
    converted = torch.load(tmp_path / 'work' / 'convert' / 'mm.pth', weights_only=True)['state_dict']
    assert torch.equal(converted['cls_head.fc_cls.weight'], state['head.weight'][label_map])  # the map was applied
    # the first stage has its record; the failed one has none and is redone once it declares what the tool writes
    assert [p.name for p in (tmp_path / 'work' / 'stages').iterdir()] == ['convert.json']
    path.write_text(TOOL_SUITE.replace("weights='{stage_dir}/official.pth'", "weights='{stage_dir}/hf.safetensors'"))
    summary = run_suite(load_suite(path), tmp_path / 'work', checkpoint=str(tmp_path / 'k710.pth'))
    assert summary['ran'] == ['again'] and summary['reused'] == ['convert']
    assert summary['records']['again']['outputs'] == {'weights': str(tmp_path / 'work' / 'again' / 'hf.safetensors')}
    assert summary['records']['again']['provenance']['tool'].startswith(
        f"tools/convert_checkpoint.py {tmp_path / 'work' / 'convert' / 'mm.pth'} ")


TOOL_ERRORS = {
    'outside tools/': ("script='tools/convert_checkpoint.py'", "script='setup.py'",
                       r"stages\[0\] \(convert\)\.script: 'setup\.py' is not a tool of this repository"),
    'no such tool': ("script='tools/convert_checkpoint.py'", "script='tools/convert.py'",
                     r"\.script: 'tools/convert\.py' is not a tool of this repository"),
    'undeclared output': ("'{convert.checkpoint}'", "'{convert.weights}'",
                          r"\{convert\.weights\}: a 'tool' stage has no output 'weights' \(its outputs: checkpoint\)"),
    'outputs kind': ("outputs=dict(checkpoint='{stage_dir}/mm.pth')", "outputs=['{stage_dir}/mm.pth']",
                     r'\.outputs: .* is not a dict of output names to paths'),
    'launcher on a tool': ("outputs=dict(checkpoint='{stage_dir}/mm.pth')),",
                           "outputs=dict(checkpoint='{stage_dir}/mm.pth'), launcher=dict(type='pytorch', gpus=2)),",
                           r"\.launcher: not a parameter of a 'tool' stage"),
}


@pytest.mark.parametrize('case', list(TOOL_ERRORS))
def test_tool_stage_errors_name_the_key(tmp_path, case):
    old, new, message = TOOL_ERRORS[case]
    assert old in TOOL_SUITE
    path = tmp_path / 'suite.py'
    path.write_text(TOOL_SUITE.replace(old, new, 1))
    with pytest.raises(SuiteError, match=message):
        load_suite(path)


def test_the_tested_checkpoint_is_the_last_or_the_best(tmp_path):
    from tasks.evaluate.stages import LastCheckpoint

    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_10.pth'))
    assert LastCheckpoint(tmp_path).resolve() == str(tmp_path / 'epoch_10.pth')
    with pytest.raises(StageError, match=r"test_checkpoint=best needs the one best_\*\.pth .*found none"):
        LastCheckpoint(tmp_path, 'best').resolve()
    (tmp_path / 'best_ava_mAP_epoch_3.pth').touch()
    assert LastCheckpoint(tmp_path, 'best').resolve() == str(tmp_path / 'best_ava_mAP_epoch_3.pth')
    path = tmp_path / 'suite.py'
    path.write_text(TINY_SUITE.read_text().replace("cfg_options=['train_cfg.max_epochs=2']",
                                                    "cfg_options=['train_cfg.max_epochs=2'], test_checkpoint='first'"))
    with pytest.raises(SuiteError, match=r"\(ava\)\.test_checkpoint: 'first': 'last' or 'best'"):
        load_suite(path)


# --- launchers --------------------------------------------------------------------------------------------------------
def test_launch_commands_are_torchrun_and_mmactions_srun():
    py = sys.executable
    assert launch_command('tools/linear_probe.py', ['a.h5']) == [py, f'{ROOT}/tools/linear_probe.py', 'a.h5']
    assert launch_command('tools/train.py', ['C.py'], {'type': 'pytorch', 'gpus': 8}) == [
        py, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=8', f'{ROOT}/tools/train.py', 'C.py',
        '--launcher', 'pytorch']
    # mmaction2's tools/slurm_train.sh: srun -p P --job-name --gres=gpu:G --ntasks --ntasks-per-node --cpus-per-task
    # --kill-on-bad-exit=1 SRUN_ARGS python -u tools/train.py CONFIG --launcher=slurm
    assert launch_command('tools/test.py', ['C.py', 'w.pth'], {'type': 'slurm', 'partition': 'gpu', 'gpus': 16,
                                                                'srun_args': ['--quotatype=auto']}, job='ava') == [
        'srun', '-p', 'gpu', '--job-name=ava', '--gres=gpu:8', '--ntasks=16', '--ntasks-per-node=8',
        '--cpus-per-task=5', '--kill-on-bad-exit=1', '--quotatype=auto', py, '-u', f'{ROOT}/tools/test.py', 'C.py',
        'w.pth', '--launcher', 'slurm']
    # the extractor reads torchrun's variables: under srun they are set from slurm's
    srun = launch_command('tools/extract_features.py', ['v/', '--out', 'f h.h5'],
                          {'type': 'slurm', 'partition': 'gpu', 'gpus': 4, 'gpus_per_node': 4, 'cpus_per_task': 8})
    assert srun[:8] == ['srun', '-p', 'gpu', '--job-name=evaluate', '--gres=gpu:4', '--ntasks=4',
                        '--ntasks-per-node=4', '--cpus-per-task=8'] and srun[9:11] == ['bash', '-c']
    script = srun[11]
    assert 'RANK=$SLURM_PROCID WORLD_SIZE=$SLURM_NTASKS LOCAL_RANK=$SLURM_LOCALID' in script
    assert script.endswith(f"exec {py} -u {ROOT}/tools/extract_features.py v/ --out 'f h.h5'")


LAUNCHER_ERRORS = {
    "dict(type='mpi', gpus=2)": r"\.launcher\.type: 'mpi' is not a launcher \(choose from pytorch, slurm\)",
    "dict(type='slurm', gpus=2)": r'\.launcher\.partition: a slurm launcher needs the partition',
    "dict(type='pytorch', gpus=0)": r'\.launcher\.gpus: 0 is not a positive integer',
    "dict(type='pytorch', gpus=2, nodes=2)": r"\.launcher\.nodes: not a key of a 'pytorch' launcher",
    "'pytorch'": r"\.launcher: 'pytorch' is not None or a dict",
}


@pytest.mark.parametrize('launcher', list(LAUNCHER_ERRORS))
def test_a_bad_launcher_is_named(tmp_path, launcher):
    path = tmp_path / 'suite.py'
    text = TINY_SUITE.read_text().replace('args=extract_args),', f'args=extract_args, launcher={launcher}),', 1)
    path.write_text(text)
    with pytest.raises(SuiteError, match=r"stages\[1\] \(features\)" + LAUNCHER_ERRORS[launcher]):
        load_suite(path)


def test_command_line_overrides_reach_the_stages(tmp_path, capsys):
    """--set, per-stage --cfg-options and --launcher, seen through --dry-run's commands."""
    demo = ROOT / 'configs' / 'suites' / 'synthetic_demo.py'
    assert main([str(demo), '--dry-run', '--work-dir', str(tmp_path / 'w'), '--set', 'data.preset=tiny', 'data.seed=3',
                 "finetune.train_args=['--amp', 'bf16']", 'finetune.test_checkpoint=best',
                 '--cfg-options', 'finetune.train_cfg.max_epochs=1', '--launcher', 'pytorch', '--gpus', '2']) == 0
    out = capsys.readouterr().out
    lines = {line.split(']')[1].split()[0]: [] for line in out.splitlines() if line.startswith('[')}
    stage = None
    for line in out.splitlines():
        if line.startswith('['):
            stage = line.split(']')[1].split()[0]
        else:
            lines[stage].append(shlex.split(line.strip()[2:]))
    assert list(lines) == load_suite(demo).stage_names
    assert lines['data'] == [['python', 'tools/make_synthetic.py', '--out', 'data/synthetic', '--preset', 'tiny',
                              '--seed', '3']]
    train, test = lines['finetune']
    assert train[:5] == ['python', '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2']
    assert train[-3:] == ['train_cfg.max_epochs=1', '--launcher', 'pytorch']  # after the suite's own options
    assert 'model.pretrained=<pretrain.checkpoint>' in train
    assert train[5:10] == ['tools/train.py', load_suite(demo).stage('finetune').params['config'], '--work-dir',
                           f'{tmp_path}/w/finetune/train', '--amp'] and train[10] == 'bf16'
    assert test[5:8] == ['tools/test.py', load_suite(demo).stage('finetune').params['config'],
                         f'{tmp_path}/w/finetune/train/<best checkpoint>']
    assert lines['probe'][0][:2] == ['python', 'tools/linear_probe.py']  # one process: no launcher
    assert lines['features'][0][:5] == train[:5] and '--launcher' not in lines['features'][0]
    assert lines['reconstruction'][0][3:5] == ['<pretrain.checkpoint>',
                                               'data/synthetic/classification/val_list_videos.txt']

    assert main([str(demo), '--dry-run', '--cfg-options', 'probe.x=1']) == 1
    assert "--cfg-options probe.*: a 'probe' stage has no config" in capsys.readouterr().err
    assert main([str(demo), '--dry-run', '--set', 'pretrian.relocate=False']) == 1
    assert "no stage 'pretrian' to change (its stages: data, pretrain" in capsys.readouterr().err
    assert main([str(demo), '--dry-run', '--set', 'data.preset=3']) == 1  # the literal 3 is no preset name
    assert "(data).preset: 3 is not a string" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(demo), '--set', 'preset=tiny'])
    assert '--set preset=tiny: expected STAGE.KEY=VALUE' in capsys.readouterr().err
    assert main([str(demo), '--dry-run', '--launcher', 'slurm']) == 1
    assert '(pretrain).launcher.partition: a slurm launcher needs the partition' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(demo), '--gpus', '2'])
    assert '--gpus needs --launcher pytorch or slurm' in capsys.readouterr().err


def test_command_line_launchers_keep_what_they_do_not_say(tmp_path):
    """--launcher/--gpus/--partition over a suite's own launchers (a recipe's GPU count stays unless --gpus)."""
    own = "dict(name='own', type='extract', videos='v', launcher=dict(type='slurm', partition='a', gpus=16)),"
    plain = "dict(name='plain', type='extract', videos='v'),"
    path = tmp_path / 'suite.py'

    def launchers(stages: str, **given):
        path.write_text(f"name = 'l'\ndata_root = 'data'\ncheckpoint = 'w.pth'\nstages = [{stages}]\n")
        return [s.params['launcher'] for s in load_suite(path, launcher=given).stages]
    assert launchers(own, type='slurm', gpus=4) == [{'type': 'slurm', 'partition': 'a', 'gpus': 4}]
    assert launchers(own + plain, partition='b') == [{'type': 'slurm', 'partition': 'b', 'gpus': 16}, None]
    assert launchers(own + plain, type='pytorch') == [{'type': 'pytorch', 'gpus': 1}] * 2
    assert launchers(own + plain, type='pytorch', gpus=2) == [{'type': 'pytorch', 'gpus': 2}] * 2
    assert launchers(own + plain, type='none') == [None, None]
    with pytest.raises(SuiteError, match=r'\(plain\)\.launcher\.partition: a slurm launcher needs the partition'):
        launchers(own + plain, type='slurm', gpus=4)


def test_two_process_extraction_stage_equals_one_process(tmp_path, monkeypatch):
    """An extract stage under torchrun (2 processes, gloo, CPU) writes the store one process writes."""
    from backbone import VideoMAEv2ViT

    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    weights = tmp_path / 'w.pth'
    torch.manual_seed(0)
    torch.save({'module': VideoMAEv2ViT('vit_test', img_size=(96, 128), all_frames=8).state_dict()}, weights)
    common = [str(TINY_SUITE), '--checkpoint', str(weights), '--data-root', str(tmp_path / 'data'),
              '--stages', 'data', 'features']
    assert main([*common, '--work-dir', str(tmp_path / 'one')]) == 0
    assert main([*common, '--work-dir', str(tmp_path / 'two'), '--launcher', 'pytorch', '--gpus', '2']) == 0
    log = (tmp_path / 'two' / 'logs' / 'features.log').read_text()
    assert 'torch.distributed.run --standalone --nproc_per_node=2' in log
    paths = [tmp_path / run / 'features' / 'features.h5' for run in ('one', 'two')]
    with FeatureStore.open(paths[0]) as one, FeatureStore.open(paths[1]) as two:
        assert one.ids() == two.ids() and len(one.ids()) == 20
        for vid in one.ids():
            np.testing.assert_allclose(one.read(vid)[0], two.read(vid)[0], rtol=0, atol=1e-6, err_msg=vid)


def test_a_train_stage_under_torchrun_splits_the_batches_over_two_processes(tmp_path, monkeypatch):
    """The demo's pre-training stage on the tiny benchmark (10 training videos, 4 a step, drop_last) with one process
    (2 steps an epoch) and under torchrun with 2 (gloo, CPU: 5 videos a rank, 1 step); the GPU count is an input of a
    training stage, so the second run trains again."""
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    demo = ROOT / 'configs' / 'suites' / 'synthetic_demo.py'
    work, log = tmp_path / 'work', tmp_path / 'work' / 'logs' / 'pretrain.log'
    args = [str(demo), '--work-dir', str(work), '--data-root', str(tmp_path / 'data'), '--stages', 'data', 'pretrain',
            '--set', 'data.preset=tiny', '--cfg-options', 'pretrain.train_cfg.max_epochs=1']
    assert main(args) == 0
    one = log.read_text()
    assert main([*args, '--launcher', 'pytorch', '--gpus', '2']) == 0
    two = log.read_text()[len(one):]
    assert 'Epoch(train) [1][2/2]' in one and 'Distributed training: False' in one
    assert 'torch.distributed.run --standalone --nproc_per_node=2' in two and 'GPU number: 2' in two
    assert 'Epoch(train) [1][1/1]' in two and '[1][2/2]' not in two
    results = json.loads((work / 'results.json').read_text())
    assert results['ran'] == ['pretrain'] and results['reused'] == ['data']
    assert Path(results['stages']['pretrain']['outputs']['checkpoint']).name == 'epoch_1.pth'


# --- checked before a run starts --------------------------------------------------------------------------------------
def test_missing_inputs_stop_the_run_before_any_stage(tmp_path, monkeypatch):
    """Every input under the data root, and every file the stages' configs read, is checked first: the message lists
    them all with their stage and key."""
    from tasks.evaluate import stages as S

    monkeypatch.setattr(S, 'run_tool', lambda *a, **kw: pytest.fail('a tool ran'))
    path = tmp_path / 'suite.py'
    path.write_text("""
name = 'real layout'
data_root = 'data'
checkpoint = None
stages = [
    dict(name='val_features', type='extract', videos='{data_root}/kinetics400/videos_val', checkpoint='w.pth'),
    dict(name='k400', type='test', checkpoint='w.pth',
         config='configs/recognition/videomaev2/vit-small-p16_videomaev2-vit-g-dist-k710-pre_16x4x1_kinetics-400.py',
         cfg_options=['data_root={data_root}/kinetics400']),
]
""")
    suite = load_suite(path)
    root = tmp_path / 'data'
    with pytest.raises(SuiteError) as info:
        run_suite(suite, tmp_path / 'work', data_root=root)
    assert str(info.value).splitlines()[1:] == [
        f"  stage 'val_features': videos: {root}/kinetics400/videos_val not found",
        f"  stage 'k400': configs/recognition/videomaev2/vit-small-p16_videomaev2-vit-g-dist-k710-pre_16x4x1_kinetics-"
        f"400.py: test_dataloader.dataset.ann_file: file {root}/kinetics400/kinetics400_val_list_videos.txt not found",
        f"  stage 'k400': configs/recognition/videomaev2/vit-small-p16_videomaev2-vit-g-dist-k710-pre_16x4x1_kinetics-"
        f"400.py: test_dataloader.dataset.data_prefix.video: folder {root}/kinetics400/videos_val not found"]
    assert plan_suite(suite, tmp_path / 'work', data_root=root)  # a dry run checks nothing: it shows the commands
