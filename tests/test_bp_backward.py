"""Back propagation through the int8 graph: consistent with the node-perturbation local backward, exact
where the straight-through estimate is exact, and no work on frozen parts."""

from pathlib import Path

import numpy as np
import pytest

import tinyzo
from tinyzo import data
from tinyzo.bp import BackwardError, backward, logits_gradient
from tinyzo.evaluate import images_to_input
from tinyzo.training.local_backward import local_backward

REF = Path(__file__).resolve().parents[1] / "reference_models" / "digits_cnn.tflite"


@pytest.fixture(scope="module")
def batch():
    m = tinyzo.load(REF)
    ds = data.load("digits")
    xq = images_to_input(m, data.corrupt(ds.x_train[:24], "motion_blur", 5, seed=0))
    _, env = m(xq, intermediates=True)
    return m, env, ds.y_train[:24]


def test_each_layer_equals_the_local_backward_of_its_output_gradient(batch):
    m, env, y = batch
    tg = {}
    g = backward(m, env, y, tensor_grads=tg)
    assert sorted(g) == m.trainable_ops()
    for k, (g_w, g_b) in g.items():
        op = m.operators[k]
        lw, lb = local_backward(m, k, env[op.inputs[0]], env[op.outputs[0]], tg[op.outputs[0]])
        np.testing.assert_allclose(g_w, lw, rtol=1e-5, atol=1e-9)  # same float kernels, same order: equal up to fp
        np.testing.assert_allclose(g_b, lb, rtol=1e-5, atol=1e-9)


def test_last_layer_equals_finite_differences_of_the_unrounded_graph(batch):
    """The classifier's logits are linear in its integer weights before rounding: FD of that surrogate is exact."""
    m, env, y = batch
    k = m.trainable_ops()[-1]
    op = m.operators[k]
    # keep the samples whose logits are all strictly inside the int8 clamp (where the STE is exact)
    logits = env[op.outputs[0]]
    keep = np.all((logits > m.prepared[k].act_min + 2) & (logits < m.prepared[k].act_max - 2), axis=1)
    assert keep.sum() >= 4
    env = {t: v[keep] for t, v in env.items()}
    y = y[keep]
    g_w, g_b = backward(m, env, y, layers=[k])[k]
    x = env[op.inputs[0]].reshape(len(y), -1).astype(np.float64)
    zp_x = int(m.tensors[op.inputs[0]].quant.zero_point[0])
    w, b = m.get_params(k)
    s_x = float(m.tensors[op.inputs[0]].quant.scale[0])
    s_w = float(m.tensors[op.inputs[1]].quant.scale[0])
    t_out = m.tensors[op.outputs[0]]
    s_y, zp_y = float(t_out.quant.scale[0]), int(t_out.quant.zero_point[0])

    q0 = env[op.outputs[0]].reshape(len(y), -1).astype(np.float64)
    acc0 = (x - zp_x) @ w.astype(np.float64).T + b

    def loss(wf, bf):
        # straight through the rounding: the int8 logits move by exactly the change of acc * s_x s_w / s_y
        acc = (x - zp_x) @ wf.T + bf
        q = q0 + (acc - acc0) * (s_x * s_w / s_y)
        z = (q - zp_y) * s_y
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))

    rng = np.random.default_rng(0)
    wf, bf = w.astype(np.float64), b.astype(np.float64)
    for _ in range(12):
        i, j = rng.integers(0, w.shape[0]), rng.integers(0, w.shape[1])
        e = np.zeros_like(wf)
        e[i, j] = 0.5
        fd = (loss(wf + e, bf) - loss(wf - e, bf)) / 1.0
        assert g_w[i, j] == pytest.approx(fd, rel=1e-3, abs=1e-9)
    for i in range(3):
        e = np.zeros_like(bf)
        e[i] = 0.5
        assert g_b[i] == pytest.approx((loss(wf, bf + e) - loss(wf, bf - e)) / 1.0, rel=1e-3, abs=1e-12)


def test_logits_gradient_sums_to_zero_per_sample(batch):
    m, env, y = batch
    g = logits_gradient(m, env[m.outputs[0]], y)
    np.testing.assert_allclose(g.sum(axis=1), 0, atol=1e-7)


def test_frozen_layers_get_no_work(batch):
    m, env, y = batch
    tg = {}
    k = m.trainable_ops()[-2]
    backward(m, env, y, layers=[k], tensor_grads=tg)
    first_out = m.operators[k].outputs[0]
    reached = set(tg)
    earlier = {t for op in m.operators[:k] for t in op.outputs}
    assert first_out in reached and not (reached & earlier - {m.operators[k].inputs[0]})


def test_bias_only_layers_get_no_weight_gradient_and_the_same_biases(batch, monkeypatch):
    """weights=[]: every layer bias-only; the biases (and the gradients flowing down) are unchanged."""
    from tinyzo.fp import kernels as float_nn

    m, env, y = batch
    layers = m.trainable_ops()[-4:]
    full = backward(m, env, y, layers=layers)
    calls = []
    # the depthwise weight gradient (depthwise_taps in WEIGHT_GRAD mode) and im2col (patch_copy, not adjoint)
    for name, is_dw_work in (("depthwise_taps", lambda a: a[0] == float_nn.WEIGHT_GRAD),
                             ("patch_copy", lambda a: a[-1] is False)):
        orig = getattr(float_nn, name)
        monkeypatch.setattr(float_nn, name,
                            lambda *a, _o=orig, _n=name, _w=is_dw_work: (_w(a) and calls.append(_n), _o(*a))[1])
    sparse = backward(m, env, y, layers=layers, weights=[layers[-1]])
    assert calls == []  # no depthwise weight gradient, no im2col of an input: no dw work at all
    for k in layers:
        np.testing.assert_array_equal(sparse[k][1], full[k][1])
        if k == layers[-1]:
            np.testing.assert_array_equal(sparse[k][0], full[k][0])
        else:
            assert sparse[k][0] is None


def test_bad_layers(batch):
    m, env, y = batch
    with pytest.raises(BackwardError):
        backward(m, env, y, layers=[7])
    with pytest.raises(BackwardError, match="not among"):
        backward(m, env, y, layers=[9], weights=[11])
