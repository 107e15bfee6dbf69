"""The C99 reference port (port/c) against tinyzo's golden vectors, exactly.

Each test writes vectors with ``tinyzo vectors`` into tmp_path, compiles port/c/test_main.c with the
system C compiler (strict flags, no FP contraction) against them, runs it and requires 0 mismatches
over a non-trivial number of checked values. A mutated header must be caught. The round trip checks
that a ZO-trained model saved as .tflite runs in TFLite Micro with exactly tinyzo's outputs.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

import tinyzo
from tinyzo.cli import main

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "reference_models" / "digits_cnn.tflite"
PERSON = ROOT / "tests" / "data" / "tflite-micro" / "person_detect.tflite"
TESTDATA = ROOT / "tests" / "data" / "tflite-micro" / "testdata"
SOURCES = ["test_main.c", "tz_kernels.c", "tz_kernels16.c", "tz_softmax.c", "tz_graph.c", "tz_train.c"]
FLAGS = ["-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror"]
# trained layers of the digits tests: a 3x3 stride-2 padded conv, a depthwise conv, a 1x1 conv, the classifier
LAYERS = "0,8,9,11"


def _compiler():
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    pytest.skip("no C compiler found ($CC, cc, gcc, clang): the C port cannot be built here")


def _build_and_run(vec_dir: Path, exe: Path, defines=(), sources=None) -> tuple[int, str, dict]:
    """Compile the harness against the vectors in ``vec_dir``, run it: (exit code, stdout, {what: (checked, bad)})."""
    cc = _compiler()
    cmd = [cc, *FLAGS, *defines, f"-I{vec_dir}", f"-I{ROOT / 'port' / 'c'}", f"-I{ROOT / 'tinyzo' / 'training' / 'c'}",
           *[str(ROOT / "port" / "c" / s) for s in (sources or SOURCES)], "-o", str(exe), "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300, check=False)
    counts = {}
    for line in run.stdout.splitlines():
        m = re.match(r"(.+?)\s+(\d+) checked\s+(\d+) mismatches", line)
        if m:
            counts[m.group(1).strip()] = (int(m.group(2)), int(m.group(3)))
    return run.returncode, run.stdout, counts


def _vectors(tmp_path, name, model, data, *extra):
    out = tmp_path / name
    assert main(["vectors", str(model), "--data", str(data), "--out", str(out), *extra]) == 0
    return out


def _assert_exact(code, stdout, counts, expect):
    assert code == 0 and "TOTAL MISMATCHES 0" in stdout, stdout
    for what in expect:
        checked, bad = counts[what]
        assert bad == 0 and checked > 0, (what, stdout)


def _bmp(path):
    raw = path.read_bytes()
    offset = struct.unpack_from("<I", raw, 10)[0]
    _, height = struct.unpack_from("<ii", raw, 18)
    px = np.frombuffer(raw, dtype=np.int8, count=96 * 96, offset=offset).reshape(96, 96)
    return np.ascontiguousarray(px[::-1] if height > 0 else px).reshape(96, 96, 1)


def test_person_detect_inference_every_intermediate(tmp_path):
    """person_detect (CONV_2D, DEPTHWISE_CONV_2D with multiplier 8, AVERAGE_POOL_2D, RESHAPE, SOFTMAX) on the
    shipped person / no_person images and one random input: every tensor equal."""
    x = np.stack([_bmp(TESTDATA / "person.bmp"), _bmp(TESTDATA / "no_person.bmp"),
                  np.random.default_rng(7).integers(-128, 128, (96, 96, 1)).astype(np.int8)])
    np.savez(tmp_path / "person.npz", x=x)
    vec = _vectors(tmp_path, "person", PERSON, tmp_path / "person.npz", "--steps", "0", "--samples", "3")
    code, out, counts = _build_and_run(vec, tmp_path / "person_harness")
    _assert_exact(code, out, counts, ["inference intermediates"])
    model = tinyzo.load(PERSON)
    n_values = sum(int(np.prod(model.tensors[op.outputs[0]].shape)) for op in model.operators) * 3
    assert counts["inference intermediates"][0] == n_values
    # the shipped images give TFLM's known outputs (tests/test_models_tflm.py) in the vectors the C matched
    z = np.load(vec / "vectors.npz")
    np.testing.assert_array_equal(z[f"infer/t{model.outputs[0]}"][:2], [[-113, 113], [57, -57]])


@pytest.mark.parametrize("method", ["zo-rge-weight", "zo-rge-node"])
def test_digits_three_training_steps(tmp_path, method):
    """digits_cnn: inference (every intermediate) and 3 ZO steps, every recorded value equal in C."""
    vec = _vectors(tmp_path, method, DIGITS, "digits", "--method", method, "--steps", "3", "--layers", LAYERS,
                   "--lr", "0.05", "--batch", "4", "--samples", "2", "--seed", "3")
    code, out, counts = _build_and_run(vec, tmp_path / "harness")
    _assert_exact(code, out, counts, ["inference intermediates", "train seeds", "train perturbations (step 0)",
                                      "train logits", "train losses", "train projected differences",
                                      "train gradient estimates", "train parameters"])
    z = np.load(vec / "vectors.npz")
    moved = sum(int(np.count_nonzero(z[f"train/step2/op{k}/weights"] != z[f"model/op{k}/weights"]))
                for k in map(int, LAYERS.split(",")))
    assert moved > 10, "the steps must change int8 weights, or the parameter comparison proves little"


def test_digits_spsa_gaussian_stochastic_rounding(tmp_path):
    """Two-sided SPSA, integer Gaussian directions, 2 queries and stochastic rounding also match."""
    vec = _vectors(tmp_path, "spsa", DIGITS, "digits", "--method", "zo-spsa-weight", "--steps", "2", "--layers",
                   "8,11", "--lr", "0.05", "--batch", "3", "--queries", "2", "--direction", "gaussian", "--sigma", "2",
                   "--rounding", "stochastic", "--seed", "5")
    code, out, counts = _build_and_run(vec, tmp_path / "harness")
    _assert_exact(code, out, counts, ["train losses", "train gradient estimates", "train parameters"])


def test_a_flipped_weight_is_reported(tmp_path):
    """Mutation check: one weight's bits flipped in the model header -> the harness reports mismatches and fails."""
    vec = _vectors(tmp_path, "mut", DIGITS, "digits", "--steps", "0")
    header = vec / "tzv_model.h"
    text = header.read_text()
    m = re.search(r"static const int8_t TZV_OP0_WEIGHTS\[\d+\] = \{\n  (-?\d+)", text)
    header.write_text(text[:m.start(1)] + str(~int(m.group(1))) + text[m.end(1):])  # first conv, weight 0
    code, out, counts = _build_and_run(vec, tmp_path / "harness")
    assert code == 1 and counts["inference intermediates"][1] > 0, out


