"""Audio: TFLM's micro_speech front end (16 kHz int16 samples -> int8[frames, 40] features), bit-exact.

The front end is TFLite Micro's ``audio_preprocessor_int8.tflite`` (shipped in ``tinyzo/audio/data``,
Apache-2.0, from tensorflow/tflite-micro; see the README there), run by tinyzo's own operators
(:mod:`tinyzo.ops.signal`): one invocation turns one frame of 480 samples (30 ms) into 40 int8
features; frames start every 320 samples (20 ms). It keeps state from one frame to the next (the
spectral-subtraction noise estimate), as TFLM does when the frames of a clip are fed in order to
one interpreter; :func:`features` starts every clip from a fresh state.

* :func:`read_wav` reads a 16-bit PCM mono WAV file.
* :func:`features`: one clip (int16[n]) -> int8[frames, 40], or N clips (int16[N, n], N independent
  streams) -> int8[N, frames, 40], with ``frames = 1 + (n - 480) // 320`` (49 for one second);
  trailing samples that do not fill a frame are ignored; fewer than 480 samples are refused.
* :class:`FrontEnd`: the streaming form (``push`` samples as they arrive, get the completed rows).

Submodules: :mod:`tinyzo.audio.synth` (the espeak-ng keyword dataset, ``tinyzo data speech``) and
:mod:`tinyzo.audio.noise` (its background noise generators and SNR mixing).

docs/audio.md describes the chain for firmware engineers.
"""

from __future__ import annotations

import threading
import wave
from pathlib import Path

import numpy as np

from tinyzo.errors import InputError
from tinyzo.io import load

__all__ = [
    "FRAME_LENGTH",
    "FRAME_STEP",
    "SAMPLE_RATE",
    "FrontEnd",
    "default_frontend_path",
    "features",
    "n_frames",
    "read_wav",
]

#: Samples per frame (30 ms at 16 kHz), the front end's input length.
FRAME_LENGTH = 480
#: Samples between frame starts (20 ms).
FRAME_STEP = 320
#: The sample rate the front end was built for.
SAMPLE_RATE = 16000


def default_frontend_path() -> Path:
    """Path of the shipped ``audio_preprocessor_int8.tflite``."""
    return Path(__file__).resolve().parent / "data" / "audio_preprocessor_int8.tflite"


def read_wav(path) -> tuple:
    """Read a 16-bit PCM mono WAV file.

    Args:
        path: a file path (str or Path).

    Returns:
        ``(samples, sample_rate)``: int16[n] and an int (Hz). The rate is returned, not checked:
        the front end expects 16,000.

    Raises:
        InputError: a missing or unreadable file, anything but uncompressed PCM (float, A-law,
            compressed), more than one channel, a sample width other than 16 bits, a truncated file.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such WAV file")
    try:
        with wave.open(str(p), "rb") as w:
            channels, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            comp = w.getcomptype()
            data = w.readframes(n)
    except (wave.Error, EOFError) as e:
        raise InputError(f"{p}: not a PCM WAV file tinyzo can read ({e}); convert it to 16-bit PCM mono, e.g. "
                         "sox in.wav -b 16 -c 1 -e signed-integer out.wav") from None
    if comp != "NONE":
        raise InputError(f"{p}: compressed WAV ({comp}); convert it to 16-bit PCM mono")
    if channels != 1:
        raise InputError(f"{p}: {channels} channels; the front end takes mono audio: mix or pick one channel "
                         "(e.g. sox in.wav -c 1 out.wav)")
    if width != 2:
        raise InputError(f"{p}: {8 * width}-bit samples; the front end takes 16-bit PCM "
                         "(e.g. sox in.wav -b 16 out.wav)")
    if len(data) != 2 * n:
        raise InputError(f"{p}: truncated: the header announces {n} samples, the file holds {len(data) // 2}")
    return np.frombuffer(data, dtype="<i2").astype(np.int16), int(rate)


def n_frames(n_samples: int) -> int:
    """Frames of a clip of ``n_samples`` samples: ``1 + (n - 480) // 320`` (0 below 480)."""
    return 0 if n_samples < FRAME_LENGTH else 1 + (n_samples - FRAME_LENGTH) // FRAME_STEP


