"""The lean weight-perturbation ZO step of the C port (port/c/tz_train_lean.c) against tinyzo's golden vectors.

tz_zo_step_weight_lean keeps no gradient, no perturbed copy and no direction buffer: it perturbs the SRAM
copies in place, restores them from (w', u, clamp record) and regenerates every query's u in the update.
Each test writes vectors with ``tinyzo vectors``, compiles port/c/test_main.c with -DTZ_LEAN_WEIGHT and
requires every seed, logit, loss, projected difference and parameter after each step to be equal (the
full C step matches the same vectors: tests/test_c_port.py). digits_cnn's trained layers hold +-127
weights (per-channel symmetric quantization puts one on the rail per channel), so Rademacher
perturbations get clamped; a build that ignores the clamp record must then fail.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_c_port import DIGITS, FLAGS, ROOT, _assert_exact, _build_and_run, _compiler, _vectors

from tinyzo.cli import main

SOURCES = ["test_main.c", "tz_kernels.c", "tz_kernels16.c", "tz_softmax.c", "tz_graph.c", "tz_train.c", "tz_train_lean.c"]
LAYERS = "0,8,9,11"
EXACT = ["inference intermediates", "train seeds", "train perturbations (step 0)", "train logits", "train losses",
         "train projected differences", "train parameters"]


def _run_lean(vec_dir: Path, exe: Path, *defines: str) -> tuple[int, str, dict]:
    rc, out, counts = _build_and_run(vec_dir, exe, ("-DTZ_LEAN_WEIGHT", *defines), SOURCES)
    m = re.search(r"lean clamped perturbations (\d+) .*clamp bits (-?\d+)", out)
    if m:
        counts["clamped"], counts["bits"] = int(m.group(1)), int(m.group(2))
    return rc, out, counts


def _moved(vec: Path, steps: int, layers: str) -> int:
    z = np.load(vec / "vectors.npz")
    return sum(int(np.count_nonzero(z[f"train/step{steps - 1}/op{k}/weights"] != z[f"model/op{k}/weights"]))
               for k in map(int, layers.split(",")))


@pytest.mark.parametrize("method", ["zo-rge-weight", "zo-spsa-weight"])
def test_lean_three_steps_exact(tmp_path, method):
    """3 lean steps (Rademacher sigma 1, nearest rounding, layers 0,8,9,11, lr 0.05): 0 mismatches, weights move,
    perturbations were clamped on +-127 weights and restored exactly from the 1-bit record."""
    vec = _vectors(tmp_path, method, DIGITS, "digits", "--method", method, "--steps", "3", "--layers", LAYERS,
                   "--lr", "0.05", "--batch", "4", "--samples", "2", "--seed", "3")
    z = np.load(vec / "vectors.npz")
    on_rail = sum(int(np.count_nonzero(np.abs(z[f"model/op{k}/weights"].astype(int)) == 127))
                  for k in map(int, LAYERS.split(",")))
    assert on_rail > 0
    code, out, counts = _run_lean(vec, tmp_path / "lean")
    _assert_exact(code, out, counts, EXACT)
    assert counts["train parameters"][0] == 3 * sum(
        z[f"model/op{k}/weights"].size + z[f"model/op{k}/bias"].size for k in map(int, LAYERS.split(",")))
    assert counts["bits"] == 1
    # every +1 query (and -1 for SPSA) clamps the rail weights it pushes outward: about half of them
    assert counts["clamped"] > 0
    assert _moved(vec, 3, LAYERS) > 10


@pytest.mark.parametrize("extra, bits", [
    (["--method", "zo-spsa-weight", "--queries", "2", "--rounding", "stochastic"], 1),
    (["--method", "zo-signspsa-weight", "--queries", "3", "--direction", "uniform", "--sigma", "1"], 1),
    (["--method", "zo-rge-weight", "--queries", "2", "--direction", "gaussian", "--sigma", "2",
      "--rounding", "stochastic"], 3),  # |u| <= 7: 3 bits per weight
])
def test_lean_other_estimators_directions_rounding(tmp_path, extra, bits):
    """Several queries (u regenerated in lockstep in the update), stochastic rounding, uniform and Gaussian
    directions (multi-bit clamp record): every compared value equal."""
    vec = _vectors(tmp_path, "v", DIGITS, "digits", *extra, "--steps", "2", "--layers", "8,11", "--lr", "0.05",
                   "--batch", "3", "--samples", "1", "--seed", "5")
    code, out, counts = _run_lean(vec, tmp_path / "lean")
    _assert_exact(code, out, counts, EXACT)
    assert counts["bits"] == bits and counts["clamped"] > 0
    assert _moved(vec, 2, "8,11") > 10


def test_lean_without_clamp_record_fails(tmp_path):
    """Mutation check: a restore that ignores the clamp record (-DTZ_LEAN_NAIVE_RESTORE) corrupts the rail
    weights it clamped, and the harness reports mismatching parameters."""
    vec = _vectors(tmp_path, "rge", DIGITS, "digits", "--method", "zo-rge-weight", "--steps", "3", "--layers", LAYERS,
                   "--lr", "0.05", "--batch", "4", "--samples", "1", "--seed", "3")
    code, out, counts = _run_lean(vec, tmp_path / "naive", "-DTZ_LEAN_NAIVE_RESTORE")
    assert code == 1 and counts["train parameters"][1] > 0, out


def test_lean_refuses_a_weight_at_minus_128(tmp_path):
    """A trained weight at -128 would share its clamp record with -127: the step refuses (TZ_LEAN_ERR_RANGE)
    before changing anything."""
    vec = _vectors(tmp_path, "v", DIGITS, "digits", "--method", "zo-rge-weight", "--steps", "1", "--layers", "11",
                   "--lr", "0.05", "--batch", "2", "--samples", "1")
    header = vec / "tzv_model.h"
    text = header.read_text()
    m = re.search(r"static const int8_t TZV_OP11_WEIGHTS\[\d+\] = \{\n  (-?\d+)", text)
    header.write_text(text[:m.start(1)] + "-128" + text[m.end(1):])
    code, out, _ = _run_lean(vec, tmp_path / "lean")
    assert code == 1 and "step 0 failed (-3)" in out, out


def test_vectors_for_lean_need_weight_target(tmp_path):
    """Node-perturbation vectors cannot build the lean harness (a #error names the requirement)."""
    vec = tmp_path / "node"
    assert main(["vectors", str(DIGITS), "--data", "digits", "--method", "zo-rge-node", "--steps", "1", "--layers",
                 "11", "--samples", "1", "--out", str(vec)]) == 0
    cmd = [_compiler(), *FLAGS, "-DTZ_LEAN_WEIGHT", f"-I{vec}", f"-I{ROOT / 'port' / 'c'}",
           f"-I{ROOT / 'tinyzo' / 'training' / 'c'}", "-c", str(ROOT / "port" / "c" / "test_main.c"), "-o",
           str(tmp_path / "x.o")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode != 0 and "TZ_LEAN_WEIGHT needs weight-perturbation vectors" in r.stderr
