"""Firmware-portable randomness for zeroth-order training: xorshift32, a seed schedule, perturbations.

Every perturbation is a pure function of ``(base_seed, step, query, layer)``: :func:`derive_seed`
hashes the four 32-bit values to a non-zero xorshift32 seed, and a generator fills the perturbation
from that seed. Perturbations are regenerated whenever needed and never stored, so the extra memory
of a trainable layer is O(1) (one uint32 state). The same integer sequences come out of the C header
``tinyzo/training/c/tinyzo_prng.h``; the recipes (bit order, rejection rule, Gaussian formula and its
moments) are in ``docs/zo_prng.md``, the executable definition in :mod:`tinyzo.spec.prng`.

Layout of this module (as the rest of tinyzo): ``@njit`` cores that fill a caller-provided 1-D array
from a state and return the final state (``*_fill``; they never raise and never allocate), and thin
public Python wrappers that validate, allocate and call them. All state arithmetic is done in int64
holding uint32 values, with an explicit ``& 0xFFFFFFFF`` after each left shift and a split 32-bit
multiply, so jitted, ``NUMBA_DISABLE_JIT=1`` and C runs agree exactly.
"""

import math
import numbers

import numpy as np
from numba import njit

from tinyzo.errors import TinyzoError

__all__ = [  # Python API and the jitted cores (callable from other @njit code)
    "GAUSSIAN",
    "GAUSSIAN_SIGMA_MAX",
    "KINDS",
    "MASK_LAYER",
    "MASK_SCALE",
    "RADEMACHER",
    "RADEMACHER_BYTES",
    "SEED_MAX",
    "SPHERE",
    "UNIFORM",
    "ZERO_SEED_REPLACEMENT",
    "PRNGError",
    "bernoulli_fill",
    "density_threshold",
    "derive_seed",
    "fmix32",
    "gaussian_int",
    "gaussian_int_fill",
    "gaussian_multiplier",
    "gaussian_multiplier_nb",
    "kind_code",
    "mask_seed",
    "mix_seed",
    "perturbation",
    "perturbation_fill",
    "perturbation_fill_s8",
    "rademacher",
    "rademacher_fill",
    "rademacher_s8_fill",
    "sparse_mask",
    "sphere",
    "sphere_fill",
    "uniform_int",
    "uniform_int_fill",
    "xorshift32_fill",
    "xorshift32_next",
    "xorshift32_sequence",
]


class PRNGError(TinyzoError):
    """A seed, count, range, sigma, shape or perturbation kind is invalid."""


# the constants are defined once, in the specification (tinyzo.spec.prng); the kernels here use them
from tinyzo.spec.prng import (
    GAUSS_CENTER,
    GAUSS_SHIFT,
    LAYER_MUL,
    MASK32,
    QUERY_MUL,
    STEP_MUL,
    ZERO_SEED_REPLACEMENT,
)

#: largest seed / state; seeds live in [1, SEED_MAX] (0 is xorshift32's fixed point)
SEED_MAX = MASK32
#: largest sigma of gaussian_int (keeps 12 * sigma**2 * 2**30 below 2**62 in the multiplier)
from tinyzo.spec.prng import GAUSSIAN_SIGMA_MAX

#: largest sigma of the rademacher / uniform perturbations (values stay in int32)
INT_SIGMA_MAX = 2**31 - 1

#: perturbation kinds, in the order of their codes
KINDS = ("rademacher", "gaussian", "uniform", "sphere")
RADEMACHER = 0
GAUSSIAN = 1
UNIFORM = 2
SPHERE = 3


# ----------------------------------------------------------------------------------------------
# jitted cores (uint32 values carried in int64)
# ----------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def mul32(a, b):
    """``(a * b) mod 2**32`` for a, b in [0, 2**32) (C: ``(uint32_t)(a * b)``), without int64 overflow."""
    a = np.int64(a)
    b = np.int64(b)
    low = a * (b & np.int64(0xFFFF))  # < 2**48
    high = ((a * (b >> np.int64(16))) & np.int64(0xFFFF)) << np.int64(16)  # < 2**32
    return (low + high) & np.int64(MASK32)


