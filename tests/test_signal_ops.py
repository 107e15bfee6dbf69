"""The jitted signal kernels (tinyzo.kernels.signal) against the plain-Python spec (tinyzo.spec.signal),
row by row on random and edge inputs; int32 ADD/MUL/DIV/MIN/MAX and int16/int32 RESHAPE/CONCATENATION
against TFLM on one-operator models; the audio CLI and `tinyzo memory` on the front end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyzo.kernels import signal as K
from tinyzo.ops.signal import kiss_plan
from tinyzo.spec import signal as S

DATA = Path(__file__).parent / "data" / "tflite-micro"
EDGE16 = [-32768, -32767, -1, 0, 1, 2, 32766, 32767]


def rows16(rng, n, length):
    x = rng.integers(-32768, 32768, (n, length)).astype(np.int16)
    k = min(length, len(EDGE16))
    x[0, :k] = EDGE16[:k]
    x[1] = 0
    x[2] = rng.integers(-3, 4, length)
    return x


@given(st.integers(0, 2**31 - 1), st.integers(0, 31))
@settings(max_examples=30, deadline=None)
def test_window(seed, shift):
    rng = np.random.default_rng(seed)
    x, w = rows16(rng, 4, 24), rng.integers(-32768, 32768, 8).astype(np.int16)
    out = np.empty_like(x)
    K.window_s16(x, w, shift, out)
    for b in range(4):
        assert out[b].tolist() == S.window(x[b].tolist(), w.tolist(), shift)


def test_fft_auto_scale():
    rng = np.random.default_rng(1)
    x = rows16(rng, 6, 33)
    x[3] = 0
    x[3, 5] = -32768
    x[4] = rng.integers(-100, 100, 33)
    out, bits = np.empty_like(x), np.empty(6, np.int32)
    K.fft_auto_scale_s16(x, out, bits)
    for b in range(6):
        want, s = S.fft_auto_scale(x[b].tolist())
        assert out[b].tolist() == want and bits[b] == s


@pytest.mark.parametrize("fft_length", [8, 12, 20, 40, 64, 512, 2 * 14])
def test_rfft_spec_vs_kernel(fft_length):
    """Radix 2, 3, 4, 5 and (2 * 14 -> half length 14 = 2 * 7) the generic butterfly."""
    rng = np.random.default_rng(fft_length)
    length = fft_length - 3
    x = rows16(rng, 5, length)
    perm, stages, twr, twi = kiss_plan(fft_length // 2)
    sup = S.kiss_fftr_twiddles(fft_length)
    out = np.empty((5, 2 * (fft_length // 2 + 1)), np.int16)
    work = np.empty((4, fft_length // 2), np.int64)
    K.rfft_s16(x, fft_length, perm, stages, twr, twi, np.array([t[0] for t in sup], np.int64),
               np.array([t[1] for t in sup], np.int64), work, out)
    for b in range(5):
        assert out[b].tolist() == S.rfft(x[b].tolist(), fft_length)


def test_kiss_fft_is_a_scaled_dft():
    """Sanity of the spec itself: KISS FFT's fixed-point output is the DFT / n, within rounding."""
    rng = np.random.default_rng(7)
    x = rng.integers(-8000, 8000, 64)
    got = np.array(S.rfft(x.tolist(), 64), float).reshape(-1, 2)
    want = np.fft.rfft(x) / 64
    assert np.max(np.abs(got[:, 0] - want.real)) < 4 and np.max(np.abs(got[:, 1] - want.imag)) < 4


