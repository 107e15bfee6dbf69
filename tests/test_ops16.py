"""int16 (16x8) operators: jitted kernels == pure-Python spec, prepare == TFLM's checks, ops == TFLite Micro.

Evidence layers: (1) the int16 kernels of ADD, SUB, MUL, the pools, SOFTMAX, RELU, RELU6, LEAKY_RELU,
LOGISTIC, TANH, QUANTIZE and DEQUANTIZE against :mod:`tinyzo.spec` (hypothesis; every int16 input
for the table look-ups, LOGISTIC and TANH); TFLM's int16 tables rebuilt with the C library's
``expf`` and frozen by hash; (2) the prepare-time parameters and refusals; (3) models run by the
TFLM interpreter: LOGISTIC and TANH on every int16 input, a 16x8 chain written and read back
through .tflite, and TFLM's arena for random int16 one-op models (the random int16 one-op sweep of
every operator is in tests/test_ops_tflm.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from single_op import CASES_INT16
from test_elementwise import PROP, ROUNDINGS, tflm_outputs

from tinyzo.errors import ArithmeticContractError, UnsupportedOperatorError
from tinyzo.graph import Model, Operator, Tensor
from tinyzo.io import read_tflite, write_tflite
from tinyzo.kernels import activations as KA
from tinyzo.kernels import binary as KB
from tinyzo.kernels import elementwise as KE
from tinyzo.kernels import pool as KP
from tinyzo.kernels import softmax as KS
from tinyzo.kernels.lut import lut_lookup_int16 as lut_lookup_kernel
from tinyzo.ops.activations import checked_log2, leaky_relu_params, logistic_tanh_s16_params, relu6_bounds, relu_params
from tinyzo.ops.binary import add_params, broadcast_strides, mul_params
from tinyzo.ops.softmax import softmax_s16_params
from tinyzo.quant import QuantParams, activation_range, quantize_multiplier, rounding_code
from tinyzo.spec import activations as SA
from tinyzo.spec import binary as SB
from tinyzo.spec import elementwise as SE
from tinyzo.spec import lut as L
from tinyzo.spec import pool as SP
from tinyzo.spec import softmax as SS

I16 = np.int16
ALL_INT16 = np.arange(-32768, 32768, dtype=np.int64).astype(np.int16)
SIGMOID = np.array(L.SIGMOID_TABLE_UINT16, np.uint16)


def q16(scale):
    return QuantParams(np.array([scale], np.float32), np.array([0], np.int64))


def rand16(rng, shape):
    x = rng.integers(-32768, 32768, size=shape).astype(np.int16)
    if x.size:
        x.reshape(-1)[0] = -32768
    if x.size > 1:
        x.reshape(-1)[1] = 32767
    return x


scales16 = st.one_of(st.floats(1e-6, 1.0), st.sampled_from([2.0**-15, 2.0**-12, 1e-5, 0.5])).map(
    lambda s: float(np.float32(s)))


# ----------------------------------------------------------------------------- (1) tables
def _libm_expf():
    name = ctypes.util.find_library("m")
    if name is None:
        return None
    libm = ctypes.CDLL(name)
    libm.expf.restype, libm.expf.argtypes = ctypes.c_float, [ctypes.c_float]
    return lambda x: np.float32(libm.expf(float(x)))


def test_softmax_exp_table_equals_the_c_library_expf():
    """TFLM fills the exp table with the C library's ``expf``; tinyzo's double-rounded ``exp`` gives the same table."""
    cexpf = _libm_expf()
    if cexpf is None:
        pytest.skip("no C math library to load")
    s_in, s_out = np.float32(np.float32(10.0) / np.float32(65535)), np.float32(np.float32(2.0) / np.float32(65535))
    np.testing.assert_array_equal(L.lut_populate_int16(cexpf, s_in, 32767, s_out, 0), L.softmax_exp_lut())


@pytest.mark.parametrize("make, sha, corners", [
    (L.softmax_exp_lut, "1f064505e52b55588b7378cd2dc4131c388e9f4f3e7c7a874818b8372ebf53e3", [2, 2, 221, 32133, 32767]),
    (L.softmax_one_over_one_plus_x_lut, "36dabd62f9189220f5886743ca50309c57fd9c0926acc262113636c017b2775c",
     [32767, 32704, 21845, 16400, 16384]),
])
def test_softmax_tables_frozen(make, sha, corners):
    """The two tables as TFLM's interpreter uses them (its int16 SOFTMAX equals tinyzo's on every random model)."""
    t = make()
    assert t.dtype == np.int16 and t.shape == (513,)
    assert t[[0, 1, 256, 511, 512]].tolist() == corners
    assert hashlib.sha256(t.astype("<i2").tobytes()).hexdigest() == sha


def test_sigmoid_table_is_sigmoid():
    """TFLM's table is within 1 of 65536 * sigmoid(i / 24) (clamped to 65535), increasing, from 32768."""
    i = np.arange(256)
    ideal = np.minimum(np.round(65536.0 / (1.0 + np.exp(-i / 24.0))), 65535)
    assert np.max(np.abs(SIGMOID.astype(np.int64) - ideal)) <= 1
    assert SIGMOID[0] == 32768 and SIGMOID[-1] == 65535 and np.all(np.diff(SIGMOID.astype(np.int64)) >= 0)


