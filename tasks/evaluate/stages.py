"""The stage types of an evaluation suite: each runs the command-line tool a user would, in a subprocess.

A stage type declares its parameters (checked when the suite loads, :mod:`tasks.evaluate.suite`), the outputs later
stages may name (``{features.store}``) and a function that runs it in its own folder ``<work>/<stage>/`` and returns
its outputs, its metrics and what its numbers come from.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .tools import StageError, cfg_flag, last_checkpoint, loss_curve_value, relocate_data, run_tool

REQUIRED = object()  # a parameter without a default
KINDS = {'str': 'a string', 'strs': 'a list of strings', 'bool': 'true or false', 'int': 'an integer'}


@dataclass
class StageContext:
    """What a stage function is given: its name, its parameters with every ``{...}`` reference resolved, its folders."""

    name: str
    params: dict[str, Any]
    dir: Path  # <work>/<stage>: the stage's outputs
    log_dir: Path  # <work>/logs: one log per tool run
    data_root: Path


@dataclass
class StageResult:
    """outputs: paths later stages may name; metrics: flat ``name -> number``; provenance: where they come from
    (``config``, ``checkpoint``, ``store``); files: outputs that must still exist for the stage to be re-used."""

    outputs: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StageType:
    run: Callable[[StageContext], StageResult]
    params: Mapping[str, tuple[str, Any]]  # name -> (kind of KINDS, default or REQUIRED)
    outputs: tuple[str, ...]
    version: Callable[[], Any] | None = None  # what else the outputs depend on (a generator's version)


def flat_metrics(node: Any, prefix: str = '') -> dict[str, float]:
    """The numeric leaves of a json object as ``{'linear.top1': 0.4, ...}`` (booleans and strings dropped)."""
    if isinstance(node, Mapping):
        out: dict[str, float] = {}
        for key, value in node.items():
            out.update(flat_metrics(value, f'{prefix}.{key}' if prefix else str(key)))
        return out
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return {prefix: float(node)}
    return {}


def _options(ctx: StageContext, key: str = 'cfg_options') -> list[str]:
    """The stage's ``--cfg-options``: the data relocation of a synthetic config (``relocate=True``) first."""
    moved = relocate_data(ctx.params['config'], ctx.data_root) if ctx.params['relocate'] else []
    return [*moved, *ctx.params[key]]


def run_synthetic(ctx: StageContext) -> StageResult:
    """Generate (or re-use) the synthetic benchmark, in the real datasets' formats, at the suite's data_root."""
    from tasks.data.synthetic import generate

    manifest = generate(ctx.data_root, ctx.params['preset'], ctx.params['seed'],
                        log=lambda msg: print(f'    {msg}', flush=True))
    return StageResult(outputs={'root': str(ctx.data_root)}, files=[str(ctx.data_root / 'manifest.json')],
                       provenance={'data': f"synthetic preset {manifest['preset']}, seed {manifest['seed']}"})


def _generator_version() -> int:
    from tasks.data.synthetic import GENERATOR_VERSION

    return GENERATOR_VERSION


def run_extract(ctx: StageContext) -> StageResult:
    """``tools/extract_features.py VIDEOS --out <stage>/features.h5 ARGS`` with the checkpoint or a random init."""
    p = ctx.params
    out = ctx.dir / 'features.h5'
    if p['random_init']:
        weights, checkpoint = ['--random-init', '--seed', str(p['seed'])], f"random-init:{p['seed']}"
    elif p['checkpoint']:
        weights, checkpoint = ['--checkpoint', p['checkpoint']], p['checkpoint']
    else:
        raise StageError(f"stage {ctx.name!r}: no checkpoint (pass --checkpoint, set the suite's `checkpoint`, or "
                         'give the stage `random_init=True`)')
    out.parent.mkdir(parents=True, exist_ok=True)
    # --overwrite: a store made with other weights is replaced; an interrupted extraction with these settings still
    # resumes from its part files.
    run_tool(ctx.name, 'tools/extract_features.py', p['videos'], '--out', out, *p['args'], *weights, '--overwrite',
             log_dir=ctx.log_dir)
    return StageResult(outputs={'store': str(out)}, files=[str(out)], provenance={'checkpoint': checkpoint})


