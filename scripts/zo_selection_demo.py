"""Layer selection for quantized ZO adaptation on the blurred digits (the experiment of docs/zo_selection.md).

    python scripts/zo_selection_demo.py [--corruption motion_blur] [--severity 5] [--k 2] [--epochs 2]
                                        [--seeds 0,1,2,3,4] [--out selection_results.json]

Loads reference_models/digits_cnn.tflite, corrupts the train / val / test digits (corruption seeds
0 / 1 / 2, as ``tinyzo train``), chooses ``k`` layers with each method of
:func:`tinyzo.zo.selection.select_layers` (``ratio``: node-perturbation gradient-to-weight ratio on
the training set; ``test-and-pick``: one node-perturbation step per candidate, gains on the
validation set; ``last``), then trains exactly those layers with ZO node perturbation (rge,
queries 4, lr 1e-3, batch 32) for ``--epochs`` epochs, once per training seed, and prints the test
accuracy before / after (mean, min and max over the seeds) as a Markdown table. Also trains every
trainable layer as a reference, and, as a control, a different random set of ``k`` layers per
training seed. Takes about three minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tinyzo
from tinyzo import data
from tinyzo.evaluate import evaluate, images_to_input
from tinyzo.training.loop import fit
from tinyzo.zo.selection import gradient_weight_ratio, select_layers, test_and_pick
from tinyzo.zo.trainer import ZOConfig, ZOTrainer

REF = ROOT / "reference_models" / "digits_cnn.tflite"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corruption", default="motion_blur")
    ap.add_argument("--severity", type=int, default=5)
    ap.add_argument("--k", type=int, default=2, help="layers to train (default 2)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--queries", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seeds", default="0,1,2,3,4", help="training seeds (comma-separated)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]

    ds = data.load("digits")
    model = tinyzo.load(REF)
    corrupt = lambda x, s: data.corrupt(x, args.corruption, args.severity, seed=s)
    xtr, ytr = images_to_input(model, corrupt(ds.x_train, 0)), ds.y_train
    xva, yva = images_to_input(model, corrupt(ds.x_val, 1)), ds.y_val
    xte, yte = corrupt(ds.x_test, 2), ds.y_test
    clean = evaluate(model, ds.x_test, yte)["accuracy"]
    before = evaluate(model, xte, yte)["accuracy"]
    print(f"digits_cnn, test accuracy: clean {clean:.4f}, {args.corruption} severity {args.severity} {before:.4f}")

    # ---- selection (each on the unchanged reference model)
    selections, cost = {}, {}
    t = time.perf_counter()
    ratios = gradient_weight_ratio(model, xtr, ytr, target="node", steps=4, queries=4, seed=0)
    cost["ratio"] = time.perf_counter() - t
    selections["ratio"] = sorted(r["layer"] for r in ratios[:args.k])
    print("\ngradient-to-weight ratio (node perturbation, 4 batches x 4 queries):")
    print("| layer | opcode | params | ratio |\n|---|---|---|---|")
    for r in ratios:
        print(f"| {r['layer']} | {r['opcode']} | {r['n_params']} | {r['ratio']:.3g} |")
    t = time.perf_counter()
    rows, chosen = test_and_pick(model, xtr, ytr, xva, yva, budget_layers=args.k, steps=1, target="node",
                                 lr=args.lr, queries=args.queries, batch_size=args.batch_size, seed=0)
    cost["test-and-pick"] = time.perf_counter() - t
    selections["test-and-pick"] = chosen
    print("\ntest-and-pick (1 node-perturbation step per layer, validation set):")
    print("| layer | opcode | val acc after | gain | val loss drop |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['layer']} | {r['opcode']} | {r['val_acc_after']:.4f} | {r['gain']:+.4f} | {r['loss_drop']:+.4f} |")
    print(f"(val accuracy before {rows[0]['val_acc_before']:.4f})")
    print("\nstability of the choice across selection seeds:")
    print("| method | seed | chosen |\n|---|---|---|")
    stability = []
    for steps, queries in ((4, 4), (16, 16)):
        for s in range(3):
            ch = select_layers(model, "ratio", args.k, xq=xtr, y=ytr, target="node", steps=steps, queries=queries,
                               seed=s)
            stability.append({"method": f"ratio ({steps} batches x {queries} queries)", "seed": s, "chosen": ch})
    for s in range(4):
        ch = select_layers(model, "test-and-pick", args.k, xq=xtr, y=ytr, xq_val=xva, y_val=yva, steps=1,
                           target="node", lr=args.lr, queries=args.queries, batch_size=args.batch_size, seed=s)
        stability.append({"method": "test-and-pick (1 step)", "seed": s, "chosen": ch})
    for r in stability:
        print(f"| {r['method']} | {r['seed']} | {r['chosen']} |")
    selections["last"] = select_layers(model, "last", args.k)
    selections["all"] = model.trainable_ops()
    # control: a different random set of k layers for each training seed
    rng = np.random.default_rng(12345)
    random_sets = [sorted(int(v) for v in rng.choice(model.trainable_ops(), args.k, replace=False)) for _ in seeds]
    assert all(np.array_equal(model.get_params(k)[0], tinyzo.load(REF).get_params(k)[0]) for k in model.trainable_ops())

    # ---- training the chosen layers
    steps_per_epoch = -(-len(xtr) // args.batch_size)
    results = []
    for method, layers in list(selections.items()) + [("random", random_sets)]:
        accs, secs = [], []
        for i, seed in enumerate(seeds):
            layers_i = layers[i] if method == "random" else layers
            m = tinyzo.load(REF)
            cfg = ZOConfig(layers=layers_i, target="node", queries=args.queries, lr=args.lr, seed=seed)
            tr = ZOTrainer(m, cfg, total_steps=args.epochs * steps_per_epoch)
            t = time.perf_counter()
            fit(tr, m, xtr, ytr, epochs=args.epochs, batch_size=args.batch_size, seed=seed, progress=False)
            secs.append(time.perf_counter() - t)
            accs.append(evaluate(m, xte, yte)["accuracy"])
        results.append({"method": method, "layers": layers, "test_acc_before": before, "test_acc_after": accs,
                        "select_seconds": cost.get(method, 0.0), "train_seconds": float(np.mean(secs)),
                        "forward_passes": tr.forward_passes})
    print(f"\n{args.k} layers (all: every trainable layer), node perturbation, {args.epochs} epochs, "
          f"lr {args.lr}, queries {args.queries}, batch {args.batch_size}, seeds {seeds}:")
    print("| method | layers | test acc before | test acc after: mean [min, max] | per seed | selection s | training s/run |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        a = np.asarray(r["test_acc_after"])
        layers = "one per seed: " + " ".join(str(v).replace(" ", "") for v in r["layers"]) if r["method"] == "random" \
            else str(r["layers"])
        print(f"| {r['method']} | {layers} | {before:.4f} | {a.mean():.4f} [{a.min():.4f}, {a.max():.4f}] "
              f"| {' '.join(f'{v:.3f}' for v in a)} | {r['select_seconds']:.1f} | {r['train_seconds']:.1f} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"clean": clean, "before": before, "ratios": ratios,
                                              "test_and_pick": rows, "stability": stability,
                                              "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
