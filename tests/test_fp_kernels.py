"""Float layer kernels (tinyzo.fp.kernels): forward against naive float64 loops, backward
against central finite differences of the forward.

Tolerances, and why:

* Finite differences run the same kernels on float64 inputs. For a map that is linear in the
  perturbed variable (conv, depthwise, fc, pools, gap, upsample, and the piecewise-linear relu and
  max pool away from their kinks) the central difference is exact in real arithmetic for any step,
  so the only error is float64 rounding of the loss, about ``eps64 * sum|terms| / h`` ~ 1e-11 with
  h = 1e-3: we allow 1e-8 absolute + 1e-8 relative. For the smooth non-linear ones (batch norm,
  softmax cross-entropy) the truncation error is ``h^2 / 6 * |f'''|`` ~ 1e-9 with h = 1e-5 and the
  rounding error ``eps64 * |L| / h`` ~ 1e-10: we allow 1e-6.
* float32 results are compared with float64 results of the same inputs (exactly representable) by
  the standard worst-case bound of a sum of n products in any order (Higham, Thm 3.1, valid for
  BLAS's blocking and FMAs too): ``|y32 - y64| <= gamma_{n+2} * sum|terms|`` with
  ``gamma_n ~ n * 2**-24``; ``sum|terms|`` is the same computation in float64 on absolute values.
"""

from __future__ import annotations

import time
import zlib

import numpy as np
import pytest

from tinyzo.errors import TinyzoError
from tinyzo.fp import kernels as F
from tinyzo.kernels import float_conv as FC

U32 = 2.0 ** -24  # float32 unit roundoff
FD_LIN = {"h": 1e-3, "rtol": 1e-8, "atol": 1e-8}
FD_SMOOTH = {"h": 1e-5, "rtol": 1e-6, "atol": 1e-6}


# ------------------------------------------------------------------ helpers


def seed_of(*params):
    """A fixed seed per parametrization (str hashes are salted per process; crc32 is not)."""
    return zlib.crc32(repr(params).encode())


