"""The config frictions of issue 21 (4, 5, 6 and 8), each reproduced and checked against what is known independently:

* one top-level ``data_root`` (``feature_store``, ``ann_file``) set with ``--cfg-options`` re-points every loader of
  every task config (mmengine had already copied the variables into the loaders, so it changed nothing);
* a run from another folder stops with one line naming the key, the path and the folder (it was a long traceback
  ending in ``AnnotationError: ...: file not found``);
* a training set smaller than one batch stops before training, naming the sizes (mmengine: ``epoch_length must be a
  positive integer, but got 0``), and the tiny configs run on the tiny preset;
* a feature store of another width than ``model.in_dim`` is named with the configs that fit it (it was a conv shape
  error);
* ``auto_scale_lr`` is off (mmaction2's default), each recipe states the official lr of its documented total batch,
  ``tools/train.py --auto-scale-lr`` scales it, and another total batch is warned about;
* the optimiser constructors log one summary line instead of one line per parameter setting.
"""
from __future__ import annotations

import importlib.util
import itertools
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip('mmaction', reason='the configs use mmaction2 registries and runtime')

from mmengine.config import Config  # noqa: E402

from tasks.engine.runner import (DataPathError, EmptyEpochError, build_training_runner, check_data_paths,  # noqa: E402
                                 load_config, lr_batch_warning)
