"""Contribution analysis (tinyzo.bp.contrib) and the scheme search (tinyzo.bp.search).

* the additive split of the per-layer memory count equals SparseScheme.memory_bytes exactly;
* DP equals brute force (exhaustive enumeration) on random small instances, integer scores compared
  exactly; evolution finds the same optimum on small additive instances (fixed seeds) and respects
  the budget of a non-additive memory function;
* the analysis never touches the caller's model, resumes to the same result after an interruption,
  stops clearly on a diverged run; the CLI runs end to end; bad inputs give one-line errors.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

import tinyzo
from tinyzo import data
from tinyzo.bp import SchemeError, SparseScheme
from tinyzo.bp import contrib as contrib_mod
from tinyzo.bp.contrib import ContribError, Contributions, contribution_analysis, model_fingerprint, parse_ratios
from tinyzo.bp.search import CountCostModel, SearchError, best_scheme, scheme_score
from tinyzo.evaluate import images_to_input

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "reference_models" / "digits_cnn.tflite"


@pytest.fixture(scope="module")
def model():
    return tinyzo.load(REF)


@pytest.fixture(scope="module")
def task(model):
    """A small blurred-digits task: 96 training and 60 validation images, int8 model inputs."""
    ds = data.load("digits")
    xtr = images_to_input(model, data.corrupt(ds.x_train[:96], "motion_blur", 5, seed=0))
    xva = images_to_input(model, data.corrupt(ds.x_val[:60], "motion_blur", 5, seed=1))
    return (xtr, ds.y_train[:96]), (xva, ds.y_val[:60])


TINY = {"ratios": (0.5, 1.0), "k_values": [2, 3], "layers": [8, 9], "steps": 2, "batch_size": 16, "progress": False}


def _strip_seconds(d: dict) -> dict:
    d = json.loads(json.dumps(d))
    for e in [d["base"], *d["bias"].values(), *d["weight"]]:
        e.pop("seconds")
    return d


# ----------------------------------------------------------------------------------------------
# synthetic contributions and brute force
# ----------------------------------------------------------------------------------------------


def _synthetic(model, rng, layers, ratios, k_values, n_val=100) -> Contributions:
    """Random integer gains (correct counts) on ``model``'s real layers."""
    ops = model.trainable_ops()
    base = int(rng.integers(20, 60))
    return Contributions(classifier=ops[-1], n_trainable=len(ops), layers=layers, ratios=ratios, k_values=k_values,
                         n_val=n_val, start_correct=10, base={"correct": base},
                         bias={k: {"correct": base + int(rng.integers(-5, 30))} for k in k_values},
                         weight={(i, r): {"correct": base + int(rng.integers(-10, 40))} for i in layers for r in ratios})


def _brute_force(model, c: Contributions, budget: int, memory=None):
    """(best score, least bytes at that score) over every scheme of the search space, or None."""
    memory = memory or (lambda s: s.memory_bytes(model))
    bg, wg = c.bias_gain_counts, c.weight_gain_counts
    best = None
    for k in sorted(bg):
        for rs in itertools.product([0.0] + c.ratios, repeat=len(c.layers)):
            w = {i: r for i, r in zip(c.layers, rs) if r > 0}
            s = SparseScheme(bias_last_k=k, weights=w, classifier=True)
            m = memory(s)
            if m > budget:
                continue
            score = bg[k] + sum(wg[(i, r)] for i, r in w.items())
            if best is None or (score, -m) > (best[0], -best[1]):
                best = (score, m)
    return best


def test_count_cost_model_equals_memory_bytes(model):
    rng = np.random.default_rng(0)
    ops = model.trainable_ops()
    ratios = [0.125, 0.25, 0.5, 1.0]
    for batch, state in ((1, 0), (4, 8)):
        cm = CountCostModel(model, ops[:-1], ratios, batch=batch, state_bytes_per_param=state)
        for _ in range(200):
            k = int(rng.integers(1, len(ops) + 1))
            w = {i: float(rng.choice(ratios)) for i in ops[:-1] if rng.random() < 0.3}
            s = SparseScheme(bias_last_k=k, weights=w, classifier=True)
            assert cm.cost(k, w) == s.memory_bytes(model, batch=batch, state_bytes_per_param=state)


