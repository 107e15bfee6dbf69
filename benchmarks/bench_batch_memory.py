"""Working memory of ``model(x)`` on a large batch: chunked (the default) against one whole chunk.

    python benchmarks/bench_batch_memory.py [--model reference_models/digits_cnn.tflite] [--n 10000]
                                            [--chunk auto|N] [--intermediates]

Runs one batch of ``--n`` random int8 inputs through the model with ``model.chunk_size`` set to
``--chunk`` (``auto``: tinyzo's default, ``CHUNK_ACTIVATION_BYTES // sample_bytes``) and prints the
peak of the memory numpy allocated during the call (``tracemalloc``, which counts numpy's arrays but
not the input, made before), the time, and the process's peak RSS. ``--chunk`` larger than ``--n``
runs the batch in one piece, as tinyzo did before the batch streaming. Numbers in
docs/reliability.md ("Inputs and errors").
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from pathlib import Path

import numpy as np

import tinyzo

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "reference_models" / "digits_cnn.tflite"))
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--chunk", default="auto")
    p.add_argument("--intermediates", action="store_true", help="also keep every tensor (intermediates=True)")
    args = p.parse_args()
    model = tinyzo.load(args.model)
    model.chunk_size = None if args.chunk == "auto" else int(args.chunk)
    shape = model.tensors[model.inputs[0]].shape
    x = np.random.default_rng(0).integers(-128, 128, (args.n,) + tuple(shape[1:]), dtype=np.int8)
    model(x[:2])  # compile and warm up
    tracemalloc.start()
    t = time.perf_counter()
    model(x, intermediates=args.intermediates)
    seconds = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{Path(args.model).name}: N={args.n:,} chunk={model.chunk_samples()} samples "
          f"({model.sample_bytes:,} activation bytes per sample), intermediates={args.intermediates}: "
          f"peak {peak / 2**20:.1f} MiB traced, {rss:.0f} MiB max RSS, {seconds:.1f} s")


if __name__ == "__main__":
    main()
