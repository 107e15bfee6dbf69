"""Calibrate the CONV_2D path cost model (tinyzo/ops/conv_paths.py) by measurement.

    python benchmarks/calibrate_conv.py [--repeats 7]      # about 30 s

Times the exact CONV_2D paths this CPU runs ("gemm": float GEMM by BLAS + fused requantization;
"int": integer multiply-accumulate loops + fused requantization; "vnni", on AVX512-VNNI CPUs:
``vpdpbusd`` tiles + fused requantization) on 1x1 layers over a grid of dot lengths K and
output channel counts N, one thread, interleaved in the same process (the machine is shared: the
minimum over repeats is kept), fits each path's time per output pixel with non-negative least squares
on the model's features, and prints the constants to paste into conv_paths.py together with how
often the fitted model picks the measured faster path.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

KS = (8, 16, 24, 48, 96, 192, 384, 576)
NS = (8, 16, 32, 64, 128, 256)
TARGET_MACS = 1_500_000


def features(path: str, k: int, n: int) -> list[float]:
    """The cost model's features for one output pixel (see estimated_ns_per_pixel)."""
    from tinyzo.ops import conv_paths

    if path == "gemm":
        return [1.0, k, n, k * n]
    if path == "vnni":
        n_pad = conv_paths.vnni_channels(n)
        return [1.0, n_pad, -(-k // 4) * 4 * n_pad]
    n_pad = conv_paths.padded_channels(n)
    return [1.0, -(-k // 4), n_pad, k * n_pad]


def measure(repeats: int):
    from test_conv import conv_model

    from tinyzo import runtime
    from tinyzo.ops import conv_paths

    runtime.set_num_threads(1)
    runtime.limit_blas_threads()
    rng = np.random.default_rng(0)
    rows = []
    for k in KS:
        for n in NS:
            side = int(np.clip(np.sqrt(TARGET_MACS / (k * n)), 4, 64))
            x = rng.integers(-128, 128, size=(1, side, side, k), dtype=np.int8)
            w = rng.integers(-127, 128, size=(n, 1, 1, k), dtype=np.int8)
            model = conv_model(x.shape, w, rng.integers(-999, 999, n).astype(np.int32), 0.05, 0.3,
                               list(rng.uniform(0.001, 0.01, n)), 3, -2, "RELU6")
            op = model.prepared[0]
            paths = conv_paths.available_paths()
            weights = {"gemm": "wt", "int": "wp", "vnni": "wq"}
            ops = {}
            for path in paths:
                op.set_path(path)
                ops[path] = (getattr(op, weights[path]), op.const_tile, op.rq, op.block)
            best = {p: np.inf for p in paths}
            ref = None
            for _ in range(repeats):
                for path in paths:
                    op.path = path
                    w_op, op.const_tile, op.rq, op.block = ops[path]
                    setattr(op, weights[path], w_op)
                    op.compute(x)
                    t0 = time.perf_counter()
                    y = op.compute(x)
                    best[path] = min(best[path], time.perf_counter() - t0)
                    if ref is None:
                        ref = y
                    assert np.array_equal(y, ref)
            pixels = side * side
            rows.append((k, n, pixels, {p: best[p] / pixels * 1e9 for p in best}))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    from scipy.optimize import nnls

    from tinyzo.ops import conv_paths

    rows = measure(args.repeats)
    paths = conv_paths.available_paths()
    fitted = {}
    for path in paths:
        a = np.array([features(path, k, n) for k, n, _, _ in rows])
        t = np.array([r[3][path] for r in rows])
        # relative error matters (small layers as much as big ones): weight each row by 1 / t
        coef, _ = nnls(a / t[:, None], np.ones_like(t))
        fitted[path] = coef
    print(f"measured ns per output pixel ({' / '.join(paths)}) and the fitted model's choice:")
    agree = 0
    for k, n, pixels, t in rows:
        pred = {p: float(np.dot(fitted[p], features(p, k, n))) for p in paths}
        choice = min(pred, key=pred.get)
        fastest = min(t, key=t.get)
        agree += choice == fastest
        print(f"  K={k:4d} N={n:4d} pixels={pixels:5d}: " + "  ".join(f"{p} {t[p]:8.1f}" for p in paths)
              + f"  -> measured {fastest:4s}, model {choice:4s}")
    g, i = fitted["gemm"], fitted["int"]
    print(f"\nthe model picks the measured faster path for {agree} of {len(rows)} layers")
    print("constants for tinyzo/ops/conv_paths.py:")
    print(f"GEMM_PIXEL, GEMM_K, GEMM_N, GEMM_MACS_PER_NS = {g[0]:.1f}, {g[1]:.2f}, {g[2]:.2f}, "
          f"{(1 / g[3]) if g[3] > 0 else float('inf'):.1f}")
    print(f"INT_PIXEL, INT_QUAD, INT_N, INT_MACS_PER_NS = {i[0]:.1f}, {i[1]:.2f}, {i[2]:.2f}, "
          f"{(1 / i[3]) if i[3] > 0 else float('inf'):.1f}")
    if "vnni" in fitted:
        v = fitted["vnni"]
        print(f"VNNI_PIXEL, VNNI_N, VNNI_MACS_PER_NS = {v[0]:.1f}, {v[1]:.2f}, "
              f"{(1 / v[2]) if v[2] > 0 else float('inf'):.1f}")


if __name__ == "__main__":
    main()
