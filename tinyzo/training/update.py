"""The one update module of int8 training (ZO and BP alike): exact integer rounding, QAS-scaled SGD
(:class:`IntegerSGD`), SGD/Adam with or without QAS (:class:`QASOptimizer`), float shadow copies,
learning-rate schedules.

Part 1, :class:`IntegerSGD` (formerly ``ZOSGD``), the QAS-scaled integer SGD every trainer applies.

The update (Quantization-Aware Scaling, as in tiny-training) of an int8 weight ``w`` with gradient
``g = d loss / d w`` *per integer unit* and weight scale ``s_w`` (per output channel)::

    w <- clamp(round(w - lr * g / s_w**2), -127, 127)

It is SGD with learning rate ``lr`` on the real weight ``W = s_w * w`` (d loss/dW = g / s_w, and a
real step ``lr * g / s_w`` is ``lr * g / s_w**2`` integer units). Biases (int32, scale ``s_x * s_w``):
``b <- clamp_int32(round(b - lr * g_b / (s_x s_w)**2))``.

Arithmetic contract (what firmware does, in this order)::

    k_c   = (float)lr * (1.0f / (s_c * s_c)) // float32, once per channel and step
    d_i   = k_c * g_i                        // float32
    w_new = clamp(round(w_i - d_i))          // round of the EXACT real number w_i - d_i

``round`` sees ``w_i - d_i`` exactly, with no intermediate float rounding (a float32 ``w - d`` would
lose the bits of an int32 bias above 2**24). It is implemented in integers
(:func:`round_subtract`): ``t = d * 2**24`` (exact in float32), ``n = floor(t)``, ``sticky = (t != n)``,
``V = w * 2**24 - n`` (int64), so ``(w - d) * 2**24`` lies in ``(V - 1, V]`` and equals ``V`` iff not
sticky. With ``A = V >> 24`` and ``R = V & (2**24 - 1)``:

* ``"nearest"``: half away from zero (C ``roundf``): ``A + (R > 2**23 or (R == 2**23 and not sticky
  and A >= 0))``; a sticky value is never a tie.
* ``"stochastic"``: ``floor(w - d + U)`` with ``U = r / 2**24``, ``r`` the top 24 bits of an xorshift32
  output (``x >> 8``, 24-bit fixed point): ``(V + r - sticky) >> 24``. ``P(round up)`` is the fraction
  of ``w - d`` to within 2**-24, so the rounding is unbiased to within 2**-24. The stream for element i
  (C order) of a tensor is output i of ``xorshift32`` from the given seed.

:func:`tinyzo.spec.train.round_subtract_spec` (re-exported here) states the same with Python fractions
(the executable definition) and is tested equal; :mod:`tinyzo.spec.train` is the whole step's.

Per-step rounding vs float shadow (:class:`IntegerSGD` ``mode``):

* ``"per_step"`` (as the ZO-on-MCU paper): the integer parameter is re-rounded every step, nothing
  else is stored; a step smaller than half an LSB never moves a weight with nearest rounding
  (stochastic rounding moves it with the right probability).
* ``"shadow"`` (as tiny-training): a float32 shadow copy holds the real-valued parameter and
  accumulates every step; the integer parameter is the rounding of the shadow. The shadow is stored
  as its float32 difference from the integer parameter (:class:`FloatShadow`; same memory as a float32
  copy, without losing int32 bias integers above 2**24): ``e = (float)(d - r)``, ``p_new =
  clamp(round(p - e))``, ``r = (float)(p - p_new) - e``, clipped so the shadow stays in the clamp range.

Learning-rate schedules (:func:`lr_schedule`): constant, cosine, linear, each with an optional linear
warm-up. Momentum (``v <- mu v + g``, float32) is off by default (it costs a float32 per parameter).

Part 2, :class:`QASOptimizer` (formerly ``BPOptimizer``).
Optimizers of back propagation on the int8 graph: SGD (momentum) and Adam, each with or without QAS.

The gradients come from :func:`tinyzo.bp.backward.backward` *per integer unit*: ``g = dL / d w_int``
for an int8 weight and ``g = dL / d b_int`` for an int32 bias. The dequantized parameters are
``W = s * w_int`` with ``s = s_w[c]`` per output channel for weights and ``s = s_x * s_w[c]`` for
biases, so the real gradient is ``G = dL / dW = g / s``.

**QAS** (tiny-training's Quantization-Aware Scaling), ``qas=True``: the update is the fp32
optimizer's step on the dequantized parameter ``W``, converted to integer units:

* SGD: ``d = lr * v / s**2`` integer units, with ``v = g`` (no momentum) or ``v <- mu v + g``
  (float32). That is ``W <- W - lr * (mu V + G)``: real SGD with momentum on ``W``.
* Adam: ``G = g * (1/s)`` (float32), ``m <- b1 m + (1 - b1) G``, ``v <- b2 v + (1 - b2) G*G``,
  ``D = lr * (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)`` (the real step on ``W``, ``t`` =
  1, 2, ... the step number) and ``d = D * (1/s)`` integer units. Every operation float32, in this
  order; the constants ``1 - b1``, ``1 - b2`` and the bias corrections ``1 - b**t`` are computed in
  double and rounded to float32 once (``1 - (float)0.999`` in float32 would be off by 1e-5 relative).

**Without QAS**, ``qas=False``: the integer parameter is treated as if it were the real one: the same
formulas with ``s = 1``, i.e. the raw per-integer-unit gradient ``g`` and a step ``d`` applied in
integer units as it is. Relative to the fp32 step on ``W`` this is mis-scaled:

* SGD: ``d = lr * g`` instead of ``lr * g / s**2``: the step (in any unit) is ``s**2`` times the fp32
  step (``s`` ~ 1e-2 for weights, ~ 1e-4 .. 1e-6 for biases, so it is 1e4 .. 1e12 times too small).
  Equivalently, tiny-training's statement: the ratio ``||w_int|| / ||g||`` is ``s**-2`` times the fp32
  ratio ``||W|| / ||G||``. Per channel and per layer the factor differs, so no single learning rate
  fixes it; that is the "int8 SGD without QAS" row of tiny-training's table.
* Adam: ``d = lr * u`` integer units with ``u = m_hat / (sqrt(v_hat) + eps)`` of the raw ``g``;
  Adam normalizes the gradient's magnitude, so the only mis-scaling left is the step's unit: the real
  step is ``s * lr * u`` instead of ``lr * u``, a factor ``s`` (not ``s**2``) per channel, and ``eps``
  now compares with integer-unit gradients.

Note: applying Adam to tiny-training's QAS-scaled gradient ``g / s**2`` and stepping in integer units
would make QAS a no-op for Adam (Adam is invariant to the gradient's scale, up to ``eps``); this module
instead defines QAS Adam as fp32 Adam on ``W`` (above), the only definition under which "QAS" means
"the real-valued step" for both optimizers.

The integer step ``d`` is applied by :class:`IntegerSGD` (its exact rounding of ``p - d``,
clamping, per-step or float-shadow ``mode``, nearest or stochastic ``rounding``, schedules and
seeds): SGD is IntegerSGD itself (with the scales, or ``None`` without QAS); Adam feeds its ``d`` through a
IntegerSGD with ``lr = 1`` and no scaling, whose step is then exactly ``d`` (``qas_step`` multiplies by
``float32(1) * 1``). So both share one rounding / clamping / shadow implementation:

* ``mode="per_step"``: ``p <- clamp(round(p - d))`` every step; a step under half an LSB never moves a
  parameter with ``rounding="nearest"`` (``"stochastic"`` moves it with the right probability).
* ``mode="shadow"``: a float32 shadow (stored as a residual, :class:`FloatShadow`)
  accumulates every ``d``; the integer parameter is its rounding.

Clamps: int8 weights to [-127, 127] (``weight_clamp``), int32 biases saturate to the int32 range.
"""

