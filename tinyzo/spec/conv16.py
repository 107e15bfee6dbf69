"""Pure-Python specification of the 16x8 convolution family (TFLite Micro reference kernels).

16x8 quantization: int16 activations (zero point 0), int8 symmetric weights, an int64 bias (or an
int32 one). ``conv2d_s16``, ``depthwise_conv2d_s16`` and ``fully_connected_s16`` follow the int16
overloads of ``tensorflow/lite/kernels/internal/reference/integer_ops/{conv,depthwise_conv,
fully_connected}.h`` line by line:

* CONV_2D (``ConvPerChannel<AccumScalar>``): ``acc += w * x`` (no input offset), ``+ bias``,
  ``MultiplyByQuantizedMultiplier(acc, m, s)``, clamp; **no output offset** (TFLM ignores the
  output zero point here). ``AccumScalar`` is int64 with an int64 bias (or none), int32 with an
  int32 bias (or none and ``quantized_bias_type = INT32``); the int32 accumulator selects the int32
  requantization (double or single rounding), the int64 one
  :func:`tinyzo.spec.arith.multiply_by_quantized_multiplier_int64`. Grouped filters as in
  :func:`tinyzo.spec.conv.conv2d_s8`.
* DEPTHWISE_CONV_2D: int64 accumulator and bias only, no offsets.
* FULLY_CONNECTED (``FullyConnected`` / ``FullyConnectedPerChannel<int16_t, int8_t, int16_t,
  BiasType>``): ``acc += (w + filter_offset) * (x + input_offset)``, ``+ bias``, requantize, ``+
  output_offset``, clamp, accumulator int64 or int32 as for CONV_2D.

Sums are exact here and wrapped once to the accumulator width (the same modulo 2**64 / 2**32 as
C's wrapping adds). Slow; for tests only.
"""

from __future__ import annotations

import numpy as np

from tinyzo.spec.arith import (
    DOUBLE_ROUNDING,
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_int64,
    wrap_int32,
    wrap_int64,
)
from tinyzo.spec.conv import compute_out_size, compute_padding

INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1


def requantize_s16(acc: int, multiplier: int, shift: int, acc_bits: int, rounding: str = DOUBLE_ROUNDING) -> int:
    """The 16x8 requantization of one exact sum: int64 overload for ``acc_bits = 64``, int32 (``rounding``) for 32."""
    if acc_bits == 64:
        return multiply_by_quantized_multiplier_int64(wrap_int64(acc), int(multiplier), int(shift))
    if acc_bits == 32:
        return multiply_by_quantized_multiplier(wrap_int32(acc), int(multiplier), int(shift), rounding)
    raise ValueError(f"acc_bits must be 32 or 64, got {acc_bits}")


def _clamp(v: int, lo: int, hi: int) -> int:
    return min(max(v, lo), hi)


def _geometry(x, w, stride, dilation, padding):
    """Python-int lists of ``x`` (int16[N,H,W,C]) and ``w`` (int8[O|1,KH,KW,C']), the input shape, the stride and
    dilation pairs, the output size ``(OH, OW)`` and the top/left padding ``(PH, PW)`` of a 2-D convolution."""
    xa = np.asarray(x)
    n, h, wd, c = xa.shape
    _, kh, kw, _ = np.asarray(w).shape
    sh, sw = stride
    dh, dw = dilation
    oh = compute_out_size(padding, h, kh, sh, dh)
    ow = compute_out_size(padding, wd, kw, sw, dw)
    ph = compute_padding(sh, dh, h, kh, oh)
    pw = compute_padding(sw, dw, wd, kw, ow)
    return (xa.astype(int).tolist(), np.asarray(w).astype(int).tolist(), (n, h, wd, c), (sh, sw), (dh, dw), (oh, ow),
            (ph, pw))


