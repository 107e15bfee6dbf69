"""The float32 reference path of back propagation: an int8 model's architecture as a float :class:`tinyzo.nn.Net`.

tiny-training's QAS table compares int8 training against "fp32 SGD" on the *same* network. This
module builds that network from an int8 :class:`tinyzo.Model` produced by post-training quantization
(the digits reference model ``reference_models/digits_cnn.tflite`` and the PTQ output of
:mod:`tinyzo.fp.ptq`), for the float executor/trainer :mod:`tinyzo.fp`:

* ``CONV_2D`` -> ``conv``, ``DEPTHWISE_CONV_2D`` -> ``depthwise``, ``FULLY_CONNECTED`` -> ``fc``
  (``bn=False``: batch norm is already folded into the int8 weights and bias);
* ``ADD`` -> ``add``; ``MEAN`` over axes {1, 2} without ``keep_dims`` -> ``gap``;
* fused activation ``NONE`` / ``RELU`` / ``RELU6`` -> ``"none"`` / ``"relu"`` / ``"relu6"``.

Parameters are the dequantized int8 ones, float32 in the int8 engine's layouts (conv OHWI,
depthwise 1HWC, fc [O, K]):

* weights ``W = w_int * s_w[c]`` (per output channel: axis 0 for conv/fc, axis 3 for depthwise;
  a per-tensor scale broadcasts);
* biases ``B = b_int * s_x * s_w[c]`` (``s_x`` = the layer input's scale): the real value the int32
  accumulator's bias stands for.

So the float net computes what the int8 graph computes *before* its activation roundings: the only
differences are the int8 rounding/saturation of every activation (and the requantization
multipliers), i.e. a few output LSBs (see tests/test_bp_fp32.py).

The float input is the dequantized int8 input (:func:`dequantize_input`), so both paths see the
same pixels. Any other operator (RESHAPE, SOFTMAX, pooling, ...), a MEAN over other axes, or a
fused activation other than NONE/RELU/RELU6 raises :class:`Fp32GraphError`.
"""

from __future__ import annotations

import numpy as np

from tinyzo.errors import TinyzoError
from tinyzo.nn import Layer, Net

__all__ = ["Fp32GraphError", "dequantize_input", "float_layer_names", "float_net_from_int8"]

_ACT = {"NONE": "none", "RELU": "relu", "RELU6": "relu6"}
_WEIGHTED = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise", "FULLY_CONNECTED": "fc"}
SUPPORTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MEAN")


class Fp32GraphError(TinyzoError):
    """The int8 model has an operator, option or tensor layout the float reference net cannot express."""


def _act(k: int, op) -> str:
    f = op.options.get("fused_activation_function", "NONE")
    if f not in _ACT:
        raise Fp32GraphError(f"operator {k} ({op.opcode}) has fused activation {f!r}; the float reference net "
                             f"supports {', '.join(_ACT)}")
    return _ACT[f]


def float_layer_names(model) -> dict:
    """``{operator index: float layer name}`` for every operator of ``model``.

    The name is the operator's output tensor name (made unique with an ``#<op>`` suffix if two
    operators' outputs share a name). :func:`float_net_from_int8` names its layers this way, so a
    scheme over int8 operators (e.g. ``model.trainable_ops()[-6:]``) maps to float layer names.
    """
    names, seen = {}, {"input"}
    for k, op in enumerate(model.operators):
        name = model.tensors[op.outputs[0]].name or f"op{k}"
        if name in seen:
            name = f"{name}#{k}"
        seen.add(name)
        names[k] = name
    return names


def _scales(t, k: int, what: str) -> np.ndarray:
    if t.quant is None:
        raise Fp32GraphError(f"operator {k}: the {what} tensor {t.name!r} is not quantized; the float reference net "
                             "is built from an int8 (PTQ) model")
    return t.quant.scale.astype(np.float64)


