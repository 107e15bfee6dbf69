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


# ----------------------------------------------------------------------------------------------
# 16x8 layers, int16 ADD, SVDF state, int16 QUANTIZE / SOFTMAX (the keyword-spotting operators)
# ----------------------------------------------------------------------------------------------
KEYWORD = ROOT / "tests" / "data" / "tflite-micro" / "keyword_scrambled_8bit.tflite"


def _api_vectors(tmp_path, name, model, x):
    from tinyzo.golden import make_vectors, write_vectors

    vec = make_vectors(model, x)
    out = tmp_path / name
    write_vectors(vec, out)
    return out, vec


def _net16x8(rng):
    """int16 [1, 6, 6, 3] -> CONV_2D 16x8 (3x3 SAME, RELU, int64 bias) -> DEPTHWISE_CONV_2D 16x8 (3x3, int64 bias)
    -> ADD int16 (conv + depthwise) -> FULLY_CONNECTED 16x8 (on the flattened [1, 144]) (int32 bias: the int32 accumulator)
    -> QUANTIZE int16 -> int8. Scales put the typical accumulator at ~3000 output steps (random int16 inputs)."""
    from tinyzo.graph import Model, Operator, Tensor
    from tinyzo.quant import QuantParams

    def q(s):
        return QuantParams([np.float32(s)], [0])

    def qw(n):
        return np.exp(rng.uniform(np.log(0.005), np.log(0.02), n)).astype(np.float32)

    s_x = 1e-3
    sw_c, sw_d, sw_f = qw(4), qw(4), qw(5)
    s_c = s_x * float(np.median(sw_c)) * np.sqrt(27) * 73 * 18900 / 3000
    s_d = s_c * float(np.median(sw_d)) * 3 * 73 * 3000 / 3000
    s_a = 2 * max(s_c, s_d)
    s_f = s_a * float(np.median(sw_f)) * 12 * 73 * 1500 / 3000
    t = [
        Tensor("x", (1, 6, 6, 3), np.int16, q(s_x)),                                                  # 0
        Tensor("wc", (4, 3, 3, 3), np.int8, QuantParams(sw_c, np.zeros(4), 0),
               rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)),                                # 1
        Tensor("bc", (4,), np.int64, QuantParams(s_x * sw_c, np.zeros(4)),
               rng.integers(-10**6, 10**6, 4).astype(np.int64)),                                      # 2
        Tensor("c", (1, 6, 6, 4), np.int16, q(s_c)),                                                  # 3
        Tensor("wd", (1, 3, 3, 4), np.int8, QuantParams(sw_d, np.zeros(4), 3),
               rng.integers(-127, 128, (1, 3, 3, 4)).astype(np.int8)),                                # 4
        Tensor("bd", (4,), np.int64, QuantParams(s_c * sw_d, np.zeros(4)),
               rng.integers(-10**5, 10**5, 4).astype(np.int64)),                                      # 5
        Tensor("d", (1, 6, 6, 4), np.int16, q(s_d)),                                                  # 6
        Tensor("a", (1, 6, 6, 4), np.int16, q(s_a)),                                                  # 7
        Tensor("wf", (5, 144), np.int8, QuantParams(sw_f, np.zeros(5), 0),
               rng.integers(-127, 128, (5, 144)).astype(np.int8)),                                    # 8
        Tensor("bf", (5,), np.int32, QuantParams(s_a * sw_f, np.zeros(5)),
               rng.integers(-10**6, 10**6, 5).astype(np.int32)),                                      # 9
        Tensor("f", (1, 5), np.int16, q(s_f)),                                                        # 10
        Tensor("y", (1, 5), np.int8, QuantParams([np.float32(s_f * 200)], [-3])),                     # 11
    ]
    conv = dict(padding="SAME", stride_h=1, stride_w=1, dilation_h_factor=1, dilation_w_factor=1)
    ops = [
        Operator("CONV_2D", (0, 1, 2), (3,), {**conv, "fused_activation_function": "RELU"}),
        Operator("DEPTHWISE_CONV_2D", (3, 4, 5), (6,), {**conv, "depth_multiplier": 1,
                                                         "fused_activation_function": "NONE"}),
        Operator("ADD", (3, 6), (7,), {"fused_activation_function": "NONE"}),
        Operator("FULLY_CONNECTED", (7, 8, 9), (10,), {"fused_activation_function": "NONE"}),
        Operator("QUANTIZE", (10,), (11,)),
    ]
    return Model(t, ops, (0,), (11,))


def _spread(a) -> int:
    return len(np.unique(np.asarray(a)))


