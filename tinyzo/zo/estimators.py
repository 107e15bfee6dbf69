"""Zeroth-order gradient estimators over a black-box objective: RGE, SPSA, Sign-m-SPSA, coordinate-wise.

One interface, :func:`estimate` (and :func:`estimate_per_sample` for per-sample losses). The caller
owns the parameters: ``loss_fn(delta)`` must return the mean loss at ``theta + delta`` (it applies the
perturbation, runs the forward pass, undoes the perturbation). ``delta`` is the *intended*
perturbation, regenerated from a seed: int32[n] for the integer directions (Rademacher, uniform,
integer Gaussian; ``sigma`` in integer units, e.g. int8 LSB) or float32[n] for the unit sphere.

Estimates are float32 gradients **per integer unit** of the perturbed parameters (d loss / d w_int),
in the form ``g = sum_q c_q * delta_q``: the per-query scalars ``c_q`` are returned in
``info["coeffs"]`` so firmware can apply the update by regenerating each ``delta_q`` from its seed,
never storing it (O(1) extra memory). Every quantity is float32 in a fixed order (losses rounded to
float32 on entry; ``c_q = float32(float32(L_a - L_b) * norm)``; ``g += c_q * delta_q`` for q = 0..m-1,
a float32 multiply then a float32 add, no FMA); ``norm`` (``info["norm"]``) is computed once in
double and stored as float32, as a firmware port would take it as a constant.

Methods (m = ``queries``, mu2 = E[delta_i**2], the per-coordinate second moment of the direction):

=============  ==============================================================  ======================
method         estimate                                                        forward passes
=============  ==============================================================  ======================
``rge``        ``(1/m) sum_q (L(t + d_q) - L(t)) / mu2 * d_q``                 m + 1 (m if base_loss)
``spsa``       ``(1/m) sum_q (L(t + d_q) - L(t - d_q)) / (2 mu2) * d_q``        2m
``sign-spsa``  ``(1/m) sum_q sign(L(t + d_q) - L(t - d_q)) * d_q / sigma``      2m
``coord``      ``g_k = (L(t + s e_k) - L(t)) / s`` or ``(L(t + s e_k) - L(t - s e_k)) / (2 s)``  n + 1 (n) or 2n
=============  ==============================================================  ======================

Direction scaling, so that E[g] = grad L (exactly on a quadratic, for every sigma: the odd moments of
a symmetric direction vanish): with iid coordinates E[d d^T] = mu2 I, hence the division by mu2:

* ``rademacher``: ``d = sigma * (+-1)``, mu2 = sigma**2 (E[u u^T] = I);
* ``uniform``: ``d`` uniform on the integers [-sigma, sigma], mu2 = sigma (sigma + 1) / 3;
* ``gaussian``: the integer Gaussian of :func:`tinyzo.training.prng.gaussian_int`, mu2 its exact second
  moment over a full xorshift32 period (within 0.3% of sigma**2; :func:`second_moment`);
* ``sphere``: ``d = sigma * u`` with u uniform on the unit sphere, E[u u^T] = I / n, mu2 = sigma**2 / n
  (the familiar factor n of the sphere estimator).

Sign-m-SPSA (Feng et al., "Stepping Forward on the Last Mile", NeurIPS 2024): each query keeps only
the sign of its two-sided projected difference (sign(0) = 0), the m signed unit directions are
averaged: ``g = (1/m) sum_q sign(L(t + d_q) - L(t - d_q)) * u_q`` with ``u_q = d_q / sigma`` (+-1 for
Rademacher). Its magnitude is not a gradient's (each coordinate is a multiple of 1/m in [-1, 1] for
Rademacher); only the direction is. (The paper's equation could not be retrieved verbatim here; for
m = 1 every reading coincides. See docs/zo_estimators.md.)

``dim_scaling=True`` multiplies the randomized estimates by ``q / (q + d - 1)`` (q = queries, d = n
perturbed coordinates): the shrinkage that minimizes E||c g - grad||**2 for the Rademacher and
sphere estimators to first order in sigma, since there E||g_1||**2 = d ||grad||**2 per query
(docs/zo_estimators.md has the derivation). It is folded into ``norm``.

Sparse perturbation (``density`` p < 1; DeepZero, Chen et al., ICLR 2024, perturbs a sparse subset of
the coordinates; here a fresh random subset per query): each query's direction is multiplied by a
Bernoulli keep mask (:func:`tinyzo.training.prng.sparse_mask`, seeded by ``mask_seed(seed of the
query)``; keep probability p = ``density_threshold(density) / 2**24`` exactly). Then
E[(m d)(m d)^T] = p mu2 I, so dividing by p mu2 keeps the estimate unbiased; a query moves about
p n coordinates, so its loss difference carries less noise from the others.

Block-coordinate queries (``blocks`` = sizes of consecutive coordinate blocks, e.g. one per layer; the
randomized block-coordinate descent of Nesterov 2012 with a deterministic query split): query q perturbs
only block j(q); the m queries are split over the blocks in proportion to their sizes
(:func:`split_queries`, at least one each), and block j's estimate averages its own m_j queries
(``norm = 1 / (m_j mu2)``): unbiased per block.

Clamping: the caller clamps ``theta + delta`` to the parameter range (int8 weights to [-127, 127]),
so the effective perturbation of a saturated coordinate differs from ``delta``; the estimator
still uses the intended ``delta`` (as firmware regenerating it from the seed does). On a quadratic
with Rademacher sigma = 1 and the one-sided estimator, a coordinate k at the upper bound gets
E[g_k] = grad_k / 2 - A_kk / 4 and every other j gets grad_j - A_jk / 2 (tested): saturation biases
the estimate towards not pushing further out.
"""

