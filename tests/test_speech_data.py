"""The keyword dataset (tinyzo.audio.synth, tinyzo.audio.noise), int8 feature datasets, ``tinyzo data speech``."""

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import model_path

import tinyzo
from tinyzo import audio, data
from tinyzo.audio import noise, synth
from tinyzo.cli import main
from tinyzo.data import DataError, Dataset
from tinyzo.errors import InputError
from tinyzo.evaluate import evaluate, features_to_input, images_to_input

MICRO_SPEECH = model_path("micro_speech_quantized")
HAVE_ESPEAK = shutil.which("espeak-ng") is not None


# ------------------------------------------------------------------------------------------- noise
def _loglog_slope(x):
    """Least-squares slope of ln |FFT|^2 against ln k over bins 1 .. n/2 - 1."""
    p = np.abs(np.fft.rfft(x)) ** 2
    k = np.arange(1, len(p) - 1)
    return np.polyfit(np.log(k), np.log(p[1:-1]), 1)[0]


@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.0])
def test_colored_noise_spectral_slope(exponent):
    # The generator is circular (irfft of scaled white noise), so bin k's power is Exp(1) * k**-e:
    # ln p_k = -e ln k + ln Exp(1), whose noise has std pi/sqrt(6) = 1.28. Over the 7,998 bins of
    # 16,000 samples the slope's standard error is 1.28 / sqrt(sum (ln k - mean)^2) = 0.015; the
    # bound 0.1 is ~7 standard errors.
    x = noise.colored_noise(16000, exponent, np.random.default_rng(3))
    assert abs(_loglog_slope(x) + exponent) < 0.1
    assert abs(np.sqrt(np.mean(x * x)) - 1) < 1e-12
    assert abs(x.mean()) < 1e-12


@pytest.mark.parametrize("kind", noise.NOISE_KINDS)
def test_noise_is_deterministic_from_the_seed(kind):
    pool = [np.sin(np.arange(3000) * 0.1 * (i + 1)) for i in range(4)]
    a = noise.make_noise(kind, 16000, np.random.default_rng(5), pool)
    b = noise.make_noise(kind, 16000, np.random.default_rng(5), pool)
    c = noise.make_noise(kind, 16000, np.random.default_rng(6), pool)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (16000,) and abs(np.sqrt(np.mean(a * a)) - 1) < 1e-12


def test_hum_is_mains_and_harmonics():
    x = noise.hum(16000, np.random.default_rng(0), mains_hz=60)
    p = np.abs(np.fft.rfft(x)) ** 2          # 1 Hz bins over one second
    top = set(np.argsort(p)[-5:].tolist())
    assert top == {60, 120, 180, 240, 300}
    assert p[60] == p.max()


def test_mix_hits_the_snr_to_float_rounding():
    rng = np.random.default_rng(1)
    s = rng.standard_normal(16000) * 300
    v = noise.colored_noise(16000, 1.0, rng)
    for snr in (-5.0, 0.0, 7.3, 30.0):
        mixed, scaled = noise.mix(s, v, snr)
        # powers are float64 sums of 16,000 squares: relative error <= 16000 * 2**-53 ~ 2e-12, i.e. 1e-11 dB
        assert abs(noise.snr_db(s, scaled) - snr) < 1e-9
        np.testing.assert_array_equal(mixed, s + scaled)


def test_mix_refuses_bad_input():
    with pytest.raises(InputError, match="one length"):
        noise.mix(np.ones(10), np.ones(11), 0)
    with pytest.raises(InputError, match="non-zero power"):
        noise.mix(np.zeros(10), np.ones(10), 0)
    with pytest.raises(InputError, match="finite"):
        noise.mix(np.ones(10), np.ones(10), float("nan"))
    with pytest.raises(InputError, match="unknown noise kind"):
        noise.make_noise("rain", 100, np.random.default_rng(0))
    with pytest.raises(InputError, match="babble needs"):
        noise.babble(100, np.random.default_rng(0), [])


# -------------------------------------------------------------------------------------- synthesis
def test_speaker_split_is_disjoint():
    variants = {s: set(v) for s, v in synth.SPLIT_VARIANTS.items()}
    assert not variants["train"] & variants["test"]
    assert not variants["train"] & variants["val"]
    assert not variants["val"] & variants["test"]
    train, test = set(synth.speakers("train")), set(synth.speakers("test"))
    assert not train & test
    assert len(test) == len(synth.ACCENTS) * len(synth.SPLIT_VARIANTS["test"])


