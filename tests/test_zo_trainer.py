"""Zeroth-order training of the int8 digits model: determinism, cost, resume, progress, TFLM, errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinyzo
from tinyzo import data
from tinyzo.cli import main
from tinyzo.evaluate import evaluate, images_to_input
from tinyzo.training.loop import fit
from tinyzo.zo.trainer import ZOConfig, ZOConfigError, ZOTrainer

REF = Path(__file__).resolve().parents[1] / "reference_models" / "digits_cnn.tflite"


@pytest.fixture(scope="module")
def blurred():
    ds = data.load("digits")
    m = tinyzo.load(REF)
    xtr = images_to_input(m, data.corrupt(ds.x_train, "motion_blur", 5, seed=0))
    return xtr, ds.y_train, data.corrupt(ds.x_test, "motion_blur", 5, seed=2), ds.y_test


def _params(model, layers):
    return {k: model.get_params(k) for k in layers}


@pytest.mark.parametrize("target", ["weight", "node", "mixed"])
def test_same_seed_same_int8_weights(blurred, target):
    xtr, ytr, _, _ = blurred
    runs = []
    for _ in range(2):
        m = tinyzo.load(REF)
        cfg = ZOConfig(layers=m.trainable_ops()[-3:], target=target, lr=1e-3, seed=5, mixed_split=1)
        tr = ZOTrainer(m, cfg, total_steps=3)
        for s in range(3):
            tr.step(xtr[s * 16:(s + 1) * 16], ytr[s * 16:(s + 1) * 16])
        runs.append(_params(m, tr.layers))
    for k in runs[0]:
        np.testing.assert_array_equal(runs[0][k][0], runs[1][k][0])
        np.testing.assert_array_equal(runs[0][k][1], runs[1][k][1])
    base = _params(tinyzo.load(REF), runs[0].keys())
    assert any(not np.array_equal(base[k][0], runs[0][k][0]) or not np.array_equal(base[k][1], runs[0][k][1])
               for k in base), "training changed nothing"


@pytest.mark.parametrize("estimator, queries, passes", [("rge", 1, 2), ("rge", 3, 4), ("spsa", 2, 5), ("sign-spsa", 1, 3)])
def test_forward_passes_per_step(blurred, estimator, queries, passes):
    xtr, ytr, _, _ = blurred
    m = tinyzo.load(REF)
    tr = ZOTrainer(m, ZOConfig(layers=[11], estimator=estimator, queries=queries, lr=1e-4), total_steps=1)
    info = tr.step(xtr[:8], ytr[:8])
    assert info["forward_passes"] == passes  # 1 base forward + 1 (one-sided) or 2 (two-sided) per query


def test_node_perturbation_recovers_accuracy_on_blurred_digits(blurred):
    """The adaptation target: ZO node perturbation on the last 3 layers wins back accuracy the blur took."""
    xtr, ytr, xte, yte = blurred
    m = tinyzo.load(REF)
    before = evaluate(m, xte, yte)["accuracy"]
    tr = ZOTrainer(m, ZOConfig(layers=m.trainable_ops()[-3:], target="node", lr=1e-3, seed=0), total_steps=120)
    fit(tr, m, xtr, ytr, epochs=3, batch_size=32, seed=0, progress=False)
    after = evaluate(m, xte, yte)["accuracy"]
    assert after >= before + 0.08, (before, after)


@pytest.mark.parametrize("extra", [{}, {"density": 0.3, "block": "layer", "queries": 3}])
def test_resume_continues_exactly(blurred, tmp_path, extra):
    xtr, ytr, _, _ = blurred
    xtr, ytr = xtr[:96], ytr[:96]

    def run(epochs, out, resume=False, model=None):
        m = model or tinyzo.load(REF)
        tr = ZOTrainer(m, ZOConfig(layers=[9, 11], target="node", lr=1e-3, update="shadow", seed=3, **extra),
                       total_steps=9)
        hist = fit(tr, m, xtr, ytr, epochs=epochs, batch_size=32, seed=1, out_dir=out, resume=resume, progress=False)
        return m, hist

    full, _ = run(3, tmp_path / "a")
    run(2, tmp_path / "b")  # "interrupted" after 2 epochs
    resumed, hist = run(3, tmp_path / "b", resume=True)
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    for k in (9, 11):
        np.testing.assert_array_equal(full.get_params(k)[0], resumed.get_params(k)[0])
        np.testing.assert_array_equal(full.get_params(k)[1], resumed.get_params(k)[1])
    h = json.loads((tmp_path / "b" / "history.json").read_text())
    assert len(h) == 3 and (tmp_path / "b" / "history.csv").exists() and (tmp_path / "b" / "curves.png").exists()


def test_cli_train_writes_a_model_tflm_runs_exactly(tmp_path, capsys):
    out = tmp_path / "adapted.tflite"
    assert main(["train", str(REF), "--data", "digits", "--method", "zo-rge-node", "--layers", "last2",
                 "--corruption", "fog", "--severity", "5", "--epochs", "1", "--lr", "1e-3", "--out", str(out),
                 "--out-dir", str(tmp_path / "run"), "--no-progress"]) == 0
    assert "before" in capsys.readouterr().out
    model = tinyzo.load(out)
    from oracle import tflm_run

    ds = data.load("digits")
    xq = images_to_input(model, ds.x_test[:16])
    outs, _ = tflm_run(out.read_bytes(), [xq])
    np.testing.assert_array_equal(model(xq), outs[0])


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(layers=[7]), "not trainable"),  # 7 is the ADD
        (dict(sigma=0), "sigma"),
        (dict(lr=-1.0), "lr"),
        (dict(lr=float("nan")), "lr"),
        (dict(target="nodes"), "target"),
        (dict(estimator="sgd"), "estimator"),
        (dict(queries=0), "queries"),
    ],
)
def test_bad_config_is_refused(kwargs, needle):
    m = tinyzo.load(REF)
    with pytest.raises(ZOConfigError, match=needle):
        ZOTrainer(m, ZOConfig(**kwargs))


@pytest.mark.parametrize("method", ["zo-adam-weight", "zo-rge-neurons", "backprop"])
def test_cli_unknown_method_is_one_line(method):
    r = subprocess.run([sys.executable, "-m", "tinyzo", "train", str(REF), "--data", "digits", "--method", method],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "unknown method" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_identical_int8_weights_without_jit():
    """Same seed, same data -> identical int8 weights after training, also with NUMBA_DISABLE_JIT=1."""
    script = Path(__file__).with_name("zo_replay.py")
    outs = []
    for disable in ("0", "1"):
        env = dict(os.environ, NUMBA_DISABLE_JIT=disable)
        r = subprocess.run([sys.executable, str(script), str(REF)], env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append(r.stdout.strip())
    assert outs[0] == outs[1] and len(outs[0]) == 64


@pytest.mark.parametrize("target", ["weight", "node"])
def test_channel_subset_leaves_other_channels_untouched(blurred, target):
    xtr, ytr, _, _ = blurred
    m = tinyzo.load(REF)
    k = m.trainable_ops()[-2]  # a pointwise conv, output channels on axis 0
    w0, b0 = m.get_params(k)
    chans = [0, 3, 7]
    tr = ZOTrainer(m, ZOConfig(layers=[k], target=target, channels={k: chans}, lr=1e-2, seed=1), total_steps=4)
    for s in range(4):
        tr.step(xtr[s * 16:(s + 1) * 16], ytr[s * 16:(s + 1) * 16])
    w1, b1 = m.get_params(k)
    other = np.setdiff1d(np.arange(w0.shape[0]), chans)
    np.testing.assert_array_equal(w1[other], w0[other])
    np.testing.assert_array_equal(b1[other], b0[other])
    assert not (np.array_equal(w1[chans], w0[chans]) and np.array_equal(b1[chans], b0[chans]))


def test_cli_train_bad_data_is_one_line(tmp_path):
    rgb = tmp_path / "rgb.npz"
    rng = np.random.default_rng(0)
    np.savez(rgb, x_train=rng.integers(0, 255, (8, 8, 8, 3), dtype=np.uint8), y_train=np.arange(8) % 10,
             x_test=rng.integers(0, 255, (4, 8, 8, 3), dtype=np.uint8), y_test=np.arange(4))
    nan = tmp_path / "nan.npz"
    xf = rng.random((8, 8, 8)).astype(np.float32)
    xf[0, 0, 0] = np.nan
    np.savez(nan, x_train=xf, y_train=np.arange(8) % 10, x_test=xf[:4], y_test=np.arange(4))
    short = tmp_path / "short.npz"
    np.savez(short, x_train=rng.integers(0, 255, (8, 8, 8), dtype=np.uint8), y_train=np.arange(5),
             x_test=rng.integers(0, 255, (4, 8, 8), dtype=np.uint8), y_test=np.arange(4))
    for path, needle in ((rgb, "shape"), (nan, "nan"), (short, "label")):
        r = subprocess.run([sys.executable, "-m", "tinyzo", "train", str(REF), "--data", str(path), "--epochs", "1"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert needle in r.stderr.lower(), r.stderr


def test_cli_train_select_layers(capsys):
    assert main(["train", str(REF), "--data", "digits", "--corruption", "motion_blur", "--severity", "5",
                 "--method", "zo-rge-node", "--select", "ratio", "--select-k", "2", "--epochs", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "--select ratio: training operators [" in out


def test_cli_select_and_layers_conflict():
    r = subprocess.run([sys.executable, "-m", "tinyzo", "train", str(REF), "--data", "digits", "--select", "last",
                        "--layers", "9,11"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--select" in r.stderr


def test_cli_train_zo_budget_uses_the_planners_device_peak(capsys):
    from tinyzo.memory import memory_report

    m = tinyzo.load(REF)
    peak = memory_report(m, "zo-rge-node-layerwise", layers=[9, 11], optimizer="sgd+shadow")["peak_sram_bytes"]
    base = ["train", str(REF), "--data", "digits", "--method", "zo-rge-node", "--layers", "9,11", "--update", "shadow",
            "--epochs", "1", "--no-progress"]
    assert main(base + ["--budget-kb", f"{(peak - 1) / 1024:.6f}"]) == 2      # a byte short: refused before training
    err = capsys.readouterr().err
    assert f"needs {peak:,} bytes" in err and "--update per_step" in err
    assert main(base + ["--budget-kb", f"{(peak + 0.5) / 1024:.6f}"]) == 0   # just enough: it trains
    assert f"training peak SRAM on the device (batch 1, sgd+shadow) {peak:,} bytes" in capsys.readouterr().out


def test_gaussian_node_perturbation_must_fit_int8():
    """An integer-Gaussian node perturbation beyond int8 would wrap (as in the C port): refused."""
    import tinyzo
    from tinyzo.reference_models import path
    from tinyzo.training.prng import perturbation
    from tinyzo.zo.trainer import GAUSSIAN_NODE_SIGMA_MAX, ZOConfig, ZOConfigError

    model = tinyzo.load(path("digits_cnn"))
    top = int(np.abs(perturbation("gaussian", 1, (200_000,), GAUSSIAN_NODE_SIGMA_MAX)).max())
    assert top <= 127
    ZOConfig(target="node", direction="gaussian", sigma_node=GAUSSIAN_NODE_SIGMA_MAX).validate(model)
    with pytest.raises(ZOConfigError, match="beyond int8"):
        ZOConfig(target="node", direction="gaussian", sigma_node=GAUSSIAN_NODE_SIGMA_MAX + 1).validate(model)


@pytest.mark.parametrize("estimator, direction", [("rge", "rademacher"), ("spsa", "gaussian"),
                                                  ("sign-spsa", "uniform")])
def test_the_trainers_estimate_is_estimate_bit_for_bit(blurred, estimator, direction):
    """ZOTrainer's layer-wise estimate and tinyzo.zo.estimators.estimate (the function the unbiasedness
    tests prove) are the same float32 numbers for the same seeds: one estimator, written once."""
    from tinyzo.training.loss import mean_float32
    from tinyzo.training.prng import derive_seed
    from tinyzo.zo.estimators import estimate

    xtr, ytr = blurred[0][:16], blurred[1][:16]
    m = tinyzo.load(REF)
    k, seed = 11, 7
    cfg = ZOConfig(layers=[k], target="weight", estimator=estimator, direction=direction, queries=3, sigma=2,
                   train_bias=False, seed=seed)
    tr = ZOTrainer(m, cfg, total_steps=1)
    grads, _, _ = tr.gradients(xtr, ytr)
    w0, b0 = m.get_params(k)

    def loss_fn(delta):   # the batch's float32 mean loss at the perturbed (clamped) weights
        m.set_params(k, np.clip(w0.astype(np.int32) + delta.reshape(w0.shape), -127, 127).astype(np.int8), b0)
        try:
            logits = m.forward_from({m.inputs[0]: xtr}, 0, output=m.loss_tensor)
            return mean_float32(tr.losses(logits, ytr))
        finally:
            m.set_params(k, w0, b0)

    g, _ = estimate(loss_fn, w0.size, method=estimator, sigma=2, queries=3, direction=direction,
                    seeds=lambda q: derive_seed(seed, 0, q, 2 * k))
    assert grads[f"{k}/w"].dtype == g.dtype == np.float32
    assert np.array_equal(grads[f"{k}/w"].reshape(-1).view(np.uint32), g.view(np.uint32))
    assert np.any(g != 0)


def test_the_trainers_block_coordinate_estimate_is_estimate_bit_for_bit(blurred):
    """Block-coordinate queries (with sparse perturbation) over two layers in ZOTrainer are
    tinyzo.zo.estimators.estimate(..., blocks=sizes, density=p) (whose unbiasedness tests/test_estimators.py
    checks) with each query seeded as the layer it perturbs: the same float32 numbers."""
    from tinyzo.training.loss import mean_float32
    from tinyzo.training.prng import derive_seed
    from tinyzo.zo.estimators import estimate, query_blocks

    xtr, ytr = blurred[0][:16], blurred[1][:16]
    m = tinyzo.load(REF)
    layers, seed = [9, 11], 4
    w0 = {k: m.get_params(k) for k in layers}
    sizes = [w0[k][0].size for k in layers]
    cuts = np.cumsum([0] + sizes)
    cfg = ZOConfig(layers=layers, target="weight", queries=4, train_bias=False, seed=seed, block="layer", density=0.5)
    tr = ZOTrainer(m, cfg, total_steps=1)
    grads, _, _ = tr.gradients(xtr, ytr)

    def loss_fn(delta):
        try:
            for j, k in enumerate(layers):
                w, b = w0[k]
                d = delta[cuts[j]:cuts[j + 1]].reshape(w.shape)
                m.set_params(k, np.clip(w.astype(np.int32) + d, -127, 127).astype(np.int8), b)
            return mean_float32(tr.losses(m.forward_from({m.inputs[0]: xtr}, 0, output=m.loss_tensor), ytr))
        finally:
            for k in layers:
                m.set_params(k, *w0[k])

    owner = [layers[j] for j in query_blocks(4, sizes)]
    g, _ = estimate(loss_fn, int(cuts[-1]), method="rge", sigma=1, queries=4, blocks=sizes, density=0.5,
                    seeds=lambda q: derive_seed(seed, 0, q, 2 * owner[q]))
    mine = np.concatenate([grads[f"{k}/w"].reshape(-1) for k in layers])
    assert np.array_equal(mine.view(np.uint32), g.view(np.uint32))
    assert np.any(g[:cuts[1]] != 0) and np.any(g[cuts[1]:] != 0)


def test_sparse_single_layer_estimate_is_estimate_bit_for_bit(blurred):
    from tinyzo.training.loss import mean_float32
    from tinyzo.training.prng import derive_seed
    from tinyzo.zo.estimators import estimate

    xtr, ytr = blurred[0][:16], blurred[1][:16]
    m = tinyzo.load(REF)
    k, seed = 11, 8
    tr = ZOTrainer(m, ZOConfig(layers=[k], target="weight", queries=3, train_bias=False, seed=seed, density=0.2),
                   total_steps=1)
    grads, _, _ = tr.gradients(xtr, ytr)
    w0, b0 = m.get_params(k)

    def loss_fn(delta):
        m.set_params(k, np.clip(w0.astype(np.int32) + delta.reshape(w0.shape), -127, 127).astype(np.int8), b0)
        try:
            return mean_float32(tr.losses(m.forward_from({m.inputs[0]: xtr}, 0, output=m.loss_tensor), ytr))
        finally:
            m.set_params(k, w0, b0)

    g, _ = estimate(loss_fn, w0.size, method="rge", sigma=1, queries=3, density=0.2,
                       seeds=lambda q: derive_seed(seed, 0, q, 2 * k))
    assert np.array_equal(grads[f"{k}/w"].reshape(-1).view(np.uint32), g.view(np.uint32))
    assert 0 < np.count_nonzero(g) < 0.5 * g.size   # about 1 - 0.8**3 = 49% of the weights were ever perturbed


def test_block_coordinate_queries_perturb_one_layer_each_and_cost_less(blurred):
    xtr, ytr = blurred[0][:16], blurred[1][:16]
    m = tinyzo.load(REF)
    layers = m.trainable_ops()[-3:]
    tr = ZOTrainer(m, ZOConfig(layers=layers, target="node", queries=6, block="layer"), total_steps=1)
    owners = [tr.query_layers(q) for q in range(6)]
    assert all(len(o) == 1 for o in owners) and sorted({o[0] for o in owners}) == sorted(layers)
    assert sum(tr._layer_queries.values()) == 6 and min(tr._layer_queries.values()) >= 1
    info = tr.step(xtr, ytr)
    assert info["forward_passes"] == 7
    with pytest.raises(ZOConfigError, match="query per trained layer"):
        ZOConfig(layers=layers, target="node", queries=2, block="layer").validate(m)
    for bad in (0, 1.2, float("nan")):
        with pytest.raises(ZOConfigError, match="density"):
            ZOConfig(density=bad).validate(m)
    with pytest.raises(ZOConfigError, match="block"):
        ZOConfig(block="channel").validate(m)


def test_vectors_refuse_sparse_and_block_settings(blurred):
    from tinyzo.golden.export import GoldenError, training_vectors

    m = tinyzo.load(REF)
    for extra in ({"density": 0.5}, {"block": "layer", "queries": 2}):
        cfg = ZOConfig(layers=m.trainable_ops()[-2:], target="node", **extra)
        with pytest.raises(GoldenError, match="not exported"):
            training_vectors(m, blurred[0][:2], blurred[1][:2], cfg, steps=1)


def test_cli_density_and_block(capsys):
    rc = main(["train", str(REF), "--data", "digits", "--method", "bp", "--density", "0.5"])
    assert rc == 2 and "--density and --block" in capsys.readouterr().err
    rc = main(["train", str(REF), "--data", "digits", "--method", "zo-rge-node", "--density", "1.5"])
    assert rc == 2 and "(0, 1]" in capsys.readouterr().err
