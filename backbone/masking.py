"""Token masks for dual-masked VideoMAE pre-training: tube, random, frame and running-cell generators.

A generator is built for a token grid ``(T', H', W')``; each call returns a flat numpy bool mask of length
``N = T'*H'*W'`` in the model's token order, **True = masked** (hidden from the encoder, or dropped from the decoder),
always with the same number of masked tokens so that samples batch. Randomness comes from the
``numpy.random.Generator`` passed in, else from numpy's global state, as in the official generators
(docs/pretraining.md#tube-mask, docs/pretraining.md#running-cell-mask, docs/pretraining.md#masks-and-loss).
"""
from __future__ import annotations

import math
from typing import Literal, Protocol

import numpy as np

MaskKind = Literal['tube', 'random', 'frame', 'run_cell']
DecoderMaskKind = Literal['run_cell', 'frame', 'random', 'tube', 'none']
Rng = np.random.Generator | None

#: Accepted spellings of each mask kind (the official flags say ``run_cell``).
_ALIASES = {'running_cell': 'run_cell', 'runcell': 'run_cell', 'cell': 'run_cell'}


class MaskGenerator(Protocol):
    """What the dataset side relies on: ``input_size``, ``num_masked`` and a call returning a flat bool mask."""

    input_size: tuple[int, int, int]
    num_masked: int

    def __call__(self, rng: Rng = None) -> np.ndarray: ...


def _grid(input_size: tuple[int, int, int] | list[int]) -> tuple[int, int, int]:
    if len(input_size) != 3 or any(int(s) != s or s <= 0 for s in input_size):
        raise ValueError(f'input_size must be the token grid (T\', H\', W\') of positive integers, got {input_size}')
    t, h, w = (int(s) for s in input_size)
    return t, h, w


def _check_ratio(name: str, mask_ratio: float) -> float:
    if not 0.0 < float(mask_ratio) < 1.0:
        raise ValueError(f'{name}: mask_ratio must lie strictly between 0 and 1, got {mask_ratio}')
    return float(mask_ratio)


def _check_count(name: str, masked: int, total: int, unit: str, mask_ratio: float) -> None:
    """A ratio that masks nothing or everything is a configuration error, not a mask."""
    if masked == 0 or masked == total:
        what = 'no' if masked == 0 else 'every'
        raise ValueError(f'{name}: mask_ratio {mask_ratio} masks {what} {unit} of {total} (int({mask_ratio} * {total}) '
                         f'= {masked}); choose a ratio that leaves some {unit}s masked and some visible')


def _permutation(n: int, rng: Rng) -> np.ndarray:
    return rng.permutation(n) if rng is not None else np.random.permutation(n)


def _integer(high: int, rng: Rng) -> int:
    return int(rng.integers(high)) if rng is not None else int(np.random.randint(high))


class TubeMaskGenerator:
    """Tube masking (VideoMAE V1/V2 encoder default, docs/pretraining.md#tube-mask).

    ``int(mask_ratio * H'*W')`` grid positions are drawn uniformly per call and masked in **every** temporal slice,
    so a masked position never leaks through a neighbouring slice. At 16x224 (8x14x14) and 0.9: 176 masked per slice,
    20 x 8 = 160 visible tokens; ViT-g (8x16x16): 230 masked per slice, 208 visible.
    """

    def __init__(self, input_size: tuple[int, int, int], mask_ratio: float = 0.9):
        self.input_size = _grid(input_size)
        self.mask_ratio = _check_ratio('tube mask', mask_ratio)
        frames, height, width = self.input_size
        self.num_positions = height * width
        # int(): truncation, as the official generator (0.9 * 196 = 176.4 -> 176).
        self.num_masked_per_frame = int(self.mask_ratio * self.num_positions)
        _check_count('tube mask', self.num_masked_per_frame, self.num_positions, 'position', mask_ratio)
        self.num_masked = frames * self.num_masked_per_frame
        self.num_visible = frames * self.num_positions - self.num_masked

    def __call__(self, rng: Rng = None) -> np.ndarray:
        """Returns: (T'*H'*W',) bool, True = masked."""
        per_frame = np.zeros(self.num_positions, dtype=bool)
        per_frame[_permutation(self.num_positions, rng)[:self.num_masked_per_frame]] = True
        return np.tile(per_frame, self.input_size[0])

    def __repr__(self) -> str:
        return (f'TubeMaskGenerator(input_size={self.input_size}, mask_ratio={self.mask_ratio}: '
                f'{self.num_masked} of {self.num_masked + self.num_visible} masked)')


