"""Inference time of two source trees of tinyzo on the same models, for before/after comparisons.

    git worktree add /tmp/before <commit>
    for i in 1 2; do
        python benchmarks/ab_trees.py /tmp/before mcunet-in1,ds-cnn
        python benchmarks/ab_trees.py . mcunet-in1,ds-cnn
    done

Run it alternately on each tree (the machine is shared and drifts: compare pairs run back to back).
``TREE`` is put first on ``sys.path``, so its own ``tinyzo`` and ``benchmarks/bench_models.py`` are
used (the script refuses to run if another tinyzo was imported). Models: the names of
bench_models.py's ``MODELS``. Per model it prints the best ms per call at batch 1 over the first 22
calls (as a short benchmark sees them) and over the 100 after, and at batch 32 (best of 8).

``--op KIND`` (an operator kind of bench_models.py's breakdown: DEPTHWISE_CONV_2D, "CONV_2D 1x1",
"CONV_2D 3x3", ADD, ...) instead sums, at batch 1 and 32, the best time of every operator of that
kind timed alone on one thread (bench_models.breakdown, best of 50 runs at batch 1, 7 at batch 32): a
steadier measure of one kernel than whole-model times on a shared machine.

``python benchmarks/ab_trees.py TREE --zo`` instead times the tree's ZO step in bench_zo.py's main
setting (node perturbation, RGE, 8 queries, last 6 layers, batch 32 of the digits model): the median
of 60 steps after 3 warm-up steps, with 1 and with 2 tinyzo threads.
"""

import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    op = None
    if "--op" in argv:
        i = argv.index("--op")
        if i + 1 >= len(argv):
            raise SystemExit("--op needs an operator kind, e.g. DEPTHWISE_CONV_2D")
        op = argv[i + 1]
        del argv[i:i + 2]
    if len(argv) == 2 and argv[1] == "--zo":
        root = str(Path(argv[0]).resolve())
        sys.path[:0] = [root, root + "/benchmarks"]
        zo_steps(root)
        return
    if len(argv) != 2:
        raise SystemExit("usage: python benchmarks/ab_trees.py TREE MODEL[,MODEL...] [--op KIND]  |  TREE --zo")
    root = str(Path(argv[0]).resolve())
    sys.path[:0] = [root, root + "/benchmarks"]
    from bench_models import MODELS, best_time, breakdown, load_model

    import tinyzo

    if not str(Path(tinyzo.__file__).resolve()).startswith(root):
        raise SystemExit(f"imported {tinyzo.__file__}, not the tree {root}")
    wanted = argv[1].split(",")
    unknown = set(wanted) - {m[0] for m in MODELS}
    if unknown:
        raise SystemExit(f"unknown model(s) {sorted(unknown)}; choose from {[m[0] for m in MODELS]}")
    for name, zoo, shape, _ in MODELS:
        if name not in wanted:
            continue
        model = load_model(name, zoo, shape)
        x32 = np.random.default_rng(0).integers(-128, 128, (32,) + tuple(shape)).astype(np.int8)
        if op is not None:
            kinds = {b: breakdown(model, x32[:b], repeats=50 if b == 1 else 7) for b in (1, 32)}
            print(f"{name}: {op} " + ", ".join(f"batch {b} {kinds[b].get(op, 0.0) * 1e3:.3f} ms" for b in (1, 32)),
                  flush=True)
            continue
        first = best_time(lambda m=model, x=x32[:1]: m(x), 20)
        steady = best_time(lambda m=model, x=x32[:1]: m(x), 100, warmup=0)
        b32 = best_time(lambda m=model, x=x32: m(x), 8)
        print(f"{name}: batch 1 first 22 calls {first * 1e3:.3f} ms, next 100 {steady * 1e3:.3f} ms; "
              f"batch 32 {b32 * 1e3:.2f} ms", flush=True)


def zo_steps(root: str) -> None:
    """Print the median ZO step of bench_zo.py's main setting in the tree ``root`` (on ``sys.path``), 1 and 2 threads."""
    import time

    import tinyzo
    from bench_zo import MODEL, ZO_SETTINGS, load_batches
    from tinyzo import runtime
    from tinyzo.zo.trainer import ZOConfig, ZOTrainer

    if not str(Path(tinyzo.__file__).resolve()).startswith(root):
        raise SystemExit(f"imported {tinyzo.__file__}, not the tree {root}")
    name, (opts, last) = next(iter(ZO_SETTINGS.items()))
    out = []
    for threads in (1, 2):
        runtime.set_num_threads(threads)
        model = tinyzo.load(MODEL)
        batches = load_batches(model, 8)
        trainer = ZOTrainer(model, ZOConfig(layers=model.trainable_ops()[-last:], seed=0, **opts), total_steps=100)
        for i in range(3):
            trainer.step(*batches[i % 8])
        ts = []
        for i in range(60):
            t0 = time.perf_counter()
            trainer.step(*batches[i % 8])
            ts.append(time.perf_counter() - t0)
        out.append(f"{threads} thread{'s' if threads > 1 else ''} {np.median(ts) * 1e3:.2f} ms")
    print(f"{name}: ZO step " + ", ".join(out), flush=True)


if __name__ == "__main__":
    main()
