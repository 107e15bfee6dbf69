"""Zeroth-order estimators (issue 4, evidence 9a) and the MCU loss on int8 logits.

Statistical tests use fixed seeds (derive_seed) and bounds derived from the estimator's variance:
on a quadratic every randomized estimator here is exactly unbiased (odd moments of a symmetric
direction vanish), so the mean of K independent estimates is within 5 standard errors of the true
gradient per coordinate, SE_k = sd_k / sqrt(K) with sd_k the empirical standard deviation over the
K estimates (K >= 1500, so sd_k is itself accurate to a few percent).
"""

import math
import os
import subprocess
import sys
from itertools import product

import numpy as np
import pytest

from tinyzo.training.loss import (
    LN2_Q30,
    LossInputError,
    accuracy_int8,
    cross_entropy_int8,
    cross_entropy_int8_lut,
    float_error_bound,
    log2_q16,
    lut_error_bound,
    mean_float32,
    prepare_cross_entropy_lut,
    q16_to_float,
)
from tinyzo.training.prng import derive_seed, gaussian_int, perturbation, uniform_int
from tinyzo.zo.estimators import (
    DIRECTIONS,
    EstimatorError,
    dim_scale,
    estimate,
    estimate_per_sample,
    second_moment,
)

N_DIM = 8


def quadratic(n=N_DIM, seed=0, grad=None):
    """f(x) = 1/2 x^T A x + b^T x at integer x0, A well conditioned (eigenvalues in about [1.5, 2.5])."""
    rng = np.random.default_rng(seed)
    B = rng.normal(size=(n, n)) * 0.15
    A = 2.0 * np.eye(n) + (B + B.T) / 2
    x0 = rng.integers(-5, 6, n).astype(np.float64)
    if grad is None:
        b = rng.normal(size=n) * 3.0
    else:
        b = np.asarray(grad, dtype=np.float64) - A @ x0
    g = A @ x0 + b

    def f(delta):
        x = x0 + np.asarray(delta, dtype=np.float64)
        return float(0.5 * x @ A @ x + b @ x)

    return f, g, A, x0


def run_steps(f, n, steps, **kw):
    """K estimates with independent seeds derive_seed(11, step, q, 0): float64[K, n]."""
    return np.array([estimate(f, n, seeds=lambda q, k=k: derive_seed(11, k, q, 0), **kw)[0] for k in range(steps)],
                    dtype=np.float64)


def assert_unbiased(G, truth, k_sigma=5.0):
    """Per-coordinate 5-SE check of the mean, and the cosine bound it implies.

    With e = mean - truth, E||e||^2 = T = sum_k sd_k^2 / K; allowing ||e|| <= 5 sqrt(T), the angle
    between mean and truth is at most asin(5 sqrt(T) / ||truth||), so cos >= sqrt(1 - 25 T / ||truth||^2).
    """
    K = G.shape[0]
    mean = G.mean(axis=0)
    se = G.std(axis=0, ddof=1) / math.sqrt(K)
    assert np.all(np.abs(mean - truth) <= k_sigma * se), (mean, truth, se)
    T = float((se ** 2).sum())
    ratio = k_sigma ** 2 * T / float(truth @ truth)
    assert ratio < 0.5, "too few steps for a meaningful cosine bound"
    threshold = math.sqrt(1.0 - ratio)
    cos = float(mean @ truth / (np.linalg.norm(mean) * np.linalg.norm(truth)))
    assert cos >= threshold, (cos, threshold)
    return cos, threshold


# ----------------------------------------------------------------------------------------------
# 9a: unbiasedness on a quadratic
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method,direction", list(product(["rge", "spsa"], DIRECTIONS)))
def test_mean_estimate_matches_true_gradient(method, direction):
    f, grad, _, _ = quadratic()
    sigma = 1.5 if direction == "sphere" else 2
    steps = 4000 if direction == "sphere" else 1500
    G = run_steps(f, N_DIM, steps, method=method, sigma=sigma, queries=2, direction=direction)
    assert_unbiased(G, grad)


