"""SVDF and model state without the oracle: kernel == spec (hypothesis), state semantics, refusals, files.

(1) :func:`tinyzo.kernels.svdf.svdf_s8` over several streams and several invocations equals
:func:`tinyzo.spec.svdf.svdf_step` applied stream by stream (int8 and int16 state, wrapping state
values, int32 wrap-around of the time dot products, both rounding modes); the spec itself is
checked against a direct numpy transcription on non-wrapping values. (2) The model's state: carried
from call to call, one state per stream of a batch, ``reset_state``, TFLM's initial values, a
failing call commits nothing, ``forward_from`` refused. (3) What is refused, one line each. (4) The
``is_variable`` flag survives .tflite and .npz files. TFLM comparisons: tests/test_svdf_tflm.py.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinyzo.errors import InputError, TinyzoError, UnsupportedModelError, UnsupportedOperatorError
from tinyzo.graph import Model, Operator, Tensor, initial_state
from tinyzo.kernels.svdf import SvdfParams, svdf_s8
from tinyzo.quant import QuantParams
from tinyzo.spec import svdf as S

NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
PROP = settings(max_examples=15 if NO_JIT else 150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def qp(scale, zp=0):
    return QuantParams([np.float32(scale)], [zp])


def svdf_model(n_input=5, n_unit=3, rank=2, n_memory=4, state_t=np.int8, *, q_state=(0.05, -20), wt=None, wf=None,
               bias="auto", state_data=None, variable=True, x_t=np.int8, q_out=(0.1, 3), per_channel=False,
               options=None, seed=0):
    """A one-SVDF model; keyword arguments bend one property at a time for the refusal tests."""
    rng = np.random.default_rng(seed)
    n_filter = n_unit * rank
    s_wt = 0.01 if np.dtype(state_t) == np.int8 else 1e-4
    wf = rng.integers(-127, 128, size=(n_filter, n_input)).astype(np.int8) if wf is None else wf
    if wt is None:
        hi = 128 if np.dtype(state_t) == np.int8 else 20000
        wt = rng.integers(-hi + 1, hi, size=(n_filter, n_memory)).astype(state_t)
    s_state = np.float32(q_state[0])
    wf_q = QuantParams(np.full(n_filter, 0.01, np.float32), np.zeros(n_filter), 0) if per_channel else qp(0.01)
    tensors = [
        Tensor("x", (1, n_input), x_t, qp(0.1, 1) if x_t != np.float32 else None),
        Tensor("wf", (n_filter, n_input), wf.dtype, wf_q, wf),
        Tensor("wt", wt.shape, wt.dtype, qp(s_wt), wt),
        Tensor("b", (n_unit,), np.int32, qp(np.float32(s_state) * np.float32(s_wt)),
               rng.integers(-5000, 5000, size=n_unit).astype(np.int32)) if bias == "auto" else bias,
        Tensor("state", (1, n_filter * n_memory), np.dtype(state_t), qp(*q_state), state_data, variable),
        Tensor("y", (1, n_unit), np.int8, qp(*q_out)),
    ]
    inputs = (0, 1, 2, 3 if tensors[3] is not None else -1, 4)
    if tensors[3] is None:
        tensors[3] = Tensor("unused", (1,), np.int32)
    opts = {"rank": rank, "fused_activation_function": "RELU"} if options is None else options
    return Model(tensors, [Operator("SVDF", inputs, (5,), opts)], (0,), (5,))


def spec_run(prep, xs, state):
    """The spec over ``xs`` [T, N, I] from ``state`` [N, F*M]: outputs [T, N, U] and the final state."""
    p = prep.params
    state = state.copy()
    ys = np.zeros((xs.shape[0], xs.shape[1], prep.n_unit), np.int8)
    for t in range(xs.shape[0]):
        for b in range(xs.shape[1]):
            ys[t, b], state[b] = S.svdf_step(
                xs[t, b], prep.weights_feature, prep.weights_time, prep.bias, state[b], rank=p.rank,
                input_zero_point=p.input_zero_point, state_zero_point=p.state_zero_point,
                output_zero_point=p.output_zero_point, multiplier_1=p.multiplier_1, shift_1=p.shift_1,
                multiplier_2=p.multiplier_2, shift_2=p.shift_2, rounding="double" if p.rounding == 0 else "single")
    return ys, state


# ----------------------------------------------------------------------------- (1) kernel == spec
@st.composite
def kernel_case(draw):
    state_t = draw(st.sampled_from([np.int8, np.int16]))
    info = np.iinfo(state_t)
    rank = draw(st.integers(1, 3))
    n_filter = rank * draw(st.integers(1, 4))
    n_input, n_memory = draw(st.integers(1, 12)), draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    wf = rng.integers(-128, 128, size=(n_filter, n_input)).astype(np.int8)
    wt = rng.integers(info.min, int(info.max) + 1, size=(n_filter, n_memory)).astype(state_t)
    bias = rng.integers(-(2**31), 2**31, size=n_filter // rank, dtype=np.int64).astype(np.int32)
    if draw(st.booleans()):
        bias //= 1 << 16
    p = SvdfParams(
        rank=rank, input_zero_point=draw(st.integers(-128, 127)),
        state_zero_point=draw(st.sampled_from([int(info.min), int(info.max), 0]) | st.integers(int(info.min), int(info.max))),
        output_zero_point=draw(st.integers(-128, 127)),
        multiplier_1=draw(st.integers(1 << 30, (1 << 31) - 1)), shift_1=draw(st.integers(-20, 8)),
        multiplier_2=draw(st.integers(1 << 30, (1 << 31) - 1)), shift_2=draw(st.integers(-31, 4)),
        state_min=int(info.min), state_max=int(info.max), rounding=draw(st.integers(0, 1)),
    )
    n, steps = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    xs = rng.integers(-128, 128, size=(steps, n, n_input)).astype(np.int8)
    state = rng.integers(info.min, int(info.max) + 1, size=(n, n_filter * n_memory)).astype(state_t)
    return wf, wt, bias, p, xs, state


@PROP
@given(kernel_case())
def test_prop_kernel_equals_spec_over_streams_and_steps(case):
    wf, wt, bias, p, xs, state = case

    class Prep:  # what spec_run reads
        pass

    prep = Prep()
    prep.params, prep.weights_feature, prep.weights_time, prep.bias = p, wf, wt, bias
    prep.n_unit = wt.shape[0] // p.rank
    want_y, want_state = spec_run(prep, xs, state)
    got_state = state.copy()
    scratch = np.empty(wt.shape[0], np.int32)
    for t in range(xs.shape[0]):
        out = np.empty((xs.shape[1], prep.n_unit), np.int8)
        svdf_s8(xs[t], wf, wt, bias, got_state, p, scratch, out)
        np.testing.assert_array_equal(out, want_y[t])
    np.testing.assert_array_equal(got_state, want_state)


def test_spec_equals_numpy_transcription():
    """The spec's five steps written with numpy (the requantization is the property-tested primitive)."""
    from tinyzo.spec.arith import multiply_by_quantized_multiplier

    mbqm = np.vectorize(lambda v, m, s: multiply_by_quantized_multiplier(int(v), m, s), otypes=[np.int64])
    rng = np.random.default_rng(3)
    n_filter, n_input, n_memory, rank = 6, 7, 5, 2
    wf = rng.integers(-128, 128, size=(n_filter, n_input)).astype(np.int8)
    wt = rng.integers(-300, 300, size=(n_filter, n_memory)).astype(np.int16)
    bias = rng.integers(-1000, 1000, size=3).astype(np.int32)
    state = rng.integers(-3000, 3000, size=n_filter * n_memory).astype(np.int16)
    x = rng.integers(-128, 128, size=n_input).astype(np.int8)
    zx, zs, zo, (m1, s1), (m2, s2) = 5, 7, -4, (1518500250, -2), (1318500250, -9)
    y, new = S.svdf_step(x, wf, wt, bias, state, rank=rank, input_zero_point=zx, state_zero_point=zs,
                         output_zero_point=zo, multiplier_1=m1, shift_1=s1, multiplier_2=m2, shift_2=s2)
    acc = wf.astype(np.int64) @ (x.astype(np.int64) - zx)
    rows = np.concatenate([state[1:], state[-1:]]).reshape(n_filter, n_memory).astype(np.int64)
    rows[:, -1] = np.clip(mbqm(acc, m1, s1), -32768, 32767) + zs
    assert np.all(np.abs(rows) < 32768)  # no wrap on these values
    np.testing.assert_array_equal(new.reshape(n_filter, n_memory), rows)
    t = np.sum(wt.astype(np.int64) * (rows - zs), axis=1)
    o = bias.astype(np.int64) + t.reshape(3, rank).sum(axis=1)
    assert np.all(np.abs(o) < 2**31)
    np.testing.assert_array_equal(y, np.clip(mbqm(o, m2, s2) + zo, -128, 127))


