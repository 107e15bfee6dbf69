"""Model files: .tflite read/write round trips (checked in TFLite Micro), the native .npz format, load/save, errors."""

from __future__ import annotations

import io
import struct
import zipfile
from types import SimpleNamespace

import flatbuffers
import numpy as np
import pytest
from conftest import MODEL_NAMES, model_path

import tinyzo
from tinyzo.errors import ModelFormatError, TinyzoError, UnsupportedModelError, UnsupportedOperatorError
from tinyzo.graph import Operator, Tensor
from tinyzo.io import ModelFileNotFoundError, load, save
from tinyzo.io import tflite_schema as S
from tinyzo.io.flatbuf import FlatBuffer, Table
from tinyzo.io.npz import FORMAT_VERSION, read_npz_parts, save_npz
from tinyzo.io.tflite_read import read_tflite, read_tflite_parts
from tinyzo.io.tflite_write import write_tflite, write_tflite_parts
from tinyzo.quant import QuantParams

F = S.F


# ---------------------------------------------------------------------------- helpers
def _need_ops():
    """Skip when the operator package (written in parallel) cannot be imported yet."""
    try:
        import tinyzo.ops  # noqa: F401
    except ImportError as e:  # pragma: no cover - only while ops are being written
        pytest.skip(f"tinyzo.ops is not importable yet: {e}")


def _tflm_outputs(model_bytes: bytes, xs) -> np.ndarray:
    """Output 0 of TFLM (tests/oracle.py, skipped without tflite-micro) on a batch."""
    from oracle import tflm_run

    return tflm_run(model_bytes, xs)[0][0]


def _random_inputs(tensors, inputs, n, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, size=(n,) + tensors[i].shape[1:], dtype=np.int8) for i in inputs]


def _assert_tensors_equal(a, b):
    assert len(a) == len(b)
    for k, (x, y) in enumerate(zip(a, b)):
        assert (x.name, x.shape, x.dtype) == (y.name, y.shape, y.dtype), k
        assert x.quant == y.quant, k
        assert (x.data is None) == (y.data is None), k
        if x.data is not None:
            assert x.data.dtype == y.data.dtype and x.data.shape == y.data.shape, k
            np.testing.assert_array_equal(x.data, y.data)


def _q(scale=0.05, zp=0):
    return QuantParams([scale], [zp])


def _one_op(opcode, options=None, in_dtype=np.int8, shape=(1, 4)):
    """A one-operator model: tensor 0 (input) -> opcode -> tensor 1 (output)."""
    q = _q() if np.dtype(in_dtype).kind == "i" else None
    tensors = [Tensor("x", shape, in_dtype, q), Tensor("y", shape, in_dtype, q)]
    return tensors, [Operator(opcode, (0,), (1,), options or {})], (0,), (1,)


def _field_pos(data: bytes, path) -> int:
    """Absolute position of a stored field, found with the bounds-checked reader.

    ``path`` is ``[(vector field, element index), ..., (field, nbytes)]`` starting at the root Model table.
    """
    fb = FlatBuffer(data)
    t = fb.root(S.FILE_IDENTIFIER)
    for field, k in path[:-1]:
        start, _ = t.vector(field, 4, "v")
        t = Table(fb, fb.deref(start + 4 * k, "x"), "x")
    pos = t.field_pos(*path[-1])
    assert pos != 0, f"field {path} is not stored in this file"
    return pos


