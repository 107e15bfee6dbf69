"""Post-training quantization (tinyzo.fp.ptq): batch-norm folding, the TFLite quantization formulas on
hand-computed cases, calibration, the operator mapping, float-vs-int8 agreement, and exact TFLM runs."""

import numpy as np
import pytest

from tinyzo.fp import activations, forward
from tinyzo.fp import ptq as P
from tinyzo.io import write_tflite
from tinyzo.nn import Layer, Net, init_params
from tinyzo.quant import QuantParams, dequantize, quantize

L = Layer


def _randomize_bn_and_bias(net, params, seed):
    """Non-trivial batch-norm statistics and biases (init_params gives identity BN and zero biases)."""
    rng = np.random.default_rng(seed)
    for lay in net.layers:
        p = params.get(lay.name, {})
        o = lay.out_channels
        if "gamma" in p:
            p["gamma"] = rng.uniform(0.5, 1.5, o).astype(np.float32)
            p["beta"] = rng.normal(0, 0.3, o).astype(np.float32)
            p["mean"] = rng.normal(0, 0.3, o).astype(np.float32)
            p["var"] = rng.uniform(0.5, 2.0, o).astype(np.float32)
        if "b" in p:
            p["b"] = rng.normal(0, 0.1, o).astype(np.float32)
    return params


def every_kind_net():
    """conv+bn+relu6, depthwise (multiplier 2), pointwise, add, avgpool, maxpool, gap, flatten, fc on 2-D and 4-D."""
    return Net("every-kind", (16, 16, 3), [
        L("stem", "conv", ("input",), out_channels=8, kernel=3, stride=2, bn=True, activation="relu6"),
        L("dw", "depthwise", ("stem",), kernel=3, depth_multiplier=2, bn=True, activation="relu6"),
        L("pw", "conv", ("dw",), out_channels=8, kernel=1, bn=True),
        L("res", "add", ("stem", "pw"), activation="relu"),
        L("avg", "avgpool", ("res",), kernel=2, stride=2, padding="VALID"),
        L("mx", "maxpool", ("avg",), kernel=3, stride=1, padding="SAME"),
        L("pw2", "conv", ("mx",), out_channels=12, kernel=1, activation="relu"),
        L("gap", "gap", ("pw2",)),
        L("fc1", "fc", ("gap",), out_channels=16, activation="relu"),
        L("flat", "flatten", ("mx",)),
        L("fc_flat", "fc", ("flat",), out_channels=16),
        L("fc_4d", "fc", ("mx",), out_channels=16),     # FULLY_CONNECTED flattens a 4-D input itself
        L("sum1", "add", ("fc1", "fc_flat")),
        L("sum", "add", ("sum1", "fc_4d"), activation="relu6"),
        L("fc", "fc", ("sum",), out_channels=10),
    ], num_classes=10)


@pytest.fixture(scope="module")
def trained():
    net = every_kind_net()
    params = _randomize_bn_and_bias(net, init_params(net, seed=0), seed=1)
    rng = np.random.default_rng(2)
    x = rng.random((128, 16, 16, 3), dtype=np.float32)
    return net, params, x


# ------------------------------------------------------------------------------------------ folding


def test_fold_batchnorm_keeps_the_eval_forward(trained):
    net, params, x = trained
    net2, params2 = P.fold_batchnorm(net, params)
    for lay, lay2 in zip(net.layers, net2.layers):
        assert not lay2.bn and lay2.out_shape == lay.out_shape
        if lay.bn:
            assert lay2.bias and set(params2[lay.name]) == {"w", "b"}
    y1, _ = forward(net, params, x[:32])
    y2, _ = forward(net2, params2, x[:32])
    # Folding changes only the rounding: w*f is rounded to float32 once instead of (w.x)*f rounded
    # twice; each of the ~200-term dot products then differs by a few float32 ulps of its partial sums,
    # carried through the layers: 1e-5 of the logits' magnitude is ~100 ulps, far below a real bug
    # (a wrong gamma/beta or epsilon shifts outputs by percents).
    np.testing.assert_allclose(y2, y1, rtol=0, atol=1e-5 * float(np.abs(y1).max()))


