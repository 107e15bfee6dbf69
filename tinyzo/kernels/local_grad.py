"""Weight and bias gradients of one int8 layer in a defined summation order (node perturbation).

The local backward of node perturbation (:mod:`tinyzo.training.local_backward`) turns ``dL/dacc`` (float32,
the layer's output shape) into ``dL/dw`` and ``dL/db`` per integer unit. A BLAS matrix product sums
in an order (and with FMA) that a firmware port cannot reproduce; these kernels fix the order so a C
port gives the same bits (``port/c/tz_train.c``):

    dw[o, fy, fx, ic] = (float) sum_{b, oy, ox} (double) dacc[b, oy, ox, o] * (double) (x[b, iy, ix, ic] - zp)
    db[o]             = (float) sum_{b, oy, ox} (double) dacc[b, oy, ox, o]

(depthwise: ``dw[0, fy, fx, k]`` with ``x[..., k // M]``). Each sum runs over ``(b, oy, ox)`` in
increasing C order, starts from +0.0 in a double accumulator, skips terms whose ``dacc`` is zero
(they add a signed zero, which never changes a sum that starts at +0.0) and padding taps, and is
rounded once to float32 at the end. Every product is exact in double (a float32 times an integer of
at most 9 bits), so the result does not depend on FMA contraction either.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tinyzo.kernels.float_conv import WEIGHT_GRAD, depthwise_taps, patch_copy

__all__ = ["depthwise_weight_grad", "im2col_f32", "rows_weight_grad", "rows_weight_grad_range"]


@njit(cache=True, nogil=True)
def im2col_f32(x, zp, kw_, sh, sw, dh, dw_, ph, pw, oh, ow, cols):
    """``cols[(b*OH + oy)*OW + ox, (fy*KW + fx)*C + ic] = x[b, iy, ix, ic] - zp`` (0.0 at padding taps).

    ``x``: int8[N, H, W, C]; ``cols``: float32[N*OH*OW, KH*KW*C] (OHWI order of the K axis),
    C-contiguous, written. The values ``x - zp`` are integers of at most 9 bits (exact in float32);
    the copy is :func:`tinyzo.kernels.float_conv.patch_copy`.
    """
    c = x.shape[3]
    kh = cols.shape[1] // (kw_ * c)
    xf = (x.astype(np.int32) - np.int32(zp)).astype(np.float32)
    patch_copy(xf, cols.reshape((cols.shape[0], kh, kw_, c)), sh, sw, dh, dw_, ph, pw, oh, ow, False)


def rows_weight_grad(dacc, cols, gw, gb):
    """``gw[o, :] += dacc[m, o] * cols[m, :]`` and ``gb[o] += dacc[m, o]`` for m = 0, 1, ... in order.

    ``dacc``: float32[M, O] (the output gradient, one row per output position); ``cols``: float32[M, K]
    holding the integers ``x - zp`` (exact); ``gw``: float64[O, K] and ``gb``: float64[O], zeroed by the
    caller (all C-contiguous).
    """
    rows_weight_grad_range(dacc, cols, gw, gb, 0, dacc.shape[1])


@njit(cache=True, nogil=True)
def rows_weight_grad_range(dacc, cols, gw, gb, o_lo, o_hi):
    """:func:`rows_weight_grad` for the output channels ``o_lo <= o < o_hi``.

    Products are formed in double (exact); zero terms change nothing (the sums start at +0.0 and never
    become -0.0), so they may be skipped or added.
    """
    m_total = dacc.shape[0]
    k_total = cols.shape[1]
    xs = np.empty((4, k_total), np.float64)
    m4 = m_total - m_total % 4
    # four rows at a time: acc = (((acc + p0) + p1) + p2) + p3 is the same sequence of additions as
    # one row at a time (no reassociation), with a quarter of the loads and stores of gw
    for m in range(0, m4, 4):
        for j in range(4):
            for k in range(k_total):
                xs[j, k] = np.float64(cols[m + j, k])
        x0, x1, x2, x3 = xs[0], xs[1], xs[2], xs[3]
        for o in range(o_lo, o_hi):
            d0 = np.float64(dacc[m, o])
            d1 = np.float64(dacc[m + 1, o])
            d2 = np.float64(dacc[m + 2, o])
            d3 = np.float64(dacc[m + 3, o])
            if d0 == 0.0 and d1 == 0.0 and d2 == 0.0 and d3 == 0.0:
                continue
            gb[o] = (((gb[o] + d0) + d1) + d2) + d3
            acc = gw[o]
            for k in range(k_total):
                acc[k] = (((acc[k] + d0 * x0[k]) + d1 * x1[k]) + d2 * x2[k]) + d3 * x3[k]
    for m in range(m4, m_total):
        for k in range(k_total):
            xs[0, k] = np.float64(cols[m, k])
        for o in range(o_lo, o_hi):
            d = np.float64(dacc[m, o])
            if d == 0.0:
                continue
            gb[o] += d
            acc = gw[o]
            for k in range(k_total):
                acc[k] += d * xs[0, k]


@njit(cache=True, nogil=True)
def depthwise_weight_grad(dacc, xf, sh, sw, dh, dw_, ph, pw, mult, gw, gb):
    """Accumulate DEPTHWISE_CONV_2D gradients into float64 ``gw`` [KH, KW, C*M] and ``gb`` [C*M].

    ``dacc``: float64[N, OH, OW, C*M]; ``xf``: float64[N, H, W, C] holding ``x - zp``; output channel
    ``k = ic * M + m`` reads input channel ``ic``. ``gw``/``gb`` zeroed by the caller. Terms are
    added in (b, oy, ox) order for every weight; zero terms are included (they change nothing).
    ``gw`` is the weight-gradient mode of :func:`tinyzo.kernels.float_conv.depthwise_taps` (the same
    loop as the float depthwise backward), ``gb[k]`` the sum of ``dacc[..., k]`` in C order.
    """
    depthwise_taps(WEIGHT_GRAD, xf, gw, dacc, sh, sw, dh, dw_, ph, pw, mult)
    for pixel in np.ndindex(dacc.shape[:3]):
        dr = dacc[pixel]
        for k in range(gb.shape[0]):
            gb[k] += dr[k]
