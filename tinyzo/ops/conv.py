"""CONV_2D and DEPTHWISE_CONV_2D: prepare (TFLM's Prepare) and run."""

from __future__ import annotations

import numpy as np

from tinyzo.errors import ArithmeticContractError
from tinyzo.kernels.conv import depthwise_conv2d_s8_fast, im2col_s8, requantize_acc_s8
from tinyzo.ops.base import INT32_MAX, PreparedOp, register
from tinyzo.quant import check_multiplier_shift, quantize_multiplier, rounding_code
from tinyzo.spec.conv import compute_out_size, compute_padding

#: longest dot product for which a float32 product of int8 values is exact
FLOAT32_EXACT_K = 1024


def gemm_requant(op: PreparedOp, a_s8: np.ndarray, out: np.ndarray) -> None:
    """``out = requantize(a_s8 @ op.wt + op.const)``: exact integer GEMM, then TFLM requantization.

    ``a_s8``: int8[M, K]; ``op.wt``: [K, O] float holding int8 values, float32 while K <= 1024 (every
    partial sum is an integer below 2**24, so float32 is exact in any order), else float64;
    ``out``: int8[M, O], written.
    """
    a = op.scratch("gemm_a", a_s8.shape, op.wt.dtype)
    np.copyto(a, a_s8)
    raw = op.scratch("gemm_raw", (a_s8.shape[0], op.wt.shape[1]), op.wt.dtype)
    np.matmul(a, op.wt, out=raw)
    requantize_acc_s8(raw, op.const, op.multiplier, op.shift, op.output_offset, op.act_min, op.act_max,
                      op.rounding, out)


def per_channel_multipliers(op: PreparedOp, input_scale, weight_scales, output_scale, n_out: int):
    """Per-output-channel (multiplier, shift) int32[n_out] arrays, TFLM's formula.

    ``effective_scale = double(s_in) * double(s_w[c]) / double(s_out)`` (TFLM
    ``PopulateConvolutionQuantizationParams`` / ``GetQuantizedConvolutionMultipler``)
    then ``QuantizeMultiplier``. A single weight scale is repeated.

    Raises ArithmeticContractError (naming the operator) for a negative or non-finite weight scale
    and for a multiplier the kernels cannot apply (not finite, or a shift above 31: see
    :func:`tinyzo.quant.check_multiplier_shift`), e.g. from a tiny output scale.
    """
    ws = np.asarray(weight_scales, dtype=np.float32)
    if ws.size not in (1, n_out):
        op.fail(f"weights have {ws.size} scales for {n_out} output channels")
    if not (np.all(np.isfinite(ws)) and np.all(ws >= 0)):
        raise ArithmeticContractError(f"operator {op.index} ({op.op.opcode}): weight scales must be finite and >= 0")
    mult = np.empty(n_out, dtype=np.int32)
    shift = np.empty(n_out, dtype=np.int32)
    for c in range(n_out):
        s_w = float(ws[c if ws.size > 1 else 0])
        real = float(np.float32(input_scale)) * s_w / float(np.float32(output_scale))
        try:
            mult[c], shift[c] = check_multiplier_shift(*quantize_multiplier(real, op.model.rounding), op.model.rounding)
        except ArithmeticContractError as e:
            raise ArithmeticContractError(f"operator {op.index} ({op.op.opcode}), channel {c}: {e}") from None
    return mult, shift


def gemm_buffer_bytes(rows: int, k_len: int, n_out: int) -> dict:
    """Bytes of :func:`gemm_requant`'s arrays for ``rows`` x ``k_len`` by ``k_len`` x ``n_out``.

    The float operands (float32 while ``k_len`` <= 1024, else float64), the accumulators, the int8
    output and the weights kept as floats; Python ints, so no size overflows.
    """
    f = 4 if k_len <= FLOAT32_EXACT_K else 8
    return {"GEMM input": rows * k_len * f, "GEMM accumulators": rows * n_out * f, "output": rows * n_out,
            "float weights": k_len * n_out * f}


