"""The fast CONV_2D paths and the vectorized requantization == the reference loops and primitives, exactly.

* :func:`requantize_row_s8` against the scalar ``multiply_by_quantized_multiplier`` (itself tested
  against the spec in test_arith.py) over the whole int32 range, both rounding modes;
* both CONV_2D paths (``conv2d_s8_gemm``, ``conv2d_s8_int``) against TFLM's reference
  accumulation loop (``conv2d_acc_ref``) + requantization, on random shapes, strides, dilations,
  paddings, batch sizes, odd K, channel counts that are not multiples of the vector width, blocks
  smaller than a sample, and int32 accumulators that wrap;
* the path choice (``TINYZO_CONV_PATH``, ``Conv2D.set_path``).
"""

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_conv import conv_case, conv_model

import tinyzo.spec.arith as s
from tinyzo.kernels.arith import multiply_by_quantized_multiplier, requantize_s8
from tinyzo.kernels.conv import conv2d_acc_ref
from tinyzo.kernels.conv_int import pack_weight_pairs
from tinyzo.kernels.requant import requant_params, requantize_row_s8
from tinyzo.ops import conv_paths

I32 = st.integers(min_value=s.INT32_MIN, max_value=s.INT32_MAX)
EDGE = st.sampled_from([s.INT32_MIN, s.INT32_MIN + 1, -(1 << 30), -1, 0, 1, 1 << 30, s.INT32_MAX - 1, s.INT32_MAX])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(I32, EDGE), min_size=1, max_size=40),
       st.one_of(st.integers(0, s.INT32_MAX), st.sampled_from([0, 1, 1 << 30, s.INT32_MAX])),
       st.integers(-31, 40), st.integers(-128, 127), st.sampled_from([0, 1]),
       st.sampled_from([(-128, 127), (-128, 0), (-5, 60), (3, 3)]))
@example([s.INT32_MIN, s.INT32_MAX, -1, 1], s.INT32_MAX, 31, -128, 0, (-128, 127))   # int32 wrap of acc << 31
@example([s.INT32_MIN, s.INT32_MAX, -(1 << 30)], s.INT32_MAX, -31, 127, 0, (-128, 127))
@example([s.INT32_MAX, s.INT32_MIN], s.INT32_MAX, 0, -3, 0, (-128, 127))  # r + offset would overflow int32
@example([s.INT32_MIN, s.INT32_MAX, -1, 0, 1], s.INT32_MAX, -31, 0, 0, (-128, 127))  # one-formula layout extremes
@example([s.INT32_MIN, -2, -1, 0, 1, s.INT32_MAX], 1 << 30, -1, 0, 0, (-128, 127))  # -2**30 <= acc * m < 0: q = 0
@example([-(1 << 20) - 1, -(1 << 20), 1 << 20, (1 << 20) + 1], 1 << 30, -20, 0, 1, (-128, 127))  # ties, single
def test_requantize_row_equals_scalar_primitive(acc, mult, shift, offset, rounding, clamp):
    if rounding == 1:
        shift = min(shift, 30)
    acc = np.array(acc, dtype=np.int32)
    n = acc.size
    # per element parameters: the drawn (multiplier, shift) on even elements, a second pair on odd ones
    mults = np.array([mult, (mult * 7 + 3) % 2**31] * n, dtype=np.int64)[:n].astype(np.int32)
    shifts = np.array([shift, -shift % 32 - 31 if rounding == 0 else -(shift % 31)] * n)[:n].astype(np.int32)
    lo, hi = clamp
    got = np.empty(n, dtype=np.int8)
    requantize_row_s8(acc, requant_params(mults, shifts, rounding), offset, lo, hi, rounding, got)
    want = [min(hi, max(lo, multiply_by_quantized_multiplier(int(a), int(m), int(sh), rounding) + offset))
            for a, m, sh in zip(acc, mults, shifts)]
    np.testing.assert_array_equal(got, want)


def test_requant_params_tiles_and_pads():
    m = np.array([1 << 30, 1 << 29, 123], dtype=np.int32)
    sh = np.array([-1, 0, 2], dtype=np.int32)
    base = requant_params(m, sh, 0)
    assert base.shape == (5, 3)  # a positive shift: the general layout
    np.testing.assert_array_equal(requant_params(m, sh, 0, 9), np.tile(base, (1, 3)))
    padded = requant_params(m, sh, 0, 5)
    np.testing.assert_array_equal(padded[:, :3], base)
    assert not padded[:, 3:].any()
    # no positive shift: the one-formula layout; padding channels get multiplier 0 and T = 31
    sh = np.array([-1, 0, -31], dtype=np.int32)
    for rounding in (0, 1):
        base = requant_params(m, sh, rounding)
        assert base.shape == (3, 3)
        np.testing.assert_array_equal(base[1], 31 - sh)
        np.testing.assert_array_equal(base[2], [1 << 30, 0, 1 << 30] if rounding == 0 else [0, 0, 0])
        padded = requant_params(m, sh, rounding, 5)
        np.testing.assert_array_equal(padded[:, :3], base)
        np.testing.assert_array_equal(padded[:, 3:], [[0, 0], [31, 31], [0, 0]])
        acc = np.array([0, 5, -7, 2**31 - 1, -2**31], np.int32)
        out = np.empty(5, np.int8)
        requantize_row_s8(acc, padded, 3, -128, 127, rounding, out)
        assert (out[3:] == 3).all()  # the padding channels output the offset
    with pytest.raises(ValueError):
        requant_params(np.array([-1]), np.array([0]), 0)


