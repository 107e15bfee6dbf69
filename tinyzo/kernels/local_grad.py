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

from tinyzo.kernels.float_conv import patch_copy

__all__ = ["depthwise_weight_grad", "im2col_f32", "prefer_sparse", "rows_weight_grad", "rows_weight_grad_range",
           "rows_weight_grad_sparse_range"]


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


def rows_weight_grad(dacc, cols, gw, gb, sparse=None):
    """``gw[o, :] += dacc[m, o] * cols[m, :]`` and ``gb[o] += dacc[m, o]`` for m = 0, 1, ... in order.

    ``dacc``: float32[M, O] (the output gradient, one row per output position); ``cols``: float32[M, K]
    holding the integers ``x - zp`` (exact); ``gw``: float64[O, K] and ``gb``: float64[O], zeroed by the
    caller (all C-contiguous). ``sparse``: run :func:`rows_weight_grad_sparse_range` (True) or
    :func:`rows_weight_grad_range` (False); None chooses by the share of zeros in ``dacc``
    (:func:`prefer_sparse`). Both give the same bits.
    """
    if sparse is None:
        sparse = prefer_sparse(dacc)
    kernel = rows_weight_grad_sparse_range if sparse else rows_weight_grad_range
    kernel(dacc, cols, gw, gb, 0, dacc.shape[1])


#: the share of nonzero ``dacc`` below which :func:`rows_weight_grad` skips the zero terms one by one
#: (measured here on random zeros: at half zeros the sparse kernel takes 0.75-0.8 of the dense one's
#: time, at 30% zeros 1.2 times it, with none 1.5 times it; on a ReLU layer of the digits model, half
#: zeros, 0.8 of it)
SPARSE_BELOW = 0.6


def prefer_sparse(dacc) -> bool:
    """Whether :func:`rows_weight_grad_sparse_range` is the faster kernel for ``dacc`` (float32[M, O]):
    fewer than :data:`SPARSE_BELOW` of its values nonzero (a ReLU layer's gradient is about half zeros)."""
    return np.count_nonzero(dacc) < SPARSE_BELOW * dacc.size


#: rows of ``cols`` per pass of :func:`rows_weight_grad_range` over the weight gradient
ROW_GROUP = 8


@njit(cache=True, nogil=True, fastmath={"contract"})
def rows_weight_grad_range(dacc, cols, gw, gb, o_lo, o_hi):
    """:func:`rows_weight_grad` for the output channels ``o_lo <= o < o_hi``.

    Eight rows at a time: ``acc = ((acc + d0 * x0) + d1 * x1) + ... + d7 * x7`` is the same sequence of
    additions as one row at a time (no reassociation), with an eighth of the loads and stores of
    ``gw``. Every product is exact in double (a float32 times an integer of at most 9 bits), so
    ``fastmath={"contract"}`` (a fused multiply-add rounds ``acc + d * x`` once, as the separate
    multiply and add do) changes no bit. Zero terms change nothing (the sums start at +0.0 and
    never become -0.0), so a group of eight zero ``dacc`` is skipped. Flat arrays and unsigned
    offsets: a row view per output channel costs atomic reference counting.
    """
    m_total, o_total = dacc.shape
    ku = np.uint64(cols.shape[1])
    ot = np.uint64(o_total)
    xs = np.empty(ROW_GROUP * cols.shape[1], np.float64)
    gwf = gw.reshape(-1)
    df = dacc.reshape(-1)
    cf = cols.reshape(-1)
    m_full = m_total - m_total % ROW_GROUP
    for m in range(0, m_full, ROW_GROUP):
        c0 = np.uint64(m) * ku
        for j in range(np.uint64(ROW_GROUP) * ku):
            xs[j] = np.float64(cf[c0 + j])
        for o in range(o_lo, o_hi):
            i0 = np.uint64(m) * ot + np.uint64(o)
            d0 = np.float64(df[i0])
            d1 = np.float64(df[i0 + ot])
            d2 = np.float64(df[i0 + 2 * ot])
            d3 = np.float64(df[i0 + 3 * ot])
            d4 = np.float64(df[i0 + 4 * ot])
            d5 = np.float64(df[i0 + 5 * ot])
            d6 = np.float64(df[i0 + 6 * ot])
            d7 = np.float64(df[i0 + 7 * ot])
            if (d0 == 0.0 and d1 == 0.0 and d2 == 0.0 and d3 == 0.0 and d4 == 0.0 and d5 == 0.0 and d6 == 0.0
                    and d7 == 0.0):
                continue
            gb[o] = (((((((gb[o] + d0) + d1) + d2) + d3) + d4) + d5) + d6) + d7
            _add_rows8(gwf, np.uint64(o) * ku, ku, xs, np.uint64(0), ku, 2 * ku, 3 * ku, 4 * ku, 5 * ku, 6 * ku,
                       7 * ku, d0, d1, d2, d3, d4, d5, d6, d7)
    for m in range(m_full, m_total):
        c0 = np.uint64(m) * ku
        for k in range(ku):
            xs[k] = np.float64(cf[c0 + k])
        for o in range(o_lo, o_hi):
            d = np.float64(df[np.uint64(m) * ot + np.uint64(o)])
            if d == 0.0:
                continue
            gb[o] += d
            _add_row(gwf, np.uint64(o) * ku, ku, xs, np.uint64(0), d)


