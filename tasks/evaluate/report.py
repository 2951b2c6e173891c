"""The report of a suite run: one row per metric with our result, the published figure, the difference and the
baseline, on the terminal, in ``report.md`` and in ``results.json`` with the provenance of every number; and the
side-by-side comparison of several runs (``tools/evaluate.py --compare``)."""
from __future__ import annotations

import datetime
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from feature_store.info import package_version
from tasks.data.files import atomic_path, write_json_atomic, write_text_atomic
from tasks.engine.report import text_table

from .suite import MetricSpec, Suite, SuiteError

HEADER = ('metric', 'result', 'published', 'difference', 'baseline')


def lookup(metrics: Mapping[str, float], key: str, where: str) -> float:
    """A metric by its key, or by its key without the evaluator's prefix (``acc/top1`` for ``top1``).

    Raises:
        SuiteError: no such metric, or several; naming ``where`` (the suite key) and the metrics there are.
    """
    if key in metrics:
        return float(metrics[key])
    found = [v for k, v in metrics.items() if k.endswith('/' + key)]
    if len(found) != 1:
        raise SuiteError(f'{where}: {"no" if not found else "more than one"} metric {key!r} in the stage\'s results '
                         f'(its metrics: {", ".join(sorted(metrics)) or "none"})')
    return float(found[0])


def metric_rows(suite: Suite, records: Mapping[str, dict]) -> list[dict[str, Any]]:
    """One dict per report entry: value, published, difference and baseline in the reported unit (times ``scale``),
    with the provenance of the stage that made the value; ``value`` None for a stage with no up-to-date record."""
    rows = []
    for i, spec in enumerate(suite.report):
        where = f'{suite.path}: report[{i}] ({spec.name})'
        record = records.get(spec.stage)
        value = None if record is None else lookup(record['metrics'], spec.key, f'{where}.key') * spec.scale
        baseline, label = _baseline(spec, records, where)
        difference = None if value is None or spec.published is None else value - spec.published
        rows.append({'name': spec.name, 'stage': spec.stage, 'key': spec.key, 'scale': spec.scale, 'value': value,
                     'published': spec.published, 'source': spec.source, 'difference': difference,
                     'baseline': baseline, 'baseline_label': label,
                     'provenance': None if record is None else lineage(spec.stage, records)})
    return rows


def lineage(stage: str, records: Mapping[str, dict]) -> dict[str, dict]:
    """``{stage: provenance}`` of a stage and of every stage whose outputs it read, directly or not (a probe's
    numbers come from a store, made from a checkpoint): what each number comes from."""
    out: dict[str, dict] = {}
    todo = [stage]
    while todo:
        name = todo.pop(0)
        if name in out or name not in records:
            continue
        out[name] = {**records[name]['provenance'], **records[name].get('reads', {})}
        todo += [key.split('.', 1)[0] for key in records[name].get('reads', {})]
    return out


def _baseline(spec: MetricSpec, records: Mapping[str, dict], where: str) -> tuple[float | None, str | None]:
    if spec.baseline is None:
        return None, None
    label = spec.baseline['label']
    if 'value' in spec.baseline:  # in the metric's own unit, as the stage reports it (chance: 1 / classes)
        return float(spec.baseline['value']) * spec.scale, label
    record = records.get(spec.baseline.get('stage', spec.stage))
    if record is None:
        return None, label
    return lookup(record['metrics'], spec.baseline['key'], f'{where}.baseline.key') * spec.scale, label


def _number(value: float | None, scale: float, signed: bool = False) -> str:
    if value is None:
        return ''
    return f'{value:+.{3 if scale == 1 else 1}f}' if signed else f'{value:.{3 if scale == 1 else 1}f}'


def table_rows(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, ...]]:
    out = []
    for r in rows:
        baseline = f"{_number(r['baseline'], r['scale'])} ({r['baseline_label']})" if r['baseline_label'] else ''
        out.append((r['name'], 'not run' if r['value'] is None else _number(r['value'], r['scale']),
                    _number(r['published'], r['scale']), _number(r['difference'], r['scale'], signed=True),
                    baseline if r['baseline'] is not None else r['baseline_label'] or ''))
    return out


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    return '\n'.join(lines + ['| ' + ' | '.join(c.replace('|', '/') for c in row) + ' |' for row in rows])


def summary_chart(path: str | Path, title: str, rows: Sequence[Mapping[str, Any]]) -> Path:
    """One horizontal group of bars per metric (ours, published, baseline), each labelled with its value; metrics
    that were not run are left out."""
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt

    shown = [r for r in rows if r['value'] is not None]
    fig, axes = plt.subplots(max(len(shown), 1), 1, figsize=(7, 0.4 + 1.1 * max(len(shown), 1)), squeeze=False)
    for ax, r in zip(axes[:, 0], shown):
        bars = [(f"baseline ({r['baseline_label']})", r['baseline'], '#bbbbbb'),
                ('published', r['published'], '#333333'), ('ours', r['value'], '#1f77b4')]
        bars = [b for b in bars if b[1] is not None]
        ax.barh(range(len(bars)), [b[1] for b in bars], color=[b[2] for b in bars])
        ax.set_yticks(range(len(bars)), [b[0] for b in bars], fontsize=8)
        for y, (_, value, _) in enumerate(bars):
            ax.text(value, y, f' {_number(value, r["scale"])}', va='center', fontsize=8)
        ax.set_xlim(0, max(b[1] for b in bars) * 1.2 or 1)
        ax.set_title(r['name'], fontsize=9, loc='left')
    axes[0, 0].figure.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(path)