def test_pack_weight_pairs_holds_every_weight():
    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, size=(5, 7), dtype=np.int8)  # odd K, O not a multiple of the lanes
    wp = pack_weight_pairs(w, 8)
    assert wp.shape == (4, 8) and wp.dtype == np.int32
    lo = (wp << 16) >> 16
    hi = wp >> 16
    unpacked = np.stack([lo, hi], axis=1).reshape(8, 8)  # [k, o]
    np.testing.assert_array_equal(unpacked[:7, :5], w.T)
    assert not unpacked[7].any() and not unpacked[:, 5:].any()


def _reference(model, x, w, bias):
    p = model.prepared[0]
    acc = np.empty((x.shape[0], p.out_h, p.out_w, p.n_out), dtype=np.int32)
    conv2d_acc_ref(x, w, bias, p.stride_h, p.stride_w, p.dil_h, p.dil_w, p.pad_h, p.pad_w, p.input_offset, acc)
    out = np.empty(acc.shape, dtype=np.int8)
    requantize_s8(acc.reshape(-1, acc.shape[-1]), p.multiplier, p.shift, p.output_offset, p.act_min, p.act_max,
                  p.rounding, out.reshape(-1, acc.shape[-1]))
    return out


@pytest.mark.parametrize("path", conv_paths.PATHS)
@settings(max_examples=40, deadline=None)
@given(case=conv_case(), block=st.sampled_from([None, 1, 3]), big_bias=st.booleans())
def test_conv_path_equals_tflm_reference_loop(path, case, block, big_bias):
    if path not in conv_paths.available_paths():
        pytest.skip(f"this CPU cannot run the {path!r} path")
    x, w, bias, prm, kw = case
    if big_bias:  # accumulators near the int32 limits: every path must wrap as C's int32 sum does
        bias = np.where(np.arange(bias.size) % 2 == 0, s.INT32_MAX - 1000, s.INT32_MIN + 1000).astype(np.int32)
    model = conv_model(x.shape, w, bias, *prm, **kw)
    op = model.prepared[0]
    op.set_path(path)
    if block is not None:  # blocks smaller than a sample (the default block is one sample's pixels at most)
        cols = {"gemm": op.n_out, "int": conv_paths.padded_channels(op.n_out),
                "vnni": conv_paths.vnni_channels(op.n_out)}[path]
        conv_paths.BLOCK_ELEMS, saved = block * cols, conv_paths.BLOCK_ELEMS
        try:
            op.load_params()
        finally:
            conv_paths.BLOCK_ELEMS = saved
        want = min(block, op.out_h * op.out_w)
        if path == "vnni":  # whole micro-kernel tiles of MR pixels
            want = max(conv_paths.MR, want - want % conv_paths.MR)
        assert op.block == want
    np.testing.assert_array_equal(model(x), _reference(model, x, w, bias))


@pytest.mark.parametrize("path", conv_paths.PATHS)
def test_conv_path_long_dot_products(path):
    """K > 1024 (float64 GEMM) and K = 1030 odd-length pairs in the integer path."""
    if path not in conv_paths.available_paths():
        pytest.skip(f"this CPU cannot run the {path!r} path")
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, size=(2, 3, 3, 206), dtype=np.int8)
    w = rng.integers(-127, 128, size=(9, 3, 3, 206), dtype=np.int8)  # K = 1854
    bias = rng.integers(-5000, 5000, size=9, dtype=np.int32)
    model = conv_model(x.shape, w, bias, 0.02, 0.5, list(rng.uniform(0.001, 0.01, 9)), 7, -4, "NONE", padding="SAME")
    model.prepared[0].set_path(path)
    np.testing.assert_array_equal(model(x), _reference(model, x, w, bias))


