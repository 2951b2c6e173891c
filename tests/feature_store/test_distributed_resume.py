"""Crash-resume of a distributed extraction: ``torchrun --nproc_per_node 2`` (gloo, CPU) killed, then rerun.

A run is killed in one of two ways: SIGKILL to one worker (torchrun then tears the group down), or SIGKILL to
torchrun and every worker at once (a lost machine). The moment is either a point the worker reaches and stops itself
at (SIGSTOP, :data:`DRIVER`): after its first part file, inside the build of its shard, inside rank 0's merge of the
shards, after that merge; or a random delay (seeded) over the measured course of an uninterrupted run (mostly of
one whose ranks pause after each file operation: a plain run spends seconds importing torch and a fraction of a
second writing).
After the kill the same command is rerun to completion (or a single process, as users do); it must end with the
store of an uninterrupted run and nothing beside it: no shard, part folder, temporary or lock file.

Each of the three normal trials also failed on the code before it (a store deleted, leftovers, a refused rerun);
they take about 30 s, since each torchrun launch imports torch in three processes on two cores. ``-m slow`` adds six
more points, an append, and 12 kills at random moments (5 to 6 min on a busy 2-core machine).
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from feature_store.extract import main
from tasks.data.files import leftover_temporaries
from tests.feature_store.extract_kit import TINY, TOOL, leftovers, stores_equal
from tests.torchrun_kit import cpu_env, free_port

TORCHRUN = Path(sys.executable).with_name('torchrun')

pytestmark = [
    pytest.mark.skipif(not TORCHRUN.exists(), reason=f'torchrun is not installed next to {sys.executable}'),
    pytest.mark.skipif(not Path('/proc/self/stat').exists(), reason='finds the workers in /proc (Linux)'),
    pytest.mark.usefixtures('one_thread'),  # the in-process single-process reruns (tests/conftest.py)
]

DRIVER = '''
"""The extraction CLI, with one rank stopping itself (SIGSTOP) at a point so that a test can kill it there:
'part' after its first part file, 'shard' inside the build of its shard after the first video, 'merge' inside the
merge of the shards after the first video, 'merged' after that merge (before the shards are deleted), 'unlink' after
deleting the info.json of a part folder; or, with 'pace', every rank pausing after each file operation (so that
kills at random moments spread over them)."""
import os, signal, sys, time
import feature_store.extract.run as run
from feature_store import FeatureStore
from feature_store.extract import main

rank, point = sys.argv[1:3]
stopped = []


def stop():
    if not stopped:
        stopped.append(1)
        os.kill(os.getpid(), signal.SIGSTOP)


def stop_after(function, when=lambda *args, **kwargs: True):
    def wrapped(*args, **kwargs):
        result = function(*args, **kwargs)
        if when(*args, **kwargs):
            stop()
        return result
    return wrapped


def paced(function):
    def wrapped(*args, **kwargs):
        result = function(*args, **kwargs)
        time.sleep(0.05)
        return result
    return wrapped


merging = []
if point == 'pace':
    run.write_part, FeatureStore.add = paced(run.write_part), paced(FeatureStore.add)
    os.replace, os.unlink, os.rmdir = paced(os.replace), paced(os.unlink), paced(os.rmdir)
elif os.environ.get('RANK', '0') == rank:
    if point == 'part':
        run.write_part = stop_after(run.write_part)
    elif point in ('shard', 'merge'):
        # a shard is written to a temporary named .OUT.<hex>.tmp.rank<r>, the merged store to .OUT-stem.<hex>.tmp.h5
        in_shard = lambda store, *args: store.path.suffix.startswith('.rank')
        in_merge = lambda store, *args: bool(merging)
        FeatureStore.add = stop_after(FeatureStore.add, in_shard if point == 'shard' else in_merge)
        merge_stores = run.merge_stores
        run.merge_stores = lambda *args: merging.append(1) or merge_stores(*args)
    elif point == 'merged':
        run.merge_stores = stop_after(run.merge_stores)
    elif point == 'unlink':
        os.unlink = stop_after(os.unlink, lambda path, *args, **kwargs: os.path.basename(path) == 'info.json')
sys.exit(main(sys.argv[3:]))
'''


# ---------------------------------------------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------------------------------------------
def _state(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) from /proc; None once every thread has exited (then its files, and the locks on
    them, are released; a killed process's main thread is a zombie while its other threads still exit)."""
    try:
        fields = _stat(Path(f'/proc/{pid}'))
        threads = list(Path(f'/proc/{pid}/task').iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return None
    for thread in threads:
        try:
            if _stat(thread)[0] not in 'ZX':
                return fields[0], int(fields[1])
        except (FileNotFoundError, ProcessLookupError):
            pass  # that thread has just exited
    return None


def _stat(folder: Path) -> list[str]:
    """The fields of /proc/<pid>/stat (or /proc/<pid>/task/<tid>/stat) after the command name: state, ppid, ..."""
    return (folder / 'stat').read_text().rsplit(')', 1)[1].split()


def _rank(pid: int) -> int | None:
    try:
        environ = Path(f'/proc/{pid}/environ').read_bytes().split(b'\0')
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    ranks = [int(e[5:]) for e in environ if e.startswith(b'RANK=')]
    return ranks[0] if ranks else None  # None between fork and exec: still torchrun's environment


class Launch:
    """A torchrun (or single) extraction process started in its own session, with its stderr in a file."""

    def __init__(self, tmp_path: Path, args: list[str], nproc: int = 2):
        self.log = tmp_path / f'run{len(list(tmp_path.glob("run*.log")))}.log'
        cmd = [sys.executable, *args] if nproc == 1 else [
            str(TORCHRUN), '--nproc_per_node', str(nproc), '--master_addr', '127.0.0.1',
            '--master_port', str(free_port()), *args]
        with open(self.log, 'w') as log:
            self.proc = subprocess.Popen(cmd, env=cpu_env(), stdout=subprocess.DEVNULL, stderr=log,
                                         start_new_session=True)
        self.start = time.monotonic()
        self.seen: set[int] = set()

    def workers(self) -> dict[int, int]:
        """{rank: pid} of the live workers (torchrun's children that have their RANK)."""
        found = {}
        for entry in Path('/proc').iterdir():
            try:
                child = entry.name.isdigit() and int(_stat(entry)[1]) == self.proc.pid
            except (FileNotFoundError, ProcessLookupError):
                continue
            if child and _state(int(entry.name)) is not None:
                rank = _rank(int(entry.name))
                if rank is not None:
                    found[rank] = int(entry.name)
        self.seen.update(found.values())
        return found

    def wait_stopped(self, rank: int, timeout: float = 120) -> int:
        """The pid of worker ``rank`` once it has stopped itself (DRIVER)."""
        deadline = time.monotonic() + timeout
        while True:
            pid = self.proc.pid if self.nproc == 1 else self.workers().get(rank)
            state = _state(pid) if pid is not None else None
            if state is not None and state[0] == 'T':
                return pid
            if self.proc.poll() is not None:
                raise AssertionError(f'the run ended before rank {rank} stopped (status {self.proc.returncode}):\n'
                                     f'{self.log.read_text()}')
            assert time.monotonic() < deadline, f'rank {rank} never stopped:\n{self.log.read_text()}'
            time.sleep(0.01)

    @property
    def nproc(self) -> int:
        return 1 if Path(self.proc.args[0]) != TORCHRUN else 2

    def kill_rank(self, rank: int) -> bool:
        """SIGKILL worker ``rank`` (waiting for it to be spawned); False when the run ended first."""
        while self.proc.poll() is None:
            pid = self.workers().get(rank)
            if pid is not None:
                try:
                    os.killpg(pid, signal.SIGKILL)  # a worker leads its own session (torch's SubprocessHandler)
                    return True
                except ProcessLookupError:
                    pass
            time.sleep(0.002)
        return False

    def kill_all(self) -> bool:
        """SIGKILL torchrun and every worker (frozen first, so that no new worker appears meanwhile); False when the
        run had ended."""
        try:
            os.killpg(self.proc.pid, signal.SIGSTOP)
        except ProcessLookupError:
            return False
        alive = self.proc.poll() is None
        for pid in [self.proc.pid, *self.workers().values()]:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return alive

    def end(self, timeout: float = 120) -> int:
        """Wait for torchrun and every worker seen to be gone; torchrun's status."""
        status = self.proc.wait(timeout)
        deadline = time.monotonic() + timeout
        while any(_state(pid) is not None for pid in self.seen):
            assert time.monotonic() < deadline, f'workers {self.seen} outlived torchrun'
            time.sleep(0.01)
        return status


def _cli(videos: Path, out: Path) -> list[str]:
    return [str(videos), '--out', str(out), *TINY]  # TINY runs on the CPU (--device cpu)


def _stop_and_kill(tmp_path: Path, videos: Path, out: Path, rank: int, point: str, kill: str,
                   nproc: int = 2) -> list[str]:
    """Run until worker ``rank`` stops at ``point``, then kill it ('rank') or everything ('all'); returns what was
    left beside ``out`` (and ``out`` if it exists) once every process is gone."""
    driver = tmp_path / 'driver.py'
    driver.write_text(DRIVER)
    run = Launch(tmp_path, [str(driver), str(rank), point, *_cli(videos, out)], nproc)
    try:
        pid = run.wait_stopped(rank)
        if kill == 'rank':
            os.killpg(pid, signal.SIGKILL)
        else:
            assert run.kill_all()
        assert run.end() != 0
    finally:
        run.kill_all()
        run.proc.wait()
    return _left(out)


def _left(out: Path) -> list[str]:
    return leftovers(out) + ([out.name] if out.exists() else [])


def _resume(tmp_path: Path, videos: Path, out: Path, reference: Path, nproc: int = 2) -> None:
    """Rerun to completion (torchrun, or in this process); the store of an uninterrupted run and nothing else."""
    if nproc == 1:
        assert main(_cli(videos, out)) == 0
    else:
        run = Launch(tmp_path, [str(TOOL), *_cli(videos, out)])
        assert run.end(300) == 0, run.log.read_text()
    stores_equal(out, reference, exact=False)  # to 1e-6: features computed in other processes
    assert leftovers(out) == []


def _extract_one(videos: Path, out: Path, tmp_path: Path) -> None:
    """``out`` holding vid_b only (a store that a run then appends to)."""
    first = tmp_path / 'first.txt'
    first.write_text(f'{videos / "vid_b.mp4"}\n')
    assert main([str(first), '--out', str(out), *TINY]) == 0


# ---------------------------------------------------------------------------------------------------------------------
# kills at chosen points
# ---------------------------------------------------------------------------------------------------------------------
def test_one_rank_killed_building_its_shard_then_one_process_resumes(videos, reference, tmp_path):
    out = tmp_path / 'out.h5'
    left = _stop_and_kill(tmp_path, videos, out, 0, 'shard', kill='rank')
    # rank 0 died writing its shard (vid_a in, vid_c not), torchrun then stopped rank 1
    assert 'out.h5.rank0.parts' in left and 'out.h5.rank0' not in left and 'out.h5' not in left
    assert any(n.startswith('.out.h5.') and n.endswith('.tmp.rank0') for n in left)
    # users rerun without torchrun too: that process never builds rank 0's shard, and once left its temporary and
    # lock file behind
    _resume(tmp_path, videos, out, reference, nproc=1)


def test_group_killed_inside_the_merge_then_torchrun_resumes(videos, reference, tmp_path):
    out = tmp_path / 'out.h5'
    _extract_one(videos, out, tmp_path)
    before = out.read_bytes()
    left = _stop_and_kill(tmp_path, videos, out, 0, 'merge', kill='all')
    # both shards complete, the merged store half written under its temporary name, OUT as it was
    assert leftover_temporaries(out) and {'out.h5.rank0', 'out.h5.rank1'} <= set(left)
    assert out.read_bytes() == before
    # the rerun merges the shards with OUT (which was once deleted with the shards: the list of merged files was
    # the list of shards)
    _resume(tmp_path, videos, out, reference)


def test_one_process_killed_deleting_its_parts_then_resumes(videos, reference, tmp_path):
    out = tmp_path / 'out.h5'
    # killed right after the store was written, while its part folder is deleted: the provenance file of the parts
    # is gone, and with the old deletion (shutil.rmtree, directory order) part files were left without it
    left = _stop_and_kill(tmp_path, videos, out, 0, 'unlink', kill='all', nproc=1)
    assert 'out.h5' in left
    _resume(tmp_path, videos, out, reference, nproc=1)


@pytest.mark.slow
@pytest.mark.parametrize('rank, point, kill, nproc, resume', [
    (1, 'shard', 'rank', 2, 2),   # rank 1 killed writing its shard
    (0, 'merge', 'rank', 2, 2),   # rank 0 alone killed inside the merge
    (0, 'merged', 'all', 2, 2),   # all killed after the merge, before the shards are deleted
    (0, 'shard', 'all', 2, 2),    # all killed while rank 0 writes its shard
    (1, 'part', 'all', 2, 1),     # all killed after rank 1's first part, a single process resumes
    (0, 'part', 'all', 1, 2),     # a single process killed after its first part, torchrun resumes
], ids=lambda v: str(v))
def test_killed_at_a_point_then_resumed(videos, reference, tmp_path, rank, point, kill, nproc, resume):
    out = tmp_path / 'out.h5'
    _stop_and_kill(tmp_path, videos, out, rank, point, kill, nproc)
    _resume(tmp_path, videos, out, reference, resume)


@pytest.mark.slow
def test_torchrun_appends_to_an_existing_store(videos, reference, tmp_path):
    out = tmp_path / 'out.h5'
    _extract_one(videos, out, tmp_path)
    _resume(tmp_path, videos, out, reference)


# ---------------------------------------------------------------------------------------------------------------------
# kills at random moments
# ---------------------------------------------------------------------------------------------------------------------
def _work_started(out: Path) -> bool:
    """A rank has created its part folder: torch is imported and the store checked, the extraction begins."""
    return any(out.parent.glob(f'{out.name}.rank*.parts'))


def _launch(tmp_path: Path, videos: Path, out: Path, paced: bool) -> Launch:
    """The plain command, or under DRIVER with every file operation followed by a pause."""
    if not paced:
        return Launch(tmp_path, [str(TOOL), *_cli(videos, out)])
    driver = tmp_path / 'driver.py'
    driver.write_text(DRIVER)
    return Launch(tmp_path, [str(driver), '0', 'pace', *_cli(videos, out)])


def _timeline(tmp_path: Path, videos: Path, paced: bool) -> tuple[float, float]:
    """Seconds from launch to the first part folder and to the end of the work (``out`` written, the shards
    deleted) in an uninterrupted run; measured again when this process, descheduled on a busy machine, missed the
    part folders (a plain run has them for a fraction of a second)."""
    for attempt in range(3):
        out = tmp_path / f'{"paced" if paced else "plain"}{attempt}.h5'
        run = _launch(tmp_path, videos, out, paced)
        started = finished = None
        while run.proc.poll() is None:
            now = time.monotonic() - run.start
            started = started or (now if _work_started(out) else None)
            finished = finished or (now if out.exists() and not list(out.parent.glob(f'{out.name}.rank*')) else None)
            time.sleep(0.002)
        assert run.end() == 0, run.log.read_text()
        if started is not None and finished is not None:
            return started, finished
    raise AssertionError('three uninterrupted runs ended before their part folders were seen')


@pytest.mark.slow
def test_killed_at_random_moments_then_resumed(videos, reference, tmp_path):
    """12 kills (one rank or all, alternately) at seeded random moments: 4 over a whole plain run (from launch), 8
    over the work of a run whose ranks pause after every file operation (from the first part folder)."""
    rng = random.Random(24)
    timelines = {paced: _timeline(tmp_path, videos, paced) for paced in (False, True)}
    report, merges = [], 0
    for trial in range(12):
        folder = tmp_path / f'trial{trial}'
        folder.mkdir()
        out = folder / 'out.h5'
        kill, rank = ('rank', rng.randrange(2)) if trial % 2 == 0 else ('all', None)
        paced = trial >= 4
        started, finished = timelines[paced]
        delay = rng.uniform(0, finished - started) if paced else rng.uniform(0, finished)
        run = _launch(folder, videos, out, paced)
        try:
            while paced and not _work_started(out) and run.proc.poll() is None:
                time.sleep(0.002)
            time.sleep(max(0.0, delay - (0 if paced else time.monotonic() - run.start)))
            killed = run.kill_rank(rank) if kill == 'rank' else run.kill_all()
            status = run.end()
        finally:
            run.kill_all()
            run.proc.wait()
        left = _left(out)
        merges += bool(leftover_temporaries(out))  # killed inside rank 0's merge
        resume = 1 if trial % 4 == 3 else 2
        _resume(folder, videos, out, reference, resume)
        report.append(f'trial {trial}: kill {kill}{"" if rank is None else f" {rank}"} at '
                      f'{"work" if paced else "launch"}+{delay:.3f}s ({"killed" if killed else "had ended"}, status '
                      f'{status}), left {left}, resumed by {resume}')
    print('\n'.join(report), f'\n{merges} inside the merge; timelines {timelines}')
    assert sum("(killed" in line for line in report) >= 8  # most moments lie within the runs (their length varies)
