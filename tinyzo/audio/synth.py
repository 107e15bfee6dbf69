"""An offline keyword-spotting dataset: espeak-ng speech + generated noise -> TFLM front-end features.

``tinyzo data speech --out DIR`` (docs/audio.md, "Keyword dataset") calls :func:`build_speech_dataset`.

The twelve classes, in the order of Speech Commands / TFLM's micro_speech (label k = ``CLASSES[k]``):
``silence, unknown, yes, no, up, down, left, right, on, off, stop, go``. micro_speech's four outputs
(silence, unknown, yes, no) are labels 0..3 here.

A clip (one second, 16 kHz, int16) is made by:

1. ``espeak-ng -v <accent>+<variant> -s <speed> -p <pitch> --stdout <word>`` (a 22,050 Hz WAV);
2. resampling to 16 kHz with ``scipy.signal.resample_poly(x, 320, 441)`` (float64, deterministic);
3. trimming leading/trailing silence (:func:`trim`), cutting to at most 16,000 samples;
4. placing it at a uniform random offset in 16,000 samples of zeros;
5. adding a background (:mod:`tinyzo.audio.noise`: white, pink, brown, hum or babble made of the
   same split's words) at an SNR uniform in ``snr_db`` (whole-clip mean squares);
6. optionally (``mic``), filtering the mixture with a microphone response (:data:`MICROPHONES`);
7. scaling the mixture to a peak uniform in [-20, -1] dBFS and rounding to int16.

"silence" clips are background only (RMS uniform in [-60, -30] dBFS, measured after the microphone
filter if any); "unknown" clips say one of
:data:`UNKNOWN_WORDS`. A *speaker* is an (accent, variant) pair; the split is by **variant** (the
voice timbre): :data:`SPLIT_VARIANTS` names the variants of each split, so every test speaker (and
every test babble voice) has a timbre never heard in training. Besides the English
:data:`ACCENTS` the reference model is trained on, :data:`FOREIGN_ACCENTS` are espeak-ng voices of
other languages reading the same English words (an accent shift, :mod:`tinyzo.audio.shifts`). Every random choice of clip ``i``
of split ``s`` comes from ``numpy.random.default_rng([seed, s, i])``: the dataset is a pure
function of the seed, the options and the espeak-ng version (recorded in the provenance).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import wave

import numpy as np

from tinyzo.audio.noise import NOISE_KINDS, make_noise, mix
from tinyzo.errors import InputError

__all__ = [
    "ACCENTS",
    "CLASSES",
    "CLIP_SAMPLES",
    "ESPEAK_MISSING",
    "FEATURE_QUANT",
    "FOREIGN_ACCENTS",
    "GENERATOR_VERSION",
    "MICROPHONES",
    "KEYWORDS",
    "SPLIT_VARIANTS",
    "UNKNOWN_WORDS",
    "EspeakMissing",
    "build_speech_dataset",
    "espeak_path",
    "espeak_version",
    "make_clip",
    "mic_filter",
    "plan_split",
    "resample_to_16k",
    "speakers",
    "synthesize",
    "trim",
]

#: Bumped whenever a change alters the clips made from a given seed.
GENERATOR_VERSION = 1
#: The ten Speech Commands keywords.
KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
#: Class names, label order (micro_speech's silence, unknown, yes, no come first).
CLASSES = ("silence", "unknown") + KEYWORDS
#: The words of the "unknown" class (Speech Commands' auxiliary words).
UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "house", "tree", "wow", "happy", "marvin", "sheila", "zero", "one",
                 "two", "three", "four", "five", "six", "seven", "eight", "nine", "learn", "follow", "forward")
#: espeak-ng English accents (voices); ``--voices`` picks a subset.
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
           "en-us-nyc")
#: espeak-ng voices of other languages reading the English words: accents the reference model never
#: heard (German, French, Spanish, Italian, Vietnamese, Japanese, Mandarin, Arabic rules of reading).
FOREIGN_ACCENTS = ("de", "fr-fr", "es", "it", "vi", "ja", "cmn", "ar")
#: Microphone responses ``mic`` can apply: name -> (Butterworth order, band edges in Hz, filter type),
#: run by ``scipy.signal.sosfilt`` at 16 kHz. "muffled": a microphone behind a cover or a cheap
#: capsule losing the highs (low-pass at 1.5 kHz); "telephone": the 300-3400 Hz band.
MICROPHONES = {"muffled": (4, 1500.0, "lowpass"), "telephone": (4, (300.0, 3400.0), "bandpass")}
#: espeak-ng voice variants per split. A speaker is (accent, variant); no variant is in two splits.
SPLIT_VARIANTS = {
    "train": ("m1", "m2", "m4", "m5", "m7", "f1", "f2", "f4", "klatt", "klatt3", "Andy", "Annie", "croak",
              "whisper"),
    "val": ("m6", "f5", "klatt4"),
    "test": ("m3", "f3", "klatt2", "Alex"),
}
#: One second at 16 kHz.
CLIP_SAMPLES = 16000
#: The quantization the front end's int8 features are meant to be read with: the (scale,
#: zero point) of micro_speech_quantized.tflite's input, which takes these features unchanged.
FEATURE_QUANT = (0.10171568393707275, -128)
SPEED_RANGE = (120, 220)   # words per minute (espeak-ng -s), uniform integer
PITCH_RANGE = (20, 80)     # espeak-ng -p, uniform integer
PEAK_DBFS = (-20.0, -1.0)
SILENCE_RMS_DBFS = (-60.0, -30.0)
ESPEAK_MISSING = ("espeak-ng not found: install it with `apt-get install espeak-ng` (Debian/Ubuntu) or "
                  "`brew install espeak-ng`")
_SPLIT_INDEX = {"train": 0, "val": 1, "test": 2}


class EspeakMissing(InputError):
    """espeak-ng is not installed (the message says how to install it)."""


def espeak_path() -> str:
    """The espeak-ng executable on PATH, else :class:`EspeakMissing`."""
    p = shutil.which("espeak-ng")
    if p is None:
        raise EspeakMissing(ESPEAK_MISSING)
    return p


def espeak_version() -> str:
    """espeak-ng's version line (e.g. ``eSpeak NG text-to-speech: 1.51  Data at: ...``), first 60 characters."""
    out = subprocess.run([espeak_path(), "--version"], capture_output=True, text=True, check=True).stdout
    return out.strip().split("  Data at")[0]