def test_classes_order_is_micro_speech_first():
    assert synth.CLASSES[:4] == ("silence", "unknown", "yes", "no")
    assert len(synth.CLASSES) == 12 and not set(synth.UNKNOWN_WORDS) & set(synth.KEYWORDS)


def test_plan_is_balanced_and_deterministic():
    a = synth.plan_split("train", 5, seed=3)
    assert a == synth.plan_split("train", 5, seed=3)
    assert a != synth.plan_split("train", 5, seed=4)
    labels = np.array([c["label"] for c in a])
    np.testing.assert_array_equal(np.bincount(labels), [5] * 12)
    assert all(c["word"] is None and c["speaker"] == -1 for c in a if c["label"] == 0)
    assert all(c["word"] in synth.UNKNOWN_WORDS for c in a if c["label"] == 1)
    assert all(c["word"] == synth.CLASSES[c["label"]] for c in a if c["label"] >= 2)


def test_make_clip_places_speech_and_is_deterministic():
    word = np.sin(np.arange(5000) * 0.2) * 1000
    pool = [word[:3000], word[1000:]]
    a, ia = synth.make_clip(word, np.random.default_rng(0), (10.0, 20.0), pool)
    b, _ = synth.make_clip(word, np.random.default_rng(0), (10.0, 20.0), pool)
    assert a.dtype == np.int16 and a.shape == (16000,)
    np.testing.assert_array_equal(a, b)
    assert 10 <= ia["snr_db"] <= 20 and 0 <= ia["offset"] <= 11000
    s, info = synth.make_clip(None, np.random.default_rng(0), (10.0, 20.0), pool)
    assert info["snr_db"] is None and s.dtype == np.int16
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(s.astype(np.float64) ** 2)) / 32767)
    assert -61 < rms_dbfs < -29


def test_resample_and_trim():
    x = np.zeros(22050)
    x[5000:9000] = np.sin(np.arange(4000) * 0.05) * 5000
    y = synth.resample_to_16k(x, 22050)
    assert len(y) == 16000
    t = synth.trim(y)
    assert 2800 <= len(t) <= 3200 and len(t) % 160 == 0
    assert len(synth.trim(np.zeros(1000))) == 0


def test_parse_espeak_streaming_wav():
    body = np.arange(-5, 5, dtype="<i2").tobytes()
    hdr = (b"RIFF" + (0x7FFFF024).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
           + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (22050).to_bytes(4, "little")
           + (44100).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
           + b"data" + (0x7FFFF000).to_bytes(4, "little"))
    x, rate = synth._parse_wav(hdr + body)
    assert rate == 22050
    np.testing.assert_array_equal(x, np.arange(-5, 5, dtype=np.int16))
    with pytest.raises(InputError, match="WAV"):
        synth._parse_wav(b"not a wav" * 10)


def test_build_options_are_checked():
    with pytest.raises(InputError, match="per_class"):
        synth._check_options(0, 0, (5, 30), synth.ACCENTS)
    with pytest.raises(InputError, match="snr_db"):
        synth._check_options(1, 0, (30, 5), synth.ACCENTS)
    with pytest.raises(InputError, match="unknown accent"):
        synth._check_options(1, 0, (5, 30), ("en-mars",))


# ------------------------------------------------------------------------------ int8 feature data
def _features_dataset(n=6, quant=synth.FEATURE_QUANT, classes=4):
    rng = np.random.default_rng(0)
    parts = {}
    for s in ("train", "val", "test"):
        parts[f"x_{s}"] = rng.integers(-128, 128, size=(n, 49, 40)).astype(np.int8)
        parts[f"y_{s}"] = np.arange(n) % classes
    return Dataset(**parts, name="feat", classes=[str(k) for k in range(classes)], feature_quant=quant,
                   provenance=json.dumps({"seed": 1}))


