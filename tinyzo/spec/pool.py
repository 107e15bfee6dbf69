"""Pure-Python specification of the int8 pooling and reduction operators (and the int16 pools).

AVERAGE_POOL_2D, MAX_POOL_2D (TFLite Micro ``reference_integer_ops::AveragePool``
/ ``MaxPool``), MEAN (``reference_ops::QuantizedMeanOrSum``, which TFLM's
``EvalIntegerMean`` runs for every int8 MEAN), and the prepare-time helpers
they need (``ComputePaddingHeightWidth``, the folding of ``1/count`` into the
MEAN multiplier). The int16 pools (``reference_integer_ops::AveragePool`` / ``MaxPool``
int16 overloads, 16x8) are the same loops on int16: :func:`average_pool_s16`, :func:`max_pool_s16`. Python ``int`` with C semantics; the jitted kernels in
:mod:`tinyzo.kernels.pool` are property-tested against these.
"""

from __future__ import annotations

import itertools

import numpy as np

from tinyzo.spec.arith import c_div, multiply_by_quantized_multiplier, wrap_int32

__all__ = [
    "average_pool_s8",
    "average_pool_s16",
    "compute_out_size",
    "compute_padding_height_width",
    "max_pool_s8",
    "max_pool_s16",
    "mean_output_multiplier",
    "mean_s8",
]


def compute_out_size(padding: str, image_size: int, filter_size: int, stride: int, dilation: int = 1) -> int:
    """TFLite ``ComputeOutSize``: SAME -> ceil(in / stride), VALID -> ceil((in - eff_filter + 1) / stride)."""
    eff = (filter_size - 1) * dilation + 1
    if stride == 0:
        return 0
    if padding == "SAME":
        return c_div(image_size + stride - 1, stride)
    if padding == "VALID":
        return c_div(image_size + stride - eff, stride)
    return 0


def _padding_with_offset(stride: int, dilation: int, in_size: int, filter_size: int, out_size: int) -> tuple[int, int]:
    """TFLite ``ComputePaddingWithOffset``: (total // 2, total % 2) with total >= 0."""
    eff = (filter_size - 1) * dilation + 1
    total = max(0, (out_size - 1) * stride + eff - in_size)
    return total // 2, total % 2


def compute_padding_height_width(
    stride_h: int, stride_w: int, dilation_h: int, dilation_w: int, in_h: int, in_w: int, filter_h: int, filter_w: int, padding: str
) -> tuple[int, int, int, int, int, int]:
    """TFLite ``ComputePaddingHeightWidth``.

    Returns ``(out_h, out_w, pad_h, pad_w, pad_h_offset, pad_w_offset)``: the
    output size for ``padding`` ("SAME"/"VALID"), and the top/left padding
    (the extra bottom/right padding is the offset, 0 or 1).
    """
    out_w = compute_out_size(padding, in_w, filter_w, stride_w, dilation_w)
    out_h = compute_out_size(padding, in_h, filter_h, stride_h, dilation_h)
    pad_h, off_h = _padding_with_offset(stride_h, dilation_h, in_h, filter_h, out_h)
    pad_w, off_w = _padding_with_offset(stride_w, dilation_w, in_w, filter_w, out_w)
    return out_h, out_w, pad_h, pad_w, off_h, off_w


def _window(out_y, out_x, stride_h, stride_w, pad_h, pad_w, filter_h, filter_w, in_h, in_w):
    """The valid input rows/columns of one pooling window (TFLM's clamped filter bounds)."""
    y0 = out_y * stride_h - pad_h
    x0 = out_x * stride_w - pad_w
    ys = [y0 + fy for fy in range(max(0, -y0), min(filter_h, in_h - y0))]
    xs = [x0 + fx for fx in range(max(0, -x0), min(filter_w, in_w - x0))]
    return ys, xs


def average_pool_s8(x, out_h, out_w, stride_h, stride_w, filter_h, filter_w, pad_h, pad_w, act_min, act_max) -> np.ndarray:
    """TFLM int8 AVERAGE_POOL_2D (``reference_integer_ops::AveragePool``).

    For each output pixel and channel: the int32 sum of the input values in
    the window clipped to the image (padding is not counted), ``count`` the
    number of those values, ``avg = (sum + count/2) / count`` if ``sum > 0``
    else ``(sum - count/2) / count`` (C truncating division, i.e. rounding
    half away from zero), clamped to ``[act_min, act_max]``.

    ``x``: int8[N, H, W, C]; returns int8[N, out_h, out_w, C]. A window with
    no valid element makes TFLM fail; callers must rule it out.
    """
    return _average_pool(x, out_h, out_w, stride_h, stride_w, filter_h, filter_w, pad_h, pad_w, act_min, act_max,
                         np.int8)


def average_pool_s16(x, out_h, out_w, stride_h, stride_w, filter_h, filter_w, pad_h, pad_w, act_min,
                     act_max) -> np.ndarray:
    """TFLM int16 AVERAGE_POOL_2D: :func:`average_pool_s8` on int16[N, H, W, C] (int32 sum: at most 65535
    window elements), returns int16[N, out_h, out_w, C]."""
    return _average_pool(x, out_h, out_w, stride_h, stride_w, filter_h, filter_w, pad_h, pad_w, act_min, act_max,
                         np.int16)