def test_integer_directions_with_sigma_one():
    # sigma = 1 LSB, the MCU default: Rademacher, uniform on {-1, 0, 1} (mu2 = 2/3), integer Gaussian
    f, grad, _, _ = quadratic(seed=3)
    for direction in ("rademacher", "uniform", "gaussian"):
        G = run_steps(f, N_DIM, 1500, method="rge", sigma=1, queries=1, direction=direction)
        assert_unbiased(G, grad)


def test_second_moments():
    assert second_moment("rademacher", 3, 10) == 9.0
    assert second_moment("uniform", 1, 10) == pytest.approx(2 / 3)
    assert second_moment("uniform", 4, 10) == pytest.approx(4 * 5 / 3)
    assert second_moment("sphere", 2.0, 16) == pytest.approx(4.0 / 16)
    for sigma in (1, 2, 5, 64):
        mu2 = second_moment("gaussian", sigma, 10)
        assert abs(mu2 / sigma**2 - 1) < 0.003                    # the prng's documented accuracy
        # exact over a period -> matches a long sample within 5 SE (SE from the sample's 4th moment)
        v = gaussian_int(derive_seed(5, sigma, 0, 0), 200_000, sigma).astype(np.float64)
        se = np.std(v ** 2) / math.sqrt(v.size)
        assert abs(np.mean(v ** 2) - mu2) <= 5 * se
    v = uniform_int(derive_seed(6, 0, 0, 0), 200_000, -3, 3).astype(np.float64)
    assert abs(np.mean(v ** 2) - second_moment("uniform", 3, 1)) <= 5 * np.std(v ** 2) / math.sqrt(v.size)


def test_coord_is_exact_finite_difference_on_a_quadratic():
    f, grad, A, _ = quadratic()
    for sigma in (1, 3):
        g, info = estimate(f, N_DIM, method="coord", sigma=sigma, coord_scheme="central")
        assert info["forward_passes"] == 2 * N_DIM
        fmax = max(abs(f(np.eye(N_DIM)[k] * s * sigma)) for k in range(N_DIM) for s in (-1, 1))
        # each loss is rounded to float32 (2**-24 relative), then a float32 subtract and two multiplies
        bound = 2.0**-24 * 2 * fmax / (2 * sigma) + 2.0**-22 * np.abs(grad)
        assert np.all(np.abs(g - grad) <= bound)
        g1, info1 = estimate(f, N_DIM, method="coord", sigma=sigma)
        assert info1["forward_passes"] == N_DIM + 1
        # one-sided on a quadratic: grad_k + A_kk sigma / 2
        assert np.all(np.abs(g1 - (grad + np.diag(A) * sigma / 2)) <= bound + 2.0**-22 * np.abs(np.diag(A)) * sigma)


# ----------------------------------------------------------------------------------------------
# forward-pass accounting and the deltas the objective sees
# ----------------------------------------------------------------------------------------------


class Recorder:
    def __init__(self, f):
        self.f = f
        self.deltas = []

    def __call__(self, delta):
        self.deltas.append(np.array(delta))
        return self.f(delta)


@pytest.mark.parametrize("m", [1, 3])
def test_forward_pass_counts_and_deltas(m):
    f, _, _, _ = quadratic()
    seeds = lambda q: derive_seed(1, 2, q, 3)
    r = Recorder(f)
    _, info = estimate(r, N_DIM, method="rge", sigma=1, queries=m, seeds=seeds)
    assert info["forward_passes"] == len(r.deltas) == 1 + m
    assert not r.deltas[0].any()                                   # the base loss, computed once
    for q in range(m):
        np.testing.assert_array_equal(r.deltas[1 + q], perturbation("rademacher", seeds(q), (N_DIM,), 1))
    r = Recorder(f)
    _, info = estimate(r, N_DIM, method="rge", sigma=1, queries=m, seeds=seeds, base_loss=f(np.zeros(N_DIM)))
    assert info["forward_passes"] == len(r.deltas) == m              # base loss reused
    for method in ("spsa", "sign-spsa"):
        r = Recorder(f)
        _, info = estimate(r, N_DIM, method=method, sigma=2, queries=m, seeds=seeds)
        assert info["forward_passes"] == len(r.deltas) == 2 * m
        for q in range(m):
            np.testing.assert_array_equal(r.deltas[2 * q], 2 * perturbation("rademacher", seeds(q), (N_DIM,), 1))
            np.testing.assert_array_equal(r.deltas[2 * q + 1], -r.deltas[2 * q])
    r = Recorder(f)
    _, info = estimate(r, N_DIM, method="coord", sigma=1, base_loss=1.0)
    assert info["forward_passes"] == N_DIM