# ---------------------------------------------------------------------------- reading the real models
def test_read_real_models_structure():
    t, ops, ins, outs, desc = read_tflite_parts(model_path("person_detect").read_bytes())
    assert (len(t), len(ops), ins, outs) == (89, 31, (88,), (87,))
    assert desc == "TOCO Converted."
    assert [o.opcode for o in ops].count("DEPTHWISE_CONV_2D") == 13 + 1
    first = ops[0]
    assert first.opcode == "DEPTHWISE_CONV_2D"
    assert first.options == {
        "padding": "SAME",
        "stride_w": 2,
        "stride_h": 2,
        "depth_multiplier": 8,
        "fused_activation_function": "RELU6",
        "dilation_w_factor": 1,
        "dilation_h_factor": 1,
    }
    x = t[88]
    assert x.shape == (1, 96, 96, 1) and x.dtype == np.int8 and x.data is None
    # 1-D per-channel bias: the file says quantized_dimension 3, TFLM (and tinyzo) use axis 0
    bias = t[first.inputs[2]]
    assert bias.dtype == np.int32 and len(bias.shape) == 1 and bias.quant.per_channel and bias.quant.axis == 0
    w = t[first.inputs[1]]
    assert w.data.dtype == np.int8 and w.data.shape == w.shape and w.data.flags.writeable
    assert w.quant.axis == 3 and w.quant.scale.size == w.shape[3]

    t, ops, ins, outs, _ = read_tflite_parts(model_path("micro_speech_quantized").read_bytes())
    assert [o.opcode for o in ops] == ["RESHAPE", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"]
    assert ops[0].options == {"new_shape": [-1, 49, 40, 1]}
    assert ops[1].options["padding"] == "SAME" and ops[1].options["fused_activation_function"] == "RELU"
    assert ops[3].options == {"beta": 1.0}
    assert t[ins[0]].shape == (1, 1960)

    t, ops, ins, outs, _ = read_tflite_parts(model_path("simple_add_model").read_bytes())
    assert [o.opcode for o in ops] == ["ADD"] and ins == (0, 1) and outs == (2,)
    assert ops[0].options == {"fused_activation_function": "NONE", "pot_scale_int16": True}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_tflite_round_trip_is_exact(name):
    data = model_path(name).read_bytes()
    parts = read_tflite_parts(data)
    written = write_tflite_parts(*parts[:4])
    again = read_tflite_parts(written)
    _assert_tensors_equal(parts[0], again[0])
    assert parts[1] == again[1]
    assert parts[2:4] == again[2:4]
    assert again[4] == f"tinyzo {tinyzo.__version__}"
    # writing is deterministic: a second round trip gives the same bytes
    assert write_tflite_parts(*again[:4]) == written


def test_written_file_layout():
    data = write_tflite_parts(*read_tflite_parts(model_path("hello_world_int8").read_bytes())[:4])
    assert data[4:8] == b"TFL3"
    fb = FlatBuffer(data)
    root = fb.root(b"TFL3")
    assert root.scalar(F.MODEL_VERSION, "uint32", 0) == 3
    # buffer 0 is the empty sentinel; constant data is 16-byte aligned
    bufs = root.tables(F.MODEL_BUFFERS, "buffer")
    assert bufs[0].bytes_view(F.B_DATA, "d").nbytes == 0
    for b in bufs[1:]:
        start, n = b.vector(F.B_DATA, 1, "d")
        assert n > 0 and start % 16 == 0
    codes = root.tables(F.MODEL_OPERATOR_CODES, "code")
    assert [(c.scalar(0, "int8", 0), c.scalar(3, "int32", 0)) for c in codes] == [(9, 9)]


def test_opcode_above_127_writes_placeholder_deprecated_code():
    tensors, ops, ins, outs = _one_op("GELU")
    data = write_tflite_parts(tensors, ops, ins, outs)
    codes = FlatBuffer(data).root(b"TFL3").tables(F.MODEL_OPERATOR_CODES, "code")
    assert (codes[0].scalar(0, "int8", 0), codes[0].scalar(3, "int32", 0)) == (127, 150)
    assert read_tflite_parts(data)[1][0].opcode == "GELU"


def test_custom_op_round_trip():
    tensors, ops, ins, outs = _one_op("CUSTOM:MyOp")
    assert read_tflite_parts(write_tflite_parts(tensors, ops, ins, outs))[1][0].opcode == "CUSTOM:MyOp"


def test_writer_rejects_what_it_cannot_write():
    tensors, _, ins, outs = _one_op("ADD")
    with pytest.raises(ModelFormatError, match="unknown option.*strides"):
        write_tflite_parts(tensors, [Operator("MAX_POOL_2D", (0,), (1,), {"strides": 2})], ins, outs)
    with pytest.raises(ModelFormatError, match="padding"):
        write_tflite_parts(tensors, [Operator("MAX_POOL_2D", (0,), (1,), {"padding": "FULL"})], ins, outs)
    with pytest.raises(ModelFormatError, match="not a TFLite builtin"):
        write_tflite_parts(tensors, [Operator("FANCY_OP", (0,), (1,))], ins, outs)
    bad = [Tensor("w", (2,), np.int8, None, np.zeros(2, np.int32))]
    with pytest.raises(ModelFormatError, match="data is int32"):
        write_tflite_parts(bad, [], (0,), (0,))


# ---------------------------------------------------------------------------- TFLM runs the written bytes
@pytest.mark.oracle
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_tflm_runs_written_file_exactly_like_original(name):
    data = model_path(name).read_bytes()
    parts = read_tflite_parts(data)
    written = write_tflite_parts(*parts[:4])
    xs = _random_inputs(parts[0], parts[2], n=2 if name == "person_detect" else 8, seed=3)
    np.testing.assert_array_equal(_tflm_outputs(written, xs), _tflm_outputs(data, xs))


@pytest.mark.oracle
def test_tflm_runs_single_op_model_built_in_python():
    q = _q(0.05, 3)
    tensors = [Tensor("x", (1, 8, 8, 3), np.int8, q), Tensor("y", (1, 4, 4, 3), np.int8, q)]
    opts = {"padding": "VALID", "stride_w": 2, "stride_h": 2, "filter_width": 2, "filter_height": 2}
    data = write_tflite_parts(tensors, [Operator("MAX_POOL_2D", (0,), (1,), opts)], (0,), (1,))
    x = np.random.default_rng(1).integers(-128, 128, (3, 8, 8, 3), dtype=np.int8)
    np.testing.assert_array_equal(_tflm_outputs(data, [x]), x.reshape(3, 4, 2, 4, 2, 3).max(axis=(2, 4)))


def test_write_tflite_of_loaded_model_runs_like_tinyzo():
    _need_ops()
    model = tinyzo.load(model_path("micro_speech_quantized"))
    again = read_tflite(write_tflite(model))
    _assert_tensors_equal(model.tensors, again.tensors)
    assert model.operators == again.operators
    xs = _random_inputs(model.tensors, model.inputs, n=4, seed=5)
    np.testing.assert_array_equal(again(*xs), model(*xs))


# ---------------------------------------------------------------------------- native .npz
def _as_model(parts, name="m", rounding="double"):
    t, o, i, out = parts[:4]
    return SimpleNamespace(tensors=t, operators=o, inputs=i, outputs=out, name=name, rounding=rounding)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_npz_round_trip_is_exact(name):
    parts = read_tflite_parts(model_path(name).read_bytes())
    buf = io.BytesIO()
    save_npz(_as_model(parts, name, "single"), buf)
    t, o, i, out, got_name, rounding = read_npz_parts(io.BytesIO(buf.getvalue()))
    _assert_tensors_equal(parts[0], t)
    assert o == parts[1] and (i, out) == parts[2:4]
    assert (got_name, rounding) == (name, "single")


def test_npz_members_and_version():
    buf = io.BytesIO()
    save_npz(_as_model(read_tflite_parts(model_path("hello_world_int8").read_bytes())), buf)
    with np.load(io.BytesIO(buf.getvalue()), allow_pickle=False) as z:
        assert int(z["format_version"]) == FORMAT_VERSION
        assert z["graph"].dtype == np.uint8
        assert {"t1", "s0", "z0"} <= set(z.files)


def test_load_and_save_both_formats(tmp_path):
    _need_ops()
    model = load(model_path("hello_world_int8"))
    assert model.name == "hello_world_int8.tflite" and model.rounding == "double"
    x = np.arange(-128, 128, 8, dtype=np.int8).reshape(-1, 1)
    model.rounding = "single"
    save(model, tmp_path / "m.npz")
    save(model, tmp_path / "m.tflite")
    back = load(tmp_path / "m.npz")
    assert back.rounding == "single"
    _assert_tensors_equal(model.tensors, back.tensors)
    assert back.operators == model.operators
    assert load(tmp_path / "m.npz", rounding="double").rounding == "double"
    t = load(tmp_path / "m.tflite")
    assert t.rounding == "double"
    np.testing.assert_array_equal(t(x), load(model_path("hello_world_int8"))(x))
    np.testing.assert_array_equal(load(tmp_path / "m.npz", rounding="double")(x), t(x))
    # content decides the format, not the suffix
    (tmp_path / "renamed.bin").write_bytes((tmp_path / "m.npz").read_bytes())
    assert load(tmp_path / "renamed.bin").rounding == "single"


def _npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _good_npz() -> bytes:
    buf = io.BytesIO()
    save_npz(_as_model(read_tflite_parts(model_path("hello_world_int8").read_bytes())), buf)
    return buf.getvalue()


def test_npz_errors():
    good = _good_npz()
    with zipfile.ZipFile(io.BytesIO(good)) as z:
        members = {n: z.read(n) for n in z.namelist()}

    def rezip(**replace):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for n, d in {**members, **replace}.items():
                if d is not None:
                    z.writestr(n, d)
        return io.BytesIO(buf.getvalue())

    def npy(a):
        b = io.BytesIO()
        np.save(b, a, allow_pickle=True)
        return b.getvalue()

    cases = {
        "not a valid tinyzo .npz": io.BytesIO(b"PK\x03\x04 garbage"),
        "member 'graph' is missing": rezip(**{"graph.npy": None}),
        "format version": rezip(**{"format_version.npy": npy(np.array(99))}),
        "never unpickles": rezip(**{"graph.npy": npy(np.array([{"a": 1}], dtype=object))}),
        "not valid JSON": rezip(**{"graph.npy": npy(np.frombuffer(b"{nope", np.uint8))}),
        "header declares": rezip(**{"t1.npy": npy(np.zeros(16, np.int8))[:-8]}),
        "tensor 1: data is": rezip(**{"t1.npy": npy(np.zeros(3, np.int8))}),
    }
    for msg, f in cases.items():
        with pytest.raises(ModelFormatError, match=msg):
            read_npz_parts(f)
    for cut in (10, len(good) // 2, len(good) - 10):
        with pytest.raises(ModelFormatError):
            read_npz_parts(io.BytesIO(good[:cut]))


# ---------------------------------------------------------------------------- load(): dispatch and file errors
def test_load_file_errors(tmp_path):
    missing = tmp_path / "nope.tflite"
    with pytest.raises(ModelFileNotFoundError, match="nope.tflite"):
        load(missing)
    assert issubclass(ModelFileNotFoundError, TinyzoError) and issubclass(ModelFileNotFoundError, FileNotFoundError)
    (tmp_path / "empty.tflite").write_bytes(b"")
    with pytest.raises(ModelFormatError, match="empty"):
        load(tmp_path / "empty.tflite")
    (tmp_path / "junk.bin").write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(ModelFormatError, match=r"junk.bin: not a tinyzo \.npz or \.tflite model"):
        load(tmp_path / "junk.bin")
    with pytest.raises(ModelFormatError, match="is a directory"):
        load(tmp_path)
    with pytest.raises(ModelFormatError, match="use a .npz"):
        save(SimpleNamespace(), tmp_path / "m.onnx")


# ---------------------------------------------------------------------------- .tflite errors
def test_truncated_files_raise_model_format_error():
    data = model_path("micro_speech_quantized").read_bytes()
    for cut in (0, 3, 7, 8, 12, 100, 1000, len(data) // 2, len(data) - 100, len(data) - 1):
        with pytest.raises(ModelFormatError):
            read_tflite_parts(data[:cut])
    with pytest.raises(ModelFormatError, match="truncated"):
        read_tflite_parts(data[:1000])


def test_random_bytes_and_wrong_identifier():
    rng = np.random.default_rng(0)
    with pytest.raises(ModelFormatError, match="empty"):
        read_tflite_parts(b"")
    with pytest.raises(ModelFormatError, match="missing TFL3 identifier; convert the model with the TFLite converter"):
        read_tflite_parts(rng.bytes(1000))
    data = bytearray(model_path("hello_world_int8").read_bytes())
    data[4:8] = b"TFL2"
    with pytest.raises(ModelFormatError, match="not a .tflite file"):
        read_tflite_parts(bytes(data))
    for seed in range(20):
        junk = bytearray(np.random.default_rng(seed).bytes(64 + 50 * seed))
        junk[4:8] = b"TFL3"
        with pytest.raises(TinyzoError):
            read_tflite_parts(bytes(junk))


def test_out_of_range_buffer_is_named():
    data = bytearray(model_path("person_detect").read_bytes())
    nbuf = FlatBuffer(bytes(data)).root(b"TFL3").table_count(F.MODEL_BUFFERS, "b")
    pos = _field_pos(bytes(data), [(F.MODEL_SUBGRAPHS, 0), (F.SG_TENSORS, 12), (F.T_BUFFER, 4)])
    struct.pack_into("<I", data, pos, nbuf + 10)
    with pytest.raises(
        ModelFormatError, match=rf"tensor 12 .*buffer {nbuf + 10} is out of range \(file has {nbuf} buffers\)"
    ):
        read_tflite_parts(bytes(data))


def test_huge_vector_length_is_refused_before_allocating():
    data = bytearray(model_path("person_detect").read_bytes())
    fb = FlatBuffer(bytes(data))
    for field in (F.MODEL_BUFFERS, F.MODEL_SUBGRAPHS, F.MODEL_OPERATOR_CODES):
        corrupt = bytearray(data)
        start, _ = fb.root(b"TFL3").vector(field, 4, "v")
        struct.pack_into("<I", corrupt, start - 4, 0x7FFFFFFF)
        with pytest.raises(ModelFormatError, match="vector length 2147483647"):
            read_tflite_parts(bytes(corrupt))
    # the shape vector of one tensor
    sg = Table(fb, fb.deref(fb.root(b"TFL3").vector(F.MODEL_SUBGRAPHS, 4, "s")[0], "s"), "s")
    tensor = Table(fb, fb.deref(sg.vector(F.SG_TENSORS, 4, "t")[0] + 4 * 5, "t"), "t")
    start, _ = tensor.vector(F.T_SHAPE, 4, "shape")
    struct.pack_into("<I", data, start - 4, 0x7FFFFFFF)
    with pytest.raises(ModelFormatError, match="tensor 5.*vector length 2147483647"):
        read_tflite_parts(bytes(data))


def test_corrupt_fields_are_named():
    # our own file: operator codes in order of first use, so operator 1 has a stored opcode index 1
    data = write_tflite_parts(*read_tflite_parts(model_path("micro_speech_quantized").read_bytes())[:4])
    cases = [
        (
            [(F.MODEL_SUBGRAPHS, 0), (F.SG_OPERATORS, 1), (F.OP_OPCODE_INDEX, 4)],
            "<I",
            7,
            "opcode index 7 is out of range",
        ),
        ([(F.MODEL_SUBGRAPHS, 0), (F.SG_TENSORS, 3), (F.T_TYPE, 1)], "<b", 99, "type code 99 is not a TensorType"),
        ([(F.MODEL_VERSION, 4)], "<I", 2, "schema version 2"),
        ([(F.MODEL_SUBGRAPHS, 0), (F.SG_OPERATORS, 0), (F.OP_OPTIONS_TYPE, 1)], "<B", 5, "carries Pool2DOptions"),
    ]
    for path, fmt, value, msg in cases:
        corrupt = bytearray(data)
        struct.pack_into(fmt, corrupt, _field_pos(data, path), value)
        with pytest.raises(ModelFormatError, match=msg):
            read_tflite_parts(bytes(corrupt))


def test_float32_model_is_refused_with_conversion_hint():
    tensors, ops, ins, outs = _one_op("RELU", in_dtype=np.float32)
    data = write_tflite_parts(tensors, ops, ins, outs)
    assert read_tflite_parts(data)[0][0].dtype == np.float32  # the format itself is fine
    with pytest.raises(UnsupportedModelError, match="float32 model.*full-integer post-training quantization"):
        read_tflite(data)
    # int8 input but float activations inside (a QUANTIZE/DEQUANTIZE-wrapped float model)
    q = _q()
    t = [Tensor("x", (1, 4), np.int8, q), Tensor("f", (1, 4), np.float32), Tensor("y", (1, 4), np.int8, q)]
    o = [Operator("DEQUANTIZE", (0,), (1,)), Operator("QUANTIZE", (1,), (2,))]
    with pytest.raises(UnsupportedModelError, match="float32 model"):
        read_tflite(write_tflite_parts(t, o, (0,), (2,)))


@pytest.mark.parametrize("opcode", ["GATHER", "LSTM", "CUSTOM:MyOp"])
def test_unsupported_operator_is_named(opcode):
    _need_ops()
    tensors, ops, ins, outs = _one_op(opcode)
    with pytest.raises(UnsupportedOperatorError, match=rf"operator 0.*{opcode}"):
        read_tflite(write_tflite_parts(tensors, ops, ins, outs))


def test_dynamic_and_zero_dims():
    tensors, ops, ins, outs = _one_op("RELU", shape=(1, 4))
    data = bytearray(write_tflite_parts(tensors, ops, ins, outs))
    fb = FlatBuffer(bytes(data))
    sg = Table(fb, fb.deref(fb.root(b"TFL3").vector(F.MODEL_SUBGRAPHS, 4, "s")[0], "s"), "s")
    t1 = Table(fb, fb.deref(sg.vector(F.SG_TENSORS, 4, "t")[0] + 4, "t"), "t")
    start, _ = t1.vector(F.T_SHAPE, 4, "shape")
    for value, err, msg in [
        (-1, UnsupportedModelError, "unknown \\(-1\\)"),
        (-7, ModelFormatError, "dimension 1 is -7"),
        (0, UnsupportedModelError, "zero dimension"),
        (1 << 30, ModelFormatError, "more than tinyzo's limit of 2\\*\\*28"),
    ]:
        corrupt = bytearray(data)
        struct.pack_into("<i", corrupt, start + 4, value)
        with pytest.raises(err, match=msg):
            read_tflite_parts(bytes(corrupt))


def _external_buffer_model(offset_delta: int = 0) -> bytes:
    """A hand-built ADD model whose constant operand lives after the FlatBuffer, referenced by
    Buffer.offset/size (schema 3c, the converter's layout for models over 2 GB)."""
    const = np.array([[1, -2, 3, -4]], np.int8)

    def build(offset):
        b = flatbuffers.Builder(256)
        b.StartObject(3)
        empty = b.EndObject()
        b.StartObject(3)
        b.PrependUint64Slot(F.B_OFFSET, offset, 0)
        b.PrependUint64Slot(F.B_SIZE, const.nbytes, 0)
        ext = b.EndObject()
        b.StartVector(4, 2, 4)
        b.PrependUOffsetTRelative(ext)
        b.PrependUOffsetTRelative(empty)
        bufs = b.EndVector()
        tens = []
        for name, buf in (("x", 0), ("c", 1), ("y", 0)):
            n = b.CreateString(name)
            shape = b.CreateNumpyVector(np.array([1, 4], np.int32))
            sc = b.CreateNumpyVector(np.array([0.5], np.float32))
            zp = b.CreateNumpyVector(np.array([0], np.int64))
            b.StartObject(7)
            b.PrependUOffsetTRelativeSlot(F.Q_SCALE, sc, 0)
            b.PrependUOffsetTRelativeSlot(F.Q_ZERO_POINT, zp, 0)
            q = b.EndObject()
            b.StartObject(10)
            b.PrependUOffsetTRelativeSlot(F.T_SHAPE, shape, 0)
            b.PrependInt8Slot(F.T_TYPE, 9, 0)
            b.PrependUint32Slot(F.T_BUFFER, buf, 0)
            b.PrependUOffsetTRelativeSlot(F.T_NAME, n, 0)
            b.PrependUOffsetTRelativeSlot(F.T_QUANT, q, 0)
            tens.append(b.EndObject())
        b.StartVector(4, 3, 4)
        for t in reversed(tens):
            b.PrependUOffsetTRelative(t)
        tv = b.EndVector()
        ins = b.CreateNumpyVector(np.array([0, 1], np.int32))
        outs = b.CreateNumpyVector(np.array([2], np.int32))
        b.StartObject(5)
        b.PrependUOffsetTRelativeSlot(F.OP_INPUTS, ins, 0)
        b.PrependUOffsetTRelativeSlot(F.OP_OUTPUTS, outs, 0)
        op = b.EndObject()
        b.StartVector(4, 1, 4)
        b.PrependUOffsetTRelative(op)
        ov = b.EndVector()
        gi = b.CreateNumpyVector(np.array([0], np.int32))
        go = b.CreateNumpyVector(np.array([2], np.int32))
        b.StartObject(5)
        b.PrependUOffsetTRelativeSlot(F.SG_TENSORS, tv, 0)
        b.PrependUOffsetTRelativeSlot(F.SG_INPUTS, gi, 0)
        b.PrependUOffsetTRelativeSlot(F.SG_OUTPUTS, go, 0)
        b.PrependUOffsetTRelativeSlot(F.SG_OPERATORS, ov, 0)
        sg = b.EndObject()
        b.StartVector(4, 1, 4)
        b.PrependUOffsetTRelative(sg)
        sgv = b.EndVector()
        b.StartObject(4)
        b.PrependInt32Slot(F.OPCODE_BUILTIN, 0, 1)  # ADD, written explicitly
        oc = b.EndObject()
        b.StartVector(4, 1, 4)
        b.PrependUOffsetTRelative(oc)
        ocv = b.EndVector()
        b.StartObject(8)
        b.PrependUint32Slot(F.MODEL_VERSION, 3, 0)
        b.PrependUOffsetTRelativeSlot(F.MODEL_OPERATOR_CODES, ocv, 0)
        b.PrependUOffsetTRelativeSlot(F.MODEL_SUBGRAPHS, sgv, 0)
        b.PrependUOffsetTRelativeSlot(F.MODEL_BUFFERS, bufs, 0)
        b.Finish(b.EndObject(), file_identifier=b"TFL3")
        return bytes(b.Output())

    size = len(build(1 << 20))  # same layout for any offset > 1: the field is always present
    offset = (size + 15) // 16 * 16
    fb = build(offset + offset_delta)
    assert len(fb) == size
    return fb + bytes(offset - size) + const.tobytes()


def test_buffers_stored_by_offset_and_size():
    tensors, ops, ins, _, _ = read_tflite_parts(_external_buffer_model())
    np.testing.assert_array_equal(tensors[1].data, [[1, -2, 3, -4]])
    assert tensors[0].data is None and ops[0].opcode == "ADD" and ins == (0,)
    with pytest.raises(ModelFormatError, match="buffer 1: 4 bytes at offset .* run past the end"):
        read_tflite_parts(_external_buffer_model(offset_delta=64))


def test_file_size_limit(monkeypatch):
    import tinyzo.io.tflite_read as tr

    monkeypatch.setattr(tr, "MAX_FILE_BYTES", 1000)
    with pytest.raises(ModelFormatError, match="more than tinyzo's limit"):
        read_tflite_parts(model_path("hello_world_int8").read_bytes())


LAYOUT_OPS = ["SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "STRIDED_SLICE", "SPLIT", "SPLIT_V", "GATHER", "CAST",
              "BATCH_MATMUL"]


@pytest.mark.parametrize("opcode", LAYOUT_OPS)
def test_new_operators_round_trip_through_both_formats(opcode):
    """Their options (squeeze_dims, masks, num_splits, axis/batch_dims, adj_x/adj_y) and int16/int32/uint32/float32
    tensors survive .npz and .tflite: the reloaded model computes the same outputs."""
    from single_op import CASES, random_inputs

    from tinyzo.io.npz import load_npz

    rng = np.random.default_rng(11)
    for k in range(4):
        m = CASES[opcode](rng)
        buf = io.BytesIO()
        save_npz(m, buf)
        xs = random_inputs(m, 2, np.random.default_rng(k))
        want = m(*xs)
        want = want if isinstance(want, tuple) else (want,)
        for m2 in (load_npz(buf.getvalue()), read_tflite(write_tflite(m))):
            for o1, o2 in zip(m.operators, m2.operators):  # the reader adds the schema defaults of unset fields
                assert {key: o2.options[key] for key in o1.options} == o1.options
            got = m2(*xs)
            got = got if isinstance(got, tuple) else (got,)
            for a, b in zip(want, got):
                assert a.dtype == b.dtype
                np.testing.assert_array_equal(a, b)
