"""TFLM's keyword benchmark model (keyword_scrambled_8bit.tflite), a stateful model, against TFLite Micro.

The model: QUANTIZE int16 -> int8, SVDF x7 (int8 state, a variable tensor each), FULLY_CONNECTED
x5, SOFTMAX int8 -> int16, QUANTIZE int16 -> int32. Its weights are scrambled (a speed benchmark):
whatever the input, every SVDF output saturates to -128 or 127, so the arithmetic of each operator
is covered by the random one-operator models (tests/test_svdf_tflm.py, tests/test_ops_tflm.py);
here the whole graph, its state and its reset are checked, every tensor at every step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from oracle import tflm_interpreter

import tinyzo

PATH = Path(__file__).parent / "data" / "tflite-micro" / "keyword_scrambled_8bit.tflite"
N_STEPS = 12


def inputs(n_steps: int, n: int = 1, seed: int = 0) -> np.ndarray:
    """int16 [T, n, 96]: each step draws from a normal of a random amplitude (100 .. full range)."""
    rng = np.random.default_rng(seed)
    amp = rng.choice([100, 1000, 5000, 20000, 60000], size=(n_steps, 1, 1))
    return np.clip(rng.normal(0, 1, size=(n_steps, n, 96)) * amp, -32768, 32767).astype(np.int16)


def test_operators_and_types():
    m = tinyzo.load(PATH)
    ops = [(op.opcode, m.tensors[op.inputs[0]].dtype.name, m.tensors[op.outputs[0]].dtype.name) for op in m.operators]
    assert ops == ([("QUANTIZE", "int16", "int8")] + [("SVDF", "int8", "int8"), ("FULLY_CONNECTED", "int8", "int8")] * 4
                   + [("SVDF", "int8", "int8")] * 3 + [("FULLY_CONNECTED", "int8", "int8"), ("SOFTMAX", "int8", "int16"),
                                                       ("QUANTIZE", "int16", "int32")])
    assert m.variables == (4, 12, 20, 28, 36, 41, 46)
    assert all(m.tensors[t].dtype == np.int8 for t in m.variables)
    assert all(m.tensors[op.inputs[2]].dtype == np.int8 for op in m.operators if op.opcode == "SVDF")  # weights_time


@pytest.mark.oracle
def test_every_tensor_equals_tflm_over_a_sequence():
    """12 invocations, state carried: every tensor TFLM computes or keeps (states included) is equal."""
    m = tinyzo.load(PATH)
    interp = tflm_interpreter(PATH.read_bytes())
    runtime = [t for t in range(len(m.tensors)) if not m.tensors[t].is_constant]
    for step, x in enumerate(inputs(N_STEPS)):
        interp.set_input(x, 0)
        interp.invoke()
        y, env = m(x, intermediates=True)
        assert sorted(env) == runtime
        for t in runtime:
            want = np.array(interp.GetTensor(t, 0)["tensor_data"])
            np.testing.assert_array_equal(env[t].reshape(want.shape), want, err_msg=f"step {step}, tensor {t}")
        np.testing.assert_array_equal(y, np.array(interp.get_output(0)))


@pytest.mark.oracle
def test_reset_state_reproduces_the_first_outputs():
    m = tinyzo.load(PATH)
    interp = tflm_interpreter(PATH.read_bytes())
    xs = inputs(N_STEPS, seed=1)

    def run():
        outs, states = [], []
        for x in xs:
            interp.set_input(x, 0)
            interp.invoke()
            y, env = m(x, intermediates=True)
            np.testing.assert_array_equal(y, np.array(interp.get_output(0)))
            outs.append(y)
            states.append(np.concatenate([env[t].reshape(-1) for t in m.variables]))
        return np.stack(outs), np.stack(states)

    y1, s1 = run()
    assert len({a.tobytes() for a in s1}) == N_STEPS  # the state moves at every step
    m.reset_state()
    interp.reset()
    y2, s2 = run()
    np.testing.assert_array_equal(y2, y1)
    np.testing.assert_array_equal(s2, s1)


@pytest.mark.oracle
def test_batch_of_streams_equals_tflm_sequences():
    """3 streams in one batch, 10 steps: stream i equals TFLM run on stream i alone (reset between)."""
    m = tinyzo.load(PATH)
    xs = inputs(10, n=3, seed=2)
    got = [m(x, intermediates=True)[1] for x in xs]
    interp = tflm_interpreter(PATH.read_bytes())
    watch = list(m.variables) + [5, 51, 53]  # the states, the first SVDF output, softmax, output
    for i in range(3):
        interp.reset()
        for step, x in enumerate(xs):
            interp.set_input(x[i:i + 1], 0)
            interp.invoke()
            for t in watch:
                want = np.array(interp.GetTensor(t, 0)["tensor_data"])
                np.testing.assert_array_equal(got[step][t][i:i + 1].reshape(want.shape), want,
                                              err_msg=f"stream {i}, step {step}, tensor {t}")


def test_saved_copy_runs_identically(tmp_path):
    m = tinyzo.load(PATH)
    m.save(tmp_path / "kw.npz")
    m2 = tinyzo.load(tmp_path / "kw.npz")
    xs = inputs(5, n=2, seed=3)
    for x in xs:
        np.testing.assert_array_equal(m2(x), m(x))
    for t in m.variables:
        np.testing.assert_array_equal(m2.state[t], m.state[t])
