"""Image corruptions in the style of CIFAR-10-C and MNIST-C (pure NumPy/SciPy, seeded).

``corrupt(x, name, severity, seed)`` applies corruption ``name`` at severity 1..5
to a batch of images; ``corruptions()`` lists the names. The parameters of each
severity are in :data:`SEVERITY_PARAMS` (one row of five per corruption, documented
with the rules below in docs/data.md).

Conventions (all corruptions):

* Work happens in float32 in [0, 1], NHWC; the result is clipped to [0, 1] and
  returned in the input's dtype and shape (uint8: ``floor(v * 255 + 0.5)``).
* Randomness comes from one ``np.random.default_rng(seed)`` per call, drawn for
  the whole batch at once: the same ``(x, name, severity, seed)`` gives the same
  output (for a given NumPy version), and the five severities of one seed use
  the same random draws (the same rotation directions, noise patterns before
  scaling, ...), so severity changes only the strength.
* Intensity parameters (noise levels, brightness, contrast, fog, JPEG quality)
  are CIFAR-10-C's: they are in units of the [0, 1] intensity range and do not
  depend on the image size.
* Blur lengths (Gaussian sigma, defocus radius, motion sigma) are CIFAR-10-C's
  pixels. They are used as given for images up to 32x32 (whatever the resolution,
  the finest detail of an image is one pixel) and scaled by ``min(H, W) / 32`` for
  larger ones.
* Geometric sizes (translation, elastic displacement, fog pattern) are fractions
  of the image size; zoom, pixelation, scale, rotation and shear are unitless.
"""

from __future__ import annotations

import difflib
import math
import numbers

import numpy as np
from scipy import fft, ndimage

from tinyzo.data.datasets import DataError, check_float_pixels

__all__ = ["PARAM_NAMES", "SEVERITY_PARAMS", "corrupt", "corruptions"]

#: Per corruption: the parameter of severities 1..5 (CIFAR-10-C's values unless said otherwise).
SEVERITY_PARAMS: dict[str, list] = {
    "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],
    "shot_noise": [500, 250, 100, 75, 50],
    "impulse_noise": [0.01, 0.02, 0.03, 0.05, 0.07],
    "speckle_noise": [0.06, 0.10, 0.12, 0.16, 0.20],
    "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1)],
    "gaussian_blur": [0.4, 0.6, 0.7, 0.8, 1.0],
    "motion_blur": [1.0, 1.5, 2.0, 2.25, 2.5],
    "zoom_blur": [1.05, 1.10, 1.15, 1.20, 1.25],
    "brightness": [0.05, 0.10, 0.15, 0.20, 0.30],
    "contrast": [0.75, 0.50, 0.40, 0.30, 0.15],
    "fog": [(0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75)],
    "pixelate": [(0.95, 1), (0.90, 2), (0.85, 3), (0.75, 4), (0.65, 5)],
    "jpeg": [80, 65, 58, 50, 40],
    "elastic_transform": [0.04, 0.065, 0.09, 0.115, 0.14],
    "rotate": [0.2, 0.4, 0.6, 0.8, 1.0],
    "shear": [0.2, 0.4, 0.6, 0.8, 1.0],
    "translate": [1 / 28, 2 / 28, 3 / 28, 4 / 28, 5 / 28],
    "scale": [0.9, 0.8, 0.7, 0.6, 0.5],
}

#: What each parameter in :data:`SEVERITY_PARAMS` means.
PARAM_NAMES: dict[str, str] = {
    "gaussian_noise": "standard deviation of the added N(0, s) noise",
    "shot_noise": "photon count at full intensity: x' = Poisson(x * c) / c",
    "impulse_noise": "fraction of values set to 0 or 1 (half each)",
    "speckle_noise": "standard deviation s: x' = x + x * N(0, s)",
    "defocus_blur": "(disk radius in pixels, sigma of the 3x3 anti-aliasing blur)",
    "gaussian_blur": "sigma in pixels",
    "motion_blur": "sigma in pixels of the one-sided Gaussian along a line (taps 0..ceil(4 sigma)); "
                   "angle uniform in [-45, 45] degrees per image",
    "zoom_blur": "largest zoom: the mean of the image and its zooms 1.00, 1.01, ..., this value",
    "brightness": "added to the HSV value channel",
    "contrast": "factor on the distance to the per-image, per-channel mean",
    "fog": "(fog strength, roughness decay of the plasma fractal)",
    "pixelate": "(size factor, at least this many pixels smaller): box down to "
                "min(floor(factor * size), size - k), box back up",
    "jpeg": "JPEG quality (IJG table scaling) of the 8x8 DCT quantization",
    "elastic_transform": "largest displacement, as a fraction of min(H, W)",
    "rotate": "angle in radians (11.5, 22.9, 34.4, 45.8, 57.3 degrees), random direction",
    "shear": "horizontal shear factor (x' = x + k (y - centre)), random direction",
    "translate": "shift in x and y as a fraction of the size (MNIST-C's 1..5 pixels of 28), random signs",
    "scale": "shrink factor about the centre",
}