from tests.torchrun_kit import cpu_env  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / 'configs'
FT_TINY = CONFIGS / 'recognition/videomaev2/vit-test-p16_videomaev2-ft_8x4x1_synthetic.py'
TAD_TINY = CONFIGS / 'localization/thumos14/actionformer_vit-test-p16_synthetic-feat_16x4_synthetic-thumos.py'
TAD_GIANT = CONFIGS / 'localization/thumos14/actionformer_vit-giant-p14_videomaev2-k710-ft-feat_16x4_thumos14.py'
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator', 'test_evaluator')
RUNS = itertools.count()
TASK_CONFIGS = sorted(p for p in CONFIGS.rglob('*.py') if '_base_' not in p.parts and 'suites' not in p.parts)


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f'tool_{name}', REPO / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def strings(node, where: str = ''):
    """{dotted key: value} of every string under a config node."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    found = {}
    for key, value in items:
        name = f'{where}.{key}' if where else str(key)
        found.update({name: value} if isinstance(value, str) else strings(value, name))
    return found


def loader_strings(cfg: Config) -> dict[str, str]:
    return {k: v for loader in LOADERS if cfg.get(loader) for k, v in strings(cfg[loader], loader).items()}


# ---------------------------------------------------------------------------------------------------------------------
# 4. one data_root
# ---------------------------------------------------------------------------------------------------------------------
def test_every_task_config_has_one_data_root():
    assert len(TASK_CONFIGS) >= 40
    missing = [p.name for p in TASK_CONFIGS if not isinstance(Config.fromfile(str(p)).get('data_root'), str)]
    assert not missing, f'configs without a top-level data_root: {missing}'


@pytest.mark.parametrize('config', TASK_CONFIGS, ids=lambda p: p.stem[:60])
def test_data_root_repoints_every_loader(config):
    """Every loader / evaluator path under the file's data_root moves to the new root, the rest stays; mmengine's
    own merge (what tools/train.py did) moves none of them."""
    new_root = '/data/elsewhere'
    plain = Config.fromfile(str(config))
    old_root, before = plain.data_root, loader_strings(plain)
    under = {k: v for k, v in before.items() if v == old_root or v.startswith(old_root + '/')}
    # the train, val and test loaders that exist all read from data_root
    assert {k.split('.')[0] for k in under} >= {s for s in ('train_dataloader', 'val_dataloader', 'test_dataloader')
                                                if plain.get(s)}
    plain.merge_from_dict({'data_root': new_root})
    assert loader_strings(plain) == before  # the friction: the variable changed, no loader did

    cfg = load_config(str(config), cfg_options={'data_root': new_root})
    after = loader_strings(cfg)
    expected = {k: new_root + v[len(old_root):] if k in under else v for k, v in before.items()}
    assert after == expected


def test_feature_store_and_ann_file_keys_repoint_both_thumos_loaders():
    cfg = load_config(str(TAD_GIANT), cfg_options={'feature_store': '/feats/g.h5', 'ann_file': '/ann/t.json'})
    for loader in ('train_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.feature_store == '/feats/g.h5' and cfg[loader].dataset.ann_file == '/ann/t.json'
    # data_root and the store together: the store's own key wins for the store, data_root moves the annotations
    cfg = load_config(str(TAD_GIANT), cfg_options={'data_root': '/th', 'feature_store': '/feats/g.h5'})
    assert cfg.test_dataloader.dataset.feature_store == '/feats/g.h5'
    assert cfg.test_dataloader.dataset.ann_file == cfg.ann_file == '/th/annotations/thumos14.json'


def test_a_field_set_on_the_command_line_is_not_repointed():
    cfg = load_config(str(FT_TINY), cfg_options={'data_root': '/new', 'test_dataloader.dataset.ann_file':
                                                 'data/synthetic/classification/mine.txt'})
    assert cfg.test_dataloader.dataset.ann_file == 'data/synthetic/classification/mine.txt'
    assert cfg.test_dataloader.dataset.data_prefix == '/new' and cfg.train_dataloader.dataset.data_prefix == '/new'


def test_a_path_key_the_config_does_not_use_is_refused(tmp_path):
    config = tmp_path / 'no_root.py'
    config.write_text("train_dataloader = dict(dataset=dict(ann_file='a/list.txt'))\n")
    with pytest.raises(ValueError, match='no top-level data_root'):
        load_config(str(config), cfg_options={'data_root': '/x'})
    config.write_text("data_root = 'elsewhere'\ntrain_dataloader = dict(dataset=dict(ann_file='a/list.txt'))\n")
    with pytest.raises(ValueError, match='would change nothing'):
        load_config(str(config), cfg_options={'data_root': '/x'})


def test_train_from_another_folder_stops_with_one_line(tmp_path):
    """Relative paths resolve against the current folder (mmengine's rule): from elsewhere the tool names the key,
    the path and the folder, without a traceback."""
    proc = subprocess.run([sys.executable, str(REPO / 'tools' / 'train.py'), str(FT_TINY), '--work-dir',
                           str(tmp_path / 'work')], cwd=tmp_path, capture_output=True, text=True, env=cpu_env(),
                          timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith('tools/train.py: train_dataloader.dataset.ann_file: file '
                           'data/synthetic/classification/train_list_videos.txt not found'), line
    assert str(tmp_path) in line and 'data_root=DIR' in line


def test_test_tool_from_another_folder_stops_with_one_line(tmp_path, monkeypatch):
    checkpoint = tmp_path / 'model.pth'
    checkpoint.write_bytes(b'')  # never read: the data are checked first
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        load_tool('test').main([str(FT_TINY), str(checkpoint), '--work-dir', str(tmp_path / 'work')])
    assert str(e.value) == (
        'tools/test.py: test_dataloader.dataset.ann_file: file data/synthetic/classification/val_list_videos.txt not '
        f'found (relative paths resolve against the current folder, {tmp_path}); run from the folder the config\'s '
        'paths are relative to (the repository root for the synthetic benchmark), or point the config at the data '
        '(--cfg-options data_root=DIR)')


def test_check_data_paths_joins_a_dataset_data_root(tmp_path):
    """The stock mmaction2 config: ann_file and data_prefix are relative to the dataset's own data_root."""
    cfg = load_config(str(CONFIGS / 'recognition/videomaev2/'
                          'vit-base-p16_videomaev2-vit-g-dist-k710-pre_16x4x1_kinetics-400.py'),
                      cfg_options={'data_root': str(tmp_path)})
    assert cfg.test_dataloader.dataset.data_root == str(tmp_path)  # one key for mmaction2's tool as well
    with pytest.raises(DataPathError, match=f'test_dataloader.dataset.ann_file: file {tmp_path}/kinetics400_val'):
        check_data_paths(cfg, ['test_dataloader'])
    (tmp_path / 'kinetics400_val_list_videos.txt').write_text('a.mp4 0\n')
    with pytest.raises(DataPathError, match=f'data_prefix.video: folder {tmp_path}/videos_val not found;'):
        check_data_paths(cfg, ['test_dataloader'])
    (tmp_path / 'videos_val').mkdir()
    check_data_paths(cfg, ['test_dataloader'])


# ---------------------------------------------------------------------------------------------------------------------
# 5. a training set smaller than a batch; 8. lr and batch
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def tiny_benchmark(tmp_path_factory):
    from tasks.data.synthetic import generate

    root = tmp_path_factory.mktemp('syn')
    generate(root, 'tiny', 0, workers=1, log=lambda msg: None)  # 10 training videos
    return root


def ft_options(root: Path, **extra) -> dict:
    # a fresh experiment name: Runners built within one second would otherwise share mmengine's logger (and log file)
    name = f'run{next(RUNS)}'
    return {'experiment_name': name, 'data_root': str(root / 'classification'), 'train_dataloader.num_workers': 0,
            'train_dataloader.persistent_workers': False, 'val_dataloader.num_workers': 0,
            'val_dataloader.persistent_workers': False, 'visualizer.vis_backends': [], **extra}


def test_training_set_smaller_than_a_batch_is_named_before_training(tiny_benchmark, tmp_path):
    with pytest.raises(EmptyEpochError) as e:
        build_training_runner(str(FT_TINY), work_dir=str(tmp_path),
                              cfg_options=ft_options(tiny_benchmark, **{'train_dataloader.drop_last': True}))
    message = str(e.value)
    assert 'has 10 samples' in message and 'batch_size=16 per process on 1 process(es)' in message
    assert 'train_list_videos.txt' in message and 'drop_last=False' in message


def test_tiny_configs_train_on_the_tiny_preset(tiny_benchmark, tmp_path):
    """As shipped, the tiny fine-tuning config keeps the tiny preset's 10 videos as one batch (drop_last=False: the
    default preset's 480 make 30 whole batches either way)."""
    runner = build_training_runner(str(FT_TINY), work_dir=str(tmp_path), cfg_options=ft_options(tiny_benchmark))
    assert len(runner.train_loop.dataloader) == 1 and len(runner.train_loop.dataloader.dataset) == 10
    assert Config.fromfile(str(TAD_TINY)).train_dataloader.drop_last is False  # 1 training video in the tiny preset


def test_lr_is_not_scaled_by_default_and_another_batch_is_warned_about(tiny_benchmark, tmp_path):
    cfg = load_config(str(FT_TINY))
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=16) and cfg.optim_wrapper.optimizer.lr == 3e-3
    assert lr_batch_warning(cfg, world_size=1) is None  # the documented set-up: 1 process x 16
    warning = lr_batch_warning(cfg, world_size=2)
    assert warning == ('lr 0.003 is set for a total batch of 16 (auto_scale_lr.base_batch_size), this run has 2 '
                       'process(es) x train_dataloader.batch_size=16 = 32, and the lr is not scaled: add '
                       '--auto-scale-lr for lr x 32/16 = 0.006')
    runner = build_training_runner(str(FT_TINY), work_dir=str(tmp_path),
                                   cfg_options=ft_options(tiny_benchmark, **{'train_dataloader.batch_size': 4}))
    wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.scale_lr(wrapper, runner.auto_scale_lr)
    assert wrapper.optimizer.param_groups[0]['lr'] == 3e-3  # as written
    log = next(Path(runner.log_dir).glob('*.log')).read_text()
    assert sum('is set for a total batch of 16' in line for line in log.splitlines()) == 1
    assert 'train_dataloader.batch_size=4 = 4' in log