from __future__ import annotations

import math
import numbers
import zlib

import numpy as np

from tinyzo.errors import TinyzoError, check_choice
from tinyzo.kernels.update import shadow_update_nearest
from tinyzo.spec.train import round_subtract_spec  # the executable definition, re-exported
from tinyzo.training.prng import derive_seed, xorshift32_sequence

__all__ = [
    "KINDS",
    "MODES",
    "ROUNDINGS",
    "ROUNDING_QUERY",
    "SCHEDULES",
    "ZOSGD",
    "BPOptimizer",
    "FloatShadow",
    "IntegerSGD",
    "OptimizerError",
    "QASOptimizer",
    "int8_weight_update",
    "int32_bias_update",
    "lr_schedule",
    "optimizer_memory_name",
    "param_layer_id",
    "qas_step",
    "round_subtract",
    "round_subtract_spec",
    "stochastic_bits",
]

ROUNDINGS = ("nearest", "stochastic")
#: the optimizers of :class:`QASOptimizer`
KINDS = ("sgd", "adam")
MODES = ("per_step", "shadow")
SCHEDULES = ("constant", "cosine", "linear")
INT8_WEIGHT_CLAMP = (-127, 127)
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
#: the ``query`` argument of derive_seed reserved for the stochastic-rounding stream of IntegerSGD
ROUNDING_QUERY = 0xFFFFFFFF
_ONE24 = 1 << 24
_HALF24 = 1 << 23
_DELTA_LIMIT = float(2**38)  # |d| beyond this saturates any int32 result; keeps d * 2**24 < 2**62


class OptimizerError(TinyzoError):
    """An update or optimizer argument is invalid (lr, scale, rounding, mode, shapes, state)."""


# ----------------------------------------------------------------------------------------------
# exact rounding of (integer - float32)
# ----------------------------------------------------------------------------------------------


def round_subtract(x, d, rounding: str = "nearest", r24=None) -> np.ndarray:
    """Exact ``round(x - d)`` of integers ``x`` and float32 ``d`` (same shape): int64 array, unclamped.

    ``rounding="nearest"``: half away from zero; ``"stochastic"``: ``floor(x - d + r24 / 2**24)`` with
    ``r24`` int64 in [0, 2**24) per element. ``|d|`` is clipped to 2**38 first (the result then
    saturates any int32 clamp anyway). Integer algorithm in the module docstring.
    """
    x = np.asarray(x).astype(np.int64)
    d = np.clip(np.asarray(d, dtype=np.float32), np.float32(-_DELTA_LIMIT), np.float32(_DELTA_LIMIT))
    t = d * np.float32(_ONE24)                       # exact: a power-of-two scaling
    ft = np.floor(t)
    sticky = (ft != t).astype(np.int64)
    v = x * np.int64(_ONE24) - ft.astype(np.int64)   # (x - d) * 2**24 in (v - 1, v], == v iff not sticky
    if rounding == "nearest":
        a = v >> 24
        r = v & np.int64(_ONE24 - 1)
        up = (r > _HALF24) | ((r == _HALF24) & (sticky == 0) & (a >= 0))
        return a + up.astype(np.int64)
    if rounding == "stochastic":
        if r24 is None:
            raise OptimizerError("stochastic rounding needs the random bits r24 (give a seed)")
        return (v + np.asarray(r24, dtype=np.int64) - sticky) >> 24
    raise OptimizerError(f"unknown rounding {rounding!r}; choose one of {', '.join(ROUNDINGS)}")