# ---------------------------------------------------------------------------------------------
# helpers


def _blur_scale(h: int, w: int) -> float:
    """Blur lengths are pixels up to 32x32 and grow with the image above it."""
    return max(1.0, min(h, w) / 32)


def _sample(x: np.ndarray, sy: np.ndarray, sx: np.ndarray, mode: str) -> np.ndarray:
    """Bilinear sampling of x (N, H, W, C) at source coordinates sy, sx (N, H, W).

    mode "constant": zero outside the image; "nearest": the edge value.
    """
    n, h, w, _ = x.shape
    y0, x0 = np.floor(sy), np.floor(sx)
    fy, fx = (sy - y0).astype(np.float32)[..., None], (sx - x0).astype(np.float32)[..., None]
    y0, x0 = y0.astype(np.intp), x0.astype(np.intp)
    idx = np.arange(n)[:, None, None]
    out = np.zeros(x.shape, dtype=np.float32)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            yi, xi = y0 + dy, x0 + dx
            v = x[idx, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
            if mode == "constant":
                v = v * ((yi >= 0) & (yi < h) & (xi >= 0) & (xi < w))[..., None]
            out += wy * wx * v
    return out


def _affine(x: np.ndarray, mats: np.ndarray, shifts: np.ndarray, mode: str = "constant") -> np.ndarray:
    """out[p] = x[c + A (p - c) + t] with per-image A = mats[n] (2x2, (y, x) order), t = shifts[n]."""
    _, h, w, _ = x.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    py, px = np.meshgrid(np.arange(h) - cy, np.arange(w) - cx, indexing="ij")
    a = mats[:, :, :, None, None]
    sy = cy + a[:, 0, 0] * py + a[:, 0, 1] * px + shifts[:, 0, None, None]
    sx = cx + a[:, 1, 0] * py + a[:, 1, 1] * px + shifts[:, 1, None, None]
    return _sample(x, sy, sx, mode)


def _signs(rng, n: int) -> np.ndarray:
    return rng.choice(np.array([-1.0, 1.0]), size=n)


def _box_matrix(src: int, dst: int) -> np.ndarray:
    """Area (box) resampling matrix dst x src: row i averages the source pixels under target cell i."""
    edges_d = np.arange(dst + 1) * (src / dst)
    lo, hi = edges_d[:-1, None], edges_d[1:, None]
    j = np.arange(src)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0, None)
    return (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)


