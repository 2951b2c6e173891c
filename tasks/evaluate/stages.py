"""The stage types of an evaluation suite: each runs the command-line tool a user would, in a subprocess.

A stage type declares its parameters (checked when the suite loads, :mod:`tasks.evaluate.suite`), the outputs later
stages may name (``{features.store}``), the tool runs it makes (:class:`ToolCall`, also what ``--dry-run`` prints) and
how it reads its outputs, metrics and provenance back from its folder ``<work>/<stage>/``.
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
KINDS = {'str': 'a string', 'strs': 'a list of strings', 'bool': 'true or false', 'int': 'an integer',
         'paths': 'a dict of output names to paths',
         'launcher': "None or a dict(type='pytorch' or 'slurm', gpus=N, ...)"}


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
    (``config``, ``checkpoint``, ``store``); files: outputs that must still exist for the stage to be re-used;
    pictures: PNGs the report copies up and shows."""

    outputs: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    pictures: list[str] = field(default_factory=list)


class LastCheckpoint:
    """The checkpoint a training run in ``work`` names last, or (``best``) the one mmengine's ``save_best`` kept,
    known once it has run (``--dry-run`` prints a placeholder)."""

    def __init__(self, work: Path, which: str = 'last') -> None:
        self.work, self.which = work, which

    def resolve(self) -> str:
        if self.which == 'last':
            return str(last_checkpoint(self.work))
        found = sorted(self.work.glob('best_*.pth'))
        if len(found) != 1:
            raise StageError(f'{self.work}: test_checkpoint=best needs the one best_*.pth that the config\'s '
                             f"save_best keeps; found {[p.name for p in found] or 'none'}")
        return str(found[0])

    def __str__(self) -> str:
        return f'{self.work}/<{self.which} checkpoint>'


@dataclass(frozen=True)
class ToolCall:
    """One run of a tool: ``python <script> args`` (under the stage's launcher when ``distributed``), logged as
    ``<work>/logs/<log>.log``."""

    log: str
    script: str
    args: tuple[Any, ...]  # strings, paths or a LastCheckpoint
    distributed: bool = False


@dataclass(frozen=True)
class StageType:
    """run: the whole stage (the built-in types: their ``calls``, then reading their outputs back); calls: the tool
    runs, for ``--dry-run``; outputs: the names later stages may use (a ``tool`` stage declares its own);
    launchers: the launcher types its distributed tools accept."""

    run: Callable[[StageContext], StageResult]
    params: Mapping[str, tuple[str, Any]]  # name -> (kind of KINDS, default or REQUIRED)
    outputs: tuple[str, ...]
    version: Callable[[], Any] | None = None  # what else the outputs depend on (a generator's version)
    calls: Callable[[StageContext], list[ToolCall]] | None = None
    launchers: tuple[str, ...] = ()


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


