"""Automatic layer / channel selection for ZO training: model untouched, determinism, consistency, errors."""

import math
from pathlib import Path

import numpy as np
import pytest

import tinyzo
from tinyzo import data
from tinyzo.evaluate import images_to_input
from tinyzo.zo import selection
from tinyzo.training.loss import cross_entropy_int8
from tinyzo.errors import InputError
from tinyzo.zo.selection import SelectionError, gradient_weight_ratio, select_channels, select_layers, test_and_pick
from tinyzo.zo.trainer import ZOConfig, ZOConfigError, ZOTrainer

REF = Path(__file__).resolve().parents[1] / "reference_models" / "digits_cnn.tflite"
TRAINABLE = [0, 1, 2, 3, 4, 5, 6, 8, 9, 11]


@pytest.fixture(scope="module")
def blurred():
    """Small blurred splits: 96 training and 64 validation digits (motion blur, severity 5)."""
    ds = data.load("digits")
    m = tinyzo.load(REF)
    xtr = images_to_input(m, data.corrupt(ds.x_train[:96], "motion_blur", 5, seed=0))
    xva = images_to_input(m, data.corrupt(ds.x_val[:64], "motion_blur", 5, seed=1))
    return xtr, ds.y_train[:96], xva, ds.y_val[:64]


@pytest.fixture
def model():
    return tinyzo.load(REF)


def _state(model):
    """Every constant tensor (weights, biases, shape operands), copied."""
    return [None if t.data is None else t.data.copy() for t in model.tensors]


def _assert_unchanged(model, state, xq):
    fresh = tinyzo.load(REF)
    for a, b in zip(state, _state(model)):
        if a is not None:
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
    # the prepared operators too: the outputs equal a freshly loaded model's
    np.testing.assert_array_equal(model(xq), fresh(xq))


# ----------------------------------------------------------------------------- gradient-to-weight ratio
@pytest.mark.parametrize("target, joint", [("node", False), ("weight", False), ("node", True)])
def test_ratio_leaves_model_unchanged_and_is_deterministic(blurred, model, target, joint):
    xtr, ytr, _, _ = blurred
    state = _state(model)
    kw = {"target": target, "steps": 2, "queries": 2, "batch_size": 16, "seed": 3, "joint": joint}
    r1 = gradient_weight_ratio(model, xtr, ytr, **kw)
    _assert_unchanged(model, state, xtr[:8])
    r2 = gradient_weight_ratio(model, xtr, ytr, **kw)
    assert r1 == r2
    assert sorted(r["layer"] for r in r1) == TRAINABLE
    ratios = [r["ratio"] for r in r1]
    assert ratios == sorted(ratios, reverse=True)
    for r in r1:
        w, b = model.get_params(r["layer"])
        assert r["n_params"] == w.size + b.size
        assert r["opcode"] == model.operators[r["layer"]].opcode
        assert r["ratio"] > 0 and math.isclose(r["ratio"], r["grad_norm"] / r["weight_norm"], rel_tol=1e-12)


def test_ratio_equals_an_independent_computation(blurred, model):
    """grad_norm = || mean over steps of g_int / s_w ||, weight_norm = || s_w * w_int || (real units),
    with g_int exactly the gradients ZOTrainer hands its optimizer (captured here independently)."""
    xtr, ytr, _, _ = blurred
    layers = [3, 11]   # a depthwise layer (channels on axis 3, per-channel scale) and the FC (per-tensor)
    rows = {r["layer"]: r for r in gradient_weight_ratio(model, xtr, ytr, target="node", steps=2, queries=3,
                                                         batch_size=24, seed=7, layers=layers)}
    assert set(rows) == set(layers)
    batches = selection._batches(len(xtr), 24, 2, 7)
    for k in layers:
        m = tinyzo.load(REF)
        tr = ZOTrainer(m, ZOConfig(layers=[k], target="node", queries=3, lr=1e-3, train_bias=False, seed=7))
        seen = []

        def keep(params, grads, scales, seen=seen, key=f"{k}/w"):
            seen.append(grads[key].astype(np.float64))
            return params

        tr.optimizer.step = keep
        for idx in batches:
            tr.step(xtr[idx], ytr[idx])
        g = (seen[0] + seen[1]) / 2
        w, _ = m.get_params(k)
        s = m.tensors[m.operators[k].inputs[1]].quant.scale.astype(np.float64)
        if k == 3:   # DEPTHWISE weights (1, 3, 3, C): channel axis 3
            w_real, g_real = w * s, g / s
        else:        # FC weights (10, 160), one scale
            w_real, g_real = w * s[0], g / s[0]
        assert math.isclose(rows[k]["weight_norm"], np.linalg.norm(w_real), rel_tol=1e-12)
        assert math.isclose(rows[k]["grad_norm"], np.linalg.norm(g_real), rel_tol=1e-9)