def rand(rng, shape, dtype=np.float64, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def fd_grad(loss, a, h):
    """Central differences of the scalar ``loss()`` with respect to every element of ``a`` (mutated in place and restored)."""
    g = np.empty(a.shape, dtype=np.float64)
    flat, gf = a.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        lp = loss()
        flat[i] = old - h
        lm = loss()
        flat[i] = old
        gf[i] = (lp - lm) / (2 * h)
    return g


def check_fd(loss, pairs, h, rtol, atol):
    """pairs: [(name, array, analytic gradient)]; each array is perturbed coordinate by coordinate."""
    for name, a, g in pairs:
        num = fd_grad(loss, a, h)
        np.testing.assert_allclose(g, num, rtol=rtol, atol=atol, err_msg=f"d/d{name}")


def assert_f32_bound(y32, y64, abs64, n):
    """|y32 - y64| <= (n + 2) u * sum|terms| (see the module docstring)."""
    assert y32.dtype == np.float32 and y32.shape == y64.shape
    err = np.abs(y32.astype(np.float64) - y64)
    bound = (n + 2) * U32 * abs64 + 1e-30
    assert np.all(err <= bound), f"max excess {np.max(err - bound)}"


def naive_conv(x, w, b, stride, dil, pad, out_hw):
    n, h, wd, c = x.shape
    o, kh, kw, _ = w.shape
    y = np.zeros((n, *out_hw, o))
    for bi in range(n):
        for oy in range(out_hw[0]):
            for ox in range(out_hw[1]):
                for oc in range(o):
                    s = 0.0 if b is None else float(b[oc])
                    for fy in range(kh):
                        for fx in range(kw):
                            iy = oy * stride[0] - pad[0] + fy * dil[0]
                            ix = ox * stride[1] - pad[1] + fx * dil[1]
                            if 0 <= iy < h and 0 <= ix < wd:
                                for ic in range(c):
                                    s += float(w[oc, fy, fx, ic]) * float(x[bi, iy, ix, ic])
                    y[bi, oy, ox, oc] = s
    return y


def naive_depthwise(x, w, b, stride, dil, pad, out_hw, mult):
    n, h, wd, c = x.shape
    _, kh, kw, co = w.shape
    y = np.zeros((n, *out_hw, co))
    for bi in range(n):
        for oy in range(out_hw[0]):
            for ox in range(out_hw[1]):
                for ic in range(c):
                    for m in range(mult):
                        oc = ic * mult + m
                        s = 0.0 if b is None else float(b[oc])
                        for fy in range(kh):
                            for fx in range(kw):
                                iy = oy * stride[0] - pad[0] + fy * dil[0]
                                ix = ox * stride[1] - pad[1] + fx * dil[1]
                                if 0 <= iy < h and 0 <= ix < wd:
                                    s += float(w[0, fy, fx, oc]) * float(x[bi, iy, ix, ic])
                        y[bi, oy, ox, oc] = s
    return y


def naive_pool(x, kernel, stride, pad, out_hw, how):
    n, h, wd, c = x.shape
    y = np.zeros((n, *out_hw, c))
    for bi in range(n):
        for oy in range(out_hw[0]):
            for ox in range(out_hw[1]):
                ys = [oy * stride[0] - pad[0] + f for f in range(kernel[0]) if 0 <= oy * stride[0] - pad[0] + f < h]
                xs = [ox * stride[1] - pad[1] + f for f in range(kernel[1]) if 0 <= ox * stride[1] - pad[1] + f < wd]
                win = x[bi][np.ix_(ys, xs)].reshape(-1, c).astype(np.float64)
                y[bi, oy, ox] = win.mean(axis=0) if how == "avg" else win.max(axis=0)
    return y


# ------------------------------------------------------------------ conv / depthwise cases

STRIDES = [(1, 1), (2, 2), (3, 3), (2, 1), (1, 3)]
DILATIONS = [(1, 1), (2, 2), (1, 2)]
PADDINGS = ["SAME", "VALID"]
CONV_CASES = [(s, d, p) for s in STRIDES for d in DILATIONS for p in PADDINGS]


def geometry(h, w, kernel, stride, dil, padding):
    return F.conv_geometry(padding, (h, w), kernel, stride, dil)


@pytest.mark.parametrize("stride,dil,padding", CONV_CASES)
def test_conv2d_forward_and_backward(stride, dil, padding):
    rng = np.random.default_rng(seed_of(stride, dil, padding))
    n, h, wd, c, o, kernel = 2, 7, 6, 3, 4, (3, 2)
    out_hw, pad = geometry(h, wd, kernel, stride, dil, padding)
    x = rand(rng, (n, h, wd, c))
    w = rand(rng, (o, *kernel, c))
    b = rand(rng, (o,))
    # forward == naive loop (float64: only summation order differs)
    y = F.conv2d_forward(x, w, b, stride, dil, pad, out_hw)
    np.testing.assert_allclose(y, naive_conv(x, w, b, stride, dil, pad, out_hw), rtol=1e-12, atol=1e-12)
    # backward == finite differences of the forward, loss = sum(y * r)
    r = rand(rng, y.shape)
    dx, dw, db = F.conv2d_backward(r, x, w, stride, dil, pad)
    loss = lambda: float(np.sum(F.conv2d_forward(x, w, b, stride, dil, pad, out_hw) * r))
    check_fd(loss, [("x", x, dx), ("w", w, dw), ("b", b, db)], **FD_LIN)
    dx2, dw2, db2 = F.conv2d_backward(r, x, w, stride, dil, pad, need_dx=False)
    assert dx2 is None
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(db2, db)


@pytest.mark.parametrize("kernel,stride,padding", [((1, 1), (1, 1), "SAME"), ((1, 1), (2, 2), "VALID"),
                                                   ((1, 1), (2, 1), "SAME"), ((3, 3), (2, 2), "SAME")])
def test_conv2d_pointwise_and_chunked(kernel, stride, padding, monkeypatch):
    """The 1x1 fast path (no im2col), 1x1 strided (im2col), and several im2col chunks give the same results."""
    rng = np.random.default_rng(1)
    x, w, b = rand(rng, (5, 5, 6, 4)), rand(rng, (3, *kernel, 4)), rand(rng, (3,))
    out_hw, pad = geometry(5, 6, kernel, stride, (1, 1), padding)
    y = F.conv2d_forward(x, w, b, stride, 1, pad, out_hw)
    np.testing.assert_allclose(y, naive_conv(x, w, b, stride, (1, 1), pad, out_hw), rtol=1e-12, atol=1e-12)
    r = rand(rng, y.shape)
    grads = F.conv2d_backward(r, x, w, stride, 1, pad)
    monkeypatch.setattr(F, "_COLS_BUDGET", 1)  # one sample per chunk: 5 chunks
    np.testing.assert_allclose(F.conv2d_forward(x, w, b, stride, 1, pad, out_hw), y, rtol=1e-12, atol=1e-12)
    for g_chunked, g in zip(F.conv2d_backward(r, x, w, stride, 1, pad), grads):
        np.testing.assert_allclose(g_chunked, g, rtol=1e-12, atol=1e-12)
    if kernel == (1, 1):
        loss = lambda: float(np.sum(F.conv2d_forward(x, w, b, stride, 1, pad, out_hw) * r))
        check_fd(loss, [("x", x, grads[0]), ("w", w, grads[1]), ("b", b, grads[2])], **FD_LIN)


@pytest.mark.parametrize("mult", [1, 2, 3])
@pytest.mark.parametrize("stride,dil,padding", [(s, d, p) for s in STRIDES[:4] for d in DILATIONS for p in PADDINGS])
def test_depthwise_forward_and_backward(stride, dil, padding, mult):
    rng = np.random.default_rng(seed_of(stride, dil, padding, mult))
    n, h, wd, c, kernel = 2, 7, 5, 3, (3, 2)
    out_hw, pad = geometry(h, wd, kernel, stride, dil, padding)
    x = rand(rng, (n, h, wd, c))
    w = rand(rng, (1, *kernel, c * mult))
    b = rand(rng, (c * mult,))
    y = F.depthwise_forward(x, w, b, stride, dil, pad, out_hw, mult)
    np.testing.assert_allclose(y, naive_depthwise(x, w, b, stride, dil, pad, out_hw, mult), rtol=1e-12, atol=1e-12)
    r = rand(rng, y.shape)
    dx, dw, db = F.depthwise_backward(r, x, w, stride, dil, pad, mult)
    loss = lambda: float(np.sum(F.depthwise_forward(x, w, b, stride, dil, pad, out_hw, mult) * r))
    check_fd(loss, [("x", x, dx), ("w", w, dw), ("b", b, db)], **FD_LIN)
    dx2, dw2, db2 = F.depthwise_backward(r, x, w, stride, dil, pad, mult, need_dx=False)
    assert dx2 is None
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(db2, db)


def test_conv_and_depthwise_float32_within_rounding_bound():
    """float32 forward and backward vs the float64 run: within gamma_n * sum|terms| (module docstring)."""
    rng = np.random.default_rng(2)
    stride, dil, kernel = (2, 1), (1, 2), (3, 3)
    x = rand(rng, (3, 9, 8, 5), np.float32)
    w = rand(rng, (6, *kernel, 5), np.float32)
    b = rand(rng, (6,), np.float32)
    out_hw, pad = geometry(9, 8, kernel, stride, dil, "SAME")
    x64, w64, b64 = x.astype(np.float64), w.astype(np.float64), b.astype(np.float64)
    ax, aw, ab = np.abs(x64), np.abs(w64), np.abs(b64)
    k = 9 * 5
    y32 = F.conv2d_forward(x, w, b, stride, dil, pad, out_hw)
    assert_f32_bound(y32, F.conv2d_forward(x64, w64, b64, stride, dil, pad, out_hw),
                     F.conv2d_forward(ax, aw, ab, stride, dil, pad, out_hw), k)
    r = rand(rng, y32.shape, np.float32)
    r64 = r.astype(np.float64)
    g32 = F.conv2d_backward(r, x, w, stride, dil, pad)
    g64 = F.conv2d_backward(r64, x64, w64, stride, dil, pad)
    ga = F.conv2d_backward(np.abs(r64), ax, aw, stride, dil, pad)
    m = r.shape[0] * r.shape[1] * r.shape[2]
    for got, ref, a, nterms in zip(g32, g64, ga, (6 * 9, m, m)):
        assert_f32_bound(got, ref, a, nterms)
    # depthwise, multiplier 2
    wd = rand(rng, (1, *kernel, 10), np.float32)
    bd = rand(rng, (10,), np.float32)
    wd64 = wd.astype(np.float64)
    y32 = F.depthwise_forward(x, wd, bd, stride, dil, pad, out_hw, 2)
    assert_f32_bound(y32, F.depthwise_forward(x64, wd64, bd.astype(np.float64), stride, dil, pad, out_hw, 2),
                     F.depthwise_forward(ax, np.abs(wd64), np.abs(bd.astype(np.float64)), stride, dil, pad, out_hw, 2), 9)
    r = rand(rng, y32.shape, np.float32)
    g32 = F.depthwise_backward(r, x, wd, stride, dil, pad, 2)
    g64 = F.depthwise_backward(r.astype(np.float64), x64, wd64, stride, dil, pad, 2)
    ga = F.depthwise_backward(np.abs(r.astype(np.float64)), ax, np.abs(wd64), stride, dil, pad, 2)
    for got, ref, a, nterms in zip(g32, g64, ga, (2 * 9, m, m)):
        assert_f32_bound(got, ref, a, nterms)


def test_same_padding_puts_the_odd_pixel_bottom_right():
    """SAME with an even total padding split: the extra zero row/column is at the bottom/right."""
    out_hw, pad = F.conv_geometry("SAME", (6, 6), (2, 2), (1, 1))
    assert out_hw == (6, 6) and pad == (0, 0)  # total padding 1: all of it after the image
    out_hw, pad = F.conv_geometry("SAME", (6, 5), (4, 4), (1, 2))
    assert out_hw == (6, 3) and pad == (1, 1)  # totals 3 and 3: one before, two after
    x = np.ones((1, 6, 6, 1))
    w = np.ones((1, 2, 2, 1))
    y = F.conv2d_forward(x, w, None, 1, 1, (0, 0), (6, 6))[0, :, :, 0]
    assert y[0, 0] == 4 and y[5, 5] == 1 and y[5, 0] == 2 and y[0, 5] == 2


# ------------------------------------------------------------------ fully connected


def test_fc_forward_and_backward():
    rng = np.random.default_rng(3)
    x, w, b = rand(rng, (5, 7)), rand(rng, (4, 7)), rand(rng, (4,))
    y = F.fc_forward(x, w, b)
    ref = np.array([[sum(float(x[i, k]) * float(w[o, k]) for k in range(7)) + b[o] for o in range(4)] for i in range(5)])
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    r = rand(rng, y.shape)
    dx, dw, db = F.fc_backward(r, x, w)
    check_fd(lambda: float(np.sum(F.fc_forward(x, w, b) * r)), [("x", x, dx), ("w", w, dw), ("b", b, db)], **FD_LIN)
    assert F.fc_backward(r, x, w, need_dx=False)[0] is None
    np.testing.assert_allclose(F.fc_forward(x, w, None), ref - b, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ pooling, gap, upsample

POOL_CASES = [(k, s, p) for k in [(2, 2), (3, 3), (3, 2)] for s in [(1, 1), (2, 2), (3, 3), (1, 2)] for p in PADDINGS]


@pytest.mark.parametrize("kernel,stride,padding", POOL_CASES)
def test_avgpool(kernel, stride, padding):
    rng = np.random.default_rng(seed_of(kernel, stride, padding))
    x = rand(rng, (2, 7, 5, 3))
    out_hw, pad = F.conv_geometry(padding, (7, 5), kernel, stride)
    y = F.avgpool_forward(x, kernel, stride, pad, out_hw)
    np.testing.assert_allclose(y, naive_pool(x, kernel, stride, pad, out_hw, "avg"), rtol=1e-12, atol=1e-12)
    r = rand(rng, y.shape)
    dx = F.avgpool_backward(r, x.shape, kernel, stride, pad)
    check_fd(lambda: float(np.sum(F.avgpool_forward(x, kernel, stride, pad, out_hw) * r)), [("x", x, dx)], **FD_LIN)


@pytest.mark.parametrize("kernel,stride,padding", POOL_CASES)
def test_maxpool(kernel, stride, padding):
    rng = np.random.default_rng(seed_of(kernel, stride, padding))
    # distinct values at least 1e-3 apart: no tie within the finite-difference step
    x = (rng.permutation(2 * 7 * 5 * 3).reshape(2, 7, 5, 3) * 1e-2 - 1.0)
    out_hw, pad = F.conv_geometry(padding, (7, 5), kernel, stride)
    y, arg = F.maxpool_forward(x, kernel, stride, pad, out_hw)
    np.testing.assert_array_equal(y, naive_pool(x, kernel, stride, pad, out_hw, "max"))
    assert arg.dtype == np.int64
    np.testing.assert_array_equal(x.reshape(-1)[arg], y)
    r = rand(rng, y.shape)
    dx = F.maxpool_backward(r, arg, x.shape)
    check_fd(lambda: float(np.sum(F.maxpool_forward(x, kernel, stride, pad, out_hw)[0] * r)), [("x", x, dx)],
             h=1e-4, rtol=1e-8, atol=1e-8)


def test_maxpool_ties_take_the_first_position():
    x = np.zeros((1, 4, 4, 2), np.float32)
    y, arg = F.maxpool_forward(x, (2, 2), (2, 2), (0, 0), (2, 2))
    first = np.array([[0, 2], [8, 10]]) * 2  # flat index of pixel (2*oy, 2*ox), channel 0
    np.testing.assert_array_equal(arg[0, :, :, 0], first)
    np.testing.assert_array_equal(arg[0, :, :, 1], first + 1)
    dx = F.maxpool_backward(np.ones_like(y), arg, x.shape)
    assert dx.sum() == 8 and dx[0, 0, 0, 0] == 1 and dx[0, 1, 1, 0] == 0


def test_gap_and_upsample():
    rng = np.random.default_rng(4)
    x = rand(rng, (2, 5, 3, 4))
    y = F.gap_forward(x)
    np.testing.assert_allclose(y, x.mean(axis=(1, 2)), rtol=1e-12, atol=1e-12)
    r = rand(rng, y.shape)
    check_fd(lambda: float(np.sum(F.gap_forward(x) * r)), [("x", x, F.gap_backward(r, x.shape))], **FD_LIN)
    for f in (1, 2, 3):
        u = F.upsample_forward(x, f)
        assert u.shape == (2, 5 * f, 3 * f, 4)
        for i in range(5 * f):
            for j in range(3 * f):
                np.testing.assert_array_equal(u[:, i, j], x[:, i // f, j // f])
        r = rand(rng, u.shape)
        check_fd(lambda f=f, r=r: float(np.sum(F.upsample_forward(x, f) * r)), [("x", x, F.upsample_backward(r, f))], **FD_LIN)


# ------------------------------------------------------------------ activations, clamps


def test_activation_forward_values():
    x = np.array([-2.0, -0.0, 0.5, 6.0, 7.5], np.float32)
    np.testing.assert_array_equal(F.activation_forward(x, "none"), x)
    np.testing.assert_array_equal(F.activation_forward(x, "relu"), [0, 0, 0.5, 6, 7.5])
    np.testing.assert_array_equal(F.activation_forward(x, "relu6"), [0, 0, 0.5, 6, 6])
    y = F.activation_forward(x, "relu6")
    dy = np.arange(1, 6, dtype=np.float32)
    # straight-through: pass only strictly inside the clamp (y == 0 and y == 6 stop the gradient)
    np.testing.assert_array_equal(F.activation_backward(dy, y, "relu6"), [0, 0, 3, 0, 0])
    np.testing.assert_array_equal(F.activation_backward(dy, F.activation_forward(x, "relu"), "relu"), [0, 0, 3, 4, 5])
    np.testing.assert_array_equal(F.activation_backward(dy, y, "none"), dy)
    pre = np.array([-129.0, -128.0, 0.0, 127.0, 200.0], np.float32)
    np.testing.assert_array_equal(F.clamp_mask_backward(dy, pre, -128, 127), [0, 0, 3, 0, 0])
    np.testing.assert_array_equal(F.clamp_mask_backward(dy, pre, -np.inf, 127), [1, 2, 3, 0, 0])
    per_channel = F.clamp_mask_backward(np.ones((2, 2), np.float32), np.array([[1.0, 1.0], [5.0, 5.0]]), 0, np.array([2.0, 6.0]))
    np.testing.assert_array_equal(per_channel, [[1, 1], [0, 1]])


@pytest.mark.parametrize("kind", ["none", "relu", "relu6"])
def test_activation_backward_finite_differences(kind):
    rng = np.random.default_rng(5)
    x = rng.uniform(-3, 9, size=(3, 4, 5, 2))
    x[np.abs(x) < 1e-2] += 0.1  # away from the kinks at 0 and 6
    x[np.abs(x - 6) < 1e-2] += 0.1
    r = rand(rng, x.shape)
    y = F.activation_forward(x, kind)
    dx = F.activation_backward(r, y, kind)
    check_fd(lambda: float(np.sum(F.activation_forward(x, kind) * r)), [("x", x, dx)], h=1e-4, rtol=1e-8, atol=1e-8)
    clamp = lambda: float(np.sum(np.clip(x, -1.0, 4.0) * r))
    check_fd(clamp, [("x", x, F.clamp_mask_backward(r, x, -1.0, 4.0))], h=1e-4, rtol=1e-8, atol=1e-8)


# ------------------------------------------------------------------ batch norm


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(3, 4, 5, 3), (6, 4)])
def test_batchnorm(training, shape):
    rng = np.random.default_rng(6)
    c = shape[-1]
    x = rand(rng, shape) * 2 + 0.5
    gamma, beta = rand(rng, (c,)), rand(rng, (c,))
    mean, var = rand(rng, (c,)), rng.uniform(0.5, 2, c)
    eps = 1e-3
    y, cache = F.batchnorm_forward(x, gamma, beta, mean, var, eps, training)
    axes = tuple(range(len(shape) - 1))
    mu = x.mean(axis=axes) if training else mean
    s2 = x.var(axis=axes) if training else var
    np.testing.assert_allclose(y, gamma * (x - mu) / np.sqrt(s2 + eps) + beta, rtol=1e-12, atol=1e-12)
    if training:
        np.testing.assert_allclose(cache["mean"], mu, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(cache["var"], s2, rtol=1e-12, atol=1e-12)
        assert cache["count"] == int(np.prod(shape[:-1]))
    r = rand(rng, shape)
    dx, dgamma, dbeta = F.batchnorm_backward(r, cache)
    loss = lambda: float(np.sum(F.batchnorm_forward(x, gamma, beta, mean, var, eps, training)[0] * r))
    check_fd(loss, [("x", x, dx), ("gamma", gamma, dgamma), ("beta", beta, dbeta)], **FD_SMOOTH)


def test_batchnorm_float32_matches_float64():
    rng = np.random.default_rng(7)
    x = (rand(rng, (8, 6, 6, 4)) * 3 + 10).astype(np.float32)  # a large mean stresses the variance
    g, bt = rand(rng, (4,), np.float32), rand(rng, (4,), np.float32)
    y32, c32 = F.batchnorm_forward(x, g, bt, None, None, 1e-5, True)
    y64, c64 = F.batchnorm_forward(x.astype(np.float64), g.astype(np.float64), bt.astype(np.float64), None, None, 1e-5, True)
    assert y32.dtype == np.float32
    # |y| ~ 3 after normalization; a few float32 ulps of x - mean and of inv_std
    np.testing.assert_allclose(y32, y64, rtol=0, atol=1e-5)
    r = rand(rng, x.shape, np.float32)
    for a, b in zip(F.batchnorm_backward(r, c32), F.batchnorm_backward(r.astype(np.float64), c64)):
        # the sums run over 288 values of magnitude ~1: float32 sums in float64 accumulators, then ~u relative
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ softmax cross-entropy


def test_softmax_cross_entropy():
    rng = np.random.default_rng(8)
    logits = rand(rng, (5, 4)) * 3
    labels = np.array([0, 3, 1, 1, 2])
    mean, d, per = F.softmax_cross_entropy(logits, labels)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ref = -np.log(p[np.arange(5), labels])
    np.testing.assert_allclose(per, ref, rtol=1e-12)
    assert abs(mean - ref.mean()) < 1e-12 and isinstance(mean, float)
    check_fd(lambda: F.softmax_cross_entropy(logits, labels)[0], [("logits", logits, d)], **FD_SMOOTH)
    # stable for huge logits; gradient rows sum to 0
    big = np.array([[1000.0, 0.0, -1000.0], [-1e4, 1e4, 0.0]], np.float32)
    m, d, per = F.softmax_cross_entropy(big, np.array([0, 0]))
    assert np.isfinite(m) and per[0] == 0 and per[1] == np.float32(2e4)
    np.testing.assert_allclose(d.sum(axis=1), 0, atol=1e-7)
    np.testing.assert_allclose(d[1], [-0.5, 0.5, 0], atol=1e-7)


# ------------------------------------------------------------------ interpreted cores == jitted cores


def test_jitted_cores_equal_their_python_source():
    """Each core's Python source (what NUMBA_DISABLE_JIT=1 runs, what a C port reads) gives the jitted result."""

    def py(fn):  # under NUMBA_DISABLE_JIT=1 the cores are plain functions
        return getattr(fn, "py_func", fn)

    rng = np.random.default_rng(9)
    x = rand(rng, (2, 5, 4, 3))
    geo = (2, 1, 1, 2, 1, 1)  # stride h, w, dilation h, w, pad top, left
    oh, ow = 3, 4
    a, b = np.zeros((2 * oh * ow, 3, 2, 3)), np.zeros((2 * oh * ow, 3, 2, 3))
    FC.patch_copy(x, a, *geo, oh, ow, False)
    py(FC.patch_copy)(x, b, *geo, oh, ow, False)
    np.testing.assert_array_equal(a, b)
    dcols = rand(rng, (2 * oh * ow, 3, 2, 3))
    a, b = np.zeros_like(x), np.zeros_like(x)
    FC.patch_copy(a, dcols, *geo, oh, ow, True)
    py(FC.patch_copy)(b, dcols, *geo, oh, ow, True)
    np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-14)
    w = rand(rng, (3, 2, 6))
    dy = rand(rng, (2, oh, ow, 6))
    a, b = np.zeros((2, oh, ow, 6)), np.zeros((2, oh, ow, 6))
    FC.depthwise_taps(FC.FORWARD, x, w, a, *geo, 2)
    py(FC._taps)(FC.FORWARD, x, w, b, *geo, 2)
    np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-14)
    a, b = np.zeros(w.shape), np.zeros(w.shape)
    FC.depthwise_taps(FC.WEIGHT_GRAD, x, a, dy, *geo, 2)
    py(FC._taps)(FC.WEIGHT_GRAD, x, b, dy, *geo, 2)
    np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-14)
    a, b = np.zeros(x.shape), np.zeros(x.shape)
    FC.depthwise_taps(FC.INPUT_GRAD, a, w, dy, *geo, 2)
    py(FC._taps)(FC.INPUT_GRAD, b, w, dy, *geo, 2)
    np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-14)
    pool = (3, 2, 2, 1, 1, 0)  # kernel h, w, stride h, w, pad top, left
    a, b = np.zeros((2, 3, 4, 3)), np.zeros((2, 3, 4, 3))
    F._pool(F._AVG, x, a, F._NO_ARGMAX, *pool)
    py(F._pool)(F._AVG, x, b, F._NO_ARGMAX, *pool)
    np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-14)
    a2, b2 = np.zeros_like(x), np.zeros_like(x)
    F._pool(F._AVG_ADJOINT, a2, a, F._NO_ARGMAX, *pool)
    py(F._pool)(F._AVG_ADJOINT, b2, a, F._NO_ARGMAX, *pool)
    np.testing.assert_allclose(a2, b2, rtol=1e-14, atol=1e-14)
    ia, ib = np.zeros(a.shape, np.int64), np.zeros(a.shape, np.int64)
    F._pool(F._MAX, x, a, ia, *pool)
    py(F._pool)(F._MAX, x, b, ib, *pool)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ia, ib)
    a2, b2 = np.zeros(x.size), np.zeros(x.size)
    F._scatter_add(a.reshape(-1), ia.reshape(-1), a2)
    py(F._scatter_add)(a.reshape(-1), ia.reshape(-1), b2)
    np.testing.assert_array_equal(a2, b2)


