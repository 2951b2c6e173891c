"""Mask generators for dual-masked pre-training (``backbone/masking.py``).

Expected values come from docs/pretraining.md#tube-mask (token counts at the real sizes, the four k = 2 cell states
written out by hand) and from properties the masks must have (tube = same positions in every slice, running cell =
each position kept in 2 of any 4 consecutive slices, t and t+2 complementary, only 4 distinct masks).
"""
from __future__ import annotations

import numpy as np
import pytest

from backbone.masking import (ComplementMaskGenerator, DualMaskGenerator, FrameMaskGenerator, RandomMaskGenerator,
                              RunningCellMaskGenerator, TubeMaskGenerator, build_mask_generator)

P16 = (8, 14, 14)   # 16 frames x 224 px, patch 16
G14 = (8, 16, 16)   # ViT-g: 16 frames x 224 px, patch 14


def _draws(gen, count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([gen(rng) for _ in range(count)])


# =====================================================================================================================
# Tube (encoder)
# =====================================================================================================================
@pytest.mark.parametrize('grid, masked_per_slice, visible', [(P16, 176, 160), (G14, 230, 208)])
def test_tube_counts_at_real_sizes(grid, masked_per_slice, visible):
    # docs/pretraining.md#tube-mask: int(0.9 * 196) = 176 -> 160 of 1568 visible;
    # int(0.9 * 256) = 230 -> 208 of 2048 visible.
    gen = TubeMaskGenerator(grid, 0.9)
    total = grid[0] * grid[1] * grid[2]
    for mask in _draws(gen, 5):
        assert mask.shape == (total,) and mask.dtype == bool
        assert (~mask).sum() == visible
        per_slice = mask.reshape(grid[0], -1)
        assert (per_slice.sum(1) == masked_per_slice).all()
    assert gen.num_visible == visible and gen.num_masked == total - visible


def test_tube_masks_the_same_positions_in_every_slice():
    for mask in _draws(TubeMaskGenerator(P16, 0.9), 5):
        slices = mask.reshape(P16[0], -1)
        assert (slices == slices[0]).all()


def test_tube_positions_are_uniform_and_vary():
    gen = TubeMaskGenerator((2, 4, 4), 0.75)             # 12 of 16 positions masked per slice
    draws = _draws(gen, 4000)
    assert len({m.tobytes() for m in draws[:50]}) > 40   # C(16, 12) = 1820 possible masks
    frequency = draws.reshape(len(draws), 2, 16)[:, 0].mean(0)
    np.testing.assert_allclose(frequency, 0.75, atol=0.03)  # 4000 draws: 3 sigma = 0.021


def test_seeded_and_global_rng_are_reproducible():
    gen = TubeMaskGenerator(P16, 0.9)
    np.testing.assert_array_equal(gen(np.random.default_rng(7)), gen(np.random.default_rng(7)))
    np.random.seed(3)
    first = gen()
    np.random.seed(3)
    np.testing.assert_array_equal(first, gen())  # no rng: numpy's global state, as the official generator


# =====================================================================================================================
# Running cell (decoder)
# =====================================================================================================================
# docs/pretraining.md#running-cell-mask, row-major 2x2 cell, 1 = dropped from the decoder, indexed by the pointer
# (mod 4).
CELL_K2 = {0: [[1, 1], [0, 0]], 1: [[1, 0], [0, 1]], 2: [[0, 0], [1, 1]], 3: [[0, 1], [1, 0]]}
# queue [1,0,0,0] / [1,1,1,0], cell[i] = queue[(i + pointer) % 4], written out by hand.
CELL_K1 = {0: [[1, 0], [0, 0]], 1: [[0, 0], [0, 1]], 2: [[0, 0], [1, 0]], 3: [[0, 1], [0, 0]]}
CELL_K3 = {0: [[1, 1], [1, 0]], 1: [[1, 1], [0, 1]], 2: [[1, 0], [1, 1]], 3: [[0, 1], [1, 1]]}


@pytest.mark.parametrize('ratio, cells', [(0.5, CELL_K2), (0.25, CELL_K1), (0.75, CELL_K3)])
def test_running_cell_patterns_match_hand_states(ratio, cells):
    grid = (6, 4, 6)
    gen = RunningCellMaskGenerator(grid, ratio)
    assert gen.patterns.shape == (4, 6 * 4 * 6)
    for start in range(4):
        slices = gen.patterns[start].reshape(grid)
        for t in range(grid[0]):
            # The pointer is incremented *before* slice t is filled: pattern s, slice t uses state s + t + 1.
            expected = np.tile(np.array(cells[(start + t + 1) % 4], dtype=bool), (grid[1] // 2, grid[2] // 2))
            np.testing.assert_array_equal(slices[t], expected, err_msg=f'pattern {start}, slice {t}')


@pytest.mark.parametrize('grid, dropped_per_slice', [(P16, 98), (G14, 128)])
def test_running_cell_counts_at_real_sizes(grid, dropped_per_slice):
    gen = RunningCellMaskGenerator(grid, 0.5)
    for mask in _draws(gen, 8):
        assert mask.dtype == bool and mask.shape == (grid[0] * grid[1] * grid[2],)
        assert (mask.reshape(grid[0], -1).sum(1) == dropped_per_slice).all()
    assert gen.num_visible == grid[0] * dropped_per_slice  # 784 of 1568, 1024 of 2048 kept


def test_running_cell_temporal_structure():
    gen = RunningCellMaskGenerator(P16, 0.5)
    for pattern in gen.patterns:
        kept = ~pattern.reshape(P16[0], -1)
        for t in range(P16[0] - 3):
            assert (kept[t:t + 4].sum(0) == 2).all()        # every position kept in 2 of any 4 consecutive slices
        for t in range(P16[0] - 2):
            assert (kept[t] ^ kept[t + 2]).all()            # slices t and t+2 are complementary
        # every 2x2 cell drops exactly 2
        cells = pattern.reshape(P16[0], 7, 2, 7, 2).sum(axis=(2, 4))
        assert (cells == 2).all()


def test_running_cell_returns_only_four_masks_all_used():
    gen = RunningCellMaskGenerator(P16, 0.5)
    assert len({m.tobytes() for m in _draws(gen, 200)}) == 4
    before = gen.patterns.copy()
    returned = gen(np.random.default_rng(0))
    returned[:] = ~returned  # a caller editing its mask must not corrupt the stored patterns
    np.testing.assert_array_equal(gen.patterns, before)


@pytest.mark.parametrize('ratio', [0.7, 0.6, 0.0, 1.0, 0.1])
def test_running_cell_rejects_ratios_it_cannot_represent(ratio):
    # The official int(4 * 0.7) = 2 would silently train at 0.5.
    with pytest.raises(ValueError, match='0.25, 0.5 or 0.75'):
        RunningCellMaskGenerator(P16, ratio)


def test_running_cell_rejects_odd_grid():
    with pytest.raises(ValueError, match='even grid'):
        RunningCellMaskGenerator((8, 7, 7), 0.5)


# =====================================================================================================================
# Random and frame (ablations)
# =====================================================================================================================
def test_random_mask_counts_and_not_tube():
    gen = RandomMaskGenerator(P16, 0.9)
    masks = _draws(gen, 5)
    assert ((masks.sum(1)) == int(0.9 * 1568)).all()  # 1411 masked, 157 visible
    slices = masks[0].reshape(P16[0], -1)
    assert not (slices == slices[0]).all()             # positions differ between slices


def test_frame_mask_masks_whole_slices():
    gen = FrameMaskGenerator(P16, 0.5)
    seen = set()
    for mask in _draws(gen, 50):
        per_slice = mask.reshape(P16[0], -1)
        assert (per_slice.all(1) | ~per_slice.any(1)).all()   # each slice entirely masked or entirely kept
        assert per_slice.all(1).sum() == 4
        seen.add(per_slice.all(1).tobytes())
    assert len(seen) > 10 and gen.num_visible == 784          # same decoded count as running cell 0.5


@pytest.mark.parametrize('cls, grid, ratio', [(RandomMaskGenerator, (1, 2, 2), 0.1),
                                              (FrameMaskGenerator, (8, 2, 2), 0.1),
                                              (TubeMaskGenerator, (2, 2, 2), 0.2)])
def test_ratio_that_masks_nothing_is_an_error(cls, grid, ratio):
    with pytest.raises(ValueError, match='masks no'):
        cls(grid, ratio)


@pytest.mark.parametrize('ratio', [0.0, 1.0, -0.5, 1.5])
def test_ratio_outside_open_interval(ratio):
    with pytest.raises(ValueError, match='strictly between 0 and 1'):
        TubeMaskGenerator(P16, ratio)


def test_bad_grid():
    with pytest.raises(ValueError, match="grid"):
        TubeMaskGenerator((8, 14), 0.9)


# =====================================================================================================================
# Factory and the (encoder, decoder) pair
# =====================================================================================================================
@pytest.mark.parametrize('kind, cls', [('tube', TubeMaskGenerator), ('random', RandomMaskGenerator),
                                       ('frame', FrameMaskGenerator), ('run_cell', RunningCellMaskGenerator),
                                       ('running_cell', RunningCellMaskGenerator), ('none', ComplementMaskGenerator)])
def test_build_mask_generator(kind, cls):
    assert isinstance(build_mask_generator(kind, P16, 0.5), cls)


def test_build_mask_generator_unknown_kind():
    with pytest.raises(ValueError, match="unknown mask kind 'block'"):
        build_mask_generator('block', P16, 0.5)


def test_dual_default_is_the_official_recipe():
    masks = DualMaskGenerator(P16)
    encoder_mask, decoder_mask = masks(np.random.default_rng(0))
    assert (~encoder_mask).sum() == 160 and (~decoder_mask).sum() == 784
    assert (encoder_mask.reshape(8, -1) == encoder_mask.reshape(8, -1)[0]).all()  # tube


@pytest.mark.parametrize('kwargs', [dict(decoder='none'), dict(decoder='run_cell', decoder_ratio=0.0)])
def test_v1_decoder_keeps_exactly_the_encoder_masked_tokens(kwargs):
    # decoder_ratio 0 is the official argparse default and means V1 (docs/pretraining.md#masks-and-loss).
    masks = DualMaskGenerator(P16, **kwargs)
    assert masks.is_v1
    for seed in range(3):
        encoder_mask, decoder_mask = masks(np.random.default_rng(seed))
        np.testing.assert_array_equal(~decoder_mask, encoder_mask)
        assert (~decoder_mask).sum() == 1568 - 160


def test_complement_needs_the_encoder_mask():
    gen = build_mask_generator('none', P16)
    with pytest.raises(ValueError, match='encoder_mask'):
        gen(np.random.default_rng(0))
    with pytest.raises(ValueError, match='shape'):
        gen(encoder_mask=np.zeros(10, dtype=bool))


def test_encoder_mask_cannot_be_none():
    with pytest.raises(ValueError, match="cannot be 'none'"):
        DualMaskGenerator(P16, encoder='none')