def float_net_from_int8(model):
    """The float network with ``model``'s architecture and dequantized parameters.

    Args:
        model: an int8 :class:`tinyzo.Model` made of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED /
            ADD / MEAN (axes 1, 2) operators with fused NONE / RELU / RELU6, one int8 NHWC input
            (1, H, W, C) and one output: the last operator's (the logits).

    Returns:
        ``(net, params)``: a :class:`tinyzo.nn.Net` (layer names from :func:`float_layer_names`,
        input shape (H, W, C), ``num_classes`` = the output width) and ``{layer name: {"w":
        float32, "b": float32[O]}}`` with ``W = w_int * s_w`` and ``B = b_int * s_x * s_w``
        (computed in float64, stored float32). Layers without a bias tensor get ``bias=False``
        (params ``{"w"}`` only).

    Raises:
        Fp32GraphError: an unsupported operator or option, a MEAN over other axes or with
            ``keep_dims``, unquantized weights, several inputs/outputs, or an output that is not
            the last operator's.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise Fp32GraphError(f"{model.name}: the float reference net needs one input and one output, got "
                             f"{len(model.inputs)} and {len(model.outputs)}")
    t_in = model.tensors[model.inputs[0]]
    if len(t_in.shape) != 4 or t_in.quant is None:
        raise Fp32GraphError(f"{model.name}: the input must be a quantized NHWC tensor (1, H, W, C), got "
                             f"{t_in.dtype}{list(t_in.shape)}")
    bad = sorted({op.opcode for op in model.operators if op.opcode not in SUPPORTED_OPS})
    if bad:
        raise Fp32GraphError(f"{model.name}: operators {', '.join(bad)} have no float reference layer; the fp32 path "
                             f"supports {', '.join(SUPPORTED_OPS)} (the PTQ graphs of tinyzo.fp.ptq / digits_cnn)")
    if not model.operators or model.outputs[0] != model.operators[-1].outputs[0]:
        raise Fp32GraphError(f"{model.name}: the model output must be the last operator's output (the logits)")

    names = float_layer_names(model)
    tname = {model.inputs[0]: "input"}
    layers, params = [], {}
    for k, op in enumerate(model.operators):
        name = names[k]
        src = op.inputs[0]
        if src not in tname:
            raise Fp32GraphError(f"operator {k} ({op.opcode}) reads tensor {src} "
                                 f"({model.tensors[src].name!r}), which no earlier operator produces")
        if op.opcode in _WEIGHTED:
            kind = _WEIGHTED[op.opcode]
            wt = model.tensors[op.inputs[1]]
            if wt.data is None:
                raise Fp32GraphError(f"operator {k} ({op.opcode}): the weights are not a constant tensor")
            has_b = len(op.inputs) > 2 and op.inputs[2] != -1
            w_int = wt.data.astype(np.float64)
            s_w = _scales(wt, k, "weight")
            s_x = float(_scales(model.tensors[src], k, "input")[0])
            axis = 3 if kind == "depthwise" else 0
            shape = [1] * w_int.ndim
            shape[axis] = s_w.size
            w = (w_int * s_w.reshape(shape)).astype(np.float32)
            n_out = w_int.shape[axis]
            if s_w.size not in (1, n_out):
                raise Fp32GraphError(f"operator {k}: {s_w.size} weight scales for {n_out} output channels")
            p = {"w": w}
            if has_b:
                bt = model.tensors[op.inputs[2]]
                s_b = s_x * np.broadcast_to(s_w, (n_out,))
                p["b"] = (bt.data.astype(np.float64).reshape(-1) * s_b).astype(np.float32)
            o = op.options
            if kind == "fc":
                if o.get("keep_num_dims", False):
                    raise Fp32GraphError(f"operator {k} (FULLY_CONNECTED) has keep_num_dims=True; not supported")
                lay = Layer(name, "fc", (tname[src],), out_channels=n_out, bias=has_b, activation=_act(k, op))
            else:
                kh, kw = w_int.shape[1], w_int.shape[2]
                lay = Layer(name, kind, (tname[src],), out_channels=n_out, kernel=(kh, kw),
                            stride=(o.get("stride_h", 1), o.get("stride_w", 1)), padding=o.get("padding", "SAME"),
                            dilation=(o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1)),
                            depth_multiplier=int(o.get("depth_multiplier", 1)) if kind == "depthwise" else 1,
                            bias=has_b, activation=_act(k, op))
            params[name] = p
        elif op.opcode == "ADD":
            if len(op.inputs) != 2 or op.inputs[1] not in tname:
                raise Fp32GraphError(f"operator {k} (ADD) must add two activations computed earlier "
                                     "(a constant operand has no float layer)")
            lay = Layer(name, "add", (tname[src], tname[op.inputs[1]]), activation=_act(k, op))
        else:  # MEAN
            axes_t = model.tensors[op.inputs[1]] if len(op.inputs) > 1 else None
            axes = None if axes_t is None or axes_t.data is None else sorted(int(a) % 4 for a in axes_t.data.reshape(-1))
            if axes != [1, 2] or op.options.get("keep_dims", False) or len(model.tensors[src].shape) != 4:
                raise Fp32GraphError(f"operator {k} (MEAN) must average an NHWC tensor over axes (1, 2) without "
                                     f"keep_dims (global average pool), got axes {axes}, "
                                     f"keep_dims={op.options.get('keep_dims', False)}")
            lay = Layer(name, "gap", (tname[src],))
        layers.append(lay)
        tname[op.outputs[0]] = name
    out_shape = model.tensors[model.outputs[0]].shape
    try:
        net = Net(model.name or "int8-model", tuple(t_in.shape[1:]), layers, num_classes=int(out_shape[-1]))
    except TinyzoError as e:
        raise Fp32GraphError(f"{model.name}: the float reference net is inconsistent: {e}") from None
    for lay, op in zip(net.layers, model.operators):
        want = tuple(model.tensors[op.outputs[0]].shape[1:])
        if tuple(lay.out_shape) != want:
            raise Fp32GraphError(f"operator {lay.name!r}: the float layer's output {lay.out_shape} differs from the "
                                 f"int8 tensor's {want}")
    return net, params


def dequantize_input(model, xq) -> np.ndarray:
    """The float32 input the float net sees for the int8 model input ``xq`` (int8[N, H, W, C]).

    ``x = s_in * (xq - zp_in)`` (float32), e.g. pixels in [0, 1] for the digits model
    (scale 1/255, zero point -128).
    """
    t = model.tensors[model.inputs[0]]
    xq = np.asarray(xq)
    if xq.dtype != np.int8:
        raise Fp32GraphError(f"dequantize_input takes the int8 model input (images_to_input), got {xq.dtype}")
    s = np.float32(t.quant.scale[0])
    return ((xq.astype(np.float32) - np.float32(t.quant.zero_point[0])) * s).astype(np.float32)
