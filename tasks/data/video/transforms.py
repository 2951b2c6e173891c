"""Batched clip transforms in torch: every frame of a clip gets the same crop, flip and resize in one call.

Inputs are uint8 or float (T, H, W, 3) (what :class:`~tasks.data.video.reader.VideoReader` returns) or (T, 3, H, W),
recognised by which dimension has size 3. Spatial transforms return (T, 3, H', W'); crops and flips keep the dtype,
resizing returns float32 on the 0-255 scale. :func:`normalize` then gives the model's float input and :func:`to_cthw`
the backbone's (3, T, H, W) layout. Random transforms draw from a ``torch.Generator``, so one seed reproduces an
epoch (the pipelines: docs/classification.md#data, docs/ava.md#data-and-schedules).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    'IMAGENET_MEAN', 'IMAGENET_STD', 'to_tchw', 'to_cthw', 'resize', 'short_side_resize', 'random_short_side_resize',
    'center_crop', 'three_crop', 'random_crop', 'random_resized_crop', 'multi_scale_crop', 'hflip', 'random_hflip',
    'normalize', 'squash_resize',
]

# ImageNet statistics on the 0-255 scale (mmaction2 / VideoMAE V2 configs; = 255 x (0.485, 0.456, 0.406) etc.)
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

Size = int | tuple[int, int]


def _pair(size: Size) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h < 1 or w < 1:
        raise ValueError(f'size must be positive, got {size}')
    return int(h), int(w)


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return float(torch.empty((), dtype=torch.float64).uniform_(low, high, generator=generator))


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in [low, high] (inclusive, like ``random.randint``)."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def to_tchw(frames: torch.Tensor) -> torch.Tensor:
    """(T, H, W, 3) or (T, 3, H, W) -> (T, 3, H, W), a view (no copy).

    Raises:
        ValueError: not 4-D, no dimension of size 3 in either place, or both (T, 3, H, 3) is ambiguous.
    """
    if frames.ndim != 4:
        raise ValueError(f'expected frames (T, H, W, 3) or (T, 3, H, W), got shape {tuple(frames.shape)}')
    last, second = frames.shape[-1] == 3, frames.shape[1] == 3
    if last and second:
        raise ValueError(f'ambiguous layout {tuple(frames.shape)}: pass (T, 3, H, W) with W != 3 or (T, H, W, 3) '
                         'with H != 3')
    if last:
        return frames.permute(0, 3, 1, 2)
    if second:
        return frames
    raise ValueError(f'expected frames (T, H, W, 3) or (T, 3, H, W), got shape {tuple(frames.shape)}')


def to_cthw(frames: torch.Tensor) -> torch.Tensor:
    """(T, 3, H, W) or (T, H, W, 3) -> (3, T, H, W), the backbone's input layout, made contiguous."""
    return to_tchw(frames).transpose(0, 1).contiguous()


# --------------------------------------------------------------------------------------------------------------------
# resizing
# --------------------------------------------------------------------------------------------------------------------

def resize(frames: torch.Tensor, size: Size, *, antialias: bool = False) -> torch.Tensor:
    """Bilinear resize of every frame to ``size`` = (h, w) or a square side.

    ``align_corners=False`` as in the official code and torchvision; ``antialias=False`` by default because the
    official pipelines call ``F.interpolate`` without it (set True for torchvision-v2-like downscaling).

    Returns:
        float32 (T, 3, h, w) on the 0-255 scale if the input was uint8.
    """
    x = to_tchw(frames)
    return F.interpolate(x.float(), size=_pair(size), mode='bilinear', align_corners=False, antialias=antialias)


def _short_side_size(h: int, w: int, short: int) -> tuple[int, int]:
    # truncate the long side like the official resize_clip and torchvision (mmcv rounds instead)
    return (short, int(short * w / h)) if h <= w else (int(short * h / w), short)


def short_side_resize(frames: torch.Tensor, size: int, *, antialias: bool = False) -> torch.Tensor:
    """Resize so the short side is ``size``, keeping the aspect ratio (long side truncated to an int).

    Returns:
        float32 (T, 3, h, w).
    """
    x = to_tchw(frames)
    return resize(x, _short_side_size(x.shape[-2], x.shape[-1], size), antialias=antialias)


