"""How CONV_2D is computed: the two exact paths, their prepared operands, and the choice between them.

Both paths give the same int8 output, bit for bit (TFLM's ``ConvPerChannel``):

* ``"gemm"`` (:func:`tinyzo.kernels.conv_gemm.conv2d_s8_gemm`): patches gathered into a float
  buffer, an exact float GEMM by BLAS, requantization fused; fastest for long dot products;
* ``"int"`` (:func:`tinyzo.kernels.conv_int.conv2d_s8_int`): int8 x int8 -> int32 loops over
  packed weights (``vpmaddwd``), requantization fused.

:func:`choose_path` picks one per layer at prepare time from a cost model whose constants were
measured on this project's reference machine (``python benchmarks/calibrate_conv.py``; see
docs/benchmarks.md). ``TINYZO_CONV_PATH=gemm|int`` (read when a model is loaded) or
:meth:`tinyzo.ops.conv.Conv2D.set_path` force one, e.g. to test every path against TFLM.
"""

from __future__ import annotations

import os

import numpy as np

from tinyzo.errors import TinyzoError
from tinyzo.kernels.conv_int import CONV_PARAMS, LANE_PAD, pack_weight_pairs
from tinyzo.kernels.requant import requant_params

PATHS = ("gemm", "int")
#: longest dot product for which a float32 product of int8 values is exact (float64 beyond)
FLOAT32_EXACT_K = 1024
ENV = "TINYZO_CONV_PATH"

#: accumulator elements per block of output pixels (a block's work arrays stay in L1/L2)
BLOCK_ELEMS = 4096

#: cost model, nanoseconds per output pixel, fitted by ``python benchmarks/calibrate_conv.py`` on the
#: reference machine (Xeon, Ice Lake, AVX-512 + VNNI, shared 2-core VM; docs/benchmarks.md):
#: gemm: GEMM_PIXEL + GEMM_K * K + GEMM_N * N + K * N / GEMM_MACS_PER_NS
#: int:  INT_PIXEL + INT_QUAD * ceil(K / 4) + INT_N * NP + K * NP / INT_MACS_PER_NS  (NP = N padded)
#: With these numbers the GEMM path wins for every 1x1 shape of the calibration grid (K 8..576,
#: N 8..256): the integer loops pay a fixed ~95 ns per output pixel (loop set-up per pass over
#: the channels) and reach 13 MAC/ns, BLAS 30.
GEMM_PIXEL, GEMM_K, GEMM_N, GEMM_MACS_PER_NS = 5.6, 0.21, 0.98, 30.4
INT_PIXEL, INT_QUAD, INT_N, INT_MACS_PER_NS = 94.8, 5.40, 1.42, 13.0


class ConvPathError(TinyzoError, ValueError):
    """An unknown CONV_2D path name (``TINYZO_CONV_PATH``, ``Conv2D.set_path``)."""


def check_path(path: str) -> str:
    """``path`` if it names a CONV_2D path, else :class:`ConvPathError`."""
    if path not in PATHS:
        raise ConvPathError(f"unknown CONV_2D path {path!r}; use one of {', '.join(PATHS)} (or 'auto')")
    return path


def padded_channels(n_out: int) -> int:
    """Output channels of the integer path's packed weights: ``n_out`` rounded up to LANE_PAD."""
    return -(-n_out // LANE_PAD) * LANE_PAD


def estimated_ns_per_pixel(path: str, k_len: int, n_out: int) -> float:
    """The cost model's time for one output pixel of a CONV_2D with dot length K and N output channels."""
    if path == "gemm":
        rate = GEMM_MACS_PER_NS if k_len <= FLOAT32_EXACT_K else GEMM_MACS_PER_NS / 2  # float64: half the rate
        return GEMM_PIXEL + GEMM_K * k_len + GEMM_N * n_out + k_len * n_out / rate
    n_pad = padded_channels(n_out)
    return INT_PIXEL + INT_QUAD * -(-k_len // 4) + INT_N * n_pad + k_len * n_pad / INT_MACS_PER_NS


def choose_path(k_len: int, n_out: int) -> str:
    """The CONV_2D path to use: ``TINYZO_CONV_PATH`` if set (and not ``auto``), else the cheaper by the cost model."""
    env = os.environ.get(ENV, "auto")
    if env != "auto":
        return check_path(env)
    costs = {p: estimated_ns_per_pixel(p, k_len, n_out) for p in PATHS}
    return min(PATHS, key=lambda p: costs[p])


def conv_params(op) -> np.ndarray:
    """The scalar parameters of a prepared CONV_2D as a :data:`CONV_PARAMS` record array of one element."""
    p = np.zeros(1, dtype=CONV_PARAMS)
    for name, value in (("kh", op.kh), ("kw", op.kw), ("stride_h", op.stride_h), ("stride_w", op.stride_w),
                        ("dil_h", op.dil_h), ("dil_w", op.dil_w), ("pad_h", op.pad_h), ("pad_w", op.pad_w),
                        ("pad_value", op.pad_value), ("output_offset", op.output_offset),
                        ("act_min", op.act_min), ("act_max", op.act_max), ("rounding", op.rounding)):
        p[name] = value
    return p


def block_pixels(k_len: int, n_cols: int, pixels_per_sample: int) -> int:
    """Output pixels per block: about BLOCK_ELEMS accumulators (and at most one sample's pixels)."""
    return int(max(1, min(pixels_per_sample, BLOCK_ELEMS // max(1, n_cols))))


def wrap32(v: np.ndarray) -> np.ndarray:
    """int64 values wrapped to int32 (C's int32 arithmetic)."""
    return (((np.asarray(v, dtype=np.int64) + 2**31) % 2**32) - 2**31).astype(np.int32)


def gemm_operands(w2: np.ndarray, const: np.ndarray, multiplier, shift, rounding: int, block: int):
    """(wt float[K, O], const tiled int32[B*O], rq int32[4 or 5, B*O]) for :func:`conv2d_s8_gemm`."""
    n_out, k_len = w2.shape
    ftype = np.float32 if k_len <= FLOAT32_EXACT_K else np.float64
    wt = np.ascontiguousarray(w2.T.astype(ftype))
    return wt, np.tile(wrap32(const), block), requant_params(multiplier, shift, rounding, block * n_out)


def int_operands(w2: np.ndarray, const: np.ndarray, multiplier, shift, rounding: int, block: int):
    """(wp int32[ceil(K/2), NP], const32 int32[NP], rq int32[4 or 5, B*NP]) for :func:`conv2d_s8_int`
    (padding channels: multiplier and shift 0, output the clamped offset)."""
    n_out, _ = w2.shape
    n_pad = padded_channels(n_out)
    c32 = np.zeros(n_pad, dtype=np.int32)
    c32[:n_out] = wrap32(const)
    rq = requant_params(np.pad(np.asarray(multiplier).reshape(-1), (0, n_pad - n_out)),
                        np.pad(np.asarray(shift).reshape(-1), (0, n_pad - n_out)), rounding)
    return pack_weight_pairs(w2, n_pad), c32, np.ascontiguousarray(np.tile(rq, (1, block)))
