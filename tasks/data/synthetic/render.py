"""Pixel-level building blocks of the synthetic benchmarks: textures, sprites, compositing.

Frames are float32 (H, W, 3) canvases in [0, 1] until :func:`to_uint8`; :func:`draw` gives the coordinate and angle
conventions. All randomness comes from a ``numpy.random.Generator`` passed in, so a scene is a pure function of its
seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

# x264 speed preset for every synthetic video: ~2x faster than 'medium' at the same crf (bigger files, same
# look); the benchmark is generated on every fresh machine, so generation time matters more than size.
ENCODER_PRESET = 'veryfast'

Shape = Literal['ellipse', 'box', 'triangle', 'figure']


def periodic_noise(rng: np.random.Generator, h: int, w: int, sigma: float) -> np.ndarray:
    """Smooth Gaussian noise that tiles seamlessly (white noise low-passed in the Fourier domain).

    Args:
        rng: random source.
        h: height in pixels.
        w: width in pixels.
        sigma: spatial standard deviation of the smoothing kernel, in pixels.

    Returns:
        (h, w) float32 with zero mean and unit standard deviation.
    """
    white = rng.standard_normal((h, w))
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    # Fourier transform of a Gaussian of std sigma (pixels); periodic boundary by construction
    kernel = np.exp(-2.0 * (math.pi * sigma) ** 2 * (fx ** 2 + fy ** 2))
    out = np.fft.irfft2(np.fft.rfft2(white) * kernel, s=(h, w))
    out -= out.mean()
    return (out / (out.std() + 1e-12)).astype(np.float32)


def colourise(field: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Map a zero-mean field through a colour ramp.

    Args:
        field: (h, w) values, roughly standard normal.
        palette: (n, 3) colours in [0, 1], the stops of a piecewise-linear ramp.

    Returns:
        (h, w, 3) float32.
    """
    t = 0.5 + 0.5 * np.tanh(field)  # (h, w) in (0, 1)
    stops = np.linspace(0.0, 1.0, len(palette))
    out = np.stack([np.interp(t, stops, palette[:, c]) for c in range(3)], axis=-1)
    return out.astype(np.float32)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of (..., 3) RGB."""
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def background_texture(rng: np.random.Generator, h: int, w: int, contrast: float = 1.0) -> np.ndarray:
    """A tileable textured background of mid-range colours (coarse colour blobs, grain and faint stripes).

    Args:
        contrast: factor on every pixel's deviation from the texture's mean colour (1: full texture; the
            classification scenes use a faint one, so the moving objects dominate the picture).

    Returns:
        (h, w, 3) float32 in [0, 1], periodic in both directions so it can scroll forever.
    """
    palette = rng.uniform(0.2, 0.8, size=(3, 3))
    coarse = periodic_noise(rng, h, w, sigma=min(h, w) / 10)
    grain = periodic_noise(rng, h, w, sigma=1.0)
    tex = colourise(coarse, palette) * (1.0 + 0.12 * grain[..., None])
    # stripes with integer frequencies keep the texture periodic
    ky, kx = rng.integers(-3, 4, size=2)
    phase = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w]
    stripes = np.sin(2 * math.pi * (kx * xx / w + ky * yy / h) + phase)
    tex *= (1.0 + 0.08 * stripes)[..., None]
    if contrast != 1.0:
        mean = tex.mean(axis=(0, 1), keepdims=True)
        tex = mean + np.float32(contrast) * (tex - mean)
    return np.clip(tex, 0.0, 1.0).astype(np.float32)


class PanningBackground:
    """A periodic texture seen through a camera that pans over it.

    Pixel (y, x) at pan (sx, sy) shows texture point (y + sy, x + sx), bilinearly interpolated so sub-pixel pans move
    smoothly. The texture is stored tiled 2x2 so that every pan is a plain slice (no gathers).

    Args:
        texture: (h, w, 3) float32 periodic texture; frames have the same size.
    """

    def __init__(self, texture: np.ndarray):
        self.h, self.w = texture.shape[:2]
        self._tiled = np.tile(texture, (2, 2, 1))
        self.mean_luma = float(luminance(texture).mean())

    def frame(self, sx: float, sy: float) -> np.ndarray:
        """(h, w, 3) float32 frame at pan (sx, sy) pixels (a fresh array, safe to draw on)."""
        ix, iy = math.floor(sx), math.floor(sy)
        fx, fy = np.float32(sx - ix), np.float32(sy - iy)
        ix, iy = ix % self.w, iy % self.h
        win = self._tiled[iy:iy + self.h + 1, ix:ix + self.w + 1]
        top = win[:-1, :-1] * ((1 - fx) * (1 - fy))
        top += win[:-1, 1:] * (fx * (1 - fy))
        top += win[1:, :-1] * ((1 - fx) * fy)
        top += win[1:, 1:] * (fx * fy)
        return top


@dataclass(frozen=True)
class Sprite:
    """A textured shape, stored premultiplied.

    Attributes:
        rgba: (S, S, 4) float32: RGB already multiplied by alpha, then alpha; a 2-pixel transparent border lets
            bilinear sampling fade edges out.
        mean_rgb: mean colour of the opaque part (for naming and contrast checks).
        shape: which silhouette it is.
    """

    rgba: np.ndarray
    mean_rgb: np.ndarray
    shape: Shape

    @property
    def size(self) -> int:
        return self.rgba.shape[0]


def _signed_distance(shape: Shape, x: np.ndarray, y: np.ndarray, half: float, rng: np.random.Generator) -> np.ndarray:
    """Approximate signed distance in pixels (> 0 inside) of a silhouette centred on (0, 0) within [-half, half]^2."""
    if shape == 'ellipse':
        a, b = half * rng.uniform(0.65, 1.0), half * rng.uniform(0.5, 0.8)
        r = np.sqrt((x / a) ** 2 + (y / b) ** 2)
        return (1.0 - r) * min(a, b)
    if shape == 'box':
        a, b = half * rng.uniform(0.6, 0.95), half * rng.uniform(0.4, 0.7)
        return np.minimum(a - np.abs(x), b - np.abs(y))
    if shape == 'triangle':
        # isosceles, apex up, about as much area as the other shapes: min over the edges of the distance to each
        # edge line (vertices listed clockwise on screen, so the inward normal is the edge direction turned right)
        top, base, width = -0.95 * half, rng.uniform(0.7, 0.9) * half, rng.uniform(0.8, 0.95) * half
        verts = [(0.0, top), (width, base), (-width, base)]
        d = []
        for (x0, y0), (x1, y1) in zip(verts, verts[1:] + verts[:1]):
            ex, ey = x1 - x0, y1 - y0
            norm = math.hypot(ex, ey)
            d.append(((x - x0) * -ey + (y - y0) * ex) / norm)
        return np.minimum.reduce(d)
    if shape == 'figure':
        # a person-like silhouette: head disc on top of a rounded body
        head_r = 0.22 * half
        head = head_r - np.sqrt(x ** 2 + (y + half - head_r - 1) ** 2)
        body_w = 0.42 * half
        body_top = -half + 2 * head_r + 1
        body = np.minimum(body_w - np.abs(x), np.minimum(y - body_top, half - 1 - y))
        return np.maximum(head, body)
    raise ValueError(f'unknown shape {shape!r}')


def make_sprite(rng: np.random.Generator, size: int, shape: Shape, palette: np.ndarray) -> Sprite:
    """A textured silhouette: colour noise through ``palette``, crossed by stripes at a random angle.

    The texture has no symmetry, so rotation is visible even for round silhouettes.

    Args:
        rng: random source.
        size: side of the sprite in pixels (without the 2-pixel border).
        shape: the silhouette.
        palette: (n, 3) colour ramp.
    """
    half = size / 2
    coords = np.arange(size, dtype=np.float32) + 0.5 - half
    y, x = np.meshgrid(coords, coords, indexing='ij')
    sdf = _signed_distance(shape, x, y, half, rng)
    alpha = np.clip(sdf + 0.5, 0.0, 1.0)  # one-pixel anti-aliased edge
    noise = periodic_noise(rng, size, size, sigma=max(size / 8, 1.0))
    rgb = colourise(noise, palette)
    theta = rng.uniform(0, math.pi)
    period = rng.uniform(0.3, 0.5) * size
    stripes = np.sin(2 * math.pi * (x * math.cos(theta) + y * math.sin(theta)) / period)
    rgb = rgb * (0.75 + 0.25 * stripes)[..., None]
    # a darker rim makes the outline readable on any background
    rim = np.clip(sdf / 1.5, 0.0, 1.0)
    rgb = np.clip(rgb * (0.55 + 0.45 * rim)[..., None], 0.0, 1.0)
    opaque = alpha > 0.5
    mean_rgb = rgb[opaque].mean(axis=0) if opaque.any() else rgb.reshape(-1, 3).mean(axis=0)
    rgba = np.zeros((size + 4, size + 4, 4), dtype=np.float32)
    rgba[2:-2, 2:-2, :3] = rgb * alpha[..., None]
    rgba[2:-2, 2:-2, 3] = alpha
    return Sprite(rgba=rgba, mean_rgb=mean_rgb.astype(np.float32), shape=shape)


def contrasting_palette(rng: np.random.Generator, background_luma: float, n: int = 3) -> np.ndarray:
    """(n, 3) colours whose luminance is far from ``background_luma`` (light on dark, dark on light)."""
    colours = rng.uniform(0.0, 1.0, size=(n, 3)).astype(np.float32)
    lum = luminance(colours)[:, None]
    # spread the stops over a luminance band on the far side of the background, so the texture has luminance
    # contrast of its own (motion is visible inside the object, not only at its outline)
    band = (0.55, 0.95) if background_luma < 0.5 else (0.05, 0.45)
    target = np.linspace(*band, n)[rng.permutation(n)][:, None]
    # shift each colour's luminance onto its target while keeping its hue
    return np.clip(colours + (target - lum), 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class Coverage:
    """Where :func:`draw` put a sprite: ``alpha`` (h, w) over canvas rows ``rows`` and columns ``cols``."""

    rows: np.ndarray
    cols: np.ndarray
    alpha: np.ndarray

    def box(self, threshold: float = 0.5) -> tuple[int, int, int, int] | None:
        """Pixel box ``(x1, y1, x2, y2)`` (x2, y2 exclusive) of the pixels covered more than ``threshold``."""
        mask = self.alpha > threshold
        if not mask.any():
            return None
        ys = self.rows[mask.any(axis=1)]
        xs = self.cols[mask.any(axis=0)]
        return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _bilinear(img: np.ndarray, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Sample (h, w, C) ``img`` at float pixel-index coordinates (r, c).

    Coordinates are clamped into the image first; the sprite's 2-pixel transparent border makes anything outside the
    silhouette sample as transparent.
    """
    h, w, ch = img.shape
    r = np.clip(r, 0.0, h - 1.001)
    c = np.clip(c, 0.0, w - 1.001)
    r0 = r.astype(np.int32)  # floor, since r >= 0
    c0 = c.astype(np.int32)
    fr = (r - r0)[..., None]
    fc = (c - c0)[..., None]
    flat = img.reshape(-1, ch)
    i00 = r0 * w + c0
    a, b = np.take(flat, i00, axis=0), np.take(flat, i00 + 1, axis=0)
    top = a + (b - a) * fc
    a, b = np.take(flat, i00 + w, axis=0), np.take(flat, i00 + w + 1, axis=0)
    bottom = a + (b - a) * fc
    return top + (bottom - top) * fr