class _ConvBase(PreparedOp):
    """Shared prepare steps of CONV_2D and DEPTHWISE_CONV_2D."""

    def _common(self, weight_axis: int):
        x, w, y = self.tensor(0), self.tensor(1), self.tensor(0, output=True)
        b = self.tensor(2, optional=True)
        self.require_int8(x, "input")
        self.require_int8(y, "output")
        if w.dtype != np.int8 or w.quant is None or not w.is_constant:
            self.fail("weights must be a constant int8 quantized tensor")
        if np.any(w.quant.zero_point != 0):
            self.fail("weights must be symmetric (zero point 0)")
        if len(x.shape) != 4 or len(w.shape) != 4 or len(y.shape) != 4:
            self.fail("input, filter and output must be 4-D (NHWC / OHWI / 1HWC)")
        if w.quant.per_channel and w.quant.axis != weight_axis:
            self.fail(f"per-channel weights must be quantized along axis {weight_axis}, got {w.quant.axis}")
        n_out = w.shape[0] if weight_axis == 0 else w.shape[3]
        if b is not None and (b.dtype != np.int32 or not b.is_constant or b.data.size != n_out):
            self.fail(f"bias must be a constant int32 tensor of {n_out} values")
        pad = self.enum_option("padding", "VALID", ("SAME", "VALID"))
        self.stride_h, self.stride_w = self.int_option("stride_h", 1), self.int_option("stride_w", 1)
        self.dil_h, self.dil_w = self.int_option("dilation_h_factor", 1), self.int_option("dilation_w_factor", 1)
        _, h, wd, _ = x.shape
        kh, kw = w.shape[1], w.shape[2]
        if min(kh, kw) < 1:
            self.fail(f"filter {kh}x{kw} is empty")
        self.out_h = compute_out_size(pad, h, kh, self.stride_h, self.dil_h)
        self.out_w = compute_out_size(pad, wd, kw, self.stride_w, self.dil_w)
        if self.out_h < 1 or self.out_w < 1:
            self.fail(f"filter {kh}x{kw} does not fit the {h}x{wd} input with {pad} padding")
        for k, d, o, st, axis in ((kh, self.dil_h, self.out_h, self.stride_h, "height"),
                                  (kw, self.dil_w, self.out_w, self.stride_w, "width")):
            # TFLite computes the dilated filter extent and the padded extent in int32
            if (o - 1) * st + (k - 1) * d + 1 > INT32_MAX:
                self.fail(f"the dilated filter {axis} ({k} taps, dilation {d}, stride {st}) overflows int32")
        self.pad_h = compute_padding(self.stride_h, self.dil_h, h, kh, self.out_h)
        self.pad_w = compute_padding(self.stride_w, self.dil_w, wd, kw, self.out_w)
        want = (self.out_h, self.out_w, n_out)
        if tuple(y.shape[1:]) != want:
            self.fail(f"output shape {y.shape} does not match the computed (N, {want[0]}, {want[1]}, {want[2]})")
        self.input_offset = -int(x.quant.zero_point[0])
        self.output_offset = int(y.quant.zero_point[0])
        self.multiplier, self.shift = per_channel_multipliers(self, x.quant.scale[0], w.quant.scale, y.quant.scale[0], n_out)
        self.act_min, self.act_max = self.activation(y)
        self.rounding = rounding_code(self.model.rounding)
        self.kh, self.kw = kh, kw
        self.n_out = n_out

    def _read_params(self):
        """The current int8 weights and int32 bias (zeros when the model has none)."""
        b = self.tensor(2, optional=True)
        bias = b.data.reshape(-1).astype(np.int32) if b is not None else np.zeros(self.n_out, dtype=np.int32)
        return self.tensor(1).data, bias


@register("CONV_2D")
class Conv2D(_ConvBase):
    """int8 CONV_2D (per-channel weights OHWI, stride, SAME/VALID, dilation, fused activation).

    Bit-exact with TFLM ``ConvPerChannel``; computed as im2col + exact float GEMM
    + integer requantization (see :mod:`tinyzo.kernels.conv`).
    """

    def prepare(self):
        self._common(weight_axis=0)
        x, w = self.tensor(0), self.tensor(1)
        if w.shape[3] != x.shape[3]:
            self.fail(f"filter depth {w.shape[3]} != input depth {x.shape[3]} (grouped convolution is not supported)")
        self.k_len = self.kh * self.kw * w.shape[3]
        self.pointwise = (self.kh == 1 and self.kw == 1 and self.stride_h == 1 and self.stride_w == 1
                          and self.pad_h == 0 and self.pad_w == 0)
        self.pad_value = -self.input_offset
        self.check_buffers(1)
        self.load_params()

    def buffer_bytes(self, n: int) -> dict:
        """im2col columns (unless pointwise), the GEMM operands and the output for a batch of ``n``."""
        rows = n * self.out_h * self.out_w
        out = gemm_buffer_bytes(rows, self.k_len, self.n_out)
        if not self.pointwise:
            out["im2col columns"] = rows * self.k_len
        return out

    def load_params(self):
        """Recompute the GEMM operands from the current weights and bias (after a training update)."""
        w, bias = self._read_params()
        w2 = w.reshape(self.n_out, self.k_len)
        ftype = np.float32 if self.k_len <= FLOAT32_EXACT_K else np.float64
        self.wt = np.ascontiguousarray(w2.T.astype(ftype))
        self.const = self.input_offset * w2.astype(np.int64).sum(axis=1) + bias.astype(np.int64)

    def compute(self, x):
        n = x.shape[0]
        m_rows = n * self.out_h * self.out_w
        if self.pointwise:
            cols = x.reshape(m_rows, self.k_len)
        else:
            cols = self.scratch("cols", (m_rows, self.k_len), np.int8)
            im2col_s8(x, self.kh, self.kw, self.stride_h, self.stride_w, self.dil_h, self.dil_w,
                      self.pad_h, self.pad_w, self.out_h, self.out_w, self.pad_value, cols)
        out = np.empty((m_rows, self.n_out), dtype=np.int8)
        gemm_requant(self, cols, out)
        return out.reshape(n, self.out_h, self.out_w, self.n_out)

    def macs(self):
        return self.out_h * self.out_w * self.n_out * self.k_len


