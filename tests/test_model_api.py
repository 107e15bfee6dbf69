"""The Model API: input validation, several inputs/outputs, float helpers, .npz round trip."""

import numpy as np
import pytest

import tinyzo
from conftest import model_path
from tinyzo import InputError


@pytest.fixture(scope="module")
def person():
    return tinyzo.load(model_path("person_detect"))


@pytest.mark.parametrize(
    "x, needle",
    [
        (np.zeros((1, 96, 96, 1), np.float32), "must be int8"),
        (np.zeros((1, 96, 96, 1), np.uint8), "must be int8"),
        (np.zeros((96, 96, 1), np.int8), "leading batch"),
        (np.zeros((1, 96, 95, 1), np.int8), "shape"),
        (np.zeros((0, 96, 96, 1), np.int8), "empty batch"),
        ([[1, 2]], "numpy array"),
    ],
)
def test_bad_inputs_raise_input_error(person, x, needle):
    with pytest.raises(InputError, match=needle):
        person(x)


def test_wrong_number_of_inputs():
    add = tinyzo.load(model_path("simple_add_model"))
    x = np.zeros((1, 128, 128, 1), np.int8)
    with pytest.raises(InputError, match="takes 2 input"):
        add(x)
    with pytest.raises(InputError, match="same batch size"):
        add(x, np.zeros((2, 128, 128, 1), np.int8))
    assert add(x, x).shape == (1, 128, 128, 1)


def test_intermediates_cover_every_computed_tensor(person):
    x = np.zeros((2, 96, 96, 1), np.int8)
    y, acts = person(x, intermediates=True)
    computed = {t for op in person.operators for t in op.outputs}
    assert computed <= set(acts)
    np.testing.assert_array_equal(acts[person.outputs[0]], y)
    assert all(a.shape[0] == 2 for k, a in acts.items() if k in computed)


def test_float_helpers_use_the_model_parameters(person):
    t_in, t_out = person.input_details[0], person.output_details[0]
    xf = np.linspace(-1, 1, 96 * 96, dtype=np.float32).reshape(1, 96, 96, 1)
    xq = person.quantize_input(xf)
    assert xq.dtype == np.int8
    # scale 1/127.5, zero point -1: -1.0 -> -128.5 -> -129 clamps to -128, 1.0 -> 126.5 + ... -> 127
    want = np.clip(np.trunc(xf / t_in.quant.scale[0] + np.copysign(0.5, xf)) + t_in.quant.zero_point[0], -128, 127)
    np.testing.assert_array_equal(xq, want.astype(np.int8))
    y = person(xq)
    p = person.dequantize_output(y)
    np.testing.assert_array_equal(p, (t_out.quant.scale[0] * (y.astype(np.int64) - t_out.quant.zero_point[0])).astype(np.float32))


def test_npz_round_trip_is_exact(tmp_path, person):
    path = tmp_path / "p.npz"
    person.save(path)
    again = tinyzo.load(path)
    x = np.random.default_rng(0).integers(-128, 128, size=(3, 96, 96, 1), dtype=np.int8)
    np.testing.assert_array_equal(again(x), person(x))
    assert len(again.tensors) == len(person.tensors)
    for a, b in zip(again.tensors, person.tensors):
        assert (a.name, a.shape, a.dtype, a.quant) == (b.name, b.shape, b.dtype, b.quant)
        assert (a.data is None) == (b.data is None)
        if a.data is not None:
            np.testing.assert_array_equal(a.data, b.data)
    assert [(o.opcode, o.inputs, o.outputs) for o in again.operators] == [
        (o.opcode, o.inputs, o.outputs) for o in person.operators]


def test_single_rounding_survives_npz(tmp_path):
    m = tinyzo.load(model_path("hello_world_int8"), rounding="single")
    m.save(tmp_path / "h.npz")
    assert tinyzo.load(tmp_path / "h.npz").rounding == "single"


def test_unknown_rounding_is_refused():
    with pytest.raises((ValueError, tinyzo.TinyzoError)):
        tinyzo.load(model_path("hello_world_int8"), rounding="nearest")


def test_inputs_from_names_what_forward_from_needs(person):
    """Model.inputs_from(start): the tensors forward_from(env, start) reads from earlier operators; an env
    of just those runs, one fewer is refused, a bad start is an InputError."""
    x = np.zeros((2,) + tuple(person.tensors[person.inputs[0]].shape[1:]), np.int8)
    y, env = person(x, intermediates=True)
    for start in (0, 3, len(person.operators) - 1):
        need = person.inputs_from(start)
        assert need and all(isinstance(t, int) for t in need)
        np.testing.assert_array_equal(person.forward_from({t: env[t] for t in need}, start), y)
        with pytest.raises(InputError, match="lacks tensors"):
            person.forward_from({t: env[t] for t in need[1:]}, start)
    for bad in (-1, len(person.operators), "3"):
        with pytest.raises(InputError, match="start must be"):
            person.inputs_from(bad)
