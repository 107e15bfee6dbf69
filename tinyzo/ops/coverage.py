"""Which operators and tensor types tinyzo runs (``tinyzo info --ops``), and what it refuses.

:data:`COVERAGE` lists, for every registered operator (:data:`tinyzo.ops.base.REGISTRY`), the type
combinations it runs bit-exactly with TFLite Micro (each one checked by the random one-operator
models of ``tests/single_op.py`` against TFLM: docs/bit_exactness.md) and the notable combinations
it refuses with a one-line error. "16x8" is TFLite's int16-activation quantization (int16 tensors with
zero point 0, int8 weights, int64 bias). tests/test_coverage.py keeps this table and the registry
and the random-case tables in step.
"""

from __future__ import annotations

__all__ = ["COVERAGE", "coverage_table"]

#: opcode -> (types run, types refused); both tuples of short phrases
COVERAGE = {
    "ADD": (("int8", "int16 (16x8)", "int32 (unquantized, wrapping)"), ()),
    "SUB": (("int8", "int16 (16x8)"), ()),
    "MUL": (("int8", "int16 (16x8)", "int32 (unquantized, wrapping)"), ()),
    "DIV": (("int32 (unquantized, truncating)",), ("int8 (quantized)", "float32", "a zero divisor")),
    "MAXIMUM": (("int8", "int32"), ("int16",)),
    "MINIMUM": (("int8", "int32"), ("int16",)),
    "PRELU": (("int8",), ("int16",)),
    "RELU": (("int8", "int16 (16x8)"), ()),
    "RELU6": (("int8", "int16 (16x8)"), ()),
    "LEAKY_RELU": (("int8", "int16 (16x8)"), ()),
    "HARD_SWISH": (("int8",), ("int16 (TFLM has no int16 kernel)",)),
    "LOGISTIC": (("int8", "int16 (16x8)"), ()),
    "TANH": (("int8", "int16 (16x8)"), ()),
    "CONV_2D": (("int8 (per-tensor or per-channel weights)", "16x8 (int64 or int32 bias)", "int4 weights",
                 "grouped (int8, 16x8)"), ("int4 weights with int16 activations",)),
    "DEPTHWISE_CONV_2D": (("int8", "16x8 (int64 bias)", "int4 weights"), ("16x8 with an int32 bias",)),
    "FULLY_CONNECTED": (("int8 (symmetric or asymmetric weights)", "16x8 (int64 or int32 bias)",
                         "int4 weights (per tensor)"), ("per-channel int4 weights",)),
    "TRANSPOSE_CONV": (("int8", "16x8"), ()),
    "BATCH_MATMUL": (("int8",), ()),
    "AVERAGE_POOL_2D": (("int8", "int16 (16x8)"), ()),
    "MAX_POOL_2D": (("int8", "int16 (16x8)"), ()),
    "MEAN": (("int8",), ("int16",)),
    "SOFTMAX": (("int8 -> int8", "int8 -> int16", "int16 -> int16 (16x8)"), ()),
    "QUANTIZE": (("float32 -> int8", "float32 -> int16", "int8 -> int8", "int8 <-> int16", "int16 -> int16",
                  "int16 -> int32"), ("int32 -> int16",)),
    "DEQUANTIZE": (("int8 -> float32", "int16 -> float32"), ()),
    "CAST": (("between int8, int16, int32, uint32 and float32",), ()),
    "RESHAPE": (("int8", "int16", "int32"), ()),
    "SQUEEZE": (("int8", "int16", "int32"), ()),
    "EXPAND_DIMS": (("int8", "int16"), ("int32",)),
    "TRANSPOSE": (("int8", "int16"), ("int32",)),
    "STRIDED_SLICE": (("int8", "int16", "int32"), ()),
    "SPLIT": (("int8", "int16", "int32"), ()),
    "SPLIT_V": (("int8", "int16", "int32"), ()),
    "GATHER": (("int8",), ()),
    "CONCATENATION": (("int8", "int16", "int32"), ()),
    "PAD": (("int8",), ("int16",)),
    "PADV2": (("int8",), ("int16",)),
    "SVDF": (("int8 with an int8 or int16 state (stateful)",), ("float", "hybrid")),
    "CUSTOM:SignalWindow": (("int16 (TFLM signal library)",), ()),
    "CUSTOM:SignalFftAutoScale": (("int16 -> int16, int32 shift",), ()),
    "CUSTOM:SignalRfft": (("int16 (KISS FFT fixed point; fft_length / 2 of factors 2, 3, 5)",),
                          ("int32", "float32", "other FFT lengths (TFLM's build crashes)")),
    "CUSTOM:SignalEnergy": (("int16 complex -> uint32",), ()),
    "CUSTOM:SignalFilterBank": (("uint32 -> uint64",), ()),
    "CUSTOM:SignalFilterBankSquareRoot": (("uint64 -> uint32",), ()),
    "CUSTOM:SignalFilterBankSpectralSubtraction": (("uint32 (stateful: noise estimate per stream)",), ()),
    "CUSTOM:SignalPCAN": (("uint32",), ()),
    "CUSTOM:SignalFilterBankLog": (("uint32 -> int16",), ()),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (("int8 with an int16 cell state (8x8->16, stateful)",),
                                     ("16x8", "CIFG, peephole, projection, layer norm")),
}


def coverage_table() -> str:
    """The Markdown-like text table ``tinyzo info --ops`` prints: operator, types run, types refused."""
    from tinyzo.ops.base import REGISTRY

    rows = [("operator", "runs (bit-exact with TFLM)", "refused (one-line error)")]
    rows += [(op, "; ".join(COVERAGE[op][0]), "; ".join(COVERAGE[op][1]) or "-") for op in sorted(REGISTRY)]
    w = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{a:<{w[0]}}  {b:<{w[1]}}  {c}" for a, b, c in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append(f"\n{len(REGISTRY)} operators; any other operator is refused when the model is loaded, naming it")
    return "\n".join(lines)
