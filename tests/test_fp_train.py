"""tinyzo.fp: float executor (forward/backward over a Net), the SGD trainer, checkpoints, augmentation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tinyzo import fp
from tinyzo.errors import TinyzoError
from tinyzo.fp import augment as A
from tinyzo.fp import kernels as K
from tinyzo.nn import Layer, Net, init_params

# --------------------------------------------------------------------------------------------------
# nets


def every_kind_net() -> Net:
    """Every layer kind and both add/multi-consumer paths; odd sizes so SAME pads bottom/right."""
    L = Layer
    return Net("gradcheck", (7, 7, 2), [
        L("c1", "conv", out_channels=4, kernel=3, stride=2, bn=True, activation="relu"),        # 4x4x4
        L("d1", "depthwise", ("c1",), kernel=3, depth_multiplier=2, bn=True, activation="relu6"),  # 4x4x8
        L("p1", "conv", ("d1",), out_channels=4, kernel=1, bn=True),                           # 4x4x4
        L("a1", "add", ("c1", "p1"), activation="relu"),
        L("mp", "maxpool", ("a1",), kernel=2, stride=2, padding="VALID"),                        # 2x2x4
        L("up", "upsample", ("mp",), factor=2),                                                  # 4x4x4
        L("ap", "avgpool", ("up",), kernel=3, stride=1),                                          # 4x4x4 (clipped)
        L("c2", "conv", ("ap",), out_channels=6, kernel=3, dilation=2, activation="relu"),        # 4x4x6, bias
        L("d2", "depthwise", ("c2",), kernel=2, stride=2),                                        # 2x2x6, bias
        L("g", "gap", ("d2",)),
        L("f1", "fc", ("g",), out_channels=5),
        L("fl", "flatten", ("ap",)),
        L("f2", "fc", ("fl",), out_channels=5),
        L("out", "add", ("f1", "f2")),
    ], num_classes=5)


def small_cnn(input_shape=(8, 8, 1), classes=10) -> Net:
    L = Layer
    return Net("small", input_shape, [
        L("stem", "conv", out_channels=8, kernel=3, bn=True, activation="relu"),
        L("dw", "depthwise", ("stem",), kernel=3, stride=2, bn=True, activation="relu"),
        L("pw", "conv", ("dw",), out_channels=16, kernel=1, bn=True, activation="relu"),
        L("gap", "gap", ("pw",)),
        L("fc", "fc", ("gap",), out_channels=classes),
    ], num_classes=classes)


def synthetic(n=240, classes=4, seed=0):
    """Separable 8x8 images: one bright 3x3 blob per class (a fixed corner) plus noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.normal(0.0, 0.15, (n, 8, 8, 1)).astype(np.float32)
    pos = [(1, 1), (1, 4), (4, 1), (4, 4), (2, 2), (3, 3)]
    for i in range(n):
        r, c = pos[y[i]]
        x[i, r:r + 3, c:c + 3, 0] += 1.0
    return x, y


def as64(params):
    return {k: {n: a.astype(np.float64) for n, a in v.items()} for k, v in params.items()}


# --------------------------------------------------------------------------------------------------
# (1) whole-net gradient check


