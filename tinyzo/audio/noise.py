"""Background noise for the keyword dataset: coloured noise, mains hum, babble, and mixing at an SNR.

Every generator takes a :class:`numpy.random.Generator` (the caller seeds it) and returns float64
samples; nothing reads global random state, so a clip is a pure function of its seed.

* :func:`colored_noise`: Gaussian noise whose power spectrum falls as ``1 / f**exponent``
  (0: white, 1: pink, 2: brown), unit RMS.
* :func:`hum`: mains hum, a 50 or 60 Hz fundamental plus harmonics 2..5, unit RMS.
* :func:`babble`: a sum of other speech clips at random offsets, unit RMS.
* :func:`mix`: speech + noise scaled so that the speech-to-noise power ratio is exactly the
  requested SNR (to float64 rounding).
"""

from __future__ import annotations

import numpy as np

from tinyzo.errors import InputError

__all__ = ["NOISE_KINDS", "babble", "colored_noise", "hum", "make_noise", "mix", "power", "snr_db"]

#: The background kinds :func:`make_noise` draws from (babble needs a pool of clips).
NOISE_KINDS = ("white", "pink", "brown", "hum", "babble")


def _check_n(n) -> int:
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 2:
        raise InputError(f"noise length must be an integer >= 2 samples, got {n!r}")
    return int(n)


def _unit_rms(x: np.ndarray) -> np.ndarray:
    r = np.sqrt(np.mean(x * x))
    return x / r if r > 0 else x


def colored_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with power spectral density proportional to ``1 / f**exponent``.

    Made in the frequency domain: white Gaussian noise's real FFT, each bin k >= 1 multiplied by
    ``k**(-exponent / 2)``, the DC bin set to 0, inverse FFT, scaled to RMS 1.

    Args:
        n: samples, an integer >= 2.
        exponent: 0 white, 1 pink, 2 brown (any finite number in [0, 4]).
        rng: the random generator.

    Returns:
        float64[n], mean 0 (no DC), RMS 1.
    """
    n = _check_n(n)
    if not (np.isfinite(exponent) and 0 <= exponent <= 4):
        raise InputError(f"exponent must be a number in [0, 4], got {exponent!r}")
    spec = np.fft.rfft(rng.standard_normal(n))
    k = np.arange(spec.size, dtype=np.float64)
    k[0] = 1.0
    spec *= k ** (-float(exponent) / 2)
    spec[0] = 0.0
    return _unit_rms(np.fft.irfft(spec, n))


def hum(n: int, rng: np.random.Generator, sample_rate: int = 16000, mains_hz: float | None = None) -> np.ndarray:
    """Mains hum: a sine at ``mains_hz`` (50 or 60, drawn when None) plus harmonics 2..5.

    Harmonic h has amplitude ``u_h / h`` with ``u_h`` uniform in [0.3, 1] (u_1 = 1) and a uniform
    random phase.

    Returns:
        float64[n], RMS 1.
    """
    n = _check_n(n)
    f0 = float(rng.choice([50.0, 60.0])) if mains_hz is None else float(mains_hz)
    t = np.arange(n, dtype=np.float64) / sample_rate
    x = np.zeros(n)
    for h in range(1, 6):
        amp = (1.0 if h == 1 else rng.uniform(0.3, 1.0)) / h
        x += amp * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi))
    return _unit_rms(x)


def babble(n: int, rng: np.random.Generator, pool, voices: tuple = (3, 6)) -> np.ndarray:
    """Babble: ``k`` clips (k uniform in ``voices``, inclusive) drawn from ``pool``, summed.

    Args:
        n: samples.
        rng: the random generator.
        pool: a non-empty sequence of float arrays (speech, any lengths <= n); each chosen clip is
            scaled to RMS 1 and placed at a uniform random offset.
        voices: (lo, hi) number of clips.

    Returns:
        float64[n], RMS 1.
    """
    n = _check_n(n)
    if len(pool) == 0:
        raise InputError("babble needs at least one clip in its pool")
    x = np.zeros(n)
    k = int(rng.integers(voices[0], voices[1] + 1))
    for i in rng.integers(0, len(pool), size=k):
        c = _unit_rms(np.asarray(pool[int(i)], dtype=np.float64)[:n])
        off = int(rng.integers(0, n - c.size + 1))
        x[off:off + c.size] += c
    return _unit_rms(x)


def make_noise(kind: str, n: int, rng: np.random.Generator, pool=()) -> np.ndarray:
    """One background of ``kind`` (one of :data:`NOISE_KINDS`), float64[n] with RMS 1."""
    if kind == "white":
        return colored_noise(n, 0.0, rng)
    if kind == "pink":
        return colored_noise(n, 1.0, rng)
    if kind == "brown":
        return colored_noise(n, 2.0, rng)
    if kind == "hum":
        return hum(n, rng)
    if kind == "babble":
        return babble(n, rng, pool)
    raise InputError(f"unknown noise kind {kind!r}; use one of {', '.join(NOISE_KINDS)}")


def power(x: np.ndarray) -> float:
    """Mean square of ``x`` (float64)."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.mean(x * x))


def snr_db(speech: np.ndarray, noise: np.ndarray) -> float:
    """``10 log10(power(speech) / power(noise))``."""
    return 10.0 * np.log10(power(speech) / power(noise))


def mix(speech: np.ndarray, noise: np.ndarray, snr: float) -> tuple:
    """Add ``noise`` to ``speech`` at ``snr`` dB.

    The SNR is the ratio of the mean squares over the whole clip (both float64[n], same n):
    the noise is scaled by ``g = sqrt(power(speech) / (power(noise) * 10**(snr / 10)))``.

    Returns:
        ``(mixture, scaled_noise)``, float64[n] each; ``snr_db(speech, scaled_noise) == snr`` to
        float64 rounding.

    Raises:
        InputError: different lengths, silent speech or noise, a non-finite SNR.
    """
    s = np.asarray(speech, dtype=np.float64)
    v = np.asarray(noise, dtype=np.float64)
    if s.shape != v.shape or s.ndim != 1:
        raise InputError(f"speech and noise must be 1-D of one length, got {s.shape} and {v.shape}")
    if not np.isfinite(snr):
        raise InputError(f"snr must be a finite number of dB, got {snr!r}")
    ps, pv = power(s), power(v)
    if ps <= 0 or pv <= 0:
        raise InputError("speech and noise must both have non-zero power")
    scaled = v * np.sqrt(ps / (pv * 10.0 ** (float(snr) / 10.0)))
    return s + scaled, scaled
