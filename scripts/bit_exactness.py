"""Regenerate docs/bit_exactness.md: every operator compared element by element with its references.

    python scripts/bit_exactness.py [--models-per-op 40] [--out docs/bit_exactness.md]
    python scripts/bit_exactness.py --ops MUL,SUB   # only these operators' random one-op rows, printed
    python scripts/bit_exactness.py --ops ADD,SOFTMAX --dtype int16   # the int16 (16x8) rows

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
from single_op import CASES, CASES_INT16, TYPED_CASES, compare_with_tflm  # noqa: E402

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
    "SVDF": "tests/test_svdf.py", "QUANTIZE_INT16": "tests/test_keyword_ops.py",
    "SOFTMAX_INT16_OUT": "tests/test_keyword_ops.py",
    "TRANSPOSE_CONV": "tests/test_transpose_conv.py", "TRANSPOSE_CONV_16x8": "tests/test_transpose_conv.py",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "tests/test_lstm.py",
}
#: the int16 (16x8) paths: opcode -> (spec property tests, rounding mode checked)
INT16_ROWS = {
    "ADD": ("tests/test_ops16.py", "double (TFLM)"), "SUB": ("tests/test_ops16.py", "double (TFLM)"),
    "MUL": ("tests/test_ops16.py", "double (TFLM)"), "RELU": ("tests/test_ops16.py", "double (TFLM)"),
    "RELU6": ("tests/test_ops16.py", "none (no requantization)"),
    "LEAKY_RELU": ("tests/test_ops16.py", "double (TFLM)"),
    "LOGISTIC": ("tests/test_ops16.py", "none (table interpolation, TFLM's)"),
    "TANH": ("tests/test_ops16.py", "none (table interpolation, TFLM's)"),
    "AVERAGE_POOL_2D": ("tests/test_ops16.py", "none (integer division, TFLM's)"),
    "MAX_POOL_2D": ("tests/test_ops16.py", "none (no requantization)"),
    "SOFTMAX": ("tests/test_ops16.py", "double (TFLM); TFLM's float32 tables"),
    "QUANTIZE": ("tests/test_ops16.py", "double (TFLM)"),
    "DEQUANTIZE": ("tests/test_ops16.py", "none (no requantization)"),
}
#: stateful real models: run as one sequence of invocations (TFLM keeps the state between them)
STATEFUL_MODELS = ["keyword_scrambled_8bit"]


def case_name(model, op) -> str:
    """The row of an operator of a real model: its opcode, or the random one-op case of its int16 path."""
    if op.opcode == "QUANTIZE" and model.tensors[op.inputs[0]].dtype == np.int16:
        return "QUANTIZE_INT16"
    if op.opcode == "SOFTMAX" and model.tensors[op.outputs[0]].dtype == np.int16:
        return "SOFTMAX_INT16_OUT"
    return op.opcode
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
    for name in MODEL_NAMES + STATEFUL_MODELS:
        model = tinyzo.load(model_path(name))
        rng = np.random.default_rng(0)
        # int8: the full range; int16 (the keyword model): +-4096 (full range saturates its first QUANTIZE)
        xs = [rng.integers(-128, 128, size=(n_random,) + t.shape[1:], dtype=np.int8) if t.dtype == np.int8 else
              rng.integers(-4096, 4096, size=(n_random,) + t.shape[1:]).astype(t.dtype) for t in model.input_details]
        computed = sorted({t for op in model.operators for t in op.outputs})
        _, want = tflm_run(model_path(name).read_bytes(), xs, tensors=computed)
        if model.variables:  # TFLM ran the samples as one sequence: so does tinyzo, one call each
            steps = [model(*(x[b:b + 1] for x in xs), intermediates=True)[1] for b in range(n_random)]
            got = {t: np.concatenate([e[t] for e in steps]) for t in computed}
        else:
            _, got = model(*xs, intermediates=True)
        for op in model.operators:
            for t in op.outputs:
                c = counts[case_name(model, op)]
                c[0] += n_random
                c[1] += want[t].size
                c[2] += int(np.count_nonzero(got[t].reshape(want[t].shape) != want[t]))
    return counts


def single_op_counts(models_per_op: int, opcodes=None, cases=None) -> dict:
    """opcode -> [models, elements compared, elements different] over random one-operator models.

    ``cases``: :data:`single_op.CASES` (default) or :data:`single_op.CASES_INT16` (seeded apart).
    """
    counts = {}
    cases = (ALL_CASES if opcodes is not None else CASES) if cases is None else cases
    for opcode, build in cases.items():
        if opcodes is not None and opcode not in opcodes:
            continue
        rng = np.random.default_rng(sum(map(ord, opcode)) + (16 if cases is CASES_INT16 else 0))
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
    ap.add_argument("--dtype", choices=("int8", "int16"), default="int8",
                    help="with --ops: the int8 models (default) or the int16 (16x8) ones")
    args = ap.parse_args(argv)

    if args.ops:
        opcodes = args.ops.split(",")
        cases = CASES_INT16 if args.dtype == "int16" else ALL_CASES
        unknown = [o for o in opcodes if o not in cases]
        if unknown:
            ap.error(f"no random {args.dtype} one-op case for {unknown}; known: {', '.join(cases)}")
        single = single_op_counts(args.models_per_op, opcodes, cases)
        real = real_model_counts(args.random_inputs) if args.dtype != "int16" else {}
        for opcode in opcodes:
            s, r = single[opcode], real.get(opcode)
            if args.dtype == "int16":
                spec, rounding = INT16_ROWS[opcode]
                print(f"| {opcode} (int16) | (not in the real models) | {s[0]} / {s[1]:,} / {s[2]} | {spec} | {rounding} |")
            else:
                real_cell = f"real models: {r[0]} / {r[1]:,} / {r[2]} | " if r else ""
                print(f"| {opcode} | {real_cell}random one-op models: {s[0]} / {s[1]:,} / {s[2]} | {SPEC_TESTS[opcode]} |")
        return 1 if any(c[2] for c in single.values()) or any(real[o][2] for o in opcodes if o in real) else 0

    real = real_model_counts(args.random_inputs)
    single = single_op_counts(args.models_per_op, list(ALL_CASES))
    single16 = single_op_counts(args.models_per_op, cases=CASES_INT16)
    lt_total, lt_diff = litert_single_rounding()
    bad = (sum(c[2] for c in real.values()) + sum(c[2] for c in single.values()) + lt_diff
           + sum(c[2] for c in single16.values()))

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
        elif opcode == "TRANSPOSE_CONV_16x8":
            rounding = "int64 MultiplyByQuantizedMultiplier (TFLM's, one rounding)"
        elif opcode in TYPED_CASES and "16x8" in opcode and "int32" not in opcode:
            rounding = "int64 MultiplyByQuantizedMultiplier (one rounding in either build)"
        lines.append(f"| {opcode} | {real_cell} | {s[0]} / {s[1]:,} / {s[2]} | {SPEC_TESTS[opcode]} | {rounding} |")
    for opcode in CASES_INT16:  # the int16 (16x8) paths: int16 activations, zero point 0
        s, (spec, rounding) = single16[opcode], INT16_ROWS[opcode]
        lines.append(f"| {opcode} (int16) | (not in the real models) | {s[0]} / {s[1]:,} / {s[2]} | {spec} | {rounding} |")
    lines += [
        "",
        "Real models: person_detect, micro_speech_quantized, hello_world_int8, simple_add_model and the stateful "
        "keyword_scrambled_8bit (its random inputs run as one sequence, state carried) "
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
