"""Pure-Python specification of TFLite Micro's audio "signal" operators (one frame, C semantics).

Each function is a line-by-line reading of ``tensorflow/tflite-micro`` ``signal/src/*.cc`` (commit
90b983c) with every C integer type made explicit: a value stored in ``uint32_t`` is taken modulo
2**32, one stored in ``int16_t`` wraps to [-32768, 32767], ``>>`` of a signed value is arithmetic
(floor, as GCC/Clang do), ``>>`` of an unsigned value is logical. The arguments are Python ints
or sequences of them; the results are Python ints or lists. The jitted kernels
(:mod:`tinyzo.kernels.signal`) are tested against these functions.

The FFT is KISS FFT v130 (``mborgerding/kissfft``, BSD-3, with TFLM's patch) in 16-bit fixed
point (``FIXED_POINT 16``): ``kiss_fftr`` of the real input via a complex FFT of half the length,
every butterfly stage scaling its inputs down (``C_FIXDIV``) so the output is the DFT divided by
the FFT length.
"""

from __future__ import annotations

import math

__all__ = [
    "KISS_SAMP_MAX",
    "LOG_LUT",
    "PCAN_OUTPUT_BITS",
    "PCAN_SNR_BITS",
    "energy",
    "fft_auto_scale",
    "filter_bank",
    "filter_bank_log",
    "filter_bank_spectral_subtraction",
    "filter_bank_square_root",
    "kiss_factors",
    "kiss_fftr_twiddles",
    "kiss_twiddles",
    "log32",
    "max_abs16",
    "most_significant_bit32",
    "most_significant_bit64",
    "pcan",
    "pcan_shrink",
    "rfft",
    "sqrt32",
    "sqrt64",
    "wide_dynamic_function",
    "window",
]

U32 = (1 << 32) - 1
U64 = (1 << 64) - 1


def s16(x: int) -> int:
    """``(int16_t) x``: ``x`` modulo 2**16 in [-32768, 32767]."""
    return ((int(x) + 0x8000) & 0xFFFF) - 0x8000


def s32(x: int) -> int:
    """``(int32_t) x``: ``x`` modulo 2**32 in [-2**31, 2**31 - 1]."""
    return ((int(x) + (1 << 31)) & U32) - (1 << 31)


# --------------------------------------------------------------------------- bit helpers (msb_32.cc, msb_64.cc)
def most_significant_bit32(x: int) -> int:
    """``MostSignificantBit32`` as TFLM builds it with GCC/Clang: ``32 - __builtin_clz(x)``, and 32 for 0.

    ``x`` is taken as ``uint32_t`` (a negative int16 converts to a large value: -32768 -> 32).
    """
    x &= U32
    return x.bit_length() if x else 32


def most_significant_bit64(x: int) -> int:
    """``MostSignificantBit64`` (GCC/Clang): ``64 - __builtin_clzll(x)``, and 64 for 0."""
    x &= U64
    return x.bit_length() if x else 64


# --------------------------------------------------------------------------- window.cc
def window(x, weights, shift: int) -> list:
    """``ApplyWindow``: ``clamp((int32(x[i]) * w[i]) >> shift, -32768, 32767)`` over consecutive chunks of
    ``len(weights)`` samples (TFLM's ``WindowEval``); ``shift`` in [0, 31]."""
    n = len(weights)
    out = []
    for i in range(len(x)):
        raw = (int(x[i]) * int(weights[i % n])) >> shift
        out.append(min(max(raw, -32768), 32767))
    return out


# --------------------------------------------------------------------------- fft_auto_scale.cc, max_abs.cc
def max_abs16(x) -> int:
    """``MaxAbs16`` (portable path): the largest |x[i]| stored in ``int16_t`` (|-32768| wraps to -32768)."""
    m = 0
    for v in x:
        v = int(v)
        if v > m:
            m = v
        elif -v > m:
            m = s16(-v)
    return m