def test_fold_batchnorm_formula_exactly():
    net = Net("t", (3, 3, 2), [L("c", "conv", ("input",), out_channels=2, kernel=1, bn=True),
                               L("d", "depthwise", ("c",), kernel=1, bn=True)])
    params = init_params(net)
    params["c"].update(w=np.float32([[[[1.0, -2.0]]], [[[0.5, 4.0]]]]), gamma=np.float32([2.0, 0.5]),
                       beta=np.float32([0.25, -1.0]), mean=np.float32([1.0, 2.0]), var=np.float32([3.0, 0.0]))
    params["d"].update(w=np.float32([[[[3.0, -1.0]]]]), gamma=np.float32([1.0, 3.0]), beta=np.float32([0.0, 1.0]),
                       mean=np.float32([0.5, 0.0]), var=np.float32([0.0, 8.0]))
    _, p2 = P.fold_batchnorm(net, params, eps=1.0)
    # f = gamma / sqrt(var + 1): c: [2/2, 0.5/1] = [1, 0.5]; d: [1/1, 3/3] = [1, 1]
    np.testing.assert_array_equal(p2["c"]["w"], np.float32([[[[1.0, -2.0]]], [[[0.25, 2.0]]]]))  # OHWI axis 0
    np.testing.assert_array_equal(p2["c"]["b"], np.float32([0.25 - 1.0, -1.0 - 1.0]))
    np.testing.assert_array_equal(p2["d"]["w"], np.float32([[[[3.0, -1.0]]]]))   # 1HWC axis 3
    np.testing.assert_array_equal(p2["d"]["b"], np.float32([-0.5, 1.0]))
    # the default epsilon is the float executor's
    from tinyzo.fp.forward import BN_EPS

    _, p_default = P.fold_batchnorm(net, params)
    _, p_explicit = P.fold_batchnorm(net, params, eps=BN_EPS)
    np.testing.assert_array_equal(p_default["c"]["w"], p_explicit["c"]["w"])


def test_fold_batchnorm_rejects_bad_input():
    net = Net("t", (4, 4, 1), [L("g", "gap", ("input",)), L("f", "fc", ("g",), out_channels=2, bn=True)])
    with pytest.raises(P.PTQError, match="only conv and depthwise"):
        P.fold_batchnorm(net, init_params(net))
    net = Net("t", (4, 4, 1), [L("c", "conv", ("input",), out_channels=2, bn=True)])
    with pytest.raises(P.PTQError, match="no entry for layer 'c'"):
        P.fold_batchnorm(net, {})
    params = init_params(net)
    params["c"]["var"] = np.float32([-5.0, 1.0])
    with pytest.raises(P.PTQError, match="variance"):
        P.fold_batchnorm(net, params)


# ------------------------------------------------------------------------------------------ formulas


@pytest.mark.parametrize("lo, hi, scale, zp", [
    (0.0, 1.0, 1 / 255, -128),        # images in [0, 1]: q = pixel - 128
    (0.5, 2.0, 2 / 255, -128),        # the range is widened to contain 0
    (-3.0, -1.0, 3 / 255, 127),       # ... from either side
    (-1.0, 1.0, 2 / 255, -1),         # zp = -128 + 127.5 = -0.5, rounded half away from zero
    (-0.2, 0.8, 1 / 255, -77),        # zp = -128 + 0.2 * 255 = -77
    (-6.0, 2.0, 8 / 255, 63),         # zp = -128 + 6 * 255 / 8 = 63.25 -> 63
    (0.0, 0.0, 1.0, -128),            # an all-zero tensor: MLIR's special case
])
def test_activation_quant_hand_cases(lo, hi, scale, zp):
    q = P.activation_quant(lo, hi)
    assert q.scale[0] == np.float32(scale)
    assert q.zero_point[0] == zp


def test_activation_quant_zero_is_exact_and_the_range_fits():
    rng = np.random.default_rng(0)
    for _ in range(200):
        lo, hi = sorted(rng.normal(0, 3, size=2))
        q = P.activation_quant(lo, hi)
        assert -128 <= q.zero_point[0] <= 127
        assert dequantize(quantize(np.float32(0.0), q), q) == 0.0
        # the nudged grid still covers the range within half a step at each end
        ql = quantize(np.float32(min(lo, 0)), q)
        qh = quantize(np.float32(max(hi, 0)), q)
        assert abs(dequantize(ql, q) - min(lo, 0)) <= 0.5001 * q.scale[0] * 2
        assert abs(dequantize(qh, q) - max(hi, 0)) <= 0.5001 * q.scale[0] * 2


