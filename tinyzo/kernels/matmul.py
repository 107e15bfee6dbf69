"""Jitted int8 BATCH_MATMUL kernel (TFLite Micro ``reference_ops::BatchMatMul``, int32 accumulation).

Equal to :func:`tinyzo.spec.batch_matmul.batch_matmul_s8` (property-tested). The operands are read
through element strides, so the ``adj_x``/``adj_y`` transposes and batch broadcasting need no copy.
"""

import numpy as np
from numba import njit

from tinyzo.kernels.arith import clamp_int8, multiply_by_quantized_multiplier, wrap_int32
from tinyzo.kernels.layout import operand_rows


@njit(cache=True, nogil=True)
def batch_matmul_s8(lhs, l_strides, rhs, r_strides, depth, lhs_offset, rhs_offset, multiplier, shift,
                    output_offset, rounding, out):
    """``out[n, b0, b1, b2, i, j] = clamp(MBQM(wrap32(sum_k (L[i, k] + lhs_offset) * (R[k, j] + rhs_offset)))
    + output_offset, -128, 127)``, double or single rounding.

    Args:
        lhs: int8[Nl, Sl], one row per sample (Nl = N), or one row shared by every sample (a constant).
        l_strides: int64[5], element strides within a row of ``lhs`` of the batch indices b0, b1, b2
            (0 where lhs broadcasts), of the output row i and of the depth k (``adj_x`` swaps the last two).
        rhs: int8[Nr, Sr]; r_strides: int64[5]: b0, b1, b2, depth k, output column j.
        depth: the accumulation depth K.
        lhs_offset, rhs_offset: minus the operands' zero points; multiplier, shift: ``QuantizeMultiplier``
            of ``s_lhs * s_rhs / s_out``; output_offset: the output zero point; rounding: 0 double, 1 single.
        out: int8[N, B0, B1, B2, M, P], written.
    """
    n, d0, d1, d2, rows, cols = out.shape
    for b in range(n):
        lb, rb = operand_rows(b, lhs, rhs)
        for b0 in range(d0):
            for b1 in range(d1):
                for b2 in range(d2):
                    lbase = b0 * l_strides[0] + b1 * l_strides[1] + b2 * l_strides[2]
                    rbase = b0 * r_strides[0] + b1 * r_strides[1] + b2 * r_strides[2]
                    for i in range(rows):
                        lo = lbase + i * l_strides[3]
                        for j in range(cols):
                            ro = rbase + j * r_strides[4]
                            acc = np.int64(0)
                            for k in range(depth):
                                acc += (np.int64(lhs[lb, lo + k * l_strides[4]]) + np.int64(lhs_offset)) * (
                                    np.int64(rhs[rb, ro + k * r_strides[3]]) + np.int64(rhs_offset))
                            v = multiply_by_quantized_multiplier(wrap_int32(acc), multiplier, shift, rounding)
                            out[b, b0, b1, b2, i, j] = clamp_int8(v + np.int64(output_offset))