def stochastic_bits(seed: int, size: int) -> np.ndarray:
    """The 24-bit uniforms of stochastic rounding: ``xorshift32_sequence(seed, size) >> 8`` as int64[size]."""
    return (xorshift32_sequence(seed, size).astype(np.int64) >> 8)


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------


def _check_lr(lr) -> float:
    if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, numbers.Real) or not math.isfinite(float(lr)):
        raise OptimizerError(f"lr must be a finite number > 0, got {lr!r}")
    if float(lr) <= 0:
        raise OptimizerError(f"lr must be > 0, got {lr!r}")
    return float(lr)


def _check_rounding(rounding) -> str:
    return check_choice(rounding, ROUNDINGS, "rounding", OptimizerError)


def _check_seed(seed, rounding) -> int | None:
    if rounding != "stochastic":
        return None
    if seed is None:
        raise OptimizerError("stochastic rounding needs a seed in [1, 2**32 - 1] "
                             "(e.g. tinyzo.training.prng.derive_seed(base_seed, step, query, layer))")
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or not 1 <= int(seed) <= 0xFFFFFFFF:
        raise OptimizerError(f"seed must be an integer in [1, 2**32 - 1], got {seed!r}")
    return int(seed)


def _check_grad(g, shape, name="g") -> np.ndarray:
    g = np.asarray(g)
    if g.dtype.kind != "f":
        raise OptimizerError(f"{name} must be a float array (float32 gradient), got {g.dtype}")
    if g.shape != tuple(shape):
        raise OptimizerError(f"{name} has shape {g.shape}, the parameter has shape {tuple(shape)}")
    g = g.astype(np.float32, copy=False)
    if not np.all(np.isfinite(g)):
        raise OptimizerError(f"{name} contains NaN or inf")
    return g


def _scale_factor(scale, axis, shape, name="scale") -> np.ndarray:
    """float32 array broadcastable to ``shape``: 1 / (s * s) per channel along ``axis`` (float32 ops)."""
    if scale is None:
        return np.ones((1,) * len(shape), dtype=np.float32)
    s = np.asarray(scale)
    if s.dtype.kind not in "fiu" or s.dtype == np.bool_:
        raise OptimizerError(f"{name} must be a float or a float32 array, got {s.dtype}")
    s = s.astype(np.float32).reshape(-1)
    if s.size == 0 or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise OptimizerError(f"{name} must be finite and > 0, got {scale!r}")
    if s.size == 1:
        return (np.float32(1.0) / (s * s)).reshape((1,) * len(shape)).astype(np.float32)
    if axis is None:
        raise OptimizerError(f"a per-channel {name} of {s.size} values needs the channel axis")
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
        raise OptimizerError(f"axis must be an integer, got {axis!r}")
    ax = int(axis)
    if not -len(shape) <= ax < len(shape):
        raise OptimizerError(f"axis {ax} is out of range for a parameter of shape {tuple(shape)}")
    ax %= len(shape)
    if shape[ax] != s.size:
        raise OptimizerError(f"{name} has {s.size} channels but the parameter has {shape[ax]} along axis {ax}")
    bshape = [1] * len(shape)
    bshape[ax] = s.size
    return (np.float32(1.0) / (s * s)).reshape(bshape).astype(np.float32)


def qas_step(g, lr, scale, axis=None, inv=None) -> np.ndarray:
    """The float32 step ``d = k_c * g`` with ``k_c = (float)lr * (1.0f / (s_c * s_c))`` (QAS), shape of ``g``.

    Every operation float32: the square, one reciprocal per channel, the product with lr, the product with g.
    ``scale``: a float, a per-channel float32 array (channels along ``axis``), or None (s = 1).
    ``inv``: the factors ``1.0f / (s_c * s_c)`` already made by ``_scale_factor(scale, axis, g.shape)``
    (the optimizer keeps them between steps), or None to make them here.
    """
    g = np.asarray(g, dtype=np.float32)
    if inv is None:
        inv = _scale_factor(scale, axis, g.shape)
    k = (np.float32(lr) * inv).astype(np.float32)
    return (k * g).astype(np.float32)


def _check_clamp(clamp, lo_min, hi_max, what) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in clamp)
    except (TypeError, ValueError):
        raise OptimizerError(f"clamp must be a pair (lo, hi) of integers, got {clamp!r}") from None
    if not lo_min <= lo <= hi <= hi_max:
        raise OptimizerError(f"clamp must satisfy {lo_min} <= lo <= hi <= {hi_max} for {what}, got {clamp!r}")
    return lo, hi


def _finish(new: np.ndarray, lo: int, hi: int, dtype) -> np.ndarray:
    return np.clip(new, lo, hi).astype(dtype)


# ----------------------------------------------------------------------------------------------
# one-shot updates
# ----------------------------------------------------------------------------------------------