@njit(cache=True, inline="always", fastmath={"contract"})
def _add_rows8(gwf, g0, ku, xs, r0, r1, r2, r3, r4, r5, r6, r7, d0, d1, d2, d3, d4, d5, d6, d7):
    """``gw[o, k] = (((gw[o, k] + d0 x0[k]) + d1 x1[k]) + ...) + d7 x7[k]`` for every k: the eight rows at
    offsets ``r0..r7`` of ``xs`` with factors ``d0..d7``, added in order into the row of ``gw`` at ``g0``
    (the sequence of additions of one row at a time, an eighth of the loads and stores of ``gw``)."""
    for k in range(ku):
        gwf[g0 + k] = (((((((gwf[g0 + k] + d0 * xs[r0 + k]) + d1 * xs[r1 + k]) + d2 * xs[r2 + k])
                          + d3 * xs[r3 + k]) + d4 * xs[r4 + k]) + d5 * xs[r5 + k])
                       + d6 * xs[r6 + k]) + d7 * xs[r7 + k]


@njit(cache=True, inline="always", fastmath={"contract"})
def _add_row(gwf, g0, ku, xs, r, d):
    """``gw[o, k] += d * xs[r + k]`` for every k (one row into the row of ``gw`` at ``g0``)."""
    for k in range(ku):
        gwf[g0 + k] += d * xs[r + k]


#: bytes of the double-precision copy of a chunk of ``cols`` rows in :func:`rows_weight_grad_sparse_range`
CHUNK_BYTES = 24 << 10


