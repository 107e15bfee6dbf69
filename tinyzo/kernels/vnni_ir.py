"""LLVM IR building blocks shared by the AVX512-VNNI kernels (:mod:`tinyzo.kernels.conv_vnni`,
:mod:`tinyzo.kernels.depthwise_vnni`).

Numba's own loops cannot keep 16-lane vectors in registers across a loop nor emit ``vpdpbusd``, so
those kernels build their inner loops as LLVM IR (``numba.extending.intrinsic``); these helpers emit
the pieces they share: the ``vpdpbusd`` declaration, splats, and the exact requantization of 16 int32
accumulators to 16 int8 outputs (the one-formula layout of :mod:`tinyzo.kernels.requant`).
"""

from __future__ import annotations

from llvmlite import ir

I8, I32, I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
V16 = ir.VectorType(I32, 16)  # 16 int32 lanes: one zmm register
V16Q = ir.VectorType(I64, 16)  # the same lanes widened to int64 (two registers)
V16B = ir.VectorType(I8, 16)  # 16 int8 outputs
V64B = ir.VectorType(I8, 64)  # 64 bytes: one zmm register of bytes
VPDPBUSD = "llvm.x86.avx512.vpdpbusd.512"


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
    """Per-lane constants of the one-formula requantization from its three int32 rows (16 lanes each):
    ``(m, T, C, D)`` as int64 lanes, ``C = B + 2**(T - 1)`` and ``D = 2 B``
    (:mod:`tinyzo.kernels.requant`)."""
    one = splat(builder, ir.Constant(I64, 1), V16Q)
    m = builder.zext(mult, V16Q)
    t = builder.zext(tsh, V16Q)
    b = builder.zext(base, V16Q)
    c = builder.add(b, builder.shl(one, builder.sub(t, one)))
    return m, t, c, builder.shl(b, one)


def output_bounds(builder, lo, hi, offset):
    """Splats of the clamp bounds minus the output offset (``lo``, ``hi``) and of the offset (i64 values)."""
    return tuple(splat(builder, builder.trunc(v, I32), V16) for v in (lo, hi, offset))


def requantize(builder, acc, consts, bounds):
    """16 int32 accumulators to 16 int8 outputs: ``clamp((acc * m + C - D [acc < 0]) >> T) + offset``,
    bit-exact with :func:`tinyzo.kernels.requant.requantize_row_s8` (one-formula layout); the
    product and shift in 64-bit lanes (``vpmuldq``, ``vpsravq``), the clamp in 32-bit lanes."""
    m, t, c, d = consts
    lo, hi, off = bounds
    a = builder.sext(acc, V16Q)
    p = builder.add(builder.mul(a, m), c)
    p = builder.sub(p, builder.and_(d, builder.ashr(a, splat(builder, ir.Constant(I64, 63), V16Q))))
    y = builder.trunc(builder.ashr(p, t), V16)  # the requantized value fits int32
    y = builder.select(builder.icmp_signed("<", y, lo), lo, y)
    y = builder.select(builder.icmp_signed(">", y, hi), hi, y)
    return builder.trunc(builder.add(y, off), V16B)
