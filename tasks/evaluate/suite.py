"""An evaluation suite: a config file (mmengine style) that lists the stages to run and the metrics to report.

A suite file (``configs/suites/*.py``) sets::

    name = 'synthetic-tiny'                   # shown in the report
    data_root = 'data/synthetic-tiny'         # every dataset path of the stages starts from it: '{data_root}/...'
    checkpoint = None                         # the backbone (a path or a released name); --checkpoint overrides it
    stages = [dict(name='features', type='extract', videos='{data_root}/classification/videos', args=[...]), ...]
    report = [dict(name='linear probe top-1', stage='probe', key='linear.top1', scale=100,
                   published=None, source=None, baseline=dict(stage='probe_random', key='linear.top1',
                                                                label='random init')), ...]

Strings of a stage may name ``{data_root}``, ``{work_dir}``, ``{checkpoint}``, ``{stage_dir}`` (the stage's own
folder ``<work_dir>/<stage>``) and an earlier stage's output (``{features.store}``, ``{finetune.checkpoint}``; the
outputs of each type: :data:`tasks.evaluate.stages.STAGE_TYPES`; a ``tool`` stage declares its own). Stages whose
tools run distributed take ``launcher=dict(type='pytorch', gpus=8)`` (torchrun on one machine) or
``dict(type='slurm', partition='p', gpus=16, gpus_per_node=8)``. Everything is checked when the suite loads; each
error names the file and the key.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .stages import KINDS, REQUIRED, STAGE_TYPES
from .tools import ROOT, file_sha256

GLOBALS = ('data_root', 'work_dir', 'checkpoint', 'stage_dir')  # what a stage's strings may name besides stages
REFERENCE = re.compile(r'\{(\w+)(?:\.(\w+))?\}')
_BASELINE_KEYS = {'value', 'stage', 'key', 'label'}
_METRIC_KEYS = {'name', 'stage', 'key', 'scale', 'published', 'source', 'baseline'}
_LAUNCHER_KEYS = {'pytorch': {'type', 'gpus'},
                  'slurm': {'type', 'gpus', 'partition', 'gpus_per_node', 'cpus_per_task', 'srun_args'}}


class SuiteError(ValueError):
    """A suite file is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class StageSpec:
    name: str
    type: str
    params: dict[str, Any]  # every parameter of the type, defaults filled in, references not yet resolved
    depends: tuple[str, ...]  # the earlier stages whose outputs it names
    outputs: tuple[str, ...] = ()  # the names later stages may use


@dataclass(frozen=True)
class MetricSpec:
    """One row of the report: ``stage``'s metric ``key`` times ``scale``, beside the published figure (in the scaled
    unit, with its ``source``) and a baseline (a fixed ``value`` such as chance, or another stage's metric)."""

    name: str
    stage: str
    key: str
    scale: float = 1.0
    published: float | None = None
    source: str | None = None
    baseline: dict[str, Any] | None = None


@dataclass(frozen=True)
class Suite:
    path: Path
    sha256: str
    name: str
    data_root: str
    checkpoint: str | None
    stages: tuple[StageSpec, ...]
    report: tuple[MetricSpec, ...]

    def stage(self, name: str) -> StageSpec:
        return next(s for s in self.stages if s.name == name)

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]


