"""FULLY_CONNECTED: prepare (TFLM ``CalculateOpDataFullyConnected``) and run.

Per-tensor int8 weights may carry a non-zero zero point: TFLM's per-tensor kernel
(``reference_integer_ops::FullyConnected``) adds ``weights_offset = -zero_point`` to every weight
(``acc += (w + weights_offset) * (x + input_offset)``, for backward compatibility with asymmetric
models), while its per-channel kernel ignores the zero points; so per-channel weights must be
symmetric here. The GEMM then runs on ``w + weights_offset`` (values in [-255, 255]).

int8: an exact float GEMM (BLAS) and the vectorized requantization, or, on a CPU with AVX512-VNNI
where the CONV_2D cost model picks its ``vnni`` path for the layer's K and N and ``w + weights_offset``
fits int8, the ``vpdpbusd`` micro-kernels of :mod:`tinyzo.kernels.conv_vnni` (the rows as a 1x1
convolution). Both are exact (tests against TFLM force each: ``TINYZO_CONV_PATH``).
"""

from __future__ import annotations

import numpy as np

from tinyzo.kernels.conv16 import requantize_gemm_s16
from tinyzo.kernels.conv_vnni import conv2d_s8_vnni
from tinyzo.ops import conv_paths, conv_types
from tinyzo.ops.base import PreparedOp, register
from tinyzo.ops.conv import FLOAT32_EXACT_K, gemm_buffer_bytes, gemm_requant, per_channel_multipliers
from tinyzo.quant import rounding_code