def run_probe(ctx: StageContext) -> StageResult:
    """``tools/linear_probe.py TRAIN VAL --labels ...``: linear probe and k-NN top-1 (and top-5) on cached features."""
    p = ctx.params
    result = ctx.dir / 'probe.json'
    result.parent.mkdir(parents=True, exist_ok=True)
    run_tool(ctx.name, 'tools/linear_probe.py', p['train'], p['val'] or p['train'], '--labels', *p['labels'],
             '--out', result, *p['args'], log_dir=ctx.log_dir)
    return StageResult(outputs={'result': str(result)}, metrics=flat_metrics(json.loads(result.read_text())),
                       files=[str(result)], provenance={'store': [p['train'], p['val'] or p['train']]})


def _train(ctx: StageContext, log: str) -> tuple[Path, dict[str, float]]:
    work = ctx.dir / 'train'
    if work.exists():
        shutil.rmtree(work)  # a stale or interrupted run: start clean rather than resume someone else's
    run_tool(log, 'tools/train.py', ctx.params['config'], '--work-dir', work, *cfg_flag(_options(ctx)),
             log_dir=ctx.log_dir)
    metrics = {}
    if (work / 'loss_curve.json').is_file():  # pre-training configs plot their loss (PretrainLossCurveHook)
        curve = json.loads((work / 'loss_curve.json').read_text())
        metrics = {'first_loss': loss_curve_value(curve, 0), 'last_loss': loss_curve_value(curve, -1)}
    return last_checkpoint(work), metrics


def _test(ctx: StageContext, checkpoint: str, log: str, extra: list[str]) -> tuple[Path, dict[str, float]]:
    test_dir = ctx.dir / 'test'
    run_tool(log, 'tools/test.py', ctx.params['config'], checkpoint, '--work-dir', test_dir,
             *cfg_flag([*_options(ctx), *extra]), log_dir=ctx.log_dir)
    result = test_dir / 'results.json'
    return result, flat_metrics(json.loads(result.read_text()))


def run_train(ctx: StageContext) -> StageResult:
    """``tools/train.py CONFIG --work-dir <stage>/train``; the checkpoint mmengine names last."""
    checkpoint, metrics = _train(ctx, ctx.name)
    return StageResult(outputs={'checkpoint': str(checkpoint), 'work_dir': str(ctx.dir / 'train')}, metrics=metrics,
                       files=[str(checkpoint)], provenance={'config': ctx.params['config']})


def run_test(ctx: StageContext) -> StageResult:
    """``tools/test.py CONFIG CHECKPOINT --work-dir <stage>/test``; the metrics of its ``results.json``."""
    if not ctx.params['checkpoint']:
        raise StageError(f"stage {ctx.name!r}: no checkpoint (pass --checkpoint or set the suite's `checkpoint`)")
    result, metrics = _test(ctx, ctx.params['checkpoint'], ctx.name, [])
    return StageResult(outputs={'result': str(result)}, metrics=metrics, files=[str(result)],
                       provenance={'config': ctx.params['config'], 'checkpoint': ctx.params['checkpoint']})


def run_train_test(ctx: StageContext) -> StageResult:
    """``tools/train.py`` then ``tools/test.py`` on its last checkpoint (with ``test_options`` added)."""
    checkpoint, _ = _train(ctx, f'{ctx.name}_train')
    result, metrics = _test(ctx, str(checkpoint), f'{ctx.name}_test', ctx.params['test_options'])
    return StageResult(outputs={'checkpoint': str(checkpoint), 'result': str(result)}, metrics=metrics,
                       files=[str(checkpoint), str(result)],
                       provenance={'config': ctx.params['config'], 'checkpoint': str(checkpoint)})


_CONFIG = {'config': ('str', REQUIRED), 'cfg_options': ('strs', []), 'relocate': ('bool', False)}

STAGE_TYPES: dict[str, StageType] = {
    'synthetic': StageType(run_synthetic, {'preset': ('str', REQUIRED), 'seed': ('int', 0)}, ('root',),
                           _generator_version),
    'extract': StageType(run_extract, {'videos': ('str', REQUIRED), 'args': ('strs', []),
                                       'checkpoint': ('str', '{checkpoint}'), 'random_init': ('bool', False),
                                       'seed': ('int', 0)}, ('store',)),
    'probe': StageType(run_probe, {'train': ('str', REQUIRED), 'val': ('str', ''), 'labels': ('strs', REQUIRED),
                                   'args': ('strs', [])}, ('result',)),
    'train': StageType(run_train, _CONFIG, ('checkpoint', 'work_dir')),
    'test': StageType(run_test, {**_CONFIG, 'checkpoint': ('str', '{checkpoint}')}, ('result',)),
    'train_test': StageType(run_train_test, {**_CONFIG, 'test_options': ('strs', [])}, ('checkpoint', 'result')),
}
