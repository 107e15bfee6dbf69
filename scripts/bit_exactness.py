"""Regenerate docs/bit_exactness.md: every operator compared element by element with its references.

    python scripts/bit_exactness.py [--models-per-op 40] [--out docs/bit_exactness.md]
    python scripts/bit_exactness.py --ops MUL,SUB   # only these operators' random one-op rows, printed

References, in the same run:
  * TFLite Micro (tflite-micro's Python interpreter, double rounding), on
    - the real TFLM models: every intermediate tensor on random inputs and on the shipped test inputs;
    - random one-operator models (tests/single_op.py) written to .tflite;
  * LiteRT's reference kernels (single rounding in its FULLY_CONNECTED), on hello_world;
  * the pure-Python spec (tinyzo/spec), through the hypothesis tests (named per operator).
Any difference is printed and makes the script exit non-zero.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import MODEL_NAMES, model_path  # noqa: E402
from oracle import tflm_run  # noqa: E402
from single_op import CASES, TYPED_CASES, compare_with_tflm  # noqa: E402

import tinyzo  # noqa: E402

SPEC_TESTS = {
    "CONV_2D": "tests/test_conv.py", "DEPTHWISE_CONV_2D": "tests/test_conv.py",
    "FULLY_CONNECTED": "tests/test_conv.py, tests/test_fc_asym.py", "ADD": "tests/test_binary.py",
    "AVERAGE_POOL_2D": "tests/test_pool.py", "MAX_POOL_2D": "tests/test_pool.py", "MEAN": "tests/test_pool.py",
    "SOFTMAX": "tests/test_softmax.py", "RESHAPE": "tests/test_shape_ops.py", "PAD": "tests/test_shape_ops.py",
    "CONCATENATION": "tests/test_shape_ops.py", "QUANTIZE": "tests/test_elementwise.py",
    "DEQUANTIZE": "tests/test_elementwise.py",
    "SUB": "tests/test_binary.py", "MUL": "tests/test_binary.py", "MAXIMUM": "tests/test_binary.py",
    "MINIMUM": "tests/test_binary.py", "PRELU": "tests/test_binary.py",
    "RELU": "tests/test_activations.py", "RELU6": "tests/test_activations.py",
    "LEAKY_RELU": "tests/test_activations.py", "HARD_SWISH": "tests/test_activations.py",
    "LOGISTIC": "tests/test_activations.py", "TANH": "tests/test_activations.py",
    "SQUEEZE": "tests/test_layout_ops.py", "EXPAND_DIMS": "tests/test_layout_ops.py",
    "TRANSPOSE": "tests/test_layout_ops.py", "STRIDED_SLICE": "tests/test_slice_ops.py",
    "SPLIT": "tests/test_slice_ops.py", "SPLIT_V": "tests/test_slice_ops.py", "GATHER": "tests/test_slice_ops.py",
    "CAST": "tests/test_cast.py", "BATCH_MATMUL": "tests/test_batch_matmul.py",
}
# the convolution family's other types (single_op.TYPED_CASES): 16x8, INT4 weights, grouped CONV_2D
SPEC_TESTS.update({name: "tests/test_conv16x8.py" if "16x8" in name else "tests/test_conv_int4_groups.py"
                   for name in TYPED_CASES})
ALL_CASES = {**CASES, **TYPED_CASES}
#: operators without any requantization (raw int8 values copied or compared)
NO_REQUANTIZATION = ("RESHAPE", "PAD", "CONCATENATION", "MAX_POOL_2D", "DEQUANTIZE", "MAXIMUM", "MINIMUM", "RELU6",
                     "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "STRIDED_SLICE", "SPLIT", "SPLIT_V", "GATHER")


def real_model_counts(n_random: int) -> dict:
    """opcode -> [tensors compared, elements compared, elements different] over the real models."""
    counts = defaultdict(lambda: [0, 0, 0])
    for name in MODEL_NAMES:
        model = tinyzo.load(model_path(name))
        rng = np.random.default_rng(0)
        xs = [rng.integers(-128, 128, size=(n_random,) + t.shape[1:], dtype=np.int8) for t in model.input_details]
        computed = sorted({t for op in model.operators for t in op.outputs})
        _, want = tflm_run(model_path(name).read_bytes(), xs, tensors=computed)
        _, got = model(*xs, intermediates=True)
        for op in model.operators:
            for t in op.outputs:
                c = counts[op.opcode]
                c[0] += n_random
                c[1] += want[t].size
                c[2] += int(np.count_nonzero(got[t].reshape(want[t].shape) != want[t]))
    return counts


def single_op_counts(models_per_op: int, opcodes=None) -> dict:
    """opcode -> [models, elements compared, elements different] over random one-operator models."""
    counts = {}
    for opcode, build in (ALL_CASES if opcodes is not None else CASES).items():
        if opcodes is not None and opcode not in opcodes:
            continue
        rng = np.random.default_rng(sum(map(ord, opcode)))
        total = diff = 0
        for k in range(models_per_op):
            n, d = compare_with_tflm(build(rng), n=4, seed=k)
            total += n
            diff += d
        counts[opcode] = [models_per_op, total, diff]
    return counts


def litert_single_rounding() -> tuple:
    """Elements compared / different: tinyzo (single rounding) vs LiteRT reference kernels, hello_world, all tensors."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    path = model_path("hello_world_int8")
    it = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                     experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    model = tinyzo.load(path, rounding="single")
    x = np.arange(-128, 128, dtype=np.int8).reshape(256, 1)
    _, acts = model(x, intermediates=True)
    computed = sorted({t for op in model.operators for t in op.outputs})
    total = diff = 0
    for b in range(256):
        it.set_tensor(it.get_input_details()[0]["index"], x[b : b + 1])
        it.invoke()
        for t in computed:
            want = it.get_tensor(t).reshape(-1)
            total += want.size
            diff += int(np.count_nonzero(acts[t][b].reshape(-1) != want))
    return total, diff


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-per-op", type=int, default=100)
    ap.add_argument("--random-inputs", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "docs" / "bit_exactness.md"))
    ap.add_argument("--ops", help="comma-separated operators: print only their random one-op rows, write nothing")
    args = ap.parse_args(argv)

    if args.ops:
        opcodes = args.ops.split(",")
        unknown = [o for o in opcodes if o not in ALL_CASES]
        if unknown:
            ap.error(f"no random one-op case for {unknown}; known: {', '.join(ALL_CASES)}")
        single = single_op_counts(args.models_per_op, opcodes)
        for opcode in opcodes:
            s = single[opcode]
            print(f"| {opcode} | random one-op models: {s[0]} / {s[1]:,} / {s[2]} | {SPEC_TESTS[opcode]} |")
        return 1 if any(c[2] for c in single.values()) else 0

    real = real_model_counts(args.random_inputs)
    single = single_op_counts(args.models_per_op, list(ALL_CASES))
    lt_total, lt_diff = litert_single_rounding()
    bad = sum(c[2] for c in real.values()) + sum(c[2] for c in single.values()) + lt_diff

    import tflite_micro

    lines = [
        "# Bit-exactness",
        "",
        "Every number below was produced by one command, `python scripts/bit_exactness.py "
        f"--models-per-op {args.models_per_op} --random-inputs {args.random_inputs}`, comparing integers exactly "
        "(no tolerance). A cell reads *compared / different*; every *different* must be 0. "
        f"tinyzo {tinyzo.__version__}, tflite-micro {getattr(tflite_micro, '__version__', '(version not exposed)')}.",
        "",
        "| operator | TFLM, real models: every intermediate (tensors compared / elements / different) "
        "| TFLM, random one-op models (models / elements / different) | spec property tests (hypothesis) "
        "| rounding mode checked |",
        "|---|---|---|---|---|",
    ]
    for opcode in ALL_CASES:
        r = real.get(opcode)
        s = single[opcode]
        real_cell = f"{r[0]} / {r[1]:,} / {r[2]}" if r else "(not in the real models)"
        rounding = "double (TFLM)"
        if opcode == "FULLY_CONNECTED":
            rounding = f"double (TFLM); single (LiteRT ref.: {lt_total:,} / {lt_diff})"
        elif opcode in NO_REQUANTIZATION:
            rounding = "none (no requantization)"
        elif opcode in ("AVERAGE_POOL_2D",):
            rounding = "none (integer division, TFLM's)"
        elif opcode == "HARD_SWISH":
            rounding = "none (int16 fixed point, TFLM's)"
        elif opcode == "CAST":
            rounding = "C conversions (wrap; float32 nearest-even; truncation)"
        elif opcode in TYPED_CASES and "16x8" in opcode and "int32" not in opcode:
            rounding = "int64 MultiplyByQuantizedMultiplier (one rounding in either build)"
        lines.append(f"| {opcode} | {real_cell} | {s[0]} / {s[1]:,} / {s[2]} | {SPEC_TESTS[opcode]} | {rounding} |")
    lines += [
        "",
        "Real models: person_detect, micro_speech_quantized, hello_world_int8, simple_add_model "
        f"({args.random_inputs} random inputs each; their shipped test inputs give exactly the published outputs, "
        "see tests/test_models_tflm.py). Random one-operator models: tests/single_op.py (shapes, strides, "
        "SAME/VALID, dilation, depth multipliers, per-tensor and per-channel weights, fused activations, random "
        "scales and zero points).",
        "",
        "Single rounding (`rounding=\"single\"`, `TFLITE_SINGLE_ROUNDING`) is checked against the spec for every "
        "requantizing operator (hypothesis), and against an independent engine where one uses it: LiteRT 2.3's "
        "reference FULLY_CONNECTED (hello_world, every input, every tensor). TFLM itself is built with double "
        "rounding.",
        "",
        "The same comparisons run in the test suite: tests/test_models_tflm.py, tests/test_ops_tflm.py, "
        "tests/test_single_rounding_litert.py, plus golden vectors frozen in tests/data/golden/ that need no oracle.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    if bad:
        print(f"ERROR: {bad} elements differ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