def test_lut_populate_follows_tflm_on_a_linear_function():
    """A linear transform interpolates exactly: no midpoint correction, entry i = round(f(x_i) * 65536 / range)."""
    t = L.lut_populate_int16(lambda x: np.float32(x * np.float32(0.5)), np.float32(1 / 32768), 0,
                             np.float32(1 / 32768), 0)
    want = np.clip(np.round(0.5 * (-32768 + 128 * np.arange(513))), -32768, 32767)
    np.testing.assert_array_equal(t, want)


@pytest.mark.parametrize("table", ["exp", "recip", "random"])
def test_lut_lookup_kernel_equals_spec_on_every_int16(table):
    """``LUTLookup`` on all 65536 inputs (a random table makes int16 slopes wrap)."""
    lut = {"exp": L.softmax_exp_lut, "recip": L.softmax_one_over_one_plus_x_lut,
           "random": lambda: np.random.default_rng(3).integers(-32768, 32768, 513).astype(np.int16)}[table]()
    values = range(-32768, 32768, 1 if table != "random" else 7)
    got = [int(lut_lookup_kernel(v, lut)) for v in values]
    assert got == [L.lut_lookup_int16(v, lut) for v in values]


# ----------------------------------------------------------------------------- (1) LOGISTIC, TANH: every input
LOGISTIC_TANH_SCALES = [2.0**-12, 2.0**-11, 2.0**-13, 1e-5, 3.1e-4, 0.001, 0.01, 0.1, 1.0, 2.5]


@pytest.mark.parametrize("s_in", LOGISTIC_TANH_SCALES)
@pytest.mark.parametrize("op", ["LOGISTIC", "TANH"])
def test_logistic_tanh_kernels_equal_spec_on_every_int16(op, s_in):
    pot = (0,) if op == "LOGISTIC" else (0, 1)
    m, sh = logistic_tanh_s16_params(np.float32(s_in), np.float32(2.0**-15), pot)
    kernel, spec = (KA.logistic_s16, SA.logistic_s16) if op == "LOGISTIC" else (KA.tanh_s16, SA.tanh_s16)
    out = np.empty(ALL_INT16.size, np.int16)
    kernel(ALL_INT16, m, sh, SIGMOID, out)
    np.testing.assert_array_equal(out, [spec(int(v), m, sh) for v in ALL_INT16])


def test_logistic_tanh_s16_params_known_values():
    f = np.float32
    assert logistic_tanh_s16_params(f(2.0**-12), f(2.0**-15), (0,)) == (3, 0)  # TFLM's power-of-two case
    assert logistic_tanh_s16_params(f(2.0**-11), f(2.0**-15), (0, 1)) == (6, 0)
    assert logistic_tanh_s16_params(f(2.0**-11), f(2.0**-15), (0,)) == (24576, 12)  # LOGISTIC: general path
    assert logistic_tanh_s16_params(f(2.0**-13), f(2.0**-15), (0, 1)) == (24576, 14)
    m, sh = logistic_tanh_s16_params(f(1e-3), f(2.0**-15), (0,))
    assert (m, sh) == (int(1e-3 * 12288 * 2**sh), sh) and 16383 < m <= 32767
    with pytest.raises(ArithmeticContractError, match="32767"):
        logistic_tanh_s16_params(f(3.0), f(2.0**-15), (0,))
    with pytest.raises(ArithmeticContractError, match="2\\*\\*-15"):
        logistic_tanh_s16_params(f(1e-3), f(2.0**-14), (0,))