def test_coeffs_reconstruct_the_estimate_from_seeds():
    # firmware path: keep only (seed_q, c_q); regenerate delta_q; g = sum_q c_q * delta_q in float32
    f, _, _, _ = quadratic()
    for method, direction in [("rge", "rademacher"), ("spsa", "gaussian"), ("sign-spsa", "uniform"), ("rge", "sphere")]:
        sigma = 0.5 if direction == "sphere" else 2
        g, info = estimate(f, N_DIM, method=method, sigma=sigma, queries=4, direction=direction,
                           seeds=lambda q: derive_seed(9, 0, q, 0))
        acc = np.zeros(N_DIM, np.float32)
        for c, s in zip(info["coeffs"], info["seeds"]):
            d = perturbation(direction, s, (N_DIM,), 1.0 if direction == "sphere" else sigma)
            if direction == "sphere":
                d = d * np.float32(sigma)
            acc += c * d.astype(np.float32)
        np.testing.assert_array_equal(acc, g)
        g2, _ = estimate(f, N_DIM, method=method, sigma=sigma, queries=4, direction=direction,
                         seeds=[derive_seed(9, 0, q, 0) for q in range(4)])
        np.testing.assert_array_equal(g, g2)                          # deterministic, seeds as a list too
        assert g.dtype == np.float32


# ----------------------------------------------------------------------------------------------
# Sign-m-SPSA
# ----------------------------------------------------------------------------------------------


def test_sign_spsa_agrees_in_sign_with_the_gradient():
    # a well-conditioned gradient (all |grad_k| in [1, 3]); on a quadratic L(x+u) - L(x-u) = 2 grad.u, so
    # E[g_k] = mean over all 2**8 Rademacher u of sign(grad.u) u_k (m = 1), computed exactly.
    rng = np.random.default_rng(4)
    target = rng.uniform(1, 3, N_DIM) * rng.choice([-1, 1], N_DIM)
    f, grad, _, _ = quadratic(grad=target, seed=4)
    U = np.array(list(product([-1, 1], repeat=N_DIM)), dtype=np.float64)
    proj = U @ grad
    assert np.abs(proj).min() > 1e-3                 # no sign can be flipped by float32 loss rounding
    expected = (np.sign(proj)[:, None] * U).mean(axis=0)
    assert np.all(np.sign(expected) == np.sign(grad))               # E[g] points along grad, coordinatewise
    K = 3000
    G = run_steps(f, N_DIM, K, method="sign-spsa", sigma=1, queries=1)
    assert set(np.unique(G)) <= {-1.0, 1.0}
    se = G.std(axis=0, ddof=1) / math.sqrt(K)
    assert np.all(np.abs(G.mean(axis=0) - expected) <= 5 * se)
    clear = np.abs(expected) > 5 * se
    assert clear.sum() >= N_DIM - 1                                  # "most coordinates"
    assert np.all(np.sign(G.mean(axis=0))[clear] == np.sign(grad)[clear])
    # with m = 4 every coordinate is a multiple of 1/4 in [-1, 1]
    g, info = estimate(f, N_DIM, method="sign-spsa", sigma=1, queries=4, seeds=lambda q: derive_seed(2, 0, q, 0))
    assert np.all(np.abs(g) <= 1) and np.all((g * 4) == np.round(g * 4))
    assert info["forward_passes"] == 8