def test_weight_quant_hand_cases():
    s = 2.0**-7   # max |w| = 127 * 2**-7 -> scale exactly 2**-7; multiples of 2**-8 are exact ties
    w = np.zeros((3, 1, 1, 4), np.float32)             # OHWI, per channel along axis 0
    w[0, 0, 0] = [127 * s, 3 * s / 2, -3 * s / 2, s / 2]
    w[1, 0, 0] = [-2.0, 1.0, 0.0, 0.0101]               # scale 2/127
    # w[2] is all zero
    q, qp = P.quantize_weights(w, axis=0)
    assert q.dtype == np.int8 and qp.axis == 0
    np.testing.assert_array_equal(q[0, 0, 0], [127, 2, -2, 1])    # ties away from zero
    np.testing.assert_array_equal(q[1, 0, 0], [-127, 64, 0, 1])    # 1 / (2/127) = 63.5 -> 64; 0.0101 -> 0.64 -> 1
    np.testing.assert_array_equal(q[2], 0)
    np.testing.assert_array_equal(qp.scale, np.float32([s, 2 / 127, P.ZERO_CHANNEL_HALF_RANGE / 127]))
    np.testing.assert_array_equal(qp.zero_point, 0)
    # depthwise 1HWC: per channel along axis 3
    wd = np.float32([[[[0.5, -4.0], [-1.0, 1.0]]]])     # channel 0: max 1, channel 1: max 4
    qd, qpd = P.quantize_weights(wd, axis=3)
    np.testing.assert_array_equal(qd, [[[[64, -127], [-127, 32]]]])  # 63.5 -> 64; 31.75 -> 32
    np.testing.assert_array_equal(qpd.scale, np.float32([1 / 127, 4 / 127]))
    assert qpd.axis == 3
    # fully connected: one scale for the whole tensor
    wf = np.float32([[0.5, -1.0], [2.0, 0.25]])
    qf, qpf = P.quantize_weights(wf)
    np.testing.assert_array_equal(qf, [[32, -64], [127, 16]])        # 31.75 -> 32, -63.5 -> -64, 15.875 -> 16
    np.testing.assert_array_equal(qpf.scale, np.float32([2 / 127]))