def test_ratio_on_a_subset_and_seed_matters(blurred, model):
    xtr, ytr, _, _ = blurred
    a = gradient_weight_ratio(model, xtr, ytr, steps=1, queries=1, batch_size=16, layers=[9, 11], seed=0)
    b = gradient_weight_ratio(model, xtr, ytr, steps=1, queries=1, batch_size=16, layers=[9, 11], seed=1)
    assert {r["layer"] for r in a} == {9, 11}
    assert [r["grad_norm"] for r in a] != [r["grad_norm"] for r in b]


# ----------------------------------------------------------------------------- test-and-pick
def test_test_and_pick_unchanged_deterministic_consistent(blurred, model):
    xtr, ytr, xva, yva = blurred
    state = _state(model)
    kw = {"candidates": [1, 4, 9, 11], "budget_layers": 2, "steps": 2, "lr": 1e-3, "seed": 1, "queries": 2, "batch_size": 32}
    rows, chosen = test_and_pick(model, xtr, ytr, xva, yva, **kw)
    _assert_unchanged(model, state, xtr[:8])
    rows2, chosen2 = test_and_pick(model, xtr, ytr, xva, yva, **kw)
    assert rows == rows2 and chosen == chosen2
    assert [r["layer"] for r in rows] == [1, 4, 9, 11]
    assert len({r["val_acc_before"] for r in rows}) == 1
    for r in rows:
        assert r["gain"] == pytest.approx(r["val_acc_after"] - r["val_acc_before"], abs=1e-15)
        assert r["loss_drop"] == pytest.approx(r["val_loss_before"] - r["val_loss_after"], abs=1e-12)
        assert 0.0 <= r["val_acc_after"] <= 1.0
    # consistency: every chosen layer beats every other on (gain, then loss drop)
    assert chosen == sorted(chosen) and len(chosen) == 2
    key = {r["layer"]: (r["gain"], r["loss_drop"]) for r in rows}
    for c in chosen:
        for o in set(key) - set(chosen):
            assert key[c] > key[o] or (key[c] == key[o] and c < o)
    assert any(r["val_acc_after"] != r["val_acc_before"] or r["loss_drop"] != 0 for r in rows), "no trial moved"


def test_test_and_pick_gain_equals_training_that_layer_alone(blurred, model):
    """A candidate's val_acc_after / loss is that of a fresh model trained on that layer alone, same batches."""
    xtr, ytr, xva, yva = blurred
    rows, _ = test_and_pick(model, xtr, ytr, xva, yva, candidates=[4, 11], budget_layers=1, steps=2, seed=2,
                            queries=2, batch_size=32)
    m = tinyzo.load(REF)
    tr = ZOTrainer(m, ZOConfig(layers=[4], target="node", lr=1e-3, queries=2, seed=2), total_steps=2)
    for idx in selection._batches(len(xtr), 32, 2, 2):
        tr.step(xtr[idx], ytr[idx])
    logits = m(xva).reshape(len(xva), -1)
    t = m.tensors[m.outputs[0]]
    loss = float(np.mean(cross_entropy_int8(logits, yva, float(t.quant.scale[0]), int(t.quant.zero_point[0]))
                         .astype(np.float64)))
    r4 = rows[0]
    assert r4["layer"] == 4
    assert r4["val_acc_after"] == np.mean(np.argmax(logits, axis=1) == yva)
    assert r4["val_loss_after"] == pytest.approx(loss, rel=1e-12)