# ------------------------------------------------------------------ bad input


def test_bad_input_raises_clear_errors():
    x = np.zeros((1, 5, 5, 2), np.float32)
    w = np.zeros((3, 3, 3, 2), np.float32)
    cases = [
        lambda: F.conv2d_forward(x.astype(np.int8), w, None, 1, 1, (1, 1), (5, 5)),  # integer data
        lambda: F.conv2d_forward(x[0], w, None, 1, 1, (1, 1), (5, 5)),  # not NHWC
        lambda: F.conv2d_forward(x, w[..., :1], None, 1, 1, (1, 1), (5, 5)),  # channel mismatch
        lambda: F.conv2d_forward(x, w, np.zeros(4, np.float32), 1, 1, (1, 1), (5, 5)),  # bias length
        lambda: F.conv2d_forward(x, w, None, 0, 1, (1, 1), (5, 5)),  # stride 0
        lambda: F.conv2d_forward(x, w, None, 1, 1, (1, 1), (9, 5)),  # out_hw too large
        lambda: F.conv2d_forward(x, w, None, 1, 1, (3, 0), (5, 5)),  # padding larger than the kernel
        lambda: F.conv2d_backward(np.zeros((1, 5, 5, 4), np.float32), x, w, 1, 1, (1, 1)),  # dy channels
        lambda: F.depthwise_forward(x, np.zeros((1, 3, 3, 3), np.float32), None, 1, 1, (1, 1), (5, 5), 1),
        lambda: F.depthwise_forward(x, np.zeros((1, 3, 3, 4), np.float32), None, 1, 1, (1, 1), (5, 5), 0),
        lambda: F.fc_forward(np.zeros((2, 7), np.float32), np.zeros((3, 6), np.float32), None),
        lambda: F.fc_backward(np.zeros((2, 4), np.float32), np.zeros((2, 6), np.float32), np.zeros((3, 6), np.float32)),
        lambda: F.avgpool_forward(x, (2, 2), (2, 2), (0, 0), (4, 4)),  # a window entirely in the padding
        lambda: F.maxpool_backward(np.zeros((1, 2, 2, 2), np.float32), np.full((1, 2, 2, 2), 99, np.int64), x.shape),
        lambda: F.maxpool_backward(np.zeros((1, 2, 2, 2), np.float32), np.zeros((1, 2, 2, 2), np.int32), x.shape),
        lambda: F.gap_backward(np.zeros((1, 3), np.float32), x.shape),
        lambda: F.upsample_backward(np.zeros((1, 5, 4, 2), np.float32), 2),
        lambda: F.upsample_forward(x, 0),
        lambda: F.activation_forward(x, "sigmoid"),
        lambda: F.activation_backward(x, x[:, :4], "relu"),
        lambda: F.clamp_mask_backward(x, x, 1.0, 0.0),
        lambda: F.batchnorm_forward(x, np.ones(3, np.float32), np.zeros(2, np.float32), None, None, 1e-3, True),
        lambda: F.batchnorm_forward(x, np.ones(2, np.float32), np.zeros(2, np.float32), None, None, 1e-3, False),
        lambda: F.batchnorm_backward(x, {}),
        lambda: F.softmax_cross_entropy(np.zeros((2, 3), np.float32), np.array([0, 3])),
        lambda: F.softmax_cross_entropy(np.zeros((2, 3), np.float32), np.array([0.0, 1.0])),
        lambda: F.softmax_cross_entropy(np.zeros((2, 3), np.float32), np.array([0])),
        lambda: F.conv_geometry("FULL", (5, 5), (3, 3)),
        lambda: F.conv_geometry("VALID", (2, 5), (3, 3)),
    ]
    for i, case in enumerate(cases):
        with pytest.raises(F.FloatNNError) as e:
            case()
        assert isinstance(e.value, TinyzoError) and isinstance(e.value, ValueError), i
        assert len(str(e.value)) > 20, i


