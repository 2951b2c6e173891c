"""Running the command-line tools as stages do: logged subprocesses (under torchrun or srun where a stage runs
distributed), fingerprints, config relocation, checkpoints.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_ROOT = 'data/synthetic'  # where the synthetic configs expect the benchmark

# Log lines worth showing on the terminal while a tool runs: training progress (mmengine logs carry the ETA),
# progress bars, results and problems. Everything else goes to the stage's log file only.
_SHOW = re.compile(r'Epoch\((train|val|test)\)|\bETA\b|clips/s|\bmAP\b|top1|\w*Error\b|\berror:|Traceback|'
                   r'\bskipped\b|\bfailed\b|^wrote ')


class StageError(RuntimeError):
    """A stage failed; the message names the stage, the command and its log."""


def fingerprint(*parts: Any) -> str:
    """A short hash of JSON-serialisable parts (file contents are included by passing their sha256)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file (or the file a released checkpoint name resolves to): the identity the feature store records
    for a checkpoint (:func:`feature_store.checkpoint_id`, one implementation for both)."""
    from feature_store import checkpoint_id

    return checkpoint_id(path)


def cfg_flag(options: Sequence[str]) -> list[str]:
    """The ``--cfg-options`` arguments of a tool for ``key=value`` overrides (none when there are none)."""
    return ['--cfg-options', *options] if options else []


# The tools that take mmengine's --launcher (the others read torchrun's RANK / WORLD_SIZE themselves).
LAUNCHER_FLAG = ('tools/train.py', 'tools/test.py')
_SLURM_AS_TORCHRUN = ('export RANK=$SLURM_PROCID WORLD_SIZE=$SLURM_NTASKS LOCAL_RANK=$SLURM_LOCALID '
                      'LOCAL_WORLD_SIZE=$SLURM_NTASKS_PER_NODE MASTER_PORT=${MASTER_PORT:-29500} '
                      'MASTER_ADDR=${MASTER_ADDR:-$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)}; exec ')


def launch_command(script: str, args: Sequence[str | os.PathLike], launcher: Mapping[str, Any] | None = None,
                   job: str = 'evaluate') -> list[str]:
    """The command line of a tool run: ``python <script> args``, under torchrun on this machine (``launcher``
    ``dict(type='pytorch', gpus=N)``) or under slurm's srun (``dict(type='slurm', partition=P, gpus=N,
    gpus_per_node=8, cpus_per_task=5, srun_args=[...])``, as mmaction2's tools/slurm_train.sh launches).
    """
    tool = [str(ROOT / script), *map(str, args)]
    if not launcher:
        return [sys.executable, *tool]
    flag = ['--launcher', launcher['type']] if script in LAUNCHER_FLAG else []
    gpus = int(launcher['gpus'])
    if launcher['type'] == 'pytorch':
        # --standalone: a free rendezvous port, so that two runs on one machine do not collide
        return [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={gpus}', *tool, *flag]
    per_node = int(launcher.get('gpus_per_node') or min(gpus, 8))
    srun = ['srun', '-p', str(launcher['partition']), f'--job-name={job}', f'--gres=gpu:{per_node}', f'--ntasks={gpus}',
            f'--ntasks-per-node={per_node}', f"--cpus-per-task={launcher.get('cpus_per_task', 5)}",
            '--kill-on-bad-exit=1', *map(str, launcher.get('srun_args', ()))]
    if flag:  # mmengine's slurm launcher reads SLURM_PROCID & co. itself
        return [*srun, sys.executable, '-u', *tool, *flag]
    # the other tools read torchrun's variables: set them from slurm's, as mmengine's slurm launcher does
    return [*srun, 'bash', '-c', _SLURM_AS_TORCHRUN + shlex.join([sys.executable, '-u', *tool])]


def run_tool(stage: str, script: str, *args: str | os.PathLike, log_dir: Path,
             launcher: Mapping[str, Any] | None = None) -> None:
    """Run ``python <script> args...`` from the repository root (under ``launcher``: :func:`launch_command`); stream
    the interesting lines, log everything to ``<log_dir>/<stage>.log``.

    Raises:
        StageError: non-zero exit status, with the last lines of the log.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f'{stage}.log'
    cmd = launch_command(script, args, launcher, job=stage)
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(ROOT), env.get('PYTHONPATH')]))
    env.setdefault('PYTHONWARNINGS', 'ignore')
    print(f'  $ {" ".join(display_argv(cmd))}', flush=True)
    tail: list[str] = []
    shown = -25  # last progress percentage printed
    with open(log, 'a') as f:
        f.write(f'\n$ {" ".join(cmd)}\n')
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:  # progress bars end in '\r': text mode turns them into lines
                f.write(line)
                tail = (tail + [line.rstrip()])[-40:]
                percent = _progress_percent(line)
                if percent is not None:  # a progress bar: show it every 25 % (and at the end), not per update
                    if percent < shown:
                        shown = -25  # a new bar started
                    if percent < shown + 25 and percent != 100:
                        continue
                    shown = percent
                if _SHOW.search(line):
                    print(f'    {_compact(line)}', flush=True)
            status = proc.wait()
        except BaseException:  # Ctrl-C or an error here: the tool must not outlive its stage
            stop(proc)
            raise
    if status != 0:
        raise StageError(f'stage {stage!r} failed (exit status {status}): {" ".join(cmd)}\n'
                         f'last lines of {log}:\n' + '\n'.join(tail))


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """End a tool run: SIGTERM first, which torchrun and srun hand on to their workers, then SIGKILL."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _progress_percent(line: str) -> int | None:
    """The percentage of a tqdm progress-bar line (``extract:  45%|####  | 90/200 ...``), else None."""
    match = re.search(r'(\d+)%\|', line)
    return int(match.group(1)) if match else None


def _compact(line: str) -> str:
    """An mmengine training log line as ``Epoch(train) [3][20/40] eta 0:02:10 loss 0.0213``; others as they are."""
    line = line.strip()
    match = re.search(r'(Epoch\(\w+\)\s+\[[^\]]+\]\s*\[[^\]]+\])', line)
    if match is None:
        return line[:160]
    fields = dict(re.findall(r'\b(eta|loss|time): (\S+)', line))
    return ' '.join([re.sub(r'\s+', ' ', match.group(1)), *(f'{k} {v}' for k, v in fields.items())])


def display_argv(argv: Sequence[str]) -> list[str]:
    """A command line as a user would type it: ``python`` for this interpreter, repository paths relative."""
    return ['python' if a == sys.executable else _repo_relative(a) for a in argv]


def _repo_relative(arg: str) -> str:
    """A path inside the repository as a relative path, for readable command lines; other arguments as they are."""
    try:
        return str(Path(arg).resolve().relative_to(ROOT)) if os.sep in arg else arg
    except ValueError:
        return arg


def relocate_data(config: str, data_root: Path) -> list[str]:
    """``key=value`` overrides that point every ``data/synthetic/...`` path of a config at ``data_root``.

    The synthetic configs name their files under ``data/synthetic`` (what ``make demo`` generates); tests use a tiny
    benchmark elsewhere. Only dict-valued paths are rewritten (every dataset and evaluator path is one).
    """
    from mmengine.config import Config

    cfg = Config.fromfile(str(ROOT / config), import_custom_modules=False).to_dict()
    prefix = DEFAULT_DATA_ROOT + '/'
    overrides: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f'{path}.{key}' if path else key)
        elif isinstance(node, str) and node.startswith(prefix) and '.' in path:  # top-level variables are spent
            overrides.append(f'{path}={data_root / node[len(prefix):]}')

    walk(cfg, '')
    return overrides


def last_checkpoint(work: Path) -> Path:
    """The checkpoint mmengine's CheckpointHook names in ``last_checkpoint``.

    Raises:
        StageError: no such pointer (the training wrote no checkpoint).
    """
    pointer = work / 'last_checkpoint'
    if not pointer.is_file():
        raise StageError(f'{work}: training finished without a `last_checkpoint` file')
    path = Path(pointer.read_text().strip())
    return path if path.is_absolute() else ROOT / path


def loss_curve_value(curve: Mapping[str, list], index: int) -> float:
    """A loss value of PretrainLossCurveHook's ``loss_curve.json`` (``{"iter": [...], "loss": [...], "lr": [...]}``).

    Raises:
        StageError: the curve holds no loss at ``index``.
    """
    try:
        return float(curve['loss'][index])
    except (KeyError, IndexError, TypeError) as err:
        raise StageError(f'loss_curve.json has no loss values ({err!r})') from None
