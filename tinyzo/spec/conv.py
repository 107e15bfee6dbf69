"""Pure-Python specification of the int8 convolution family (TFLite Micro reference).

``conv2d_s8``, ``depthwise_conv2d_s8`` and ``fully_connected_s8`` follow
``tensorflow/lite/kernels/internal/reference/integer_ops/{conv,depthwise_conv,
fully_connected}.h`` line by line: accumulate ``w * (x + input_offset)`` in
int32 (C wraps on overflow; here the exact sum is wrapped once, which is the
same modulo 2**32), add the bias, requantize, add the output offset, clamp.
Padding positions are skipped, as TFLM does. Slow; for tests only.
"""

from __future__ import annotations

import itertools

import numpy as np

from tinyzo.spec.arith import DOUBLE_ROUNDING, multiply_by_quantized_multiplier, wrap_int32


def compute_out_size(padding: str, image_size: int, filter_size: int, stride: int, dilation: int) -> int:
    """TFLite ``ComputeOutSize`` (C integer division of non-negative values)."""
    effective = (filter_size - 1) * dilation + 1
    if stride == 0:
        return 0
    if padding == "SAME":
        return (image_size + stride - 1) // stride
    if padding == "VALID":
        return (image_size + stride - effective) // stride if image_size + stride - effective >= 0 else 0
    raise ValueError(f"padding must be SAME or VALID, got {padding!r}")


def compute_padding(stride: int, dilation: int, in_size: int, filter_size: int, out_size: int) -> int:
    """TFLite ``ComputePaddingWithOffset``: the leading padding (the odd extra pixel goes after)."""
    effective = (filter_size - 1) * dilation + 1
    total = (out_size - 1) * stride + effective - in_size
    total = max(0, total)
    return total // 2


def _geometry(padding: str, h: int, wd: int, kh: int, kw: int, stride, dilation) -> tuple:
    """Output size and leading padding of a convolution window: ``(OH, OW, pad_top, pad_left)``."""
    sh, sw = stride
    dh, dw = dilation
    oh = compute_out_size(padding, h, kh, sh, dh)
    ow = compute_out_size(padding, wd, kw, sw, dw)
    return oh, ow, compute_padding(sh, dh, h, kh, oh), compute_padding(sw, dw, wd, kw, ow)


def _taps(oy: int, ox: int, h: int, wd: int, kh: int, kw: int, stride, dilation, ph: int, pw: int) -> list:
    """``(fy, fx, iy, ix)`` of the filter taps of output ``(oy, ox)`` inside the image, in (fy, fx) order.

    ``iy = oy*sh - ph + dh*fy``, ``ix = ox*sw - pw + dw*fx``; TFLM skips the taps outside the image.
    """
    sh, sw = stride
    dh, dw = dilation
    taps = []
    for fy in range(kh):
        iy = oy * sh - ph + dh * fy
        for fx in range(kw):
            ix = ox * sw - pw + dw * fx
            if 0 <= iy < h and 0 <= ix < wd:
                taps.append((fy, fx, iy, ix))
    return taps


def _requant(acc, bias, oc, mult, shift, output_offset, act_min, act_max, rounding):
    """Add the bias of output channel ``oc`` (none: 0), requantize, add the output offset, clamp."""
    acc += 0 if bias is None else int(bias[oc])
    v = multiply_by_quantized_multiplier(wrap_int32(acc), int(mult), int(shift), rounding) + output_offset
    return min(max(v, act_min), act_max)