@njit(cache=True, nogil=True, fastmath={"contract"})
def rows_weight_grad_sparse_range(dacc, cols, gw, gb, o_lo, o_hi):
    """:func:`rows_weight_grad_range` skipping each zero term (the same bits; faster when many are zero).

    The rows go in chunks whose values are converted to double once for every output channel (about
    :data:`CHUNK_BYTES`, 8 to 64 rows); each channel lists its rows of the chunk with a nonzero
    ``dacc`` (written without a branch per row) and adds them in increasing row order, eight at a time
    as :func:`rows_weight_grad_range` does: the same sequence of additions minus the zero terms, which
    change nothing.
    """
    m_total, o_total = dacc.shape
    k_len = cols.shape[1]
    ku = np.uint64(k_len)
    ot = np.uint64(o_total)
    rows = CHUNK_BYTES // (8 * max(1, k_len))
    rows = min(64, max(ROW_GROUP, rows - rows % ROW_GROUP))
    xs = np.empty(rows * k_len, np.float64)
    rix = np.empty(rows, np.uint64)
    dv = np.empty(rows, np.float64)
    gwf = gw.reshape(-1)
    df = dacc.reshape(-1)
    cf = cols.reshape(-1)
    for m0 in range(0, m_total, rows):
        m1 = min(m_total, m0 + rows)
        c0 = np.uint64(m0) * ku
        for j in range(np.uint64(m1 - m0) * ku):
            xs[j] = np.float64(cf[c0 + j])
        for o in range(o_lo, o_hi):
            nz = 0
            for m in range(m0, m1):
                d = np.float64(df[np.uint64(m) * ot + np.uint64(o)])
                rix[nz] = np.uint64(m - m0) * ku  # written always, kept when d != 0
                dv[nz] = d
                nz += d != 0.0
            if nz == 0:
                continue
            g0 = np.uint64(o) * ku
            b = gb[o]
            for i in range(nz):
                b += dv[i]
            gb[o] = b
            full = nz - nz % ROW_GROUP
            for t in range(0, full, ROW_GROUP):
                _add_rows8(gwf, g0, ku, xs, rix[t], rix[t + 1], rix[t + 2], rix[t + 3], rix[t + 4], rix[t + 5],
                           rix[t + 6], rix[t + 7], dv[t], dv[t + 1], dv[t + 2], dv[t + 3], dv[t + 4], dv[t + 5],
                           dv[t + 6], dv[t + 7])
            for t in range(full, nz):
                _add_row(gwf, g0, ku, xs, rix[t], dv[t])


@njit(cache=True, nogil=True)
def depthwise_weight_grad(dacc, x, zp, sh, sw, dh, dw_, ph, pw, mult, gw, gb):
    """Accumulate DEPTHWISE_CONV_2D gradients into float64 ``gw`` [KH, KW, C*M] and ``gb`` [C*M].

    Args:
        dacc: float32[N, OH, OW, C*M], the accumulator gradient.
        x: int8[N, H, W, C], the layer's input; ``zp`` its zero point (the products use ``x - zp``).
        sh, sw, dh, dw_: strides and dilations >= 1; ph, pw: leading padding >= 0; mult: depth
            multiplier M >= 1 (output channel ``k = ic * M + m`` reads input channel ``ic``).
        gw, gb: float64, zeroed by the caller; all arrays C-contiguous.

    Every weight's terms are added in (b, oy, ox) order; padding taps are skipped (they would add a
    zero); ``gb[k]`` is the sum of ``dacc[..., k]`` in C order. Flat arrays and unsigned offsets (an
    array view per tap costs more than its 9-tap arithmetic); ``dacc`` and ``x - zp`` are converted to
    double in the loop, so no float64 copy of the input is made.
    """
    n, h, wd, c = x.shape
    kh, kw, cm = gw.shape
    _, oh, ow, _ = dacc.shape
    df = dacc.reshape(-1)
    xf = x.reshape(-1)
    gwf = gw.reshape(-1)
    dr = np.empty(cm, np.float64)
    z = np.float64(zp)
    cmu = np.uint64(cm)
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                d0 = np.uint64(((b * oh + oy) * ow + ox) * cm)
                for k in range(cmu):
                    v = np.float64(df[d0 + k])
                    dr[k] = v
                    gb[k] += v
                for fy in range(kh):
                    iy = oy * sh - ph + fy * dh
                    if iy < 0 or iy >= h:
                        continue
                    for fx in range(kw):
                        ix = ox * sw - pw + fx * dw_
                        if ix < 0 or ix >= wd:
                            continue
                        x0 = np.uint64(((b * h + iy) * wd + ix) * c)
                        g0 = np.uint64((fy * kw + fx) * cm)
                        if mult == 1:
                            for k in range(cmu):
                                gwf[g0 + k] += dr[k] * (np.float64(xf[x0 + k]) - z)
                        else:
                            for ic in range(c):
                                xv = np.float64(xf[x0 + np.uint64(ic)]) - z
                                for m in range(mult):
                                    k = np.uint64(ic * mult + m)
                                    gwf[g0 + k] += dr[k] * xv