def test_int8_dataset_round_trip(tmp_path):
    ds = _features_dataset()
    assert ds.is_features and ds.feature_quant == (float(np.float32(0.10171568393707275)), -128)
    back = data.load(data.save(ds, tmp_path / "f.npz"))
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(back.split(s)[0], ds.split(s)[0])
        np.testing.assert_array_equal(back.split(s)[1], ds.split(s)[1])
    assert back.x_train.dtype == np.int8
    assert back.feature_quant == ds.feature_quant and json.loads(back.provenance) == {"seed": 1}
    assert not (tmp_path / "f.npz.tmp").exists()
    sub = ds.map_images(lambda x: x[:, :10])          # stays int8: quantization and provenance kept
    assert sub.feature_quant == ds.feature_quant and sub.provenance == ds.provenance
    assert "features int8[10, 40]" in repr(sub)


def test_int8_dataset_refusals():
    ds = _features_dataset()
    with pytest.raises(DataError, match="not images"):
        ds.as_float()
    with pytest.raises(DataError, match="not images"):
        ds.as_uint8()
    with pytest.raises(DataError, match="pre-quantized features"):
        data.corrupt(ds.x_test, "gaussian_noise", 3)
    with pytest.raises(DataError, match="feature_quant is for int8"):
        Dataset(np.zeros((1, 2, 2), np.uint8), np.zeros(1, int), np.zeros((0, 2, 2), np.uint8), np.zeros(0, int),
                np.zeros((1, 2, 2), np.uint8), np.zeros(1, int), feature_quant=(0.1, 0))
    with pytest.raises(DataError, match="zero_point"):
        _features_dataset(quant=(0.1, 300))
    with pytest.raises(DataError, match="int32"):
        data.datasets.check_images(np.zeros((1, 2, 2), np.int32))


def test_features_to_input_layouts_and_quant_check():
    m = tinyzo.load(MICRO_SPEECH)                       # input int8[1, 1960], scale 0.1017, zero point -128
    x = np.random.default_rng(0).integers(-128, 128, size=(3, 49, 40)).astype(np.int8)
    xq = features_to_input(m, x, synth.FEATURE_QUANT)
    assert xq.shape == (3, 1960) and xq.dtype == np.int8
    np.testing.assert_array_equal(xq[1], x[1].reshape(-1))   # frame-major, values unchanged
    np.testing.assert_array_equal(images_to_input(m, x, feature_quant=None), xq)
    with pytest.raises(InputError, match="allow_quant_mismatch"):
        features_to_input(m, x, (0.5, 0))
    np.testing.assert_array_equal(features_to_input(m, x, (0.5, 0), allow_quant_mismatch=True), xq)
    with pytest.raises(InputError, match="do not fit"):
        features_to_input(m, x[:, :48], None)


def test_features_to_input_adds_a_channel_axis_and_needs_int8():
    def fake(dtype, shape):       # features_to_input reads only the input tensor's dtype, shape and quant
        return SimpleNamespace(tensors=[SimpleNamespace(dtype=np.dtype(dtype), shape=shape, quant=None)], inputs=[0])

    x = np.arange(2 * 49 * 40).astype(np.int8).reshape(2, 49, 40)
    out = features_to_input(fake(np.int8, (1, 49, 40, 1)), x)
    assert out.shape == (2, 49, 40, 1)
    np.testing.assert_array_equal(out[..., 0], x)
    with pytest.raises(InputError, match="do not fit"):
        features_to_input(fake(np.int8, (1, 40, 49, 1)), x)
    with pytest.raises(InputError, match="int8 input"):
        features_to_input(fake(np.float32, (1, 49, 40, 1)), x)
    with pytest.raises(InputError, match="scale"):   # declared quant, model input without quant: refused
        features_to_input(fake(np.int8, (1, 49, 40, 1)), x, synth.FEATURE_QUANT)


def test_evaluate_on_int8_features_matches_the_model():
    m = tinyzo.load(MICRO_SPEECH)
    ds = _features_dataset(n=8)
    r = evaluate(m, ds.x_test, ds.y_test, batch_size=3, feature_quant=ds.feature_quant)
    pred = np.argmax(m(ds.x_test.reshape(8, 1960)).reshape(8, -1), axis=1)
    assert r["correct"] == int((pred == ds.y_test).sum()) and r["n"] == 8


