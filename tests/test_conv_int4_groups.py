"""INT4 weights and grouped CONV_2D: packing, reading and writing, prepared ops == the spec, refusals.

(1) :mod:`tinyzo.io.int4` (vectorized) == :mod:`tinyzo.spec.int4` (TFLM's ``UnpackDenseInt4IntoInt8``
line by line), on every byte and random lengths; (2) the .tflite and .npz files carry INT4 packed
(two per byte, low nibble first) and read back unpacked; (3) INT4 and grouped int8 operators (both
CONV_2D paths) equal the spec; (4) refusals. TFLM itself: tests/test_conv_types_tflm.py.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from single_op import TYPED_CASES, random_inputs
from test_conv16x8 import spec_output

from tinyzo.errors import ModelFormatError, UnsupportedModelError, UnsupportedOperatorError
from tinyzo.graph import Model, Operator, Tensor
from tinyzo.io import read_tflite, write_tflite
from tinyzo.io.int4 import pack_int4, unpack_int4
from tinyzo.io.npz import load_npz, save_npz
from tinyzo.io.tflite_read import read_tflite_parts
from tinyzo.memory.schedule import flash_contents, scratch_bytes
from tinyzo.ops.conv_paths import available_paths
from tinyzo.quant import QuantParams
from tinyzo.spec.int4 import pack_int4 as pack_spec
from tinyzo.spec.int4 import unpack_dense_int4_into_int8

NO_JIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
PROP = settings(max_examples=15 if NO_JIT else 120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INT4_GROUPED = [n for n in TYPED_CASES if "int4" in n or n == "CONV_2D grouped"]


# ----------------------------------------------------------------------------- (1) packing
def test_unpack_every_byte():
    """Both nibbles of all 256 bytes: low nibble first, each sign-extended (0x8..0xF -> -8..-1)."""
    raw = bytes(range(256))
    got = unpack_int4(raw, 512)
    assert got.tolist() == unpack_dense_int4_into_int8(list(np.frombuffer(raw, np.int8)), 512)
    assert got[:4].tolist() == [0, 0, 1, 0] and got[2 * 0x8F:2 * 0x8F + 2].tolist() == [-1, -8]
    assert pack_int4(got) == raw


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-8, 7), max_size=41))
def test_pack_unpack_equal_spec(values):
    packed = pack_int4(np.array(values, np.int8))
    assert list(np.frombuffer(packed, np.int8)) == pack_spec(values)
    assert len(packed) == (len(values) + 1) // 2
    assert unpack_int4(packed, len(values)).tolist() == unpack_dense_int4_into_int8(list(np.frombuffer(
        packed, np.int8)), len(values)) == values


def test_odd_count_ignores_the_last_high_nibble():
    """TFLM reads only the low nibble of the last byte of an odd-length tensor."""
    assert unpack_int4(bytes([0x7F]), 1).tolist() == unpack_dense_int4_into_int8([0x7F], 1) == [-1]
    with pytest.raises(ValueError, match="do not fit INT4"):
        pack_int4(np.array([3, 8], np.int8))


# ----------------------------------------------------------------------------- (2) files
def _int4_model(seed=0):
    return TYPED_CASES["CONV_2D int4"](np.random.default_rng(seed))


def test_tflite_and_npz_round_trip_int4():
    m = _int4_model()
    w = m.tensors[1]
    data = write_tflite(m)
    tensors = read_tflite_parts(data)[0]
    assert tensors[1].int4 and tensors[1].dtype == np.int8
    np.testing.assert_array_equal(tensors[1].data, w.data)
    back = read_tflite(data)
    x = random_inputs(m, 3, np.random.default_rng(1))[0]
    np.testing.assert_array_equal(back(x), m(x))
    buf = io.BytesIO()
    save_npz(back, buf)
    buf.seek(0)
    again = load_npz(buf)
    assert again.tensors[1].int4
    np.testing.assert_array_equal(again.tensors[1].data, w.data)
    np.testing.assert_array_equal(again(x), m(x))
    # the file holds the packed bytes: one byte per two weights
    assert w.nbytes == (w.data.size + 1) // 2 and flash_contents(m)["weights"] == w.nbytes
    assert scratch_bytes(m, 0) == [w.data.size]  # TFLM unpacks the filter into the arena


def test_int4_file_errors():
    m = _int4_model()
    m.tensors[1].data[0, 0, 0, 0] = 8  # no longer representable
    with pytest.raises(ModelFormatError, match=r"INT4 tensor takes values in \[-8, 7\]"):
        write_tflite(m)
    t = Tensor("x", (1, 4), np.int8, QuantParams([0.1], [0]), None, int4=True)
    with pytest.raises(ModelFormatError, match="only constant tensors can be INT4"):
        from tinyzo.io.tflite_write import write_tflite_parts
        write_tflite_parts([t], [], (0,), (0,))


def test_reader_refuses_runtime_int4_and_bad_sizes(monkeypatch):
    import tinyzo.io.tflite_write as W

    t = Tensor("w", (5,), np.int8, QuantParams([0.1], [0]), np.array([1, -2, 3, -8, 7], np.int8), int4=True)
    data = W.write_tflite_parts([t], [], (0,), (0,))
    assert read_tflite_parts(data)[0][0].data.tolist() == [1, -2, 3, -8, 7]
    real = W.pack_int4
    monkeypatch.setattr(W, "pack_int4", lambda v: real(v) + b"\0")  # one byte too many for 5 values
    with pytest.raises(ModelFormatError, match=r"buffer 1 has 4 bytes, but shape \[5\] of INT4 \(two per byte\) needs 3"):
        read_tflite_parts(W.write_tflite_parts([t], [], (0,), (0,)))
    monkeypatch.setattr(W, "_tensor_payload", lambda t, k: None)  # typed INT4, no buffer: a run-time tensor
    with pytest.raises(UnsupportedModelError, match="INT4 tensor computed at run time"):
        read_tflite_parts(W.write_tflite_parts([t], [], (0,), (0,)))


# ----------------------------------------------------------------------------- (3) ops == spec
@PROP
@given(name=st.sampled_from(INT4_GROUPED), seed=st.integers(0, 2**32 - 1), rounding=st.sampled_from(["double", "single"]))
def test_int4_and_grouped_ops_equal_spec(name, seed, rounding):
    rng = np.random.default_rng(seed)
    model = TYPED_CASES[name](rng, rounding)
    (x,) = random_inputs(model, 2, rng)
    want = spec_output(model, x).reshape(-1)
    p = model.prepared[0]
    for path in (available_paths() if model.operators[0].opcode == "CONV_2D" else (None,)):
        if path is not None:
            p.set_path(path)
        np.testing.assert_array_equal(model(x).reshape(-1), want, err_msg=f"{name} path {path}")


def test_grouped_conv_is_groups_of_dense_convs():
    """A grouped CONV_2D equals, group by group, a dense CONV_2D on that group's input channels."""
    rng = np.random.default_rng(4)
    model = TYPED_CASES["CONV_2D grouped"](rng)
    p, op = model.prepared[0], model.operators[0]
    (x,) = random_inputs(model, 2, rng)
    y = model(x)
    w = model.tensors[op.inputs[1]]
    cg, per = w.shape[3], p.n_out // p.groups
    assert p.groups >= 2 and p.macs() * p.groups == p.out_h * p.out_w * p.n_out * p.k_len
    for g in range(p.groups):
        sub = Model([Tensor("x", (1,) + x.shape[1:3] + (cg,), np.int8, model.tensors[0].quant),
                     Tensor("w", (per,) + w.shape[1:], np.int8,
                            QuantParams(w.quant.scale[g * per:(g + 1) * per] if w.quant.per_channel else w.quant.scale,
                                        np.zeros(per if w.quant.per_channel else 1)),
                            w.data[g * per:(g + 1) * per]),
                     Tensor("b", (per,), np.int32, None, model.tensors[2].data[g * per:(g + 1) * per]),
                     Tensor("y", (1, p.out_h, p.out_w, per), np.int8, model.tensors[3].quant)],
                    [Operator("CONV_2D", (0, 1, 2), (3,), op.options)], (0,), (3,))
        np.testing.assert_array_equal(sub(np.ascontiguousarray(x[..., g * cg:(g + 1) * cg])),
                                      y[..., g * per:(g + 1) * per])


