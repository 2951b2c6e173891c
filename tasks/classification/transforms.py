"""Clip augmentations of VideoMAE V2 fine-tuning (docs/classification.md#fine-tuning-recipe): video RandAugment,
random resized crop and flip, cube random erasing, video Mixup/CutMix, and the train / multi-view test view builders.
RandAugment, random erasing and Mixup/CutMix follow timm's ops and draws, drawn once per clip and applied alike to
every frame.
"""
from __future__ import annotations

import math
import random
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from tasks.data.video.transforms import center_crop, hflip, random_resized_crop, short_side_resize, three_crop, to_cthw

__all__ = ['VideoRandAugment', 'random_erasing_boxes', 'apply_random_erasing', 'VideoMixup', 'ClsTrainView',
           'ClsTrainAugmentation', 'multi_view_test']

EraseMode = Literal['pixel', 'rand', 'const']


@contextmanager
def _python_random_seed(seed: int):
    """Seed Python's global ``random`` inside the block and restore its state afterwards.

    timm's level functions flip the sign of a magnitude with ``random.random()`` (``_randomly_negate``); seeding it
    from the clip's own generator keeps a clip a pure function of its seeds without disturbing anyone else's stream.
    """
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


class VideoRandAugment:
    """timm RandAugment applied with identical random choices to every frame of a clip.

    Args:
        config_str: timm's RandAugment string (official fine-tuning: ``'rand-m7-n4-mstd0.5-inc1'``: magnitude 7, 4 ops,
            magnitude noise std 0.5, the "increasing" op set).
        crop_size: the model's input side; ``translate_const = int(0.45 * crop_size)`` as the official
            ``create_random_augment``.
        interpolation: PIL resampling of the geometric ops (official ``--train_interpolation bicubic``).
    """

    def __init__(self, config_str: str = 'rand-m7-n4-mstd0.5-inc1', crop_size: int = 224,
                 interpolation: Literal['bicubic', 'bilinear', 'nearest'] = 'bicubic'):
        from PIL import Image
        from timm.data.auto_augment import rand_augment_transform

        if not config_str.startswith('rand'):
            raise ValueError(f"VideoRandAugment takes a timm RandAugment string starting with 'rand', got "
                             f'{config_str!r}')
        resample = {'bicubic': Image.BICUBIC, 'bilinear': Image.BILINEAR, 'nearest': Image.NEAREST}[interpolation]
        hparams = dict(translate_const=int(crop_size * 0.45), interpolation=resample)
        self.config_str = config_str
        self.transform = rand_augment_transform(config_str, hparams)
        self.ops = list(self.transform.ops)
        self.num_layers = int(self.transform.num_layers)
        weights = self.transform.choice_weights
        self.choice_weights = None if weights is None else np.asarray(weights, dtype=np.float64)

    def sample(self, rng: np.random.Generator) -> list[tuple[object, tuple]]:
        """Draw one clip's ops: ``[(timm AugmentOp, level_args), ...]`` in application order.

        Same draws as timm's ``RandAugment.__call__`` + ``AugmentOp.__call__``: ``num_layers`` ops with replacement
        (without, for weighted choice), each applied with its probability, magnitude ~ N(m, mstd) (uniform in
        [0, m] for an infinite std) clipped to [0, magnitude_max or 10], then the op's level function.
        """
        index = rng.choice(len(self.ops), self.num_layers, replace=self.choice_weights is None,
                           p=self.choice_weights)
        chosen = []
        for i in index:
            op = self.ops[int(i)]
            if op.prob < 1.0 and rng.random() > op.prob:
                continue
            magnitude = op.magnitude
            if op.magnitude_std == float('inf'):
                magnitude = rng.uniform(0, magnitude)
            elif op.magnitude_std > 0:
                magnitude = rng.normal(magnitude, op.magnitude_std)
            magnitude = max(0.0, min(float(magnitude), float(op.magnitude_max or 10)))
            with _python_random_seed(int(rng.integers(2 ** 62))):
                level_args = op.level_fn(magnitude, op.hparams) if op.level_fn is not None else ()
            chosen.append((op, tuple(level_args)))
        return chosen

    def __call__(self, frames: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """uint8 (T, H, W, 3) -> uint8 (T, H, W, 3), every frame through the same ops."""
        from PIL import Image

        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f'VideoRandAugment expects uint8 frames (T, H, W, 3), got {frames.dtype} '
                             f'{tuple(frames.shape)}')
        ops = self.sample(rng)
        if not ops:
            return frames
        out = []
        for frame in frames.numpy():
            image = Image.fromarray(frame)
            for op, args in ops:
                image = op.aug_fn(image, *args, **op.kwargs)
            out.append(np.asarray(image.convert('RGB')))
        return torch.from_numpy(np.stack(out))

    def __repr__(self) -> str:
        return f'VideoRandAugment({self.config_str!r}, {len(self.ops)} ops, n={self.num_layers})'