def test_cli_eval_and_train_take_int8_features(tmp_path, capsys):
    path = data.save(_features_dataset(n=8), tmp_path / "f.npz")
    assert main(["eval", str(MICRO_SPEECH), "--data", str(path), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 8
    bad = data.save(_features_dataset(n=8, quant=(0.25, 0)), tmp_path / "g.npz")
    assert main(["eval", str(MICRO_SPEECH), "--data", str(bad)]) == 2
    assert "allow-quant-mismatch" in capsys.readouterr().err
    assert main(["eval", str(MICRO_SPEECH), "--data", str(bad), "--allow-quant-mismatch"]) == 0
    assert main(["eval", str(MICRO_SPEECH), "--data", str(path), "--corruption", "fog", "--severity", "1"]) == 2
    assert "pre-quantized features" in capsys.readouterr().err
    assert main(["train", str(MICRO_SPEECH), "--data", str(path), "--epochs", "1", "--batch-size", "4",
                 "--no-progress"]) == 0
    assert "test accuracy" in capsys.readouterr().out


# ---------------------------------------------------------------------------------- shipped subset
def test_shipped_subset_loads():
    ds = data.load("speech")
    assert ds.name == "speech" and ds.classes == list(synth.CLASSES)
    assert ds.x_train.dtype == np.int8 and ds.image_shape == (49, 40)
    assert ds.feature_quant == (float(np.float32(synth.FEATURE_QUANT[0])), synth.FEATURE_QUANT[1])
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(np.bincount(ds.split(s)[1], minlength=12).min() > 0, True)
    prov = json.loads(ds.provenance)
    assert prov["generator"] == "tinyzo.audio.synth" and prov["classes"] == list(synth.CLASSES)
    assert not set(prov["speakers"]["train"]) & set(prov["speakers"]["test"])
    for s in ("train", "val", "test"):       # each clip's speaker is one of its split's speakers
        used = {prov["speakers"][s][i] for i in prov["clips"][s]["speaker"] if i >= 0}
        assert used and used <= set(prov["speakers"][s])
        assert len(prov["clips"][s]["speaker"]) == len(ds.split(s)[1])
    assert data.loaders.SPEECH_PATH.stat().st_size <= 3 * 2**20


def test_shipped_subset_fits_micro_speech():
    ds = data.load("speech")
    m = tinyzo.load(MICRO_SPEECH)
    keep = ds.y_test < 4
    r = evaluate(m, ds.x_test[keep], ds.y_test[keep], feature_quant=ds.feature_quant)
    assert r["n"] == int(keep.sum())


# ------------------------------------------------------------------------------------------- CLI
def test_cli_speech_refuses_without_espeak(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    out = tmp_path / "sp"
    assert main(["data", "speech", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("tinyzo: error: espeak-ng not found: install it with `apt-get install espeak-ng` "
                   "(Debian/Ubuntu) or `brew install espeak-ng`")
    assert not out.exists()


def test_cli_speech_flags_only_for_speech(tmp_path, capsys):
    assert main(["data", "digits", "--out", str(tmp_path / "d.npz"), "--keep-audio"]) == 2
    assert "only for `tinyzo data speech`" in capsys.readouterr().err


@pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is not installed")
def test_espeak_end_to_end(tmp_path, capsys):
    for word in ("yes", "no"):
        raw, rate = synth.synthesize(word, "en-us", "m3", 160, 50)
        assert raw.dtype == np.int16 and rate == 22050 and np.abs(raw).max() > 1000
        speech = synth.trim(synth.resample_to_16k(raw, rate))
        assert 1600 < len(speech) < 16000
        clip, _ = synth.make_clip(speech, np.random.default_rng(0), (20.0, 20.0), [speech])
        assert audio.features(clip).shape == (49, 40)
    out = tmp_path / "sp"
    assert main(["data", "speech", "--out", str(out), "--per-class", "1", "--voices", "en-us", "--keep-audio",
                 "--no-progress", "--seed", "4"]) == 0
    ds = data.load(out / "speech.npz")
    assert [len(ds.split(s)[1]) for s in ("train", "val", "test")] == [12, 12, 12]
    wav = sorted((out / "audio" / "test").glob("*.wav"))
    assert len(wav) == 12 and wav[2].name == "00002_yes.wav"
    clip, rate = audio.read_wav(wav[2])
    np.testing.assert_array_equal(audio.features(clip), ds.x_test[2])   # the stored features are the clip's
    again, _ = synth.build_speech_dataset(per_class=1, seed=4, accents=("en-us",), progress=False)
    np.testing.assert_array_equal(again.x_test, ds.x_test)              # deterministic from the seed
