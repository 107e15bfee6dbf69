"""tinyzo.spec.train (the executable training-step contract) equals the fast paths bit for bit.

Each spec function against its fast implementation on seeded random inputs (floats compared as float32
bit patterns, never with a tolerance), then whole ZO steps on digits_cnn replayed with
spec.train.zo_step / zo_node_step against ZOTrainer.step and the golden exporter's recorded values.
"""

import copy

import numpy as np
import pytest

import tinyzo
from tinyzo import data, reference_models
from tinyzo.evaluate import images_to_input
from tinyzo.golden.export import training_vectors
from tinyzo.kernels import local_grad
from tinyzo.kernels.zo import accumulate_node_grad, masked_scale
from tinyzo.spec import conv as spec_conv
from tinyzo.spec import train as st
from tinyzo.training import update
from tinyzo.training.local_backward import local_backward, output_grad_to_acc_grad
from tinyzo.training.loss import cross_entropy_int8, mean_float32
from tinyzo.training.prng import derive_seed, perturbation
from tinyzo.zo.estimators import second_moment
from tinyzo.zo.trainer import ZOConfig, ZOTrainer

f32 = np.float32


def bits(v) -> np.ndarray:
    """float32 bit patterns (so -0.0 != +0.0 and the comparison is exact)."""
    return np.asarray(v, dtype=np.float32).view(np.uint32)


def assert_f32_equal(spec_values, fast_values):
    fast = np.asarray(fast_values, np.float32).reshape(np.shape(spec_values))
    np.testing.assert_array_equal(bits(spec_values), bits(fast))


@pytest.fixture(scope="module")
def digits():
    model = tinyzo.load(reference_models.path("digits_cnn"))
    ds = data.load("digits")
    xq = images_to_input(model, ds.x_train[:8])
    return model, xq, ds.y_train[:8].astype(np.int64)


# ----------------------------------------------------------------------------------------------
# float32 helper, loss, mean, projected difference
# ----------------------------------------------------------------------------------------------


def test_f32_is_c_float_conversion():
    rng = np.random.default_rng(0)
    xs = np.concatenate([rng.standard_normal(2000) * 10.0 ** rng.integers(-45, 39, 2000),
                         [0.0, -0.0, 3.4028235677973366e38, 3.4028235677973366e38 * 1.0000001, -1e300, 1e-50,
                          1.0 + 2.0**-24, 1.0 + 3 * 2.0**-24, np.inf, -np.inf]])
    with np.errstate(over="ignore"):
        want = xs.astype(np.float32)
    assert_f32_equal([st.f32(float(x)) for x in xs], want)


def test_float32_ops_through_double_equal_numpy_float32_ops():
    rng = np.random.default_rng(1)
    a = (rng.standard_normal(3000) * 10.0 ** rng.integers(-20, 20, 3000)).astype(np.float32)
    b = (rng.standard_normal(3000) * 10.0 ** rng.integers(-20, 20, 3000)).astype(np.float32)
    for op in (np.add, np.subtract, np.multiply, np.divide):
        spec = [st.f32(float(op(float(x), float(y)))) for x, y in zip(a, b)]
        with np.errstate(over="ignore"):
            assert_f32_equal(spec, op(a, b))


def _logits_cases(rng):
    cases = []
    for _ in range(300):
        n, k = int(rng.integers(1, 5)), int(rng.integers(1, 21))
        q = rng.integers(-128, 128, (n, k)).astype(np.int8)
        if rng.random() < 0.2:
            q[:, :] = q[0, 0]                                   # all equal: S = K exactly
        scale = float(f32(10.0 ** rng.uniform(-3, 0.5)))
        cases.append((q, rng.integers(0, k, n), scale, int(rng.integers(-128, 128))))
    cases.append((np.array([[127, -128, 0]], np.int8), np.array([1]), 0.9, -128))   # expf underflows to 0
    return cases


def test_cross_entropy_sample_equals_cross_entropy_int8():
    rng = np.random.default_rng(2)
    for q, y, scale, zp in _logits_cases(rng):
        fast = cross_entropy_int8(q, y, scale, zp)
        spec = [st.cross_entropy_sample(row.tolist(), int(lab), scale, zp) for row, lab in zip(q, y)]
        assert_f32_equal(spec, fast)


