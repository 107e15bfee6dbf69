"""ADD, SUB, MUL, MAXIMUM, MINIMUM, PRELU: jitted kernels == pure-Python spec (hypothesis), ops == TFLite Micro.

Evidence layers: (1) property tests of each broadcasting kernel of :mod:`tinyzo.kernels.binary` against
:mod:`tinyzo.spec.binary`, with extreme scales (multipliers at their limits, power-of-two ratios that
make exact .5 ties), every zero point corner, every fused activation and both rounding modes, plus
every (x, y) int8 pair for a few parameter sets; (2) the real ``simple_add_model.tflite`` and
hand-picked single-op models run by the TFLM interpreter (random one-op models of every operator:
tests/test_ops_tflm.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from test_elementwise import (
    MODELS,
    PROP,
    ROUNDINGS,
    activations,
    assert_same_as_tflm,
    qp,
    rand_int8,
    scales,
    tflm_outputs,
    zero_points,
)

from tinyzo.errors import ArithmeticContractError, UnsupportedOperatorError
from tinyzo.graph import Model, Operator, Tensor
from tinyzo.kernels import binary as K
from tinyzo.kernels.conv_vnni import vnni_available
from tinyzo.ops.binary import add_params, broadcast_strides, fuse_broadcast_dims, mul_params, prelu_params
from tinyzo.quant import activation_range, rounding_code
from tinyzo.spec import binary as S

KERNELS = {"ADD": (K.add_s8, S.add_func), "SUB": (K.sub_s8, S.sub_func), "MUL": (K.mul_s8, S.mul_func),
           "MAXIMUM": (K.maximum_s8, S.maximum_func), "MINIMUM": (K.minimum_s8, S.minimum_func),
           "PRELU": (K.prelu_s8, S.prelu_func)}
PARAMS = {"ADD": add_params, "SUB": add_params, "MUL": mul_params, "PRELU": prelu_params}
FUSED = ("ADD", "SUB", "MUL")


# ----------------------------------------------------------------------------- strategies
@st.composite
def binary_case(draw, opcode):
    """A parameter dict (spec form, rounding as its code) for ``opcode``, from random scales and zero points."""
    rounding = draw(st.sampled_from(ROUNDINGS))
    p = {}
    if opcode in PARAMS:
        s1, s2, so = draw(scales), draw(scales), draw(scales)
        z1, z2, zo = draw(zero_points), draw(zero_points), draw(zero_points)
        try:
            p = PARAMS[opcode](s1, z1, s2, z2, so, zo, rounding)
        except ArithmeticContractError:
            assume(False)
    act_min, act_max = -128, 127
    if opcode in FUSED:
        act_min, act_max = activation_range(draw(activations), qp(so, zo))
        assume(act_min <= act_max)
    return dict(p, act_min=act_min, act_max=act_max, rounding=rounding_code(rounding))


@st.composite
def broadcast_shapes(draw):
    """(output shape, shape 1, shape 2): rank 1..6, each input a suffix of the output with some dims 1."""
    rank = draw(st.integers(1, 6))
    out = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    shapes = []
    for _ in range(2):
        r = draw(st.integers(0, rank))
        tail = out[rank - r :]
        shapes.append(tuple(d if draw(st.booleans()) else 1 for d in tail))
    return out, shapes[0], shapes[1]


def run_kernel(opcode, x1, x2, out_shape, p, fuse=False):
    """The jitted kernel of ``opcode`` on arrays broadcast to ``out_shape`` (dimensions fused as the ops do, or not)."""
    s1, s2, so = fuse_broadcast_dims(x1.shape, x2.shape, out_shape) if fuse else (x1.shape, x2.shape, out_shape)
    ext = (1,) * (6 - len(so)) + tuple(so)
    out = np.empty(ext, np.int8)
    KERNELS[opcode][0](x1.reshape(-1), broadcast_strides(s1, ext), x2.reshape(-1), broadcast_strides(s2, ext),
                       K.make_binary_params(**p), out)
    return out.reshape(out_shape)


# ----------------------------------------------------------------------------- (1) kernels == spec
def _check_kernel_equals_spec(opcode, p, shapes, seed):
    out_shape, sa, sb = shapes
    rng = np.random.default_rng(seed)
    x1, x2 = rand_int8(rng, sa), rand_int8(rng, sb)
    x1.reshape(-1)[0], x2.reshape(-1)[0] = -128, 127  # the int8 corners
    if x1.size > 1 and x2.size > 1:
        x1.reshape(-1)[1], x2.reshape(-1)[1] = 127, -128
    want = S.broadcast_binary_s8(KERNELS[opcode][1], x1, x2, out_shape, p)
    np.testing.assert_array_equal(run_kernel(opcode, x1, x2, out_shape, p), want)
    np.testing.assert_array_equal(run_kernel(opcode, x1, x2, out_shape, p, fuse=True), want)


@PROP
@given(p=binary_case("ADD"), shapes=broadcast_shapes(), seed=st.integers(0, 2**32 - 1))
def test_prop_add_kernel_equals_spec(p, shapes, seed):
    _check_kernel_equals_spec("ADD", p, shapes, seed)


@PROP
@given(p=binary_case("SUB"), shapes=broadcast_shapes(), seed=st.integers(0, 2**32 - 1))
def test_prop_sub_kernel_equals_spec(p, shapes, seed):
    _check_kernel_equals_spec("SUB", p, shapes, seed)


@PROP
@given(p=binary_case("MUL"), shapes=broadcast_shapes(), seed=st.integers(0, 2**32 - 1))
def test_prop_mul_kernel_equals_spec(p, shapes, seed):
    _check_kernel_equals_spec("MUL", p, shapes, seed)


@PROP
@given(opcode=st.sampled_from(["MAXIMUM", "MINIMUM"]), shapes=broadcast_shapes(), seed=st.integers(0, 2**32 - 1))
def test_prop_maximum_minimum_kernels_equal_spec(opcode, shapes, seed):
    _check_kernel_equals_spec(opcode, {"act_min": -128, "act_max": 127, "rounding": 0}, shapes, seed)


@PROP
@given(p=binary_case("PRELU"), shapes=broadcast_shapes(), seed=st.integers(0, 2**32 - 1))
def test_prop_prelu_kernel_equals_spec(p, shapes, seed):
    _check_kernel_equals_spec("PRELU", p, shapes, seed)


# every (x, y) pair for parameter sets at the edges: power-of-two scale ratios (exact .5 ties in every
# rounding step), a multiplier just below 1 / a large positive shift, zero points at the int8 corners
ALL_PAIRS = [
    ("ADD", (0.5, 0, 0.25, 0, 1.0, 0), "double"), ("ADD", (0.0039, -128, 0.5, 127, 0.007, -5), "single"),
    ("SUB", (0.5, 0, 0.25, 0, 1.0, 0), "double"), ("SUB", (0.0039, -128, 0.5, 127, 0.007, -5), "double"),
    ("SUB", (0.1, 3, 0.1, 3, 0.1 / 2**18, 0), "single"),
    ("MUL", (0.5, 0, 0.5, 0, 8.0, 0), "double"), ("MUL", (1.0, -128, 1.0, 127, 1 / 256, 0), "single"),
    ("MUL", (0.02, 5, 0.3, -7, 0.0061, 2), "double"),
    ("PRELU", (0.5, 0, 0.25, 0, 1.0, 0), "double"), ("PRELU", (0.05, -128, 0.004, 127, 0.02, 100), "single"),
]


@pytest.mark.parametrize("opcode, q, rounding", ALL_PAIRS)
def test_every_int8_pair_kernel_equals_spec(opcode, q, rounding):
    p = dict(PARAMS[opcode](*q, rounding), act_min=-128, act_max=127, rounding=rounding_code(rounding))
    x1 = np.arange(-128, 128, dtype=np.int8).reshape(256, 1)
    x2 = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    got = run_kernel(opcode, x1, x2, (256, 256), p)
    f = KERNELS[opcode][1]
    want = np.array([[f(a, b, p) for b in range(-128, 128)] for a in range(-128, 128)], np.int8)
    np.testing.assert_array_equal(got, want)


def test_spec_known_values():
    p = dict(add_params(0.5, 0, 0.5, 0, 1.0, 0), act_min=-128, act_max=127, rounding=0)
    assert S.add_func(3, 5, p) == 4 and S.add_func(127, 127, p) == 127 and S.add_func(-128, -128, p) == -128
    assert p["left_shift"] == 20 and p["input1_multiplier"] == 1 << 30 and p["input1_shift"] == 0
    p = dict(add_params(0.5, 0, 0.5, 0, 1.0, 0), act_min=-128, act_max=127, rounding=0)
    assert S.sub_func(3, 5, p) == -1 and S.sub_func(9, 2, p) == 4 and S.sub_func(-128, 127, p) == -128  # 3.5 -> 4
    p = dict(mul_params(0.5, 0, 0.25, 0, 1.0, 0), act_min=-128, act_max=127, rounding=0)
    assert S.mul_func(3, 4, p) == 2 and S.mul_func(3, 5, p) == 2 and S.mul_func(-3, 5, p) == -2  # 1.875, -1.875
    assert S.mul_func(127, 127, p) == 127 and S.mul_func(-128, 127, p) == -128
    p = dict(prelu_params(1.0, 0, 0.5, 0, 1.0, 0), act_min=-128, act_max=127, rounding=0)
    assert S.prelu_func(7, 1, p) == 7 and S.prelu_func(-7, 1, p) == -3 and S.prelu_func(-7, -1, p) == 4  # -3.5, 3.5
    assert S.maximum_func(-3, 2, p) == 2 and S.minimum_func(-3, 2, p) == -3


def test_fuse_broadcast_dims():
    assert fuse_broadcast_dims((2, 3, 4), (2, 3, 4), (2, 3, 4)) == ((24,), (24,), (24,))
    assert fuse_broadcast_dims((5, 3, 4), (1, 1, 1), (5, 3, 4)) == ((60,), (1,), (60,))
    assert fuse_broadcast_dims((5, 3, 4), (4,), (5, 3, 4)) == ((15, 4), (1, 4), (15, 4))
    assert fuse_broadcast_dims((5, 1, 4), (1, 3, 1), (5, 3, 4)) == ((5, 1, 4), (1, 3, 1), (5, 3, 4))
    assert fuse_broadcast_dims((1, 1), (1,), (1, 1)) == ((1,), (1,), (1,))
    assert fuse_broadcast_dims((2, 1, 3), (2, 1, 1), (2, 1, 3)) == ((2, 3), (2, 1), (2, 3))  # a size-1 output dim


def test_params_refuse_out_of_contract_scales():
    with pytest.raises(ArithmeticContractError):
        add_params(1.0, 0, 1.0, 0, 1.0 / 2**20, 0)


def test_make_binary_params_checks_names_and_range():
    with pytest.raises(KeyError):
        K.make_binary_params(input_offset=1)
    with pytest.raises(OverflowError):
        K.make_binary_params(output_multiplier=2**31)


# ----------------------------------------------------------------------------- op prepare/compute
def binary_model(opcode, sa, sb, so, q1, q2, qo, act=None, const_b=None, rounding="double"):
    """A one-operator model ``y = opcode(a, b)``; ``b`` constant when ``const_b`` is given."""
    tensors = [Tensor("a", sa, np.int8, qp(*q1)), Tensor("b", sb, np.int8, qp(*q2), data=const_b),
               Tensor("y", so, np.int8, qp(*qo))]
    inputs = (0,) if const_b is not None else (0, 1)
    opts = {"fused_activation_function": act} if act is not None else {}
    return Model(tensors, [Operator(opcode, (0, 1), (2,), opts)], inputs, (2,), name=opcode.lower(), rounding=rounding)


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("opcode", sorted(KERNELS))
def test_op_batch_and_constant_operand_equal_spec(opcode, rounding):
    rng = np.random.default_rng(3)
    const = rand_int8(rng, (1, 1, 4))
    q = ((0.1, 2), (0.07, -3), (0.15, 1)) if opcode not in ("MAXIMUM", "MINIMUM") else ((0.1, 2),) * 3
    m = binary_model(opcode, (1, 3, 4), (1, 1, 4), (1, 3, 4), *q, "RELU" if opcode in FUSED else None, const, rounding)
    x = rand_int8(rng, (5, 3, 4))
    y = m(x)
    prep = m.prepared[0]
    p = dict(prep.params, act_min=prep.act_min, act_max=prep.act_max, rounding=rounding_code(rounding))
    want = np.stack([S.broadcast_binary_s8(KERNELS[opcode][1], x[i : i + 1], const, (1, 3, 4), p)[0] for i in range(5)])
    np.testing.assert_array_equal(y, want)
    # both operands at run time, no broadcasting (the flat path)
    m2 = binary_model(opcode, (1, 3, 4), (1, 3, 4), (1, 3, 4), *q, None, None, rounding)
    x2 = rand_int8(rng, (5, 3, 4))
    want2 = S.broadcast_binary_s8(KERNELS[opcode][1], x, x2, (5, 3, 4), dict(p, act_min=-128, act_max=127))
    np.testing.assert_array_equal(m2(x, x2), want2)
    assert prep.macs() == 0  # element-wise operators count no multiply-accumulates (the papers' convention)


@pytest.mark.parametrize("opcode, q, rounding", ALL_PAIRS)
def test_operator_table_is_the_spec_on_every_pair(opcode, q, rounding):
    """The table a same-shape int8 operator looks its outputs up in (made by its kernel) is the spec's
    output for every (x1, x2) pair, with the fused activation."""
    (s1, z1, s2, z2, so, zo) = q
    act = "RELU6" if opcode in FUSED else None
    m = binary_model(opcode, (1, 4), (1, 4), (1, 4), (s1, z1), (s2, z2), (so, zo), act, None, rounding)
    prep = m.prepared[0]
    p = dict(prep.params, act_min=prep.act_min, act_max=prep.act_max, rounding=rounding_code(rounding))
    f = KERNELS[opcode][1]
    want = np.array([[f(a, b, p) for b in range(-128, 128)] for a in range(-128, 128)], np.int8)
    x1, x2 = K.binary_pairs_s8()
    np.testing.assert_array_equal(prep.table().reshape(256, 256), want)
    out = np.empty(x1.size, np.int8)
    K.lookup_s8(x1, x2, prep.table(), out)
    np.testing.assert_array_equal(out.reshape(256, 256), want)


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("opcode", sorted(KERNELS))
def test_large_same_shape_call_looks_up_the_kernels_outputs(opcode, rounding):
    """Once a same-shape int8 operator's calls add up to more than TABLE_MIN_ELEMENTS elements, its calls
    are table lookups, equal to the kernel's direct results; before that they compute directly (no table).
    ADD and SUB on an AVX-512 CPU compute in vector registers instead (no table ever; equal results)."""
    from tinyzo.ops.binary import TABLE_MIN_ELEMENTS

    rng = np.random.default_rng(5)
    q = ((0.1, 2), (0.07, -3), (0.15, 1)) if opcode not in ("MAXIMUM", "MINIMUM") else ((0.1, 2),) * 3
    act = "RELU" if opcode in FUSED else None
    m = binary_model(opcode, (1, 32, 32, 8), (1, 32, 32, 8), (1, 32, 32, 8), *q, act, None, rounding)
    prep = m.prepared[0]
    simd = prep._simd is not None
    assert simd == (opcode in ("ADD", "SUB") and vnni_available())
    p = dict(prep.params, act_min=prep.act_min, act_max=prep.act_max, rounding=rounding_code(rounding))
    x1, x2 = rand_int8(rng, (2, 32, 32, 8)), rand_int8(rng, (2, 32, 32, 8))
    assert x1.size <= TABLE_MIN_ELEMENTS
    np.testing.assert_array_equal(m(x1, x2), run_kernel(opcode, x1, x2, x1.shape, p))
    assert prep._table is None
    x1, x2 = rand_int8(rng, (9, 32, 32, 8)), rand_int8(rng, (9, 32, 32, 8))
    assert x1.size > TABLE_MIN_ELEMENTS
    # the operator itself (the model would split the batch over its threads into smaller calls)
    np.testing.assert_array_equal(prep.compute(x1, x2), run_kernel(opcode, x1, x2, x1.shape, p))
    assert (prep._table is not None) != simd
    # small calls of a fresh operator: direct until their elements add up, then looked up
    m = binary_model(opcode, (1, 32, 32, 8), (1, 32, 32, 8), (1, 32, 32, 8), *q, act, None, rounding)
    prep = m.prepared[0]
    calls = TABLE_MIN_ELEMENTS // (32 * 32 * 8)
    for i in range(calls + 1):
        x1, x2 = rand_int8(rng, (1, 32, 32, 8)), rand_int8(rng, (1, 32, 32, 8))
        np.testing.assert_array_equal(prep.compute(x1, x2), run_kernel(opcode, x1, x2, x1.shape, p))
        assert (prep._table is not None) == (i == calls and not simd)


def test_ops_refuse_bad_graphs():
    q = (0.1, 0)
    with pytest.raises(UnsupportedOperatorError, match="broadcast"):
        binary_model("MUL", (1, 3, 4), (1, 2, 4), (1, 3, 4), q, q, q)
    with pytest.raises(UnsupportedOperatorError, match="differs"):
        binary_model("SUB", (1, 3, 4), (1, 3, 4), (1, 3, 5), q, q, q)
    with pytest.raises(UnsupportedOperatorError, match="TANH"):
        binary_model("MUL", (1, 3), (1, 3), (1, 3), q, q, q, act="TANH")
    with pytest.raises(UnsupportedOperatorError, match="quantization"):
        binary_model("SUB", (1, 3), (1, 3), (1, 3), (1.0, 0), (1.0, 0), (1e-7, 0))
    with pytest.raises(UnsupportedOperatorError, match="raw int8"):
        binary_model("MAXIMUM", (1, 3), (1, 3), (1, 3), q, (0.2, 0), q)
    with pytest.raises(UnsupportedOperatorError, match="raw int8"):
        binary_model("MINIMUM", (1, 3), (1, 3), (1, 3), q, q, (0.1, 1))
    with pytest.raises(UnsupportedOperatorError, match="both inputs are constant|every input is a constant"):
        c = np.zeros((1, 3), np.int8)
        Model([Tensor("a", (1, 3), np.int8, qp(*q), data=c), Tensor("b", (1, 3), np.int8, qp(*q), data=c),
               Tensor("y", (1, 3), np.int8, qp(*q))], [Operator("PRELU", (0, 1), (2,))], (0,), (2,))
    with pytest.raises(UnsupportedOperatorError, match="rank 7"):
        binary_model("MUL", (1,) * 7, (1,) * 7, (1,) * 7, q, q, q)
    with pytest.raises(UnsupportedOperatorError, match="int8"):
        Model([Tensor("a", (1, 3), np.int8, qp(*q)),
               Tensor("b", (1, 3), np.int16, qp(*q), data=np.zeros((1, 3), np.int16)),
               Tensor("y", (1, 3), np.int8, qp(*q))], [Operator("MUL", (0, 1), (2,))], (0,), (2,))


# ----------------------------------------------------------------------------- (2) TFLM
def _read_simple_add():
    """The real ADD model's tensors, read with the TFLM package's own schema module (independent of tinyzo.io)."""
    schema = pytest.importorskip("tflite_micro.tensorflow.lite.micro.python.schema_py_generated")
    data = (MODELS / "simple_add_model.tflite").read_bytes()
    sg = schema.ModelT.InitFromPackedBuf(data, 0).subgraphs[0]
    tensors = [
        Tensor(t.name.decode(), tuple(t.shape), np.int8,
               qp(float(t.quantization.scale[0]), int(t.quantization.zeroPoint[0])))
        for t in sg.tensors
    ]
    op = sg.operators[0]
    add = Operator("ADD", tuple(op.inputs), tuple(op.outputs), {"fused_activation_function": "NONE"})
    return data, Model(tensors, [add], tuple(sg.inputs), tuple(sg.outputs))


@pytest.mark.oracle
def test_simple_add_model_equals_tflm():
    data, m = _read_simple_add()
    rng = np.random.default_rng(11)
    a, b = rand_int8(rng, (3, 128, 128, 1)), rand_int8(rng, (3, 128, 128, 1))
    a[0, :, :, 0] = np.arange(-128, 128).repeat(64).reshape(128, 128)
    b[0, :, :, 0] = np.tile(np.arange(-128, 128), 64).reshape(128, 128)  # every (a, b) pair once
    np.testing.assert_array_equal(m(a, b), tflm_outputs(data, [a, b])[0])


TFLM_CASES = [
    # (opcode, shape a, shape b, output, (s, z) a, (s, z) b, (s, z) out, activation, b constant)
    ("ADD", (1, 4, 5, 3), (1, 4, 5, 3), (1, 4, 5, 3), (0.1, 2), (0.07, -3), (0.15, 1), "NONE", False),
    ("ADD", (1, 4, 5, 3), (1, 4, 5, 3), (1, 4, 5, 3), (0.02, -128), (0.3, 127), (0.2, -20), "RELU", False),
    ("ADD", (1, 4, 5, 3), (1, 1, 1, 3), (1, 4, 5, 3), (0.05, 10), (0.05, 10), (0.1, 0), "RELU6", True),
    ("ADD", (1, 4, 5, 3), (1, 4, 1, 3), (1, 4, 5, 3), (1e-3, 0), (0.5, -7), (0.4, 3), "RELU_N1_TO_1", False),
    ("ADD", (1, 1, 5, 3), (1, 4, 1, 1), (1, 4, 5, 3), (0.25, 0), (0.125, 0), (0.0625, 0), "NONE", False),
    ("ADD", (1, 3, 4), (4,), (1, 3, 4), (0.03, -1), (0.09, 5), (0.05, -2), "NONE", True),
    ("ADD", (1, 2, 2, 3, 2), (1, 2, 1, 3, 1), (1, 2, 2, 3, 2), (0.1, 0), (0.2, 1), (0.3, 2), "RELU", False),
    ("ADD", (1, 6), (1, 6), (1, 6), (2.0, 0), (1e-4, 0), (2.5, -50), "NONE", False),
    ("SUB", (1, 4, 5, 3), (1, 4, 5, 3), (1, 4, 5, 3), (0.011, 2), (0.007, -3), (0.013, 1), "NONE", False),
    ("SUB", (1, 16, 16), (1, 16, 16), (1, 16, 16), (0.5, 0), (0.25, 0), (1.0, 0), "NONE", False),  # ties
    ("SUB", (1, 4, 5, 3), (1, 1, 1, 3), (1, 4, 5, 3), (0.05, -128), (0.3, 127), (0.1, 0), "RELU6", True),
    ("SUB", (1, 2, 2, 3, 2), (1, 2, 1, 3, 1), (1, 2, 2, 3, 2), (3e-3, 0), (0.7, 1), (1e-5, 2), "RELU", False),
    ("MUL", (1, 16, 16), (1, 16, 16), (1, 16, 16), (0.5, 0), (0.25, 0), (1.0, 0), "NONE", False),  # ties
    ("MUL", (1, 4, 5, 3), (1, 4, 1, 1), (1, 4, 5, 3), (0.02, -128), (0.3, 127), (1e-3, -20), "RELU", False),
    ("MUL", (1, 4, 5, 3), (3,), (1, 4, 5, 3), (1.0, 5), (2.0, -9), (1e-3, 0), "NONE", True),  # shift 11
    ("MUL", (1, 2, 2, 3, 2), (1, 1, 2, 1, 2), (1, 2, 2, 3, 2), (1e-3, 1), (1e-3, -1), (0.5, 3), "RELU_N1_TO_1", False),
    ("MAXIMUM", (1, 4, 5, 3), (1, 1, 5, 1), (1, 4, 5, 3), (0.1, 2), (0.1, 2), (0.1, 2), None, False),
    ("MINIMUM", (1, 4, 5, 3), (3,), (1, 4, 5, 3), (0.1, -7), (0.1, -7), (0.1, -7), None, True),
    ("PRELU", (1, 4, 5, 3), (1, 1, 3), (1, 4, 5, 3), (0.05, -10), (0.004, 3), (0.04, 20), None, True),
    ("PRELU", (1, 16, 16), (1, 16, 16), (1, 16, 16), (0.5, 0), (0.25, 0), (1.0, 0), None, False),  # ties
]


@pytest.mark.oracle
@pytest.mark.parametrize("case", range(len(TFLM_CASES)))
def test_binary_single_op_equals_tflm(case):
    opcode, sa, sb, so, q1, q2, qo, act, b_const = TFLM_CASES[case]
    rng = np.random.default_rng(100 + case)
    const = rand_int8(rng, sb) if b_const else None
    m = binary_model(opcode, sa, sb, so, q1, q2, qo, act, const)
    xs = [rand_int8(rng, (4,) + sa[1:])]
    if not b_const:
        xs.append(rand_int8(rng, (4,) + sb[1:]))
    if sa == sb == (1, 16, 16):  # every (a, b) pair once: sample k holds a = -128..127 and b = k - 128
        v = np.arange(-128, 128, dtype=np.int8)
        xs = [np.broadcast_to(v.reshape(1, 16, 16), (256, 16, 16)).copy(),
              np.broadcast_to(v.reshape(256, 1, 1), (256, 16, 16)).copy()]
    assert_same_as_tflm(m, xs)


def _float32_sub_params(s1, s2, so):
    """SUB's parameters as the tflite-micro source (sub_common.cc, Aug 2026) writes them: ratios in float32."""
    f1, f2, fo = np.float32(s1), np.float32(s2), np.float32(so)
    twice_max = np.float32(2) * max(f1, f2)
    real = [float(np.float32(f1 / twice_max)), float(np.float32(f2 / twice_max)),
            float(np.float32(twice_max / np.float32(np.float32(2**20) * fo)))]
    from tinyzo.quant import quantize_multiplier_smaller_than_one_exp as qm

    (m1, sh1), (m2, sh2), (mo, sho) = (qm(r) for r in real)
    return dict(add_params(s1, 0, s2, 0, so, 0), input1_multiplier=m1, input1_shift=sh1, input2_multiplier=m2,
                input2_shift=sh2, output_multiplier=mo, output_shift=sho)


