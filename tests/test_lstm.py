"""UNIDIRECTIONAL_SEQUENCE_LSTM (int8 8x8->16): int16 sigmoid/tanh, op == spec, TFLM, state, refusals.

(1) the int16 table-interpolating sigmoid and tanh: jitted == spec on every int16 input, and ==
TFLM's int16 LOGISTIC/TANH operators on every int16 input for the scales the LSTM uses; (2) random
small LSTMs with extreme parameters (any zero points, cell scales 2**-30..2**0, clips, single
rounding) through the op against :func:`tinyzo.spec.lstm.lstm_s8`; (3) frozen models on which the
fully connected multiplier's product in double (the oracle) and in float32 (the source read) give
different outputs; (4) state: carrying the states across calls equals TFLM without ``reset()``;
(5) what is refused. The random TFLM sweep is in tests/test_ops_tflm.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinyzo
from tinyzo.errors import UnsupportedModelError, UnsupportedOperatorError
from tinyzo.graph import Model, Operator, Tensor
from tinyzo.io import read_tflite, write_tflite, write_tflite_parts
from tinyzo.kernels.lstm import activation_int16
from tinyzo.quant import QuantParams
from tinyzo.spec import lstm as S

NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
PROP = settings(max_examples=10 if NO_JIT else 60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DATA = Path(__file__).parent / "data" / "lstm"
ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
CELL_POWERS = [-30, -20, -16, -15, -14, -13, -12, -11, -10, -8, -4, 0]


def qp(scale, zp=0):
    return QuantParams([np.float32(scale)], [zp])


# ----------------------------------------------------------------------------- (1) int16 sigmoid / tanh
@pytest.mark.parametrize("kind, params", [("logistic", (0, 0))] + [("tanh", S.lstm_tanh_params(p)) for p in
                                                                    (CELL_POWERS[:4] if NO_JIT else CELL_POWERS)])
def test_int16_activation_jit_equals_spec_every_input(kind, params):
    spec = S.logistic_int16 if kind == "logistic" else S.tanh_int16
    xs = ALL_INT16 if not NO_JIT else ALL_INT16[::61]
    got = np.empty_like(xs)
    activation_int16(xs, 0 if kind == "logistic" else 1, params[0], params[1], got)
    want = np.array([spec(int(v), *params) for v in xs], dtype=np.int16)
    np.testing.assert_array_equal(got, want)


def test_int16_activation_hand_computed():
    assert S.logistic_int16(0) == 16384  # sigmoid(0) = 0.5 in Q0.15
    assert S.tanh_int16(0) == 0
    # Q3.12 input x is the real x / 4096: the table's interpolation lands on the nearest Q0.15 value of
    # 2**15 * sigmoid(8) = 32757.009, 2**15 * (1 - sigmoid(8)) = 10.989, 2**15 * sigmoid(1) = 23955.3
    assert S.logistic_int16(32767) == 32757 and S.logistic_int16(-32768) == 11
    assert S.logistic_int16(4096) == 23956  # one above the nearest value: the table's own rounding
    assert S.tanh_int16(4096) == 24956 and S.tanh_int16(-4096) == -24956  # 2**15 * tanh(1) = 24955.9
    assert S.tanh_int16(32767) == 32767 and S.tanh_int16(-32768) == -32767  # saturated branch
    assert S.lstm_tanh_params(-12) == (0, 0) and S.lstm_tanh_params(-15) == (3, 3) and S.lstm_tanh_params(-9) == (0, 3)


def _tflm_int16_activation(opcode: str, input_scale: float) -> np.ndarray:
    """TFLM's int16 LOGISTIC/TANH on every int16 value (input zero point 0, output scale 2**-15)."""
    from oracle import tflm_run

    tensors = [Tensor("x", (1, 65536), np.int16, qp(input_scale)), Tensor("y", (1, 65536), np.int16, qp(2.0**-15))]
    data = write_tflite_parts(tensors, [Operator(opcode, (0,), (1,))], (0,), (1,))
    outs, _ = tflm_run(data, [ALL_INT16.reshape(1, -1)])
    return outs[0].reshape(-1)