def speakers(split: str, accents=ACCENTS) -> list:
    """The (accent, variant) speakers of ``split`` ("train", "val" or "test"), accent-major."""
    if split not in SPLIT_VARIANTS:
        raise InputError(f"unknown split {split!r}; use train, val or test")
    return [(a, v) for a in accents for v in SPLIT_VARIANTS[split]]


def _parse_wav(data: bytes) -> tuple:
    """(int16 samples, rate) of espeak-ng's ``--stdout`` WAV (its header sizes say 'streaming': ignored)."""
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InputError("espeak-ng did not produce a WAV file")
    pos, rate = 12, None
    while pos + 8 <= len(data):
        tag, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if tag == b"fmt ":
            channels = int.from_bytes(data[pos + 10:pos + 12], "little")
            rate = int.from_bytes(data[pos + 12:pos + 16], "little")
            bits = int.from_bytes(data[pos + 22:pos + 24], "little")
            if channels != 1 or bits != 16:
                raise InputError(f"espeak-ng WAV: {channels} channels, {bits} bits; expected mono 16-bit")
        elif tag == b"data":
            if rate is None:
                raise InputError("espeak-ng WAV: data before fmt")
            body = data[pos + 8:]
            return np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2").astype(np.int16), rate
        pos += 8 + size + (size & 1)
    raise InputError("espeak-ng WAV: no data chunk")