def test_auto_scale_lr_flag_scales_the_lr(tiny_benchmark, tmp_path):
    args = load_tool('train').get_args_parser().parse_args([str(FT_TINY), '--auto-scale-lr'])
    assert args.auto_scale_lr
    runner = build_training_runner(str(FT_TINY), work_dir=str(tmp_path), auto_scale_lr=args.auto_scale_lr,
                                   cfg_options=ft_options(tiny_benchmark, **{'train_dataloader.batch_size': 4}))
    assert runner.auto_scale_lr['enable']
    wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.scale_lr(wrapper, runner.auto_scale_lr)
    assert wrapper.optimizer.param_groups[0]['lr'] == pytest.approx(3e-3 * 4 / 16)
    log = next(Path(runner.log_dir).glob('*.log')).read_text()
    assert 'is set for a total batch' not in log  # scaled: nothing to warn about


# (config, official lr per 256 videos, GPUs, videos per GPU): docs/classification.md#fine-tuning-recipe,
# docs/pretraining.md#recipe (the scripts' --lr, nodes x GPUs and --batch_size).
OFFICIAL = [
    ('recognition/videomaev2/vit-base-p16_videomaev2-hybrid-pt_16x4x1_kinetics-400.py', 7e-4, 32, 16),
    ('recognition/videomaev2/vit-large-p16_videomaev2-hybrid-pt_16x4x1_kinetics-400.py', 2e-3, 32, 6),
    ('recognition/videomaev2/vit-huge-p16_videomaev2-hybrid-pt_16x4x1_kinetics-600.py', 1e-3, 32, 4),
    ('recognition/videomaev2/vit-giant-p14_videomaev2-hybrid-pt_16x4x1_kinetics-400.py', 1e-3, 64, 3),
    ('recognition/videomaev2/vit-giant-p14_videomaev2-hybrid-pt_16x4x1_kinetics-710.py', 1e-3, 32, 3),
    ('recognition/videomaev2/vit-giant-p14_videomaev2-hybrid-pt-k710-ft_16x4x1_kinetics-400.py', 1e-5, 32, 3),
    ('recognition/videomaev2/vit-base-p16_videomaev2-hybrid-pt_u16_ssv2.py', 2e-3, 16, 16),
    ('recognition/videomaev2/vit-giant-p14_videomaev2-hybrid-pt_u16_ssv2.py', 3e-4, 32, 3),
    ('pretrain/videomaev2/vit-base-p16_videomaev2-pt-200e_16x4x1_unlabeled-hybrid.py', 1e-3, 32, 32),
    ('pretrain/videomaev2/vit-large-p16_videomaev2-pt-300e_16x4x1_unlabeled-hybrid.py', 1e-3, 48, 32),
    ('pretrain/videomaev2/vit-huge-p16_videomaev2-pt-300e_16x4x1_unlabeled-hybrid.py', 1e-3, 64, 32),
    ('pretrain/videomaev2/vit-giant-p14_videomaev2-pt-300e_16x4x1_unlabeled-hybrid.py', 6e-4, 64, 32),
]