def load_suite(path: str | Path, changes: Mapping[str, Mapping[str, Any]] | None = None,
               cfg_options: Mapping[str, Sequence[str]] | None = None,
               launcher: Mapping[str, Any] | None = None) -> Suite:
    """Read and check a suite file.

    Args:
        changes: ``{stage: {parameter: value}}`` set over the file's (a smaller preset, shorter schedules; the
            command line's ``--set STAGE.PARAM=VALUE``), checked as the file's own.
        cfg_options: ``{stage: ['key=value', ...]}`` added after the stage's own ``cfg_options`` (the command line's
            ``--cfg-options STAGE.KEY=VALUE``).
        launcher: the launcher of every stage that can run distributed, instead of the file's (``--launcher``).

    Raises:
        SuiteError: the file is missing or unreadable, or a key is missing, unknown or of the wrong kind, or names a
            stage, output or file that does not exist; the message names the file and the key.
    """
    from mmengine.config import Config

    path = Path(path)
    if not path.is_file():
        raise SuiteError(f'{path}: no such suite file (the shipped suites: configs/suites/)')
    try:
        cfg = Config.fromfile(str(path), import_custom_modules=False).to_dict()
    except Exception as err:  # syntax errors, bad _base_ files: one message naming the file
        raise SuiteError(f'{path}: cannot be read as a config ({type(err).__name__}: {err})') from None

    def fail(key: str, message: str) -> SuiteError:
        return SuiteError(f'{path}: {key}: {message}')

    for key in ('name', 'data_root'):
        if not isinstance(cfg.get(key), str) or not cfg[key]:
            raise fail(key, 'missing, or not a non-empty string')
    checkpoint = cfg.get('checkpoint')
    if checkpoint is not None and not isinstance(checkpoint, str):
        raise fail('checkpoint', f'{checkpoint!r} is neither a path / released name (a string) nor None')
    raw = cfg.get('stages')
    if not isinstance(raw, (list, tuple)) or not raw:
        raise fail('stages', 'missing, or not a non-empty list of dicts')
    raw = _overridden(raw, changes or {}, cfg_options or {}, launcher, fail)
    stages: list[StageSpec] = []
    for i, entry in enumerate(raw):
        stages.append(_stage(entry, f'stages[{i}]', {s.name: s for s in stages}, fail))
    report = cfg.get('report', [])
    if not isinstance(report, (list, tuple)):
        raise fail('report', 'not a list of dicts')
    names = {s.name for s in stages}
    metrics = tuple(_metric(entry, f'report[{i}]', names, fail) for i, entry in enumerate(report))
    return Suite(path=path, sha256=file_sha256(path), name=cfg['name'], data_root=cfg['data_root'],
                 checkpoint=checkpoint, stages=tuple(stages), report=metrics)


def _overridden(raw: Sequence[Any], changes: Mapping[str, Mapping[str, Any]], cfg_options: Mapping[str, Sequence[str]],
                launcher: Mapping[str, Any] | None, fail) -> list[Any]:
    """The stage entries with the command line's changes applied (each checked with the entry afterwards)."""
    names = [e.get('name') for e in raw if isinstance(e, Mapping)]
    for what, given in (('change', changes), ('give --cfg-options to', cfg_options)):
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise fail('stages', f'no stage {unknown[0]!r} to {what} (its stages: {", ".join(map(str, names))})')
    out = []
    for entry in raw:
        if not isinstance(entry, Mapping):
            out.append(entry)
            continue
        name = entry.get('name')
        entry = {**entry, **changes.get(name, {})}
        kind = STAGE_TYPES.get(entry.get('type'))  # an unknown type is reported with the entry
        if name in cfg_options:
            if kind is not None and 'cfg_options' not in kind.params:
                raise fail(f'stages ({name})', f'--cfg-options {name}.*: a {entry.get("type")!r} stage has no config '
                                               f'(stages with one: train, test, train_test)')
            entry['cfg_options'] = [*entry.get('cfg_options', []), *cfg_options[name]]
        if launcher is not None and kind is not None and kind.launchers:
            entry['launcher'] = _merged_launcher(entry.get('launcher'), launcher)
        out.append(entry)
    return out


def _merged_launcher(own: Any, given: Mapping[str, Any]) -> dict[str, Any] | None:
    """The command line's launcher over a stage's own: ``type`` 'none' runs it in one process; keys not given
    (``gpus``, ``partition``) stay the stage's own where the type is the same (a recipe's GPU count), else ``gpus``
    is 1; ``type`` alone absent changes only the given keys of the stage's own launcher."""
    kind = given.get('type')
    if kind == 'none':
        return None
    own = dict(own) if isinstance(own, Mapping) else None
    if kind is None:  # e.g. only --partition: the stages that have a launcher keep it, with that key changed
        if own is None:
            return None
        given = {k: v for k, v in given.items() if k in _LAUNCHER_KEYS.get(own.get('type'), ())}
        return {**own, **given}
    base = own if own is not None and own.get('type') == kind else {'gpus': 1}
    keep = {k: v for k, v in base.items() if k in _LAUNCHER_KEYS[kind]}
    return {**keep, **given}