def random_erasing_boxes(height: int, width: int, rng: np.random.Generator, *, probability: float = 0.25,
                         min_area: float = 0.02, max_area: float = 1 / 3, min_aspect: float = 0.3,
                         max_aspect: float | None = None, min_count: int = 1,
                         max_count: int | None = None) -> list[tuple[int, int, int, int]]:
    """The boxes timm's ``RandomErasing`` (official ``cube`` mode) would erase from one clip: ``[(top, left, h, w)]``.

    With probability ``probability`` the clip is erased at all; then ``count`` boxes (``min_count`` .. ``max_count``),
    each from up to 100 tries of area ``uniform(min_area, max_area) * H * W / count`` and log-uniform aspect in
    ``[min_aspect, max_aspect or 1 / min_aspect]``, accepted when ``h < H`` and ``w < W``.
    """
    if rng.random() > probability:
        return []
    max_count = max_count or min_count
    count = min_count if min_count == max_count else int(rng.integers(min_count, max_count + 1))
    log_ratio = (math.log(min_aspect), math.log(max_aspect or 1 / min_aspect))
    area = height * width
    boxes = []
    for _ in range(count):
        for _ in range(100):
            target = rng.uniform(min_area, max_area) * area / count
            aspect = math.exp(rng.uniform(*log_ratio))
            h = int(round(math.sqrt(target * aspect)))
            w = int(round(math.sqrt(target / aspect)))
            if w < width and h < height:
                boxes.append((int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w))
                break
    return boxes