def test_checked_log2():
    assert checked_log2(np.float32(2.0**-15)) == (True, -15)
    assert checked_log2(np.float32(2.0**-15 * 1.0005)) == (True, -15)  # |frac| < 1e-3: TFLM calls it a power of two
    assert checked_log2(np.float32(2.0**-15 * 1.01))[0] is False
    assert checked_log2(np.float32(3e-4)) == (False, -12)
    assert checked_log2(np.float32(1.0)) == (True, 0)


# ----------------------------------------------------------------------------- (1) RELU, RELU6, LEAKY_RELU
@PROP
@given(s_in=scales16, ratio=st.floats(0.01, 100.0), alpha=st.floats(-3.0, 3.0), rounding=st.sampled_from(ROUNDINGS),
       seed=st.integers(0, 2**32 - 1))
def test_prop_relu_family_kernels_equal_spec(s_in, ratio, alpha, rounding, seed):
    s_out = float(np.float32(s_in * ratio))
    assume(s_out > 0)
    x = rand16(np.random.default_rng(seed), 300)
    rc = rounding_code(rounding)
    m, sh, lo, hi = relu_params(s_in, s_out, 0, rounding, np.int16)
    assert (lo, hi) == (0, 32767)
    out = np.empty_like(x)
    KA.relu_s16(x, 0, m, sh, 0, lo, hi, rc, out)
    np.testing.assert_array_equal(out, [SA.relu_s16(v, 0, m, sh, 0, lo, hi, rc) for v in x])
    lower, upper = relu6_bounds(s_in, 0, np.int16)
    KA.relu6_s16(x, lower, upper, out)
    np.testing.assert_array_equal(out, [SA.relu6_s16(v, lower, upper) for v in x])
    mi, si, ma, sa = leaky_relu_params(s_in, s_out, np.float32(alpha), rounding)
    KA.leaky_relu_s16(x, 0, 0, mi, si, ma, sa, rc, out)
    np.testing.assert_array_equal(out, [SA.leaky_relu_s16(v, 0, 0, mi, si, ma, sa, rc) for v in x])


def test_relu6_bounds_int16():
    assert relu6_bounds(np.float32(6.0 / 1000), 0, np.int16) == (0, 1000)
    assert relu6_bounds(np.float32(1e-5), 0, np.int16) == (0, 32767)  # 6 / s = 600000: clamped to int16
    assert relu6_bounds(np.float32(1e-5), 0) == (0, 127)  # the int8 default is unchanged


# ----------------------------------------------------------------------------- (1) ADD, SUB, MUL
@st.composite
def binary16_case(draw, opcode):
    rounding = draw(st.sampled_from(ROUNDINGS))
    s1, s2 = draw(scales16), draw(scales16)
    if opcode == "MUL":
        so = float(np.float32(s1 * s2 / draw(st.floats(1e-7, 1e3))))
    else:
        so = float(np.float32(max(s1, s2) * draw(st.floats(2.0**-14, 16.0))))
    assume(so > 0)
    try:
        p = (mul_params(s1, 0, s2, 0, so, 0, rounding) if opcode == "MUL"
             else add_params(s1, 0, s2, 0, so, 0, rounding, np.int16))
        act_min, act_max = activation_range(draw(st.sampled_from(["NONE", "RELU", "RELU6", "RELU_N1_TO_1"])),
                                            q16(so), np.int16)
    except ArithmeticContractError:
        assume(False)
    assume(act_min <= act_max)
    return dict(p, act_min=act_min, act_max=act_max, rounding=rounding_code(rounding))


@st.composite
def shapes(draw):
    rank = draw(st.integers(1, 4))
    out = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    ins = []
    for _ in range(2):
        tail = out[rank - draw(st.integers(0, rank)):]
        ins.append(tuple(d if draw(st.booleans()) else 1 for d in tail))
    return out, ins[0], ins[1]


