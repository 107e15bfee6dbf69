"""Jitted kernels of TFLite Micro's audio "signal" operators (``signal/src/*.cc``), one row per stream.

Each kernel equals the function of the same name in :mod:`tinyzo.spec.signal` applied to every row
(property-tested). Values held in C as ``uint32_t`` are computed here in int64 (they fit) and
masked to 32 bits where C wraps; values held as ``uint64_t`` are computed with explicit
``np.uint64`` operands (Numba turns ``uint64 op int64`` into float64, so no literal is left bare).
int16 stores wrap with :func:`wrap16`. Nothing is validated here (:mod:`tinyzo.ops.signal` does);
kernels never raise and write into the caller's arrays.
"""

import numpy as np
from numba import njit

U32 = 0xFFFFFFFF


@njit(cache=True, inline="always")
def wrap16(v):
    """``(int16_t) v`` of an int64 value, as int64."""
    return ((v + 32768) & 0xFFFF) - 32768


@njit(cache=True, inline="always")
def msb32(x):
    """``MostSignificantBit32`` (GCC/Clang build): bit length of the uint32 ``x`` (int64 >= 0), 32 for 0."""
    if x == 0:
        return 32
    n = 0
    while x:
        x >>= 1
        n += 1
    return n


# ----------------------------------------------------------------------------------------- window
@njit(cache=True, nogil=True)
def window_s16(x, weights, shift, out):
    """``ApplyWindow`` per chunk of ``len(weights)``: x int16[N, L] (L a multiple of len(weights)),
    weights int16[W], shift in [0, 31] -> out int16[N, L] = clamp((x * w) >> shift, int16)."""
    n, length = x.shape
    w = weights.shape[0]
    for b in range(n):
        for i in range(length):
            raw = (np.int64(x[b, i]) * np.int64(weights[i % w])) >> shift
            if raw < -32768:
                raw = -32768
            elif raw > 32767:
                raw = 32767
            out[b, i] = raw


# ----------------------------------------------------------------------------------------- fft auto scale
@njit(cache=True, nogil=True)
def fft_auto_scale_s16(x, out, scale_bits):
    """``FftAutoScale``: x int16[N, L] -> out int16[N, L] = x << s, scale_bits int32[N] = s."""
    n, length = x.shape
    for b in range(n):
        m = 0
        for i in range(length):
            v = np.int64(x[b, i])
            if v > m:
                m = v
            elif -v > m:
                m = wrap16(-v)
        s = 16 - msb32(m & U32) - 1
        s = max(0, s)
        scale_bits[b] = s
        for i in range(length):
            out[b, i] = wrap16(np.int64(x[b, i]) * (np.int64(1) << s))


# ----------------------------------------------------------------------------------------- KISS FFT (fixed 16)
@njit(cache=True, inline="always")
def _sround(x):
    return wrap16((x + 16384) >> 15)


@njit(cache=True)
def _bfly2(re, im, base, fstride, twr, twi, m):
    for k in range(m):
        a = base + k
        c = a + m
        re[a] = _sround(re[a] * 16383)
        im[a] = _sround(im[a] * 16383)
        re[c] = _sround(re[c] * 16383)
        im[c] = _sround(im[c] * 16383)
        wr, wi = twr[k * fstride], twi[k * fstride]
        tr = _sround(re[c] * wr - im[c] * wi)
        ti = _sround(re[c] * wi + im[c] * wr)
        re[c] = wrap16(re[a] - tr)
        im[c] = wrap16(im[a] - ti)
        re[a] = wrap16(re[a] + tr)
        im[a] = wrap16(im[a] + ti)


@njit(cache=True)
def _bfly3(re, im, base, fstride, twr, twi, m):
    e3i = twi[fstride * m]
    for k in range(m):
        i0 = base + k
        i1 = i0 + m
        i2 = i0 + 2 * m
        for j in (i0, i1, i2):
            re[j] = _sround(re[j] * 10922)
            im[j] = _sround(im[j] * 10922)
        s1r = _sround(re[i1] * twr[k * fstride] - im[i1] * twi[k * fstride])
        s1i = _sround(re[i1] * twi[k * fstride] + im[i1] * twr[k * fstride])
        s2r = _sround(re[i2] * twr[2 * k * fstride] - im[i2] * twi[2 * k * fstride])
        s2i = _sround(re[i2] * twi[2 * k * fstride] + im[i2] * twr[2 * k * fstride])
        s3r = wrap16(s1r + s2r)
        s3i = wrap16(s1i + s2i)
        s0r = wrap16(s1r - s2r)
        s0i = wrap16(s1i - s2i)
        f1r = wrap16(re[i0] - (s3r >> 1))
        f1i = wrap16(im[i0] - (s3i >> 1))
        s0r = _sround(s0r * e3i)
        s0i = _sround(s0i * e3i)
        re[i0] = wrap16(re[i0] + s3r)
        im[i0] = wrap16(im[i0] + s3i)
        re[i2] = wrap16(f1r + s0i)
        im[i2] = wrap16(f1i - s0r)
        re[i1] = wrap16(f1r - s0i)
        im[i1] = wrap16(f1i + s0r)