class FrontEnd:
    """The streaming front end: ``push`` int16 samples, get the feature rows completed so far.

    ``FrontEnd()`` runs the shipped model; ``FrontEnd(path)`` (or a loaded :class:`tinyzo.Model`)
    another front end with the same interface (an int16 frame in, int8 features out). One
    FrontEnd holds the state of ``streams`` streams (set by the first push: int16[n] is one stream,
    int16[N, n] N streams). Frames may straddle pushes: pushing a clip in pieces gives the rows of
    :func:`features` on the whole clip. Not thread-safe (one FrontEnd per thread).
    """

    def __init__(self, model=None):
        self.model = load(default_frontend_path() if model is None else model) if not hasattr(model, "prepared") \
            else model
        t = self.model.tensors[self.model.inputs[0]]
        if t.dtype != np.int16 or len(self.model.inputs) != 1:
            raise InputError(f"{self.model.name}: a front end takes one int16 input (a frame of samples), "
                             f"this model takes {len(self.model.inputs)} input(s) of {t.dtype}")
        self.frame_length = int(np.prod(t.shape[1:]))
        self._in_shape = tuple(t.shape[1:])
        out = self.model.tensors[self.model.outputs[0]]
        self.n_features = int(np.prod(out.shape[1:]))
        self.reset()

    def reset(self) -> None:
        """Forget buffered samples and zero the model's state (TFLM's ``Reset``)."""
        self.model.reset_state()
        self._pending = None

    def push(self, samples) -> np.ndarray:
        """Feed samples; return the rows completed by them.

        Args:
            samples: int16[n] (one stream) or int16[N, n] (N streams), any n >= 0.

        Returns:
            int8[k, 40] (or int8[N, k, 40]) for the k frames that these samples completed.
        """
        x = _check_samples(samples, min_length=0)
        single = x.ndim == 1
        x = x.reshape(1, -1) if single else x
        if self._pending is not None and self._pending.shape[0] != x.shape[0]:
            raise InputError(f"this FrontEnd holds {self._pending.shape[0]} stream(s), got {x.shape[0]}; call reset() "
                             "before changing the number of streams")
        buf = x if self._pending is None else np.concatenate([self._pending, x], axis=1)
        k = n_frames(buf.shape[1])
        rows = np.empty((buf.shape[0], k, self.n_features), np.int8)
        for f in range(k):
            frame = buf[:, f * FRAME_STEP:f * FRAME_STEP + self.frame_length]
            rows[:, f] = self.model(np.ascontiguousarray(frame).reshape((buf.shape[0],) + self._in_shape)).reshape(
                buf.shape[0], -1)
        self._pending = buf[:, k * FRAME_STEP:].copy()
        return rows[0] if single else rows


def _check_samples(samples, min_length: int) -> np.ndarray:
    if not isinstance(samples, np.ndarray) or samples.dtype != np.int16:
        got = samples.dtype if isinstance(samples, np.ndarray) else type(samples).__name__
        raise InputError(f"samples must be an int16 numpy array (16-bit PCM), got {got}; "
                         "read WAV files with tinyzo.audio.read_wav")
    if samples.ndim not in (1, 2):
        raise InputError(f"samples must be int16[n] (one clip) or int16[N, n] (N clips), got shape {samples.shape}")
    if samples.ndim == 2 and samples.shape[0] == 0:
        raise InputError("samples: an empty batch of clips")
    if samples.shape[-1] < min_length:
        raise InputError(f"a clip needs at least {min_length} samples (one 30 ms frame), got {samples.shape[-1]}")
    return samples


_SHARED = {}
_SHARED_LOCK = threading.Lock()


def features(samples, model=None) -> np.ndarray:
    """The int8 features of one clip or of N clips (N independent streams), each from a fresh state.

    Args:
        samples: int16[n] or int16[N, n], 16 kHz, n >= 480 (one second: n = 16000).
        model: None for the shipped front end, or a path / :class:`tinyzo.Model` of another one.

    Returns:
        int8[frames, 40] (or int8[N, frames, 40]) with ``frames = 1 + (n - 480) // 320`` (49 for
        16,000 samples); frame f covers samples ``320 f .. 320 f + 479``. Bit-exact with TFLM's
        interpreter fed those frames in order.
    """
    x = _check_samples(samples, FRAME_LENGTH)
    if model is not None:
        fe = FrontEnd(model)
        return fe.push(x)
    with _SHARED_LOCK:
        fe = _SHARED.get("frontend")
        if fe is None:
            fe = _SHARED["frontend"] = FrontEnd()
        fe.reset()
        try:
            return fe.push(x)
        finally:
            fe.reset()