def _resize_area(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Box resampling of x (N, H, W, C) to (N, h, w, C) (as PIL's BOX filter)."""
    rh, rw = _box_matrix(x.shape[1], h), _box_matrix(x.shape[2], w)
    return np.einsum("ih,nhwc,jw->nijc", rh, x, rw, optimize=True)


def _disk(radius: float, alias_sigma: float) -> np.ndarray:
    """Normalised disk of ``radius`` pixels, smoothed by a 3-tap Gaussian of ``alias_sigma``."""
    r = math.floor(radius) + 1
    yy, xx = np.mgrid[-r: r + 1, -r: r + 1]
    k = (yy ** 2 + xx ** 2 <= radius ** 2).astype(np.float64)
    k /= k.sum()
    g = np.exp(-np.array([1.0, 0.0, 1.0]) / (2 * alias_sigma ** 2))
    g /= g.sum()
    k = ndimage.convolve1d(ndimage.convolve1d(k, g, axis=0, mode="constant"), g, axis=1, mode="constant")
    return (k / k.sum()).astype(np.float32)


def _plasma(rng, n: int, size: int, decay: float) -> np.ndarray:
    """n diamond-square (plasma) fractals, float64[n, size, size] each scaled to [0, 1].

    The random offsets of each finer level are ``1 / decay**2`` times those of the
    level before (CIFAR-10-C's "wibble decay"); the map wraps around its edges.
    """
    m = np.zeros((n, size, size))
    step, amp = size, 1.0
    while step >= 2:
        half = step // 2
        corners = m[:, 0::step, 0::step]
        sq = corners + np.roll(corners, -1, axis=1)
        sq = sq + np.roll(sq, -1, axis=2)
        m[:, half::step, half::step] = sq / 4 + amp * rng.uniform(-1, 1, sq.shape)
        centres, corners = m[:, half::step, half::step], m[:, 0::step, 0::step]
        a = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2)
        m[:, 0::step, half::step] = a / 4 + amp * rng.uniform(-1, 1, a.shape)
        b = centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1)
        m[:, half::step, 0::step] = b / 4 + amp * rng.uniform(-1, 1, b.shape)
        step, amp = half, amp / decay ** 2
    m -= m.min(axis=(1, 2), keepdims=True)
    return m / np.maximum(m.max(axis=(1, 2), keepdims=True), 1e-12)


# JPEG (ITU T.81 Annex K) quantization tables, row-major 8x8.
_JPEG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.float64).reshape(8, 8)
_JPEG_CHROMA = np.full((8, 8), 99.0)
_JPEG_CHROMA[:4, :4] = np.array([17, 18, 24, 47, 18, 21, 26, 66, 24, 26, 56, 99, 47, 66, 99, 99]).reshape(4, 4)


def jpeg_table(base: np.ndarray, quality: int) -> np.ndarray:
    """IJG quality scaling: q < 50 -> 5000 / q %, else 200 - 2 q %; entries clamped to 1..255."""
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return np.clip(np.floor((base * scale + 50) / 100), 1, 255)


# ---------------------------------------------------------------------------------------------
# the corruptions: f(x float32[N, H, W, C] in [0, 1], param, rng) -> float32 (clipped by the caller)


def _gaussian_noise(x, s, rng):
    return x + rng.normal(0.0, s, x.shape).astype(np.float32)


def _shot_noise(x, c, rng):
    return (rng.poisson(x.astype(np.float64) * c) / c).astype(np.float32)


def _impulse_noise(x, amount, rng):
    u = rng.random(x.shape)
    out = x.copy()
    out[u < amount / 2] = 0.0
    out[(u >= amount / 2) & (u < amount)] = 1.0
    return out


def _speckle_noise(x, s, rng):
    return x + x * rng.normal(0.0, s, x.shape).astype(np.float32)


def _gaussian_blur(x, sigma, rng):
    s = sigma * _blur_scale(*x.shape[1:3])
    return ndimage.gaussian_filter(x, sigma=(0, s, s, 0), mode="nearest", truncate=4.0)


def _defocus_blur(x, p, rng):
    radius, alias = p
    k = _disk(radius * _blur_scale(*x.shape[1:3]), alias)
    return ndimage.convolve(x, k[None, :, :, None], mode="nearest")


def _motion_blur(x, sigma, rng):
    sigma = sigma * _blur_scale(*x.shape[1:3])
    n, h, w, _ = x.shape
    theta = np.deg2rad(rng.uniform(-45, 45, n))[:, None, None]
    taps = np.arange(math.ceil(4 * sigma) + 1)
    weights = np.exp(-(taps ** 2) / (2 * sigma ** 2))
    weights = (weights / weights.sum()).astype(np.float32)
    py, px = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    out = np.zeros_like(x)
    for t, wt in zip(taps, weights):
        out += wt * _sample(x, py + t * np.sin(theta), px + t * np.cos(theta), "nearest")
    return out


def _zoom_blur(x, zmax, rng):
    n = x.shape[0]
    zooms = 1 + 0.01 * np.arange(round((zmax - 1) / 0.01) + 1)
    out = x.copy()
    eye = np.broadcast_to(np.eye(2), (n, 2, 2))
    for z in zooms:
        out += _affine(x, eye / z, np.zeros((n, 2)), mode="nearest")
    return out / (len(zooms) + 1)