def _average_pool(x, out_h, out_w, stride_h, stride_w, filter_h, filter_w, pad_h, pad_w, act_min, act_max, dtype):
    n, in_h, in_w, ch = x.shape
    out = np.zeros((n, out_h, out_w, ch), dtype=dtype)
    for b, oy, ox, c in itertools.product(range(n), range(out_h), range(out_w), range(ch)):
        ys, xs = _window(oy, ox, stride_h, stride_w, pad_h, pad_w, filter_h, filter_w, in_h, in_w)
        vals = [int(x[b, y, xx, c]) for y in ys for xx in xs]
        acc, count = sum(vals), len(vals)
        if count == 0:
            raise ValueError("empty pooling window")
        acc = c_div(acc + count // 2, count) if acc > 0 else c_div(acc - count // 2, count)
        out[b, oy, ox, c] = min(act_max, max(act_min, acc))
    return out


def max_pool_s8(x, out_h, out_w, stride_h, stride_w, filter_h, filter_w, pad_h, pad_w, act_min, act_max) -> np.ndarray:
    """TFLM int8 MAX_POOL_2D (``reference_integer_ops::MaxPool``).

    The maximum over the window clipped to the image (starting from -128, so
    an empty window gives -128), clamped to ``[act_min, act_max]``.
    ``x``: int8[N, H, W, C]; returns int8[N, out_h, out_w, C].
    """
    return _max_pool(x, out_h, out_w, stride_h, stride_w, filter_h, filter_w, pad_h, pad_w, act_min, act_max,
                     np.int8)


def max_pool_s16(x, out_h, out_w, stride_h, stride_w, filter_h, filter_w, pad_h, pad_w, act_min, act_max) -> np.ndarray:
    """TFLM int16 MAX_POOL_2D: the maximum starting from -32768 (int16's lowest), clamped; int16 in and out."""
    return _max_pool(x, out_h, out_w, stride_h, stride_w, filter_h, filter_w, pad_h, pad_w, act_min, act_max,
                     np.int16)


def _max_pool(x, out_h, out_w, stride_h, stride_w, filter_h, filter_w, pad_h, pad_w, act_min, act_max, dtype):
    n, in_h, in_w, ch = x.shape
    lowest = int(np.iinfo(dtype).min)
    out = np.zeros((n, out_h, out_w, ch), dtype=dtype)
    for b, oy, ox, c in itertools.product(range(n), range(out_h), range(out_w), range(ch)):
        ys, xs = _window(oy, ox, stride_h, stride_w, pad_h, pad_w, filter_h, filter_w, in_h, in_w)
        m = max([lowest] + [int(x[b, y, xx, c]) for y in ys for xx in xs])
        out[b, oy, ox, c] = min(act_max, max(act_min, m))
    return out


def mean_output_multiplier(multiplier: int, shift: int, num_elements: int) -> tuple[int, int]:
    """Fold ``1 / num_elements`` into a requantization multiplier, as TFLM's ``QuantizedMeanOrSum``.

    ``s = min(floor(log2(n)), 32, 31 + shift)``; returns
    ``((multiplier << s) / n, shift - s)`` (int64 truncating division; the
    result fits int32). ``multiplier``/``shift`` come from
    ``QuantizeMultiplier(s_in / s_out)``; ``num_elements >= 1``.
    """
    if num_elements < 1:
        raise ValueError(f"num_elements must be >= 1, got {num_elements}")
    s = num_elements.bit_length() - 1  # 63 - CountLeadingZeros(n)
    s = min(s, 32)
    s = min(s, 31 + shift)
    return c_div(multiplier << s, num_elements), shift - s


def mean_s8(x, axes, keep_dims, input_zero_point, multiplier, shift, output_zero_point, rounding="double") -> np.ndarray:
    """TFLM int8 MEAN (``reference_ops::QuantizedMeanOrSum`` with ``compute_sum=false``).

    Every input element is added (int32, wrapping) into the output element
    its index maps to with the reduced ``axes`` dropped; then, with
    ``n = prod(shape[axes])`` and ``(m, s) = mean_output_multiplier(multiplier, shift, n)``:
    ``out = clamp(MBQM(int32(sum - input_zp * n), m, s) + output_zp, -128, 127)``.

    ``x``: int8 array; ``axes``: distinct non-negative axes; ``multiplier``/
    ``shift`` = ``QuantizeMultiplier(s_in / s_out)`` (the unfolded values).
    Returns int8 with the reduced dimensions removed (or kept as 1).
    """
    x = np.asarray(x)
    axes = sorted({int(a) for a in axes})
    out_full = tuple(1 if k in axes else d for k, d in enumerate(x.shape))
    sums = {}
    for idx in itertools.product(*(range(d) for d in x.shape)):
        o = tuple(0 if k in axes else i for k, i in enumerate(idx))
        sums[o] = wrap_int32(sums.get(o, 0) + int(x[idx]))
    n = 1
    for a in axes:
        n *= x.shape[a]
    m, s = mean_output_multiplier(multiplier, shift, n)
    out = np.zeros(out_full, dtype=np.int8)
    for o, total in sums.items():
        v = multiply_by_quantized_multiplier(wrap_int32(total - input_zero_point * n), m, s, rounding) + output_zero_point
        out[o] = min(127, max(-128, v))
    if not keep_dims:
        out = out.reshape(tuple(d for k, d in enumerate(x.shape) if k not in axes))
    return out
