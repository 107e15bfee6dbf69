"""Jitted integer TRANSPOSE_CONV kernels (TFLite Micro ``reference_integer_ops::TransposeConv``).

Equal to :func:`tinyzo.spec.transpose_conv.transpose_conv_s8` / ``transpose_conv_s16``
(property-tested). As TFLM, each sample's input values are scattered into a zeroed accumulator
buffer shaped like one output sample (the operator's scratch buffer), then every accumulator is
requantized. The weights are packed ``[KH, KW, C, O]`` so the innermost loop runs over output
channels with unit stride.
"""

import numpy as np
from numba import njit

from tinyzo.kernels.arith import multiply_by_quantized_multiplier, multiply_by_quantized_multiplier_int64, wrap_int32


def pack_weights(w: np.ndarray, dtype=np.int32) -> np.ndarray:
    """OHWI int8 weights -> contiguous ``dtype[KH, KW, I, O]`` (the kernels' layout)."""
    return np.ascontiguousarray(np.transpose(np.asarray(w), (1, 2, 3, 0)).astype(dtype))


@njit(cache=True, nogil=True)
def _scatter(x, b, wp, stride_h, stride_w, pad_h, pad_w, input_offset, acc):
    """``acc[oy, ox, :] += (x[b, iy, ix, ic] + input_offset) * wp[fy, fx, ic, :]`` for every in-range output position."""
    _, h, wd, c = x.shape
    kh, kw, _, o = wp.shape
    oh, ow, _ = acc.shape
    for iy in range(h):
        oy0 = iy * stride_h - pad_h
        for ix in range(wd):
            ox0 = ix * stride_w - pad_w
            for fy in range(kh):
                oy = oy0 + fy
                if oy < 0 or oy >= oh:
                    continue
                for fx in range(kw):
                    ox = ox0 + fx
                    if ox < 0 or ox >= ow:
                        continue
                    for ic in range(c):
                        v = np.int32(np.int32(x[b, iy, ix, ic]) + np.int32(input_offset))
                        for oc in range(o):
                            acc[oy, ox, oc] += v * wp[fy, fx, ic, oc]


@njit(cache=True, nogil=True)
def transpose_conv_s8(x, wp, bias, stride_h, stride_w, pad_h, pad_w, input_offset, multiplier, shift,
                      output_offset, act_min, act_max, rounding, acc, out):
    """int8 transposed convolution, bit-exact with TFLM's reference kernel (double or single rounding).

    ``acc = scatter((x + input_offset) * w)`` wrapped to int32, then
    ``out = clamp(MBQM(wrap32(acc + bias[oc]), multiplier[oc], shift[oc]) + output_offset, act_min, act_max)``.

    Args:
        x: int8[N, H, W, C] input (NHWC).
        wp: int32[KH, KW, C, O] weights (:func:`pack_weights` of the OHWI int8 filter).
        bias: int32[O] (zeros when the model has none: adding 0 changes nothing).
        stride_h, stride_w: >= 1; pad_h, pad_w: leading paddings >= 0
            (:func:`tinyzo.spec.transpose_conv.transpose_conv_padding`).
        input_offset: minus the input zero point, in [-127, 128].
        multiplier, shift: int32[O] per-channel requantization (shift in [-31, 31]).
        output_offset: the output zero point; act_min, act_max: the clamp, within [-128, 127].
        rounding: 0 double (TFLM), 1 single.
        acc: int32[OH, OW, O] scratch (TFLM's int32 scratch buffer for one sample); overwritten.
        out: int8[N, OH, OW, O], written.
    """
    n = x.shape[0]
    oh, ow, o = acc.shape
    for b in range(n):
        acc[:] = 0
        _scatter(x, b, wp, stride_h, stride_w, pad_h, pad_w, input_offset, acc)
        for oy in range(oh):
            for ox in range(ow):
                for oc in range(o):
                    a = wrap_int32(np.int64(acc[oy, ox, oc]) + np.int64(bias[oc]))
                    v = multiply_by_quantized_multiplier(a, multiplier[oc], shift[oc], rounding) + output_offset
                    out[b, oy, ox, oc] = min(max(v, act_min), act_max)


@njit(cache=True, nogil=True)
def transpose_conv_s16(x, wp, bias, stride_h, stride_w, pad_h, pad_w, multiplier, shift, act_min, act_max, acc,
                       out):
    """16x8 transposed convolution (int16 activations, int8 weights, int64 bias), bit-exact with TFLM.

    ``acc = scatter(x * w)`` in int64, then
    ``out = clamp(MBQM64(acc + bias[oc], multiplier[oc], shift[oc]), act_min, act_max)`` (no offsets).

    Args:
        x: int16[N, H, W, C]; wp: int32[KH, KW, C, O] (:func:`pack_weights`); bias: int64[O]
            (zeros when absent), with ``|acc + bias| < 2**47`` (checked by the caller).
        multiplier, shift: int32[O], shift in [-31, 7]; act_min, act_max: the clamp within int16.
        acc: int64[OH, OW, O] scratch (TFLM's int64 scratch buffer for one sample); overwritten.
        out: int16[N, OH, OW, O], written.
    """
    n = x.shape[0]
    oh, ow, o = acc.shape
    for b in range(n):
        acc[:] = 0
        _scatter(x, b, wp, stride_h, stride_w, pad_h, pad_w, 0, acc)
        for oy in range(oh):
            for ox in range(ow):
                for oc in range(o):
                    v = multiply_by_quantized_multiplier_int64(acc[oy, ox, oc] + bias[oc], multiplier[oc], shift[oc])
                    out[b, oy, ox, oc] = min(max(v, act_min), act_max)
