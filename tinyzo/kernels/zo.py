"""Jitted kernels of the zeroth-order step (tinyzo.zo.trainer): accumulation of node-output gradients.

The arithmetic is the trainer's float32 contract written as a loop, so the results are bit-identical
to the numpy expression they replace (element-wise float32 products and sums, no reduction, no FMA).
"""

import numpy as np
from numba import njit

__all__ = ["accumulate_acc_grads", "accumulate_node_grad", "masked_scale"]


@njit(cache=True, nogil=True)
def accumulate_node_grad(g, coef, scale, u):
    """``g[n, ...] += (coef[n] * scale) * float32(u[n, ...])`` in float32, for every sample ``n``.

    Args:
        g: float32[N, ...] node-output gradient accumulator (C-contiguous, updated in place).
        coef: float32[N], each sample's projected loss difference for this query.
        scale: float32 scalar, the estimator's normalization divided by N.
        u: integer[N, ...] (int8/int16/int32), the query's node perturbation, same shape as ``g``.
    """
    n = g.shape[0]
    per = g.size // n
    gf = g.reshape(n, per)
    uf = u.reshape(n, per)
    for i in range(n):
        c = coef[i] * scale
        row = gf[i]
        ur = uf[i]
        for j in range(per):
            row[j] += c * np.float32(ur[j])


#: elements of a sample's row summed over the queries at a time (float32 partial sums in the L1 cache)
NODE_BLOCK = 512


@njit(cache=True, nogil=True)
def accumulate_acc_grads(coef, scale, u, y, lo, hi, cscale, out):
    """Every query's :func:`accumulate_node_grad` into a zeroed gradient, then :func:`masked_scale`, in one
    pass: ``out = (g * [lo < y < hi]) * cscale[c]`` with ``g = sum_q (coef[q, n] * scale) * float32(u[q, n, ...])``
    summed from +0.0 in query order (c: the last axis). The same float32 operations in the same order
    as m calls of the one and a call of the other (a product rounded, then added; no FMA), so the same
    bits, while each perturbation is read once and the node gradient never goes to memory.

    Args:
        coef: float32[m, N]; scale: float32 scalar; u: int8[m, N, ..., C]; y: int8[N, ..., C] the layer's
        output; lo, hi: its clamp bounds; cscale: float32[C]; out: float32[N, ..., C] (written).
        All C-contiguous.
    """
    m = u.shape[0]
    n = out.shape[0]
    per = out.size // n
    ch = cscale.shape[0]
    rows = per // ch  # positions of a sample, ch channels each
    block = max(1, NODE_BLOCK // ch)  # positions summed at a time
    of = out.reshape(-1)
    uf = u.reshape(-1)
    yf = y.reshape(-1)
    c = np.empty(m, np.float32)
    acc = np.empty(block * ch, np.float32)
    total = np.uint64(n * per)
    chu = np.uint64(ch)
    for i in range(n):
        for q in range(m):
            c[q] = coef[q, i] * scale
        for r0 in range(0, rows, block):
            nr = min(rows - r0, block)
            width = np.uint64(nr * ch)
            a = np.uint64(i * per + r0 * ch)
            for j in range(width):
                acc[j] = np.float32(0.0)
            for q in range(m):
                cq = c[q]
                b = np.uint64(q) * total + a
                for j in range(width):
                    acc[j] += cq * np.float32(uf[b + j])
            for r in range(nr):
                e0 = np.uint64(r) * chu
                for k in range(chu):
                    v = yf[a + e0 + k]
                    keep = np.float32(1.0) if (v > lo and v < hi) else np.float32(0.0)
                    of[a + e0 + k] = (acc[e0 + k] * keep) * cscale[k]


@njit(cache=True, nogil=True)
def masked_scale(g, y, lo, hi, scale, out):
    """``out = (g * [lo < y < hi]) * scale[c]`` in float32 (c: the last axis), element by element.

    The clamp mask and per-channel requantization scale of the one-layer local backward
    (:func:`tinyzo.training.local_backward.output_grad_to_acc_grad`), the same float32 operations as the
    numpy expression ``g * mask * scale`` (a masked-out element is ``(g * 0) * scale``, a signed zero).

    Args:
        g: float32[..., C] (C-contiguous); y: int8 of the same shape; lo, hi: the int8 clamp bounds;
        scale: float32[C]; out: float32 of g's shape (written).
    """
    c = scale.shape[0]
    rows = g.size // c
    g2 = g.reshape(rows, c)
    y2 = y.reshape(rows, c)
    o2 = out.reshape(rows, c)
    for r in range(rows):
        gr = g2[r]
        yr = y2[r]
        orow = o2[r]
        for j in range(c):
            v = yr[j]
            m = np.float32(1.0) if (v > lo and v < hi) else np.float32(0.0)
            orow[j] = (gr[j] * m) * scale[j]