def test_energy_filter_bank_sqrt():
    rng = np.random.default_rng(2)
    spec = rows16(rng, 3, 2 * 33)
    energy = np.empty((3, 33), np.uint32)
    K.energy_u32(spec, 2, 30, energy)
    for b in range(3):
        assert energy[b].tolist() == S.energy(spec[b].tolist(), 2, 30)
    energy = rng.integers(0, 2**32, (3, 33), dtype=np.uint64).astype(np.uint32)
    energy[0, :4] = [0, 1, 2**32 - 1, 2**31]
    w = rng.integers(-4096, 4096, 40).astype(np.int16)
    u = rng.integers(0, 4096, 40).astype(np.int16)
    fs = np.array([0, 3, 8, 12, 20, 25], np.int16)
    ws = np.array([0, 5, 10, 18, 25, 33], np.int16)
    wd = np.array([3, 5, 6, 7, 8, 4], np.int16)
    out = np.empty((3, 5), np.uint64)
    K.filter_bank_u64(energy, w, u, fs, ws, wd, 5, out)
    for b in range(3):
        assert out[b].tolist() == S.filter_bank(energy[b].tolist(), w.tolist(), u.tolist(), fs, ws, wd, 5)
    vals = np.array([[0, 1, 2, 3, 4, 2**32 - 1, 2**32, 2**63, 2**64 - 1, 12345678901234]], np.uint64)
    for bits in (0, 3, 31):
        sq = np.empty(vals.shape, np.uint32)
        K.filter_bank_sqrt_u32(vals, np.array([bits], np.int32), sq)
        assert sq[0].tolist() == S.filter_bank_square_root([int(v) for v in vals[0]], bits)


@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=20))
@settings(max_examples=50, deadline=None)
def test_sqrt64_property(values):
    v = np.array([values], np.uint64)
    out = np.empty(v.shape, np.uint32)
    K.filter_bank_sqrt_u32(v, np.zeros(1, np.int32), out)
    assert out[0].tolist() == [S.sqrt64(x) for x in values]


@pytest.mark.parametrize("clamping", [False, True])
def test_spectral_subtraction_over_frames(clamping):
    rng = np.random.default_rng(5)
    c = 10
    kw = {"smoothing": 409, "one_minus_smoothing": 15975, "alternate_smoothing": 983, "alternate_one_minus_smoothing": 15401,
              "min_signal_remaining": 819, "smoothing_bits": 10, "spectral_subtraction_bits": 14, "clamping": clamping}
    noise = np.zeros((3, c), np.uint32)
    ne_spec = [[0] * c for _ in range(3)]
    for _frame in range(6):
        x = rng.integers(0, 2**32, (3, c), dtype=np.uint64).astype(np.uint32)
        x[1] = rng.integers(0, 5000, c)
        out, ne_out = np.empty_like(x), np.empty_like(x)
        K.spectral_subtraction_u32(x, noise, kw["smoothing"], kw["one_minus_smoothing"], kw["alternate_smoothing"],
                                   kw["alternate_one_minus_smoothing"], kw["min_signal_remaining"],
                                   kw["smoothing_bits"], kw["spectral_subtraction_bits"], clamping, out, ne_out)
        for b in range(3):
            want, ne_spec[b] = S.filter_bank_spectral_subtraction(x[b].tolist(), ne_spec[b], **kw)
            assert out[b].tolist() == want and noise[b].tolist() == ne_spec[b] == ne_out[b].tolist()


def test_pcan_and_log():
    rng = np.random.default_rng(6)
    import tinyzo

    model = tinyzo.load(DATA.parent.parent.parent / "tinyzo" / "audio" / "data" / "audio_preprocessor_int8.tflite")
    lut = model.prepared[12].lut
    x = rng.integers(0, 2**32, (2, 64), dtype=np.uint64).astype(np.uint32)
    noise = rng.integers(0, 2**32, (2, 64), dtype=np.uint64).astype(np.uint32)
    x[0, :6] = [0, 1, 2, 3, 2**32 - 1, 4096]
    noise[0, :6] = [0, 1, 2, 3, 2**32 - 1, 2**11]
    noise[1] = rng.integers(0, 4000, 64)
    for shift in (0, 6, 40):
        out = np.empty_like(x)
        K.pcan_u32(x, noise, lut, shift, out)
        for b in range(2):
            assert out[b].tolist() == S.pcan(x[b].tolist(), noise[b].tolist(), lut.tolist(), shift)
    log_lut = np.array(S.LOG_LUT, np.int64)
    for scale, bits in ((64, 3), (2**32 - 1, 0), (70000, 31), (1, 5)):
        out16 = np.empty(x.shape, np.int16)
        K.filter_bank_log_s16(x, scale, bits, log_lut, out16)
        for b in range(2):
            assert out16[b].tolist() == S.filter_bank_log(x[b].tolist(), scale, bits)