def fft_auto_scale(x) -> tuple:
    """``FftAutoScale``: ``(x[i] << scale_bits as int16, scale_bits)`` with
    ``scale_bits = max(0, 15 - MostSignificantBit32(max_abs16(x)))``."""
    m = max_abs16(x)
    scale_bits = 16 - most_significant_bit32(m) - 1
    scale_bits = max(0, scale_bits)
    return [s16(int(v) * (1 << scale_bits)) for v in x], scale_bits


# --------------------------------------------------------------------------- KISS FFT v130, FIXED_POINT 16
#: ``SAMP_MAX`` of KISS FFT's 16-bit fixed point.
KISS_SAMP_MAX = 32767


def _sround(x: int) -> int:
    """``sround``: ``(int16_t)((x + (1 << 14)) >> 15)``."""
    return s16((x + (1 << 14)) >> 15)


def _c_mul(a, b) -> tuple:
    """``C_MUL``: complex product with each part rounded by :func:`_sround`."""
    return (_sround(a[0] * b[0] - a[1] * b[1]), _sround(a[0] * b[1] + a[1] * b[0]))


def _c_fixdiv(c, div: int) -> tuple:
    """``C_FIXDIV``: each part times ``SAMP_MAX / div`` (integer division), rounded."""
    k = KISS_SAMP_MAX // div
    return (_sround(c[0] * k), _sround(c[1] * k))


def _c_add(a, b) -> tuple:
    return (s16(a[0] + b[0]), s16(a[1] + b[1]))


def _c_sub(a, b) -> tuple:
    return (s16(a[0] - b[0]), s16(a[1] - b[1]))


def _kiss_cexp(phase: float) -> tuple:
    """``kf_cexp`` in fixed point: ``floor(.5 + SAMP_MAX * cos(phase))`` (double, libm) stored in int16."""
    return (s16(math.floor(0.5 + KISS_SAMP_MAX * math.cos(phase))),
            s16(math.floor(0.5 + KISS_SAMP_MAX * math.sin(phase))))


def kiss_twiddles(nfft: int) -> list:
    """``kiss_fft_alloc``'s twiddles of a forward FFT of length ``nfft``: ``cexp(-2 pi i k / nfft)``."""
    pi = 3.141592653589793238462643383279502884197169399375105820974944
    return [_kiss_cexp(-2 * pi * i / nfft) for i in range(nfft)]


