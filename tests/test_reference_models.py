"""The pretrained int8 reference models: accurate, small, bit-exact in TFLM, and their cards are true."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import tinyzo
from tinyzo import data
from tinyzo.evaluate import evaluate, images_to_input

REF = Path(__file__).resolve().parents[1] / "reference_models"
NAMES = sorted(p.stem for p in REF.glob("*.tflite"))


def _facts(name):
    return json.loads((REF / f"{name}.json").read_text())


def test_there_is_a_digits_reference_model():
    assert "digits_cnn" in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_file_is_small_and_matches_its_card(name):
    path = REF / f"{name}.tflite"
    f = _facts(name)
    assert path.stat().st_size < 1_000_000
    assert hashlib.sha256(path.read_bytes()).hexdigest() == f["sha256"]
    card = (REF / f"{name}.md").read_text()
    assert f["sha256"] in card and f"{f['int8_test_accuracy'] * 100:.2f}%" in card


IMAGE_NAMES = [n for n in NAMES if "corrupted_severity5" in _facts(n)]
FEATURE_NAMES = [n for n in NAMES if n not in IMAGE_NAMES]


@pytest.mark.parametrize("name", FEATURE_NAMES)
def test_keyword_model_accuracy_is_what_the_card_says(name):
    # int8 feature models (reference_models/make_kws_reference.py): checked on the shipped subset's test
    # split (its own generated test set needs espeak-ng to rebuild)
    f = _facts(name)
    model = tinyzo.load(REF / f"{name}.tflite")
    ds = data.load("speech")
    r = evaluate(model, ds.x_test, ds.y_test, feature_quant=ds.feature_quant)
    assert r["accuracy"] == f["int8_shipped_test_accuracy"] and r["n"] == f["n_shipped_test"]
    assert f"{f['int8_shipped_test_accuracy'] * 100:.2f}%" in (REF / f"{name}.md").read_text()


@pytest.mark.parametrize("name", IMAGE_NAMES)
def test_clean_and_corrupted_accuracy_are_what_the_card_says(name):
    f = _facts(name)
    model = tinyzo.load(REF / f"{name}.tflite")
    ds = data.load(f["recipe"]["dataset"])
    clean = evaluate(model, ds.x_test, ds.y_test)
    assert clean["accuracy"] == f["int8_test_accuracy"]
    if name == "digits_cnn":
        assert clean["accuracy"] >= 0.97
    seed = f["recipe"]["corruption_seed"]
    for c in ("motion_blur", "contrast", "rotate"):
        acc = evaluate(model, data.corrupt(ds.x_test, c, 5, seed=seed), ds.y_test)["accuracy"]
        assert acc == f["corrupted_severity5"][c]
    # the adaptation target: several corruptions cost a lot of accuracy
    drops = [clean["accuracy"] - a for a in f["corrupted_severity5"].values()]
    assert sum(d > 0.2 for d in drops) >= 3


@pytest.mark.oracle
@pytest.mark.parametrize("name", NAMES)
def test_tflm_runs_the_reference_model_exactly(name):
    from oracle import tflm_run

    path = REF / f"{name}.tflite"
    model = tinyzo.load(path)
    ds = data.load(_facts(name)["recipe"]["dataset"])
    xq = images_to_input(model, ds.x_test[:32], feature_quant=ds.feature_quant)
    computed = sorted({t for op in model.operators for t in op.outputs})
    outs, vals = tflm_run(path.read_bytes(), [xq], tensors=computed)
    y, acts = model(xq, intermediates=True)
    np.testing.assert_array_equal(y, outs[0])
    for t in computed:
        np.testing.assert_array_equal(acts[t].reshape(vals[t].shape), vals[t])
