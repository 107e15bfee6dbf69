"""Jitted kernels of the zeroth-order step (tinyzo.zo.trainer): accumulation of node-output gradients.

The arithmetic is the trainer's float32 contract written as a loop, so the results are bit-identical
to the numpy expression they replace (element-wise float32 products and sums, no reduction, no FMA).
"""

import numpy as np
from numba import njit

__all__ = ["accumulate_node_grad"]


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
