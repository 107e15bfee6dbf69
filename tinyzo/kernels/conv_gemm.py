"""CONV_2D (and FULLY_CONNECTED) through an exact float GEMM (BLAS), requantization fused.

A float32 product of int8 values is exact while the dot length K <= 1024 (every partial sum is an
integer below 2**24 in magnitude, so any summation order gives the same float); longer dots use
float64. For long dot products BLAS's register-blocked micro-kernels beat the integer loops of
:mod:`tinyzo.kernels.conv_int`. :func:`conv2d_s8_gemm` runs the whole layer in one call, block of
output pixels by block of output pixels:

1. gather each pixel's receptive field straight into a float buffer (int8 -> float in the same
   pass; runs of ``KW*C`` contiguous input values are copied at once); positions outside the image
   get the input zero point, whose offset-corrected value is 0, so they contribute nothing, exactly
   as TFLM skips them;
2. ``raw = cols @ wt`` with ``np.dot`` (BLAS sgemm/dgemm, called from Numba);
3. :func:`requantize_gemm_s8`: ``acc = wrap32(raw + const)`` with ``const = bias + input_offset *
   sum(w)`` (C's int32 sum, wrapped), then the vectorized requantization of
   :mod:`tinyzo.kernels.requant`; the int8 results are stored once, while the block is in cache.

Layouts as TFLite: x NHWC, filter OHWI (flattened to K = KH*KW*C), out NHWC.
"""

import numpy as np
from numba import njit

from tinyzo.kernels.requant import requantize_row_s8


@njit(cache=True, nogil=True)
def requantize_gemm_s8(raw, const_tile, rq, output_offset, act_min, act_max, rounding, acc, out):
    """``out = clamp(MBQM(wrap32(raw + const)) + output_offset)`` for a float GEMM result.

    Args:
        raw: float32/float64[M, O], exact integer sums ``sum_k x * w`` of raw int8 values, C-contiguous.
        const_tile: int32[B*O], ``bias + input_offset * sum_k w`` wrapped to int32, tiled B times.
        rq: int32[3 or 5, >= B*O], requantization parameters tiled B times
            (:func:`tinyzo.kernels.requant.requant_params`).
        output_offset, act_min, act_max: ints in [-128, 127]; rounding: 0 double (TFLM), 1 single.
        acc: int32[B*O] scratch.
        out: int8[M, O], C-contiguous, written.
    """
    m_rows, o = raw.shape
    block = acc.shape[0] // o
    rf = raw.reshape(-1)
    of = out.reshape(-1)
    for r0 in range(0, m_rows, block):
        start = r0 * o
        length = min(block, m_rows - r0) * o
        src = rf[start:start + length]
        for i in range(length):
            acc[i] = np.int32(np.int64(src[i]) + np.int64(const_tile[i]))
        requantize_row_s8(acc[:length], rq, output_offset, act_min, act_max, rounding, of[start:start + length])


@njit(cache=True, nogil=True, inline="always")
def gather_patch(xf, x_shape, b, oy, ox, kh, kw, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w, pad_value,
                 dst, d0):
    """dst[d0 : d0 + KH*KW*C] = the receptive field of output (b, oy, ox) in OHWI order, pad_value outside the image.

    xf: int8[N*H*W*C], the C-contiguous NHWC input flattened; x_shape: its (N, H, W, C);
    dst: flat, any numeric dtype (int8 for the integer kernel, float for GEMM); d0: uint64 offset.
    Flat arrays and unsigned offsets: an array view per tap would cost atomic reference counting,
    more than the copy itself for a small C.
    """
    _, h, w, c = x_shape
    span = kw * c
    for fy in range(kh):
        iy = oy * stride_h - pad_h + dil_h * fy
        row = d0 + np.uint64(fy * span)
        ix0 = ox * stride_w - pad_w
        ix1 = ix0 + dil_w * (kw - 1)
        if iy < 0 or iy >= h:
            for j in range(np.uint64(span)):
                dst[row + j] = pad_value
        elif dil_w == 1 and ix0 >= 0 and ix1 < w:  # the KW taps are adjacent input pixels
            src = np.uint64(((b * h + iy) * w + ix0) * c)
            for j in range(np.uint64(span)):
                dst[row + j] = xf[src + j]
        else:
            for fx in range(kw):
                ix = ix0 + dil_w * fx
                d = row + np.uint64(fx * c)
                if ix >= 0 and ix < w:
                    src = np.uint64(((b * h + iy) * w + ix) * c)
                    for j in range(np.uint64(c)):
                        dst[d + j] = xf[src + j]
                else:
                    for j in range(np.uint64(c)):
                        dst[d + j] = pad_value


