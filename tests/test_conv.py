"""CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED: jitted kernels and prepared ops == the spec."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyzo.spec.conv as spec
from tinyzo.graph import Model, Operator, Tensor
from tinyzo.kernels.arith import requantize_s8
from tinyzo.kernels.conv import conv2d_acc_ref, depthwise_conv2d_s8, fully_connected_acc_ref
from tinyzo.ops import conv_paths
from tinyzo.quant import QuantParams, quantize_multiplier


def _params(draw, n_out):
    s_in = draw(st.floats(0.001, 0.5))
    s_out = draw(st.floats(0.001, 2.0))
    s_w = [draw(st.floats(0.0005, 0.05)) for _ in range(n_out)]
    zp_in = draw(st.integers(-128, 127))
    zp_out = draw(st.integers(-128, 127))
    act = draw(st.sampled_from(["NONE", "RELU", "RELU6"]))
    return s_in, s_out, s_w, zp_in, zp_out, act


def conv_model(x_shape, w, bias, s_in, s_out, s_w, zp_in, zp_out, act, *, depthwise=False, stride=(1, 1),
               dilation=(1, 1), padding="VALID", depth_multiplier=1, rounding="double"):
    """A one-operator CONV_2D / DEPTHWISE_CONV_2D model (shared with other tests)."""
    from tinyzo.spec.conv import compute_out_size

    kh, kw = w.shape[1], w.shape[2]
    n_out = w.shape[3] if depthwise else w.shape[0]
    oh = compute_out_size(padding, x_shape[1], kh, stride[0], dilation[0])
    ow = compute_out_size(padding, x_shape[2], kw, stride[1], dilation[1])
    tensors = [
        Tensor("x", (1,) + tuple(x_shape[1:]), np.int8, QuantParams([s_in], [zp_in])),
        Tensor("w", w.shape, np.int8, QuantParams(s_w, [0] * len(s_w), 3 if depthwise else 0), w),
        Tensor("b", (n_out,), np.int32, QuantParams([s_in * v for v in s_w], [0] * len(s_w)), bias),
        Tensor("y", (1, oh, ow, n_out), np.int8, QuantParams([s_out], [zp_out])),
    ]
    opts = dict(padding=padding, stride_h=stride[0], stride_w=stride[1], dilation_h_factor=dilation[0],
                dilation_w_factor=dilation[1], fused_activation_function=act)
    if depthwise:
        opts["depth_multiplier"] = depth_multiplier
    op = Operator("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", (0, 1, 2), (3,), opts)
    return Model(tensors, [op], [0], [3], rounding=rounding)


def _spec_kwargs(model):
    p = model.prepared[0]
    return dict(input_offset=p.input_offset, output_offset=p.output_offset, multiplier=p.multiplier.tolist(),
                shift=p.shift.tolist(), act_min=p.act_min, act_max=p.act_max, rounding=model.rounding)


@st.composite
def conv_case(draw, depthwise=False, kernel=None):
    """A random CONV_2D (or DEPTHWISE_CONV_2D) case; ``kernel=(KH, KW)`` fixes the filter size."""
    n = draw(st.integers(1, 2))
    h = draw(st.integers(1, 7))
    w_ = draw(st.integers(1, 7))
    c = draw(st.integers(1, 4))
    kh = draw(st.integers(1, 3)) if kernel is None else kernel[0]
    kw = draw(st.integers(1, 3)) if kernel is None else kernel[1]
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    if padding == "VALID" and ((kh - 1) * dilation[0] + 1 > h or (kw - 1) * dilation[1] + 1 > w_):
        padding = "SAME"
    dm = draw(st.integers(1, 3)) if depthwise else 1
    n_out = c * dm if depthwise else draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rounding = draw(st.sampled_from(["double", "single"]))
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(n, h, w_, c), dtype=np.int8)
    wshape = (1, kh, kw, n_out) if depthwise else (n_out, kh, kw, c)
    w = rng.integers(-127, 128, size=wshape, dtype=np.int8)
    bias = rng.integers(-5000, 5000, size=n_out, dtype=np.int32)
    prm = _params(draw, n_out)
    return x, w, bias, prm, dict(depthwise=depthwise, stride=stride, dilation=dilation, padding=padding,
                                 depth_multiplier=dm, rounding=rounding)


@settings(max_examples=60, deadline=None)
@given(conv_case())
def test_conv2d_matches_spec(case):
    x, w, bias, prm, kw = case
    model = conv_model(x.shape, w, bias, *prm, **kw)
    want = spec.conv2d_s8(x, w, bias, stride=kw["stride"], dilation=kw["dilation"], padding=kw["padding"],
                          **_spec_kwargs(model))
    np.testing.assert_array_equal(model(x), want)
    # the TFLM-style reference accumulation loop gives the same result
    p = model.prepared[0]
    acc = np.empty(want.shape, dtype=np.int32)
    conv2d_acc_ref(x, w, bias, p.stride_h, p.stride_w, p.dil_h, p.dil_w, p.pad_h, p.pad_w, p.input_offset, acc)
    out = np.empty(acc.shape, dtype=np.int8).reshape(-1, acc.shape[-1])
    requantize_s8(acc.reshape(-1, acc.shape[-1]), p.multiplier, p.shift, p.output_offset, p.act_min, p.act_max,
                  p.rounding, out)
    np.testing.assert_array_equal(out.reshape(want.shape), want)


def _use_depthwise_path(model, path):
    """Put the model's depthwise layer on ``path``; False where that path cannot run it (then the test
    checks the refusal): no VNNI on this CPU, or a multiplier >= 1 for the vnni kernel."""
    op = model.prepared[0]
    if path == "vnni" and "vnni" not in conv_paths.available_paths():
        pytest.skip("this CPU has no AVX512-VNNI")
    if op.as_conv:  # one input channel: a CONV_2D, on the path of CONV_2D's cost model
        return True
    if path == "vnni" and op.rq.shape[0] != 3:
        with pytest.raises(conv_paths.ConvPathError, match="one-formula"):
            op.set_path(path)
        return False
    op.set_path(path)
    assert op.path == path
    return True


@pytest.mark.parametrize("path", conv_paths.DEPTHWISE_PATHS)
@settings(max_examples=60, deadline=None)
@given(case=st.one_of(conv_case(depthwise=True), conv_case(depthwise=True, kernel=(3, 3))))
def test_depthwise_matches_spec(path, case):
    """Random depthwise layers, half of them 3x3 (the row kernel's one-pass path), equal the spec and TFLM's
    loop, on each depthwise kernel."""
    x, w, bias, prm, kw = case
    model = conv_model(x.shape, w, bias, *prm, **kw)
    if not _use_depthwise_path(model, path):
        return
    want = spec.depthwise_conv2d_s8(x, w, bias, stride=kw["stride"], dilation=kw["dilation"], padding=kw["padding"],
                                    depth_multiplier=kw["depth_multiplier"], **_spec_kwargs(model))
    np.testing.assert_array_equal(model(x), want)
    # the TFLM-style reference loop (its jitted twin) gives the same result
    p = model.prepared[0]
    out = np.empty(want.shape, dtype=np.int8)
    depthwise_conv2d_s8(x, w, bias, p.stride_h, p.stride_w, p.dil_h, p.dil_w, p.pad_h, p.pad_w, p.depth_multiplier,
                        p.input_offset, p.output_offset, p.multiplier, p.shift, p.act_min, p.act_max, p.rounding, out)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("path", conv_paths.DEPTHWISE_PATHS)
@pytest.mark.parametrize("c, dm", [(16, 1), (8, 2), (48, 1), (24, 1), (5, 3)])
@pytest.mark.parametrize("kernel, stride, dilation", [((3, 3), (1, 1), (1, 1)), ((3, 3), (2, 2), (1, 1)),
                                                      ((5, 5), (1, 2), (1, 1)), ((7, 7), (2, 1), (1, 2)),
                                                      ((1, 6), (1, 1), (2, 1))])
def test_depthwise_kernels_wide_filters_and_channel_layouts(path, c, dm, kernel, stride, dilation):
    """Filters of 1 to 7 taps per row (one or two groups of four taps in the vnni kernel), strides and
    dilations, channel counts that are multiples of 16 (the vnni kernel's per-channel layout, rows not
    split by phase) or not (channels tiled along the row, a partial last block), depth multipliers."""
    rng = np.random.default_rng(c * 100 + kernel[1])
    x = rng.integers(-128, 128, size=(2, 11, 9, c), dtype=np.int8)
    n_out = c * dm
    w = rng.integers(-128, 128, size=(1,) + kernel + (n_out,), dtype=np.int8)
    bias = rng.integers(-20000, 20000, size=n_out, dtype=np.int32)
    model = conv_model(x.shape, w, bias, 0.05, 0.3, list(rng.uniform(0.002, 0.02, n_out)), 7, -9, "RELU6",
                       depthwise=True, stride=stride, dilation=dilation, padding="SAME", depth_multiplier=dm)
    assert _use_depthwise_path(model, path)
    p = model.prepared[0]
    want = np.empty((2, p.out_h, p.out_w, n_out), dtype=np.int8)
    depthwise_conv2d_s8(x, w, bias, p.stride_h, p.stride_w, p.dil_h, p.dil_w, p.pad_h, p.pad_w, p.depth_multiplier,
                        p.input_offset, p.output_offset, p.multiplier, p.shift, p.act_min, p.act_max, p.rounding, want)
    np.testing.assert_array_equal(model(x), want)


def fc_model(k_len, w, bias, s_in, s_out, s_w, zp_in, zp_out, act, rounding="double", x_shape=None):
    """A one-operator FULLY_CONNECTED model; ``x_shape`` (batch 1) defaults to (1, k_len)."""
    n_out = w.shape[0]
    x_shape = x_shape or (1, k_len)
    rows = int(np.prod(x_shape)) // k_len
    tensors = [
        Tensor("x", x_shape, np.int8, QuantParams([s_in], [zp_in])),
        Tensor("w", w.shape, np.int8, QuantParams(s_w, [0] * len(s_w)), w),
        Tensor("b", (n_out,), np.int32, QuantParams([s_in * s_w[0]], [0]), bias),
        Tensor("y", (rows, n_out), np.int8, QuantParams([s_out], [zp_out])),
    ]
    op = Operator("FULLY_CONNECTED", (0, 1, 2), (3,), dict(fused_activation_function=act))
    return Model(tensors, [op], [0], [3], rounding=rounding)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_fully_connected_matches_spec(data):
    m_rows = data.draw(st.integers(1, 4))
    k_len = data.draw(st.sampled_from([1, 3, 16, 100, 1030, 2000]))
    n_out = data.draw(st.integers(1, 6))
    per_channel = data.draw(st.booleans())
    rounding = data.draw(st.sampled_from(["double", "single"]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.integers(-128, 128, size=(m_rows, k_len), dtype=np.int8)
    w = rng.integers(-127, 128, size=(n_out, k_len), dtype=np.int8)
    bias = rng.integers(-(2**20), 2**20, size=n_out, dtype=np.int32)
    s_in, s_out, s_w, zp_in, zp_out, act = _params(data.draw, n_out)
    if not per_channel:
        s_w = s_w[:1]
    model = fc_model(k_len, w, bias, s_in, s_out, s_w, zp_in, zp_out, act, rounding)
    want = spec.fully_connected_s8(x, w, bias, **_spec_kwargs(model))
    np.testing.assert_array_equal(model(x), want)
    p = model.prepared[0]
    acc = np.empty((m_rows, n_out), dtype=np.int32)
    fully_connected_acc_ref(x, w, bias, p.input_offset, 0, acc)
    out = np.empty_like(acc, dtype=np.int8)
    requantize_s8(acc, p.multiplier, p.shift, p.output_offset, p.act_min, p.act_max, p.rounding, out)
    np.testing.assert_array_equal(out, want)


def test_multiplier_formula_is_double_precision_in_tflm_order():
    # TFLM: double(s_in) * double(s_w) / double(s_out), then QuantizeMultiplier
    s_in, s_w, s_out = np.float32(0.0235294), np.float32(0.00392157), np.float32(0.0470588)
    x = np.zeros((1, 1, 1, 1), np.int8)
    w = np.ones((1, 1, 1, 1), np.int8)
    model = conv_model(x.shape, w, np.zeros(1, np.int32), float(s_in), float(s_out), [float(s_w)], 0, 0, "NONE")
    want = quantize_multiplier(float(s_in) * float(s_w) / float(s_out))
    assert (int(model.prepared[0].multiplier[0]), int(model.prepared[0].shift[0])) == want