@pytest.mark.parametrize("opcode", ["ADD", "SUB", "MUL"])
def test_prop_binary_s16_kernels_equal_spec(opcode):
    kernel = {"ADD": KB.add_s16, "SUB": KB.sub_s16, "MUL": KB.mul_s16}[opcode]
    func = {"ADD": SB.add_func, "SUB": SB.sub_func, "MUL": SB.mul_func}[opcode]

    @PROP
    @given(p=binary16_case(opcode), sh=shapes(), seed=st.integers(0, 2**32 - 1))
    def check(p, sh, seed):
        out_shape, sa, sb = sh
        rng = np.random.default_rng(seed)
        x1, x2 = rand16(rng, sa), rand16(rng, sb)
        ext = (1,) * (6 - len(out_shape)) + out_shape
        out = np.empty(ext, np.int16)
        kernel(x1.reshape(-1), broadcast_strides(sa, ext), x2.reshape(-1), broadcast_strides(sb, ext),
               KB.make_binary_params(**p), out)
        np.testing.assert_array_equal(out.reshape(out_shape), SB.broadcast_binary_s16(func, x1, x2, out_shape, p))

    check()


def test_add_params_int16_left_shift_and_limit():
    assert add_params(0.01, 0, 0.02, 0, 0.03, 0, "double", np.int16)["left_shift"] == 15
    assert add_params(0.01, 0, 0.02, 0, 0.03, 0)["left_shift"] == 20  # int8 default unchanged
    add_params(1.0, 0, 1.0, 0, 2.0**-13, 0, "double", np.int16)  # output multiplier 2**-2 < 1
    with pytest.raises(ArithmeticContractError):  # 2 * 1 / (2**15 * 2**-14) = 1: TFLite's TFLITE_CHECK_LT aborts
        add_params(1.0, 0, 1.0, 0, 2.0**-14, 0, "double", np.int16)


# ----------------------------------------------------------------------------- (1) pools
@PROP
@given(h=st.integers(1, 6), w=st.integers(1, 6), c=st.integers(1, 3), fh=st.integers(1, 4), fw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), padding=st.sampled_from(["SAME", "VALID"]),
       act=st.sampled_from([(-32768, 32767), (0, 32767), (-100, 100)]), seed=st.integers(0, 2**32 - 1))
def test_prop_pool_s16_kernels_equal_spec(h, w, c, fh, fw, sh, sw, padding, act, seed):
    out_h, out_w, pad_h, pad_w, _, _ = SP.compute_padding_height_width(sh, sw, 1, 1, h, w, fh, fw, padding)
    assume(out_h >= 1 and out_w >= 1)
    rng = np.random.default_rng(seed)
    x = rand16(rng, (2, h, w, c))
    if rng.integers(0, 2):
        x[:] = rng.choice([-32768, 32767], size=x.shape)  # windows of extremes: ties and the int16 ends
    args = (sh, sw, fh, fw, pad_h, pad_w) + act
    for kernel, spec in ((KP.average_pool_s16, SP.average_pool_s16), (KP.max_pool_s16, SP.max_pool_s16)):
        out = np.empty((2, out_h, out_w, c), np.int16)
        kernel(x, *args, out)
        np.testing.assert_array_equal(out, spec(x, out_h, out_w, *args))


def test_max_pool_s16_starts_below_int8():
    x = np.full((1, 2, 2, 1), -30000, np.int16)
    out = np.empty((1, 1, 1, 1), np.int16)
    KP.max_pool_s16(x, 2, 2, 2, 2, 0, 0, -32768, 32767, out)
    assert out.item() == -30000


# ----------------------------------------------------------------------------- (1) SOFTMAX
@PROP
@given(rows=st.integers(1, 3), depth=st.integers(1, 40), s_in=scales16, beta=st.sampled_from([1.0, 0.5, 2.0, 0.1]),
       rounding=st.sampled_from(ROUNDINGS), mode=st.sampled_from(["random", "narrow", "equal"]),
       seed=st.integers(0, 2**32 - 1))