# ----------------------------------------------------------------------------------------------
# dimension scaling
# ----------------------------------------------------------------------------------------------


def test_dim_scaling_factor():
    f, _, _, _ = quadratic()
    for m in (1, 3):
        for method in ("rge", "spsa", "sign-spsa"):
            kw = {"method": method, "sigma": 1, "queries": m, "seeds": lambda q: derive_seed(3, 1, q, 0)}
            g0, i0 = estimate(f, N_DIM, **kw)
            g1, i1 = estimate(f, N_DIM, dim_scaling=True, **kw)
            assert i1["dim_scale"] == m / (m + N_DIM - 1) == dim_scale(m, N_DIM)
            assert i0["dim_scale"] == 1.0
            # folded into the float32 norm: equal to g0 * factor up to float32 rounding. Each estimate
            # rounds the norm, c_q (2x), m products and m sums, each within 2**-24 of sum_q |c_q delta_q|
            # (|delta| = 1); with the final product: (4m + 8) * 2**-24 * factor * sum_q |c_q|.
            factor = m / (m + N_DIM - 1)
            tol = (4 * m + 8) * 2.0**-24 * factor * np.abs(i0["coeffs"]).sum()
            assert np.all(np.abs(g1.astype(np.float64) - g0.astype(np.float64) * factor) <= tol)
    with pytest.raises(EstimatorError, match="dim_scaling"):
        estimate(f, N_DIM, method="coord", sigma=1, dim_scaling=True)


def test_dim_scaling_lowers_the_mean_square_error():
    # first order: E||g_1||^2 = d ||grad||^2 per Rademacher query, so the MSE of g is (d - 1)/q ||grad||^2
    # and of c g with c = q/(q+d-1) it is (d - 1)/(q + d - 1) ||grad||^2: about 8x smaller for d = 8, q = 1
    f, grad, _, _ = quadratic()
    kw = {"method": "spsa", "sigma": 1, "queries": 1}
    G0 = run_steps(f, N_DIM, 1500, **kw)
    G1 = run_steps(f, N_DIM, 1500, dim_scaling=True, **kw)
    mse0 = np.mean(((G0 - grad) ** 2).sum(axis=1))
    mse1 = np.mean(((G1 - grad) ** 2).sum(axis=1))
    assert mse1 < mse0 / 2


# ----------------------------------------------------------------------------------------------
# clamping: the estimator uses the intended delta
# ----------------------------------------------------------------------------------------------


def test_clamped_coordinate_bias_matches_the_formula():
    # x0_k = 127, the caller clamps x0 + delta to [-127, 127]; one-sided Rademacher sigma = 1:
    # E[g_k] = grad_k / 2 - A_kk / 4 and E[g_j] = grad_j - A_jk / 2 for j != k (module docstring)
    _, grad0, A, x_orig = quadratic()
    b = grad0 - A @ x_orig
    k = 2
    x0 = x_orig.copy()
    x0[k] = 127.0
    grad = A @ x0 + b

    def f(delta):
        x = np.clip(x0 + delta, -127, 127)
        return float(0.5 * x @ A @ x + b @ x)

    assert abs(f(np.zeros(N_DIM))) < 2**20   # the float32 loss keeps enough resolution (ulp < 0.1)
    expected = grad - A[:, k] / 2
    expected[k] = grad[k] / 2 - A[k, k] / 4
    G = run_steps(f, N_DIM, 3000, method="rge", sigma=1, queries=1)
    se = G.std(axis=0, ddof=1) / math.sqrt(len(G))
    assert np.all(np.abs(G.mean(axis=0) - expected) <= 5 * se)
    assert abs(expected[k] - grad[k]) > 10 * se[k]                 # the effect is real and resolved


# ----------------------------------------------------------------------------------------------
# per-sample variant
# ----------------------------------------------------------------------------------------------


