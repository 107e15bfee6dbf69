"""SVDF and model state against TFLite Micro: random one-SVDF models over sequences of invocations.

Each random model (tests/single_op.py ``svdf``: int8 or int16 state and time weights, rank 1..3,
up to 24 filters, memory 1..10, inputs up to 300, random scales and zero points, state values that
saturate and wrap) runs a sequence of invocations in one TFLM interpreter and in tinyzo, call by
call; the output and the activation state (TFLM's variable tensor after each ``invoke``) must be
equal at every step. Also: a batch of streams equals separate TFLM sequences, the initial state and
``reset`` equal TFLM's, and the multipliers are formed as the oracle forms them (double).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from oracle import tflm_interpreter
from single_op import CASES

from tinyzo.io import write_tflite
from tinyzo.quant import quantize_multiplier

pytest.importorskip("tflite_micro")

N_MODELS, N_STEPS = 300, 8


def tflm_sequence(interp, xs, state_index):
    """Run ``xs`` [T, I] one invocation each; return TFLM's outputs [T, U] and states [T, F*M]."""
    ys, states = [], []
    for x in xs:
        interp.set_input(x[None], 0)
        interp.invoke()
        ys.append(np.array(interp.get_output(0)).reshape(-1))
        states.append(np.array(interp.GetTensor(state_index, 0)["tensor_data"]).reshape(-1))
    return np.stack(ys), np.stack(states)


@pytest.mark.oracle
def test_random_svdf_sequences_equal_tflm():
    """300 models x 8 invocations (state carried): every output element and state element equal."""
    rng = np.random.default_rng(sum(map(ord, "SVDF sequences")))
    invocations = elements = 0
    for k in range(N_MODELS):
        model = CASES["SVDF"](rng)
        xs = np.random.default_rng(k).integers(-128, 128, size=(N_STEPS, model.tensors[0].shape[1]), dtype=np.int8)
        want_y, want_s = tflm_sequence(tflm_interpreter(write_tflite(model)), xs, 4)
        for t in range(N_STEPS):
            y = model(xs[t:t + 1])
            np.testing.assert_array_equal(y[0], want_y[t], err_msg=f"model {k}, step {t}: output")
            np.testing.assert_array_equal(model.state[4][0], want_s[t], err_msg=f"model {k}, step {t}: state")
            elements += y.size + want_s[t].size
        invocations += N_STEPS
    assert invocations == N_MODELS * N_STEPS and elements > 100_000


@pytest.mark.oracle
def test_batch_of_streams_equals_separate_tflm_sequences():
    """N = 3 streams in one tinyzo batch == three TFLM sequences (``reset()`` between them)."""
    rng = np.random.default_rng(7)
    for k in range(20):
        model = CASES["SVDF"](rng)
        xs = np.random.default_rng(k).integers(-128, 128, size=(6, 3, model.tensors[0].shape[1]), dtype=np.int8)
        got = np.stack([model(x) for x in xs])  # [T, N, U]
        interp = tflm_interpreter(write_tflite(model))
        for i in range(3):
            interp.reset()
            want_y, want_s = tflm_sequence(interp, xs[:, i], 4)
            np.testing.assert_array_equal(got[:, i], want_y, err_msg=f"model {k}, stream {i}")
            np.testing.assert_array_equal(model.state[4][i], want_s[-1], err_msg=f"model {k}, stream {i}: state")


@pytest.mark.oracle
def test_initial_state_and_reset_equal_tflm():
    """TFLM memsets variable tensors: an int8 state to its zero point (a stored buffer is ignored),
    an int16 state to 0 even with a non-zero zero point; ``reset()`` does it again."""
    from test_svdf import svdf_model

    for m in (svdf_model(q_state=(0.05, -50), state_data=np.arange(24, dtype=np.int8).reshape(1, 24)),
              svdf_model(state_t=np.int16, q_state=(0.001, 77))):
        interp = tflm_interpreter(write_tflite(m))
        np.testing.assert_array_equal(m.state[4].reshape(-1), np.array(interp.GetTensor(4, 0)["tensor_data"]).reshape(-1))
        xs = np.random.default_rng(1).integers(-128, 128, size=(4, 5), dtype=np.int8)
        want, _ = tflm_sequence(interp, xs, 4)
        got = np.stack([m(x[None])[0] for x in xs])
        np.testing.assert_array_equal(got, want)
        interp.reset()
        m.reset_state()
        np.testing.assert_array_equal(m.state[4].reshape(-1), np.array(interp.GetTensor(4, 0)["tensor_data"]).reshape(-1))
        np.testing.assert_array_equal(np.stack([m(x[None])[0] for x in xs]), tflm_sequence(interp, xs, 4)[0])


@pytest.mark.oracle
def test_multipliers_in_double_as_the_oracle():
    """Where float32 and double effective scales give different outputs, TFLM gives double's.

    The tflite-micro source writes the effective scales as float expressions; the oracle's build
    computes them in double (as for SUB and RELU, docs/bit_exactness.md). Random models are searched
    for a sequence on which the two choices differ; TFLM must agree with tinyzo (double) on it.
    """
    from oracle import tflm_run

    f = np.float32
    rng = np.random.default_rng(11)
    decided = 0
    for k in range(3000):
        model = CASES["SVDF"](rng)
        t = model.tensors
        sx, swf, swt, ss, so = (float(f(t[i].quant.scale[0])) for i in (0, 1, 2, 4, 5))
        m1, s1 = quantize_multiplier(float(f(f(sx) * f(swf)) / f(ss)))
        m2, s2 = quantize_multiplier(float(f(f(ss) * f(swt)) / f(so)))
        p = model.prepared[0].params
        if (m1, s1, m2, s2) == (p.multiplier_1, p.shift_1, p.multiplier_2, p.shift_2):
            continue
        as_float = copy.deepcopy(model)
        as_float.prepared[0].params = p._replace(multiplier_1=m1, shift_1=s1, multiplier_2=m2, shift_2=s2)
        xs = np.random.default_rng(k).integers(-128, 128, size=(4, 300, t[0].shape[1]), dtype=np.int8)
        y_d = np.stack([model(x) for x in xs])
        y_f = np.stack([as_float(x) for x in xs])
        differ = np.nonzero(np.any(y_d != y_f, axis=(0, 2)))[0]
        if differ.size == 0:
            continue
        b = int(differ[0])
        outs, _ = tflm_run(write_tflite(model), [xs[:, b]])
        np.testing.assert_array_equal(outs[0].reshape(y_d[:, b].shape), y_d[:, b], err_msg=f"model {k}")
        decided += 1
        if decided == 3:
            break
    assert decided == 3
