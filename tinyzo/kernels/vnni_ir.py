"""LLVM IR building blocks shared by the AVX512-VNNI kernels (:mod:`tinyzo.kernels.conv_vnni`,
:mod:`tinyzo.kernels.depthwise_vnni`).

Numba's own loops cannot keep 16-lane vectors in registers across a loop nor emit ``vpdpbusd``, so
those kernels build their inner loops as LLVM IR (``numba.extending.intrinsic``); these helpers emit
the pieces they share: the ``vpdpbusd`` declaration, splats, and the exact requantization of 16 int32
accumulators to 16 int8 outputs (the one-formula layout of :mod:`tinyzo.kernels.requant`).

Numba's on-disk cache of a jitted kernel is invalidated by changes to the kernel's own source file
only: after editing this module, touch ``conv_vnni.py`` and ``depthwise_vnni.py`` (or clear the
``__pycache__`` folders), or the cached kernels keep the old code. An installed release is not
affected (every file of a new version is new).
"""

from __future__ import annotations

from llvmlite import ir

I8, I32, I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
V16 = ir.VectorType(I32, 16)  # 16 int32 lanes: one zmm register
V16Q = ir.VectorType(I64, 16)  # the same lanes widened to int64 (two registers)
V8Q = ir.VectorType(I64, 8)  # eight int64 lanes: one zmm register
V16B = ir.VectorType(I8, 16)  # 16 int8 outputs
V64B = ir.VectorType(I8, 64)  # 64 bytes: one zmm register of bytes
VPDPBUSD = "llvm.x86.avx512.vpdpbusd.512"


class CountedLoop:
    """``for i in range(count)`` in LLVM IR (``count`` an i64 value).

    ``CountedLoop(builder, count, name)`` leaves the builder in the loop body with :attr:`index` (the i64
    loop counter, the body's first phi node: create the body's other phi nodes right after);
    :meth:`close` branches back and leaves the builder after the loop. The other phi nodes take their
    first value from :attr:`entry` (the block before the loop) and their next one from the block
    :meth:`close` returns. ``check=False`` leaves out the ``count > 0`` test: the body runs at least
    once, and the code after the loop is reached from the last iteration only.
    """

    def __init__(self, builder, count, name: str, check: bool = True):
        self.builder, self.count = builder, count
        self.entry = builder.block
        fn = builder.function
        self.body = fn.append_basic_block(name)
        self.done = fn.append_basic_block(name + "_done")
        if check:
            builder.cbranch(builder.icmp_signed(">", count, ir.Constant(I64, 0)), self.body, self.done)
        else:
            builder.branch(self.body)
        builder.position_at_end(self.body)
        self.index = builder.phi(I64)

    def close(self):
        """End the body (the current block is the latch) and continue after the loop; returns the latch."""
        b = self.builder
        nxt = b.add(self.index, ir.Constant(I64, 1))
        latch = b.block
        self.index.add_incoming(ir.Constant(I64, 0), self.entry)
        self.index.add_incoming(nxt, latch)
        b.cbranch(b.icmp_signed("<", nxt, self.count), self.body, self.done)
        b.position_at_end(self.done)
        return latch


def vpdpbusd(builder):
    """The ``vpdpbusd`` intrinsic declared in the module being built: ``(acc, u8x64, s8x64) -> acc``, each
    int32 lane plus the four products of its unsigned bytes by its signed bytes (no saturation)."""
    fn = builder.module.globals.get(VPDPBUSD)
    if fn is None:
        fn = ir.Function(builder.module, ir.FunctionType(V16, [V16, V16, V16]), VPDPBUSD)
    return fn


def splat(builder, value, vtype):
    """A vector of type ``vtype`` with every lane ``value`` (an LLVM scalar of the element type)."""
    lanes = vtype.count
    v = builder.insert_element(ir.Constant(vtype, None), value, ir.Constant(I32, 0))
    return builder.shuffle_vector(v, ir.Constant(vtype, None), ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))


def load_vec(builder, base, byte_offset, vtype, align=1):
    """Load a ``vtype`` vector from the i8 pointer ``base`` plus ``byte_offset`` (an i64 value)."""
    return builder.load(builder.bitcast(builder.gep(base, [byte_offset]), vtype.as_pointer()), align=align)