def _brightness(x, c, rng):
    if x.shape[3] == 1:
        return x + c
    v = x.max(axis=3, keepdims=True)
    v_new = np.minimum(v + c, 1.0)
    ratio = np.divide(v_new, v, out=np.zeros_like(v), where=v > 0)
    return np.where(v > 0, x * ratio, v_new)  # HSV value + c with hue and saturation kept


def _contrast(x, c, rng):
    m = x.mean(axis=(1, 2), keepdims=True)
    return (x - m) * c + m


def _fog(x, p, rng):
    strength, decay = p
    n, h, w, _ = x.shape
    fog = _plasma(rng, n, 32, decay)[..., None].astype(np.float32)
    if (h, w) != (32, 32):
        if h <= 32 and w <= 32:
            fog = _resize_area(fog, h, w)
        else:
            fog = ndimage.zoom(fog, (1, h / 32, w / 32, 1), order=1, grid_mode=True, mode="nearest")
    top = x.max(axis=(1, 2, 3), keepdims=True)
    return (x + strength * fog) * top / (top + strength)


def _pixelate(x, p, rng):
    factor, k = p
    _, h, w, _ = x.shape
    hs, ws = max(1, min(int(factor * h), h - k)), max(1, min(int(factor * w), w - k))
    small = _resize_area(x, hs, ws)
    return _resize_area(small, h, w)


def _jpeg(x, quality, rng):
    n, h, w, c = x.shape
    v = np.floor(x.astype(np.float64) * 255 + 0.5)  # JPEG codes 8-bit samples
    if c == 3:  # JFIF RGB -> YCbCr, rounded to integers as libjpeg does
        r, g, b = v[..., 0], v[..., 1], v[..., 2]
        v = np.floor(np.stack([0.299 * r + 0.587 * g + 0.114 * b,
                               128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
                               128 + 0.5 * r - 0.418688 * g - 0.081312 * b], axis=-1) + 0.5)
        tables = np.stack([jpeg_table(_JPEG_LUMA, quality)] + [jpeg_table(_JPEG_CHROMA, quality)] * 2)
    else:
        tables = np.stack([jpeg_table(_JPEG_LUMA, quality)] * c)
    hp, wp = -(-h // 8) * 8, -(-w // 8) * 8
    v = np.pad(v, ((0, 0), (0, hp - h), (0, wp - w), (0, 0)), mode="edge")
    blocks = v.reshape(n, hp // 8, 8, wp // 8, 8, c).transpose(0, 1, 3, 5, 2, 4) - 128
    coef = fft.dctn(blocks, axes=(-2, -1), norm="ortho")
    q = coef / tables
    coef = np.sign(q) * np.floor(np.abs(q) + 0.5) * tables  # round half away from zero, as libjpeg
    blocks = np.clip(np.floor(fft.idctn(coef, axes=(-2, -1), norm="ortho") + 128.5), 0, 255)  # decoded samples
    v = blocks.transpose(0, 1, 4, 2, 5, 3).reshape(n, hp, wp, c)[:, :h, :w]
    if c == 3:
        yy, cb, cr = v[..., 0], v[..., 1] - 128, v[..., 2] - 128
        v = np.stack([yy + 1.402 * cr, yy - 0.344136 * cb - 0.714136 * cr, yy + 1.772 * cb], axis=-1)
    return (v / 255).astype(np.float32)


def _elastic_transform(x, amount, rng):
    n, h, w, _ = x.shape
    size = min(h, w)
    field = rng.uniform(-1, 1, (2, n, h, w))
    field = ndimage.gaussian_filter(field, sigma=(0, 0, 0.12 * size, 0.12 * size), mode="reflect")
    field /= np.maximum(np.sqrt((field ** 2).sum(axis=0)).max(axis=(1, 2)), 1e-12)[None, :, None, None]
    field *= amount * size
    py, px = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    return _sample(x, py + field[0], px + field[1], "nearest")


def _rotate(x, angle, rng):
    t = _signs(rng, x.shape[0]) * angle
    cos, sin = np.cos(t), np.sin(t)
    mats = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], 1)
    return _affine(x, mats, np.zeros((x.shape[0], 2)))


