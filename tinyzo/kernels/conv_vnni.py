"""Integer CONV_2D on AVX512-VNNI: ``vpdpbusd`` micro-kernels with accumulators in registers.

The same arithmetic as :mod:`tinyzo.kernels.conv_int` (and TFLM's ``ConvPerChannel``), for CPUs
whose instruction set has ``vpdpbusd`` (AVX512-VNNI: Intel Ice Lake and later servers, AMD Zen 4 and
later). One ``vpdpbusd`` multiplies 64 unsigned bytes by 64 signed bytes and adds each group of
four products to one of 16 int32 lanes, without saturation, so 64 multiply-accumulates per
instruction, exact modulo 2**32 like C's int32 sums:

* the input is made unsigned by flipping its sign bit (``x ^ 0x80 = x + 128``), and the extra
  ``128 * sum_k w[o, k]`` is taken out of the per-channel start value at prepare time:
  ``init[o] = bias[o] + input_offset * sum(w[o]) - 128 * sum(w[o])`` (wrapped to int32;
  :func:`tinyzo.ops.conv_paths.vnni_operands`);
* the weights are packed once (:func:`pack_weight_quads`) as ``wq[k // 4, o, k % 4]``: 16 output
  channels times 4 consecutive input values are one 64-byte vector; K is padded to a multiple of
  4 and the channels to :data:`VNNI_LANES` with zero weights (a padded position contributes 0
  whatever input value it meets);
* :func:`_dot_tile32` (an LLVM-level intrinsic: Numba's loops cannot keep vector accumulators in
  registers across a loop) computes a tile of :data:`MR` output pixels by 32 output channels: 8
  vector accumulators stay in registers while the loop runs over K four values at a time, one
  broadcast of four input bytes per pixel and two weight vectors per step (:func:`_dot_tile16`:
  16 channels, for the last ones);
* with no positive shift (the one-formula requantization of :mod:`tinyzo.kernels.requant`, every
  layer of the benchmark models) the tiles requantize their accumulators in registers and store
  int8 straight into the output (:func:`_requant_tile32`, :func:`_requant_tile16`; the IR in
  :mod:`tinyzo.kernels.vnni_ir`), the per-channel constants prepared once per block of pixels;
  otherwise a block's accumulators are requantized in one vectorized pass
  (:func:`tinyzo.kernels.requant.requantize_row_s8`) and the int8 results stored once;
* an unpadded 1x1 stride-1 filter on a multiple of 4 channels reads its input rows in place; other
  filters read their receptive fields in place from a padded copy of the input
  (:func:`conv2d_s8_vnni_window`: each filter row padded to four bytes, a table of step offsets) or,
  with a positive shift or a dilation along the width, gather them per pixel.

:func:`vnni_available` tells whether this CPU (the one Numba compiles for) has the instruction;
the kernel must not be compiled elsewhere (:mod:`tinyzo.ops.conv_paths` only offers the path
where it is). Layouts as TFLite: x NHWC, filter OHWI (K = KH*KW*C), out NHWC.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from tinyzo.kernels.conv import fill_padded_rows
from tinyzo.kernels.conv_gemm import gather_patch, next_pixel, window_params
from tinyzo.kernels.conv_int import copy_rows, flush_block
from tinyzo.kernels.requant import RQU_ROWS, offset_bounds
from tinyzo.kernels.vnni_ir import (
    I8,
    I32,
    I64,
    V16,
    V16B,
    CountedLoop,
    load_requant_consts,
    load_vec,
    output_bounds,
    requantize,
    splat,
    vpdpbusd,
)

#: output pixels per micro-kernel tile
MR = 4
#: output channels are padded to a multiple of this (one 16-lane int32 vector); the tiles are 32
#: channels wide (two vectors), the last one 16 when the padded count is an odd multiple
VNNI_LANES = 16


def compiled_cpu_features() -> set:
    """The LLVM features (``"+avx512vnni"``, ...) of the CPU Numba compiles for (``NUMBA_CPU_NAME`` and
    ``NUMBA_CPU_FEATURES``, else the host); empty with ``NUMBA_DISABLE_JIT=1`` (no LLVM code runs)."""
    try:
        import llvmlite.binding as llvm
        from numba.core import config
    except ImportError:  # pragma: no cover - numba always brings llvmlite
        return set()
    if config.DISABLE_JIT:
        return set()
    if config.CPU_NAME not in (None, "host"):
        return set((config.CPU_FEATURES or "").split(","))
    return set(llvm.get_host_cpu_features().flatten().split(","))


def vnni_available() -> bool:
    """Whether Numba compiles for a CPU with AVX512-VNNI (and AVX512-BW): the ``vnni`` path can run.

    False with ``NUMBA_DISABLE_JIT=1`` too: the micro-kernel is LLVM code, it has no Python form.
    """
    return {"+avx512f", "+avx512bw", "+avx512vnni"} <= compiled_cpu_features()


def pack_weight_quads(w2: np.ndarray, n_pad: int) -> np.ndarray:
    """Pack int8 weights for :func:`conv2d_s8_vnni`.

    Args:
        w2: int8[O, K], one row per output channel (OHWI flattened).
        n_pad: padded channel count >= O, a multiple of :data:`VNNI_LANES`.

    Returns:
        int8[ceil(K / 4), n_pad, 4]: ``wq[q, o, i] = w[o, 4 q + i]``, zero beyond O and K.
    """
    o, k = w2.shape
    kq = -(-k // 4)
    w = np.zeros((n_pad, 4 * kq), dtype=np.int8)
    w[:o, :k] = w2
    return np.ascontiguousarray(w.reshape(n_pad, kq, 4).transpose(1, 0, 2))


def _dot_loop(builder, fn, starts, vecs, xbase, xstride, wbase, nkq, wstride, qoff=None):
    """Emit the dot-product loop of a tile: MR rows times ``vecs`` 16-lane accumulators starting at
    ``starts`` (row-major), ``nkq`` steps of one ``vpdpbusd`` per row and vector; returns the final
    accumulators (LLVM values, row-major). Step q reads four input bytes at ``4 q`` from each row's
    start, or at ``qoff[q]`` (an i64 pointer: a table of offsets) when given."""
    loop = CountedLoop(builder, nkq, "vnni_tile_loop")
    q = loop.index
    accs = [builder.phi(V16) for _ in starts]
    wrow = builder.gep(wbase, [builder.mul(q, wstride)])
    wv = [load_vec(builder, wrow, ir.Constant(I64, 64 * v), V16) for v in range(vecs)]
    xoff = builder.mul(q, ir.Constant(I64, 4)) if qoff is None else builder.load(builder.gep(qoff, [q]))
    new = []
    for r in range(MR):
        xp = builder.gep(xbase, [builder.add(builder.mul(ir.Constant(I64, r), xstride), xoff)])
        x4 = builder.load(builder.bitcast(xp, I32.as_pointer()), align=1)
        x4 = builder.xor(x4, ir.Constant(I32, 0x80808080))  # int8 -> uint8 (+128 per byte)
        xv = splat(builder, x4, V16)
        for v in range(vecs):
            new.append(builder.call(fn, [accs[r * vecs + v], xv, wv[v]]))
    latch = loop.close()
    for a, a0, a1 in zip(accs, starts, new):
        a.add_incoming(a0, loop.entry)
        a.add_incoming(a1, latch)
    final = []
    for a0, a1 in zip(starts, new):  # after the loop: the start values when it ran no step
        fin = builder.phi(V16)
        fin.add_incoming(a0, loop.entry)
        fin.add_incoming(a1, latch)
        final.append(fin)
    return final


def _tile_codegen(vecs):
    """LLVM code of :func:`_dot_tile32` (``vecs`` = 2) or :func:`_dot_tile16` (1): ``acc[r, j] += sum_k
    (x[r, k] ^ 0x80) * w[j, k]`` for MR rows and ``16 * vecs`` channels, the accumulators in registers.

    Arguments (xaddr, xstride, waddr, nkq, wstride, aaddr, astride; addresses are integers): ``xaddr``
    the first input row (int8, rows ``xstride`` bytes apart, at least ``4 * nkq`` readable bytes each), ``waddr`` the tile's first channel in the packed weights
    (``wstride`` bytes per group of four k), ``aaddr`` the tile's first accumulator (int32, rows
    ``astride`` elements apart). The accumulators are read once, updated by ``nkq`` steps of one
    ``vpdpbusd`` per row and vector, and written once.
    """
    def codegen(context, builder, signature, args):
        xaddr, xstride, waddr, nkq, wstride, aaddr, astride = args
        abase = builder.inttoptr(aaddr, I32.as_pointer())

        def acc_ptr(r, v):
            at = builder.add(builder.mul(ir.Constant(I64, r), astride), ir.Constant(I64, 16 * v))
            return builder.bitcast(builder.gep(abase, [at]), V16.as_pointer())

        start = [builder.load(acc_ptr(r, v), align=4) for r in range(MR) for v in range(vecs)]
        final = _dot_loop(builder, vpdpbusd(builder), start, vecs, builder.inttoptr(xaddr, I8.as_pointer()),
                          xstride, builder.inttoptr(waddr, I8.as_pointer()), nkq, wstride)
        for i, fin in enumerate(final):
            builder.store(fin, acc_ptr(i // vecs, i % vecs), align=4)
        return context.get_dummy_value()

    return codegen


def _fused_tile_codegen(vecs, window=False):
    """LLVM code of :func:`_requant_tile32` (``vecs`` = 2) / :func:`_requant_tile16` (1): a tile of MR
    output pixels by ``16 * vecs`` channels, from the start values to the stored int8 outputs, the
    accumulators never leaving the registers.

    Arguments (xaddr, xstride, waddr, nkq, wstride, iaddr, qaddr, qstride, oaddr, ostride, lo, hi,
    offset): input rows and packed weights as :func:`_tile_codegen`; ``iaddr`` the tile's first start
    value (int32, the per-channel ``init``); ``qaddr`` the tile's first channel in the one-formula
    requantization rows (int32 multiplier, ``T``, base; rows ``qstride`` bytes apart,
    :mod:`tinyzo.kernels.requant`); ``oaddr`` where the tile's first output row goes (int8, rows
    ``ostride`` bytes apart, ``16 * vecs`` bytes written per row, or 8 fewer when ``half`` is not 0: the
    last vector's upper 8 channels are padding); ``lo``/``hi`` the clamp bounds minus the output offset
    (:func:`tinyzo.kernels.vnni_ir.requantize`); ``ngroups`` groups of MR rows, one after the other
    (input and output rows continue with the same strides), the per-channel constants prepared once.
    """
    def codegen(context, builder, signature, args):
        if window:
            (xaddr, xstride, waddr, nkq, wstride, iaddr, qaddr, qstride, oaddr, ostride, lo, hi, off, half,
             ngroups, taddr) = args
            qoff = builder.inttoptr(taddr, I64.as_pointer())
        else:
            (xaddr, xstride, waddr, nkq, wstride, iaddr, qaddr, qstride, oaddr, ostride, lo, hi, off, half,
             ngroups) = args
            qoff = None
        ibase = builder.inttoptr(iaddr, I8.as_pointer())
        qbase = builder.inttoptr(qaddr, I8.as_pointer())
        xbase = builder.inttoptr(xaddr, I8.as_pointer())
        obase = builder.inttoptr(oaddr, I8.as_pointer())
        wbase = builder.inttoptr(waddr, I8.as_pointer())

        # everything per channel once, for all the groups of MR pixels
        init = [load_vec(builder, ibase, ir.Constant(I64, 64 * v), V16, 4) for v in range(vecs)]
        consts = [load_requant_consts(builder, qbase, qstride, ir.Constant(I64, 64 * v)) for v in range(vecs)]
        bounds = output_bounds(builder, lo, hi, off)
        v8b = ir.VectorType(I8, 8)
        low8 = ir.Constant(ir.VectorType(I32, 8), list(range(8)))
        is_half = builder.icmp_signed("!=", half, ir.Constant(I64, 0))
        mr = ir.Constant(I64, MR)
        groups = CountedLoop(builder, ngroups, "vnni_group")
        g = groups.index
        xg = builder.gep(xbase, [builder.mul(builder.mul(g, mr), xstride)])
        og = builder.gep(obase, [builder.mul(builder.mul(g, mr), ostride)])
        start = [init[v] for _ in range(MR) for v in range(vecs)]
        final = _dot_loop(builder, vpdpbusd(builder), start, vecs, xg, xstride, wbase, nkq, wstride, qoff)
        for i, acc in enumerate(final):  # the per-channel constants are shared by every row
            r, v = divmod(i, vecs)
            dst = builder.gep(og, [builder.add(builder.mul(ir.Constant(I64, r), ostride), ir.Constant(I64, 16 * v))])
            y = requantize(builder, acc, consts[v], bounds)
            if v < vecs - 1:
                builder.store(y, builder.bitcast(dst, V16B.as_pointer()), align=1)
                continue
            with builder.if_else(is_half) as (then, otherwise):  # the last vector: 8 channels or 16
                with then:
                    builder.store(builder.shuffle_vector(y, y, low8), builder.bitcast(dst, v8b.as_pointer()), align=1)
                with otherwise:
                    builder.store(y, builder.bitcast(dst, V16B.as_pointer()), align=1)
        groups.close()
        return context.get_dummy_value()

    return codegen


_TILE_SIG = types.void(types.uint64, types.int64, types.uint64, types.int64, types.int64, types.uint64, types.int64)


@intrinsic
def _dot_tile32(typingctx, xaddr, xstride, waddr, nkq, wstride, aaddr, astride):
    """A tile of MR pixels x 32 channels (:func:`_tile_codegen`); arguments: addresses and strides."""
    return _TILE_SIG, _tile_codegen(2)


@intrinsic
def _dot_tile16(typingctx, xaddr, xstride, waddr, nkq, wstride, aaddr, astride):
    """A tile of MR pixels x 16 channels (:func:`_tile_codegen`)."""
    return _TILE_SIG, _tile_codegen(1)


_FUSED_SIG = types.void(types.uint64, types.int64, types.uint64, types.int64, types.int64, types.uint64, types.uint64,
                        types.int64, types.uint64, types.int64, types.int64, types.int64, types.int64, types.int64,
                        types.int64)


@intrinsic
def _requant_tile32(typingctx, xaddr, xstride, waddr, nkq, wstride, iaddr, qaddr, qstride, oaddr, ostride, lo, hi,
                    offset, half, ngroups):
    """A tile of MR pixels x 32 channels, requantized and stored as int8 (:func:`_fused_tile_codegen`)."""
    return _FUSED_SIG, _fused_tile_codegen(2)


@intrinsic
def _requant_tile16(typingctx, xaddr, xstride, waddr, nkq, wstride, iaddr, qaddr, qstride, oaddr, ostride, lo, hi,
                    offset, half, ngroups):
    """A tile of MR pixels x 16 channels, requantized and stored as int8 (:func:`_fused_tile_codegen`)."""
    return _FUSED_SIG, _fused_tile_codegen(1)


_WINDOW_SIG = types.void(types.uint64, types.int64, types.uint64, types.int64, types.int64, types.uint64, types.uint64,
                         types.int64, types.uint64, types.int64, types.int64, types.int64, types.int64, types.int64,
                         types.int64, types.uint64)


@intrinsic
def _window_tile32(typingctx, xaddr, xstride, waddr, nkq, wstride, iaddr, qaddr, qstride, oaddr, ostride, lo, hi,
                   offset, half, ngroups, taddr):
    """As :func:`_requant_tile32`, step q reading at ``taddr[q]`` (int64 offsets) from each pixel's start."""
    return _WINDOW_SIG, _fused_tile_codegen(2, window=True)


