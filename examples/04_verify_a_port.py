"""Verify a firmware port against tinyzo's golden vectors: here, the C99 reference port in port/c.

    python examples/04_verify_a_port.py [--method zo-rge-node] [--steps 2] [--out-dir port_check]

The workflow a firmware engineer follows (docs/porting.md):

1. ``tinyzo vectors`` writes C headers (model tables, inputs, every intermediate tensor, the PRNG
   seeds, perturbations, losses, gradients and the parameters after each ZO step) and one .npz;
2. the port is compiled against those headers with its test harness (here port/c/test_main.c, with
   the system C compiler, strict flags and no floating-point contraction);
3. the harness runs inference and the training steps and prints, per checked quantity, how many
   values it compared and how many differ. Every count must be 0; the script exits 1 otherwise.

Needs a C compiler (cc, gcc or clang); without one it says so and exits 0.
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import tinyzo
from tinyzo import data
from tinyzo.cli import main as tinyzo_main
from tinyzo.evaluate import images_to_input

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "reference_models" / "digits_cnn.tflite"
SOURCES = ["test_main.c", "tz_kernels.c", "tz_kernels16.c", "tz_softmax.c", "tz_graph.c", "tz_train.c"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="zo-rge-node", help="zo-<rge|spsa|signspsa>-<weight|node>")
    ap.add_argument("--steps", type=int, default=2, help="training steps to verify (default 2)")
    ap.add_argument("--out-dir", default=None, help="where the vectors and the binary go (default: a temp dir)")
    args = ap.parse_args(argv)
    cc = next((shutil.which(c) for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if cc is None:
        print("no C compiler (cc, gcc, clang) on this machine: nothing to verify")
        return 0
    if args.out_dir:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        return check(out, args, cc)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tinyzo_port_") as tmp:   # removed afterwards
        return check(Path(tmp), args, cc)


def check(out: Path, args, cc: str) -> int:
    """Vectors into ``out``, build the port against them, run it; 0 iff no mismatch."""

    # a few motion-blurred digits as int8 model inputs (what the device would see)
    model = tinyzo.load(MODEL)
    ds = data.load("digits")
    xq = images_to_input(model, data.corrupt(ds.x_train[:8], "motion_blur", 5, seed=0))
    np.savez(out / "inputs.npz", x=xq, y=ds.y_train[:8])

    # 1. golden vectors (last two trainable layers; a large lr so that int8 weights really move)
    vec = out / "vectors"
    cmd = ["vectors", str(MODEL), "--data", str(out / "inputs.npz"), "--method", args.method, "--steps",
           str(args.steps), "--layers", "9,11", "--lr", "0.05", "--samples", "2", "--batch", "4", "--out", str(vec)]
    print("$ tinyzo " + " ".join(cmd))
    if tinyzo_main(cmd) != 0:
        return 1

    # 2. compile the port against them
    exe = out / "port_check"
    build = [cc, "-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror", f"-I{vec}",
             f"-I{ROOT / 'port' / 'c'}", f"-I{ROOT / 'tinyzo' / 'training' / 'c'}",
             *[str(ROOT / "port" / "c" / s) for s in SOURCES], "-o", str(exe), "-lm"]
    print("$ " + " ".join(Path(a).name if a.startswith(str(ROOT)) else a for a in build))
    subprocess.run(build, check=True)

    # 3. run it: every line is "<what> <checked> checked <bad> mismatches"
    r = subprocess.run([str(exe)], check=False, capture_output=True, text=True)
    print(r.stdout.replace("TOTAL MISMATCHES", "total mismatches"))
    if r.returncode != 0:
        print(f"MISMATCH: the port disagrees with tinyzo (exit {r.returncode}); docs/porting.md says what to check first")
        return 1
    kept = f"vectors and binary in {out}" if args.out_dir else "use --out-dir to keep the vectors and the binary"
    print(f"port verified: 0 mismatches ({kept})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
