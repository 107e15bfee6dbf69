"""CONV_2D and DEPTHWISE_CONV_2D: prepare (TFLM's Prepare) and run."""

from __future__ import annotations

import threading

import numpy as np

from tinyzo.errors import ArithmeticContractError
from tinyzo.kernels import conv_vnni, depthwise_vnni
from tinyzo.kernels.conv import depthwise_conv2d_s8_fast
from tinyzo.kernels.conv16 import conv2d_s16_gemm, depthwise_conv2d_s16
from tinyzo.kernels.conv_gemm import conv2d_s8_gemm, requantize_gemm_s8
from tinyzo.kernels.conv_int import conv2d_s8_int
from tinyzo.kernels.conv_vnni import conv2d_s8_vnni
from tinyzo.kernels.requant import RQU_ROWS, requant_params
from tinyzo.ops import conv_paths, conv_types
from tinyzo.ops.base import INT32_MAX, PreparedOp, register
from tinyzo.quant import check_multiplier_shift, quantize_multiplier, rounding_code
from tinyzo.spec.conv import compute_out_size, compute_padding

FLOAT32_EXACT_K = conv_paths.FLOAT32_EXACT_K  # (re-exported for fully_connected)


def gemm_requant(op: PreparedOp, a_s8: np.ndarray, out: np.ndarray) -> None:
    """``out = requantize(a_s8 @ op.wt + op.const)``: exact integer GEMM, then TFLM requantization.

    ``a_s8``: int8[M, K]; ``op.wt``: [K, O] float holding int8 values, float32 while K <= 1024 (every
    partial sum is an integer below 2**24, so float32 is exact in any order), else float64;
    ``out``: int8[M, O], written. The requantization is the vectorized one
    (:func:`tinyzo.kernels.conv_gemm.requantize_gemm_s8`), with ``op.const`` and the per-channel
    parameters tiled once per ``op.const`` (a training update replaces ``op.const``).
    """
    a = op.scratch("gemm_a", a_s8.shape, op.wt.dtype)
    np.copyto(a, a_s8)
    raw = op.scratch("gemm_raw", (a_s8.shape[0], op.wt.shape[1]), op.wt.dtype)
    np.matmul(a, op.wt, out=raw)
    tiles = getattr(op, "_gemm_tiles", None)
    if tiles is None or tiles[0] is not op.const:
        o = op.wt.shape[1]
        block = max(1, conv_paths.BLOCK_ELEMS // o)
        tiles = (op.const, np.tile(conv_paths.wrap32(op.const), block),
                 conv_paths.tiled_requant(op.multiplier, op.shift, op.rounding, o, block))
        op._gemm_tiles = tiles
    acc = op.scratch("gemm_acc", (tiles[1].size,), np.int32)
    requantize_gemm_s8(raw, tiles[1], tiles[2], op.output_offset, op.act_min, op.act_max, op.rounding, acc, out)


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

    def _common(self, weight_axis: int, int32_bias_16x8: bool):
        x, w, y = self.tensor(0), self.tensor(1), self.tensor(0, output=True)
        b = self.tensor(2, optional=True)
        self.act_dtype = conv_types.check_activations(self, x, y)
        self.int16 = self.act_dtype == np.int16
        if w.dtype != np.int8 or w.quant is None or not w.is_constant:
            self.fail("weights must be a constant int8 (or INT4) quantized tensor")
        self.int4 = conv_types.check_int4_weights(self, w, self.act_dtype)
        if np.any(w.quant.zero_point != 0):
            self.fail("weights must be symmetric (zero point 0)")
        if len(x.shape) != 4 or len(w.shape) != 4 or len(y.shape) != 4:
            self.fail("input, filter and output must be 4-D (NHWC / OHWI / 1HWC)")
        if w.quant.per_channel and w.quant.axis != weight_axis:
            self.fail(f"per-channel weights must be quantized along axis {weight_axis}, got {w.quant.axis}")
        n_out = w.shape[0] if weight_axis == 0 else w.shape[3]
        self.acc_bits = conv_types.accumulator_bits(self, b, self.act_dtype, n_out, int32_bias_16x8)
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
        self.act_min, self.act_max = self.activation(y, self.act_dtype)
        self.rounding = rounding_code(self.model.rounding)
        self.kh, self.kw = kh, kw
        self.n_out = n_out
        # the training code handles int8 weights, int32 biases and dense filters only
        self.trainable = not (self.int16 or self.int4)

    def _read_params(self):
        """The current weights (int8; INT4 values unpacked) and bias (int32, or int64 for 16x8; zeros if absent)."""
        b = self.tensor(2, optional=True)
        w = self.tensor(1)
        if self.int4:
            conv_types.check_int4_weights(self, w, self.act_dtype)
        btype = np.int64 if self.int16 else np.int32
        bias = b.data.reshape(-1).astype(btype) if b is not None else np.zeros(self.n_out, dtype=btype)
        return w.data, bias


#: the attribute holding each path's packed weights, and each path's kernel
_PATH_WEIGHTS = {"gemm": "wt", "vnni": "wq", "int": "wp"}
_PATH_KERNELS = {"gemm": conv2d_s8_gemm, "vnni": conv2d_s8_vnni, "int": conv2d_s8_int}


def set_path_operands(op: PreparedOp, w2: np.ndarray, pixels: int) -> None:
    """Prepare ``op``'s int8 CONV_2D operands for its ``op.path``: ``op.block`` (output pixels per block),
    the packed weights (``op.wt``, ``op.wq`` or ``op.wp``), ``op.const_tile`` and ``op.rq``.

    ``w2``: int8[O, K] filter rows; ``op.const``: int64[O] ``bias + input_offset * sum(w)``; ``pixels``:
    output pixels per sample. Used by CONV_2D and by DEPTHWISE_CONV_2D on a one-channel input.
    """
    k_len, n_out = w2.shape[1], w2.shape[0]
    op.window = None
    args = (w2, op.const, op.multiplier, op.shift, op.rounding)
    if op.path == "gemm":
        op.block = conv_paths.block_pixels(k_len, n_out, pixels)
        op.wt, op.const_tile, op.rq = conv_paths.gemm_operands(*args, op.block)
    elif op.path == "vnni" and uses_window(op):  # one block of channels; the filter rows padded to 4 bytes
        c = op.tensor(0).shape[3]
        hp, wp = window_geometry(op)
        run4, qoff = conv_vnni.window_quads(op.kh, op.kw, c, op.dil_h, wp * c)
        wq = conv_vnni.pack_window_weights(w2.reshape(n_out, op.kh, op.kw, c), run4, conv_paths.vnni_channels(n_out))
        op.block = conv_paths.vnni_block(k_len, n_out, pixels)  # (unused: the window kernel runs row by row)
        op.wq, op.const_tile, op.rq = conv_paths.vnni_operands(*args, 1, wq=wq)
        op.window = (qoff, (hp, 1, wp * c), (conv_vnni.MR * op.stride_w + op.kw) * c + 64)
    elif op.path == "vnni":
        op.block = conv_paths.vnni_block(k_len, n_out, pixels)
        op.wq, op.const_tile, op.rq = conv_paths.vnni_operands(*args, op.block)
    else:
        op.block = conv_paths.block_pixels(k_len, conv_paths.padded_channels(n_out), pixels)
        op.wp, op.const_tile, op.rq = conv_paths.int_operands(*args, op.block)


def uses_window(op: PreparedOp) -> bool:
    """Whether a CONV_2D on the ``vnni`` path reads its receptive fields in place from a padded copy of the
    input (:func:`tinyzo.kernels.conv_vnni.conv2d_s8_vnni_window`) rather than gathering them per pixel:
    any filter but an unpadded 1x1 stride-1 one on a multiple of 4 channels (read in place as it is), with
    dilation 1 along the width and the one-formula requantization (no positive shift)."""
    c = op.tensor(0).shape[3]
    in_place = (op.kh == 1 and op.kw == 1 and op.stride_h == 1 and op.stride_w == 1 and op.pad_h == 0
                and op.pad_w == 0 and c % 4 == 0)
    return not in_place and op.dil_w == 1 and bool(np.all(np.asarray(op.shift) <= 0))


def window_geometry(op: PreparedOp) -> tuple:
    """``(HP, WP)``: the padded input rows and columns the window path reads (:func:`uses_window`)."""
    _, h, wd, _ = op.tensor(0).shape
    hp = max((op.out_h - 1) * op.stride_h + (op.kh - 1) * op.dil_h + 1, h + op.pad_h)
    wp = max((op.out_w - 1) * op.stride_w + op.kw, wd + op.pad_w)
    return hp, wp


def path_work_arrays(op: PreparedOp) -> tuple:
    """The calling thread's work arrays for ``op``'s int8 CONV_2D path: ``(layout, b1, b2, b3)``, made once
    per thread and layout (they depend on the path and block, not on the batch)."""
    key = (threading.get_ident(), "conv")
    layout = (op.path, op.block, None if op.window is None else op.window[1])
    bufs = op._scratch.get(key)
    if bufs is None or bufs[0] != layout:
        if op.path == "gemm":
            ft = op.wt.dtype
            k_len, n_out = op.wt.shape
            bufs = (layout, np.empty((op.block, k_len), ft), np.empty((op.block, n_out), ft),
                    np.empty(op.block * n_out, np.int32))
        elif op.path == "vnni" and op.window is not None:  # padded input (slack after it), output tile
            _, shape, slack = op.window
            size = int(np.prod(shape))
            bufs = (layout, np.zeros(size + slack, np.int8)[:size].reshape(shape),
                    np.empty((conv_vnni.MR, op.wq.shape[1]), np.int8), None)
        elif op.path == "vnni":
            n_pad = op.wq.shape[1]
            bufs = (layout, np.zeros(conv_paths.vnni_patch_len(op.block, op.wq), np.int8),
                    np.empty((op.block, n_pad), np.int32), np.empty((op.block, n_pad), np.int8))
        else:
            n_pad = op.wp.shape[1]
            bufs = (layout, np.empty(op.wp.shape[0] * 2, np.int8), np.empty((op.block, n_pad), np.int32),
                    np.empty((op.block, n_pad), np.int8))
        op._scratch[key] = bufs
    return bufs


def run_path(op: PreparedOp, x: np.ndarray, bufs: tuple, out: np.ndarray) -> None:
    """Run ``op``'s int8 CONV_2D kernel of ``op.path`` on ``x`` into ``out`` with work arrays ``bufs``."""
    w = getattr(op, _PATH_WEIGHTS[op.path])
    if op.path == "vnni" and op.window is not None:
        conv_vnni.conv2d_s8_vnni_window(x, w, op.const_tile, op.rq, op.window[0], op.conv_params, bufs[0], bufs[1],
                                        out)
        return
    _PATH_KERNELS[op.path](x, w, op.const_tile, op.rq, op.conv_params, *bufs, out)


@register("CONV_2D")
class Conv2D(_ConvBase):
    """CONV_2D (per-channel weights OHWI, stride, SAME/VALID, dilation, groups, fused activation).

    Bit-exact with TFLM ``ConvPerChannel`` along either of two paths chosen per layer at prepare
    time (:mod:`tinyzo.ops.conv_paths`): an exact float GEMM by BLAS or integer multiply-accumulate
    loops, both with the requantization fused (:mod:`tinyzo.kernels.conv_gemm`,
    :mod:`tinyzo.kernels.conv_int`). :attr:`path` names the one in use; :meth:`set_path` changes it.
    Types (:mod:`tinyzo.ops.conv_types`): int8, INT4 weights (unpacked when read, then int8), and
    16x8 (int16 activations, int64 or int32 bias: :func:`tinyzo.kernels.conv16.conv2d_s16_gemm`).
    A filter of depth C/G on a C-deep input is a grouped convolution (G groups), computed by the
    same kernels on the zero-expanded dense filter (:func:`tinyzo.ops.conv_types.expand_groups`).
    """

    def prepare(self):
        self._common(weight_axis=0, int32_bias_16x8=True)
        x, w = self.tensor(0), self.tensor(1)
        c, filter_c = x.shape[3], w.shape[3]
        # TFLM's ConvPerChannel: groups = input depth / filter depth, filters_per_group = O / groups
        if filter_c < 1 or c % filter_c != 0:
            self.fail(f"input depth {c} is not a multiple of the filter depth {filter_c} (grouped convolution "
                      "needs input depth = groups * filter depth)")
        self.groups = c // filter_c
        if self.n_out % self.groups != 0:
            self.fail(f"{self.n_out} output channels cannot be split into {self.groups} groups (grouped "
                      "convolution needs output channels = groups * filters per group)")
        self.trainable = self.trainable and self.groups == 1
        self.filter_c = filter_c
        self.k_len = self.kh * self.kw * c  # the dense (group-expanded) dot length
        self.pointwise = (self.kh == 1 and self.kw == 1 and self.stride_h == 1 and self.stride_w == 1
                          and self.pad_h == 0 and self.pad_w == 0)
        if self.int16:  # 16x8: TFLM ignores the (zero) input and output zero points
            self.input_offset = self.output_offset = 0
        self.pad_value = -self.input_offset
        self.conv_params = conv_paths.conv_params(self)
        self.path = "gemm" if self.int16 else conv_paths.choose_path(self.k_len, self.n_out)
        self.check_buffers(1)
        self.load_params()

    def set_path(self, path: str) -> None:
        """Compute this layer along ``path`` ("gemm", "int", or "vnni" on an AVX512-VNNI CPU; every path gives
        the same output; :func:`tinyzo.ops.conv_paths.available_paths`).

        A 16x8 layer has one path, the exact float64 GEMM (:func:`tinyzo.kernels.conv16.conv2d_s16_gemm`).
        """
        path = conv_paths.check_path(path)
        if self.int16 and path != "gemm":
            raise conv_paths.ConvPathError(f"operator {self.index} (CONV_2D) is 16x8, computed along the 'gemm' path "
                                           f"only, not {path!r}")
        self.path = path
        self.forget_buffer_check()
        self.load_params()

    def buffer_bytes(self, n: int) -> dict:
        """The output for a batch of ``n`` and the path's operands and per-thread work blocks."""
        pixels = self.out_h * self.out_w
        out = {"output": n * pixels * self.n_out * self.act_dtype.itemsize}
        if self.int16:
            block = conv_paths.block_pixels(self.k_len, self.n_out, pixels)
            out.update({"float weights": self.k_len * self.n_out * 8, "patch block": block * self.k_len * 8,
                        "accumulator block": block * self.n_out * 8})
        elif self.path == "gemm":
            block = conv_paths.block_pixels(self.k_len, self.n_out, pixels)
            f = 4 if self.k_len <= FLOAT32_EXACT_K else 8
            out.update({"float weights": self.k_len * self.n_out * f, "patch block": block * self.k_len * f,
                        "accumulator block": block * self.n_out * f, "requantization block": block * self.n_out * 4})
        elif self.path == "vnni" and uses_window(self):
            n_pad = conv_paths.vnni_channels(self.n_out)
            hp, wp = window_geometry(self)
            c = self.tensor(0).shape[3]
            out.update({"packed weights": self.kh * -(-self.kw * c // 4) * 4 * n_pad, "padded input": hp * wp * c,
                        "int8 block": conv_paths.MR * n_pad})
        elif self.path == "vnni":
            n_pad = conv_paths.vnni_channels(self.n_out)
            block = conv_paths.vnni_block(self.k_len, self.n_out, pixels)
            kp = -(-self.k_len // 4) * 4
            out.update({"packed weights": kp * n_pad, "patch block": block * kp + conv_paths.PATCH_SLACK,
                        "accumulator block": block * n_pad * 4, "int8 block": block * n_pad})
        else:
            n_pad = conv_paths.padded_channels(self.n_out)
            block = conv_paths.block_pixels(self.k_len, n_pad, pixels)
            out.update({"packed weights": self.k_len * n_pad * 2, "accumulator block": block * n_pad * 4,
                        "int8 block": block * n_pad})
        return out

    def load_params(self):
        """Recompute the kernel operands from the current weights and bias (after a training update)."""
        w, bias = self._read_params()
        w2 = conv_types.expand_groups(w, self.groups).reshape(self.n_out, self.k_len)
        pixels = self.out_h * self.out_w
        if self.int16:
            if self.acc_bits == 64:
                conv_types.check_int64_requant(self, self.shift, w2, bias)
            self.block = conv_paths.block_pixels(self.k_len, self.n_out, pixels)
            self.wt = np.ascontiguousarray(w2.T.astype(np.float64))
            self.bias64 = bias.astype(np.int64)
            return
        self.const = self.input_offset * w2.astype(np.int64).sum(axis=1) + bias.astype(np.int64)
        set_path_operands(self, w2, pixels)

    def _work_arrays(self) -> tuple:
        """This thread's kernel work arrays (they depend on the path and block, not on the batch)."""
        if not self.int16:
            return path_work_arrays(self)
        key = (threading.get_ident(), "conv")
        layout = (self.path, self.block)
        bufs = self._scratch.get(key)
        if bufs is None or bufs[0] != layout:
            bufs = (layout, np.empty((self.block, self.k_len), np.float64),
                    np.empty((self.block, self.n_out), np.float64), None)
            self._scratch[key] = bufs
        return bufs

    def compute(self, x):
        x = np.ascontiguousarray(x)
        out = np.empty((x.shape[0], self.out_h, self.out_w, self.n_out), dtype=self.act_dtype)
        _, b1, b2, b3 = self._work_arrays()
        if self.int16:
            conv2d_s16_gemm(x, self.wt, self.bias64, self.multiplier, self.shift, self.conv_params,
                            int(self.acc_bits == 32), b1, b2, out)
        else:
            run_path(self, x, (b1, b2, b3), out)
        return out

    def macs(self):
        return self.out_h * self.out_w * self.n_out * self.kh * self.kw * self.filter_c


@register("DEPTHWISE_CONV_2D")
class DepthwiseConv2D(_ConvBase):
    """DEPTHWISE_CONV_2D (per-channel weights 1HWC, depth multiplier, stride, padding, dilation).

    int8 and INT4 weights with int8 activations; 16x8 (int64 bias only, as TFLM reads it) through
    :func:`tinyzo.kernels.conv16.depthwise_conv2d_s16`.

    Bit-exact with TFLM ``DepthwiseConvPerChannel``. On a one-channel input (person_detect's first
    layer) it is a CONV_2D with M = depth_multiplier output channels, the same arithmetic term for
    term, and runs on the CONV_2D path the cost model picks (:func:`tinyzo.ops.conv_paths.choose_path`),
    2-4x faster than the row kernel, which would repeat every input value M times.
    """

    def prepare(self):
        self._common(weight_axis=3, int32_bias_16x8=False)
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
        if self.int16:  # 16x8: TFLM ignores the (zero) input and output zero points
            self.input_offset = self.output_offset = 0
            self.check_buffers(1)
            self.load_params()
            return
        self.pad_value = -self.input_offset
        self.as_conv = c == 1
        self.conv_params = conv_paths.conv_params(self)
        ow = self.out_w
        s = self.stride_w
        self.hp = max((self.out_h - 1) * self.stride_h + (self.kh - 1) * self.dil_h + 1, x.shape[1] + self.pad_h)
        wp = max((ow - 1) * s + (self.kw - 1) * self.dil_w + 1, x.shape[2] + self.pad_w)
        self.xq_cols = -(-wp // s)
        self.padded_w = wp
        self.check_buffers(1)
        self.rq = requant_params(self.multiplier, self.shift, self.rounding, ow * self.n_out)  # tiled along a row
        if self.as_conv:
            self.path = conv_paths.choose_path(self.kh * self.kw, self.n_out)
        else:
            self.path = conv_paths.choose_depthwise_path(self.rq.shape[0] == RQU_ROWS)
            self._set_layout()
        self.load_params()

    def _set_layout(self) -> None:
        """What the row kernels read besides the weights, made once per path (a training update re-runs
        :meth:`load_params` only): the padded-row buffer's shape and, for ``vnni``, the tap offsets and the
        requantization rows. C a multiple of 16: the channels once (16-channel blocks along the row, rows
        not split by phase); otherwise the channels tiled along the row."""
        if self.path != "vnni":
            self.xq_shape = (self.hp, self.stride_w, self.xq_cols * self.n_out)
            return
        self.vnni_tiles = tiles = 1 if self.n_out % depthwise_vnni.LANES == 0 else self.out_w
        row = tiles * self.n_out
        length = -(-row // depthwise_vnni.LANES) * depthwise_vnni.LANES
        rq = np.zeros((RQU_ROWS, length), dtype=np.int32)
        rq[:, :row] = self.rq[:, :row]
        rq[1, row:] = 31  # lanes past the row: multiplier 0, any valid shift (never stored)
        self.rq4 = rq
        split, cols = (1, self.padded_w) if tiles == 1 else (self.stride_w, self.xq_cols)
        self.xq_shape = (self.hp, split, cols * self.n_out)
        self.taps = depthwise_vnni.tap_offsets(self.kh, self.kw, self.dil_h, self.dil_w, split, self.n_out, cols)

    def set_path(self, path: str) -> None:
        """Run this layer with the depthwise kernel ``path``: "rows" (every CPU) or "vnni" (AVX512-VNNI CPUs,
        multipliers below 1); both give the same output (:data:`tinyzo.ops.conv_paths.DEPTHWISE_PATHS`).
        A one-channel input runs as a CONV_2D (:meth:`Conv2D.set_path`'s paths)."""
        if self.int16:
            raise conv_paths.ConvPathError(f"operator {self.index} (DEPTHWISE_CONV_2D) is 16x8: one kernel only")
        if self.as_conv:
            self.path = conv_paths.check_path(path)
        elif path not in conv_paths.DEPTHWISE_PATHS:
            raise conv_paths.ConvPathError(f"unknown DEPTHWISE_CONV_2D path {path!r}; use one of "
                                           f"{', '.join(conv_paths.DEPTHWISE_PATHS)}")
        else:
            if path == "vnni":
                conv_paths.check_path("vnni")
                if self.rq.shape[0] != RQU_ROWS:
                    raise conv_paths.ConvPathError(
                        f"operator {self.index} (DEPTHWISE_CONV_2D) has a multiplier >= 1 (a positive shift): the "
                        "vnni kernel requantizes with the one-formula layout only; use 'rows'")
            self.path = path
            self._set_layout()
        self.forget_buffer_check()
        self.load_params()

    def buffer_bytes(self, n: int) -> dict:
        """The padded, stride-split input rows (per thread), the weight tiles and the output for a batch of ``n``."""
        row = self.out_w * self.n_out
        if self.int16:
            return {"accumulators": self.n_out * 8, "output": n * self.out_h * row * 2}
        return {"padded input": self.hp * self.stride_w * self.xq_cols * self.n_out,
                "weight tiles": self.kh * self.kw * row * 4, "parameter tiles": 3 * row * 8,
                "output": n * self.out_h * row}

    def load_params(self):
        """Recompute the kernel operands from the current weights and bias (after a training update)."""
        w, bias = self._read_params()
        self.w = np.ascontiguousarray(w)
        if self.int16:
            conv_types.check_int64_requant(self, self.shift, self.w[0].reshape(-1, self.n_out).T, bias)
            self.bias64 = bias.astype(np.int64)
            return
        self.const = (self.input_offset * self.w.astype(np.int64).sum(axis=(0, 1, 2)) + bias).astype(np.int64)
        # the int32 accumulator starts at const; C's int32 wraps, so wrap it the same way
        self.const32 = conv_paths.wrap32(self.const)
        ow = self.out_w
        if self.as_conv:  # filter [1, KH, KW, M] on one input channel = CONV_2D filter [M, KH, KW, 1]
            w2 = np.ascontiguousarray(self.w[0].reshape(self.kh * self.kw, self.n_out).T)
            set_path_operands(self, w2, self.out_h * ow)
            return
        if self.path == "vnni":  # the weights and start values in the layout of _set_layout
            tiles = self.vnni_tiles
            row = tiles * self.n_out
            self.wq4 = depthwise_vnni.pack_tap_quads(self.w[0], tiles, self.rq4.shape[1])
            init = np.zeros(self.rq4.shape[1], dtype=np.int32)
            init[:row] = np.tile(conv_paths.wrap32(self.const - 128 * self.w.astype(np.int64).sum(axis=(0, 1, 2))),
                                 tiles)
            self.init4 = init
            return
        # int16 tiles (int8 and INT4 weights fit): half the cache footprint of int32 for the same products
        self.wtile = np.ascontiguousarray(np.tile(self.w[0].astype(np.int16), (1, 1, ow)))
        self.ctile = np.tile(self.const32, ow)

    def compute(self, x):
        x = np.ascontiguousarray(x)
        out = np.empty((x.shape[0], self.out_h, self.out_w, self.n_out), dtype=self.act_dtype)
        if self.int16:
            depthwise_conv2d_s16(x, self.w, self.bias64, self.stride_h, self.stride_w, self.dil_h, self.dil_w,
                                 self.pad_h, self.pad_w, self.depth_multiplier, self.multiplier, self.shift,
                                 self.act_min, self.act_max, self.scratch("acc16", (self.n_out,), np.int64), out)
            return out
        if self.as_conv:
            run_path(self, x, path_work_arrays(self)[1:], out)
            return out
        key = (threading.get_ident(), "xq")
        xq = self._scratch.get(key)
        if xq is None or xq.shape != self.xq_shape:  # depends on the layer and path; the vnni kernel's slack after it
            size = int(np.prod(self.xq_shape))
            xq = self._scratch[key] = np.zeros(size + depthwise_vnni.XQ_SLACK, np.int8)[:size].reshape(self.xq_shape)
        if self.path == "vnni":
            depthwise_vnni.depthwise_conv2d_s8_vnni(
                x, self.wq4, self.init4, self.rq4, self.taps, self.kh, self.stride_h, self.stride_w, self.dil_h,
                self.dil_w, self.pad_h, self.pad_w, self.depth_multiplier, self.pad_value, self.output_offset,
                self.act_min, self.act_max, xq, self.scratch("dw_rowbuf", (depthwise_vnni.LANES,), np.int8), out,
                0, self.out_h)
            return out
        depthwise_conv2d_s8_fast(x, self.wtile, self.ctile, self.rq, self.stride_h, self.stride_w,
                                 self.dil_h, self.dil_w, self.pad_h, self.pad_w, self.depth_multiplier,
                                 self.pad_value, self.output_offset, self.act_min, self.act_max, self.rounding,
                                 xq, out, 0, self.out_h)
        return out

    def macs(self):
        return self.out_h * self.out_w * self.n_out * self.kh * self.kw
