"""Int8 ADD and SUB of two same-shape tensors on 16-lane integer vectors (AVX-512 CPUs).

The arithmetic of :func:`tinyzo.kernels.binary.add_s8` / :func:`~tinyzo.kernels.binary.sub_s8` (TFLM's
``reference_integer_ops::Add``), 16 elements per step, every step in registers:

    a_k = (x_k + input_k_offset) << left_shift                  (|a_k| < 2**28: int32)
    s_k = MultiplyByQuantizedMultiplierSmallerThanOneExp(a_k, m_k, shift_k)
    out = clamp(MBQMSmallerThanOneExp(s_1 +- s_2, m_out, shift_out) + output_offset, act_min, act_max)

Every multiplier of ADD/SUB is below one (no positive shift), so each of the three multiplications
is the one-formula requantization of :mod:`tinyzo.kernels.requant` (double or single rounding by the
rows of :func:`tinyzo.kernels.requant.requant_params`), computed by
:func:`tinyzo.kernels.vnni_ir.multiply_shift` on even/odd int64 lanes. The table lookup it replaces
(:func:`tinyzo.kernels.binary.lookup_s8`) reads a 64 KiB table per element. Only offered where
:func:`tinyzo.kernels.conv_vnni.vnni_available` (an AVX-512 CPU Numba compiles for; never under
``NUMBA_DISABLE_JIT``).

Each input's rescaled value ``s_k`` depends on its int8 value alone, so :func:`add_sub_s8_lut` takes
it from a 256-entry table instead (:func:`simd_tables`, made once per operator by the scalar kernels):
64 elements per step, each int32 table split in four byte planes looked up by ``vpermi2b`` (128
bytes per lookup, the sign bit choosing between two), the planes interleaved into int32 lanes, and
only the output multiplication left (one of the three): 0.54 -> 0.3 ns per element here.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from tinyzo.kernels.binary import scaled_inputs_s8
from tinyzo.kernels.conv_vnni import compiled_cpu_features, vnni_available
from tinyzo.kernels.requant import RQU_ROWS, requant_params
from tinyzo.kernels.vnni_ir import (
    I8,
    I32,
    I64,
    V16,
    V16B,
    V64B,
    CountedLoop,
    clamp_offset_s8,
    load_vec,
    multiply_shift,
    requant_consts,
    splat,
)

#: elements per vector step
LANES = 16
#: elements per step of the table-lookup kernel (:func:`add_sub_s8_lut`)
LUT_LANES = 64
#: the LLVM intrinsic of ``vpermi2b`` (AVX-512 VBMI): ``(table a, index, table b)``, 128-byte lookup
VPERMI2B = "llvm.x86.avx512.vpermi2var.qi.512"
#: int32 fields of the parameter vector (:func:`simd_params`)
P_OFF1, P_OFF2, P_LSHIFT, P_Q1, P_Q2, P_QOUT, P_LO, P_HI, P_OUT_OFF = 0, 1, 2, 3, 6, 9, 12, 13, 14
N_PARAMS = 15


def simd_params(p) -> np.ndarray | None:
    """int32[15] for :func:`add_sub_s8_simd` from a binary kernel's parameters ``p``
    (:data:`tinyzo.kernels.binary.BinaryParams` of ADD or SUB): offsets, left shift, the three
    (multiplier, ``T``, base) rows, clamp bounds minus the output offset, the output offset. None when
    a shift is positive (not the one-formula layout; ADD/SUB never have one)."""
    rows = []
    for m, s in ((p.input1_multiplier, p.input1_shift), (p.input2_multiplier, p.input2_shift),
                 (p.output_multiplier, p.output_shift)):
        rq = requant_params(np.array([m]), np.array([s]), int(p.rounding))
        if rq.shape[0] != RQU_ROWS:
            return None
        rows.extend(int(v) for v in rq[:, 0])
    off = int(p.output_offset)
    return np.array([p.input1_offset, p.input2_offset, p.left_shift, *rows, int(p.act_min) - off,
                     int(p.act_max) - off, off], dtype=np.int32)


def vbmi_available() -> bool:
    """Whether Numba compiles for a CPU with AVX512-VBMI (``vpermi2b``) besides what the 16-lane kernel
    needs: :func:`add_sub_s8_lut` can run (Ice Lake, Zen 4 and later; not Cascade Lake)."""
    return vnni_available() and "+avx512vbmi" in compiled_cpu_features()


def simd_tables(p) -> np.ndarray:
    """int8[2, 4, 256] for :func:`add_sub_s8_lut` from the ADD/SUB kernel parameters ``p``
    (:data:`tinyzo.kernels.binary.BinaryParams`): byte plane ``b`` (0 the lowest) of input k's rescaled
    value ``s_k`` (module docstring) for every int8 input, indexed by the input's byte (``x & 255``:
    0..127 then -128..-1), computed by the scalar kernels' own rescaling
    (:func:`tinyzo.kernels.binary.scaled_inputs_s8`)."""
    s = np.empty((2, 256), np.int32)
    scaled_inputs_s8(p, s)
    return s.view(np.uint8).reshape(2, 256, 4).transpose(0, 2, 1).copy().view(np.int8)


#: the byte ``e`` of a 64-byte step sits at ``16 * k + 4 * L + i`` of the four int32 vectors' packed outputs
#: (``e = 16 * L + 4 * k + i``: the in-lane unpacks of the byte planes): the shuffle that puts them back
_UNSCRAMBLE = [16 * ((e % 16) // 4) + 4 * (e // 16) + e % 4 for e in range(64)]


def _unpack(builder, a, b, lanes, width, high):
    """``vpunpck{l,h}{bw,wd}`` of ``a`` and ``b`` (<lanes x iN> each, 128-bit lanes of ``width`` elements):
    per lane, the low (or high) half of ``a``'s elements interleaved with ``b``'s."""
    half = width // 2
    mask = []
    for lane in range(lanes // width):
        for j in range(half):
            e = lane * width + j + (half if high else 0)
            mask += [e, lanes + e]
    return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(I32, lanes), mask))


def _lut_codegen(context, builder, signature, args):
    """LLVM code of :func:`_add_sub_lut_blocks`."""
    x1addr, x2addr, oaddr, paddr, taddr, nblocks, sub = args
    x1 = builder.inttoptr(x1addr, I8.as_pointer())
    x2 = builder.inttoptr(x2addr, I8.as_pointer())
    ob = builder.inttoptr(oaddr, I8.as_pointer())
    pb = builder.inttoptr(paddr, I32.as_pointer())
    tb = builder.inttoptr(taddr, I8.as_pointer())
    vperm = builder.module.globals.get(VPERMI2B)
    if vperm is None:
        vperm = ir.Function(builder.module, ir.FunctionType(V64B, [V64B, V64B, V64B]), VPERMI2B)

    def field(i):  # parameter i as a 16-lane splat
        return splat(builder, builder.load(builder.gep(pb, [ir.Constant(I64, i)])), V16)

    qout = requant_consts(builder, field(P_QOUT), field(P_QOUT + 1), field(P_QOUT + 2))
    bounds = (field(P_LO), field(P_HI), field(P_OUT_OFF))
    is_sub = builder.icmp_signed("!=", sub, ir.Constant(I64, 0))
    zero = ir.Constant(V64B, None)
    v32h = ir.VectorType(ir.IntType(16), 32)

    def rescaled(xv, k):  # the four int32 vectors of s_k (lane 4L + i of vector j: element 16L + 4j + i)
        neg = builder.icmp_signed("<", xv, zero)
        planes = []
        for plane in range(4):
            t = [load_vec(builder, tb, ir.Constant(I64, (k * 4 + plane) * 256 + 64 * j), V64B) for j in range(4)]
            low = builder.call(vperm, [t[0], xv, t[1]])  # bytes 0..127: x = 0..127
            high = builder.call(vperm, [t[2], xv, t[3]])  # bytes 128..255: x = -128..-1
            planes.append(builder.select(neg, high, low))
        words = [builder.bitcast(_unpack(builder, planes[a], planes[a + 1], 64, 16, high), v32h)
                 for a in (0, 2) for high in (False, True)]  # (p0p1 low, p0p1 high, p2p3 low, p2p3 high)
        return [builder.bitcast(_unpack(builder, words[lo_hi], words[2 + lo_hi], 32, 8, high), V16)
                for lo_hi in (0, 1) for high in (False, True)]

    blocks = CountedLoop(builder, nblocks, "addsub_lut_block")
    at = builder.mul(blocks.index, ir.Constant(I64, LUT_LANES))
    s1 = rescaled(load_vec(builder, x1, at, V64B), 0)
    s2 = rescaled(load_vec(builder, x2, at, V64B), 1)
    ys = []
    for a, b in zip(s1, s2):
        raw = builder.select(is_sub, builder.sub(a, b), builder.add(a, b))
        ys.append(clamp_offset_s8(builder, multiply_shift(builder, raw, qout), bounds))
    v32b = ir.VectorType(I8, 32)
    idx32 = ir.Constant(ir.VectorType(I32, 32), list(range(32)))
    lo = builder.shuffle_vector(ys[0], ys[1], idx32)
    hi = builder.shuffle_vector(ys[2], ys[3], idx32)
    assert lo.type == v32b
    y = builder.shuffle_vector(lo, hi, ir.Constant(ir.VectorType(I32, 64), _UNSCRAMBLE))
    builder.store(y, builder.bitcast(builder.gep(ob, [at]), V64B.as_pointer()), align=1)
    blocks.close()
    return context.get_dummy_value()


@intrinsic
def _add_sub_lut_blocks(typingctx, x1addr, x2addr, oaddr, paddr, taddr, nblocks, sub):
    """``nblocks`` steps of 64 elements (addresses of int8 inputs and output, int32 parameters, int8
    tables; ``sub`` != 0 subtracts)."""
    sig = types.void(types.uint64, types.uint64, types.uint64, types.uint64, types.uint64, types.int64,
                     types.int64)
    return sig, _lut_codegen


@njit(cache=True, nogil=True)
def add_sub_s8_lut(x1, x2, prm, tables, sub, out):
    """:func:`add_sub_s8_simd` with the inputs' rescaling looked up (:func:`simd_tables`), 64 elements per
    step; the last ``n % 64`` elements by :func:`add_sub_s8_simd`. The same outputs.

    Args:
        x1, x2: int8[n], C-contiguous.
        prm: int32[15] from :func:`simd_params`; tables: int8[2, 4, 256] from :func:`simd_tables` of it.
        sub: 0 for ADD, 1 for SUB.
        out: int8[n], C-contiguous, written.
    """
    n = out.shape[0]
    full = n // LUT_LANES
    _add_sub_lut_blocks(np.uint64(x1.ctypes.data), np.uint64(x2.ctypes.data), np.uint64(out.ctypes.data),
                        np.uint64(prm.ctypes.data), np.uint64(tables.ctypes.data), full, sub)
    done = full * LUT_LANES
    if done < n:
        add_sub_s8_simd(x1[done:], x2[done:], prm, sub, out[done:])


def _codegen(context, builder, signature, args):
    """LLVM code of :func:`_add_sub_blocks`."""
    x1addr, x2addr, oaddr, paddr, nblocks, sub = args
    x1 = builder.inttoptr(x1addr, I8.as_pointer())
    x2 = builder.inttoptr(x2addr, I8.as_pointer())
    ob = builder.inttoptr(oaddr, I8.as_pointer())
    pb = builder.inttoptr(paddr, I32.as_pointer())

    def field(i):  # parameter i as a 16-lane splat
        return splat(builder, builder.load(builder.gep(pb, [ir.Constant(I64, i)])), V16)

    def consts(i):
        return requant_consts(builder, field(i), field(i + 1), field(i + 2))

    off1, off2, lshift = field(P_OFF1), field(P_OFF2), field(P_LSHIFT)
    q1, q2, qout = consts(P_Q1), consts(P_Q2), consts(P_QOUT)
    bounds = (field(P_LO), field(P_HI), field(P_OUT_OFF))
    is_sub = builder.icmp_signed("!=", sub, ir.Constant(I64, 0))
    blocks = CountedLoop(builder, nblocks, "addsub_block")
    at = builder.mul(blocks.index, ir.Constant(I64, LANES))
    a1 = builder.shl(builder.add(builder.sext(load_vec(builder, x1, at, V16B), V16), off1), lshift)
    a2 = builder.shl(builder.add(builder.sext(load_vec(builder, x2, at, V16B), V16), off2), lshift)
    s1 = multiply_shift(builder, a1, q1)
    s2 = multiply_shift(builder, a2, q2)
    raw = builder.select(is_sub, builder.sub(s1, s2), builder.add(s1, s2))
    y = clamp_offset_s8(builder, multiply_shift(builder, raw, qout), bounds)
    builder.store(y, builder.bitcast(builder.gep(ob, [at]), V16B.as_pointer()), align=1)
    blocks.close()
    return context.get_dummy_value()


@intrinsic
def _add_sub_blocks(typingctx, x1addr, x2addr, oaddr, paddr, nblocks, sub):
    """``nblocks`` steps of 16 elements (addresses of int8 inputs and output, int32 parameters;
    ``sub`` != 0 subtracts)."""
    sig = types.void(types.uint64, types.uint64, types.uint64, types.uint64, types.int64, types.int64)
    return sig, _codegen


@njit(cache=True, nogil=True)
def add_sub_s8_simd(x1, x2, prm, sub, out):
    """``out = ADD(x1, x2)`` (``sub`` 0) or ``SUB(x1, x2)`` (1), element by element, exactly as
    :func:`tinyzo.kernels.binary.add_s8` / ``sub_s8`` on same-shape inputs.

    Args:
        x1, x2: int8[n], C-contiguous.
        prm: int32[15] from :func:`simd_params`.
        sub: 0 for ADD, 1 for SUB.
        out: int8[n], C-contiguous, written.
    """
    n = out.shape[0]
    full = n // LANES
    _add_sub_blocks(np.uint64(x1.ctypes.data), np.uint64(x2.ctypes.data), np.uint64(out.ctypes.data),
                    np.uint64(prm.ctypes.data), full, sub)
    rest = n - full * LANES
    if rest:  # the last elements through 16-element buffers
        a = np.zeros(LANES, np.int8)
        b = np.zeros(LANES, np.int8)
        o = np.empty(LANES, np.int8)
        for i in range(rest):
            a[i] = x1[full * LANES + i]
            b[i] = x2[full * LANES + i]
        _add_sub_blocks(np.uint64(a.ctypes.data), np.uint64(b.ctypes.data), np.uint64(o.ctypes.data),
                        np.uint64(prm.ctypes.data), 1, sub)
        for i in range(rest):
            out[full * LANES + i] = o[i]