@njit(cache=True)
def _bfly4(re, im, base, fstride, twr, twi, m):
    for k in range(m):
        i0 = base + k
        i1 = i0 + m
        i2 = i0 + 2 * m
        i3 = i0 + 3 * m
        for j in (i0, i1, i2, i3):
            re[j] = _sround(re[j] * 8191)
            im[j] = _sround(im[j] * 8191)
        t1, t2, t3 = k * fstride, 2 * k * fstride, 3 * k * fstride
        s0r = _sround(re[i1] * twr[t1] - im[i1] * twi[t1])
        s0i = _sround(re[i1] * twi[t1] + im[i1] * twr[t1])
        s1r = _sround(re[i2] * twr[t2] - im[i2] * twi[t2])
        s1i = _sround(re[i2] * twi[t2] + im[i2] * twr[t2])
        s2r = _sround(re[i3] * twr[t3] - im[i3] * twi[t3])
        s2i = _sround(re[i3] * twi[t3] + im[i3] * twr[t3])
        s5r = wrap16(re[i0] - s1r)
        s5i = wrap16(im[i0] - s1i)
        f0r = wrap16(re[i0] + s1r)
        f0i = wrap16(im[i0] + s1i)
        s3r = wrap16(s0r + s2r)
        s3i = wrap16(s0i + s2i)
        s4r = wrap16(s0r - s2r)
        s4i = wrap16(s0i - s2i)
        re[i2] = wrap16(f0r - s3r)
        im[i2] = wrap16(f0i - s3i)
        re[i0] = wrap16(f0r + s3r)
        im[i0] = wrap16(f0i + s3i)
        re[i1] = wrap16(s5r + s4i)
        im[i1] = wrap16(s5i - s4r)
        re[i3] = wrap16(s5r - s4i)
        im[i3] = wrap16(s5i + s4r)


@njit(cache=True)
def _bfly5(re, im, base, fstride, twr, twi, m):
    yar, yai = twr[fstride * m], twi[fstride * m]
    ybr, ybi = twr[fstride * 2 * m], twi[fstride * 2 * m]
    sr = np.empty(5, np.int64)
    si = np.empty(5, np.int64)
    for u in range(m):
        for q in range(5):
            j = base + u + q * m
            re[j] = _sround(re[j] * 6553)
            im[j] = _sround(im[j] * 6553)
        i0 = base + u
        sr[0], si[0] = re[i0], im[i0]
        for q in range(1, 5):
            j = i0 + q * m
            t = q * u * fstride
            sr[q] = _sround(re[j] * twr[t] - im[j] * twi[t])
            si[q] = _sround(re[j] * twi[t] + im[j] * twr[t])
        s7r, s7i = wrap16(sr[1] + sr[4]), wrap16(si[1] + si[4])
        s10r, s10i = wrap16(sr[1] - sr[4]), wrap16(si[1] - si[4])
        s8r, s8i = wrap16(sr[2] + sr[3]), wrap16(si[2] + si[3])
        s9r, s9i = wrap16(sr[2] - sr[3]), wrap16(si[2] - si[3])
        re[i0] = wrap16(re[i0] + s7r + s8r)
        im[i0] = wrap16(im[i0] + s7i + s8i)
        s5r = wrap16(sr[0] + _sround(s7r * yar) + _sround(s8r * ybr))
        s5i = wrap16(si[0] + _sround(s7i * yar) + _sround(s8i * ybr))
        s6r = wrap16(_sround(s10i * yai) + _sround(s9i * ybi))
        s6i = wrap16(-_sround(s10r * yai) - _sround(s9r * ybi))
        re[i0 + m], im[i0 + m] = wrap16(s5r - s6r), wrap16(s5i - s6i)
        re[i0 + 4 * m], im[i0 + 4 * m] = wrap16(s5r + s6r), wrap16(s5i + s6i)
        s11r = wrap16(sr[0] + _sround(s7r * ybr) + _sround(s8r * yar))
        s11i = wrap16(si[0] + _sround(s7i * ybr) + _sround(s8i * yar))
        s12r = wrap16(-_sround(s10i * ybi) + _sround(s9i * yai))
        s12i = wrap16(_sround(s10r * ybi) - _sround(s9r * yai))
        re[i0 + 2 * m], im[i0 + 2 * m] = wrap16(s11r + s12r), wrap16(s11i + s12i)
        re[i0 + 3 * m], im[i0 + 3 * m] = wrap16(s11r - s12r), wrap16(s11i - s12i)


