"""Post-training quantization: a float :class:`tinyzo.nn.Net` + params -> a TFLite-spec int8 :class:`tinyzo.graph.Model`.

The recipe is the full-integer TFLite converter's (``optimizations=[DEFAULT]``, a representative dataset,
``inference_input_type = inference_output_type = int8``):

1. :func:`fold_batchnorm`: batch norm (eval mode) is folded into the preceding conv/depthwise weights
   and a bias.
2. :func:`calibrate`: every layer's float output range ``(lo, hi)`` over a calibration set, from
   :func:`tinyzo.fp.forward.activations` (min/max, or a percentile that ignores outliers).
3. :func:`quantize_net`: per-channel symmetric int8 weights, int32 biases, asymmetric int8 activations,
   fused ReLU/ReLU6, one TFLite operator per layer. The result runs in tinyzo and, written with
   :func:`tinyzo.io.write_tflite`, in TFLite Micro, with exactly equal outputs.

:func:`ptq` does the three in one call. Formulas, the operator mapping and the known differences from
the TFLite converter: docs/quantization.md.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from tinyzo.errors import TinyzoError
from tinyzo.fp.forward import BN_EPS, activations
from tinyzo.graph import Model, Operator, Tensor
from tinyzo.nn.net import Net
from tinyzo.quant import DOUBLE_ROUNDING, QuantParams, quantize

__all__ = [
    "DEFAULT_INPUT_QUANT",
    "PTQError",
    "activation_quant",
    "calibrate",
    "fold_batchnorm",
    "ptq",
    "quantize_bias",
    "quantize_input",
    "quantize_net",
    "quantize_weights",
]

INT32_MAX = 2**31 - 1
#: A bias must fit in half the int32 range (TFLite's ``AdjustWeightsForBiasScale`` headroom): the weight
#: scale of a channel is raised until ``|b| / (s_in * s_w) <= INT32_MAX / 2``.
BIAS_LIMIT = INT32_MAX / 2
#: Half-range given to an all-zero weight channel (whose TFLite scale would be 0, which no
#: requantization multiplier can represent): any positive value quantizes the zeros to 0.
ZERO_CHANNEL_HALF_RANGE = 1e-6
#: Default input quantization: images in [0, 1] -> scale 1/255, zero point -128 (q = pixel - 128).
DEFAULT_INPUT_QUANT = QuantParams([1.0 / 255.0], [-128])

_FUSED = {"none": "NONE", "relu": "RELU", "relu6": "RELU6"}
#: layer kinds whose output gets its own calibrated quantization
_OWN_RANGE = ("conv", "depthwise", "fc", "add", "gap")


class PTQError(TinyzoError):
    """Post-training quantization cannot proceed: bad ranges, parameters, calibration data or an unsupported layer."""


# --------------------------------------------------------------------------------------------------
# rounding and scheme helpers


def _round_half_away(x) -> np.ndarray:
    """C ``std::round`` on float64: nearest integer, ties away from zero (exact: ``x - trunc(x)`` is exact)."""
    x = np.asarray(x, dtype=np.float64)
    t = np.trunc(x)
    return t + np.where(np.abs(x - t) >= 0.5, np.sign(x), 0.0)


def _as_range(name: str, r) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in r)
    except (TypeError, ValueError):
        raise PTQError(f"range of {name!r} must be a pair (lo, hi) of floats, got {r!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise PTQError(f"range of {name!r} must be finite with lo <= hi, got ({lo}, {hi}); "
                       "check the calibration data for NaN/inf")
    return lo, hi


def _activation_quant64(lo: float, hi: float) -> tuple[float, int]:
    """(scale as float64, zero point) of an asymmetric int8 activation with range (lo, hi)."""
    # TFLite quantizes float32 statistics; the range always contains 0 so that 0 is exact.
    rmin = min(float(np.float32(lo)), 0.0)
    rmax = max(float(np.float32(hi)), 0.0)
    qmin, qmax = -128.0, 127.0
    if abs(rmax - rmin) < np.finfo(np.float64).eps:
        # an all-zero tensor: MLIR's quantizer uses scale 1 and zero point qmin
        return 1.0, -128
    scale = (rmax - rmin) / (qmax - qmin)
    # MLIR ``fakeQuantAttrsToType``: solve the zero point from whichever end adds less rounding error
    zp_min, err_min = qmin - rmin / scale, abs(qmin) + abs(rmin / scale)
    zp_max, err_max = qmax - rmax / scale, abs(qmax) + abs(rmax / scale)
    zp = zp_min if err_min < err_max else zp_max
    if zp < qmin:
        nudged = -128
    elif zp > qmax:
        nudged = 127
    else:
        nudged = int(_round_half_away(zp))
    return scale, nudged


def activation_quant(lo: float, hi: float) -> QuantParams:
    """TFLite's asymmetric int8 quantization of an activation whose float range is ``(lo, hi)``.

    The range is widened to contain 0: ``rmin = min(lo, 0)``, ``rmax = max(hi, 0)``;
    ``scale = (rmax - rmin) / 255``; ``zero_point = clamp(round(-128 - rmin / scale), -128, 127)``
    (round half away from zero; the zero point is "nudged" to an integer, the scale is kept; like
    MLIR's quantizer the zero point is solved from whichever end, ``-128 - rmin/scale`` or
    ``127 - rmax/scale``, carries less float64 rounding error; the two agree except at exact ties).
    An all-zero range gives scale 1.0 and zero point -128. Returns per-tensor
    :class:`~tinyzo.quant.QuantParams` (float32 scale, as stored in a .tflite file).
    """
    lo, hi = _as_range("activation", (lo, hi))
    s, zp = _activation_quant64(lo, hi)
    return QuantParams([s], [zp])


def _weight_scales64(w: np.ndarray, axis, bias, input_scale) -> np.ndarray:
    """float64 symmetric scales: per channel along ``axis`` (or per tensor for axis None)."""
    w64 = np.abs(w.astype(np.float64))
    if axis is None:
        half = np.array([w64.max() if w64.size else 0.0])
    else:
        other = tuple(k for k in range(w.ndim) if k != axis)
        half = w64.max(axis=other)
    half = np.where(half > 0, half, ZERO_CHANNEL_HALF_RANGE)
    scales = half / 127.0
    if bias is not None and input_scale is not None:
        b = np.abs(np.asarray(bias, dtype=np.float64)).reshape(-1)
        if axis is not None and b.size != scales.size:
            raise PTQError(f"bias has {b.size} values for {scales.size} weight channels")
        if not float(input_scale) > 0:
            raise PTQError(f"input scale must be positive, got {input_scale}")
        need = (b.max(keepdims=True) if axis is None else b) / (float(input_scale) * BIAS_LIMIT)
        scales = np.maximum(scales, need)
    return scales


def quantize_weights(w, axis=None, bias=None, input_scale=None) -> tuple[np.ndarray, QuantParams]:
    """Symmetric int8 weights as TFLite's converter quantizes them.

    Args:
        w: float32 weights: conv OHWI (``axis=0``), depthwise 1HWC (``axis=3``), fc [O, K] (``axis=None``).
        axis: the per-channel axis, or None for one scale for the whole tensor.
        bias: float32[O] bias of the layer (optional) and ``input_scale`` (float, the input
            activation's scale): a channel whose bias would not fit in ``INT32_MAX / 2`` steps of
            ``input_scale * weight_scale`` gets a larger weight scale (TFLite's
            ``AdjustWeightsForBiasScale``).

    ``scale_c = max|w_c| / 127`` (an all-zero channel uses ``ZERO_CHANNEL_HALF_RANGE / 127``), then
    ``q = clamp(round(w / scale_c), -127, 127)`` in float64, ties away from zero. Returns
    ``(int8 array of w's shape, QuantParams with float32 scales, zero points 0, axis)``.
    """
    q, s64 = _quantize_weights64(w, axis, bias, input_scale)
    return q, QuantParams(s64, np.zeros(s64.size, np.int64), 0 if axis is None else axis)


def _quantize_weights64(w, axis, bias, input_scale) -> tuple[np.ndarray, np.ndarray]:
    """(int8 weights, float64 scales): :func:`quantize_weights` before the scales are stored as float32."""
    w = np.asarray(w, dtype=np.float32)
    if not np.all(np.isfinite(w)):
        raise PTQError("weights contain NaN or infinity; the float model is broken (check the training run)")
    if axis is not None and not 0 <= axis < w.ndim:
        raise PTQError(f"weight axis {axis} is out of range for a {w.ndim}-D tensor")
    s64 = _weight_scales64(w, axis, bias, input_scale)
    shape = [1] * w.ndim
    if axis is not None:
        shape[axis] = -1
    q = np.clip(_round_half_away(w.astype(np.float64) / s64.reshape(shape)), -127, 127).astype(np.int8)
    return q, s64


def quantize_bias(b, input_scale, weight_scales) -> tuple[np.ndarray, QuantParams]:
    """int32 bias: ``q = clamp(round(b / (s_in * s_w[c])), -INT32_MAX, INT32_MAX)``, scale ``s_in * s_w``, zero point 0.

    ``b`` float32[O]; ``input_scale`` a float; ``weight_scales`` float[O] or float[1] (per tensor).
    The products are formed in float64 from the scales given (pass the float64 scales the converter
    used to keep TFLite's integers); the stored scale is their float32 rounding.
    """
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(b)):
        raise PTQError("bias contains NaN or infinity; the float model is broken (check the training run)")
    ws = np.asarray(weight_scales, dtype=np.float64).reshape(-1)
    if ws.size not in (1, b.size):
        raise PTQError(f"{ws.size} weight scales for a bias of {b.size} values (need 1 or {b.size})")
    prod = float(input_scale) * ws
    if not np.all(prod > 0):
        raise PTQError(f"bias scale must be positive, got input scale {input_scale} and weight scales {ws}")
    q = np.clip(_round_half_away(b / prod), -INT32_MAX, INT32_MAX).astype(np.int32)
    return q, QuantParams(prod, np.zeros(prod.size, np.int64), 0)


# --------------------------------------------------------------------------------------------------
# batch-norm folding


def _bn_eps(eps):
    if eps is not None:
        return float(eps)

    return float(BN_EPS)


def fold_batchnorm(net: Net, params: dict, eps: float | None = None) -> tuple[Net, dict]:
    """Fold eval-mode batch norm into the preceding conv/depthwise weights and a bias.

    ``f = gamma / sqrt(var + eps)`` per output channel; ``w' = w * f`` (conv OHWI: along axis 0,
    depthwise 1HWC: along axis 3); ``b' = beta - mean * f``. Computed in float64, stored float32,
    so the eval-mode float outputs agree to float32 rounding.

    Args:
        net: a :class:`tinyzo.nn.Net`; layers with ``bn`` must be conv or depthwise.
        params: ``{layer: {"w", "gamma", "beta", "mean", "var"} | {"w", "b"}}`` float32 arrays.
        eps: the batch-norm epsilon; None uses the float executor's (``tinyzo.fp.forward.BN_EPS``),
            which must match the one the model was trained with.

    Returns:
        ``(net2, params2)``: a new Net whose batch-norm layers have ``bn=False, bias=True`` and new
        parameters (``{"w", "b"}`` for those layers; other layers' arrays are shared, not copied).
    """
    _check_params(net, params)
    eps = _bn_eps(eps)
    layers, new_params = [], {}
    for lay in net.layers:
        p = params.get(lay.name)
        if not lay.bn:
            layers.append(replace(lay))
            if p is not None:
                new_params[lay.name] = dict(p)
            continue
        gamma, beta, mean, var = (np.asarray(p[k], dtype=np.float64) for k in ("gamma", "beta", "mean", "var"))
        if np.any(var + eps <= 0) or not np.all(np.isfinite(var)):
            raise PTQError(f"layer {lay.name!r}: batch-norm variance + eps must be positive and finite")
        f = gamma / np.sqrt(var + eps)
        shape = (-1, 1, 1, 1) if lay.kind == "conv" else (1, 1, 1, -1)
        w = (np.asarray(p["w"], dtype=np.float64) * f.reshape(shape)).astype(np.float32)
        b = (beta - mean * f).astype(np.float32)
        new_params[lay.name] = {"w": w, "b": b}
        layers.append(replace(lay, bn=False, bias=True))
    return Net(net.name, net.input_shape, layers, net.num_classes), new_params


def _check_params(net, params) -> None:
    if not isinstance(net, Net):
        raise PTQError(f"net must be a tinyzo.nn.Net, got {type(net).__name__}")
    if not isinstance(params, dict):
        raise PTQError(f"params must be a dict {{layer name: {{array name: array}}}}, got {type(params).__name__}")
    for lay in net.layers:
        if lay.bn and lay.kind not in ("conv", "depthwise"):
            raise PTQError(f"layer {lay.name!r}: batch norm after a {lay.kind} layer cannot be folded "
                           "(only conv and depthwise layers may have bn=True)")
        if not lay.has_weights:
            continue
        p = params.get(lay.name)
        if not isinstance(p, dict):
            raise PTQError(f"params has no entry for layer {lay.name!r}; create them with tinyzo.nn.init_params(net)")
        need = ["w"]
        if lay.bn:
            need += ["gamma", "beta", "mean", "var"]
        elif lay.bias:
            need += ["b"]
        for k in need:
            if k not in p:
                raise PTQError(f"params[{lay.name!r}] has no {k!r}")
        if tuple(np.shape(p["w"])) != lay.weight_shape():
            raise PTQError(f"params[{lay.name!r}]['w'] has shape {np.shape(p['w'])}, the layer needs {lay.weight_shape()}")
        for k in need[1:]:
            if np.shape(p[k]) != (lay.out_channels,):
                raise PTQError(f"params[{lay.name!r}][{k!r}] has shape {np.shape(p[k])}, the layer needs ({lay.out_channels},)")


# --------------------------------------------------------------------------------------------------
# calibration


class _RangeTracker:
    """Streaming (lo, hi) of all values seen: exact min/max, or exact numpy-style linear percentiles.

    For a percentile only the values that can still reach the interpolation points are kept: the
    ``n - floor(p/100 * (n-1))`` largest and ``floor((1 - p/100) * (n-1)) + 2`` smallest of the
    ``n`` values announced up front.
    """

    def __init__(self, n_total: int, method: str, pct: float):
        self.n, self.method, self.seen = int(n_total), method, 0
        self.lo, self.hi = math.inf, -math.inf
        if method == "percentile":
            # numpy's virtual index for method="linear": (n - 1) * q, q = percentile / 100
            ih = (self.n - 1) * (pct / 100.0)
            il = (self.n - 1) * ((100.0 - pct) / 100.0)
            self.f_hi, self.t_hi = math.floor(ih), ih - math.floor(ih)
            self.f_lo, self.t_lo = math.floor(il), il - math.floor(il)
            self.k_hi = self.n - self.f_hi
            self.k_lo = min(self.n, self.f_lo + 2)
            self.top = np.empty(0, np.float32)
            self.bottom = np.empty(0, np.float32)

    def update(self, a) -> None:
        a = np.asarray(a, dtype=np.float32).reshape(-1)
        if a.size == 0:
            return
        if not np.all(np.isfinite(a)):
            raise PTQError("calibration produced NaN or infinite activations; check the input data and the float model")
        self.seen += a.size
        if self.method == "minmax":
            self.lo = min(self.lo, float(a.min()))
            self.hi = max(self.hi, float(a.max()))
            return
        top = np.concatenate([self.top, a])
        if top.size > self.k_hi:
            top = np.partition(top, top.size - self.k_hi)[top.size - self.k_hi:]
        bottom = np.concatenate([self.bottom, a])
        if bottom.size > self.k_lo:
            bottom = np.partition(bottom, self.k_lo - 1)[: self.k_lo]
        self.top, self.bottom = top, bottom

    @staticmethod
    def _lerp(a: float, b: float, t: float) -> float:
        # numpy's linear interpolation (np.percentile, method="linear")
        d = b - a
        return b - d * (1.0 - t) if t >= 0.5 else a + d * t

    def result(self) -> tuple[float, float]:
        if self.seen != self.n:
            raise PTQError(f"internal: calibration saw {self.seen} values, expected {self.n}")
        if self.method == "minmax":
            return self.lo, self.hi
        top = np.sort(self.top).astype(np.float64)
        bottom = np.sort(self.bottom).astype(np.float64)
        hi = self._lerp(top[0], top[min(1, top.size - 1)], self.t_hi)
        lo = self._lerp(bottom[self.f_lo], bottom[min(self.f_lo + 1, bottom.size - 1)], self.t_lo)
        return float(lo), float(hi)


def _check_x(net, x, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise PTQError(f"{what} must be float images (float32 NHWC, pixels in [0, 1]), got dtype {x.dtype}; "
                       "convert with x.astype(np.float32) / 255")
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(net.input_shape):
        raise PTQError(f"{what} must have shape (N, {', '.join(map(str, net.input_shape))}), got {x.shape}")
    if x.shape[0] == 0:
        raise PTQError(f"{what} is empty; calibration needs at least one sample (a few hundred is typical)")
    if not np.all(np.isfinite(x)):
        raise PTQError(f"{what} contains NaN or infinite values")
    return x


def calibrate(net: Net, params: dict, x, method: str = "minmax", percentile: float = 99.99,
              batch_size: int = 256) -> dict:
    """Float output range of every layer (and of the input) over a calibration set.

    Args:
        net, params: the float model (batch norm folded or not: eval mode gives the same outputs).
        x: float32[N, H, W, C] calibration images, N >= 1 (typically a few hundred training images).
        method: ``"minmax"`` (TFLite's calibrator: the smallest and largest value seen) or
            ``"percentile"``: ``lo``/``hi`` are the ``100 - percentile`` / ``percentile`` percentiles
            of all values of the tensor over the set (numpy's linear interpolation, computed exactly
            while streaming), which clips rare outliers.
        percentile: in [50, 100]; used by ``"percentile"`` only (100 gives min/max).
        batch_size: samples per float forward pass (memory bound).

    Returns:
        ``{"input": (lo, hi), layer name: (lo, hi), ...}`` Python floats, lo <= hi, for every layer in
        ``net.layers`` order (layer outputs after batch norm and activation).
    """
    if method not in ("minmax", "percentile"):
        raise PTQError(f"method must be 'minmax' or 'percentile', got {method!r}")
    pct = float(percentile)
    if not 50.0 <= pct <= 100.0:
        raise PTQError(f"percentile must be in [50, 100] (e.g. 99.99), got {percentile}")
    if int(batch_size) < 1:
        raise PTQError(f"batch_size must be >= 1, got {batch_size}")
    x = _check_x(net, x, "calibration data")
    n = x.shape[0]
    trackers = {"input": _RangeTracker(x.size, method, pct)}
    for lay in net.layers:
        trackers[lay.name] = _RangeTracker(n * int(np.prod(lay.out_shape)), method, pct)
    bs = int(batch_size)
    for s in range(0, n, bs):
        xs = x[s: s + bs]
        trackers["input"].update(xs)
        acts = activations(net, params, xs, batch_size=bs)
        for lay in net.layers:
            trackers[lay.name].update(acts[lay.name])
    return {k: t.result() for k, t in trackers.items()}


# --------------------------------------------------------------------------------------------------
# the int8 graph


def _input_quant(input_quant, ranges) -> tuple[float, int]:
    """(scale float64, zero point) of the model input."""
    if input_quant is None:
        return 1.0 / 255.0, -128
    if isinstance(input_quant, str):
        if input_quant != "calibrated":
            raise PTQError(f"input_quant must be None, 'calibrated', a QuantParams or (scale, zero_point), got {input_quant!r}")
        if "input" not in ranges:
            raise PTQError("input_quant='calibrated' needs ranges['input'] (calibrate() provides it)")
        return _activation_quant64(*_as_range("input", ranges["input"]))
    if isinstance(input_quant, QuantParams):
        if input_quant.per_channel:
            raise PTQError("input_quant must be per tensor (one scale, one zero point)")
        scale, zp = float(input_quant.scale[0]), int(input_quant.zero_point[0])
    else:
        try:
            scale, zp = float(input_quant[0]), int(input_quant[1])
        except (TypeError, ValueError, IndexError):
            raise PTQError(f"input_quant must be None, 'calibrated', a QuantParams or (scale, zero_point), got {input_quant!r}") from None
    if not (scale > 0 and math.isfinite(scale)) or not -128 <= zp <= 127:
        raise PTQError(f"input quantization needs scale > 0 and zero point in [-128, 127], got ({scale}, {zp})")
    return scale, zp


class _GraphBuilder:
    def __init__(self):
        self.tensors, self.ops = [], []
        self.index = {}   # activation name -> tensor index
        self.q64 = {}     # activation name -> (float64 scale, zero point) used for the integers

    def tensor(self, name, shape, dtype, quant=None, data=None) -> int:
        self.tensors.append(Tensor(name, shape, dtype, quant, data))
        return len(self.tensors) - 1

    def activation(self, name, shape, q64) -> int:
        idx = self.tensor(name, shape, np.int8, QuantParams([q64[0]], [q64[1]]))
        self.index[name], self.q64[name] = idx, q64
        return idx

    def op(self, opcode, inputs, outputs, options=None) -> None:
        self.ops.append(Operator(opcode, inputs, outputs, options or {}))


def quantize_net(net: Net, params: dict, ranges: dict, *, input_quant=None, softmax: bool = False,
                 name: str | None = None, rounding: str = DOUBLE_ROUNDING) -> Model:
    """Build the int8 TFLite-spec model of a float net from calibrated ranges.

    Args:
        net: a :class:`tinyzo.nn.Net` without ``upsample`` layers. Layers that still have batch
            norm are folded first (:func:`fold_batchnorm` with the float executor's epsilon).
        params: the float parameters (:mod:`tinyzo.nn.params` layouts).
        ranges: ``{layer name: (lo, hi)}`` float output ranges (:func:`calibrate`) for every conv,
            depthwise, fc, add and gap layer; pools and flatten reuse their input's quantization;
            ``"input"`` is read only with ``input_quant="calibrated"``.
        input_quant: the int8 input's quantization: None (images in [0, 1]: scale 1/255, zero point
            -128, see :func:`quantize_input`), ``"calibrated"`` (from ``ranges["input"]``), a
            per-tensor :class:`~tinyzo.quant.QuantParams` or a pair ``(scale, zero_point)``.
        softmax: append a SOFTMAX (output scale 1/256, zero point -128) after the last layer.
        name: the model's name (default ``net.name``).
        rounding: requantization rounding of the tinyzo Model (``"double"`` is TFLM's).

    Returns:
        A :class:`tinyzo.graph.Model` with int8 input ``"input"`` (1, H, W, C) and int8 output
        (the last layer's, or ``"softmax"``). Activation tensors are named after the layers; weights
        and biases ``"<layer>/weights"``, ``"<layer>/bias"``. Operators: conv -> CONV_2D, depthwise ->
        DEPTHWISE_CONV_2D, fc -> FULLY_CONNECTED, add -> ADD (activations fused), avgpool ->
        AVERAGE_POOL_2D, maxpool -> MAX_POOL_2D, gap -> MEAN over axes [1, 2], flatten -> RESHAPE.

    Raises:
        PTQError: a missing/invalid range or parameter, an ``upsample`` layer, an activation after
            ``gap``/``flatten``.
    """
    if not isinstance(net, Net):
        raise PTQError(f"net must be a tinyzo.nn.Net, got {type(net).__name__}")
    for lay in net.layers:
        if lay.kind == "upsample":
            raise PTQError(f"layer {lay.name!r} is an upsample layer, which has no int8 operator here; build the "
                           "net for the target resolution and upsample the images in the data pipeline instead "
                           "(tinyzo.data.fit_to_model)")
        if lay.kind in ("gap", "flatten") and lay.activation != "none":
            raise PTQError(f"layer {lay.name!r}: a {lay.kind} layer cannot carry an activation "
                           f"({lay.activation}) in the int8 graph; put it on the layer before")
    if any(lay.bn for lay in net.layers):
        net, params = fold_batchnorm(net, params)
    _check_params(net, params)
    if not isinstance(ranges, dict):
        raise PTQError(f"ranges must be a dict {{layer name: (lo, hi)}}, got {type(ranges).__name__}")
    missing = [lay.name for lay in net.layers if lay.kind in _OWN_RANGE and lay.name not in ranges]
    if missing:
        raise PTQError(f"ranges has no entry for layer(s) {', '.join(map(repr, missing))}; "
                       "compute them with tinyzo.fp.ptq.calibrate(net, params, x)")
    g = _GraphBuilder()
    x_idx = g.activation("input", (1,) + tuple(net.input_shape), _input_quant(input_quant, ranges))
    for lay in net.layers:
        out_shape = (1,) + tuple(lay.out_shape)
        src = lay.inputs[0]
        s_in = g.q64[src][0]
        kind = lay.kind
        if kind in ("conv", "depthwise", "fc"):
            p = params[lay.name]
            w = np.asarray(p["w"], dtype=np.float32)
            b = np.asarray(p["b"], dtype=np.float32) if lay.bias else np.zeros(lay.out_channels, np.float32)
            axis = {"conv": 0, "depthwise": 3, "fc": None}[kind]
            wq, s_w64 = _quantize_weights64(w, axis, b, s_in)
            wquant = QuantParams(s_w64, np.zeros(s_w64.size, np.int64), 0 if axis is None else axis)
            bq, bquant = quantize_bias(b, s_in, s_w64)
            w_idx = g.tensor(f"{lay.name}/weights", w.shape, np.int8, wquant, wq)
            b_idx = g.tensor(f"{lay.name}/bias", (lay.out_channels,), np.int32, bquant, bq)
            y = g.activation(lay.name, out_shape, _activation_quant64(*_as_range(lay.name, ranges[lay.name])))
            opts = {"fused_activation_function": _FUSED[lay.activation]}
            if kind == "fc":
                opts.update(weights_format="DEFAULT", keep_num_dims=False)
                g.op("FULLY_CONNECTED", (g.index[src], w_idx, b_idx), (y,), opts)
            else:
                opts.update(padding=lay.padding, stride_h=lay.stride[0], stride_w=lay.stride[1],
                            dilation_h_factor=lay.dilation[0], dilation_w_factor=lay.dilation[1])
                if kind == "depthwise":
                    opts["depth_multiplier"] = lay.depth_multiplier
                g.op("CONV_2D" if kind == "conv" else "DEPTHWISE_CONV_2D", (g.index[src], w_idx, b_idx), (y,), opts)
        elif kind == "add":
            y = g.activation(lay.name, out_shape, _activation_quant64(*_as_range(lay.name, ranges[lay.name])))
            g.op("ADD", (g.index[lay.inputs[0]], g.index[lay.inputs[1]]), (y,),
                 {"fused_activation_function": _FUSED[lay.activation]})
        elif kind in ("avgpool", "maxpool"):
            # TFLM requires the pool's output quantization to equal its input's
            y = g.activation(lay.name, out_shape, g.q64[src])
            g.op("AVERAGE_POOL_2D" if kind == "avgpool" else "MAX_POOL_2D", (g.index[src],), (y,),
                 {"padding": lay.padding, "stride_h": lay.stride[0], "stride_w": lay.stride[1],
                  "filter_height": lay.kernel[0], "filter_width": lay.kernel[1],
                  "fused_activation_function": _FUSED[lay.activation]})
        elif kind == "gap":
            axes = g.tensor(f"{lay.name}/axes", (2,), np.int32, None, np.array([1, 2], np.int32))
            y = g.activation(lay.name, out_shape, _activation_quant64(*_as_range(lay.name, ranges[lay.name])))
            g.op("MEAN", (g.index[src], axes), (y,), {"keep_dims": False})
        elif kind == "flatten":
            shp = g.tensor(f"{lay.name}/shape", (2,), np.int32, None, np.array([1, -1], np.int32))
            y = g.activation(lay.name, out_shape, g.q64[src])
            g.op("RESHAPE", (g.index[src], shp), (y,), {"new_shape": [1, -1]})
        else:  # pragma: no cover - Layer validates kinds
            raise PTQError(f"layer {lay.name!r}: kind {kind!r} cannot be quantized")
    out = g.index[net.layers[-1].name]
    if softmax:
        sm_name = "softmax" if "softmax" not in g.index else f"{net.layers[-1].name}/softmax"
        sm = g.activation(sm_name, g.tensors[out].shape, (1.0 / 256.0, -128))
        g.op("SOFTMAX", (out,), (sm,), {"beta": 1.0})
        out = sm
    return Model(g.tensors, g.ops, (x_idx,), (out,), name=name if name is not None else net.name, rounding=rounding)


def ptq(net: Net, params: dict, x_calib, *, method: str = "minmax", percentile: float = 99.99,
        softmax: bool = False, input_quant=None, batch_size: int = 256, name: str | None = None) -> Model:
    """Post-training quantization in one call: :func:`fold_batchnorm`, :func:`calibrate`, :func:`quantize_net`.

    Args:
        net, params: the trained float model.
        x_calib: float32[N, H, W, C] calibration images; with the default ``input_quant`` (None:
            scale 1/255, zero point -128) they must lie in [0, 1].
        method, percentile: the calibration method (see :func:`calibrate`).
        softmax, input_quant, name: see :func:`quantize_net`.

    Returns:
        The int8 :class:`tinyzo.graph.Model` (double rounding, as TFLM).
    """
    x_calib = _check_x(net, x_calib, "x_calib")
    if input_quant is None and (float(x_calib.min()) < 0.0 or float(x_calib.max()) > 1.0):
        raise PTQError(f"x_calib spans [{float(x_calib.min()):g}, {float(x_calib.max()):g}], but the default input "
                       "quantization expects images in [0, 1]; scale the images (x / 255) or pass "
                       "input_quant='calibrated'")
    net2, params2 = fold_batchnorm(net, params)
    ranges = calibrate(net2, params2, x_calib, method=method, percentile=percentile, batch_size=batch_size)
    return quantize_net(net2, params2, ranges, input_quant=input_quant, softmax=softmax, name=name)


def quantize_input(x, quant: QuantParams | None = None) -> np.ndarray:
    """Quantize images for a PTQ model: float in [0, 1] (or uint8 pixels) -> int8.

    With the default quantization (scale 1/255, zero point -128) a pixel ``p`` in 0..255 (given as
    uint8, or as float ``p / 255``) becomes ``p - 128``. ``x`` float of any shape; ``quant`` a
    per-tensor :class:`~tinyzo.quant.QuantParams` (the model's input quantization, e.g.
    ``model.input_details[0].quant``) or None for the default. Uses TFLite's rounding (float32
    division, round half away from zero, clamp). Returns int8 of ``x``'s shape.
    """
    x = np.asarray(x)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / np.float32(255.0)
    elif x.dtype.kind != "f":
        raise PTQError(f"quantize_input takes float images in [0, 1] or uint8 pixels, got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise PTQError("quantize_input: the images contain NaN or infinite values")
    if quant is None:
        if x.size and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
            raise PTQError(f"quantize_input: images must be in [0, 1] for the default input quantization, got "
                           f"[{float(x.min()):g}, {float(x.max()):g}]; divide uint8-range data by 255")
        quant = DEFAULT_INPUT_QUANT
    return quantize(x, quant, np.int8)
