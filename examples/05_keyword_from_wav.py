"""From a WAV file to keyword scores, exactly as TFLM's micro_speech example computes them on the device.

    python examples/05_keyword_from_wav.py

Reads the four one-second test recordings that ship with TFLM (16 kHz, 16-bit PCM), turns each into
49 x 40 int8 features with TFLM's own audio front end (``audio_preprocessor_int8.tflite``, run by
tinyzo's signal operators), checks them against the features TFLM computed, runs the
micro_speech keyword model on them and prints the class scores. Then it shows the streaming
form: the same clip pushed in 10 ms pieces gives the same rows. docs/audio.md explains the chain.
"""

from pathlib import Path

import numpy as np

import tinyzo
from tinyzo import audio

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "tflite-micro"
CLASSES = ["silence", "unknown", "yes", "no"]


def main() -> int:
    kws = tinyzo.load(DATA / "micro_speech_quantized.tflite")
    for name in ("yes", "no", "silence", "noise"):
        samples, rate = audio.read_wav(DATA / "testdata" / f"{name}_1000ms.wav")
        feats = audio.features(samples)                         # int8[49, 40]
        want = np.load(DATA / "testdata" / f"{name}_1000ms_features_int8_49x40.npy")
        mismatches = int((feats != want).sum())
        scores = kws(feats.reshape(1, 1960))[0]
        print(f"{name:8s} {rate} Hz, {samples.size} samples -> features {feats.shape}, {mismatches} of {feats.size} "
              f"differ from TFLM's; scores {scores.tolist()} -> {CLASSES[int(np.argmax(scores))]}")
        if mismatches:
            return 1
    fe = audio.FrontEnd()
    samples, _ = audio.read_wav(DATA / "testdata" / "yes_1000ms.wav")
    rows = np.concatenate([fe.push(samples[i:i + 160]) for i in range(0, samples.size, 160)])
    same = np.array_equal(rows, audio.features(samples))
    print(f"streaming in 10 ms pieces: {rows.shape[0]} rows, equal to the whole-clip features: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
