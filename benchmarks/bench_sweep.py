"""Sweep throughput: runs per hour of a 16-run sweep with 1 and 2 worker processes, Dask and process pool.

    python benchmarks/bench_sweep.py [--runs 16] [--epochs 1] [--out docs/benchmarks_sweep.md]

Each run is a short `tinyzo train` (zo-rge-node on the last 2 layers of the digits reference model,
a 256-image slice of the corrupted digits, one epoch). The scheduling overhead per run is the wall
time the workers were not inside a run: (wall x workers - sum of the runs' own seconds) / runs; it
includes starting the cluster or pool, importing tinyzo and loading the Numba cache in each worker.
All configurations run in one process, one after another, so their ratios are comparable on a noisy
machine.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tinyzo import data  # noqa: E402
from tinyzo.sweep import parse_spec, run_sweep  # noqa: E402
from tinyzo.sweep.execute import dask_available  # noqa: E402

SPEC = """
[sweep]
name = "bench"
model = "reference:digits_cnn"
data = "{data}"
seeds = {seeds}
[train]
epochs = {epochs}
corruption = "motion_blur"
severity = 5
[methods.zo]
method = "zo-rge-node"
layers = "last2"
queries = 4
lr = 5e-4
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--out", help="write the Markdown table here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ds = data.load("digits")
        p = tmp / "digits256.npz"
        data.save(data.Dataset(ds.x_train[:256], ds.y_train[:256], ds.x_val[:64], ds.y_val[:64], ds.x_test[:128],
                               ds.y_test[:128], name="digits256", classes=ds.classes), p)
        sweep = parse_spec(SPEC.format(data=p, seeds=list(range(args.runs)), epochs=args.epochs), base_dir=tmp)
        configs = [("process", 1), ("process", 2)] + ([("dask", 1), ("dask", 2)] if dask_available() else [])
        rows = []
        for backend, workers in configs:
            db = tmp / f"{backend}{workers}.sqlite"
            t0 = time.perf_counter()
            res = run_sweep(sweep, db, backend=backend, workers=workers, progress=False, log=lambda *a: None)
            wall = time.perf_counter() - t0
            con = sqlite3.connect(db)
            inside = sum(s for (s,) in con.execute("SELECT seconds FROM runs WHERE status = 'done'"))
            con.close()
            assert res["done"] == args.runs, res
            overhead = (wall * workers - inside) / args.runs
            rows.append((backend, workers, wall, args.runs / wall * 3600, inside / args.runs, overhead))
            print(f"{backend} x{workers}: {wall:.1f} s, {args.runs / wall * 3600:.0f} runs/h", flush=True)
    base = rows[0][3]
    lines = [f"Command: `python benchmarks/bench_sweep.py --runs {args.runs} --epochs {args.epochs}` "
             f"({args.runs} runs of zo-rge-node, last 2 layers, 256 digits, {args.epochs} epoch(s)).", "",
             "| backend | workers | wall time | runs per hour | mean run time (in worker) | overhead per run | "
             "throughput vs process x1 |", "|---|---:|---:|---:|---:|---:|---:|"]
    for b, w, wall, rph, mean_run, ov in rows:
        lines.append(f"| {b} | {w} | {wall:.1f} s | {rph:,.0f} | {mean_run:.2f} s | {ov:.2f} s | {rph / base:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
