"""Running a suite: each stage once per set of inputs, resumable, as a whole or as a subset.

Each stage's record ``<work>/stages/<stage>.json`` holds the fingerprint of its inputs (its parameters with every
reference resolved, the sha256 of its config and of the checkpoint it uses, the records of the stages it reads, the
benchmark's manifest), its outputs, metrics and provenance. The record is written atomically after the stage's
outputs exist, so a run killed mid-stage leaves no record and the next run redoes that stage only; a stage whose
record matches is re-used (``fresh`` redoes the stages run). A subset (``stages``) reads the outputs of the stages
it needs from their records, which must be up to date.
"""
from __future__ import annotations

import datetime
import json
import os
import secrets
import shlex
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from feature_store.info import package_version
from tasks.data.files import write_json_atomic

from .stages import STAGE_TYPES, StageContext
from .suite import REFERENCE, StageSpec, Suite, SuiteError, resolve, string_params
from .tools import ROOT, StageError, display_argv, file_sha256, fingerprint, launch_command

EVALUATE_VERSION = '2'  # bump when a change alters what a cached stage would contain
_SHA: dict[tuple[str, int, int], str] = {}  # file sha256 by (path, mtime, size): checkpoints are hashed once a run


def sha256_once(path: str | os.PathLike) -> str:
    """:func:`tasks.evaluate.tools.file_sha256`, remembered while the file is unchanged (a ViT-g file is 4 GB)."""
    stat = os.stat(path)
    key = (str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _SHA:
        _SHA[key] = file_sha256(path)
    return _SHA[key]


def record_path(work_dir: Path, stage: str) -> Path:
    return work_dir / 'stages' / f'{stage}.json'


def read_record(work_dir: Path, stage: str, key: str) -> dict | None:
    """The stage's record if it was completed from the inputs of fingerprint ``key`` and its files still exist."""
    try:
        record = json.loads(record_path(work_dir, stage).read_text())
    except (OSError, json.JSONDecodeError):  # none, or torn by a crash on a file system without atomic rename
        return None
    if record.get('fingerprint') != key or not all(Path(p).exists() for p in record.get('files', [])):
        return None
    return record


def run_suite(suite: Suite, work_dir: Path, *, checkpoint: str | None = None, stages: Sequence[str] | None = None,
              fresh: bool = False, data_root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Run ``suite`` (or the ``stages`` of it) in ``work_dir``; returns ``{'suite', 'checkpoint', 'data_root',
    'records': {stage: record}, 'ran', 'reused', 'missing', 'seconds'}`` for :func:`tasks.evaluate.report.write_report`.

    Args:
        checkpoint: the backbone, a path or a released name (:func:`backbone.resolve_checkpoint`); default the
            suite's ``checkpoint``.
        data_root: instead of the suite's ``data_root``.

    Raises:
        SuiteError: an unknown stage in ``stages``, or a stage of the subset needs one with no up-to-date record.
        StageError: a stage's tool failed (its log is named).
        backbone.CheckpointError: the checkpoint is neither a file nor a released name in reach.
    """
    names, selected = _select(suite, stages)
    work_dir = Path(work_dir).resolve()
    root = Path(data_root if data_root is not None else suite.data_root).expanduser().resolve()
    _needs_checkpoint(suite, selected, checkpoint or suite.checkpoint)
    weights = _checkpoint(checkpoint or suite.checkpoint)
    env = {'data_root': str(root), 'work_dir': str(work_dir), 'checkpoint': weights['path'] or ''}
    records: dict[str, dict] = {}
    ran, reused, missing, seconds = [], [], [], {}
    # every input of the stages that will run is checked before the first one starts (not days into a run)
    problems = [p for spec in _stale(suite, work_dir, names, env, weights, root, fresh)
                for p in preflight(spec, env, root, suite)]
    if problems:
        raise SuiteError(f'{suite.path}: inputs missing under data root {root} (--data-root DIR points elsewhere):\n'
                         + '\n'.join(f'  {p}' for p in problems))
    start = time.perf_counter()
    for spec in suite.stages:
        absent = [d for d in spec.depends if d not in records]
        if spec.name not in names:
            if not absent:  # an earlier result this subset may read
                record = read_record(work_dir, spec.name, _key(spec, env, records, weights, root))
                if record is not None:
                    records[spec.name] = record
            if spec.name not in records:
                missing.append(spec.name)
            continue
        if absent:
            raise SuiteError(f"stage {spec.name!r} uses the outputs of stage {absent[0]!r}, which has no up-to-date "
                             f'result in {work_dir / "stages"} (never run, or its inputs changed): add {absent[0]} '
                             f'to --stages, or run the whole suite')
        i = selected.index(spec) + 1
        params = _resolved(spec, env, records)
        key = _key(spec, env, records, weights, root)
        record = None if fresh else read_record(work_dir, spec.name, key)
        clock = f'{int((time.perf_counter() - start) // 60)}:{int((time.perf_counter() - start) % 60):02d}'
        if record is not None:
            print(f'[{i}/{len(selected)}] {spec.name}: re-used (inputs unchanged)  (elapsed {clock})', flush=True)
            reused.append(spec.name)
        else:
            print(f'[{i}/{len(selected)}] {spec.name}  (elapsed {clock})', flush=True)
            record_path(work_dir, spec.name).unlink(missing_ok=True)  # a redo stopped midway leaves no old record
            t0 = time.perf_counter()
            result = STAGE_TYPES[spec.type].run(_context(spec, params, work_dir, root))
            seconds[spec.name] = round(time.perf_counter() - t0, 1)
            # 'id': each run of a stage is another result, even with identical numbers and date to the second
            record = {'fingerprint': key, 'id': secrets.token_hex(8), 'stage': spec.name, 'type': spec.type,
                      'params': params, 'outputs': result.outputs, 'metrics': result.metrics, 'files': result.files,
                      'seconds': seconds[spec.name], 'provenance': _provenance(result.provenance),
                      'reads': _reads(spec, records), 'pictures': result.pictures}
            # written last, whole or not at all: a stage killed before this line has no record and is redone
            write_json_atomic(record_path(work_dir, spec.name), record, sort_keys=True, default=float)
            ran.append(spec.name)
        records[spec.name] = record
    seconds['total'] = round(time.perf_counter() - start, 1)
    return {'suite': suite, 'checkpoint': weights, 'data_root': str(root), 'work_dir': str(work_dir),
            'records': records, 'ran': ran, 'reused': reused, 'missing': missing, 'seconds': seconds}


def _select(suite: Suite, stages: Sequence[str] | None) -> tuple[list[str], list[StageSpec]]:
    names = suite.stage_names if stages is None else list(stages)
    unknown = [n for n in names if n not in suite.stage_names]
    if unknown:
        raise SuiteError(f'--stages {" ".join(unknown)}: not a stage of {suite.path} (its stages: '
                         f'{", ".join(suite.stage_names)})')
    return names, [s for s in suite.stages if s.name in names]


def _needs_checkpoint(suite: Suite, selected: Sequence[StageSpec], checkpoint: str | None) -> None:
    users = [s.name for s in selected if any('{checkpoint}' in t for t in _texts(s.params))]
    if users and not checkpoint:  # before anything runs
        raise SuiteError(f"{suite.path}: stages {', '.join(users)} use the suite's checkpoint, and there is none: pass "
                         '--checkpoint NAME_OR_PATH or set `checkpoint` in the suite')


def _context(spec: StageSpec, params: dict[str, Any], work_dir: Path, root: Path) -> StageContext:
    return StageContext(name=spec.name, params=params, dir=work_dir / spec.name, log_dir=work_dir / 'logs',
                        data_root=root)


def _stale(suite: Suite, work_dir: Path, names: Sequence[str], env: Mapping[str, str], weights: Mapping[str, Any],
           root: Path, fresh: bool) -> list[StageSpec]:
    """The stages of ``names`` a run will run: no matching record, ``fresh``, or a stage they read will run."""
    records: dict[str, dict] = {}
    stale: list[StageSpec] = []
    for spec in suite.stages:
        if any(d not in records for d in spec.depends):
            if spec.name in names:
                stale.append(spec)
            continue
        record = read_record(work_dir, spec.name, _key(spec, env, records, weights, root))
        if record is not None and not (fresh and spec.name in names):
            records[spec.name] = record
        elif spec.name in names:
            stale.append(spec)
    return stale


def preflight(spec: StageSpec, env: Mapping[str, str], root: Path, suite: Suite) -> list[str]:
    """What a stage reads under the data root and is not there: its own paths, and the files and folders the
    datasets of its config name (:func:`tasks.engine.data_paths.missing_data_paths`). Paths made by earlier stages
    are not checked; nor is anything in a suite that generates its data (a ``synthetic`` stage)."""
    if any(s.type == 'synthetic' for s in suite.stages):
        return []
    params = _planned(spec, env)
    problems = [f'stage {spec.name!r}: {key}: {text} not found' for key, text in string_params(params)
                if _under(text, root) and not Path(text).exists()]
    if params.get('config') and not params.get('relocate'):
        from tasks.engine.data_paths import missing_data_paths
        from tasks.engine.runner import load_config

        loaders = {'train': ('train_dataloader', 'val_dataloader'), 'test': ('test_dataloader',)}.get(
            spec.type, ('train_dataloader', 'val_dataloader', 'test_dataloader'))
        cfg = load_config(str(ROOT / params['config']), cfg_options=parse_cfg_options(params['cfg_options']))
        problems += [f'stage {spec.name!r}: {params["config"]}: {key}: {kind} {path} not found'
                     for key, kind, path in missing_data_paths(cfg, loaders) if '<' not in path]
    return problems


def _under(text: str, root: Path) -> bool:
    return text == str(root) or text.startswith(str(root) + os.sep)


def parse_cfg_options(options: Sequence[str]) -> dict[str, Any]:
    """``['a.b=1', 'c=x,y']`` as mmengine's ``--cfg-options`` parses them (its DictAction)."""
    import argparse

    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    return parser.parse_args(['--cfg-options', *options] if options else []).cfg_options


def plan_suite(suite: Suite, work_dir: Path, *, checkpoint: str | None = None, stages: Sequence[str] | None = None,
               data_root: str | os.PathLike | None = None) -> list[tuple[StageSpec, list[list[str]]]]:
    """What each stage (of ``stages``) would run (``--dry-run``), as ``(stage, [argv of each tool run])`` with the
    launcher's prefix; an earlier stage's output appears as ``<stage.output>``. Nothing runs; a released name is not
    resolved."""
    work_dir = Path(work_dir).resolve()
    root = Path(data_root if data_root is not None else suite.data_root).expanduser().resolve()
    _, selected = _select(suite, stages)
    _needs_checkpoint(suite, selected, checkpoint or suite.checkpoint)
    env = {'data_root': str(root), 'work_dir': str(work_dir), 'checkpoint': str(checkpoint or suite.checkpoint or '')}
    out = []
    for spec in selected:
        ctx = _context(spec, _planned(spec, env), work_dir, root)
        calls = STAGE_TYPES[spec.type].calls
        argvs = [launch_command(c.script, c.args, ctx.params.get('launcher') if c.distributed else None, spec.name)
                 for c in (calls(ctx) if calls else [])]
        out.append((spec, argvs))
    return out


def format_plan(plan: Sequence[tuple[StageSpec, list[list[str]]]]) -> str:
    """``--dry-run``'s text: each stage with the command lines it would run, paths in the repository relative."""
    lines = []
    for i, (spec, argvs) in enumerate(plan, 1):
        lines.append(f'[{i}/{len(plan)}] {spec.name} ({spec.type})')
        lines += [f'  $ {shlex.join(display_argv(argv))}' for argv in argvs]
    return '\n'.join(lines)


def _planned(spec: StageSpec, env: Mapping[str, str]) -> dict[str, Any]:
    """The stage's parameters with earlier stages' outputs as ``<stage.output>`` placeholders."""
    return _resolved(spec, env, {d: {'outputs': _Placeholder(d)} for d in spec.depends})


class _Placeholder(dict):
    def __init__(self, stage: str) -> None:
        super().__init__()
        self.stage = stage

    def __missing__(self, output: str) -> str:
        return f'<{self.stage}.{output}>'


def _checkpoint(name: str | None) -> dict[str, str | None]:
    """``{'name', 'path', 'sha256'}`` of the suite's backbone: a released name resolves through the hub cache."""
    if not name:
        return {'name': None, 'path': None, 'sha256': None}
    from backbone import resolve_checkpoint

    path = resolve_checkpoint(name)
    if not path.is_file():
        raise StageError(f'--checkpoint {name}: {path} is not a file')
    return {'name': str(name), 'path': str(path.resolve()), 'sha256': sha256_once(path)}


def _resolved(spec: StageSpec, env: Mapping[str, str], records: Mapping[str, dict]) -> dict[str, Any]:
    """The stage's parameters with every reference resolved: the strings :func:`string_params` walks."""
    outputs = {name: r['outputs'] for name, r in records.items()}
    names = {**env, 'stage_dir': str(Path(env['work_dir']) / spec.name)}

    def one(key: str, value: Any) -> Any:
        if isinstance(value, str):
            return resolve(value, names, outputs)
        if isinstance(value, list):
            return [one(key, v) for v in value]
        if key == 'outputs':  # a tool stage's declared outputs (the one dict of paths)
            return {k: one(key, v) for k, v in value.items()}
        return value
    return {k: one(k, v) for k, v in spec.params.items()}


def _key(spec: StageSpec, env: Mapping[str, str], records: Mapping[str, dict], weights: Mapping[str, Any],
         root: Path) -> str:
    """The fingerprint of a stage's inputs (see the module docstring)."""
    params = _resolved(spec, env, records)
    if spec.type not in ('train', 'train_test'):  # the GPU count changes a training run's global batch only
        params.pop('launcher', None)
    uses_checkpoint = any(m.group(0) == '{checkpoint}' for v in _texts(spec.params)
                          for m in REFERENCE.finditer(v))
    config = params.get('config')
    manifest = root / 'manifest.json'  # the synthetic benchmark's; a real dataset is taken as it is
    data = sha256_once(manifest) if spec.type != 'synthetic' and manifest.is_file() else None
    # the records of the stages read, not only their fingerprints: a redone stage (training is not bit-exact)
    # invalidates what was made from its old outputs
    depends = [fingerprint(records[d]) for d in spec.depends]
    version = STAGE_TYPES[spec.type].version
    return fingerprint('stage', EVALUATE_VERSION, spec.type, version() if version else None, str(root), params,
                       sha256_once(ROOT / config) if config else None, weights['sha256'] if uses_checkpoint else None,
                       data, depends)


def _reads(spec: StageSpec, records: Mapping[str, dict]) -> dict[str, str]:
    """The earlier stages' outputs a stage reads (``{'features.store': path}``): the stores and checkpoints behind
    its numbers."""
    return {f'{stage}.{output}': records[stage]['outputs'][output] for v in _texts(spec.params)
            for stage, output in REFERENCE.findall(v) if output}


def _texts(params: Mapping[str, Any]) -> list[str]:
    return [text for _, text in string_params(params)]


def _provenance(found: Mapping[str, Any]) -> dict[str, Any]:
    """A stage's provenance with the sha256 of its config and checkpoint, the date and this package's version."""
    out = dict(found)
    if found.get('config'):
        out['config_sha256'] = sha256_once(ROOT / found['config'])
    checkpoint = found.get('checkpoint')
    if checkpoint and Path(checkpoint).is_file():
        out['checkpoint_sha256'] = sha256_once(checkpoint)
    elif checkpoint:  # random-init:<seed>, as the feature store records it
        out['checkpoint_sha256'] = checkpoint
    out['date'] = datetime.datetime.now().astimezone().isoformat(timespec='seconds')
    out['package_version'] = package_version()
    return out