def _shear(x, k, rng):
    n = x.shape[0]
    mats = np.zeros((n, 2, 2))
    mats[:, 0, 0] = mats[:, 1, 1] = 1
    mats[:, 1, 0] = _signs(rng, n) * k
    return _affine(x, mats, np.zeros((n, 2)))


def _translate(x, frac, rng):
    n, h, w, _ = x.shape
    shifts = np.stack([_signs(rng, n) * frac * h, _signs(rng, n) * frac * w], axis=1)
    return _affine(x, np.broadcast_to(np.eye(2), (n, 2, 2)), -shifts)


def _scale(x, f, rng):
    n = x.shape[0]
    return _affine(x, np.broadcast_to(np.eye(2) / f, (n, 2, 2)), np.zeros((n, 2)))


_FUNCS = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "speckle_noise": _speckle_noise,
    "defocus_blur": _defocus_blur,
    "gaussian_blur": _gaussian_blur,
    "motion_blur": _motion_blur,
    "zoom_blur": _zoom_blur,
    "brightness": _brightness,
    "contrast": _contrast,
    "fog": _fog,
    "pixelate": _pixelate,
    "jpeg": _jpeg,
    "elastic_transform": _elastic_transform,
    "rotate": _rotate,
    "shear": _shear,
    "translate": _translate,
    "scale": _scale,
}
assert list(_FUNCS) == list(SEVERITY_PARAMS) == list(PARAM_NAMES)


def corruptions() -> list[str]:
    """Names of the corruptions, in a fixed order (noise, blur, weather/digital, geometric)."""
    return list(_FUNCS)


def _check_name(name) -> str:
    if not isinstance(name, str) or name not in _FUNCS:
        close = difflib.get_close_matches(str(name), _FUNCS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(f"unknown corruption {name!r}{hint}; valid names: {', '.join(_FUNCS)}")
    return name


def _check_severity(severity) -> int:
    if isinstance(severity, bool) or not isinstance(severity, numbers.Integral) or not 1 <= severity <= 5:
        raise DataError(f"severity must be an integer 1..5, got {severity!r}")
    return int(severity)


def corrupt(x: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """Apply corruption ``name`` at ``severity`` to a batch of images.

    Args:
        x: uint8[N, H, W] or uint8[N, H, W, C] in [0, 255], or float16/32/64 of the
            same shapes in [0, 1]; C is 1 or 3.
        name: one of :func:`corruptions`.
        severity: int 1..5 (5 is the strongest).
        seed: seed of the random draws (``np.random.default_rng(seed)``), an integer >= 0.
    Returns:
        the corrupted images, same dtype and shape as ``x``, values in the same range.
    Raises:
        DataError: unknown name (the message lists the valid ones), severity not an
            int in 1..5, or images of the wrong dtype, shape, channels or range.
    """
    name = _check_name(name)
    severity = _check_severity(severity)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise DataError(f"corrupt: seed must be an integer >= 0, got {seed!r}")
    if not isinstance(x, np.ndarray):
        raise DataError(f"corrupt: images must be a numpy array, got {type(x).__name__}")
    if x.dtype == np.int8:
        raise DataError("corrupt: int8 data are pre-quantized features (e.g. audio front-end output), not images; "
                        "image corruptions do not apply to them (corrupt the audio before the front end instead)")
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[3] not in (1, 3)) or min(x.shape[1:3], default=0) < 1:
        raise DataError(f"corrupt: images must have shape (N, H, W) or (N, H, W, C) with C 1 or 3, got {x.shape}")
    if x.dtype == np.uint8:
        xf = x.astype(np.float32) / 255
    elif x.dtype in (np.float16, np.float32, np.float64):
        check_float_pixels(x, "corrupt")
        xf = x.astype(np.float32)
    else:
        raise DataError(f"corrupt: dtype {x.dtype} not supported; use uint8 in [0, 255] or float in [0, 1]")
    if x.shape[0] == 0:
        return x.copy()
    x4 = xf if xf.ndim == 4 else xf[..., None]
    rng = np.random.default_rng(seed)
    out = np.clip(_FUNCS[name](x4, SEVERITY_PARAMS[name][severity - 1], rng), 0.0, 1.0)
    out = out.reshape(x.shape)
    if x.dtype == np.uint8:
        return np.floor(out * 255 + 0.5).astype(np.uint8)
    return out.astype(x.dtype)