def test_weight_scale_grows_for_a_bias_that_would_overflow():
    s_in = 1 / 255
    w = np.float32([[127 * 2.0**-7, 1.0 * 2.0**-7]])     # scale 2**-7 from the weights
    small, big = np.float32([10.0]), np.float32([1e5])   # 1e5 / (s_in * 2**-7) = 3.3e9 > INT32_MAX / 2
    q1, qp1 = P.quantize_weights(w, None, small, s_in)
    assert qp1.scale[0] == np.float32(2.0**-7)
    np.testing.assert_array_equal(q1, [[127, 1]])
    q2, qp2 = P.quantize_weights(w, None, big, s_in)
    s_big = 1e5 / (s_in * (2**31 - 1) / 2)
    assert qp2.scale[0] == np.float32(s_big)
    np.testing.assert_array_equal(q2, np.round(w.astype(np.float64) / s_big).astype(np.int8))
    bq, _ = P.quantize_bias(big, s_in, [s_big])
    assert abs(int(bq[0]) - (2**31 - 1) // 2) <= 1   # the bias now sits at half the int32 range


def test_bias_quant_hand_cases():
    # prod = 0.5 * [2**-6, 2**-5, 2**-6] = [2**-7, 2**-6, 2**-7]
    b = np.float32([2.5 * 2.0**-7, -2.5 * 2.0**-6, 0.3, 1e12, -1e12])
    ws = np.float64([2.0**-6, 2.0**-5, 2.0**-6, 2.0**-6, 2.0**-6])
    q, qp = P.quantize_bias(b, 0.5, ws)
    assert q.dtype == np.int32
    # 2.5 -> 3 and -2.5 -> -3 (ties away from zero); float32(0.3) * 128 = 38.4000015 -> 38; saturation
    np.testing.assert_array_equal(q, [3, -3, 38, 2**31 - 1, -(2**31 - 1)])
    np.testing.assert_array_equal(qp.scale, np.float32(0.5 * ws))
    np.testing.assert_array_equal(qp.zero_point, 0)
    q1, qp1 = P.quantize_bias(np.float32([1.0, -1.0]), 0.25, [0.5])   # per tensor: one scale
    np.testing.assert_array_equal(q1, [8, -8])
    assert qp1.scale.size == 1


def test_quantize_input_maps_pixels_to_pixel_minus_128():
    pixels = np.arange(256, dtype=np.uint8)
    want = (pixels.astype(np.int16) - 128).astype(np.int8)
    np.testing.assert_array_equal(P.quantize_input(pixels), want)
    np.testing.assert_array_equal(P.quantize_input(pixels.astype(np.float32) / np.float32(255)), want)
    np.testing.assert_array_equal(P.quantize_input(pixels.astype(np.float64) / 255), want)
    # consistent with the model's own input quantization
    np.testing.assert_array_equal(quantize(pixels / 255.0, P.DEFAULT_INPUT_QUANT), want)
    with pytest.raises(P.PTQError, match=r"\[0, 1\]"):
        P.quantize_input(np.float32([0.0, 255.0]))
    with pytest.raises(P.PTQError, match="float images"):
        P.quantize_input(np.int32([1, 2]))
    q = QuantParams([0.5], [3])
    np.testing.assert_array_equal(P.quantize_input(np.float32([-1.0, 10.0]), q), [1, 23])


# ------------------------------------------------------------------------------------------ calibration


def test_calibrate_minmax_and_percentile(trained):
    # The float activations depend on the batch split: BLAS picks its kernel (and so its summation
    # order) by matrix shape and CPU, so batches of 7 and of 40 can differ in the last ulp on another
    # machine. Calibration streams over batches; the exact claim tested here is that its streaming
    # min/max and percentiles equal those of all the values it saw, computed in the same batches.
    net, params, x = trained
    acts = {7: activations(net, params, x[:40], batch_size=7), 16: activations(net, params, x[:40], batch_size=16),
            40: activations(net, params, x[:40], batch_size=40)}
    mm = P.calibrate(net, params, x[:40], method="minmax", batch_size=7)
    assert list(mm) == ["input"] + [lay.name for lay in net.layers]
    assert mm["input"] == (float(x[:40].min()), float(x[:40].max()))
    for name, a in acts[7].items():
        assert mm[name] == (float(a.min()), float(a.max())), name
    # streaming percentile (batches of 7) == numpy's percentile of all the values at once
    pc = P.calibrate(net, params, x[:40], method="percentile", percentile=99.0, batch_size=7)
    for name, a in acts[7].items():
        want = np.percentile(a.astype(np.float64), [1.0, 99.0])
        np.testing.assert_array_equal(pc[name], want, err_msg=name)
        assert mm[name][0] <= pc[name][0] <= pc[name][1] <= mm[name][1]
    p_default = P.calibrate(net, params, x[:40], method="percentile", batch_size=16)   # 99.99
    for name, a in acts[16].items():
        want = np.percentile(a.astype(np.float64), [100.0 - 99.99, 99.99])
        np.testing.assert_array_equal(p_default[name], want, err_msg=name)
    p100 = P.calibrate(net, params, x[:40], method="percentile", percentile=100.0, batch_size=40)
    assert p100 == P.calibrate(net, params, x[:40], method="minmax", batch_size=40)
    # across batch splits the ranges agree to float32 rounding: the layers' dot products are at most
    # a few hundred terms long, so a few hundred ulps of the largest magnitude bound the difference.
    for name in acts[7]:
        a40 = acts[40][name]
        tol = 512 * np.finfo(np.float32).eps * max(1.0, float(np.abs(a40).max()))
        np.testing.assert_allclose(mm[name], (float(a40.min()), float(a40.max())), rtol=0, atol=tol, err_msg=name)


def test_calibrate_rejects_bad_arguments(trained):
    net, params, x = trained
    with pytest.raises(P.PTQError, match="method"):
        P.calibrate(net, params, x[:4], method="kl")
    with pytest.raises(P.PTQError, match="percentile"):
        P.calibrate(net, params, x[:4], method="percentile", percentile=20)
    with pytest.raises(P.PTQError, match="shape"):
        P.calibrate(net, params, x[:4, :8])
    with pytest.raises(P.PTQError, match="float images"):
        P.calibrate(net, params, (x[:4] * 255).astype(np.uint8))
    with pytest.raises(P.PTQError, match="empty"):
        P.calibrate(net, params, x[:0])


# ------------------------------------------------------------------------------------------ the graph


def test_operator_mapping_and_quantization(trained):
    net, params, x = trained
    model = P.ptq(net, params, x[:64], softmax=True)
    ops = [op.opcode for op in model.operators]
    assert ops == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "ADD", "AVERAGE_POOL_2D", "MAX_POOL_2D", "CONV_2D",
                   "MEAN", "FULLY_CONNECTED", "RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED", "ADD", "ADD",
                   "FULLY_CONNECTED", "SOFTMAX"]
    t = {ten.name: ten for ten in model.tensors}
    assert t["input"].dtype == np.int8 and t["input"].quant == P.DEFAULT_INPUT_QUANT
    assert [op.options["fused_activation_function"] for op in model.operators if "fused_activation_function" in op.options] \
        == ["RELU6", "RELU6", "NONE", "RELU", "NONE", "NONE", "RELU", "RELU", "NONE", "NONE", "NONE", "RELU6", "NONE"]
    # weights: per channel (conv axis 0, depthwise axis 3), fc per tensor; symmetric in [-127, 127]
    assert t["stem/weights"].quant.axis == 0 and t["stem/weights"].quant.scale.size == 8
    assert t["dw/weights"].quant.axis == 3 and t["dw/weights"].quant.scale.size == 16
    assert t["fc/weights"].quant.scale.size == 1
    for ten in model.tensors:
        if ten.name.endswith("/weights"):
            assert ten.data.min() >= -127 and np.all(ten.quant.zero_point == 0)
        if ten.name.endswith("/bias"):
            assert ten.dtype == np.int32
            src = {"fc_4d": "mx", "fc_flat": "flat", "fc1": "gap", "fc": "sum", "pw2": "mx", "pw": "dw", "dw": "stem",
                   "stem": "input"}[ten.name.split("/")[0]]
            w = t[ten.name.replace("/bias", "/weights")]
            # s_in * s_w, formed in float64 from the converter's float64 scales and then stored as
            # float32: within 2 float32 ulps of the product of the stored float32 scales
            np.testing.assert_allclose(ten.quant.scale, t[src].quant.scale[0].astype(np.float64) * w.quant.scale,
                                       rtol=2.0**-22, atol=0)
    # pools and reshape keep their input's quantization (TFLM requires it for the pools)
    assert t["avg"].quant == t["res"].quant and t["mx"].quant == t["avg"].quant and t["flat"].quant == t["mx"].quant
    assert t["gap"].quant != t["pw2"].quant
    mean = next(op for op in model.operators if op.opcode == "MEAN")
    np.testing.assert_array_equal(model.tensors[mean.inputs[1]].data, [1, 2])
    assert mean.options["keep_dims"] is False and t["gap"].shape == (1, 12)
    reshape = next(op for op in model.operators if op.opcode == "RESHAPE")
    np.testing.assert_array_equal(model.tensors[reshape.inputs[1]].data, [1, -1])
    assert t["flat"].shape == (1, 128)
    assert t["softmax"].quant == QuantParams([1 / 256], [-128])
    assert model.output_details[0].name == "softmax" and model.name == "every-kind"
    # relu/relu6 outputs are calibrated on [0, hi]: zero point -128
    assert t["stem"].quant.zero_point[0] == -128 and t["res"].quant.zero_point[0] == -128


