"""tinyzo.zo.alignment: the cosine of a multi-layer ZO estimate with the back-propagated gradient."""

from pathlib import Path

import numpy as np
import pytest

import tinyzo
from tinyzo import data
from tinyzo.evaluate import images_to_input
from tinyzo.zo.alignment import AlignmentError, alignment_markdown, bp_alignment
from tinyzo.zo.trainer import ZOConfig

REF = Path(__file__).resolve().parents[1] / "reference_models" / "digits_cnn.tflite"


@pytest.fixture(scope="module")
def batch():
    m = tinyzo.load(REF)
    ds = data.load("digits")
    return m, images_to_input(m, data.corrupt(ds.x_train[:32], "fog", 5, seed=0)), ds.y_train[:32]


def test_the_classifier_estimate_aligns_and_more_queries_align_better(batch):
    m, xq, y = batch
    layers = m.trainable_ops()[-2:]
    w_before = {k: m.get_params(k)[0].copy() for k in layers}
    rows = bp_alignment(m, xq, y, {"q2": ZOConfig(layers=layers, target="node", queries=2),
                                   "q48": ZOConfig(layers=layers, target="node", queries=48)}, repeats=3)
    by = {(r["config"], r["layer"]): r for r in rows}
    assert len(rows) == 4 and {r["forward_passes"] for r in rows} == {3, 49}
    last = layers[-1]
    # the classifier's node-perturbation estimate is the exact local backward of an unbiased output-gradient
    # estimate: with 48 queries it points along the BP gradient (measured 0.94 at 32 queries on fog)
    assert by[("q48", last)]["cos_mean"] > 0.8
    assert by[("q48", last)]["cos_mean"] > by[("q2", last)]["cos_mean"]
    assert all(-1.0 <= r["cos_mean"] <= 1.0 for r in rows)
    for k in layers:  # the model is left unchanged
        assert np.array_equal(m.get_params(k)[0], w_before[k])
    md = alignment_markdown(rows)
    assert md.count("\n") == 3 and f"op {last}" in md


def test_bad_arguments(batch):
    m, xq, y = batch
    with pytest.raises(AlignmentError, match="non-empty"):
        bp_alignment(m, xq, y, {})
    with pytest.raises(AlignmentError, match="layers named"):
        bp_alignment(m, xq, y, {"a": ZOConfig(target="node")})
    with pytest.raises(AlignmentError, match="repeats"):
        bp_alignment(m, xq, y, {"a": ZOConfig(layers=[11], target="node")}, repeats=1)