def int8_weight_update(w, g, lr, scale, *, axis=None, rounding: str = "nearest", seed=None,
                       clamp=INT8_WEIGHT_CLAMP) -> np.ndarray:
    """One QAS-scaled integer update of int8 weights: ``clamp(round(w - lr * g / s_w**2))``.

    Args:
        w: int8[...] weights.
        g: float32[same shape], d loss / d (integer weight).
        lr: learning rate, finite > 0.
        scale: the weight scale: a float, or float32[C] per channel along ``axis``.
        axis: channel axis of a per-channel ``scale`` (conv OHWI: 0; depthwise 1HWC: 3; FC [O, K]: 0).
        rounding: ``"nearest"`` (half away from zero) or ``"stochastic"``.
        seed: xorshift32 seed in [1, 2**32 - 1] of the stochastic-rounding stream (required then).
        clamp: (lo, hi) within [-128, 127]; default (-127, 127), the TFLite int8 weight range.

    Returns:
        int8[same shape], a new array. Exact contract in the module docstring.
    """
    w = np.asarray(w)
    if w.dtype != np.int8:
        raise OptimizerError(f"w must be int8 weights, got {w.dtype}")
    lo, hi = _check_clamp(clamp, -128, 127, "int8 weights")
    return _one_shot(w, g, lr, scale, axis, rounding, seed, lo, hi)


def _one_shot(p, g, lr, scale, axis, rounding, seed, lo: int, hi: int) -> np.ndarray:
    """The checked one-shot update of :func:`int8_weight_update` / :func:`int32_bias_update`."""
    g = _check_grad(g, p.shape)
    lr = _check_lr(lr)
    rounding = _check_rounding(rounding)
    seed = _check_seed(seed, rounding)
    d = qas_step(g, lr, scale, axis)
    r24 = stochastic_bits(seed, p.size).reshape(p.shape) if seed is not None else None
    return _finish(round_subtract(p, d, rounding, r24), lo, hi, p.dtype)


def int32_bias_update(b, g, lr, bias_scale, *, rounding: str = "nearest", seed=None) -> np.ndarray:
    """One QAS-scaled integer update of int32 biases: ``clamp_int32(round(b - lr * g / bias_scale**2))``.

    Args:
        b: int32[C] (or any shape) biases.
        g: float32[same shape], d loss / d (integer bias).
        lr: learning rate, finite > 0.
        bias_scale: ``s_x * s_w``: a float, or float32[C] per channel (along the last axis for a 1-D bias).
        rounding, seed: as :func:`int8_weight_update`.

    Returns:
        int32[same shape], a new array; saturates to [-2**31, 2**31 - 1].
    """
    b = np.asarray(b)
    if b.dtype != np.int32:
        raise OptimizerError(f"b must be int32 biases, got {b.dtype}")
    return _one_shot(b, g, lr, bias_scale, -1 if b.ndim else None, rounding, seed, INT32_MIN, INT32_MAX)


# ----------------------------------------------------------------------------------------------
# schedules
# ----------------------------------------------------------------------------------------------


def lr_schedule(kind: str, step: int, total_steps, base_lr, warmup_steps: int = 0) -> float:
    """Learning rate at ``step`` (0-based) of ``total_steps``.

    Warm-up (any kind): for ``step < warmup_steps``, ``base_lr * (step + 1) / warmup_steps``. After,
    with ``t = (step - warmup_steps) / (total_steps - warmup_steps)`` clipped to [0, 1]:
    ``"constant"``: ``base_lr``; ``"cosine"``: ``base_lr * (1 + cos(pi t)) / 2``; ``"linear"``:
    ``base_lr * (1 - t)``. ``total_steps`` may be None for ``"constant"`` without warm-up.
    Steps at or past the end give 0 for cosine and linear.
    """
    if kind not in SCHEDULES:
        raise OptimizerError(f"unknown schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")
    base_lr = _check_lr(base_lr)
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, numbers.Integral) or step < 0:
        raise OptimizerError(f"step must be an integer >= 0, got {step!r}")
    if isinstance(warmup_steps, (bool, np.bool_)) or not isinstance(warmup_steps, numbers.Integral) or warmup_steps < 0:
        raise OptimizerError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
    if total_steps is None:
        if kind != "constant" or warmup_steps:
            raise OptimizerError(f"the {kind!r} schedule{' with warm-up' if warmup_steps else ''} needs total_steps")
    else:
        if isinstance(total_steps, (bool, np.bool_)) or not isinstance(total_steps, numbers.Integral) or total_steps < 1:
            raise OptimizerError(f"total_steps must be an integer >= 1, got {total_steps!r}")
        if warmup_steps > total_steps:
            raise OptimizerError(f"warmup_steps ({warmup_steps}) exceeds total_steps ({total_steps})")
    step, warmup_steps = int(step), int(warmup_steps)
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if kind == "constant":
        return base_lr
    span = max(1, int(total_steps) - warmup_steps)
    t = min(1.0, max(0.0, (step - warmup_steps) / span))
    if kind == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * t))
    return base_lr * (1.0 - t)


# ----------------------------------------------------------------------------------------------
# float shadow and the optimizer
# ----------------------------------------------------------------------------------------------


def optimizer_memory_name(kind: str = "sgd", momentum: float = 0.0, mode: str = "per_step") -> str:
    """The memory planner's name of an optimizer's state: ``"sgd"`` (none), ``"momentum"`` (a float32
    buffer), ``"adam"`` (two), each ``"+shadow"`` with the float32 shadow copy of ``mode="shadow"``.

    Args: kind ``"sgd"`` or ``"adam"``; momentum float >= 0 (SGD with momentum if > 0); mode
    ``"per_step"`` or ``"shadow"``.
    """
    name = "adam" if kind == "adam" else ("momentum" if momentum > 0 else "sgd")
    return name + ("+shadow" if mode == "shadow" else "")


