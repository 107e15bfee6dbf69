"""Loss and accuracy on int8 logits, computed as a microcontroller computes them.

Two definitions of the per-sample cross-entropy of int8 logits ``q[N, K]`` (output scale ``s``, zero
point ``zp``) with integer labels ``y[N]``:

* :func:`cross_entropy_int8` -- **float32, the default contract** (Cortex-M4F / M7 single-precision
  FPU). Per row, in this order, every operation in float32::

      m    = (float)(q_max - zp) * s                 # the row max, dequantized (s > 0: monotone)
      a_j  = (float)(q_j - zp) * s - m               # j = 0..K-1, all <= 0
      S    = ((e_0 + e_1) + e_2) + ...               # e_j = expf(a_j), summed left to right
      loss = logf(S) - a_y

  Subtracting the row max keeps every ``expf`` argument <= 0 (no overflow, ``S >= 1``, so
  ``logf(S) >= 0``). ``q - zp`` is an exact int32 and its float conversion exact (|q - zp| <= 255).
  Why float32: the M4F/M7 FPU does float32 ``*``, ``-``, ``+`` in one or a few cycles and ``expf``/
  ``logf`` in a few tens, K + 1 transcendental calls per sample are negligible next to a forward
  pass; double would be software-emulated on the M4F; and the result only feeds loss *differences*
  (about 1e-7 relative resolution is far below the smallest int8 logit change). ``expf``/``logf``
  here are the correctly rounded float32 results (computed in float64 and rounded once), which a
  good libm (e.g. Arm optimized-routines: expf <= 0.51 ULP, logf <= 0.82 ULP) matches except for
  rare 1-ULP cases. So the float loss is bit-reproducible on the host and within an ULP or so on an
  MCU; when the firmware must reproduce the host bit for bit, use the integer variant.

* :func:`cross_entropy_int8_lut` -- **integer only** (Cortex-M0/M0+/M3/M33 without FPU). Two
  256-entry int32 tables made once from ``s`` on the host (:func:`prepare_cross_entropy_lut`)::

      EXP[k] = round(2**16 * exp(-k * s))     # Q16, k = q_max - q_j in [0, 255]; EXP[0] = 65536
      GAP[k] = round(2**16 * k * s)           # Q16 nats

      S    = sum_j EXP[q_max - q_j]           # uint32, >= 65536 (K <= 65535)
      L2   = log2_q16(S)                      # integer log2 in Q16 (bit-by-bit squaring)
      loss = ((L2 - 16 * 2**16) * LN2_Q30 + 2**29) >> 30  +  GAP[q_max - q_y]     # int32, Q16 nats

  The zero point cancels (only differences ``q_max - q_j`` enter). Error against the exact real
  cross-entropy (derived in :func:`lut_error_bound`): at most ``(K/2 + 1.3) / 2**16`` nats, about
  1e-4 nats for 10 classes; the float32 version is within about 1e-6 of exact, so the two agree to
  the LUT bound plus the float bound.

:func:`accuracy_int8` is the fraction of rows whose argmax (ties: lowest index, as ``np.argmax``
and a C loop with ``>``) equals the label. :func:`mean_float32` is the float32 left-to-right mean an
MCU computes for the batch loss.

Executable definition (plain Python, every float32 operation explicit, what the C port and the golden
vectors cite): :func:`tinyzo.spec.train.cross_entropy_sample` (with ``expf`` / ``logf``) and
:func:`tinyzo.spec.train.mean_f32`, tested equal to :func:`cross_entropy_int8` and :func:`mean_float32`
bit for bit (``tests/test_spec_train.py``); ``scripts/expf_exhaustive.py`` checks that numpy's float64
``exp`` / ``log`` used here round to the same float32 as the C library's on every float32 argument of
the loss.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from tinyzo.errors import InputError

__all__ = [
    "LN2_Q30",
    "CrossEntropyLUT",
    "LossInputError",
    "accuracy_int8",
    "cross_entropy_int8",
    "cross_entropy_int8_lut",
    "float_error_bound",
    "log2_q16",
    "loss_and_accuracy",
    "lut_error_bound",
    "mean_float32",
    "prepare_cross_entropy_lut",
    "q16_to_float",
]

#: round(ln(2) * 2**30): converts a Q16 log2 to Q16 nats with a Q30 multiply
LN2_Q30 = 744261118
#: largest number of classes of the LUT path (the uint32 sum holds K * 65536)
LUT_MAX_CLASSES = 65535


class LossInputError(InputError):
    """Logits, labels, scale or zero point given to a loss/accuracy function are invalid."""


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------


def _check_logits(logits) -> np.ndarray:
    q = np.asarray(logits)
    if q.dtype != np.int8:
        raise LossInputError(f"logits must be int8 (the model's quantized output), got {q.dtype}; "
                             "no silent cast of quantized data")
    if q.ndim < 2:
        raise LossInputError(f"logits must be [N, K] (or [N, ...] flattened to K per row), got shape {q.shape}")
    q = q.reshape(q.shape[0], -1)
    if q.shape[0] < 1 or q.shape[1] < 1:
        raise LossInputError(f"logits must have at least one row and one class, got shape {q.shape}")
    return q


def _check_labels(labels, n: int, k: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.dtype.kind not in "iu":
        raise LossInputError(f"labels must be integers, got dtype {y.dtype}")
    if y.ndim != 1 or y.shape[0] != n:
        raise LossInputError(f"labels must be a 1-D array of {n} values (one per logits row), got shape {y.shape}")
    if n and (int(y.min()) < 0 or int(y.max()) >= k):
        raise LossInputError(f"labels must be in [0, {k - 1}] for {k} classes, got values in "
                             f"[{int(y.min())}, {int(y.max())}]")
    return y.astype(np.int64)


def _check_scale(scale) -> float:
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real):
        arr = np.asarray(scale)
        if arr.size == 1 and arr.dtype.kind == "f":
            scale = float(arr.reshape(-1)[0])
        else:
            raise LossInputError(f"scale must be a real number (the output tensor's scale), got {scale!r}")
    s = float(scale)
    if not (math.isfinite(s) and s > 0):
        raise LossInputError(f"scale must be finite and > 0, got {s!r}")
    return s


def _check_zero_point(zero_point) -> int:
    zp = zero_point
    if not isinstance(zp, numbers.Integral) or isinstance(zp, (bool, np.bool_)):
        arr = np.asarray(zp)
        if arr.size == 1 and arr.dtype.kind in "iu":
            zp = int(arr.reshape(-1)[0])
        else:
            raise LossInputError(f"zero_point must be an integer, got {zero_point!r}")
    zp = int(zp)
    if not -128 <= zp <= 127:
        raise LossInputError(f"zero_point must be in [-128, 127] for int8 logits, got {zp}")
    return zp


# ----------------------------------------------------------------------------------------------
# float32 contract
# ----------------------------------------------------------------------------------------------


def _expf(a: np.ndarray) -> np.ndarray:
    """Correctly rounded float32 exp (float64 exp rounded once to float32)."""
    return np.exp(a.astype(np.float64)).astype(np.float32)


def _logf(a: np.ndarray) -> np.ndarray:
    """Correctly rounded float32 log (float64 log rounded once to float32)."""
    return np.log(a.astype(np.float64)).astype(np.float32)


def cross_entropy_int8(logits, labels, scale, zero_point) -> np.ndarray:
    """Per-sample cross-entropy of int8 logits in float32, as a Cortex-M4F/M7 computes it.

    Args:
        logits: int8[N, K] (or int8[N, ...], flattened to K values per row), the model's output.
        labels: int[N], each in [0, K-1].
        scale: the output tensor's scale, a finite float > 0 (used as float32).
        zero_point: the output tensor's zero point, int in [-128, 127].

    Returns:
        float32[N] losses >= 0 in nats: ``logf(sum_j expf(a_j)) - a_y`` with
        ``a_j = (float)(q_j - zp) * s - (float)(q_max - zp) * s``, every operation float32, the sum
        left to right over j (see the module docstring for the C form and the libm note).

    Raises:
        LossInputError: non-int8 logits, bad shapes, labels out of range, bad scale/zero point.
    """
    q = _check_logits(logits)
    n, k = q.shape
    y = _check_labels(labels, n, k)
    s = np.float32(_check_scale(scale))
    zp = _check_zero_point(zero_point)
    qi = q.astype(np.int32)
    x = (qi - np.int32(zp)).astype(np.float32) * s                      # exact int -> float, one rounding
    m = (qi.max(axis=1) - np.int32(zp)).astype(np.float32) * s          # == x.max(axis=1)
    a = (x - m[:, None]).astype(np.float32)
    e = _expf(a)
    total = np.add.accumulate(e, axis=1, dtype=np.float32)[:, -1]       # sequential, left to right
    return (_logf(total) - a[np.arange(n), y]).astype(np.float32)


def float_error_bound(logits, scale, zero_point, losses=None) -> np.ndarray:
    """Bound on |cross_entropy_int8 - exact real cross-entropy| per row (float64[N]), from the op count.

    With u = 2**-24 and X = max_j |(q_j - zp) s|: each dequantization has relative error <= u, each
    ``a_j`` absolute error <= 3uX; ``expf`` adds <= 1 ULP (2u relative) and inherits the argument's
    error as a relative error; the left-to-right sum of K positive terms adds <= (K-1)u relative;
    ``logf`` adds <= 1 ULP of ln S <= ln K; the final subtraction <= u |loss|. Summed:
    ``u * (3X + 2 + 3X + (K - 1) + 2 ln K + 2 + |loss|)``; the bound returned doubles it for the
    second-order terms: ``2u * (6X + K + 2 ln K + 3 + |loss|)``.
    """
    q = _check_logits(logits)
    n, k = q.shape
    s = _check_scale(scale)
    zp = _check_zero_point(zero_point)
    xmax = np.abs((q.astype(np.float64) - zp) * s).max(axis=1)
    loss = np.zeros(n) if losses is None else np.abs(np.asarray(losses, dtype=np.float64))
    u = 2.0**-24
    return 2 * u * (6 * xmax + k + 2 * math.log(k) + 3 + loss)


# ----------------------------------------------------------------------------------------------
# integer-only contract
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrossEntropyLUT:
    """The two int32[256] tables of :func:`cross_entropy_int8_lut` for one output scale.

    ``exp_q16[k] = round(2**16 exp(-k s))`` (``exp_q16[0] = 65536``), ``gap_q16[k] = round(2**16 k s)``,
    k in [0, 255]; ``scale`` is the float they were made from. Flash cost: 2 KB.
    """

    scale: float
    exp_q16: np.ndarray
    gap_q16: np.ndarray


def prepare_cross_entropy_lut(scale) -> CrossEntropyLUT:
    """Build the LUT tables for output scale ``scale`` (host side, float64, round half up; done once).

    ``scale`` must be finite, > 0 and below 128 (so ``gap_q16[255]`` fits int32). The tables are the
    firmware's constants: the MCU never evaluates ``exp``.
    """
    s = _check_scale(scale)
    if 255 * s * 65536 >= 2**31:
        raise LossInputError(f"scale {s} is too large for the Q16 gap table (needs scale < 128)")
    k = np.arange(256, dtype=np.float64)
    exp_q16 = np.floor(65536.0 * np.exp(-k * s) + 0.5).astype(np.int32)
    gap_q16 = np.floor(65536.0 * k * s + 0.5).astype(np.int32)
    exp_q16[0] = 65536
    return CrossEntropyLUT(scale=s, exp_q16=exp_q16, gap_q16=gap_q16)


def log2_q16(x) -> np.ndarray:
    """Integer log2 in Q16 of uint32 values ``x >= 1``: int64 array of ``floor``-like ``2**16 log2(x)``.

    Integer part: the index of the leading one bit, ``e``. Fraction, 16 bits by repeated squaring
    (C-portable, one 64-bit product per bit)::

        y = x normalized to Q30 in [2**30, 2**31)      # x / 2**e
        for i in 1..16:
            y = (y * y) >> 30                           # square, truncate
            if y >= 2**31: y >>= 1; bit_i = 1           # y >= 2.0
        result = (e << 16) | bits

    Error: ``-(1 + 2**-4) * 2**-16 <= result / 2**16 - log2(x) <= 0`` (the 16-bit fraction is
    truncated, and each squaring truncates; a dense sweep in the tests finds -1.0001 * 2**-16).
    """
    x = np.asarray(x, dtype=np.int64)
    if np.any(x < 1) or np.any(x > 0xFFFFFFFF):
        raise LossInputError("log2_q16 needs integers in [1, 2**32 - 1]")
    e = np.zeros(x.shape, dtype=np.int64)
    t = x.copy()
    for sh in (16, 8, 4, 2, 1):                      # leading-bit index by binary search (CLZ on Cortex-M)
        big = t >= (np.int64(1) << sh)
        e += np.where(big, sh, 0)
        t = np.where(big, t >> sh, t)
    # normalize to Q30: y = x * 2**(30 - e), e in [0, 31]
    y = np.where(e <= 30, x << np.maximum(30 - e, 0), x >> np.maximum(e - 30, 0))
    frac = np.zeros(x.shape, dtype=np.int64)
    for i in range(16):
        y = (y * y) >> 30
        over = y >= (np.int64(1) << 31)
        y = np.where(over, y >> 1, y)
        frac |= np.where(over, np.int64(1) << (15 - i), 0)
    return (e << 16) | frac


def cross_entropy_int8_lut(logits, labels, scale=None, zero_point=0, *, lut: CrossEntropyLUT | None = None) -> np.ndarray:
    """Per-sample cross-entropy of int8 logits with integer arithmetic only: int32[N] in Q16 nats.

    Args:
        logits: int8[N, K] (or int8[N, ...]), K <= 65535.
        labels: int[N] in [0, K-1].
        scale: the output scale (used to build the tables when ``lut`` is not given).
        zero_point: the output zero point, int in [-128, 127]; it cancels (validated only).
        lut: tables from :func:`prepare_cross_entropy_lut` (build once, reuse every call).

    Returns:
        int32[N], ``loss * 2**16`` (divide by 65536, :func:`q16_to_float`, for nats). Formula in the
        module docstring; error against the exact loss <= :func:`lut_error_bound` (K).
    """
    q = _check_logits(logits)
    n, k = q.shape
    y = _check_labels(labels, n, k)
    _check_zero_point(zero_point)
    if k > LUT_MAX_CLASSES:
        raise LossInputError(f"the LUT loss supports at most {LUT_MAX_CLASSES} classes, got {k}")
    if lut is None:
        if scale is None:
            raise LossInputError("give the output scale or a prepared lut")
        lut = prepare_cross_entropy_lut(scale)
    elif scale is not None and float(scale) != lut.scale:
        raise LossInputError(f"scale {scale} does not match the lut's scale {lut.scale}")
    qi = q.astype(np.int32)
    gap = qi.max(axis=1)[:, None] - qi                                  # in [0, 255]
    total = lut.exp_q16[gap].astype(np.int64).sum(axis=1)               # uint32 range: <= K * 65536
    l2 = log2_q16(total)
    ln_q16 = ((l2 - (16 << 16)) * np.int64(LN2_Q30) + (np.int64(1) << 29)) >> 30   # >= 0: floor is fine
    loss = ln_q16 + lut.gap_q16[gap[np.arange(n), y]].astype(np.int64)
    return loss.astype(np.int32)


def lut_error_bound(num_classes: int) -> float:
    """Bound (nats) on |cross_entropy_int8_lut / 2**16 - exact real cross-entropy| for K classes.

    Terms, each in units of 2**-16 nats: table rounding, each of the K - 1 entries other than one
    ``EXP[0] = 65536`` is within 0.5 of its real value and the sum is >= 65536, so ln S moves by at
    most ``0.5 (K - 1)``; ``log2_q16`` error <= 1 + 2**-4 in log2 units, times ln 2 -> 0.74; the Q30
    constant ln 2 (<= 2**-31 relative, times log2 K <= 16) and the final rounding of the product
    <= 0.51; the gap table rounding <= 0.5. Sum: ``0.5 K + 1.3`` (rounded up).
    """
    return (0.5 * int(num_classes) + 1.3) / 65536.0


def q16_to_float(loss_q16) -> np.ndarray:
    """Q16 losses (int32) -> float32 nats, exactly (|loss| < 256 nats fits float32's 24 bits)."""
    return (np.asarray(loss_q16, dtype=np.int64).astype(np.float64) / 65536.0).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# accuracy and batch mean
# ----------------------------------------------------------------------------------------------


def accuracy_int8(logits, labels) -> float:
    """Fraction (float in [0, 1]) of rows of int8 ``logits[N, K]`` whose argmax equals ``labels[N]``.

    Ties go to the lowest class index (``np.argmax``; a C loop updating only on ``>``).
    """
    q = _check_logits(logits)
    n, k = q.shape
    y = _check_labels(labels, n, k)
    return float(np.count_nonzero(np.argmax(q, axis=1) == y)) / n


def mean_float32(values) -> np.float32:
    """Mean of float32 ``values[N]`` (N >= 1) as an MCU loop computes it: float32 sum left to right, / N."""
    v = np.asarray(values, dtype=np.float32).reshape(-1)
    if v.size == 0:
        raise LossInputError("mean of an empty array")
    return np.float32(np.add.accumulate(v, dtype=np.float32)[-1] / np.float32(v.size))


def loss_and_accuracy(model, xq, y, *, batch_size: int = 256) -> dict:
    """Accuracy and mean loss of ``model`` on int8 model inputs ``xq`` [N, ...] with labels ``y`` [N].

    The accuracy is the model's decision (argmax of its output ``model.outputs[0]``, as the device
    reports it); the loss is the one every trainer optimizes: the float32 cross-entropy of the int8
    logits :attr:`tinyzo.Model.loss_tensor` (the input of a final SOFTMAX, if any;
    :func:`tinyzo.training.loss.cross_entropy_int8`), averaged in float64 over the samples.
    ``batch_size`` bounds memory, not results. Returns ``{"accuracy", "loss", "n", "correct"}``.
    """
    xq, y = np.asarray(xq), np.asarray(y).astype(np.int64)
    if len(xq) == 0 or len(xq) != len(y):
        raise LossInputError(f"need as many labels as inputs (>= 1), got {len(xq)} inputs and {len(y)} labels")
    scale, zero_point = model.loss_quant()
    loss_t, out_t = model.loss_tensor, model.outputs[0]
    correct, loss_sum = 0, 0.0
    for s in range(0, len(xq), batch_size):
        xb, yb = xq[s : s + batch_size], y[s : s + batch_size]
        env = {model.inputs[0]: xb}
        if loss_t == out_t:
            out = logits = model.forward_from(env, 0, output=loss_t)
        else:
            _, env = model.forward_from(env, 0, intermediates=True)
            out, logits = env[out_t], env[loss_t]
        correct += int(np.count_nonzero(np.argmax(out.reshape(len(yb), -1), axis=1) == yb))
        loss_sum += float(cross_entropy_int8(logits.reshape(len(yb), -1), yb, scale, zero_point)
                          .astype(np.float64).sum())
    n = len(xq)
    return {"accuracy": correct / n, "loss": loss_sum / n, "n": n, "correct": correct}