from __future__ import annotations

import functools
import math
import numbers

import numpy as np

from tinyzo.errors import TinyzoError, check_choice
from tinyzo.training.loss import mean_float32
from tinyzo.training.prng import (
    MASK_SCALE,
    density_threshold,
    gaussian_multiplier,
    mask_seed,
    perturbation,
    sparse_mask,
)

__all__ = [
    "COORD_SCHEMES",
    "DIRECTIONS",
    "METHODS",
    "EstimatorError",
    "dim_scale",
    "estimate",
    "estimate_per_sample",
    "projected_difference",
    "query_blocks",
    "query_norm",
    "second_moment",
    "split_queries",
]

METHODS = ("rge", "spsa", "sign-spsa", "coord")
DIRECTIONS = ("rademacher", "gaussian", "uniform", "sphere")
COORD_SCHEMES = ("one-sided", "central")
_INT_DIRECTIONS = ("rademacher", "gaussian", "uniform")


class EstimatorError(TinyzoError):
    """An estimator option is invalid, or the objective returned something unusable (NaN, wrong shape)."""


# ----------------------------------------------------------------------------------------------
# direction moments
# ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _gaussian_second_moment(sigma: int) -> float:
    """Exact E[v**2] of prng.gaussian_int(sigma) over one full xorshift32 period (all non-zero words)."""
    ones = np.ones(256, dtype=np.int64)
    counts = ones
    for _ in range(3):
        counts = np.convolve(counts, ones)                  # sum of 4 bytes: 0..1020, total 2**32
    counts = counts.copy()
    counts[0] -= 1                                         # the word 0 is never an output
    c = np.arange(1021, dtype=np.int64) - 510
    v = c * np.int64(gaussian_multiplier(sigma))
    half = np.int64(1) << 15
    r = np.where(v >= 0, (v + half) >> 16, -((half - v) >> 16))
    return float((counts * r * r).sum()) / float(2**32 - 1)


def second_moment(direction: str, sigma, n: int) -> float:
    """Per-coordinate second moment E[delta_i**2] of the perturbation ``direction`` of size ``n``.

    rademacher: sigma**2; uniform on [-sigma, sigma]: sigma (sigma + 1) / 3; gaussian: the exact
    moment of :func:`tinyzo.training.prng.gaussian_int`; sphere (sigma times a unit vector): sigma**2 / n.
    """
    if direction == "rademacher":
        return float(sigma) ** 2
    if direction == "uniform":
        return float(sigma) * (float(sigma) + 1.0) / 3.0
    if direction == "gaussian":
        return _gaussian_second_moment(int(sigma))
    if direction == "sphere":
        return float(sigma) ** 2 / float(n)
    raise EstimatorError(f"unknown direction {direction!r}; choose one of {', '.join(DIRECTIONS)}")


