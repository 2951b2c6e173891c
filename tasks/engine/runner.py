"""The Runner tools' library (``tools/train.py``, ``tools/test.py``): config and launcher set-up, building the Runner,
training, and testing a checkpoint loaded strictly.

mmengine's ``load_from`` loads non-strictly and only warns, so a file with the wrong key names would silently test
random weights; :func:`load_for_test` instead requires every model weight from the file and every file weight used
(docs/checkpoints.md#k710-heads-and-safe-loading).
"""
from __future__ import annotations

import argparse
import gc
import inspect
import os
import os.path as osp
from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.config import Config, DictAction
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from backbone import filter_checkpoint
from backbone.compile import compile_backbone
from backbone.precision import set_cuda_tf32
from tasks.data.annotations import AnnotationError
from tasks.data.files import write_json_atomic

from .checkpoint import mmengine_checkpoint_globals
from .data_paths import PATH_KEYS, DataPathError, check_data_paths, data_error_message, path_leaves, repoint_paths
from .report import text_table
from .wrappers import use_bf16_test_loop  # also registers the wrappers and loops the configs name

__all__ = ['DATA_ERRORS', 'PATH_KEYS', 'DataPathError', 'EmptyEpochError', 'StrictCheckpointHook',
           'add_runner_options', 'apply_amp', 'apply_auto_scale_lr', 'apply_compile', 'apply_tf32', 'build_runner',
           'build_training_runner', 'check_data_paths', 'check_train_batches', 'compile_options',
           'compile_runner_model', 'cpu_backend', 'data_error_message', 'evaluate_checkpoint', 'fill_out_dirs',
           'finish_distributed', 'load_config', 'load_for_test', 'lr_batch_warning', 'metrics_table', 'repoint_paths',
           'resolve_work_dir', 'train_config']


# =====================================================================================================================
# Config and launcher
# =====================================================================================================================
def add_runner_options(parser: argparse.ArgumentParser, cfg_example: str) -> None:
    """The options of both Runner tools: ``--cfg-options``, ``--launcher`` and the ``--local-rank`` that
    ``torch.distributed.launch`` (not torchrun) passes."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help=f'override config settings, e.g. {cfg_example} (key=value pairs; lists as key="[a,b]")')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='distributed launcher: "pytorch" under torchrun')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0, help=argparse.SUPPRESS)


def resolve_work_dir(cfg: Config, work_dir: str | None, config_path: str) -> None:
    """``--work-dir`` wins, then the config's ``work_dir``, else ``./work_dirs/<config name>`` (mmaction2's rule)."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def load_config(config: str, work_dir: str | None = None, cfg_options: Mapping | None = None,
                launcher: str = 'none', local_rank: int = 0) -> Config:
    """The config with the command line applied: launcher, ``--cfg-options`` (a changed :data:`PATH_KEYS` key
    re-points the dataloaders' paths, :func:`repoint_paths`) and the work directory."""
    if launcher != 'none' and 'LOCAL_RANK' not in os.environ:
        # torch.distributed.launch (not torchrun) passes --local-rank; hand it on as the environment variable
        os.environ['LOCAL_RANK'] = str(local_rank)
    cfg = Config.fromfile(config)
    cfg.launcher = launcher
    before = {key: cfg.get(key) for key in PATH_KEYS}
    leaves = path_leaves(cfg)
    cfg.merge_from_dict(dict(cfg_options or {}))
    repoint_paths(cfg, before, leaves)
    resolve_work_dir(cfg, work_dir, config)
    return cfg


class EmptyEpochError(ValueError):
    """A training set that gives no full batch per process (``drop_last=True``): an epoch of 0 iterations."""


# Errors in the user's data or config that the Runner tools report in one line, without a traceback.
DATA_ERRORS = (DataPathError, EmptyEpochError, AnnotationError)