@pytest.mark.oracle
@pytest.mark.parametrize("power", [-15, -14, -13, -12, -11, -10, -9, -8])
def test_int16_activations_equal_tflm_every_input(power):
    """The LSTM's sigmoid (Q3.12 input) and its cell tanh for a cell scale 2**p == TFLM's int16 LOGISTIC/TANH.

    TFLM's TANH prepares its own rescaling for an input scale 2**p (a power-of-two shift for p = -12, -11,
    else a multiplier in [2**14, 2**15) and a shift); for these scales it is the same function as the
    LSTM's ``(3 x + round) >> shift`` / ``(3 << shift) x``, which this test confirms on every input.
    """
    every = 37 if NO_JIT else 1  # interpreted kernels: every 37th input
    got = np.empty_like(ALL_INT16[::every])
    activation_int16(ALL_INT16[::every], 1, *S.lstm_tanh_params(power), got)
    np.testing.assert_array_equal(got, _tflm_int16_activation("TANH", 2.0**power)[::every])
    if power == -12:
        activation_int16(ALL_INT16[::every], 0, 0, 0, got)
        np.testing.assert_array_equal(got, _tflm_int16_activation("LOGISTIC", 2.0**-12)[::every])


# ----------------------------------------------------------------------------- (2) op == spec
def lstm_model(rng, *, s_dim, i_dim, t_steps=1, b_dim=1, time_major=False, z_x=0, z_h=0, s_x=0.05, s_h=0.01,
               cell_power=-12, cell_clip=0.0, w_scale=0.02, bias_range=20000, rounding="double", **overrides):
    """A one-operator integer LSTM model with random int8 weights (``overrides`` replace tensors by input index)."""
    tensors = [Tensor("x", (1, b_dim, i_dim) if time_major else (1, t_steps, i_dim), np.int8, qp(s_x, z_x))]
    inputs = [0] + [-1] * 23
    for k in range(1, 9):
        cols = i_dim if k <= 4 else s_dim
        inputs[k] = len(tensors)
        s_w = float(w_scale) * float(np.exp(rng.uniform(-1, 1)))
        tensors.append(Tensor(f"w{k}", (s_dim, cols), np.int8, qp(s_w), rng.integers(-127, 128, size=(s_dim, cols))
                              .astype(np.int8)))
    for k in range(12, 16):
        inputs[k] = len(tensors)
        tensors.append(Tensor(f"b{k}", (s_dim,), np.int32, qp(s_x * w_scale),
                              rng.integers(-bias_range, bias_range + 1, size=s_dim).astype(np.int32)))
    inputs[18] = len(tensors)
    tensors.append(Tensor("h", (b_dim, s_dim), np.int8, qp(s_h, z_h), is_variable=True))
    inputs[19] = len(tensors)
    tensors.append(Tensor("c", (b_dim, s_dim), np.int16, qp(2.0**cell_power), is_variable=True))
    for k, t in overrides.items():
        idx = int(k[1:])
        if t is None:
            inputs[idx] = -1
        else:
            inputs[idx] = len(tensors)
            tensors.append(t)
    y = len(tensors)
    tensors.append(Tensor("y", (1, b_dim, s_dim) if time_major else (1, t_steps, s_dim), np.int8, qp(s_h, z_h)))
    opts = {"fused_activation_function": "TANH", "cell_clip": cell_clip, "time_major": time_major}
    return Model(tensors, [Operator("UNIDIRECTIONAL_SEQUENCE_LSTM", tuple(inputs), (y,), opts)], (0,), (y,),
                 rounding=rounding)


def spec_of(model, x):
    """The spec on each sample of ``x`` (from the reset state)."""
    op, prep = model.operators[0], model.prepared[0]
    p = prep.params[0]
    w_in = [model.tensors[op.inputs[k]].data for k in (2, 1, 3, 4)]
    w_rec = [model.tensors[op.inputs[k]].data for k in (6, 5, 7, 8)]
    bias = [model.tensors[op.inputs[k]].data for k in (13, 12, 14, 15)]
    pairs = [(int(p[f"{f}_multiplier"][g]), int(p[f"{f}_shift"][g])) for f in ("fc_in", "fc_rec") for g in range(4)]
    outs = []
    for xs in x:
        seq = xs.reshape(prep.t_steps, prep.b_dim, prep.i_dim)
        h0, c0 = (a[0] for a in prep.reset_state(1))
        out, _, _ = S.lstm_s8(
            seq, w_in, w_rec, bias, input_offset=int(p["input_offset"]), hidden_offset=int(p["hidden_offset"]),
            fc_in=pairs[:4], fc_rec=pairs[4:], forget_mul=(int(p["forget_mul_multiplier"]), int(p["forget_mul_shift"])),
            input_mul=(int(p["input_mul_multiplier"]), int(p["input_mul_shift"])),
            output_mul=(int(p["output_mul_multiplier"]), int(p["output_mul_shift"])),
            cell_tanh=(int(p["cell_tanh_multiplier"]), int(p["cell_tanh_shift"])), cell_clip=int(p["cell_clip"]),
            h0=h0, c0=c0, rounding=model.rounding)
        outs.append(np.array(out, dtype=np.int8).reshape(xs.shape[:-1] + (prep.s_dim,)))
    return np.stack(outs)