def test_state_value_wraps_like_c():
    """The new state value is clamped to T, then the zero point is added and the sum wraps to T."""
    wf = np.full((1, 1), 127, np.int8)
    wt = np.ones((1, 2), np.int8)
    x = np.array([127], np.int8)
    _, new = S.svdf_step(x, wf, wt, None, np.zeros(2, np.int8), rank=1, input_zero_point=-128, state_zero_point=-50,
                         output_zero_point=0, multiplier_1=1 << 30, shift_1=1, multiplier_2=1 << 30, shift_2=0)
    assert int(new[-1]) == (127 - 50)  # clamped to 127 first, then + (-50): 77, in range
    _, new = S.svdf_step(x, wf, wt, None, np.zeros(2, np.int8), rank=1, input_zero_point=-128, state_zero_point=100,
                         output_zero_point=0, multiplier_1=1 << 30, shift_1=1, multiplier_2=1 << 30, shift_2=0)
    assert int(new[-1]) == 127 + 100 - 256  # 227 wraps to -29


# ----------------------------------------------------------------------------- (2) state semantics
def test_calls_carry_state_and_reset_starts_over():
    m = svdf_model(n_memory=3)
    rng = np.random.default_rng(1)
    xs = rng.integers(-128, 128, size=(6, 1, 5)).astype(np.int8)
    first = [m(x) for x in xs]
    ys, state = spec_run(m.prepared[0], xs, np.repeat(initial_state(m.tensors[4]), 1, axis=0))
    np.testing.assert_array_equal(np.stack(first), ys)
    np.testing.assert_array_equal(m.state[4], state)
    assert not all(np.array_equal(first[0], y) for y in first[1:])  # the state changes the output
    m.reset_state()
    np.testing.assert_array_equal(m.state[4], initial_state(m.tensors[4]))
    np.testing.assert_array_equal(np.stack([m(x) for x in xs]), np.stack(first))