def apply_random_erasing(clips: torch.Tensor, boxes: torch.Tensor, mode: EraseMode = 'pixel',
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """Erase ``boxes`` from normalised clips in place, the same box in every frame (official ``cube`` erasing).

    Args:
        clips: normalised float clips (N, C, T, H, W).
        boxes: (N, K, 4) int ``(top, left, h, w)``; rows with ``h == 0`` are padding. Best on the host: read once
            per call, so boxes on a GPU cost one sync.
        mode: ``'pixel'``: per-pixel N(0, 1) noise, fresh for every frame (timm ``per_pixel``); ``'rand'``: one N(0, 1)
            colour per channel and frame; ``'const'``: zeros (the mean colour after normalisation).
        generator: source of the noise (on the clips' device).

    Returns:
        ``clips``.
    """
    if boxes.numel() == 0:
        return clips
    if boxes.ndim != 3 or boxes.shape[0] != clips.shape[0] or boxes.shape[2] != 4:
        raise ValueError(f'boxes must be (N={clips.shape[0]}, K, 4), got {tuple(boxes.shape)}')
    channels, frames = clips.shape[1], clips.shape[2]
    # One copy to the host for the whole batch: indexing the clips needs Python ints, and reading them one by one
    # from a GPU tensor would sync per value.
    for n, (top, left, h, w) in ((n, box) for n, row in enumerate(boxes.cpu().long().tolist()) for box in row):
        if h <= 0:
            continue
        if mode == 'pixel':
            shape = (channels, frames, h, w)
        elif mode == 'rand':
            shape = (channels, frames, 1, 1)
        elif mode == 'const':
            clips[n, :, :, top:top + h, left:left + w] = 0
            continue
        else:
            raise ValueError(f"erase mode must be 'pixel', 'rand' or 'const', got {mode!r}")
        noise = torch.randn(shape, generator=generator, device=clips.device, dtype=torch.float32)
        clips[n, :, :, top:top + h, left:left + w] = noise.to(clips.dtype)
    return clips


class VideoMixup:
    """timm ``Mixup``/CutMix for clips (N, C, T, H, W): one CutMix box for every frame and channel.

    A thin wrapper: the clips are viewed as (N, C*T, H, W), which timm's CutMix indexes as images, so its lambda
    draws, box, lambda correction and target arithmetic (``mixup_target``: smoothed one-hot of y and of the batch
    flipped, mixed by lambda) are timm's own. The random draws come from numpy's global generator, as in timm.

    Args:
        num_classes: K.
        mixup_alpha: Beta(alpha, alpha) for mixup (official 0.8); 0 disables it.
        cutmix_alpha: Beta(alpha, alpha) for CutMix (official 1.0); 0 disables it.
        cutmix_minmax: timm's min/max box ratio (unused officially).
        prob: probability of mixing a batch at all (official ``--mixup_prob 1.0``).
        switch_prob: probability of CutMix instead of mixup when both are on (official 0.5).
        mode: ``'batch'`` (official), ``'pair'`` or ``'elem'``.
        label_smoothing: smoothing of the one-hot targets (official 0.1).
    """

    def __init__(self, num_classes: int, mixup_alpha: float = 0.8, cutmix_alpha: float = 1.0,
                 cutmix_minmax: Sequence[float] | None = None, prob: float = 1.0, switch_prob: float = 0.5,
                 mode: Literal['batch', 'pair', 'elem'] = 'batch', label_smoothing: float = 0.1):
        from timm.data import Mixup

        if mixup_alpha <= 0 and cutmix_alpha <= 0 and cutmix_minmax is None:
            raise ValueError('VideoMixup needs mixup_alpha > 0 or cutmix_alpha > 0 (use mixup=None to turn it off)')
        self.num_classes = num_classes
        self.mixup = Mixup(mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, cutmix_minmax=cutmix_minmax,
                           prob=prob, switch_prob=switch_prob, mode=mode, label_smoothing=label_smoothing,
                           num_classes=num_classes)

    def __call__(self, clips: torch.Tensor, labels: torch.Tensor, return_lam: bool = False):
        """Mix in place: clips (N, C, T, H, W) float, labels (N,) int -> (clips, soft targets (N, K) float32).

        With ``return_lam`` also the mixing weight: a float (``'batch'`` mode) or an (N, 1) tensor; clip i is mixed
        with clip N-1-i in every mode (what a distillation target stored per video has to be mixed with).
        """
        from timm.data.mixup import mixup_target

        if clips.ndim != 5:
            raise ValueError(f'VideoMixup expects clips (N, C, T, H, W), got {tuple(clips.shape)}')
        if clips.shape[0] % 2:
            raise ValueError(f'timm Mixup needs an even batch, got {clips.shape[0]} clips (use drop_last=True, an '
                             'even batch size, or num_sample=2 repeated-augmentation views)')
        n, c, t, h, w = clips.shape
        flat = clips.view(n, c * t, h, w)  # a view: timm mixes it in place, and so the clips
        m = self.mixup
        # timm's Mixup.__call__, keeping lam
        lam = m._mix_elem(flat) if m.mode == 'elem' else m._mix_pair(flat) if m.mode == 'pair' else m._mix_batch(flat)
        target = mixup_target(labels, self.num_classes, lam, m.label_smoothing).float()
        return (clips, target, lam) if return_lam else (clips, target)


# ---------------------------------------------------------------------------------------------------------------------
# view builders
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClsTrainView:
    """One augmented training view.

    Attributes:
        clip: uint8 (3, T, S, S), RGB 0-255 (normalised later, on the device).
        erase_boxes: ``[(top, left, h, w)]`` to erase from the normalised clip (usually empty or one box).
    """

    clip: torch.Tensor
    erase_boxes: list[tuple[int, int, int, int]]


class ClsTrainAugmentation:
    """decoded clip -> RandAugment -> random resized crop -> flip -> uint8 view + random-erasing boxes.

    The crop is rounded back to uint8 and normalised later, on the device (the official code normalises before the
    crop; both are linear, so they differ by that rounding). The erasing boxes are drawn here, in the data worker, and
    filled with :func:`apply_random_erasing` on the normalised clip.

    Args:
        input_size: crop side S (224).
        rand_augment: timm RandAugment string, or None to skip it.
        scale: area range of the random resized crop (0.08, 1).
        ratio: aspect range (3/4, 4/3).
        flip: random horizontal flip with probability 0.5 (False for SSv2 and the synthetic benchmark, whose
            classes name directions).
        reprob: random-erasing probability (0.25; 0 turns it off).
        recount: random-erasing box count (official ``--recount 1``).
        antialias: filter when the crop is downscaled (torch ``antialias``); the official crop is resized with
            ``F.interpolate`` without it.
    """

    def __init__(self, input_size: int = 224, rand_augment: str | None = 'rand-m7-n4-mstd0.5-inc1',
                 scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (0.75, 1.3333),
                 flip: bool = True, reprob: float = 0.25, recount: int = 1, antialias: bool = False):
        if not 0.0 <= reprob <= 1.0:
            raise ValueError(f'reprob must lie in [0, 1], got {reprob}')
        self.input_size = input_size
        self.rand_augment = VideoRandAugment(rand_augment, input_size) if rand_augment else None
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.flip = flip
        self.reprob = reprob
        self.recount = recount
        self.antialias = antialias

    def __call__(self, frames: torch.Tensor, generator: torch.Generator, rng: np.random.Generator) -> ClsTrainView:
        """frames: uint8 (T, H, W, 3). ``generator`` draws crop and flip, ``rng`` RandAugment and erasing."""
        if self.rand_augment is not None:
            frames = self.rand_augment(frames, rng)
        crop = random_resized_crop(frames, self.input_size, scale=self.scale, ratio=self.ratio, generator=generator,
                                   antialias=self.antialias)  # float32 (T, 3, S, S)
        # one draw per clip, as tasks.data.video.transforms.random_hflip
        if self.flip and float(torch.rand((), generator=generator, dtype=torch.float64)) < 0.5:
            crop = hflip(crop)
        clip = to_cthw(crop.round_().clamp_(0, 255).to(torch.uint8))
        boxes = []
        if self.reprob > 0:
            boxes = random_erasing_boxes(self.input_size, self.input_size, rng, probability=self.reprob,
                                         min_count=self.recount, max_count=self.recount)
        return ClsTrainView(clip, boxes)

    def __repr__(self) -> str:
        return (f'ClsTrainAugmentation(size={self.input_size}, {self.rand_augment!r}, rrc scale={self.scale} '
                f'ratio={self.ratio}, flip={self.flip}, reprob={self.reprob})')


def multi_view_test(clips: torch.Tensor, short_side: int = 224, crop_size: int = 224,
                    num_crops: Literal[1, 3] = 3) -> torch.Tensor:
    """Test views of one video: every clip resized to ``short_side`` and cut into ``num_crops`` crops.

    The official protocol (docs/classification.md#test-protocols-and-metrics): short side to 224 (bilinear, aspect
    kept), then 3 crops of 224 along the long side at offsets ``int(i * (L - 224) / 2)`` (start, centre, end), or one
    central crop.

    Args:
        clips: uint8 (num_clips, T, H, W, 3) decoded frames of the temporal clips.
        short_side: resize target of the short side.
        crop_size: crop side S.
        num_crops: 3 (official) or 1 (centre crop; validation during training).

    Returns:
        uint8 (num_clips * num_crops, 3, T, S, S), clip-major (views of clip 0 first).
    """
    if clips.ndim != 5:
        raise ValueError(f'expected clips (num_clips, T, H, W, 3), got {tuple(clips.shape)}')
    if num_crops not in (1, 3):
        raise ValueError(f'num_crops must be 1 or 3, got {num_crops}')
    views = []
    for clip in clips:
        resized = short_side_resize(clip, short_side).round_().clamp_(0, 255).to(torch.uint8)  # (T, 3, h, w)
        crops = three_crop(resized, crop_size) if num_crops == 3 else center_crop(resized, crop_size)[None]
        views += [to_cthw(c) for c in crops]
    return torch.stack(views)