# ----------------------------------------------------------------------------- (4) refusals
def test_refusals_name_what_is_missing():
    m = TYPED_CASES["FULLY_CONNECTED int4"](np.random.default_rng(0))
    x, w, b, y = m.tensors
    pc = Tensor("w", w.shape, np.int8, QuantParams(np.full(w.shape[0], 0.01), np.zeros(w.shape[0]), 0), w.data,
                int4=True)
    with pytest.raises(UnsupportedOperatorError, match="INT4 weights must be quantized per tensor"):
        Model([x, pc, b, y], m.operators, (0,), (3,))
    b64 = Tensor("b", b.shape, np.int64, b.quant, b.data.astype(np.int64))
    with pytest.raises(UnsupportedOperatorError, match="INT4 weights with int16 activations are not supported"):
        Model([Tensor("x", x.shape, np.int16, QuantParams([1e-3], [0])), w, b64,
               Tensor("y", y.shape, np.int16, QuantParams([1e-3], [0]))], m.operators, (0,), (3,))
    m = _int4_model()
    m.tensors[1].data[...] = 9  # a training-style update outside [-8, 7]
    with pytest.raises(UnsupportedOperatorError, match=r"outside \[-8, 7\]"):
        m.prepared[0].load_params()
    g = next(m for m in (TYPED_CASES["CONV_2D grouped"](np.random.default_rng(k)) for k in range(50))
             if m.tensors[1].shape[3] >= 2)  # a filter depth that input depth + 1 is no multiple of
    x, w, b, y = g.tensors
    with pytest.raises(UnsupportedOperatorError, match="not a multiple of the filter depth"):
        Model([Tensor("x", x.shape[:3] + (x.shape[3] + 1,), np.int8, x.quant), w, b, y], g.operators, (0,), (3,))
    n = w.shape[0] + 1
    with pytest.raises(UnsupportedOperatorError, match="cannot be split into"):
        Model([x, Tensor("w", (n,) + w.shape[1:], np.int8, QuantParams([0.01], [0]), np.ones((n,) + w.shape[1:], np.int8)),
               Tensor("b", (n,), np.int32, None, np.zeros(n, np.int32)), Tensor("y", y.shape[:3] + (n,), np.int8, y.quant)],
              g.operators, (0,), (3,))


def test_int4_and_grouped_layers_are_not_trainable():
    assert _int4_model().trainable_ops() == []
    assert TYPED_CASES["CONV_2D grouped"](np.random.default_rng(2)).trainable_ops() == []


def test_c_port_export_refuses_grouped_convolution():
    from tinyzo.golden.export import GoldenError, model_tables

    with pytest.raises(GoldenError, match="not grouped convolution"):
        model_tables(TYPED_CASES["CONV_2D grouped"](np.random.default_rng(2)))
