"""``--compile`` of ``tools/infer.py``, ``tools/test.py`` and ``tools/train.py``, and the config key
``compile_backbone`` behind them (``tasks/engine/runner.py``).

What is checked, and against what:

* the config key: ``True`` / a dict of options / ``False`` / absent, a wrong value refused naming the key; the flag
  keeps a config's own options;
* a model without transformer blocks (ActionFormer on stored features): 0 compiled, and a log line that says so;
* ``tools/infer.py --compile`` on the tiny synthetic classifier (tests/tools/test_infer.py's fixture): the scores
  equal the eager run's within 1e-5, the speed line gives the compilation apart; ``--cfg-options
  compile_backbone=True`` does the same;
* ``tools/infer.py --compile`` on the tiny ActionFormer: the feature backbone is compiled and the segments are the
  eager run's;
* ``tools/test.py`` with ``compile_backbone = True`` written in the config: the blocks are compiled before the test
  (a hook looks), and the per-video scores equal the eager ``tools/infer.py`` scores, which tests/tools/test_infer.py
  shows to be the test protocol's;
* ``tools/train.py --compile``: the Runner's pre-training model has its encoder and decoder blocks compiled and the
  eager state-dict keys; (slow, ~40 s here) 2 iterations give the eager run's losses and a checkpoint with the same
  keys and weights (1e-5).
"""
from __future__ import annotations

import json
import logging
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn

pytest.importorskip('av', reason='the test videos are written with PyAV')

from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.registry import HOOKS  # noqa: E402

from backbone import Block  # noqa: E402
from backbone.compile import compile_unavailable_reason  # noqa: E402
from tasks.engine.runner import (apply_compile, build_training_runner, compile_options,  # noqa: E402
                                 compile_runner_model)
from tests.engine.test_runner_switches import PRETRAIN_TINY  # noqa: E402
from tests.engine.test_runner_switches import load_tool as runner_tool  # noqa: E402
from tests.tools.test_infer import TAD_CONFIG, args_for, bench, tad  # noqa: E402,F401  (tiny models, videos, store)
from tests.tools.test_infer import load_tool as infer_tool  # noqa: E402


@pytest.fixture(autouse=True)
def _skip_env_report(monkeypatch):
    """The Runner's system report (~5 s per Runner) is only logged; skipped as in tests/tools/test_test.py."""
    import mmengine.runner.runner as runner_module
    monkeypatch.setattr(runner_module, 'collect_env', lambda: {'collect_env': 'skipped in tests'})


@pytest.fixture(scope='module')
def compiler():
    reason = compile_unavailable_reason('cpu')
    if reason is not None:
        pytest.skip(f'torch.compile is not available on the CPU here: {reason}')


@HOOKS.register_module(force=True)
class CompileProbeHook(Hook):
    """Records, before the run, which transformer blocks of the Runner's model are compiled."""

    seen: list[bool] = []

    def before_run(self, runner) -> None:
        CompileProbeHook.seen = [b._compiled_call_impl is not None for b in runner.model.modules()
                                 if isinstance(b, Block)]


# =====================================================================================================================
# the config key
# =====================================================================================================================
def test_config_key_values():
    assert compile_options(Config(dict())) is None
    assert compile_options(Config(dict(compile_backbone=False))) is None
    assert compile_options(Config(dict(compile_backbone=True))) == {}
    assert compile_options(Config(dict(compile_backbone=dict(mode='max-autotune')))) == {'mode': 'max-autotune'}
    for wrong in ('yes', dict(fullgraph=True)):
        with pytest.raises(ValueError, match=r'config key compile_backbone must be True, False, None or '
                                             r'dict\(mode=\.\.\., dynamic=\.\.\.\), got'):
            compile_options(Config(dict(compile_backbone=wrong)))
    cfg = Config(dict())
    apply_compile(cfg, False)
    assert 'compile_backbone' not in cfg
    apply_compile(cfg, True)
    assert cfg.compile_backbone is True
    cfg = Config(dict(compile_backbone=dict(dynamic=False)))
    apply_compile(cfg, True)  # the config's own options stay
    assert compile_options(cfg) == {'dynamic': False}


