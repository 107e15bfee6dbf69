"""FULLY_CONNECTED: prepare (TFLM ``CalculateOpDataFullyConnected``) and run.

Per-tensor int8 weights may carry a non-zero zero point: TFLM's per-tensor kernel
(``reference_integer_ops::FullyConnected``) adds ``weights_offset = -zero_point`` to every weight
(``acc += (w + weights_offset) * (x + input_offset)``, for backward compatibility with asymmetric
models), while its per-channel kernel ignores the zero points; so per-channel weights must be
symmetric here. The GEMM then runs on ``w + weights_offset`` (values in [-255, 255]).
"""

from __future__ import annotations

import numpy as np

from tinyzo.ops.base import PreparedOp, register
from tinyzo.ops.conv import FLOAT32_EXACT_K, gemm_buffer_bytes, gemm_requant, per_channel_multipliers
from tinyzo.quant import rounding_code


@register("FULLY_CONNECTED")
class FullyConnected(PreparedOp):
    """int8 FULLY_CONNECTED with per-tensor or per-channel weights int8[O, K].

    The input (any rank) is flattened to rows of K = weights.shape[1] values,
    as TFLM does; ``keep_num_dims`` keeps the input's leading dimensions.
    Bit-exact with TFLM ``FullyConnected`` / ``FullyConnectedPerChannel``.
    """

    def prepare(self):
        x, w, y = self.tensor(0), self.tensor(1), self.tensor(0, output=True)
        b = self.tensor(2, optional=True)
        self.require_int8(x, "input")
        self.require_int8(y, "output")
        if w.dtype != np.int8 or w.quant is None or not w.is_constant or len(w.shape) != 2:
            self.fail("weights must be a constant 2-D int8 quantized tensor")
        if w.quant.per_channel and np.any(w.quant.zero_point != 0):
            self.fail("per-channel weights must be symmetric (zero point 0): TFLite Micro's per-channel kernel "
                      "ignores weight zero points")
        if not -128 <= int(w.quant.zero_point[0]) <= 127:
            self.fail(f"weights zero point {int(w.quant.zero_point[0])} is outside [-128, 127]")
        # TFLM: weights_offset = -filter zero point (per-tensor kernel only; 0 for per-channel weights)
        self.weights_offset = 0 if w.quant.per_channel else -int(w.quant.zero_point[0])
        self.enum_option("weights_format", "DEFAULT", ("DEFAULT",))
        self.n_out, self.k_len = w.shape
        if self.k_len < 1 or self.n_out < 1:
            self.fail(f"weights of shape {w.shape} are empty")
        if len(x.shape) < 1 or len(y.shape) < 1:
            self.fail(f"input {x.shape} and output {y.shape} must have a batch dimension")
        per_sample = int(np.prod(x.shape[1:], dtype=np.int64)) if len(x.shape) > 1 else 1
        total = int(np.prod(x.shape, dtype=np.int64))
        if total % self.k_len != 0:
            self.fail(f"input of {total} values cannot be split in rows of {self.k_len}")
        self.keep_num_dims = self.bool_option("keep_num_dims", False)
        if self.keep_num_dims:
            if x.shape[-1] != self.k_len:
                self.fail("keep_num_dims needs the input's last dimension to equal the weights' depth")
            want = tuple(x.shape[:-1]) + (self.n_out,)
        else:
            want = (total // self.k_len, self.n_out)
        # the whole stored shape, dimension 0 included: it says how many rows one sample makes
        if tuple(y.shape) != want:
            self.fail(f"output shape {y.shape} does not match the computed {want} (input {x.shape}, "
                      f"weights {w.shape})")
        # rows per sample: the batch dim of the file is dim 0 and becomes N at run time
        if per_sample % self.k_len != 0 and not self.keep_num_dims:
            self.fail("each sample must flatten to whole rows of the weights' depth")
        self.rows_per_sample = max(per_sample // self.k_len, 1) if len(x.shape) > 1 else 1
        if b is not None and (b.dtype != np.int32 or not b.is_constant or b.data.size != self.n_out):
            self.fail(f"bias must be a constant int32 tensor of {self.n_out} values")
        if w.quant.per_channel and w.quant.axis != 0:
            self.fail("per-channel weights must be quantized along axis 0")
        self.input_offset = -int(x.quant.zero_point[0])
        self.output_offset = int(y.quant.zero_point[0])
        self.multiplier, self.shift = per_channel_multipliers(self, x.quant.scale[0], w.quant.scale, y.quant.scale[0], self.n_out)
        self.act_min, self.act_max = self.activation(y)
        self.rounding = rounding_code(self.model.rounding)
        self.out_tail = tuple(y.shape[1:])
        self.check_buffers(1)
        self.load_params()

    def buffer_bytes(self, n: int) -> dict:
        """The GEMM operands and the output for a batch of ``n`` (``rows_per_sample`` rows each)."""
        return gemm_buffer_bytes(n * self.rows_per_sample, self.k_len, self.n_out)

    def load_params(self):
        """Recompute the GEMM operands from the current weights and bias (after a training update)."""
        w = self.tensor(1).data
        b = self.tensor(2, optional=True)
        bias = b.data.reshape(-1).astype(np.int64) if b is not None else np.zeros(self.n_out, dtype=np.int64)
        w_eff = w.astype(np.int64) + self.weights_offset  # TFLM's (filter_val + filter_offset)
        # float32 GEMM of int8 inputs is exact while every partial sum stays below 2**24 (FLOAT32_EXACT_K
        # for weights in [-128, 127]; fewer terms once the offset widens them)
        w_max = int(np.abs(w_eff).max()) if w_eff.size else 0
        exact = self.k_len <= FLOAT32_EXACT_K if self.weights_offset == 0 else 128 * w_max * self.k_len <= 1 << 24
        ftype = np.float32 if exact else np.float64
        self.wt = np.ascontiguousarray(w_eff.T.astype(ftype))
        self.const = self.input_offset * w_eff.sum(axis=1) + bias

    def compute(self, x):
        n = x.shape[0]
        rows = x.reshape(-1, self.k_len)
        out = np.empty((rows.shape[0], self.n_out), dtype=np.int8)
        gemm_requant(self, rows, out)
        return out.reshape((n,) + self.out_tail) if self.rows_per_sample == 1 or self.keep_num_dims else out.reshape(
            (n * self.rows_per_sample,) + self.out_tail[1:])

    def macs(self):
        return self.rows_per_sample * self.n_out * self.k_len
