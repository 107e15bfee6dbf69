"""Jitted int8 convolution kernels: conv2d, depthwise conv2d, fully connected.

Two implementations of each accumulation, tested equal to each other and to
:mod:`tinyzo.spec.conv`:

* ``*_acc_ref``: the TFLM reference loop, one output element at a time
  (accumulate ``w * (x + input_offset)`` in int32, skip padding positions);
  this is the code to read next to a C port.
* the fast paths used by the models: CONV_2D in :mod:`tinyzo.kernels.conv_gemm`
  (exact float GEMM) and :mod:`tinyzo.kernels.conv_int` (integer loops), both
  with the requantization of :mod:`tinyzo.kernels.requant` fused in; the
  depthwise row kernel :func:`depthwise_conv2d_s8_fast` below.

Depthwise convolution is a direct loop (channels innermost, contiguous in NHWC).
Shapes: activations NHWC, conv filters OHWI, depthwise filters 1HWC.
"""

import numpy as np
from numba import njit

from tinyzo.kernels.arith import multiply_by_quantized_multiplier
from tinyzo.kernels.requant import requantize_row_s8


@njit(cache=True, nogil=True)
def conv2d_acc_ref(x, w, bias, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w, input_offset, acc):
    """TFLM reference accumulation of ``ConvPerChannel``: acc int32[N,OH,OW,O] = sum w*(x+input_offset) + bias.

    x int8[N,H,W,C]; w int8[O,KH,KW,C]; bias int32[O] (use zeros when absent); input_offset = -zero_point.
    """
    n, h, wd, c = x.shape
    o, kh, kw, _ = w.shape
    _, oh, ow, _ = acc.shape
    for b, oy, ox in np.ndindex(n, oh, ow):
        for oc in range(o):
            s = np.int32(0)
            for fy in range(kh):
                iy = oy * stride_h - pad_h + dil_h * fy
                for fx in range(kw):
                    ix = ox * stride_w - pad_w + dil_w * fx
                    if iy < 0 or iy >= h or ix < 0 or ix >= wd:
                        continue
                    for ic in range(c):
                        s = np.int32(s + np.int32(w[oc, fy, fx, ic]) * (np.int32(x[b, iy, ix, ic]) + np.int32(input_offset)))
            acc[b, oy, ox, oc] = np.int32(s + np.int32(bias[oc]))


@njit(cache=True, nogil=True)
def depthwise_conv2d_s8(x, w, bias, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w, depth_multiplier,
                        input_offset, output_offset, multiplier, shift, act_min, act_max, rounding, out):
    """TFLM ``DepthwiseConvPerChannel`` (int8), reference loop: accumulate + bias + requantize + clamp.

    Args:
        x: int8[N,H,W,C]; w: int8[1,KH,KW,C*M] with M = depth_multiplier; bias: int32[C*M] (zeros if absent).
        stride_*, dil_*: >= 1; pad_h, pad_w: leading padding (TFLM ComputePaddingWithOffset).
        input_offset: -input zero point; output_offset: output zero point.
        multiplier, shift: int32[C*M]; act_min, act_max in [-128, 127]; rounding: 0 double, 1 single.
        out: int8[N,OH,OW,C*M], written. Output channel ``ic*M + m`` reads input channel ``ic``.
    """
    n, h, wd, c = x.shape
    _, kh, kw, _ = w.shape
    _, oh, ow, _ = out.shape
    for b, oy, ox in np.ndindex(n, oh, ow):
        for ic in range(c):
            for m in range(depth_multiplier):
                oc = ic * depth_multiplier + m
                s = np.int32(0)
                for fy in range(kh):
                    iy = oy * stride_h - pad_h + dil_h * fy
                    for fx in range(kw):
                        ix = ox * stride_w - pad_w + dil_w * fx
                        if iy >= 0 and iy < h and ix >= 0 and ix < wd:
                            s = np.int32(s + np.int32(w[0, fy, fx, oc]) * (np.int32(x[b, iy, ix, ic]) + np.int32(input_offset)))
                s = np.int32(s + np.int32(bias[oc]))
                v = multiply_by_quantized_multiplier(s, multiplier[oc], shift[oc], rounding) + output_offset
                if v < act_min:
                    v = act_min
                elif v > act_max:
                    v = act_max
                out[b, oy, ox, oc] = v