@njit(cache=True)
def _bfly_generic(re, im, base, fstride, twr, twi, m, p, nfft):
    scr = np.empty(p, np.int64)
    sci = np.empty(p, np.int64)
    div = 32767 // p
    for u in range(m):
        for q1 in range(p):
            j = base + u + q1 * m
            scr[q1] = _sround(re[j] * div)
            sci[q1] = _sround(im[j] * div)
        k = u
        for _q1 in range(p):
            twidx = 0
            ar, ai = scr[0], sci[0]
            for q in range(1, p):
                twidx += fstride * k
                if twidx >= nfft:
                    twidx -= nfft
                tr = _sround(scr[q] * twr[twidx] - sci[q] * twi[twidx])
                ti = _sround(scr[q] * twi[twidx] + sci[q] * twr[twidx])
                ar = wrap16(ar + tr)
                ai = wrap16(ai + ti)
            re[base + k] = ar
            im[base + k] = ai
            k += m


@njit(cache=True)
def kiss_fft_s16(in_re, in_im, perm, stages, twr, twi, re, im):
    """KISS FFT's fixed-point ``kf_work`` without recursion: the leaves' input order ``perm`` (int64[n]),
    then the butterflies of ``stages`` (int64[S, 4]: radix p, m, fstride, blocks), deepest first.
    in_re/in_im: int64[n] (int16 values) -> re/im: int64[n]."""
    n = perm.shape[0]
    for k in range(n):
        re[k] = in_re[perm[k]]
        im[k] = in_im[perm[k]]
    for s in range(stages.shape[0] - 1, -1, -1):
        p, m, fstride, blocks = stages[s, 0], stages[s, 1], stages[s, 2], stages[s, 3]
        for blk in range(blocks):
            base = blk * p * m
            if p == 2:
                _bfly2(re, im, base, fstride, twr, twi, m)
            elif p == 3:
                _bfly3(re, im, base, fstride, twr, twi, m)
            elif p == 4:
                _bfly4(re, im, base, fstride, twr, twi, m)
            elif p == 5:
                _bfly5(re, im, base, fstride, twr, twi, m)
            else:
                _bfly_generic(re, im, base, fstride, twr, twi, m, p, n)