def conv2d_s8(x, w, bias, *, stride=(1, 1), dilation=(1, 1), padding="VALID", input_offset, output_offset,
              multiplier, shift, act_min=-128, act_max=127, rounding=DOUBLE_ROUNDING):
    """Spec of TFLM ``ConvPerChannel`` (int8). x int8[N,H,W,C], w int8[O,KH,KW,C/G], bias int32[O] or None.

    ``stride``/``dilation`` are (h, w). Returns int8[N, OH, OW, O]. A filter with fewer input
    channels than the input is a grouped convolution, as TFLM computes it: ``G = C // (C/G)``
    groups, output channel ``oc`` in group ``oc // (O / G)`` reads input channels
    ``group * (C/G) ... group * (C/G) + C/G - 1``.
    """
    x = np.asarray(x).astype(int).tolist()
    w = np.asarray(w)
    n, h, wd, c = np.asarray(x).shape if len(x) else (0, 0, 0, 0)
    o, kh, kw, wc = w.shape
    w = w.astype(int).tolist()
    oh, ow, ph, pw = _geometry(padding, h, wd, kh, kw, stride, dilation)
    out = np.zeros((n, oh, ow, o), dtype=np.int8)
    for b, oy, ox in itertools.product(range(n), range(oh), range(ow)):
        taps = _taps(oy, ox, h, wd, kh, kw, stride, dilation, ph, pw)
        for oc in range(o):
            g0 = (oc // (o // (c // wc))) * wc  # first input channel of oc's group
            acc = 0
            for fy, fx, iy, ix in taps:
                for ic in range(wc):
                    acc += w[oc][fy][fx][ic] * (x[b][iy][ix][g0 + ic] + input_offset)
            out[b, oy, ox, oc] = _requant(acc, bias, oc, multiplier[oc], shift[oc], output_offset, act_min, act_max,
                                          rounding)
    return out


def depthwise_conv2d_s8(x, w, bias, *, stride=(1, 1), dilation=(1, 1), padding="VALID", depth_multiplier=1,
                        input_offset, output_offset, multiplier, shift, act_min=-128, act_max=127,
                        rounding=DOUBLE_ROUNDING):
    """Spec of TFLM ``DepthwiseConvPerChannel`` (int8). x int8[N,H,W,C], w int8[1,KH,KW,C*M], bias int32[C*M] or None.

    Output channel ``oc = ic * depth_multiplier + m`` reads input channel ``ic``. Returns int8[N, OH, OW, C*M].
    """
    xa = np.asarray(x)
    n, h, wd, c = xa.shape
    x = xa.astype(int).tolist()
    _, kh, kw, oc_total = np.asarray(w).shape
    w = np.asarray(w).astype(int).tolist()
    oh, ow, ph, pw = _geometry(padding, h, wd, kh, kw, stride, dilation)
    out = np.zeros((n, oh, ow, oc_total), dtype=np.int8)
    for b, oy, ox in itertools.product(range(n), range(oh), range(ow)):
        taps = _taps(oy, ox, h, wd, kh, kw, stride, dilation, ph, pw)
        for ic in range(c):
            for m in range(depth_multiplier):
                oc = ic * depth_multiplier + m
                acc = 0
                for fy, fx, iy, ix in taps:
                    acc += w[0][fy][fx][oc] * (x[b][iy][ix][ic] + input_offset)
                out[b, oy, ox, oc] = _requant(acc, bias, oc, multiplier[oc], shift[oc], output_offset, act_min,
                                              act_max, rounding)
    return out


def fully_connected_s8(x, w, bias, *, input_offset, output_offset, multiplier, shift, act_min=-128, act_max=127,
                       rounding=DOUBLE_ROUNDING, filter_offset=0):
    """Spec of TFLM ``FullyConnected`` / ``FullyConnectedPerChannel`` (int8).

    x int8[M, K], w int8[O, K], bias int32[O] or None; ``multiplier``/``shift``
    have O entries (per channel) or 1 (per tensor). Returns int8[M, O].
    """
    xa = np.asarray(x).astype(int).tolist()
    wa = np.asarray(w).astype(int).tolist()
    m_rows = len(xa)
    o = len(wa)
    out = np.zeros((m_rows, o), dtype=np.int8)
    per_channel = len(multiplier) > 1
    for i in range(m_rows):
        for oc in range(o):
            acc = 0
            for k, xv in enumerate(xa[i]):
                acc += (wa[oc][k] + filter_offset) * (xv + input_offset)
            j = oc if per_channel else 0
            out[i, oc] = _requant(acc, bias, oc, multiplier[j], shift[j], output_offset, act_min, act_max, rounding)
    return out