@register("FULLY_CONNECTED")
class FullyConnected(PreparedOp):
    """FULLY_CONNECTED with per-tensor or per-channel weights int8[O, K].

    The input (any rank) is flattened to rows of K = weights.shape[1] values,
    as TFLM does; ``keep_num_dims`` keeps the input's leading dimensions.
    Bit-exact with TFLM ``FullyConnected`` / ``FullyConnectedPerChannel``. Types
    (:mod:`tinyzo.ops.conv_types`): int8; INT4 weights per tensor (unpacked when read); 16x8 (int16
    activations, int64 or int32 bias, an exact float64 GEMM then
    :func:`tinyzo.kernels.conv16.requantize_gemm_s16`).
    """

    def prepare(self):
        x, w, y = self.tensor(0), self.tensor(1), self.tensor(0, output=True)
        b = self.tensor(2, optional=True)
        self.act_dtype = conv_types.check_activations(self, x, y)
        self.int16 = self.act_dtype == np.int16
        if w.dtype != np.int8 or w.quant is None or not w.is_constant or len(w.shape) != 2:
            self.fail("weights must be a constant 2-D int8 (or INT4) quantized tensor")
        self.int4 = conv_types.check_int4_weights(self, w, self.act_dtype)
        if self.int4 and w.quant.per_channel:
            self.fail("INT4 weights must be quantized per tensor (TFLite Micro's FULLY_CONNECTED refuses "
                      "per-channel INT4 weights)")
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
        self.acc_bits = conv_types.accumulator_bits(self, b, self.act_dtype, self.n_out)
        if w.quant.per_channel and w.quant.axis != 0:
            self.fail("per-channel weights must be quantized along axis 0")
        self.input_offset = -int(x.quant.zero_point[0])
        self.output_offset = int(y.quant.zero_point[0])
        self.multiplier, self.shift = per_channel_multipliers(self, x.quant.scale[0], w.quant.scale, y.quant.scale[0], self.n_out)
        self.act_min, self.act_max = self.activation(y, self.act_dtype)
        self.rounding = rounding_code(self.model.rounding)
        # the training code handles int8 weights and int32 biases only
        self.trainable = not (self.int16 or self.int4)
        self.out_tail = tuple(y.shape[1:])
        self.check_buffers(1)
        self.load_params()

    def buffer_bytes(self, n: int) -> dict:
        """The GEMM operands and the output for a batch of ``n`` (``rows_per_sample`` rows each)."""
        rows = n * self.rows_per_sample
        if self.int16:  # float64 operands, int16 output
            return {"GEMM input": rows * self.k_len * 8, "GEMM accumulators": rows * self.n_out * 8,
                    "output": rows * self.n_out * 2, "float weights": self.k_len * self.n_out * 8}
        return gemm_buffer_bytes(rows, self.k_len, self.n_out)

    def load_params(self):
        """Recompute the GEMM operands from the current weights and bias (after a training update)."""
        w = self.tensor(1)
        if self.int4:
            conv_types.check_int4_weights(self, w, self.act_dtype)
        w = w.data
        b = self.tensor(2, optional=True)
        bias = b.data.reshape(-1).astype(np.int64) if b is not None else np.zeros(self.n_out, dtype=np.int64)
        w_eff = w.astype(np.int64) + self.weights_offset  # TFLM's (filter_val + filter_offset)
        if self.int16:
            # the float64 GEMM of int16 inputs is exact for any depth (|product| < 2**23, K < 2**30)
            if self.acc_bits == 64:
                conv_types.check_int64_requant(self, self.shift, w_eff, bias)
            self.wt = np.ascontiguousarray(w_eff.T.astype(np.float64))
            self.bias64 = bias
            n_mult = self.multiplier.size
            self.mult_o = np.ascontiguousarray(np.broadcast_to(self.multiplier, self.n_out) if n_mult == 1
                                               else self.multiplier).astype(np.int32)
            self.shift_o = np.ascontiguousarray(np.broadcast_to(self.shift, self.n_out) if n_mult == 1
                                                else self.shift).astype(np.int32)
            return
        # float32 GEMM of int8 inputs is exact while every partial sum stays below 2**24 (FLOAT32_EXACT_K
        # for weights in [-128, 127]; fewer terms once the offset widens them)
        w_max = int(np.abs(w_eff).max()) if w_eff.size else 0
        exact = self.k_len <= FLOAT32_EXACT_K if self.weights_offset == 0 else 128 * w_max * self.k_len <= 1 << 24
        ftype = np.float32 if exact else np.float64
        self.wt = np.ascontiguousarray(w_eff.T.astype(ftype))
        self.const = self.input_offset * w_eff.sum(axis=1) + bias
        # the vnni micro-kernels (a 1x1 convolution over the rows) where the CPU has them, the cost
        # model prefers them and the effective weights are int8
        self.vnni = None
        if (conv_paths.choose_path(self.k_len, self.n_out) == "vnni" and w_eff.size
                and -128 <= int(w_eff.min()) and int(w_eff.max()) <= 127):
            w8 = w_eff.astype(np.int8)
            block = conv_paths.vnni_block(self.k_len, self.n_out, self.rows_per_sample)
            mult = np.broadcast_to(self.multiplier, self.n_out)
            shift = np.broadcast_to(self.shift, self.n_out)
            self.vnni = conv_paths.vnni_operands(w8, self.const, mult, shift, self.rounding, block)
            self.vnni_block = block
            self.vnni_params = conv_paths.pointwise_params(self)

    def compute(self, x):
        n = x.shape[0]
        rows = x.reshape(-1, self.k_len)
        out = np.empty((rows.shape[0], self.n_out), dtype=self.act_dtype)
        if self.int16:
            a = self.scratch("gemm_a", rows.shape, np.float64)
            np.copyto(a, rows)
            raw = self.scratch("gemm_raw", out.shape, np.float64)
            np.matmul(a, self.wt, out=raw)
            requantize_gemm_s16(raw, self.bias64, self.mult_o, self.shift_o, int(self.acc_bits == 32), self.rounding,
                                self.output_offset, self.act_min, self.act_max, out)
        elif self.vnni is not None:
            wq, init, rq = self.vnni
            patch = self.scratch("vnni_patch", (conv_paths.vnni_patch_len(self.vnni_block, wq),), np.int8)
            acc = self.scratch("vnni_acc", (self.vnni_block, wq.shape[1]), np.int32)
            conv2d_s8_vnni(np.ascontiguousarray(rows).reshape(-1, 1, 1, self.k_len), wq, init, rq, self.vnni_params,
                           patch, acc, self.scratch("vnni_obuf", acc.shape, np.int8), out.reshape(-1, 1, 1, self.n_out))
        else:
            gemm_requant(self, rows, out)
        return out.reshape((n,) + self.out_tail) if self.rows_per_sample == 1 or self.keep_num_dims else out.reshape(
            (n * self.rows_per_sample,) + self.out_tail[1:])

    def macs(self):
        return self.rows_per_sample * self.n_out * self.k_len
