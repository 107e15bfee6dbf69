"""Exhaustive check of the loss's ``expf`` / ``logf``: numpy's float64 exp/log vs the C library's, after rounding to float32.

:func:`tinyzo.training.loss.cross_entropy_int8` computes ``expf(a)`` as numpy's float64 ``exp`` rounded to
float32; :mod:`tinyzo.spec.train` and the C port's default ``TZ_EXPF`` use the C library's double
``exp`` (``(float)exp((double)a)``). The two double results differ in the last bit on a few percent
of arguments (numpy has its own SIMD exp on AVX-512 machines). This script compiles a small C program
with the system compiler, runs it over every float32 argument the loss can produce (``a`` in
[-110, -0], where float32 ``exp`` is 0 below about -103.97; ``S`` in [1, 65536] for up to 65536
classes), and counts the float32 results that differ. Without a C compiler it prints a message and
exits 0. It takes about half a minute and 64 MB.

    python scripts/expf_exhaustive.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GEN_C = r"""
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* gen exp|log lo hi: (float)f((double)a) for every float32 bit pattern a in [lo, hi], as uint32 on stdout */
int main(int argc, char **argv) {
    if (argc != 4) return 2;
    const int is_exp = strcmp(argv[1], "exp") == 0;
    const uint32_t lo = (uint32_t)strtoul(argv[2], 0, 0), hi = (uint32_t)strtoul(argv[3], 0, 0);
    enum { N = 1 << 22 };
    static uint32_t buf[N];
    size_t k = 0;
    for (uint64_t b = lo; b <= hi; ++b) {
        const uint32_t u = (uint32_t)b;
        float a, r;
        memcpy(&a, &u, 4);
        r = is_exp ? (float)exp((double)a) : (float)log((double)a);
        memcpy(&buf[k++], &r, 4);
        if (k == N) { fwrite(buf, 4, k, stdout); k = 0; }
    }
    if (k) fwrite(buf, 4, k, stdout);
    return 0;
}
"""

#: (function, first and last float32 bit pattern): exp on [-0, -110], log on [1, 65536]
RANGES = (("exp", 0x80000000, 0xC2DC0000), ("log", 0x3F800000, 0x47800000))


def check(gen: Path, fn: str, lo: int, hi: int) -> tuple[int, list]:
    """Number of float32 arguments checked and the first mismatches ``(a, numpy bits, C bits)``."""
    proc = subprocess.Popen([str(gen), fn, hex(lo), hex(hi)], stdout=subprocess.PIPE)
    f = np.exp if fn == "exp" else np.log
    start, bad = lo, []
    while True:
        raw = proc.stdout.read(4 << 22)
        if not raw:
            break
        c_bits = np.frombuffer(raw, np.uint32)
        a = np.arange(start, start + c_bits.size, dtype=np.uint64).astype(np.uint32).view(np.float32)
        np_bits = f(a.astype(np.float64)).astype(np.float32).view(np.uint32)
        for i in np.nonzero(np_bits != c_bits)[0][:10]:
            bad.append((float(a[i]), int(np_bits[i]), int(c_bits[i])))
        start += c_bits.size
    if proc.wait() != 0:
        raise SystemExit(f"the generator failed with status {proc.returncode}")
    return start - lo, bad


def main() -> int:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        print("no C compiler (cc/gcc) found: nothing checked")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        src, gen = Path(tmp) / "gen.c", Path(tmp) / "gen"
        src.write_text(GEN_C)
        subprocess.run([cc, "-std=c99", "-O2", "-ffp-contract=off", str(src), "-lm", "-o", str(gen)], check=True)
        failed = False
        for fn, lo, hi in RANGES:
            t = time.time()
            n, bad = check(gen, fn, lo, hi)
            print(f"{fn}: {n:,} float32 arguments, {len(bad)} float32 results differ "
                  f"(numpy {np.__version__} vs the C library) {time.time() - t:.0f} s")
            for a, x, y in bad:
                print(f"  a = {a!r}: numpy 0x{x:08x}, C 0x{y:08x}")
            failed |= bool(bad)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
