"""Sparse-update schemes: JSON round trip, validation errors, trained layers, channel masks, memory count."""

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

import tinyzo
from tinyzo.training.scheme import SchemeError, SparseScheme
from tinyzo.zo.selection import select_channels

REF = Path(__file__).resolve().parents[1] / "reference_models" / "digits_cnn.tflite"
# digits_cnn: trainable ops [0, 1, 2, 3, 4, 5, 6, 8, 9, 11]; 7 is ADD, 10 is MEAN; 8 depthwise (96 ch),
# 9 pointwise conv 96 -> 160 on 4x4, 11 the classifier FC 160 -> 10


@pytest.fixture(scope="module")
def model():
    return tinyzo.load(REF)


def test_json_round_trip(tmp_path):
    s = SparseScheme(bias_last_k=3, weights={9: 0.5, "classifier": 1.0, -4: 0.125}, channel_select="random",
                     classifier=False, name="my scheme")
    d = json.loads(s.to_json())
    assert d["format"] == "tinyzo.sparse_scheme" and d["version"] == 1
    assert d["weights"] == {"9": 0.5, "classifier": 1.0, "-4": 0.125}
    assert SparseScheme.from_json(s.to_json()) == s
    assert SparseScheme.from_json(d) == s
    assert SparseScheme.load(s.save(tmp_path / "s.json")) == s
    # defaults: classifier on, magnitude selection
    t = SparseScheme.from_json('{"bias_last_k": 2}')
    assert t == SparseScheme(bias_last_k=2) and t.classifier and t.channel_select == "magnitude"


@pytest.mark.parametrize("text, needle", [
    ("{", "JSON"),
    ('{"format": "tinyzo.model"}', "format"),
    ('{"version": 2}', "version"),
    ('{"bias_k": 2}', "unknown"),
    ('{"weights": [9]}', "weights"),
    ('{"weights": {"9": "1/2"}}', r"\(0, 1\]"),
    ('{"classifier": "yes"}', "classifier"),
    ('{"bias_last_k": 1.5}', "bias_last_k"),
])
def test_bad_json_is_refused(text, needle):
    with pytest.raises(SchemeError, match=needle):
        SparseScheme.from_json(text)


@pytest.mark.parametrize("kwargs, needle", [
    ({"weights": {9: 0.0}}, r"\(0, 1\]"),
    ({"weights": {9: 1.5}}, r"\(0, 1\]"),
    ({"weights": {9: -0.25}}, r"\(0, 1\]"),
    ({"weights": {9: float("nan")}}, r"\(0, 1\]"),
    ({"weights": {9: True}}, r"\(0, 1\]"),
    ({"bias_last_k": -1}, "bias_last_k"),
    ({"channel_select": "l1"}, "channel_select"),
    ({"weights": {9.0: 1.0}}, "operator index"),
])
def test_bad_fields_are_refused_at_construction(kwargs, needle):
    with pytest.raises(SchemeError, match=needle):
        SparseScheme(**kwargs)


@pytest.mark.parametrize("kwargs, needle", [
    ({"weights": {7: 1.0}}, "not a trainable operator"),      # the ADD
    ({"weights": {99: 1.0}}, "not a trainable operator"),
    ({"weights": {"blocks.9.pointwise": 1.0}}, "no trainable layer named"),
    ({"weights": {-11: 1.0}}, "only 10 trainable layers"),
    ({"bias_last_k": 11}, "only 10 trainable layers"),
    ({"weights": {9: 1.0, "blocks.3.pointwise": 0.5}}, "named twice"),
    ({"bias_last_k": 0, "classifier": False}, "trains nothing"),
])
def test_validation_against_the_model(model, kwargs, needle):
    with pytest.raises(SchemeError, match=needle):
        SparseScheme(**kwargs).validate(model)


def test_trained_layers_and_plan(model):
    s = SparseScheme(bias_last_k=3, weights={4: 0.25, "blocks.3.pointwise": 0.5, -1: 0.5})
    assert s.trained_layers(model) == [4, 8, 9, 11]
    plan = s.layer_plan(model)
    assert plan == {4: (0.25, False), 8: (0.0, True), 9: (0.5, True), 11: (1.0, True)}  # classifier forces ratio 1
    assert s.resolved(model).weights == {4: 0.25, 9: 0.5, 11: 1.0}
    assert SparseScheme(bias_last_k=2, classifier=False).trained_layers(model) == [9, 11]


