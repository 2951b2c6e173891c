"""Evaluation suites: a backbone across benchmarks in one command (``tools/evaluate.py SUITE``).

* :mod:`.suite`: the suite file (mmengine config) listing the stages and the metrics to report, checked on load.
* :mod:`.stages`: the stage types; each runs the command-line tool a user would (``tools/extract_features.py``,
  ``tools/linear_probe.py``, ``tools/train.py``, ``tools/test.py``, any other tool), distributed where the suite
  says so.
* :mod:`.run`: fingerprinted, resumable runs of a suite or of a subset of its stages, checked before they start;
  the commands of a dry run.
* :mod:`.report`: the table beside the published figures, ``report.md``, ``results.json``, and run comparisons.
* :mod:`.tools`: launching the tools (logged subprocesses, torchrun, srun), fingerprints, config relocation.
"""
from .report import compare_runs, metric_rows, read_results, write_report
from .run import format_plan, plan_suite, run_suite
from .stages import STAGE_TYPES
from .suite import MetricSpec, StageSpec, Suite, SuiteError, load_suite
from .tools import StageError

__all__ = ['STAGE_TYPES', 'MetricSpec', 'StageError', 'StageSpec', 'Suite', 'SuiteError', 'compare_runs', 'format_plan',
           'load_suite', 'metric_rows', 'plan_suite', 'read_results', 'run_suite', 'write_report']