@pytest.mark.oracle
@pytest.mark.parametrize("scales", [(0.002134046982973814, 0.004071220755577087, 4.213431020616554e-05),
                                    (0.04082406312227249, 0.02254844829440117, 0.1144743263721466)])
def test_sub_multipliers_in_double_as_the_tflm_oracle(scales):
    """Scales (found by search) where float32 prepare arithmetic (the source) and double (ADD's) give different
    SUB outputs: the installed TFLM agrees with double, which tinyzo uses, and would disagree with float32."""
    s1, s2, so = scales
    m = binary_model("SUB", (1, 16, 16), (1, 16, 16), (1, 16, 16), (s1, 0), (s2, 0), (so, 0), "NONE")
    v = np.arange(-128, 128, dtype=np.int8)
    xs = [np.broadcast_to(v.reshape(1, 16, 16), (256, 16, 16)).copy(),
          np.broadcast_to(v.reshape(256, 1, 1), (256, 16, 16)).copy()]  # every (a, b) pair once
    assert_same_as_tflm(m, xs)
    p = dict(_float32_sub_params(s1, s2, so), act_min=-128, act_max=127, rounding=0)
    float32 = run_kernel("SUB", xs[0], xs[1], (256, 16, 16), p)
    assert np.count_nonzero(float32 != m(*xs)) > 0