def test_pick_breaks_ties_by_loss_then_order():
    rows = [{"layer": k, "gain": g, "loss_drop": d} for k, g, d in
            [(0, 0.0, 0.5), (1, 0.1, 0.0), (2, 0.0, 0.5), (3, 0.0, 0.9), (4, -0.1, 9.0)]]
    top = [r["layer"] for r in sorted(rows, key=selection._pick_key)]
    assert top == [1, 3, 0, 2, 4]


# ----------------------------------------------------------------------------- channels
@pytest.mark.parametrize("layer", [0, 3, 11])
@pytest.mark.parametrize("ratio", [0.01, 0.25, 0.5, 0.9, 1.0])
def test_select_channels_sizes_and_magnitude_order(model, layer, ratio):
    state = _state(model)
    n_out = model.prepared[layer].n_out
    ch = select_channels(model, layer, ratio, by="magnitude")
    assert len(ch) == max(1, math.ceil(ratio * n_out)) and len(set(ch)) == len(ch)
    assert all(isinstance(c, int) and 0 <= c < n_out for c in ch)
    w, _ = model.get_params(layer)
    axis = 3 if model.operators[layer].opcode == "DEPTHWISE_CONV_2D" else 0
    s = model.tensors[model.operators[layer].inputs[1]].quant.scale.astype(np.float64)
    s = np.broadcast_to(s, (n_out,))
    norms = np.array([np.linalg.norm(np.take(w, c, axis=axis).astype(np.float64)) * s[c] for c in range(n_out)])
    picked = norms[ch]
    assert np.all(np.diff(picked) <= 0), "largest first"
    rest = np.setdiff1d(np.arange(n_out), ch)
    if rest.size:
        assert picked.min() >= norms[rest].max()
    if ratio == 1.0:
        assert sorted(ch) == list(range(n_out))
    r = select_channels(model, layer, ratio, by="random", seed=4)
    assert len(r) == len(ch) and r == sorted(set(r)) and all(0 <= c < n_out for c in r)
    assert r == select_channels(model, layer, ratio, by="random", seed=4)
    _assert_unchanged(model, state, np.zeros((2, 32, 32, 1), np.int8))


def test_select_channels_random_depends_on_seed_and_feeds_the_trainer(blurred, model):
    a = select_channels(model, 9, 0.25, by="random", seed=0)
    b = select_channels(model, 9, 0.25, by="random", seed=1)
    assert a != b and len(a) == 40
    xtr, ytr, _, _ = blurred
    ch = select_channels(model, 9, 0.25)
    tr = ZOTrainer(model, ZOConfig(layers=[9], target="node", channels={9: ch}, lr=1e-2, seed=0))
    w0, b0 = model.get_params(9)
    tr.step(xtr[:32], ytr[:32])
    w1, b1 = model.get_params(9)
    untouched = np.setdiff1d(np.arange(160), ch)
    np.testing.assert_array_equal(w0[untouched], w1[untouched])
    np.testing.assert_array_equal(b0[untouched], b1[untouched])


@pytest.mark.parametrize("ratio", [0, 0.0, -0.1, 1.0001, 2, float("nan"), float("inf"), True, "0.5", None])
def test_select_channels_bad_ratio(model, ratio):
    with pytest.raises(InputError, match="ratio"):
        select_channels(model, 9, ratio)


def test_select_channels_bad_layer_and_rule(model):
    with pytest.raises(InputError, match="not trainable"):
        select_channels(model, 7, 0.5)           # ADD
    with pytest.raises(InputError, match="not trainable"):
        select_channels(model, 99, 0.5)
    with pytest.raises(InputError, match="by must be"):
        select_channels(model, 9, 0.5, by="gradient")
    assert issubclass(SelectionError, ZOConfigError) and issubclass(SelectionError, tinyzo.TinyzoError)