def test_mean_f32_equals_mean_float32():
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 7, 8, 33, 100):
        v = (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, n)).astype(np.float32)
        assert_f32_equal([st.mean_f32([float(x) for x in v])], [mean_float32(v)])


def test_projected_difference_is_float32():
    rng = np.random.default_rng(4)
    plus = rng.uniform(0, 3, 500).astype(np.float32)
    other = np.where(rng.random(500) < 0.2, plus, rng.uniform(0, 3, 500).astype(np.float32))
    want = {"rge": plus - other, "spsa": (plus - other) / f32(2)}
    want["sign-spsa"] = np.sign(want["spsa"])
    for est, w in want.items():
        assert_f32_equal([st.projected_difference(est, float(p), float(o)) for p, o in zip(plus, other)], w)
    with pytest.raises(tinyzo.TinyzoError):
        st.projected_difference("coord", 1.0, 0.0)


# ----------------------------------------------------------------------------------------------
# perturbations, constants, gradient accumulations
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", st.DIRECTIONS)
def test_perturbation_and_second_moment(direction):
    for sigma in (1, 2, 5, 64):
        seed = derive_seed(11, sigma, 3, 22)
        np.testing.assert_array_equal(st.perturbation(direction, seed, 77, sigma),
                                      perturbation(direction, seed, 77, sigma))
        assert st.second_moment(direction, sigma) == second_moment(direction, sigma, 1)


@pytest.mark.parametrize("estimator", st.ESTIMATORS)
@pytest.mark.parametrize("direction", st.DIRECTIONS)
def test_norms_and_bias_sigma_equal_the_vectors(digits, estimator, direction):
    """norm_w, norm_node, norm_b and sigma_bias: the prepare-time constants tinyzo vectors ships."""
    model, xq, y = digits
    ks = [8, 11]
    cfg = ZOConfig(layers=ks, estimator=estimator, direction=direction, queries=3, sigma=3, sigma_node=5, lr=0.05)
    vec = training_vectors(model, xq[:2], y[:2], cfg, steps=1)
    assert_f32_equal([st.weight_norm(estimator, direction, 3, 3)], vec["train/norm_w"])
    assert_f32_equal([st.weight_norm(estimator, direction, 5, 3)], vec["train/norm_node"])
    for k in ks:
        sigma_b = _spec_layer(model, k).sigma_b
        np.testing.assert_array_equal(sigma_b, vec[f"train/op{k}/sigma_bias"])
        assert_f32_equal(st.bias_norm(estimator, direction, sigma_b, 3), vec[f"train/op{k}/norm_b"])


def _layer_trainer(model, k, **cfg):
    return ZOTrainer(copy.deepcopy(model), ZOConfig(layers=[k], **cfg))


@pytest.mark.parametrize("estimator,direction", [("rge", "rademacher"), ("spsa", "gaussian"), ("sign-spsa", "uniform")])
def test_gradient_accumulation_equals_trainer(digits, estimator, direction):
    """Weight and bias terms of 3 queries (ZOTrainer.accumulate) and the prepare-time constants."""
    model, _, _ = digits
    k = model.trainable_ops()[-1]
    tr = _layer_trainer(model, k, estimator=estimator, direction=direction, queries=3, sigma=2)
    sl = _spec_layer(model, k)
    np.testing.assert_array_equal(sl.sigma_b, tr.bias_sigma(k))
    w, b = model.get_params(k)
    rng = np.random.default_rng(5)
    grads, gw, gb = {}, [0.0] * w.size, [0.0] * b.size
    norm_w = st.weight_norm(estimator, direction, 2, 3)
    norm_b = st.bias_norm(estimator, direction, sl.sigma_b, 3)
    for q in range(3):
        dw = perturbation(direction, 100 + q, w.shape, 2)
        u = perturbation(direction, 200 + q, b.shape, 1)
        coef_mean = f32(rng.standard_normal() * 0.1) if estimator != "sign-spsa" else f32(rng.choice([-1, 0, 1]))
        tr.accumulate(grads, {}, {k: {"w": dw, "b": tr.bias_sigma(k) * u.astype(np.int64)}}, {},
                      np.zeros(8, np.float32), coef_mean, 8)
        gw = st.accumulate_weight_grad(gw, dw.reshape(-1).tolist(), float(coef_mean), norm_w)
        gb = st.accumulate_bias_grad(gb, u.tolist(), float(coef_mean), norm_b, sl.sigma_b)
    assert_f32_equal(gw, grads[f"{k}/w"])
    assert_f32_equal(gb, grads[f"{k}/b"])
    assert np.count_nonzero(grads[f"{k}/w"]) > 0


