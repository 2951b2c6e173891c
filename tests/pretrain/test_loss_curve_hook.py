"""The loss-curve hook (``tasks/pretrain/hooks.py``) reads the losses from the device in batches: one average over
the processes and one copy to the host per drawing, epoch end or by-iteration checkpoint, never per step; the curve
is the per-iteration losses exactly."""
from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip('mmaction', reason='tasks.pretrain registers its modules in mmaction2 registries')

from mmengine.hooks import CheckpointHook  # noqa: E402

import tasks.pretrain.hooks as hooks_module  # noqa: E402
from tasks.pretrain import PretrainLossCurveHook  # noqa: E402
from tests.host_sync_kit import SyncOps  # noqa: E402

LOSSES = torch.tensor([2.0, 1.7, 1.5, 1.3, 1.25, 1.1, 1.05]).tolist()  # iterations 1..7, float32 values


def _runner(tmp_path, hooks=()):
    return SimpleNamespace(work_dir=str(tmp_path), epoch=0, iter=0, max_iters=len(LOSSES), experiment_name='unit',
                           logger=logging.getLogger('loss-curve-test'), hooks=list(hooks),
                           optim_wrapper=SimpleNamespace(get_lr=lambda: {'lr': [0.5]}))


def _count_reductions(monkeypatch) -> list[int]:
    sizes = []
    reduce = hooks_module.all_reduce

    def counting(data, op='sum', group=None):
        sizes.append(data.numel())
        return reduce(data, op=op, group=group)
    monkeypatch.setattr(hooks_module, 'all_reduce', counting)
    return sizes


def test_losses_are_read_at_drawings_only(tmp_path, monkeypatch):
    """interval 3 over 7 iterations: reductions of 3 and 3 losses at iterations 3 and 6, 1 at the epoch end; no
    per-step read of a loss; the curve holds every loss bit for bit."""
    sizes = _count_reductions(monkeypatch)
    hook = PretrainLossCurveHook(interval=3)
    runner = _runner(tmp_path)
    hook.before_train(runner)
    losses = [torch.tensor(v, dtype=torch.float32) * 1.0001 for v in LOSSES]  # values that are not round floats
    with SyncOps() as sync:
        for it, loss in enumerate(losses):
            runner.iter = it
            hook.after_train_iter(runner, it, {}, dict(loss=loss))
            assert len(hook.iters) == 3 * ((it + 1) // 3)  # flushed at the drawings only
        hook.after_train_epoch(runner)
    assert sync.ops == []  # no .item() / float(tensor) per step
    assert sizes == [3, 3, 1]
    assert hook.iters == list(range(1, 8)) and hook.lrs == [0.5] * 7
    assert hook.losses == [float(v) for v in losses]


def test_a_by_iteration_checkpoint_holds_the_losses_up_to_its_iteration(tmp_path, monkeypatch):
    """A CheckpointHook saving every 2 iterations (and at the last): the hook flushes before each save, so the
    checkpoint of iteration k holds the curve up to k; a resumed run keeps exactly those points."""
    sizes = _count_reductions(monkeypatch)
    hook = PretrainLossCurveHook(interval=100)
    runner = _runner(tmp_path, [CheckpointHook(interval=2, by_epoch=False, save_last=True)])
    hook.before_train(runner)
    saved = {}
    for it, value in enumerate(LOSSES):
        runner.iter = it
        hook.after_train_iter(runner, it, {}, dict(loss=torch.tensor(value)))
        if (it + 1) % 2 == 0 or it + 1 == len(LOSSES):  # what CheckpointHook.after_train_iter would save
            saved[it + 1] = {}
            hook.before_save_checkpoint(runner, saved[it + 1])
    assert sizes == [2, 2, 2, 1]
    assert saved[4]['loss_curve'] == dict(iter=[1, 2, 3, 4], loss=LOSSES[:4], lr=[0.5] * 4)
    assert saved[7]['loss_curve']['iter'] == list(range(1, 8)) and saved[7]['loss_curve']['loss'] == LOSSES
    restored = PretrainLossCurveHook()
    restored.after_load_checkpoint(runner, saved[4])
    runner.iter = 4
    restored.before_train(runner)
    assert (restored.iters, restored.losses) == ([1, 2, 3, 4], LOSSES[:4])