@njit(cache=True, nogil=True)
def rfft_s16(x, fft_length, perm, stages, twr, twi, sup_r, sup_i, work, out):
    """TFLM ``SignalRfft`` int16 (``kiss_fftr``): x int16[N, L] (L <= fft_length) zero-padded ->
    out int16[N, 2 * (fft_length / 2 + 1)] (interleaved re, im). work: int64[4, fft_length / 2]."""
    n, length = x.shape
    ncfft = fft_length // 2
    for b in range(n):
        in_re = work[0]
        in_im = work[1]
        for k in range(ncfft):
            r = np.int64(0)
            i = np.int64(0)
            if 2 * k < length:
                r = np.int64(x[b, 2 * k])
            if 2 * k + 1 < length:
                i = np.int64(x[b, 2 * k + 1])
            in_re[k] = r
            in_im[k] = i
        re = work[2]
        im = work[3]
        kiss_fft_s16(in_re, in_im, perm, stages, twr, twi, re, im)
        tdr = _sround(re[0] * 16383)
        tdi = _sround(im[0] * 16383)
        out[b, 0] = wrap16(tdr + tdi)
        out[b, 1] = 0
        out[b, 2 * ncfft] = wrap16(tdr - tdi)
        out[b, 2 * ncfft + 1] = 0
        for k in range(1, ncfft // 2 + 1):
            fpkr = _sround(re[k] * 16383)
            fpki = _sround(im[k] * 16383)
            fpnkr = _sround(re[ncfft - k] * 16383)
            fpnki = _sround(wrap16(-im[ncfft - k]) * 16383)
            f1r, f1i = wrap16(fpkr + fpnkr), wrap16(fpki + fpnki)
            f2r, f2i = wrap16(fpkr - fpnkr), wrap16(fpki - fpnki)
            tr = _sround(f2r * sup_r[k - 1] - f2i * sup_i[k - 1])
            ti = _sround(f2r * sup_i[k - 1] + f2i * sup_r[k - 1])
            out[b, 2 * k] = wrap16((f1r + tr) >> 1)
            out[b, 2 * k + 1] = wrap16((f1i + ti) >> 1)
            out[b, 2 * (ncfft - k)] = wrap16((f1r - tr) >> 1)
            out[b, 2 * (ncfft - k) + 1] = wrap16((ti - f1i) >> 1)


# ----------------------------------------------------------------------------------------- energy
@njit(cache=True, nogil=True)
def energy_u32(spectrum, start, end, out):
    """``SpectrumToEnergy``: spectrum int16[N, 2K] -> out uint32[N, K], bins outside [start, end) 0."""
    n, k2 = spectrum.shape
    for b in range(n):
        for i in range(k2 // 2):
            if start <= i < end:
                re = np.int64(spectrum[b, 2 * i])
                im = np.int64(spectrum[b, 2 * i + 1])
                out[b, i] = (re * re + im * im) & U32
            else:
                out[b, i] = 0


# ----------------------------------------------------------------------------------------- filter bank
@njit(cache=True, nogil=True)
def filter_bank_u64(x, weights, unweights, freq_starts, weight_starts, widths, num_channels, out):
    """``FilterbankAccumulateChannels``: x uint32[N, F] -> out uint64[N, num_channels] (accumulators
    1..num_channels, uint64 arithmetic modulo 2**64; int16 weights sign-extend to uint64)."""
    n = x.shape[0]
    for b in range(n):
        w_acc = np.uint64(0)
        u_acc = np.uint64(0)
        for i in range(num_channels + 1):
            f0 = np.int64(freq_starts[i])
            w0 = np.int64(weight_starts[i])
            for j in range(np.int64(widths[i])):
                v = np.uint64(x[b, f0 + j])
                w_acc += np.uint64(np.int64(weights[w0 + j])) * v
                u_acc += np.uint64(np.int64(unweights[w0 + j])) * v
            if i > 0:
                out[b, i - 1] = w_acc
            w_acc = u_acc
            u_acc = np.uint64(0)


@njit(cache=True, inline="always")
def _sqrt32(num):
    """``Sqrt32`` on an int64 holding a uint32."""
    if num == 0:
        return np.int64(0)
    res = np.int64(0)
    mbn = (32 - msb32(num)) | 1
    bit = np.int64(1) << (31 - mbn)
    iterations = (31 - mbn) // 2 + 1
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


@njit(cache=True, inline="always")
def sqrt64(num):
    """``Sqrt64`` of a uint64 -> int64 holding the uint32 result."""
    if (num >> np.uint64(32)) == np.uint64(0):
        return _sqrt32(np.int64(num))
    hi = np.int64(num >> np.uint64(32))
    msb = 32 + msb32(hi)
    mbn = (64 - msb) | 1
    res = np.uint64(0)
    bit = np.uint64(1) << np.uint64(63 - mbn)
    iterations = (63 - mbn) // 2 + 1
    for _ in range(iterations):
        if num >= res + bit:
            num -= res + bit
            res = (res >> np.uint64(1)) + bit
        else:
            res >>= np.uint64(1)
        bit >>= np.uint64(2)
    if num > res and res != np.uint64(0xFFFFFFFF):
        res += np.uint64(1)
    return np.int64(res & np.uint64(0xFFFFFFFF))


@njit(cache=True, nogil=True)
def filter_bank_sqrt_u32(x, scale_bits, out):
    """``FilterbankSqrt``: x uint64[N, C], scale_bits int32[N] in [0, 31] -> out uint32[N, C]."""
    n, c = x.shape
    for b in range(n):
        s = np.int64(scale_bits[b])
        for i in range(c):
            out[b, i] = sqrt64(x[b, i]) >> s


# ----------------------------------------------------------------------------------------- spectral subtraction
@njit(cache=True, nogil=True)
def spectral_subtraction_u32(x, noise, smoothing, one_minus_smoothing, alt_smoothing, alt_one_minus_smoothing,
                             min_signal_remaining, smoothing_bits, subtraction_bits, clamping, out, noise_out):
    """``FilterbankSpectralSubtraction``: x uint32[N, C]; noise uint32[N, C] (each stream's estimate,
    updated in place) -> out uint32[N, C]; noise_out uint32[N, C] a copy of the new estimate. The
    coefficients are uint32 values, the bit counts in [0, 31] and [0, 63]."""
    n, c = x.shape
    sb = np.uint64(smoothing_bits)
    ssb = np.uint64(subtraction_bits)
    m32 = np.uint64(0xFFFFFFFF)
    for b in range(n):
        for i in range(c):
            if i % 2 == 0:
                sm = np.uint64(smoothing)
                oms = np.uint64(one_minus_smoothing)
            else:
                sm = np.uint64(alt_smoothing)
                oms = np.uint64(alt_one_minus_smoothing)
            xi = np.uint64(x[b, i])
            scaled = (xi << sb) & m32
            ne = ((scaled * sm + np.uint64(noise[b, i]) * oms) >> ssb) & m32
            est = ne
            if est > scaled:
                est = scaled
                if clamping:
                    ne = est
            noise[b, i] = ne
            noise_out[b, i] = ne
            floor = ((xi * np.uint64(min_signal_remaining)) >> ssb) & m32
            sub = (scaled - est) >> sb
            out[b, i] = max(floor, sub)


# ----------------------------------------------------------------------------------------- PCAN
@njit(cache=True, inline="always")
def _wrap32(v):
    return ((v + 2147483648) & U32) - 2147483648


@njit(cache=True, inline="always")
def wide_dynamic_function(x, lut):
    """``WideDynamicFunction`` of an int64 holding a uint32 -> int64 holding the int16 gain."""
    if x <= 2:
        return np.int64(lut[x])
    interval = msb32(x)
    o = 4 * interval - 6
    if interval < 11:
        frac = (x << (11 - interval)) & 0x3FF
    else:
        frac = (x >> (interval - 11)) & 0x3FF
    result = (np.int64(lut[o + 2]) * frac) >> 5
    result = _wrap32(result + _wrap32((np.int64(lut[o + 1]) & U32) << 5))
    result = _wrap32(result * frac)
    result = (result + 16384) >> 15
    result += np.int64(lut[o])
    return wrap16(result)


@njit(cache=True, nogil=True)
def pcan_u32(x, noise, lut, snr_shift, out):
    """``ApplyPcanAutoGainControlFixed``: x, noise uint32[N, C], lut int16[>= 125] -> out uint32[N, C]."""
    n, c = x.shape
    sh = np.uint64(snr_shift)
    for b in range(n):
        for i in range(c):
            gain = np.uint64(wide_dynamic_function(np.int64(noise[b, i]), lut) & U32)
            snr = np.int64(((np.uint64(x[b, i]) * gain) >> sh) & np.uint64(0xFFFFFFFF))
            if snr < (2 << 12):
                out[b, i] = ((snr * snr) & U32) >> 20
            else:
                out[b, i] = ((snr >> 6) - 64) & U32


# ----------------------------------------------------------------------------------------- log
@njit(cache=True, inline="always")
def log32(x, out_scale, lut):
    """``Log32`` of an int64 holding a uint32 > 1 (lut: ``kLogLut``, int64[130])."""
    integer = msb32(x) - 1
    frac = _wrap32(x - (np.int64(1) << integer))
    if integer < 16:
        frac = _wrap32(frac << (16 - integer))
    else:
        frac >>= integer - 16
    base_seg = (frac & U32) >> 9
    c0 = lut[base_seg]
    c1 = lut[base_seg + 1]
    seg_base = 512 * base_seg  # seg_unit = (1 << 16) >> 7
    rel_pos = _wrap32((c1 - c0) * (frac - seg_base)) >> 16
    fraction = (frac + c0 + rel_pos) & U32
    log2 = ((integer << 16) + fraction) & U32
    loge = ((45426 * log2 + 32768) >> 16) & U32
    # out_scale * loge modulo 2**32 without an int64 overflow: split out_scale in 16-bit halves
    prod = ((out_scale & 0xFFFF) * loge + ((((out_scale >> 16) * loge) & 0xFFFF) << 16)) & U32
    return ((prod + 32768) & U32) >> 16


@njit(cache=True, nogil=True)
def filter_bank_log_s16(x, output_scale, correction_bits, lut, out):
    """``FilterbankLog``: x uint32[N, C] -> out int16[N, C] (output_scale a uint32, correction_bits in [0, 31])."""
    n, c = x.shape
    for b in range(n):
        for i in range(c):
            scaled = (np.int64(x[b, i]) << correction_bits) & U32
            if scaled > 1:
                v = log32(scaled, np.int64(output_scale), lut)
                out[b, i] = min(32767, v)
            else:
                out[b, i] = 0