@pytest.mark.parametrize("opcode, act", [("SUB", "RELU6"), ("MUL", "RELU_N1_TO_1"), ("MAXIMUM", None),
                                         ("MINIMUM", None), ("PRELU", None)])
def test_tflite_and_npz_round_trip(opcode, act, tmp_path):
    """The writer and both readers keep the operator, its options and its outputs."""
    import tinyzo
    from tinyzo.io import read_tflite, write_tflite

    q = ((0.1, 2), (0.1, 2), (0.1, 2)) if opcode in ("MAXIMUM", "MINIMUM") else ((0.1, 2), (0.03, -3), (0.2, 1))
    m = binary_model(opcode, (1, 3, 4), (1, 1, 4), (1, 3, 4), *q, act)
    rng = np.random.default_rng(9)
    xs = [rand_int8(rng, (3, 3, 4)), rand_int8(rng, (3, 1, 4))]
    tinyzo.save(m, tmp_path / "m.npz")
    for back in (read_tflite(write_tflite(m)), tinyzo.load(tmp_path / "m.npz")):
        assert back.operators[0].opcode == opcode
        assert back.operators[0].options.get("fused_activation_function", None) == act
        np.testing.assert_array_equal(back(*xs), m(*xs))


@pytest.mark.oracle
def test_fused_relu6_bound_overflowing_int32_is_refused_like_tflm():
    """6 / output scale beyond int32: TFLite's CalculateActivationRangeQuantized fails prepare; tinyzo refuses too."""
    q = (1e-4, 0)
    ok = binary_model("SUB", (1, 4), (1, 4), (1, 4), q, q, (3e-9, 0), "RELU6")  # 6 / 3e-9 = 2e9 < 2**31
    assert_same_as_tflm(ok, [rand_int8(np.random.default_rng(0), (2, 4))] * 2)
    with pytest.raises(UnsupportedOperatorError, match="RELU6.*overflows int32"):
        binary_model("SUB", (1, 4), (1, 4), (1, 4), q, q, (2e-9, 0), "RELU6")
    tensors = [Tensor("a", (1, 4), np.int8, qp(*q)), Tensor("b", (1, 4), np.int8, qp(*q)),
               Tensor("y", (1, 4), np.int8, qp(2e-9, 0))]
    op = Operator("SUB", (0, 1), (2,), {"fused_activation_function": "RELU6"})
    from tinyzo.io import write_tflite_parts

    with pytest.raises(RuntimeError, match="allocate"):
        tflm_outputs(write_tflite_parts(tensors, [op], (0, 1), (2,)), [np.zeros((1, 4), np.int8)] * 2)


