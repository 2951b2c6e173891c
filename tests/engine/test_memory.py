"""Per-recipe GPU memory estimates (tasks/engine/memory.py): the parameter and optimiser arithmetic by hand, the
activation formula against the bytes autograd actually keeps on the CPU, the recipes' checkpointing settings, and the
bf16 distillation teacher."""
from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from backbone import VideoMAEv2ViT
from tasks.engine.memory import (GiB, block_saved_bytes, default_recipes, optimizer_state_bytes, recipe_memory,
                                 saved_tensor_bytes, vit_activation_bytes)

REPO = Path(__file__).resolve().parents[2]
RECOGNITION = REPO / 'configs' / 'recognition' / 'videomaev2'


# --------------------------------------------------------------------------------------------------------------------
# parameters and optimiser state
# --------------------------------------------------------------------------------------------------------------------
def test_parameter_and_adamw_bytes_by_hand():
    # docs/backbone.md#sizes: ViT-B without head 86,227,200; a 400-way head adds 768 x 400 + 400 = 307,600.
    report = recipe_memory(RECOGNITION / 'vit-base-p16_videomaev2-hybrid-pt_16x4x1_kinetics-400.py')
    assert report.params == 86_227_200 + 307_600 == 86_534_800
    # fp32 weight + fp32 gradient + two fp32 AdamW moments = 16 bytes per parameter
    assert report.state == optimizer_state_bytes(86_534_800) == 1_384_556_800
    assert report.clips == 16 * 2  # 16 videos x 2 repeated-augmentation views per GPU
    # ViT-g (1,011,610,752 without head) with the K710 head: 1408 x 710 + 710 = 1,000,390 more; ~15.1 GiB of state
    giant = recipe_memory(RECOGNITION / 'vit-giant-p14_videomaev2-hybrid-pt_16x4x1_kinetics-710.py')
    assert giant.params == 1_011_610_752 + 1_000_390
    assert giant.state == 16 * 1_012_611_142 and round(giant.state / GiB, 1) == 15.1


def test_distillation_teacher_bytes():
    """The ViT-B distillation recipe holds its ViT-g K710 teacher in bf16: 2 bytes per parameter, no gradients."""
    report = recipe_memory(RECOGNITION / 'vit-base-p16_videomaev2-vit-g-dist_16x4x1_kinetics-710.py')
    assert report.teacher == 2 * (1_011_610_752 + 1_000_390)


# --------------------------------------------------------------------------------------------------------------------
# activations: the formula against what autograd keeps
# --------------------------------------------------------------------------------------------------------------------
class _LiveStorages(TorchDispatchMode):
    """Records every storage an op creates; :meth:`alive` sums those still referenced (after the forward pass: what
    the graph keeps for backward, including a checkpoint's block inputs, which saved-tensor hooks do not see)."""

    def __init__(self):
        super().__init__()
        self.refs: list[weakref.ref] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.refs.append(weakref.ref(t.untyped_storage()))
        return out

    def alive(self) -> dict[int, int]:
        gc.collect()
        return {s.data_ptr(): s.nbytes() for s in (r() for r in self.refs) if s is not None}


def _saved_storages(fn) -> dict[int, int]:
    seen = {}

    def pack(t):
        seen.setdefault(t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return seen, out


# Two tiny ViTs: 2 x 4 x 4 = 32 tokens, C 64, 4 heads, MLP x4; and 4 x 6 x 6 = 144 tokens, C 96, 3 heads, the
# ViT-g MLP ratio 48/11 (hidden 418), drop path on.
SIZES = [dict(arch='vit_test', img_size=64, all_frames=4, embed_dim=64, num_heads=4, depth=2),
         dict(arch='vit_test', img_size=96, all_frames=8, embed_dim=96, num_heads=3, depth=3, mlp_ratio=48 / 11,
              drop_path_rate=0.1)]


@pytest.mark.parametrize('size', SIZES, ids=['C64-N32', 'C96-N144'])
@pytest.mark.parametrize('with_cp', [False, True], ids=['no-cp', 'cp'])
def test_activation_estimate_matches_saved_tensors(size, with_cp):
    torch.manual_seed(0)
    vit = VideoMAEv2ViT(**size, num_classes=5, with_cp=with_cp).train()
    batch = 3
    clip = torch.randn(batch, 3, size['all_frames'], size['img_size'], size['img_size'])
    params = {t.untyped_storage().data_ptr() for t in [*vit.parameters(), *vit.buffers()]}
    live = _LiveStorages()
    with live:
        saved, logits = _saved_storages(lambda: vit(clip))
    kept = {**saved, **live.alive()}
    kept.pop(logits.untyped_storage().data_ptr())
    measured = sum(n for ptr, n in kept.items() if ptr not in params)
    if with_cp:
        # in backward each block is recomputed with its graph: one block's saved tensors on top of the kept inputs
        x = torch.randn(batch, vit.grid_size[0] * vit.grid_size[1] * vit.grid_size[2], vit.embed_dim,
                        requires_grad=True)
        measured += saved_tensor_bytes(lambda: vit.blocks[-1](x), vit.parameters())
    logits.sum().backward()
    estimate = batch * vit_activation_bytes(vit, vit.grid_size, 'fp32', with_cp)
    assert estimate == pytest.approx(measured, rel=0.15)
    # the formula is exact up to the two drop-path masks (B, 1, 1) per block
    assert abs(estimate - measured) <= 2 * 4 * batch * len(vit.blocks)


def test_bf16_activation_estimate_matches_cpu_autocast():
    """CPU autocast keeps bf16 LayerNorm inputs where CUDA keeps fp32 copies (``autocast_device``); the rest of the
    bf16 formula is the one the table uses. Under autocast the linear layers also keep bf16 weight copies."""
    size = SIZES[1]
    vit = VideoMAEv2ViT(**size, num_classes=5).train()
    clip = torch.randn(2, 3, size['all_frames'], size['img_size'], size['img_size'])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        measured = saved_tensor_bytes(lambda: vit(clip), vit.parameters())
    weights = sum(m.weight.numel() for m in vit.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv3d)))
    measured += clip.nbytes - 2 * weights  # the fp32 input is alive too; weight copies are counted per step
    estimate = 2 * vit_activation_bytes(vit, vit.grid_size, 'bf16', autocast_device='cpu')
    assert estimate == pytest.approx(measured, rel=0.01)


