"""Fine-tuning augmentations: video RandAugment, cube random erasing, video Mixup/CutMix label arithmetic, test
views."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tasks.classification.transforms import (ClsTrainAugmentation, VideoMixup, VideoRandAugment, apply_random_erasing,
                                             multi_view_test, random_erasing_boxes)


def _frames(t: int = 4, h: int = 32, w: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (t, h, w, 3), generator=g, dtype=torch.uint8)


# --------------------------------------------------------------------------------------------------------------------
# RandAugment
# --------------------------------------------------------------------------------------------------------------------
def test_rand_augment_same_ops_for_every_frame():
    """Identical frames stay identical after augmentation (one draw per clip), and the clip does change."""
    ra = VideoRandAugment('rand-m7-n4-mstd0.5-inc1', crop_size=32)
    frame = _frames(1)
    clip = frame.repeat(6, 1, 1, 1)
    changed = 0
    for seed in range(6):
        out = ra(clip, np.random.default_rng(seed))
        assert out.shape == clip.shape and out.dtype == torch.uint8
        assert all(torch.equal(out[0], out[i]) for i in range(1, 6))
        changed += not torch.equal(out, clip)
    assert changed >= 4  # 4 ops at probability 0.5 each: a clip is left untouched with probability 1/16


def test_rand_augment_matches_timm_ops_applied_per_frame():
    """Applying the drawn (op, args) pairs of timm frame by frame by hand gives the same clip."""
    from PIL import Image

    ra = VideoRandAugment('rand-m7-n4-mstd0.5-inc1', crop_size=32)
    clip = _frames(3)
    out = ra(clip, np.random.default_rng(5))
    ops = ra.sample(np.random.default_rng(5))
    expected = []
    for frame in clip.numpy():
        image = Image.fromarray(frame)
        for op, args in ops:
            image = op.aug_fn(image, *args, **op.kwargs)
        expected.append(np.asarray(image))
    assert np.array_equal(out.numpy(), np.stack(expected))


def test_rand_augment_magnitudes_follow_timm_levels():
    """With no magnitude noise and every op applied, a Rotate at m9 turns by +-27 degrees (timm: level / 10 * 30)
    and n ops are drawn."""
    ra = VideoRandAugment('rand-m9-n3-mstd0-p1.0', crop_size=32)
    rotations = []
    for seed in range(200):
        ops = ra.sample(np.random.default_rng(seed))
        assert len(ops) == 3
        rotations += [args[0] for op, args in ops if op.name == 'Rotate']
    assert rotations and all(abs(abs(r) - 27.0) < 1e-9 for r in rotations)
    assert {np.sign(r) for r in rotations} == {-1.0, 1.0}  # timm negates at random


def test_rand_augment_is_a_function_of_its_generator():
    ra = VideoRandAugment(crop_size=32)
    clip = _frames(4)
    a = ra(clip, np.random.default_rng(3))
    b = ra(clip, np.random.default_rng(3))
    assert torch.equal(a, b)


# --------------------------------------------------------------------------------------------------------------------
# random erasing
# --------------------------------------------------------------------------------------------------------------------
def test_erasing_boxes_follow_timm_ranges():
    h, w = 48, 64
    for seed in range(300):
        boxes = random_erasing_boxes(h, w, np.random.default_rng(seed), probability=1.0)
        assert len(boxes) == 1
        top, left, bh, bw = boxes[0]
        assert 0 <= top and top + bh <= h and 0 <= left and left + bw <= w
        assert bh < h and bw < w
        # area in [0.02, 1/3] of the frame and aspect in [0.3, 1/0.3], up to the rounding of h and w
        area = bh * bw / (h * w)
        assert 0.02 * 0.7 <= area <= 1 / 3 * 1.3
        assert 0.3 * 0.7 <= bh / bw <= 1 / 0.3 * 1.3
    assert random_erasing_boxes(h, w, np.random.default_rng(0), probability=0.0) == []


def test_erasing_probability_is_the_first_draw():
    # timm's RandomErasing: a clip is erased unless its first uniform draw exceeds the probability.
    for seed in range(200):
        first = np.random.default_rng(seed).random()
        erased = random_erasing_boxes(32, 32, np.random.default_rng(seed), probability=0.25)
        assert bool(erased) == (first <= 0.25), seed


def test_apply_erasing_is_one_cube_with_fresh_noise_per_frame():
    clips = torch.zeros(2, 3, 4, 16, 16)
    boxes = torch.tensor([[[2, 3, 5, 6]], [[0, 0, 0, 0]]])  # clip 1: padding row, not erased
    apply_random_erasing(clips, boxes, 'pixel', torch.Generator().manual_seed(0))
    inside = clips[0, :, :, 2:7, 3:9]
    assert (inside != 0).all()
    outside = clips[0].clone()
    outside[:, :, 2:7, 3:9] = 0
    assert (outside == 0).all() and (clips[1] == 0).all()
    assert not torch.equal(inside[:, 0], inside[:, 1])  # new noise in every frame, as timm's per-frame _get_pixels
    const = torch.ones(1, 3, 2, 8, 8)
    apply_random_erasing(const, torch.tensor([[[1, 1, 2, 2]]]), 'const')
    assert const[0, :, :, 1:3, 1:3].abs().sum() == 0 and const.sum() == 3 * 2 * 64 - 3 * 2 * 4


@pytest.mark.parametrize('mode', ['pixel', 'rand', 'const'])
def test_apply_erasing_reads_the_boxes_once_and_fills_them_in_order(mode):
    """Several boxes per clip with padding rows in between: each real box gets the noise of the next draws in (clip,
    box) order, as a per-box loop over the same generator gives; and no operation reads the boxes value by value
    (on a GPU each would wait for the device)."""
    from tests.host_sync_kit import SyncOps

    boxes = torch.tensor([[[2, 3, 5, 6], [0, 0, 0, 0], [8, 1, 3, 4]],
                          [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
                          [[0, 0, 0, 0], [1, 9, 6, 7], [0, 0, 0, 0]]])
    clips = torch.randn(3, 3, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    expected = clips.clone()
    gen = torch.Generator().manual_seed(0)
    for n, k in [(0, 0), (0, 2), (2, 1)]:
        top, left, h, w = boxes[n, k].tolist()
        size = {'pixel': (h, w), 'rand': (1, 1)}.get(mode)
        expected[n, :, :, top:top + h, left:left + w] = 0 if size is None else torch.randn(3, 4, *size, generator=gen)
    with SyncOps() as sync:
        apply_random_erasing(clips, boxes, mode, torch.Generator().manual_seed(0))
    assert sync.ops == []
    assert torch.equal(clips, expected)


@pytest.mark.cuda
def test_apply_erasing_on_cuda_clips_with_host_boxes_does_not_sync():
    clips = torch.zeros(2, 3, 4, 16, 16, device='cuda')
    boxes = torch.tensor([[[2, 3, 5, 6]], [[0, 0, 0, 0]]])
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        apply_random_erasing(clips, boxes, 'pixel')
    finally:
        torch.cuda.set_sync_debug_mode('default')
    assert (clips[0, :, :, 2:7, 3:9] != 0).all() and clips[1].abs().sum() == 0


# --------------------------------------------------------------------------------------------------------------------
# Mixup / CutMix
# --------------------------------------------------------------------------------------------------------------------
def test_mixup_label_arithmetic():
    """mixup: x = lam x + (1 - lam) x.flip(0); target = lam * smooth(y) + (1 - lam) * smooth(y.flip(0)) with
    smooth(one-hot) = 0.9 one-hot + 0.1 / K (timm mixup_target), K = 5."""
    mix = VideoMixup(num_classes=5, mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.1)
    x = torch.randn(4, 3, 2, 8, 8)
    original = x.clone()
    labels = torch.tensor([0, 1, 2, 3])
    np.random.seed(0)
    out, target, lam = mix(x, labels, return_lam=True)
    assert 0.0 < lam < 1.0
    torch.testing.assert_close(out, lam * original + (1 - lam) * original.flip(0))
    on, off = 0.9 + 0.1 / 5, 0.1 / 5  # 0.92, 0.02
    expected = torch.full((4, 5), off)
    expected[torch.arange(4), labels] = on
    expected = lam * expected + (1 - lam) * expected.flip(0)
    torch.testing.assert_close(target, expected.float())
    # row 0: class 0 gets lam * 0.92 + (1 - lam) * 0.02, class 3 (its partner's) (1 - lam) * 0.92 + lam * 0.02
    assert math.isclose(float(target[0, 0]), lam * on + (1 - lam) * off, rel_tol=1e-5)
    assert math.isclose(float(target[0, 3]), (1 - lam) * on + lam * off, rel_tol=1e-5)
    torch.testing.assert_close(target.sum(1), torch.ones(4))


def test_cutmix_box_is_the_same_for_every_frame_and_lam_is_its_area():
    mix = VideoMixup(num_classes=4, mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0)
    x = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1, 1).expand(4, 3, 5, 20, 24).contiguous()
    labels = torch.tensor([0, 1, 2, 3])
    for seed in range(10):
        np.random.seed(seed)
        out, target, lam = mix(x.clone(), labels, return_lam=True)
        changed = out[0] != 0  # clip 0 receives clip 3's pixels inside the box
        box = changed[0, 0]
        assert (changed == box).all()  # the same box in every channel and frame
        rows, cols = box.any(1).nonzero(), box.any(0).nonzero()
        if len(rows):
            h = int(rows.max() - rows.min() + 1)
            w = int(cols.max() - cols.min() + 1)
            assert int(box.sum()) == h * w  # a rectangle
            assert (out[0][changed] == 3).all()
        # timm's lambda correction: lam = 1 - box area / frame area; the targets mix one-hots by it
        assert math.isclose(lam, 1 - int(box.sum()) / (20 * 24), abs_tol=1e-6)
        expected = torch.eye(4) * lam + torch.eye(4).flip(0) * (1 - lam)
        torch.testing.assert_close(target, expected)


def test_mixup_needs_an_even_batch():
    with pytest.raises(ValueError, match='even batch'):
        VideoMixup(num_classes=3)(torch.zeros(3, 3, 2, 8, 8), torch.zeros(3, dtype=torch.long))


# --------------------------------------------------------------------------------------------------------------------
# views
# --------------------------------------------------------------------------------------------------------------------
def test_three_crop_test_views_cover_left_centre_right():
    """Frames whose value is the column index: crops of 32 from a 32x50 frame start at columns 0, 9, 18."""
    cols = torch.arange(50, dtype=torch.uint8).view(1, 1, 1, 50, 1).expand(2, 4, 32, 50, 3).contiguous()
    views = multi_view_test(cols, short_side=32, crop_size=32, num_crops=3)
    assert views.shape == (6, 3, 4, 32, 32) and views.dtype == torch.uint8
    assert [int(v[0, 0, 0, 0]) for v in views[:3]] == [0, 9, 18]  # int(i * (50 - 32) / 2)
    assert torch.equal(views[:3], views[3:])  # the two clips hold the same frames here
    centre = multi_view_test(cols, short_side=32, crop_size=32, num_crops=1)
    assert centre.shape == (2, 3, 4, 32, 32) and int(centre[0, 0, 0, 0, 0]) == 9  # round((50 - 32) / 2)


def test_train_view_shapes_and_no_flip_keeps_direction():
    """Without flip a left-to-right ramp stays increasing to the right (SSv2 and the synthetic classes need it)."""
    ramp = (torch.arange(48) * 5).to(torch.uint8).view(1, 1, 48, 1).expand(4, 40, 48, 3).contiguous()
    aug = ClsTrainAugmentation(input_size=32, rand_augment=None, flip=False, reprob=1.0)
    for seed in range(5):
        view = aug(ramp, torch.Generator().manual_seed(seed), np.random.default_rng(seed))
        assert view.clip.shape == (3, 4, 32, 32) and view.clip.dtype == torch.uint8
        row = view.clip[0, 0, 16].float()
        assert (row[1:] >= row[:-1]).all()
        assert len(view.erase_boxes) == 1
    # With flip on, the same seeds give the same crop, either as it is or mirrored left to right; both happen.
    plain = ClsTrainAugmentation(input_size=32, rand_augment=None, flip=False, reprob=0.0)
    aug = ClsTrainAugmentation(input_size=32, rand_augment=None, flip=True, reprob=0.0)
    outcomes = []
    for seed in range(40):
        kept = plain(ramp, torch.Generator().manual_seed(seed), np.random.default_rng(seed)).clip
        view = aug(ramp, torch.Generator().manual_seed(seed), np.random.default_rng(seed)).clip
        outcomes.append('kept' if torch.equal(view, kept) else 'mirrored')
        if outcomes[-1] == 'mirrored':
            assert torch.equal(view, kept.flip(-1)), seed
    assert set(outcomes) == {'kept', 'mirrored'}
