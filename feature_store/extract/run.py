"""The extraction run (:func:`extract_to_store`): many videos into one store, resumable, crash-safe and distributed.

* every finished video becomes a part file (:func:`feature_store.write_part`) in ``OUT.rank{r}.parts/``, next to an
  ``info.json`` with the run's provenance;
* ``OUT`` is only ever written by :func:`feature_store.build_store` (atomically) from the existing ``OUT`` plus the
  parts, after which the parts are deleted; under ``torchrun`` every rank folds its parts into its own shard
  ``OUT.rank{r}`` and rank 0 merges the shards (:func:`feature_store.merge_stores`), once it has checked that the
  shards it finds beside ``OUT`` hold every rank's videos (:func:`check_merged_ids`: a shared file system);
* a rerun first collects the ids already in ``OUT``, in shards and in part files whose provenance equals this run's
  (:meth:`feature_store.StoreInfo.differences`) and extracts only the others, so a process killed at any moment
  leaves complete files only and the rerun ends with the same file as an uninterrupted run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from tasks.data.files import leftover_temporaries, write_json_atomic

from ..errors import FeatureStoreError
from ..info import StoreInfo, checkpoint_id, describe_differences
from ..lock import store_lock
from ..parts import part_ids, read_parts, write_part
from ..store import FeatureStore, build_store, merge_stores
from .clips import forward_clips
from .decode import clip_batches, default_batch_size, default_num_workers
from .featmaps import extract_featmap_share
from .inputs import ExtractError, IdFrom, find_videos
from .progress import Progress
from .provenance import ExtractConfig, make_store_info
from .threads import ModelSetup

__all__ = ['ExtractResult', 'extract_to_store', 'check_merged_ids']

#: How long ranks that finish early wait at a barrier for the slowest one (a share can take hours on a big model).
_DIST_TIMEOUT = timedelta(hours=24)

_PARTS_INFO = 'info.json'

_FLOAT16_MAX = float(np.finfo(np.float16).max)  # 65504


@dataclass
class ExtractResult:
    """What a run did (on rank 0: for all ranks).

    Attributes:
        out: the store.
        extracted: ids extracted by this run.
        skipped: ids already complete (in the store, a shard or a part file) and not extracted again.
        failed: ``{'video_id', 'path', 'reason'}`` for every video that could not be decoded, plus ``'line'``
            (``'list.txt:LINE'``) for a video named by a list file.
        variable_frame_rate: ids of extracted videos whose timestamps are not a constant frame rate (their rows
            are placed by ``centre_times``, docs/feature_caching.md#time-from-the-container).
        num_clips: windows run through the model.
        seconds: wall time of the extraction loop.
        warmup_seconds: of ``seconds`` (this process's), the first batch of each size, and with ``--compile`` the
            compilation (:class:`~.progress.Progress`).
        warmup_clips: the clips of those batches.
        clips_per_s: this process's clips per second after the warm-up (0: no batch after it).
        model_threads: this process's intra-op threads of a CPU model once decided (None: on a GPU).
        decode_share: decoding / model seconds per clip over the first batches, which decided ``model_threads``
            (:class:`~.threads.ThreadPlan`; None: not measured).
        compiled: ``--compile`` compiled the model's blocks (False where torch.compile is not available).
    """

    out: Path
    extracted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    variable_frame_rate: list[str] = field(default_factory=list)
    num_clips: int = 0
    seconds: float = 0.0
    warmup_seconds: float = 0.0
    warmup_clips: int = 0
    clips_per_s: float = 0.0
    model_threads: int | None = None
    decode_share: float | None = None
    compiled: bool = False


class _Dist:
    """Rank, world size and collectives; a no-op stand-in in a single process."""

    def __init__(self, device: torch.device) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.world = int(os.environ.get('WORLD_SIZE', '1'))
        self.rank = int(os.environ.get('RANK', '0'))
        self.owns_group = False
        if self.world > 1 and not dist.is_initialized():
            # NCCL needs one GPU per rank; CPU runs (and CPU tests) use gloo.
            dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo', timeout=_DIST_TIMEOUT)
            self.owns_group = True
        if self.world > 1:
            self.world, self.rank = dist.get_world_size(), dist.get_rank()

    def barrier(self) -> None:
        if self.world > 1:
            self.dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """``obj`` of rank 0 on every rank."""
        if self.world == 1:
            return obj
        box = [obj]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        self.dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.owns_group:
            self.dist.destroy_process_group()


def _resolve_device(name: str | None, local_rank: int) -> torch.device:
    if name is None:
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(name)
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise ExtractError(f'--device {name}: CUDA is not available')
        if device.index is None:  # one GPU per rank under torchrun
            device = torch.device('cuda', local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def _shard_path(out: Path, rank: int) -> Path:
    return out.with_name(f'{out.name}.rank{rank}')


def _parts_dir(out: Path, rank: int) -> Path:
    return out.with_name(f'{out.name}.rank{rank}.parts')


def _ranked(out: Path, suffix: str) -> dict[int, Path]:
    """Existing ``OUT.rank<k><suffix>`` paths by k (shards with suffix '', part folders with '.parts', the lock files
    of shards with '.lock')."""
    pattern = re.compile(re.escape(out.name) + r'\.rank(\d+)' + re.escape(suffix) + '$')
    found = {}
    if out.parent.is_dir():
        for p in out.parent.iterdir():
            m = pattern.match(p.name)
            if m:
                found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def _parts_info(folder: Path) -> StoreInfo | None:
    path = folder / _PARTS_INFO
    if not path.exists():
        return None
    try:
        return StoreInfo.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, ValueError) as e:
        raise ExtractError(f'{path} is unreadable ({e}); delete {folder} to discard its part files') from None


_DEVICE_FIELDS = ('config.device_type', 'config.tf32_matmul', 'config.tf32_conv')


def _mismatch(stored: StoreInfo | None, info: StoreInfo) -> str:
    """How leftovers made with ``stored`` provenance differ from this run's; '' when they can be reused."""
    if stored is None:
        return 'no info.json'
    differences = stored.differences(info)
    what = describe_differences(differences, 'stored', 'this run')
    if any(d.field == 'preprocessing' and _only_normalize_differs(d.old, d.new) for d in differences):
        what += ('. The extractor no longer normalises by default (the official TAD preprocessing has no mean/std; '
                 'docs/feature_caching.md#extraction-defaults): to add to a store made with ImageNet mean/std, pass '
                 '--normalize' if stored.preprocessing.get('normalize') else '. Only the mean/std normalisation '
                 'differs: drop --normalize to add to this store')
    if any(d.field in _DEVICE_FIELDS for d in differences):
        device = stored.config.get('device_type')
        what += ('. Features of another device type or TF32 setting differ in their last digits, and one store does '
                 f'not mix them: to add to it, run with --device {device or "<its device>"} and its TF32 setting '
                 '(torch.backends.cuda.matmul / torch.backends.cudnn.conv fp32_precision; None: the CPU, or a store '
                 'written before TF32 was recorded)')
    return what


def _only_normalize_differs(old: object, new: object) -> bool:
    """Whether two ``preprocessing`` records differ in their ``normalize`` entry alone."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return False
    return old.get('normalize') != new.get('normalize') and \
        {k: v for k, v in old.items() if k != 'normalize'} == {k: v for k, v in new.items() if k != 'normalize'}


def _prepare(out: Path, info: StoreInfo, overwrite: bool) -> tuple[bool, list[str]]:
    """Rank 0, before any work: check what earlier runs left and collect the ids that are already complete.

    Returns ``(use_base, done)``: whether ``out`` is kept (appended to), and the complete ids in ``out`` (if kept),
    shards and part folders. Leftovers whose provenance differs are deleted with ``overwrite``, else refused.
    Part folders of ranks this run does not have (an earlier run with more processes) are folded into their shards
    by rank 0 at the end (:func:`_merge`); their ids count as complete here.
    """
    done: set[str] = set()
    use_base = out.exists() and not overwrite
    if use_base:
        with FeatureStore.open(out) as store:
            what = _mismatch(store.info, info)
            if what:
                raise ExtractError(f'{out} was made with different settings, refusing to append ({what}); pass '
                                   '--overwrite to replace it, or write to another file')
            done.update(store.ids())
    for shard in _ranked(out, '').values():
        with FeatureStore.open(shard) as store:
            what, ids = _mismatch(store.info, info), store.ids()
        if not what:
            done.update(ids)
        elif overwrite:
            shard.unlink()
        else:
            raise ExtractError(f'{shard} (left by an interrupted run) was made with different settings ({what}); '
                               'pass --overwrite to discard it')
    for folder in _ranked(out, '.parts').values():
        stored, ids = _parts_info(folder), part_ids(folder)
        if stored is None and not ids:
            continue  # created, then killed before anything was written
        what = _mismatch(stored, info)
        if not what:
            done.update(ids)
        elif overwrite:
            shutil.rmtree(folder)
        else:
            raise ExtractError(f'{folder} (part files of an interrupted run) was made with different settings '
                               f'({what}); pass --overwrite to discard it')
    return use_base, sorted(done)


def _open_parts(folder: Path, info: StoreInfo) -> None:
    """Create a part folder holding ``info.json`` (the provenance its parts are checked against on resume)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / _PARTS_INFO).exists():
        write_json_atomic(folder / _PARTS_INFO, info.to_dict(), indent=1, sort_keys=True)


def _fold_parts(folder: Path, target: Path, info: StoreInfo, base: Path | None) -> None:
    """``target`` = ``base`` + the parts in ``folder`` (atomically), then delete the parts. Without parts, a target
    that is its own base is left as it is (a rerun with nothing to do does not rewrite the store)."""
    has_parts = folder.exists() and bool(part_ids(folder))
    if has_parts or base != target:
        build_store(target, info, read_parts(folder) if has_parts else iter(()), base=base,
                    size_hint=sum(p.stat().st_size for p in folder.iterdir()) if has_parts else 0)
    if folder.exists():
        # the parts first, their provenance last: a kill in between must not leave parts without it, which a rerun
        # refuses (shutil.rmtree goes in directory order, info.json first on ext4)
        for path in sorted(folder.iterdir(), key=lambda p: p.name == _PARTS_INFO):
            path.unlink()
        folder.rmdir()


def _extract_share(model: nn.Module, todo: Sequence[tuple[int, str, Path]], cfg: ExtractConfig, parts: Path,
                   progress: Progress, lines: dict[str, str] | None = None, setup: ModelSetup | None = None
                   ) -> tuple[list[str], list[dict[str, str]], int]:
    """Run the model over ``todo``, writing one part file per finished video. Returns (done ids, failures, clips).
    ``lines``: the list-file line (``'list.txt:LINE'``) of each id a list named, for the failure reports; ``setup``
    is told each batch's decoding and model seconds (the CPU threads' decision)."""
    lines = lines or {}
    device = next(model.parameters()).device
    pending: dict[int, list[torch.Tensor]] = {}
    done: list[str] = []
    failures: list[dict[str, str]] = []
    clips_total = 0
    by_index = {index: (vid, path) for index, vid, path in todo}

    def fail(vid: str, path: Path, reason: str) -> None:
        failure = {'video_id': vid, 'path': str(path), 'reason': reason}
        listed = ''
        if vid in lines:
            failure['line'] = lines[vid]
            listed = f', {lines[vid]}'
        failures.append(failure)
        progress.write(f'extract_features: skipping {vid} ({path}{listed}): {reason}')
        progress.video_done()

    if not todo:
        return done, failures, 0
    for item in clip_batches(todo, cfg, pin_memory=device.type == 'cuda'):
        index = item['video']
        vid, path = by_index[index]
        if 'error' in item:
            pending.pop(index, None)
            fail(vid, path, item['error'])
            continue
        # The features stay on the model's device until the video ends: a copy to the host per batch would make
        # the host wait for every forward, so that it could not queue the next batch meanwhile.
        start = time.perf_counter()
        feats = forward_clips(model, item['clips'], cfg.dtype)
        model_s = time.perf_counter() - start  # the forward's time on the CPU (asynchronous on a GPU)
        pending.setdefault(index, []).append(feats)
        clips_total += len(feats)
        progress.add_clips(len(feats), shape=len(feats))
        if setup is not None:
            setup.after_batch(len(feats), item['decode_s'], model_s)
        if item['last']:
            rows = torch.cat(pending.pop(index)).cpu().numpy()  # one copy (and wait) per video
            peak = float(np.abs(rows).max(initial=0.0)) if cfg.store_dtype == 'float16' else 0.0
            if peak > _FLOAT16_MAX:
                # a failed video now, rather than an error when the store is built at the end of the run
                fail(vid, path, f'features up to {peak:.4g} overflow float16 (max {_FLOAT16_MAX:.0f}); extract it '
                                'with --store-dtype fp32')
                continue
            try:
                write_part(parts, vid, rows, item['meta'])
            except OSError as e:
                raise _write_failed(e, parts) from e
            if item['meta'].variable_frame_rate:
                progress.write(f'extract_features: {vid} ({path}) has a variable frame rate: its rows are placed '
                               'by the container timestamps (centre_times), not by frame / fps')
            done.append(vid)
            progress.video_done()
    return done, failures, clips_total



def extract_to_store(source: str | os.PathLike | Sequence[tuple[str, Path]], out: str | os.PathLike,
                     cfg: ExtractConfig, *, overwrite: bool = False, progress: bool = True,
                     wait_lock: bool = False, recursive: bool = False, id_from: IdFrom = 'stem',
                     announce: Callable[[str], None] | None = None) -> ExtractResult:
    """Extract the features of every video of ``source`` into the store ``out`` (resumable, crash-safe, and
    distributed under ``torchrun``: see the module docstring).

    Args:
        source: a video file, a folder of videos, a text file of paths (:func:`~.inputs.find_videos`), or
            ``(video_id, path)`` pairs.
        out: the HDF5 store to write or append to.
        cfg: model, windows, preprocessing and execution settings.
        overwrite: replace ``out`` (and discard leftovers of interrupted runs with other settings) instead of
            appending to it.
        progress: show the progress bar (rank 0).
        wait_lock: when another run holds ``out``'s lock, wait for it instead of stopping.
        recursive: search the sub-folders of a folder ``source`` too.
        id_from: ``'stem'`` (the file name up to the first '.') or ``'relpath'`` (the path relative to the folder,
            without the suffix: ``a/x.mp4`` -> ``a/x``).
        announce: called on rank 0 with a short block of text (model, checkpoint, windows, preprocessing, dtypes,
            videos to do) once the store has accepted the run's settings, before the model is built.

    Returns:
        :class:`ExtractResult`; videos that could not be decoded are in ``failed`` (and ``OUT.failures.json``), the
        others are extracted.

    Raises:
        ExtractError: ``out`` (or a leftover shard/part folder) was made with different settings, or a bad input.
        StoreLockedError: another run holds ``out`` (rank 0 holds its lock for the whole run; ``--wait-lock``).
    """
    out = Path(out)
    device = _resolve_device(cfg.device, int(os.environ.get('LOCAL_RANK', '0')))
    dist = _Dist(device)
    try:
        with contextlib.ExitStack() as lock:
            return _run(source, out, cfg, overwrite, progress, dist, device, (lock, wait_lock),
                        dict(recursive=recursive, id_from=id_from), announce)
    finally:
        dist.close()


def _run(source: str | os.PathLike | Sequence[tuple[str, Path]], out: Path, cfg: ExtractConfig, overwrite: bool,
         progress: bool, dist: _Dist, device: torch.device, lock: tuple[contextlib.ExitStack, bool],
         find: dict[str, Any], announce: Callable[[str], None] | None = None) -> ExtractResult:
    if isinstance(source, (str, os.PathLike)):
        found = find_videos(source, **find)
        videos = [(v.video_id, v.path) for v in found]
        lines = {v.video_id: v.line for v in found if v.line is not None}
    else:
        videos, lines = sorted((str(v), Path(p)) for v, p in source), {}
    if cfg.keyframe_clips is not None:  # featmaps: the videos that have keyframes, and every one of them
        wanted = cfg.keyframe_clips.keyframes
        missing = sorted(set(wanted) - {vid for vid, _ in videos})
        if missing:
            raise ExtractError(f'{len(missing)} videos of --keyframes are not in {source}: '
                               f'{", ".join(missing[:5])}{", ..." if len(missing) > 5 else ""}')
        videos = [(vid, path) for vid, path in videos if vid in wanted]
    if cfg.batch_size is None:
        cfg = dataclasses.replace(cfg, batch_size=default_batch_size(device))
    info = make_store_info(cfg, checkpoint_id(cfg.checkpoint, cfg.seed), device)
    out.parent.mkdir(parents=True, exist_ok=True)
    # 1. rank 0 takes the store's lock (held until the end of the run), checks the leftovers of earlier runs and
    # collects the complete ids; everyone gets the verdict.
    use_base, done = _agree_on_leftovers(out, info, overwrite, dist, lock)
    parts = _parts_dir(out, dist.rank)
    _open_parts(parts, info)
    # 2. this rank's share (sorted index modulo world size), minus what is complete.
    todo = [(i, vid, path) for i, (vid, path) in enumerate(videos) if i % dist.world == dist.rank and vid not in done]
    if announce is not None and dist.rank == 0:
        complete = sum(vid in done for vid, _ in videos)
        announce('\n'.join([f'extract_features: {out} on {device.type}' + (f', {dist.world} processes'
                                                                             if dist.world > 1 else ''),
                             *(f'  {line}' for line in cfg.summary()),
                             f'  videos      {len(videos)}, {complete} of them already complete']))
    extracted, failures, clips, speed = _extract_todo(todo, cfg, device, parts, progress and dist.rank == 0, lines)
    # 3. parts -> shard (or straight into OUT in a single process), then rank 0 merges.
    held: list[str] = []  # the ids in this rank's shard, which rank 0 must find
    try:
        if dist.world == 1:
            _fold_parts(parts, out, info, base=out if use_base else None)
        else:
            shard = _shard_path(out, dist.rank)
            _fold_parts(parts, shard, info, base=shard if shard.exists() else None)
            with FeatureStore.open(shard) as store:
                held = store.ids()
    except OSError as e:
        raise _write_failed(e, parts) from e
    gathered = dist.gather((extracted, failures, clips, held))
    dist.barrier()  # every shard is complete
    _merge_on_rank0(out, info, dist, use_base, [g[3] for g in gathered])

    result = ExtractResult(out=out, **speed)
    for ext, fail, n, _ in gathered:
        result.extracted += ext
        result.failed += fail
        result.num_clips += n
    result.extracted.sort()
    result.failed.sort(key=lambda f: f['video_id'])
    result.skipped = sorted(vid for vid, _ in videos if vid in done)
    if dist.rank == 0 and result.extracted:
        with FeatureStore.open(out) as store:
            result.variable_frame_rate = [v for v in result.extracted if store.meta(v).variable_frame_rate]
    if dist.rank == 0:
        failures_path = out.with_name(out.name + '.failures.json')
        if result.failed:
            write_json_atomic(failures_path, result.failed, indent=1, sort_keys=True)
        else:
            failures_path.unlink(missing_ok=True)
    return result


def _write_failed(e: OSError, parts: Path) -> ExtractError:
    """What a failed write (a full disk, a quota, a read-only folder) means for the user: which file, why, and that
    a rerun continues where this run stopped (docs/feature_caching.md#crash-safety)."""
    reason = e.strerror or str(e)
    where = f'writing {e.filename}' if e.filename else f'writing into {parts.parent}'
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        todo = f'Free space on the file system of {Path(e.filename or parts).parent} (or raise the quota)'
    else:
        todo = 'Fix the cause'
    return ExtractError(f'{where} failed: {reason}. {todo}, then rerun the same command: the videos finished so far '
                        f'are kept (part files in {parts}) and are not extracted again; no store file was left '
                        'half-written')


def _agree_on_leftovers(out: Path, info: StoreInfo, overwrite: bool, dist: _Dist,
                        lock: tuple[contextlib.ExitStack, bool]) -> tuple[bool, set[str]]:
    """Rank 0 takes ``out``'s lock into ``lock[0]`` (waiting if ``lock[1]``) and runs :func:`_prepare`; its verdict
    (or its error) reaches every rank."""
    verdict: tuple[BaseException | None, bool, list[str]] = (None, False, [])
    if dist.rank == 0:
        try:
            lock[0].enter_context(store_lock(out, wait=lock[1]))
            use_base, done = _prepare(out, info, overwrite)
            verdict = (None, use_base, done)
        except (ExtractError, FeatureStoreError) as e:
            verdict = (e, False, [])
    error, use_base, done = dist.broadcast(verdict)
    if error is not None:
        raise error
    return use_base, set(done)


def _extract_todo(todo: Sequence[tuple[int, str, Path]], cfg: ExtractConfig, device: torch.device, parts: Path,
                  progress: bool, lines: dict[str, str]) -> tuple[list[str], list[dict[str, str]], int, dict]:
    """Build the model and run it over ``todo`` (:func:`_extract_share`); also returns its speed (the
    :class:`ExtractResult` fields ``seconds``, ``warmup_seconds``, ``warmup_clips``, ``clips_per_s``,
    ``model_threads``, ``decode_share``, ``compiled``)."""
    if cfg.num_workers is None:
        cfg = dataclasses.replace(cfg, num_workers=default_num_workers(device))
    model = cfg.build_model().to(device)
    bar = Progress(len(todo), enabled=progress)
    start, threads = time.perf_counter(), torch.get_num_threads()
    try:
        setup = ModelSetup(model, cfg, device, bar)  # sets the CPU threads (restored below) and compiles
        if cfg.keyframe_clips is None:
            extracted, failures, clips = _extract_share(model, todo, cfg, parts, bar, lines, setup)
        else:
            extracted, failures, clips = extract_featmap_share(model, todo, cfg, parts, bar, lines)
        plan, compiled = setup.plan, setup.compiled
    finally:
        bar.close()
        torch.set_num_threads(threads)
    return extracted, failures, clips, dict(seconds=time.perf_counter() - start, warmup_seconds=bar.split.warmup_s,
                                            warmup_clips=bar.split.warmup_items, clips_per_s=bar.split.steady_rate,
                                            model_threads=plan.threads if plan else None,
                                            decode_share=plan.share if plan else None, compiled=compiled)


def _merge_on_rank0(out: Path, info: StoreInfo, dist: _Dist, use_base: bool, held: Sequence[Sequence[str]]) -> None:
    """Rank 0 merges (:func:`_merge`); a failure is raised on every rank."""
    merge_error = None
    if dist.rank == 0:
        try:
            _merge(out, info, dist.world, use_base, held)
        except ExtractError as e:
            merge_error = str(e)
        except (FeatureStoreError, OSError) as e:
            merge_error = f'merging the shards into {out} failed: {e}'
    merge_error = dist.broadcast(merge_error)
    if merge_error is not None:
        raise ExtractError(merge_error)


def _merge(out: Path, info: StoreInfo, world: int, use_base: bool, held: Sequence[Sequence[str]] = ()) -> None:
    """Rank 0: fold stale part folders into their shards, merge all shards (and ``out``) into ``out``, delete them
    and what killed builds of them left. ``held``: the ids in each rank's shard, by rank; when the shards rank 0
    finds lack some, nothing is written (:func:`check_merged_ids`)."""
    for rank, folder in _ranked(out, '.parts').items():  # left by an earlier run with more processes
        shard = _shard_path(out, rank)
        _fold_parts(folder, shard, info, base=shard if shard.exists() else None)
    shards = list(_ranked(out, '').values())
    # This run's shards first: merge_stores writes the first input's provenance, which is this run's. A new list:
    # ``out`` joins the sources, not the shards deleted below.
    sources = [*shards] if world > 1 else [out, *shards]
    if world > 1 and use_base and out.exists():
        sources.append(out)
    if world > 1:
        found: set[str] = set()
        for source in sources:
            with FeatureStore.open(source) as store:
                found.update(store.ids())
        check_merged_ids(found, held, out)
    if shards:
        merge_stores(sources, out)
    # Every shard is in ``out``: delete them, with what killed builds of a shard left (its temporary and lock file;
    # e.g. of rank 0's shard when a single process resumes a torchrun run, and never builds that shard).
    for rank in sorted({*_ranked(out, ''), *_ranked(out, '.lock')}):
        shard = _shard_path(out, rank)
        with store_lock(shard):
            for path in [shard, *leftover_temporaries(shard)]:
                path.unlink(missing_ok=True)


def check_merged_ids(found: set[str], held: Sequence[Sequence[str]], out: Path) -> None:
    """Raise :class:`ExtractError` unless ``found`` (the ids in the shards and the store rank 0 merges) covers
    ``held[r]`` (the ids in rank r's shard, as rank r saw it) for every rank r.

    Rank 0 finds the shards by listing ``out``'s folder; a rank on another machine that writes to a local disk of
    its own leaves its shard where rank 0 cannot see it, and the store would silently lack its videos.
    """
    missing = {rank: sorted(set(ids) - found) for rank, ids in enumerate(held)}
    missing = {rank: ids for rank, ids in missing.items() if ids}
    if not missing:
        return
    listed = '; '.join(f'rank {rank} ({_shard_path(out, rank).name}): {len(ids)} videos, '
                       + ', '.join(ids[:5]) + (', ...' if len(ids) > 5 else '') for rank, ids in missing.items())
    raise ExtractError(
        f'rank 0 cannot see the videos of other ranks in {out.parent} ({listed}): OUT is probably not on a file '
        'system shared by every rank (a node-local disk in a multi-node run). The store was not written; the '
        'shards are kept, so that nothing is extracted again: copy the missing shards beside OUT and rerun, or '
        'rerun with --out on a shared file system')