def write_report(summary: Mapping[str, Any]) -> str:
    """Write ``results.json``, ``report.md`` and ``summary.png`` into the run's work folder; returns the terminal
    text.

    Args:
        summary: what :func:`tasks.evaluate.run.run_suite` returns.
    """
    suite: Suite = summary['suite']
    work = Path(summary['work_dir'])
    rows = metric_rows(suite, summary['records'])
    date = datetime.datetime.now().astimezone().isoformat(timespec='seconds')
    results = {'suite': {'name': suite.name, 'file': str(suite.path), 'sha256': suite.sha256},
               'checkpoint': summary['checkpoint'], 'data_root': summary['data_root'], 'date': date,
               'package_version': package_version(), 'metrics': rows, 'stages': summary['records'],
               'ran': summary['ran'], 'reused': summary['reused'], 'missing': summary['missing'],
               'seconds': summary['seconds']}
    write_json_atomic(work / 'results.json', results, sort_keys=True, default=float)
    table = text_table(HEADER, table_rows(rows))
    weights = summary['checkpoint']
    lines = [f'# {suite.name}', '', f"checkpoint: {weights['name'] or 'none'}"
             + (f" ({weights['path']}, sha256 {weights['sha256']})" if weights['path'] else ''),
             f'suite: {suite.path} (sha256 {suite.sha256[:16]}); data: {summary["data_root"]}; date: {date}; '
             f'package version {results["package_version"]}', '', _markdown(HEADER, table_rows(rows)), '',
             '![summary](summary.png)', '',
             '## Where each number comes from', '']
    for r in rows:
        stages = [f'`{name}` (' + ', '.join(f'{k} {v}' for k, v in sorted(p.items()) if k != 'package_version') + ')'
                  for name, p in (r['provenance'] or {}).items()]
        lines.append(f"- {r['name']}: metric `{r['key']}` of " + ', from '.join(stages or [f"`{r['stage']}` (not run)"])
                     + (f"; published: {r['source']}" if r['source'] else ''))
    pictures = copy_pictures(summary['records'], work)
    if pictures:
        lines += ['', '## Pictures', '', *(f'![{name}]({name})' for name in pictures)]
    write_text_atomic(work / 'report.md', '\n'.join(lines) + '\n')
    summary_chart(work / 'summary.png', suite.name, rows)
    notes = [f"ran: {', '.join(summary['ran']) or 'nothing'}; re-used: {', '.join(summary['reused']) or 'nothing'}"]
    if summary['missing']:
        notes.append(f"no up-to-date result (not run): {', '.join(summary['missing'])}")
    notes.append(f"report in {work}: {', '.join(['report.md', 'results.json', 'summary.png', *pictures])}")
    return '\n'.join(['', table, *notes])


def picture_name(stage: str, path: str | Path) -> str:
    """The name of a stage's picture in the run folder: ``<stage>_<file>`` unless the file is already named after
    the stage (``ava_per_class_ap.png`` of stage ``ava``, ``reconstruction.png`` of stage ``reconstruction``)."""
    name = Path(path).name
    return name if name.startswith(f'{stage}_') or Path(name).stem == stage else f'{stage}_{name}'


def copy_pictures(records: Mapping[str, dict], work: Path) -> list[str]:
    """Copy the pictures of every stage (loss curves, confusion matrices, per-class AP, ...) up into the run folder;
    returns their names in stage order."""
    names = []
    for stage, record in records.items():
        for path in record.get('pictures', []):
            if Path(path).is_file():
                names.append(picture_name(stage, path))
                with atomic_path(work / names[-1]) as tmp:
                    shutil.copyfile(path, tmp)
    return names


def read_results(run_dir: str | Path) -> dict[str, Any]:
    """A run's ``results.json``.

    Raises:
        SuiteError: no such file or not json, naming it.
    """
    path = Path(run_dir) / 'results.json'
    try:
        return json.loads(path.read_text())
    except OSError:
        raise SuiteError(f'{path}: no results of a suite run here (run tools/evaluate.py SUITE --work-dir '
                         f'{run_dir} first)') from None
    except json.JSONDecodeError as err:
        raise SuiteError(f'{path}: not a results file ({err})') from None


def compare_runs(run_dirs: Sequence[str | Path]) -> str:
    """Several runs' metrics side by side, each after the first with its difference to the first; the published
    figure last. Rows follow the first run's report, then metrics only later runs have."""
    runs = [read_results(d) for d in run_dirs]
    # each run by its checkpoint's name (a file by its file name); by its folder where that does not tell them apart
    labels = [Path((r['checkpoint'] or {}).get('name') or d).name for r, d in zip(runs, run_dirs)]
    if len(set(labels)) < len(labels):
        labels = [str(d) for d in run_dirs]
    names: list[str] = []
    for run in runs:
        names += [m['name'] for m in run['metrics'] if m['name'] not in names]
    table = []
    for name in names:
        found = [next((m for m in run['metrics'] if m['name'] == name), None) for run in runs]
        first = found[0]
        any_row = next(m for m in found if m is not None)
        cells = [name]
        for j, m in enumerate(found):
            if m is None or m['value'] is None:
                cells.append('')
                continue
            text = _number(m['value'], m['scale'])
            if j and first is not None and first['value'] is not None:
                text += f" ({_number(m['value'] - first['value'], m['scale'], signed=True)})"
            cells.append(text)
        cells.append(_number(any_row['published'], any_row['scale']))
        table.append(tuple(cells))
    header = ('metric', *(label if j == 0 else f'{label} (diff)' for j, label in enumerate(labels)), 'published')
    return text_table(header, table)
