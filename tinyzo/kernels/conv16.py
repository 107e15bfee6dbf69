"""Jitted 16x8 convolution kernels: int16 activations, int8 weights, int64 (or int32) accumulators.

Bit-exact with the int16 overloads of TFLM's reference ``ConvPerChannel``,
``DepthwiseConvPerChannel`` and ``FullyConnected(PerChannel)`` and equal to
:mod:`tinyzo.spec.conv16` (tests/test_conv16x8.py):

* :func:`conv2d_s16_gemm` (CONV_2D, also grouped through a zero-expanded filter) and
  FULLY_CONNECTED (:func:`requantize_gemm_s16` after one GEMM) compute the sums ``sum_k w * x`` by an
  exact float64 GEMM: every product has magnitude <= 255 * 2**15 < 2**23, so every partial sum of
  up to 2**30 terms is an integer below 2**53 and float64 holds it exactly, in any summation order.
  TFLM skips padding positions; the patches here hold 0 there (the input zero point of 16x8 is 0),
  which adds nothing.
* :func:`depthwise_conv2d_s16`: a direct loop, channels innermost, int64 accumulators.

The requantization is TFLM's: the int64 accumulator ``sum + bias`` through
:func:`tinyzo.kernels.arith.multiply_by_quantized_multiplier_int64`, or, for an int32 bias, the
accumulator wrapped to int32 (C's int32 sum, modulo 2**32) through the int32
``MultiplyByQuantizedMultiplier`` (double or single rounding). Then ``+ output_offset`` (0 except
for FULLY_CONNECTED, whose kernel adds it) and the clamp.
"""

import numpy as np
from numba import njit

from tinyzo.kernels.arith import multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_int64, wrap_int32
from tinyzo.kernels.conv_gemm import gather_patch


@njit(cache=True, nogil=True, inline="always")
def _requant16(s, multiplier, shift, acc32, rounding, output_offset, act_min, act_max):
    """One int64 accumulator (sum + bias) -> clamped output value (int64)."""
    if acc32:
        v = multiply_by_quantized_multiplier(wrap_int32(s), multiplier, shift, rounding)
    else:
        v = multiply_by_quantized_multiplier_int64(s, multiplier, shift)
    v = np.int64(v) + np.int64(output_offset)
    if v < act_min:
        v = np.int64(act_min)
    elif v > act_max:
        v = np.int64(act_max)
    return v


@njit(cache=True, nogil=True)
def requantize_gemm_s16(raw, bias, multiplier, shift, acc32, rounding, output_offset, act_min, act_max, out):
    """``out[r, j] = clamp(MBQM(raw[r, j] + bias[j]) + output_offset)`` for an exact float64 GEMM result.

    Args:
        raw: float64[M, O], exact integer sums ``sum_k w * x`` (|value| < 2**53), C-contiguous.
        bias: int64[O] (an int32 bias widened; zeros when absent).
        multiplier, shift: int32[O] (per-tensor parameters repeated); shift <= 14 when ``acc32`` is 0.
        acc32: 1 for TFLM's int32 accumulator (int32 bias), 0 for the int64 one.
        rounding: 0 double (TFLM), 1 single; used by the int32 requantization only.
        output_offset: the output zero point (0 for 16x8 CONV_2D, which TFLM does not offset).
        act_min, act_max: clamp bounds within [-32768, 32767].
        out: int16[M, O], written.
    """
    m_rows, o = raw.shape
    for r in range(m_rows):
        for j in range(o):
            s = np.int64(raw[r, j]) + np.int64(bias[j])
            out[r, j] = _requant16(s, multiplier[j], shift[j], acc32, rounding, output_offset, act_min, act_max)