@njit(cache=True, nogil=True)
def xorshift32_next(x):
    """Marsaglia's xorshift32 (shifts 13, 17, 5): next state = output, for a state x in [1, 2**32 - 1].

    ``x ^= x << 13; x ^= x >> 17; x ^= x << 5`` on uint32 (left shifts wrap to 32 bits).
    Returns int64 in [1, 2**32 - 1]; period 2**32 - 1 over the non-zero states (0 maps to 0).
    """
    x = np.int64(x)
    x ^= (x << np.int64(13)) & np.int64(MASK32)
    x ^= x >> np.int64(17)
    x ^= (x << np.int64(5)) & np.int64(MASK32)
    return x


@njit(cache=True, nogil=True)
def fmix32(h):
    """MurmurHash3's 32-bit finalizer on uint32 ``h`` (a bijection; fmix32(0) = 0). Returns int64."""
    h = np.int64(h)
    h ^= h >> np.int64(16)
    h = mul32(h, 0x85EBCA6B)
    h ^= h >> np.int64(13)
    h = mul32(h, 0xC2B2AE35)
    h ^= h >> np.int64(16)
    return h


@njit(cache=True, nogil=True)
def mix_seed(base_seed, step, query, layer):
    """Jitted core of :func:`derive_seed` (all four inputs uint32; no validation). Returns int64 in [1, 2**32-1]."""
    h = fmix32(base_seed)
    h = fmix32(h ^ mul32(step, STEP_MUL))
    h = fmix32(h ^ mul32(query, QUERY_MUL))
    h = fmix32(h ^ mul32(layer, LAYER_MUL))
    if h == 0:
        h = np.int64(ZERO_SEED_REPLACEMENT)
    return h


@njit(cache=True, nogil=True)
def xorshift32_fill(state, out):
    """Write the next ``len(out)`` xorshift32 outputs after ``state`` into ``out`` (uint32[n] or int64[n]).

    Returns the final state (the last output; ``state`` when n = 0).
    """
    x = np.int64(state)
    for i in range(out.shape[0]):
        x = xorshift32_next(x)
        out[i] = x
    return x


@njit(cache=True, nogil=True)
def rademacher_fill(state, out):
    """Fill ``out`` (1-D, any signed integer dtype, e.g. int8[n]) with +-1 from the stream after ``state``.

    Value ``i`` is bit ``i % 32`` (low bit first) of draw ``i // 32``; bit 1 -> +1, bit 0 -> -1.
    One draw per 32 values; the unused bits of the last draw are dropped. Returns the final state.
    """
    x = np.int64(state)
    n = out.shape[0]
    for base in range(0, n, 32):  # one draw per 32 values: the inner loop has no branch (it vectorizes)
        x = xorshift32_next(x)
        for b in range(min(32, n - base)):
            out[base + b] = np.int64(2) * ((x >> np.int64(b)) & np.int64(1)) - np.int64(1)
    return x


def _rademacher_bytes() -> np.ndarray:
    """int8[256, 8]: row ``v`` holds the +-1 values of the 8 bits of ``v``, low bit first."""
    v = np.arange(256)[:, None]
    return (2 * ((v >> np.arange(8)[None, :]) & 1) - 1).astype(np.int8)


#: the eight +-1 values of every byte (rademacher_s8_fill copies a row per byte of a draw)
RADEMACHER_BYTES = _rademacher_bytes()


@njit(cache=True, nogil=True)
def rademacher_s8_fill(state, out):
    """:func:`rademacher_fill` into int8[n]: the same values and final state, a table row per byte.

    Each draw's four bytes (low byte first) select rows of :data:`RADEMACHER_BYTES` (eight values
    each), three times faster than a value at a time; the last, partial draw goes bit by bit.
    """
    x = np.int64(state)
    n = out.shape[0]
    full = n - n % 32
    for base in range(0, full, 32):
        x = xorshift32_next(x)
        for byte in range(4):
            row = RADEMACHER_BYTES[(x >> np.int64(8 * byte)) & np.int64(255)]
            o = base + 8 * byte
            for j in range(8):
                out[o + j] = row[j]
    if full < n:
        x = xorshift32_next(x)
        for b in range(n - full):
            out[full + b] = np.int64(2) * ((x >> np.int64(b)) & np.int64(1)) - np.int64(1)
    return x