def test_prop_softmax_s16_kernel_equals_spec(rows, depth, s_in, beta, rounding, mode, seed):
    try:
        m, sh = softmax_s16_params(beta, s_in, rounding)
    except ArithmeticContractError:
        assume(False)
    rng = np.random.default_rng(seed)
    x = rand16(rng, (rows, depth))
    if mode == "narrow":
        x = (x // 1000).astype(np.int16)
    elif mode == "equal":
        x[:] = x[0, 0]
    exp_lut, recip_lut = L.softmax_exp_lut(), L.softmax_one_over_one_plus_x_lut()
    out = np.empty_like(x)
    KS.softmax_s16(x, m, sh, exp_lut, recip_lut, out, rounding_code(rounding))
    np.testing.assert_array_equal(out, SS.softmax_s16(x, m, sh, exp_lut, recip_lut, rounding))


def test_softmax_s16_params():
    m, sh = softmax_s16_params(1.0, 2.0**-10, "double")
    assert (m, sh) == quantize_multiplier(2.0**-10 * 6553.5)
    with pytest.raises(ArithmeticContractError, match="shift of 16"):
        softmax_s16_params(1.0, 6.0, "double")  # 6 * 6553.5 > 2**15: (x - max) << 16 overflows int32


# ----------------------------------------------------------------------------- (1) QUANTIZE, DEQUANTIZE
float32s = st.one_of(
    st.floats(width=32, allow_nan=True, allow_infinity=True),
    st.integers(-70000, 70000).map(lambda k: k * 0.5),  # ties and the int16 ends
)


@PROP
@given(xs=st.lists(float32s, min_size=1, max_size=30), scale=scales16)
def test_prop_quantize_f32_s16_kernel_equals_spec(xs, scale):
    x = np.array(xs, np.float32)
    out = np.empty(x.size, np.int16)
    KE.quantize_f32_s16(x, np.float32(scale), 0, out)
    np.testing.assert_array_equal(out, [SE.quantize_f32_s16(v, scale, 0) for v in x])


@PROP
@given(src=st.sampled_from(["int8", "int16"]), dst=st.sampled_from(["int8", "int16"]), ratio=st.floats(2.0**-17, 2.0**15),
       z_in=st.integers(-128, 127), z_out=st.integers(-128, 127), rounding=st.sampled_from(ROUNDINGS),
       seed=st.integers(0, 2**32 - 1))
def test_prop_requantize_int16_kernels_equal_spec(src, dst, ratio, z_in, z_out, rounding, seed):
    assume(src == "int16" or dst == "int16")
    z_in = z_in if src == "int8" else 0
    z_out = z_out if dst == "int8" else 0
    m, sh = quantize_multiplier(float(np.float32(ratio)), rounding)
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, 200).astype(np.int8) if src == "int8" else rand16(rng, 200)
    out = np.empty(200, np.dtype(dst))
    kernel, spec = (KE.quantize_s16, SE.quantize_s16) if dst == "int16" else (KE.quantize_s8, SE.quantize_s8)
    kernel(x, m, sh, z_in, z_out, rounding_code(rounding), out)
    np.testing.assert_array_equal(out, [spec(v, m, sh, z_in, z_out, rounding) for v in x])


@pytest.mark.parametrize("scale", [2.0**-15, 1e-6, 0.1234567, 3.0])
def test_dequantize_s16_on_every_int16(scale):
    out = np.empty(ALL_INT16.size, np.float32)
    KE.dequantize_s16(ALL_INT16, np.float32(scale), 0, out)
    want = (np.float64(np.float32(scale)) * ALL_INT16.astype(np.float64)).astype(np.float32)  # TFLM: double, once
    np.testing.assert_array_equal(out.view(np.uint32), want.view(np.uint32))
    assert all(SE.dequantize_s16(int(v), scale, 0) == o for v, o in zip(ALL_INT16[::997], out[::997]))


# ----------------------------------------------------------------------------- (2) prepare: what is refused
def _unary(opcode, dt_in, q_in, dt_out, q_out, shape=(1, 8), options=None):
    tensors = [Tensor("x", shape, np.dtype(dt_in), q_in), Tensor("y", shape, np.dtype(dt_out), q_out)]
    return Model(tensors, [Operator(opcode, (0,), (1,), options or {})], (0,), (1,))


def _binary(opcode, q1, q2, qo, dts=(I16, I16, I16)):
    tensors = [Tensor("a", (1, 4), np.dtype(dts[0]), q1), Tensor("b", (1, 4), np.dtype(dts[1]), q2),
               Tensor("y", (1, 4), np.dtype(dts[2]), qo)]
    return Model(tensors, [Operator(opcode, (0, 1), (2,), {})], (0, 1), (2,))