def cpu_backend(cfg: Config, tool: str = 'tools/train.py') -> None:
    """Run a ``--launcher pytorch`` config on a machine without CUDA (CPU tests, debugging) with gloo.

    mmengine's pytorch launcher calls ``torch.cuda.set_device`` and wraps the model with ``device_ids=[local_rank]``;
    both fail without a GPU. So start the gloo process group here (the Runner then skips its own set-up) and wrap the
    model with :class:`tasks.engine.wrappers.DeviceAgnosticDDP`, which drops ``device_ids`` for CPU modules.
    """
    if torch.cuda.is_available() or cfg.launcher != 'pytorch':
        return
    print(f'{tool}: no CUDA device, using the gloo backend instead of nccl', flush=True)
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')  # env:// rendezvous from torchrun's variables
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(type='DeviceAgnosticDDP', broadcast_buffers=False)


def finish_distributed() -> None:
    """After a run under a launcher: wait for every rank, then destroy the process group. Ask for the rank before:
    without a group, mmengine's ``get_rank``/``is_main_process`` say rank 0 on every process.

    A rank that exits with the group alive, while another still finishes its last collective, can abort in gloo's
    teardown (``terminate called without an active exception``, SIGABRT). Not in a ``finally``: after an error on one
    rank the barrier would wait for it forever.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


# =====================================================================================================================
# GPU speed settings
# =====================================================================================================================
AmpMode = Literal['bf16', 'fp16']

# optim_wrapper type -> the autocast dtype it runs ('' = none); other types are refused by apply_amp
_WRAPPER_DTYPES = {'OptimWrapper': '', 'BF16AutocastOptimWrapper': 'bfloat16', 'AmpOptimWrapper': 'float16'}


def _wrapper_name(wrapper_type: Any) -> str:
    return getattr(wrapper_type, '__name__', str(wrapper_type))


def apply_amp(cfg: Config, mode: AmpMode | None) -> None:
    """Switch the config's ``optim_wrapper`` to mixed precision (``tools/train.py --amp``), in place.

    ``'bf16'``: :class:`tasks.engine.wrappers.BF16AutocastOptimWrapper` (bfloat16 autocast on the model's device, CPU
    or CUDA; no loss scaler: bfloat16 has float32's exponent range). ``'fp16'``: mmengine's ``AmpOptimWrapper`` with
    float16 autocast and dynamic loss scaling (the official recipes' set-up; CUDA only). ``None`` changes nothing.
    Only the wrapper type (and its dtype / loss scale) changes: optimiser, ``clip_grad``, ``accumulative_counts``,
    ``paramwise_cfg`` and constructor stay as configured.

    Raises:
        ValueError: unknown mode, a config without ``optim_wrapper``, a custom wrapper type, or a config that already
            uses the other precision.
        RuntimeError: ``'fp16'`` on a machine without CUDA.
    """
    if mode is None:
        return
    if mode not in ('bf16', 'fp16'):
        raise ValueError(f"--amp must be 'bf16' or 'fp16', got {mode!r}")
    wrapper = cfg.get('optim_wrapper')
    if not wrapper:
        raise ValueError('--amp: the config has no optim_wrapper to switch (it is not a training config)')
    name = _wrapper_name(wrapper.get('type', 'OptimWrapper'))
    if name not in _WRAPPER_DTYPES:
        raise ValueError(f"--amp: optim_wrapper.type={name!r} is not one --amp can switch (OptimWrapper, "
                         f"BF16AutocastOptimWrapper, AmpOptimWrapper); set the mixed precision in the config instead")
    current = _WRAPPER_DTYPES[name]
    if name == 'AmpOptimWrapper' and str(wrapper.get('dtype') or 'float16').replace('torch.', '') == 'bfloat16':
        current = 'bfloat16'
    wanted = 'bfloat16' if mode == 'bf16' else 'float16'
    if current and current != wanted:
        raise ValueError(f'--amp {mode}: the config already trains in {current} (optim_wrapper.type={name!r}); '
                         f'drop --amp, or set optim_wrapper.type=OptimWrapper in the config to choose with --amp')
    if mode == 'fp16' and not torch.cuda.is_available():
        raise RuntimeError("--amp fp16 needs a CUDA GPU (mmengine's AmpOptimWrapper and its loss scaler); this "
                           "machine has none: use --amp (bfloat16), which also runs on the CPU")
    if current:
        return  # already what was asked
    if mode == 'bf16':
        wrapper['type'] = 'BF16AutocastOptimWrapper'
    else:
        wrapper.update(type='AmpOptimWrapper', dtype='float16')
        wrapper.setdefault('loss_scale', 'dynamic')


def apply_tf32(cfg: Config) -> None:
    """Set TF32 for float32 matmuls (cuBLAS) and convolutions (cuDNN) from the config's top-level ``tf32``.

    ``tf32 = True`` (configs/_base_/default_runtime.py): on Ampere and newer GPUs float32 matmuls and convolutions
    round their inputs to 10 mantissa bits (float32 range, about 1e-3 relative error per product), several times
    faster; autocast regions are unaffected. ``False`` keeps full float32 in both; absent or None leaves torch's
    settings alone. Process-wide flags, read by CUDA kernels only: CPU results do not change.

    Set through :func:`backbone.precision.set_cuda_tf32`, which the extractor's provenance reads back.
    """
    tf32 = cfg.get('tf32')
    if tf32 is None:
        return
    if not isinstance(tf32, bool):
        raise ValueError(f'config key tf32 must be True, False or None, got {tf32!r}')
    set_cuda_tf32(tf32)


# mmengine's own `compile` key is not used: it compiles the whole train_step (forward, backward and optimiser step,
# graph-broken at the backward) and only in training; compiling the Blocks in place serves train and test alike and
# leaves state-dict keys, checkpoints and hooks as in eager mode.
def compile_options(cfg: Config) -> dict[str, Any] | None:
    """The config's top-level ``compile_backbone`` as keyword arguments of :func:`backbone.compile.compile_backbone`
    (None: do not compile).

    ``compile_backbone = True`` (``--compile``) compiles with torch's defaults; ``dict(mode='max-autotune',
    dynamic=False)`` passes those on; ``False`` or absent runs eager.

    Raises:
        ValueError: another value, or a dict with other keys.
    """
    value = cfg.get('compile_backbone')
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, Mapping) and set(value) <= {'mode', 'dynamic'}:
        return dict(value)
    raise ValueError(f'config key compile_backbone must be True, False, None or dict(mode=..., dynamic=...), got '
                     f'{value!r}')


def apply_compile(cfg: Config, enable: bool) -> None:
    """``--compile`` of ``tools/train.py`` / ``tools/test.py``: set ``compile_backbone = True`` in place, unless the
    config already asks for it (its own options then stay)."""
    if enable and not cfg.get('compile_backbone'):
        cfg.compile_backbone = True


def compile_runner_model(runner: Any, options: Mapping[str, Any] | None) -> int:
    """Compile the transformer blocks of the Runner's model (on its device, DDP-wrapped or not) in place; one log line
    says how many, why none (a model without blocks, e.g. ActionFormer on stored features), or why eager.

    Returns:
        The number of blocks compiled.
    """
    if options is None:
        return 0
    reasons: list[str] = []

    def fallback(message: str) -> None:  # compilation unavailable here: say why, once
        reasons.append(message)
        runner.logger.warning(message)

    count = compile_backbone(runner.model, log=fallback, **options)
    model = getattr(runner.model, 'module', runner.model)
    if count:
        runner.logger.info(f'compile_backbone: {count} transformer blocks of {type(model).__name__} compiled in '
                           'place (state-dict keys unchanged); the first iteration of each input shape compiles them')
    elif not reasons:
        runner.logger.info(f'compile_backbone: {type(model).__name__} has no transformer block (0 compiled); it runs '
                           'eager')
    return count


def build_runner(cfg: Config):
    """``Runner.from_cfg``, or the config's own ``runner_type`` from the RUNNERS registry, after :func:`apply_tf32`
    (before the Runner builds anything); then the model's blocks compiled if the config's ``compile_backbone`` says
    so (:func:`compile_runner_model`, before any training or testing)."""
    apply_tf32(cfg)
    options = compile_options(cfg)  # a wrong value stops the run before anything is built
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS

        runner = RUNNERS.build(cfg)
    else:
        from mmengine.runner import Runner

        runner = Runner.from_cfg(cfg)
    compile_runner_model(runner, options)
    return runner


# =====================================================================================================================
# Training
# =====================================================================================================================
def check_train_batches(runner: Any) -> None:
    """Refuse a training set too small for one batch per process, naming the sizes.

    mmengine would stop later with ``AssertionError: epoch_length must be a positive integer, but got 0`` (its
    schedulers convert epochs to iterations with the loader's length).

    Raises:
        EmptyEpochError: the dataset size, the batch size, the number of processes and what to change.
    """
    loader = runner.train_loop.dataloader
    if not hasattr(loader, '__len__') or len(loader) > 0:
        return
    dataset, size = loader.dataset, len(loader.dataset) if hasattr(loader.dataset, '__len__') else '?'
    name = getattr(dataset, 'ann_file', None) or type(dataset).__name__
    many = runner.world_size > 1 and hasattr(loader.sampler, '__len__')
    share = f' ({len(loader.sampler)} per process)' if many else ''
    raise EmptyEpochError(
        f'train_dataloader: the training set ({name}) has {size} samples{share}, fewer than one batch of '
        f'train_dataloader.batch_size={loader.batch_size} per process on {runner.world_size} process(es) with '
        f'drop_last=True, so an epoch would have no iteration; use a smaller batch size, '
        f'--cfg-options train_dataloader.drop_last=False, or more data')


def apply_auto_scale_lr(cfg: Config, enable: bool) -> None:
    """``tools/train.py --auto-scale-lr``: turn on mmengine's linear lr scaling, in place (mmaction2's switch).

    With it the Runner multiplies the lr by (processes x ``train_dataloader.batch_size``) /
    ``auto_scale_lr.base_batch_size``; without it the config's lr is used as written.

    Raises:
        ValueError: ``enable`` for a config without ``auto_scale_lr.base_batch_size``.
    """
    if not enable:
        return
    scale = cfg.get('auto_scale_lr')
    if not isinstance(scale, Mapping) or 'base_batch_size' not in scale:
        raise ValueError('--auto-scale-lr: the config has no auto_scale_lr.base_batch_size (the total batch its lr '
                         'is set for); add auto_scale_lr = dict(enable=False, base_batch_size=N)')
    scale['enable'] = True


def lr_batch_warning(cfg: Config, world_size: int) -> str | None:
    """One line when this run's total batch differs from the one the config's lr is set for and scaling is off.

    Returns:
        The warning, or None (scaling on, no ``auto_scale_lr``, or the documented total batch).
    """
    scale, loader = cfg.get('auto_scale_lr'), cfg.get('train_dataloader')
    if not isinstance(scale, Mapping) or scale.get('enable') or 'base_batch_size' not in scale or not loader:
        return None
    base, total = scale['base_batch_size'], world_size * loader['batch_size']
    if total == base:
        return None
    lr = (cfg.get('optim_wrapper') or {}).get('optimizer', {}).get('lr')
    number = isinstance(lr, (int, float))
    lr, scaled = (f'{lr:g}', f' = {lr * total / base:g}') if number else (str(lr), '')
    return (f'lr {lr} is set for a total batch of {base} (auto_scale_lr.base_batch_size), this run has '
            f'{world_size} process(es) x train_dataloader.batch_size={loader["batch_size"]} = {total}, and the lr is '
            f'not scaled: add --auto-scale-lr for lr x {total}/{base}{scaled}')


def build_training_runner(config: str, *, work_dir: str | None = None, resume: str | None = None,
                          cfg_options: Mapping | None = None, launcher: str = 'none', local_rank: int = 0,
                          amp: AmpMode | None = None, auto_scale_lr: bool = False, compile: bool = False):
    """The Runner of :func:`train_config`, checked and ready for ``runner.train()``: the data paths exist
    (:func:`check_data_paths`), an epoch has at least one iteration (:func:`check_train_batches`), and a total batch
    other than the lr's is reported (:func:`lr_batch_warning`)."""
    cfg = load_config(config, work_dir, cfg_options, launcher, local_rank)
    apply_amp(cfg, amp)
    apply_auto_scale_lr(cfg, auto_scale_lr)
    apply_compile(cfg, compile)
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None  # the Runner looks up `last_checkpoint` in the work directory
    elif resume is not None:
        cfg.resume, cfg.load_from = True, resume
    check_data_paths(cfg, ['train_dataloader'] + (['val_dataloader'] if cfg.get('val_cfg') else []))
    if launcher != 'none':
        cpu_backend(cfg, 'tools/train.py')
    runner = build_runner(cfg)  # the config's own runner_type if it names one
    check_train_batches(runner)
    warning = lr_batch_warning(cfg, runner.world_size)
    if warning:
        runner.logger.warning(warning)
    return runner


def train_config(config: str, *, work_dir: str | None = None, resume: str | None = None,
                 cfg_options: Mapping | None = None, launcher: str = 'none', local_rank: int = 0,
                 amp: AmpMode | None = None, auto_scale_lr: bool = False, compile: bool = False) -> None:
    """Train from a config with the Runner (``tools/train.py``).

    Args:
        resume: ``'auto'`` resumes from the newest checkpoint in the work directory, a path from that checkpoint,
            None starts afresh.
        amp: ``'bf16'`` or ``'fp16'`` mixed precision (:func:`apply_amp`), None as the config says.
        auto_scale_lr: scale the lr by this run's total batch / ``auto_scale_lr.base_batch_size``
            (:func:`apply_auto_scale_lr`); off: the config's lr as written.
        compile: compile the model's transformer blocks (:func:`apply_compile`); off: as the config's
            ``compile_backbone`` says.

    Raises:
        DataPathError: a dataset file or folder that does not exist.
        EmptyEpochError: a training set smaller than one batch per process.
    """
    runner = build_training_runner(config, work_dir=work_dir, resume=resume, cfg_options=cfg_options,
                                   launcher=launcher, local_rank=local_rank, amp=amp, auto_scale_lr=auto_scale_lr,
                                   compile=compile)
    # Resuming reads an mmengine checkpoint, which pickles the message hub: allow exactly its classes under torch's
    # weights-only loading (torch >= 2.6 refuses them otherwise; docs/ecosystem.md).
    with mmengine_checkpoint_globals():
        runner.train()
    # Free the DDP model (its reducer holds gloo work) while the group exists; freed at exit it can SIGABRT the process
    del runner
    gc.collect()
    finish_distributed()


# =====================================================================================================================
# Strict checkpoint loading and testing
# =====================================================================================================================
def load_for_test(model: nn.Module, checkpoint: str | os.PathLike) -> tuple[str, dict[str, torch.Tensor]]:
    """Load ``checkpoint`` into ``model`` so that every model weight comes from the file and every file weight is used.

    The file goes through :func:`backbone.filter_checkpoint` in ``'exact'`` mode: any layout it reads (mmengine
    checkpoints of the same config, official, mmaction2 or HF files for a model holding the ViT under ``backbone.``);
    a model with a ``label_map`` (``VideoMAEv2Classifier``) gets a head of another size sliced as its ``load_from``
    would.

    Returns:
        (the file's layout, the state dict in the model's names that was loaded).

    Raises:
        CheckpointError: the file cannot be read, or does not account for the model exactly (naming the keys).
    """
    state, result = filter_checkpoint(checkpoint, model, label_map=getattr(model, 'label_map', None), mode='exact')
    model.load_state_dict(state, strict=True)
    return result.layout, state


class StrictCheckpointHook(Hook):
    """Load a checkpoint with :func:`load_for_test` at the end of ``before_run`` (lowest priority).

    ``Runner.test()`` runs ``before_run`` and then ``load_or_resume``; set ``load_from=None`` in the config so that the
    latter has nothing left to do. ``after_load_checkpoint`` is called with the loaded state dict, as mmengine's own
    loading does, so an EMA hook (which copied the model in its ``before_run``) gets the loaded weights.
    """

    priority = 'LOWEST'

    def __init__(self, checkpoint: str | os.PathLike) -> None:
        self.checkpoint = str(checkpoint)
        self.layout: str | None = None

    def before_run(self, runner: Any) -> None:
        from mmengine.model import is_model_wrapper

        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self.layout, state = load_for_test(model, self.checkpoint)
        runner.logger.info(f'Loaded {self.checkpoint} strictly ({self.layout} layout): every model weight is '
                           'from the file')
        runner.call_hook('after_load_checkpoint', checkpoint={'state_dict': state, 'meta': {}})


def _metric_configs(evaluator: Any) -> list[Any]:
    """The metric config dicts of a ``test_evaluator``: one dict, a list of them, or ``dict(type=..., metrics=...)``."""
    if isinstance(evaluator, (list, tuple)):
        return [m for item in evaluator for m in _metric_configs(item)]
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        return _metric_configs(evaluator['metrics'])
    return [evaluator] if isinstance(evaluator, dict) else []


def _metric_class(metric_type: Any, scope: str | None) -> type | None:
    """The class a metric config's ``type`` names (a registered name, possibly ``scope.Name``, or a class)."""
    if inspect.isclass(metric_type):
        return metric_type
    from mmengine.registry import METRICS

    try:
        with METRICS.switch_scope_and_registry(scope) as registry:
            return registry.get(metric_type)
    except Exception:  # unknown here: the Runner will report it when it builds the evaluator
        return None


def fill_out_dirs(cfg: Config, out_dir: str) -> list[str]:
    """Set ``out_dir=out_dir`` in every test metric config whose class accepts ``out_dir`` and that leaves it unset.

    Returns:
        The ``type`` names of the metrics that got it.
    """
    filled = []
    for metric in _metric_configs(cfg.get('test_evaluator')):
        if 'out_dir' in metric or 'type' not in metric:
            continue
        cls = _metric_class(metric['type'], cfg.get('default_scope'))
        if cls is None:
            continue
        if 'out_dir' in inspect.signature(cls.__init__).parameters:
            metric['out_dir'] = out_dir
            filled.append(str(getattr(metric['type'], '__name__', metric['type'])))
    return filled


def _jsonable(value: Any) -> Any:
    """Metric values as JSON: numpy / torch scalars and arrays become numbers and lists."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, 'tolist'):  # numpy and torch, scalars included
        return value.tolist()
    return value


def metrics_table(metrics: Mapping[str, Any]) -> str:
    """``metric  value`` rows, numbers with 4 decimals."""
    if not metrics:
        return '(no metrics)'
    rows = []
    for key, value in _jsonable(dict(metrics)).items():
        rows.append([key, f'{value:.4f}' if isinstance(value, float) else str(value)])
    return text_table(['metric', 'value'], rows, rule=False)


def evaluate_checkpoint(config: str, checkpoint: str, *, work_dir: str | None = None, out: str | None = None,
                        cfg_options: Mapping | None = None, launcher: str = 'none', local_rank: int = 0,
                        amp: bool = False, compile: bool = False) -> dict[str, Any]:
    """Test ``checkpoint``, loaded strictly (:class:`StrictCheckpointHook`; the config's ``load_from`` is ignored),
    with the config's test loop (``tools/test.py``); ``amp``: under bfloat16 autocast
    (:class:`~tasks.engine.wrappers.BF16TestLoop`); ``compile``: the model's transformer blocks compiled
    (:func:`apply_compile`).

    Metrics that take an ``out_dir`` and leave it unset write their files into the work directory; the metrics go to
    ``out`` (default ``<work_dir>/results.json``) and are printed as a table, by rank 0 only.

    Returns:
        The metrics.
    """
    cfg = load_config(config, work_dir, cfg_options, launcher, local_rank)
    cfg.work_dir = osp.abspath(cfg.work_dir)
    cfg.load_from, cfg.resume = None, False  # mmengine's load_from would load non-strictly
    fill_out_dirs(cfg, cfg.work_dir)
    if amp:
        use_bf16_test_loop(cfg)
    apply_compile(cfg, compile)
    check_data_paths(cfg, ['test_dataloader'])
    if launcher != 'none':
        cpu_backend(cfg, 'tools/test.py')
    runner = build_runner(cfg)
    runner.register_hook(StrictCheckpointHook(checkpoint))
    with mmengine_checkpoint_globals():
        metrics = dict(runner.test())
    # Asked while the process group exists: once it is destroyed every rank reads as rank 0.
    main_process = is_main_process()
    del runner  # the DDP model freed while the group exists (train_config)
    gc.collect()
    finish_distributed()
    if main_process:
        out = out or osp.join(cfg.work_dir, 'results.json')
        write_json_atomic(out, _jsonable(metrics))
        print(f'\n{metrics_table(metrics)}\nmetrics written to {out}', flush=True)
    return metrics