def test_per_sample_matches_scalar_and_is_unbiased_per_sample():
    rng = np.random.default_rng(7)
    n, N = 6, 3
    centers = rng.integers(-10, 10, (N, n)).astype(np.float64)
    theta = rng.integers(-5, 5, n).astype(np.float64)

    def per_sample(delta):                          # L_i = 1/2 ||theta + delta - c_i||^2
        x = theta + delta
        return (0.5 * ((x - centers) ** 2).sum(axis=1)).astype(np.float32)

    for method in ("rge", "spsa", "sign-spsa", "coord"):
        kw = {"method": method, "sigma": 1, "queries": 3, "seeds": lambda q: derive_seed(4, 0, q, 0)}
        g, coeffs, info = estimate_per_sample(per_sample, n, **kw)
        g2, info2 = estimate(lambda d: mean_float32(per_sample(d)), n, **kw)
        np.testing.assert_array_equal(g, g2)                          # bit-identical mean estimate
        m = n if method == "coord" else 3
        assert coeffs.shape == (m, N) and coeffs.dtype == np.float32
        assert info["forward_passes"] == info2["forward_passes"]
        if method == "sign-spsa":
            assert set(np.abs(np.unique(coeffs))) <= {0.0, float(info["norm"])}
        else:
            np.testing.assert_allclose(coeffs.mean(axis=1), info["coeffs"], rtol=1e-5, atol=1e-6)
    # per-sample estimates sum_q coeffs[q, i] delta_q are unbiased for grad L_i = theta - c_i
    K = 1500
    est = np.zeros((K, N, n))
    for k in range(K):
        seeds = lambda q, k=k: derive_seed(8, k, q, 0)
        _, coeffs, info = estimate_per_sample(per_sample, n, method="spsa", sigma=1, queries=1, seeds=seeds)
        d = perturbation("rademacher", info["seeds"][0], (n,), 1).astype(np.float64)
        est[k] = coeffs[0][:, None] * d[None, :]
    for i in range(N):
        assert_unbiased(est[:, i, :], theta - centers[i])
    # base losses reused per sample
    base = per_sample(np.zeros(n))
    _, _, info = estimate_per_sample(per_sample, n, method="rge", sigma=1, queries=2,
                                     seeds=lambda q: derive_seed(1, 0, q, 0), base_loss=base)
    assert info["forward_passes"] == 2
    np.testing.assert_array_equal(info["base_losses"], base)
    assert info["losses_per_sample"].shape == (2, N)


# ----------------------------------------------------------------------------------------------
# bad arguments
# ----------------------------------------------------------------------------------------------


def test_bad_arguments():
    f, _, _, _ = quadratic()
    seeds = lambda q: derive_seed(1, 0, q, 0)
    ok = {"method": "rge", "sigma": 1, "seeds": seeds}
    cases = [
        (dict(ok, method="adam"), "unknown method"),
        (dict(ok, direction="cauchy"), "unknown direction"),
        (dict(ok, sigma=0), "sigma must be > 0"),
        (dict(ok, sigma=-1), "sigma must be > 0"),
        (dict(ok, sigma=float("nan")), "sigma must be a finite"),
        (dict(ok, sigma=1.5), "integer"),
        (dict(ok, queries=0), "queries"),
        (dict(ok, seeds=None), "seeds is required"),
        (dict(ok, seeds=lambda q: 0), r"seeds\(0\) returned 0"),
        (dict(ok, seeds=[5], queries=2), "seeds has 1 entries"),
        (dict(ok, method="coord", coord_scheme="backward"), "coord_scheme"),
    ]
    for kw, msg in cases:
        with pytest.raises(EstimatorError, match=msg):
            estimate(f, N_DIM, **kw)
    with pytest.raises(EstimatorError, match="n "):
        estimate(f, 0, **ok)
    with pytest.raises(EstimatorError, match="non-finite"):
        estimate(lambda d: float("nan"), N_DIM, **ok)
    with pytest.raises(EstimatorError, match="scalar"):
        estimate(lambda d: np.ones(3), N_DIM, **ok)
    with pytest.raises(EstimatorError, match="1-D"):
        estimate_per_sample(lambda d: 1.0, N_DIM, **ok)
    calls = iter([np.ones(3), np.ones(4)])
    with pytest.raises(EstimatorError, match="returned 4 losses"):
        estimate_per_sample(lambda d: next(calls), N_DIM, **ok)
    estimate(f, N_DIM, method="rge", sigma=0.25, direction="sphere", seeds=seeds)   # float sigma ok on the sphere


