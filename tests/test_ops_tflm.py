"""Every operator, one at a time, on random parameters: tinyzo == TFLite Micro exactly.

Random one-operator models (tests/single_op.py: shapes, strides, SAME/VALID, dilation, depth
multipliers, per-tensor/per-channel weights, fused activations, scales and zero points) are
written to .tflite and run in TFLM's interpreter; every output element must be equal.
"""

import numpy as np
import pytest

from single_op import CASES, CASES_INT16, compare_with_tflm
from tinyzo.ops.conv_paths import PATHS, available_paths

pytest.importorskip("tflite_micro")

N_MODELS = {"CONV_2D": 80, "DEPTHWISE_CONV_2D": 80, "FULLY_CONNECTED": 40,
            # cheap element-wise operators (a few ms per model): more random scales and shapes
            "SUB": 100, "MUL": 100, "MAXIMUM": 60, "MINIMUM": 60, "PRELU": 100, "RELU": 100, "RELU6": 60,
            "LEAKY_RELU": 100, "HARD_SWISH": 100, "LOGISTIC": 100, "TANH": 100,
            # many index/mask combinations, each model a few ms
            "STRIDED_SLICE": 100, "GATHER": 60, "CAST": 100, "BATCH_MATMUL": 40,
            # stateful (each model a sequence of 4 invocations) and the keyword model's int16 edges
            "SVDF": 100, "QUANTIZE_INT16": 100, "SOFTMAX_INT16_OUT": 60,
            # about 5 ms per model: thousands of random shapes, strides, paddings, biases
            "TRANSPOSE_CONV": 1000, "TRANSPOSE_CONV_16x8": 1000,
            # about 25 ms per model (T up to 10 steps, 4 samples each from TFLM's reset state)
            "UNIDIRECTIONAL_SEQUENCE_LSTM": 1000}


@pytest.mark.oracle
@pytest.mark.parametrize("opcode", sorted(CASES))
def test_random_single_op_models_equal_tflm(opcode):
    rng = np.random.default_rng(sum(map(ord, opcode)))
    total = 0
    for k in range(N_MODELS.get(opcode, 20)):
        model = CASES[opcode](rng)
        n, d = compare_with_tflm(model, n=4, seed=k)
        assert d == 0, f"{opcode} case {k}: {d} of {n} elements differ from TFLM ({model.operators[0].options})"
        total += n
    assert total > 0


#: random int16 (16x8) one-op models per operator, 4 random inputs each (about 1 s per operator here)
N_MODELS_INT16 = 300


@pytest.mark.oracle
@pytest.mark.parametrize("opcode", sorted(CASES_INT16))
def test_random_int16_single_op_models_equal_tflm(opcode):
    """The int16 paths (tests/single_op.py, dtype=np.int16): 1200 random (model, input) cases per operator."""
    rng = np.random.default_rng(sum(map(ord, opcode)) + 16)
    total = 0
    for k in range(N_MODELS_INT16):
        model = CASES_INT16[opcode](rng)
        assert any(t.dtype == np.int16 for t in model.tensors), f"int16 {opcode} case {k} has no int16 tensor"
        n, d = compare_with_tflm(model, n=4, seed=k)
        assert d == 0, f"int16 {opcode} case {k}: {d} of {n} elements differ from TFLM ({model.operators[0].options})"
        total += n
    assert total > 0


@pytest.mark.oracle
@pytest.mark.parametrize("path", PATHS)
def test_every_conv2d_path_equals_tflm(path):
    """The same random CONV_2D models, each computed along one forced path (float GEMM, integer loops, VNNI)."""
    if path not in available_paths():
        pytest.skip(f"this CPU cannot run the {path!r} path")
    rng = np.random.default_rng(sum(map(ord, "CONV_2D")))
    for k in range(N_MODELS["CONV_2D"]):
        model = CASES["CONV_2D"](rng)
        model.prepared[0].set_path(path)
        n, d = compare_with_tflm(model, n=4, seed=k)
        assert d == 0, f"CONV_2D case {k}, path {path}: {d} of {n} elements differ from TFLM"


@pytest.mark.oracle
def test_harness_detects_off_by_one():
    """The comparison is sensitive: single rounding differs from TFLM (double) on some conv outputs."""
    rng = np.random.default_rng(1)
    diff = sum(compare_with_tflm(CASES["CONV_2D"](rng, rounding="single"), n=4, seed=k)[1] for k in range(40))
    assert diff > 0


@pytest.mark.oracle
@pytest.mark.parametrize("path", ["gemm", "vnni"])
def test_fully_connected_paths_equal_tflm(path, monkeypatch):
    """FULLY_CONNECTED along the float GEMM and, on AVX512-VNNI CPUs, the vpdpbusd micro-kernels (forced)."""
    if path not in available_paths():
        pytest.skip(f"this CPU cannot run the {path!r} path")
    monkeypatch.setenv("TINYZO_CONV_PATH", path)
    rng = np.random.default_rng(sum(map(ord, "FULLY_CONNECTED")) + 1)
    used = 0
    for k in range(N_MODELS["FULLY_CONNECTED"]):
        model = CASES["FULLY_CONNECTED"](rng)
        used += getattr(model.prepared[0], "vnni", None) is not None
        n, d = compare_with_tflm(model, n=4, seed=k)
        assert d == 0, f"FULLY_CONNECTED case {k}, path {path}: {d} of {n} elements differ from TFLM"
    assert (used > 0) == (path == "vnni")