def test_16x8_network_every_intermediate(tmp_path):
    """A 16x8 network built with the Model API (CONV_2D, DEPTHWISE_CONV_2D, ADD int16, FULLY_CONNECTED with an
    int32 bias, QUANTIZE int16 -> int8) on 4 random int16 inputs: every int16 / int8 tensor equal in C."""
    rng = np.random.default_rng(11)
    model = _net16x8(rng)
    assert [p.acc_bits for p in (model.prepared[0], model.prepared[1], model.prepared[3])] == [64, 64, 32]
    x = rng.integers(-32768, 32768, (4, 6, 6, 3)).astype(np.int16)
    vec_dir, vec = _api_vectors(tmp_path, "net16", model, x)
    code, out, counts = _build_and_run(vec_dir, tmp_path / "net16_harness")
    _assert_exact(code, out, counts, ["inference intermediates"])
    n_values = sum(int(np.prod(model.tensors[op.outputs[0]].shape)) for op in model.operators) * 4
    assert counts["inference intermediates"][0] == n_values
    # the comparison proves something: int16 tensors use many values, and are not saturated
    for t in (3, 6, 7, 10):
        a = vec[f"infer/t{t}"]
        assert a.dtype == np.int16 and _spread(a) > min(20, a.size // 2) and np.mean(np.abs(a.astype(int)) == 32767) < 0.1, t
    assert _spread(vec["infer/t11"]) > 5


def test_16x8_flipped_bias_is_reported(tmp_path):
    """Mutation check: one int64 bias changed in the header -> the 16x8 convolution's outputs mismatch."""
    rng = np.random.default_rng(11)
    model = _net16x8(rng)
    x = rng.integers(-32768, 32768, (2, 6, 6, 3)).astype(np.int16)
    vec_dir, _ = _api_vectors(tmp_path, "mut16", model, x)
    header = vec_dir / "tzv_model.h"
    text = header.read_text()
    m = re.search(r"TZV_OP0_BIAS64\[\d+\] = \{\n  INT64_C\((-?\d+)\)", text)
    header.write_text(text[:m.start(1)] + str(int(m.group(1)) + 300000) + text[m.end(1):])
    code, out, counts = _build_and_run(vec_dir, tmp_path / "mut16_harness")
    assert code == 1 and counts["inference intermediates"][1] > 0, out


def test_keyword_model_sequence_every_intermediate_and_state(tmp_path):
    """TFLM's keyword benchmark model (QUANTIZE int16 -> int8, SVDF x7 with int8 state, FULLY_CONNECTED,
    SOFTMAX int8 -> int16, QUANTIZE int16 -> int32) on a sequence of 8 inputs: every tensor after every
    sample and every SVDF state after every sample equal in C; the sequence's outputs are TFLM's."""
    from oracle import tflm_run

    model = tinyzo.load(KEYWORD)
    rng = np.random.default_rng(3)
    x = rng.integers(-6000, 6000, (8, 96)).astype(np.int16)
    vec_dir, vec = _api_vectors(tmp_path, "kw", model, x)
    code, out, counts = _build_and_run(vec_dir, tmp_path / "kw_harness")
    _assert_exact(code, out, counts, ["inference intermediates", "inference state"])
    per_sample = sum(int(np.prod(model.tensors[op.outputs[0]].shape)) for op in model.operators)
    assert counts["inference intermediates"][0] == per_sample * 8
    n_state = sum(int(np.prod(model.tensors[t].shape)) for t in model.variables)
    assert len(model.variables) == 7 and counts["inference state"][0] == n_state * 8
    # the state moves from sample to sample (a wrong carry would show), and the outputs are TFLM's sequence's
    for t in model.variables:
        s = vec[f"infer/s{t}"]
        assert all(not np.array_equal(s[i], s[i + 1]) for i in range(7)), t
    outs, _ = tflm_run(KEYWORD.read_bytes(), [x])
    np.testing.assert_array_equal(outs[0].reshape(8, -1), vec[f"infer/t{model.outputs[0]}"])
    assert _spread(vec[f"infer/t{model.outputs[0]}"]) > 1


def test_svdf_int16_state_rank2_sequence(tmp_path):
    """An SVDF with an int16 activation state and int16 time weights, rank > 1 (tests/single_op.py's generator):
    6 samples as one sequence, output and state equal in C after each."""
    from single_op import svdf

    rng = np.random.default_rng(0)
    for _ in range(200):
        model = svdf(rng)
        p = model.prepared[0]
        if p.state_dtype == np.int16 and p.rank > 1 and p.n_memory > 2 and p.n_input >= 8:
            break
    else:
        pytest.fail("no int16-state SVDF of rank > 1 drawn")
    x = rng.integers(-128, 128, (6, p.n_input)).astype(np.int8)
    vec_dir, vec = _api_vectors(tmp_path, "svdf16", model, x)
    code, out, counts = _build_and_run(vec_dir, tmp_path / "svdf16_harness")
    _assert_exact(code, out, counts, ["inference intermediates", "inference state"])
    s = vec[f"infer/s{model.variables[0]}"]
    assert s.dtype == np.int16 and _spread(s[-1]) > 5


def test_vectors_refuse_what_the_port_lacks():
    """Operators and types outside the port give a GoldenError naming them (no silent export)."""
    from single_op import conv2d, softmax

    from tinyzo.golden import make_vectors
    from tinyzo.golden.export import GoldenError

    rng = np.random.default_rng(5)
    grouped = conv2d(rng, groups=True)
    with pytest.raises(GoldenError, match="grouped"):
        make_vectors(grouped, np.zeros((1,) + grouped.tensors[0].shape[1:], np.int8))
    s16 = softmax(rng, dtype=np.int16)
    with pytest.raises(GoldenError, match="SOFTMAX"):
        make_vectors(s16, np.zeros((1,) + s16.tensors[0].shape[1:], np.int16))
