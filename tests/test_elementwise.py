"""QUANTIZE, DEQUANTIZE: jitted kernels == pure-Python spec (hypothesis), ops == TFLite Micro.

Evidence layers: (1) property tests of each kernel against :mod:`tinyzo.spec.elementwise`,
including extreme scales and zero points and both rounding modes; (2) models written with
:func:`tinyzo.io.tflite_write.write_tflite` run by the TFLM interpreter on random inputs,
compared exactly. Also the NUMBA_DISABLE_JIT=1 re-run of the property tests of
this file, test_binary.py, test_activations.py, test_pool.py and test_shape_ops.py.
The helpers at the top (qp, tflm_outputs, assert_same_as_tflm, the strategies) are shared
with test_binary.py and test_activations.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinyzo.graph import Model, Operator, Tensor
from tinyzo.kernels import elementwise as K
from tinyzo.quant import QuantParams
from tinyzo.spec import elementwise as S

HERE = Path(__file__).parent
MODELS = HERE / "data" / "tflite-micro"
NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
PROP = settings(max_examples=15 if NO_JIT else 60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUNDINGS = ["double", "single"]


# ----------------------------------------------------------------------------- helpers (shared by the op tests)
def qp(scale, zero_point) -> QuantParams:
    """Per-tensor quantization parameters."""
    return QuantParams(np.array([scale], np.float32), np.array([zero_point], np.int64))


def tflm_outputs(model_bytes: bytes, inputs, n_outputs: int = 1, arena_size: int = 1 << 22) -> list:
    """Run ``model_bytes`` in TFLM one sample at a time (with an arena large enough for small single-op files).

    tests/oracle.py sizes the arena as 10x the file, too small for a tiny file with large activations.
    """
    rt = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    interp = rt.Interpreter.from_bytes(bytes(model_bytes), arena_size=arena_size)
    n_out = n_outputs
    per_out = [[] for _ in range(n_out)]
    for b in range(inputs[0].shape[0]):
        for k, x in enumerate(inputs):
            interp.set_input(x[b : b + 1], k)
        interp.invoke()
        for k in range(n_out):
            per_out[k].append(np.array(interp.get_output(k)))
    return [np.concatenate(p, axis=0) for p in per_out]


def to_tflite(model) -> bytes:
    """``write_tflite(model)``; skips the test when the writer is not available."""
    try:
        from tinyzo.io.tflite_write import write_tflite
    except ImportError as e:  # pragma: no cover - depends on the io package
        pytest.skip(f"tinyzo.io.tflite_write.write_tflite is not available: {e}")
    return write_tflite(model)


def assert_same_as_tflm(model, inputs):
    """Our model and TFLM on the written file give identical outputs (exact)."""
    ours = model(*inputs)
    ours = ours if isinstance(ours, tuple) else (ours,)
    theirs = tflm_outputs(to_tflite(model), inputs, n_outputs=len(model.outputs))
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b.reshape(a.shape))


def rand_int8(rng, shape):
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


# ----------------------------------------------------------------------------- strategies
scales = st.one_of(
    st.floats(1e-4, 10.0),
    st.sampled_from([1e-6, 1e-3, 0.00390625, 0.5, 1.0, 2.0, 1e3]),
).map(lambda s: float(np.float32(s)))
zero_points = st.one_of(st.integers(-128, 127), st.sampled_from([-128, 127, 0]))
activations = st.sampled_from(["NONE", "RELU", "RELU6", "RELU_N1_TO_1"])


# ----------------------------------------------------------------------------- (1) kernels == spec
float32s = st.one_of(
    st.floats(width=32, allow_nan=True, allow_infinity=True),
    st.integers(-300, 300).map(lambda k: k * 0.5),  # exact ties
    st.sampled_from([0.49999997, -0.49999997, 2.5, -2.5, 1e10, -1e10, 2147483520.0, -2147483648.0, 2147483648.0]),
)


@PROP
@given(
    xs=st.lists(float32s, min_size=1, max_size=30),
    scale=st.one_of(scales, st.just(1.0), st.just(0.5)),
    zp=zero_points,
)
def test_prop_quantize_f32_kernel_equals_spec(xs, scale, zp):
    x = np.array(xs, np.float32)
    out = np.empty(x.size, np.int8)
    K.quantize_f32(x, np.float32(scale), zp, out)
    np.testing.assert_array_equal(out, [S.quantize_f32(v, scale, zp) for v in x])


def test_quantize_f32_rounds_half_away_and_exactly():
    # roundf: ties away from zero; 0.49999997f must not round up (floor(x + 0.5) would)
    x = np.array([0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999997, -0.49999997, 300.0, -300.0], np.float32)
    out = np.empty(x.size, np.int8)
    K.quantize_f32(x, np.float32(1.0), 0, out)
    np.testing.assert_array_equal(out, [1, -1, 2, -2, 3, -3, 0, 0, 127, -128])


@PROP
@given(
    s_in=scales, s_out=scales, z_in=zero_points, z_out=zero_points, rounding=st.sampled_from(ROUNDINGS),
    seed=st.integers(0, 2**32 - 1),
)
def test_prop_quantize_s8_kernel_equals_spec(s_in, s_out, z_in, z_out, rounding, seed):
    from tinyzo.quant import quantize_multiplier

    m, sh = quantize_multiplier(float(np.float32(s_in)) / float(np.float32(s_out)), rounding)
    x = np.concatenate([np.arange(-128, 128), rand_int8(np.random.default_rng(seed), 16)]).astype(np.int8)
    out = np.empty(x.size, np.int8)
    K.quantize_s8(x, m, sh, z_in, z_out, 0 if rounding == "double" else 1, out)
    np.testing.assert_array_equal(out, [S.quantize_s8(v, m, sh, z_in, z_out, rounding) for v in x])


@PROP
@given(scale=scales, zp=zero_points)
def test_prop_dequantize_kernel_equals_spec(scale, zp):
    x = np.arange(-128, 128).astype(np.int8)
    out = np.empty(x.size, np.float32)
    K.dequantize_s8(x, np.float32(scale), zp, out)
    want = np.array([S.dequantize_s8(v, scale, zp) for v in x], np.float32)
    np.testing.assert_array_equal(out.view(np.int32), want.view(np.int32))  # bit for bit


# ----------------------------------------------------------------------------- op prepare/compute
def test_quantize_dequantize_ops_equal_spec():
    rng = np.random.default_rng(4)
    tensors = [
        Tensor("x", (1, 6), np.int8, qp(0.02, 5)),
        Tensor("f", (1, 6), np.float32),
        Tensor("q", (1, 6), np.int8, qp(0.05, -9)),
        Tensor("r", (1, 6), np.int8, qp(0.011, 100)),
    ]
    ops = [Operator("DEQUANTIZE", (0,), (1,)), Operator("QUANTIZE", (1,), (2,)), Operator("QUANTIZE", (2,), (3,))]
    m = Model(tensors, ops, (0,), (3,))
    x = rand_int8(rng, (7, 6))
    y, env = m(x, intermediates=True)
    f = np.array([[S.dequantize_s8(v, 0.02, 5) for v in row] for row in x], np.float32)
    np.testing.assert_array_equal(env[1], f)
    q = np.array([[S.quantize_f32(v, 0.05, -9) for v in row] for row in f], np.int8)
    np.testing.assert_array_equal(env[2], q)
    prep = m.prepared[2]
    r = np.array([[S.quantize_s8(v, prep.multiplier, prep.shift, -9, 100) for v in row] for row in q], np.int8)
    np.testing.assert_array_equal(y, r)


# ----------------------------------------------------------------------------- (2) TFLM

@pytest.mark.oracle
@pytest.mark.parametrize(
    "q_in, q_mid, q_out",
    [
        ((0.5, 0), (1.0, 0), (0.02, 7)),  # the float intermediate holds exact .5 ties
        ((0.02, 5), (0.05, -9), (0.011, 100)),
        ((0.1, -128), (0.1, -128), (0.1, -128)),  # identity requantization
        ((0.003, 127), (0.7, 3), (2e-4, -100)),  # saturating both ways
        ((1.0, 0), (0.25, -1), (8.0, 1)),  # multiplier > 1 (positive shift) then < 1
    ],
)
def test_quantize_dequantize_chain_equals_tflm(q_in, q_mid, q_out):
    """int8 -DEQUANTIZE-> float32 -QUANTIZE-> int8 -QUANTIZE-> int8, every value of the input range."""
    tensors = [
        Tensor("x", (1, 16, 16), np.int8, qp(*q_in)),
        Tensor("f", (1, 16, 16), np.float32),
        Tensor("q", (1, 16, 16), np.int8, qp(*q_mid)),
        Tensor("r", (1, 16, 16), np.int8, qp(*q_out)),
    ]
    ops = [Operator("DEQUANTIZE", (0,), (1,)), Operator("QUANTIZE", (1,), (2,)), Operator("QUANTIZE", (2,), (3,))]
    m = Model(tensors, ops, (0,), (3,))
    x = np.arange(-128, 128).astype(np.int8).reshape(1, 16, 16)
    x = np.concatenate([x, rand_int8(np.random.default_rng(5), (2, 16, 16))])
    assert_same_as_tflm(m, [x])


@pytest.mark.oracle
@pytest.mark.parametrize("scale, zp", [(1.0, 0), (0.5, -5), (0.0123, 17), (3.0, 127)])
def test_quantize_f32_kernel_equals_tflm_on_edge_values(scale, zp):
    """Float32 QUANTIZE on ties, near-ties, saturation and values beyond int32 (x86 cast), against TFLM.

    A tinyzo Model takes only int8 inputs, so the file is written from its parts and the kernel compared directly.
    """
    try:
        from tinyzo.io.tflite_write import write_tflite_parts
    except ImportError as e:  # pragma: no cover
        pytest.skip(f"tinyzo.io.tflite_write is not available: {e}")
    s = np.float32(scale)
    base = np.array([0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999997, -0.49999997, 126.5, -127.5, 127.5, -128.5,
                     1e3, -1e3, 1e9, -1e9, 3e9, -3e9, 0.0, -0.0], np.float32)
    ties = (np.arange(-140, 141, dtype=np.float32) + np.float32(0.5)) * s  # x / scale lands on or next to .5
    x = np.concatenate([base, base * s, ties, np.nextafter(ties, np.float32(0)), np.nextafter(ties, np.float32(1e30))])
    x = x.astype(np.float32).reshape(1, -1)
    tensors = [Tensor("f", x.shape, np.float32), Tensor("q", x.shape, np.int8, qp(scale, zp))]
    data = write_tflite_parts(tensors, [Operator("QUANTIZE", (0,), (1,))], (0,), (1,))
    out = np.empty(x.size, np.int8)
    K.quantize_f32(x.reshape(-1), s, zp, out)
    np.testing.assert_array_equal(out, tflm_outputs(data, [x])[0].reshape(-1))


@pytest.mark.oracle
def test_dequantize_output_equals_tflm_bit_for_bit():
    tensors = [Tensor("x", (1, 256), np.int8, qp(0.0371, -17)), Tensor("f", (1, 256), np.float32)]
    m = Model(tensors, [Operator("DEQUANTIZE", (0,), (1,))], (0,), (1,))
    x = np.arange(-128, 128).astype(np.int8).reshape(1, 256)
    ours = m(x)
    theirs = tflm_outputs(to_tflite(m), [x])[0]
    np.testing.assert_array_equal(ours.view(np.int32), theirs.reshape(ours.shape).view(np.int32))


# ----------------------------------------------------------------------------- NUMBA_DISABLE_JIT=1
@pytest.mark.slow
def test_kernels_equal_spec_under_numba_disable_jit():
    """The interpreted kernels (NUMBA_DISABLE_JIT=1) must equal the spec too."""
    if os.environ.get("NUMBA_DISABLE_JIT") == "1":
        pytest.skip("already running without JIT")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", HYPOTHESIS_PROFILE="nojit")
    files = [str(HERE / f) for f in ("test_elementwise.py", "test_binary.py", "test_activations.py", "test_pool.py",
                                     "test_shape_ops.py")]
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-k", "prop", *files],
        env=env, capture_output=True, text=True, timeout=600, cwd=HERE.parent, check=False,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
