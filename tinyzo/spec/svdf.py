"""Pure-Python specification of TFLite Micro's integer SVDF (``micro/kernels/svdf_common.cc``,
``EvalIntegerSvdfReference<T>``), one invocation of one stream.

SVDF (singular value decomposition filter) keeps, per filter ``f``, the last ``M`` feature values in
its activation state ``S[f, 0..M-1]`` (a variable tensor, ``T`` = int8 or int16, flattened
``[F * M]``; ``F = num_filters = num_units * rank``). One invocation on the int8 input
``x[n_input]``:

1. state shift: the flattened state moves left by one element (``S[i] = S[i + 1]``); the last
   column of every filter is then overwritten by step 2, so each filter's row shifts by one;
2. feature matmul into the state, for every filter ``f``::

       acc = wrap_int32(sum_c wf[f, c] * (x[c] - input_zero_point))
       v = clamp(MBQM(acc, multiplier_1, shift_1), T_min, T_max)
       S[f, M - 1] = (T) (v + state_zero_point)

   The zero point is added *after* the clamp and the sum is converted to ``T`` by wrapping
   (two's complement), exactly as TFLM's ``*result_in_batch = zero_point + dot_prod`` stores it;
3. time weights: ``t[f] = wrap_int32(sum_j wt[f, j] * (S[f, j] - state_zero_point))``;
4. rank reduction and bias: ``o[u] = wrap_int32(bias[u] + sum_r t[u * rank + r])``;
5. requantization: ``y[u] = clamp(MBQM(o[u], multiplier_2, shift_2) + output_zero_point, -128, 127)``.

``(multiplier_1, shift_1) = QuantizeMultiplier(s_input * s_weights_feature / s_state)`` and
``(multiplier_2, shift_2) = QuantizeMultiplier(s_state * s_weights_time / s_output)``
(:func:`tinyzo.ops.svdf.svdf_multipliers`). The weights' zero points are not read (TFLM assumes 0)
and no fused activation is applied: the integer kernel only clamps to int8.
"""

from __future__ import annotations

import numpy as np

from tinyzo.spec.arith import DOUBLE_ROUNDING, multiply_by_quantized_multiplier, wrap_int32

__all__ = ["svdf_step", "wrap_to"]


def wrap_to(v: int, bits: int) -> int:
    """C's conversion of an int to a signed ``bits``-bit integer (two's complement wrap)."""
    half = 1 << (bits - 1)
    return (v + half) % (1 << bits) - half


def svdf_step(x, weights_feature, weights_time, bias, state, *, rank: int, input_zero_point: int,
              state_zero_point: int, output_zero_point: int, multiplier_1: int, shift_1: int,
              multiplier_2: int, shift_2: int, rounding: str = DOUBLE_ROUNDING):
    """One TFLM integer SVDF invocation of one stream (module docstring).

    Args:
        x: int8[n_input], the input.
        weights_feature: int8[F, n_input].
        weights_time: int8 or int16 [F, M] (``T``, the state's type).
        bias: int32[F // rank] or None (zeros).
        state: ``T``[F * M], the activation state before the call (not modified).
        rank: >= 1, dividing F.
        input_zero_point, output_zero_point: in [-128, 127]; state_zero_point: in ``T``'s range.
        multiplier_1, shift_1, multiplier_2, shift_2: ``QuantizeMultiplier`` results.
        rounding: ``"double"`` (TFLM's default) or ``"single"``.

    Returns:
        ``(y, new_state)``: int8[F // rank] and ``T``[F * M].
    """
    wf = np.asarray(weights_feature)
    wt = np.asarray(weights_time)
    n_filter, n_memory = wt.shape
    n_unit = n_filter // rank
    dtype = np.asarray(state).dtype
    bits = 8 * dtype.itemsize
    t_min, t_max = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    s = [int(v) for v in np.asarray(state).reshape(-1)]
    s = s[1:] + s[-1:]  # 1. shift left by one (the last element stays, then is overwritten)
    for f in range(n_filter):  # 2. feature matmul into each filter's newest column
        acc = wrap_int32(sum(int(wf[f, c]) * (int(x[c]) - input_zero_point) for c in range(wf.shape[1])))
        v = min(max(multiply_by_quantized_multiplier(acc, multiplier_1, shift_1, rounding), t_min), t_max)
        s[f * n_memory + n_memory - 1] = wrap_to(v + state_zero_point, bits)
    t = [wrap_int32(sum(int(wt[f, j]) * (s[f * n_memory + j] - state_zero_point) for j in range(n_memory)))
         for f in range(n_filter)]  # 3. time weights
    y = np.zeros(n_unit, dtype=np.int8)
    for u in range(n_unit):  # 4. bias and rank reduction, 5. requantization
        o = wrap_int32((0 if bias is None else int(bias[u])) + sum(t[u * rank + r] for r in range(rank)))
        v = multiply_by_quantized_multiplier(o, multiplier_2, shift_2, rounding) + output_zero_point
        y[u] = min(max(v, -128), 127)
    return y, np.array(s, dtype=dtype)
