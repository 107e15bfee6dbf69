"""The fused ZO-step kernels equal the numpy expressions they replace, bit for bit."""

import numpy as np
import pytest

from tinyzo.graph import _saturating_add_int8
from tinyzo.kernels.elementwise import saturating_add_s8
from tinyzo.kernels.zo import accumulate_acc_grads, accumulate_node_grad, masked_scale


@pytest.mark.parametrize("dtype, lim", [(np.int8, 127), (np.int16, 300), (np.int32, 2**31 - 1), (np.int64, 2**40)])
def test_saturating_add_equals_wide_clip(dtype, lim):
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (4, 5, 6, 7), dtype=np.int8)
    d = rng.integers(-lim, lim, a.shape, dtype=dtype, endpoint=True)
    d.flat[:4] = [-lim, lim, 0, 1]
    want = np.clip(a.astype(object) + d.astype(object), -128, 127).astype(np.int8)  # exact big-int reference
    out = np.empty_like(a)
    saturating_add_s8(a, d, out)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(_saturating_add_int8(a, d), want)   # the graph's entry point
    np.testing.assert_array_equal(_saturating_add_int8(a, d[0]), np.clip(a.astype(object) + d[0].astype(object),
                                                                          -128, 127).astype(np.int8))  # broadcast path


@pytest.mark.parametrize("udtype", [np.int8, np.int16, np.int32])
def test_accumulate_node_grad_equals_float32_expression(udtype):
    rng = np.random.default_rng(1)
    n = 6
    g0 = rng.standard_normal((n, 3, 4, 5)).astype(np.float32)
    coef = rng.standard_normal(n).astype(np.float32)
    scale = np.float32(1 / 7)
    u = rng.integers(-3, 4, g0.shape).astype(udtype)
    want = g0 + (coef.reshape(-1, 1, 1, 1) * scale) * u.astype(np.float32)
    g = g0.copy()
    accumulate_node_grad(g, coef, scale, u)
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g.view(np.uint32), want.view(np.uint32))


def test_masked_scale_equals_numpy_expression_including_signed_zeros():
    from tinyzo.kernels.zo import masked_scale

    rng = np.random.default_rng(2)
    g = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    y = rng.integers(-128, 128, g.shape, dtype=np.int8)
    y.flat[:3] = [-128, 127, 0]
    scale = (rng.random(6) * 0.1 + 1e-3).astype(np.float32)
    lo, hi = -128, 100
    want = (g * ((y > lo) & (y < hi)) * scale).astype(np.float32)
    out = np.empty_like(g)
    masked_scale(g, y, lo, hi, scale, out)
    np.testing.assert_array_equal(out.view(np.uint32), want.view(np.uint32))   # bits: -0.0 stays -0.0


@pytest.mark.parametrize("shape", [(5, 3, 4, 8), (7, 1, 1, 10), (3, 40, 40, 3)])
def test_fused_acc_grads_equal_the_query_loop_then_the_mask(shape):
    """accumulate_acc_grads (the ZO step's one pass) gives the bits of the per-query accumulation into a
    zeroed gradient followed by masked_scale, for rows longer and shorter than its block."""
    rng = np.random.default_rng(2)
    m, n, ch = 3, shape[0], shape[-1]
    u = rng.integers(-2, 3, (m,) + shape).astype(np.int8)
    coef = (rng.standard_normal((m, n)) * np.exp(rng.uniform(-8, 2, (m, n)))).astype(np.float32)
    scale = np.float32(0.37)
    y = rng.integers(-128, 128, shape).astype(np.int8)
    y.flat[:6] = [-128, 127, -5, 6, -128, 0]
    cscale = rng.uniform(0.01, 3, ch).astype(np.float32)
    g = np.zeros(shape, np.float32)
    for q in range(m):
        accumulate_node_grad(g, coef[q], scale, u[q])
    want = np.empty(shape, np.float32)
    masked_scale(g, y, -128, 6, cscale, want)
    got = np.empty(shape, np.float32)
    accumulate_acc_grads(coef, scale, u, y, -128, 6, cscale, got)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
