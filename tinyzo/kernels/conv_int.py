"""Integer CONV_2D: int8 x int8 -> int32 multiply-accumulate with the requantization fused in.

The same arithmetic as TFLM's ``ConvPerChannel`` (and CMSIS-NN's ``arm_convolve_s8``), arranged
for a CPU with SIMD:

* the input offset is folded into a per-output-channel constant at prepare time
  (``const[o] = bias[o] + input_offset * sum(w[o, :])``, wrapped to int32), so the loop multiplies
  raw int8 values: ``acc[o] = const[o] + sum_k x[k] * w[o, k]`` (mod 2**32, as C's int32 sum).
  Padding positions hold the input zero point, whose contribution ``w * zp`` the constant cancels
  exactly, as if they were skipped;
* the weights are packed once (:func:`pack_weight_pairs`) in the order the inner loop reads
  them: ``wp[k // 2, o]`` holds ``w[o, k]`` in its low 16 bits and ``w[o, k + 1]`` in its high 16
  bits, the output channels padded to a multiple of :data:`LANE_PAD`. The inner loop runs over the
  output channels of one output pixel, two such pairs (four input channels) per pass; LLVM
  compiles ``lo16(w) * x0 + hi16(w) * x1`` on an AVX2 CPU to ``vpmaddwd`` (and with AVX512-VNNI to
  ``vpdpwssd``): 16-bit multiplies with 32-bit sums, no ``vpmulld``;
* pixels are processed in blocks of ``acc.shape[0]``; a block's accumulators (a few KB, in L1) are
  requantized in one vectorized pass (:func:`tinyzo.kernels.requant.requantize_row_s8`) and the
  int8 results are stored once.

Layouts as TFLite: x NHWC, filter OHWI (flattened to K = KH*KW*C in that order), out NHWC.
Every result equals :func:`tinyzo.kernels.conv.conv2d_acc_ref` + requantization (TFLM), for
either rounding mode; tested in tests/test_conv_int.py and against TFLM in tests/test_ops_tflm.py.
"""

import numpy as np
from numba import njit

from tinyzo.kernels.conv_gemm import gather_patch, next_pixel, window_params
from tinyzo.kernels.requant import requantize_row_s8

#: output channels are padded to a multiple of this (the vector width in int32 lanes)
LANE_PAD = 8

#: the scalar parameters of :func:`conv2d_s8_int` (one record, like a C params struct)
CONV_PARAMS = np.dtype([
    ("kh", np.int32), ("kw", np.int32), ("stride_h", np.int32), ("stride_w", np.int32),
    ("dil_h", np.int32), ("dil_w", np.int32), ("pad_h", np.int32), ("pad_w", np.int32),
    ("pad_value", np.int32), ("output_offset", np.int32), ("act_min", np.int32), ("act_max", np.int32),
    ("rounding", np.int32),
])


def pack_weight_pairs(w2: np.ndarray, n_pad: int) -> np.ndarray:
    """Pack int8 weights for :func:`mac_pairs`.

    Args:
        w2: int8[O, K], one row per output channel (OHWI flattened).
        n_pad: padded channel count >= O (extra channels get zero weights).

    Returns:
        int32[ceil(K / 2), n_pad]: ``wp[k2, o] = (w[o, 2*k2] & 0xFFFF) | (w[o, 2*k2 + 1] << 16)``;
        an odd K gets a zero high half in the last row.
    """
    o, k = w2.shape
    k2 = (k + 1) // 2
    w16 = np.zeros((2 * k2, n_pad), dtype=np.int16)
    w16[:k, :o] = w2.T
    lo = w16[0::2].astype(np.int32) & 0xFFFF
    hi = w16[1::2].astype(np.int32) << 16
    return np.ascontiguousarray(lo | hi)


@njit(cache=True, inline="always")
def _lo16(v):
    """The signed low 16 bits of an int32 (the even-k weight of a packed pair)."""
    return np.int32(np.int16(v & 0xFFFF))


@njit(cache=True, inline="always")
def _hi16(v):
    """The signed high 16 bits of an int32 (the odd-k weight of a packed pair)."""
    return np.int32(v >> 16)