REFUSED = [
    ("int16 zero point", lambda: _binary("ADD", QuantParams([0.01], [5]), q16(0.01), q16(0.02)), "zero point 5"),
    ("mixed int8 and int16", lambda: _binary("ADD", q16(0.01), QuantParams([0.01], [0]), q16(0.02), (I16, np.int8, I16)),
     "int16 path needs every activation in int16"),
    ("int16 MAXIMUM", lambda: _binary("MAXIMUM", q16(0.01), q16(0.01), q16(0.01)), "int16 is not supported"),
    ("int16 PRELU", lambda: _binary("PRELU", q16(0.01), q16(0.01), q16(0.01)), "int16 is not supported"),
    ("int16 HARD_SWISH", lambda: _unary("HARD_SWISH", I16, q16(0.01), I16, q16(0.01)), "float32 and int8 only"),
    ("RELU int8 -> int16", lambda: _unary("RELU", np.int8, QuantParams([0.01], [0]), I16, q16(0.01)), "must match"),
    ("SOFTMAX output scale", lambda: _unary("SOFTMAX", I16, q16(0.001), I16, q16(1 / 30000)), "1/32768"),
    ("SOFTMAX int8 -> int16 output zero point", lambda: _unary("SOFTMAX", np.int8, QuantParams([0.1], [0]), I16,
                                                               QuantParams([1 / 65536], [0])), "zero point -32768"),
    ("SOFTMAX input shift", lambda: _unary("SOFTMAX", I16, q16(8.0), I16, q16(1 / 32768)), "overflows int32"),
    ("SOFTMAX row length", lambda: _unary("SOFTMAX", I16, q16(1e-3), I16, q16(1 / 32768), (1, 65539)),
     "sum of exponentials"),
    ("LOGISTIC input scale", lambda: _unary("LOGISTIC", I16, q16(3.0), I16, q16(2.0**-15)), "32767"),
    ("TANH output scale", lambda: _unary("TANH", I16, q16(1e-3), I16, q16(2.0**-14)), "2\\*\\*-15"),
    ("AVERAGE_POOL_2D window", lambda: Model([Tensor("x", (1, 300, 300, 1), I16, q16(0.01)),
                                              Tensor("y", (1, 1, 1, 1), I16, q16(0.01))],
                                             [Operator("AVERAGE_POOL_2D", (0,), (1,), {
                                                 "padding": "VALID", "stride_h": 1, "stride_w": 1,
                                                 "filter_height": 300, "filter_width": 300})], (0,), (1,)),
     "at most 65535"),
]


@pytest.mark.parametrize("name, build, needle", REFUSED, ids=[r[0] for r in REFUSED])
def test_int16_refusals_are_one_line(name, build, needle):
    with pytest.raises(UnsupportedOperatorError, match=needle) as e:
        build()
    assert "\n" not in str(e.value)


def test_average_pool_int16_window_limit_is_tflm_int32_sum():
    """65535 values of -32768 and the rounding term still fit int32 (the limit is tight: one more would not)."""
    assert 65535 * 32768 + 65535 // 2 <= 2**31 - 1 < 65536 * 32768 + 65536 // 2


# ----------------------------------------------------------------------------- (3) TFLM
@pytest.mark.oracle
@pytest.mark.parametrize("s_in", [2.0**-12, 2.0**-11, 1e-5, 3.1e-4, 0.01, 2.5])
@pytest.mark.parametrize("op", ["LOGISTIC", "TANH"])
def test_logistic_tanh_int16_equal_tflm_on_every_input(op, s_in):
    model = _unary(op, I16, q16(s_in), I16, q16(2.0**-15), shape=(1, 65536))
    x = ALL_INT16.reshape(1, 65536)
    np.testing.assert_array_equal(model(x), tflm_outputs(write_tflite(model), [x])[0].reshape(1, 65536))