def conv2d_s16(x, w, bias, *, stride=(1, 1), dilation=(1, 1), padding="VALID", multiplier, shift,
               act_min=INT16_MIN, act_max=INT16_MAX, acc_bits=64, rounding=DOUBLE_ROUNDING):
    """Spec of TFLM's int16 ``ConvPerChannel``. x int16[N,H,W,C], w int8[O,KH,KW,C/G], bias int64/int32[O] or None.

    ``multiplier``/``shift``: O values (QuantizeMultiplier of ``s_in * s_w[o] / s_out``). Returns int16[N,OH,OW,O].
    """
    o, kh, kw, wc = np.asarray(w).shape
    xl, wl, (n, h, wd, c), (sh, sw), (dh, dw), (oh, ow), (ph, pw) = _geometry(x, w, stride, dilation, padding)
    per_group = o // (c // wc)
    out = np.zeros((n, oh, ow, o), dtype=np.int16)
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                for oc in range(o):
                    g0 = (oc // per_group) * wc
                    acc = 0
                    for fy in range(kh):
                        iy = oy * sh - ph + dh * fy
                        for fx in range(kw):
                            ix = ox * sw - pw + dw * fx
                            if not (0 <= iy < h and 0 <= ix < wd):
                                continue
                            for ic in range(wc):
                                acc += wl[oc][fy][fx][ic] * xl[b][iy][ix][g0 + ic]
                    if bias is not None:
                        acc += int(bias[oc])
                    v = requantize_s16(acc, multiplier[oc], shift[oc], acc_bits, rounding)
                    out[b, oy, ox, oc] = _clamp(v, act_min, act_max)
    return out


def depthwise_conv2d_s16(x, w, bias, *, stride=(1, 1), dilation=(1, 1), padding="VALID", depth_multiplier=1,
                         multiplier, shift, act_min=INT16_MIN, act_max=INT16_MAX):
    """Spec of TFLM's int16 ``DepthwiseConvPerChannel`` (int64 accumulator and bias, no offsets).

    x int16[N,H,W,C], w int8[1,KH,KW,C*M], bias int64[C*M] or None. Returns int16[N,OH,OW,C*M].
    """
    _, kh, kw, oc_total = np.asarray(w).shape
    xl, wl, (n, h, wd, c), (sh, sw), (dh, dw), (oh, ow), (ph, pw) = _geometry(x, w, stride, dilation, padding)
    out = np.zeros((n, oh, ow, oc_total), dtype=np.int16)
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                for ic in range(c):
                    for m in range(depth_multiplier):
                        oc = ic * depth_multiplier + m
                        acc = 0
                        for fy in range(kh):
                            iy = oy * sh - ph + dh * fy
                            for fx in range(kw):
                                ix = ox * sw - pw + dw * fx
                                if 0 <= iy < h and 0 <= ix < wd:
                                    acc += wl[0][fy][fx][oc] * xl[b][iy][ix][ic]
                        if bias is not None:
                            acc += int(bias[oc])
                        v = requantize_s16(acc, multiplier[oc], shift[oc], 64)
                        out[b, oy, ox, oc] = _clamp(v, act_min, act_max)
    return out


def fully_connected_s16(x, w, bias, *, multiplier, shift, input_offset=0, filter_offset=0, output_offset=0,
                        act_min=INT16_MIN, act_max=INT16_MAX, acc_bits=64, rounding=DOUBLE_ROUNDING):
    """Spec of TFLM's int16 ``FullyConnected`` / ``FullyConnectedPerChannel``.

    x int16[M, K], w int8[O, K], bias int64/int32[O] or None; ``multiplier``/``shift`` have O
    entries (per channel) or 1 (per tensor). Returns int16[M, O].
    """
    xa = np.asarray(x).astype(int).tolist()
    wa = np.asarray(w).astype(int).tolist()
    o = len(wa)
    out = np.zeros((len(xa), o), dtype=np.int16)
    per_channel = len(multiplier) > 1
    for i, row in enumerate(xa):
        for oc in range(o):
            acc = 0
            for k, xv in enumerate(row):
                acc += (wa[oc][k] + filter_offset) * (xv + input_offset)
            if bias is not None:
                acc += int(bias[oc])
            j = oc if per_channel else 0
            v = requantize_s16(acc, multiplier[j], shift[j], acc_bits, rounding) + output_offset
            out[i, oc] = _clamp(v, act_min, act_max)
    return out