@register("DEPTHWISE_CONV_2D")
class DepthwiseConv2D(_ConvBase):
    """int8 DEPTHWISE_CONV_2D (per-channel weights 1HWC, depth multiplier, stride, padding, dilation).

    Bit-exact with TFLM ``DepthwiseConvPerChannel``.
    """

    def prepare(self):
        self._common(weight_axis=3)
        x, w = self.tensor(0), self.tensor(1)
        if w.shape[0] != 1:
            self.fail("depthwise filter must have shape (1, KH, KW, C*M)")
        c = x.shape[3]
        dm = self.int_option("depth_multiplier", 1, lo=-INT32_MAX - 1)
        if dm < 1 or c * dm != w.shape[3]:
            # TFLite derives the multiplier from the shapes when the option is unset or stale
            if w.shape[3] % c != 0:
                self.fail(f"filter channels {w.shape[3]} are not a multiple of input channels {c}")
            dm = w.shape[3] // c
        self.depth_multiplier = dm
        self.pad_value = -self.input_offset
        ow = self.out_w
        s = self.stride_w
        self.hp = max((self.out_h - 1) * self.stride_h + (self.kh - 1) * self.dil_h + 1, x.shape[1] + self.pad_h)
        wp = max((ow - 1) * s + (self.kw - 1) * self.dil_w + 1, x.shape[2] + self.pad_w)
        self.wq = -(-wp // s)
        self.check_buffers(1)
        self.mtile = np.tile(self.multiplier, ow)  # per-row tiles of the per-channel parameters
        self.stile = np.tile(self.shift, ow)
        self.load_params()

    def buffer_bytes(self, n: int) -> dict:
        """The padded, stride-split input rows (per thread), the weight tiles and the output for a batch of ``n``."""
        row = self.out_w * self.n_out
        return {"padded input": self.hp * self.stride_w * self.wq * self.n_out,
                "weight tiles": self.kh * self.kw * row * 4, "parameter tiles": 3 * row * 8,
                "output": n * self.out_h * row}

    def load_params(self):
        """Recompute the kernel operands from the current weights and bias (after a training update)."""
        w, bias = self._read_params()
        self.w = np.ascontiguousarray(w)
        self.const = (self.input_offset * self.w.astype(np.int64).sum(axis=(0, 1, 2)) + bias).astype(np.int64)
        # the int32 accumulator starts at const; C's int32 wraps, so wrap it the same way
        self.const32 = (((self.const + 2**31) % 2**32) - 2**31).astype(np.int32)
        ow = self.out_w
        self.wtile = np.ascontiguousarray(np.tile(self.w[0].astype(np.int32), (1, 1, ow)))
        self.ctile = np.tile(self.const32, ow)

    def compute(self, x):
        out = np.empty((x.shape[0], self.out_h, self.out_w, self.n_out), dtype=np.int8)
        xq = self.scratch("xq", (self.hp, self.stride_w, self.wq * self.n_out), np.int8)
        depthwise_conv2d_s8_fast(x, self.wtile, self.ctile, self.mtile, self.stile, self.stride_h, self.stride_w,
                                 self.dil_h, self.dil_w, self.pad_h, self.pad_w, self.depth_multiplier,
                                 self.pad_value, self.output_offset, self.act_min, self.act_max, self.rounding,
                                 xq, out, 0, self.out_h)
        return out

    def macs(self):
        return self.out_h * self.out_w * self.n_out * self.kh * self.kw
