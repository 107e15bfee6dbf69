"""Jitted int8 pooling and reduction kernels: AVERAGE_POOL_2D, MAX_POOL_2D, MEAN; int16 pools (``_s16``).

Bit-exact with TFLite Micro's ``reference_integer_ops::AveragePool`` /
``MaxPool`` and ``reference_ops::QuantizedMeanOrSum`` (the path TFLM's
``EvalIntegerMean`` takes for int8), and equal to :mod:`tinyzo.spec.pool`
(property-tested). Activations NHWC, batched; outputs caller-provided.
"""

import numpy as np
from numba import njit

from tinyzo.kernels.arith import clamp_int8, multiply_by_quantized_multiplier, wrap_int32


@njit(cache=True, inline="always")
def _c_div(a, b):
    """C integer division (truncates toward zero) of int64 ``a`` by positive ``b``."""
    if a >= 0:
        return a // b
    return -((-a) // b)


@njit(cache=True, inline="always")
def pool_window(o, stride, pad, filter_size, in_size):
    """Input range ``[lo, hi)`` of output position ``o``'s pooling window along one axis.

    TFLM's pooling loops: the window starts at ``start = o * stride - pad`` and its filter positions
    ``max(0, -start) <= f < min(filter_size, in_size - start)`` are the ones inside the image, i.e.
    the input indices ``lo = max(start, 0)`` to ``hi = min(start + filter_size, in_size)`` (exclusive),
    in increasing order. Also used by the float pools of :mod:`tinyzo.fp.kernels`.
    """
    start = o * stride - pad
    return max(start, 0), min(start + filter_size, in_size)


@njit(cache=True, inline="always")
def _window_average(x, b, y0, y1, x0, x1, c):
    """TFLM's int8 average of channel c over rows y0..y1-1, columns x0..x1-1: ties round away from zero."""
    count = np.int64((y1 - y0) * (x1 - x0))
    acc = np.int64(0)
    for iy in range(y0, y1):
        for ix in range(x0, x1):
            acc += np.int64(x[b, iy, ix, c])
    if acc > 0:
        return _c_div(acc + count // 2, count)
    return _c_div(acc - count // 2, count)


@njit(cache=True, inline="always")
def _window_max(x, b, y0, y1, x0, x1, c, lowest):
    """TFLM's maximum of channel c over rows y0..y1-1, columns x0..x1-1, starting from ``lowest``
    (the type's minimum: -128 for int8, -32768 for int16)."""
    m = np.int64(lowest)
    for iy in range(y0, y1):
        for ix in range(x0, x1):
            m = max(m, np.int64(x[b, iy, ix, c]))
    return m


@njit(cache=True, nogil=True)
def _pool(x, stride_h, stride_w, filter_h, filter_w, pad_h, pad_w, act_min, act_max, use_max, lowest, out):
    """The loop of the int8 and int16 pools: per output (b, oy, ox, c), the window clipped to the image
    (:func:`pool_window`) reduced by :func:`_window_max` from ``lowest`` (``use_max``) or
    :func:`_window_average`, clamped to ``[act_min, act_max]``."""
    n, in_h, in_w, ch = x.shape
    out_h = out.shape[1]
    out_w = out.shape[2]
    for b in range(n):
        for oy in range(out_h):
            for ox in range(out_w):
                y0, y1 = pool_window(oy, stride_h, pad_h, filter_h, in_h)
                x0, x1 = pool_window(ox, stride_w, pad_w, filter_w, in_w)
                for c in range(ch):
                    if use_max:
                        v = _window_max(x, b, y0, y1, x0, x1, c, lowest)
                    else:
                        v = _window_average(x, b, y0, y1, x0, x1, c)
                    out[b, oy, ox, c] = min(max(v, np.int64(act_min)), np.int64(act_max))


@njit(cache=True, nogil=True)
def average_pool_s8(x, stride_h, stride_w, filter_h, filter_w, pad_h, pad_w, act_min, act_max, out):
    """Int8 AVERAGE_POOL_2D (TFLM ``reference_integer_ops::AveragePool``).

    For each output (b, oy, ox, c): sum the input values of the filter window
    clipped to the image (int32; padding is not counted), ``count`` = number
    of values, ``avg = (sum + count/2)/count`` if ``sum > 0`` else
    ``(sum - count/2)/count`` with C truncating division (so ties round away
    from zero), clamp to ``[act_min, act_max]``.

    Args:
        x: int8[N, H, W, C]. stride_h/stride_w, filter_h/filter_w >= 1.
        pad_h, pad_w: top/left padding from ``ComputePaddingHeightWidth``.
        act_min, act_max: clamp of the fused activation, within [-128, 127].
        out: int8[N, OH, OW, C], written. Every window must hold at least one
            input element (checked by the caller; TFLM fails otherwise).
    """
    _pool(x, stride_h, stride_w, filter_h, filter_w, pad_h, pad_w, act_min, act_max, False, -128, out)


@njit(cache=True, nogil=True)
def max_pool_s8(x, stride_h, stride_w, filter_h, filter_w, pad_h, pad_w, act_min, act_max, out):
    """Int8 MAX_POOL_2D (TFLM ``reference_integer_ops::MaxPool``).

    The maximum of the window clipped to the image, starting from -128, then
    clamped to ``[act_min, act_max]``. Arguments as :func:`average_pool_s8`.
    """
    _pool(x, stride_h, stride_w, filter_h, filter_w, pad_h, pad_w, act_min, act_max, True, -128, out)


@njit(cache=True, nogil=True)
def average_pool_s16(x, stride_h, stride_w, filter_h, filter_w, pad_h, pad_w, act_min, act_max, out):
    """Int16 AVERAGE_POOL_2D (TFLM ``reference_integer_ops::AveragePool``, int16 overload): :func:`average_pool_s8`'s
    loop on int16[N, H, W, C] -> int16[N, OH, OW, C]; act_min/act_max within int16. TFLM sums in int32: every
    window must hold at most 65535 elements (checked by the caller)."""
    average_pool_s8(x, stride_h, stride_w, filter_h, filter_w, pad_h, pad_w, act_min, act_max, out)


@njit(cache=True, nogil=True)
def max_pool_s16(x, stride_h, stride_w, filter_h, filter_w, pad_h, pad_w, act_min, act_max, out):
    """Int16 MAX_POOL_2D (TFLM ``reference_integer_ops::MaxPool``, int16 overload).

    The maximum of the window clipped to the image, starting from -32768, then clamped to
    ``[act_min, act_max]``. ``x``: int16[N, H, W, C]; ``out``: int16[N, OH, OW, C]; other arguments as
    :func:`average_pool_s8`.
    """
    _pool(x, stride_h, stride_w, filter_h, filter_w, pad_h, pad_w, act_min, act_max, True, -32768, out)


@njit(cache=True, nogil=True)
def mean_s8(x, input_zero_point, multiplier, shift, output_zero_point, rounding, out):
    """Int8 MEAN over the last axis of a 2-D view (TFLM ``QuantizedMeanOrSum``, mean).

    The caller moves the reduced axes last and flattens: ``x`` is int8[M, K]
    with K the number of reduced elements. For each row:
    ``sum`` (int32, wrapping), ``out = clamp(MBQM(int32(sum - input_zp * K),
    multiplier, shift) + output_zp, -128, 127)``.

    Args:
        x: int8[M, K], K >= 1.
        multiplier, shift: the MEAN multiplier with ``1/K`` already folded in
            (:func:`tinyzo.spec.pool.mean_output_multiplier`); shift in [-31, 31].
        input_zero_point, output_zero_point: in [-128, 127].
        rounding: 0 double (TFLM), 1 single.
        out: int8[M], written.
    """
    m_rows, k = x.shape
    for i in range(m_rows):
        acc = np.int64(0)
        for j in range(k):
            acc += np.int64(x[i, j])
        acc = wrap_int32(acc)
        shifted = wrap_int32(acc - np.int64(input_zero_point) * np.int64(k))
        out[i] = clamp_int8(multiply_by_quantized_multiplier(shifted, multiplier, shift, rounding)
                            + np.int64(output_zero_point))


@njit(cache=True, nogil=True)
def mean_block_s8(x, input_zero_point, multiplier, shift, output_zero_point, rounding, acc, out):
    """Int8 MEAN over the middle axis of a 3-D view: the same results as :func:`mean_s8`, no transpose.

    When the reduced axes are adjacent (a global average pool: NHWC over H and W), the input is
    ``x`` int8[M, K, I] without a copy (M the kept axes before, K the reduced elements, I the kept
    axes after) and ``out[m, i]`` is the MEAN of ``x[m, :, i]``. The I sums of one ``m`` run side by
    side (a vectorized int32 addition; int32 sums wrap as C's, and a sum modulo 2**32 does not depend
    on its order), then each is requantized as in :func:`mean_s8`.

    Args:
        x: int8[M, K, I], C-contiguous, K >= 1.
        acc: int32[I] scratch.
        out: int8[M, I], written.
        Other arguments as :func:`mean_s8`.
    """
    m_rows, k, inner = x.shape
    corr = np.int64(input_zero_point) * np.int64(k)
    for i in range(m_rows):
        acc[:] = 0
        for j in range(k):
            row = x[i, j]
            for c in range(inner):
                acc[c] += np.int32(row[c])
        for c in range(inner):
            shifted = wrap_int32(np.int64(acc[c]) - corr)
            out[i, c] = clamp_int8(multiply_by_quantized_multiplier(shifted, multiplier, shift, rounding)
                                   + np.int64(output_zero_point))
