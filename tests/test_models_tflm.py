"""Whole models: every intermediate tensor equals TFLite Micro's, and the real test inputs give the published outputs."""

import struct

import numpy as np
import pytest

from tinyzo.ops.conv_paths import available_paths

import tinyzo
from conftest import DATA, MODELS, model_path
from oracle import tflm_run


def _random_inputs(model, n, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, size=(n,) + t.shape[1:], dtype=np.int8) for t in model.input_details]


@pytest.mark.oracle
@pytest.mark.parametrize("conv_path", ["auto", "gemm", "int", "vnni"])
def test_every_intermediate_tensor_equals_tflm(real_model_name, conv_path, monkeypatch):
    """Every CONV_2D along the path the cost model picks ("auto"), then all along each forced path."""
    if conv_path not in ("auto",) + available_paths():
        pytest.skip(f"this CPU cannot run the {conv_path!r} path")
    monkeypatch.setenv("TINYZO_CONV_PATH", conv_path)
    data = model_path(real_model_name).read_bytes()
    model = tinyzo.load(model_path(real_model_name))
    n = 4 if real_model_name == "person_detect" else 16
    xs = _random_inputs(model, n, seed=1)
    computed = sorted({t for op in model.operators for t in op.outputs})
    outs, tflm_vals = tflm_run(data, xs, tensors=computed)
    y, ours = model(*xs, intermediates=True)
    ys = y if isinstance(y, tuple) else (y,)
    for k, o in enumerate(outs):
        np.testing.assert_array_equal(ys[k], o)
    for t in computed:
        want = tflm_vals[t]
        got = ours[t]
        assert got.dtype == want.dtype, (t, got.dtype, want.dtype)
        np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg=f"tensor {t} ({model.tensors[t].name})")


@pytest.mark.oracle
def test_batch_of_any_size_equals_tflm():
    data = model_path("person_detect").read_bytes()
    model = tinyzo.load(model_path("person_detect"))
    for n in (1, 3):
        xs = _random_inputs(model, n, seed=10 + n)
        outs, _ = tflm_run(data, xs)
        np.testing.assert_array_equal(model(*xs), outs[0])


def _bmp_pixels(path):
    raw = path.read_bytes()
    offset = struct.unpack_from("<I", raw, 10)[0]
    width, height = struct.unpack_from("<ii", raw, 18)
    assert (width, abs(height)) == (96, 96)
    px = np.frombuffer(raw, dtype=np.int8, count=96 * 96, offset=offset).reshape(96, 96)
    if height > 0:  # a positive BMP height stores the rows bottom-up
        px = px[::-1]
    return np.ascontiguousarray(px).reshape(1, 96, 96, 1)


@pytest.mark.parametrize("image, expected", [("person.bmp", [-113, 113]), ("no_person.bmp", [57, -57])])
def test_person_detect_real_images(image, expected):
    model = tinyzo.load(model_path("person_detect"))
    np.testing.assert_array_equal(model(_bmp_pixels(MODELS / "testdata" / image)), [expected])


@pytest.mark.parametrize(
    "word, expected",
    [("yes", [-128, -128, 127, -128]), ("no", [-128, -114, -128, 114]),
     ("silence", [-42, -68, -68, -78]), ("noise", [120, -125, -126, -125])],
)
def test_micro_speech_real_features(word, expected):
    model = tinyzo.load(model_path("micro_speech_quantized"))
    x = np.load(MODELS / "testdata" / f"{word}_1000ms_features_int8_49x40.npy").reshape(1, 1960)
    np.testing.assert_array_equal(model(x), [expected])


def test_frozen_golden_vectors(real_model_name):
    """TFLM's outputs frozen in the repo (tests/make_golden.py): no oracle needed."""
    g = np.load(DATA / "golden" / f"{real_model_name}.npz", allow_pickle=False)
    model = tinyzo.load(model_path(real_model_name))
    xs = [g[f"input{k}"] for k in range(len(model.inputs))]
    y = model(*xs)
    ys = y if isinstance(y, tuple) else (y,)
    for k, o in enumerate(ys):
        np.testing.assert_array_equal(o, g[f"output{k}"])


@pytest.mark.oracle
def test_float_interface_model_equals_tflm():
    """float32 in -> QUANTIZE -> FULLY_CONNECTED -> DEQUANTIZE -> float32 out: an int8 model with a float interface."""
    from tinyzo.graph import Operator, Tensor
    from tinyzo.io import read_tflite, write_tflite_parts
    from tinyzo.quant import QuantParams

    rng = np.random.default_rng(5)
    w = rng.integers(-127, 128, size=(3, 6), dtype=np.int8)
    b = rng.integers(-300, 300, size=3, dtype=np.int32)
    qx, qw, qy = QuantParams([0.05], [3]), QuantParams([0.01], [0]), QuantParams([0.07], [-10])
    tensors = [
        Tensor("xf", (1, 6), np.float32),
        Tensor("xq", (1, 6), np.int8, qx),
        Tensor("w", (3, 6), np.int8, qw, w),
        Tensor("b", (3,), np.int32, QuantParams([0.05 * 0.01], [0]), b),
        Tensor("yq", (1, 3), np.int8, qy),
        Tensor("yf", (1, 3), np.float32),
    ]
    ops = [Operator("QUANTIZE", (0,), (1,)), Operator("FULLY_CONNECTED", (1, 2, 3), (4,), {"fused_activation_function": "RELU"}),
           Operator("DEQUANTIZE", (4,), (5,))]
    data = write_tflite_parts(tensors, ops, (0,), (5,))
    model = read_tflite(data)
    x = (rng.standard_normal((20, 6)) * 4).astype(np.float32)
    outs, vals = tflm_run(data, [x], tensors=[1, 4])
    y, acts = model(x, intermediates=True)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(acts[1], vals[1])
    np.testing.assert_array_equal(acts[4], vals[4])
    np.testing.assert_array_equal(y, outs[0])  # floats too: DEQUANTIZE is one rounding of an exact product
    np.testing.assert_array_equal(model.quantize_input(x), x)


@pytest.mark.oracle
def test_export_round_trip_runs_in_tflm_exactly(real_model_name, tmp_path):
    """load -> model.save(.tflite) -> TFLM on the written file == tinyzo, every intermediate tensor."""
    model = tinyzo.load(model_path(real_model_name))
    out = tmp_path / "again.tflite"
    model.save(out)
    again = tinyzo.load(out)
    xs = _random_inputs(model, 3, seed=7)
    computed = sorted({t for op in again.operators for t in op.outputs})
    outs, vals = tflm_run(out.read_bytes(), xs, tensors=computed)
    y, acts = model(*xs, intermediates=True)
    ys = y if isinstance(y, tuple) else (y,)
    for k, o in enumerate(outs):
        np.testing.assert_array_equal(ys[k], o)
    for t in computed:
        np.testing.assert_array_equal(acts[t].reshape(vals[t].shape), vals[t])