def param_layer_id(name: str) -> int:
    """The ``layer`` argument of derive_seed for parameter ``name``: CRC-32 of its UTF-8 bytes (zlib)."""
    return zlib.crc32(name.encode("utf-8")) & 0xFFFFFFFF


class FloatShadow:
    """Float32 shadow copies of integer parameters, stored as residuals ``r = shadow - p`` (float32).

    ``update(name, p, d, lo, hi, rounding, r24)`` moves the shadow by ``-d`` and returns the new
    integer parameter ``clamp(round(p - e))`` with ``e = (float)(d - r)``; the new residual is
    ``(float)(p - p_new) - e`` clipped so ``p_new + r`` stays in [lo, hi] (no wind-up at the clamp).
    A new name starts with residual 0 (the shadow equals the integer parameter).
    """

    def __init__(self):
        self.residuals: dict[str, np.ndarray] = {}

    def update(self, name: str, p: np.ndarray, d: np.ndarray, lo: int, hi: int, rounding: str, r24=None) -> np.ndarray:
        """Shadow step for one parameter; returns the new integer values (int64, clamped)."""
        r = self.residuals.get(name)
        if r is None or r.shape != p.shape:
            r = np.zeros(p.shape, dtype=np.float32)
        if rounding == "nearest" and np.isfinite(d).all():  # the arithmetic below in one jitted loop, bit-identical
            new = np.empty(p.shape, np.int64)
            r_new = np.empty(p.shape, np.float32)
            shadow_update_nearest(np.ascontiguousarray(p).reshape(-1), np.ascontiguousarray(d, np.float32).reshape(-1),
                                  np.ascontiguousarray(r).reshape(-1), int(lo), int(hi), _DELTA_LIMIT,
                                  new.reshape(-1), r_new.reshape(-1))
            self.residuals[name] = r_new
            return new
        e = (d.astype(np.float32) - r).astype(np.float32)
        new = np.clip(round_subtract(p, e, rounding, r24), lo, hi)
        r_new = ((p.astype(np.int64) - new).astype(np.float32) - e).astype(np.float32)
        r_new = np.clip(r_new, (lo - new).astype(np.float32), (hi - new).astype(np.float32)).astype(np.float32)
        self.residuals[name] = r_new
        return new

    def value(self, name: str, p) -> np.ndarray:
        """The shadow's real values (float64) for integer parameter ``p``."""
        r = self.residuals.get(name)
        p = np.asarray(p).astype(np.float64)
        return p if r is None else p + r.astype(np.float64)


def check_config(state: dict, config: dict) -> None:
    """Refuse a checkpoint whose ``config/<option>`` entries differ from an optimizer's ``config``.

    Raises :class:`OptimizerError` listing every missing or different option.
    """
    diffs = []
    for k, v in config.items():
        key = f"config/{k}"
        if key not in state:
            diffs.append(f"{k} missing")
        elif not np.array_equal(np.asarray(state[key]), np.asarray(v)):
            diffs.append(f"{k}: checkpoint {np.asarray(state[key]).tolist()!r}, optimizer {np.asarray(v).tolist()!r}")
    if diffs:
        raise OptimizerError("the checkpoint's optimizer configuration differs: " + "; ".join(diffs))


