"""The keyword dataset (tinyzo.audio.speech, tinyzo data speech) and int8 feature datasets."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

import tinyzo
from tinyzo import audio, data
from tinyzo.audio import speech
from tinyzo.cli import main
from tinyzo.data.datasets import DataError
from tinyzo.errors import InputError
from tinyzo.evaluate import evaluate, images_to_input

ROOT = Path(__file__).resolve().parents[1]
MICRO_SPEECH = ROOT / "tests" / "data" / "tflite-micro" / "micro_speech_quantized.tflite"
HAVE_ESPEAK = shutil.which("espeak-ng") is not None
# TFLM's micro_speech (trained on human recordings) on the bundled subset's test voices, classes silence,
# unknown, yes, no: 128 of 160 = 0.80 (yes 39/40, no 35/40, unknown 35/40, silence 19/40); integer inference
# on a shipped file, so the number is exact: the floor only leaves room for a regenerated subset.
MICRO_SPEECH_FLOOR = 0.75


def _slope(x: np.ndarray) -> float:
    """Least-squares slope of log10 power against log10 frequency over 30 Hz .. 4 kHz (16 kHz sampling)."""
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / 16000)
    band = (f >= 30) & (f <= 4000)
    return float(np.polyfit(np.log10(f[band]), np.log10(p[band]), 1)[0])


def test_pink_and_brown_noise_have_their_spectral_slopes():
    # each periodogram bin is an exponential variable around the shaped spectrum; the fitted slope over
    # ~16,000 bins of 4 realizations has a standard error far below 0.05, so +-0.1 is a loose bound
    rng = np.random.default_rng(0)
    pink = np.mean([_slope(speech.pink_noise(rng, 65536)) for _ in range(4)])
    brown = np.mean([_slope(speech.brown_noise(rng, 65536)) for _ in range(4)])
    assert abs(pink + 1.0) < 0.1 and abs(brown + 2.0) < 0.1, (pink, brown)
    x = speech.pink_noise(rng, 16000)
    assert abs(math.sqrt(np.mean(x * x)) - 1.0) < 1e-9 and abs(x.mean()) < 1e-9


def test_hum_is_at_mains_frequency():
    rng = np.random.default_rng(1)
    for _ in range(4):
        x = speech.hum(rng, 16000)
        peak = np.argmax(np.abs(np.fft.rfft(x)))   # 1 Hz bins for one second
        assert peak in (50, 60)


def test_mix_at_snr_is_exact():
    rng = np.random.default_rng(2)
    s, n = rng.standard_normal(16000), speech.brown_noise(rng, 16000)
    for snr in (-5.0, 0.0, 7.5, 20.0):
        mix = speech.mix_at_snr(s, n, snr)
        got = 20 * math.log10(np.sqrt(np.mean(s * s)) / np.sqrt(np.mean((mix - s) ** 2)))
        assert abs(got - snr) < 1e-9


def test_speaker_split_is_disjoint():
    sets = {k: set(speech.speakers(k)) for k in ("train", "val", "test")}
    assert not (sets["train"] & sets["test"]) and not (sets["train"] & sets["val"]) and not (sets["val"] & sets["test"])
    variants = {k: set(v) for k, v in speech.SPLIT_VARIANTS.items()}
    assert not (variants["train"] & (variants["val"] | variants["test"]))
    assert len(sets["test"]) == len(speech.ACCENTS) * len(speech.SPLIT_VARIANTS["test"])
    with pytest.raises(speech.SpeechError, match="unknown split"):
        speech.speakers("dev")


def _wav(samples: np.ndarray, *, rate=22050, channels=1, streamed=False) -> bytes:
    data_bytes = samples.astype("<i2").tobytes()
    size = 0xFFFFFFFF if streamed else len(data_bytes)
    fmt = (1).to_bytes(2, "little") + channels.to_bytes(2, "little") + rate.to_bytes(4, "little") + \
        (rate * 2 * channels).to_bytes(4, "little") + (2 * channels).to_bytes(2, "little") + (16).to_bytes(2, "little")
    body = b"WAVE" + b"fmt " + len(fmt).to_bytes(4, "little") + fmt + b"data" + size.to_bytes(4, "little") + data_bytes
    return b"RIFF" + (0xFFFFFFFF if streamed else len(body)).to_bytes(4, "little") + body


def test_parse_wav_bytes_reads_espeak_streams():
    x = np.array([0, 1, -1, 32767, -32768, 5], np.int16)
    for streamed in (False, True):
        rate, y = speech.parse_wav_bytes(_wav(x, streamed=streamed))
        assert rate == 22050 and np.array_equal(y, x)
    with pytest.raises(speech.SpeechError, match="16-bit PCM mono"):
        speech.parse_wav_bytes(_wav(np.zeros(4, np.int16), channels=2))
    with pytest.raises(speech.SpeechError, match="not a WAV"):
        speech.parse_wav_bytes(b"hello")


def test_int8_feature_datasets_round_trip_and_feed_the_model(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (6, 49, 40)).astype(np.int8)
    y = np.array([0, 1, 2, 3, 2, 3])
    ds = data.Dataset(x_train=x, y_train=y, x_val=x[:0], y_val=y[:0], x_test=x, y_test=y, name="f",
                      classes=["silence", "unknown", "yes", "no"])
    back = data.load(data.save(ds, tmp_path / "f.npz"))
    assert back.x_train.dtype == np.int8 and np.array_equal(back.x_train, x) and back.is_features
    model = tinyzo.load(MICRO_SPEECH)
    xin = images_to_input(model, x)
    assert xin.shape == (6, 1960) and np.array_equal(xin.reshape(6, 49, 40), x)
    with pytest.raises(InputError, match="do not fit"):
        images_to_input(model, x[:, :48])
    with pytest.raises(DataError, match="int8 features"):
        data.corrupt(x, "fog", 3)
    with pytest.raises(DataError, match="int8 features"):
        ds.as_float()


def test_the_bundled_subset():
    ds = data.load("speech")
    assert ds.classes == list(speech.CLASSES) and ds.x_train.dtype == np.int8 and ds.image_shape == (49, 40)
    for split in ("train", "val", "test"):
        y = ds.split(split)[1]
        assert len(y) and set(np.unique(y)) == set(range(12)), split
    prov = json.loads((ROOT / "tinyzo" / "data" / "SPEECH_PROVENANCE.json").read_text())
    assert prov["split_variants"] == {k: list(v) for k, v in speech.SPLIT_VARIANTS.items()}
    assert prov["counts"]["test"]["clips"] == len(ds.y_test)
    # TFLM's micro_speech model (human recordings; silence, unknown, yes, no) on the synthetic test voices
    model = tinyzo.load(MICRO_SPEECH)
    keep = ds.y_test < 4
    acc = evaluate(model, ds.x_test[keep], ds.y_test[keep])["accuracy"]
    assert acc >= MICRO_SPEECH_FLOOR, acc


def test_cli_without_espeak_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    assert main(["data", "speech", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "espeak-ng not found" in err and "apt-get install espeak-ng" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()
    assert main(["data", "speech", "--out", str(tmp_path / "s"), "--per-class", "1,2"]) == 2


@pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_synthesis_end_to_end(tmp_path):
    assert main(["data", "speech", "--out", str(tmp_path / "s"), "--per-class", "1,0,1", "--seed", "4",
                 "--keep-audio", "--no-progress"]) == 0
    ds = data.load(tmp_path / "s" / "speech.npz")
    assert len(ds.y_train) == 12 and len(ds.y_val) == 0 and len(ds.y_test) == 12
    wav = tmp_path / "s" / "wav" / "test" / "yes" / "00002.wav"
    samples, rate = audio.read_wav(wav)
    assert rate == 16000 and samples.shape == (16000,)
    assert np.array_equal(audio.features(samples), ds.x_test[2])
    prov = json.loads((tmp_path / "s" / "provenance.json").read_text())
    assert prov["seed"] == 4 and prov["espeak_ng"].startswith("eSpeak NG")
