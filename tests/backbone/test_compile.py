"""``backbone.compile.compile_backbone`` on the tiny ViT (``vit_test``) and pre-trainer, and ``backbone.timing``.

* compiled vs eager in float32: ``forward_features`` and ``forward`` within 1e-5 of the eager model's, with a
  compiled graph really made (dynamo's counters), every block compiled in place and the state-dict keys unchanged;
* the pre-trainer: the decoder's blocks are compiled too (encoder depth + decoder depth);
* the fallback: with the probe saying "unavailable", nothing is compiled (0), one line names the reason, and the
  model's output is the eager one;
* a module without blocks: 0, silently;
* the timer: the first batch of each shape (warm-up) apart from the rest.
"""
from __future__ import annotations

import logging

import pytest
import torch
import torch.nn as nn

import backbone.compile as compile_module
from backbone.compile import compile_backbone, compile_unavailable_reason
from backbone.timing import ForwardTimer


@pytest.fixture(scope='module')
def compiler():
    """Skip where torch.compile cannot run on the CPU here, with the probe's reason."""
    reason = compile_unavailable_reason('cpu')
    if reason is not None:
        pytest.skip(f'torch.compile is not available on the CPU here: {reason}')


def blocks_of(model: nn.Module) -> list[nn.Module]:
    from backbone.videomaev2 import Block

    return [m for m in model.modules() if isinstance(m, Block)]


def test_compiled_vit_equals_eager(compiler, tiny_vit, one_thread):
    from torch._dynamo.utils import counters

    model = tiny_vit(num_classes=5)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        features, logits = model.forward_features(x), model(x)
    keys = list(model.state_dict())
    torch._dynamo.reset()  # a graph cached by an earlier test would hide whether this one compiles
    counters.clear()
    assert compile_backbone(model) == 2  # vit_test: 2 blocks
    assert all(b._compiled_call_impl is not None for b in blocks_of(model))
    assert list(model.state_dict()) == keys  # in place: no `_orig_mod.` prefix
    with torch.no_grad():
        compiled_features, compiled_logits = model.forward_features(x), model(x)
    assert counters['stats']['unique_graphs'] >= 1  # the blocks ran through dynamo, not eager
    assert (compiled_features - features).abs().max().item() <= 1e-5
    assert (compiled_logits - logits).abs().max().item() <= 1e-5
    assert not torch.equal(features, torch.zeros_like(features))


def test_pretrainer_decoder_blocks_are_compiled(compiler):
    from backbone.pretrain import VideoMAEv2Pretrainer

    model = VideoMAEv2Pretrainer('vit_test', img_size=32, all_frames=4, decoder_depth=3)
    keys = list(model.state_dict())
    decoder = blocks_of(model.decoder)
    assert len(decoder) == 3
    assert compile_backbone(model) == len(blocks_of(model.encoder)) + 3 == 5
    assert all(b._compiled_call_impl is not None for b in decoder)
    assert list(model.state_dict()) == keys


def test_fallback_says_why_and_stays_eager(tiny_vit, monkeypatch, caplog):
    """Where the probe finds no working compiler: 0 blocks, one warning with the reason, the eager output."""
    reason = 'InvalidCxxCompiler: no working C++ compiler found (test)'
    monkeypatch.setattr(compile_module, 'compile_unavailable_reason', lambda device='cpu': reason)
    model = tiny_vit()
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        before = model.forward_features(x)
    with caplog.at_level(logging.WARNING, logger='backbone.compile'):
        assert compile_backbone(model) == 0
    assert [r.getMessage() for r in caplog.records] == [
        f'--compile: torch.compile is not available on cpu here ({reason}); running eager']
    assert all(b._compiled_call_impl is None for b in blocks_of(model))
    with torch.no_grad():
        assert torch.equal(model.forward_features(x), before)
    said = []
    assert compile_backbone(model, log=said.append) == 0 and len(said) == 1 and reason in said[0]


def test_a_module_without_blocks_compiles_nothing(monkeypatch):
    monkeypatch.setattr(compile_module, 'compile_unavailable_reason', lambda device='cpu': pytest.fail('probed'))
    said = []
    assert compile_backbone(nn.Sequential(nn.Linear(4, 4), nn.GELU()), log=said.append) == 0
    assert said == []


def test_timer_reports_the_warmup_apart(monkeypatch):
    """The first batch of each shape is warm-up (compilation), the others the steady state."""
    ticks = [0.0, 7.25, 10.0, 10.5, 11.0, 11.5, 12.0, 14.0]  # 7.25 s (shape 4), 0.5 s, 0.5 s, 2.0 s (shape 1)
    clock = iter(ticks)
    monkeypatch.setattr('backbone.timing.time.perf_counter', lambda: next(clock))
    timer = ForwardTimer()
    assert timer.summary() == 'no batch run'
    with timer.batch('cpu', shape=4):
        pass
    assert timer.summary(compiled=True) == 'compile + first batch 7.25 s'
    for shape in (4, 4, 1):
        with timer.batch('cpu', shape=shape):
            pass
    assert (timer.warmup_s, timer.steady_s, timer.steady_batches) == (9.25, 1.0, 2)
    assert timer.summary(compiled=True) == ('compile + first batches of 2 shapes 9.25 s, then 2 batches in 1.00 s '
                                            '(0.500 s/batch)')
    assert timer.summary().startswith('first batches of 2 shapes 9.25 s')
