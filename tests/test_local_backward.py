"""The one-layer local backward of node perturbation is the exact linearization of the int8 layer."""

import numpy as np
import pytest

import tinyzo
from tinyzo.fp import kernels as float_nn
from tinyzo.training.local_backward import local_backward, output_grad_to_acc_grad
from pathlib import Path

REF = Path(__file__).resolve().parents[1] / "reference_models" / "digits_cnn.tflite"


@pytest.fixture(scope="module")
def model_and_env():
    model = tinyzo.load(REF)
    x = np.random.default_rng(0).integers(-128, 128, size=(3, 32, 32, 1), dtype=np.int8)
    _, env = model(x, intermediates=True)
    return model, env


def _acc_change(model, k, x, dw, db):
    """Exact change of the int32 accumulator when the integer weights/bias move by dw/db (linear in dw)."""
    op = model.operators[k]
    p = model.prepared[k]
    zp = int(model.tensors[op.inputs[0]].quant.zero_point[0])
    xf = x.astype(np.float64) - zp
    dwf = dw.astype(np.float64)
    if op.opcode == "FULLY_CONNECTED":
        return xf.reshape(len(x), -1) @ dwf.T + db
    if op.opcode == "CONV_2D":
        return float_nn.conv2d_forward(xf, dwf, db.astype(np.float64), (p.stride_h, p.stride_w), (p.dil_h, p.dil_w),
                                       (p.pad_h, p.pad_w), (p.out_h, p.out_w))
    return float_nn.depthwise_forward(xf, dwf, db.astype(np.float64), (p.stride_h, p.stride_w), (p.dil_h, p.dil_w),
                                      (p.pad_h, p.pad_w), (p.out_h, p.out_w), p.depth_multiplier)


@pytest.mark.parametrize("k", [0, 1, 2, 5, 9, 11])
def test_local_backward_is_the_chain_rule(model_and_env, k):
    """<g_w, dw> + <g_b, db> == sum dL/dacc * (change of acc), for any integer dw, db (exact identity)."""
    model, env = model_and_env
    op = model.operators[k]
    x, y = env[op.inputs[0]], env[op.outputs[0]]
    rng = np.random.default_rng(k)
    g_y = rng.standard_normal(y.shape).astype(np.float32)
    g_w, g_b = local_backward(model, k, x, y, g_y)
    w, b = model.get_params(k)
    dw = rng.integers(-3, 4, size=w.shape)
    db = rng.integers(-50, 51, size=b.shape)
    d_acc = output_grad_to_acc_grad(model, k, y, g_y).astype(np.float64)
    lhs = float((g_w.astype(np.float64) * dw).sum() + (g_b.astype(np.float64) * db).sum())
    rhs = float((d_acc * _acc_change(model, k, x, dw, db).reshape(d_acc.shape)).sum())
    # float32 kernels: relative error bounded by ~K * 2^-24 of the summed magnitudes
    assert lhs == pytest.approx(rhs, rel=1e-4, abs=1e-3)


def test_clamped_outputs_get_no_gradient(model_and_env):
    model, env = model_and_env
    k = 0
    op = model.operators[k]
    y = env[op.outputs[0]]
    p = model.prepared[k]
    d = output_grad_to_acc_grad(model, k, y, np.ones(y.shape, np.float32))
    clamped = (y <= p.act_min) | (y >= p.act_max)
    assert clamped.any() and np.all(d[clamped] == 0) and np.all(d[~clamped] > 0)