@intrinsic
def _window_tile16(typingctx, xaddr, xstride, waddr, nkq, wstride, iaddr, qaddr, qstride, oaddr, ostride, lo, hi,
                   offset, half, ngroups, taddr):
    """As :func:`_requant_tile16`, step q reading at ``taddr[q]`` (int64 offsets) from each pixel's start."""
    return _WINDOW_SIG, _fused_tile_codegen(1, window=True)


#: bytes a patch buffer needs beyond its B * KP values (16-byte copies may overrun a row's end)
PATCH_SLACK = 16


@intrinsic
def _copy16(typingctx, dst, src):
    """Copy 16 bytes from address ``src`` to address ``dst`` (one unaligned vector load and store)."""
    sig = types.void(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        vec = ir.VectorType(ir.IntType(8), 16)
        d = builder.inttoptr(args[0], vec.as_pointer())
        s_ = builder.inttoptr(args[1], vec.as_pointer())
        builder.store(builder.load(s_, align=1), d, align=1)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _gather16(x_addr, x_size, xf, x_shape, b, oy, ox, kh, kw, sh, sw, dh, dw, ph, pw, pv, p_addr, pf, d0):
    """:func:`tinyzo.kernels.conv_gemm.gather_patch` into ``pf[d0:]``, with each filter row copied in 16-byte
    chunks when the whole receptive field lies inside the image (dilation 1 along the width) and the
    last chunk stays inside the input: a chunk may write up to 15 bytes past its row, which the next
    row (or pixel, written later) overwrites, or the buffer's :data:`PATCH_SLACK`."""
    _, h, w, c = x_shape
    span = kw * c
    iy0 = oy * sh - ph
    ix0 = ox * sw - pw
    last = ((b * h + iy0 + dh * (kh - 1)) * w + ix0) * c
    if (dw == 1 and iy0 >= 0 and iy0 + dh * (kh - 1) < h and ix0 >= 0 and ix0 + kw - 1 < w
            and last + (span + 15) // 16 * 16 <= x_size):
        for fy in range(kh):
            src = x_addr + np.uint64(((b * h + iy0 + dh * fy) * w + ix0) * c)
            dst = p_addr + d0 + np.uint64(fy * span)
            for j in range(0, span, 16):
                _copy16(dst + np.uint64(j), src + np.uint64(j))
    else:
        gather_patch(xf, x_shape, b, oy, ox, kh, kw, sh, sw, dh, dw, ph, pw, pv, pf, d0)


@njit(cache=True, nogil=True, inline="always")
def _fused_tiles(xr, stride, w_addr, nkq, n_pad, j32, i_addr, q_addr, q_stride, dst, dstride, lo, hi, off, half,
                 ngroups):
    """``ngroups`` groups of MR pixels (rows ``stride`` bytes apart from ``xr``) through every channel tile,
    requantized into ``dst`` (rows ``dstride`` bytes apart); ``half``: 8 when the last 8 padded channels are
    not stored."""
    for j0 in range(0, j32, 32):
        _requant_tile32(xr, stride, w_addr + np.uint64(j0 * 4), nkq, n_pad * 4, i_addr + np.uint64(j0 * 4),
                        q_addr + np.uint64(j0 * 4), q_stride, dst + np.uint64(j0), dstride, lo, hi, off,
                        half if j0 + 32 == n_pad else 0, ngroups)
    if j32 < n_pad:  # the last 16 channels
        _requant_tile16(xr, stride, w_addr + np.uint64(j32 * 4), nkq, n_pad * 4, i_addr + np.uint64(j32 * 4),
                        q_addr + np.uint64(j32 * 4), q_stride, dst + np.uint64(j32), dstride, lo, hi, off, half,
                        ngroups)


@njit(cache=True, nogil=True, inline="always")
def _window_tiles(xr, stride, w_addr, nkq, n_pad, j32, i_addr, q_addr, q_stride, dst, dstride, lo, hi, off, half,
                  ngroups, t_addr):
    """:func:`_fused_tiles` with the window tiles (step offsets ``t_addr``)."""
    for j0 in range(0, j32, 32):
        _window_tile32(xr, stride, w_addr + np.uint64(j0 * 4), nkq, n_pad * 4, i_addr + np.uint64(j0 * 4),
                       q_addr + np.uint64(j0 * 4), q_stride, dst + np.uint64(j0), dstride, lo, hi, off,
                       half if j0 + 32 == n_pad else 0, ngroups, t_addr)
    if j32 < n_pad:
        _window_tile16(xr, stride, w_addr + np.uint64(j32 * 4), nkq, n_pad * 4, i_addr + np.uint64(j32 * 4),
                       q_addr + np.uint64(j32 * 4), q_stride, dst + np.uint64(j32), dstride, lo, hi, off, half,
                       ngroups, t_addr)


@njit(cache=True, nogil=True)
def conv2d_s8_vnni(x, wq, init, rq, params, patch, acc, obuf, out):
    """int8 CONV_2D (TFLM ``ConvPerChannel``) with ``vpdpbusd`` tiles, requantization fused.

    Args:
        x: int8[N, H, W, C], C-contiguous.
        wq: int8[KQ, NP, 4] packed filter (:func:`pack_weight_quads`), KQ = ceil(K / 4), K = KH*KW*C,
            NP a multiple of :data:`VNNI_LANES` (16) >= O.
        init: int32[NP], ``bias + (input_offset - 128) * sum_k w`` wrapped (:func:`tinyzo.ops.conv_paths.vnni_operands`).
        rq: int32[3 or 5, >= B*NP], the per-channel requantization parameters (padded to NP) tiled B
            times (:func:`tinyzo.kernels.requant.requant_params`).
        params: :data:`tinyzo.kernels.conv_int.CONV_PARAMS` [1].
        patch: int8[B * 4*KQ + PATCH_SLACK] scratch (gathered receptive fields; unused where input rows are
            read in place).
        acc: int32[B, NP] scratch, B a multiple of :data:`MR`; obuf: int8[B, NP] scratch.
        out: int8[N, OH, OW, O], C-contiguous, written.

    Must only be called where :func:`vnni_available` is true. An unpadded 1x1 convolution with
    stride 1 and C a multiple of 4 reads its input rows in place (a block whose pixel count is a
    multiple of MR); other blocks gather each pixel's receptive field into ``patch`` first.
    """
    p = params[0]
    kh, kw, sh, sw, dh, dw, ph, pw, pv = window_params(p)
    n, h, w, c = x.shape
    _, oh, ow, o = out.shape
    block, n_pad = acc.shape
    nkq = wq.shape[0]
    kp = 4 * nkq
    k_len = kh * kw * c
    in_place = kh == 1 and kw == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0 and kp == k_len
    xf = x.reshape(-1)
    pf = patch.reshape(-1)
    af = acc.reshape(-1)
    out_flat = out.reshape(-1)
    npu = np.uint64(n_pad)
    x_addr = np.uint64(x.ctypes.data)
    p_addr = np.uint64(patch.ctypes.data)
    w_addr = np.uint64(wq.ctypes.data)
    a_addr = np.uint64(acc.ctypes.data)
    total = n * oh * ow
    j32 = n_pad - n_pad % 32
    # one-formula requantization (no positive shift): each tile requantizes its accumulators in registers
    fused = rq.shape[0] == RQU_ROWS
    ob = obuf.reshape(-1)
    o_addr = np.uint64(out.ctypes.data)
    b_addr = np.uint64(obuf.ctypes.data)
    i_addr = np.uint64(init.ctypes.data)
    q_addr = np.uint64(rq.ctypes.data)
    q_stride = rq.strides[0]
    off, lo, hi = offset_bounds(p["output_offset"], p["act_min"], p["act_max"])
    for first in range(0, total, block):
        cnt = min(block, total - first)
        rows = -(-cnt // MR) * MR
        if in_place and cnt == rows:
            src, stride = x_addr + np.uint64(first * k_len), k_len
        else:
            b = first // (oh * ow)
            oy = (first // ow) % oh
            ox = first % ow
            for i in range(cnt):
                d0 = np.uint64(i * kp)
                _gather16(x_addr, xf.size, xf, x.shape, b, oy, ox, kh, kw, sh, sw, dh, dw, ph, pw, pv, p_addr, pf, d0)
                for j in range(np.uint64(k_len), np.uint64(kp)):  # padding k: zero weights, any defined value
                    pf[d0 + j] = 0
                b, oy, ox = next_pixel(b, oy, ox, oh, ow)
            src, stride = p_addr, kp
        if fused:
            # whole rows of the output (the last vector's upper half padding when O = NP - 8): in place,
            # every full group of MR pixels in one call per channel tile; the rest through obuf
            direct = n_pad - o in (0, 8)
            full = cnt // MR if direct else 0
            half = n_pad - o if direct else 0
            if full:
                _fused_tiles(src, stride, w_addr, nkq, n_pad, j32, i_addr, q_addr, q_stride,
                             o_addr + np.uint64(first * o), o, lo, hi, off, half, full)
            for r0 in range(full * MR, rows, MR):
                _fused_tiles(src + np.uint64(r0 * stride), stride, w_addr, nkq, n_pad, j32, i_addr, q_addr, q_stride,
                             b_addr, n_pad, lo, hi, off, 0, 1)
                copy_rows(ob, n_pad, out_flat, first + r0, min(MR, cnt - r0), o)  # the valid part
            continue
        for i in range(rows):
            a0 = np.uint64(i) * npu
            for j in range(npu):
                af[a0 + j] = init[j]
        for r0 in range(0, rows, MR):
            xr = src + np.uint64(r0 * stride)
            for j0 in range(0, j32, 32):
                _dot_tile32(xr, stride, w_addr + np.uint64(j0 * 4), nkq, n_pad * 4,
                            a_addr + np.uint64((r0 * n_pad + j0) * 4), n_pad)
            if j32 < n_pad:  # the last 16 channels
                _dot_tile16(xr, stride, w_addr + np.uint64(j32 * 4), nkq, n_pad * 4,
                            a_addr + np.uint64((r0 * n_pad + j32) * 4), n_pad)
        flush_block(acc, cnt, o, rq, p, obuf, out_flat, first)


def window_quads(kh: int, kw: int, c: int, dil_h: int, row_bytes: int) -> tuple:
    """The ``vnni`` window layout of a KH x KW filter on C input channels (dilation 1 along the width).

    Each filter row's ``KW * C`` input values are contiguous in a padded input row; they are padded to
    ``R = ceil(KW * C / 4) * 4`` (zero weights), so that the dot product is ``KH * R / 4`` steps of four
    bytes read in place. Returns ``(R, offsets)``: ``offsets`` int64[KH * R / 4], the byte offset of step
    q from a pixel's first input byte (rows ``row_bytes`` apart in the padded input, ``dil_h`` rows per
    filter row).
    """
    run4 = -(-kw * c // 4) * 4
    offs = [fy * dil_h * row_bytes + i for fy in range(kh) for i in range(0, run4, 4)]
    return run4, np.asarray(offs, dtype=np.int64)


def pack_window_weights(w: np.ndarray, run4: int, n_pad: int) -> np.ndarray:
    """int8 OHWI weights [O, KH, KW, C] packed for :func:`conv2d_s8_vnni_window`: each filter row's KW*C
    values padded to ``run4`` with zeros, then :func:`pack_weight_quads` (int8[KH * run4 / 4, n_pad, 4])."""
    o, kh, kw, c = w.shape
    rows = np.zeros((o, kh, run4), dtype=np.int8)
    rows[:, :, :kw * c] = w.reshape(o, kh, kw * c)
    return pack_weight_quads(rows.reshape(o, kh * run4), n_pad)


@njit(cache=True, nogil=True)
def conv2d_s8_vnni_window(x, wq, init, rq, qoff, params, xpad, obuf, out):
    """int8 CONV_2D on ``vpdpbusd`` tiles reading each receptive field in place from a padded copy of the
    input (no per-pixel gather), requantization in the tiles (one-formula layout only).

    Args:
        x: int8[N, H, W, C], C-contiguous.
        wq: int8[KQ, NP, 4] (:func:`pack_window_weights`), KQ = KH * R / 4 (:func:`window_quads`).
        init: int32[NP] as :func:`conv2d_s8_vnni`; rq: int32[3, >= NP] (one-formula layout).
        qoff: int64[KQ] step offsets (:func:`window_quads` with ``row_bytes`` = WP * C).
        params: CONV_PARAMS[1]; dilation along the width must be 1.
        xpad: int8[HP, 1, WP * C] padded rows (:func:`tinyzo.kernels.conv.fill_padded_rows`), HP and WP
            covering every tap, followed in memory by at least ``(MR * stride_w + KW) * C + 64`` readable
            bytes (a tile's last pixels and a step's padding bytes may read past the rows).
        obuf: int8[MR, NP] scratch (partial tiles, padded channels).
        out: int8[N, OH, OW, O], C-contiguous, written.
    """
    p = params[0]
    kh, _, sh, sw, dh, _, ph, pw, pv = window_params(p)
    n = x.shape[0]
    c = x.shape[3]
    _, oh, ow, o = out.shape
    nkq, n_pad = wq.shape[0], wq.shape[1]
    row_bytes = xpad.shape[2]
    j32 = n_pad - n_pad % 32
    off, lo, hi = offset_bounds(p["output_offset"], p["act_min"], p["act_max"])
    x_addr = np.uint64(xpad.ctypes.data)
    w_addr = np.uint64(wq.ctypes.data)
    i_addr = np.uint64(init.ctypes.data)
    q_addr = np.uint64(rq.ctypes.data)
    t_addr = np.uint64(qoff.ctypes.data)
    o_addr = np.uint64(out.ctypes.data)
    b_addr = np.uint64(obuf.ctypes.data)
    q_stride = rq.strides[0]
    xstride = sw * c  # bytes from one output pixel's window to the next along a row
    of = out.reshape(-1)
    ob = obuf.reshape(-1)
    for b in range(n):
        fill_padded_rows(x, b, xpad, sh, 1, dh, kh, ph, pw, 1, pv, 0, oh)
        for oy in range(oh):
            row = x_addr + np.uint64(oy * sh * row_bytes)
            first = (b * oh + oy) * ow  # the row's first output pixel
            direct = n_pad - o in (0, 8)
            full = ow // MR if direct else 0
            if full:  # whole groups of MR pixels straight into the output
                _window_tiles(row, xstride, w_addr, nkq, n_pad, j32, i_addr, q_addr, q_stride,
                              o_addr + np.uint64(first * o), o, lo, hi, off, n_pad - o, full, t_addr)
            for ox0 in range(full * MR, ow, MR):  # the rest through obuf
                _window_tiles(row + np.uint64(ox0 * xstride), xstride, w_addr, nkq, n_pad, j32, i_addr, q_addr,
                              q_stride, b_addr, n_pad, lo, hi, off, 0, 1, t_addr)
                copy_rows(ob, n_pad, of, first + ox0, min(MR, ow - ox0), o)
