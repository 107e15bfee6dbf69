"""Training schedules (BP, sparse BP, ZO), reordering, the training memory report, published schemes, CLI.

Exact numbers are derived by hand (the two-layer FC model) or from tiny-training's own formula
(the published scheme labels); the rest are properties that follow from the rules in docs/memory.md.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

import tinyzo
from tinyzo.bp import SparseScheme
from tinyzo.training.scheme import SchemeError
from tinyzo.errors import TinyzoError
from tinyzo.graph import Model, Operator, Tensor
from tinyzo.memory import (
    PlanError,
    ScheduleError,
    check_plan,
    memory_report,
    parse_method,
    plan_arena,
    plot_timeline,
    scheme_peak_bytes,
    training_schedule,
)
from tinyzo.memory.published import (
    TinyTrainingScheme,
    analytic_saved_bits,
    floor_kib,
    published_schemes,
    saved_for_backward,
)
from tinyzo.quant import QuantParams

ROOT = os.path.dirname(os.path.dirname(__file__))
DIGITS = os.path.join(ROOT, "reference_models", "digits_cnn.tflite")
METHODS = ["bp", "zo-weight", "zo-node", "zo-mixed", "zo-spsa-weight", "zo-signspsa-node", "zo-rge-weight-layerwise",
           "zo-node-layerwise"]


@pytest.fixture(scope="module")
def digits():
    return tinyzo.load(DIGITS)


def _zoo(name, shape=(128, 128, 3), classes=10):
    from tinyzo.cli import _zoo_model

    return _zoo_model(f"zoo:{name}", shape, classes)


@pytest.fixture(scope="module")
def mcunet():
    return _zoo("mcunet-in1")


def two_fc():
    """x[16] -> FC(32, ReLU) -> FC(8): the model of the hand-computed peak."""
    def q(s, z=0):
        return QuantParams([np.float32(s)], [z])

    rng = np.random.default_rng(0)
    t = [Tensor("x", (1, 16), np.int8, q(0.05)),
         Tensor("fc1/weights", (32, 16), np.int8, q(0.01), rng.integers(-127, 128, (32, 16), dtype=np.int8)),
         Tensor("fc1/bias", (32,), np.int32, q(0.0005), rng.integers(-99, 99, 32).astype(np.int32)),
         Tensor("fc1", (1, 32), np.int8, q(0.1, -128)),
         Tensor("fc2/weights", (8, 32), np.int8, q(0.01), rng.integers(-127, 128, (8, 32), dtype=np.int8)),
         Tensor("fc2/bias", (8,), np.int32, q(0.001), rng.integers(-99, 99, 8).astype(np.int32)),
         Tensor("fc2", (1, 8), np.int8, q(0.2))]
    ops = [Operator("FULLY_CONNECTED", (0, 1, 2), (3,), {"fused_activation_function": "RELU"}),
           Operator("FULLY_CONNECTED", (3, 4, 5), (6,), {"fused_activation_function": "NONE"})]
    return Model(t, ops, (0,), (6,))


# --------------------------------------------------------------------------- exact, by hand
def test_two_fc_exact_peak():
    """Full BP, SGD, batch 1, no alignment. Persistent SRAM copies: W1 512 + b1 128 + W2 256 + b2 32 = 928.

    step 5 (backward of fc1, reordered): x 16 (saved) + mask1 4 + g_fc1 128 (float32 x 32)
    + gW1 2048 + gb1 128 -> 928 + 2324 = 3252. Without reordering, step 4 (backward of fc1) still
    holds gW2 1024 + gb2 32: 928 + 16 + 4 + 128 + 1024 + 32 + 2048 + 128 = 4308.
    """
    m = two_fc()
    s = training_schedule(m, "bp")
    assert [(x.kind, x.op) for x in s.steps] == [("forward", 0), ("forward", 1), ("loss", -1), ("backward", 1),
                                                  ("update", 1), ("backward", 0), ("update", 0)]
    assert [s.live_bytes(k, 1) for k in range(s.n_steps)] == [980, 989, 1021, 2197, 2132, 3252, 3104]
    plan = plan_arena(s, alignment=1)
    check_plan(plan)
    assert plan.peak_bytes == 3252
    nr = training_schedule(m, "bp", reorder=False)
    assert [x.kind for x in nr.steps] == ["forward", "forward", "loss", "backward", "backward", "update", "update"]
    assert max(nr.live_bytes(k, 1) for k in range(nr.n_steps)) == 4308
    # Adam: 8 B per trained parameter, persistent: (512 + 32 + 256 + 8) * 8 = 6464 more at every step
    adam = training_schedule(m, "bp", optimizer="adam")
    assert [adam.live_bytes(k, 1) - s.live_bytes(k, 1) for k in range(s.n_steps)] == [6464] * 7
    # batch 4: activations, masks (1 bit/element, ceil per buffer) and activation gradients scale
    b4 = training_schedule(m, "bp", batch=4)
    assert b4.live_bytes(5, 1) == 928 + 64 + 16 + 512 + 2048 + 128


def test_two_fc_zo_exact():
    """ZO weight perturbation keeps no gradient. Base pass: at most params 928 + x 16 (kept for the
    query's rerun) + fc1 32 + fc2 8 = 984. The rerun's first step holds x 16 + fc1 32 + base loss 4 and
    the clamp bits of the 808 perturbed parameters (768 weights + 40 biases: 101 bytes, from perturb to
    restore): 928 + 16 + 32 + 4 + 101 = 1081, the peak."""
    m = two_fc()
    s = training_schedule(m, "zo-weight")
    live = max(s.live_bytes(k, 1) for k in range(s.n_steps))
    assert live == 928 + 16 + 32 + 4 + 101
    assert s.live_bytes(1, 1) == 928 + 16 + 32 + 8
    assert s.live_bytes(4, 1) == 928 + 16 + 32 + 4 + 101
    assert [b.nbytes for b in s.buffers if b.name.startswith("clamp bits")] == [101]
    kinds = [x.kind for x in s.steps]
    assert kinds == ["forward", "forward", "loss", "perturb", "forward", "forward", "restore", "loss", "estimate",
                     "update", "update"]
    assert not any(b.kind == "gradient" for b in s.buffers)
    # SPSA: a second perturbed pass (two losses per sample), no base loss needed for the estimate
    assert [x.kind for x in training_schedule(m, "zo-spsa-weight").steps].count("loss") == 3


# --------------------------------------------------------------------------- properties
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("reorder", [True, False])
def test_lifetimes_and_plans_valid(digits, method, reorder):
    s = training_schedule(digits, method, reorder=reorder)
    s.validate()
    assert s.n_steps > len(digits.operators)
    for in_place in (False, True):
        plan = plan_arena(s, in_place=in_place)
        check_plan(plan)
        if not in_place:
            assert plan.peak_bytes >= max(s.live_bytes(k, 16) for k in range(s.n_steps))
    # every trained layer has one update step and its SRAM copies live for the whole step
    assert sorted(x.op for x in s.steps if x.kind == "update") == sorted(s.info["trained_layers"])
    for b in s.buffers:
        if b.kind in ("param_copy", "optimizer"):
            assert (b.first, b.last) == (-1, s.n_steps - 1)


def test_monotone_facts(digits):
    def peak(method="bp", **kw):
        return memory_report(digits, method, **kw)["peak_sram_bytes"]

    inf = peak("inference")
    full = peak("bp")
    last2 = peak(scheme=SparseScheme.last_k(digits, 2))
    bias2 = peak(scheme=SparseScheme.bias_only(digits, 2))
    assert full > last2 > inf
    assert bias2 < last2
    assert peak(scheme=SparseScheme(bias_last_k=2, weights={-2: 0.25}, classifier=True)) < last2
    for m in ("bp", "zo-node", "zo-mixed"):
        rep = memory_report(digits, m)
        assert rep["peak_with_reorder_bytes"] <= rep["peak_without_reorder_bytes"]
    assert memory_report(digits, "bp")["peak_without_reorder_bytes"] > full  # 35k parameter gradients at once
    assert peak("zo-weight") < peak("zo-node") < full
    assert peak("bp", optimizer="adam") > full
    assert peak("bp", batch=2) > full
    # a ZO query that reruns only the last layer keeps the classifier's input, not the image
    assert peak("zo-weight-layerwise", layers=[11]) < peak("zo-weight", layers=[11])


def test_zo_weight_keeps_no_gradient_node_keeps_inputs(mcunet):
    w = memory_report(mcunet, "zo-weight")
    n = memory_report(mcunet, "zo-node")
    assert "gradients" not in w["breakdown"] and w["breakdown"]["param_copies"] > 0
    assert n["peak_sram_bytes"] > w["peak_sram_bytes"] > memory_report(mcunet)["peak_sram_bytes"]
    assert w["peak_without_reorder_bytes"] == w["peak_sram_bytes"]  # nothing to reorder


# --------------------------------------------------------------------------- published schemes
@pytest.mark.parametrize("name", ["mcunet-in1", "mobilenet-v2-w0.35", "proxyless-w0.3"])
def test_analytic_count_reproduces_published_labels(name):
    """tiny-training's formula on our int8 models gives every published label, and our schedule keeps
    exactly those bytes across the loss step when we count the same things."""
    m = _zoo(name)
    schemes = published_schemes(name)
    assert len(schemes) == 5
    for label, (tt, rec) in schemes.items():
        bits = analytic_saved_bits(m, tt)
        assert floor_kib(bits["total"]) == rec["label_kb"] == int(label[:-2])
        assert round(bits["total"] / 8192, 4) == pytest.approx(rec["analytic_kib"]["total"], abs=1e-4)
        assert bits["total"] % 8 == 0
        saved = saved_for_backward(training_schedule(m, "bp", scheme=tt), m)
        assert saved["same_as_analytic"] == bits["total"] // 8
        # the output-channel equivalent trains the same number of weights
        sp = tt.to_sparse_scheme(m)
        a = training_schedule(m, "bp", scheme=tt).info
        b = training_schedule(m, "bp", scheme=sp).info
        assert a["trained_weight_params"] == b["trained_weight_params"]
        assert a["trained_bias_params"] == b["trained_bias_params"]


def test_scheme_peak_bytes(mcunet):
    tt, _ = published_schemes("mcunet-in1")["49kb"]
    sp = tt.to_sparse_scheme(mcunet)
    p = scheme_peak_bytes(mcunet, sp)
    assert p == memory_report(mcunet, "bp", scheme=sp)["peak_sram_bytes"]
    assert memory_report(mcunet)["peak_sram_bytes"] < p < memory_report(mcunet, "bp")["peak_sram_bytes"]
    assert scheme_peak_bytes(mcunet, sp, optimizer="adam") > p


# --------------------------------------------------------------------------- report and plot
def test_report_keys_budget_and_plot(digits, tmp_path):
    rep = memory_report(digits, "bp", budget_bytes=200_000)
    json.dumps(rep)
    for key in ("peak_sram_bytes", "flash_bytes", "breakdown", "peak_without_reorder_bytes", "peak_without_inplace_bytes",
                "timeline", "timeline_by_kind", "step_kinds", "trained_params", "fits", "margin_bytes"):
        assert key in rep
    assert sum(rep["breakdown"].values()) == rep["peak_sram_bytes"]
    assert {"activations", "gradients", "param_copies", "masks"} <= set(rep["breakdown"])
    assert rep["fits"] is (rep["peak_sram_bytes"] <= 200_000)
    assert rep["margin_bytes"] == 200_000 - rep["peak_sram_bytes"]
    assert rep["flash_bytes"] == memory_report(digits)["flash_bytes"]  # frozen and initial weights stay in Flash
    assert rep["trained_params"] == sum(int(np.prod(t.shape)) for k in digits.trainable_ops()
                                        for t in (digits.tensors[i] for i in digits.operators[k].inputs[1:3]))
    inf = memory_report(digits)
    assert inf["peak_sram_bytes"] == 18432 and inf["peak_without_reorder_bytes"] == 18432
    out = tmp_path / "t.png"
    plot_timeline(rep, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- bad input
def test_bad_input(digits):
    for bad in ("zo", "sgd", "zo-foo-weight", "zo-weight-layer", "bp-layerwise", 3):
        with pytest.raises(ScheduleError, match="method"):
            training_schedule(digits, bad)
    assert parse_method("zo-signspsa-mixed-layerwise") == {"family": "zo", "estimator": "sign-spsa",
                                                           "target": "mixed", "layerwise": True}
    with pytest.raises(ScheduleError, match="bp only"):
        training_schedule(digits, "zo-weight", scheme=SparseScheme.last_k(digits, 2))
    with pytest.raises(SchemeError, match="not a trainable operator"):
        training_schedule(digits, "bp", scheme=SparseScheme(weights={7: 1.0}))  # op 7 is an ADD
    with pytest.raises(SchemeError, match="only 10 trainable"):
        training_schedule(digits, "bp", scheme=SparseScheme(bias_last_k=11))
    with pytest.raises(SchemeError, match="no trainable layer named"):
        training_schedule(digits, "bp", scheme=SparseScheme(weights={"nope": 1.0}))
    with pytest.raises(ScheduleError, match="not a trainable operator"):
        training_schedule(digits, "zo-node", layers=[7])
    with pytest.raises(ScheduleError, match="empty"):
        training_schedule(digits, "zo-node", layers=[])
    with pytest.raises(ScheduleError, match="either a scheme or layers"):
        training_schedule(digits, "bp", scheme=SparseScheme.last_k(digits, 2), layers=[11])
    with pytest.raises(ScheduleError, match="inference trains nothing"):
        training_schedule(digits, "inference", layers=[11])
    for bad in ("rmsprop", "sgd+foo", None):
        with pytest.raises(ScheduleError, match="optimizer"):
            training_schedule(digits, "bp", optimizer=bad)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ScheduleError, match="batch"):
            training_schedule(digits, "bp", batch=bad)
    for bad in (0, -5, float("nan"), float("inf"), "100", True):
        with pytest.raises(PlanError, match="budget"):
            memory_report(digits, budget_bytes=bad)
    # a tiny-training scheme that does not match the model
    with pytest.raises(ScheduleError, match="convolutions"):
        training_schedule(digits, "bp", scheme=TinyTrainingScheme(20, {}))
    with pytest.raises(ScheduleError, match="conv_idx 40 does not exist"):
        training_schedule(digits, "bp", scheme=TinyTrainingScheme(2, {40: 0.5}))
    with pytest.raises(ScheduleError, match="before the bias-updated range"):
        training_schedule(digits, "bp", scheme=TinyTrainingScheme(2, {0: 0.5}))
    with pytest.raises(TinyzoError):
        scheme_peak_bytes(digits, None)
    with pytest.raises(ScheduleError, match="tinyzo Model"):
        training_schedule("model.tflite", "bp")


# --------------------------------------------------------------------------- CLI
def test_cli_memory_training(tmp_path, capsys):
    from tinyzo.cli import main

    assert main(["memory", DIGITS, "--method", "bp", "--json", "--budget-kb", "150"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["method"] == "bp" and rep["fits"] is False and rep["margin_bytes"] == 150 * 1024 - rep["peak_sram_bytes"]
    assert rep["peak_without_reorder_bytes"] > rep["peak_sram_bytes"]
    assert main(["memory", DIGITS, "--method", "bp", "--json", "--no-reorder"]) == 0
    assert json.loads(capsys.readouterr().out)["peak_sram_bytes"] == rep["peak_without_reorder_bytes"]
    scheme = tmp_path / "s.json"
    SparseScheme.last_k(tinyzo.load(DIGITS), 2).save(scheme)
    assert main(["memory", DIGITS, "--method", "bp", "--scheme", str(scheme), "--optimizer", "adam",
                 "--budget-kb", "256", "--plot", str(tmp_path / "p.png")]) == 0
    text = capsys.readouterr().out
    assert "fits" in text and "NOT" not in text and (tmp_path / "p.png").exists()
    assert main(["memory", DIGITS, "--method", "zo-rge-node-layerwise", "--layers", "last2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trained_layers"] == [9, 11]
    for argv in (["--method", "zo-foo"], ["--method", "zo-weight", "--scheme", str(scheme)],
                 ["--method", "bp", "--budget-kb", "0"], ["--method", "bp", "--budget-kb", "-3"],
                 ["--method", "bp", "--layers", "7"], ["--method", "bp", "--optimizer", "rmsprop"],
                 ["--method", "bp", "--scheme", str(tmp_path / "missing.json")]):
        assert main(["memory", DIGITS] + argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("tinyzo: error:") and err.count("\n") == 1, err


def test_published_data_bundled():
    """The scheme table is in the package (not read from ../shared) and says where it comes from."""
    from tinyzo.memory.published import DATA_FILE

    assert DATA_FILE.is_file() and "tinyzo" in DATA_FILE.parts
    data = json.loads(DATA_FILE.read_text())
    assert data["source"]["repo"] == "mit-han-lab/tiny-training"
    assert math.isclose(sum(1 for m in data["models"].values() for _ in m["schemes"]), 15)


def test_trainer_memory_report_is_the_schedule_the_trainer_runs(digits):
    """The report derived from a trainer equals memory_report of the method, layers and optimizer it runs."""
    from tinyzo.bp import QASOptimizer, BPTrainer, SparseScheme
    from tinyzo.memory import optimizer_name, trainer_memory_report
    from tinyzo.zo.trainer import ZOConfig, ZOTrainer

    layers = digits.trainable_ops()[-3:]
    zo = ZOTrainer(digits, ZOConfig(layers=layers, target="mixed", mixed_split=1, estimator="sign-spsa", update="shadow"))
    want = memory_report(digits, "zo-signspsa-mixed-layerwise", layers=layers, optimizer="sgd+shadow", mixed_split=1)
    assert trainer_memory_report(zo)["peak_sram_bytes"] == want["peak_sram_bytes"]
    lean = memory_report(digits, "zo-signspsa-mixed-layerwise", layers=layers, optimizer="sgd", mixed_split=1)
    assert trainer_memory_report(zo, lean=True)["peak_sram_bytes"] == lean["peak_sram_bytes"] < want["peak_sram_bytes"]
    scheme = SparseScheme.last_k(digits, 2)
    bp = BPTrainer(digits, scheme=scheme, optimizer=QASOptimizer("adam", 1e-3, mode="shadow"))
    rep = trainer_memory_report(bp, budget_bytes=10_000)
    assert rep["optimizer"] == optimizer_name("adam", 0.0, "shadow") == "adam+shadow"
    assert rep["peak_sram_bytes"] == scheme_peak_bytes(digits, scheme, optimizer="adam+shadow")
    assert rep["fits"] is False and rep["margin_bytes"] == 10_000 - rep["peak_sram_bytes"]
    assert optimizer_name("sgd", 0.9, "per_step") == "momentum"
