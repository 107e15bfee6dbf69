"""Domain shifts a deployed keyword spotter meets, as keyword datasets to adapt on (issue 17, part 4).

Each shift is the keyword dataset of :mod:`tinyzo.audio.synth` made with other options; the
reference model ``reference_models/kws_dscnn.tflite`` was trained on the unshifted one (English
accents, SNR 5..30 dB, no microphone filter). Measured on 360 unseen-voice test clips per shift
(docs/audio.md, "Adapting to a new accent, noise or microphone"):

* ``accent``: English words read by espeak-ng voices of eight other languages
  (:data:`tinyzo.audio.synth.FOREIGN_ACCENTS`), clean SNR range;
* ``noise``: a loud noise floor, SNR uniform in [-5, 5] dB instead of [5, 30];
* ``mic``: a muffled microphone (4th-order Butterworth low-pass at 1.5 kHz,
  :data:`tinyzo.audio.synth.MICROPHONES`) on every clip.

The split by voice variant stays: the adaptation set's train split (the device's recordings) and
its test split (how the adapted model does afterwards) use different voice timbres. Small feature
sets of each shift ship with tinyzo (``tinyzo.data.load("speech-noise")`` etc., made by
:func:`build_shift_dataset` with :data:`BUNDLED`'s sizes; provenance in
tinyzo/audio/data/SPEECH_PROVENANCE.md).
"""

from __future__ import annotations

from tinyzo.audio import synth
from tinyzo.errors import InputError

__all__ = ["BUNDLED", "SHIFTS", "build_shift_dataset", "shift_options"]

#: shift name -> (what it models, keyword-dataset options of :func:`tinyzo.audio.synth.build_speech_dataset`)
SHIFTS = {
    "accent": ("unseen accents: English words read by eight non-English espeak-ng voices",
               {"accents": synth.FOREIGN_ACCENTS, "seed": 101}),
    "noise": ("a loud noise floor: SNR -5..5 dB (training: 5..30)", {"snr_db": (-5.0, 5.0), "seed": 102}),
    "mic": ("a muffled microphone: low-pass at 1.5 kHz", {"mic": "muffled", "seed": 103}),
}
#: Sizes of the shipped adaptation sets: training clips per class, val and test clips per class.
BUNDLED = {"per_class": 50, "val_per_class": 10, "test_per_class": 30}


def shift_options(name: str) -> dict:
    """The :func:`tinyzo.audio.synth.build_speech_dataset` options of shift ``name`` (a key of :data:`SHIFTS`)."""
    if name not in SHIFTS:
        raise InputError(f"unknown shift {name!r}; choose from {', '.join(SHIFTS)}")
    return dict(SHIFTS[name][1])


def build_shift_dataset(name: str, per_class: int = BUNDLED["per_class"], *, val_per_class: int | None = None,
                        test_per_class: int | None = None, seed: int | None = None, keep_audio: bool = False,
                        progress: bool = True):
    """Synthesize the adaptation set of shift ``name`` (needs espeak-ng).

    Args:
        name: a key of :data:`SHIFTS`.
        per_class: training clips per class (int >= 1).
        val_per_class, test_per_class: clips per class of val and test (default: :data:`BUNDLED`'s
            when ``per_class`` is the bundled size, else a quarter of ``per_class``, at least 1).
        seed: default the shift's own (so its clips differ from the unshifted dataset's).
        keep_audio, progress: as :func:`tinyzo.audio.synth.build_speech_dataset`.

    Returns:
        ``(dataset, audio)`` as :func:`tinyzo.audio.synth.build_speech_dataset`; the dataset is named
        ``speech-<name>`` and its provenance records the shift.
    """
    opts = shift_options(name)
    if seed is not None:
        opts["seed"] = seed
    default = BUNDLED if per_class == BUNDLED["per_class"] else \
        {"val_per_class": max(1, per_class // 4), "test_per_class": max(1, per_class // 4)}
    nv = default["val_per_class"] if val_per_class is None else val_per_class
    nt = default["test_per_class"] if test_per_class is None else test_per_class
    return synth.build_speech_dataset(per_class=per_class, val_test_per_class=(nv, nt), keep_audio=keep_audio,
                                      progress=progress, name=f"speech-{name}", **opts)
