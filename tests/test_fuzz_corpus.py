"""Regression corpus of the model-file fuzzing (issue 11, section 3): one test per class of failure.

Every reproducer is built here from the shipped files by the byte patch or JSON edit that first
exposed it (``reference_models/digits_cnn.tflite``, ``tests/data/tflite-micro/*.tflite`` and their
tinyzo ``.npz``); before the fix each raised an exception outside tinyzo's error classes or asked
for gigabytes. Each now raises a specific :class:`tinyzo.errors.TinyzoError` subclass, or (a
constant output) gives TFLM's result; ``tinyzo info`` / ``tinyzo run`` print one line and exit 2.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import model_path

import tinyzo
import tinyzo.limits
from tinyzo.cli import main
from tinyzo.errors import (
    ArithmeticContractError,
    MemoryLimitError,
    ModelFormatError,
    TinyzoError,
    UnsupportedModelError,
    UnsupportedOperatorError,
)
from tinyzo.graph import Model, Operator
from tinyzo.io import load_npz, read_tflite, save_npz, write_tflite
from tinyzo.quant import QuantParams, activation_range

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "reference_models" / "digits_cnn.tflite"
sys.path.insert(0, str(ROOT / "scripts"))
import fuzz_models


# ------------------------------------------------------------------------------------ builders
def patch_u32(path: Path, offset: int, value: int) -> bytes:
    """The file with the little-endian uint32 at ``offset`` set to ``value``."""
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, offset, value)
    return bytes(data)


def as_npz(path: Path) -> bytes:
    """The ``.tflite`` model saved as a tinyzo ``.npz``."""
    buf = io.BytesIO()
    save_npz(read_tflite(path.read_bytes()), buf)
    return buf.getvalue()


def edit_graph(npz: bytes, edit) -> bytes:
    """The ``.npz`` with ``edit(graph_dict)`` applied to its graph JSON (written with Infinity/NaN allowed)."""
    members = fuzz_models.npz_members(npz)
    g = json.loads(np.lib.format.read_array(io.BytesIO(members["graph.npy"])).tobytes())
    edit(g)
    members["graph.npy"] = fuzz_models.npy_bytes(np.frombuffer(json.dumps(g, allow_nan=True).encode(), np.uint8))
    return fuzz_models.build_npz(members)


def first_op(g: dict, opcode: str) -> dict:
    return next(o for o in g["operators"] if o["opcode"] == opcode)


def set_option(opcode: str, name: str, value, index: int | None = None):
    """An edit setting option ``name`` of the first ``opcode`` operator (or of operator ``index``)."""

    def edit(g):
        op = first_op(g, opcode) if index is None else g["operators"][index]
        assert op["opcode"] == opcode
        op["options"][name] = value

    return edit


def damaged_npy_header() -> bytes:
    """F1: hello_world's ``.npz`` with the ``}`` closing member s0.npy's header dict replaced by ``(``."""
    npz = as_npz(model_path("hello_world_int8"))
    members = fuzz_models.npz_members(npz)
    raw = bytearray(members["s0.npy"])
    raw[raw.index(b"}")] = ord("(")
    members["s0.npy"] = bytes(raw)
    return fuzz_models.build_npz(members)


def load(data: bytes):
    return load_npz(io.BytesIO(data)) if data[:2] == b"PK" else read_tflite(data)


def run_zeros(model):
    return model(*[np.zeros((1,) + t.shape[1:], t.dtype) for t in model.input_details])


# name -> (builder, expected error class, message fragment); F3 (constant output) runs instead
REFUSED = {
    "F1 damaged npy header": (damaged_npy_header, ModelFormatError, "damaged .npy header"),
    "F2 dilation 'RELU'": (lambda: edit_graph(as_npz(DIGITS), set_option("CONV_2D", "dilation_h_factor", "RELU")),
                           ModelFormatError, "dilation_h_factor = 'RELU' is not a valid int32"),
    "F2 dilation {}": (lambda: edit_graph(as_npz(DIGITS), set_option("CONV_2D", "dilation_h_factor", {})),
                       ModelFormatError, "dilation_h_factor = {}"),
    "F2 dilation list": (lambda: edit_graph(as_npz(DIGITS), set_option("CONV_2D", "dilation_w_factor", [1, 2])),
                         ModelFormatError, "dilation_w_factor = [1, 2]"),
    "F2 dilation Infinity": (lambda: edit_graph(as_npz(DIGITS), set_option("CONV_2D", "dilation_h_factor", float("inf"))),
                             ModelFormatError, "dilation_h_factor = inf"),
    "F2 beta string": (lambda: edit_graph(as_npz(model_path("micro_speech_quantized")),
                                          set_option("SOFTMAX", "beta", "SAME")),
                       ModelFormatError, "beta = 'SAME' is not a valid float32"),
    "F4 extra input": (lambda: edit_graph(as_npz(model_path("hello_world_int8")),
                                          lambda g: g["operators"][0]["inputs"].append(g["inputs"][0])),
                       UnsupportedOperatorError, "takes 2 to 3 input(s) and 1 output(s), the model gives 4 and 1"),
    "F5 denormal scale": (lambda: patch_u32(DIGITS, 13680, 0xE574), ArithmeticContractError, "left shift"),
    "FC reshape": (lambda: patch_u32(model_path("hello_world_int8"), 2664, 5408), UnsupportedOperatorError,
                   "output shape (1, 16) does not match the computed (5408, 16)"),
    "memory: dilation 2**20": (lambda: edit_graph(as_npz(DIGITS), set_option("DEPTHWISE_CONV_2D", "dilation_w_factor", 1 << 20, 8)),
                               MemoryLimitError, "padded input needs 1811946240 bytes"),
    "memory: dilation 2**31-1": (lambda: edit_graph(as_npz(DIGITS), set_option("DEPTHWISE_CONV_2D", "dilation_w_factor", 2**31 - 1, 8)),
                                 UnsupportedOperatorError, "overflows int32"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_reproducer_raises_its_tinyzo_error(name):
    build, cls, fragment = REFUSED[name]
    with pytest.raises(cls) as e:
        run_zeros(load(build()))
    assert fragment in str(e.value)


def test_f1_numpy_itself_raises_a_foreign_error():
    """The F1 header makes numpy's parser raise tokenize.TokenError (so the test above tests the catch)."""
    raw = fuzz_models.npz_members(damaged_npy_header())["s0.npy"]
    with pytest.raises(Exception) as e:
        np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
    assert not isinstance(e.value, TinyzoError)


def test_f2_options_are_checked_for_models_built_in_python_and_tflite():
    """Both formats and in-memory models: a bad option type or range is refused when prepared."""
    model = read_tflite(DIGITS.read_bytes())
    k = next(i for i, op in enumerate(model.operators) if op.opcode == "CONV_2D")
    for value, cls, fragment in (("RELU", ModelFormatError, "is not an integer"),
                                 (True, ModelFormatError, "is not an integer"),
                                 (0, UnsupportedOperatorError, "outside [1, 2147483647]")):
        ops = [Operator(op.opcode, op.inputs, op.outputs, dict(op.options)) for op in model.operators]
        ops[k].options["stride_h"] = value
        with pytest.raises(cls, match=fragment.replace("[", r"\[")):
            Model(model.tensors, ops, model.inputs, model.outputs)
    # a range error written to a .tflite (where types are fixed by the schema) is refused on reading
    ops = [Operator(op.opcode, op.inputs, op.outputs, dict(op.options)) for op in model.operators]
    ops[k].options["dilation_w_factor"] = -3
    fake = type("M", (), {"tensors": model.tensors, "operators": ops, "inputs": model.inputs,
                          "outputs": model.outputs, "name": "x", "rounding": "double"})()
    with pytest.raises(UnsupportedOperatorError, match="dilation_w_factor = -3"):
        read_tflite(write_tflite(fake))


def test_f3_constant_output_is_tflm_result():
    """F3: an output that is a constant tensor (here hello_world's 16x16 weights) returns the constant.

    TFLM returns the stored value for every sample; the samples are concatenated along dimension 0
    as for every tinyzo output, so batch 3 gives the (16, 16) constant three times, (48, 16).
    """
    data = patch_u32(model_path("hello_world_int8"), 1336, 4)
    model = read_tflite(data)
    const = model.tensors[model.outputs[0]].data
    assert const is not None and const.shape == (16, 16)
    y = model(np.zeros((3, 1), np.int8))
    np.testing.assert_array_equal(y, np.concatenate([const] * 3))
    np.testing.assert_array_equal(load(edit_graph(as_npz(model_path("hello_world_int8")),
                                                  lambda g: g.__setitem__("outputs", [4])))(np.zeros((1, 1), np.int8)),
                                  const)


@pytest.mark.oracle
def test_f3_constant_output_matches_tflm():
    from oracle import tflm_run

    data = patch_u32(model_path("hello_world_int8"), 1336, 4)
    x = np.array([[0], [5], [-7]], np.int8)
    want, _ = tflm_run(data, [x])
    np.testing.assert_array_equal(read_tflite(data)(x), want[0])


def test_f5_activation_range_refuses_a_denormal_scale():
    """F5 at its root: RELU6's bound 6 / 8.2e-41 is not an int32 (TFLite's cast is undefined)."""
    q = QuantParams(np.array([8.2e-41], np.float32), np.array([0]))
    with pytest.raises(ArithmeticContractError, match="not representable in int32"):
        activation_range("RELU6", q)
    assert activation_range("NONE", q) == (-128, 127)
    assert activation_range("RELU", QuantParams(np.array([0.1], np.float32), np.array([-5]))) == (-5, 127)


def test_operator_arity_is_checked_per_opcode():
    """F4 at its root: every registered operator has its input/output counts, checked before prepare."""
    from tinyzo.ops import REGISTRY
    from tinyzo.ops.base import OPERATOR_ARITY

    assert set(REGISTRY) <= set(OPERATOR_ARITY)
    model = read_tflite(model_path("hello_world_int8").read_bytes())
    ops = [Operator(op.opcode, op.inputs, op.outputs + (op.outputs[0],) if k == 1 else op.outputs, op.options)
           for k, op in enumerate(model.operators)]
    with pytest.raises(UnsupportedModelError, match="already written"):  # the same tensor written twice
        Model(model.tensors, ops, model.inputs, model.outputs)


def test_memory_limit_at_prepare_and_per_batch(monkeypatch):
    """A stated per-buffer limit: refused when prepared (one sample) and when called (the batch)."""
    model = read_tflite(DIGITS.read_bytes())

    def largest(n):
        return max(max(p.buffer_bytes(n).values()) for p in model.prepared)

    monkeypatch.setattr(tinyzo.limits, "MAX_BUFFER_BYTES", largest(1) - 1)
    with pytest.raises(MemoryLimitError, match=r"tinyzo.limits.MAX_BUFFER_BYTES\): the model file asks"):
        read_tflite(DIGITS.read_bytes())
    monkeypatch.setattr(tinyzo.limits, "MAX_BUFFER_BYTES", largest(4))
    monkeypatch.setattr("tinyzo.runtime.get_num_threads", lambda: 1)
    assert model(np.zeros((4, 32, 32, 1), np.int8)).shape == (4, 10)
    n = 5
    while largest(n) <= largest(4):
        n += 1
    with pytest.raises(MemoryLimitError, match=f"for {n} sample\\(s\\).*run the batch of {n} in smaller batches"):
        model(np.zeros((n, 32, 32, 1), np.int8))
    # the largest accepted batch is remembered per limit: under a lower limit even one sample is checked again
    monkeypatch.setattr(tinyzo.limits, "MAX_BUFFER_BYTES", largest(1) - 1)
    with pytest.raises(MemoryLimitError, match="for 1 sample"):
        model(np.zeros((1, 32, 32, 1), np.int8))
    monkeypatch.setattr(tinyzo.limits, "MAX_BUFFER_BYTES", largest(4))
    assert model(np.zeros((3, 32, 32, 1), np.int8)).shape == (3, 10)


# ------------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    files = {}
    for name, (build, _, _) in REFUSED.items():
        data = build()
        p = d / (name.replace(" ", "_").replace("*", "").replace("'", "") + (".npz" if data[:2] == b"PK" else ".tflite"))
        p.write_bytes(data)
        files[name] = p
    return files


@pytest.mark.parametrize("command", ["info", "run"])
def test_cli_prints_one_error_line_on_every_reproducer(command, corpus_files, tmp_path, capsys):
    for name, path in corpus_files.items():
        model_in = REFUSED[name]
        x = tmp_path / "x.npy"
        np.save(x, np.zeros((1, 32, 32, 1) if "dilation" in name or "F5" in name else (1, 1), np.int8))
        argv = [command, str(path)] + (["--input", str(x)] if command == "run" else [])
        assert main(argv) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("tinyzo: error: ") and err.count("\n") == 1, (name, err)
        assert model_in[2] in err and str(path) in err, (name, err)


def test_cli_subprocess_has_no_traceback(corpus_files, tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 1), np.int8))
    r = subprocess.run([sys.executable, "-m", "tinyzo", "run", str(corpus_files["F1 damaged npy header"]),
                        "--input", str(x)], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("tinyzo: error: ") and "damaged .npy header" in r.stderr


def test_cli_runs_the_constant_output_model(tmp_path, capsys):
    p = tmp_path / "const_out.tflite"
    p.write_bytes(patch_u32(model_path("hello_world_int8"), 1336, 4))
    np.save(tmp_path / "x.npy", np.zeros((1, 1), np.int8))
    assert main(["run", str(p), "--input", str(tmp_path / "x.npy")]) == 0
    assert "output 0 int8[16, 16]" in capsys.readouterr().out
    assert main(["info", str(p)]) == 0
    assert isinstance(tinyzo.load(p), tinyzo.Model)
