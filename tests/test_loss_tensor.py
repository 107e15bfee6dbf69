"""One loss for every trainer: ZO, BP, the selection/diagnostics helpers and the memory planner all take the
cross-entropy on the same int8 tensor, ``Model.loss_tensor`` (the logits: the input of a final SOFTMAX)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tinyzo
from tinyzo.bp import QASOptimizer, BPTrainer, SparseScheme
from tinyzo.memory import trainer_memory_report
from tinyzo.memory.training import training_schedule
from tinyzo.training.loss import cross_entropy_int8, mean_float32
from tinyzo.zo.trainer import ZOConfig, ZOTrainer

DATA = Path(__file__).parent / "data" / "tflite-micro"
DIGITS = Path(__file__).resolve().parents[1] / "reference_models" / "digits_cnn.tflite"


def _batch(model, n=4, seed=0):
    rng = np.random.default_rng(seed)
    shape = model.tensors[model.inputs[0]].shape[1:]
    classes = int(np.prod(model.tensors[model.loss_tensor].shape[1:]))
    return rng.integers(-128, 128, size=(n, *shape), dtype=np.int8), rng.integers(0, classes, size=n)


def test_the_loss_tensor_is_the_softmax_input_or_the_output():
    pd = tinyzo.load(DATA / "person_detect.tflite")
    softmax = [op for op in pd.operators if op.opcode == "SOFTMAX"][0]
    assert pd.outputs[0] in softmax.outputs and pd.loss_tensor == softmax.inputs[0] != pd.outputs[0]
    assert pd.loss_quant() == (float(pd.tensors[softmax.inputs[0]].quant.scale[0]),
                               int(pd.tensors[softmax.inputs[0]].quant.zero_point[0]))
    digits = tinyzo.load(DIGITS)
    assert digits.operators[-1].opcode == "FULLY_CONNECTED" and digits.loss_tensor == digits.outputs[0]


@pytest.mark.parametrize("path", [DATA / "person_detect.tflite", DIGITS], ids=["person_detect", "digits"])
def test_zo_and_bp_take_the_same_loss_on_the_same_tensor(path):
    model = tinyzo.load(path)
    xq, y = _batch(model)
    _, env = model(xq, intermediates=True)
    want = mean_float32(cross_entropy_int8(env[model.loss_tensor].reshape(len(y), -1), y, *model.loss_quant()))
    last = model.trainable_ops()[-1]
    zo = ZOTrainer(model, ZOConfig(layers=[last], target="node", queries=1, lr=1e-6), total_steps=1)
    zo_info = zo.step(xq, y)
    model_bp = tinyzo.load(path)
    bp = BPTrainer(model_bp, scheme=SparseScheme.last_k(model_bp, 1), optimizer=QASOptimizer("sgd", 1e-6))
    bp_info = bp.step(xq, y)
    assert zo_info["loss"] == bp_info["loss"] == float(want)   # the same float32 value, bit for bit
    if model.loss_tensor != model.outputs[0]:
        # the old ZO loss (on the int8 softmax probabilities) is a different number
        old = mean_float32(cross_entropy_int8(env[model.outputs[0]].reshape(len(y), -1), y,
                                              float(model.tensors[model.outputs[0]].quant.scale[0]),
                                              int(model.tensors[model.outputs[0]].quant.zero_point[0])))
        assert old != want


@pytest.mark.parametrize("path", [DATA / "person_detect.tflite", DIGITS], ids=["person_detect", "digits"])
def test_evaluation_and_fit_report_the_trainers_loss(path):
    """tinyzo eval / fit's val_loss: the same cross-entropy on the loss tensor; accuracy from the output."""
    from tinyzo.training.loop import fit
    from tinyzo.training.loss import loss_and_accuracy

    model = tinyzo.load(path)
    xq, y = _batch(model, n=6)
    _, env = model(xq, intermediates=True)
    per_sample = cross_entropy_int8(env[model.loss_tensor].reshape(len(y), -1), y, *model.loss_quant())
    r = loss_and_accuracy(model, xq, y, batch_size=4)       # two batches: 4 + 2
    assert r["loss"] == float(per_sample.astype(np.float64).sum()) / len(y)
    out = env[model.outputs[0]].reshape(len(y), -1)
    assert r["correct"] == int(np.count_nonzero(np.argmax(out, axis=1) == y))
    last = model.trainable_ops()[-1]
    hist = fit(ZOTrainer(model, ZOConfig(layers=[last], lr=1e-9), total_steps=1), model, xq, y, xq, y, epochs=1,
               batch_size=len(y), progress=False)
    after = loss_and_accuracy(model, xq, y)
    assert hist[0]["val_loss"] == after["loss"] and hist[0]["val_acc"] == after["accuracy"]


@pytest.mark.parametrize("method", ["zo-rge-node-layerwise", "zo-rge-weight", "bp"])
def test_the_planned_step_takes_its_loss_on_the_loss_tensor(method):
    """The memory planner's LOSS steps read the buffer of model.loss_tensor, the tensor the trainers use."""
    model = tinyzo.load(DATA / "person_detect.tflite")
    last = model.trainable_ops()[-1]
    sched = training_schedule(model, method, layers=[last])
    loss_steps = [s for s in sched.steps if s.kind == "loss"]
    assert loss_steps
    for s in loss_steps:
        read = {sched.buffers[i].tensor for i in s.reads}
        assert model.loss_tensor in read and model.outputs[0] not in read, (method, read)
    assert trainer_memory_report(ZOTrainer(model, ZOConfig(layers=[last], target="node"), total_steps=1))[
        "peak_sram_bytes"] > 0


def test_training_front_doors():
    """The trainers are importable from their packages (issue 12: one front door per gradient source)."""
    import tinyzo.bp
    import tinyzo.zo

    assert tinyzo.zo.ZOTrainer is ZOTrainer and tinyzo.zo.ZOConfig is ZOConfig
    assert tinyzo.bp.BPTrainer is BPTrainer and tinyzo.bp.QASOptimizer is QASOptimizer