def test_node_grad_accumulation_equals_kernel():
    rng = np.random.default_rng(6)
    n, size, norm = 5, 37, st.weight_norm("rge", "rademacher", 3, 2)
    g_fast = np.zeros((n, size), np.float32)
    g_spec = g_fast.tolist()
    for q in range(3):
        coef = (rng.standard_normal(n) * 0.05).astype(np.float32)
        u = rng.integers(-3, 4, (n, size)).astype(np.int8)
        accumulate_node_grad(g_fast, coef, f32(f32(norm) / n), u)   # the trainer's scale: norm_node / N in float32
        g_spec = st.accumulate_node_grad(g_spec, coef.tolist(), u.tolist(), norm)
    assert_f32_equal(g_spec, g_fast)


def test_node_acc_grad_equals_masked_scale():
    rng = np.random.default_rng(7)
    g = (rng.standard_normal((6, 4, 3)) * np.where(rng.random((6, 4, 3)) < 0.2, 0, 1)).astype(np.float32)
    g[0, 0, 0] = -1.5                                            # masked negative: a -0.0 result
    y = rng.integers(-128, 128, g.shape).astype(np.int8)
    y[0, 0, 0] = 100
    scale = rng.uniform(0.01, 2, 3).astype(np.float32)
    out = np.empty_like(g)
    masked_scale(g, y, 0, 100, scale, out)
    spec = [st.node_acc_grad(gr.reshape(-1).tolist(), yr.reshape(-1).tolist(), 0, 100, scale.tolist())
            for gr, yr in zip(g, y)]
    assert_f32_equal(spec, out.reshape(6, -1))


def _geometry(model, k):
    op, prep = model.operators[k], model.prepared[k]
    xs, ys = model.tensors[op.inputs[0]].shape, model.tensors[op.outputs[0]].shape
    if op.opcode == "FULLY_CONNECTED":
        k_len = prep.k_len
        return {"in_shape": (1, prep.rows_per_sample, k_len), "out_shape": (1, prep.rows_per_sample, prep.n_out)}
    return {"in_shape": tuple(xs[1:]), "out_shape": tuple(ys[1:]), "kernel": (prep.kh, prep.kw),
            "stride": (prep.stride_h, prep.stride_w), "dilation": (prep.dil_h, prep.dil_w),
            "padding": (prep.pad_h, prep.pad_w),
            "depth_multiplier": prep.depth_multiplier if op.opcode == "DEPTHWISE_CONV_2D" else 0}


@pytest.mark.parametrize("k", [0, 1, 11])   # conv 3x3 stride 2, depthwise 3x3 padded, fully connected
def test_node_local_backward_equals_local_backward(digits, k):
    model, _, _ = digits
    op = model.operators[k]
    rng = np.random.default_rng(8 + k)
    n = 2
    x = rng.integers(-128, 128, (n,) + model.tensors[op.inputs[0]].shape[1:]).astype(np.int8)
    y = rng.integers(-128, 128, (n,) + model.tensors[op.outputs[0]].shape[1:]).astype(np.int8)
    g = (rng.standard_normal(y.shape) * np.where(rng.random(y.shape) < 0.3, 0, 1)).astype(np.float32)
    gw_fast, gb_fast = local_backward(model, k, x, y, g)
    dacc_fast = output_grad_to_acc_grad(model, k, y, g)
    sl = _spec_layer(model, k)
    s_x, s_y, s_w = _scales(model, k)
    scale = st.acc_scale(s_x, s_w, s_y)
    prep = model.prepared[k]
    dacc = [st.node_acc_grad(gr.reshape(-1).tolist(), yr.reshape(-1).tolist(), prep.act_min, prep.act_max, scale)
            for gr, yr in zip(g, y)]
    assert_f32_equal(dacc, dacc_fast.reshape(n, -1))
    gw, gb = st.local_weight_grad(dacc, x.reshape(n, -1).tolist(), int(model.tensors[op.inputs[0]].quant.zero_point[0]),
                                  **_geometry(model, k))
    assert_f32_equal(gw, gw_fast.reshape(-1))
    assert_f32_equal(gb, gb_fast)
    assert len(gw) == len(sl.w)