def test_same_results_without_jit():
    code = (
        "import numpy as np\n"
        "from tinyzo.zo.estimators import estimate\n"
        "from tinyzo.training.prng import derive_seed\n"
        "A = np.diag(np.arange(1.0, 7.0)); f = lambda d: float(0.5 * (d + 3) @ A @ (d + 3))\n"
        "out = []\n"
        "for meth, dirn in [('rge', 'rademacher'), ('spsa', 'gaussian'), ('sign-spsa', 'uniform')]:\n"
        "    g, _ = estimate(f, 6, method=meth, sigma=2, queries=3, direction=dirn,\n"
        "                    seeds=lambda q: derive_seed(5, 1, q, 2))\n"
        "    out.append(g.tobytes().hex())\n"
        "print(' '.join(out))\n"
    )
    runs = []
    for jit_off in ("0", "1"):
        env = dict(os.environ, NUMBA_DISABLE_JIT=jit_off)
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                           check=False)
        assert r.returncode == 0, r.stderr[-2000:]
        runs.append(r.stdout.strip())
    assert runs[0] == runs[1]


# ----------------------------------------------------------------------------------------------
# loss on int8 logits
# ----------------------------------------------------------------------------------------------


def exact_ce(q, y, scale, zp):
    """Cross-entropy in float64 with the given scale (a float64 value)."""
    x = (q.astype(np.float64) - zp) * scale
    a = x - x.max(axis=1, keepdims=True)
    return np.log(np.exp(a).sum(axis=1)) - a[np.arange(len(y)), y]


def test_cross_entropy_hand_values():
    q = np.array([[0, 0], [7, 7]], np.int8)
    out = cross_entropy_int8(q, np.array([0, 1]), 0.25, -3)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.float32(math.log(2)))      # exp(0) + exp(0) = 2, exactly
    # q = [10, 0], s = 0.5, zp = 0, y = 1: a = [0, -5], loss = ln(1 + e^-5) + 5
    out = cross_entropy_int8(np.array([[10, 0]], np.int8), np.array([1]), 0.5, 0)
    assert abs(float(out[0]) - (math.log1p(math.exp(-5)) + 5)) <= 2.0**-24 * 8
    # the zero point cancels
    a = cross_entropy_int8(np.array([[5, -3, 2]], np.int8), np.array([2]), 0.1, 0)
    b = cross_entropy_int8(np.array([[5, -3, 2]], np.int8), np.array([2]), 0.1, 100)
    assert abs(float(a[0]) - float(b[0])) <= 2.0**-20


@pytest.mark.parametrize("K,scale,zp", [(2, 0.01, 0), (10, 0.0625, -128), (10, 0.2, 17), (100, 1.0, 5), (1000, 0.05, -7)])
def test_cross_entropy_float_and_lut_error_bounds(K, scale, zp):
    rng = np.random.default_rng(K)
    q = rng.integers(-128, 128, (300, K)).astype(np.int8)
    q[0] = 127                                                          # all ties
    q[1] = -128
    q[1, 0] = 127                                                       # one dominant logit
    y = rng.integers(0, K, 300)
    exact = exact_ce(q, y, float(np.float32(scale)), zp)          # the float32 path uses float32(scale)
    f32 = cross_entropy_int8(q, y, scale, zp)
    assert np.all(np.abs(f32 - exact) <= float_error_bound(q, scale, zp, f32))
    lut = q16_to_float(cross_entropy_int8_lut(q, y, scale, zp)).astype(np.float64)
    exact64 = exact_ce(q, y, scale, zp)                          # the tables are made from the float64 scale
    assert np.all(np.abs(lut - exact64) <= lut_error_bound(K))
    # LUT vs float32: the two bounds plus the float32 rounding of the scale (relative 2**-24 of each a_j)
    scale_slack = 2.0**-24 * 2 * 255 * scale
    assert np.all(np.abs(lut - f32) <= lut_error_bound(K) + float_error_bound(q, scale, zp, f32) + scale_slack)