@njit(cache=True, nogil=True)
def uniform_int_fill(state, lo, hi, out):
    """Fill ``out`` (int32[n] or int64[n]) with integers uniform on [lo, hi], by rejection.

    ``lo <= hi`` int32 with ``hi - lo + 1 <= 2**32 - 1``. For each value: draw ``x``, ``u = x - 1``
    (uniform on the N = 2**32 - 1 values [0, N-1]); accept when ``u < N - N % r`` with
    ``r = hi - lo + 1``, giving ``lo + u % r``; else draw again. Exactly uniform over a full period;
    about ``N / (N - N % r)`` (< 2, ~1 for small r) draws per value. Returns the final state.
    """
    x = np.int64(state)
    lo64 = np.int64(lo)
    r = np.int64(hi) - lo64 + np.int64(1)
    limit = np.int64(MASK32) - np.int64(MASK32) % r
    for i in range(out.shape[0]):
        x = xorshift32_next(x)
        while x - np.int64(1) >= limit:
            x = xorshift32_next(x)
        out[i] = lo64 + (x - np.int64(1)) % r
    return x


@njit(cache=True, nogil=True)
def isqrt64(t):
    """floor(sqrt(t)) for 0 <= t < 2**62, bit by bit (the C header uses the same loop)."""
    t = np.int64(t)
    r = np.int64(0)
    bit = np.int64(1) << np.int64(60)
    while bit > t:
        bit >>= np.int64(2)
    while bit != 0:
        if t >= r + bit:
            t -= r + bit
            r = (r >> np.int64(1)) + bit
        else:
            r >>= np.int64(1)
        bit >>= np.int64(2)
    return r