@pytest.mark.parametrize("depthwise", [False, True])
def test_local_weight_grad_equals_kernels_with_padding_and_dilation(depthwise):
    """A geometry digits_cnn lacks: padding 1, stride (2, 1), dilation (1, 2), depth multiplier 2."""
    rng = np.random.default_rng(9)
    n, h, w, c, kh, kw = 2, 6, 7, 3, 3, 2
    sh, sw, dh, dw, ph, pw, mult = 2, 1, 1, 2, 1, 1, 2
    oh, ow = 3, 5
    o = c * mult if depthwise else 4
    x = rng.integers(-128, 128, (n, h, w, c)).astype(np.int8)
    dacc = (rng.standard_normal((n, oh, ow, o)) * np.where(rng.random((n, oh, ow, o)) < 0.3, 0, 1)).astype(np.float32)
    zp = -7
    if depthwise:
        gw64, gb64 = np.zeros((kh, kw, o)), np.zeros(o)
        local_grad.depthwise_weight_grad(dacc, x, zp, sh, sw, dh, dw, ph, pw,
                                         mult, gw64, gb64)
    else:
        cols = np.empty((n * oh * ow, kh * kw * c), np.float32)
        local_grad.im2col_f32(x, zp, kw, sh, sw, dh, dw, ph, pw, oh, ow, cols)
        gw64, gb64 = np.zeros((o, kh * kw * c)), np.zeros(o)
        local_grad.rows_weight_grad(dacc.reshape(-1, o), cols, gw64, gb64)
    gw, gb = st.local_weight_grad(dacc.reshape(n, -1).tolist(), x.reshape(n, -1).tolist(), zp, in_shape=(h, w, c),
                                  out_shape=(oh, ow, o), kernel=(kh, kw), stride=(sh, sw), dilation=(dh, dw),
                                  padding=(ph, pw), depth_multiplier=mult if depthwise else 0)
    assert_f32_equal(gw, gw64.astype(np.float32).reshape(-1))
    assert_f32_equal(gb, gb64.astype(np.float32))


# ----------------------------------------------------------------------------------------------
# update
# ----------------------------------------------------------------------------------------------


def test_update_constants_and_seed_match_update_module():
    assert st.ROUNDING_QUERY == update.ROUNDING_QUERY
    assert st.DELTA_LIMIT == update._DELTA_LIMIT
    assert update.round_subtract_spec is st.round_subtract_spec
    for step in (0, 1, 2**32 + 5):
        for name in ("11/w", "0/b", "k\u00e9/w"):
            assert st.rounding_seed(77, step, name) == derive_seed(77, step & 0xFFFFFFFF, update.ROUNDING_QUERY,
                                                                 update.param_layer_id(name))
    np.testing.assert_array_equal(st.stochastic_r24(12345, 50), update.stochastic_bits(12345, 50))


def test_qas_step_equals_qas_step():
    rng = np.random.default_rng(10)
    g = (rng.standard_normal((6, 5)) * 10.0 ** rng.integers(-8, 3, (6, 5))).astype(np.float32)
    s = (10.0 ** rng.uniform(-6, -1, 6)).astype(np.float32)
    for lr in (1e-4, 0.05, 0.3):
        fast = update.qas_step(g, lr, s, axis=0)
        assert_f32_equal([[st.qas_step(float(v), float(s[i]), lr) for v in row] for i, row in enumerate(g)], fast)