def dim_scale(queries: int, n: int) -> float:
    """The optional dimension scaling ``q / (q + d - 1)`` for q queries and d = n coordinates."""
    return queries / (queries + n - 1.0)


def split_queries(queries: int, sizes) -> list:
    """Split ``queries`` over blocks of the given sizes in proportion to the sizes (block-coordinate ZO).

    Largest remainder after giving each block one query: ``m_j = 1 + floor(r * s_j / S)`` plus one for
    the blocks with the largest fractional parts (ties: the earlier block), with r = queries - B and
    S = sum(sizes). Queries are assigned in block order: the first m_0 to block 0, and so on.
    Returns the list of m_j (ints >= 1, summing to ``queries``). EstimatorError if queries < B or a size < 1.
    """
    sizes = [int(v) for v in sizes]
    if not sizes or min(sizes) < 1:
        raise EstimatorError(f"block sizes must be integers >= 1, got {sizes}")
    if queries < len(sizes):
        raise EstimatorError(f"block-coordinate queries: {queries} queries cannot cover {len(sizes)} blocks "
                             f"(one query per block at least); use queries >= {len(sizes)}")
    rest = queries - len(sizes)
    total = sum(sizes)
    base = [rest * v // total for v in sizes]
    left = rest - sum(base)
    order = sorted(range(len(sizes)), key=lambda j: (-(rest * sizes[j] - base[j] * total), j))
    for j in order[:left]:
        base[j] += 1
    return [1 + b for b in base]


def query_blocks(queries: int, sizes) -> list:
    """The block index of each query (length ``queries``) under :func:`split_queries`."""
    return [j for j, mj in enumerate(split_queries(queries, sizes)) for _ in range(mj)]


def query_norm(estimator: str, direction: str, sigma, queries: int, n: int = 1, factor: float = 1.0):
    """The float32 normalization ``norm`` of the estimate ``g = sum_q float32(coef_q * norm) * delta_q``.

    ``factor / (m * E[delta**2])`` for ``"rge"`` and ``"spsa"`` (whose coefficient is already halved by
    :func:`projected_difference`), ``factor / (m * sigma)`` for ``"sign-spsa"``; computed in double,
    rounded to float32 once (a firmware constant). ``sigma`` is a number, or per channel an array
    (bias perturbations ``sigma_b[c] * v``, second moment ``sigma_b[c]**2 * E[v**2]``): then a
    float32 array. ``n``: the perturbed coordinates (the sphere's second moment depends on it);
    ``factor``: the optional dimension scaling (:func:`dim_scale`). The one definition used by
    :func:`estimate`, :func:`estimate_per_sample` and :class:`tinyzo.zo.ZOTrainer`.
    """
    m = queries
    if estimator == "sign-spsa":
        return (factor / (m * np.asarray(sigma, np.float64))).astype(np.float32)
    if np.ndim(sigma):
        mu = second_moment(direction, 1, n) * np.asarray(sigma, np.float64) ** 2
        return (factor / (m * mu)).astype(np.float32)
    return np.float32(factor / (m * second_moment(direction, sigma, n)))


def projected_difference(estimator: str, plus, other):
    """A query's projected loss difference (float32, per sample or of the batch means).

    ``"rge"``: ``plus - other`` (``other`` = the unperturbed loss); ``"spsa"``: ``(plus - other) / 2``
    (``other`` = the loss at ``theta - delta``); ``"sign-spsa"``: the sign of that (sign(0) = 0).
    ``plus``, ``other``: float32 scalars or float32[N]; returns the same shape, float32.
    """
    diff = np.float32(plus - other) if np.ndim(plus) == 0 else (plus - other).astype(np.float32)
    if estimator == "rge":
        return diff
    half = diff / np.float32(2)
    if estimator == "spsa":
        return np.float32(half) if np.ndim(half) == 0 else half.astype(np.float32)
    if estimator == "sign-spsa":
        return np.float32(np.sign(half)) if np.ndim(half) == 0 else np.sign(half).astype(np.float32)
    raise EstimatorError(f"unknown estimator {estimator!r}; choose one of rge, spsa, sign-spsa")


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise EstimatorError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise EstimatorError(f"{name} must be an integer >= {minimum}, got {int(value)}")
    return int(value)


def _check_options(n, method, sigma, queries, direction, seeds, dim_scaling, coord_scheme):
    n = _check_int(n, "n (number of perturbed parameters)", 1)
    check_choice(method, METHODS, "method", EstimatorError)
    check_choice(direction, DIRECTIONS, "direction", EstimatorError)
    check_choice(coord_scheme, COORD_SCHEMES, "coord_scheme", EstimatorError)
    if isinstance(sigma, (bool, np.bool_)) or not isinstance(sigma, numbers.Real) or not math.isfinite(float(sigma)):
        raise EstimatorError(f"sigma must be a finite number > 0, got {sigma!r}")
    if float(sigma) <= 0:
        raise EstimatorError(f"sigma must be > 0, got {sigma!r}")
    integer_delta = method == "coord" or direction in _INT_DIRECTIONS
    if integer_delta:
        if float(sigma) != math.floor(float(sigma)):
            what = "coord" if method == "coord" else f"the {direction} direction"
            raise EstimatorError(f"sigma must be an integer >= 1 for {what} (integer perturbations), got {sigma!r}")
        sigma = int(sigma)
    else:
        sigma = float(sigma)
    queries = _check_int(queries, "queries", 1)
    if method != "coord":
        if seeds is None:
            raise EstimatorError("seeds is required for randomized methods: a callable query -> seed, e.g. "
                                 "lambda q: derive_seed(base_seed, step, q, layer)")
        if not callable(seeds):
            try:
                if len(seeds) < queries:
                    raise EstimatorError(f"seeds has {len(seeds)} entries but queries={queries}")
            except TypeError:
                raise EstimatorError("seeds must be a callable query -> seed (or a sequence of seeds)") from None
    if dim_scaling and method == "coord":
        raise EstimatorError("dim_scaling applies to the randomized estimators (rge, spsa, sign-spsa), not coord")
    return n, sigma, queries


def _seed(seeds, q: int) -> int:
    s = seeds(q) if callable(seeds) else seeds[q]
    if isinstance(s, (bool, np.bool_)) or not isinstance(s, numbers.Integral) or not 1 <= int(s) <= 0xFFFFFFFF:
        raise EstimatorError(f"seeds({q}) returned {s!r}; a seed must be an integer in [1, 2**32 - 1] "
                             "(use tinyzo.training.prng.derive_seed)")
    return int(s)


def _direction(direction: str, seed: int, n: int, sigma):
    if direction == "sphere":
        return perturbation("sphere", seed, (n,), 1.0) * np.float32(sigma)
    return perturbation(direction, seed, (n,), sigma)


class _Objective:
    """Wraps the caller's loss function: counts forward passes, checks and rounds results to float32."""

    def __init__(self, fn, per_sample: bool):
        self.fn = fn
        self.per_sample = per_sample
        self.calls = 0
        self.size = None

    def __call__(self, delta) -> np.ndarray:
        self.calls += 1
        out = self.fn(delta)
        if self.per_sample:
            arr = np.asarray(out)
            if arr.ndim != 1 or arr.size < 1 or arr.dtype.kind not in "fiu":
                raise EstimatorError(f"loss_fn_per_sample must return a 1-D float array of per-sample losses, "
                                     f"got {type(out).__name__} of shape {arr.shape}")
            if self.size is None:
                self.size = arr.size
            elif arr.size != self.size:
                raise EstimatorError(f"loss_fn_per_sample returned {arr.size} losses, earlier {self.size}")
        else:
            arr = np.asarray(out)
            if arr.size != 1 or arr.dtype.kind not in "fiu":
                raise EstimatorError(f"loss_fn must return a scalar loss, got {type(out).__name__} of shape {arr.shape}")
            arr = arr.reshape(1)
        arr = arr.astype(np.float32)
        if not np.all(np.isfinite(arr)):
            raise EstimatorError(f"the objective returned a non-finite loss ({arr[~np.isfinite(arr)][0]}) "
                                 f"at forward pass {self.calls}")
        return arr


# ----------------------------------------------------------------------------------------------
# the engine (scalar and per-sample share it: a scalar objective is one "sample")
# ----------------------------------------------------------------------------------------------


def _check_sparsity(n, method, queries, density, blocks):
    """Validated ``(keep probability p, threshold or None, block of each query or None, block bounds)``."""
    if method == "coord" and (density != 1.0 or blocks is not None):
        raise EstimatorError("density and blocks apply to the randomized estimators (rge, spsa, sign-spsa), not coord")
    try:
        threshold = density_threshold(density)
    except TinyzoError as e:
        raise EstimatorError(str(e)) from None
    p = threshold / MASK_SCALE
    if blocks is None:
        return p, (None if threshold == MASK_SCALE else threshold), None, [(0, n)]
    try:
        sizes = [int(v) for v in blocks]
    except (TypeError, ValueError):
        raise EstimatorError(f"blocks must be a sequence of block sizes, got {blocks!r}") from None
    if sum(sizes) != n:
        raise EstimatorError(f"blocks {sizes} sum to {sum(sizes)}, not n = {n}")
    bounds = [(sum(sizes[:j]), sum(sizes[:j + 1])) for j in range(len(sizes))]
    return p, (None if threshold == MASK_SCALE else threshold), query_blocks(queries, sizes), bounds


def _run(obj: _Objective, n, method, sigma, queries, direction, seeds, base_loss, dim_scaling, coord_scheme,
         density=1.0, blocks=None):
    per_sample = obj.per_sample
    p, threshold, qblock, bounds = _check_sparsity(n, method, queries, density, blocks)
    m = n if method == "coord" else queries
    two_sided = method in ("spsa", "sign-spsa") or (method == "coord" and coord_scheme == "central")
    factor = dim_scale(queries, n) if dim_scaling else 1.0
    zero = np.zeros(n, dtype=np.float32 if (direction == "sphere" and method != "coord") else np.int32)

    base = None
    if not two_sided:
        if base_loss is None:
            base = obj(zero)
        else:
            b = np.asarray(base_loss)
            if per_sample:
                if b.ndim != 1 or b.size < 1:
                    raise EstimatorError(f"base_loss must be the per-sample losses float32[N], got shape {b.shape}")
                obj.size = b.size
            elif b.size != 1:
                raise EstimatorError(f"base_loss must be a scalar, got shape {b.shape}")
            base = b.reshape(-1).astype(np.float32)
            if not np.all(np.isfinite(base)):
                raise EstimatorError("base_loss is not finite")
    base_mean = None if base is None else (mean_float32(base) if per_sample else base[0])

    # the float32 normalisation constant: c_q = float32(diff_q * norm) (sign-spsa: sign_q * norm)
    if method == "coord":
        norm32 = np.float32(1.0 / (sigma * sigma) if not two_sided else 1.0 / (2.0 * sigma * sigma))
        mu2 = float(sigma) ** 2
    else:
        mu2 = second_moment(direction, sigma, n)
        norm32 = query_norm(method, direction, sigma, m, n, factor / p)
        if qblock is not None:  # block j averages its own m_j queries over its n_j coordinates
            m_j = split_queries(m, [hi - lo for lo, hi in bounds])
            block_norms = [query_norm(method, direction, sigma, m_j[j], hi - lo, factor / p)
                           for j, (lo, hi) in enumerate(bounds)]

    g = np.zeros(n, dtype=np.float32)
    coeffs = np.zeros(m, dtype=np.float32)
    shape = (m, 2) if two_sided else (m,)
    losses = np.zeros(shape, dtype=np.float32)
    per_losses = []
    per_coeffs = []
    seeds_used = []
    for q in range(m):
        if method == "coord":
            delta = np.zeros(n, dtype=np.int32)
            delta[q] = sigma
        else:
            s = _seed(seeds, q)
            seeds_used.append(s)
            if qblock is None:
                delta = _direction(direction, s, n, sigma)
            else:  # only block j moves; its direction is drawn over its own n_j coordinates
                lo, hi = bounds[qblock[q]]
                delta = np.zeros(n, dtype=np.float32 if direction == "sphere" else np.int32)
                delta[lo:hi] = _direction(direction, s, hi - lo, sigma)
                norm32 = block_norms[qblock[q]]
            if threshold is not None:
                lo, hi = bounds[0] if qblock is None else bounds[qblock[q]]
                delta[lo:hi] *= sparse_mask(mask_seed(s), hi - lo, density).astype(delta.dtype)
        plus = obj(delta)
        if two_sided:
            minus = obj(-delta)
            a, b = plus, minus
        else:
            a, b = plus, base
        a_mean = mean_float32(a) if per_sample else a[0]
        b_mean = mean_float32(b) if per_sample else b[0]
        if method == "coord":
            c = np.float32(np.float32(a_mean - b_mean) * norm32)
            c_ps = ((a - b).astype(np.float32) * norm32).astype(np.float32)
        else:
            c = np.float32(projected_difference(method, a_mean, b_mean) * norm32)
            c_ps = (projected_difference(method, a, b) * norm32).astype(np.float32)
        coeffs[q] = c
        losses[q] = (a_mean, b_mean) if two_sided else a_mean
        if per_sample:
            per_losses.append((a, b) if two_sided else a)
            per_coeffs.append(c_ps)
        if method == "coord":
            g[q] = np.float32(c * np.float32(sigma))
        else:
            g += c * delta.astype(np.float32)

    info = {
        "method": method,
        "direction": None if method == "coord" else direction,
        "sigma": sigma,
        "queries": m,
        "forward_passes": obj.calls,
        "base_loss": None if base_mean is None else np.float32(base_mean),
        "losses": losses,
        "coeffs": coeffs,
        "norm": norm32 if qblock is None else np.asarray(block_norms, np.float32),
        "second_moment": mu2,
        "dim_scale": factor,
        "seeds": seeds_used,
        "density": p,
        "blocks": qblock,
    }
    if per_sample:
        info["base_losses"] = base
        info["losses_per_sample"] = np.asarray(per_losses, dtype=np.float32)
        return g, np.asarray(per_coeffs, dtype=np.float32).reshape(m, -1), info
    return g, info


def estimate(loss_fn, n: int, *, method: str, sigma, queries: int = 1, direction: str = "rademacher",
             seeds=None, base_loss=None, dim_scaling: bool = False, coord_scheme: str = "one-sided",
             density: float = 1.0, blocks=None):
    """Zeroth-order estimate of the gradient of a black-box scalar loss w.r.t. n integer parameters.

    Args:
        loss_fn: ``loss_fn(delta) -> float``: the mean loss at the parameters moved by ``delta``
            (int32[n] for integer directions and ``coord``, float32[n] for ``sphere``). The caller
            applies, clamps and undoes the perturbation; the estimator uses the intended ``delta``.
        n: number of perturbed parameters (>= 1).
        method: ``"rge"``, ``"spsa"``, ``"sign-spsa"`` or ``"coord"`` (formulas in the module docstring).
        sigma: perturbation size > 0; an integer (units of the integer parameter) for the integer
            directions and ``coord``, a float for ``sphere``.
        queries: m >= 1 directions averaged (ignored by ``coord``, which uses the n coordinates).
        direction: ``"rademacher"``, ``"gaussian"``, ``"uniform"`` or ``"sphere"`` (ignored by coord).
        seeds: callable ``q -> seed`` (seed in [1, 2**32 - 1], e.g. ``derive_seed(base, step, q,
            layer)``) or a sequence of seeds; required except for ``coord``.
        base_loss: L(theta) if already known (``rge`` and one-sided ``coord`` then skip that forward
            pass; unused by two-sided methods).
        dim_scaling: multiply by ``queries / (queries + n - 1)`` (randomized methods only).
        coord_scheme: ``"one-sided"`` (n forward passes + base) or ``"central"`` (2n) for ``coord``.
        density: keep probability in (0, 1] of each coordinate of a query's direction (sparse
            perturbation; the mask is seeded by ``mask_seed(seed of the query)``); 1 = dense.
        blocks: sizes of consecutive coordinate blocks summing to n (block-coordinate queries: query
            q perturbs one block, queries split by :func:`split_queries`); None = every query perturbs all.

    Returns:
        ``(g, info)``: ``g`` float32[n], d loss / d (integer parameter) (for ``sign-spsa`` a signed
        direction, not a gradient magnitude); ``info`` dict with ``forward_passes`` (int),
        ``losses`` (float32[m], or float32[m, 2] = (plus, minus) for two-sided methods),
        ``base_loss`` (float32 or None), ``coeffs`` (float32[m]: ``g = sum_q coeffs[q] * delta_q``;
        for coord ``g[k] = coeffs[k] * sigma``), ``norm``, ``second_moment``, ``dim_scale``, ``seeds``
        (the seeds used, in query order), ``method``, ``direction``, ``sigma``, ``queries``.

    Raises:
        EstimatorError: unknown method/direction, sigma <= 0 (or not an integer where it must be),
        queries < 1, missing or invalid seeds, a non-finite or non-scalar loss.
    """
    n, sigma, queries = _check_options(n, method, sigma, queries, direction, seeds, dim_scaling, coord_scheme)
    if not callable(loss_fn):
        raise EstimatorError("loss_fn must be callable: delta -> mean loss")
    return _run(_Objective(loss_fn, per_sample=False), n, method, sigma, queries, direction, seeds,
                base_loss, dim_scaling, coord_scheme, density, blocks)


def estimate_per_sample(loss_fn_per_sample, n: int, *, method: str, sigma, queries: int = 1,
                        direction: str = "rademacher", seeds=None, base_loss=None, dim_scaling: bool = False,
                        coord_scheme: str = "one-sided", density: float = 1.0, blocks=None):
    """:func:`estimate` for an objective returning per-sample losses; also returns per-sample coefficients.

    ``loss_fn_per_sample(delta) -> float[N]`` (the N per-sample losses, rounded to float32);
    ``base_loss``, when given, is float32[N]. The batch loss of a query is the float32 left-to-right
    mean of its N losses, so ``g_mean`` is bit-identical to ``estimate(lambda d: mean32(f(d)), ...)``.

    Returns:
        ``(g_mean, coeffs, info)``: ``g_mean`` float32[n], the estimate for the mean loss;
        ``coeffs`` float32[m, N] (m = queries, or n for coord), the same scalar coefficient as
        ``info["coeffs"]`` but per sample: ``coeffs[q, i] = float32((L_i(a) - L_i(b)) * norm)``
        (``sign(...) * norm`` for sign-spsa), so the estimate for sample i's own loss is
        ``sum_q coeffs[q, i] * delta_q``. Node perturbation uses these: when ``delta_q`` perturbs
        sample i's layer output, ``sum_q coeffs[q, i] * delta_q[i]`` estimates d L_i / d y_i (divide
        by N for the mean loss). ``info`` as :func:`estimate`'s plus ``base_losses`` (float32[N] or
        None) and ``losses_per_sample`` (float32[m, N], or [m, 2, N] for two-sided methods).
    """
    n, sigma, queries = _check_options(n, method, sigma, queries, direction, seeds, dim_scaling, coord_scheme)
    if not callable(loss_fn_per_sample):
        raise EstimatorError("loss_fn_per_sample must be callable: delta -> per-sample losses")
    return _run(_Objective(loss_fn_per_sample, per_sample=True), n, method, sigma, queries, direction, seeds,
                base_loss, dim_scaling, coord_scheme, density, blocks)
