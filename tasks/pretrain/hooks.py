"""Training hook that makes a pre-training run visible: the loss curve as a picture, and the videos it skipped.

:class:`PretrainLossCurveHook` records, after every iteration, the loss **averaged over all processes** (the loss of
the global batch, so a 2-process run and a 1-process run with the same global batch draw the same curve) and the
learning rate, and writes to the work directory (main process only):

* ``loss_curve.png``: loss per iteration (raw and smoothed, log scale) above the learning rate;
* ``loss_curve.json``: ``{"iter": [...], "loss": [...], "lr": [...]}``;
* ``skipped_videos.txt``: every video that failed to decode, with the epoch and reason (only if one did).

The history is stored in checkpoints, so a resumed run continues the same curve.
"""
from __future__ import annotations

import os
import textwrap
from typing import Any

import torch
from mmengine.dist import all_gather_object, all_reduce, get_world_size, is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS

from tasks.data.files import atomic_path, write_json_atomic

__all__ = ['PretrainLossCurveHook', 'plot_loss_curve']


def plot_loss_curve(iters: list[int], losses: list[float], lrs: list[float], path: str, title: str = '') -> None:
    """Write the loss (top) and learning-rate (bottom) curves to a PNG with matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    # fixed margins: tight_layout would cost most of the drawing time
    fig, (ax_loss, ax_lr) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, gridspec_kw=dict(height_ratios=[3, 1]))
    fig.subplots_adjust(left=0.11, right=0.97, top=0.93, bottom=0.09, hspace=0.08)
    ax_loss.plot(iters, losses, color='tab:blue', alpha=0.35, linewidth=0.8, label='loss')
    if len(losses) >= 5:
        # moving average over ~2% of the run (at least 5 iterations) to show the trend through batch noise
        window = max(5, len(losses) // 50)
        kernel = np.ones(window) / window
        smooth = np.convolve(losses, kernel, mode='valid')
        ax_loss.plot(iters[window - 1:], smooth, color='tab:blue', linewidth=1.6, label=f'mean of {window}')
    if min(losses, default=1.0) > 0:
        ax_loss.set_yscale('log')  # MAE losses fall by factors, and early steps would flatten a linear plot
    ax_loss.set_ylabel('loss')
    ax_loss.grid(True, which='both', alpha=0.3)
    ax_loss.legend(loc='upper right')
    # a long experiment name would run off the figure: wrap it (the axes leave room for two lines)
    ax_loss.set_title('\n'.join(textwrap.wrap(title, 90)), fontsize=10 if len(title) <= 90 else 8)
    ax_lr.plot(iters, lrs, color='tab:orange')
    ax_lr.set_ylabel('lr')
    ax_lr.set_xlabel('iteration')
    ax_lr.grid(True, alpha=0.3)
    with atomic_path(path) as tmp:  # a reader never sees a half-written picture
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


@HOOKS.register_module()
class PretrainLossCurveHook(Hook):
    """Record the global-batch loss and learning rate every iteration; draw them every ``interval`` iterations.

    The losses wait on their device and are averaged over the processes in one ``all_reduce`` and read in one copy
    at each drawing, at the end of every epoch and before every by-iteration checkpoint, instead of a collective and
    a host sync per step. Every process flushes at the same iterations, so the collectives match.

    Args:
        interval: iterations between redraws of the PNG (it is also drawn at the end of every epoch and of training).
        filename: PNG name in the work directory; the JSON and skip list sit next to it.
    """

    # Before ParamSchedulerHook (LOW), so the recorded lr is the one this iteration used, and before CheckpointHook
    # (VERY_LOW), so a checkpoint saved after this iteration holds it.
    priority = 'NORMAL'

    def __init__(self, interval: int = 50, filename: str = 'loss_curve.png'):
        if interval < 1:
            raise ValueError(f'interval must be >= 1, got {interval}')
        self.interval = interval
        self.filename = filename
        self.iters: list[int] = []
        self.losses: list[float] = []
        self.lrs: list[float] = []
        self._epoch_failures: list[tuple[str, str]] = []
        self._drawn_at = -1  # iteration of the last drawing, to skip redrawing an unchanged curve
        # (iteration, this process's loss as a 0-d float32 tensor on its device, lr) not yet averaged
        self._pending: list[tuple[int, torch.Tensor, float]] = []
        # (interval, save_begin, save_last) of the by-iteration CheckpointHooks, set in before_train
        self._iter_checkpoints: list[tuple[int, int, bool]] = []

    # --- recording --------------------------------------------------------------------------------------------------
    def before_train(self, runner) -> None:
        # After a resume the history came back with the checkpoint; after a plain `load_from` (iteration 0) it must
        # not continue someone else's curve.
        keep = [i for i, it in enumerate(self.iters) if it <= runner.iter]
        self.iters = [self.iters[i] for i in keep]
        self.losses = [self.losses[i] for i in keep]
        self.lrs = [self.lrs[i] for i in keep]
        self._pending = []
        # A checkpoint saved after an iteration must hold that iteration's loss; saving runs on the main process
        # only (no collective possible there), so flush on every process just before.
        self._iter_checkpoints = [(h.interval, h.save_begin, h.save_last) for h in getattr(runner, 'hooks', [])
                                  if isinstance(h, CheckpointHook) and not h.by_epoch]

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: dict | None = None) -> None:
        if not outputs or 'loss' not in outputs:
            return
        loss = outputs['loss'].detach().float().clone().reshape(())
        self._pending.append((runner.iter + 1, loss, float(runner.optim_wrapper.get_lr()['lr'][0])))
        if isinstance(data_batch, dict):
            self._epoch_failures.extend(data_batch.get('data_samples', {}).get('failed', []))
        if any(self.every_n_train_iters(runner, interval, begin) or (last and self.is_last_train_iter(runner))
               for interval, begin, last in self._iter_checkpoints):
            self._flush()
        if self.every_n_train_iters(runner, self.interval):
            self._flush()
            self._draw(runner)

    def _flush(self) -> None:
        """Average the pending losses over the processes (one collective, one copy to the host) into the history.
        Called at the same iterations by every process."""
        if not self._pending:
            return
        iters, losses, lrs = zip(*self._pending)
        self._pending = []
        mean = torch.stack(losses)
        all_reduce(mean, op='mean')  # no-op in a single process
        self.iters.extend(iters)
        self.losses.extend(mean.tolist())
        self.lrs.extend(lrs)

    def after_train_epoch(self, runner) -> None:
        self._flush()
        failures = [f for part in all_gather_object(self._epoch_failures) for f in part]
        self._epoch_failures = []
        if failures:
            unique = dict(failures)  # path -> reason, one line per video
            runner.logger.warning(f'epoch {runner.epoch}: {len(unique)} video(s) failed to decode and were replaced '
                                  f'by others; see skipped_videos.txt in the work directory')
            if is_main_process():
                with open(os.path.join(runner.work_dir, 'skipped_videos.txt'), 'a', encoding='utf-8') as f:
                    for path, reason in unique.items():
                        f.write(f'epoch {runner.epoch}\t{path}\t{reason}\n')
        self._draw(runner)

    def after_train(self, runner) -> None:
        self._flush()
        self._draw(runner)

    # --- checkpoints ------------------------------------------------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._pending and get_world_size() == 1:
            self._flush()  # a save outside the known checkpoint schedule; one process needs no collective
        elif self._pending:
            last = self.iters[-1] if self.iters else 0
            runner.logger.warning(f'PretrainLossCurveHook: this checkpoint, saved outside the CheckpointHook schedule, '
                                  f'holds the loss curve up to iteration {last} only')
        checkpoint['loss_curve'] = dict(iter=list(self.iters), loss=list(self.losses), lr=list(self.lrs))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        curve = checkpoint.get('loss_curve')
        if curve:
            self.iters, self.losses, self.lrs = list(curve['iter']), list(curve['loss']), list(curve['lr'])

    # --- output -----------------------------------------------------------------------------------------------------
    def _draw(self, runner) -> None:
        if not is_main_process() or not self.iters or self.iters[-1] == self._drawn_at:
            return
        self._drawn_at = self.iters[-1]
        png = os.path.join(runner.work_dir, self.filename)
        stem = os.path.splitext(png)[0]
        write_json_atomic(f'{stem}.json', dict(iter=self.iters, loss=self.losses, lr=self.lrs), indent=None)
        title = (f'{runner.experiment_name}: loss {self.losses[0]:.4f} (iter {self.iters[0]}) -> '
                 f'{self.losses[-1]:.4f} (iter {self.iters[-1]})')
        plot_loss_curve(self.iters, self.losses, self.lrs, png, title=title)