def test_quantize_net_refusals(trained):
    net, params, x = trained
    ranges = P.calibrate(net, params, x[:8])
    up = Net("up", (4, 4, 1), [L("up", "upsample", ("input",), factor=2), L("g", "gap", ("up",)),
                               L("f", "fc", ("g",), out_channels=2)])
    with pytest.raises(P.PTQError, match="fit_to_model"):
        P.quantize_net(up, init_params(up), {"g": (0, 1), "f": (-1, 1)})
    partial = {k: v for k, v in ranges.items() if k != "pw2"}
    with pytest.raises(P.PTQError, match="'pw2'.*calibrate"):
        P.quantize_net(net, params, partial)
    bad = dict(ranges, pw2=(1.0, float("nan")))
    with pytest.raises(P.PTQError, match="pw2"):
        P.quantize_net(net, params, bad)
    with pytest.raises(P.PTQError, match="input_quant"):
        P.quantize_net(net, params, ranges, input_quant="auto")
    with pytest.raises(P.PTQError, match=r"\[0, 1\]"):
        P.ptq(net, params, x[:8] * 255)


def test_quantize_net_folds_batchnorm_itself(trained):
    net, params, x = trained
    ranges = P.calibrate(net, params, x[:16])
    net2, params2 = P.fold_batchnorm(net, params)
    a, b = P.quantize_net(net, params, ranges), P.quantize_net(net2, params2, ranges)
    for ta, tb in zip(a.tensors, b.tensors):
        assert ta.name == tb.name and ta.quant == tb.quant
        if ta.data is not None:
            np.testing.assert_array_equal(ta.data, tb.data)


