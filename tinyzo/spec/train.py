"""Pure-Python specification of tinyzo's int8 zeroth-order training step (what the C port and the vectors cite).

One function per row of the training contract of ``docs/porting.md``, then :func:`zo_step` (weight
perturbation) and :func:`zo_node_step` (node perturbation), which compose them into one whole step in
the order of :class:`tinyzo.zo.trainer.ZOTrainer` and ``port/c/tz_train.c``. The fast paths
(:mod:`tinyzo.training.loss`, :mod:`tinyzo.training.update`, :mod:`tinyzo.kernels.zo`,
:mod:`tinyzo.kernels.local_grad`, the trainer) are tested to equal these functions bit for bit
(``tests/test_spec_train.py``).

Values are Python ``int`` (exact) and Python ``float`` (IEEE double). **float32 arithmetic** is
written out with :func:`f32`, which rounds a double to the nearest float32 (ties to even, as C's
``(float)x``, via a ``struct`` round trip): the C float32 operation ``a op b`` on float32 operands is
``f32(a op b)`` with the operation done in double. For ``+ - * /`` this is the same result: double
has 53 >= 2 * 24 + 2 significand bits, so rounding the double result once more to float32 gives the
correctly rounded float32 result (double rounding is innocuous, Figueroa 1995). Every float32
operation of the C step appears below as one ``f32(...)``, in its order; a C port compiled with
``-ffp-contract=off`` (no FMA) performs the same operations. Where C uses double (the local
backward's accumulator, prepare-time constants) the spec uses plain Python floats.

``exp`` and ``log`` of the loss: ``expf(a) = (float)exp((double)a)`` and
``logf(x) = (float)log((double)x)``, the double libm result rounded once (the port's default
``TZ_EXPF`` / ``TZ_LOGF``). This is the correctly rounded float32 exp/log except when the exact value
lies within one double ULP of a float32 rounding boundary. The host's libm (``math.exp``) and numpy's
own float64 exp (what :func:`tinyzo.training.loss.cross_entropy_int8` calls) differ in the last
double bit on about 5% of arguments here, yet give the same float32 on every float32 argument of the
loss (checked exhaustively: ``scripts/expf_exhaustive.py``, numbers in ``docs/porting.md``). A
firmware ``expf`` / ``logf`` (newlib, Arm optimized-routines) can be 1 ULP off in rare cases.

Scope: what the C port implements. The per-step update without momentum (the float shadow and
momentum of :class:`tinyzo.training.update.IntegerSGD` are host options), integer directions
(rademacher, gaussian, uniform), every output channel of a trained layer (no channel subsets).

No input validation (the public fast paths validate); bad option names raise
:class:`tinyzo.errors.TrainingError`.
"""

from __future__ import annotations

import functools
import math
import struct
import zlib
from dataclasses import dataclass
from fractions import Fraction

from tinyzo.errors import TrainingError
from tinyzo.spec.prng import (
    MASK32,
    derive_seed,
    gaussian_int,
    gaussian_multiplier,
    rademacher,
    round_shift_half_away,
    uniform_int,
    xorshift32_sequence,
)

#: the ``query`` argument of derive_seed reserved for the stochastic-rounding streams
ROUNDING_QUERY = 0xFFFFFFFF
#: derive_seed layer ids: weights of operator k use 2k, its bias 2k + 1, its output (node) NODE_LAYER_ID + k
NODE_LAYER_ID = 1_000_000
#: |d| is clipped to this before rounding (beyond it any int32 result saturates anyway)
DELTA_LIMIT = float(2**38)
INT8_WEIGHT_CLAMP = (-127, 127)
INT32_CLAMP = (-(2**31), 2**31 - 1)
ESTIMATORS = ("rge", "spsa", "sign-spsa")
DIRECTIONS = ("rademacher", "gaussian", "uniform")
ROUNDINGS = ("nearest", "stochastic")

_F32 = struct.Struct("<f")


def _check(value, choices, what):
    if value not in choices:
        raise TrainingError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")


# ----------------------------------------------------------------------------------------------
# float32
# ----------------------------------------------------------------------------------------------


