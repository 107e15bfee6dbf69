"""TFLM's audio front end (audio_preprocessor_int8.tflite) in tinyzo: bit-exact against the expected
features and against the TFLM interpreter (frames fed in order to one interpreter), on real,
random and adversarial audio; state, streaming, batching, the WAV reader, the signal ops' specs."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from tinyzo import audio, load
from tinyzo.errors import InputError, UnsupportedModelError, UnsupportedOperatorError

DATA = Path(__file__).parent / "data" / "tflite-micro" / "testdata"
FRONTEND = audio.default_frontend_path()
CLIPS = ("yes", "no", "silence", "noise")


def frames_of(samples: np.ndarray) -> np.ndarray:
    """int16[frames, 480]: the frames the front end reads (every 320 samples)."""
    k = audio.n_frames(samples.shape[-1])
    return np.stack([samples[f * 320:f * 320 + 480] for f in range(k)])


def tflm_features(samples: np.ndarray, tensors=None):
    """TFLM's features of one clip: its frames in order to one interpreter; optionally tensor values."""
    from oracle import tflm_run

    (out,), values = tflm_run(FRONTEND.read_bytes(), [frames_of(samples)], tensors=tensors)
    return out.reshape(-1, 40), values


def adversarial_clips() -> dict:
    rng = np.random.default_rng(17)
    t = np.arange(16000)
    square = np.where((t // 40) % 2 == 0, 32767, -32768).astype(np.int16)
    return {
        "silence": np.zeros(16000, np.int16),
        "square_full_scale": square,
        "square_100hz": np.where((t // 80) % 2 == 0, 32767, -32768).astype(np.int16),
        "clipped_sine": np.clip(np.round(60000 * np.sin(2 * np.pi * 440 * t / 16000)), -32768, 32767).astype(np.int16),
        "min_only": np.full(16000, -32768, np.int16),
        "dc_offset": (np.full(16000, 12000) + rng.integers(-200, 200, 16000)).astype(np.int16),
        "quiet_1lsb": rng.integers(-1, 2, 16000).astype(np.int16),
        "quiet_2lsb": rng.integers(-2, 3, 16000).astype(np.int16),
        "impulses": np.where(t % 997 == 0, 32767, 0).astype(np.int16),
        "not_a_whole_second": rng.integers(-5000, 5000, 12345).astype(np.int16),
        "alternating_extremes": np.where(t % 2 == 0, 32767, -32768).astype(np.int16),
    }


@pytest.mark.parametrize("name", CLIPS)
def test_shipped_wavs_match_expected_features(name):
    samples, rate = audio.read_wav(DATA / f"{name}_1000ms.wav")
    assert rate == 16000 and samples.shape == (16000,)
    want = np.load(DATA / f"{name}_1000ms_features_int8_49x40.npy", allow_pickle=False)
    np.testing.assert_array_equal(audio.features(samples), want)


@pytest.mark.oracle
@pytest.mark.parametrize("name", CLIPS)
def test_shipped_wavs_match_tflm(name):
    samples, _ = audio.read_wav(DATA / f"{name}_1000ms.wav")
    np.testing.assert_array_equal(audio.features(samples), tflm_features(samples)[0])


@pytest.mark.oracle
def test_random_audio_matches_tflm():
    rng = np.random.default_rng(0)
    clips = [rng.integers(-32768, 32768, 16000).astype(np.int16),
             (rng.normal(0, 800, 16000)).astype(np.int16),
             (rng.normal(0, 6000, 16000)).clip(-32768, 32767).astype(np.int16)]
    got = audio.features(np.stack(clips))  # three streams at once
    for k, c in enumerate(clips):
        np.testing.assert_array_equal(got[k], tflm_features(c)[0], err_msg=f"random clip {k}")


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(adversarial_clips()))
def test_adversarial_audio_matches_tflm(name):
    x = adversarial_clips()[name]
    got = audio.features(x)
    assert got.shape == (audio.n_frames(x.size), 40)
    np.testing.assert_array_equal(got, tflm_features(x)[0])


@pytest.mark.oracle
def test_every_intermediate_tensor_matches_tflm():
    samples, _ = audio.read_wav(DATA / "yes_1000ms.wav")
    model = load(FRONTEND)
    computed = [t for op in model.operators for t in op.outputs]
    _, values = tflm_features(samples, tensors=computed)
    frames = frames_of(samples)
    energy = next(op.outputs[0] for op in model.operators if op.opcode == "CUSTOM:SignalEnergy")
    energy_cast = next(op.outputs[0] for op in model.operators if op.inputs[0] == energy)
    lo, hi = model.operators[4].options["start_index"], model.operators[4].options["end_index"]
    for f in range(frames.shape[0]):
        _, env = model(frames[f].reshape(1, 1, 480), intermediates=True)
        for t in computed:
            want = values[t].reshape(frames.shape[0], -1)[f]
            got = env[t].reshape(-1)
            if t in (energy, energy_cast):  # TFLM writes bins start_index..end_index - 1 only
                want, got = want[lo:hi], got[lo:hi]
            np.testing.assert_array_equal(got, want, err_msg=f"frame {f}, tensor {t} {model.tensors[t].name}")


def test_state_reset_two_clips_back_to_back():
    yes, _ = audio.read_wav(DATA / "yes_1000ms.wav")
    noise, _ = audio.read_wav(DATA / "noise_1000ms.wav")
    fe = audio.FrontEnd()
    first = fe.push(noise)
    carried = fe.push(yes[: 16000 - (16000 - 480) % 320 - 0])
    fe.reset()
    fresh = fe.push(yes)
    np.testing.assert_array_equal(first, audio.features(noise))
    np.testing.assert_array_equal(fresh, audio.features(yes))
    # without the reset the noise estimate carries over (and the pending samples of the noise clip)
    assert not np.array_equal(carried[: fresh.shape[0]], fresh)
    model = load(FRONTEND)
    model(frames_of(noise)[:1].reshape(1, 1, 480))
    assert np.any(model.state[("state", 11, "noise_estimate")] != 0)
    model.reset_state()
    assert not np.any(model.state[("state", 11, "noise_estimate")])


@pytest.mark.oracle
def test_back_to_back_state_matches_tflm():
    """Two clips through one interpreter (no reset) == two clips through one tinyzo model."""
    from oracle import tflm_run

    yes, _ = audio.read_wav(DATA / "yes_1000ms.wav")
    no, _ = audio.read_wav(DATA / "no_1000ms.wav")
    frames = np.concatenate([frames_of(no), frames_of(yes)])
    (want,), _ = tflm_run(FRONTEND.read_bytes(), [frames])
    model = load(FRONTEND)
    got = np.stack([model(fr.reshape(1, 1, 480)).reshape(40) for fr in frames])
    np.testing.assert_array_equal(got, want.reshape(-1, 40))


def test_streaming_equals_batch():
    rng = np.random.default_rng(3)
    x = rng.integers(-20000, 20000, 20000).astype(np.int16)
    want = audio.features(x)
    for piece in (1, 7, 319, 320, 321, 480, 4999):
        fe = audio.FrontEnd()
        rows = [fe.push(x[i:i + piece]) for i in range(0, x.size, piece)]
        np.testing.assert_array_equal(np.concatenate(rows), want, err_msg=f"pieces of {piece}")
    fe = audio.FrontEnd()
    assert fe.push(np.zeros(0, np.int16)).shape == (0, 40)


def test_n_streams_equal_separate_runs():
    rng = np.random.default_rng(4)
    clips = rng.integers(-9000, 9000, (5, 16000)).astype(np.int16)
    batch = audio.features(clips)
    assert batch.shape == (5, 49, 40) and batch.dtype == np.int8
    for k in range(5):
        np.testing.assert_array_equal(batch[k], audio.features(clips[k]))
    fe = audio.FrontEnd()
    rows = [fe.push(clips[:, i:i + 1000]) for i in range(0, 16000, 1000)]
    np.testing.assert_array_equal(np.concatenate(rows, axis=1), batch)


def test_clip_lengths():
    assert audio.n_frames(16000) == 49 and audio.n_frames(480) == 1 and audio.n_frames(479) == 0
    assert audio.n_frames(799) == 1 and audio.n_frames(800) == 2
    assert audio.features(np.zeros(480, np.int16)).shape == (1, 40)
    with pytest.raises(InputError, match="at least 480"):
        audio.features(np.zeros(479, np.int16))
    with pytest.raises(InputError, match="int16"):
        audio.features(np.zeros(16000, np.float32))
    with pytest.raises(InputError, match="int16"):
        audio.features([0] * 16000)


def _write_wav(path, data: bytes, channels=1, width=2, rate=16000, comptype="NONE"):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data)


def test_read_wav_errors(tmp_path):
    good = tmp_path / "ok.wav"
    _write_wav(good, np.arange(-5, 5, dtype="<i2").tobytes(), rate=8000)
    x, rate = audio.read_wav(good)
    assert rate == 8000 and x.dtype == np.int16 and x.tolist() == list(range(-5, 5))
    stereo = tmp_path / "stereo.wav"
    _write_wav(stereo, np.zeros(20, "<i2").tobytes(), channels=2)
    with pytest.raises(InputError, match="2 channels"):
        audio.read_wav(stereo)
    for width in (1, 3, 4):
        p = tmp_path / f"w{width}.wav"
        _write_wav(p, bytes(width * 10), width=width)
        with pytest.raises(InputError, match=f"{8 * width}-bit"):
            audio.read_wav(p)
    trunc = tmp_path / "trunc.wav"
    trunc.write_bytes(good.read_bytes()[:-4])
    with pytest.raises(InputError, match="truncated"):
        audio.read_wav(trunc)
    flt = tmp_path / "float.wav"  # WAVE_FORMAT_IEEE_FLOAT (3)
    b = bytearray(good.read_bytes())
    b[20:22] = (3).to_bytes(2, "little")
    flt.write_bytes(bytes(b))
    with pytest.raises(InputError, match="PCM"):
        audio.read_wav(flt)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not a wav file at all")
    with pytest.raises(InputError, match="PCM"):
        audio.read_wav(junk)
    with pytest.raises(InputError, match="no such"):
        audio.read_wav(tmp_path / "missing.wav")


def test_front_end_model_structure():
    model = load(FRONTEND)
    assert model.lifted and model.op_states == {(11, "noise_estimate"): ((40,), np.dtype(np.uint32))}
    assert model.tensors[model.inputs[0]].shape == (1, 1, 480)
    with pytest.raises(InputError, match="forward_from"):
        model.forward_from({}, 11)


def test_bad_custom_options_are_refused(tmp_path):
    """A signal op whose options lack a key TFLM reads by position is refused with a one-line error."""
    from tinyzo.graph import Model
    from tinyzo.io.tflite_read import read_tflite_parts

    tensors, ops, ins, outs, _ = read_tflite_parts(FRONTEND.read_bytes())
    del ops[11].options["clamping"]
    with pytest.raises(UnsupportedOperatorError, match="keys"):
        Model(tensors, ops, ins, outs)
    tensors, ops, ins, outs, _ = read_tflite_parts(FRONTEND.read_bytes())
    ops[0].options["shift"] = 40
    with pytest.raises(UnsupportedOperatorError, match="shift"):
        Model(tensors, ops, ins, outs)
    tensors, ops, ins, outs, _ = read_tflite_parts(FRONTEND.read_bytes())
    ops[3].options["fft_length"] = 2 * 7 * 16
    with pytest.raises(UnsupportedOperatorError, match="fft_length"):
        Model(tensors, ops, ins, outs)


def test_unliftable_operator_is_refused():
    """A signal-library model without a batch dimension may only hold operators tinyzo can lift."""
    from tinyzo.graph import Model, Operator, Tensor

    tensors = [Tensor("x", (1, 8), np.int16), Tensor("y", (8,), np.int16), Tensor("z", (8,), np.int16),
               Tensor("w", (8,), np.int16, data=np.ones(8, np.int16)), Tensor("p", (1, 2), np.int32,
                                                                          data=np.array([[1, 1]], np.int32)),
               Tensor("v", (10,), np.int16)]
    ops = [Operator("RESHAPE", (0,), (1,), {"new_shape": [8]}), Operator("CUSTOM:SignalWindow", (1, 3), (2,),
                                                                          {"shift": 0}),
           Operator("PAD", (2, 4), (5,), {})]
    with pytest.raises(UnsupportedModelError, match="PAD"):
        Model(tensors, ops, (0,), (5,))


def test_corrupt_custom_options_give_tinyzo_errors():
    """Every byte of every custom_options blob flipped: loading either works or raises a tinyzo error."""
    from tinyzo.errors import TinyzoError
    from tinyzo.io.tflite_read import read_tflite

    data = FRONTEND.read_bytes()
    starts = [data.find(key) for key in (b"shift", b"fft_length", b"end_index", b"num_channels", b"clamping",
                                          b"snr_shift", b"output_scale")]
    rng = np.random.default_rng(0)
    outcomes = {"loaded": 0, "refused": 0}
    for s in starts:
        assert s > 0
        for pos in range(max(0, s - 8), min(len(data), s + 90)):
            b = bytearray(data)
            b[pos] = (b[pos] + int(rng.integers(1, 256))) % 256
            try:
                read_tflite(bytes(b))
                outcomes["loaded"] += 1
            except TinyzoError:
                outcomes["refused"] += 1
    assert outcomes["refused"] > 0 and outcomes["loaded"] > 0