@pytest.mark.parametrize("training", [True, False])
def test_backward_matches_finite_differences(training):
    """backward() == central differences of the mean loss, float64 (the kernels accept it).

    Error of a central difference with step h = 1e-5 on a smooth function: O(h^2 f''') ~ 1e-10 plus
    roundoff ~ 1e-16 / h = 1e-11; the tolerance 1e-6 (relative to max(|g|, 1e-3)) leaves a margin of
    1000x while a wrong term (a missing factor, a swapped index) is off by O(|g|). With ReLUs the
    loss is piecewise smooth: the fixed seed keeps every probe 1e-5 away from a kink (checked: a kink
    inside the step would show as an O(1) relative error and fail, it cannot pass silently).
    """
    net = every_kind_net()
    rng = np.random.default_rng(1)
    params = as64(init_params(net, seed=3))
    for lay in net.layers:  # non-trivial BN/bias values so every term of every formula matters
        p = params.get(lay.name, {})
        for k in ("gamma", "beta", "b", "mean"):
            if k in p:
                p[k] = rng.normal(0.5 if k == "gamma" else 0.0, 0.3, p[k].shape) + (0.5 if k == "gamma" else 0.0)
        if "var" in p:
            p["var"] = rng.uniform(0.5, 2.0, p["var"].shape)
    x = rng.normal(0, 1, (6, 7, 7, 2))
    y = rng.integers(0, 5, 6)

    def loss_of(ps):
        logits, _ = fp.forward(net, ps, x, training=training)
        return K.softmax_cross_entropy(logits, y)[0]

    logits, cache = fp.forward(net, params, x, training=training)
    assert logits.dtype == np.float64 and logits.shape == (6, 5)
    _, dlogits, _ = K.softmax_cross_entropy(logits, y)
    grads = fp.backward(net, params, cache, dlogits)

    expected_keys = {lay.name for lay in net.layers if lay.has_weights}
    assert set(grads) == expected_keys
    h = 1e-5
    checked = 0
    for lname, g in grads.items():
        assert set(g) == ({"w", "gamma", "beta"} if net.layer(lname).bn else {"w", "b"})
        for k, gk in g.items():
            assert gk.shape == params[lname][k].shape and gk.dtype == np.float64
            flat = params[lname][k].reshape(-1)
            for j in rng.choice(flat.size, size=min(4, flat.size), replace=False):
                old = flat[j]
                flat[j] = old + h
                lp = loss_of(params)
                flat[j] = old - h
                lm = loss_of(params)
                flat[j] = old
                num = (lp - lm) / (2 * h)
                ana = gk.reshape(-1)[j]
                assert abs(num - ana) <= 1e-6 * max(abs(num), 1e-3), (lname, k, j, num, ana)
                checked += 1
    assert checked >= 40


def test_forward_float32_matches_float64():
    """The float32 path computes the same function (tolerance: float32 rounding through ~14 layers)."""
    net = every_kind_net()
    params = init_params(net, seed=0)
    x = np.random.default_rng(0).normal(0, 1, (4, 7, 7, 2)).astype(np.float32)
    l32, _ = fp.forward(net, params, x, training=True)
    l64, _ = fp.forward(net, as64(params), x.astype(np.float64), training=True)
    assert l32.dtype == np.float32
    np.testing.assert_allclose(l32, l64, rtol=1e-4, atol=1e-4)


def test_backward_skips_unused_input_gradients_and_gives_zero_for_dead_branches():
    L = Layer
    net = Net("dead", (4, 4, 1), [
        L("up", "upsample", factor=2),
        L("side", "conv", ("up",), out_channels=2, kernel=1),   # not on the path to the output
        L("c", "conv", ("up",), out_channels=3, kernel=3, stride=2),
        L("g", "gap", ("c",)),
        L("fc", "fc", ("g",), out_channels=2),
    ])
    params = init_params(net, 0)
    x = np.ones((2, 4, 4, 1), np.float32)
    logits, cache = fp.forward(net, params, x)
    grads = fp.backward(net, params, cache, np.ones_like(logits))
    np.testing.assert_array_equal(grads["side"]["w"], 0)
    assert np.any(grads["c"]["w"] != 0)


# --------------------------------------------------------------------------------------------------
# activations / evaluate / input errors


def test_activations_batched_equal_unbatched_and_match_forward():
    net = small_cnn()
    params = init_params(net, 0)
    params["stem"]["mean"][:] = 0.3
    params["stem"]["var"][:] = 2.0
    x, _ = synthetic(50)
    acts = fp.activations(net, params, x, batch_size=16)
    assert list(acts) == [lay.name for lay in net.layers]
    for lay in net.layers:
        assert acts[lay.name].shape == (50,) + lay.out_shape and acts[lay.name].dtype == np.float32
    _, cache = fp.forward(net, params, x, training=False)
    for name, a in acts.items():
        # batches of 16 vs one of 50: BLAS may block the sums differently -> float32 rounding only
        np.testing.assert_allclose(a, cache["out"][name], rtol=1e-5, atol=1e-6)
    assert np.all(acts["stem"] >= 0)  # relu applied after BN


