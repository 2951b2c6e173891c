"""Clip transforms: shapes, and values checked on ramp images whose pixels encode their own position."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tasks.data.video import transforms as VT


def ramp(t: int = 2, h: int = 24, w: int = 40) -> torch.Tensor:
    """(T, H, W, 3) float: pixel (f, y, x, c) = 1000 f + 100 c + ... encoded so a crop's corner gives its position.

    Value = y * w + x + 10000 * f + 100000 * c, exact in float32 for these sizes.
    """
    f, y, x, c = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), torch.arange(3), indexing='ij')
    return (y * w + x + 10000 * f + 100000 * c).float()


def corner(crop: torch.Tensor, w: int) -> tuple[int, int]:
    """(top, left) of a (T, 3, h, w') crop of ``ramp``, read from its first pixel."""
    v = int(crop[0, 0, 0, 0])
    return v // w, v % w


# --------------------------------------------------------------------------------------------------------------------
# layouts
# --------------------------------------------------------------------------------------------------------------------

def test_layouts():
    x = torch.zeros(4, 10, 12, 3, dtype=torch.uint8)
    assert VT.to_tchw(x).shape == (4, 3, 10, 12)
    assert VT.to_tchw(VT.to_tchw(x)).shape == (4, 3, 10, 12)  # already channels-first: unchanged
    assert VT.to_cthw(x).shape == (3, 4, 10, 12) and VT.to_cthw(x).is_contiguous()
    with pytest.raises(ValueError, match='ambiguous'):
        VT.to_tchw(torch.zeros(4, 3, 10, 3))
    with pytest.raises(ValueError, match=r'\(T, H, W, 3\)'):
        VT.to_tchw(torch.zeros(4, 10, 12))


def test_to_cthw_moves_values():
    x = ramp(3, 4, 5)
    np.testing.assert_array_equal(VT.to_cthw(x).numpy(), x.numpy().transpose(3, 0, 1, 2))


# --------------------------------------------------------------------------------------------------------------------
# crops and flips
# --------------------------------------------------------------------------------------------------------------------

def test_center_crop():
    x = ramp(h=24, w=40)
    c = VT.center_crop(x, (10, 15))
    assert c.shape == (2, 3, 10, 15)
    assert corner(c, 40) == (7, 12)  # round(14 / 2), round(25 / 2) = round(12.5) = 12 (round half to even)
    np.testing.assert_array_equal(c.numpy(), x.permute(0, 3, 1, 2)[..., 7:17, 12:27].numpy())


def test_three_crop_landscape_and_portrait():
    x = ramp(h=24, w=45)
    views = VT.three_crop(x, 24)
    assert views.shape == (3, 2, 3, 24, 24)
    # offsets int(i * (45 - 24) / 2) = 0, 10, 21 along the width
    assert [corner(v, 45) for v in views] == [(0, 0), (0, 10), (0, 21)]
    p = ramp(h=40, w=20)
    assert [corner(v, 20) for v in VT.three_crop(p, 20)] == [(0, 0), (10, 0), (20, 0)]
    # short side larger than the crop: centred on it
    assert [corner(v, 45) for v in VT.three_crop(x, 20)][1] == (2, 12)


def test_random_crop_is_a_block_shared_by_all_frames():
    x = ramp(h=24, w=40)
    g = torch.Generator().manual_seed(0)
    corners = set()
    for _ in range(30):
        c = VT.random_crop(x, 8, generator=g)
        top, left = corner(c, 40)
        np.testing.assert_array_equal(c.numpy(), x.permute(0, 3, 1, 2)[..., top:top + 8, left:left + 8].numpy())
        assert 0 <= top <= 16 and 0 <= left <= 32
        corners.add((top, left))
    assert len(corners) > 10
    with pytest.raises(ValueError, match='larger'):
        VT.random_crop(x, 30)


def test_flips():
    x = ramp(h=4, w=6)
    np.testing.assert_array_equal(VT.hflip(x).numpy(), x.permute(0, 3, 1, 2).numpy()[..., ::-1])
    assert torch.equal(VT.random_hflip(x, p=0.0), VT.to_tchw(x))
    assert torch.equal(VT.random_hflip(x, p=1.0), VT.hflip(x))
    g = torch.Generator().manual_seed(0)
    flips = [bool(torch.equal(VT.random_hflip(x, generator=g), VT.hflip(x))) for _ in range(40)]
    assert 5 < sum(flips) < 35


# --------------------------------------------------------------------------------------------------------------------
# resizing
# --------------------------------------------------------------------------------------------------------------------

def test_resize_halving_is_a_2x2_mean():
    # bilinear, align_corners=False, exact factor 2: every output pixel samples the centre of a 2x2 block
    x = torch.randint(0, 256, (2, 8, 12, 3), dtype=torch.uint8)
    out = VT.resize(x, (4, 6))
    assert out.dtype == torch.float32 and out.shape == (2, 3, 4, 6)
    torch.testing.assert_close(out, F.avg_pool2d(VT.to_tchw(x).float(), 2))


@pytest.mark.parametrize('hw, size, expected', [((48, 64), 24, (24, 32)), ((64, 48), 24, (32, 24)),
                                                ((30, 50), 16, (16, 26))])
def test_short_side_resize_shapes(hw, size, expected):
    x = torch.full((2, *hw, 3), 77, dtype=torch.uint8)
    out = VT.short_side_resize(x, size)
    assert out.shape == (2, 3, *expected)
    # a constant image stays constant (bilinear weights sum to 1 up to float rounding)
    np.testing.assert_allclose(out.numpy(), 77.0, rtol=0, atol=1e-4)


def test_random_short_side_resize_range():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(1, 20, 30, 3, dtype=torch.uint8)
    shorts = {VT.random_short_side_resize(x, (8, 10), generator=g).shape[-2] for _ in range(40)}
    assert shorts == {8, 9, 10}


def test_random_resized_crop_without_resampling():
    # scale 1/4 with ratio 1 on 40x40 is a 20x20 crop; resized to 20 it is an exact block of the input
    x = ramp(h=40, w=40)
    g = torch.Generator().manual_seed(0)
    corners = set()
    for _ in range(20):
        c = VT.random_resized_crop(x, 20, scale=(0.25, 0.25), ratio=(1.0, 1.0), generator=g)
        top, left = corner(c, 40)
        np.testing.assert_array_equal(c.numpy(), x.permute(0, 3, 1, 2)[..., top:top + 20, left:left + 20].numpy())
        corners.add((top, left))
    assert len(corners) > 5


def test_random_resized_crop_params():
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        top, left, h, w = VT.random_resized_crop_params(120, 160, (0.08, 1.0), (3 / 4, 4 / 3), g)
        assert 0.08 * 120 * 160 * 0.9 <= h * w <= 120 * 160
        assert 3 / 4 - 0.05 <= w / h <= 4 / 3 + 0.05
        assert 0 <= top <= 120 - h and 0 <= left <= 160 - w
    # nothing fits: centre crop with the ratio clamped, w = 8, h = round(8 / 10) = 1
    assert VT.random_resized_crop_params(8, 8, (1.0, 1.0), (10.0, 10.0), g) == (3, 0, 1, 8)
    out = VT.random_resized_crop(torch.zeros(3, 30, 40, 3, dtype=torch.uint8), 16, generator=g)
    assert out.shape == (3, 3, 16, 16) and out.dtype == torch.float32


def test_multi_scale_crop_params():
    # 256x340 to 224: sides int(256 s) for s in (1, .875, .75, .66) = 256, 224, 192, 168; pairs |i - j| <= 1
    sides = [256, 224, 192, 168]
    pairs = {(sides[i], sides[j]) for i in range(4) for j in range(4) if abs(i - j) <= 1}
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(400):
        top, left, h, w = VT.multi_scale_crop_params(256, 340, (224, 224), generator=g)
        assert (h, w) in pairs
        hs, ws = (256 - h) // 4, (340 - w) // 4
        assert top in {0, hs, 2 * hs, 3 * hs, 4 * hs} and left in {0, ws, 2 * ws, 3 * ws, 4 * ws}
        seen.add((h, w))
    assert seen == pairs
    # 5 fixed positions without more_fix_crop: corners and centre
    pos = {VT.multi_scale_crop_params(100, 100, (50, 50), scales=(0.5,), more_fix_crop=False, generator=g)[:2]
           for _ in range(100)}
    assert pos == {(0, 0), (0, 48), (48, 0), (48, 48), (24, 24)}
    out = VT.multi_scale_crop(torch.zeros(2, 64, 80, 3, dtype=torch.uint8), 32, generator=g)
    assert out.shape == (2, 3, 32, 32)


def test_random_transforms_reproducible():
    x = torch.randint(0, 256, (2, 30, 40, 3), dtype=torch.uint8)
    a = VT.random_resized_crop(x, 16, generator=torch.Generator().manual_seed(3))
    b = VT.random_resized_crop(x, 16, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


# --------------------------------------------------------------------------------------------------------------------
# normalisation and the official TAD mode
# --------------------------------------------------------------------------------------------------------------------

def test_normalize_known_values():
    mean, std = torch.tensor(VT.IMAGENET_MEAN), torch.tensor(VT.IMAGENET_STD)
    x = torch.stack([mean, mean + std, mean - 2 * std]).view(3, 1, 1, 3).expand(3, 2, 2, 3)  # (T, H, W, 3)
    out = VT.normalize(x)
    assert out.shape == (3, 3, 2, 2)
    for t, value in enumerate([0.0, 1.0, -2.0]):
        torch.testing.assert_close(out[t], torch.full((3, 2, 2), value), atol=1e-6, rtol=0)
    zero = VT.normalize(torch.zeros(1, 2, 2, 3, dtype=torch.uint8))
    torch.testing.assert_close(zero[0, :, 0, 0], -mean / std)
    # the documented constants are ImageNet's 0-1 statistics times 255
    torch.testing.assert_close(mean, torch.tensor([0.485, 0.456, 0.406]) * 255)
    torch.testing.assert_close(std, torch.tensor([0.229, 0.224, 0.225]) * 255)


def test_squash_resize_matches_official_operations():
    x = torch.randint(0, 256, (5, 36, 50, 3), dtype=torch.uint8)
    out = VT.squash_resize(x, 224)
    # extract_tad_feature.py: permute(3, 0, 1, 2).to(float32) / 255, then F.interpolate to (224, 224)
    ref = F.interpolate(x.permute(3, 0, 1, 2).to(torch.float32) / 255, size=(224, 224), mode='bilinear',
                        align_corners=False)
    assert out.shape == (3, 5, 224, 224) and torch.equal(out, ref)
    # per-frame application (as the window iterator does, per chunk) gives the same bits
    assert torch.equal(torch.cat([VT.squash_resize(x[i:i + 2]) for i in range(0, 5, 2)], dim=1), ref)
    # no mean/std: white stays 1, black stays 0
    assert torch.all(VT.squash_resize(torch.full((1, 8, 8, 3), 255, dtype=torch.uint8), 16) == 1)
    assert torch.all(VT.squash_resize(torch.zeros(1, 8, 8, 3, dtype=torch.uint8), 16) == 0)
