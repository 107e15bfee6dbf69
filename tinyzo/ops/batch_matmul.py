"""BATCH_MATMUL on int8, prepared and run as TFLite Micro does (``micro/kernels/batch_matmul.cc``).

Prepare (TFLM's ``BatchMatMulPrepare``): two int8 operands of rank 2..5 and an int8 output, all
quantized per tensor; batch dimensions broadcast; depths equal; one multiplier
``QuantizeMultiplier(double(s_lhs) * double(s_rhs) / double(s_out))``; zero points of any value; the
output clamped to [-128, 127] (no fused activation). ``adj_x``/``adj_y`` transpose the last two
axes of an operand; ``asymmetric_quantize_inputs`` concerns float (hybrid) models only and is not
read for int8, as in TFLM. Either operand may be a constant shared by every sample (not both).

TFLM's transposed copies of the operands live in its *persistent* arena tail, so the planned arena
(and tinyzo's memory schedule) holds no scratch for this operator. Dimension 0 of every run-time
tensor is the batch and must be 1 in the file. Definition: :mod:`tinyzo.spec.batch_matmul`;
kernel: :func:`tinyzo.kernels.matmul.batch_matmul_s8`.
"""

from __future__ import annotations

import numpy as np

from tinyzo.kernels.matmul import batch_matmul_s8
from tinyzo.ops.base import PreparedOp, register
from tinyzo.quant import quantize_multiplier, rounding_code
from tinyzo.spec.batch_matmul import batch_matmul_shape

__all__ = ["BatchMatMul"]

_BATCH_RANK = 3  # reference_ops::BatchMatMul extends shapes to 5-D: 3 batch dimensions, rows, columns


def _strides(shape, rank: int) -> tuple:
    """``(strides, extended shape)``: ``shape`` extended with leading 1s to ``rank`` and its element
    strides, 0 on dimensions of size 1 (they broadcast)."""
    ext = (1,) * (rank - len(shape)) + tuple(shape)
    return [0 if ext[d] == 1 else int(np.prod(ext[d + 1:], dtype=np.int64)) for d in range(rank)], ext


def _stride(ext, d: int) -> int:
    """Element stride of dimension ``d`` of the C-contiguous shape ``ext`` (whatever its size)."""
    return int(np.prod(ext[d + 1:], dtype=np.int64))


@register("BATCH_MATMUL")
class BatchMatMul(PreparedOp):
    """TFLite ``BATCH_MATMUL`` of int8 operands (TFLM ``reference_ops::BatchMatMul``, int32 accumulation)."""

    def prepare(self):
        lhs, rhs, out = self.tensor(0), self.tensor(1), self.tensor(0, output=True)
        for t, role in ((lhs, "lhs"), (rhs, "rhs"), (out, "output")):
            self.require_int8(t, role)
            if not t.is_constant:
                self.require_batch_one(t, role)
        adj_x, adj_y = bool(self.option("adj_x", False)), bool(self.option("adj_y", False))
        want = self.checked(batch_matmul_shape, lhs.shape, rhs.shape, adj_x, adj_y)
        self.require_output_shape(out, want)
        r = len(want)
        ls, le = _strides(lhs.shape, r)
        rs, re_ = _strides(rhs.shape, r)
        pad = [0] * (_BATCH_RANK - (r - 2))
        l_row, l_k = (_stride(le, r - 1), _stride(le, r - 2)) if adj_x else (_stride(le, r - 2), _stride(le, r - 1))
        r_k, r_col = (_stride(re_, r - 1), _stride(re_, r - 2)) if adj_y else (_stride(re_, r - 2), _stride(re_, r - 1))
        self.l_strides = np.array(pad + ls[:r - 2] + [l_row, l_k], np.int64)
        self.r_strides = np.array(pad + rs[:r - 2] + [r_k, r_col], np.int64)
        self.depth = int(le[r - 2] if adj_x else le[r - 1])
        self.out6 = (1,) * len(pad) + tuple(want)
        real = float(np.float32(lhs.quant.scale[0])) * float(np.float32(rhs.quant.scale[0])) / float(
            np.float32(out.quant.scale[0]))
        self.multiplier, self.shift = quantize_multiplier(real, self.model.rounding)
        self.lhs_offset = -int(lhs.quant.zero_point[0])
        self.rhs_offset = -int(rhs.quant.zero_point[0])
        self.output_offset = int(out.quant.zero_point[0])
        self.rounding = rounding_code(self.model.rounding)
        self._consts = {k: np.ascontiguousarray(t.data, dtype=np.int8).reshape(1, -1)
                        for k, t in enumerate((lhs, rhs)) if t.is_constant}
        self._out = out

    def compute(self, *inputs):
        """Run-time operand(s) int8[N, ...] -> int8[N, out_shape[1:]]."""
        it = iter(inputs)
        ops = [self._consts[k] if k in self._consts else np.ascontiguousarray(next(it), dtype=np.int8)
               for k in range(2)]
        n = max(a.shape[0] for a in ops)
        lhs, rhs = (a.reshape(a.shape[0], -1) for a in ops)
        out = np.empty((n,) + self.out6, dtype=np.int8)
        batch_matmul_s8(lhs, self.l_strides, rhs, self.r_strides, self.depth, self.lhs_offset, self.rhs_offset,
                        self.multiplier, self.shift, self.output_offset, self.rounding, out)
        return out.reshape((n,) + tuple(self._out.shape[1:]))

    def macs(self):
        return int(np.prod(self._out.shape, dtype=np.int64)) * self.depth
