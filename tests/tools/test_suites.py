"""The shipped evaluation suites (configs/suites/), checked as the README commands are
(tests/tools/test_readme_commands.py): every command their stages would run parses with the tool's own argument
parser, every config they name loads, and every ``--cfg-options`` key they set is already a key of that config
(mmengine would add a misspelt key silently). The real-data suites find every input they read, their own and their
configs', in the public datasets' layouts (REAL_LAYOUT), and a missing file is named before anything runs.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from mmengine.config import Config

from tasks.evaluate import load_suite, plan_suite
from tasks.evaluate.run import preflight
from tasks.evaluate.tools import display_argv
from tests.tools.test_readme_commands import config_has_key, parse_with_tool

ROOT = Path(__file__).resolve().parents[2]
SUITES = sorted((ROOT / 'configs' / 'suites').glob('*.py'))
SYNTHETIC = {'synthetic_demo.py', 'synthetic_tiny.py'}
REAL = [p for p in SUITES if p.name not in SYNTHETIC]

# The datasets under one data root as their usual preparation leaves them: mmaction2's Kinetics video lists
# (tools/data/kinetics) and SSv2 json annotations (tools/data/sthv2), the official label_710to400.json of
# OpenGVLab/VideoMAEv2 misc/, ActionFormer's THUMOS14 json with the videos beside it, the AVA v2.2 csv/pbtxt files,
# the FAIR person proposals and the 15-minute clips (mmaction2 tools/data/ava). Folders end in '/'.
REAL_LAYOUT = (
    'kinetics400/kinetics400_train_list_videos.txt', 'kinetics400/kinetics400_val_list_videos.txt',
    'kinetics400/videos_train/', 'kinetics400/videos_val/',
    'kinetics710/label_710to400.json',
    'sthv2/annotations/train.json', 'sthv2/annotations/validation.json', 'sthv2/annotations/labels.json',
    'sthv2/videos/',
    'thumos/annotations/thumos14.json', 'thumos/videos/',
    'ava/annotations/ava_train_v2.2.csv', 'ava/annotations/ava_val_v2.2.csv',
    'ava/annotations/ava_train_excluded_timestamps_v2.2.csv', 'ava/annotations/ava_val_excluded_timestamps_v2.2.csv',
    'ava/annotations/ava_action_list_v2.2_for_activitynet_2019.pbtxt',
    'ava/annotations/ava_dense_proposals_train.FAIR.recall_93.9.pkl',
    'ava/annotations/ava_dense_proposals_val.FAIR.recall_93.9.pkl', 'ava/videos_15min/',
)


def test_there_are_real_suites():
    assert len(REAL) >= 4, [p.name for p in SUITES]


@pytest.mark.parametrize('path', SUITES, ids=lambda p: p.name)
def test_every_stage_command_parses_and_its_config_keys_exist(path, tmp_path):
    suite = load_suite(path)
    assert suite.report, 'a suite reports something'
    plan = plan_suite(suite, tmp_path / 'work', checkpoint=suite.checkpoint or 'my_pretrain.pth',
                      data_root=tmp_path / 'data')
    assert [spec.name for spec, _ in plan] == suite.stage_names
    for spec, argvs in plan:
        assert argvs, f'{path.name}: stage {spec.name} runs no tool'
        for argv in argvs:
            words = display_argv(argv)
            if words[:3] == ['python', '-m', 'torch.distributed.run']:
                words = words[words.index(next(w for w in words if w.endswith('.py'))):]
            elif words[0] == 'srun':
                words = words[words.index('-u') + 1:]
            else:
                words = words[1:]
            script, args = words[0], words[1:]
            parsed = parse_with_tool(ROOT / script, args)
            config, options = getattr(parsed, 'config', None), getattr(parsed, 'cfg_options', None) or {}
            if config:
                cfg = Config.fromfile(str(ROOT / config)).to_dict()
                unknown = [k for k in options if not config_has_key(cfg, k)]
                assert not unknown, f'{path.name}: stage {spec.name}: keys not in {config}: {unknown}'


@pytest.mark.parametrize('path', REAL, ids=lambda p: p.name)
def test_real_suites_find_their_inputs_in_the_public_layouts(path, tmp_path):
    suite = load_suite(path)
    root = tmp_path / 'data'
    for entry in REAL_LAYOUT:
        target = root / entry
        if entry.endswith('/'):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
    env = {'data_root': str(root), 'work_dir': str(tmp_path / 'work'), 'checkpoint': suite.checkpoint or 'x.pth'}
    for spec in suite.stages:
        assert preflight(spec, env, root, suite) == [], f'{path.name}: stage {spec.name}'
    # every dataset file the suite reads is in the layout: removing each in turn is reported, naming it
    read = set()
    for entry in REAL_LAYOUT:
        target = root / entry
        if target.is_file():
            target.rename(target.with_suffix('.gone'))
            problems = [p for spec in suite.stages for p in preflight(spec, env, root, suite)]
            target.with_suffix('.gone').rename(target)
            if problems:
                assert all(str(target) in p for p in problems), problems
                read.add(entry.split('/')[0])
    assert read, f'{path.name} reads none of the datasets'


@pytest.mark.parametrize('path', REAL, ids=lambda p: p.name)
def test_real_suites_name_a_published_figure_and_its_source_for_every_metric(path):
    suite = load_suite(path)
    for metric in suite.report:
        assert metric.source, f'{path.name}: {metric.name}: no source'
        if metric.published is None:  # then the source says why there is none
            assert re.search(r'\bno\b|\bnone\b|\bnot\b', metric.source, re.I), (path.name, metric.name, metric.source)
        assert metric.baseline is not None, f'{path.name}: {metric.name}: no baseline'