@njit(cache=True, nogil=True, inline="always")
def window_params(p):
    """The window fields of a :data:`tinyzo.kernels.conv_int.CONV_PARAMS` record as locals:
    ``(kh, kw, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w, pad_value)`` (the arguments of :func:`gather_patch`)."""
    return (p["kh"], p["kw"], p["stride_h"], p["stride_w"], p["dil_h"], p["dil_w"], p["pad_h"], p["pad_w"],
            p["pad_value"])


@njit(cache=True, nogil=True, inline="always")
def next_pixel(b, oy, ox, oh, ow):
    """The output pixel after ``(b, oy, ox)`` in NHWC order (output size OH x OW)."""
    ox += 1
    if ox == ow:
        ox = 0
        oy += 1
        if oy == oh:
            oy = 0
            b += 1
    return b, oy, ox


@njit(cache=True, nogil=True)
def conv2d_s8_gemm(x, wt, const_tile, rq, params, cols, raw, acc, out):
    """int8 CONV_2D (TFLM ``ConvPerChannel``): exact float GEMM per block of pixels + fused requantization.

    Args:
        x: int8[N, H, W, C], C-contiguous.
        wt: float32[K, O] (K <= 1024) or float64[K, O]: the filter's int8 values, K = KH*KW*C (OHWI).
        const_tile: int32[B*O], ``bias + input_offset * sum_k w`` wrapped to int32, tiled B times.
        rq: int32[3 or 5, >= B*O], requantization parameters tiled B times
            (:func:`tinyzo.kernels.requant.requant_params`).
        params: :data:`tinyzo.kernels.conv_int.CONV_PARAMS` [1] (filter size, strides, dilations,
            leading padding, pad_value = input zero point, output offset, clamp, rounding).
        cols: float[B, K] scratch (dtype of wt); raw: float[B, O] scratch; acc: int32[B*O] scratch.
        out: int8[N, OH, OW, O], C-contiguous, written.
    """
    p = params[0]
    kh, kw, sh, sw, dh, dw, ph, pw, pv = window_params(p)
    n = x.shape[0]
    _, oh, ow, o = out.shape
    block, k_len = cols.shape
    total = n * oh * ow
    out2 = out.reshape(total, o)
    # unpadded 1x1, stride 1: a block of pixels is one contiguous run of the input
    pointwise = kh == 1 and kw == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    ku = np.uint64(k_len)
    b = oy = ox = 0  # the first pixel of the block
    for first in range(0, total, block):
        cnt = min(block, total - first)
        if pointwise:
            src = xf[first * k_len:(first + cnt) * k_len]
            for j in range(cnt * k_len):
                cf[j] = src[j]
        else:
            for i in range(cnt):
                gather_patch(xf, x.shape, b, oy, ox, kh, kw, sh, sw, dh, dw, ph, pw, pv, cf, np.uint64(i) * ku)
                b, oy, ox = next_pixel(b, oy, ox, oh, ow)
        np.dot(cols[:cnt], wt, raw[:cnt])
        requantize_gemm_s8(raw[:cnt], const_tile, rq, p["output_offset"], p["act_min"], p["act_max"],
                           p["rounding"], acc, out2[first:first + cnt])