def random_short_side_resize(frames: torch.Tensor, size_range: tuple[int, int], *,
                             generator: torch.Generator | None = None, antialias: bool = False) -> torch.Tensor:
    """Short side resized to a random integer in ``size_range`` (inclusive; AVA training: (256, 320))."""
    return short_side_resize(frames, _randint(size_range[0], size_range[1], generator), antialias=antialias)


# --------------------------------------------------------------------------------------------------------------------
# crops
# --------------------------------------------------------------------------------------------------------------------

def _crop(x: torch.Tensor, top: int, left: int, h: int, w: int) -> torch.Tensor:
    return x[..., top:top + h, left:left + w]


def _check_fits(x: torch.Tensor, h: int, w: int) -> None:
    if h > x.shape[-2] or w > x.shape[-1]:
        raise ValueError(f'crop {h}x{w} is larger than the frames {x.shape[-2]}x{x.shape[-1]}')


def center_crop(frames: torch.Tensor, size: Size) -> torch.Tensor:
    """Central ``size`` crop; the offset ``round((H - h) / 2)`` (Python rounding) matches torchvision.

    Returns:
        (T, 3, h, w), same dtype.
    """
    x = to_tchw(frames)
    h, w = _pair(size)
    _check_fits(x, h, w)
    return _crop(x, int(round((x.shape[-2] - h) / 2.0)), int(round((x.shape[-1] - w) / 2.0)), h, w)


