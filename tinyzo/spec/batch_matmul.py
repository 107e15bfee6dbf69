"""Pure-Python specification of TFLite Micro's int8 BATCH_MATMUL (``micro/kernels/batch_matmul.cc``).

TFLM transposes operands as ``adj_x``/``adj_y`` ask, then runs ``reference_ops::BatchMatMul``
(with the operands swapped, which only changes the loop order). The result, for every broadcast
batch index ``b`` (numpy rules over all but the last two dimensions, rank <= 5):

    acc = wrap_int32(sum_k (L[b, i, k] + lhs_offset) * (R[b, k, j] + rhs_offset))
    out[b, i, j] = clamp(MBQM(acc, multiplier, shift) + output_offset, -128, 127)

with ``L = lhs`` (``lhs^T`` over the last two axes when ``adj_x``), ``R = rhs`` (``rhs^T`` when
``adj_y``), ``lhs_offset = -lhs zero point``, ``rhs_offset = -rhs zero point`` and
``(multiplier, shift) = QuantizeMultiplier(double(s_lhs) * double(s_rhs) / double(s_out))``
(``GetQuantizedConvolutionMultipler``). There is no bias and no fused activation.
"""

from __future__ import annotations

import itertools

import numpy as np

from tinyzo.spec.arith import DOUBLE_ROUNDING, multiply_by_quantized_multiplier, wrap_int32

__all__ = ["batch_matmul_s8", "batch_matmul_shape"]


def batch_matmul_shape(lhs_shape, rhs_shape, adj_x: bool, adj_y: bool) -> tuple:
    """Output shape (TFLM's ``ReshapeOutputTensor``); raises ``ValueError`` for ranks outside 2..5,
    batch dimensions that do not broadcast, or depths that differ."""
    rl, rr = len(lhs_shape), len(rhs_shape)
    if not (2 <= rl <= 5 and 2 <= rr <= 5):
        raise ValueError(f"operand ranks {rl} and {rr} must be 2..5")
    r = max(rl, rr)
    el = (1,) * (r - rl) + tuple(lhs_shape)
    er = (1,) * (r - rr) + tuple(rhs_shape)
    batch = []
    for a, b in zip(el[:-2], er[:-2]):
        if a != b and a != 1 and b != 1:
            raise ValueError(f"batch dimensions of {tuple(lhs_shape)} and {tuple(rhs_shape)} do not broadcast")
        batch.append(b if a == 1 else a)
    rows, depth_l = (el[-1], el[-2]) if adj_x else (el[-2], el[-1])
    depth_r, cols = (er[-1], er[-2]) if adj_y else (er[-2], er[-1])
    if depth_l != depth_r:
        raise ValueError(f"depths differ: {depth_l} (lhs) and {depth_r} (rhs)")
    return tuple(batch) + (rows, cols)


def batch_matmul_s8(lhs, rhs, *, adj_x=False, adj_y=False, lhs_offset=0, rhs_offset=0, multiplier, shift,
                    output_offset=0, rounding=DOUBLE_ROUNDING) -> np.ndarray:
    """TFLM int8 BATCH_MATMUL (module docstring). ``lhs``, ``rhs``: int8 arrays of rank 2..5. Returns int8."""
    lhs, rhs = np.asarray(lhs), np.asarray(rhs)
    out_shape = batch_matmul_shape(lhs.shape, rhs.shape, adj_x, adj_y)
    r = len(out_shape)
    L = np.swapaxes(lhs, -1, -2) if adj_x else lhs
    R = np.swapaxes(rhs, -1, -2) if adj_y else rhs
    L = L.reshape((1,) * (r - L.ndim) + L.shape)
    R = R.reshape((1,) * (r - R.ndim) + R.shape)
    depth = L.shape[-1]
    out = np.zeros(out_shape, dtype=np.int8)
    for idx in itertools.product(*(range(d) for d in out_shape)):
        b, i, j = idx[:-2], idx[-2], idx[-1]
        bl = tuple(x if L.shape[k] > 1 else 0 for k, x in enumerate(b))
        br = tuple(x if R.shape[k] > 1 else 0 for k, x in enumerate(b))
        acc = 0
        for k in range(depth):
            acc += (int(L[bl + (i, k)]) + lhs_offset) * (int(R[br + (k, j)]) + rhs_offset)
        v = multiply_by_quantized_multiplier(wrap_int32(acc), multiplier, shift, rounding) + output_offset
        out[idx] = min(max(v, -128), 127)
    return out
