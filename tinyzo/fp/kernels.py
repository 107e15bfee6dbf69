"""Float layer kernels, forward and backward, on plain arrays (no Net objects, no hidden state).

One implementation of each layer's forward and backward pass, shared by the float trainer (issue 3)
and the back propagation through the quantized graph (the BP issue), which calls the same functions
with float views of int8 data (``(q - zero_point).astype(np.float32)``, int8 weights as float32).
The formulas, layouts and padding convention are in ``docs/backward.md``.

Layouts are the int8 engine's:

* activations NHWC ``[N, H, W, C]`` with a leading batch N; fully connected inputs ``[M, K]``;
* conv weights OHWI ``[O, KH, KW, I]``; depthwise weights 1HWC ``[1, KH, KW, C*M]`` where output
  channel ``c = ic * depth_multiplier + m`` reads input channel ``ic``; fc weights ``[O, K]``.

Padding is given explicitly as the leading (top, left) padding plus the output size ``out_hw``;
:func:`conv_geometry` computes both from TFLite's SAME/VALID (the odd extra pixel goes at the
bottom/right). Positions outside the image contribute 0 to a convolution and are not counted by
the pools (TFLM's window clipping).

Dtypes: float32 (the default and the fast path); float64 is accepted too (the same jitted code, used
by the finite-difference tests). The result has ``x``'s dtype; the other float arguments are cast to
it. Integer arrays are refused: convert quantized data explicitly.

Speed: conv and fc are ``im2col`` (jitted) + one BLAS matrix product per chunk of samples (1x1
stride-1 convolutions skip im2col); depthwise, pooling and col2im are jitted loops with the
channels innermost. The thin public functions validate and allocate; the
``@njit(cache=True, nogil=True)`` cores only loop (they release the GIL, so a caller may split a
batch over threads): the pools' ``_pool`` here, im2col/col2im and the depthwise tap loop in
:mod:`tinyzo.kernels.float_conv` (shared with the local weight gradient of node perturbation). As for the int8 engine, BLAS is limited to one thread on the first BLAS call
(:func:`tinyzo.runtime.limit_blas_threads`; ``TINYZO_KEEP_BLAS_THREADS=1`` keeps BLAS's threads):
measured here on 2 busy cores, a multi-threaded OpenBLAS made conv2d_backward 30x slower.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tinyzo.errors import TinyzoError
from tinyzo.kernels.float_conv import FORWARD, INPUT_GRAD, WEIGHT_GRAD, depthwise_taps, patch_copy
from tinyzo.kernels.pool import pool_window
from tinyzo.runtime import limit_blas_threads
from tinyzo.spec.conv import compute_out_size, compute_padding

__all__ = [
    "ACTIVATION_KINDS",
    "FloatNNError",
    "activation_backward",
    "activation_forward",
    "avgpool_backward",
    "avgpool_forward",
    "batchnorm_backward",
    "batchnorm_forward",
    "clamp_mask_backward",
    "conv2d_backward",
    "conv2d_forward",
    "conv_geometry",
    "depthwise_backward",
    "depthwise_forward",
    "fc_backward",
    "fc_forward",
    "gap_backward",
    "gap_forward",
    "maxpool_backward",
    "maxpool_forward",
    "softmax_cross_entropy",
    "upsample_backward",
    "upsample_forward",
]

ACTIVATION_KINDS = ("none", "relu", "relu6")

# Elements of the im2col buffer per chunk of samples (16 MiB in float32): bounds the scratch memory
# of a large batch; each chunk is still one large matrix product.
_COLS_BUDGET = 1 << 22


class FloatNNError(TinyzoError, ValueError):
    """Bad arguments to a float layer kernel (shape, dtype, geometry)."""


# ----------------------------------------------------------------------------------------------
# validation helpers


def _float_array(name: str, a, ndim: int | None = None, layout: str = "", dtype=None) -> np.ndarray:
    """``a`` as a C-contiguous float32/float64 array (cast to ``dtype`` if given), or FloatNNError."""
    a = np.asarray(a)
    if a.dtype != np.float32 and a.dtype != np.float64:
        raise FloatNNError(
            f"{name} must be a float32 (or float64) array, got dtype {a.dtype}; convert quantized data "
            f"explicitly, e.g. (q.astype(np.int32) - zero_point).astype(np.float32)")
    if ndim is not None and a.ndim != ndim:
        lay = f" ({layout})" if layout else ""
        raise FloatNNError(f"{name} must have {ndim} dimensions{lay}, got shape {a.shape}")
    if dtype is not None:
        a = a.astype(dtype, copy=False)
    return np.ascontiguousarray(a)


def _pair(name: str, v, minimum: int) -> tuple:
    """An int or an (h, w) pair of ints, each >= minimum."""
    if isinstance(v, (int, np.integer)):
        t = (int(v), int(v))
    else:
        try:
            t = tuple(int(a) for a in v)
        except (TypeError, ValueError):
            raise FloatNNError(f"{name} must be an int or an (h, w) pair of ints, got {v!r}") from None
        if len(t) != 2 or any(float(a) != b for a, b in zip(v, t)):
            raise FloatNNError(f"{name} must be an int or an (h, w) pair of ints, got {v!r}")
    if t[0] < minimum or t[1] < minimum:
        raise FloatNNError(f"{name} must be >= {minimum}, got {t}")
    return t


def _bias(b, o: int, dtype) -> np.ndarray | None:
    if b is None:
        return None
    b = _float_array("b", b, 1, "[O]", dtype)
    if b.shape != (o,):
        raise FloatNNError(f"bias b must have shape ({o},) (one per output channel), got {b.shape}")
    return b


def _check_windows(what: str, in_hw, kernel, stride, dilation, pad, out_hw) -> None:
    """Refuse a geometry that puts a whole window outside the image (a wrong out_hw or pad)."""
    for axis, i, k, s, d, p, o in zip("hw", in_hw, kernel, stride, dilation, pad, out_hw):
        eff = (k - 1) * d + 1
        after = (o - 1) * s + eff - i - p  # padding needed after the image (negative: unused rows)
        if p > eff - 1 or after > eff - 1:
            raise FloatNNError(
                f"{what}: output size {o} with leading padding {p} along {axis} (input {i}, kernel {k}, "
                f"stride {s}, dilation {d}) puts a window entirely outside the image; compute out_hw and "
                f"pad with conv_geometry(padding, in_hw, kernel, stride, dilation)")


def conv_geometry(padding: str, in_hw, kernel, stride=(1, 1), dilation=(1, 1)) -> tuple:
    """TFLite SAME/VALID geometry: ``((OH, OW), (pad_top, pad_left))`` for the kernels of this module.

    Uses :func:`tinyzo.spec.conv.compute_out_size` and ``compute_padding`` (TFLite's
    ``ComputeOutSize`` / ``ComputePaddingWithOffset``): SAME gives ``ceil(in / stride)`` outputs and
    puts the odd extra padding pixel at the bottom/right; VALID gives no padding. Pools use it with
    ``dilation=(1, 1)``. Raises FloatNNError if the kernel does not fit (VALID output size 0).
    """
    if padding not in ("SAME", "VALID"):
        raise FloatNNError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
    in_hw = _pair("in_hw", in_hw, 1)
    kernel = _pair("kernel", kernel, 1)
    stride = _pair("stride", stride, 1)
    dilation = _pair("dilation", dilation, 1)
    out = tuple(compute_out_size(padding, i, k, s, d) for i, k, s, d in zip(in_hw, kernel, stride, dilation))
    if out[0] < 1 or out[1] < 1:
        raise FloatNNError(f"kernel {kernel} (dilation {dilation}) does not fit input {in_hw} with VALID padding")
    pad = tuple(compute_padding(s, d, i, k, o) for s, d, i, k, o in zip(stride, dilation, in_hw, kernel, out))
    return out, pad


def _sum_rows(a2d: np.ndarray) -> np.ndarray:
    """Column sums of a [M, C] array, accumulated in float64 (a long float32 sum loses digits)."""
    return a2d.sum(axis=0, dtype=np.float64).astype(a2d.dtype)


# ----------------------------------------------------------------------------------------------
# jitted cores (im2col/col2im and the depthwise tap loop are shared with tinyzo.kernels.local_grad:
# tinyzo.kernels.float_conv)

#: :func:`_pool` modes.
_AVG, _AVG_ADJOINT, _MAX = 0, 1, 2
#: The ``arg`` of :func:`_pool` in the average modes (never read).
_NO_ARGMAX = np.zeros((0, 0, 0, 0), dtype=np.int64)


@njit(cache=True, nogil=True)
def _pool(mode, x, y, arg, kh, kw, sh, sw, ph, pw):
    """The pools' window loop: each window is the kernel clipped to the image (TFLM's clipping).

    * ``_AVG``: ``y[b,oy,ox,:]`` = the mean of x over the window (sum / count, count = pixels in it);
    * ``_AVG_ADJOINT``: ``x[window] += y[b,oy,ox,:] / count`` (x is dx, zeroed by the caller; y is dy);
    * ``_MAX``: ``y`` = the maximum over the window, ``arg`` = flat index into x of the first maximum
      (scan order fy, fx; ties keep the first position, strict >).

    x: float[N,H,W,C]; y: float[N,OH,OW,C]; arg: int64[N,OH,OW,C], written in ``_MAX`` mode (any
    int64[N,OH,OW,C] otherwise). Every window holds >= 1 pixel (caller checks).
    """
    n, h, wd, c = x.shape
    _, oh, ow, _ = y.shape
    g = np.empty(c, dtype=x.dtype)
    for b in range(n):
        for oy in range(oh):
            y0, y1 = pool_window(oy, sh, ph, kh, h)
            for ox in range(ow):
                x0, x1 = pool_window(ox, sw, pw, kw, wd)
                count = (y1 - y0) * (x1 - x0)
                yr = y[b, oy, ox]
                if mode == _AVG:
                    for k in range(c):
                        yr[k] = 0.0
                    for iy in range(y0, y1):
                        for ix in range(x0, x1):
                            xr = x[b, iy, ix]
                            for k in range(c):
                                yr[k] += xr[k]
                    for k in range(c):
                        yr[k] = yr[k] / count
                elif mode == _AVG_ADJOINT:
                    for k in range(c):
                        g[k] = yr[k] / count
                    for iy in range(y0, y1):
                        for ix in range(x0, x1):
                            dxr = x[b, iy, ix]
                            for k in range(c):
                                dxr[k] += g[k]
                else:
                    ar = arg[b, oy, ox]
                    first = True
                    for iy in range(y0, y1):
                        for ix in range(x0, x1):
                            xr = x[b, iy, ix]
                            base = ((np.int64(b) * h + iy) * wd + ix) * c
                            if first:
                                for k in range(c):
                                    yr[k] = xr[k]
                                    ar[k] = base + k
                                first = False
                            else:
                                for k in range(c):
                                    if xr[k] > yr[k]:
                                        yr[k] = xr[k]
                                        ar[k] = base + k


@njit(cache=True, nogil=True)
def _scatter_add(src, index, dst):
    """dst[index[i]] += src[i] for flat arrays (indices checked by the caller)."""
    for i in range(src.shape[0]):
        dst[index[i]] += src[i]


# ----------------------------------------------------------------------------------------------
# convolution


def _conv_args(x, w, stride, dilation, pad):
    x = _float_array("x", x, 4, "NHWC")
    w = _float_array("w", w, 4, "OHWI [O, KH, KW, I]", x.dtype)
    if w.shape[3] != x.shape[3]:
        raise FloatNNError(f"conv weights w {w.shape} (OHWI) read {w.shape[3]} input channels, x {x.shape} has {x.shape[3]}")
    return x, w, _pair("stride", stride, 1), _pair("dilation", dilation, 1), _pair("pad", pad, 0)


def _output_grad(what: str, dy, x, w, out_channels: int, stride, dilation, pad) -> tuple:
    """The output gradient of a convolution of ``x`` by ``w`` (OHWI or 1HWC) as ``(dy, (OH, OW))``.

    ``dy`` is cast to x's dtype and must be ``[N, OH, OW, out_channels]`` with an output size whose
    windows fit x; FloatNNError otherwise.
    """
    dy = _float_array("dy", dy, 4, "NHWC", x.dtype)
    n = x.shape[0]
    if dy.shape[0] != n or dy.shape[3] != out_channels:
        raise FloatNNError(f"{what}: dy {dy.shape} must be [N={n}, OH, OW, {out_channels}] for x {x.shape}, "
                           f"w {w.shape}")
    oh, ow = dy.shape[1], dy.shape[2]
    if oh < 1 or ow < 1:
        raise FloatNNError(f"{what}: dy {dy.shape} has an empty output")
    _check_windows(what, x.shape[1:3], w.shape[1:3], stride, dilation, pad, (oh, ow))
    return dy, (oh, ow)


def _is_pointwise(w_shape, stride, pad, in_hw, out_hw) -> bool:
    """1x1 kernel, stride 1, no padding, same size: the conv is a plain [M, I] x [I, O] product."""
    return w_shape[1] == 1 and w_shape[2] == 1 and stride == (1, 1) and pad == (0, 0) and tuple(in_hw) == tuple(out_hw)


def _chunks(n: int, rows_per_sample: int, k: int, dtype):
    """Sample ranges (b0, b1) whose im2col buffer fits _COLS_BUDGET elements, and one buffer for all."""
    per = max(1, min(n, _COLS_BUDGET // max(1, rows_per_sample * k)))
    buf = np.empty((per * rows_per_sample, k), dtype=dtype)
    return [(b0, min(n, b0 + per)) for b0 in range(0, n, per)], buf


def conv2d_forward(x, w, b, stride, dilation, pad, out_hw) -> np.ndarray:
    """2-D convolution, TFLite CONV_2D in float: ``y[n,oy,ox,o] = b[o] + sum_{fy,fx,i} w[o,fy,fx,i] * x[n, oy*sh - pt + fy*dh, ox*sw - pl + fx*dw, i]``.

    Args:
        x: float32[N, H, W, I] (NHWC). float64 is accepted (then everything runs in float64).
        w: float32[O, KH, KW, I] (OHWI).
        b: float32[O] or None.
        stride, dilation: (h, w) ints >= 1 (an int means both).
        pad: (pad_top, pad_left) >= 0; positions outside the image contribute 0.
        out_hw: (OH, OW) >= 1. With ``conv_geometry(padding, (H, W), (KH, KW), stride, dilation)``
            this is TFLite's SAME/VALID.

    Returns:
        float32[N, OH, OW, O]. Computed as im2col + one BLAS matrix product per chunk of samples.
    """
    x, w, stride, dilation, pad = _conv_args(x, w, stride, dilation, pad)
    out_hw = _pair("out_hw", out_hw, 1)
    n, h, wd, c = x.shape
    o, kh, kw, _ = w.shape
    b = _bias(b, o, x.dtype)
    _check_windows("conv2d_forward", (h, wd), (kh, kw), stride, dilation, pad, out_hw)
    oh, ow = out_hw
    limit_blas_threads()
    y = np.empty((n, oh, ow, o), dtype=x.dtype)
    y2 = y.reshape(n * oh * ow, o)
    w2t = w.reshape(o, kh * kw * c).T  # [K, O], Fortran-ordered: BLAS reads it transposed
    if _is_pointwise(w.shape, stride, pad, (h, wd), out_hw):
        np.matmul(x.reshape(n * h * wd, c), w2t, out=y2)
    else:
        rows = oh * ow
        ranges, buf = _chunks(n, rows, kh * kw * c, x.dtype)
        for b0, b1 in ranges:
            cols = buf[:(b1 - b0) * rows]
            patch_copy(x[b0:b1], cols.reshape(-1, kh, kw, c), stride[0], stride[1], dilation[0], dilation[1],
                       pad[0], pad[1], oh, ow, False)
            np.matmul(cols, w2t, out=y2[b0 * rows:b1 * rows])
    if b is not None:
        y2 += b
    return y


def conv2d_backward(dy, x, w, stride, dilation, pad, need_dx=True, need_dw=True) -> tuple:
    """Gradients of :func:`conv2d_forward` for an upstream gradient ``dy``.

    With the im2col matrix ``X[M, K]`` (M = N*OH*OW, K = KH*KW*I, OHWI order), ``W2 = w.reshape(O, K)``
    and ``DY = dy.reshape(M, O)``: ``dw = DY^T X``, ``db = sum_M DY``, ``dx = col2im(DY W2)`` (the
    adjoint of im2col: every patch entry added back to the pixel it was read from; padding dropped).

    Args:
        dy: float32[N, OH, OW, O], the gradient of the loss with respect to the conv output (before
            bias is irrelevant: the bias only shifts y). The output size is read from dy.
        x: float32[N, H, W, I], the forward input; w: float32[O, KH, KW, I].
        stride, dilation, pad: as in the forward call.
        need_dx: False skips dx (the first layer, or a frozen prefix).
        need_dw: False skips dw (a layer whose bias alone is trained).

    Returns:
        (dx float32[N, H, W, I] or None, dw float32[O, KH, KW, I] or None, db float32[O]).
    """
    x, w, stride, dilation, pad = _conv_args(x, w, stride, dilation, pad)
    n, h, wd, c = x.shape
    o, kh, kw, _ = w.shape
    dy, (oh, ow) = _output_grad("conv2d_backward", dy, x, w, o, stride, dilation, pad)
    k = kh * kw * c
    limit_blas_threads()
    dy2 = dy.reshape(n * oh * ow, o)
    w2 = w.reshape(o, k)
    db = _sum_rows(dy2)
    dx = dw2 = None
    if _is_pointwise(w.shape, stride, pad, (h, wd), (oh, ow)):
        if need_dw:
            dw2 = dy2.T @ x.reshape(n * h * wd, c)
        if need_dx:
            dx = (dy2 @ w2).reshape(n, h, wd, c)
    elif need_dw or need_dx:
        dw2 = np.zeros((o, k), dtype=x.dtype) if need_dw else None
        dx = np.zeros_like(x) if need_dx else None
        rows = oh * ow
        geo = (stride[0], stride[1], dilation[0], dilation[1], pad[0], pad[1], oh, ow)
        ranges, buf = _chunks(n, rows, k, x.dtype)
        for b0, b1 in ranges:
            cols = buf[:(b1 - b0) * rows]
            cols4 = cols.reshape(-1, kh, kw, c)
            dyc = dy2[b0 * rows:b1 * rows]
            if need_dw:  # dw = DY^T X: the im2col of the input, only when the weight gradient is wanted
                patch_copy(x[b0:b1], cols4, *geo, False)
                dw2 += dyc.T @ cols
            if need_dx:
                np.matmul(dyc, w2, out=cols)  # reuse the buffer for d(cols)
                patch_copy(dx[b0:b1], cols4, *geo, True)
    return dx, (None if dw2 is None else dw2.reshape(o, kh, kw, c)), db


def _depthwise_args(x, w, stride, dilation, pad, depth_multiplier):
    x = _float_array("x", x, 4, "NHWC")
    w = _float_array("w", w, 4, "1HWC [1, KH, KW, C*M]", x.dtype)
    if isinstance(depth_multiplier, bool) or not isinstance(depth_multiplier, (int, np.integer)) or depth_multiplier < 1:
        raise FloatNNError(f"depth_multiplier must be an int >= 1, got {depth_multiplier!r}")
    mult = int(depth_multiplier)
    if w.shape[0] != 1 or w.shape[3] != x.shape[3] * mult:
        raise FloatNNError(
            f"depthwise weights w {w.shape} must be [1, KH, KW, C*M] = [1, KH, KW, {x.shape[3] * mult}] for "
            f"x {x.shape} with depth_multiplier {mult}")
    return x, w, _pair("stride", stride, 1), _pair("dilation", dilation, 1), _pair("pad", pad, 0), mult


def depthwise_forward(x, w, b, stride, dilation, pad, out_hw, depth_multiplier) -> np.ndarray:
    """Depthwise 2-D convolution, TFLite DEPTHWISE_CONV_2D in float.

    ``y[n,oy,ox,ic*M+m] = b[ic*M+m] + sum_{fy,fx} w[0,fy,fx,ic*M+m] * x[n, oy*sh - pt + fy*dh, ox*sw - pl + fx*dw, ic]``
    with M = depth_multiplier; positions outside the image contribute 0.

    Args:
        x: float32[N, H, W, C] (NHWC); w: float32[1, KH, KW, C*M] (1HWC); b: float32[C*M] or None.
        stride, dilation, pad, out_hw: as :func:`conv2d_forward`.
        depth_multiplier: int >= 1.

    Returns:
        float32[N, OH, OW, C*M] (jitted direct loop, channels innermost).
    """
    x, w, stride, dilation, pad, mult = _depthwise_args(x, w, stride, dilation, pad, depth_multiplier)
    out_hw = _pair("out_hw", out_hw, 1)
    n, h, wd, _ = x.shape
    _, kh, kw, co = w.shape
    b = _bias(b, co, x.dtype)
    _check_windows("depthwise_forward", (h, wd), (kh, kw), stride, dilation, pad, out_hw)
    y = np.empty((n, out_hw[0], out_hw[1], co), dtype=x.dtype)
    y[...] = 0 if b is None else b
    depthwise_taps(FORWARD, x, w[0], y, stride[0], stride[1], dilation[0], dilation[1], pad[0], pad[1], mult)
    return y


def depthwise_backward(dy, x, w, stride, dilation, pad, depth_multiplier, need_dx=True, need_dw=True) -> tuple:
    """Gradients of :func:`depthwise_forward` for an upstream gradient ``dy``.

    ``dw[0,fy,fx,k] = sum_{n,oy,ox} dy[n,oy,ox,k] * x[n,iy,ix,k // M]``;
    ``dx[n,iy,ix,ic] = sum_{oy,ox,fy,fx,m} dy[n,oy,ox,ic*M+m] * w[0,fy,fx,ic*M+m]`` over the taps
    that read (iy, ix) (iy = oy*sh - pt + fy*dh, ix likewise); ``db = dy`` summed over N, OH, OW.

    Args:
        dy: float32[N, OH, OW, C*M]; x: float32[N, H, W, C]; w: float32[1, KH, KW, C*M].
        stride, dilation, pad, depth_multiplier: as the forward call; need_dx: False skips dx;
        need_dw: False skips dw.

    Returns:
        (dx float32[N, H, W, C] or None, dw float32[1, KH, KW, C*M] or None, db float32[C*M]).
    """
    x, w, stride, dilation, pad, mult = _depthwise_args(x, w, stride, dilation, pad, depth_multiplier)
    co = w.shape[3]
    dy, _ = _output_grad("depthwise_backward", dy, x, w, co, stride, dilation, pad)
    geo = (stride[0], stride[1], dilation[0], dilation[1], pad[0], pad[1], mult)
    dwgt = None
    if need_dw:
        dwgt = np.zeros_like(w)
        depthwise_taps(WEIGHT_GRAD, x, dwgt[0], dy, *geo)
    dx = None
    if need_dx:
        dx = np.zeros_like(x)
        depthwise_taps(INPUT_GRAD, dx, w[0], dy, *geo)
    return dx, dwgt, _sum_rows(dy.reshape(-1, co))


# ----------------------------------------------------------------------------------------------
# fully connected


def _fc_args(x2d, w):
    x2d = _float_array("x2d", x2d, 2, "[M, K]")
    w = _float_array("w", w, 2, "[O, K]", x2d.dtype)
    if w.shape[1] != x2d.shape[1]:
        raise FloatNNError(f"fc weights w {w.shape} ([O, K]) do not match the input x2d {x2d.shape} ([M, K]); "
                           f"flatten the input with x.reshape(len(x), -1)")
    return x2d, w


def fc_forward(x2d, w, b) -> np.ndarray:
    """Fully connected, TFLite FULLY_CONNECTED in float: ``y = x2d @ w.T + b``.

    Args:
        x2d: float32[M, K] (flatten NHWC inputs with ``x.reshape(N, -1)``, the int8 graph's order).
        w: float32[O, K]; b: float32[O] or None.

    Returns:
        float32[M, O] (one BLAS product).
    """
    x2d, w = _fc_args(x2d, w)
    b = _bias(b, w.shape[0], x2d.dtype)
    limit_blas_threads()
    y = x2d @ w.T
    if b is not None:
        y += b
    return y


def fc_backward(dy2d, x2d, w, need_dx=True, need_dw=True) -> tuple:
    """Gradients of :func:`fc_forward`: ``dx = dy @ w``, ``dw = dy.T @ x``, ``db = sum_M dy``.

    Args:
        dy2d: float32[M, O]; x2d: float32[M, K]; w: float32[O, K]; need_dx: False skips dx;
        need_dw: False skips dw.

    Returns:
        (dx2d float32[M, K] or None, dw float32[O, K] or None, db float32[O]).
    """
    x2d, w = _fc_args(x2d, w)
    dy2d = _float_array("dy2d", dy2d, 2, "[M, O]", x2d.dtype)
    if dy2d.shape != (x2d.shape[0], w.shape[0]):
        raise FloatNNError(f"fc_backward: dy2d {dy2d.shape} must be [M={x2d.shape[0]}, O={w.shape[0]}]")
    limit_blas_threads()
    dx = dy2d @ w if need_dx else None
    return dx, (dy2d.T @ x2d if need_dw else None), _sum_rows(dy2d)


# ----------------------------------------------------------------------------------------------
# pooling, global average, upsample


def _pool_args(what, x_shape, kernel, stride, pad, out_hw):
    kernel = _pair("kernel", kernel, 1)
    stride = _pair("stride", stride, 1)
    pad = _pair("pad", pad, 0)
    out_hw = _pair("out_hw", out_hw, 1)
    _check_windows(what, x_shape[1:3], kernel, stride, (1, 1), pad, out_hw)
    return kernel, stride, pad, out_hw


def _in_shape(in_shape) -> tuple:
    try:
        s = tuple(int(d) for d in in_shape)
    except (TypeError, ValueError):
        raise FloatNNError(f"in_shape must be a tuple (N, H, W, C), got {in_shape!r}") from None
    if len(s) != 4 or min(s) < 1:
        raise FloatNNError(f"in_shape must be (N, H, W, C) with positive sizes, got {in_shape!r}")
    return s


def avgpool_forward(x, kernel, stride, pad, out_hw) -> np.ndarray:
    """Average pool, TFLite AVERAGE_POOL_2D in float.

    ``y[n,oy,ox,c] = (1/count) * sum x[n,iy,ix,c]`` over the window positions inside the image
    (iy in [oy*sh - pt, oy*sh - pt + KH) clipped to [0, H), ix likewise); ``count`` is the number of
    those positions, as TFLM counts them (padding is neither summed nor counted).

    Args:
        x: float32[N, H, W, C]; kernel, stride: (h, w) >= 1; pad: (top, left) >= 0;
        out_hw: (OH, OW), e.g. from ``conv_geometry(padding, (H, W), kernel, stride)``.

    Returns:
        float32[N, OH, OW, C].
    """
    x = _float_array("x", x, 4, "NHWC")
    kernel, stride, pad, out_hw = _pool_args("avgpool_forward", x.shape, kernel, stride, pad, out_hw)
    y = np.empty((x.shape[0], out_hw[0], out_hw[1], x.shape[3]), dtype=x.dtype)
    _pool(_AVG, x, y, _NO_ARGMAX, kernel[0], kernel[1], stride[0], stride[1], pad[0], pad[1])
    return y


def avgpool_backward(dy, in_shape, kernel, stride, pad) -> np.ndarray:
    """Gradient of :func:`avgpool_forward`: each ``dy[n,oy,ox,c] / count`` is added to every in-image pixel of its window.

    Args:
        dy: float32[N, OH, OW, C]; in_shape: (N, H, W, C) of the forward input; kernel, stride, pad
            as the forward call.

    Returns:
        dx float32[N, H, W, C].
    """
    dy = _float_array("dy", dy, 4, "NHWC")
    in_shape = _in_shape(in_shape)
    if dy.shape[0] != in_shape[0] or dy.shape[3] != in_shape[3]:
        raise FloatNNError(f"avgpool_backward: dy {dy.shape} and in_shape {in_shape} differ in N or C")
    kernel, stride, pad, _ = _pool_args("avgpool_backward", in_shape, kernel, stride, pad, dy.shape[1:3])
    dx = np.zeros(in_shape, dtype=dy.dtype)
    _pool(_AVG_ADJOINT, dx, dy, _NO_ARGMAX, kernel[0], kernel[1], stride[0], stride[1], pad[0], pad[1])
    return dx


def maxpool_forward(x, kernel, stride, pad, out_hw) -> tuple:
    """Max pool, TFLite MAX_POOL_2D in float: the maximum over the window positions inside the image.

    Args:
        x: float32[N, H, W, C]; kernel, stride, pad, out_hw as :func:`avgpool_forward`.

    Returns:
        (y float32[N, OH, OW, C], argmax int64[N, OH, OW, C]): ``argmax`` is the flat index into
        ``x.ravel()`` of the element each output took (the first maximum in scan order fy, fx).
    """
    x = _float_array("x", x, 4, "NHWC")
    kernel, stride, pad, out_hw = _pool_args("maxpool_forward", x.shape, kernel, stride, pad, out_hw)
    shape = (x.shape[0], out_hw[0], out_hw[1], x.shape[3])
    y = np.empty(shape, dtype=x.dtype)
    arg = np.empty(shape, dtype=np.int64)
    _pool(_MAX, x, y, arg, kernel[0], kernel[1], stride[0], stride[1], pad[0], pad[1])
    return y, arg


def maxpool_backward(dy, argmax, in_shape) -> np.ndarray:
    """Gradient of :func:`maxpool_forward`: ``dx.ravel()[argmax] += dy`` (each output's gradient goes to the element it took).

    Args:
        dy: float32[N, OH, OW, C]; argmax: int64[N, OH, OW, C] from the forward call;
        in_shape: (N, H, W, C) of the forward input.

    Returns:
        dx float32[N, H, W, C].
    """
    dy = _float_array("dy", dy, 4, "NHWC")
    in_shape = _in_shape(in_shape)
    argmax = np.asarray(argmax)
    if argmax.dtype != np.int64 or argmax.shape != dy.shape:
        raise FloatNNError(f"argmax must be the int64 array maxpool_forward returned, shape {dy.shape}; "
                           f"got {argmax.dtype}{argmax.shape}")
    size = int(np.prod(in_shape))
    if argmax.size and (argmax.min() < 0 or argmax.max() >= size):
        raise FloatNNError(f"argmax holds indices outside an input of shape {in_shape}; pass the forward call's in_shape")
    dx = np.zeros(in_shape, dtype=dy.dtype)
    _scatter_add(dy.reshape(-1), np.ascontiguousarray(argmax).reshape(-1), dx.reshape(-1))
    return dx


def gap_forward(x) -> np.ndarray:
    """Global average pool (the int8 graph's MEAN over H, W): ``y[n,c] = mean_{h,w} x[n,h,w,c]``.

    Args:
        x: float32[N, H, W, C]. Returns float32[N, C] (summed in float64).
    """
    x = _float_array("x", x, 4, "NHWC")
    n, h, w, c = x.shape
    return (x.reshape(n, h * w, c).sum(axis=1, dtype=np.float64) / (h * w)).astype(x.dtype)


def gap_backward(dy, in_shape) -> np.ndarray:
    """Gradient of :func:`gap_forward`: ``dx[n,h,w,c] = dy[n,c] / (H*W)``.

    Args:
        dy: float32[N, C]; in_shape: (N, H, W, C). Returns float32[N, H, W, C].
    """
    dy = _float_array("dy", dy, 2, "[N, C]")
    n, h, w, c = _in_shape(in_shape)
    if dy.shape != (n, c):
        raise FloatNNError(f"gap_backward: dy {dy.shape} must be [N={n}, C={c}] for in_shape {in_shape}")
    g = dy / dy.dtype.type(h * w)
    return np.ascontiguousarray(np.broadcast_to(g[:, None, None, :], (n, h, w, c)))


def _factor(factor) -> int:
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise FloatNNError(f"upsample factor must be an int >= 1, got {factor!r}")
    return int(factor)


def upsample_forward(x, factor) -> np.ndarray:
    """Nearest-neighbour upsampling by an integer factor: ``y[n, i, j, c] = x[n, i // f, j // f, c]``.

    Args:
        x: float32[N, H, W, C]; factor: int >= 1. Returns float32[N, H*f, W*f, C].
    """
    x = _float_array("x", x, 4, "NHWC")
    f = _factor(factor)
    n, h, w, c = x.shape
    return np.broadcast_to(x[:, :, None, :, None, :], (n, h, f, w, f, c)).reshape(n, h * f, w * f, c)


def upsample_backward(dy, factor) -> np.ndarray:
    """Gradient of :func:`upsample_forward`: ``dx[n,i,j,c] = sum of dy over the f x f block it was copied to``.

    Args:
        dy: float32[N, H*f, W*f, C]; factor: int >= 1. Returns float32[N, H, W, C].
    """
    dy = _float_array("dy", dy, 4, "NHWC")
    f = _factor(factor)
    n, hf, wf, c = dy.shape
    if hf % f or wf % f:
        raise FloatNNError(f"upsample_backward: dy {dy.shape} spatial size is not a multiple of factor {f}")
    return dy.reshape(n, hf // f, f, wf // f, f, c).sum(axis=(2, 4))


# ----------------------------------------------------------------------------------------------
# activations and clamps


def _kind(kind) -> str:
    if kind not in ACTIVATION_KINDS:
        raise FloatNNError(f"activation kind must be one of {ACTIVATION_KINDS}, got {kind!r}")
    return kind


def activation_forward(x, kind) -> np.ndarray:
    """Fused activation: "none" (a copy of x), "relu" ``max(x, 0)``, "relu6" ``min(max(x, 0), 6)``.

    Args:
        x: float32 array of any shape; kind: "none", "relu" or "relu6". Returns a new array like x.
    """
    x = _float_array("x", x)
    kind = _kind(kind)
    if kind == "none":
        return x.copy()
    if kind == "relu":
        return np.maximum(x, x.dtype.type(0))
    return np.clip(x, x.dtype.type(0), x.dtype.type(6))


def activation_backward(dy, y, kind) -> np.ndarray:
    """Gradient of :func:`activation_forward` from its *output* y: pass where y is strictly inside the clamp.

    "none": dy; "relu": ``dy * (y > 0)``; "relu6": ``dy * (0 < y < 6)``. (At y == 0 the
    derivative is taken as 0, the usual subgradient; on the int8 graph y is the clamped value.)

    Args:
        dy, y: float32 arrays of the same shape. Returns float32, shape of dy.
    """
    dy = _float_array("dy", dy)
    y = _float_array("y", y, dtype=dy.dtype)
    kind = _kind(kind)
    if dy.shape != y.shape:
        raise FloatNNError(f"activation_backward: dy {dy.shape} and y {y.shape} must have the same shape")
    if kind == "none":
        return dy.copy()
    mask = y > 0
    if kind == "relu6":
        mask &= y < 6
    return np.where(mask, dy, dy.dtype.type(0))


def clamp_mask_backward(dy, pre, lo, hi) -> np.ndarray:
    """Straight-through gradient of a clamp ``min(max(pre, lo), hi)``: ``dy * (lo < pre < hi)``.

    The BP issue uses it at the int8 clamps: ``pre`` is the value before the clamp (e.g. the
    requantized accumulator in output units), ``lo``/``hi`` the activation range (act_min, act_max),
    so the gradient stops where the int8 output saturated. Use -inf/inf for a one-sided clamp.

    Args:
        dy: float32 array; pre: float array of the same shape (any float dtype; compared as is);
        lo, hi: scalars or arrays broadcastable to pre's shape (e.g. per channel [C]), lo <= hi.

    Returns:
        float32 array like dy.
    """
    dy = _float_array("dy", dy)
    pre = _float_array("pre", pre)
    if dy.shape != pre.shape:
        raise FloatNNError(f"clamp_mask_backward: dy {dy.shape} and pre {pre.shape} must have the same shape")
    lo = np.asarray(lo)
    hi = np.asarray(hi)
    try:
        np.broadcast_shapes(lo.shape, pre.shape)
        np.broadcast_shapes(hi.shape, pre.shape)
    except ValueError:
        raise FloatNNError(f"clamp_mask_backward: lo {lo.shape} / hi {hi.shape} do not broadcast to {pre.shape}") from None
    if np.any(lo > hi):
        raise FloatNNError("clamp_mask_backward: lo must be <= hi")
    return np.where((pre > lo) & (pre < hi), dy, dy.dtype.type(0))


# ----------------------------------------------------------------------------------------------
# batch norm


def batchnorm_forward(x, gamma, beta, mean, var, eps, training) -> tuple:
    """Batch normalization over every axis but the last (channels).

    ``y = gamma * (x - mu) * inv_std + beta`` with ``inv_std = 1 / sqrt(sigma2 + eps)``. In training
    ``mu``/``sigma2`` are the batch mean and (biased) variance over all axes but the last; otherwise
    the given running ``mean``/``var``.

    Args:
        x: float32[..., C] (NHWC or [N, C]); gamma, beta, mean, var: float32[C] (mean/var may be None
            in training); eps: float > 0; training: bool.

    Returns:
        (y float32 like x, cache): ``cache`` is a dict with ``xhat`` (float32 like x),
        ``inv_std``/``gamma`` (float32[C]), ``training``, and in training ``mean``, ``var`` (the
        batch statistics, float32[C], biased variance) and ``count`` (values per channel), so the
        caller can update its running statistics (e.g. with ``var * count / (count - 1)``).
    """
    x = _float_array("x", x)
    if x.ndim < 2:
        raise FloatNNError(f"batchnorm x must be [..., C] with at least a batch axis, got shape {x.shape}")
    c = x.shape[-1]
    dt = x.dtype

    def vec(name, v):
        v = _float_array(name, v, 1, "[C]", dt)
        if v.shape != (c,):
            raise FloatNNError(f"batchnorm {name} must have shape ({c},) (one per channel), got {v.shape}")
        return v

    gamma, beta = vec("gamma", gamma), vec("beta", beta)
    if not float(eps) > 0:
        raise FloatNNError(f"batchnorm eps must be > 0, got {eps!r}")
    x2 = x.reshape(-1, c)
    count = x2.shape[0]
    if training:
        if count < 1:
            raise FloatNNError("batchnorm in training needs at least one value per channel")
        mu64 = x2.sum(axis=0, dtype=np.float64) / count
        var64 = np.square(x2 - mu64.astype(dt), dtype=np.float64).sum(axis=0) / count
        mu, sigma2 = mu64.astype(dt), var64.astype(dt)
    else:
        if mean is None or var is None:
            raise FloatNNError("batchnorm in inference needs the running mean and var")
        mu, sigma2 = vec("mean", mean), vec("var", var)
        if np.any(sigma2 < 0):
            raise FloatNNError("batchnorm var must be >= 0")
    inv_std = (1.0 / np.sqrt(sigma2.astype(np.float64) + float(eps))).astype(dt)
    xhat = (x2 - mu) * inv_std
    y = (xhat * gamma + beta).reshape(x.shape)
    cache = {"xhat": xhat.reshape(x.shape), "inv_std": inv_std, "gamma": gamma, "training": bool(training)}
    if training:
        cache.update(mean=mu, var=sigma2, count=count)
    return y, cache


def batchnorm_backward(dy, cache) -> tuple:
    """Gradients of :func:`batchnorm_forward` given its cache.

    ``dbeta = sum dy``, ``dgamma = sum dy * xhat`` (sums over all axes but the last). In training
    (batch statistics depend on x): ``dx = inv_std * (g - mean(g) - xhat * mean(g * xhat))`` with
    ``g = dy * gamma``; in inference: ``dx = dy * gamma * inv_std``.

    Args:
        dy: float32 like the forward x; cache: the dict batchnorm_forward returned.

    Returns:
        (dx float32 like dy, dgamma float32[C], dbeta float32[C]).
    """
    try:
        xhat, inv_std, gamma, training = cache["xhat"], cache["inv_std"], cache["gamma"], cache["training"]
    except (KeyError, TypeError):
        raise FloatNNError("batchnorm_backward needs the cache dict batchnorm_forward returned") from None
    dy = _float_array("dy", dy, dtype=xhat.dtype)
    if dy.shape != xhat.shape:
        raise FloatNNError(f"batchnorm_backward: dy {dy.shape} must have the forward input's shape {xhat.shape}")
    c = dy.shape[-1]
    dy2 = dy.reshape(-1, c)
    xh2 = xhat.reshape(-1, c)
    dbeta = _sum_rows(dy2)
    dgamma = (dy2 * xh2).sum(axis=0, dtype=np.float64).astype(dy.dtype)
    if training:
        m = dy2.shape[0]
        g = dy2 * gamma
        mean_g = (dbeta.astype(np.float64) * gamma / m).astype(dy.dtype)
        mean_gx = (dgamma.astype(np.float64) * gamma / m).astype(dy.dtype)
        dx = (g - mean_g - xh2 * mean_gx) * inv_std
    else:
        dx = dy2 * (gamma * inv_std)
    return dx.reshape(dy.shape), dgamma, dbeta


# ----------------------------------------------------------------------------------------------
# loss


def softmax_cross_entropy(logits, labels) -> tuple:
    """Mean softmax cross-entropy and its gradient, numerically stable (log-sum-exp with the max subtracted).

    ``loss_i = logsumexp(logits_i) - logits_i[label_i]``; ``dlogits = (softmax(logits) - onehot) / N``.

    Args:
        logits: float32[N, K]; labels: int array [N] with values in [0, K).

    Returns:
        (mean_loss float, dlogits float32[N, K] (already divided by N), per_sample_loss float32[N]).
    """
    logits = _float_array("logits", logits, 2, "[N, K]")
    labels = np.asarray(labels)
    n, k = logits.shape
    if labels.dtype.kind not in "iu" or labels.shape != (n,):
        raise FloatNNError(f"labels must be an integer array of shape ({n},), got {labels.dtype}{labels.shape}")
    if n == 0:
        raise FloatNNError("softmax_cross_entropy needs at least one sample")
    if labels.min() < 0 or labels.max() >= k:
        raise FloatNNError(f"labels must be in [0, {k}), got values in [{labels.min()}, {labels.max()}]")
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    per = (np.log(s[:, 0]) - z[rows, labels]).astype(logits.dtype)
    d = e / s
    d[rows, labels] -= 1
    d /= d.dtype.type(n)
    return float(per.mean(dtype=np.float64)), d, per