def _chain_16x8():
    """float32 -> QUANTIZE(int16) -> ADD(const) -> MUL -> LOGISTIC -> AVERAGE_POOL_2D -> SOFTMAX -> DEQUANTIZE."""
    f32 = np.dtype(np.float32)
    rng = np.random.default_rng(16)
    tensors = [
        Tensor("x", (1, 4, 4, 8), f32), Tensor("xq", (1, 4, 4, 8), I16, q16(2e-3)),
        Tensor("c", (8,), I16, q16(1e-3), rng.integers(-20000, 20000, 8).astype(np.int16)),
        Tensor("s", (1, 4, 4, 8), I16, q16(3e-3)), Tensor("m", (1, 4, 4, 8), I16, q16(4e-4)),
        Tensor("l", (1, 4, 4, 8), I16, q16(2.0**-15)), Tensor("p", (1, 2, 2, 8), I16, q16(2.0**-15)),
        Tensor("sm", (1, 2, 2, 8), I16, q16(1 / 32768)), Tensor("y", (1, 2, 2, 8), f32),
    ]
    ops = [Operator("QUANTIZE", (0,), (1,)), Operator("ADD", (1, 2), (3,), {"fused_activation_function": "NONE"}),
           Operator("MUL", (3, 1), (4,), {"fused_activation_function": "NONE"}), Operator("LOGISTIC", (4,), (5,)),
           Operator("AVERAGE_POOL_2D", (5,), (6,), {"padding": "VALID", "stride_h": 2, "stride_w": 2,
                                                    "filter_height": 2, "filter_width": 2,
                                                    "fused_activation_function": "NONE"}),
           Operator("SOFTMAX", (6,), (7,), {"beta": 1.0}), Operator("DEQUANTIZE", (7,), (8,))]
    return Model(tensors, ops, (0,), (8,))


@pytest.mark.oracle
def test_16x8_chain_round_trips_and_equals_tflm():
    """int16 tensors through the .tflite writer and reader; every intermediate equal to TFLM's."""
    from oracle import tflm_run

    data = write_tflite(_chain_16x8())
    model = read_tflite(data)
    assert [model.tensors[i].dtype for i in range(1, 8)] == [np.dtype(np.int16)] * 7
    x = np.random.default_rng(0).normal(0, 30, size=(8, 4, 4, 8)).astype(np.float32)
    computed = sorted({t for op in model.operators for t in op.outputs})
    _, want = tflm_run(data, [x], tensors=computed)
    y, acts = model(x, intermediates=True)
    for t in computed:
        got = acts[t].reshape(want[t].shape)
        raw = np.dtype(f"u{got.dtype.itemsize}")
        np.testing.assert_array_equal(got.view(raw), want[t].view(raw), err_msg=model.tensors[t].name)
    assert np.all(y >= 0) and np.allclose(y.sum(-1), 1.0, atol=0.01)


@pytest.mark.oracle
@pytest.mark.parametrize("opcode", sorted(CASES_INT16))
def test_int16_arena_equals_tflm(opcode):
    """The int16 paths request no scratch in TFLM's planned arena (SOFTMAX's tables are persistent)."""
    from oracle import tflm_allocations

    from tinyzo.memory import inference_schedule, plan_arena

    for seed in range(4):
        model = CASES_INT16[opcode](np.random.default_rng(seed))
        assert plan_arena(inference_schedule(model)).peak_bytes == tflm_allocations(write_tflite(model))["head"]



def _pot_add_s16(x1, x2, right_shift):
    """TFLite's power-of-two int16 ADD (``reference_ops::Add(..., pot_scale = true)``), input 1 shifted right."""
    shifted = (x1.astype(np.int64) >> right_shift) + (((x1.astype(np.int64) & ((1 << right_shift) - 1))
                                                       > (((1 << right_shift) - 1) >> 1) + (x1 < 0)).astype(np.int64))
    return np.clip(shifted + x2.astype(np.int64), -32768, 32767)


@pytest.mark.oracle
@pytest.mark.parametrize("pot_scale_int16", [True, False])
def test_int16_add_takes_the_general_path_whatever_pot_scale_int16(pot_scale_int16):
    """Power-of-two scales where TFLite's pot path and the general path round differently: TFLM takes the general one."""
    tensors = [Tensor("a", (1, 512), I16, q16(2.0**-15)), Tensor("b", (1, 512), I16, q16(2.0**-14)),
               Tensor("y", (1, 512), I16, q16(2.0**-14))]
    model = Model(tensors, [Operator("ADD", (0, 1), (2,), {"fused_activation_function": "NONE",
                                                            "pot_scale_int16": pot_scale_int16})], (0, 1), (2,))
    rng = np.random.default_rng(5)
    x1 = np.arange(-256, 256, dtype=np.int16).reshape(1, 512)
    x2 = rng.integers(-20000, 20000, (1, 512)).astype(np.int16)
    ours = model(x1, x2)
    np.testing.assert_array_equal(ours, tflm_outputs(write_tflite(model), [x1, x2])[0].reshape(1, 512))
    assert np.count_nonzero(ours != _pot_add_s16(x1, x2, 1)) > 0  # the pot path would differ on the odd negatives