def requant_consts(builder, mult, tsh, base):
    """Per-lane constants of the one-formula requantization from its three int32 rows (16 lanes each),
    split into the even and the odd lanes as eight int64 lanes each (the layout of ``vpmuldq``):
    ``((m, T, C, C - D) even, (m, T, C, C - D) odd)`` with ``C = B + 2**(T - 1)`` and ``D = 2 B``
    (:mod:`tinyzo.kernels.requant`)."""
    low = splat(builder, ir.Constant(I64, 0xFFFFFFFF), V8Q)
    k32 = splat(builder, ir.Constant(I64, 32), V8Q)
    one = splat(builder, ir.Constant(I64, 1), V8Q)
    def lane(v, odd):  # the even (odd) int32 lanes of non-negative values as int64 lanes
        q = builder.bitcast(v, V8Q)
        return builder.lshr(q, k32) if odd else builder.and_(q, low)

    def signed_lane(v, odd):  # the same, sign-extended: LLVM then knows m fits 32 bits signed (vpmuldq)
        q = builder.bitcast(v, V8Q)
        return builder.ashr(q if odd else builder.shl(q, k32), k32)

    halves = []
    for odd in (False, True):
        m, t, b = signed_lane(mult, odd), lane(tsh, odd), lane(base, odd)
        c = builder.add(b, builder.shl(one, builder.sub(t, one)))
        halves.append((m, t, c, builder.sub(c, builder.shl(b, one))))
    return tuple(halves)


def load_requant_consts(builder, qbase, qstride, at):
    """:func:`requant_consts` of the 16 lanes at byte ``at`` of the three int32 requantization rows that
    start at the i8 pointer ``qbase``, ``qstride`` bytes apart (i64 values)."""
    rows = [load_vec(builder, qbase, builder.add(builder.mul(ir.Constant(I64, r), qstride), at), V16, 4)
            for r in range(3)]
    return requant_consts(builder, *rows)


def output_bounds(builder, lo, hi, offset):
    """Splats of the clamp bounds minus the output offset (``lo``, ``hi``) and of the offset (i64 values)."""
    return tuple(splat(builder, builder.trunc(v, I32), V16) for v in (lo, hi, offset))


def multiply_shift(builder, acc, consts):
    """16 int32 values to ``(acc * m + C - D [acc < 0]) >> T`` (int32 lanes): TFLM's
    ``MultiplyByQuantizedMultiplier`` with no positive shift, bit-exact (one-formula layout of
    :mod:`tinyzo.kernels.requant`; ``consts`` from :func:`requant_consts`).

    The even and the odd lanes are computed as eight int64 lanes each, as ``vpmuldq`` multiplies
    (the low 32 bits of each 64-bit lane, sign-extended): the odd lanes are the high halves shifted
    down; ``C`` or ``C - D`` chosen by the value's sign, the shift ``vpsravq``; the two halves'
    results (each fits int32) are put back in lane order.
    """
    (me, te, ce, cde), (mo, to, co, cdo) = consts
    k32 = splat(builder, ir.Constant(I64, 32), V8Q)
    q = builder.bitcast(acc, V8Q)
    a_even = builder.ashr(builder.shl(q, k32), k32)  # sign-extended even lanes (vpmuldq reads them as they are)
    a_odd = builder.ashr(q, k32)  # sign-extended odd lanes
    zero = splat(builder, ir.Constant(I64, 0), V8Q)
    # the signs straight from the accumulators: bit 31 of each 64-bit lane (vptestmq), bit 63 (vpmovq2m)
    neg_even = builder.icmp_unsigned("!=", builder.and_(q, splat(builder, ir.Constant(I64, 0x80000000), V8Q)), zero)
    neg_odd = builder.icmp_signed("<", q, zero)
    out = []
    for a, neg, m, t, c, cd in ((a_even, neg_even, me, te, ce, cde), (a_odd, neg_odd, mo, to, co, cdo)):
        p = builder.add(builder.mul(a, m), builder.select(neg, cd, c))
        out.append(builder.ashr(p, t))  # fits int32: its low half is the result
    merged = builder.or_(builder.and_(out[0], splat(builder, ir.Constant(I64, 0xFFFFFFFF), V8Q)),
                         builder.shl(out[1], k32))
    return builder.bitcast(merged, V16)


def clamp_offset_s8(builder, y, bounds):
    """16 int32 values clamped to ``[lo, hi]``, plus the output offset, as 16 int8 (``bounds`` from
    :func:`output_bounds`: the clamp bounds minus the offset, so the sum cannot overflow)."""
    lo, hi, off = bounds
    y = builder.select(builder.icmp_signed("<", y, lo), lo, y)
    y = builder.select(builder.icmp_signed(">", y, hi), hi, y)
    return builder.trunc(builder.add(y, off), V16B)


def requantize(builder, acc, consts, bounds):
    """16 int32 accumulators to 16 int8 outputs: ``clamp((acc * m + C - D [acc < 0]) >> T) + offset``,
    bit-exact with :func:`tinyzo.kernels.requant.requantize_row_s8` (one-formula layout):
    :func:`multiply_shift` then :func:`clamp_offset_s8`."""
    return clamp_offset_s8(builder, multiply_shift(builder, acc, consts), bounds)
