"""Hybrid ZO + BP training (tinyzo.zo.hybrid): BP on the last layers, ZO on the rest, one step, one planner schedule."""

from __future__ import annotations

import numpy as np
import pytest

import tinyzo
from tinyzo import data
from tinyzo.bp.backward import backward
from tinyzo.cli import main
from tinyzo.evaluate import images_to_input
from tinyzo.memory import memory_report, trainer_memory_report
from tinyzo.memory.training import training_schedule
from tinyzo.reference_models import path as model_path
from tinyzo.training.loop import fit
from tinyzo.zo import HybridTrainer, ZOConfig, ZOConfigError, ZOTrainer

DIGITS = model_path("digits_cnn")


@pytest.fixture(scope="module")
def batch():
    ds = data.load("digits")
    m = tinyzo.load(DIGITS)
    x = images_to_input(m, data.corrupt(ds.x_train[:96], "fog", 5, seed=0))
    return x, ds.y_train[:96]


def _params(m, layers):
    return {k: tuple(None if a is None else a.copy() for a in m.get_params(k)) for k in layers}


@pytest.mark.parametrize("target", ["node", "weight"])
def test_the_hybrid_gradient_is_zo_on_the_first_layers_and_bp_on_the_last(batch, target):
    x, y = batch[0][:32], batch[1][:32]
    m = tinyzo.load(DIGITS)
    layers = m.trainable_ops()[-5:]
    cfg = ZOConfig(layers=layers, target=target, queries=3, lr=1e-3, seed=3)
    hy = HybridTrainer(m, cfg, 2, total_steps=1)
    assert hy.zo_layers == layers[:3] and hy.bp_layers == layers[3:] and hy.layers == sorted(layers)
    grads, _, _ = hy.gradients(x, y)
    # the ZO part: what a ZOTrainer of the ZO layers alone estimates from the same seeds
    zo = ZOTrainer(tinyzo.load(DIGITS), ZOConfig(layers=layers[:3], target=target, queries=3, lr=1e-3, seed=3))
    zo_grads, _, _ = zo.gradients(x, y)
    # the BP part: the back-propagated gradients of the BP layers on the same forward pass
    _, env = m(x, intermediates=True)
    bp = backward(m, env, y, layers=layers[3:], weights=layers[3:])
    assert sorted(grads) == sorted(list(zo_grads) + [f"{k}/{p}" for k in layers[3:] for p in ("w", "b")])
    for key, g in zo_grads.items():
        assert np.array_equal(grads[key].view(np.uint32), g.view(np.uint32)), key
    for k in layers[3:]:
        assert np.array_equal(grads[f"{k}/w"], bp[k][0]) and np.array_equal(grads[f"{k}/b"], bp[k][1])
    assert hy.forward_passes == 1 + 3 and hy.backward_passes == 1


def test_each_part_steps_at_its_own_learning_rate_and_resume_is_exact(batch, tmp_path):
    x, y = batch
    layers = tinyzo.load(DIGITS).trainable_ops()[-4:]

    def run(epochs, out_dir=None, resume=False, model=None):
        m = model or tinyzo.load(DIGITS)
        tr = HybridTrainer(m, ZOConfig(layers=layers, target="node", queries=2, lr=5e-4, update="shadow", seed=1), 1,
                           total_steps=9, bp_lr=3e-3)
        fit(tr, m, x, y, epochs=epochs, batch_size=32, seed=2, out_dir=out_dir, resume=resume, progress=False)
        return m, tr

    m_full, tr = run(3)
    assert tr.optimizer.lr == 5e-4 and tr.bp_optimizer.lr == 3e-3
    assert tr.optimizer.step_count == tr.bp_optimizer.step_count == 9
    before = _params(tinyzo.load(DIGITS), layers)
    after = _params(m_full, layers)
    assert all(not np.array_equal(before[k][0], after[k][0]) for k in layers)   # every layer moved
    run(2, out_dir=tmp_path)
    m_res, _ = run(3, out_dir=tmp_path, resume=True)
    for k, (w, b) in _params(m_res, layers).items():
        assert np.array_equal(w, after[k][0]) and np.array_equal(b, after[k][1])


def test_the_planner_schedules_the_hybrid_step():
    m = tinyzo.load(DIGITS)
    t = m.trainable_ops()
    sched = training_schedule(m, "zo-rge-node-layerwise", layers=t[-6:-2], bp_layers=t[-2:])
    kinds = [(s.kind, s.op) for s in sched.steps]
    back = [op for kind, op in kinds if kind == "backward"]
    # ZO node layers' local backward, then BP's backward from the loss down to the first BP layer only
    assert [op for op in back if op in t[-6:-2]] == t[-6:-2] and t[-2] in back and min(back[len(t[-6:-2]):]) == t[-2]
    assert sched.info["trained_params"] == sum(
        int(np.prod(m.tensors[m.operators[k].inputs[1]].shape)) + m.prepared[k].n_out for k in t[-6:])
    hy = memory_report(m, "zo-rge-node-layerwise", layers=t[-6:-2], bp_layers=t[-2:])["peak_sram_bytes"]
    zo = memory_report(m, "zo-rge-node-layerwise", layers=t[-6:])["peak_sram_bytes"]
    bp = memory_report(m, "bp", layers=t[-6:])["peak_sram_bytes"]
    assert zo <= hy < bp
    tr = HybridTrainer(m, ZOConfig(layers=t[-6:], target="node"), 2)
    assert trainer_memory_report(tr)["peak_sram_bytes"] == hy
    with pytest.raises(Exception, match="must all come after"):
        training_schedule(m, "zo-rge-node-layerwise", layers=t[-3:], bp_layers=t[-4:-3])


def test_bad_hybrid_settings_are_one_line_errors(tmp_path):
    m = tinyzo.load(DIGITS)
    with pytest.raises(ZOConfigError, match="bp_last must be an integer in"):
        HybridTrainer(m, ZOConfig(layers=m.trainable_ops()[-2:]), 2)
    with pytest.raises(ZOConfigError, match="bp_last"):
        HybridTrainer(m, ZOConfig(), 0)
    assert main(["train", str(DIGITS), "--data", "digits", "--method", "bp", "--bp-last", "1"]) == 2
    assert main(["train", str(DIGITS), "--data", "digits", "--method", "zo-rge-node", "--bp-lr", "0.01"]) == 2