@njit(cache=True, nogil=True)
def conv2d_s16_gemm(x, wt, bias, multiplier, shift, params, acc32, cols, raw, out):
    """16x8 CONV_2D (TFLM's int16 ``ConvPerChannel``): float64 GEMM per block of pixels + requantization.

    Args:
        x: int16[N, H, W, C], C-contiguous.
        wt: float64[K, O], the filter's int8 values, K = KH*KW*C (OHWI flattened; a grouped filter
            expanded with zeros for the input channels outside each output channel's group).
        bias: int64[O]; multiplier, shift: int32[O]; acc32: 1 for an int32 accumulator, else 0.
        params: :data:`tinyzo.kernels.conv_int.CONV_PARAMS` [1] (filter size, strides, dilations,
            leading padding, pad_value 0, output_offset 0, clamp bounds in [-32768, 32767], rounding).
        cols: float64[B, K] scratch; raw: float64[B, O] scratch (B pixels per block).
        out: int16[N, OH, OW, O], C-contiguous, written.
    """
    p = params[0]
    kh, kw = p["kh"], p["kw"]
    sh, sw, dh, dw = p["stride_h"], p["stride_w"], p["dil_h"], p["dil_w"]
    ph, pw, pv = p["pad_h"], p["pad_w"], p["pad_value"]
    n = x.shape[0]
    _, oh, ow, o = out.shape
    block, k_len = cols.shape
    total = n * oh * ow
    out2 = out.reshape(total, o)
    xf = x.reshape(-1)
    cf = cols.reshape(-1)
    ku = np.uint64(k_len)
    i = 0
    first = 0
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                gather_patch(xf, x.shape, b, oy, ox, kh, kw, sh, sw, dh, dw, ph, pw, pv, cf, np.uint64(i) * ku)
                i += 1
                if i == block or first + i == total:
                    np.dot(cols[:i], wt, raw[:i])
                    requantize_gemm_s16(raw[:i], bias, multiplier, shift, acc32, p["rounding"], p["output_offset"],
                                        p["act_min"], p["act_max"], out2[first:first + i])
                    first += i
                    i = 0


@njit(cache=True, nogil=True)
def depthwise_conv2d_s16(x, w, bias, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w, depth_multiplier,
                         multiplier, shift, act_min, act_max, acc, out):
    """16x8 DEPTHWISE_CONV_2D (TFLM's int16 ``DepthwiseConvPerChannel``): int64 accumulators, no offsets.

    Args:
        x: int16[N, H, W, C], C-contiguous; w: int8[1, KH, KW, C*M], C-contiguous, M = depth_multiplier;
        bias: int64[C*M].
        stride_*, dil_* >= 1; pad_h, pad_w: leading padding (TFLM ComputePaddingWithOffset).
        multiplier, shift: int32[C*M], shift <= 14; act_min, act_max within [-32768, 32767].
        acc: int64[C*M] scratch.
        out: int16[N, OH, OW, C*M], written. Output channel ``ic*M + m`` reads input channel ``ic``;
        positions outside the image are skipped, as TFLM does.

    Per output pixel the C*M accumulators start at the bias and each tap inside the image adds
    ``w * x`` (an int8 x int16 product, exact in int32, widened to int64), channels innermost over
    flat arrays so that the loop vectorizes; the sum of a channel is TFLM's, in its order.
    """
    n, h, wd, c = x.shape
    _, kh, kw, oc_total = w.shape
    _, oh, ow, _ = out.shape
    xf = x.reshape(-1)
    wf = w.reshape(-1)
    of = out.reshape(-1)
    cu = np.uint64(c)
    ocu = np.uint64(oc_total)
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                for k in range(ocu):
                    acc[k] = np.int64(bias[k])
                for fy in range(kh):
                    iy = oy * stride_h - pad_h + dil_h * fy
                    if iy < 0 or iy >= h:
                        continue
                    for fx in range(kw):
                        ix = ox * stride_w - pad_w + dil_w * fx
                        if ix < 0 or ix >= wd:
                            continue
                        xo = np.uint64(((b * h + iy) * wd + ix) * c)
                        wo = np.uint64((fy * kw + fx) * oc_total)
                        if depth_multiplier == 1:
                            for k in range(cu):
                                acc[k] += np.int64(np.int32(wf[wo + k]) * np.int32(xf[xo + k]))
                        else:
                            for ic in range(cu):
                                xv = np.int32(xf[xo + ic])
                                o0 = ic * np.uint64(depth_multiplier)
                                for m in range(np.uint64(depth_multiplier)):
                                    acc[o0 + m] += np.int64(np.int32(wf[wo + o0 + m]) * xv)
                oo = np.uint64(((b * oh + oy) * ow + ox) * oc_total)
                for k in range(ocu):
                    of[oo + k] = _requant16(acc[k], multiplier[k], shift[k], 0, 0, 0, act_min, act_max)
