"""How many intra-op threads a CPU model gets next to its decoders: :func:`model_threads` decides from what decoding
and the model cost per clip, :class:`ThreadPlan` measures that over the first batches of a run and decides once, and
:class:`ModelSetup` applies it to the extraction's model, then compiles it (``--compile``).

The trade-off: the model's OpenMP threads wait for each other at every parallel region, so while a decoder holds a
core that a model thread needs, the whole model waits. With every core, a clip costs about ``W / cores + stall *
decode_s`` (``W``: the model's work in core-seconds); leaving the decoders their cores, ``W / (cores - decoders)``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .decode import num_cpus
from .progress import Progress
from .provenance import ExtractConfig

__all__ = ['DECODE_STALL', 'decode_share_max', 'model_threads', 'ThreadPlan', 'ModelSetup']

#: Model seconds lost per second of decoding when the model has every core. About 2 measured on a 2-core EPYC
#: (vit_small, 16-frame windows of a 320x240 H.264 video, decoding in a thread or in a process, at decoding shares of
#: 1 to 35 % of the model's time); 4 here, for threads that scale less than linearly (1.8x from 1 to 2) and noise.
DECODE_STALL = 4.0


def decode_share_max(cores: int, workers: int, stall: float = DECODE_STALL) -> float:
    """The largest ``decode_s / model_s`` at which :func:`model_threads` gives the model every core: where the
    stalls (``stall * decode_s``) cost less than the cores the decoders would keep (12.5 % on 2 cores, 1.6 % on 16
    with one decoder, at the default ``stall``). 0 when no core would be kept (one core)."""
    left = max(1, cores - max(workers, 1))
    return (1 - left / cores) / stall


def model_threads(cores: int, workers: int, decode_s: float, model_s: float, *, stall: float = DECODE_STALL) -> int:
    """Intra-op threads for a CPU model that runs beside ``workers`` decoders.

    Args:
        cores: CPU cores the run may use.
        workers: decoding processes; 0 is one background decoding thread (which needs a core as much).
        decode_s: decoding + preprocessing seconds per clip (all decoders together).
        model_s: model seconds per clip with the cores the decoders leave (``cores - max(workers, 1)``, at least 1).
        stall: model seconds lost per decoding second when the model has every core (:data:`DECODE_STALL`).

    Returns:
        ``cores`` when decoding is cheap (``decode_s <= decode_share_max(cores, workers) * model_s``), else the cores
        the decoders leave, at least 1.
    """
    if cores < 1:
        raise ValueError(f'cores must be >= 1, got {cores}')
    if model_s > 0 and decode_s <= decode_share_max(cores, workers, stall) * model_s:
        return cores
    return max(1, cores - max(workers, 1))


class ThreadPlan:
    """The model's threads over a run: ``cores - decoders`` while the first batches are timed (so that decoding is
    timed on a core of its own), then :func:`model_threads` of their per-clip times, once per run.

    Once only, because ``torch.compile`` fixes the thread count of the CPU loops it generates when it compiles them
    (:class:`ModelSetup` compiles after the decision), and because a decision that flipped with the noise of a shared
    machine would cost more than it gains.

    Args:
        cores: CPU cores the run may use.
        workers: decoding processes (0: one decoding thread); ``None``: nothing decodes beside the model (the model
            gets ``cap`` threads at once).
        cap: the most threads a measured decision gives (the process's threads at the start: ``OMP_NUM_THREADS``,
            one per process under ``torchrun``).
        fixed: threads asked for explicitly (``--model-threads``): used at once, not capped, nothing measured.
        skip: first batches not timed (allocations, kernel selection, decoders starting).
        measure: batches timed before deciding.
    """

    def __init__(self, cores: int, workers: int | None, cap: int, *, fixed: int | None = None, skip: int = 1,
                 measure: int = 2):
        self.cores, self.workers, self.cap = cores, workers, max(1, cap)
        self.skip, self.measure = skip, measure
        self.decode_s = self.model_s = 0.0
        self.clips = self.batches = 0
        self.share: float | None = None  # decoding / model seconds per clip, once measured
        self.reason = ''
        if fixed is not None:
            self.threads, self.decided, self.reason = fixed, True, f'{fixed} (--model-threads)'
        elif workers is None:
            self.threads, self.decided = self.cap, True
        else:
            self.threads, self.decided = min(self.cap, max(1, cores - max(workers, 1))), False

    def record(self, clips: int, decode_s: float, model_s: float) -> bool:
        """Account one batch of ``clips`` windows (decoding and model seconds for the whole batch); True when this
        batch completes the measurement and :attr:`threads` is now the decision."""
        if self.decided:
            return False
        self.batches += 1
        if self.batches <= self.skip:
            return False
        self.clips += clips
        self.decode_s += decode_s
        self.model_s += model_s
        if self.batches < self.skip + self.measure:
            return False
        decode, model = self.decode_s / self.clips, self.model_s / self.clips
        self.threads = min(self.cap, model_threads(self.cores, self.workers, decode, model))
        self.decided = True
        self.share = decode / model if model > 0 else float('inf')
        bound = decode_share_max(self.cores, self.workers)
        self.reason = (f'{self.threads} of {self.cores} cores: decoding takes {1000 * decode:.2f} ms a clip, '
                       f'{100 * self.share:.1f} % of the model\'s {1000 * model:.2f} ms (every core up to '
                       f'{100 * bound:.1f} % here; --model-threads N to choose)')
        return True


class ModelSetup:
    """The extraction model's intra-op threads on the CPU (:class:`ThreadPlan`; set here, restored by the caller)
    and ``--compile``, which waits for the threads' decision: Inductor fixes the thread count of the CPU loops it
    generates when it compiles them. ``after_batch`` is told each batch's clips, decoding and model seconds."""

    def __init__(self, model: nn.Module, cfg: ExtractConfig, device: torch.device, progress: Progress):
        self.model, self.cfg, self.progress = model, cfg, progress
        self.plan = None
        if device.type == 'cpu':
            # featmaps decode in this process, between forwards: nothing runs beside the model (workers None)
            workers = cfg.num_workers if cfg.keyframe_clips is None else None
            self.plan = ThreadPlan(num_cpus(), workers, cap=torch.get_num_threads(), fixed=cfg.model_threads)
            torch.set_num_threads(self.plan.threads)
        self.asked = False  # --compile acted on (compiled, or said why not)
        self.compiled = False  # blocks compiled
        if self.plan is None or self.plan.decided:
            self._compile()

    def after_batch(self, clips: int, decode_s: float, model_s: float) -> None:
        if self.plan is not None and self.plan.record(clips, decode_s, model_s):
            if self.plan.threads != torch.get_num_threads():  # said when it changes something (the summary tells)
                torch.set_num_threads(self.plan.threads)
                self.progress.write(f'extract_features: model threads: {self.plan.reason}')
            self._compile()

    def _compile(self) -> None:
        if self.cfg.compile and not self.asked:
            from backbone.compile import compile_backbone

            self.asked = True
            self.compiled = compile_backbone(self.model, log=self.progress.write) > 0
            if self.compiled:
                self.progress.split.rewarm()  # the next batches compile: warm-up, not steady state