class IntegerSGD:
    """SGD on integer parameters with QAS scaling: per-step rounding or a float shadow, optional momentum.

    Args:
        lr: base learning rate, finite > 0.
        schedule: ``"constant"``, ``"cosine"`` or ``"linear"`` (:func:`lr_schedule`).
        total_steps: steps of the schedule (required for cosine/linear and for warm-up).
        warmup_steps: linear warm-up steps (>= 0).
        momentum: 0 (default: no buffer) or in (0, 1): ``v <- mu v + g`` in float32, step with ``v``.
        mode: ``"per_step"`` (round every step) or ``"shadow"`` (:class:`FloatShadow`).
        rounding: ``"nearest"`` or ``"stochastic"``; the stochastic stream of parameter ``name`` at
            step t is seeded ``derive_seed(seed, t, ROUNDING_QUERY, param_layer_id(name))``.
        seed: base seed, int in [0, 2**32 - 1].
        weight_clamp: clamp of int8 parameters (default (-127, 127)); int32 parameters saturate.

    :meth:`step` takes ``params`` (name -> int8 or int32 array), ``grads`` (name -> float32, d loss /
    d integer unit, same keys and shapes) and ``scales`` (name -> ``(scale, axis)``, a float, or None
    for no QAS scaling) and returns new arrays (the inputs are not modified).
    """

    def __init__(self, lr, schedule: str = "constant", *, total_steps=None, warmup_steps: int = 0,
                 momentum: float = 0.0, mode: str = "per_step", rounding: str = "nearest", seed: int = 0,
                 weight_clamp=INT8_WEIGHT_CLAMP):
        self.lr = _check_lr(lr)
        if mode not in MODES:
            raise OptimizerError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        self.rounding = _check_rounding(rounding)
        if isinstance(momentum, (bool, np.bool_)) or not isinstance(momentum, numbers.Real) \
                or not 0.0 <= float(momentum) < 1.0:
            raise OptimizerError(f"momentum must be in [0, 1), got {momentum!r}")
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) <= 0xFFFFFFFF:
            raise OptimizerError(f"seed must be an integer in [0, 2**32 - 1], got {seed!r}")
        self.schedule = schedule
        self.total_steps = None if total_steps is None else int(total_steps)
        self.warmup_steps = int(warmup_steps)
        lr_schedule(schedule, 0, self.total_steps, self.lr, self.warmup_steps)   # validates the schedule
        self.momentum = float(momentum)
        self.mode = mode
        self.seed = int(seed)
        self.weight_clamp = _check_clamp(weight_clamp, -128, 127, "int8 weights")
        self.step_count = 0
        self.buffers: dict[str, np.ndarray] = {}
        self.shadow = FloatShadow() if mode == "shadow" else None
        self._inv_cache: dict = {}

    @property
    def memory_name(self) -> str:
        """The planner's name of this optimizer's state (:func:`optimizer_memory_name`)."""
        return optimizer_memory_name("sgd", self.momentum, self.mode)

    def lr_at(self, step: int) -> float:
        """The scheduled learning rate at ``step``."""
        return lr_schedule(self.schedule, step, self.total_steps, self.lr, self.warmup_steps)

    def _inverse_squares(self, name: str, scale, axis, shape) -> np.ndarray:
        """``_scale_factor(scale, axis, shape)`` of parameter ``name``, made once per (scale values, axis,
        shape): the scales of a trained layer never change, and the check and the float32 arithmetic
        cost more than the update itself on small layers."""
        key = (None if scale is None else np.asarray(scale).tobytes(), np.asarray(scale).dtype.str, axis, tuple(shape))
        hit = self._inv_cache.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        inv = _scale_factor(scale, axis, shape)
        self._inv_cache[name] = (key, inv)
        return inv

    def _clamp_of(self, name, p):
        if p.dtype == np.int8:
            return self.weight_clamp
        if p.dtype == np.int32:
            return (INT32_MIN, INT32_MAX)
        raise OptimizerError(f"parameter {name!r} must be int8 (weights) or int32 (biases), got {p.dtype}")

    def step(self, params: dict, grads: dict, scales: dict) -> dict:
        """One update of every parameter in ``params``; returns ``{name: new int array}``."""
        out = self.update_params(params, grads, scales)
        self.end_step()
        return out

    def end_step(self) -> None:
        """Close a step whose parameters :meth:`update_params` updated (the schedule moves on)."""
        self.step_count += 1

    def update_params(self, params: dict, grads: dict, scales: dict) -> dict:
        """:meth:`step` for some of a step's parameters, without ending the step: a trainer may update
        each layer as soon as its gradient is known, then call :meth:`end_step` once. Every parameter's
        update depends on its own gradient, state and name only, so the results are :meth:`step`'s."""
        if set(grads) != set(params):
            raise OptimizerError(f"grads and params must have the same names; params only: "
                                 f"{sorted(set(params) - set(grads))}, grads only: {sorted(set(grads) - set(params))}")
        missing = sorted(set(params) - set(scales))
        if missing:
            raise OptimizerError(f"no scale given for {missing}: pass (scale, axis), a float, or None")
        lr_t = self.lr_at(self.step_count)
        out = {}
        for name in sorted(params):
            p = np.asarray(params[name])
            lo, hi = self._clamp_of(name, p)
            g = _check_grad(grads[name], p.shape, f"grads[{name!r}]")
            if self.momentum > 0.0:
                v = self.buffers.get(name)
                v = g.copy() if v is None else (np.float32(self.momentum) * v + g).astype(np.float32)
                self.buffers[name] = v
                g = v
            spec = scales[name]
            scale, axis = spec if isinstance(spec, tuple) else (spec, None)
            if p.dtype == np.int32 and axis is None and scale is not None and np.size(scale) > 1:
                axis = -1
            d = qas_step(g, lr_t, scale, axis, self._inverse_squares(name, scale, axis, p.shape)) if lr_t > 0 \
                else np.zeros(p.shape, np.float32)
            r24 = None
            if self.rounding == "stochastic":
                seed = derive_seed(self.seed, self.step_count & 0xFFFFFFFF, ROUNDING_QUERY, param_layer_id(name))
                r24 = stochastic_bits(seed, p.size).reshape(p.shape)
            if self.mode == "shadow":
                new = self.shadow.update(name, p, d, lo, hi, self.rounding, r24)
            else:
                new = np.clip(round_subtract(p, d, self.rounding, r24), lo, hi)
            out[name] = new.astype(p.dtype)
        return out

    # ------------------------------------------------------------------ checkpoints
    def _config(self) -> dict:
        return {"lr": np.float64(self.lr), "schedule": np.str_(self.schedule),
                "total_steps": np.int64(-1 if self.total_steps is None else self.total_steps),
                "warmup_steps": np.int64(self.warmup_steps), "momentum": np.float64(self.momentum),
                "mode": np.str_(self.mode), "rounding": np.str_(self.rounding), "seed": np.int64(self.seed),
                "weight_clamp": np.asarray(self.weight_clamp, dtype=np.int64)}

    def state_dict(self) -> dict:
        """A flat ``{str: numpy array}`` dict (``np.savez``-able without pickle): step, config, buffers.

        Keys: ``"step"``, ``"config/<option>"``, ``"momentum/<name>"`` (float32, when momentum > 0),
        ``"residual/<name>"`` (float32, shadow mode).
        """
        state = {"step": np.asarray(self.step_count, dtype=np.int64)}
        for k, v in self._config().items():
            state[f"config/{k}"] = np.asarray(v)
        for name, v in self.buffers.items():
            state[f"momentum/{name}"] = v.copy()
        if self.shadow is not None:
            for name, r in self.shadow.residuals.items():
                state[f"residual/{name}"] = r.copy()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output; the configuration must match this optimizer's."""
        try:
            step = int(np.asarray(state["step"]))
        except (KeyError, TypeError, ValueError):
            raise OptimizerError("not an IntegerSGD state dict: no integer 'step'") from None
        check_config(state, self._config())
        buffers, residuals = {}, {}
        for key, v in state.items():
            if key.startswith("momentum/"):
                buffers[key[len("momentum/"):]] = np.asarray(v, dtype=np.float32).copy()
            elif key.startswith("residual/"):
                residuals[key[len("residual/"):]] = np.asarray(v, dtype=np.float32).copy()
        self.step_count = step
        self.buffers = buffers
        if self.shadow is not None:
            self.shadow.residuals = residuals