# ------------------------------------------------------------------ builtins in int32 / int16 vs TFLM
def _one_op_model(opcode, options, in_shape, const, dtype):
    """A one-operator model: run-time input [1, *in_shape] (op) constant -> output."""
    from tinyzo.graph import Model, Operator, Tensor

    tensors = [Tensor("x", (1,) + in_shape, dtype), Tensor("c", np.shape(const), dtype, data=np.asarray(const, dtype)),
               Tensor("y", (1,) + in_shape, dtype)]
    return Model(tensors, [Operator(opcode, (0, 1), (2,), options)], (0,), (2,))


@pytest.mark.oracle
@pytest.mark.parametrize("opcode,const,act", [("ADD", 2**31 - 5, "NONE"), ("ADD", -7, "RELU"), ("MUL", 65537, "NONE"),
                                              ("MUL", -3, "RELU6"), ("DIV", -7, "NONE"), ("DIV", 666, "RELU"),
                                              ("MAXIMUM", -128, None), ("MINIMUM", 127, None)])
def test_int32_binary_ops_match_tflm(tmp_path, opcode, const, act):
    from oracle import tflm_run

    import tinyzo

    opts = {} if act is None else {"fused_activation_function": act}
    m = _one_op_model(opcode, opts, (64,), np.int32(const), np.int32)
    path = tmp_path / "m.tflite"
    try:
        m.save(path)
    except tinyzo.errors.TinyzoError as e:
        pytest.skip(f"the writer cannot save {opcode}: {e}")
    rng = np.random.default_rng(0)
    x = rng.integers(-(2**31), 2**31, (3, 64), dtype=np.int64).astype(np.int32)
    x[0, :6] = [-(2**31), 2**31 - 1, 0, 1, -1, 666]
    (want,), _ = tflm_run(path.read_bytes(), [x])
    np.testing.assert_array_equal(tinyzo.load(path)(x), want)


def test_div_refuses_zero_divisor():
    from tinyzo.errors import InputError, UnsupportedOperatorError

    with pytest.raises(UnsupportedOperatorError, match="holds 0"):
        _one_op_model("DIV", {}, (4,), np.int32(0), np.int32)
    m = _one_op_model("DIV", {}, (4,), np.int32(-1), np.int32)
    with pytest.raises(InputError, match="INT32_MIN"):
        m(np.array([[-(2**31), 0, 1, 2]], np.int32))
    assert m(np.array([[5, -5, 0, 7]], np.int32)).tolist() == [[-5, 5, 0, -7]]


# ------------------------------------------------------------------ CLI
def test_cli_run_wav_and_memory(capsys):
    from tinyzo.cli import main

    wav = DATA / "testdata" / "yes_1000ms.wav"
    assert main(["run", str(DATA / "micro_speech_quantized.tflite"), "--input", str(wav)]) == 0
    assert "[[-128 -128  127 -128]]" in capsys.readouterr().out
    assert main(["run", str(DATA / "micro_speech_quantized.tflite"), "--input",
                 str(DATA / "testdata" / "yes_30ms.wav")]) == 2
    assert "49 x 40" in capsys.readouterr().err
    fe = Path(__file__).parents[1] / "tinyzo" / "audio" / "data" / "audio_preprocessor_int8.tflite"
    assert main(["memory", str(fe)]) == 0
    out = capsys.readouterr().out
    assert "peak SRAM 3,040 bytes" in out and "persistent state" in out