def test_path_from_environment(monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, size=(1, 4, 4, 3), dtype=np.int8)
    w = rng.integers(-127, 128, size=(5, 3, 3, 3), dtype=np.int8)
    args = (x.shape, w, np.zeros(5, np.int32), 0.05, 0.2, [0.01] * 5, 0, 0, "NONE")
    for path in conv_paths.available_paths():
        monkeypatch.setenv(conv_paths.ENV, path)
        assert conv_model(*args).prepared[0].path == path
    monkeypatch.setenv(conv_paths.ENV, "auto")
    assert conv_model(*args).prepared[0].path == conv_paths.choose_path(27, 5)
    monkeypatch.setenv(conv_paths.ENV, "fast")
    with pytest.raises(conv_paths.ConvPathError, match="unknown CONV_2D path 'fast'"):
        conv_model(*args)
    monkeypatch.delenv(conv_paths.ENV)
    with pytest.raises(conv_paths.ConvPathError):
        conv_model(*args).prepared[0].set_path("blas")


def test_vnni_path_refused_where_the_cpu_lacks_it(monkeypatch):
    rng = np.random.default_rng(1)
    w = rng.integers(-127, 128, size=(5, 3, 3, 3), dtype=np.int8)
    args = ((1, 4, 4, 3), w, np.zeros(5, np.int32), 0.05, 0.2, [0.01] * 5, 0, 0, "NONE")
    monkeypatch.setattr(conv_paths, "available_paths", lambda: ("gemm", "int"))
    with pytest.raises(conv_paths.ConvPathError, match="AVX512-VNNI"):
        conv_model(*args).prepared[0].set_path("vnni")
    assert conv_model(*args).prepared[0].path in ("gemm", "int")  # the automatic choice never picks it


def test_cost_model_chooses_the_cheapest_available_path():
    without_vnni = ("gemm", "int")
    assert min(without_vnni, key=lambda p: conv_paths.estimated_ns_per_pixel(p, 1024, 256)) == "gemm"
    for k, n in ((8, 8), (27, 16), (96, 384), (1024, 256)):
        costs = {p: conv_paths.estimated_ns_per_pixel(p, k, n) for p in conv_paths.available_paths()}
        assert conv_paths.choose_path(k, n) == min(costs, key=costs.get)


@pytest.mark.parametrize("path", conv_paths.PATHS)
@pytest.mark.parametrize("out_scale", [0.5, 0.0004])
@pytest.mark.parametrize("n_out", [8, 16, 40])
def test_conv_path_both_requantization_layouts(path, out_scale, n_out):
    """Multipliers below 1 (the one-formula layout, requantized inside the vnni tiles) and above 1 (a
    positive shift: the general layout, requantized after the tiles), with channel counts that fill
    the 16-lane vectors exactly or not, and a pixel count that leaves a partial tile."""
    if path not in conv_paths.available_paths():
        pytest.skip(f"this CPU cannot run the {path!r} path")
    rng = np.random.default_rng(n_out)
    x = rng.integers(-128, 128, size=(3, 5, 7, 12), dtype=np.int8)  # 35 pixels per sample: not a multiple of MR
    w = rng.integers(-127, 128, size=(n_out, 1, 1, 12), dtype=np.int8)
    bias = rng.integers(-3000, 3000, size=n_out, dtype=np.int32)
    model = conv_model(x.shape, w, bias, 0.05, out_scale, list(rng.uniform(0.01, 0.04, n_out)), -3, 5, "RELU6")
    op = model.prepared[0]
    op.set_path(path)
    assert (op.rq.shape[0] == 3) == (out_scale == 0.5)
    np.testing.assert_array_equal(model(x), _reference(model, x, w, bias))


@pytest.mark.parametrize("kernel, stride, cin, n_out", [((3, 3), (2, 2), 3, 16), ((3, 3), (2, 2), 1, 8),
                                                        ((10, 4), (2, 2), 1, 64), ((7, 7), (1, 2), 5, 40),
                                                        ((1, 1), (2, 1), 8, 32), ((3, 1), (1, 1), 6, 24)])
def test_vnni_window_path_equals_reference(kernel, stride, cin, n_out):
    """The vnni path reading receptive fields in place from a padded input (no gather): filter rows
    padded to four bytes, strides, one to eight input channels, widths that leave partial tiles."""
    if "vnni" not in conv_paths.available_paths():
        pytest.skip("this CPU has no AVX512-VNNI")
    rng = np.random.default_rng(cin * 7 + n_out)
    x = rng.integers(-128, 128, size=(2, 13, 11, cin), dtype=np.int8)
    w = rng.integers(-127, 128, size=(n_out,) + kernel + (cin,), dtype=np.int8)
    bias = rng.integers(-20000, 20000, size=n_out, dtype=np.int32)
    model = conv_model(x.shape, w, bias, 0.05, 0.4, list(rng.uniform(0.002, 0.02, n_out)), 11, -6, "RELU",
                       stride=stride, padding="SAME")
    op = model.prepared[0]
    op.set_path("vnni")
    assert op.window is not None
    np.testing.assert_array_equal(model(x), _reference(model, x, w, bias))