def test_evaluate_counts_and_accuracy():
    net = small_cnn(classes=4)
    params = init_params(net, 0)
    x, y = synthetic(40)
    ev = fp.evaluate(net, params, x, y, batch_size=7)
    logits = fp.predict(net, params, x, batch_size=7)  # the same batch split: BLAS sums in the same order
    assert ev["n"] == 40
    assert ev["accuracy"] == np.mean(np.argmax(logits, 1) == y)
    per = K.softmax_cross_entropy(logits, y)[2]
    assert abs(ev["loss"] - float(np.mean(per, dtype=np.float64))) < 1e-5


def test_bad_inputs_raise_clear_errors():
    net = small_cnn()
    params = init_params(net, 0)
    with pytest.raises(TinyzoError, match=r"shape \(N, 8, 8, 1\)"):
        fp.forward(net, params, np.zeros((2, 8, 8), np.float32))
    with pytest.raises(TinyzoError, match="float array"):
        fp.forward(net, params, np.zeros((2, 8, 8, 1), np.uint8))
    with pytest.raises(TinyzoError, match="no entry for layer 'dw'"):
        fp.forward(net, {k: v for k, v in params.items() if k != "dw"}, np.zeros((2, 8, 8, 1), np.float32))
    x, y = synthetic(8)
    with pytest.raises(TinyzoError, match=r"labels must be in \[0, 9\]"):
        fp.evaluate(net, params, x, y + 10)
    with pytest.raises(TinyzoError, match="one label per sample"):
        fp.evaluate(net, params, x, y[:5])
    with pytest.raises(TinyzoError, match="both x_val and y_val"):
        fp.train(net, params, x, y, x_val=x, epochs=1, progress=False)


# --------------------------------------------------------------------------------------------------
# (2) training works on a real task


def _digits():
    """Bundled UCI digits (tinyzo.data) as float32[N, 8, 8, 1] in [0, 1]: (x_train, y_train, x_val, y_val)."""
    from tinyzo.data import load

    d = load("digits").as_float()
    return d.x_train, d.y_train, d.x_val, d.y_val


def digits_net() -> Net:
    L = Layer
    return Net("digits_tiny", (8, 8, 1), [
        L("stem", "conv", out_channels=8, kernel=3, bn=True, activation="relu"),
        L("dw", "depthwise", ("stem",), kernel=3, stride=2, bn=True, activation="relu"),
        L("pw", "conv", ("dw",), out_channels=16, kernel=1, bn=True, activation="relu"),
        L("flat", "flatten", ("pw",)),
        L("fc", "fc", ("flat",), out_channels=10),
    ], num_classes=10)


def test_training_reduces_loss_and_learns_digits():
    """A 2.9k-parameter net on the real 8x8 digits: >= 93 % validation accuracy after 4 epochs.

    Measured 96.7 % (180 validation images); the 93 % bar leaves 6 images of margin for BLAS
    differences between machines, while an untrained or broken trainer stays near 10 %.
    """
    xt, yt, xv, yv = _digits()
    assert xt.shape[1:] == (8, 8, 1) and len(xt) > 1000 and len(xv) > 100
    net = digits_net()
    params = init_params(net, seed=0)
    before = fp.evaluate(net, params, xv, yv)
    hist = fp.train(net, params, xt, yt, xv, yv, epochs=4, batch_size=32, lr=0.05, progress=False, seed=0)
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    assert hist.params is params
    assert set(hist[0]) == {"epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"}
    assert hist[-1]["train_loss"] < 0.25 * hist[0]["train_loss"]
    assert hist[-1]["val_loss"] < 0.25 * before["loss"]
    assert before["accuracy"] < 0.5
    assert hist[-1]["val_acc"] >= 0.93, hist
    after = fp.evaluate(net, params, xv, yv)
    assert after["accuracy"] == hist[-1]["val_acc"]


def test_progress_output_and_on_epoch(capsys):
    net = small_cnn(classes=4)
    params = init_params(net, 0)
    x, y = synthetic(40, classes=4)
    seen = []
    hist = fp.train(net, params, x, y, x, y, epochs=2, batch_size=16, progress=True, on_epoch=seen.append)
    assert seen == list(hist) and len(hist) == 2
    cap = capsys.readouterr()
    assert "epoch 2/2: lr" in cap.out + cap.err and "val loss" in cap.out + cap.err