def _read_json(path: Path, stage: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise StageError(f'stage {stage!r}: its tool finished but {path} cannot be read ({err})') from None


def _stage_runner(calls: Callable[[StageContext], list[ToolCall]], collect: Callable[[StageContext], StageResult],
                  clean: Callable[[StageContext], list[Path]]) -> Callable[[StageContext], StageResult]:
    def run(ctx: StageContext) -> StageResult:
        for stale in clean(ctx):  # a stale or interrupted run: start clean rather than resume someone else's
            if stale.exists():
                shutil.rmtree(stale)
        ctx.dir.mkdir(parents=True, exist_ok=True)
        for call in calls(ctx):
            args = [a.resolve() if isinstance(a, LastCheckpoint) else a for a in call.args]
            run_tool(call.log, call.script, *args, log_dir=ctx.log_dir,
                     launcher=ctx.params.get('launcher') if call.distributed else None)
        return collect(ctx)
    return run


def _options(ctx: StageContext, key: str = 'cfg_options') -> list[str]:
    """The stage's ``--cfg-options``: the data relocation of a synthetic config (``relocate=True``) first."""
    moved = relocate_data(ctx.params['config'], ctx.data_root) if ctx.params['relocate'] else []
    return [*moved, *ctx.params[key]]


# --- synthetic --------------------------------------------------------------------------------------------------------
def synthetic_calls(ctx: StageContext) -> list[ToolCall]:
    p = ctx.params
    return [ToolCall(ctx.name, 'tools/make_synthetic.py', ('--out', ctx.data_root, '--preset', p['preset'],
                                                            '--seed', str(p['seed'])))]


def synthetic_collect(ctx: StageContext) -> StageResult:
    """The synthetic benchmark, in the real datasets' formats, at the suite's data_root (generated or re-used)."""
    manifest = ctx.data_root / 'manifest.json'
    found = _read_json(manifest, ctx.name)
    return StageResult(outputs={'root': str(ctx.data_root)}, files=[str(manifest)],
                       provenance={'data': f"synthetic preset {found['preset']}, seed {found['seed']}"})


def _generator_version() -> int:
    from tasks.data.synthetic import GENERATOR_VERSION

    return GENERATOR_VERSION


# --- extract ----------------------------------------------------------------------------------------------------------
def _weights(ctx: StageContext) -> tuple[list[str], str]:
    p = ctx.params
    if p['random_init']:
        return ['--random-init', '--seed', str(p['seed'])], f"random-init:{p['seed']}"
    if p['checkpoint']:
        return ['--checkpoint', p['checkpoint']], p['checkpoint']
    raise StageError(f"stage {ctx.name!r}: no checkpoint (pass --checkpoint, set the suite's `checkpoint`, or give "
                     'the stage `random_init=True`)')


def extract_calls(ctx: StageContext) -> list[ToolCall]:
    """``tools/extract_features.py VIDEOS --out <stage>/features.h5 ARGS`` with the checkpoint or a random init.

    ``--overwrite``: a store made with other weights is replaced; an interrupted extraction with these settings
    still resumes from its part files."""
    p = ctx.params
    return [ToolCall(ctx.name, 'tools/extract_features.py', (p['videos'], '--out', ctx.dir / 'features.h5', *p['args'],
                                                              *_weights(ctx)[0], '--overwrite'), distributed=True)]


def extract_collect(ctx: StageContext) -> StageResult:
    out = ctx.dir / 'features.h5'
    return StageResult(outputs={'store': str(out)}, files=[str(out)], provenance={'checkpoint': _weights(ctx)[1]})


# --- probe ------------------------------------------------------------------------------------------------------------
def probe_calls(ctx: StageContext) -> list[ToolCall]:
    """``tools/linear_probe.py TRAIN VAL --labels ...``: linear probe and k-NN top-1 (and top-5) on cached features."""
    p = ctx.params
    return [ToolCall(ctx.name, 'tools/linear_probe.py', (p['train'], p['val'] or p['train'], '--labels', *p['labels'],
                                                          '--out', ctx.dir / 'probe.json', *p['args']))]


def probe_collect(ctx: StageContext) -> StageResult:
    p, result = ctx.params, ctx.dir / 'probe.json'
    return StageResult(outputs={'result': str(result)}, metrics=flat_metrics(_read_json(result, ctx.name)),
                       files=[str(result)], provenance={'store': [p['train'], p['val'] or p['train']]})


# --- train / test / train_test ----------------------------------------------------------------------------------------
def _train_call(ctx: StageContext, log: str) -> ToolCall:
    return ToolCall(log, 'tools/train.py', (ctx.params['config'], '--work-dir', ctx.dir / 'train',
                                            *ctx.params['train_args'], *cfg_flag(_options(ctx))), distributed=True)


def _test_call(ctx: StageContext, checkpoint: Any, log: str, extra: list[str]) -> ToolCall:
    return ToolCall(log, 'tools/test.py', (ctx.params['config'], checkpoint, '--work-dir', ctx.dir / 'test',
                                           *ctx.params['test_args'], *cfg_flag([*_options(ctx), *extra])),
                    distributed=True)


def _trained(ctx: StageContext, which: str = 'last') -> tuple[Path, dict[str, float], list[str]]:
    """The last (or best: :class:`LastCheckpoint`) checkpoint of ``<stage>/train``, the first and last loss of a
    pre-training run (PretrainLossCurveHook's ``loss_curve.json``) and its pictures."""
    work = ctx.dir / 'train'
    metrics, pictures = {}, []
    if (work / 'loss_curve.json').is_file():
        curve = _read_json(work / 'loss_curve.json', ctx.name)
        metrics = {'first_loss': loss_curve_value(curve, 0), 'last_loss': loss_curve_value(curve, -1)}
    if (work / 'loss_curve.png').is_file():
        pictures.append(str(work / 'loss_curve.png'))
    return Path(LastCheckpoint(work, which).resolve()), metrics, pictures


def _tested(ctx: StageContext) -> tuple[Path, dict[str, float], list[str]]:
    """``tools/test.py``'s ``results.json``, its metrics and the pictures its evaluators drew."""
    result = ctx.dir / 'test' / 'results.json'
    return result, flat_metrics(_read_json(result, ctx.name)), sorted(map(str, (ctx.dir / 'test').glob('*.png')))


def train_collect(ctx: StageContext) -> StageResult:
    """``tools/train.py CONFIG --work-dir <stage>/train``; the checkpoint mmengine names last."""
    checkpoint, metrics, pictures = _trained(ctx)
    return StageResult(outputs={'checkpoint': str(checkpoint), 'work_dir': str(ctx.dir / 'train')}, metrics=metrics,
                       files=[str(checkpoint)], provenance={'config': ctx.params['config']}, pictures=pictures)


def test_calls(ctx: StageContext) -> list[ToolCall]:
    """``tools/test.py CONFIG CHECKPOINT --work-dir <stage>/test``."""
    if not ctx.params['checkpoint']:
        raise StageError(f"stage {ctx.name!r}: no checkpoint (pass --checkpoint or set the suite's `checkpoint`)")
    return [_test_call(ctx, ctx.params['checkpoint'], ctx.name, [])]


def test_collect(ctx: StageContext) -> StageResult:
    result, metrics, pictures = _tested(ctx)
    return StageResult(outputs={'result': str(result)}, metrics=metrics, files=[str(result)], pictures=pictures,
                       provenance={'config': ctx.params['config'], 'checkpoint': ctx.params['checkpoint']})


def train_test_calls(ctx: StageContext) -> list[ToolCall]:
    """``tools/train.py``, then ``tools/test.py`` on its last checkpoint (with ``test_options`` added)."""
    tested = LastCheckpoint(ctx.dir / 'train', ctx.params['test_checkpoint'])
    return [_train_call(ctx, f'{ctx.name}_train'),
            _test_call(ctx, tested, f'{ctx.name}_test', ctx.params['test_options'])]


def train_test_collect(ctx: StageContext) -> StageResult:
    checkpoint, _, trained = _trained(ctx, ctx.params['test_checkpoint'])
    result, metrics, tested = _tested(ctx)
    return StageResult(outputs={'checkpoint': str(checkpoint), 'result': str(result)}, metrics=metrics,
                       files=[str(checkpoint), str(result)], pictures=trained + tested,
                       provenance={'config': ctx.params['config'], 'checkpoint': str(checkpoint)})


# --- tool -------------------------------------------------------------------------------------------------------------
def tool_calls(ctx: StageContext) -> list[ToolCall]:
    """Any tool of the repository (``tools/convert_checkpoint.py``, ``tools/visualize_reconstruction.py``, ...)."""
    return [ToolCall(ctx.name, ctx.params['script'], tuple(ctx.params['args']))]


def tool_collect(ctx: StageContext) -> StageResult:
    """The declared outputs (each must now exist) and, with ``metrics``, the numbers of that json file."""
    p = ctx.params
    missing = [f'{name} ({path})' for name, path in p['outputs'].items() if not Path(path).exists()]
    if missing:
        raise StageError(f"stage {ctx.name!r}: {p['script']} finished without writing the declared outputs "
                         f"{', '.join(missing)}")
    metrics = flat_metrics(_read_json(Path(p['metrics']), ctx.name)) if p['metrics'] else {}
    files = [*p['outputs'].values(), *([p['metrics']] if p['metrics'] else [])]
    return StageResult(outputs=dict(p['outputs']), metrics=metrics, files=files,
                       pictures=[f for f in p['outputs'].values() if f.endswith('.png')],
                       provenance={'tool': ' '.join([p['script'], *p['args']])})


def _type(calls, collect, params, outputs, clean=lambda ctx: [], **kw) -> StageType:
    return StageType(_stage_runner(calls, collect, clean), params, outputs, calls=calls, **kw)


# train_args / test_args: options of tools/train.py / tools/test.py (['--amp', 'bf16'], ['--compile'])
_CONFIG = {'config': ('str', REQUIRED), 'cfg_options': ('strs', []), 'relocate': ('bool', False),
           'launcher': ('launcher', None)}
_TRAIN, _TEST = {'train_args': ('strs', [])}, {'test_args': ('strs', [])}
_LAUNCHERS = ('pytorch', 'slurm')  # tasks.evaluate.tools.launch_command


def _train_dir(ctx: StageContext) -> list[Path]:
    return [ctx.dir / 'train']


STAGE_TYPES: dict[str, StageType] = {
    'synthetic': _type(synthetic_calls, synthetic_collect, {'preset': ('str', REQUIRED), 'seed': ('int', 0)},
                       ('root',), version=_generator_version),
    'extract': _type(extract_calls, extract_collect,
                     {'videos': ('str', REQUIRED), 'args': ('strs', []), 'checkpoint': ('str', '{checkpoint}'),
                      'random_init': ('bool', False), 'seed': ('int', 0), 'launcher': ('launcher', None)},
                     ('store',), launchers=_LAUNCHERS),
    'probe': _type(probe_calls, probe_collect, {'train': ('str', REQUIRED), 'val': ('str', ''),
                                                'labels': ('strs', REQUIRED), 'args': ('strs', [])}, ('result',)),
    'train': _type(lambda ctx: [_train_call(ctx, ctx.name)], train_collect, {**_CONFIG, **_TRAIN},
                   ('checkpoint', 'work_dir'), clean=_train_dir, launchers=_LAUNCHERS),
    'test': _type(test_calls, test_collect, {**_CONFIG, **_TEST, 'checkpoint': ('str', '{checkpoint}')},
                  ('result',), launchers=_LAUNCHERS),
    # test_checkpoint: 'last', or 'best' (the config's save_best) where the recipe picks its epoch on validation
    'train_test': _type(train_test_calls, train_test_collect,
                        {**_CONFIG, **_TRAIN, **_TEST, 'test_options': ('strs', []),
                         'test_checkpoint': ('str', 'last')},
                        ('checkpoint', 'result'), clean=_train_dir, launchers=_LAUNCHERS),
    'tool': _type(tool_calls, tool_collect, {'script': ('str', REQUIRED), 'args': ('strs', []),
                                             'outputs': ('paths', {}), 'metrics': ('str', '')}, ()),
}