def test_a_model_without_blocks_says_so(caplog):
    """ActionFormer on stored features has no backbone: 0 blocks, said in the log, nothing probed or changed."""
    logger = logging.getLogger('test_compile_switch')
    detector = nn.Sequential(nn.Conv1d(64, 32, 3), nn.ReLU())
    with caplog.at_level(logging.INFO, logger='test_compile_switch'):
        assert compile_runner_model(SimpleNamespace(model=detector, logger=logger), {}) == 0
        assert compile_runner_model(SimpleNamespace(model=detector, logger=logger), None) == 0
    assert [r.getMessage() for r in caplog.records] == [
        'compile_backbone: Sequential has no transformer block (0 compiled); it runs eager']


# =====================================================================================================================
# tools/infer.py and tools/test.py
# =====================================================================================================================
def test_infer_and_test_compiled_give_the_eager_scores(bench, compiler, tmp_path, capsys):
    videos = [*map(str, bench['videos'])]
    eager = infer_tool().main([*videos, *args_for(bench)])
    assert re.search(r'^classifier: first batch [\d.]+ s', capsys.readouterr().err, re.M)
    compiled = infer_tool().main([*videos, *args_for(bench, '--compile')])
    err = capsys.readouterr().err
    assert re.search(r'^classifier \(2 blocks compiled\): compile \+ first batch [\d.]+ s', err, re.M), err
    np.testing.assert_allclose(np.stack([r.scores for r in compiled]), np.stack([r.scores for r in eager]),
                               rtol=0, atol=1e-5)
    # the config key does what the flag does
    infer_tool().main([*videos, *args_for(bench, '--cfg-options', 'compile_backbone=True')])
    assert '(2 blocks compiled)' in capsys.readouterr().err

    # tools/test.py with the key written in the config: the same scores (the infer scores are the test protocol's)
    config = tmp_path / 'compiled.py'
    config.write_text(f"_base_ = ['{bench['config']}']\ncompile_backbone = True\n"
                      "custom_hooks = [dict(type='CompileProbeHook')]\n")
    (tmp_path / 'list.txt').write_text(''.join(f'{path} {label}\n' for path, label in bench['listed']))
    CompileProbeHook.seen = []
    runner_tool('test').main([str(config), str(bench['checkpoint']), '--work-dir', str(tmp_path / 'work'),
                              '--cfg-options', f'test_dataloader.dataset.ann_file={tmp_path / "list.txt"}',
                              f'test_dataloader.dataset.data_prefix={bench["data"]}',
                              'experiment_name=test_compile_switch_test'])
    assert CompileProbeHook.seen == [True, True]
    with np.load(tmp_path / 'work' / 'cls_scores.npz') as npz:
        np.testing.assert_allclose(npz['scores'], np.stack([r.scores for r in eager]), rtol=0, atol=1e-5)
    log = next((tmp_path / 'work').rglob('*.log')).read_text()
    assert 'compile_backbone: 2 transformer blocks of VideoMAEv2Classifier compiled in place' in log


def test_localization_compiles_the_feature_backbone(bench, tad, compiler, tmp_path, capsys):
    args = [str(tad['video']), '--config', str(TAD_CONFIG), '--checkpoint', str(tad['checkpoint']), '--features',
            str(tad['store']), '--device', 'cpu', '--no-progress', '--plot-dir', str(tmp_path)]
    segments = {}
    for name, extra in (('eager', []), ('compiled', ['--compile'])):
        infer_tool().main([*args, *extra, '--out', str(tmp_path / f'{name}.json')])
        segments[name] = json.loads((tmp_path / f'{name}.json').read_text())['videos'][0]['segments']
    err = capsys.readouterr().err
    # full batches of windows, then a smaller last one: a new shape, compiled again
    assert re.search(r'^feature backbone \(2 blocks compiled\): compile \+ first batches of 2 shapes [\d.]+ s, then \d+ '
                     r'batch(es)? in', err, re.M), err
    labels = {name: [s['label'] for s in found] for name, found in segments.items()}
    assert labels['compiled'] and labels['compiled'] == labels['eager']
    for key in ('start', 'end', 'score'):
        np.testing.assert_allclose([s[key] for s in segments['compiled']], [s[key] for s in segments['eager']],
                                   rtol=1e-5, atol=1e-5)