@pytest.mark.parametrize("rounding", st.ROUNDINGS)
def test_update_tensor_equals_integer_sgd(rounding):
    """Two steps of IntegerSGD (per step, per-channel QAS scales, stochastic streams per name and step)."""
    rng = np.random.default_rng(11)
    w = rng.integers(-127, 128, (4, 9)).astype(np.int8)
    w[0, :3] = [127, -127, 126]
    b = rng.integers(-(2**31), 2**31, 4).astype(np.int32)
    b[0] = 2**31 - 3
    s_w = (10.0 ** rng.uniform(-3, -1.5, 4)).astype(np.float32)
    s_b = st.bias_scale(0.01, s_w.tolist())
    opt = update.IntegerSGD(0.05, rounding=rounding, seed=99)
    params = {"3/w": w, "3/b": b}
    for step in range(2):
        grads = {"3/w": (rng.standard_normal(w.shape) * 0.02).astype(np.float32),
                 "3/b": (rng.standard_normal(4) * 1e-5).astype(np.float32)}
        grads["3/w"][0, :3] = [-50.0, 50.0, 1e-3]
        grads["3/b"][0] = -1e-1
        new = opt.step(params, grads, {"3/w": (s_w, 0), "3/b": (np.asarray(s_b, np.float32), 0)})
        opts = {"lr": 0.05, "rounding": rounding, "seed": 99, "step": step}
        spec_w = st.update_tensor("3/w", w.reshape(-1).tolist(), grads["3/w"].reshape(-1).tolist(),
                                  np.repeat(s_w, 9).tolist(), clamp=st.INT8_WEIGHT_CLAMP, **opts)
        spec_b = st.update_tensor("3/b", b.tolist(), grads["3/b"].tolist(), s_b, clamp=st.INT32_CLAMP, **opts)
        np.testing.assert_array_equal(spec_w, new["3/w"].reshape(-1))
        np.testing.assert_array_equal(spec_b, new["3/b"])
        assert np.count_nonzero(new["3/w"] != w) > 0 and new["3/b"][0] == 2**31 - 1
        w, b = new["3/w"], new["3/b"]
        params = {"3/w": w, "3/b": b}


def test_round_subtract_spec_refuses_an_unknown_rounding():
    with pytest.raises(tinyzo.TinyzoError, match="unknown rounding"):
        st.round_subtract_spec(1, 0.5, "floor")


# ----------------------------------------------------------------------------------------------
# whole steps on digits_cnn
# ----------------------------------------------------------------------------------------------


def _scales(model, k):
    """(s_x, s_y, s_w per output channel) of operator k as the trainer reads them (float32 values)."""
    op = model.operators[k]
    s_x = float(model.tensors[op.inputs[0]].quant.scale[0])
    s_y = float(model.tensors[op.outputs[0]].quant.scale[0])
    s_w = model.tensors[op.inputs[1]].quant.scale.astype(np.float32)
    return s_x, s_y, np.broadcast_to(s_w, (model.prepared[k].n_out,)).astype(np.float64).tolist()


def _spec_layer(model, k, env=None):
    """The spec's view of operator k: parameters, per-element scales, and (with env) a NodeLayer."""
    w, b = model.get_params(k)
    s_x, s_y, s_w = _scales(model, k)
    axis = model.out_channel_axis(k)
    shape = [1] * w.ndim
    shape[axis] = len(s_w)
    w_scale = np.broadcast_to(np.asarray(s_w).reshape(shape), w.shape).reshape(-1).tolist()
    b_scale = st.bias_scale(s_x, s_w)
    common = {"k": k, "w": w.reshape(-1).tolist(), "b": b.tolist(), "w_scale": w_scale, "b_scale": b_scale,
              "sigma_b": st.bias_sigma(s_y, b_scale)}
    if env is None:
        return st.TrainedLayer(**common)
    op, prep = model.operators[k], model.prepared[k]
    x, y = env[op.inputs[0]], env[op.outputs[0]]
    return st.NodeLayer(**common, x=x.reshape(len(x), -1).tolist(), y=y.reshape(len(y), -1).tolist(),
                        x_zero_point=int(model.tensors[op.inputs[0]].quant.zero_point[0]), act_min=prep.act_min,
                        act_max=prep.act_max, acc_scale=st.acc_scale(s_x, s_w, s_y), **_geometry(model, k))