def test_constructors_and_labels(model):
    ops = model.trainable_ops()
    full = SparseScheme.full(model)
    assert full.trained_layers(model) == ops and full.label == "full"
    assert all(r == (1.0, True) for r in full.layer_plan(model).values())
    l3 = SparseScheme.last_k(model, 3)
    assert l3.trained_layers(model) == ops[-3:] and l3.label == "last 3 layers"
    b = SparseScheme.bias_only(model, 4)
    assert b.layer_plan(model) == {k: (0.0, True) for k in ops[-4:]} and b.label == "bias-only last 4"
    s = SparseScheme(bias_last_k=6, weights={9: 0.5, 4: 0.125})
    assert s.label == "bias last 6 + W[9@1/2, 4@1/8] + classifier"
    for bad in (0, 11, 2.0):
        with pytest.raises(SchemeError, match=r"\[1, 10\]"):
            SparseScheme.last_k(model, bad)


def test_channel_masks_sizes_and_rules(model):
    s = SparseScheme(weights={4: 0.25, 8: 0.3, 9: 0.125}, classifier=True)
    masks = s.channel_masks(model)
    assert sorted(masks) == [4, 8, 9, 11]
    for k, ratio in ((4, 0.25), (8, 0.3), (9, 0.125), (11, 1.0)):
        n_out = model.prepared[k].n_out
        assert masks[k].shape == (n_out,) and masks[k].dtype == bool
        assert masks[k].sum() == math.ceil(ratio * n_out)  # 24 of 96, 29 of 96, 20 of 160, 10 of 10
    assert np.flatnonzero(masks[9]).tolist() == sorted(select_channels(model, 9, 0.125, by="magnitude"))
    r = SparseScheme(weights={9: 0.5}, channel_select="random", classifier=False)
    m0, m0b, m1 = r.channel_masks(model, 0)[9], r.channel_masks(model, 0)[9], r.channel_masks(model, 1)[9]
    assert np.array_equal(m0, m0b) and not np.array_equal(m0, m1) and m0.sum() == m1.sum() == 80
    assert SparseScheme.bias_only(model, 2).channel_masks(model) == {}


def test_param_count_and_memory_formula(model):
    # last 2 layers: op 9 conv 160x1x1x96 + 160 biases, op 11 FC 10x160 + 10 biases
    assert SparseScheme.last_k(model, 2).param_count(model) == 160 * 96 + 160 + 10 * 160 + 10
    # classifier only: 1600 int8 weights + 10 int32 biases, its 160-element int8 input, a 10-bit mask
    c = SparseScheme(bias_last_k=1, weights={}, classifier=True)
    assert c.memory_bytes(model) == 1600 + 4 * 10 + 160 + 2
    assert c.memory_bytes(model, batch=4) == 1600 + 40 + 4 * (160 + 2)
    assert c.memory_bytes(model, state_bytes_per_param=4) == 1802 + 4 * 1610
    # bias only of ops 9 and 11: biases, no saved inputs, masks of ops 9 (4*4*160 bits), 10 (160), 11 (10)
    b = SparseScheme.bias_only(model, 2)
    assert b.memory_bytes(model) == 4 * (160 + 10) + 2560 // 8 + 160 // 8 + 2
    # half the channels of depthwise op 8 (3x3 kernels): 48 * 9 weights, half of its 8x8x96 input
    d = SparseScheme(weights={8: 0.5}, classifier=False)
    assert d.param_count(model) == 48 * 9
    assert d.memory_bytes(model) == 48 * 9 + 8 * 8 * 96 // 2 + (4 * 4 * 96 + 2560 + 160) // 8 + 2
    rows = d.memory_breakdown(model)
    assert [r["op"] for r in rows] == [8, 9, 10, 11] and rows[0]["weight_channels"] == 48
    # more layers cost more
    mem = [SparseScheme.last_k(model, k).memory_bytes(model) for k in range(1, 11)]
    assert all(a < b for a, b in itertools.pairwise(mem))
    with pytest.raises(SchemeError, match="batch"):
        c.memory_bytes(model, batch=0)