@njit(cache=True, nogil=True, inline="always")
def mac_pairs(src, so, k_len, wf, n_pad, af, ao):
    """``af[ao + j] += sum_k src[so + k] * w[j, k]`` in int32 (wrapping), for j < n_pad.

    Args:
        src: int8[...] flat; the K values of one input pixel (1x1) or one patch start at ``so``.
        so: uint64 offset; k_len: K.
        wf: int32[ceil(K / 2) * n_pad], :func:`pack_weight_pairs` flattened.
        af: int32[...] flat accumulators, the pixel's n_pad values start at ``ao`` (uint64).

    The sum is formed in int64 and wrapped to int32 (C's int32 sum; the same without the JIT, where
    NumPy's int32 scalars would warn). Offsets are unsigned and the arrays flat so that every index is a plain unsigned sum: a signed
    index makes Numba emit a negative-index wraparound, and an array view per pixel costs atomic
    reference counting; either keeps the loop from running at full speed.
    """
    one = np.uint64(1)
    k2 = (k_len + 1) // 2
    kp = 0
    while 2 * kp + 3 < k_len:  # two pairs = four input channels per pass over the accumulators
        k = so + np.uint64(2 * kp)
        a0 = np.int32(src[k])
        a1 = np.int32(src[k + one])
        b0 = np.int32(src[k + np.uint64(2)])
        b1 = np.int32(src[k + np.uint64(3)])
        wa = np.uint64(kp) * n_pad
        wb = wa + n_pad
        for j in range(n_pad):
            u = wf[wa + j]
            v = wf[wb + j]
            af[ao + j] = np.int32(np.int64(af[ao + j]) + np.int32(_lo16(u) * a0) + np.int32(_hi16(u) * a1)
                                  + np.int32(_lo16(v) * b0) + np.int32(_hi16(v) * b1))
        kp += 2
    while kp < k2:  # the last one or two pairs; an odd K's missing input is 0 (its weight is 0 too)
        k = so + np.uint64(2 * kp)
        a0 = np.int32(src[k])
        a1 = np.int32(src[k + one]) if 2 * kp + 1 < k_len else np.int32(0)
        wa = np.uint64(kp) * n_pad
        for j in range(n_pad):
            u = wf[wa + j]
            af[ao + j] = np.int32(np.int64(af[ao + j]) + np.int32(_lo16(u) * a0) + np.int32(_hi16(u) * a1))
        kp += 1


@njit(cache=True, nogil=True, inline="always")
def copy_rows(ob, n_pad, out_flat, first, count, o):
    """Copy the first ``o`` of each of ``count`` rows of ``ob`` (flat int8, rows ``n_pad`` apart) to output
    pixels ``first, first + 1, ...`` of ``out_flat`` (flat int8, ``o`` channels per pixel)."""
    for i in range(count):
        d0 = np.uint64((first + i) * o)
        s0 = np.uint64(i * n_pad)
        for j in range(np.uint64(o)):
            out_flat[d0 + j] = ob[s0 + j]


@njit(cache=True, nogil=True)
def flush_block(acc, cnt, o, rq, p, obuf, out_flat, first):
    """Requantize accumulator rows [0, cnt) and store them as output pixels first, first + 1, ..."""
    n_pad = acc.shape[1]
    length = cnt * n_pad
    if n_pad == o:  # rows are contiguous in the output too: requantize straight into it
        requantize_row_s8(acc.reshape(-1)[:length], rq, p["output_offset"], p["act_min"], p["act_max"],
                          p["rounding"], out_flat[first * o:first * o + length])
        return
    ob = obuf.reshape(-1)
    requantize_row_s8(acc.reshape(-1)[:length], rq, p["output_offset"], p["act_min"], p["act_max"],
                      p["rounding"], ob[:length])
    copy_rows(ob, n_pad, out_flat, first, cnt, o)


@njit(cache=True, nogil=True)
def conv2d_s8_int(x, wp, const32, rq, params, patch, acc, obuf, out):
    """int8 CONV_2D (TFLM ``ConvPerChannel``) computed in integers, requantization fused.

    Args:
        x: int8[N, H, W, C], C-contiguous.
        wp: int32[ceil(K / 2), NP] packed filter (:func:`pack_weight_pairs`), K = KH*KW*C, NP >= O.
        const32: int32[NP], ``bias + input_offset * sum_k w`` wrapped to int32 (0 for padding channels).
        rq: int32[3 or 5, >= B*NP], the per-channel requantization parameters (padded to NP) tiled B
            times (:func:`tinyzo.kernels.requant.requant_params`).
        params: CONV_PARAMS[1]: filter size, strides, dilations, leading padding (TFLM's
            ``ComputePaddingWithOffset``), pad_value = input zero point, output offset, clamp bounds,
            rounding (0 double, 1 single).
        patch: int8[K] scratch (unused for an unpadded 1x1 filter, which reads input pixels in place).
        acc: int32[B, NP] scratch; B pixels per block.
        obuf: int8[B, NP] scratch (used when NP > O).
        out: int8[N, OH, OW, O], C-contiguous, written.
    """
    p = params[0]
    kh, kw, sh, sw, dh, dw, ph, pw, pv = window_params(p)
    n, h, w, c = x.shape
    _, oh, ow, o = out.shape
    block, n_pad = acc.shape
    k_len = kh * kw * c
    direct = kh == 1 and kw == 1 and ph == 0 and pw == 0
    xf = x.reshape(-1)
    wf = wp.reshape(-1)
    af = acc.reshape(-1)
    out_flat = out.reshape(-1)
    npu = np.uint64(n_pad)
    total = n * oh * ow
    b = oy = ox = 0  # the first pixel of the block
    for first in range(0, total, block):
        cnt = min(block, total - first)
        for i in range(cnt):
            ao = np.uint64(i) * npu
            for j in range(npu):
                af[ao + j] = const32[j]
            if direct:
                so = np.uint64(((b * h + oy * sh) * w + ox * sw) * c)
                mac_pairs(xf, so, k_len, wf, npu, af, ao)
            else:
                gather_patch(xf, x.shape, b, oy, ox, kh, kw, sh, sw, dh, dw, ph, pw, pv, patch, np.uint64(0))
                mac_pairs(patch, np.uint64(0), k_len, wf, npu, af, ao)
            b, oy, ox = next_pixel(b, oy, ox, oh, ow)
        flush_block(acc, cnt, o, rq, p, obuf, out_flat, first)