def _real(v, name, lo, hi, lo_open=False, hi_open=False) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        raise OptimizerError(f"{name} must be a finite number, got {v!r}")
    v = float(v)
    if v < lo or v > hi or (lo_open and v == lo) or (hi_open and v == hi):
        rng = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise OptimizerError(f"{name} must be in {rng}, got {v!r}")
    return v


def _inv_scale(spec, shape) -> np.ndarray:
    """float32 ``1 / s`` broadcastable to ``shape`` from a scale spec ``(scale, axis)``, a float or None."""
    scale, axis = spec if isinstance(spec, tuple) else (spec, None)
    if scale is not None and np.size(scale) > 1 and axis is None and len(shape) == 1:
        axis = -1
    inv2 = _scale_factor(scale, axis, shape)  # validates the scale and its axis; 1 / s**2
    if scale is None:
        return inv2
    s = np.asarray(scale).astype(np.float32).reshape(inv2.shape)
    return (np.float32(1.0) / s).astype(np.float32)


class QASOptimizer:
    """SGD (optionally with momentum) or Adam on int8 weights / int32 biases, with or without QAS.

    Args:
        kind: ``"sgd"`` or ``"adam"``.
        lr: base learning rate, finite > 0 (of the real parameters with QAS; of the integer ones without).
        momentum: SGD momentum in [0, 1) (0: no float32 buffer); must be 0 for Adam (use ``betas``).
        betas: Adam's (b1, b2), each in [0, 1).
        eps: Adam's epsilon, finite > 0 (in the unit of the gradient it is added to: real with QAS).
        qas: Quantization-Aware Scaling on (default) or off (module docstring).
        mode: ``"per_step"`` (round every step) or ``"shadow"`` (float32 shadow copy).
        rounding: ``"nearest"`` or ``"stochastic"`` (seeded per parameter and step as IntegerSGD).
        schedule, total_steps, warmup_steps: learning-rate schedule (:func:`lr_schedule`).
        seed: base seed of the stochastic rounding, int in [0, 2**32 - 1].
        weight_clamp: clamp of int8 parameters (default (-127, 127)).

    :meth:`step` takes ``params`` (name -> int8 or int32 array), ``grads`` (name -> float32, d loss /
    d integer unit, same keys and shapes) and ``scales`` (name -> ``(scale, axis)``: the weight scale
    ``s_w`` float32[O] with the output-channel axis, or the bias scale ``s_x * s_w`` with axis 0; a
    float for a per-tensor scale) and returns new arrays; the inputs are not modified. Without QAS
    ``scales`` may be omitted (it is not used).
    """

    def __init__(self, kind: str = "sgd", lr: float = 1e-3, *, momentum: float = 0.0, betas=(0.9, 0.999),
                 eps: float = 1e-8, qas: bool = True, mode: str = "per_step", rounding: str = "nearest",
                 schedule: str = "constant", total_steps=None, warmup_steps: int = 0, seed: int = 0,
                 weight_clamp=(-127, 127)):
        check_choice(kind, KINDS, "optimizer", OptimizerError)
        if not isinstance(qas, (bool, np.bool_)):
            raise OptimizerError(f"qas must be True or False, got {qas!r}")
        check_choice(mode, MODES, "mode", OptimizerError)
        check_choice(rounding, ROUNDINGS, "rounding", OptimizerError)
        check_choice(schedule, SCHEDULES, "schedule", OptimizerError)
        self.kind = kind
        self.qas = bool(qas)
        self.momentum = _real(momentum, "momentum", 0.0, 1.0, hi_open=True)
        if kind == "adam" and self.momentum:
            raise OptimizerError("momentum is an SGD option; Adam's first moment is set by betas[0]")
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise OptimizerError(f"betas must be a pair (b1, b2), got {betas!r}") from None
        self.betas = (_real(b1, "betas[0]", 0.0, 1.0, hi_open=True), _real(b2, "betas[1]", 0.0, 1.0, hi_open=True))
        self.eps = _real(eps, "eps", 0.0, math.inf, lo_open=True)
        if kind == "sgd":
            # SGD with QAS is IntegerSGD with the scales; without QAS, IntegerSGD with no scaling (s = 1)
            self._apply = IntegerSGD(lr, schedule, total_steps=total_steps, warmup_steps=warmup_steps,
                                momentum=self.momentum, mode=mode, rounding=rounding, seed=seed,
                                weight_clamp=weight_clamp)
            self.lr = self._apply.lr
        else:
            # Adam computes d itself; a IntegerSGD with lr = 1 and no scaling applies exactly that d
            self._apply = IntegerSGD(1.0, "constant", mode=mode, rounding=rounding, seed=seed, weight_clamp=weight_clamp)
            self.lr = _real(lr, "lr", 0.0, math.inf, lo_open=True)
            lr_schedule(schedule, 0, total_steps, self.lr, warmup_steps)  # validates the schedule
        self.schedule = schedule
        self.total_steps = None if total_steps is None else int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.mode = mode
        self.rounding = rounding
        self.seed = int(seed)
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ the step
    @property
    def step_count(self) -> int:
        """Steps taken so far."""
        return self._apply.step_count

    @property
    def state_bytes_per_param(self) -> int:
        """Optimizer memory per trained parameter: float32 shadow 4, momentum 4, Adam moments 8 (bytes)."""
        return 4 * (self.mode == "shadow") + 4 * (self.momentum > 0) + 8 * (self.kind == "adam")

    @property
    def memory_name(self) -> str:
        """The planner's name of this optimizer's state (:func:`optimizer_memory_name`)."""
        return optimizer_memory_name(self.kind, self.momentum, self.mode)

    def lr_at(self, step: int) -> float:
        """The scheduled learning rate at ``step`` (0-based)."""
        return lr_schedule(self.schedule, step, self.total_steps, self.lr, self.warmup_steps)

    def shadow_value(self, name: str, p) -> np.ndarray:
        """The real-valued parameter the shadow holds for integer ``p`` (float64, integer units; shadow mode)."""
        if self._apply.shadow is None:
            raise OptimizerError("shadow_value needs mode='shadow'")
        return self._apply.shadow.value(name, p)

    def step(self, params: dict, grads: dict, scales: dict | None = None) -> dict:
        """One update of every parameter in ``params``; returns ``{name: new int array}`` (same dtypes)."""
        if set(grads) != set(params):
            raise OptimizerError(f"grads and params must have the same names; params only: "
                                 f"{sorted(set(params) - set(grads))}, grads only: {sorted(set(grads) - set(params))}")
        scales = scales or {}
        if self.qas:
            missing = sorted(set(params) - set(scales))
            if missing:
                raise OptimizerError(f"QAS needs the scale of {missing}: pass (scale, axis) per parameter")
        if self.kind == "sgd":
            return self._apply.step(params, grads, {n: scales[n] if self.qas else None for n in params})
        t = self.step_count + 1
        lr_t = np.float32(self.lr_at(self.step_count))
        b1, b2 = np.float32(self.betas[0]), np.float32(self.betas[1])
        c1, c2 = np.float32(1.0 - self.betas[0]), np.float32(1.0 - self.betas[1])  # rounded once, not 1 - (float)b
        bc1 = np.float32(1.0 - self.betas[0] ** t)
        bc2 = np.float32(1.0 - self.betas[1] ** t)
        eps = np.float32(self.eps)
        steps = {}
        for name in sorted(params):
            p = np.asarray(params[name])
            g = _check_grad(grads[name], p.shape, f"grads[{name!r}]")
            inv = _inv_scale(scales[name], p.shape) if self.qas else np.ones((1,) * p.ndim, np.float32)
            G = (g * inv).astype(np.float32)
            m = self.m.get(name)
            v = self.v.get(name)
            m = np.zeros(p.shape, np.float32) if m is None else m
            v = np.zeros(p.shape, np.float32) if v is None else v
            m = (b1 * m + c1 * G).astype(np.float32)
            v = (b2 * v + c2 * (G * G)).astype(np.float32)
            self.m[name], self.v[name] = m, v
            D = (lr_t * (m / bc1) / (np.sqrt(v / bc2) + eps)).astype(np.float32)
            steps[name] = (D * inv).astype(np.float32)
        return self._apply.step(params, steps, {n: None for n in params})

    # ------------------------------------------------------------------ checkpoints
    def _config(self) -> dict:
        return {"kind": np.str_(self.kind), "qas": np.bool_(self.qas), "lr": np.float64(self.lr),
                "schedule": np.str_(self.schedule),
                "total_steps": np.int64(-1 if self.total_steps is None else self.total_steps),
                "warmup_steps": np.int64(self.warmup_steps), "momentum": np.float64(self.momentum),
                "betas": np.asarray(self.betas, np.float64), "eps": np.float64(self.eps)}

    def state_dict(self) -> dict:
        """A flat ``{str: numpy array}`` dict (``np.savez``-able without pickle).

        Keys: ``"config/<option>"``, ``"apply/<key>"`` (the IntegerSGD that applies the steps: step count,
        its config, momentum buffers, shadow residuals), ``"adam_m/<name>"``, ``"adam_v/<name>"`` (float32).
        """
        state = {f"config/{k}": np.asarray(v) for k, v in self._config().items()}
        state.update({f"apply/{k}": v for k, v in self._apply.state_dict().items()})
        for name in self.m:
            state[f"adam_m/{name}"] = self.m[name].copy()
            state[f"adam_v/{name}"] = self.v[name].copy()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output; the configuration must match this optimizer's."""
        check_config(state, self._config())
        self._apply.load_state_dict({k[len("apply/"):]: v for k, v in state.items() if k.startswith("apply/")})
        self.m = {k[len("adam_m/"):]: np.asarray(v, np.float32).copy() for k, v in state.items() if k.startswith("adam_m/")}
        self.v = {k[len("adam_v/"):]: np.asarray(v, np.float32).copy() for k, v in state.items() if k.startswith("adam_v/")}


# the names these classes had before the training core was unified (kept so existing code runs)
ZOSGD = IntegerSGD
BPOptimizer = QASOptimizer