class RandomMaskGenerator:
    """Random masking: ``int(mask_ratio * N)`` tokens drawn uniformly over the whole clip (VideoMAE V1's
    ``RandomMaskingGenerator``; the "random" rows of the masking ablations, V1 Table 1b and V2 Table 1)."""

    def __init__(self, input_size: tuple[int, int, int], mask_ratio: float):
        self.input_size = _grid(input_size)
        self.mask_ratio = _check_ratio('random mask', mask_ratio)
        self.num_tokens = math.prod(self.input_size)
        self.num_masked = int(self.mask_ratio * self.num_tokens)
        _check_count('random mask', self.num_masked, self.num_tokens, 'token', mask_ratio)
        self.num_visible = self.num_tokens - self.num_masked

    def __call__(self, rng: Rng = None) -> np.ndarray:
        """Returns: (T'*H'*W',) bool, True = masked."""
        mask = np.zeros(self.num_tokens, dtype=bool)
        mask[_permutation(self.num_tokens, rng)[:self.num_masked]] = True
        return mask

    def __repr__(self) -> str:
        return (f'RandomMaskGenerator(input_size={self.input_size}, mask_ratio={self.mask_ratio}: '
                f'{self.num_masked} of {self.num_tokens} masked)')


class FrameMaskGenerator:
    """Frame masking: ``int(mask_ratio * T')`` whole temporal slices drawn uniformly and masked entirely (the "frame"
    rows of the masking ablations; V2 Table 1 decodes 50% of the frames)."""

    def __init__(self, input_size: tuple[int, int, int], mask_ratio: float):
        self.input_size = _grid(input_size)
        self.mask_ratio = _check_ratio('frame mask', mask_ratio)
        frames, height, width = self.input_size
        self.num_masked_frames = int(self.mask_ratio * frames)
        _check_count('frame mask', self.num_masked_frames, frames, 'slice', mask_ratio)
        self.num_masked = self.num_masked_frames * height * width
        self.num_visible = (frames - self.num_masked_frames) * height * width

    def __call__(self, rng: Rng = None) -> np.ndarray:
        """Returns: (T'*H'*W',) bool, True = masked."""
        frames, height, width = self.input_size
        per_slice = np.zeros(frames, dtype=bool)
        per_slice[_permutation(frames, rng)[:self.num_masked_frames]] = True
        return np.repeat(per_slice, height * width)

    def __repr__(self) -> str:
        return (f'FrameMaskGenerator(input_size={self.input_size}, mask_ratio={self.mask_ratio}: '
                f'{self.num_masked_frames} of {self.input_size[0]} slices masked)')