def test_lut_hand_values_and_tables():
    lut = prepare_cross_entropy_lut(0.25)
    assert lut.exp_q16[0] == 65536 and lut.gap_q16[0] == 0
    assert lut.exp_q16[1] == math.floor(65536 * math.exp(-0.25) + 0.5)
    assert lut.gap_q16[4] == 65536
    # [[0, 0]]: S = 131072, log2 = 17 exactly, loss = round(2**16 ln 2) = 45426
    out = cross_entropy_int8_lut(np.array([[0, 0]], np.int8), np.array([1]), lut=lut)
    assert out.dtype == np.int32 and out[0] == (65536 * LN2_Q30 + 2**29) >> 30 == 45426
    # [[4, 0]], y = 1: ln(1 + e^-1) + 1 in Q16
    out = cross_entropy_int8_lut(np.array([[4, 0]], np.int8), np.array([1]), lut=lut)
    assert abs(out[0] / 65536 - (math.log1p(math.exp(-1)) + 1)) <= lut_error_bound(2)
    with pytest.raises(LossInputError, match="does not match"):
        cross_entropy_int8_lut(np.array([[4, 0]], np.int8), np.array([1]), 0.5, lut=lut)


def test_log2_q16_error_bound():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.arange(1, 1 << 18), rng.integers(1, 2**32, 300_000), 2 ** np.arange(32)])
    err = log2_q16(x) / 65536.0 - np.log2(x.astype(np.float64))
    assert err.max() <= 0 and err.min() >= -(1 + 2**-4) * 2**-16
    np.testing.assert_array_equal(log2_q16(2 ** np.arange(32)), np.arange(32) << 16)


def test_accuracy_ties_to_lowest_index():
    q = np.array([[5, 5, 1], [5, 5, 1], [-1, 3, 3], [0, 0, 9]], np.int8)
    assert accuracy_int8(q, np.array([0, 1, 1, 2])) == 0.75
    assert accuracy_int8(q, np.array([0, 0, 1, 2])) == 1.0


def test_mean_float32_is_sequential():
    v = np.array([1e8, 1.0, -1e8, 1.0] * 3, np.float32)
    s = np.float32(0)
    for x in v:
        s = np.float32(s + x)
    assert mean_float32(v) == np.float32(s / np.float32(v.size))


def test_loss_bad_input():
    q = np.zeros((2, 3), np.int8)
    y = np.array([0, 2])
    cases = [
        (lambda: cross_entropy_int8(q.astype(np.float32), y, 0.1, 0), "int8"),
        (lambda: cross_entropy_int8(np.zeros(3, np.int8), y, 0.1, 0), r"\[N, K\]"),
        (lambda: cross_entropy_int8(q, np.array([0, 3]), 0.1, 0), r"labels must be in \[0, 2\]"),
        (lambda: cross_entropy_int8(q, np.array([0, -1]), 0.1, 0), "labels must be in"),
        (lambda: cross_entropy_int8(q, np.array([0.0, 1.0]), 0.1, 0), "integers"),
        (lambda: cross_entropy_int8(q, np.array([0]), 0.1, 0), "2 values"),
        (lambda: cross_entropy_int8(q, y, 0.0, 0), "scale"),
        (lambda: cross_entropy_int8(q, y, float("nan"), 0), "scale"),
        (lambda: cross_entropy_int8(q, y, 0.1, 200), "zero_point"),
        (lambda: cross_entropy_int8_lut(q, y, 200.0, 0), "too large"),
        (lambda: cross_entropy_int8_lut(np.zeros((1, 65536), np.int8), np.array([0]), 0.1, 0), "at most"),
        (lambda: accuracy_int8(q, np.array([0, 5])), "labels"),
    ]
    for fn, msg in cases:
        with pytest.raises(LossInputError, match=msg):
            fn()


