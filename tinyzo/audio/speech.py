"""An offline keyword-spotting dataset: espeak-ng speech, generated noise, the bit-exact TFLM front end.

``generate(...)`` synthesizes one-second 16 kHz clips of the ten Speech Commands keywords plus
"unknown" words and "silence" and returns their int8 front-end features (:func:`tinyzo.audio.features`,
int8[49, 40] per clip) as a :class:`tinyzo.data.Dataset`; ``tinyzo data speech --out DIR`` writes one.

* **Speakers** are (accent, variant) pairs of espeak-ng: the eight English accents of :data:`ACCENTS`
  times the voice variants of :data:`SPLIT_VARIANTS`. The split is by variant (a voice timbre), fixed
  here: the test voices (``m4``, ``f3``, ``klatt3``) and validation voices are never heard in training,
  in any accent.
* **A clip**: ``espeak-ng -v <accent>+<variant> -s <speed> -p <pitch> --stdout <word>`` (22,050 Hz
  int16), resampled to 16 kHz (``scipy.signal.resample_poly(x, 320, 441)``), leading and trailing
  silence trimmed (below 2% of the peak), placed at a random offset in 16,000 samples (a longer
  utterance is centre-cropped), peak level drawn in [0.1, 0.9] of full scale.
* **Noise** (with probability ``noise_prob``, and always for "silence"): pink (1/f power) or brown
  (1/f^2) noise, mains hum (50 or 60 Hz and 5 harmonics, amplitudes 1/k, random phases), or babble
  (3-5 other speech clips of the same split, summed), at an SNR drawn uniformly in ``snr_db`` (speech
  RMS over noise RMS, over the whole clip). "silence" is noise alone at an RMS drawn in [-60, -25] dBFS.
* Everything is drawn from ``numpy.random.default_rng(seed)`` in a fixed order, so a (seed, sizes,
  espeak-ng version) triple gives the same dataset.

Classes, in the order of TFLM's micro_speech labels extended to the ten words: "silence", "unknown",
yes, no, up, down, left, right, on, off, stop, go. espeak-ng is a GPL-3 program run as a separate
process; the audio it produces is this project's output (docs/audio.md, provenance).
"""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np

from tinyzo.errors import TinyzoError

__all__ = [
    "ACCENTS",
    "CLASSES",
    "KEYWORDS",
    "NOISES",
    "SPLIT_VARIANTS",
    "UNKNOWN_WORDS",
    "SpeechError",
    "brown_noise",
    "espeak_path",
    "generate",
    "hum",
    "mix_at_snr",
    "parse_wav_bytes",
    "pink_noise",
    "speakers",
    "synthesize",
]

RATE = 16000
CLIP = 16000
ESPEAK_RATE = 22050
KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
CLASSES = ("silence", "unknown") + KEYWORDS
UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "house", "tree", "wow", "happy", "zero", "one", "two", "three",
                 "four", "five", "six", "seven", "eight", "nine", "marvin", "sheila", "learn", "follow")
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029",
           "en-us-nyc")
SPLIT_VARIANTS = {
    "train": ("m1", "m2", "m3", "m5", "m7", "m8", "f1", "f2", "f4", "klatt", "klatt2"),
    "val": ("m6", "f5"),
    "test": ("m4", "f3", "klatt3"),
}
NOISES = ("pink", "brown", "hum", "babble")
INSTALL_HINT = "install it with `apt-get install espeak-ng` (Debian/Ubuntu) or `brew install espeak-ng` (macOS)"


class SpeechError(TinyzoError):
    """espeak-ng is missing or failed, or a dataset option is out of range."""


