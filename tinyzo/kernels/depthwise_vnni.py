"""Integer DEPTHWISE_CONV_2D on AVX512-VNNI: four filter taps per ``vpdpbusd``, requantization in registers.

The same arithmetic as :func:`tinyzo.kernels.conv.depthwise_conv2d_s8_fast` (and TFLM's
``DepthwiseConvPerChannel``), for CPUs with ``vpdpbusd`` (see :mod:`tinyzo.kernels.conv_vnni`). The
input goes through the same padded, phase-split row buffer (:func:`tinyzo.kernels.conv.fill_padded_rows`),
where every filter tap of an output row reads one contiguous run of OW*C values. Lane ``j`` of an
output row (``j = ox * C + k``) is one int32 accumulator; each group of four taps of one filter row
(``fx = 4 q .. 4 q + 3``; a filter row of KW taps has ``ceil(KW / 4)`` groups, the missing taps with
zero weights) is one ``vpdpbusd``:

* the padded rows hold the input with its sign bits flipped (``x ^ 0x80 = x + 128``, unsigned); the
  four taps' 16-byte runs are loaded and interleaved byte by byte (one shuffle: lane ``j`` gets the
  four input bytes of its channel);
* the weights are packed once per layer (:func:`pack_tap_quads`) as int32 lanes holding the four
  taps' int8 weights of the lane's channel, tiled along the output row;
* the start value is ``const - 128 * sum(w)`` per channel (wrapped to int32), so the sum is the same
  modulo 2**32 as C's int32 sum (``vpdpbusd`` does not saturate);
* the 16 accumulators are requantized in registers (:func:`tinyzo.kernels.vnni_ir.requantize`,
  one-formula layout only) and stored as 16 int8 outputs.

A 3x3 filter is three ``vpdpbusd`` per 16 outputs where the row kernel does nine 32-bit multiplies.
Must only run where :func:`tinyzo.kernels.conv_vnni.vnni_available` is true.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from tinyzo.kernels import vnni_ir
from tinyzo.kernels.conv import fill_padded_rows
from tinyzo.kernels.requant import offset_bounds
from tinyzo.kernels.vnni_ir import I8, I32, I64, V16, V16B, CountedLoop, load_vec, vpdpbusd

#: output lanes per vector (one zmm of int32 accumulators)
LANES = 16
#: bytes the padded row buffer needs beyond its rows: a tap's last 16-byte run may end up to 15 bytes
#: past the row's OW*C values
XQ_SLACK = 64


def tap_quads(kw: int) -> int:
    """Groups of four taps per filter row of width ``kw`` (>= 1)."""
    return -(-kw // 4)


def pack_tap_quads(w: np.ndarray, ow: int, length: int) -> np.ndarray:
    """Depthwise weights packed for :func:`depthwise_conv2d_s8_vnni`.

    Args:
        w: int8[KH, KW, C] (the filter without its leading 1).
        ow: output width; the C channels are tiled ``ow`` times along a row.
        length: padded row length >= ow * C, a multiple of :data:`LANES` (zero beyond ow * C).

    Returns:
        int32[KH * ceil(KW / 4), length]: lane ``ox * C + k`` of group ``fy * ceil(KW / 4) + q`` holds
        ``w[fy, 4 q + i, k]`` in byte ``i`` (little-endian), 0 for ``4 q + i >= KW``.
    """
    kh, kw, c = w.shape
    nq = tap_quads(kw)
    wpad = np.zeros((kh, 4 * nq, c), dtype=np.int8)
    wpad[:, :kw] = w
    quads = np.ascontiguousarray(wpad.reshape(kh, nq, 4, c).transpose(0, 1, 3, 2)).view("<i4").reshape(kh * nq, c)
    out = np.zeros((kh * nq, length), dtype=np.int32)
    out[:, :ow * c] = np.tile(quads, (1, ow))
    return out


def tap_offsets(kh: int, kw: int, dil_h: int, dil_w: int, stride_w: int, c: int, xq_cols: int) -> np.ndarray:
    """int64[KH * ceil(KW / 4) * 4]: byte offset of each tap's run from the output row's first padded row
    in the buffer of :func:`tinyzo.kernels.conv.fill_padded_rows` (``xq_cols`` columns per phase);
    the padding taps of a group repeat the row's last tap (any readable bytes: their weights are 0)."""
    phase_len = xq_cols * c
    row_len = stride_w * phase_len
    offs = []
    for fy in range(kh):
        for q in range(tap_quads(kw)):
            for i in range(4):
                col = min(4 * q + i, kw - 1) * dil_w
                offs.append(fy * dil_h * row_len + (col % stride_w) * phase_len + (col // stride_w) * c)
    return np.asarray(offs, dtype=np.int64)


def _tap_loop(builder, starts, tbase, nquads, xbase, xoffs, wbase, wstride, woffs):
    """Emit the loop over the ``nquads`` (>= 1) tap groups of one step; the builder continues after it.

    ``starts``: the step's start accumulators (one per output block); block u reads its four runs at
    ``xbase + taps[4 g + i] + xoffs[u]`` and its weights at ``wbase + g * wstride + woffs[u]``, or at
    ``wbase + g * wstride + woffs`` for every block when ``woffs`` is one value (the weight vector loaded
    once). Returns the final accumulators."""
    dot = vpdpbusd(builder)
    interleave = _interleaver(builder)
    loop = CountedLoop(builder, nquads, "dw_taps", check=False)
    g = loop.index
    accs = [builder.phi(V16) for _ in starts]
    taps = [builder.load(builder.gep(tbase, [builder.add(builder.mul(g, ir.Constant(I64, 4)), ir.Constant(I64, i))]))
            for i in range(4)]
    wrow = builder.mul(g, wstride)
    if isinstance(woffs, list):
        weights = [load_vec(builder, wbase, builder.add(wrow, w), V16, 4) for w in woffs]
    else:
        weights = [load_vec(builder, wbase, builder.add(wrow, woffs), V16, 4)] * len(accs)
    new = []
    for u, acc in enumerate(accs):
        xv = interleave([load_vec(builder, xbase, builder.add(t, xoffs[u]), V16B) for t in taps])
        new.append(builder.call(dot, [acc, xv, weights[u]]))
    latch = loop.close()
    for a, a0, a1 in zip(accs, starts, new):
        a.add_incoming(a0, loop.entry)
        a.add_incoming(a1, latch)
    return new


def _row_codegen(width):
    """LLVM code of :func:`_dw_row` (``width`` = 1) / :func:`_dw_row2` (2): ``nblocks`` steps of ``width``
    blocks of 16 lanes, each block accumulated over ``nquads`` tap groups in one register (``width``
    independent registers per step, for instruction-level parallelism), requantized and stored."""
    def codegen(context, builder, signature, args):
        (xaddr, taddr, nquads, waddr, wstride, iaddr, qaddr, qstride, oaddr, nblocks, lo, hi, off) = args
        xbase = builder.inttoptr(xaddr, I8.as_pointer())
        tbase = builder.inttoptr(taddr, I64.as_pointer())
        wbase = builder.inttoptr(waddr, I8.as_pointer())
        ibase = builder.inttoptr(iaddr, I8.as_pointer())
        qbase = builder.inttoptr(qaddr, I8.as_pointer())
        obase = builder.inttoptr(oaddr, I8.as_pointer())
        bounds = vnni_ir.output_bounds(builder, lo, hi, off)
        blocks = CountedLoop(builder, nblocks, "dw_block")
        j0 = builder.mul(blocks.index, ir.Constant(I64, LANES * width))  # the step's first lane (= input byte)
        js = [builder.add(j0, ir.Constant(I64, LANES * u)) for u in range(width)]
        j4s = [builder.mul(j, ir.Constant(I64, 4)) for j in js]  # their int32 byte offsets
        acc0 = [load_vec(builder, ibase, j4, V16, 4) for j4 in j4s]
        new = _tap_loop(builder, acc0, tbase, nquads, xbase, js, wbase, wstride, j4s)
        for u in range(width):  # the channels' constants differ from lane to lane: loaded per block
            consts = vnni_ir.load_requant_consts(builder, qbase, qstride, j4s[u])
            y = vnni_ir.requantize(builder, new[u], consts, bounds)
            builder.store(y, builder.bitcast(builder.gep(obase, [js[u]]), V16B.as_pointer()), align=1)
        blocks.close()
        return context.get_dummy_value()

    return codegen


def _channel_codegen(width):
    """LLVM code of :func:`_dw_channels` (``width`` = 1) / :func:`_dw_channels2` (2): one block of 16 channels
    along ``nrows`` output rows, when C is a multiple of 16: the requantization constants, start values
    and weights are those of the same 16 channels at every output position, so they are prepared once
    per call; each step accumulates ``width`` output columns (independent registers, one weight load per
    tap group for all of them), requantizes and stores them."""
    def codegen(context, builder, signature, args):
        (xaddr, taddr, nquads, waddr, wstride, iaddr, qaddr, qstride, oaddr, xstep, c, nsteps, lo, hi, off, nrows,
         xrow, orow) = args
        xbase0 = builder.inttoptr(xaddr, I8.as_pointer())
        tbase = builder.inttoptr(taddr, I64.as_pointer())
        wbase = builder.inttoptr(waddr, I8.as_pointer())
        obase0 = builder.inttoptr(oaddr, I8.as_pointer())
        bounds = vnni_ir.output_bounds(builder, lo, hi, off)
        zero = ir.Constant(I64, 0)
        consts = vnni_ir.load_requant_consts(builder, builder.inttoptr(qaddr, I8.as_pointer()), qstride, zero)
        init = load_vec(builder, builder.inttoptr(iaddr, I8.as_pointer()), zero, V16, 4)
        rows = CountedLoop(builder, nrows, "dwc_row")  # output row r: its padded input rows and its output
        xbase = builder.gep(xbase0, [builder.mul(rows.index, xrow)])
        obase = builder.gep(obase0, [builder.mul(rows.index, orow)])
        steps = CountedLoop(builder, nsteps, "dwc_step")
        col0 = builder.mul(steps.index, ir.Constant(I64, width))
        cols = [builder.add(col0, ir.Constant(I64, u)) for u in range(width)]
        xs = [builder.mul(col, xstep) for col in cols]  # each column's first input byte (from the row's taps)
        js = [builder.mul(col, c) for col in cols]  # and its first output byte
        new = _tap_loop(builder, [init] * width, tbase, nquads, xbase, xs, wbase, wstride, zero)
        for u in range(width):
            y = vnni_ir.requantize(builder, new[u], consts, bounds)
            builder.store(y, builder.bitcast(builder.gep(obase, [js[u]]), V16B.as_pointer()), align=1)
        steps.close()
        rows.close()
        return context.get_dummy_value()

    return codegen


def _interleaver(builder):
    """A function of the IR builder: four 16-byte runs (tap 0..3) -> one int32 vector whose lane j holds
    the runs' bytes j (tap i in byte i); the runs' sign bits were flipped when the padded rows were
    filled (unsigned for ``vpdpbusd``)."""
    pair = ir.Constant(ir.VectorType(I32, 32), list(range(32)))
    # lane j of the result: bytes j, 16 + j, 32 + j, 48 + j of the four concatenated runs
    order = ir.Constant(ir.VectorType(I32, 64), [16 * r + j for j in range(16) for r in range(4)])

    def interleave(runs):
        ab = builder.shuffle_vector(runs[0], runs[1], pair)
        cd = builder.shuffle_vector(runs[2], runs[3], pair)
        return builder.bitcast(builder.shuffle_vector(ab, cd, order), V16)

    return interleave


_ROW_SIG = types.void(types.uint64, types.uint64, types.int64, types.uint64, types.int64, types.uint64, types.uint64,
                      types.int64, types.uint64, types.int64, types.int64, types.int64, types.int64)
_CHANNEL_SIG = types.void(types.uint64, types.uint64, types.int64, types.uint64, types.int64, types.uint64,
                          types.uint64, types.int64, types.uint64, types.int64, types.int64, types.int64, types.int64,
                          types.int64, types.int64, types.int64, types.int64, types.int64)


@intrinsic
def _dw_row(typingctx, xaddr, taddr, nquads, waddr, wstride, iaddr, qaddr, qstride, oaddr, nblocks, lo, hi,
            offset):
    """``nblocks`` blocks of 16 lanes of one output row (:func:`_row_codegen`). Arguments: ``xaddr`` the row's
    first padded input row, ``taddr`` the int64 tap offsets (:func:`tap_offsets`), ``nquads`` >= 1 tap groups,
    ``waddr`` the packed weights (rows ``wstride`` bytes apart), ``iaddr`` the int32 start values,
    ``qaddr`` the three int32 requantization rows (``qstride`` bytes apart), ``oaddr`` the int8 output,
    ``lo``/``hi`` the clamp bounds minus the output ``offset``; all addresses at the first block's lane 0."""
    return _ROW_SIG, _row_codegen(1)


@intrinsic
def _dw_channels(typingctx, xaddr, taddr, nquads, waddr, wstride, iaddr, qaddr, qstride, oaddr, xstep, c, nsteps,
                 lo, hi, offset, nrows, xrow, orow):
    """One block of 16 channels along ``nsteps`` output columns of ``nrows`` output rows
    (:func:`_channel_codegen`); arguments as :func:`_dw_row` at the block's first channel (weights, start
    values and requantization rows per channel, not tiled), ``xstep`` the input bytes from one output
    column to the next (stride * C, the padded rows not split by phase), ``c`` the output bytes (C),
    ``xrow``/``orow`` the input/output bytes from one output row to the next."""
    return _CHANNEL_SIG, _channel_codegen(1)


@intrinsic
def _dw_channels2(typingctx, xaddr, taddr, nquads, waddr, wstride, iaddr, qaddr, qstride, oaddr, xstep, c, nsteps,
                  lo, hi, offset, nrows, xrow, orow):
    """As :func:`_dw_channels`, ``nsteps`` steps of two output columns each."""
    return _CHANNEL_SIG, _channel_codegen(2)


@intrinsic
def _dw_row2(typingctx, xaddr, taddr, nquads, waddr, wstride, iaddr, qaddr, qstride, oaddr, nblocks, lo, hi,
             offset):
    """As :func:`_dw_row`, ``nblocks`` steps of two blocks (32 lanes) each."""
    return _ROW_SIG, _row_codegen(2)


@njit(cache=True, nogil=True)
def depthwise_conv2d_s8_vnni(x, wq4, init4, rq, taps, kh, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w,
                             depth_multiplier, pad_value, output_offset, act_min, act_max, xq, rowbuf, out,
                             oy_start, oy_stop):
    """Depthwise convolution with ``vpdpbusd`` (module docstring); equal to
    :func:`tinyzo.kernels.conv.depthwise_conv2d_s8` (TFLM's loop) for every input.

    Args:
        x: int8[N, H, W, Cin], C-contiguous; output channels C = Cin * depth_multiplier.
        wq4: int32[KH * ceil(KW / 4), L] (:func:`pack_tap_quads`): L = C when C is a multiple of 16 (the
            channels once: the kernel runs blocks of 16 channels along the row), else the channels tiled
            along the row, L = OW * C rounded up to 16.
        init4: int32[L], ``bias + (input_offset - 128) * sum(w)`` per channel wrapped to int32 (tiled
            as ``wq4``, 0 beyond OW * C).
        rq: int32[3, L], the one-formula requantization rows (:func:`tinyzo.kernels.requant.requant_params`,
            tiled as ``wq4``; multiplier 0 and ``T = 31`` beyond OW * C).
        taps: int64[KH * ceil(KW / 4) * 4] (:func:`tap_offsets` of ``xq``'s layout); kh: the filter height KH.
        xq: int8[HP, S, WQ*C] padded rows (:func:`tinyzo.kernels.conv.fill_padded_rows`), C-contiguous,
            followed in memory by at least :data:`XQ_SLACK` readable bytes; S = stride_w, or S = 1 (rows not
            split by phase, WQ the whole padded width) in the per-channel layout, where a block of 16
            channels of one output column reads 16 contiguous bytes per tap at any stride.
        rowbuf: int8[16] scratch (the last, partial block of a row when OW * C is not a multiple of 16).
        out: int8[N, OH, OW, C], C-contiguous; rows ``oy_start <= oy < oy_stop`` are written.
        Other parameters as :func:`tinyzo.kernels.conv.depthwise_conv2d_s8_fast`.
    """
    n = x.shape[0]
    _, oh, ow, c = out.shape
    owc = ow * c
    nquads = wq4.shape[0]
    row_len = xq.shape[1] * xq.shape[2]
    full = owc // LANES
    tail = owc - full * LANES
    per_channel = c % LANES == 0 and wq4.shape[1] == c
    split = xq.shape[1]  # phases of the padded rows: stride_w, or 1 in the per-channel layout
    xstep = stride_w * c
    of = out.reshape(-1)
    off, lo, hi = offset_bounds(output_offset, act_min, act_max)
    x_addr = np.uint64(xq.ctypes.data)
    t_addr = np.uint64(taps.ctypes.data)
    w_addr = np.uint64(wq4.ctypes.data)
    i_addr = np.uint64(init4.ctypes.data)
    q_addr = np.uint64(rq.ctypes.data)
    o_addr = np.uint64(out.ctypes.data)
    r_addr = np.uint64(rowbuf.ctypes.data)
    wstride = wq4.strides[0]
    qstride = rq.strides[0]
    for b in range(n):
        fill_padded_rows(x, b, xq, stride_h, split, dil_h, kh, pad_h, pad_w, depth_multiplier, pad_value,
                         oy_start, oy_stop, True)
        if per_channel:  # blocks of 16 channels over all the rows, two output columns per step
            xr = x_addr + np.uint64(oy_start * stride_h * row_len)
            o0 = np.uint64((b * oh + oy_start) * owc)
            nrows = oy_stop - oy_start
            for cb in range(0, c, LANES):
                e = np.uint64(cb)
                _dw_channels2(xr + e, t_addr, nquads, w_addr + 4 * e, wstride, i_addr + 4 * e, q_addr + 4 * e,
                              qstride, o_addr + o0 + e, xstep, c, ow // 2, lo, hi, off, nrows, stride_h * row_len,
                              owc)
                if ow % 2:
                    last = np.uint64(ow - 1)
                    _dw_channels(xr + e + last * np.uint64(xstep), t_addr, nquads, w_addr + 4 * e, wstride,
                                 i_addr + 4 * e, q_addr + 4 * e, qstride, o_addr + o0 + e + last * c, xstep, c, 1,
                                 lo, hi, off, nrows, stride_h * row_len, owc)
            continue
        for oy in range(oy_start, oy_stop):
            xr = x_addr + np.uint64(oy * stride_h * row_len)
            o0 = (b * oh + oy) * owc
            pairs = full // 2
            _dw_row2(xr, t_addr, nquads, w_addr, wstride, i_addr, q_addr, qstride, o_addr + np.uint64(o0), pairs,
                     lo, hi, off)
            if full % 2:
                e = np.uint64(2 * pairs * LANES)
                _dw_row(xr + e, t_addr, nquads, w_addr + 4 * e, wstride, i_addr + 4 * e, q_addr + 4 * e, qstride,
                        o_addr + np.uint64(o0) + e, 1, lo, hi, off)
            if tail:
                e = np.uint64(full * LANES)
                _dw_row(xr + e, t_addr, nquads, w_addr + 4 * e, wstride, i_addr + 4 * e, q_addr + 4 * e, qstride,
                        r_addr, 1, lo, hi, off)
                for i in range(tail):
                    of[o0 + full * LANES + i] = rowbuf[i]