class RunningCellMaskGenerator:
    """Running-cell masking (VideoMAE V2 decoder default, docs/pretraining.md#running-cell-mask).

    Each 2x2 cell of the grid holds ``k = 4 * mask_ratio`` dropped tokens (k in {1, 2, 3}). A queue of k ones and
    4-k zeros is read circularly from a pointer: ``cell[i] = queue[(i + pointer) % 4]`` for the row-major cell
    positions i = 0..3. For pattern ``s`` the pointer starts at ``s`` and is incremented **before** each slice is
    filled, so slice t uses pointer ``s + t + 1``; the cell is tiled over the (H'/2) x (W'/2) grid. The four patterns
    (s = 0..3) are precomputed and each call returns one of them uniformly. For k = 2 every position is kept in exactly
    2 of any 4 consecutive slices, and slices t and t+2 are complementary.

    Unlike the official ``int(4 * ratio)``, which silently turns 0.7 into 0.5, a ratio that is not a multiple of
    0.25 is rejected.
    """

    def __init__(self, input_size: tuple[int, int, int], mask_ratio: float = 0.5):
        self.input_size = _grid(input_size)
        frames, height, width = self.input_size
        masks_per_cell = 4 * float(mask_ratio)
        if not (abs(masks_per_cell - round(masks_per_cell)) < 1e-9 and 1 <= round(masks_per_cell) <= 3):
            raise ValueError(f'running-cell mask: mask_ratio must be 0.25, 0.5 or 0.75 (k of the 4 tokens of a 2x2 '
                             f'cell dropped), got {mask_ratio}')
        if height % 2 or width % 2:
            raise ValueError(f'running-cell mask: the 2x2 cell needs an even grid, got H\' x W\' = {height} x {width}')
        self.mask_ratio = float(mask_ratio)
        self.masks_per_cell = int(round(masks_per_cell))
        queue = np.array([True] * self.masks_per_cell + [False] * (4 - self.masks_per_cell))
        patterns = []
        for start in range(4):
            slices = []
            for t in range(frames):
                pointer = start + t + 1  # the official Cell.run_cell() increments before get_cell()
                cell = queue[(np.arange(4) + pointer) % 4].reshape(2, 2)
                slices.append(np.tile(cell, (height // 2, width // 2)).reshape(-1))
            patterns.append(np.concatenate(slices))
        #: (4, T'*H'*W') bool: the only masks this generator returns.
        self.patterns = np.stack(patterns)
        self.num_masked = frames * height * width * self.masks_per_cell // 4
        self.num_visible = frames * height * width - self.num_masked

    def __call__(self, rng: Rng = None) -> np.ndarray:
        """Returns: (T'*H'*W',) bool, True = dropped from the decoder."""
        return self.patterns[_integer(4, rng)].copy()

    def __repr__(self) -> str:
        return (f'RunningCellMaskGenerator(input_size={self.input_size}, mask_ratio={self.mask_ratio}: '
                f'{self.masks_per_cell} of 4 per 2x2 cell dropped)')


class ComplementMaskGenerator:
    """Decoder mask ``'none'``: VideoMAE V1, where the decoder reconstructs every encoder-masked token.

    The decoder mask is the complement of the encoder mask (``--decoder_mask_ratio 0`` in the official script), so
    the decoder keeps exactly the encoder-masked tokens. It therefore needs the encoder mask of the same sample.
    """

    def __init__(self, input_size: tuple[int, int, int]):
        self.input_size = _grid(input_size)
        self.num_tokens = math.prod(self.input_size)

    def __call__(self, rng: Rng = None, *, encoder_mask: np.ndarray | None = None) -> np.ndarray:
        """Returns: (T'*H'*W',) bool, True = dropped from the decoder = visible to the encoder."""
        if encoder_mask is None:
            raise ValueError("decoder mask 'none' is the complement of the encoder mask; pass encoder_mask=")
        encoder_mask = np.asarray(encoder_mask)
        if encoder_mask.shape != (self.num_tokens,):
            raise ValueError(f'encoder_mask has shape {encoder_mask.shape}, expected ({self.num_tokens},) for the '
                             f'grid {self.input_size}')
        return ~encoder_mask.astype(bool)

    def __repr__(self) -> str:
        return f'ComplementMaskGenerator(input_size={self.input_size}: decoder keeps the encoder-masked tokens)'


_GENERATORS = {'tube': TubeMaskGenerator, 'random': RandomMaskGenerator, 'frame': FrameMaskGenerator,
               'run_cell': RunningCellMaskGenerator}


def build_mask_generator(kind: DecoderMaskKind | str, input_size: tuple[int, int, int],
                         mask_ratio: float = 0.0) -> MaskGenerator | ComplementMaskGenerator:
    """Build a mask generator by name.

    Args:
        kind: ``'tube'``, ``'random'``, ``'frame'``, ``'run_cell'`` (also ``'running_cell'``), or ``'none'`` for the
            V1 decoder (the complement of the encoder mask; ``mask_ratio`` is then ignored).
        input_size: token grid (T', H', W').
        mask_ratio: fraction of tokens masked (encoder) or dropped (decoder).
    """
    key = _ALIASES.get(str(kind).lower(), str(kind).lower())
    if key == 'none':
        return ComplementMaskGenerator(input_size)
    if key not in _GENERATORS:
        raise ValueError(f'unknown mask kind {kind!r}; choose one of {sorted(_GENERATORS) + ["none"]}')
    return _GENERATORS[key](input_size, mask_ratio)


class DualMaskGenerator:
    """The (encoder mask, decoder mask) pair of one pre-training sample (``DataAugmentationForVideoMAEv2``).

    Both masks are numpy bool arrays, which collate to the ``(B, N)`` bool tensors
    :class:`backbone.pretrain.VideoMAEv2Pretrainer` takes. The official ViT recipe (tube 0.9, running cell 0.5)::

        masks = DualMaskGenerator((8, 14, 14))
        encoder_mask, decoder_mask = masks(rng)        # (1568,) bool each; 160 visible, 784 decoded

    Args:
        input_size: token grid (T', H', W').
        encoder: encoder mask kind; the official script accepts only ``'tube'``.
        encoder_ratio: ρe, 0.9 in every official recipe.
        decoder: decoder mask kind; ``'none'`` (or ``decoder_ratio == 0``, the official argparse default) gives V1.
        decoder_ratio: ρd, 0.5 in the official scripts.
    """

    def __init__(self, input_size: tuple[int, int, int], encoder: MaskKind = 'tube', encoder_ratio: float = 0.9,
                 decoder: DecoderMaskKind = 'run_cell', decoder_ratio: float = 0.5):
        self.input_size = _grid(input_size)
        if str(encoder).lower() == 'none':
            raise ValueError("the encoder mask cannot be 'none': the encoder must see only part of the clip")
        self.encoder = build_mask_generator(encoder, self.input_size, encoder_ratio)
        is_v1 = str(decoder).lower() == 'none' or float(decoder_ratio) == 0.0
        self.decoder = build_mask_generator('none' if is_v1 else decoder, self.input_size, decoder_ratio)

    @property
    def is_v1(self) -> bool:
        return isinstance(self.decoder, ComplementMaskGenerator)

    def __call__(self, rng: Rng = None) -> tuple[np.ndarray, np.ndarray]:
        """Returns: (encoder_mask, decoder_mask), each (T'*H'*W',) bool; True = hidden from the encoder /
        dropped from the decoder."""
        encoder_mask = self.encoder(rng)
        if self.is_v1:
            return encoder_mask, self.decoder(rng, encoder_mask=encoder_mask)
        return encoder_mask, self.decoder(rng)

    def __repr__(self) -> str:
        return f'DualMaskGenerator(encoder={self.encoder!r}, decoder={self.decoder!r})'