def synthesize(word: str, accent: str, variant: str, speed: int, pitch: int) -> tuple:
    """Run espeak-ng once: ``(int16 samples, sample rate)`` of ``word`` (22,050 Hz for espeak-ng 1.5x)."""
    cmd = [espeak_path(), "-v", f"{accent}+{variant}", "-s", str(int(speed)), "-p", str(int(pitch)), "--stdout",
           word]
    r = subprocess.run(cmd, capture_output=True, check=False)
    if r.returncode != 0:
        raise InputError(f"espeak-ng failed ({' '.join(cmd)}): {r.stderr.decode(errors='replace').strip()}")
    return _parse_wav(r.stdout)


def resample_to_16k(x: np.ndarray, rate: int) -> np.ndarray:
    """float64 samples at 16 kHz: ``scipy.signal.resample_poly`` by 16000 / rate in lowest terms."""
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(16000, int(rate))
    x = np.asarray(x, dtype=np.float64)
    return x if rate == 16000 else resample_poly(x, 16000 // g, int(rate) // g)


def trim(x: np.ndarray, threshold_db: float = -40.0, frame: int = 160) -> np.ndarray:
    """Cut leading/trailing silence: keep from the first to the last 10 ms frame (``frame`` samples)
    whose RMS is within ``threshold_db`` of the loudest frame's. An all-zero input is returned empty."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x) // frame
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    if rms.max() <= 0:
        return x[:0]
    on = np.flatnonzero(rms >= rms.max() * 10 ** (threshold_db / 20))
    return x[on[0] * frame:(on[-1] + 1) * frame]


def plan_split(split: str, per_class: int, seed: int, accents=ACCENTS) -> list:
    """The clips of one split: a list of dicts (label, word, speaker, speed, pitch), in clip order.

    ``per_class`` clips per class, classes interleaved (clip i has label ``i % 12``); speakers cycle
    through :func:`speakers` from a seeded random start, so every speaker of the split is used about
    equally; words of "unknown" cycle through :data:`UNKNOWN_WORDS` likewise.
    """
    spk = speakers(split, accents)
    rng = np.random.default_rng([seed, _SPLIT_INDEX[split], 1 << 20])
    s0, u0 = int(rng.integers(len(spk))), int(rng.integers(len(UNKNOWN_WORDS)))
    plan = []
    for i in range(per_class * len(CLASSES)):
        label = i % len(CLASSES)
        r = np.random.default_rng([seed, _SPLIT_INDEX[split], i])
        word = None if label == 0 else (UNKNOWN_WORDS[(u0 + i // len(CLASSES)) % len(UNKNOWN_WORDS)] if label == 1
                                        else CLASSES[label])
        plan.append({"label": label, "word": word, "speaker": (s0 + i) % len(spk) if label else -1,
                     "speed": int(r.integers(SPEED_RANGE[0], SPEED_RANGE[1] + 1)),
                     "pitch": int(r.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1))})
    return plan


def mic_filter(name: str) -> np.ndarray:
    """The second-order sections (float64[n, 6], ``scipy.signal.butter(..., output="sos")``) of
    microphone response ``name`` (a key of :data:`MICROPHONES`) at 16 kHz."""
    from scipy.signal import butter

    if name not in MICROPHONES:
        raise InputError(f"unknown microphone {name!r}; choose from {', '.join(MICROPHONES)}")
    order, edges, kind = MICROPHONES[name]
    return butter(order, edges, kind, fs=16000, output="sos")


def make_clip(speech, rng: np.random.Generator, snr_range: tuple, pool, mic=None) -> tuple:
    """One int16[16000] clip from trimmed 16 kHz ``speech`` (float64, or None for "silence").

    ``mic``: None, or second-order sections (:func:`mic_filter`) applied to the mixture (speech and
    background, as a microphone hears both) before it is scaled to its level. The random draws are
    the same with or without it.

    Returns ``(clip, info)``: info holds the noise kind, the SNR (dB, None for silence) and the offset.
    """
    kind = NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))] if len(pool) else \
        NOISE_KINDS[int(rng.integers(len(NOISE_KINDS) - 1))]
    noise = make_noise(kind, CLIP_SAMPLES, rng, pool)
    if speech is None:
        level = 32767 * 10 ** (rng.uniform(*SILENCE_RMS_DBFS) / 20)
        if mic is not None:
            noise = _filtered(noise, mic)
            noise = noise / max(np.sqrt(np.mean(noise * noise)), 1e-12)
        x, snr, off = noise * level, None, 0
    else:
        s = np.asarray(speech, dtype=np.float64)[:CLIP_SAMPLES]
        off = int(rng.integers(0, CLIP_SAMPLES - len(s) + 1))
        placed = np.zeros(CLIP_SAMPLES)
        placed[off:off + len(s)] = s
        snr = float(rng.uniform(*snr_range))
        x, _ = mix(placed, noise, snr)
        if mic is not None:
            x = _filtered(x, mic)
        x = x * (32767 * 10 ** (rng.uniform(*PEAK_DBFS) / 20) / np.max(np.abs(x)))
    clip = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    return clip, {"noise": kind, "snr_db": snr, "offset": off}


def _filtered(x: np.ndarray, sos: np.ndarray) -> np.ndarray:
    from scipy.signal import sosfilt

    return sosfilt(sos, x)


def _check_options(per_class, seed, snr_db, accents) -> tuple:
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise InputError(f"per_class must be an integer >= 1, got {per_class!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be an integer >= 0, got {seed!r}")
    try:
        lo, hi = (float(v) for v in snr_db)
    except (TypeError, ValueError):
        raise InputError(f"snr_db must be two numbers (lo, hi), got {snr_db!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise InputError(f"snr_db must be two finite numbers lo <= hi, got {snr_db!r}")
    accents = tuple(accents)
    bad = [a for a in accents if a not in ACCENTS + FOREIGN_ACCENTS]
    if bad or not accents:
        raise InputError(f"unknown accent(s) {', '.join(bad) or '(none given)'}; choose from "
                         f"{', '.join(ACCENTS + FOREIGN_ACCENTS)}")
    return (lo, hi), accents


def build_speech_dataset(per_class: int = 100, seed: int = 0, snr_db=(5.0, 30.0), accents=ACCENTS,
                         val_test_per_class: int | None = None, keep_audio: bool = False, progress: bool = True,
                         mic: str | None = None, name: str = "speech"):
    """Synthesize the keyword dataset and compute its features.

    Args:
        per_class: training clips per class (12 classes).
        seed: integer >= 0; everything is drawn from it.
        snr_db: (lo, hi) dB, the SNR range of the speech clips.
        accents: espeak-ng accents to use (from :data:`ACCENTS` and :data:`FOREIGN_ACCENTS`).
        val_test_per_class: clips per class in val and in test (default ``max(1, per_class // 4)``),
            or a (val, test) pair.
        keep_audio: also return the int16 clips.
        progress: show a progress bar (:func:`tinyzo.progress.outer_bar`).
        mic: None, or a microphone response of :data:`MICROPHONES` applied to every clip.
        name: the dataset's name.

    Returns:
        ``(dataset, audio)``: a :class:`tinyzo.data.Dataset` with int8[N, 49, 40] features,
        :data:`CLASSES`, ``feature_quant`` = :data:`FEATURE_QUANT` and a JSON ``provenance``; ``audio``
        is ``{split: int16[N, 16000]}`` with ``keep_audio``, else None.

    Raises:
        EspeakMissing: espeak-ng is not installed. InputError: bad options.
    """
    from tinyzo import __version__, audio
    from tinyzo.data import Dataset
    from tinyzo.progress import outer_bar

    snr_range, accents = _check_options(per_class, seed, snr_db, accents)
    sos = None if mic is None else mic_filter(mic)
    version = espeak_version()
    if val_test_per_class is None:
        nv = nt = max(1, per_class // 4)
    elif isinstance(val_test_per_class, (tuple, list)):
        nv, nt = (int(v) for v in val_test_per_class)
    else:
        nv = nt = int(val_test_per_class)
    if nv < 1 or nt < 1:
        raise InputError(f"val/test clips per class must be >= 1, got {val_test_per_class!r}")
    counts = {"train": int(per_class), "val": nv, "test": nt}
    plans = {s: plan_split(s, counts[s], seed, accents) for s in counts}
    total = sum(len(p) for p in plans.values())
    parts, clips_out, meta = {}, {}, {}
    cache = {}
    with outer_bar(total=2 * total, desc="speech: synthesize, mix", enabled=progress) as bar:
        for s, plan in plans.items():
            spk = speakers(s, accents)
            speech = []
            for c in plan:
                if c["word"] is None:
                    speech.append(None)
                else:
                    key = (c["word"],) + spk[c["speaker"]] + (c["speed"], c["pitch"])
                    if key not in cache:
                        raw, rate = synthesize(*key)
                        cache[key] = trim(resample_to_16k(raw, rate))[:CLIP_SAMPLES]
                    speech.append(cache[key])
                bar.update(1)
            pool = [w for w in speech if w is not None and len(w)]
            clips, info = np.zeros((len(plan), CLIP_SAMPLES), np.int16), []
            for i, (c, w) in enumerate(zip(plan, speech)):
                rng = np.random.default_rng([seed, _SPLIT_INDEX[s], i, 7])
                others = [p for p in pool if p is not w] or pool
                clips[i], inf = make_clip(w if w is None or len(w) else None, rng, snr_range, others, mic=sos)
                info.append(inf)
                bar.update(1)
            parts[f"x_{s}"] = audio.features(clips)
            parts[f"y_{s}"] = np.array([c["label"] for c in plan], dtype=np.int64)
            clips_out[s] = clips
            meta[s] = {"speaker": [c["speaker"] for c in plan], "word": [c["word"] or "" for c in plan],
                       "noise": [d["noise"] for d in info]}
    provenance = {
        "generator": "tinyzo.audio.synth", "generator_version": GENERATOR_VERSION, "tinyzo_version": __version__,
        "espeak_ng": version, "seed": int(seed), "snr_db": list(snr_range), "per_class": counts,
        "accents": list(accents), "split_variants": {s: list(v) for s, v in SPLIT_VARIANTS.items()},
        "speakers": {s: [f"{a}+{v}" for a, v in speakers(s, accents)] for s in counts},
        "speed_wpm": list(SPEED_RANGE), "pitch": list(PITCH_RANGE), "peak_dbfs": list(PEAK_DBFS),
        "silence_rms_dbfs": list(SILENCE_RMS_DBFS), "noise_kinds": list(NOISE_KINDS),
        "unknown_words": list(UNKNOWN_WORDS), "classes": list(CLASSES), "feature_quant": list(FEATURE_QUANT),
        "features": "tinyzo.audio.features (TFLM audio_preprocessor_int8.tflite), int8[49, 40] per clip",
        "clips": meta,
    }
    if name != "speech":
        provenance["dataset"] = name
    if mic is not None:
        order, edges, kind = MICROPHONES[mic]
        provenance["mic"] = {"name": mic, "butterworth_order": order, "edges_hz": edges, "type": kind}
    ds = Dataset(**parts, name=name, classes=list(CLASSES), feature_quant=FEATURE_QUANT,
                 provenance=json.dumps(provenance, sort_keys=True))
    return ds, (clips_out if keep_audio else None)


def write_wav(path, samples: np.ndarray, rate: int = 16000) -> None:
    """Write int16[n] as a 16-bit PCM mono WAV."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    with open(path, "wb") as f:
        f.write(buf.getvalue())