def f32(x: float) -> float:
    """C ``(float)x``: the float32 nearest to the double ``x`` (ties to even; +-inf beyond FLT_MAX), as a float."""
    try:
        return _F32.unpack(_F32.pack(x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def expf(a: float) -> float:
    """C ``(float)exp((double)a)`` for a float32 ``a`` (see the module docstring)."""
    return f32(math.exp(a))


def logf(x: float) -> float:
    """C ``(float)log((double)x)`` for a float32 ``x > 0`` (see the module docstring)."""
    return f32(math.log(x))


# ----------------------------------------------------------------------------------------------
# loss
# ----------------------------------------------------------------------------------------------


def cross_entropy_sample(q, label: int, scale: float, zero_point: int) -> float:
    """Loss of one sample (float32, nats) from its int8 logits ``q[K]`` and label in [0, K-1].

    C, every operation float32 (``s = (float)scale``)::

        m   = (float)(qmax - zp) * s
        a_j = (float)(q_j - zp) * s - m                  # <= 0
        S   = e_0 + e_1 + ... (left to right),  e_j = expf(a_j)
        loss = logf(S) - a_y

    Equals :func:`tinyzo.training.loss.cross_entropy_int8` row by row.
    """
    s = f32(scale)
    m = f32(float(max(q) - zero_point) * s)
    total = a_y = 0.0
    for j, qj in enumerate(q):
        a = f32(f32(float(qj - zero_point) * s) - m)
        e = expf(a)
        total = e if j == 0 else f32(total + e)
        if j == label:
            a_y = a
    return f32(logf(total) - a_y)


def mean_f32(values) -> float:
    """Batch mean, C ``((v0 + v1) + v2 + ...) / (float)N`` in float32 (N >= 1). Equals ``mean_float32``."""
    total = values[0]
    for v in values[1:]:
        total = f32(total + v)
    return f32(total / f32(float(len(values))))


def projected_difference(estimator: str, plus: float, other: float) -> float:
    """The projected loss difference of one query (float32), per sample or of the batch means.

    rge: ``plus - base`` (``other`` = the unperturbed loss); spsa: ``(plus - minus) / 2.0f``
    (``other`` = the loss at ``-delta``); sign-spsa: the sign of the spsa value (1.0f, -1.0f or 0.0f).
    """
    _check(estimator, ESTIMATORS, "estimator")
    diff = f32(plus - other)
    if estimator == "rge":
        return diff
    half = f32(diff / 2.0)
    if estimator == "spsa":
        return half
    return 1.0 if half > 0 else (-1.0 if half < 0 else 0.0)


# ----------------------------------------------------------------------------------------------
# perturbations and the estimator's prepare-time constants
# ----------------------------------------------------------------------------------------------


def perturbation(direction: str, seed: int, n: int, sigma: int) -> list[int]:
    """``n`` integer perturbation values from the xorshift32 stream of ``seed`` (C order of the tensor).

    rademacher: ``sigma * (+-1)``; gaussian: ``gaussian_int(seed, n, sigma)``; uniform: integers
    uniform on ``[-sigma, sigma]`` (:mod:`tinyzo.spec.prng`).
    """
    _check(direction, DIRECTIONS, "direction")
    if direction == "rademacher":
        return [sigma * v for v in rademacher(seed, n)[0]]
    if direction == "gaussian":
        return gaussian_int(seed, n, sigma)[0]
    return uniform_int(seed, n, -sigma, sigma)[0]


@functools.lru_cache(maxsize=64)
def gaussian_second_moment(sigma: int) -> float:
    """Exact ``E[v**2]`` of ``gaussian_int(., ., sigma)`` over one xorshift32 period (2**32 - 1 words, no 0).

    ``count[c]`` words have byte sum ``c`` (the 4-fold convolution of 256 ones, minus the word 0);
    ``E = (float)(sum count[c] * v(c - 510)**2) / (2**32 - 1)`` with the integer sum exact.
    """
    counts = [1] * 256
    for _ in range(3):
        conv = [0] * (len(counts) + 255)
        for i, c in enumerate(counts):
            for j in range(256):
                conv[i + j] += c
        counts = conv
    counts[0] -= 1
    m = gaussian_multiplier(sigma)
    total = sum(cnt * round_shift_half_away((c - 510) * m, 16) ** 2 for c, cnt in enumerate(counts))
    return float(total) / float(2**32 - 1)


def second_moment(direction: str, sigma: int) -> float:
    """``E[delta_i**2]`` in double: rademacher ``sigma**2``, uniform ``sigma * (sigma + 1) / 3``, gaussian exact."""
    _check(direction, DIRECTIONS, "direction")
    if direction == "rademacher":
        return float(sigma * sigma)
    if direction == "uniform":
        return float(sigma) * (float(sigma) + 1.0) / 3.0
    return gaussian_second_moment(sigma)


def weight_norm(estimator: str, direction: str, sigma: int, queries: int) -> float:
    """``norm_w`` (also ``norm_node``): float32 of the double ``1 / (m * E[delta**2])``.

    sign-spsa: ``1 / (m * sigma)``; ``m`` = queries.
    """
    _check(estimator, ESTIMATORS, "estimator")
    if estimator == "sign-spsa":
        return f32(1.0 / (queries * float(sigma)))
    return f32(1.0 / (queries * second_moment(direction, sigma)))


def bias_norm(estimator: str, direction: str, sigma_b, queries: int) -> list[float]:
    """``norm_b[c]``: float32 of the double ``1 / (m * (E[u**2] * sigma_b[c]**2))`` (u drawn with sigma 1).

    sign-spsa: ``1 / (m * sigma_b[c])``; ``m`` = queries.
    """
    _check(estimator, ESTIMATORS, "estimator")
    if estimator == "sign-spsa":
        return [f32(1.0 / (queries * float(sb))) for sb in sigma_b]
    mu1 = second_moment(direction, 1)
    return [f32(1.0 / (queries * (mu1 * float(sb * sb)))) for sb in sigma_b]


def bias_scale(s_x: float, s_w) -> list[float]:
    """The bias scale per channel, float32 ``s_x * s_w[c]`` (``s_x``, ``s_w[c]`` float32 values)."""
    return [f32(f32(s_x) * f32(s)) for s in s_w]


def bias_sigma(s_y: float, b_scale) -> list[int]:
    """Default bias perturbation per channel (int32 units): ``max(1, round_half_even(s_y / b_scale[c]))`` in double."""
    return [max(1, round(s_y / sb)) for sb in b_scale]


def acc_scale(s_x: float, s_w, s_y: float) -> list[float]:
    """The node local backward's per-channel scale: float32 of the double ``(s_x * s_w[c]) / s_y``."""
    return [f32((s_x * s) / s_y) for s in s_w]


# ----------------------------------------------------------------------------------------------
# gradient estimates
# ----------------------------------------------------------------------------------------------


def accumulate_weight_grad(g, delta, coef_mean: float, norm_w: float) -> list[float]:
    """One query's weight-gradient term: ``g_i += (coef_mean * norm_w) * (float)delta_i`` in float32.

    ``g``: float32[n] (from 0.0, queries in order), ``delta``: the query's integer weight
    perturbation. Returns the new ``g``.
    """
    c = f32(coef_mean * norm_w)
    return [f32(gi + f32(c * float(d))) for gi, d in zip(g, delta)]


def accumulate_bias_grad(g, u, coef_mean: float, norm_b, sigma_b) -> list[float]:
    """One query's bias-gradient term: ``g_c += (coef_mean * norm_b[c]) * (float)(sigma_b[c] * u_c)`` in float32.

    ``u``: the bias direction drawn with sigma 1 (the perturbation is ``sigma_b[c] * u_c``).
    """
    return [f32(gc + f32(f32(coef_mean * nb) * f32(float(sb * uc)))) for gc, uc, nb, sb in zip(g, u, norm_b, sigma_b)]


def accumulate_node_grad(g, coef, u, norm_node: float) -> list[list[float]]:
    """One query's node-output-gradient term: ``g[n][i] += (coef[n] * (norm_node / (float)N)) * (float)u[n][i]``.

    ``g``: float32[N][size] per sample (flattened output), ``coef``: float32[N] the per-sample projected
    differences, ``u``: int[N][size] the query's node perturbation. Float32 throughout.
    """
    fac = f32(norm_node / f32(float(len(coef))))
    out = []
    for gn, cn, un in zip(g, coef, u):
        t = f32(cn * fac)
        out.append([f32(gi + f32(t * float(ui))) for gi, ui in zip(gn, un)])
    return out


def node_acc_grad(g_y, y, act_min: int, act_max: int, scale) -> list[float]:
    """``dL/dacc`` of one sample: ``(g * (act_min < y < act_max ? 1.0f : 0.0f)) * scale[c]`` in float32.

    ``g_y``: float32[size], ``y``: int8[size] (flat, channel last), ``scale``: float32[C] (:func:`acc_scale`).
    A masked element is ``(g * 0.0f) * scale``: a signed zero.
    """
    nc = len(scale)
    out = []
    for i, (g, v) in enumerate(zip(g_y, y)):
        mask = 1.0 if act_min < v < act_max else 0.0
        out.append(f32(f32(g * mask) * scale[i % nc]))
    return out


def local_weight_grad(dacc, x, x_zero_point: int, *, in_shape, out_shape, kernel=(1, 1), stride=(1, 1),
                      dilation=(1, 1), padding=(0, 0), depth_multiplier: int = 0):
    """Node perturbation's one-layer local backward: weight and bias gradients from ``dL/dacc``.

    ``dacc``: float32[N][OH*OW*O] and ``x``: int8[N][H*W*C] per sample, flat NHWC (``in_shape`` =
    (H, W, C), ``out_shape`` = (OH, OW, O)); ``padding`` the leading (top, left) padding. For each
    weight (conv OHWI ``[o][fy][fx][ic]``; depthwise, ``depth_multiplier`` M >= 1, 1HWO ``[fy][fx][o]``
    reading input channel ``o // M``; a fully-connected layer [O, K] is a 1x1 conv over its R rows per
    sample: ``in_shape`` (1, R, K), ``out_shape`` (1, R, O))::

        gw = (float) sum over (b, oy, ox) in C order of (double)dacc * (double)(x - zp)
        gb = (float) sum over (b, oy, ox) in C order of (double)dacc

    each from +0.0 in a double accumulator, padding taps and zero ``dacc`` skipped (they add a signed
    zero, which never changes such a sum), one rounding to float32 at the end. Every product is exact
    in double. Returns ``(gw float32 list in the weight layout, gb float32[O])``.
    """
    h, wd, c = in_shape
    oh, ow, o_n = out_shape
    kh, kw = kernel
    sh, sw = stride
    dh, dw = dilation
    ph, pw = padding
    depthwise = depth_multiplier >= 1
    gb = [0.0] * o_n
    gw = [0.0] * (kh * kw * o_n if depthwise else o_n * kh * kw * c)
    for o in range(o_n):
        acc = 0.0
        for b in range(len(dacc)):
            for p in range(oh * ow):
                d = dacc[b][p * o_n + o]
                if d != 0.0:
                    acc += d
        gb[o] = f32(acc)
        for fy in range(kh):
            for fx in range(kw):
                for j in range(1 if depthwise else c):
                    ic = o // depth_multiplier if depthwise else j
                    acc = 0.0
                    for b in range(len(dacc)):
                        for oy in range(oh):
                            iy = oy * sh - ph + fy * dh
                            if not 0 <= iy < h:
                                continue
                            for ox in range(ow):
                                ix = ox * sw - pw + fx * dw
                                d = dacc[b][(oy * ow + ox) * o_n + o]
                                if not 0 <= ix < wd or d == 0.0:
                                    continue
                                acc += d * float(x[b][(iy * wd + ix) * c + ic] - x_zero_point)
                    wi = (fy * kw + fx) * o_n + o if depthwise else ((o * kh + fy) * kw + fx) * c + j
                    gw[wi] = f32(acc)
    return gw, gb


# ----------------------------------------------------------------------------------------------
# the update
# ----------------------------------------------------------------------------------------------


def round_subtract_spec(x: int, d: float, rounding: str = "nearest", r24: int | None = None) -> int:
    """Exact ``round(x - d)`` of an integer ``x`` and a float32 ``d`` (held in a Python float), unclamped.

    ``v = x - d`` as an exact rational (no float rounding, so int32 biases above 2**24 keep their bits);
    nearest: the closer integer, ties away from zero (C ``roundf``); stochastic:
    ``floor(v + r24 / 2**24)`` with ``r24`` in [0, 2**24). ``|d|`` is clipped to 2**38 first (beyond it
    any int32 result saturates). The integer algorithm a port uses (``tz_round_subtract``) is
    :func:`tinyzo.training.update.round_subtract`.
    """
    d = max(-DELTA_LIMIT, min(DELTA_LIMIT, float(d)))
    v = Fraction(int(x)) - Fraction(d)
    if rounding == "nearest":
        fl = math.floor(v)
        frac = v - fl
        if frac > Fraction(1, 2):
            return fl + 1
        if frac < Fraction(1, 2):
            return fl
        return fl + 1 if v > 0 else fl
    if rounding == "stochastic":
        return math.floor(v + Fraction(int(r24), 1 << 24))
    raise TrainingError(f"unknown rounding {rounding!r}; choose one of {', '.join(ROUNDINGS)}")


def qas_step(g: float, scale: float, lr: float) -> float:
    """The QAS step in integer units: ``kc = lr * (1.0f / (s * s)); d = kc * g``, float32 (lr, s, g float32).

    ``lr`` is the scheduled learning rate (a double, rounded to float32 here); ``d = 0`` when ``lr <= 0``.
    """
    if lr <= 0:
        return 0.0
    s = f32(scale)
    kc = f32(f32(lr) * f32(1.0 / f32(s * s)))
    return f32(kc * g)


def qas_update(x: int, g: float, scale: float, lr: float, rounding: str = "nearest", r24: int | None = None,
               clamp=INT8_WEIGHT_CLAMP) -> int:
    """One parameter of the update: ``clamp(round(x - qas_step(g, s, lr)))``, the round of the exact real.

    ``scale``: ``s_w[c]`` for a weight, ``bias_scale[c]`` for a bias; ``clamp``: (-127, 127) for int8
    weights, :data:`INT32_CLAMP` for int32 biases.
    """
    lo, hi = clamp
    return min(hi, max(lo, round_subtract_spec(x, qas_step(g, scale, lr), rounding, r24)))


def rounding_seed(seed: int, step: int, name: str) -> int:
    """Seed of parameter ``name``'s (e.g. ``"11/w"``) stochastic-rounding stream at ``step``.

    ``derive_seed(seed, step mod 2**32, ROUNDING_QUERY, crc32(utf-8 name))``.
    """
    return derive_seed(seed, step & MASK32, ROUNDING_QUERY, zlib.crc32(name.encode("utf-8")) & MASK32)


def stochastic_r24(seed: int, n: int) -> list[int]:
    """The 24-bit uniforms of stochastic rounding: element i (C order) gets output i of xorshift32 >> 8."""
    return [v >> 8 for v in xorshift32_sequence(seed, n)[0]]


def update_tensor(name: str, values, grads, scales, *, lr: float, rounding: str, seed: int, step: int,
                  clamp) -> list[int]:
    """:func:`qas_update` of every element of parameter tensor ``name`` (per-element ``scales``)."""
    n = len(values)
    r24 = stochastic_r24(rounding_seed(seed, step, name), n) if rounding == "stochastic" else [None] * n
    return [qas_update(x, g, s, lr, rounding, r, clamp) for x, g, s, r in zip(values, grads, scales, r24)]


# ----------------------------------------------------------------------------------------------
# whole steps
# ----------------------------------------------------------------------------------------------


@dataclass
class TrainedLayer:
    """One trained layer of a step (operator index ``k``; parameters named ``"k/w"``, ``"k/b"``).

    ``w``: int8 weights (C order of the weight tensor); ``b``: int32 bias [O]; ``w_scale``: float32
    ``s_w`` of each weight's output channel, one per weight (per-tensor: all equal); ``b_scale``:
    float32 [O] (:func:`bias_scale`); ``sigma_b``: bias perturbation [O] in int32 units (:func:`bias_sigma`).
    """

    k: int
    w: list
    b: list
    w_scale: list
    b_scale: list
    sigma_b: list


@dataclass
class NodeLayer(TrainedLayer):
    """A node-perturbed layer: a :class:`TrainedLayer` plus its unperturbed activations and geometry.

    ``x``: int8[N][H*W*C] input, ``y``: int8[N][OH*OW*O] output per sample (flat NHWC);
    ``x_zero_point``; ``act_min``/``act_max`` the output clamp; ``acc_scale`` float32[O]
    (:func:`acc_scale`); the rest as :func:`local_weight_grad`.
    """

    x: list = None
    y: list = None
    x_zero_point: int = 0
    act_min: int = -128
    act_max: int = 127
    acc_scale: list = None
    in_shape: tuple = None
    out_shape: tuple = None
    kernel: tuple = (1, 1)
    stride: tuple = (1, 1)
    dilation: tuple = (1, 1)
    padding: tuple = (0, 0)
    depth_multiplier: int = 0


def _clamp(v, lo, hi):
    return min(hi, max(lo, v))


def zo_step(forward, layers, labels, *, out_scale, out_zero_point, seed, step, lr, queries=1, estimator="rge",
            direction="rademacher", sigma=1, rounding="nearest", train_bias=True):
    """One ZO weight-perturbation step (ZOTrainer with target "weight", per-step update, no momentum).

    ``forward(params)`` runs the model with ``params = {k: (w, b)}`` (int lists) on the batch and
    returns the int8 logits per sample (``[N][K]``); ``layers``: :class:`TrainedLayer` list; ``step``:
    the step number (seeds); ``lr``: the scheduled learning rate. Returns ``({k: (w, b)}, record)``,
    record = ``{"base", "base_mean", "plus", "minus", "coef_mean", "grads"}`` (the values the golden
    vectors hold).
    """
    def losses(params):
        return [cross_entropy_sample(q, y, out_scale, out_zero_point) for q, y in zip(forward(params), labels)]

    def perturbed(deltas, sign):  # theta + sign * delta, clamped to the parameter range
        return {ly.k: ([_clamp(w + sign * d, *INT8_WEIGHT_CLAMP) for w, d in zip(ly.w, deltas[ly.k][0])],
                       [_clamp(b + sign * sb * u, *INT32_CLAMP) for b, sb, u in zip(ly.b, ly.sigma_b, deltas[ly.k][1])]
                       if train_bias else ly.b) for ly in layers}

    base = losses({ly.k: (ly.w, ly.b) for ly in layers})
    base_mean = mean_f32(base)
    norm_w = weight_norm(estimator, direction, sigma, queries)
    norm_b = {ly.k: bias_norm(estimator, direction, ly.sigma_b, queries) for ly in layers}
    gw = {ly.k: [0.0] * len(ly.w) for ly in layers}
    gb = {ly.k: [0.0] * len(ly.b) for ly in layers}
    rec = {"base": base, "base_mean": base_mean, "plus": [], "minus": [], "coef_mean": []}
    for q in range(queries):
        deltas = {ly.k: (perturbation(direction, derive_seed(seed, step, q, 2 * ly.k), len(ly.w), sigma),
                         perturbation(direction, derive_seed(seed, step, q, 2 * ly.k + 1), len(ly.b), 1)
                         if train_bias else [0] * len(ly.b)) for ly in layers}
        plus = losses(perturbed(deltas, +1))
        rec["plus"].append(plus)
        if estimator == "rge":
            coef_mean = projected_difference("rge", mean_f32(plus), base_mean)
        else:
            minus = losses(perturbed(deltas, -1))
            rec["minus"].append(minus)
            coef_mean = projected_difference(estimator, mean_f32(plus), mean_f32(minus))
        rec["coef_mean"].append(coef_mean)
        for ly in layers:
            gw[ly.k] = accumulate_weight_grad(gw[ly.k], deltas[ly.k][0], coef_mean, norm_w)
            if train_bias:
                gb[ly.k] = accumulate_bias_grad(gb[ly.k], deltas[ly.k][1], coef_mean, norm_b[ly.k], ly.sigma_b)
    rec["grads"] = {ly.k: (gw[ly.k], gb[ly.k]) for ly in layers}
    opts = {"lr": lr, "rounding": rounding, "seed": seed, "step": step}
    new = {ly.k: (update_tensor(f"{ly.k}/w", ly.w, gw[ly.k], ly.w_scale, clamp=INT8_WEIGHT_CLAMP, **opts),
                  update_tensor(f"{ly.k}/b", ly.b, gb[ly.k], ly.b_scale, clamp=INT32_CLAMP, **opts)
                  if train_bias else list(ly.b)) for ly in layers}
    return new, rec


def zo_node_step(forward, layers, labels, *, out_scale, out_zero_point, seed, step, lr, queries=1,
                 estimator="rge", direction="rademacher", sigma_node=1, rounding="nearest", train_bias=True):
    """One ZO node-perturbation step (ZOTrainer with target "node", per-step update, no momentum).

    ``forward(add)`` runs the model on the batch with ``add = {k: [N][size] ints}`` added to layer
    ``k``'s int8 output with int8 saturation right after it is computed (``{}``: unperturbed) and
    returns the int8 logits per sample; ``layers``: :class:`NodeLayer` list. Layer ``k``'s output
    perturbation is one stream of seed ``derive_seed(seed, step, q, NODE_LAYER_ID + k)`` over the
    whole batch in C order. Returns ``({k: (w, b)}, record)`` as :func:`zo_step` (``coef`` per sample).
    """
    def losses(add):
        return [cross_entropy_sample(q, y, out_scale, out_zero_point) for q, y in zip(forward(add), labels)]

    n = len(labels)
    base = losses({})
    norm_node = weight_norm(estimator, direction, sigma_node, queries)
    g_node = {ly.k: [[0.0] * len(ly.y[0]) for _ in range(n)] for ly in layers}
    rec = {"base": base, "base_mean": mean_f32(base), "plus": [], "minus": [], "coef": []}
    for q in range(queries):
        u = {}
        for ly in layers:
            size = len(ly.y[0])
            flat = perturbation(direction, derive_seed(seed, step, q, NODE_LAYER_ID + ly.k), n * size, sigma_node)
            u[ly.k] = [flat[i * size:(i + 1) * size] for i in range(n)]
        plus = losses(u)
        rec["plus"].append(plus)
        if estimator == "rge":
            coef = [projected_difference("rge", p, b) for p, b in zip(plus, base)]
        else:
            minus = losses({k: [[-v for v in row] for row in rows] for k, rows in u.items()})
            rec["minus"].append(minus)
            coef = [projected_difference(estimator, p, m) for p, m in zip(plus, minus)]
        rec["coef"].append(coef)
        for ly in layers:
            g_node[ly.k] = accumulate_node_grad(g_node[ly.k], coef, u[ly.k], norm_node)
    new, rec["grads"] = {}, {}
    opts = {"lr": lr, "rounding": rounding, "seed": seed, "step": step}
    for ly in layers:
        dacc = [node_acc_grad(g, y, ly.act_min, ly.act_max, ly.acc_scale) for g, y in zip(g_node[ly.k], ly.y)]
        gw, gb = local_weight_grad(dacc, ly.x, ly.x_zero_point, in_shape=ly.in_shape, out_shape=ly.out_shape,
                                   kernel=ly.kernel, stride=ly.stride, dilation=ly.dilation, padding=ly.padding,
                                   depth_multiplier=ly.depth_multiplier)
        rec["grads"][ly.k] = (gw, gb)
        new[ly.k] = (update_tensor(f"{ly.k}/w", ly.w, gw, ly.w_scale, clamp=INT8_WEIGHT_CLAMP, **opts),
                     update_tensor(f"{ly.k}/b", ly.b, gb, ly.b_scale, clamp=INT32_CLAMP, **opts)
                     if train_bias else list(ly.b))
    return new, rec