def test_batch_is_independent_streams():
    """Sample i of a batch advances state i only: a batch of 4 equals 4 single-stream sequences."""
    m = svdf_model(state_t=np.int16, q_state=(0.002, 3))
    xs = np.random.default_rng(2).integers(-128, 128, size=(5, 4, 5)).astype(np.int8)
    batch = np.stack([m(x) for x in xs])
    states = m.state[4]
    for i in range(4):
        m.reset_state()
        np.testing.assert_array_equal(np.stack([m(x[i:i + 1]) for x in xs])[:, 0], batch[:, i])
        np.testing.assert_array_equal(m.state[4][0], states[i])


def test_chunks_and_threads_do_not_change_the_streams():
    from tinyzo import runtime

    m = svdf_model()
    xs = np.random.default_rng(4).integers(-128, 128, size=(3, 7, 5)).astype(np.int8)
    want = np.stack([m(x) for x in xs])
    m.reset_state()
    m.chunk_size = 2
    old = runtime.get_num_threads()
    runtime.set_num_threads(2)
    try:
        got = np.stack([m(x) for x in xs])
    finally:
        runtime.set_num_threads(old)
    np.testing.assert_array_equal(got, want)


def test_batch_size_change_refused_until_reset():
    m = svdf_model()
    m(np.zeros((3, 5), np.int8))
    with pytest.raises(InputError, match="state of 3 stream"):
        m(np.zeros((2, 5), np.int8))
    m.reset_state()
    assert m(np.zeros((2, 5), np.int8)).shape == (2, 3)


def test_initial_state_is_tflm_memset():
    """int8: every element the zero point (a stored buffer is ignored); int16: 0 whatever the zero point."""
    data = np.arange(24, dtype=np.int8).reshape(1, 24)
    m = svdf_model(state_data=data, q_state=(0.05, -50))
    assert not m.tensors[4].is_constant
    np.testing.assert_array_equal(m.state[4], np.full((1, 24), -50, np.int8))
    m16 = svdf_model(state_t=np.int16, q_state=(0.001, 77))
    np.testing.assert_array_equal(m16.state[4], np.zeros((1, 24), np.int16))
    t = Tensor("s", (1, 4), np.int8, QuantParams([np.float32(1.0)], [200]), None, True)  # memset takes the low byte
    np.testing.assert_array_equal(initial_state(t), np.full((1, 4), -56, np.int8))


def test_intermediates_are_snapshots_and_failures_commit_nothing():
    m = svdf_model()
    x = np.ones((1, 5), np.int8)
    _, env = m(x, intermediates=True)
    env[4][:] = 99  # changing the returned state does not change the model's
    assert not np.array_equal(m.state[4], env[4])
    before = m.state[4]
    prep = m.prepared[0]

    def boom(*a):
        raise RuntimeError("injected")

    prep.compute, saved = boom, prep.compute
    with pytest.raises(RuntimeError):
        m(x)
    prep.compute = saved
    np.testing.assert_array_equal(m.state[4], before)


def test_forward_from_refuses_stateful_operators():
    m = svdf_model()
    _, env = m(np.ones((1, 5), np.int8), intermediates=True)
    with pytest.raises(InputError, match="variable tensors"):
        m.forward_from(env, 0)