@pytest.mark.parametrize("kind", ["simd", "lut"])
@pytest.mark.parametrize("rounding", ROUNDINGS)
def test_vector_add_sub_equal_the_kernel_on_every_input_pair(kind, rounding):
    """The 16-lane ADD/SUB (binary_simd.add_sub_s8_simd) and the 64-lane table-lookup one
    (add_sub_s8_lut, vpermi2b) equal the scalar kernels on all 65,536 input pairs, for random scales, zero
    points and clamps; lengths that leave partial last blocks (the lookup's tail goes to the 16-lane
    kernel and its buffer)."""
    from tinyzo.kernels.binary_simd import add_sub_s8_lut, add_sub_s8_simd, simd_params, simd_tables, vbmi_available
    from tinyzo.ops.binary import MAX_BROADCAST_RANK

    if not (vbmi_available() if kind == "lut" else vnni_available()):
        pytest.skip(f"this CPU lacks the AVX-512 extension the {kind} kernel needs (it is not offered)")
    rng = np.random.default_rng(11)
    x1, x2 = K.binary_pairs_s8()
    tried = 0
    while tried < 12:
        s1, s2, so = rng.uniform(0.001, 0.5), rng.uniform(0.001, 0.5), rng.uniform(0.002, 1.0)
        z1, z2, zo = (int(v) for v in rng.integers(-128, 128, 3))
        try:
            fields = add_params(s1, z1, s2, z2, so, zo, rounding)
        except ArithmeticContractError:
            continue
        lo, hi = [(-128, 127), (max(-128, zo), 127), (max(-128, zo), min(127, zo + 40))][tried % 3]
        p = K.make_binary_params(**fields, act_min=lo, act_max=hi, rounding=rounding_code(rounding))
        prm = simd_params(p)
        tables = simd_tables(p) if kind == "lut" else None
        cut = x1.size - [0, 7, 64 + 23][tried % 3]
        a, b = x1[:cut], x2[:cut]
        ext = (1,) * (MAX_BROADCAST_RANK - 1) + (a.size,)
        st = broadcast_strides(ext, ext)
        for sub, kernel in ((0, K.add_s8), (1, K.sub_s8)):
            want = np.empty(a.size, np.int8)
            kernel(a, st, b, st, p, want.reshape(ext))
            got = np.empty(a.size, np.int8)
            if kind == "lut":
                add_sub_s8_lut(a, b, prm, tables, sub, got)
            else:
                add_sub_s8_simd(a, b, prm, sub, got)
            np.testing.assert_array_equal(got, want)
        tried += 1