def espeak_path() -> str:
    """The espeak-ng executable; SpeechError (saying how to install it) when it is not on PATH."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SpeechError(f"espeak-ng not found: {INSTALL_HINT}")
    return exe


def espeak_version(exe: str) -> str:
    """The first line espeak-ng prints for ``--version``."""
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30, check=False)
    return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr).strip() else "unknown"


def speakers(split: str) -> list:
    """The (accent, variant) speakers of ``split`` ("train", "val" or "test"), accent-major."""
    if split not in SPLIT_VARIANTS:
        raise SpeechError(f"unknown split {split!r}; use train, val or test")
    return [(a, v) for a in ACCENTS for v in SPLIT_VARIANTS[split]]


def parse_wav_bytes(blob: bytes) -> tuple:
    """``(rate, int16[n])`` of a mono 16-bit PCM WAV in memory, also when streamed (espeak-ng --stdout
    writes unknown sizes in its header: the data chunk then runs to the end of the bytes)."""
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise SpeechError("espeak-ng output is not a WAV stream")
    pos, rate, data = 12, None, None
    while pos + 8 <= len(blob):
        cid, size = blob[pos:pos + 4], int.from_bytes(blob[pos + 4:pos + 8], "little")
        body = pos + 8
        if cid == b"fmt ":
            fmt, ch, rate, bits = (int.from_bytes(blob[body:body + 2], "little"),
                                   int.from_bytes(blob[body + 2:body + 4], "little"),
                                   int.from_bytes(blob[body + 4:body + 8], "little"),
                                   int.from_bytes(blob[body + 14:body + 16], "little"))
            if (fmt, ch, bits) != (1, 1, 16):
                raise SpeechError(f"espeak-ng wrote format {fmt}, {ch} channels, {bits} bits; expected 16-bit PCM mono")
        elif cid == b"data":
            end = len(blob) if size >= len(blob) - body else body + size
            data = blob[body:end]
            break
        pos = body + size + (size & 1)
    if rate is None or data is None:
        raise SpeechError("espeak-ng output has no fmt or data chunk")
    return rate, np.frombuffer(data[:len(data) // 2 * 2], dtype="<i2").astype(np.int16)


def synthesize(word: str, accent: str, variant: str, speed: int, pitch: int, exe: str | None = None) -> np.ndarray:
    """One utterance of ``word`` as float64 samples at 16 kHz in [-1, 1], silence trimmed.

    ``speed`` in words per minute (80..450), ``pitch`` 0..99 (espeak-ng's ``-s`` and ``-p``).
    """
    from scipy.signal import resample_poly

    exe = exe or espeak_path()
    cmd = [exe, "-v", f"{accent}+{variant}", "-s", str(int(speed)), "-p", str(int(pitch)), "--stdout", word]
    r = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    if r.returncode != 0:
        raise SpeechError(f"espeak-ng failed ({' '.join(cmd)}): {r.stderr.decode(errors='replace').strip()[:200]}")
    rate, x = parse_wav_bytes(r.stdout)
    if rate != ESPEAK_RATE:
        raise SpeechError(f"espeak-ng wrote {rate} Hz; expected {ESPEAK_RATE}")
    y = resample_poly(x.astype(np.float64) / 32768.0, 320, 441)
    peak = np.max(np.abs(y)) if y.size else 0.0
    if peak == 0:
        raise SpeechError(f"espeak-ng produced silence for {word!r} ({accent}+{variant})")
    loud = np.flatnonzero(np.abs(y) >= 0.02 * peak)
    return y[loud[0]:loud[-1] + 1]


def _place(x: np.ndarray, rng) -> np.ndarray:
    """``x`` at a random offset in a one-second buffer (centre-cropped when longer)."""
    out = np.zeros(CLIP)
    if len(x) >= CLIP:
        s = (len(x) - CLIP) // 2
        out[:] = x[s:s + CLIP]
    else:
        off = int(rng.integers(0, CLIP - len(x) + 1))
        out[off:off + len(x)] = x
    return out


def _unit_rms(x: np.ndarray) -> np.ndarray:
    r = np.sqrt(np.mean(x * x))
    return x / r if r > 0 else x


def _shaped(rng, n: int, power: float) -> np.ndarray:
    """Gaussian noise whose power spectrum falls as 1/f**power (DC removed), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    gain = np.zeros_like(f)
    gain[1:] = f[1:] ** (-power / 2.0)
    return _unit_rms(np.fft.irfft(spec * gain, n))


def pink_noise(rng, n: int) -> np.ndarray:
    """Pink noise (power spectrum 1/f), float64[n], unit RMS, from the generator ``rng``."""
    return _shaped(rng, n, 1.0)


def brown_noise(rng, n: int) -> np.ndarray:
    """Brown noise (power spectrum 1/f**2), float64[n], unit RMS."""
    return _shaped(rng, n, 2.0)


def hum(rng, n: int, rate: int = RATE) -> np.ndarray:
    """Mains hum: 50 or 60 Hz and its harmonics 2..6 with amplitudes 1/k and random phases; float64[n], unit RMS."""
    f0 = 50.0 if rng.random() < 0.5 else 60.0
    t = np.arange(n) / rate
    x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 7))
    return _unit_rms(x)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech + g * noise`` with g such that RMS(speech) / RMS(g * noise) = 10**(snr_db / 20)."""
    ps = np.sqrt(np.mean(speech * speech))
    pn = np.sqrt(np.mean(noise * noise))
    if ps == 0 or pn == 0:
        return speech + noise
    return speech + noise * (ps / (pn * 10.0 ** (snr_db / 20.0)))


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)


def _check_sizes(per_class: dict) -> dict:
    out = {}
    for split in ("train", "val", "test"):
        v = per_class.get(split, 0)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise SpeechError(f"per_class[{split!r}] must be an integer >= 0, got {v!r}")
        out[split] = int(v)
    if out["train"] < 1:
        raise SpeechError("per_class['train'] must be >= 1")
    return out


def generate(per_class=None, *, seed: int = 0, snr_db=(0.0, 20.0), noise_prob: float = 0.8, keep_audio: bool = False,
             progress: bool = True):
    """Synthesize the keyword dataset (module docstring).

    Args:
        per_class: clips per class and split, ``{"train": n, "val": n, "test": n}`` (default 200/40/60).
        seed: seeds every random choice (speaker, speed 120..200 wpm, pitch 25..75, offset, level, noise).
        snr_db: ``(lo, hi)`` of the SNR drawn per noisy clip, in dB (lo <= hi).
        noise_prob: probability that a speech clip gets background noise, in [0, 1].
        keep_audio: also return the int16 clips.
        progress: a progress bar on stderr (tinyzo.progress conventions).

    Returns:
        ``(dataset, provenance, audio)``: a :class:`tinyzo.data.Dataset` with int8 features
        x_*[N, 49, 40] and the 12 :data:`CLASSES`; a JSON-able provenance dict; ``{split: int16[N, 16000]}``
        when ``keep_audio`` (else None). SpeechError when espeak-ng is missing.
    """
    from tinyzo import audio
    from tinyzo.data import Dataset
    from tinyzo.progress import outer_bar

    sizes = _check_sizes(per_class or {"train": 200, "val": 40, "test": 60})
    lo, hi = (float(v) for v in snr_db)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise SpeechError(f"snr_db must be two finite numbers lo <= hi, got {snr_db!r}")
    if not 0.0 <= float(noise_prob) <= 1.0:
        raise SpeechError(f"noise_prob must be in [0, 1], got {noise_prob!r}")
    exe = espeak_path()
    rng = np.random.default_rng(seed)
    total = sum(sizes.values()) * len(CLASSES)
    bar = outer_bar(total=total, desc="synthesizing", enabled=progress)
    parts, clips_out, counts = {}, {}, {}
    try:
        for split in ("train", "val", "test"):
            spk = speakers(split)
            labels, clips, plans = [], [], []
            for c, name in enumerate(CLASSES):
                for _ in range(sizes[split]):
                    labels.append(c)
                    if name == "silence":
                        plans.append(None)
                        clips.append(np.zeros(CLIP))
                        continue
                    word = name if name in KEYWORDS else UNKNOWN_WORDS[int(rng.integers(len(UNKNOWN_WORDS)))]
                    accent, variant = spk[int(rng.integers(len(spk)))]
                    x = synthesize(word, accent, variant, int(rng.integers(120, 201)), int(rng.integers(25, 76)), exe)
                    x = _place(x, rng) * rng.uniform(0.1, 0.9) / max(np.max(np.abs(x)), 1e-12)
                    clips.append(x)
                    plans.append((word, accent, variant))
                    bar.update(1)
            speech_idx = [i for i, p in enumerate(plans) if p is not None]
            out = np.empty((len(clips), CLIP), np.int16)
            kinds = dict.fromkeys(NOISES, 0)
            for i, x in enumerate(clips):
                is_silence = plans[i] is None
                if is_silence or rng.random() < noise_prob:
                    kind = NOISES[int(rng.integers(len(NOISES)))]
                    if kind == "babble" and len(speech_idx) < 3:
                        kind = "pink"
                    kinds[kind] += 1
                    if kind == "pink":
                        n = pink_noise(rng, CLIP)
                    elif kind == "brown":
                        n = brown_noise(rng, CLIP)
                    elif kind == "hum":
                        n = hum(rng, CLIP)
                    else:
                        others = rng.choice([j for j in speech_idx if j != i], size=int(rng.integers(3, 6)),
                                            replace=False)
                        n = _unit_rms(sum(clips[j] for j in others))
                    if is_silence:
                        x = n * 10.0 ** (rng.uniform(-60.0, -25.0) / 20.0)
                        bar.update(1)
                    else:
                        x = mix_at_snr(x, n, rng.uniform(lo, hi))
                    peak = np.max(np.abs(x))
                    if peak > 1.0:  # keep the clip within full scale (scales speech and noise alike)
                        x = x / peak
                out[i] = _to_int16(x)
            parts[f"x_{split}"] = audio.features(out) if len(out) else np.zeros((0, 49, 40), np.int8)
            parts[f"y_{split}"] = np.asarray(labels, np.int64)
            counts[split] = {"clips": len(out), "speakers": len(spk), "noise": kinds}
            if keep_audio:
                clips_out[split] = out
    finally:
        bar.close()
    ds = Dataset(**parts, name="speech", classes=list(CLASSES))
    provenance = {
        "generator": "tinyzo.audio.speech.generate", "espeak_ng": espeak_version(exe), "seed": int(seed),
        "per_class": sizes, "snr_db": [lo, hi], "noise_prob": float(noise_prob), "accents": list(ACCENTS),
        "split_variants": {k: list(v) for k, v in SPLIT_VARIANTS.items()}, "unknown_words": list(UNKNOWN_WORDS),
        "classes": list(CLASSES), "features": "tinyzo.audio.features (TFLM audio_preprocessor_int8, bit-exact)",
        "counts": counts,
        "licence": "espeak-ng (GPL-3) is run as a separate program; the audio and features are this project's output",
    }
    return ds, provenance, (clips_out if keep_audio else None)