@njit(cache=True, nogil=True)
def gaussian_multiplier_nb(sigma):
    """Jitted :func:`gaussian_multiplier`: ``isqrt(floor((12 sigma**2 - 1) * 2**30 / 65535))``, sigma in [1, 16384]."""
    q = np.int64(12) * np.int64(sigma) * np.int64(sigma) - np.int64(1)  # < 2**32
    return isqrt64((q << np.int64(2 * GAUSS_SHIFT - 2)) // np.int64(65535))  # argument < 2**62


@njit(cache=True, nogil=True)
def gaussian_int_fill(state, sigma, out):
    """Fill ``out`` (int32[n] or int64[n]) with integer approximations of N(0, sigma**2), sigma in [1, 16384].

    Per value, one draw ``x`` with bytes b0..b3: ``c = b0 + b1 + b2 + b3 - 510`` (in [-510, 510],
    variance 21845) and ``out = round_half_away(c * m / 2**16)`` with ``m = gaussian_multiplier(sigma)``.
    No floating point. Returns the final state.
    """
    m = gaussian_multiplier_nb(sigma)
    half = np.int64(1) << np.int64(GAUSS_SHIFT - 1)
    x = np.int64(state)
    for i in range(out.shape[0]):
        x = xorshift32_next(x)
        c = ((x & np.int64(255)) + ((x >> np.int64(8)) & np.int64(255)) + ((x >> np.int64(16)) & np.int64(255))
             + (x >> np.int64(24)) - np.int64(GAUSS_CENTER))
        v = c * m
        if v >= 0:
            out[i] = (v + half) >> np.int64(GAUSS_SHIFT)
        else:
            out[i] = -((half - v) >> np.int64(GAUSS_SHIFT))
    return x


@njit(cache=True, nogil=True)
def _box_muller_pair(x):
    """Two draws after ``x`` -> (z0, z1, final state): Box-Muller with u = draw / 2**32 in (0, 1)."""
    x = xorshift32_next(x)
    u1 = np.float64(x) / 4294967296.0
    x = xorshift32_next(x)
    u2 = np.float64(x) / 4294967296.0
    r = math.sqrt(-2.0 * math.log(u1))
    t = 2.0 * math.pi * u2
    return r * math.cos(t), r * math.sin(t), x


@njit(cache=True, nogil=True)
def sphere_fill(state, out):
    """Fill ``out`` (float32[n], n >= 1) with a direction uniform on the unit sphere of R**n (host only).

    Box-Muller Gaussians from pairs of draws (``u = draw / 2**32``; ``z0 = sqrt(-2 ln u1) cos(2 pi u2)``,
    ``z1 = ... sin(...)``, float64; an odd last ``z1`` is dropped), divided by their float64 norm.
    Two passes over the same stream (norm, then values): no scratch memory. Returns the final state.
    """
    n = out.shape[0]
    x = np.int64(state)
    ss = 0.0
    i = 0
    while i < n:
        z0, z1, x = _box_muller_pair(x)
        ss += z0 * z0
        if i + 1 < n:
            ss += z1 * z1
        i += 2
    norm = math.sqrt(ss)
    x = np.int64(state)
    i = 0
    while i < n:
        z0, z1, x = _box_muller_pair(x)
        out[i] = np.float32(z0 / norm)
        if i + 1 < n:
            out[i + 1] = np.float32(z1 / norm)
        i += 2
    return x


@njit(cache=True, nogil=True)
def _scale(out, sigma):
    """``out *= sigma`` in place (``out`` holds +-1; no-op for sigma 1), widened so every mode agrees."""
    if sigma != 1:
        for i in range(out.shape[0]):
            out[i] = np.int64(out[i]) * np.int64(sigma)


@njit(cache=True, nogil=True)
def perturbation_fill(kind, state, sigma, out):
    """Integer perturbation of code ``kind`` (RADEMACHER, GAUSSIAN or UNIFORM) into ``out`` (int32[n]).

    RADEMACHER: ``sigma * (+-1)``; GAUSSIAN: :func:`gaussian_int_fill`; UNIFORM: integers uniform on
    [-sigma, sigma]. ``sigma`` >= 1 within the limits :func:`perturbation` checks. Returns the final
    state. (SPHERE is float: use :func:`sphere_fill`.) ``out`` may be int8[n] when every value fits
    (|value| <= 127, checked by the caller); :func:`perturbation_fill_s8` is faster there.
    """
    if kind == RADEMACHER:
        x = rademacher_fill(state, out)
        _scale(out, sigma)
        return x
    if kind == GAUSSIAN:
        return gaussian_int_fill(state, sigma, out)
    return uniform_int_fill(state, -np.int64(sigma), np.int64(sigma), out)


@njit(cache=True, nogil=True)
def perturbation_fill_s8(kind, state, sigma, out):
    """:func:`perturbation_fill` into int8[n] (node perturbations): the same values and final state.

    For ``kind`` and ``sigma`` whose values fit int8 (|value| <= 127: Rademacher and uniform sigma
    <= 127, Gaussian sigma <= 36; the caller checks). Rademacher uses :func:`rademacher_s8_fill`.
    """
    if kind == RADEMACHER:
        x = rademacher_s8_fill(state, out)
        _scale(out, sigma)
        return x
    return perturbation_fill(kind, state, sigma, out)


@njit(cache=True, nogil=True)
def perturbation_fill_s8_layers(kind, base_seed, step, query, layer_ids, sigma, outs, seeds):
    """:func:`perturbation_fill_s8` of several layers of one query in one call (one GIL release instead
    of two calls per layer when queries run on several threads): ``outs[i]`` (int8[n_i]) gets the values
    seeded by ``mix_seed(base_seed, step, query, layer_ids[i])``, which is written to ``seeds[i]``
    (int64). ``outs``: a tuple of C-contiguous 1-D int8 arrays, one per entry of ``layer_ids``."""
    for i in range(len(outs)):
        seed = mix_seed(base_seed, step, query, layer_ids[i])
        seeds[i] = seed
        perturbation_fill_s8(kind, seed, sigma, outs[i])


@njit(cache=True, nogil=True)
def bernoulli_fill(state, threshold, out):
    """Fill ``out`` (1-D, any integer dtype) with 0/1 keep flags from the stream after ``state``.

    Value ``i`` is 1 when the top 24 bits of draw ``i`` are below ``threshold`` (one draw per value):
    ``out[i] = (x_i >> 8) < threshold``, so P(1) = threshold / 2**24 exactly over a full period (up to
    the one excluded zero word). ``threshold`` in [0, 2**24]. Returns the final state.
    """
    x = np.int64(state)
    t = np.int64(threshold)
    for i in range(out.shape[0]):
        x = xorshift32_next(x)
        out[i] = np.int64(1) if (x >> np.int64(8)) < t else np.int64(0)
    return x


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------


def _as_int(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise PRNGError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    return int(value)


def _check_uint32(value, name: str) -> int:
    v = _as_int(value, name)
    if not 0 <= v <= MASK32:
        raise PRNGError(f"{name} must be in [0, 2**32 - 1] (a uint32), got {v}")
    return v


def _check_seed(seed) -> int:
    s = _as_int(seed, "seed")
    if not 1 <= s <= MASK32:
        raise PRNGError(
            f"seed must be in [1, 2**32 - 1] (0 is xorshift32's fixed point), got {s}; "
            "use derive_seed(base_seed, step, query, layer) to make one"
        )
    return s


def _check_count(n) -> int:
    v = _as_int(n, "n")
    if v < 0:
        raise PRNGError(f"n must be >= 0, got {v}")
    return v


def _check_shape(shape) -> tuple:
    if isinstance(shape, numbers.Integral) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise PRNGError(f"shape must be an int or a tuple of ints, got {shape!r}") from None
    out = []
    for d in dims:
        v = _as_int(d, "shape entry")
        if v < 0:
            raise PRNGError(f"shape entries must be >= 0, got {dims}")
        out.append(v)
    return tuple(out)


def _check_int_sigma(sigma, limit: int) -> int:
    s = _as_int(sigma, "sigma")
    if not 1 <= s <= limit:
        raise PRNGError(f"sigma must be an integer in [1, {limit}], got {s}")
    return s


def _finish(values: np.ndarray, state, return_state: bool):
    return (values, int(state)) if return_state else values


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------


def kind_code(kind: str) -> int:
    """The integer code (RADEMACHER=0, GAUSSIAN=1, UNIFORM=2, SPHERE=3) of a perturbation kind name."""
    if kind not in KINDS:
        raise PRNGError(f"unknown perturbation kind {kind!r}; choose one of {', '.join(KINDS)}")
    return KINDS.index(kind)


def derive_seed(base_seed: int, step: int, query: int, layer: int) -> int:
    """The xorshift32 seed of the perturbation of one (step, query, layer), an int in [1, 2**32 - 1].

    All four inputs are integers in [0, 2**32 - 1]. Formula (C-friendly, every product mod 2**32)::

        h = fmix32(base_seed)
        h = fmix32(h ^ step  * 0x9E3779B1)
        h = fmix32(h ^ query * 0x85EBCA77)
        h = fmix32(h ^ layer * 0xC2B2AE3D)
        seed = h if h != 0 else 0x6D2B79F5

    fmix32 is MurmurHash3's finalizer. Each line is a bijection of ``h`` and of its new input, so for
    fixed other arguments distinct steps (or queries, or layers) give distinct seeds (except for the
    one input that hits 0 and is replaced).
    """
    return int(mix_seed(_check_uint32(base_seed, "base_seed"), _check_uint32(step, "step"),
                        _check_uint32(query, "query"), _check_uint32(layer, "layer")))


def xorshift32_sequence(seed: int, n: int, *, return_state: bool = False):
    """The first ``n`` xorshift32 outputs after ``seed`` (the seed is not an output): uint32[n].

    ``seed`` in [1, 2**32 - 1]. With ``return_state=True`` returns ``(values, final_state)``.
    """
    s, n = _check_seed(seed), _check_count(n)
    out = np.empty(n, dtype=np.uint32)
    return _finish(out, xorshift32_fill(s, out), return_state)


def rademacher(seed: int, n: int, *, return_state: bool = False):
    """``n`` Rademacher values: int8[n] of +-1 (bit i%32 of draw i//32, low bit first, 1 -> +1).

    ``seed`` in [1, 2**32 - 1]. With ``return_state=True`` returns ``(values, final_state)``;
    ``final_state`` seeds the continuation (whole draws: n not a multiple of 32 drops the rest of
    the last draw).
    """
    s, n = _check_seed(seed), _check_count(n)
    out = np.empty(n, dtype=np.int8)
    return _finish(out, rademacher_fill(s, out), return_state)


def uniform_int(seed: int, n: int, lo: int, hi: int, *, return_state: bool = False):
    """``n`` integers uniform on [lo, hi] inclusive: int32[n], unbiased (rejection, see :func:`uniform_int_fill`).

    ``lo <= hi``, both int32, not the full int32 range (``hi - lo + 1 <= 2**32 - 1``).
    With ``return_state=True`` returns ``(values, final_state)``.
    """
    s, n = _check_seed(seed), _check_count(n)
    lo, hi = _as_int(lo, "lo"), _as_int(hi, "hi")
    if not (-(2**31) <= lo <= hi <= 2**31 - 1):
        raise PRNGError(f"need int32 bounds with lo <= hi, got lo={lo}, hi={hi}")
    if hi - lo + 1 > MASK32:
        raise PRNGError("the range [lo, hi] may hold at most 2**32 - 1 values (not the full int32 range)")
    out = np.empty(n, dtype=np.int32)
    return _finish(out, uniform_int_fill(s, lo, hi, out), return_state)


def gaussian_multiplier(sigma: int) -> int:
    """The multiplier ``m`` of :func:`gaussian_int` for integer sigma in [1, 16384] (an int < 2**23).

    ``m = isqrt(floor((12 * sigma**2 - 1) * 2**30 / 65535))``, so that ``(m / 2**16)**2 * 21845`` is
    ``sigma**2 - 1/12``: the continuous part has variance sigma**2 - 1/12 and rounding to integers adds
    about 1/12 (Sheppard's correction).
    """
    return int(gaussian_multiplier_nb(_check_int_sigma(sigma, GAUSSIAN_SIGMA_MAX)))


def gaussian_int(seed: int, n: int, sigma: int, *, return_state: bool = False):
    """``n`` integer approximations of N(0, sigma**2) (int32[n], |value| <= 3.5 sigma), no floats.

    One draw per value: ``c = b0 + b1 + b2 + b3 - 510`` (its 4 bytes), ``round_half_away(c * m / 2**16)``
    with ``m = gaussian_multiplier(sigma)``; integer sigma in [1, 16384]. Variance within 0.3% of
    sigma**2 for every such sigma, excess kurtosis about -0.3 (see docs/zo_prng.md).
    With ``return_state=True`` returns ``(values, final_state)``.
    """
    s, n = _check_seed(seed), _check_count(n)
    sigma = _check_int_sigma(sigma, GAUSSIAN_SIGMA_MAX)
    out = np.empty(n, dtype=np.int32)
    return _finish(out, gaussian_int_fill(s, sigma, out), return_state)


def sphere(seed: int, n: int, *, return_state: bool = False):
    """A direction uniform on the unit sphere of R**n: float32[n] of norm 1 (host-side analysis only).

    Normalized Box-Muller Gaussians from the xorshift32 stream (see :func:`sphere_fill`); n >= 1.
    With ``return_state=True`` returns ``(values, final_state)``.
    """
    s, n = _check_seed(seed), _check_count(n)
    if n < 1:
        raise PRNGError("sphere needs n >= 1 (there is no unit vector in R**0)")
    out = np.empty(n, dtype=np.float32)
    return _finish(out, sphere_fill(s, out), return_state)


def perturbation(kind: str, seed: int, shape, sigma=1):
    """The perturbation of one (step, query, layer), regenerated from its seed: the estimators' entry point.

    ``kind``: ``"rademacher"`` -> int32 ``sigma * (+-1)``; ``"gaussian"`` -> int32 :func:`gaussian_int`
    (integer sigma in [1, 16384]); ``"uniform"`` -> int32 uniform on [-sigma, sigma]; ``"sphere"`` ->
    float32 ``sigma *`` a unit direction over all ``prod(shape)`` entries (sigma a positive float).
    Integer sigma for rademacher/uniform is in [1, 2**31 - 1]. ``seed`` in [1, 2**32 - 1] (normally
    from :func:`derive_seed`); ``shape`` an int or tuple of ints; values fill the array in C order.
    """
    code = kind_code(kind)
    s = _check_seed(seed)
    shape = _check_shape(shape)
    size = math.prod(shape)
    if code == SPHERE:
        if isinstance(sigma, (bool, np.bool_)) or not isinstance(sigma, numbers.Real):
            raise PRNGError(f"sigma must be a real number, got {sigma!r}")
        if not (math.isfinite(float(sigma)) and float(sigma) > 0):
            raise PRNGError(f"sigma must be finite and > 0 for the sphere, got {sigma!r}")
        if size < 1:
            raise PRNGError("sphere needs at least one entry (there is no unit vector in R**0)")
        out = np.empty(size, dtype=np.float32)
        sphere_fill(s, out)
        if float(sigma) != 1.0:
            out *= np.float32(sigma)
        return out.reshape(shape)
    sigma = _check_int_sigma(sigma, GAUSSIAN_SIGMA_MAX if code == GAUSSIAN else INT_SIGMA_MAX)
    out = np.empty(size, dtype=np.int32)
    perturbation_fill(code, s, sigma, out)
    return out.reshape(shape)


#: ``derive_seed``'s layer argument of a perturbation's sparsity mask (:func:`mask_seed`): "MASK" in ASCII
MASK_LAYER = 0x4D41534B
#: the keep probability of a sparse mask is ``threshold / MASK_SCALE`` (24-bit resolution)
MASK_SCALE = 1 << 24


def density_threshold(density) -> int:
    """The integer threshold of keep probability ``density`` in (0, 1]: ``round(density * 2**24)``, >= 1.

    The mask keeps a coordinate with probability exactly ``density_threshold(density) / 2**24`` (use
    that value, not ``density``, wherever the probability enters a formula).
    """
    if isinstance(density, (bool, np.bool_)) or not isinstance(density, numbers.Real) \
            or not math.isfinite(float(density)) or not 0.0 < float(density) <= 1.0:
        raise PRNGError(f"density must be a number in (0, 1], got {density!r}")
    return max(1, round(float(density) * MASK_SCALE))


def mask_seed(seed: int) -> int:
    """The seed of the sparsity mask that goes with the perturbation seeded by ``seed``:
    ``derive_seed(seed, 0, 0, MASK_LAYER)`` (one rule for every estimator and the trainer)."""
    return derive_seed(_check_seed(seed), 0, 0, MASK_LAYER)


def sparse_mask(seed: int, shape, density) -> np.ndarray:
    """A Bernoulli keep mask: int8 0/1 of ``shape`` (C order), each entry 1 with probability
    ``density_threshold(density) / 2**24``, from the xorshift32 stream after ``seed`` (one draw per entry,
    :func:`bernoulli_fill`). Sparse perturbation multiplies a direction by it (docs/zo_estimators.md)."""
    s = _check_seed(seed)
    shape = _check_shape(shape)
    out = np.empty(math.prod(shape), dtype=np.int8)
    bernoulli_fill(s, np.int64(density_threshold(density)), out)
    return out.reshape(shape)