def _stage(entry: Any, where: str, earlier: Mapping[str, StageSpec], fail) -> StageSpec:
    if not isinstance(entry, Mapping):
        raise fail(where, f'{entry!r} is not a dict')
    name, kind = entry.get('name'), entry.get('type')
    if not isinstance(name, str) or not name.isidentifier():
        raise fail(f'{where}.name', f'{name!r}: a stage needs a name that is an identifier (letters, digits, _)')
    where = f'{where} ({name})'
    if name in earlier or name in GLOBALS:
        raise fail(f'{where}.name', f'{name!r} is already ' + ('a stage' if name in earlier else 'a global name'))
    if kind not in STAGE_TYPES:
        raise fail(f'{where}.type', f'{kind!r} is not a stage type (choose from {", ".join(STAGE_TYPES)})')
    schema = STAGE_TYPES[kind].params
    unknown = sorted(set(entry) - set(schema) - {'name', 'type'})
    if unknown:
        raise fail(f'{where}.{unknown[0]}', f'not a parameter of a {kind!r} stage (its parameters: '
                                            f'{", ".join(schema)})')
    params: dict[str, Any] = {}
    for key, (want, default) in schema.items():
        if key not in entry:
            if default is REQUIRED:
                raise fail(f'{where}.{key}', f'missing (a {kind!r} stage needs it: {KINDS[want]})')
            params[key] = list(default) if isinstance(default, list) else dict(default) if isinstance(default, dict) \
                else default
            continue
        value = entry[key]
        if not _is_kind(value, want):
            raise fail(f'{where}.{key}', f'{value!r} is not {KINDS[want]}')
        params[key] = list(value) if want == 'strs' else dict(value) if want == 'paths' else value
    if params.get('test_checkpoint', 'last') not in ('last', 'best'):
        raise fail(f'{where}.test_checkpoint', f"{params['test_checkpoint']!r}: 'last' or 'best'")
    if params.get('launcher') is not None:
        _check_launcher(params['launcher'], STAGE_TYPES[kind].launchers, f'{where}.launcher', fail)
    outputs = tuple(params['outputs']) if kind == 'tool' else STAGE_TYPES[kind].outputs
    if kind == 'tool':
        script = params['script']
        if not (script.startswith('tools/') and script.endswith('.py') and (ROOT / script).is_file()):
            raise fail(f'{where}.script', f'{script!r} is not a tool of this repository (tools/<name>.py)')
        bad = [k for k in outputs if not k.isidentifier()]
        if bad:
            raise fail(f'{where}.outputs', f'{bad[0]!r}: output names are identifiers (letters, digits, _)')
    if params.get('random_init'):  # the weights are the seed's: the suite's checkpoint is neither used nor hashed
        if 'checkpoint' in entry:
            raise fail(f'{where}.checkpoint', 'a random_init stage takes no checkpoint')
        params['checkpoint'] = ''
    depends: list[str] = []
    for key, text in string_params(params):
        for stage, output in REFERENCE.findall(text):
            if not output:
                if stage not in GLOBALS:
                    raise fail(f'{where}.{key}', f'{{{stage}}} is not a name a stage may use ({", ".join(GLOBALS)}, '
                                                 'or an earlier stage\'s output as {stage.output})')
                continue
            if stage not in earlier:
                raise fail(f'{where}.{key}', f'{{{stage}.{output}}} names no earlier stage (earlier: '
                                             f'{", ".join(earlier) or "none"})')
            theirs = earlier[stage].outputs
            if output not in theirs:
                raise fail(f'{where}.{key}', f'{{{stage}.{output}}}: a {earlier[stage].type!r} stage has no output '
                                             f'{output!r} (its outputs: {", ".join(theirs) or "none"})')
            if stage not in depends:
                depends.append(stage)
    config = params.get('config')
    if config and not REFERENCE.search(config) and not (ROOT / config).is_file():
        raise fail(f'{where}.config', f'{config}: no such config file (paths are relative to the repository root)')
    return StageSpec(name=name, type=kind, params=params, depends=tuple(depends), outputs=outputs)