def _spec_fc_forward(model, k, x):
    """forward(params) of the last FULLY_CONNECTED layer in tinyzo.spec.conv, from its cached input."""
    prep = model.prepared[k]
    w_shape = model.tensors[model.operators[k].inputs[1]].shape

    def forward(params):
        w, b = params[k]
        out = spec_conv.fully_connected_s8(x, np.array(w).reshape(w_shape), b, input_offset=prep.input_offset,
                                           output_offset=prep.output_offset, multiplier=list(prep.multiplier),
                                           shift=list(prep.shift), act_min=prep.act_min, act_max=prep.act_max,
                                           rounding=model.rounding)
        return out.tolist()
    return forward


def _model_forward(model, env, first):
    """forward(params) through a copy of the model (set_params + forward_from) for layers before the last."""
    m = copy.deepcopy(model)

    def forward(params):
        for k, (w, b) in params.items():
            shape = m.tensors[m.operators[k].inputs[1]].shape
            m.set_params(k, np.array(w, np.int8).reshape(shape), np.array(b, np.int32))
        return m.forward_from(env, first, output=m.loss_tensor).reshape(len(env[m.inputs[0]]), -1).tolist()
    return forward


def _check_against_trainer(model, xq, y, cfg, new, rec):
    """The golden exporter's record (which itself replays ZOTrainer.step) and ZOTrainer.step on a copy."""
    vec = training_vectors(model, xq, y, copy.deepcopy(cfg), steps=1)
    assert_f32_equal(rec["base"], vec["train/step0/base"])
    assert_f32_equal(np.reshape(rec["plus"], -1), vec["train/step0/plus"])
    if rec["minus"]:
        assert_f32_equal(np.reshape(rec["minus"], -1), vec["train/step0/minus"])
    if "coef" in rec:
        assert_f32_equal(np.reshape(rec["coef"], -1), vec["train/step0/coef"])
    else:
        assert_f32_equal(rec["coef_mean"], vec["train/step0/coef_mean"])
    m = copy.deepcopy(model)
    ZOTrainer(m, copy.deepcopy(cfg), total_steps=1).step(xq, y)
    changed = 0
    for k, (w_new, b_new) in new.items():
        gw, gb = rec["grads"][k]
        assert_f32_equal(gw, vec[f"train/step0/op{k}/gw"])
        assert_f32_equal(gb, vec[f"train/step0/op{k}/gb"])
        w, b = m.get_params(k)
        np.testing.assert_array_equal(np.array(w_new, np.int8), w.reshape(-1))
        np.testing.assert_array_equal(np.array(b_new, np.int32), b)
        w0, b0 = model.get_params(k)
        changed += np.count_nonzero(w != w0) + np.count_nonzero(b != b0)
    assert changed > 0, "the step moved no parameter: the comparison would be vacuous"


WEIGHT_CASES = [  # (layers, estimator, direction, rounding); the first is the documented reference case
    ("last", "rge", "rademacher", "nearest"),
    ("last", "spsa", "gaussian", "stochastic"),
    ("last", "sign-spsa", "uniform", "nearest"),
    ("8,11", "rge", "rademacher", "stochastic"),
]


@pytest.mark.parametrize("layers,estimator,direction,rounding", WEIGHT_CASES)
def test_zo_step_replays_zotrainer_step(digits, layers, estimator, direction, rounding):
    model, xq, y = digits
    last = model.trainable_ops()[-1]
    ks = [last] if layers == "last" else [int(v) for v in layers.split(",")]
    cfg = ZOConfig(layers=ks, target="weight", estimator=estimator, direction=direction, queries=2, sigma=1,
                   lr=0.05, rounding=rounding, seed=5)
    _, env = model(xq, intermediates=True)
    if layers == "last":   # the whole step in spec code: spec.conv's FULLY_CONNECTED on the cached input
        forward = _spec_fc_forward(model, last, env[model.operators[last].inputs[0]])
    else:
        forward = _model_forward(model, env, ks[0])
    qo = model.loss_quant()
    new, rec = st.zo_step(forward, [_spec_layer(model, k) for k in ks], y.tolist(), out_scale=qo[0],
                          out_zero_point=qo[1], seed=5, step=0, lr=0.05, queries=2, estimator=estimator,
                          direction=direction, sigma=1, rounding=rounding)
    _check_against_trainer(model, xq, y, cfg, new, rec)