def kiss_fftr_twiddles(nfft_real: int) -> list:
    """``kiss_fftr_alloc``'s super twiddles for a real FFT of length ``nfft_real`` (half length ``ncfft``)."""
    ncfft = nfft_real >> 1
    return [_kiss_cexp(-3.14159265358979323846264338327 * ((i + 1) / ncfft + 0.5)) for i in range(ncfft // 2)]


def kiss_factors(n: int) -> list:
    """``kf_factor``: ``[p1, m1, p2, m2, ...]``, powers of 4 first, then 2, then odd primes."""
    p = 4
    floor_sqrt = math.floor(math.sqrt(n))
    out = []
    while True:
        while n % p:
            p = 2 if p == 4 else 3 if p == 2 else p + 2
            if p > floor_sqrt:
                p = n
        n //= p
        out += [p, n]
        if n <= 1:
            return out


def _bfly2(f, base, fstride, tw, m):
    for k in range(m):
        a, b = base + k, base + k + m
        f[a] = _c_fixdiv(f[a], 2)
        f[b] = _c_fixdiv(f[b], 2)
        t = _c_mul(f[b], tw[k * fstride])
        f[b] = _c_sub(f[a], t)
        f[a] = _c_add(f[a], t)


def _bfly3(f, base, fstride, tw, m):
    epi3 = tw[fstride * m]
    for k in range(m):
        i0, i1, i2 = base + k, base + k + m, base + k + 2 * m
        f[i0], f[i1], f[i2] = _c_fixdiv(f[i0], 3), _c_fixdiv(f[i1], 3), _c_fixdiv(f[i2], 3)
        s1 = _c_mul(f[i1], tw[k * fstride])
        s2 = _c_mul(f[i2], tw[2 * k * fstride])
        s3 = _c_add(s1, s2)
        s0 = _c_sub(s1, s2)
        f1 = (s16(f[i0][0] - (s3[0] >> 1)), s16(f[i0][1] - (s3[1] >> 1)))
        s0 = (_sround(s0[0] * epi3[1]), _sround(s0[1] * epi3[1]))
        f[i0] = _c_add(f[i0], s3)
        f[i2] = (s16(f1[0] + s0[1]), s16(f1[1] - s0[0]))
        f[i1] = (s16(f1[0] - s0[1]), s16(f1[1] + s0[0]))


def _bfly4(f, base, fstride, tw, m):
    for k in range(m):
        i0, i1, i2, i3 = base + k, base + k + m, base + k + 2 * m, base + k + 3 * m
        for i in (i0, i1, i2, i3):
            f[i] = _c_fixdiv(f[i], 4)
        s0 = _c_mul(f[i1], tw[k * fstride])
        s1 = _c_mul(f[i2], tw[2 * k * fstride])
        s2 = _c_mul(f[i3], tw[3 * k * fstride])
        s5 = _c_sub(f[i0], s1)
        f[i0] = _c_add(f[i0], s1)
        s3 = _c_add(s0, s2)
        s4 = _c_sub(s0, s2)
        f[i2] = _c_sub(f[i0], s3)
        f[i0] = _c_add(f[i0], s3)
        f[i1] = (s16(s5[0] + s4[1]), s16(s5[1] - s4[0]))  # forward transform
        f[i3] = (s16(s5[0] - s4[1]), s16(s5[1] + s4[0]))


def _bfly5(f, base, fstride, tw, m):
    ya, yb = tw[fstride * m], tw[fstride * 2 * m]
    sm = lambda a, b: _sround(a * b)
    for u in range(m):
        i = [base + u + q * m for q in range(5)]
        for j in i:
            f[j] = _c_fixdiv(f[j], 5)
        s0 = f[i[0]]
        s1 = _c_mul(f[i[1]], tw[u * fstride])
        s2 = _c_mul(f[i[2]], tw[2 * u * fstride])
        s3 = _c_mul(f[i[3]], tw[3 * u * fstride])
        s4 = _c_mul(f[i[4]], tw[4 * u * fstride])
        s7, s10 = _c_add(s1, s4), _c_sub(s1, s4)
        s8, s9 = _c_add(s2, s3), _c_sub(s2, s3)
        f[i[0]] = (s16(f[i[0]][0] + s7[0] + s8[0]), s16(f[i[0]][1] + s7[1] + s8[1]))
        s5 = (s16(s0[0] + sm(s7[0], ya[0]) + sm(s8[0], yb[0])), s16(s0[1] + sm(s7[1], ya[0]) + sm(s8[1], yb[0])))
        s6 = (s16(sm(s10[1], ya[1]) + sm(s9[1], yb[1])), s16(-sm(s10[0], ya[1]) - sm(s9[0], yb[1])))
        f[i[1]] = _c_sub(s5, s6)
        f[i[4]] = _c_add(s5, s6)
        s11 = (s16(s0[0] + sm(s7[0], yb[0]) + sm(s8[0], ya[0])), s16(s0[1] + sm(s7[1], yb[0]) + sm(s8[1], ya[0])))
        s12 = (s16(-sm(s10[1], yb[1]) + sm(s9[1], ya[1])), s16(sm(s10[0], yb[1]) - sm(s9[0], ya[1])))
        f[i[2]] = _c_add(s11, s12)
        f[i[3]] = _c_sub(s11, s12)


def _bfly_generic(f, base, fstride, tw, m, p, nfft):
    for u in range(m):
        scratch = [_c_fixdiv(f[base + u + q1 * m], p) for q1 in range(p)]
        k = u
        for _q1 in range(p):
            twidx = 0
            acc = scratch[0]
            for q in range(1, p):
                twidx += fstride * k
                if twidx >= nfft:
                    twidx -= nfft
                acc = _c_add(acc, _c_mul(scratch[q], tw[twidx]))
            f[base + k] = acc
            k += m


def _kf_work(out, base, x, xpos, fstride, factors, tw, nfft):
    """``kf_work`` (recursive, as written): ``out[base:base + p*m]`` = the DFT of ``x[xpos::fstride]``."""
    p, m = factors[0], factors[1]
    if m == 1:
        for k in range(p):
            out[base + k] = x[xpos + k * fstride]
    else:
        for k in range(p):
            _kf_work(out, base + k * m, x, xpos + k * fstride, fstride * p, factors[2:], tw, nfft)
    if p == 2:
        _bfly2(out, base, fstride, tw, m)
    elif p == 3:
        _bfly3(out, base, fstride, tw, m)
    elif p == 4:
        _bfly4(out, base, fstride, tw, m)
    elif p == 5:
        _bfly5(out, base, fstride, tw, m)
    else:
        _bfly_generic(out, base, fstride, tw, m, p, nfft)


def kiss_fft(x) -> list:
    """Forward complex FFT of KISS FFT's 16-bit fixed point: ``x`` a list of ``(re, im)`` int16 pairs."""
    n = len(x)
    out = [None] * n
    _kf_work(out, 0, list(x), 0, 1, kiss_factors(n), kiss_twiddles(n), n)
    return out


def rfft(x, fft_length: int) -> list:
    """TFLM ``SignalRfft`` (int16): ``x`` (length <= ``fft_length``) zero-padded to ``fft_length`` (even),
    then ``kiss_fftr``: ``fft_length / 2 + 1`` complex bins as a flat list ``[re0, im0, re1, im1, ...]``."""
    work = [int(v) for v in x] + [0] * (fft_length - len(x))
    ncfft = fft_length // 2
    tmp = kiss_fft([(work[2 * k], work[2 * k + 1]) for k in range(ncfft)])
    sup = kiss_fftr_twiddles(fft_length)
    freq = [None] * (ncfft + 1)
    tdc = _c_fixdiv(tmp[0], 2)
    freq[0] = (s16(tdc[0] + tdc[1]), 0)
    freq[ncfft] = (s16(tdc[0] - tdc[1]), 0)
    for k in range(1, ncfft // 2 + 1):
        fpk = _c_fixdiv(tmp[k], 2)
        fpnk = _c_fixdiv((tmp[ncfft - k][0], s16(-tmp[ncfft - k][1])), 2)
        f1k = _c_add(fpk, fpnk)
        f2k = _c_sub(fpk, fpnk)
        tw = _c_mul(f2k, sup[k - 1])
        freq[k] = (s16((f1k[0] + tw[0]) >> 1), s16((f1k[1] + tw[1]) >> 1))
        freq[ncfft - k] = (s16((f1k[0] - tw[0]) >> 1), s16((tw[1] - f1k[1]) >> 1))
    return [v for c in freq for v in c]


# --------------------------------------------------------------------------- energy.cc
def energy(spectrum, start_index: int, end_index: int) -> list:
    """``SpectrumToEnergy``: ``uint32(re*re + im*im)`` for bins ``start_index <= i < end_index`` of the
    interleaved complex ``spectrum``; the other bins are 0 here (TFLM leaves them unwritten)."""
    n = len(spectrum) // 2
    out = [0] * n
    for i in range(start_index, end_index):
        re, im = int(spectrum[2 * i]), int(spectrum[2 * i + 1])
        out[i] = (re * re + im * im) & U32
    return out


# --------------------------------------------------------------------------- filter_bank.cc
def filter_bank(x, weights, unweights, freq_starts, weight_starts, widths, num_channels: int) -> list:
    """``FilterbankAccumulateChannels``: ``num_channels + 1`` uint64 accumulators (each channel's weighted
    sum plus the previous channel's unweighted sum); TFLM's output is accumulators 1..num_channels."""
    w_acc = 0
    u_acc = 0
    acc = []
    for i in range(num_channels + 1):
        f0, w0 = int(freq_starts[i]), int(weight_starts[i])
        for j in range(int(widths[i])):
            v = int(x[f0 + j]) & U32
            w_acc = (w_acc + (int(weights[w0 + j]) & U64) * v) & U64  # int16 -> uint64 wraps
            u_acc = (u_acc + (int(unweights[w0 + j]) & U64) * v) & U64
        acc.append(w_acc)
        w_acc = u_acc
        u_acc = 0
    return acc[1:]


# --------------------------------------------------------------------------- square_root_*.cc
def sqrt32(num: int) -> int:
    """``Sqrt32``: rounded integer square root of a uint32 (uint16 result, at most 65535)."""
    num &= U32
    if num == 0:
        return 0
    res = 0
    max_bit_number = 32 - most_significant_bit32(num)
    max_bit_number |= 1
    bit = 1 << (31 - max_bit_number)
    iterations = (31 - max_bit_number) // 2 + 1
    for _ in range(iterations):
        if num >= res + bit:
            num -= res + bit
            res = (res >> 1) + bit
        else:
            res >>= 1
        bit >>= 2
    if num > res and res != 0xFFFF:
        res += 1
    return res & 0xFFFF


def sqrt64(num: int) -> int:
    """``Sqrt64``: rounded integer square root of a uint64 (uint32 result)."""
    num &= U64
    if (num >> 32) == 0:
        return sqrt32(num)
    res = 0
    max_bit_number = 64 - most_significant_bit64(num)
    max_bit_number |= 1
    bit = 1 << (63 - max_bit_number)
    iterations = (63 - max_bit_number) // 2 + 1
    for _ in range(iterations):
        if num >= res + bit:
            num -= res + bit
            res = (res >> 1) + bit
        else:
            res >>= 1
        bit >>= 2
    if num > res and res != 0xFFFFFFFF:
        res += 1
    return res & U32


def filter_bank_square_root(x, scale_down_bits: int) -> list:
    """``FilterbankSqrt``: ``Sqrt64(x[i]) >> scale_down_bits`` (uint32; ``scale_down_bits`` in [0, 31])."""
    return [sqrt64(int(v)) >> scale_down_bits for v in x]


# --------------------------------------------------------------------------- filter_bank_spectral_subtraction.cc
def filter_bank_spectral_subtraction(x, noise_estimate, *, smoothing, one_minus_smoothing, alternate_smoothing,
                                     alternate_one_minus_smoothing, min_signal_remaining, smoothing_bits,
                                     spectral_subtraction_bits, clamping) -> tuple:
    """``FilterbankSpectralSubtraction``: ``(output, new noise_estimate)`` (both uint32 lists).

    Even channels use ``smoothing``/``one_minus_smoothing``, odd ones the alternates. The noise
    estimate is the operator's state, carried from one frame to the next.
    """
    out, ne = [], [int(v) & U32 for v in noise_estimate]
    for i in range(len(x)):
        sm, oms = (smoothing, one_minus_smoothing) if i % 2 == 0 else (alternate_smoothing, alternate_one_minus_smoothing)
        xi = int(x[i]) & U32
        scaled = (xi << smoothing_bits) & U32
        ne[i] = (((scaled * (sm & U32) + ne[i] * (oms & U32)) & U64) >> spectral_subtraction_bits) & U32
        est = ne[i]
        if est > scaled:
            est = scaled
            if clamping:
                ne[i] = est
        floor = ((xi * (min_signal_remaining & U32)) >> spectral_subtraction_bits) & U32
        sub = (scaled - est) >> smoothing_bits
        out.append(max(floor, sub))
    return out, ne


# --------------------------------------------------------------------------- pcan_argc_fixed.cc
#: ``kPcanSnrBits``, ``kPcanOutputBits``.
PCAN_SNR_BITS = 12
PCAN_OUTPUT_BITS = 6


def wide_dynamic_function(x: int, lut) -> int:
    """``WideDynamicFunction``: the PCAN gain for noise estimate ``x`` (uint32) from the int16 ``lut``."""
    x &= U32
    if x <= 2:
        return int(lut[x])
    interval = most_significant_bit32(x)
    o = 4 * interval - 6
    frac = ((x << (11 - interval)) if interval < 11 else (x >> (interval - 11))) & 0x3FF
    result = (int(lut[o + 2]) * frac) >> 5
    result = s32(result + s32((int(lut[o + 1]) & U32) << 5))
    result = s32(result * frac)
    result = (result + (1 << 14)) >> 15
    result += int(lut[o])
    return s16(result)


def pcan_shrink(x: int) -> int:
    """``PcanShrink``: square law below ``2 << kPcanSnrBits``, linear above."""
    if x < (2 << PCAN_SNR_BITS):
        return ((x * x) & U32) >> (2 + 2 * PCAN_SNR_BITS - PCAN_OUTPUT_BITS)
    return ((x >> (PCAN_SNR_BITS - PCAN_OUTPUT_BITS)) - (1 << PCAN_OUTPUT_BITS)) & U32


def pcan(x, noise_estimate, lut, snr_shift: int) -> list:
    """``ApplyPcanAutoGainControlFixed``: per-channel energy normalization (uint32 in, uint32 out)."""
    out = []
    for i in range(len(x)):
        gain = wide_dynamic_function(int(noise_estimate[i]), lut) & U32  # int16 -> uint32
        snr = (((int(x[i]) & U32) * gain) >> snr_shift) & U32
        out.append(pcan_shrink(snr))
    return out


# --------------------------------------------------------------------------- log.cc, filter_bank_log.cc
#: ``kLogLut`` of log.cc (129 + 1 entries).
LOG_LUT = (
    0, 224, 442, 654, 861, 1063, 1259, 1450, 1636, 1817, 1992, 2163, 2329, 2490, 2646, 2797, 2944, 3087, 3224,
    3358, 3487, 3611, 3732, 3848, 3960, 4068, 4172, 4272, 4368, 4460, 4549, 4633, 4714, 4791, 4864, 4934, 5001,
    5063, 5123, 5178, 5231, 5280, 5326, 5368, 5408, 5444, 5477, 5507, 5533, 5557, 5578, 5595, 5610, 5622, 5631,
    5637, 5640, 5641, 5638, 5633, 5626, 5615, 5602, 5586, 5568, 5547, 5524, 5498, 5470, 5439, 5406, 5370, 5332,
    5291, 5249, 5203, 5156, 5106, 5054, 5000, 4944, 4885, 4825, 4762, 4697, 4630, 4561, 4490, 4416, 4341, 4264,
    4184, 4103, 4020, 3935, 3848, 3759, 3668, 3575, 3481, 3384, 3286, 3186, 3084, 2981, 2875, 2768, 2659, 2549,
    2437, 2323, 2207, 2090, 1971, 1851, 1729, 1605, 1480, 1353, 1224, 1094, 963, 830, 695, 559, 421, 282, 142, 0,
    0,
)


def _log2_fraction_part32(x: int, log2x: int) -> int:
    frac = s32(x - (1 << log2x))
    if log2x < 16:
        frac = s32(frac << (16 - log2x))
    else:
        frac >>= log2x - 16
    base_seg = (frac & U32) >> (16 - 7)
    seg_unit = (1 << 16) >> 7
    c0 = LOG_LUT[base_seg]
    c1 = LOG_LUT[base_seg + 1]
    seg_base = s32(seg_unit * base_seg)
    rel_pos = s32((c1 - c0) * (frac - seg_base)) >> 16
    return (frac + c0 + rel_pos) & U32


def log32(x: int, out_scale: int) -> int:
    """``Log32``: ``round(out_scale * ln(x))`` in fixed point (x > 1, uint32 arithmetic)."""
    integer = (most_significant_bit32(x) - 1) & U32
    fraction = _log2_fraction_part32(x, integer)
    log2 = ((integer << 16) + fraction) & U32
    rnd = 65536 // 2
    loge = ((45426 * log2 + rnd) >> 16) & U32
    return ((((out_scale & U32) * loge) & U32) + rnd & U32) >> 16


def filter_bank_log(x, output_scale: int, correction_bits: int) -> list:
    """``FilterbankLog``: ``min(Log32(x << correction_bits, output_scale), 32767)``, 0 where the scaled value is <= 1."""
    out = []
    for v in x:
        scaled = ((int(v) & U32) << correction_bits) & U32
        if scaled > 1:
            lv = log32(scaled, output_scale)
            out.append(min(32767, lv))
        else:
            out.append(0)
    return out
