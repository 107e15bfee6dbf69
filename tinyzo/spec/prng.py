"""Pure-Python specification of tinyzo's perturbation PRNG (xorshift32 and its distributions).

Plain Python ``int`` everywhere, with every C ``uint32_t`` wrap written out as ``& MASK32``. Each
function is the definition that the jitted kernel of the same name in :mod:`tinyzo.training.prng` and the
C function in ``tinyzo/training/c/tinyzo_prng.h`` are tested to equal, value for value. The recipes are
documented in ``docs/zo_prng.md``.

Functions that generate a stream return ``(values, final_state)``: passing ``final_state`` as the
next seed continues the stream. No input validation here (the public wrappers validate).
"""

import math

MASK32 = 0xFFFFFFFF

#: derive_seed's odd multipliers for step, query and layer (xxHash/golden-ratio primes)
STEP_MUL = 0x9E3779B1
QUERY_MUL = 0x85EBCA77
LAYER_MUL = 0xC2B2AE3D
#: the non-zero seed that derive_seed returns instead of 0 (0 is xorshift32's fixed point)
ZERO_SEED_REPLACEMENT = 0x6D2B79F5

#: Gaussian recipe: c = (sum of the 4 bytes of one draw) - 510, out = round(c * m / 2**GAUSS_SHIFT)
GAUSS_SHIFT = 16
GAUSS_CENTER = 510
#: 4 * (256**2 - 1) / 12 = 21845 is the variance of c; 12 * 21845 / 4 = 65535 appears in m
GAUSS_VAR_C = 21845
GAUSSIAN_SIGMA_MAX = 16384


def xorshift32_next(x: int) -> int:
    """Marsaglia's xorshift32 (13, 17, 5): the next state (= output) after ``x`` (uint32, non-zero)."""
    x ^= (x << 13) & MASK32
    x ^= x >> 17
    x ^= (x << 5) & MASK32
    return x


def xorshift32_sequence(seed: int, n: int) -> tuple[list[int], int]:
    """The first ``n`` outputs after ``seed`` (the seed itself is not an output)."""
    out = []
    x = seed
    for _ in range(n):
        x = xorshift32_next(x)
        out.append(x)
    return out, x


def fmix32(h: int) -> int:
    """MurmurHash3's 32-bit finalizer (a bijection of uint32; fmix32(0) = 0)."""
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & MASK32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & MASK32
    h ^= h >> 16
    return h


def derive_seed(base_seed: int, step: int, query: int, layer: int) -> int:
    """Seed in [1, 2**32 - 1] of the perturbation of (step, query, layer); all four inputs uint32."""
    h = fmix32(base_seed)
    h = fmix32(h ^ ((step * STEP_MUL) & MASK32))
    h = fmix32(h ^ ((query * QUERY_MUL) & MASK32))
    h = fmix32(h ^ ((layer * LAYER_MUL) & MASK32))
    return h if h != 0 else ZERO_SEED_REPLACEMENT


def rademacher(seed: int, n: int) -> tuple[list[int], int]:
    """``n`` values +-1: value ``i`` is bit ``i % 32`` of draw ``i // 32`` (bit 1 -> +1, bit 0 -> -1).

    Draws are consumed 32 values at a time, low bit first; the unused high bits of the last draw are
    discarded (the final state is the last draw).
    """
    out = []
    x = seed
    for i in range(n):
        if i % 32 == 0:
            x = xorshift32_next(x)
        out.append(1 if (x >> (i % 32)) & 1 else -1)
    return out, x


def bernoulli(seed: int, n: int, threshold: int) -> tuple[list[int], int]:
    """``n`` keep flags of a sparse perturbation: value ``i`` is 1 when the top 24 bits of draw ``i`` are
    below ``threshold`` (in [0, 2**24]; P(1) = threshold / 2**24), else 0. One draw per value."""
    out = []
    x = seed
    for _ in range(n):
        x = xorshift32_next(x)
        out.append(1 if (x >> 8) < threshold else 0)
    return out, x


def uniform_int(seed: int, n: int, lo: int, hi: int) -> tuple[list[int], int]:
    """``n`` integers uniform on [lo, hi] (int32, 1 <= hi - lo + 1 <= 2**32 - 1), by rejection.

    A draw ``x`` (in [1, 2**32 - 1]) gives ``u = x - 1``, uniform on the N = 2**32 - 1 values
    [0, N - 1]; ``u`` is accepted when ``u < N - N % r`` (a multiple of ``r = hi - lo + 1``) and
    maps to ``lo + u % r``; otherwise the next draw is tried. Exactly uniform over a full period.
    """
    r = hi - lo + 1
    limit = MASK32 - MASK32 % r
    out = []
    x = seed
    for _ in range(n):
        while True:
            x = xorshift32_next(x)
            u = x - 1
            if u < limit:
                break
        out.append(lo + u % r)
    return out, x


def gaussian_multiplier(sigma: int) -> int:
    """The integer ``m`` with ``(m / 2**16)**2 * 21845 ~= sigma**2 - 1/12`` (1 <= sigma <= 16384).

    ``m = isqrt(floor((12 * sigma**2 - 1) * 2**30 / 65535))``; the ``- 1/12`` pre-compensates the
    variance that rounding to an integer adds (Sheppard's correction).
    """
    q = 12 * sigma * sigma - 1
    return math.isqrt((q << (2 * GAUSS_SHIFT - 2)) // 65535)


def round_shift_half_away(v: int, shift: int) -> int:
    """``v / 2**shift`` rounded to the nearest integer, ties away from zero (symmetric in sign)."""
    half = 1 << (shift - 1)
    return (v + half) >> shift if v >= 0 else -((-v + half) >> shift)


def gaussian_int(seed: int, n: int, sigma: int) -> tuple[list[int], int]:
    """``n`` integer approximations of N(0, sigma**2), one draw each, no floating point.

    ``c = b0 + b1 + b2 + b3 - 510`` (the 4 bytes of the draw; Irwin-Hall of 4 uniform bytes, variance
    21845), ``out = round_half_away(c * gaussian_multiplier(sigma) / 2**16)``.
    """
    m = gaussian_multiplier(sigma)
    out = []
    x = seed
    for _ in range(n):
        x = xorshift32_next(x)
        c = (x & 255) + ((x >> 8) & 255) + ((x >> 16) & 255) + (x >> 24) - GAUSS_CENTER
        out.append(round_shift_half_away(c * m, GAUSS_SHIFT))
    return out, x


def sphere(seed: int, n: int) -> tuple[list[float], int]:
    """A direction uniform on the unit sphere in R**n (floats, host only; n >= 1).

    Box-Muller on pairs of draws: ``u1 = x1 / 2**32`` and ``u2 = x2 / 2**32`` (both in (0, 1)),
    ``z = sqrt(-2 ln u1) * (cos(2 pi u2), sin(2 pi u2))`` in float64; the ``n`` Gaussians (the sine
    of an odd last pair is dropped) are divided by their float64 Euclidean norm and rounded to float32
    (here: Python floats holding the float64 quotient; the kernel stores them as float32).
    """
    z = []
    x = seed
    while len(z) < n:
        x = xorshift32_next(x)
        u1 = x / 4294967296.0
        x = xorshift32_next(x)
        u2 = x / 4294967296.0
        r = math.sqrt(-2.0 * math.log(u1))
        t = 2.0 * math.pi * u2
        z.append(r * math.cos(t))
        z.append(r * math.sin(t))
    z = z[:n]
    ss = 0.0
    for v in z:
        ss += v * v
    norm = math.sqrt(ss)
    return [v / norm for v in z], x
