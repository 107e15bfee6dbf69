"""How CONV_2D is computed: the two exact paths, their prepared operands, and the choice between them.

Both paths give the same int8 output, bit for bit (TFLM's ``ConvPerChannel``):

* ``"gemm"`` (:func:`tinyzo.kernels.conv_gemm.conv2d_s8_gemm`): patches gathered into a float
  buffer, an exact float GEMM by BLAS, requantization fused; fastest for long dot products;
* ``"int"`` (:func:`tinyzo.kernels.conv_int.conv2d_s8_int`): int8 x int8 -> int32 loops over
  packed weights (``vpmaddwd``), requantization fused;
* ``"vnni"`` (:func:`tinyzo.kernels.conv_vnni.conv2d_s8_vnni`): ``vpdpbusd`` tiles with the
  accumulators in registers, requantization fused; offered only on a CPU with AVX512-VNNI
  (:func:`available_paths`), where it is the fastest for most shapes.

:func:`choose_path` picks one per layer at prepare time from a cost model whose constants were
measured on this project's reference machine (``python benchmarks/calibrate_conv.py``; see
docs/benchmarks.md). ``TINYZO_CONV_PATH=gemm|int`` (read when a model is loaded) or
:meth:`tinyzo.ops.conv.Conv2D.set_path` force one, e.g. to test every path against TFLM.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from tinyzo.errors import TinyzoError
from tinyzo.kernels.conv_int import CONV_PARAMS, LANE_PAD, pack_weight_pairs
from tinyzo.kernels.conv_vnni import MR, PATCH_SLACK, VNNI_LANES, pack_weight_quads, vnni_available
from tinyzo.kernels.requant import requant_params

#: every CONV_2D path; :func:`available_paths` those this CPU can run
PATHS = ("gemm", "int", "vnni")
#: longest dot product for which a float32 product of int8 values is exact (float64 beyond)
FLOAT32_EXACT_K = 1024
ENV = "TINYZO_CONV_PATH"

#: accumulator elements per block of output pixels (a block's work arrays stay in L1/L2)
BLOCK_ELEMS = 4096

#: cost model, nanoseconds per output pixel, fitted by ``python benchmarks/calibrate_conv.py`` (all
#: paths in one run, one thread) on the reference machine of this round (AMD EPYC Zen 4, AVX-512 +
#: VNNI, shared 2-core VM; docs/benchmarks.md):
#: gemm: GEMM_PIXEL + GEMM_K * K + GEMM_N * N + K * N / GEMM_MACS_PER_NS
#: int:  INT_PIXEL + INT_QUAD * ceil(K / 4) + INT_N * NP + K * NP / INT_MACS_PER_NS  (NP = N padded to 8)
#: vnni: VNNI_PIXEL + VNNI_N * NP + KP * NP / VNNI_MACS_PER_NS  (NP = N padded to 16, KP = K padded to 4)
#: On the 1x1 grid (K 8..576, N 8..256) the vnni path (requantizing inside its tiles, storing 8-channel
#: outputs in place) is the fastest on every shape, 1.2-7x faster than BLAS; without VNNI, BLAS wins
#: but for K >= 384 with N >= 128 (the integer loops). The model picks the measured faster path for
#: all 48 shapes.
GEMM_PIXEL, GEMM_K, GEMM_N, GEMM_MACS_PER_NS = 1.9, 0.07, 0.38, 43.2
INT_PIXEL, INT_QUAD, INT_N, INT_MACS_PER_NS = 0.0, 5.00, 0.35, 48.0
VNNI_PIXEL, VNNI_N, VNNI_MACS_PER_NS = 1.6, 0.21, 142.1


class ConvPathError(TinyzoError, ValueError):
    """An unknown CONV_2D path name (``TINYZO_CONV_PATH``, ``Conv2D.set_path``), or one this CPU cannot run."""


@functools.cache
def available_paths() -> tuple:
    """The CONV_2D paths this machine runs: ``gemm`` and ``int`` everywhere, ``vnni`` on AVX512-VNNI CPUs."""
    return tuple(p for p in PATHS if p != "vnni" or vnni_available())


def check_path(path: str) -> str:
    """``path`` if it names a CONV_2D path this CPU runs, else :class:`ConvPathError`."""
    if path not in PATHS:
        raise ConvPathError(f"unknown CONV_2D path {path!r}; use one of {', '.join(PATHS)} (or 'auto')")
    if path not in available_paths():
        raise ConvPathError(f"the CONV_2D path {path!r} needs a CPU with AVX512-VNNI (vpdpbusd); this one runs "
                            f"{', '.join(available_paths())}")
    return path


#: the kernels of an int8 DEPTHWISE_CONV_2D: the row kernel (32-bit multiplies, every CPU) and the
#: ``vpdpbusd`` kernel (AVX512-VNNI, multipliers below 1: the one-formula requantization)
DEPTHWISE_PATHS = ("rows", "vnni")


def choose_depthwise_path(one_formula: bool) -> str:
    """The DEPTHWISE_CONV_2D kernel to use: ``vnni`` where this CPU has it and the layer's requantization
    has the one-formula layout (``one_formula``), else ``rows``. ``TINYZO_CONV_PATH`` forces it too:
    ``vnni`` (refused where the CPU lacks it) or ``gemm``/``int`` (no VNNI anywhere: ``rows``)."""
    env = os.environ.get(ENV, "auto")
    if env != "auto" and check_path(env) != "vnni":
        return "rows"
    return "vnni" if one_formula and "vnni" in available_paths() else "rows"


def vnni_channels(n_out: int) -> int:
    """Output channels of the ``vnni`` path's packed weights: ``n_out`` rounded up to VNNI_LANES."""
    return -(-n_out // VNNI_LANES) * VNNI_LANES


def vnni_block(k_len: int, n_out: int, pixels_per_sample: int) -> int:
    """Output pixels per block of the ``vnni`` path: :func:`block_pixels`, a multiple of MR."""
    b = block_pixels(k_len, vnni_channels(n_out), pixels_per_sample)
    return max(MR, b - b % MR)


def padded_channels(n_out: int) -> int:
    """Output channels of the integer path's packed weights: ``n_out`` rounded up to LANE_PAD."""
    return -(-n_out // LANE_PAD) * LANE_PAD


def estimated_ns_per_pixel(path: str, k_len: int, n_out: int) -> float:
    """The cost model's time for one output pixel of a CONV_2D with dot length K and N output channels."""
    if path == "vnni":
        n_pad = vnni_channels(n_out)
        return VNNI_PIXEL + VNNI_N * n_pad + -(-k_len // 4) * 4 * n_pad / VNNI_MACS_PER_NS
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
    paths = available_paths()
    costs = {p: estimated_ns_per_pixel(p, k_len, n_out) for p in paths}
    return min(paths, key=lambda p: costs[p])


def conv_params(op) -> np.ndarray:
    """The scalar parameters of a prepared CONV_2D as a :data:`CONV_PARAMS` record array of one element."""
    return params_record(kh=op.kh, kw=op.kw, stride_h=op.stride_h, stride_w=op.stride_w, dil_h=op.dil_h,
                         dil_w=op.dil_w, pad_h=op.pad_h, pad_w=op.pad_w, pad_value=op.pad_value,
                         output_offset=op.output_offset, act_min=op.act_min, act_max=op.act_max, rounding=op.rounding)


def pointwise_params(op) -> np.ndarray:
    """:data:`CONV_PARAMS` [1] of an unpadded 1x1, stride-1 convolution with ``op``'s output offset, clamp and
    rounding (FULLY_CONNECTED rows run as one on the ``vnni`` kernel)."""
    return params_record(kh=1, kw=1, stride_h=1, stride_w=1, dil_h=1, dil_w=1, output_offset=op.output_offset,
                         act_min=op.act_min, act_max=op.act_max, rounding=op.rounding)


def params_record(**fields) -> np.ndarray:
    """A :data:`CONV_PARAMS` record array of one element; fields not given are 0."""
    p = np.zeros(1, dtype=CONV_PARAMS)
    for name, value in fields.items():
        p[name] = value
    return p


def block_pixels(k_len: int, n_cols: int, pixels_per_sample: int) -> int:
    """Output pixels per block: about BLOCK_ELEMS accumulators (and at most one sample's pixels)."""
    return int(max(1, min(pixels_per_sample, BLOCK_ELEMS // max(1, n_cols))))


def wrap32(v: np.ndarray) -> np.ndarray:
    """int64 values wrapped to int32 (C's int32 arithmetic)."""
    return (((np.asarray(v, dtype=np.int64) + 2**31) % 2**32) - 2**31).astype(np.int32)


def gemm_operands(w2: np.ndarray, const: np.ndarray, multiplier, shift, rounding: int, block: int):
    """(wt float[K, O], const tiled int32[B*O], rq int32[3 or 5, B*O]) for :func:`conv2d_s8_gemm`."""
    n_out, k_len = w2.shape
    ftype = np.float32 if k_len <= FLOAT32_EXACT_K else np.float64
    wt = np.ascontiguousarray(w2.T.astype(ftype))
    return wt, np.tile(wrap32(const), block), tiled_requant(multiplier, shift, rounding, n_out, block)


def int_operands(w2: np.ndarray, const: np.ndarray, multiplier, shift, rounding: int, block: int):
    """(wp int32[ceil(K/2), NP], const32 int32[NP], rq int32[3 or 5, B*NP]) for :func:`conv2d_s8_int`
    (padding channels: multiplier and shift 0, output the clamped offset)."""
    n_out, _ = w2.shape
    n_pad = padded_channels(n_out)
    c32 = np.zeros(n_pad, dtype=np.int32)
    c32[:n_out] = wrap32(const)
    return pack_weight_pairs(w2, n_pad), c32, tiled_requant(multiplier, shift, rounding, n_pad, block)


def vnni_operands(w2: np.ndarray, const: np.ndarray, multiplier, shift, rounding: int, block: int, wq=None):
    """(wq int8[ceil(K/4), NP, 4], init int32[NP], rq int32[3 or 5, B*NP]) for :func:`conv2d_s8_vnni`
    (NP = :func:`vnni_channels`; padding channels: zero weights, multiplier and shift 0). ``wq``: weights
    already packed another way (the window form's :func:`tinyzo.kernels.conv_vnni.pack_window_weights`)."""
    n_out, _ = w2.shape
    n_pad = vnni_channels(n_out)
    # the kernel flips the inputs' sign bit (x + 128, unsigned for vpdpbusd): take 128 * sum(w) back out
    init = np.zeros(n_pad, dtype=np.int32)
    init[:n_out] = wrap32(np.asarray(const, dtype=np.int64) - 128 * w2.astype(np.int64).sum(axis=1))
    wq = pack_weight_quads(w2, n_pad) if wq is None else wq
    return wq, init, tiled_requant(multiplier, shift, rounding, n_pad, block)


def vnni_patch_len(block: int, wq: np.ndarray) -> int:
    """Bytes of the ``vnni`` kernel's patch buffer for ``block`` pixels of packed weights ``wq``."""
    return block * 4 * wq.shape[0] + PATCH_SLACK


@functools.lru_cache(maxsize=512)
def _tiled_requant(mult: bytes, shift: bytes, rounding: int, n_pad: int, block: int) -> np.ndarray:
    m = np.frombuffer(mult, dtype=np.int64)
    s = np.frombuffer(shift, dtype=np.int64)
    rq = requant_params(np.pad(m, (0, n_pad - m.size)), np.pad(s, (0, n_pad - s.size)), rounding)
    return np.ascontiguousarray(np.tile(rq, (1, block)))


def tiled_requant(multiplier, shift, rounding: int, n_pad: int, block: int) -> np.ndarray:
    """int32[3 or 5, block * n_pad]: :func:`tinyzo.kernels.requant.requant_params` of the O channels padded
    to ``n_pad`` (multiplier and shift 0: output the clamped offset) and tiled ``block`` times.

    Computed once per parameter set and shared (the kernels only read it): a training update
    changes the weights and biases, never the multipliers, and re-preparing a layer's operands
    after every update (ZO weight perturbation does it twice per query) no longer recomputes it.
    """
    m = np.asarray(multiplier, dtype=np.int64).reshape(-1)
    s = np.asarray(shift, dtype=np.int64).reshape(-1)
    return _tiled_requant(m.tobytes(), s.tobytes(), int(rounding), int(n_pad), int(block))
