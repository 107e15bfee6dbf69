"""Domain shifts of the keyword spotter (tinyzo.audio.shifts): the shipped adaptation sets, the
microphone filter, foreign accents, ``tinyzo data speech --shift`` and ``tinyzo demo --task speech``."""

import json
import shutil

import numpy as np
import pytest
from scipy.signal import sosfreqz

import tinyzo
from tinyzo import data, reference_models
from tinyzo.audio import shifts, synth
from tinyzo.cli import main
from tinyzo.errors import InputError
from tinyzo.evaluate import evaluate

HAVE_ESPEAK = shutil.which("espeak-ng") is not None
SIZES = (50 * 12, 10 * 12, 30 * 12)


@pytest.mark.parametrize("shift", list(shifts.SHIFTS))
def test_shipped_shift_sets(shift):
    ds = data.load(f"speech-{shift}")
    assert ds.name == f"speech-{shift}" and ds.classes == list(synth.CLASSES)
    assert tuple(len(ds.split(s)[1]) for s in ("train", "val", "test")) == SIZES
    assert ds.x_train.dtype == np.int8 and ds.image_shape == (49, 40)
    for s in ("train", "val", "test"):
        assert np.bincount(ds.split(s)[1], minlength=12).tolist() == [len(ds.split(s)[1]) // 12] * 12
    prov = json.loads(ds.provenance)
    assert prov["dataset"] == f"speech-{shift}"
    opts = shifts.shift_options(shift)
    assert prov["seed"] == opts["seed"]
    assert prov["accents"] == list(opts.get("accents", synth.ACCENTS))
    assert prov["snr_db"] == list(opts.get("snr_db", (5.0, 30.0)))
    assert prov.get("mic", {}).get("name") == opts.get("mic")
    assert not set(prov["speakers"]["train"]) & set(prov["speakers"]["test"])   # unseen voices in test
    assert data.loaders.SHIFT_PATHS[f"speech-{shift}"].stat().st_size <= 1.5 * 2**20


def test_shifts_cost_the_reference_model_accuracy():
    # the reference keyword spotter reads unseen clean voices at 92.7%; every shift costs it > 15 points
    m = tinyzo.load(reference_models.path("kws_dscnn"))
    clean = data.load("speech")
    acc_clean = evaluate(m, clean.x_test, clean.y_test, feature_quant=clean.feature_quant)["accuracy"]
    assert acc_clean > 0.9
    for shift in shifts.SHIFTS:
        ds = data.load(f"speech-{shift}")
        acc = evaluate(m, ds.x_test, ds.y_test, feature_quant=ds.feature_quant)["accuracy"]
        assert 0.3 < acc < acc_clean - 0.15, (shift, acc)


def test_microphone_responses():
    _, h = sosfreqz(synth.mic_filter("muffled"), worN=[300.0, 1000.0, 4000.0], fs=16000)
    gain = 20 * np.log10(np.abs(h))
    assert abs(gain[0]) < 0.1 and gain[1] > -1.0 and gain[2] < -40     # low-pass at 1.5 kHz, 4th order
    _, h = sosfreqz(synth.mic_filter("telephone"), worN=[100.0, 1000.0, 6000.0], fs=16000)
    gain = 20 * np.log10(np.abs(h))
    assert gain[0] < -15 and abs(gain[1]) < 0.5 and gain[2] < -15
    with pytest.raises(InputError, match="unknown microphone 'ribbon'; choose from muffled, telephone"):
        synth.mic_filter("ribbon")


def test_make_clip_with_a_microphone_keeps_the_draws_and_loses_the_highs():
    t = np.arange(8000) / 16000
    speech = np.sin(2 * np.pi * 300 * t) + np.sin(2 * np.pi * 5000 * t)
    plain, info = synth.make_clip(speech, np.random.default_rng(5), (30.0, 30.0), [speech])
    muffled, info_m = synth.make_clip(speech, np.random.default_rng(5), (30.0, 30.0), [speech],
                                      mic=synth.mic_filter("muffled"))
    assert info == info_m                           # same noise kind, SNR and offset
    assert np.abs(muffled).max() == np.abs(plain).max()   # same peak level: the scaling comes after the filter

    def band(x, lo, hi):
        p = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
        f = np.fft.rfftfreq(len(x), 1 / 16000)
        return p[(f >= lo) & (f < hi)].sum() / p.sum()

    assert band(plain, 4500, 5500) > 0.3 and band(muffled, 4500, 5500) < 1e-3
    silence, _ = synth.make_clip(None, np.random.default_rng(6), (30.0, 30.0), [speech],
                                 mic=synth.mic_filter("muffled"))
    assert band(silence, 3000, 8000) < 1e-3 and np.abs(silence).max() > 0


def test_accents_and_shift_options_are_checked():
    assert set(synth.FOREIGN_ACCENTS).isdisjoint(synth.ACCENTS)
    with pytest.raises(InputError, match="unknown accent"):
        synth.build_speech_dataset(per_class=1, accents=("klingon",), progress=False)
    with pytest.raises(InputError, match="unknown shift 'wind'; choose from accent, noise, mic"):
        shifts.shift_options("wind")
    assert shifts.shift_options("noise")["snr_db"] == (-5.0, 5.0)
    shifts.shift_options("noise")["snr_db"] = (0, 0)   # a copy: the table is not changed
    assert shifts.SHIFTS["noise"][1]["snr_db"] == (-5.0, 5.0)


@pytest.mark.parametrize("argv, message", [
    (["data", "speech", "--shift", "noise", "--snr-db", "0,3"], "--shift noise sets --snr-db itself"),
    (["data", "speech", "--shift", "accent", "--voices", "de"], "--shift accent sets --voices itself"),
    (["data", "digits", "--mic", "muffled"], "--mic: only for `tinyzo data speech`"),
    (["data", "digits", "--shift", "mic"], "--shift: only for `tinyzo data speech`"),
    (["demo", "--task", "speech", "--corruption", "fog"], "--corruption/--severity are for --task digits"),
    (["demo", "--shift", "noise"], "--shift is for --task speech"),
    (["demo", "--task", "speech", "--shift", "wind"], "unknown shift 'wind'"),
])
def test_cli_shift_errors_are_one_line(tmp_path, capsys, argv, message):
    if not HAVE_ESPEAK and argv[:2] == ["data", "speech"]:
        pytest.skip("espeak-ng is not installed (checked first)")
    out = ["--out", str(tmp_path / "o")] if argv[0] == "data" else ["--out-dir", str(tmp_path / "o"), "--quick"]
    assert main(argv + out) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is not installed")
def test_shift_generation_matches_the_shipped_set(tmp_path, capsys):
    shipped = data.load("speech-mic")
    if json.loads(shipped.provenance)["espeak_ng"] != synth.espeak_version():
        pytest.skip("another espeak-ng version pronounces the words differently")
    assert main(["data", "speech", "--shift", "mic", "--per-class", "50", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    made = data.load(tmp_path / "speech-mic.npz")
    for s in ("train", "val", "test"):
        np.testing.assert_array_equal(made.split(s)[0], shipped.split(s)[0])
        np.testing.assert_array_equal(made.split(s)[1], shipped.split(s)[1])
    assert made.provenance == shipped.provenance.replace(
        json.loads(shipped.provenance)["tinyzo_version"], json.loads(made.provenance)["tinyzo_version"])