def test_input_quantization_options(trained):
    net, params, x = trained
    ranges = P.calibrate(net, params, x[:8] * 2 - 1)   # images in [-1, 1]
    m = P.quantize_net(net, params, ranges, input_quant="calibrated")
    assert m.input_details[0].quant == P.activation_quant(*ranges["input"])
    m = P.quantize_net(net, params, ranges, input_quant=(1 / 128, 0))
    assert m.input_details[0].quant == QuantParams([1 / 128], [0])


def test_all_zero_channel_keeps_its_bias():
    net = Net("z", (4, 4, 2), [L("c", "conv", ("input",), out_channels=3, kernel=1), L("g", "gap", ("c",)),
                               L("f", "fc", ("g",), out_channels=2)])
    params = init_params(net, seed=3)
    params["c"]["w"][1] = 0.0
    params["c"]["w"][2] = 0.0
    params["c"]["b"] = np.float32([0.1, 0.7, 0.0])
    model = P.ptq(net, params, np.random.default_rng(0).random((8, 4, 4, 2), dtype=np.float32))
    t = {ten.name: ten for ten in model.tensors}
    w = t["c/weights"]
    np.testing.assert_array_equal(w.data[1:], 0)
    assert w.quant.scale[2] == np.float32(P.ZERO_CHANNEL_HALF_RANGE / 127) and w.quant.scale[1] > 0
    assert abs(int(t["c/bias"].data[1]) - (2**31 - 1) // 2) <= 1     # the scale grew to fit the bias
    _, acts = model(P.quantize_input(np.zeros((1, 4, 4, 2), np.float32)), intermediates=True)
    index = {ten.name: k for k, ten in enumerate(model.tensors)}
    q = t["c"].quant
    out = dequantize(acts[index["c"]][..., 1:], q)
    # channel 1 outputs its bias 0.7, channel 2 exactly 0, to within half an output step
    assert np.all(np.abs(out[..., 0] - 0.7) <= q.scale[0] / 2 + 1e-7)
    assert np.all(out[..., 1] == 0.0)


# ------------------------------------------------------------------------------------------ accuracy


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_int8_logits_follow_the_float_logits(trained, method):
    net, params, x = trained
    model = P.ptq(net, params, x[:64], method=method)
    x_test = x[64:]
    y_float, _ = forward(net, params, x_test)
    y_int8 = model.dequantize_output(model(P.quantize_input(x_test)))
    lsb = float(model.output_details[0].quant.scale[0])
    err = np.abs(y_int8 - y_float) / lsb
    # Each requantization rounds to its grid (uniform error, std 0.29 LSB of that tensor) and the weights
    # are rounded too; the longest path has 9 quantized tensors, so with gains near 1 the logits'
    # error std is about sqrt(9 + 9) * 0.29 ~ 1.2 LSB (mean |e| ~ 1 LSB). 3 LSB on average leaves room
    # for gains above 1 and still catches systematic mistakes: dropping one layer's bias gives ~18 LSB,
    # a mis-scaled tensor far more (both were tried).
    assert err.mean() < 3.0, err.mean()
    assert np.quantile(err, 0.99) < 12.0
    # a flip needs the top-two gap below ~2 LSB of a ~255 LSB logit range: rare on 64 samples
    assert np.mean(y_int8.argmax(1) == y_float.argmax(1)) >= 0.9


# ------------------------------------------------------------------------------------------ TFLM


@pytest.mark.oracle
@pytest.mark.parametrize("softmax", [False, True])
def test_ptq_model_runs_exactly_in_tflm(trained, softmax):
    from oracle import tflm_run

    net, params, x = trained
    model = P.ptq(net, params, x[:64], method="percentile", percentile=99.9, softmax=softmax)
    xq = P.quantize_input(x[64:80])
    y, ours = model(xq, intermediates=True)
    computed = sorted({t for op in model.operators for t in op.outputs})
    outs, theirs = tflm_run(write_tflite(model), [xq], tensors=computed)
    np.testing.assert_array_equal(y, outs[0])
    for t in computed:
        np.testing.assert_array_equal(ours[t].reshape(theirs[t].shape), theirs[t], err_msg=model.tensors[t].name)