# ----------------------------------------------------------------------------------------------
# sparse perturbation and block-coordinate queries (issue 14)
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method,direction", [("rge", "rademacher"), ("spsa", "rademacher"),
                                              ("rge", "gaussian"), ("spsa", "uniform")])
def test_sparse_perturbation_is_unbiased(method, direction):
    # each query keeps a random 30% of the coordinates; dividing by p * mu2 keeps E[g] = grad
    f, grad, _, _ = quadratic(seed=5)
    G = run_steps(f, N_DIM, 3000, method=method, sigma=2, queries=2, direction=direction, density=0.3)
    assert_unbiased(G, grad)


@pytest.mark.parametrize("method", ["rge", "spsa"])
def test_block_coordinate_is_unbiased(method):
    f, grad, _, _ = quadratic(seed=6)
    G = run_steps(f, N_DIM, 2500, method=method, sigma=1, queries=4, blocks=[3, 5])
    assert_unbiased(G, grad)


def test_sparse_and_block_touch_only_their_coordinates():
    from tinyzo.training.prng import density_threshold, mask_seed, sparse_mask

    seen = []

    def f(d):
        seen.append(np.asarray(d).copy())
        return float(np.sum(np.asarray(d, np.float64) ** 2))

    seeds = lambda q: derive_seed(3, 0, q, 0)
    _, info = estimate(f, 100, method="rge", sigma=1, queries=2, seeds=seeds, density=0.25)
    for q, d in enumerate(seen[1:]):  # seen[0] is the base pass
        keep = sparse_mask(mask_seed(seeds(q)), 100, 0.25)
        assert np.array_equal(d != 0, keep == 1)
        assert np.array_equal(d[keep == 1], perturbation("rademacher", seeds(q), 100, 1)[keep == 1])
    assert info["density"] == density_threshold(0.25) / 2**24
    assert info["norm"] == np.float32(1.0 / (2 * info["density"]))
    seen.clear()
    _, info = estimate(f, 9, method="spsa", sigma=1, queries=4, seeds=seeds, blocks=[6, 3])
    assert info["blocks"] == [0, 0, 1, 1] or info["blocks"] == [0, 0, 0, 1]
    for q, j in enumerate(info["blocks"]):
        d = seen[2 * q]
        lo, hi = (0, 6) if j == 0 else (6, 9)
        assert np.all(d[:lo] == 0) and np.all(d[hi:] == 0)
        assert np.array_equal(d[lo:hi], perturbation("rademacher", seeds(q), hi - lo, 1))


def test_split_queries():
    from tinyzo.zo.estimators import query_blocks, split_queries

    assert split_queries(8, [100, 100]) == [4, 4]
    assert split_queries(3, [1, 1000, 1]) == [1, 1, 1]
    assert split_queries(10, [1, 3]) == [3, 7]            # 8 left: 2 and 6
    assert sum(split_queries(50, [7, 300, 2000, 11])) == 50
    assert query_blocks(5, [1, 3]) == [0, 0, 1, 1, 1]   # 3 left: 0.75 and 2.25 -> 0 + 1, 2
    with pytest.raises(EstimatorError, match="cannot cover"):
        split_queries(2, [1, 2, 3])


def test_sparse_and_block_bad_arguments():
    f = lambda d: 0.0
    seeds = lambda q: derive_seed(1, 0, q, 0)
    for bad in (0.0, 1.5, -0.1, float("nan"), True):
        with pytest.raises(EstimatorError, match="density"):
            estimate(f, 4, method="rge", sigma=1, seeds=seeds, density=bad)
    with pytest.raises(EstimatorError, match="sum to"):
        estimate(f, 4, method="rge", sigma=1, queries=2, seeds=seeds, blocks=[1, 2])
    with pytest.raises(EstimatorError, match="not coord"):
        estimate(f, 4, method="coord", sigma=1, density=0.5)