def test_learning_rate_schedule():
    assert fp.learning_rate(0, 100, 0.1, "cosine", 10) == pytest.approx(0.01)
    assert fp.learning_rate(9, 100, 0.1, "cosine", 10) == pytest.approx(0.1)
    assert fp.learning_rate(10, 100, 0.1, "cosine", 10) == pytest.approx(0.1)
    assert fp.learning_rate(55, 100, 0.1, "cosine", 10) == pytest.approx(0.05)
    assert fp.learning_rate(55, 100, 0.1, "linear", 10) == pytest.approx(0.05)
    assert fp.learning_rate(99, 100, 0.1, "constant") == 0.1
    with pytest.raises(TinyzoError, match="schedule"):
        fp.learning_rate(0, 10, 0.1, "exp")


def test_sgd_step_weight_decay_only_on_weights():
    params = {"l": {"w": np.ones(3, np.float32), "b": np.ones(3, np.float32)}}
    vel = {"l": {"w": np.zeros(3, np.float32), "b": np.zeros(3, np.float32)}}
    g = {"l": {"w": np.zeros(3, np.float32), "b": np.zeros(3, np.float32)}}
    fp.sgd_step(params, g, vel, lr=0.5, momentum=0.9, weight_decay=0.1)
    np.testing.assert_array_equal(params["l"]["w"], np.float32(1 - 0.5 * 0.1))
    np.testing.assert_array_equal(params["l"]["b"], 1.0)
    fp.sgd_step(params, g, vel, lr=0.5, momentum=0.9, weight_decay=0.0)
    np.testing.assert_allclose(params["l"]["w"], 0.95 - 0.5 * 0.9 * 0.1, rtol=1e-6)


# --------------------------------------------------------------------------------------------------
# (3) determinism, (4) checkpoint/resume, (5) NaN guard

AUG = A.compose(A.random_shift(1), A.random_rotate(10), A.random_scale(0.9, 1.1))


def _run(epochs, **kw):
    net = small_cnn(classes=4)
    params = init_params(net, seed=5)
    x, y = synthetic(100, classes=4, seed=3)
    hist = fp.train(net, params, x, y, x[:30], y[:30], epochs=epochs, batch_size=16, lr=0.05, augment=AUG,
                    seed=7, progress=False, **kw)
    return params, hist


def _assert_same_params(a, b):
    assert set(a) == set(b)
    for k in a:
        assert set(a[k]) == set(b[k])
        for n in a[k]:
            np.testing.assert_array_equal(a[k][n], b[k][n], err_msg=f"{k}/{n}")


def test_same_seed_gives_identical_params():
    p1, h1 = _run(2)
    p2, h2 = _run(2)
    _assert_same_params(p1, p2)
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in h1] == \
        [{k: v for k, v in r.items() if k != "seconds"} for r in h2]
    # and a different seed really differs
    net = small_cnn(classes=4)
    p3 = init_params(net, seed=5)
    x, y = synthetic(100, classes=4, seed=3)
    fp.train(net, p3, x, y, epochs=2, batch_size=16, lr=0.05, augment=AUG, seed=8, progress=False)
    assert not np.array_equal(p1["stem"]["w"], p3["stem"]["w"])


def test_checkpoint_resume_equals_uninterrupted(tmp_path):
    full, hist_full = _run(3)
    ck = tmp_path / "run.ckpt.npz"
    # interrupted after epoch 2 (on_epoch returns True to stop)
    part, hist_part = _run(3, checkpoint=ck, on_epoch=lambda rec: rec["epoch"] == 2)
    assert len(hist_part) == 2 and ck.exists()
    saved = fp.load_checkpoint(ck)
    assert saved["epoch"] == 2
    _assert_same_params(saved["params"], part)
    # resume into freshly initialized params: they are overwritten from the checkpoint
    resumed, hist_res = _run(3, checkpoint=ck, resume=True)
    _assert_same_params(resumed, full)
    assert len(hist_res) == 3
    assert [r["train_loss"] for r in hist_res] == [r["train_loss"] for r in hist_full]
    assert fp.load_checkpoint(ck)["epoch"] == 3
    assert not Path(str(ck) + ".tmp").exists()
    # the checkpoint is plain npz without pickle, with the shared manifest (tinyzo.checkpoint)
    with np.load(ck, allow_pickle=False) as z:
        manifest = json.loads(z["manifest.json"])
        assert manifest["format"] == "tinyzo-checkpoint" and manifest["kind"] == "fp-train"
        assert manifest["epoch"] == 3


