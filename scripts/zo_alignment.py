"""Per-layer cosine of ZO estimates with the back-propagated gradient, for the estimator options.

    python scripts/zo_alignment.py [--corruption fog] [--batch 32] [--repeats 8]

Node perturbation at its defaults (last 6 layers, 8 queries) and one estimator option changed at a
time (the rows of experiments/zo_ablation.toml that change the estimate, plus SPSA and 32 queries), on
the first --batch training digits under the corruption (severity 5), the reference model unchanged.
Prints the Markdown table of docs/zo_results.md (tinyzo.zo.alignment).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import tinyzo
from tinyzo import data
from tinyzo.evaluate import images_to_input
from tinyzo.zo.alignment import alignment_markdown, bp_alignment
from tinyzo.zo.trainer import ZOConfig

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corruption", default="fog")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=8)
    args = ap.parse_args(argv)
    model = tinyzo.load(ROOT / "reference_models" / "digits_cnn.tflite")
    ds = data.load("digits")
    xq = images_to_input(model, data.corrupt(ds.x_train[:args.batch], args.corruption, 5, seed=0))
    y = ds.y_train[:args.batch]
    layers = model.trainable_ops()[-6:]
    base = {"layers": layers, "target": "node", "queries": 8}
    configs = {
        "node, 8 queries (default)": ZOConfig(**base),
        "sparse, density 0.25": ZOConfig(**base, density=0.25),
        "block-coordinate (layer)": ZOConfig(**base, block="layer"),
        "SPSA, 4 queries": ZOConfig(**{**base, "queries": 4}, estimator="spsa"),
        "node, 4 queries": ZOConfig(**{**base, "queries": 4}),
        "node, 32 queries": ZOConfig(**{**base, "queries": 32}),
    }
    rows = bp_alignment(model, xq, y, configs, repeats=args.repeats)
    print(f"{args.corruption}, severity 5, batch {args.batch}, {args.repeats} repeats; cosine with the BP gradient "
          "(mean ± sd over the repeats), weights:\n")
    print(alignment_markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
