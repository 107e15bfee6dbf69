"""Pure-Python specification of TFLite Micro's integer TRANSPOSE_CONV (``micro/kernels/transpose_conv.cc``).

The kernels are ``reference_integer_ops::TransposeConv`` (``reference/integer_ops/transpose_conv.h``):
each input value is *scattered* into a zeroed accumulator buffer the size of the output, then every
accumulator is requantized:

    acc[b, iy*sh - pad_h + fy, ix*sw - pad_w + fx, oc] += (x[b, iy, ix, ic] + input_offset) * w[oc, fy, fx, ic]
        (positions outside the output are skipped)
    int8:  out = clamp(MBQM(wrap_int32(acc + bias[oc]), mult[oc], shift[oc]) + output_offset, act_min, act_max)
    16x8:  out = clamp(MBQM64(acc + bias[oc], mult[oc], shift[oc]), act_min, act_max)

int8 accumulates in int32 (C wraps; the exact sum wrapped once is the same modulo 2**32). The 16x8
kernel (int16 activations, int8 weights) accumulates in int64, uses no input or output offset
(TFLite's int16 activations are symmetric) and the int64 ``MultiplyByQuantizedMultiplier``
(:func:`tinyzo.spec.arith.multiply_by_quantized_multiplier_int64`). The weights' zero points are
not applied by either kernel. Padding (:func:`transpose_conv_padding`) is computed from the
*output* size, as for the forward convolution whose gradient this is. Slow; for tests only.
"""

from __future__ import annotations

import numpy as np

from tinyzo.spec.arith import (
    DOUBLE_ROUNDING,
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_int64,
    wrap_int32,
)

__all__ = ["transpose_conv_out_size", "transpose_conv_padding", "transpose_conv_s8", "transpose_conv_s16"]


def _c_div(a: int, b: int) -> int:
    """C's truncating division of ints (``b > 0``)."""
    q = abs(a) // b
    return q if a >= 0 else -q


def transpose_conv_out_size(padding: str, image_size: int, filter_size: int, stride: int) -> int | None:
    """TFLite ``ComputeOutSizeChecked`` (dilation 1): None where TFLite reports an error (a negative size)."""
    if padding == "SAME":
        value = _c_div(image_size + stride - 1, stride)
    elif padding == "VALID":
        value = _c_div(image_size + stride - filter_size, stride)
    else:
        raise ValueError(f"padding must be SAME or VALID, got {padding!r}")
    return None if value < 0 else value


def transpose_conv_padding(padding: str, stride_h: int, stride_w: int, out_h: int, out_w: int, kh: int,
                           kw: int) -> tuple[int, int]:
    """``(pad_h, pad_w)`` as TFLM's TRANSPOSE_CONV computes them (``ComputePaddingHeightWidth``).

    The "image" is the transposed convolution's *output* (``out_h`` x ``out_w``); the size of the
    forward convolution's output is derived from it (``ComputeOutSize``), then the leading padding
    ``max(0, (size - 1) * stride + filter - image) // 2`` (the odd pixel's offset is not used by the
    kernel). When either size computation fails (VALID with a filter far larger than the image),
    TFLite leaves both paddings at 0.
    """
    oh = transpose_conv_out_size(padding, out_h, kh, stride_h)
    ow = transpose_conv_out_size(padding, out_w, kw, stride_w)
    if oh is None or ow is None:
        return 0, 0
    pad_h = max(0, (oh - 1) * stride_h + kh - out_h) // 2
    pad_w = max(0, (ow - 1) * stride_w + kw - out_w) // 2
    return pad_h, pad_w


def _accumulate(x, w, out_hw, stride, pad, input_offset):
    """The scattered sums ``acc[b][oy][ox][oc]`` (Python ints, exact) of TFLM's first loop nest."""
    n, h, wd, c = x.shape
    o, kh, kw, _ = w.shape
    oh, ow = out_hw
    xs, ws = x.astype(int).tolist(), w.astype(int).tolist()
    acc = [[[[0] * o for _ in range(ow)] for _ in range(oh)] for _ in range(n)]
    for b in range(n):
        for iy in range(h):
            for ix in range(wd):
                for ic in range(c):
                    v = xs[b][iy][ix][ic] + input_offset
                    for fy in range(kh):
                        oy = iy * stride[0] - pad[0] + fy
                        for fx in range(kw):
                            ox = ix * stride[1] - pad[1] + fx
                            if 0 <= oy < oh and 0 <= ox < ow:
                                for oc in range(o):
                                    acc[b][oy][ox][oc] += v * ws[oc][fy][fx][ic]
    return acc


def transpose_conv_s8(x, w, bias, *, out_hw, stride=(1, 1), padding="SAME", input_offset, output_offset,
                      multiplier, shift, act_min=-128, act_max=127, rounding=DOUBLE_ROUNDING):
    """Spec of TFLM int8 ``TransposeConv``: x int8[N, H, W, C], w int8[O, KH, KW, C], bias int32[O] or None.

    ``out_hw`` is the output's (height, width), ``stride`` (h, w), ``padding`` "SAME"/"VALID";
    ``multiplier``/``shift`` have O entries. Returns int8[N, OH, OW, O].
    """
    x, w = np.asarray(x), np.asarray(w)
    pad = transpose_conv_padding(padding, stride[0], stride[1], out_hw[0], out_hw[1], w.shape[1], w.shape[2])
    acc = _accumulate(x, w, out_hw, stride, pad, input_offset)
    out = np.zeros((x.shape[0], out_hw[0], out_hw[1], w.shape[0]), dtype=np.int8)
    for idx in np.ndindex(*out.shape):
        b, oy, ox, oc = idx
        a = wrap_int32(acc[b][oy][ox][oc])
        if bias is not None:
            a = wrap_int32(a + int(bias[oc]))
        v = multiply_by_quantized_multiplier(a, int(multiplier[oc]), int(shift[oc]), rounding) + output_offset
        out[idx] = min(max(v, act_min), act_max)
    return out


def transpose_conv_s16(x, w, bias, *, out_hw, stride=(1, 1), padding="SAME", multiplier, shift, act_min=-32768,
                       act_max=32767):
    """Spec of TFLM 16x8 ``TransposeConv``: x int16[N, H, W, C], w int8[O, KH, KW, C], bias int64[O] or None.

    No offsets (int16 activations have zero point 0); int64 accumulators; the int64 requantization
    (its contract: ``|acc + bias| < 2**47``, shift <= 7). Returns int16[N, OH, OW, O].
    """
    x, w = np.asarray(x), np.asarray(w)
    pad = transpose_conv_padding(padding, stride[0], stride[1], out_hw[0], out_hw[1], w.shape[1], w.shape[2])
    acc = _accumulate(x, w, out_hw, stride, pad, 0)
    out = np.zeros((x.shape[0], out_hw[0], out_hw[1], w.shape[0]), dtype=np.int16)
    for idx in np.ndindex(*out.shape):
        b, oy, ox, oc = idx
        a = acc[b][oy][ox][oc] + (int(bias[oc]) if bias is not None else 0)
        v = multiply_by_quantized_multiplier_int64(a, int(multiplier[oc]), int(shift[oc]))
        out[idx] = min(max(v, act_min), act_max)
    return out