def test_resume_refuses_foreign_checkpoint(tmp_path):
    ck = tmp_path / "c.npz"
    _run(1, checkpoint=ck)
    net = small_cnn(classes=3)  # different fc shape
    params = init_params(net, 0)
    x, y = synthetic(100, classes=3, seed=3)
    with pytest.raises(fp.CheckpointError, match="fc"):
        fp.train(net, params, x, y, epochs=2, batch_size=16, seed=7, progress=False, checkpoint=ck, resume=True)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(fp.CheckpointError, match="cannot read checkpoint"):
        fp.load_checkpoint(bad)


def test_nan_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(tmp_path):
    net = small_cnn(classes=4)
    params = init_params(net, seed=0)
    x, y = synthetic(64, classes=4)
    ck = tmp_path / "c.npz"
    fp.train(net, params, x, y, epochs=1, batch_size=16, seed=0, progress=False, checkpoint=ck)
    good = fp.load_checkpoint(ck)
    xbad = x.copy()
    xbad[5, 2, 2, 0] = np.nan
    with pytest.raises(fp.TrainingDivergedError, match=r"epoch 2 \(batch \d+/4\).*keeps epoch 1"):
        fp.train(net, params, xbad, y, epochs=3, batch_size=16, seed=0, progress=False, checkpoint=ck, resume=True)
    after = fp.load_checkpoint(ck)
    assert after["epoch"] == 1
    _assert_same_params(after["params"], good["params"])
    assert all(np.isfinite(a).all() for p in params.values() for a in p.values())
    # a huge learning rate diverges too (loss or gradient overflows), named as such
    p2 = init_params(net, seed=0)
    with pytest.raises(fp.TrainingDivergedError, match="epoch 1"), np.errstate(over="ignore", invalid="ignore"):
        fp.train(net, p2, x, y, epochs=1, batch_size=16, lr=1e30, momentum=0.0, progress=False)
    assert all(np.isfinite(a).all() for p in p2.values() for a in p.values())


# --------------------------------------------------------------------------------------------------
# augmentation


def test_augmentations_are_deterministic_and_shape_preserving():
    x = np.random.default_rng(0).random((5, 8, 8, 2)).astype(np.float32)
    for aug in (A.random_shift(2), A.random_rotate(20), A.random_scale(0.8, 1.2), A.random_flip(), AUG):
        a = aug(x, np.random.default_rng(3))
        b = aug(x, np.random.default_rng(3))
        assert a.shape == x.shape and a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, aug(x, np.random.default_rng(4)))


def test_augmentation_identities_and_exact_shift():
    x = np.random.default_rng(0).random((3, 6, 6, 1)).astype(np.float32)
    rng = np.random.default_rng(0)
    np.testing.assert_allclose(A.random_rotate(0)(x, rng), x, atol=1e-6)
    np.testing.assert_allclose(A.random_scale(1.0, 1.0)(x, rng), x, atol=1e-6)
    np.testing.assert_array_equal(A.random_shift(0)(x, rng), x)
    # a shift moves pixels exactly: every output equals the input shifted by some (dy, dx) in [-1, 1]
    s = A.random_shift(1, fill=-1.0)(x, np.random.default_rng(1))
    for i in range(3):
        ok = False
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                ref = np.full_like(x[i], -1.0)
                ref[max(0, dy):6 + min(0, dy), max(0, dx):6 + min(0, dx)] = \
                    x[i, max(0, -dy):6 - max(0, dy), max(0, -dx):6 - max(0, dx)]
                ok |= np.array_equal(s[i], ref)
        assert ok
    with pytest.raises(TinyzoError):
        A.random_shift(-1)
    with pytest.raises(TinyzoError):
        A.random_scale(1.2, 1.1)
    with pytest.raises(TinyzoError, match="Generator"):
        A.random_rotate(5)(x, 3)