def test_output_dtype_follows_x():
    x = np.ones((1, 3, 3, 2), np.float32)
    w = np.ones((2, 1, 1, 2), np.float64)  # cast to x's dtype
    assert F.conv2d_forward(x, w, None, 1, 1, (0, 0), (3, 3)).dtype == np.float32
    assert F.conv2d_forward(x.astype(np.float64), w, None, 1, 1, (0, 0), (3, 3)).dtype == np.float64


# ------------------------------------------------------------------ speed sanity (no timed assertion)


def test_conv_speed_sanity():
    """(32,32,32,16) -> 32 channels 3x3 SAME: im2col + one BLAS product, milliseconds (printed, not asserted)."""
    rng = np.random.default_rng(10)
    x = rand(rng, (32, 32, 32, 16), np.float32)
    w = rand(rng, (32, 3, 3, 16), np.float32, scale=0.1)
    out_hw, pad = F.conv_geometry("SAME", (32, 32), (3, 3))
    F.conv2d_forward(x[:1], w, None, 1, 1, pad, out_hw)  # compile
    t = time.perf_counter()
    y = F.conv2d_forward(x, w, None, 1, 1, pad, out_hw)
    print(f"conv2d_forward (32,32,32,16)->32 3x3: {1e3 * (time.perf_counter() - t):.1f} ms")
    # spot-check a few outputs against direct float64 sums
    xp = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    for b, oy, ox, o in [(0, 0, 0, 0), (31, 31, 31, 31), (7, 15, 3, 9)]:
        ref = np.sum(xp[b, oy:oy + 3, ox:ox + 3, :] * w[o])
        assert abs(y[b, oy, ox, o] - ref) <= 146 * U32 * np.sum(np.abs(xp[b, oy:oy + 3, ox:ox + 3, :] * w[o]))