def _check_launcher(value: Mapping[str, Any], allowed: Sequence[str], where: str, fail) -> None:
    kind = value.get('type')
    if kind not in allowed:
        raise fail(f'{where}.type', f'{kind!r} is not a launcher (choose from {", ".join(allowed)})')
    unknown = sorted(set(value) - _LAUNCHER_KEYS[kind])
    if unknown:
        raise fail(f'{where}.{unknown[0]}', f'not a key of a {kind!r} launcher (its keys: '
                                            f'{", ".join(sorted(_LAUNCHER_KEYS[kind]))})')
    for key in ('gpus', 'gpus_per_node', 'cpus_per_task'):
        number = value.get(key, 1)
        if not (isinstance(number, int) and not isinstance(number, bool) and number >= 1):
            raise fail(f'{where}.{key}', f'{number!r} is not a positive integer')
    if kind == 'slurm' and not (isinstance(value.get('partition'), str) and value['partition']):
        raise fail(f'{where}.partition', 'a slurm launcher needs the partition (srun -p)')


def _is_kind(value: Any, kind: str) -> bool:
    if kind == 'strs':
        return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    if kind == 'int':
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == 'paths':
        return isinstance(value, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    if kind == 'launcher':
        return value is None or isinstance(value, Mapping)
    return isinstance(value, {'str': str, 'bool': bool}[kind])


def string_params(params: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(key, string)`` for every string parameter and list item (``args[2]``)."""
    for key, value in params.items():
        if isinstance(value, str):
            yield key, value
        elif isinstance(value, list):
            yield from ((f'{key}[{i}]', v) for i, v in enumerate(value))
        elif isinstance(value, Mapping) and key == 'outputs':
            yield from ((f'{key}.{k}', v) for k, v in value.items())


def _metric(entry: Any, where: str, stages: set[str], fail) -> MetricSpec:
    if not isinstance(entry, Mapping):
        raise fail(where, f'{entry!r} is not a dict')
    unknown = sorted(set(entry) - _METRIC_KEYS)
    if unknown:
        raise fail(f'{where}.{unknown[0]}', 'not a key of a report entry (its keys: '
                                            f'{", ".join(sorted(_METRIC_KEYS))})')
    for key in ('name', 'stage', 'key'):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise fail(f'{where}.{key}', 'missing, or not a non-empty string')
    if entry['stage'] not in stages:
        raise fail(f'{where}.stage', f'{entry["stage"]!r} is not a stage of the suite ({", ".join(sorted(stages))})')
    scale, published = entry.get('scale', 1.0), entry.get('published')
    if not _is_number(scale):
        raise fail(f'{where}.scale', f'{scale!r} is not a number')
    if published is not None and not _is_number(published):
        raise fail(f'{where}.published', f'{published!r} is not a number (or None: no published figure)')
    source = entry.get('source')
    if published is not None and not (isinstance(source, str) and source):
        raise fail(f'{where}.source', 'a published figure needs its source (paper table, repository file)')
    if source is not None and not isinstance(source, str):
        raise fail(f'{where}.source', f'{source!r} is not a string (where the figure comes from, or why there is none)')
    baseline = entry.get('baseline')
    if baseline is not None:
        if not isinstance(baseline, Mapping) or set(baseline) - _BASELINE_KEYS:
            raise fail(f'{where}.baseline', f'{baseline!r}: a dict of {", ".join(sorted(_BASELINE_KEYS))}')
        if not isinstance(baseline.get('label'), str):
            raise fail(f'{where}.baseline.label', "missing: what the baseline is ('chance', 'random init', ...)")
        if ('value' in baseline) == ('key' in baseline):
            raise fail(f'{where}.baseline', 'give either a fixed value or a metric key (with its stage)')
        if 'value' in baseline and not _is_number(baseline['value']):
            raise fail(f'{where}.baseline.value', f'{baseline["value"]!r} is not a number')
        if 'key' in baseline and baseline.get('stage', entry['stage']) not in stages:
            raise fail(f'{where}.baseline.stage', f'{baseline.get("stage")!r} is not a stage of the suite')
        baseline = dict(baseline)
    return MetricSpec(name=entry['name'], stage=entry['stage'], key=entry['key'], scale=float(scale),
                      published=None if published is None else float(published), source=source, baseline=baseline)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def resolve(text: str, names: Mapping[str, str], outputs: Mapping[str, Mapping[str, str]]) -> str:
    """``text`` with ``{data_root}``-style names and ``{stage.output}`` references replaced (checked at load)."""
    return REFERENCE.sub(lambda m: str(outputs[m.group(1)][m.group(2)] if m.group(2) else names[m.group(1)]), text)