@PROP
@given(s_dim=st.integers(1, 5), i_dim=st.integers(1, 4), steps=st.integers(1, 4), time_major=st.booleans(),
       z_x=st.integers(-128, 127), z_h=st.integers(-128, 127), s_x=st.floats(1e-3, 1.0), s_h=st.floats(1e-3, 0.1),
       cell_power=st.integers(-30, 0), clip=st.sampled_from([0.0, 0.5, 2.0, 1e-6]), w_scale=st.floats(1e-3, 0.5),
       bias_range=st.sampled_from([0, 1000, 2**31 - 1]), rounding=st.sampled_from(["double", "single"]),
       n=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_prop_lstm_equals_spec(s_dim, i_dim, steps, time_major, z_x, z_h, s_x, s_h, cell_power, clip, w_scale,
                               bias_range, rounding, n, seed):
    rng = np.random.default_rng(seed)
    m = lstm_model(rng, s_dim=s_dim, i_dim=i_dim, t_steps=1 if time_major else steps,
                   b_dim=1, time_major=time_major, z_x=z_x, z_h=z_h, s_x=s_x, s_h=s_h,
                   cell_power=cell_power, cell_clip=clip, w_scale=w_scale, bias_range=bias_range, rounding=rounding)
    x = rng.integers(-128, 128, size=(n,) + m.tensors[0].shape[1:]).astype(np.int8)
    np.testing.assert_array_equal(m(x), spec_of(m, x))


# ----------------------------------------------------------------------------- (3) the multiplier's product
def test_frozen_models_decide_the_multiplier_product():
    """TFLM's outputs (stored) on models where double and float32 products of s_in * s_w give different outputs."""
    from make_lstm_vectors import float32_product_params

    d = np.load(DATA / "multiplier_product.npz", allow_pickle=False)
    for i in range(3):
        m = read_tflite(d[f"model{i}"].tobytes())
        x, want = d[f"x{i}"], d[f"y{i}"]
        np.testing.assert_array_equal(m(x), want)
        m.prepared[0].params = float32_product_params(m)
        assert np.any(m(x) != want), f"model {i} does not tell the products apart"


# ----------------------------------------------------------------------------- (4) state
@pytest.mark.oracle
def test_states_carried_across_calls_equal_tflm_without_reset():
    """TFLM keeps the variable tensors between invocations; compute_with_state carrying them does the same."""
    from oracle import tflm_run
    from single_op import unidirectional_sequence_lstm

    rng = np.random.default_rng(3)
    state_mattered = False
    for _ in range(6):
        m = unidirectional_sequence_lstm(rng)
        prep = m.prepared[0]
        x = rng.integers(-128, 128, size=(5,) + m.tensors[0].shape[1:]).astype(np.int8)
        outs, _ = tflm_run(write_tflite(m), [x], reset=False)
        h, c = prep.reset_state(1)
        ours = np.concatenate([prep.compute_with_state(x[b:b + 1], h, c) for b in range(5)])
        np.testing.assert_array_equal(ours, outs[0].reshape(ours.shape))
        state_mattered |= not np.array_equal(ours, m(x))  # m(x) starts every sample from the reset state
    assert state_mattered


def test_a_sequence_split_in_two_calls_equals_one_call():
    rng = np.random.default_rng(8)
    m6 = lstm_model(rng, s_dim=4, i_dim=3, t_steps=6, z_x=5, z_h=-9)
    rng = np.random.default_rng(8)
    m3 = lstm_model(rng, s_dim=4, i_dim=3, t_steps=3, z_x=5, z_h=-9)
    x = np.random.default_rng(1).integers(-128, 128, size=(2, 6, 3)).astype(np.int8)
    h, c = m3.prepared[0].reset_state(2)
    halves = np.concatenate([m3.prepared[0].compute_with_state(x[:, :3], h, c),
                             m3.prepared[0].compute_with_state(x[:, 3:], h, c)], axis=1)
    np.testing.assert_array_equal(halves, m6(x))


def test_variable_tensors_round_trip_through_tflite_and_npz(tmp_path):
    m = lstm_model(np.random.default_rng(2), s_dim=3, i_dim=2, t_steps=2)
    for path in (tmp_path / "m.tflite", tmp_path / "m.npz"):
        m.save(path)
        back = tinyzo.load(path)
        assert [t.is_variable for t in back.tensors] == [t.is_variable for t in m.tensors]
        x = np.random.default_rng(0).integers(-128, 128, size=(3, 2, 2)).astype(np.int8)
        m.reset_state()    # both from the initial state (the model carries its LSTM state between calls)
        np.testing.assert_array_equal(back(x), m(x))


@pytest.mark.oracle
def test_single_rounding_differs_from_tflm():
    """The comparison is sensitive: single rounding changes some outputs of random LSTMs."""
    from single_op import compare_with_tflm, unidirectional_sequence_lstm

    rng = np.random.default_rng(2)
    diff = sum(compare_with_tflm(unidirectional_sequence_lstm(rng, rounding="single"), n=4, seed=k)[1]
               for k in range(20))
    assert diff > 0


# ----------------------------------------------------------------------------- (5) refusals
def _refused(match, **kw):
    with pytest.raises(UnsupportedOperatorError, match=match):
        lstm_model(np.random.default_rng(0), s_dim=2, i_dim=2, t_steps=2, **kw)


def test_refusals():
    vec = Tensor("v", (2,), np.int16, qp(1e-3), np.zeros(2, np.int16))
    _refused("peephole", i9=vec)
    _refused("projection", i16=Tensor("p", (2, 2), np.int8, qp(0.01), np.zeros((2, 2), np.int8)))
    _refused("layer norm", i20=vec)
    _refused("CIFG", i1=None)
    _refused("power of two", cell_power=-12.5)
    _refused("power of two", cell_power=3)
    _refused("per tensor", i2=Tensor("w", (2, 2), np.int8, QuantParams([0.01, 0.02], [0, 0]), np.ones((2, 2), np.int8)))
    _refused("constant int32", i13=Tensor("b", (2,), np.int64, qp(1e-4), np.zeros(2, np.int64)))
    _refused("zero point 0", i19=Tensor("c", (1, 2), np.int16, qp(2.0**-12, 3), is_variable=True))
    m = lstm_model(np.random.default_rng(0), s_dim=2, i_dim=2, t_steps=2)
    k = m.operators[0].inputs[18]
    m.tensors[k] = Tensor("h", (1, 2), np.int8, qp(0.01))  # a model input instead of a variable tensor
    with pytest.raises(UnsupportedOperatorError, match="not a variable tensor"):
        Model(m.tensors, m.operators, (0, k), m.outputs)


def test_refuses_other_layouts_and_options():
    rng = np.random.default_rng(0)
    m = lstm_model(rng, s_dim=2, i_dim=2, t_steps=2)
    op = m.operators[0]
    x2 = Tensor("x", (2, 2, 2), np.int8, qp(0.05))
    y2 = Tensor("y", (2, 2, 2), np.int8, qp(0.01))
    h2 = Tensor("h", (2, 2), np.int8, qp(0.01), is_variable=True)
    c2 = Tensor("c", (2, 2), np.int16, qp(2.0**-12), is_variable=True)
    tensors = list(m.tensors)
    tensors[op.inputs[0]], tensors[op.outputs[0]], tensors[op.inputs[18]], tensors[op.inputs[19]] = x2, y2, h2, c2
    with pytest.raises((UnsupportedOperatorError, UnsupportedModelError), match="dimension 0"):
        Model(tensors, m.operators, m.inputs, m.outputs)
    for opts, match in (({"fused_activation_function": "RELU"}, "fused_activation_function"),
                        ({"diagonal_recurrent_tensors": True}, "diagonal")):
        bad = Operator(op.opcode, op.inputs, op.outputs, {**op.options, **opts})
        with pytest.raises(UnsupportedOperatorError, match=match):
            Model(m.tensors, [bad], m.inputs, m.outputs)