@pytest.mark.parametrize("layers,estimator", [("last", "rge"), ("8,11", "spsa")])
def test_zo_node_step_replays_zotrainer_step(digits, layers, estimator):
    model, xq, y = digits
    last = model.trainable_ops()[-1]
    ks = [last] if layers == "last" else [int(v) for v in layers.split(",")]
    cfg = ZOConfig(layers=ks, target="node", estimator=estimator, queries=2, sigma_node=1, lr=0.05, seed=7)
    _, env = model(xq, intermediates=True)
    if layers == "last":   # the node is the logits: forward(add) is the int8 saturating add itself
        y_out = env[model.operators[last].outputs[0]].reshape(len(y), -1).tolist()

        def forward(add):
            u = add.get(last, [[0] * len(r) for r in y_out])
            return [[min(127, max(-128, a + b)) for a, b in zip(r, ur)] for r, ur in zip(y_out, u)]
    else:
        def forward(add):
            adds = {model.operators[k].outputs[0]: np.array(u).reshape(env[model.operators[k].outputs[0]].shape)
                    for k, u in add.items()}
            logits = model.forward_from(env, ks[0], add=adds or None, output=model.loss_tensor)
            return logits.reshape(len(y), -1).tolist()
    qo = model.loss_quant()
    new, rec = st.zo_node_step(forward, [_spec_layer(model, k, env) for k in ks], y.tolist(), out_scale=qo[0],
                               out_zero_point=qo[1], seed=7, step=0, lr=0.05, queries=2, estimator=estimator,
                               sigma_node=1)
    _check_against_trainer(model, xq, y, cfg, new, rec)


@pytest.mark.parametrize("m, o, k", [(37, 5, 13), (130, 9, 96), (200, 3, 900)])
def test_sparse_and_dense_row_kernels_give_the_same_bits(m, o, k):
    """rows_weight_grad_sparse_range (zero terms skipped one by one) and rows_weight_grad_range (groups of
    eight) equal each other and the spec's double sums, for zero patterns from none to whole channels and
    chunks, row counts that leave partial groups and chunks, and rows too long for a chunk of eight."""
    rng = np.random.default_rng(m + o + k)
    for zeros in (0.0, 0.5, 0.97):
        dacc = (rng.standard_normal((m, o)) * np.exp(rng.uniform(-20, 5, (m, o)))).astype(np.float32)
        dacc[rng.random((m, o)) < zeros] = 0.0
        dacc[:, 0] = 0.0  # a channel with no gradient at all
        dacc[: min(m, 17), -1] = 0.0  # a channel whose first rows are zero
        cols = rng.integers(-255, 256, (m, k)).astype(np.float32)
        got = {}
        for sparse in (False, True):
            gw, gb = np.zeros((o, k)), np.zeros(o)
            local_grad.rows_weight_grad(dacc, cols, gw, gb, sparse)
            got[sparse] = (gw, gb)
        np.testing.assert_array_equal(got[True][0], got[False][0])
        np.testing.assert_array_equal(got[True][1], got[False][1])
        assert local_grad.prefer_sparse(dacc) == (zeros > 0.4)
    x = cols.astype(np.int64).reshape(m, 1, 1, k)  # the last pattern against the spec's sums (zp 0)
    gw, gb = st.local_weight_grad(dacc.reshape(m, -1).tolist(), x.reshape(m, -1).tolist(), 0, in_shape=(1, 1, k),
                                  out_shape=(1, 1, o), kernel=(1, 1), stride=(1, 1), dilation=(1, 1), padding=(0, 0),
                                  depth_multiplier=0)
    assert_f32_equal(gw, got[True][0].astype(np.float32).reshape(-1))
    assert_f32_equal(gb, got[True][1].astype(np.float32))