@pytest.mark.parametrize("trial", range(6))
def test_dp_equals_brute_force(model, trial):
    rng = np.random.default_rng(100 + trial)
    ops = model.trainable_ops()[:-1]
    layers = sorted(int(v) for v in rng.choice(ops, size=3, replace=False))
    ratios = sorted(float(v) for v in rng.choice([0.125, 0.25, 0.5, 1.0], size=2, replace=False))
    k_values = sorted(int(v) for v in rng.choice(range(2, 11), size=3, replace=False))
    c = _synthetic(model, rng, layers, ratios, k_values)
    lo = SparseScheme(bias_last_k=0, classifier=True).memory_bytes(model)
    hi = SparseScheme.full(model).memory_bytes(model)
    for budget in [lo, *sorted(int(v) for v in rng.integers(lo, hi, size=5))]:
        want = _brute_force(model, c, budget)
        scheme, info = best_scheme(model, c, budget)
        assert (info["score"], info["memory_bytes"]) == want
        assert scheme.memory_bytes(model) == info["memory_bytes"] <= budget
        assert scheme_score(model, c, scheme)["score"] == info["score"]
        assert info["exact"] is True


@pytest.mark.parametrize("trial", range(3))
def test_evolution_finds_the_dp_optimum(model, trial):
    rng = np.random.default_rng(200 + trial)
    ops = model.trainable_ops()[:-1]
    layers = sorted(int(v) for v in rng.choice(ops, size=4, replace=False))
    c = _synthetic(model, rng, layers, [0.25, 0.5, 1.0], [2, 4, 6, 8])
    lo = SparseScheme(bias_last_k=0, classifier=True).memory_bytes(model)
    hi = SparseScheme.full(model).memory_bytes(model)
    for budget in (lo + (hi - lo) // 8, lo + (hi - lo) // 3):
        _, dp = best_scheme(model, c, budget, method="dp")
        scheme, evo = best_scheme(model, c, budget, method="evolution", seed=trial)
        assert (evo["score"], evo["memory_bytes"]) == (dp["score"], dp["memory_bytes"])
        assert scheme.memory_bytes(model) <= budget


def test_evolution_with_a_non_additive_memory_fn(model):
    rng = np.random.default_rng(7)
    c = _synthetic(model, rng, [4, 6, 9], [0.5, 1.0], [3, 6])

    def memory(s):  # the count plus a penalty growing with the square of the trained layers
        return s.memory_bytes(model) + 2000 * len(s.trained_layers(model)) ** 2

    budget = 40000
    want = _brute_force(model, c, budget, memory)
    scheme, info = best_scheme(model, c, budget, memory_fn=memory, method="evolution", seed=0)
    assert memory(scheme) == info["memory_bytes"] <= budget
    assert (info["score"], info["memory_bytes"]) == want
    # the same seed gives the same scheme
    again, _ = best_scheme(model, c, budget, memory_fn=memory, method="evolution", seed=0)
    assert again.to_dict() == scheme.to_dict()


def test_search_errors(model):
    c = _synthetic(model, np.random.default_rng(1), [8, 9], [1.0], [2])
    smallest = SparseScheme(bias_last_k=0, classifier=True).memory_bytes(model)
    for method in ("dp", "evolution"):
        with pytest.raises(SearchError, match=f"smallest \\(classifier only\\) needs {smallest:,} bytes"):
            best_scheme(model, c, smallest - 1, method=method)
    with pytest.raises(SearchError, match="use method='evolution'"):
        best_scheme(model, c, 10**6, memory_fn=lambda s: 0)
    with pytest.raises(SearchError, match="unknown search method"):
        best_scheme(model, c, 10**6, method="greedy")
    with pytest.raises(SearchError, match="budget_bytes"):
        best_scheme(model, c, -5)
    c.weight.pop((9, 1.0))
    with pytest.raises(SearchError, match="incomplete"):
        best_scheme(model, c, 10**6)


# ----------------------------------------------------------------------------------------------
# the analysis
# ----------------------------------------------------------------------------------------------


def test_analysis_runs_and_leaves_the_model_alone(model, task, tmp_path):
    fp = model_fingerprint(model)
    c = contribution_analysis(model, *task, checkpoint=tmp_path / "c.json", **TINY)
    assert model_fingerprint(model) == fp
    assert c.complete and c.n_measurements() == 1 + 2 + 2 * 2
    assert c.layers == [8, 9] and c.ratios == [0.5, 1.0] and c.k_values == [2, 3]
    assert c.start_correct == contrib_mod._count_correct(model, *task[1])
    assert c.bias_gain[1] == 0.0
    for (i, r), g in c.weight_gain.items():
        assert g == (c.weight[(i, r)]["correct"] - c.base["correct"]) / 60
        want = SparseScheme(weights={i: r}, classifier=True).memory_bytes(model)
        assert c.weight[(i, r)]["memory_bytes"] == want
    back = Contributions.load(tmp_path / "c.json")
    assert back.to_dict() == c.to_dict()
    # a measurement equals an independent BPTrainer run of its scheme over the same batches
    import copy

    from tinyzo.bp import QASOptimizer, BPTrainer

    m = copy.deepcopy(model)
    opt = QASOptimizer(lr=3e-3, total_steps=2, seed=0, **contrib_mod.DEFAULT_OPTIMIZER)
    tr = BPTrainer(m, scheme=SparseScheme(weights={9: 0.5}, classifier=True), optimizer=opt, seed=0)
    order = np.random.default_rng(0).permutation(96)
    for t in range(2):
        idx = order[16 * t:16 * t + 16]
        tr.step(task[0][0][idx], task[0][1][idx])
    assert contrib_mod._count_correct(m, *task[1]) == c.weight[(9, 0.5)]["correct"]
    c.plot(tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_resume_after_interruption_gives_the_same_result(model, task, tmp_path, monkeypatch):
    full = contribution_analysis(model, *task, **TINY)
    calls = {"n": 0}
    real = contrib_mod._measure

    def interrupted(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*a, **k)

    ck = tmp_path / "c.json"
    monkeypatch.setattr(contrib_mod, "_measure", interrupted)
    with pytest.raises(KeyboardInterrupt):
        contribution_analysis(model, *task, checkpoint=ck, **TINY)
    partial = Contributions.load(ck)
    assert not partial.complete
    assert (partial.base is not None) + len(partial.bias) + len(partial.weight) == 3   # lost only the 4th
    monkeypatch.setattr(contrib_mod, "_measure", real)
    done = []
    monkeypatch.setattr(contrib_mod, "_measure", lambda *a, **k: done.append(1) or real(*a, **k))
    resumed = contribution_analysis(model, *task, checkpoint=ck, resume=True, **TINY)
    assert len(done) == full.n_measurements() - 3
    assert _strip_seconds(resumed.to_dict()) == _strip_seconds(full.to_dict())
    # a complete checkpoint: resume measures nothing
    done.clear()
    contribution_analysis(model, *task, checkpoint=ck, resume=True, **TINY)
    assert done == []
    # another configuration is refused
    with pytest.raises(ContribError, match="another configuration.*lr"):
        contribution_analysis(model, *task, checkpoint=ck, resume=True, **{**TINY, "lr": 1e-2})
    with pytest.raises(ContribError, match="nothing to resume"):
        contribution_analysis(model, *task, checkpoint=tmp_path / "none.json", resume=True, **TINY)


def test_diverged_run_stops_and_keeps_the_finished_measurements(model, task, tmp_path, monkeypatch):
    from tinyzo.bp.trainer import BPTrainer

    real_step = BPTrainer.step
    seen = {"n": 0}

    def step(self, xq, y):
        seen["n"] += 1
        out = real_step(self, xq, y)
        if seen["n"] == 4:   # the 2nd step of the 2nd measurement
            out["loss"] = float("nan")
        return out

    monkeypatch.setattr(BPTrainer, "step", step)
    ck = tmp_path / "c.json"
    with pytest.raises(ContribError, match="'bias-only last 2 \\+ classifier' diverged: loss nan at step 2 of 2"):
        contribution_analysis(model, *task, checkpoint=ck, **TINY)
    kept = Contributions.load(ck)
    assert kept.base is not None and not kept.bias and not kept.weight


def test_bad_inputs(model, task):
    tr, va = task
    with pytest.raises(ContribError, match=r"ratio must be a number in \(0, 1\]"):
        contribution_analysis(model, tr, va, **{**TINY, "ratios": (0.5, 1.5)})
    with pytest.raises(ContribError, match=r"ratio must be a number in \(0, 1\]"):
        contribution_analysis(model, tr, va, **{**TINY, "ratios": (0.0,)})
    with pytest.raises(SchemeError, match="layer 7 is not a trainable operator"):
        contribution_analysis(model, tr, va, **{**TINY, "layers": [7]})
    with pytest.raises(SchemeError, match="no trainable layer named 'nope'"):
        contribution_analysis(model, tr, va, **{**TINY, "layers": ["nope"]})
    with pytest.raises(SchemeError, match="is the classifier"):
        contribution_analysis(model, tr, va, **{**TINY, "layers": [11]})
    with pytest.raises(ContribError, match="k values must be integers in \\[1, 10\\]"):
        contribution_analysis(model, tr, va, **{**TINY, "k_values": [11]})
    with pytest.raises(ContribError, match="steps or epochs, not both"):
        contribution_analysis(model, tr, va, **{**TINY, "epochs": 1})
    with pytest.raises(ContribError, match="inputs must be int8"):
        contribution_analysis(model, (tr[0].astype(np.float32), tr[1]), va, **TINY)
    with pytest.raises(ContribError, match="labels must be in"):
        contribution_analysis(model, tr, (va[0], va[1] + 10), **TINY)
    with pytest.raises(ContribError, match="give lr as the argument"):
        contribution_analysis(model, tr, va, optimizer={"kind": "sgd", "lr": 1.0}, **TINY)
    assert parse_ratios("1/8, 0.25,1") == [0.125, 0.25, 1.0]
    for bad in ("0", "3/2", "x", "1/0"):
        with pytest.raises(ContribError):
            parse_ratios(bad)
    with pytest.raises(ContribError, match="not a contributions file"):
        Contributions.from_dict({"format": "tinyzo.sparse_scheme"})


def test_contributions_check_the_model(model):
    c = _synthetic(model, np.random.default_rng(3), [8, 9], [1.0], [2])
    other = tinyzo.load(REF)
    c.check_model(other)
    c.layers = [7]
    with pytest.raises(ContribError, match="not trainable layers"):
        c.check_model(other)


# ----------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    ds = data.load("digits")
    small = data.Dataset(ds.x_train[:64], ds.y_train[:64], ds.x_val[:40], ds.y_val[:40], ds.x_test[:40],
                         ds.y_test[:40], name="tiny", classes=ds.classes)
    path = tmp_path_factory.mktemp("contrib_data") / "tiny.npz"
    data.save(small, path)
    return path


def test_cli_end_to_end(tiny_dataset, tmp_path, capsys):
    from tinyzo.cli import main

    out = tmp_path / "scheme.json"
    args = ["contrib", str(REF), "--data", str(tiny_dataset), "--budget-kb", "16", "--out", str(out),
            "--steps", "2", "--layers", "6,8,9", "--ratios", "1/2,1", "--k-values", "2,4", "--no-progress",
            "--corruption", "motion_blur", "--severity", "5"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "best scheme (dp" in text and "wrote" in text
    scheme = SparseScheme.load(out)
    m = tinyzo.load(REF)
    assert scheme.memory_bytes(m) <= 16 * 1024
    from tinyzo.memory import scheme_peak_bytes

    assert f"device peak SRAM of this scheme (memory planner: forward activations included, batch 1): " \
           f"{scheme_peak_bytes(m, scheme):,} bytes" in text   # the count leaves out the forward: say the peak
    c = Contributions.load(tmp_path / "scheme.contributions.json")
    assert c.complete and c.layers == [6, 8, 9]
    assert (tmp_path / "scheme.png").stat().st_size > 1000
    # the same search by evolution, from the finished analysis (resume: no new measurement)
    assert main(args + ["--resume", "--search", "evolution", "--out", str(tmp_path / "evo.json"),
                        "--contrib-out", str(tmp_path / "scheme.contributions.json")]) == 0
    evo = SparseScheme.load(tmp_path / "evo.json")
    assert scheme_score(m, c, evo)["score"] == scheme_score(m, c, scheme)["score"]
    # the scheme trains with tinyzo train --method bp --scheme
    assert main(["train", str(REF), "--data", str(tiny_dataset), "--method", "bp", "--scheme", str(out),
                 "--epochs", "1", "--no-progress"]) == 0


def test_cli_errors(tiny_dataset, tmp_path, capsys):
    from tinyzo.cli import main

    base = ["contrib", str(REF), "--data", str(tiny_dataset), "--steps", "1", "--layers", "9", "--ratios", "1",
            "--k-values", "2", "--no-progress", "--out", str(tmp_path / "s.json")]
    cases = [
        (["--budget-kb", "1"], "no scheme fits 1,024 bytes: the smallest (classifier only) needs 1,802 bytes"),
        (["--budget-kb", "16", "--ratios", "0,1"], "ratio must be a number in (0, 1]"),
        (["--budget-kb", "16", "--layers", "7"], "layer 7 is not a trainable operator"),
        (["--budget-kb", "16", "--resume", "--contrib-out", str(tmp_path / "x.json")], "nothing to resume"),
        (["--budget-kb", "16", "--epochs", "1"], "--steps or --epochs"),
        (["--budget-kb", "16", "--search", "dp", "--memory", "planner"], "--search dp is exact only for --memory count"),
    ]
    for extra, msg in cases:
        code = main(base + extra)
        err = capsys.readouterr().err
        assert code == 2, (extra, err)
        assert msg in err and err.count("\n") == 1 and err.startswith("tinyzo: error:")


def test_cli_memory_planner(tiny_dataset, tmp_path, capsys):
    import tinyzo.memory
    from tinyzo.cli import main

    if not hasattr(tinyzo.memory, "scheme_peak_bytes"):
        pytest.skip("tinyzo.memory.scheme_peak_bytes is not in this version")
    out = tmp_path / "s.json"
    assert main(["contrib", str(REF), "--data", str(tiny_dataset), "--budget-kb", "40", "--out", str(out),
                 "--steps", "1", "--layers", "8,9", "--ratios", "1", "--k-values", "3", "--no-progress",
                 "--memory", "planner"]) == 0
    assert "best scheme (evolution, memory planner peak" in capsys.readouterr().out
    m = tinyzo.load(REF)
    assert tinyzo.memory.scheme_peak_bytes(m, SparseScheme.load(out), optimizer="sgd") <= 40 * 1024