# =====================================================================================================================
# tools/train.py
# =====================================================================================================================
@pytest.fixture
def tiny_pretrain(tmp_path):
    """The tiny pre-training config on 4 small videos, 2 iterations of 2 videos, as in
    tests/engine/test_runner_switches.py's ``--amp`` run."""
    from tasks.data.video import write_video

    rng = np.random.default_rng(0)
    for k in range(4):
        write_video(tmp_path / 'videos' / f'{k}.mp4', rng.integers(0, 255, (16, 48, 64, 3), dtype=np.uint8), fps=30)
    (tmp_path / 'list.txt').write_text(''.join(f'videos/{k}.mp4 0\n' for k in range(4)))
    cfg = Config.fromfile(PRETRAIN_TINY)
    cfg.merge_from_dict({
        'model.img_size': 32, 'model.all_frames': 8, 'train_dataloader.batch_size': 2,
        'train_dataloader.num_workers': 0, 'train_dataloader.persistent_workers': False,
        'train_dataloader.dataset.ann_file': str(tmp_path / 'list.txt'),
        'train_dataloader.dataset.data_prefix': str(tmp_path), 'train_dataloader.dataset.input_size': 32,
        'train_dataloader.dataset.num_sample': 2, 'train_cfg.max_epochs': 1,
        'custom_hooks': [dict(type='PretrainLossCurveHook', interval=100), dict(type='CompileProbeHook')]})
    cfg.dump(str(tmp_path / 'tiny.py'))
    return tmp_path / 'tiny.py'


def test_train_flag_compiles_the_runner_model_in_place(tiny_pretrain, compiler, tmp_path):
    """What ``tools/train.py --compile`` builds, before any iteration (compilation itself is lazy)."""
    runners = {name: build_training_runner(str(tiny_pretrain), work_dir=str(tmp_path / name), compile=compiled,
                                           cfg_options={'experiment_name': f'test_compile_switch_build_{name}'})
               for name, compiled in (('eager', False), ('compiled', True))}
    for name, expected in (('eager', False), ('compiled', True)):
        blocks = [m for m in runners[name].model.modules() if isinstance(m, Block)]
        assert [b._compiled_call_impl is not None for b in blocks] == [expected] * 4  # 2 encoder, 2 decoder blocks
    assert list(runners['compiled'].model.state_dict()) == list(runners['eager'].model.state_dict())


@pytest.mark.slow
def test_train_compiled_gives_the_eager_losses_and_checkpoint(tiny_pretrain, compiler, tmp_path, one_thread):
    runs = {}
    for name, extra in (('eager', []), ('compiled', ['--compile'])):
        CompileProbeHook.seen = []
        runner_tool('train').main([str(tiny_pretrain), *extra, '--work-dir', str(tmp_path / name),
                                   '--cfg-options', f'experiment_name=test_compile_switch_{name}'])
        curve = json.loads((tmp_path / name / 'loss_curve.json').read_text())
        state = torch.load(tmp_path / name / 'epoch_1.pth', map_location='cpu', weights_only=False)['state_dict']
        runs[name] = dict(seen=CompileProbeHook.seen, loss=curve['loss'], state=state)
    assert runs['eager']['seen'] == [False] * 4
    assert runs['compiled']['seen'] == [True] * 4  # 2 encoder and 2 decoder blocks
    assert len(runs['compiled']['loss']) == 2
    np.testing.assert_allclose(runs['compiled']['loss'], runs['eager']['loss'], rtol=1e-5)
    eager, compiled = runs['eager']['state'], runs['compiled']['state']
    assert list(compiled) == list(eager)  # the same keys, in the same order: no `_orig_mod.`
    for key, value in eager.items():
        assert (compiled[key] - value).abs().max().item() <= 1e-5, key