def test_trained_model_runs_in_tflm_with_tinyzos_outputs(tmp_path):
    """Round trip: ZO-train digits_cnn, save .tflite, TFLM's interpreter gives exactly tinyzo's outputs."""
    from oracle import tflm_run

    from tinyzo import data
    from tinyzo.evaluate import images_to_input
    from tinyzo.zo.trainer import ZOConfig, ZOTrainer

    model = tinyzo.load(DIGITS)
    before = {k: model.get_params(k) for k in model.trainable_ops()}
    x, y = data.load("digits").split("train")
    xq = images_to_input(model, x[:16])
    tr = ZOTrainer(model, ZOConfig(layers=[2, 8, 9, 11], target="node", lr=0.05, seed=1), total_steps=3)
    for _ in range(3):
        tr.step(xq, y[:16])
    changed = sum(int(np.count_nonzero(model.get_params(k)[0] != before[k][0])) for k in before)
    assert changed > 10
    path = tmp_path / "trained.tflite"
    tinyzo.save(model, path)
    reloaded = tinyzo.load(path)
    for k in model.trainable_ops():
        np.testing.assert_array_equal(reloaded.get_params(k)[0], model.get_params(k)[0])
        np.testing.assert_array_equal(reloaded.get_params(k)[1], model.get_params(k)[1])
    xt = images_to_input(model, x[16:48])
    outs, _ = tflm_run(path.read_bytes(), [xt])
    np.testing.assert_array_equal(outs[0], model(xt))
    assert not np.array_equal(model(xt), tinyzo.load(DIGITS)(xt)), "training must change some output"


def test_vectors_cli_errors(tmp_path, capsys):
    """Unsupported requests give one line and exit 2."""
    assert main(["vectors", str(DIGITS), "--data", "digits", "--method", "zo-rge-mixed", "--out",
                 str(tmp_path / "v")]) == 2
    assert "weight and node" in capsys.readouterr().err
    assert main(["vectors", str(DIGITS), "--data", "digits", "--samples", "0", "--out", str(tmp_path / "v")]) == 2