def test_block_formula_by_hand():
    # ViT-B block, 1568 tokens: 4 x (8 x 768 + 2 x 3072) bytes + 16 (two LayerNorms' mean, rstd) + 4 x 12 (lse)
    assert block_saved_bytes(768, 3072, 12) == 49_152 + 16 + 48
    # CUDA bf16: fp32 norm inputs 2 x 4C, bf16 qkv input, qkv, attention output, fc1 input 2 x 6C, MLP 2 x 2H
    assert block_saved_bytes(768, 3072, 12, 'bf16') == 8 * 768 + 2 * (6 * 768 + 2 * 3072) + 64


# --------------------------------------------------------------------------------------------------------------------
# the recipes
# --------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def reports():
    # The ActionFormer recipes (about 2 GiB, no ViT) are measured with a CPU forward pass of a few seconds each: left
    # to the command, to keep this test fast.
    return {p.stem: recipe_memory(p) for p in default_recipes(REPO) if 'localization' not in p.parts}


def test_every_recipe_fits_an_80gb_card_as_configured(reports):
    assert len(reports) >= 30 and not any('vit-test' in name for name in reports)
    too_big = {name: round(r.total() / GiB, 1) for name, r in reports.items() if not r.fits(80)}
    assert not too_big


def test_recipes_that_need_checkpointing_set_it(reports):
    """A recipe whose fp32 activations without checkpointing overflow an 80 GB card sets with_cp (and so does every
    ViT-g recipe, as the official ViT-g scripts pass --with_checkpoint)."""
    needs_cp = [name for name, r in reports.items() if not r.fits(80, 'fp32', False)]
    assert any('vit-giant' in name for name in needs_cp)  # the check is not empty
    for name in needs_cp + [n for n in reports if 'vit-giant' in n and 'actionformer' not in n]:
        assert reports[name].with_cp, f'{name} needs with_cp=True in its model settings'


# --------------------------------------------------------------------------------------------------------------------
# bf16 distillation teacher
# --------------------------------------------------------------------------------------------------------------------
def test_bf16_teacher_probabilities_match_fp32(tmp_path):
    from tasks.classification.model import VideoMAEv2Classifier

    tiny = dict(arch='vit_test', img_size=32, all_frames=4, num_classes=7)
    torch.manual_seed(0)
    source = VideoMAEv2ViT(**tiny, init_scale=1.0)  # a head of normal scale, so the probabilities differ
    path = tmp_path / 'teacher.pth'
    torch.save({'module': source.state_dict()}, path)
    x = torch.randn(4, 3, 4, 32, 32)
    probs = {}
    for dtype in ('float32', 'bfloat16'):
        model = VideoMAEv2Classifier(backbone=dict(tiny), distill=dict(
            teacher=dict(tiny, checkpoint=str(path), dtype=dtype), temperature=3.0))
        assert next(model._teacher.parameters()).dtype == getattr(torch, dtype)
        probs[dtype] = model._teacher_probs(x, {})
    assert probs['bfloat16'].dtype == torch.float32
    assert probs['float32'].std(-1).min() > 1e-3  # not uniform
    # bf16 keeps 8 mantissa bits: logits within ~1 %, probabilities at T = 3 within 5e-3
    torch.testing.assert_close(probs['bfloat16'], probs['float32'], atol=5e-3, rtol=0)
    with pytest.raises(ValueError, match='float32'):
        VideoMAEv2Classifier(backbone=dict(tiny), distill=dict(teacher=dict(tiny, checkpoint=str(path),
                                                                            dtype='float16')))


def test_command_prints_the_markdown_table(capsys):
    from tasks.engine.memory import main

    main(['--markdown', str(RECOGNITION / 'vit-base-p16_videomaev2-hybrid-pt_16x4x1_kinetics-400.py')])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith('| recipe | params |') and lines[1].startswith('|---|')
    # 86.5M parameters, 32 clips, 1.3 GiB of state; fp32 without checkpointing as configured
    assert lines[2].split(' | ')[1:4] == ['86.5M', '32', '1.3'] and '| fp32 |' in lines[2]