def draw(
        canvas: np.ndarray,
        sprite: Sprite,
        cx: float,
        cy: float,
        *,
        angle: float = 0.0,
        scale: float = 1.0,
        gain: float = 1.0,
        wrap: bool = False,
) -> Coverage | None:
    """Composite ``sprite`` onto ``canvas`` in place ("over" operator, premultiplied alpha).

    Coordinates are continuous: pixel (row i, column j) covers [j, j + 1) x [i, i + 1), so its centre is at
    (x, y) = (j + 0.5, i + 0.5); x grows to the right, y grows *downwards*. A positive angle turns the sprite
    **anticlockwise as seen on screen** (with y pointing down, a clockwise rotation in the maths convention).
    ``wrap=True`` draws on a torus, so a sprite leaving on the right re-enters on the left: the classification scenes
    rely on it so that an object's position in any single frame is uniform over the frame whatever its motion.

    Args:
        canvas: (H, W, 3) float32 frame.
        sprite: what to draw.
        cx: centre x in continuous image coordinates.
        cy: centre y.
        angle: rotation, anticlockwise on screen, radians.
        scale: size factor.
        gain: brightness factor applied to the sprite's colour (> 1 brightens; the caller clips the frame).
        wrap: draw on a torus (wrap around the frame edges) instead of clipping at them.

    Returns:
        The sprite's coverage (for boxes), or ``None`` if nothing of it lies in the frame.
    """
    h, w = canvas.shape[:2]
    half = sprite.size / 2
    ca, sa = math.cos(angle), math.sin(angle)
    # half-extent of the rotated, scaled sprite square (its border is transparent, so this bounds the silhouette)
    reach = half * scale * (abs(ca) + abs(sa))
    cols = np.arange(math.floor(cx - reach), math.ceil(cx + reach))
    rows = np.arange(math.floor(cy - reach), math.ceil(cy + reach))
    if wrap:
        if len(cols) > w or len(rows) > h:
            raise ValueError(f'sprite extent {2 * reach:.0f} px is larger than the {w}x{h} frame; cannot wrap')
    else:
        cols = cols[(cols >= 0) & (cols < w)]
        rows = rows[(rows >= 0) & (rows < h)]
        if len(cols) == 0 or len(rows) == 0:
            return None
    # inverse of the on-screen anticlockwise rotation (y down): sprite-local = R^-1 (pixel - centre) / scale, shifted
    # to pixel-index coordinates of the sprite (its centre is at half - 0.5)
    dx = (cols + 0.5 - cx).astype(np.float32)[None, :]
    dy = (rows + 0.5 - cy).astype(np.float32)[:, None]
    c, s = np.float32(ca / scale), np.float32(sa / scale)
    px = dx * c - dy * s + np.float32(half - 0.5)
    py = dx * s + dy * c + np.float32(half - 0.5)
    sample = _bilinear(sprite.rgba, py, px)  # (h', w', 4), premultiplied
    alpha = sample[..., 3]
    colour = sample[..., :3] if gain == 1.0 else sample[..., :3] * np.float32(gain)
    r0, c0 = rows[0] % h, cols[0] % w
    if r0 + len(rows) <= h and c0 + len(cols) <= w:
        # a plain window (a view): blend in place, cheaper than fancy indexing
        region = canvas[r0:r0 + len(rows), c0:c0 + len(cols)]
        region *= 1.0 - alpha[..., None]
        region += colour
    else:  # the sprite crosses an edge of the torus
        index = np.ix_(rows % h, cols % w)
        canvas[index] = canvas[index] * (1.0 - alpha[..., None]) + colour
    return Coverage(rows=rows, cols=cols, alpha=alpha)


def to_uint8(canvas: np.ndarray) -> np.ndarray:
    """float [0, 1] canvas -> uint8 frame (rounded, clipped)."""
    return (np.clip(canvas, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


_HUES = ('red', 'orange', 'yellow', 'green', 'cyan', 'blue', 'purple', 'pink')


def colour_name(rgb: np.ndarray) -> str:
    """A rough English name for a colour (placeholders of the SSv2-style labels)."""
    r, g, b = (float(v) for v in rgb)
    mx, mn = max(r, g, b), min(r, g, b)
    if mx - mn < 0.12:
        return 'white' if mx > 0.75 else 'black' if mx < 0.25 else 'grey'
    if mx == r:
        hue = ((g - b) / (mx - mn)) % 6
    elif mx == g:
        hue = (b - r) / (mx - mn) + 2
    else:
        hue = (r - g) / (mx - mn) + 4
    hue *= 60  # degrees
    bounds = (20, 45, 70, 160, 200, 260, 300, 340)
    for name, bound in zip(_HUES, bounds):
        if hue < bound:
            return name
    return 'red'
