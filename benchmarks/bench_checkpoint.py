"""Size, write time and read time of a training checkpoint of the digits reference model.

    python benchmarks/bench_checkpoint.py [--repeats 30] [--dir /tmp]

For three trainers of ``reference_models/digits_cnn.tflite`` (after one step, so every optimizer
buffer exists) it times :func:`tinyzo.training.loop.save_checkpoint` (build the file in memory, write the
temporary file, fsync, ``os.replace``, fsync the folder) and :func:`tinyzo.training.loop.load_checkpoint`
(read and verify: member bounds, headers, CRC, SHA-256, consistency), and the in-memory build alone
(:func:`tinyzo.checkpoint.encode_checkpoint`). Medians over ``--repeats``; the fsync time depends on
the disk and on what else writes to it, so the write times are indicative. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import tinyzo
from tinyzo import data
from tinyzo.bp import QASOptimizer, BPTrainer, SparseScheme
from tinyzo.checkpoint import encode_checkpoint, flatten_tree
from tinyzo.evaluate import images_to_input
from tinyzo.training.loop import load_checkpoint, save_checkpoint
from tinyzo.zo.trainer import ZOConfig, ZOTrainer

REF = Path(__file__).resolve().parents[1] / "reference_models" / "digits_cnn.tflite"
TRAINERS = {
    "ZO node, last 2 layers, shadow": lambda m: ZOTrainer(m, ZOConfig(layers=m.trainable_ops()[-2:], target="node",
                                                                      update="shadow", lr=1e-3), total_steps=10),
    "ZO weight, all layers, shadow": lambda m: ZOTrainer(m, ZOConfig(layers=m.trainable_ops(), target="weight",
                                                                     update="shadow", lr=1e-3), total_steps=10),
    "BP full, Adam, shadow": lambda m: BPTrainer(m, scheme=SparseScheme.full(m),
                                                 optimizer=QASOptimizer("adam", 1e-3, mode="shadow")),
}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--dir", default=None, help="folder for the checkpoints (default: the system temp folder)")
    args = ap.parse_args(argv)
    ds = data.load("digits")
    print("| trainer | checkpoint bytes | build in memory (ms) | save: build + write + fsync + rename (ms) "
          "| load + verify (ms) |")
    print("|---|---:|---:|---:|---:|")
    for label, make in TRAINERS.items():
        m = tinyzo.load(REF)
        tr = make(m)
        tr.step(images_to_input(m, ds.x_train[:32]), ds.y_train[:32])
        hist = [{"epoch": 1, "train_loss": 0.5, "train_acc": 0.9, "val_loss": 0.4, "val_acc": 0.9,
                 "forward_passes": 10, "seconds": 1.0}]
        folder = Path(tempfile.mkdtemp(dir=args.dir))
        build, save, load = [], [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            arrays, paths = flatten_tree(tr.state_dict(), "state")
            for k in m.trainable_ops():
                w, b = m.get_params(k)
                arrays[f"model/{k}/w"], arrays[f"model/{k}/b"] = w, b
            encode_checkpoint("int8-fit", 1, arrays, {"history": hist, "state_paths": paths})
            build.append(time.perf_counter() - t)
            t = time.perf_counter()
            size = save_checkpoint(folder, m, tr.state_dict(), 1, hist, config={"seed": 0, "batch_size": 32,
                                   "n_train": 32}, stepper=type(tr).__name__, step_offset=0)
            save.append(time.perf_counter() - t)
            t = time.perf_counter()
            load_checkpoint(folder)
            load.append(time.perf_counter() - t)
        ms = [f"{1e3 * float(np.median(v)):.1f}" for v in (build, save, load)]
        print(f"| {label} | {size:,} | {ms[0]} | {ms[1]} | {ms[2]} |")


if __name__ == "__main__":
    main()
