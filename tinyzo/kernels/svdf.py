"""Jitted integer SVDF kernel (TFLite Micro ``EvalIntegerSvdfReference<T>``, T = int8 or int16).

Equal to :func:`tinyzo.spec.svdf.svdf_step` applied to every stream (property-tested). One stream
per sample: row ``b`` of the input advances row ``b`` of the state, which the kernel updates in
place (TFLM's variable tensor). Every int32 sum that may overflow in C wraps explicitly
(:func:`tinyzo.kernels.arith.wrap_int32`) and the value stored into the state wraps to ``T``, so
jitted and ``NUMBA_DISABLE_JIT=1`` runs agree. Nothing is validated here (:mod:`tinyzo.ops.svdf`
does).
"""

from collections import namedtuple

import numpy as np
from numba import njit

from tinyzo.kernels.arith import multiply_by_quantized_multiplier, wrap_int32

#: Fields of :class:`SvdfParams`, TFLM's ``OpDataSvdf`` (``multiplier_1``/``shift_1`` are its
#: ``effective_scale_1_a``/``_b``, ``multiplier_2``/``shift_2`` its ``effective_scale_2_a``/``_b``)
#: plus the rank, the state type's range (``state_min``, ``state_max``) and the rounding code.
SVDF_PARAM_FIELDS = (
    "rank", "input_zero_point", "state_zero_point", "output_zero_point",
    "multiplier_1", "shift_1", "multiplier_2", "shift_2", "state_min", "state_max", "rounding",
)  # fmt: skip

#: The SVDF kernel's parameter record: an immutable tuple of int values (a C struct passed by value).
SvdfParams = namedtuple("SvdfParams", SVDF_PARAM_FIELDS)


@njit(cache=True, nogil=True)
def svdf_s8(x, weights_feature, weights_time, bias, state, p, scratch, out):
    """Integer SVDF, one invocation of every stream (formula: :mod:`tinyzo.spec.svdf`).

    Args:
        x: int8[N, I], one input per stream.
        weights_feature: int8[F, I].
        weights_time: T[F, M], T = int8 or int16 (the state's type).
        bias: int32[F // rank].
        state: T[N, F * M], the activation state of each stream: read and updated in place.
        p: :class:`SvdfParams` (zero points in their type's range; shifts in [-31, 31], in [-31, 30]
            for single rounding; ``state_min``/``state_max`` the range of T; rounding 0 double, 1 single).
        scratch: int32[F], work array (TFLM's ``scratch_tensor``).
        out: int8[N, F // rank], written.
    """
    n, n_input = x.shape
    n_filter, n_memory = weights_time.shape
    n_unit = n_filter // p.rank
    span = np.int64(p.state_max) - np.int64(p.state_min) + np.int64(1)
    for b in range(n):
        s = state[b]
        # 1. shift the state left by one element
        for i in range(n_filter * n_memory - 1):
            s[i] = s[i + 1]
        # 2. feature matmul into the newest column of every filter
        for f in range(n_filter):
            acc = np.int64(0)
            for c in range(n_input):
                acc += np.int64(weights_feature[f, c]) * (np.int64(x[b, c]) - np.int64(p.input_zero_point))
            v = multiply_by_quantized_multiplier(wrap_int32(acc), p.multiplier_1, p.shift_1, p.rounding)
            v = min(max(v, np.int64(p.state_min)), np.int64(p.state_max)) + np.int64(p.state_zero_point)
            # C converts the sum to T by wrapping (it may leave T's range once the zero point is added)
            s[f * n_memory + n_memory - 1] = (v - np.int64(p.state_min)) % span + np.int64(p.state_min)
        # 3. time weights: one dot product per filter over its memory
        for f in range(n_filter):
            acc = np.int64(0)
            for j in range(n_memory):
                acc += np.int64(weights_time[f, j]) * (np.int64(s[f * n_memory + j]) - np.int64(p.state_zero_point))
            scratch[f] = wrap_int32(acc)
        # 4. bias and rank reduction, 5. requantization to int8
        for u in range(n_unit):
            o = np.int64(bias[u])
            for r in range(p.rank):
                o += np.int64(scratch[u * p.rank + r])
            v = multiply_by_quantized_multiplier(wrap_int32(o), p.multiplier_2, p.shift_2, p.rounding)
            v += np.int64(p.output_zero_point)
            out[b, u] = min(max(v, np.int64(-128)), np.int64(127))
