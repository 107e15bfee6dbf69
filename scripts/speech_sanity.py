"""Sanity check of the synthesized keyword dataset: TFLM's micro_speech model on its silence/unknown/yes/no clips.

micro_speech_quantized.tflite (trained on real Speech Commands recordings) knows 4 classes, labels 0..3
of the keyword dataset. Its accuracy on synthetic clips says whether the synthesis is realistic.

    PYTHONPATH=. python scripts/speech_sanity.py [DATASET] [--model PATH]

DATASET: "speech" (the shipped subset, default) or a .npz written by `tinyzo data speech`.
"""

import argparse

import numpy as np

import tinyzo
from tinyzo import data
from tinyzo.evaluate import images_to_input


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset", nargs="?", default="speech")
    p.add_argument("--model", default="tests/data/tflite-micro/micro_speech_quantized.tflite")
    args = p.parse_args()
    ds = data.load(args.dataset)
    m = tinyzo.load(args.model)
    for split in ("test", "val", "train"):
        x, y = ds.split(split)
        keep = y < 4
        xq = images_to_input(m, x[keep], feature_quant=ds.feature_quant)
        pred = np.argmax(m(xq).reshape(len(xq), -1), axis=1)
        yy = y[keep]
        per = ", ".join(f"{ds.classes[c]} {(pred[yy == c] == c).sum()}/{(yy == c).sum()}" for c in range(4))
        print(f"{split}: {(pred == yy).mean() * 100:.1f}% ({(pred == yy).sum()}/{len(yy)}); {per}")


if __name__ == "__main__":
    main()