def test_stateless_model_has_no_state():
    t = [Tensor("x", (1, 4), np.int8, qp(0.1)), Tensor("y", (1, 4), np.int8, qp(0.1))]
    m = Model(t, [Operator("RELU", (0,), (1,))], (0,), (1,))
    assert m.variables == () and m.state == {}
    m.reset_state()


# ----------------------------------------------------------------------------- (3) refusals
@pytest.mark.parametrize("kwargs, match", [
    (dict(wf=np.ones((6, 5), np.float32)), "float and hybrid SVDF"),
    (dict(bias=None), "bias .* missing"),
    (dict(variable=False, state_data=np.zeros((1, 24), np.int8)), "not a variable tensor"),
    (dict(wt=np.ones((6, 4), np.int16)), "must match"),
    (dict(per_channel=True), "per tensor"),
    (dict(options={"rank": 4}), "does not divide"),
    (dict(options={"rank": 0}), "rank"),
    (dict(q_state=(0.05, 300)), "zero point 300"),
    (dict(bias=Tensor("b", (3,), np.int32, qp(0.5), np.zeros(3, np.int32))), "1e-5"),
    (dict(bias=Tensor("b", (3,), np.int8, qp(0.0005), np.zeros(3, np.int8))), "int32"),
])
def test_refusals(kwargs, match):
    with pytest.raises(TinyzoError, match=match) as e:
        svdf_model(**kwargs)
    assert "\n" not in str(e.value)


def test_float_svdf_file_refused():
    from tinyzo.io import read_tflite, write_tflite_parts

    m = svdf_model()
    tensors = [Tensor(t.name, t.shape, np.float32 if k in (0, 4, 5) else t.dtype, None if k in (0, 4, 5) else t.quant,
                      t.data, t.is_variable) for k, t in enumerate(m.tensors)]
    data = write_tflite_parts(tensors, m.operators, m.inputs, m.outputs)
    with pytest.raises(UnsupportedModelError, match="float32 model"):
        read_tflite(data)


def test_variable_tensor_graph_checks():
    m = svdf_model()
    t = list(m.tensors)
    with pytest.raises(UnsupportedModelError, match="variable tensor"):
        Model(t, m.operators, (0, 4), m.outputs)  # state as a model input
    bad = list(t)
    bad[4] = Tensor("state", (2, 24), np.int8, qp(0.05, -20), None, True)
    with pytest.raises(UnsupportedModelError, match="dimension 0 is the batch"):
        Model(bad, m.operators, m.inputs, m.outputs)
    writer = Operator("RELU", (0,), (4,))
    with pytest.raises(UnsupportedModelError, match="variable tensor"):
        Model(t, [writer] + m.operators, m.inputs, m.outputs)


# ----------------------------------------------------------------------------- (4) files
def test_is_variable_survives_tflite_and_npz(tmp_path):
    from tinyzo.io import load, read_tflite_parts, save, write_tflite

    m = svdf_model(state_data=np.arange(24, dtype=np.int8).reshape(1, 24))
    tensors = read_tflite_parts(write_tflite(m))[0]
    assert [t.is_variable for t in tensors] == [False] * 4 + [True, False]
    np.testing.assert_array_equal(tensors[4].data, m.tensors[4].data)
    xs = np.random.default_rng(5).integers(-128, 128, size=(4, 2, 5)).astype(np.int8)
    want = [m(x) for x in xs]
    for name in ("m.tflite", "m.npz"):
        save(m, tmp_path / name)
        m2 = load(tmp_path / name)
        assert m2.variables == (4,)
        np.testing.assert_array_equal(np.stack([m2(x) for x in xs]), np.stack(want))


def test_npz_variable_flag_must_be_bool(tmp_path):
    import json
    import zipfile

    from tinyzo.errors import ModelFormatError
    from tinyzo.io import load, save

    save(svdf_model(), tmp_path / "m.npz")
    with zipfile.ZipFile(tmp_path / "m.npz") as z:
        members = {n: z.read(n) for n in z.namelist()}
    import io as _io

    g = json.loads(np.load(_io.BytesIO(members["graph.npy"])).tobytes())
    g["tensors"][4]["variable"] = "yes"
    buf = _io.BytesIO()
    np.save(buf, np.frombuffer(json.dumps(g).encode(), np.uint8))
    members["graph.npy"] = buf.getvalue()
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    with pytest.raises(ModelFormatError, match="'variable' must be true or false"):
        load(tmp_path / "bad.npz")


def test_unsupported_operator_message_names_svdf_types():
    with pytest.raises(UnsupportedOperatorError, match=r"operator 0 \(SVDF\)"):
        svdf_model(wt=np.ones((6, 4), np.int32))