@njit(cache=True, nogil=True, inline="always")
def _tap_start(rbase, fx, dil_w, s, c, phase_len):
    """Flat offset in ``xq`` of the OW*C input values filter column fx multiplies along one output row."""
    col = fx * dil_w
    return np.uint64(rbase + (col % s) * phase_len + (col // s) * c)


@njit(cache=True, nogil=True, inline="always")
def _taps3x3(acc, ctile, wf, xqf, rbase0, drow, dil_w, s, c, phase_len, n_j):
    """``acc[j] = ctile[j] + sum of the nine taps`` of one output row of a 3x3 depthwise filter, in one
    pass over the accumulators (rows ``rbase0 + fy * drow`` of the padded input, weights ``wf`` tiled)."""
    a0 = _tap_start(rbase0, 0, dil_w, s, c, phase_len)
    a1 = _tap_start(rbase0, 1, dil_w, s, c, phase_len)
    a2 = _tap_start(rbase0, 2, dil_w, s, c, phase_len)
    d = np.uint64(drow)
    b0, b1, b2 = a0 + d, a1 + d, a2 + d
    c0, c1, c2 = b0 + d, b1 + d, b2 + d
    for j in range(n_j):
        t0 = (wf[j] * np.int32(xqf[a0 + j]) + wf[n_j + j] * np.int32(xqf[a1 + j])
              + wf[2 * n_j + j] * np.int32(xqf[a2 + j]))
        t1 = (wf[3 * n_j + j] * np.int32(xqf[b0 + j]) + wf[4 * n_j + j] * np.int32(xqf[b1 + j])
              + wf[5 * n_j + j] * np.int32(xqf[b2 + j]))
        t2 = (wf[6 * n_j + j] * np.int32(xqf[c0 + j]) + wf[7 * n_j + j] * np.int32(xqf[c1 + j])
              + wf[8 * n_j + j] * np.int32(xqf[c2 + j]))
        acc[j] = np.int32(np.int64(ctile[j]) + t0 + t1 + t2)


@njit(cache=True, nogil=True, inline="always")
def _taps_rows(acc, ctile, wf, xqf, rbase0, drow, kh, kw, dil_w, s, c, phase_len, n_j):
    """``acc[j] = ctile[j] + sum of the KH*KW taps`` of one output row of any depthwise filter: one pass
    over the accumulators per three filter columns of each filter row (arguments as :func:`_taps3x3`)."""
    for j in range(n_j):
        acc[j] = ctile[j]
    for fy in range(kh):
        rbase = rbase0 + fy * drow
        fx = 0
        while fx < kw:  # up to three taps per pass over the accumulators
            taps = min(3, kw - fx)
            x0 = _tap_start(rbase, fx, dil_w, s, c, phase_len)
            w0 = np.uint64(fy * kw + fx) * n_j
            if taps == 3:
                x1 = _tap_start(rbase, fx + 1, dil_w, s, c, phase_len)
                x2 = _tap_start(rbase, fx + 2, dil_w, s, c, phase_len)
                w1 = w0 + n_j
                w2 = w1 + n_j
                for j in range(n_j):
                    acc[j] = np.int32(np.int64(acc[j]) + wf[w0 + j] * np.int32(xqf[x0 + j])
                                      + wf[w1 + j] * np.int32(xqf[x1 + j]) + wf[w2 + j] * np.int32(xqf[x2 + j]))
            elif taps == 2:
                x1 = _tap_start(rbase, fx + 1, dil_w, s, c, phase_len)
                w1 = w0 + n_j
                for j in range(n_j):
                    acc[j] = np.int32(np.int64(acc[j]) + wf[w0 + j] * np.int32(xqf[x0 + j])
                                      + wf[w1 + j] * np.int32(xqf[x1 + j]))
            else:
                for j in range(n_j):
                    acc[j] = np.int32(np.int64(acc[j]) + wf[w0 + j] * np.int32(xqf[x0 + j]))
            fx += taps


@njit(cache=True, nogil=True)
def fill_padded_rows(x, b, xq, stride_h, stride_w, dil_h, kh, pad_h, pad_w, depth_multiplier, pad_value,
                     oy_start, oy_stop, flip=False):
    """Step (1) of the depthwise kernels: copy sample ``b`` of ``x`` into the padded rows of ``xq`` that
    output rows ``oy_start <= oy < oy_stop`` read.

    Args:
        x: int8[N, H, W, Cin], C-contiguous.
        xq: int8[HP, S, WQ*C], C-contiguous (S = stride_w, C = Cin * depth_multiplier): padded row ``py``,
            phase ``ph``, column ``q`` holds input column ``q * S + ph - pad_w`` of input row ``py - pad_h``
            (each input channel repeated ``depth_multiplier`` times), ``pad_value`` outside the image.
            Every filter tap then reads one contiguous run of OW*C values.
        flip: store every byte with its sign bit flipped (``v ^ 0x80 = v + 128`` as uint8: the unsigned
            operand ``vpdpbusd`` multiplies, :mod:`tinyzo.kernels.depthwise_vnni`).
    """
    _, h, wd, cin = x.shape
    s = stride_w
    c = cin * depth_multiplier
    wq = xq.shape[2] // c
    phase_len = wq * c  # one phase of one padded row
    row_len = s * phase_len  # one padded row (all phases)
    xf = x.reshape(-1)
    xqf = xq.reshape(-1)
    if depth_multiplier == 1 and c % 8 == 0:  # 8-byte views (sizes are multiples of C)
        x64 = xf.view(np.uint64)
        xq64 = xqf.view(np.uint64)
    else:
        x64 = xq64 = np.empty(0, np.uint64)
    py_lo = oy_start * stride_h
    py_hi = (oy_stop - 1) * stride_h + (kh - 1) * dil_h + 1
    iy_lo = max(py_lo - pad_h, 0)
    iy_hi = min(py_hi - pad_h, h)
    f8 = np.int8(-128) if flip else np.int8(0)  # xor mask: the sign bit, or nothing
    f64 = np.uint64(0x8080808080808080) if flip else np.uint64(0)
    pv = np.int8(np.int8(pad_value) ^ f8)
    for i in range(np.uint64(py_lo * row_len), np.uint64(py_hi * row_len)):  # flat: a vectorized fill
        xqf[i] = pv
    for iy in range(iy_lo, iy_hi):
        src_row = np.uint64(((b * h + iy) * wd) * cin)
        for phase in range(s):
            # input columns ix whose padded column ix + pad_w falls in this phase
            col0 = pad_w + (phase - pad_w) % s
            if col0 >= pad_w + wd:
                continue
            ix0 = col0 - pad_w
            cnt = (wd - ix0 + s - 1) // s
            dst0 = np.uint64((iy + pad_h) * row_len + phase * phase_len + (col0 // s) * c)
            if s == 1 and depth_multiplier == 1:  # one contiguous run
                src0 = src_row + np.uint64(ix0 * c)
                for j in range(np.uint64(cnt * c)):
                    xqf[dst0 + j] = xf[src0 + j] ^ f8
            elif depth_multiplier == 1 and c % 8 == 0:  # whole 8-byte words (every offset a multiple of 8)
                words = np.uint64(c // 8)
                for q in range(cnt):
                    src0 = (src_row + np.uint64((ix0 + q * s) * c)) // np.uint64(8)
                    d0 = (dst0 + np.uint64(q * c)) // np.uint64(8)
                    for k in range(words):
                        xq64[d0 + k] = x64[src0 + k] ^ f64
            elif depth_multiplier == 1:
                for q in range(cnt):
                    src0 = src_row + np.uint64((ix0 + q * s) * c)
                    d0 = dst0 + np.uint64(q * c)
                    for k in range(np.uint64(c)):
                        xqf[d0 + k] = xf[src0 + k] ^ f8
            else:  # output channel ic * M + m reads input channel ic
                for q in range(cnt):
                    src0 = src_row + np.uint64((ix0 + q * s) * cin)
                    d0 = dst0 + np.uint64(q * c)
                    for ic in range(cin):
                        v = xf[src0 + np.uint64(ic)] ^ f8
                        for m in range(depth_multiplier):
                            xqf[d0 + np.uint64(ic * depth_multiplier + m)] = v


@njit(cache=True, nogil=True)
def depthwise_conv2d_s8_fast(x, wtile, ctile, rq, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w,
                             depth_multiplier, pad_value, output_offset, act_min, act_max, rounding, xq, out,
                             oy_start, oy_stop):
    """Depthwise convolution, fast path; equal to :func:`depthwise_conv2d_s8` (TFLM's loop) for every input.

    Args:
        x: int8[N,H,W,Cin]; output channels C = Cin * depth_multiplier.
        wtile: int16 or int32[KH,KW,OW*C], the filter tiled along an output row: ``wtile[fy,fx,ox*C+k] = w[0,fy,fx,k]``.
        ctile: int32[OW*C], tiled ``const[k] = input_offset * sum(w[..., k]) + bias[k]`` (wrapped to int32).
        rq: int32[3 or 5, OW*C], the per-channel requantization parameters tiled along a row
            (:func:`tinyzo.kernels.requant.requant_params`).
        pad_value: the input zero point (its offset-corrected value is 0).
        xq: int8[HP, S, WQ*C] work buffer, S = stride_w, HP/WQ covering every tap (see the op's prepare).
        out: int8[N,OH,OW,C]; output rows ``oy_start <= oy < oy_stop`` are written (the whole output
            for ``0, OH``; disjoint row ranges can run in parallel threads, each with its own ``xq``).
        Other parameters as :func:`depthwise_conv2d_s8`.

    Steps: (1) copy the input into ``xq`` padded with ``pad_value``, each input channel repeated
    ``depth_multiplier`` times and the columns split by phase ``col % stride_w``, so that every
    filter tap reads one contiguous run of OW*C values; (2) per output row, start the int32
    accumulators at ``const`` and multiply-add the taps: a 3x3 filter's nine taps and the constant in one
    pass, other sizes up to three filter columns per pass over the accumulators (a padded position adds ``w * zp``, which ``const`` cancels exactly); (3) requantize the row in one vectorized pass
    (:func:`tinyzo.kernels.requant.requantize_row_s8`). The int32 sums wrap like C's, and a sum
    modulo 2**32 does not depend on its order, so the result equals the reference loop.
    The loops index flat arrays with unsigned offsets: a signed computed index makes Numba emit a
    negative-index check that stops LLVM from vectorizing, and an array view per row or tap costs
    atomic reference counting (about as much as a small layer's arithmetic). ``x`` and ``out`` must
    be C-contiguous.
    """
    n = x.shape[0]
    kh, kw, owc = wtile.shape
    _, oh, _, c = out.shape
    s = stride_w
    wq = xq.shape[2] // c
    phase_len = wq * c  # one phase of one padded row
    row_len = s * phase_len  # one padded row (all phases)
    acc = np.empty(owc, dtype=np.int32)
    xqf = xq.reshape(-1)
    wf = wtile.reshape(-1)
    of = out.reshape(-1)
    n_j = np.uint64(owc)
    for b in range(n):
        # (1) pad, expand channels, split columns by phase
        fill_padded_rows(x, b, xq, stride_h, stride_w, dil_h, kh, pad_h, pad_w, depth_multiplier, pad_value,
                         oy_start, oy_stop)
        for oy in range(oy_start, oy_stop):
            # (2) accumulate
            if kh == 3 and kw == 3:  # the common 3x3 filter: all nine taps and the constant in one pass
                _taps3x3(acc, ctile, wf, xqf, (oy * stride_h) * row_len, dil_h * row_len, dil_w, s, c, phase_len,
                         n_j)
            else:
                _taps_rows(acc, ctile, wf, xqf, oy * stride_h * row_len, dil_h * row_len, kh, kw, dil_w, s, c,
                           phase_len, n_j)
            # (3) requantize
            o0 = (b * oh + oy) * owc
            requantize_row_s8(acc, rq, output_offset, act_min, act_max, rounding, of[o0:o0 + owc])


@njit(cache=True, nogil=True)
def fully_connected_acc_ref(x, w, bias, input_offset, filter_offset, acc):
    """TFLM reference accumulation of ``FullyConnected``: acc int32[M,O] = sum (w+filter_offset)*(x+input_offset) + bias.

    x int8[M,K]; w int8[O,K]; bias int32[O] (zeros if absent).
    """
    m_rows, k_len = x.shape
    o = w.shape[0]
    for i in range(m_rows):
        for oc in range(o):
            s = np.int32(0)
            for k in range(k_len):
                s = np.int32(s + (np.int32(w[oc, k]) + np.int32(filter_offset)) * (np.int32(x[i, k]) + np.int32(input_offset)))
            acc[i, oc] = np.int32(s + np.int32(bias[oc]))