def three_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Three ``size`` x ``size`` crops along the long side: start, centre, end (left/centre/right for landscape).

    Offsets along the long side are ``int(i * (L - size) / 2)`` for i = 0, 1, 2, the official VideoMAE V2 test
    crops (0, floor((L - size) / 2), L - size); the short side is centre-cropped if it exceeds ``size`` (normally
    the frames were short-side resized to ``size`` first). mmaction2's ``ThreeCrop`` orders them left, right,
    centre and puts the right crop at ``2 * ((L - size) // 2)``, one pixel off when L - size is odd.
    A Kinetics test view (docs/classification.md#test-protocols-and-metrics)::

        views = three_crop(short_side_resize(frames, 224), 224)      # (3, T, 3, 224, 224)
        clips = [to_cthw(normalize(v)) for v in views]               # 3 x (3, T, 224, 224)

    Returns:
        (3, T, 3, size, size), same dtype.
    """
    x = to_tchw(frames)
    H, W = x.shape[-2:]
    _check_fits(x, size, size)
    crops = []
    for i in range(3):
        if W >= H:
            top, left = int(round((H - size) / 2.0)), int(i * (W - size) / 2)
        else:
            top, left = int(i * (H - size) / 2), int(round((W - size) / 2.0))
        crops.append(_crop(x, top, left, size, size))
    return torch.stack(crops)


def random_crop(frames: torch.Tensor, size: Size, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """A crop of ``size`` at a uniformly random position (the same for every frame).

    Returns:
        (T, 3, h, w), same dtype.
    """
    x = to_tchw(frames)
    h, w = _pair(size)
    _check_fits(x, h, w)
    return _crop(x, _randint(0, x.shape[-2] - h, generator), _randint(0, x.shape[-1] - w, generator), h, w)


def random_resized_crop_params(height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
                               generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a crop covering a random ``scale`` fraction of the area with a random aspect ``ratio``.

    The torchvision / SlowFast algorithm the official fine-tuning uses: up to 10 tries of area uniform in ``scale``
    and log-ratio uniform in ``log(ratio)``; if none fits, a central crop with the ratio clamped to ``ratio``.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * _uniform(scale[0], scale[1], generator)
        aspect = math.exp(_uniform(log_ratio[0], log_ratio[1], generator))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return _randint(0, height - h, generator), _randint(0, width - w, generator), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crop(
        frames: torch.Tensor,
        size: Size,
        *,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        generator: torch.Generator | None = None,
        antialias: bool = False,
) -> torch.Tensor:
    """Random area/aspect crop resized to ``size`` (Kinetics/SSv2 fine-tuning: scale (0.08, 1), ratio (3/4, 4/3)).

    Returns:
        float32 (T, 3, h, w).
    """
    x = to_tchw(frames)
    top, left, h, w = random_resized_crop_params(x.shape[-2], x.shape[-1], scale, ratio, generator)
    return resize(_crop(x, top, left, h, w), size, antialias=antialias)


def multi_scale_crop_params(height: int, width: int, out_size: tuple[int, int],
                            scales: Sequence[float] = (1, .875, .75, .66), max_distort: int = 1,
                            fix_crop: bool = True, more_fix_crop: bool = True,
                            generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a TSN ``GroupMultiScaleCrop`` crop (VideoMAE pre-training augmentation).

    Crop sides are ``int(min(H, W) * s)`` for s in ``scales`` (snapped to the output size when within 3 px); a
    (height, width) pair is drawn among the pairs whose scale indices differ by at most ``max_distort``; the offset is
    one of 5 fixed positions (corners, centre) on a grid of quarter steps, 13 with ``more_fix_crop``, or uniform
    without ``fix_crop``.
    """
    out_h, out_w = out_size
    base = min(height, width)
    sides = [int(base * s) for s in scales]
    crop_h = [out_h if abs(s - out_h) < 3 else s for s in sides]
    crop_w = [out_w if abs(s - out_w) < 3 else s for s in sides]
    pairs = [(h, w) for i, h in enumerate(crop_h) for j, w in enumerate(crop_w) if abs(i - j) <= max_distort]
    h, w = pairs[_randint(0, len(pairs) - 1, generator)]
    if not fix_crop:
        return _randint(0, height - h, generator), _randint(0, width - w, generator), h, w
    ws, hs = (width - w) // 4, (height - h) // 4
    grid = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2)]  # (x, y) in quarter steps: corners and centre
    if more_fix_crop:
        grid += [(0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]
    gx, gy = grid[_randint(0, len(grid) - 1, generator)]
    return gy * hs, gx * ws, h, w


def multi_scale_crop(
        frames: torch.Tensor,
        size: Size,
        *,
        scales: Sequence[float] = (1, .875, .75, .66),
        max_distort: int = 1,
        fix_crop: bool = True,
        more_fix_crop: bool = True,
        generator: torch.Generator | None = None,
        antialias: bool = False,
) -> torch.Tensor:
    """TSN multi-scale crop (see :func:`multi_scale_crop_params`) resized to ``size``.

    Returns:
        float32 (T, 3, h, w).
    """
    x = to_tchw(frames)
    out = _pair(size)
    top, left, h, w = multi_scale_crop_params(x.shape[-2], x.shape[-1], out, scales, max_distort, fix_crop,
                                              more_fix_crop, generator)
    return resize(_crop(x, top, left, h, w), out, antialias=antialias)


# --------------------------------------------------------------------------------------------------------------------
# flip, normalisation, official TAD preprocessing
# --------------------------------------------------------------------------------------------------------------------

def hflip(frames: torch.Tensor) -> torch.Tensor:
    """Mirror every frame left-right. Returns (T, 3, H, W), same dtype."""
    return to_tchw(frames).flip(-1)


def random_hflip(frames: torch.Tensor, p: float = 0.5, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """:func:`hflip` with probability ``p`` (one draw per clip). Returns (T, 3, H, W)."""
    x = to_tchw(frames)
    return x.flip(-1) if _uniform(0.0, 1.0, generator) < p else x


def normalize(frames: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """``(x - mean) / std`` per RGB channel, with ``mean``/``std`` on the scale of the input (0-255 by default).

    Returns:
        float32 (T, 3, H, W).
    """
    x = to_tchw(frames).float()
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def squash_resize(frames: torch.Tensor, size: int = 224) -> torch.Tensor:
    """The official TAD feature preprocessing: /255, then squash every frame to ``size`` x ``size``.

    Exactly the operations of OpenGVLab/VideoMAEv2 ``extract_tad_feature.py``
    (docs/thumos14.md#official-feature-extractor), in its order: uint8 (T, H, W, 3) -> (3, T, H, W) -> float32 ->
    ``/ 255`` -> ``F.interpolate(bilinear, align_corners=False)`` without antialias to (size, size), aspect ratio not
    kept, **no mean/std normalisation**. Given the same uint8 frames on the CPU (where the official script runs this
    step), the result is bit-identical, whether called per window or once per chunk of frames (each frame is
    interpolated independently).

    Returns:
        float32 (3, T, size, size) in [0, 1].
    """
    x = to_tchw(frames).transpose(0, 1)  # (3, T, H, W); for (T, H, W, 3) input the same strides as permute(3, 0, 1, 2)
    x = x.to(torch.float32) / 255
    return F.interpolate(x, size=(size, size), mode='bilinear', align_corners=False)