# ----------------------------------------------------------------------------- select_layers
def test_select_layers_methods(blurred, model):
    xtr, ytr, xva, yva = blurred
    state = _state(model)
    assert select_layers(model, "last", 2) == [9, 11]
    assert select_layers(model, "last", 10) == TRAINABLE
    assert select_layers(model, "last", 3, candidates=[0, 4, 2, 1]) == [1, 2, 4]
    opts = {"steps": 1, "queries": 2, "batch_size": 16, "seed": 5}
    ratio = select_layers(model, "ratio", 3, xq=xtr, y=ytr, **opts)
    rows = gradient_weight_ratio(model, xtr, ytr, **opts)
    assert ratio == sorted(r["layer"] for r in rows[:3])
    tp = select_layers(model, "test-and-pick", 2, xq=xtr, y=ytr, xq_val=xva, y_val=yva,
                       candidates=[2, 4, 11], steps=1, queries=2, seed=5)
    assert tp == test_and_pick(model, xtr, ytr, xva, yva, candidates=[2, 4, 11], budget_layers=2, steps=1,
                               queries=2, seed=5)[1]
    _assert_unchanged(model, state, xtr[:8])


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "gradient"}, "unknown selection method"),
    ({"method": "last", "k": 11}, "only 10 trainable layers"),
    ({"method": "last", "k": 3, "candidates": [9, 11]}, "only 2 trainable layers"),
    ({"method": "last", "k": 0}, "k must be"),
    ({"method": "last", "k": 2.0}, "k must be"),
    ({"method": "last", "k": 2, "candidates": [7]}, "not trainable"),
    ({"method": "last", "k": 1, "candidates": []}, "empty"),
    ({"method": "last", "k": 1, "candidates": [9, 9]}, "twice"),
    ({"method": "last", "k": 1, "steps": 3}, "takes no options"),
    ({"method": "ratio", "k": 2}, "required"),
    ({"method": "test-and-pick", "k": 2}, "required"),
])
def test_select_layers_bad_input(model, kwargs, match):
    with pytest.raises(SelectionError, match=match):
        select_layers(model, **kwargs)


def test_bad_data_and_options(blurred, model):
    xtr, ytr, xva, yva = blurred
    state = _state(model)
    bad = [
        (lambda: gradient_weight_ratio(model, xtr.astype(np.float32), ytr), "int8"),
        (lambda: gradient_weight_ratio(model, xtr, ytr[:-1]), "label"),
        (lambda: gradient_weight_ratio(model, xtr, ytr + 10), r"\[0, 9\]"),
        (lambda: gradient_weight_ratio(model, xtr[:, :16], ytr), "do not match"),
        (lambda: gradient_weight_ratio(model, xtr, ytr, target="mixed"), "target"),
        (lambda: gradient_weight_ratio(model, xtr, ytr, steps=0), "steps"),
        (lambda: gradient_weight_ratio(model, xtr, ytr, queries=-1), "queries"),
        (lambda: gradient_weight_ratio(model, xtr, ytr, layers=[10]), "not trainable"),
        (lambda: test_and_pick(model, xtr, ytr, xva, yva, budget_layers=11), "exceeds"),
        (lambda: test_and_pick(model, xtr, ytr, xva, yva, candidates=[4], budget_layers=2), "exceeds"),
        (lambda: test_and_pick(model, xtr, ytr, xva, yva, budget_layers=0), "budget_layers"),
        (lambda: test_and_pick(model, xtr, ytr, xva, yva, lr=0.0), "lr"),
        (lambda: test_and_pick(model, xtr, ytr, xva, yva, lr=float("nan")), "lr"),
        (lambda: test_and_pick(model, xtr, ytr, xva, yva, steps=0), "steps"),
        (lambda: test_and_pick(model, xtr, ytr, None, None), "required"),
        (lambda: test_and_pick(model, xtr, ytr, xva, yva[:3]), "validation"),
    ]
    for call, match in bad:
        with pytest.raises(SelectionError, match=match):
            call()
    _assert_unchanged(model, state, xtr[:8])


def test_model_restored_when_a_trial_fails(blurred, model, monkeypatch):
    """An error in the middle of test-and-pick (after a layer was trained) still restores the model."""
    xtr, ytr, xva, yva = blurred
    state = _state(model)
    calls = {"n": 0}
    real = selection._loss_acc

    def failing(m, xq, y, batch_size=512):
        calls["n"] += 1
        if calls["n"] == 3:   # before, after candidate 1, after candidate 2 -> fail
            raise RuntimeError("interrupted")
        return real(m, xq, y, batch_size)

    monkeypatch.setattr(selection, "_loss_acc", failing)
    with pytest.raises(RuntimeError, match="interrupted"):
        test_and_pick(model, xtr, ytr, xva, yva, candidates=[4, 9, 11], budget_layers=1, lr=1e-2, steps=2)
    _assert_unchanged(model, state, xtr[:8])