@pytest.mark.parametrize('config, lr_per_256, gpus, batch', OFFICIAL, ids=lambda v: str(v)[-40:])
def test_recipe_lr_at_its_documented_batch_is_the_official_one(config, lr_per_256, gpus, batch):
    """The lr a user gets on the documented set-up, without --auto-scale-lr: the official lr_per_256 x total / 256,
    and no warning."""
    cfg = load_config(str(CONFIGS / config))
    assert cfg.train_dataloader.batch_size == batch
    assert cfg.auto_scale_lr == dict(enable=False, base_batch_size=gpus * batch)
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(lr_per_256 * gpus * batch / 256, rel=1e-12)
    assert lr_batch_warning(cfg, world_size=gpus) is None


# ---------------------------------------------------------------------------------------------------------------------
# 6. feature width
# ---------------------------------------------------------------------------------------------------------------------
def test_store_width_other_than_in_dim_is_named_with_the_matching_configs(tmp_path, monkeypatch):
    from mmengine.registry import MODELS

    import tests.localization.test_train as tad
    from tasks.localization import TADFeatureDataset, tad_collate
    from tasks.localization.dataset import FeatureWidthError

    monkeypatch.setattr(tad, 'DIM', 64)  # a vit_test store, as the synthetic benchmark's
    ann, store = tad.make_benchmark(tmp_path, train=1, test=0)
    data = TADFeatureDataset(str(ann), str(store), 'train', crop_ratio=None)
    cfg = Config.fromfile(str(TAD_GIANT))
    assert cfg.model.in_dim == 1408
    model = MODELS.build(cfg.model)
    batch = model.data_preprocessor(tad_collate([data[0]]), True)
    assert batch['inputs'].shape[1] == 64
    with pytest.raises(FeatureWidthError) as e:
        model(**batch, mode='loss')
    assert str(e.value) == (
        f"feature store {store} holds 64-d features, but the config's model.in_dim=1408 (the features it was written "
        f"for); the feature configs for 64-d features: {TAD_TINY.name} (configs/localization/thumos14/); or set "
        f"--cfg-options model.in_dim=64")
    model.eval()
    with pytest.raises(FeatureWidthError, match='holds 64-d features'), torch.no_grad():
        model(**model.data_preprocessor(tad_collate([data[0]]), False), mode='predict')


# ---------------------------------------------------------------------------------------------------------------------
# 8. one log line for the parameter groups
# ---------------------------------------------------------------------------------------------------------------------
class Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.parametrize('config', [TAD_TINY, CONFIGS / 'pretrain/videomaev2/vit-test-p16_videomaev2-pt-2e_8x2x1_'
                                                         'synthetic.py'], ids=['actionformer', 'pretrain'])
def test_optimiser_constructor_logs_one_summary_line(config):
    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS, init_default_scope

    cfg = Config.fromfile(str(config))
    init_default_scope('mmaction')
    model = MODELS.build(cfg.model)
    lines = Lines()
    logger = MMLogger.get_current_instance()
    logger.addHandler(lines)
    try:
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        stock = build_optim_wrapper(model, dict(cfg.optim_wrapper, constructor='DefaultOptimWrapperConstructor'))
    finally:
        logger.removeHandler(lines)
    split = next(i for i, m in enumerate(lines.messages) if m.startswith('SummarizedOptimWrapperConstructor: '))
    ours, theirs = lines.messages[:split + 1], lines.messages[split + 1:]
    assert not any(m.startswith('paramwise_options') for m in ours), ours[:3]
    summary = [m for m in ours if 'parameter tensors' in m]
    assert len(summary) == 1
    # mmengine's constructor: a line per parameter and setting (the friction), for the same groups
    assert sum(m.startswith('paramwise_options') for m in theirs) >= 40
    decay = lambda w: [(g['lr'], g['weight_decay']) for g in w.optimizer.param_groups]  # noqa: E731
    assert decay(wrapper) == decay(stock)
    tensors = len(list(model.parameters()))
    assert summary[0].startswith(f'SummarizedOptimWrapperConstructor: {tensors} parameter tensors')
