"""Golden vectors: the integers (and float32 bits) a firmware port must reproduce, as C headers and one .npz.

:func:`make_vectors` runs tinyzo on a model and collects, under flat names (``"model/..."``,
``"infer/..."``, ``"train/..."``):

* the model: per operator its geometry, offsets, clamps, per-channel multipliers and shifts, int8
  weights and int32 biases (16x8: int64), weight and bias scales; per tensor its NHWC shape, element
  type and offset in one arena planned like TFLite Micro's (:func:`tinyzo.memory.plan_arena`); the
  variable tensors' layout in a separate state buffer and its initial bytes;
* inference: K inputs (int8 or int16) and every intermediate tensor (int8, int16 or int32) for each of
  them; a stateful model (SVDF's variable state) runs the K samples as one sequence and its state after
  each sample is recorded too;
* training (``steps > 0``): the batch, the labels, and per step the base logits and losses, the seeds
  of every (query, layer), the perturbations of step 0, the per-query per-sample losses, the
  projected differences, the gradient estimates, the learning rate and the parameters after the step.

The training values are recorded by replaying :class:`tinyzo.zo.ZOTrainer`'s step through its public
calls (``losses``, ``query``, ``perturbed_losses``, ``accumulate``, ``local_backward``, the optimizer);
a second trainer runs the real ``step`` alongside and every parameter after every step must be equal,
else :class:`GoldenError`. :func:`write_vectors` writes ``vectors.npz`` and three headers
(``tzv_model.h``, ``tzv_infer.h``, ``tzv_train.h``); format in docs/golden_vectors.md.
"""

from __future__ import annotations

import copy
import datetime
from pathlib import Path

import numpy as np

from tinyzo.errors import TinyzoError
from tinyzo.graph import initial_state
from tinyzo.memory import inference_schedule, plan_arena
from tinyzo.training.local_backward import _weight_scales, local_backward
from tinyzo.training.loss import mean_float32
from tinyzo.training.prng import derive_seed
from tinyzo.training.update import ROUNDING_QUERY, param_layer_id
from tinyzo.zo.trainer import ZOTrainer

__all__ = ["SUPPORTED_OPS", "GoldenError", "make_vectors", "write_vectors"]

#: operators the C reference port implements (port/c/tz_kernels.c)
SUPPORTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MEAN", "AVERAGE_POOL_2D", "RESHAPE",
                 "SOFTMAX", "SVDF", "QUANTIZE")
#: operators the C port runs on int16 activations too (16x8: int16 zero point 0, int8 weights)
INT16_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD")
#: tensor element types of the C port (``model/tensor_type``): the element size in bytes
TYPE_CODES = {np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 4}
OP_CODES = {name: i + 1 for i, name in enumerate(SUPPORTED_OPS)}
DIRECTION_CODES = {"rademacher": 0, "gaussian": 1, "uniform": 2}
ESTIMATOR_CODES = {"rge": 0, "spsa": 1, "sign-spsa": 2}
TARGET_CODES = {"weight": 0, "node": 1}
ROUNDING_CODES = {"nearest": 0, "stochastic": 1}
SEED_SCHEDULE = ("seed(step, query, layer) = derive_seed(base_seed, step, query, layer): h = fmix32(base); "
                 "h = fmix32(h ^ step*0x9E3779B1); h = fmix32(h ^ query*0x85EBCA77); h = fmix32(h ^ layer*0xC2B2AE3D); "
                 "0 -> 0x6D2B79F5. layer ids: weights of op k = 2k, bias = 2k+1, node output of op k = 1000000+k; "
                 "stochastic rounding: query 0xFFFFFFFF, layer crc32('k/w' or 'k/b'). Generator xorshift32 "
                 "(13, 17, 5); docs/zo_prng.md")


class GoldenError(TinyzoError):
    """The model or training configuration is outside what the golden vectors / C port cover."""


# ----------------------------------------------------------------------------------------------
# model tables
# ----------------------------------------------------------------------------------------------


def _filter_fields(f: dict, opcode: str, prep) -> None:
    """Add the filter geometry of a CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED ``prep`` to the field dict ``f``:
    ``filter_h = 1, filter_w = k_len`` (FC), else strides, dilations, paddings, filter size (and the depth
    multiplier for DEPTHWISE_CONV_2D)."""
    if opcode == "FULLY_CONNECTED":
        f.update(filter_h=1, filter_w=prep.k_len)
    else:
        f.update(stride_h=prep.stride_h, stride_w=prep.stride_w, dil_h=prep.dil_h, dil_w=prep.dil_w,
                 pad_h=prep.pad_h, pad_w=prep.pad_w, filter_h=prep.kh, filter_w=prep.kw)
        if opcode == "DEPTHWISE_CONV_2D":
            f.update(depth_multiplier=prep.depth_multiplier)


def _nhwc(shape) -> list:
    shape = [int(d) for d in shape]
    if len(shape) > 4:
        raise GoldenError(f"tensor of rank {len(shape)}: the C port handles rank <= 4")
    return [1] * (4 - len(shape)) + shape


def _check_model(model) -> None:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise GoldenError("the C port runs models with one input and one output")
    if model.rounding != "double":
        raise GoldenError(f"the C port implements TFLM's double rounding; the model uses {model.rounding!r}")
    for t in range(len(model.tensors)):
        ten = model.tensors[t]
        if not ten.is_constant and ten.dtype not in TYPE_CODES:
            raise GoldenError(f"tensor {t} ({ten.name!r}) is {ten.dtype}; the C port's activations are int8, int16 "
                              "or int32")
    for k, op in enumerate(model.operators):
        if op.opcode not in OP_CODES:
            raise GoldenError(f"operator {k} is {op.opcode}; the C port implements {', '.join(SUPPORTED_OPS)}")
        prep = model.prepared[k]
        x_t = model.tensors[op.inputs[0]].dtype
        y_t = model.tensors[op.outputs[0]].dtype
        if getattr(prep, "weights_offset", 0) != 0:
            raise GoldenError(f"operator {k} ({op.opcode}): the C port takes symmetric weights (zero point 0)")
        if getattr(prep, "groups", 1) != 1 or getattr(prep, "int4", False):
            raise GoldenError(f"operator {k} ({op.opcode}): the C port implements dense int8 weights, not grouped "
                              "convolution or INT4 weights")
        if op.opcode == "SOFTMAX":
            if x_t != np.int8:
                raise GoldenError(f"operator {k} (SOFTMAX): the C port implements int8 -> int8 and int8 -> int16")
        elif op.opcode == "QUANTIZE":
            if not getattr(prep, "int16_input", False):
                raise GoldenError(f"operator {k} (QUANTIZE): the C port implements QUANTIZE from int16 to int8 or "
                                  "int32 (TFLM's Requantize)")
        elif op.opcode == "SVDF":
            pass  # int8 in and out, int8 or int16 state: what tinyzo's SVDF prepare accepts
        elif x_t == np.int16 and op.opcode in INT16_OPS:
            if op.opcode == "DEPTHWISE_CONV_2D" and prep.acc_bits != 64:
                raise GoldenError(f"operator {k} (DEPTHWISE_CONV_2D): the 16x8 depthwise takes an int64 bias")
        elif x_t != np.int8 or y_t != np.int8:
            raise GoldenError(f"operator {k} ({op.opcode}) runs on {x_t} -> {y_t}; the C port implements it on int8"
                              + (" and int16 (16x8)" if op.opcode in INT16_OPS else ""))
        if op.opcode == "ADD":
            a, b = (model.tensors[i] for i in op.inputs)
            if a.is_constant or b.is_constant or a.shape != b.shape:
                raise GoldenError(f"operator {k} (ADD): the C port adds two run-time tensors of equal shape")
        if op.opcode == "MEAN":
            x = model.tensors[op.inputs[0]]
            if len(x.shape) != 4 or prep.reduce_axes != (1, 2):
                raise GoldenError(f"operator {k} (MEAN): the C port reduces axes (1, 2) of a 4-D NHWC tensor")
        if op.opcode == "FULLY_CONNECTED" and prep.keep_num_dims:
            raise GoldenError(f"operator {k} (FULLY_CONNECTED): keep_num_dims is not supported by the C port")
    t_in = model.tensors[model.inputs[0]]
    if t_in.dtype not in (np.int8, np.int16):
        raise GoldenError("the C port takes an int8 or int16 model input")
    for t in model.variables:
        init = initial_state(model.tensors[t]).view(np.int8)
        if not np.all(init == init.reshape(-1)[0]):
            raise GoldenError(f"variable tensor {t}: its initial value is not one repeated byte (TFLM's memset)")


def _state_layout(model):
    """Byte offsets of the variable tensors in the port's state buffer (16-byte aligned) and its initial bytes."""
    offset = np.full(len(model.tensors), -1, np.int32)
    init = []
    pos = 0
    for t in model.variables:
        offset[t] = pos
        b = initial_state(model.tensors[t]).reshape(-1).view(np.int8)
        pad = (-len(b)) % 16
        init += [b, np.zeros(pad, np.int8)]
        pos += len(b) + pad
    return offset, (np.concatenate(init) if init else np.zeros(0, np.int8))


def model_tables(model) -> dict:
    """The model's C tables: ``{"model/...": array}`` (tensors, operators, parameters, arena offsets)."""

    _check_model(model)
    plan = plan_arena(inference_schedule(model), in_place=False)
    n_t = len(model.tensors)
    offset = np.full(n_t, -1, np.int32)
    for buf, off in zip(plan.buffers, plan.offsets):
        if buf.tensor is not None and buf.kind == "activation":
            offset[buf.tensor] = off
    out = {
        "model/tensor_shape": np.array([_nhwc(t.shape) for t in model.tensors], np.int32).reshape(-1),
        "model/tensor_size": np.array([int(np.prod(t.shape)) if not t.is_constant else 0 for t in model.tensors],
                                      np.int32),
        "model/tensor_offset": offset,
        "model/arena_bytes": np.array([plan.peak_bytes], np.int32),
        "model/io": np.array([model.inputs[0], model.outputs[0]], np.int32),
        "model/tensor_type": np.array([TYPE_CODES.get(t.dtype, 0) if not t.is_constant else 0 for t in model.tensors],
                                      np.int32),
    }
    out["model/tensor_size"][list(model.variables)] = [int(np.prod(model.tensors[t].shape)) for t in model.variables]
    out["model/state_offset"], out["model/state_init"] = _state_layout(model)
    out_t = model.tensors[model.outputs[0]]
    out["model/output_scale"] = np.array([out_t.quant.scale[0]], np.float32)
    out["model/output_zero_point"] = np.array([out_t.quant.zero_point[0]], np.int32)
    fields = []
    for k, op in enumerate(model.operators):
        prep = model.prepared[k]
        f = {"type": OP_CODES[op.opcode], "in0": op.inputs[0], "in1": -1, "out": op.outputs[0]}
        if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and getattr(prep, "int16", False):
            # 16x8: int8 weights, the bias widened to int64 (prepare's bias64), the per-channel multipliers
            out[f"model/op{k}/weights"] = np.asarray(model.tensors[op.inputs[1]].data).reshape(-1).astype(np.int8)
            out[f"model/op{k}/bias64"] = np.asarray(prep.bias64, np.int64).reshape(-1)
            fc = op.opcode == "FULLY_CONNECTED"
            out[f"model/op{k}/multiplier"] = np.asarray(prep.mult_o if fc else prep.multiplier, np.int32)
            out[f"model/op{k}/shift"] = np.asarray(prep.shift_o if fc else prep.shift, np.int32)
            f.update(input_offset=prep.input_offset, output_offset=prep.output_offset, act_min=prep.act_min,
                     act_max=prep.act_max, n_out=prep.n_out, acc_bits=prep.acc_bits)
            _filter_fields(f, op.opcode, prep)
        elif op.opcode == "SVDF":
            p = prep.params
            out[f"model/op{k}/weights"] = prep.weights_feature.reshape(-1)
            out[f"model/op{k}/weights_time{8 * prep.weights_time.itemsize}"] = prep.weights_time.reshape(-1)
            out[f"model/op{k}/bias"] = prep.bias.astype(np.int32)
            f.update(in1=op.inputs[4], filter_w=prep.n_input, n_out=prep.n_unit, rank=p.rank,
                     memory_size=prep.n_memory, input_offset=-p.input_zero_point, output_offset=p.output_zero_point,
                     state_zero_point=p.state_zero_point, multiplier_1=p.multiplier_1, shift_1=p.shift_1,
                     out_multiplier=p.multiplier_2, out_shift=p.shift_2)
        elif op.opcode == "QUANTIZE":
            info = np.iinfo(model.tensors[op.outputs[0]].dtype)
            f.update(input_offset=-prep.in_zero_point, output_offset=prep.out_zero_point, out_multiplier=prep.multiplier,
                     out_shift=prep.shift, act_min=int(info.min), act_max=int(info.max))
        elif op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w, b = model.get_params(k)
            out[f"model/op{k}/weights"] = w.reshape(-1).astype(np.int8)
            out[f"model/op{k}/bias"] = (b if b is not None else np.zeros(prep.n_out, np.int32)).astype(np.int32)
            out[f"model/op{k}/multiplier"] = np.asarray(prep.multiplier, np.int32)
            out[f"model/op{k}/shift"] = np.asarray(prep.shift, np.int32)
            ws = model.tensors[op.inputs[1]].quant.scale.astype(np.float32)
            s_x = float(model.tensors[op.inputs[0]].quant.scale[0])
            out[f"model/op{k}/weight_scale"] = ws
            out[f"model/op{k}/bias_scale"] = (s_x * ws).astype(np.float32)
            s_y = float(model.tensors[op.outputs[0]].quant.scale[0])
            # the local backward's dy -> dacc factor, exactly as tinyzo.training.local_backward computes it
            out[f"model/op{k}/acc_scale"] = (s_x * _weight_scales(model, k) / s_y).astype(np.float32)
            f.update(input_offset=prep.input_offset, output_offset=prep.output_offset, act_min=prep.act_min,
                     act_max=prep.act_max, n_out=prep.n_out, has_params=1)
            _filter_fields(f, op.opcode, prep)
        elif op.opcode == "ADD":
            p = prep.params
            f.update(in1=op.inputs[1], in1_offset=p["input1_offset"], in1_multiplier=p["input1_multiplier"],
                     in1_shift=p["input1_shift"], in2_offset=p["input2_offset"], in2_multiplier=p["input2_multiplier"],
                     in2_shift=p["input2_shift"], left_shift=p["left_shift"], out_multiplier=p["output_multiplier"],
                     out_shift=p["output_shift"], output_offset=p["output_offset"], act_min=prep.act_min,
                     act_max=prep.act_max)
        elif op.opcode == "MEAN":
            f.update(input_offset=-prep.input_zero_point, output_offset=prep.output_zero_point,
                     out_multiplier=prep.multiplier, out_shift=prep.shift, count=prep.count, act_min=-128, act_max=127)
        elif op.opcode == "AVERAGE_POOL_2D":
            f.update(stride_h=prep.stride_h, stride_w=prep.stride_w, filter_h=prep.filter_h, filter_w=prep.filter_w,
                     pad_h=prep.pad_h, pad_w=prep.pad_w, act_min=prep.act_min, act_max=prep.act_max)
        elif op.opcode == "SOFTMAX":
            f.update(sm_multiplier=prep.input_multiplier, sm_left_shift=prep.input_left_shift, sm_diff_min=prep.diff_min)
        fields.append(f)
    out["model/op_fields"] = np.array([[f.get(name, 0 if name not in ("in1",) else -1) for name in OP_FIELDS]
                                       for f in fields], np.int32).reshape(-1)
    return out


#: the integer fields of one operator, in the order of ``model/op_fields`` rows and of ``tz_op_t``
OP_FIELDS = ("type", "in0", "in1", "out", "stride_h", "stride_w", "dil_h", "dil_w", "pad_h", "pad_w", "filter_h",
             "filter_w", "depth_multiplier", "n_out", "input_offset", "output_offset", "act_min", "act_max",
             "has_params", "in1_offset", "in1_multiplier", "in1_shift", "in2_offset", "in2_multiplier", "in2_shift",
             "left_shift", "out_multiplier", "out_shift", "count", "sm_multiplier", "sm_left_shift", "sm_diff_min",
             "acc_bits", "rank", "memory_size", "state_zero_point", "multiplier_1", "shift_1")


# ----------------------------------------------------------------------------------------------
# inference and training records
# ----------------------------------------------------------------------------------------------


def inference_vectors(model, x) -> dict:
    """``infer/x`` [K, input size] and ``infer/t<i>`` [K, size] (the tensor's type) for every computed tensor i.

    A stateful model (variable tensors) runs the K samples as one sequence from the initial state (on a
    copy: ``model`` is not modified) and also records ``infer/s<t>`` [K, size], each variable tensor t
    after each sample.
    """
    x = np.asarray(x)
    t_in = model.tensors[model.inputs[0]].dtype
    if x.dtype != t_in:
        raise GoldenError(f"inference inputs are {x.dtype}; the model input is {t_in}")
    x = np.ascontiguousarray(x)
    out = {"infer/x": x.reshape(len(x), -1)}
    computed = [t for op in model.operators for t in op.outputs]
    if not model.variables:
        _, env = model(x, intermediates=True)
        envs = [env]
    else:
        m = copy.deepcopy(model)
        m.reset_state()
        envs = []
        for i in range(len(x)):
            _, env = m(x[i:i + 1], intermediates=True)
            env = {t: np.asarray(v).copy() for t, v in env.items()}
            env.update({f"s{t}": v for t, v in m.state.items()})
            envs.append(env)
    for t in computed:
        out[f"infer/t{t}"] = np.concatenate([np.asarray(e[t]).reshape(-1) for e in envs]).reshape(len(x), -1).astype(
            model.tensors[t].dtype)
    for t in model.variables:
        out[f"infer/s{t}"] = np.stack([np.asarray(e[f"s{t}"]).reshape(-1) for e in envs]).astype(model.tensors[t].dtype)
    return out


def _float32(v) -> np.ndarray:
    return np.asarray(v, dtype=np.float32)


def training_vectors(model, xq, y, config, steps: int) -> dict:
    """Replay ``steps`` ZO steps on the batch ``(xq, y)`` and record every value (see the module docstring).

    ``model`` is not modified (a copy is trained). Raises :class:`GoldenError` for options the C port
    lacks (mixed target, shadow update, momentum, channel subsets, sphere directions) or if the
    replay disagrees with :meth:`tinyzo.zo.ZOTrainer.step`.
    """

    if model.variables or any(model.tensors[t].dtype != np.int8 for op in model.operators for t in op.outputs):
        raise GoldenError("the C port trains stateless int8 models; export inference vectors (steps 0) only")
    if config.target not in TARGET_CODES:
        raise GoldenError(f"target {config.target!r}: the C port implements weight and node perturbation")
    if config.update != "per_step" or config.momentum != 0.0 or config.channels:
        raise GoldenError("the C port implements the per-step integer update without momentum or channel subsets")
    if config.direction not in DIRECTION_CODES:
        raise GoldenError(f"direction {config.direction!r}: the C port implements {', '.join(DIRECTION_CODES)}")
    if not config.train_bias:
        raise GoldenError("the C port trains weights and biases together (train_bias=True)")
    if config.density != 1.0 or config.block != "none":
        raise GoldenError("the C port perturbs every coordinate of every trained layer per query: sparse "
                          "perturbation (density < 1) and block-coordinate queries (block='layer') are not exported")
    if model.loss_tensor != model.outputs[0]:
        raise GoldenError(f"the model ends in SOFTMAX: training takes the loss on its input (tensor {model.loss_tensor}), "
                          "the C port's ZO step on the model output; export inference vectors (steps 0) only")
    m_a, m_b = copy.deepcopy(model), copy.deepcopy(model)
    tr = ZOTrainer(m_a, copy.deepcopy(config), total_steps=steps)
    twin = ZOTrainer(m_b, copy.deepcopy(config), total_steps=steps)
    for k in tr.layers:
        if m_a.get_params(k)[1] is None:
            raise GoldenError(f"operator {k} has no bias; the C port trains layers with a bias")
    xq = np.ascontiguousarray(xq, dtype=np.int8)
    y = np.asarray(y, dtype=np.int64)
    n = len(y)
    c = tr.config
    out = {"train/x": xq.reshape(n, -1), "train/y": y.astype(np.int32),
           "train/layers": np.array(tr.layers, np.int32),
           "train/config": np.array([TARGET_CODES[c.target], ESTIMATOR_CODES[c.estimator], DIRECTION_CODES[c.direction],
                                     ROUNDING_CODES[c.rounding], c.queries, c.sigma, c.sigma_node, steps, n,
                                     c.seed & 0xFFFFFFFF], np.int64).astype(np.uint32).view(np.int32)}
    out["train/norm_w"] = _float32([tr._norm(c.sigma)])
    out["train/norm_node"] = _float32([tr._norm(c.sigma_node)])
    for k in tr.weight_layers:
        out[f"train/op{k}/sigma_bias"] = tr.bias_sigma(k).astype(np.int32)
        out[f"train/op{k}/norm_b"] = _float32(np.broadcast_to(tr._norm(tr._sigma_b[k]), (model.prepared[k].n_out,)))
    for k in tr.layers:
        out[f"train/op{k}/crc"] = np.array([param_layer_id(f"{k}/w"), param_layer_id(f"{k}/b")],
                                           np.uint32).view(np.int32)
    lrs = []
    for step in range(steps):
        pre = f"train/step{step}"
        tr._step_params = {k: m_a.get_params(k) for k in tr.layers}
        logits, env = m_a(xq, intermediates=True)
        base = tr.losses(logits, y)
        base_mean = mean_float32(base)
        out[f"{pre}/logits"] = logits.reshape(n, -1).astype(np.int8)
        out[f"{pre}/base"] = _float32(base)
        out[f"{pre}/base_mean"] = _float32([base_mean])
        node_shapes = {k: env[m_a.operators[k].outputs[0]].shape for k in tr.node_layers}
        grads, g_nodes = {}, {k: np.zeros(s, np.float32) for k, s in node_shapes.items()}
        seeds, plus_all, minus_all, coef_all, coef_mean_all = [], [], [], [], []
        for q in range(c.queries):
            dirs, ndirs, coef, coef_mean = tr.query(env, y, base, base_mean, q, node_shapes)
            plus_all.append(tr.perturbed_losses(env, y, dirs, ndirs, +1))
            if c.estimator != "rge":
                minus_all.append(tr.perturbed_losses(env, y, dirs, ndirs, -1))
            coef_all.append(_float32(coef))
            coef_mean_all.append(coef_mean)
            for k in tr.layers:
                seeds.append([derive_seed(c.seed, step, q, 2 * k), derive_seed(c.seed, step, q, 2 * k + 1),
                              derive_seed(c.seed, step, q, 1_000_000 + k)])
            if step == 0:
                for k, d in dirs.items():
                    out[f"{pre}/q{q}/op{k}/dw"] = d["w"].reshape(-1).astype(np.int32)
                    out[f"{pre}/q{q}/op{k}/db"] = d["b"].reshape(-1).astype(np.int32)
                for k, u in ndirs.items():
                    out[f"{pre}/q{q}/op{k}/dnode"] = u.reshape(n, -1).astype(np.int8)
            tr.accumulate(grads, g_nodes, dirs, ndirs, coef, coef_mean, n)
        for k in tr.node_layers:
            op = m_a.operators[k]
            g_w, g_b = local_backward(m_a, k, env[op.inputs[0]], env[op.outputs[0]], g_nodes[k])
            grads[f"{k}/w"], grads[f"{k}/b"] = g_w, g_b
        lrs.append(np.float32(tr.optimizer.lr_at(tr.optimizer.step_count)))
        tr.apply_update(grads)      # the trainer's own update (masks, scales, rounding) on m_a
        tr.step_count += 1
        tr._step_params = None
        twin.step(xq, y)
        for k in tr.layers:
            wa, ba = m_a.get_params(k)
            wb, bb = m_b.get_params(k)
            if not (np.array_equal(wa, wb) and np.array_equal(ba, bb)):
                raise GoldenError(f"replayed step {step} differs from ZOTrainer.step on operator {k}: "
                                  "the golden exporter is out of date with the trainer")
            out[f"{pre}/op{k}/gw"] = _float32(grads[f"{k}/w"]).reshape(-1)
            out[f"{pre}/op{k}/gb"] = _float32(grads[f"{k}/b"]).reshape(-1)
            out[f"{pre}/op{k}/weights"] = wa.reshape(-1).astype(np.int8)
            out[f"{pre}/op{k}/bias"] = ba.astype(np.int32)
        out[f"{pre}/seeds"] = np.array(seeds, np.uint32).reshape(-1).view(np.int32)
        out[f"{pre}/plus"] = _float32(plus_all).reshape(-1)
        if minus_all:
            out[f"{pre}/minus"] = _float32(minus_all).reshape(-1)
        out[f"{pre}/coef"] = _float32(coef_all).reshape(-1)
        out[f"{pre}/coef_mean"] = _float32(coef_mean_all)
    out["train/lr"] = _float32(lrs)
    out["train/rounding_query"] = np.array([ROUNDING_QUERY], np.uint32).view(np.int32)
    return out


def make_vectors(model, x_infer, x_train=None, y_train=None, config=None, steps: int = 0) -> dict:
    """All golden arrays for ``model``: the tables, inference on ``x_infer`` and ``steps`` training steps.

    Args:
        model: a :class:`tinyzo.Model` (not modified).
        x_infer: int8[K, ...] model inputs for the inference vectors (K >= 1).
        x_train, y_train: int8[B, ...] batch and int labels[B] (only with ``steps > 0``).
        config: a :class:`tinyzo.zo.ZOConfig` (only with ``steps > 0``).
        steps: training steps to record (0: inference only).

    Returns:
        ``{name: numpy array}`` (int8, int32 or float32; uint32 values are stored as their int32 bits).
    """
    vec = model_tables(model)
    vec.update(inference_vectors(model, x_infer))
    if steps > 0:
        if config is None or x_train is None or y_train is None:
            raise GoldenError("training vectors need a batch, labels and a ZOConfig")
        vec.update(training_vectors(model, x_train, y_train, config, steps))
    return vec


# ----------------------------------------------------------------------------------------------
# writers
# ----------------------------------------------------------------------------------------------

_CTYPES = {np.dtype(np.int8): "int8_t", np.dtype(np.int16): "int16_t", np.dtype(np.int32): "int32_t",
           np.dtype(np.int64): "int64_t", np.dtype(np.float32): "float"}


def _c_name(key: str) -> str:
    if key == "train/x":
        return "TZV_X_TRAIN"
    return "TZV_" + key.split("/", 1)[1].replace("/", "_").upper()


def _c_float(v: float) -> str:
    if v == 0.0:
        return "-0.0f" if np.signbit(v) else "0.0f"
    h = float(v).hex()  # exact: every float32 is a double
    mant, exp = h.split("p")
    mant = mant.rstrip("0").rstrip(".")
    return f"{mant}p{exp}f"


def _c_array(name: str, a: np.ndarray) -> str:
    a = np.asarray(a).reshape(-1)
    ctype = _CTYPES[a.dtype]
    if a.dtype == np.float32:
        items = [_c_float(v) for v in a.tolist()]
        per_line = 6
    else:
        if a.dtype == np.int64:
            items = [f"INT64_C({v})" if v != -(2**63) else "INT64_MIN" for v in a.tolist()]
        else:
            items = [str(v) if v != -(2**31) else "INT32_MIN" for v in a.tolist()]
        per_line = {1: 24, 2: 16}.get(a.dtype.itemsize, 10) if a.dtype != np.int64 else 6
    lines = ["  " + ", ".join(items[i:i + per_line]) + "," for i in range(0, len(items), per_line)] or ["  0"]
    size = max(len(items), 1)
    return (f"#define {name}_LEN {len(items)}\nstatic const {ctype} {name}[{size}] = {{\n" + "\n".join(lines) + "\n};\n")


def _banner(meta: dict, what: str) -> str:
    rows = [f"{what}", "", f"tinyzo {meta['version']}, generated {meta['date']}",
            f"rounding: {meta['rounding']}", f"seed schedule: {meta['seed_schedule']}",
            f"command: {meta['command']}", "format: docs/golden_vectors.md; port: port/c (docs/porting.md)"]
    body = "\n".join((" * " + r).rstrip() for r in rows)
    return "/*\n" + body.replace("*/", "* /") + "\n */\n"


def _guard(name: str, banner: str, body: str) -> str:
    g = name.upper().replace(".", "_")
    return f"{banner}#ifndef {g}\n#define {g}\n\n#include <stdint.h>\n\n{body}\n#endif /* {g} */\n"


def _model_header(vec: dict) -> str:
    parts = []
    fields = vec["model/op_fields"].reshape(-1, len(OP_FIELDS))
    n_ops = fields.shape[0]
    shapes = vec["model/tensor_shape"].reshape(-1, 4)
    parts.append(f"#define TZV_N_OPS {n_ops}\n#define TZV_N_TENSORS {shapes.shape[0]}\n"
                 f"#define TZV_ARENA_BYTES {int(vec['model/arena_bytes'][0])}\n"
                 f"#define TZV_INPUT_TENSOR {int(vec['model/io'][0])}\n#define TZV_OUTPUT_TENSOR {int(vec['model/io'][1])}\n"
                 f"#define TZV_INPUT_SIZE {int(vec['model/tensor_size'][vec['model/io'][0]])}\n"
                 f"#define TZV_OUTPUT_SIZE {int(vec['model/tensor_size'][vec['model/io'][1]])}\n"
                 f"#define TZV_INPUT_BYTES {int(vec['model/tensor_size'][vec['model/io'][0]]) * int(vec['model/tensor_type'][vec['model/io'][0]])}\n"
                 f"#define TZV_STATE_BYTES {len(vec['model/state_init'])}\n"
                 f"#define TZV_OUTPUT_ZERO_POINT {int(vec['model/output_zero_point'][0])}\n"
                 f"#define TZV_OUTPUT_SCALE {_c_float(float(vec['model/output_scale'][0]))}\n")
    for key in ("model/tensor_shape", "model/tensor_size", "model/tensor_offset", "model/tensor_type",
                "model/state_offset", "model/state_init"):
        parts.append(_c_array(_c_name(key), vec[key]))
    # per-operator arrays first, then the operator table that points at them
    for key, a in vec.items():
        if key.startswith("model/op") and key != "model/op_fields":
            parts.append(_c_array(_c_name(key), a))
    rows = []
    for k in range(n_ops):
        f = dict(zip(OP_FIELDS, (int(v) for v in fields[k])))
        init = ", ".join(f".{name} = {v}" for name, v in f.items() if v != 0 or name in ("type", "in0", "out"))
        if f["has_params"]:
            init += (f",\n    .weights = TZV_OP{k}_WEIGHTS, .bias = TZV_OP{k}_BIAS, .multiplier = TZV_OP{k}_MULTIPLIER,"
                     f" .shift = TZV_OP{k}_SHIFT, .weight_scale = TZV_OP{k}_WEIGHT_SCALE,"
                     f" .n_weight_scale = TZV_OP{k}_WEIGHT_SCALE_LEN, .n_weights = TZV_OP{k}_WEIGHTS_LEN")
        else:  # 16x8 layers and SVDF: the arrays they have
            for part, field in (("weights", "weights"), ("bias", "bias"), ("bias64", "bias64"),
                                ("multiplier", "multiplier"), ("shift", "shift"), ("weights_time8", "weights_time8"),
                                ("weights_time16", "weights_time16")):
                if f"model/op{k}/{part}" in vec:
                    init += f",\n    .{field} = TZV_OP{k}_{part.upper()}"
            if f"model/op{k}/weights" in vec:
                init += f", .n_weights = TZV_OP{k}_WEIGHTS_LEN"
        rows.append(f"  {{ /* op {k} */ {init} }},")
    parts.append("/* operator table (tz_op_t, port/c/tinyzo_port.h) */\n#define TZV_OPS_INIT { \\\n" +
                 " \\\n".join(r.replace("\n", " \\\n") for r in rows) + " \\\n}\n")
    return "\n".join(parts)


def _section_header(vec: dict, prefix: str) -> str:
    parts = []
    for key, a in vec.items():
        if key.startswith(prefix):
            parts.append(_c_array(_c_name(key), a))
    return "\n".join(parts)


def write_vectors(vec: dict, out_dir, command: str = "tinyzo.golden.write_vectors (Python API)") -> list:
    """Write ``vectors.npz`` and the C headers ``tzv_model.h``, ``tzv_infer.h``, ``tzv_train.h`` into ``out_dir``.

    Every header starts with a comment giving the tinyzo version, the rounding mode, the seed schedule
    and ``command``. ``tzv_train.h`` holds ``#define TZV_HAS_TRAIN 0`` when there are no training
    steps. Returns the written paths.
    """
    import tinyzo

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"version": tinyzo.__version__, "date": datetime.date.today().isoformat(),
            "rounding": "double (TFLM MultiplyByQuantizedMultiplier: SaturatingRoundingDoublingHighMul, then "
                        "RoundingDivideByPOT); weight updates round half away from zero",
            "seed_schedule": SEED_SCHEDULE, "command": command}
    paths = []
    npz = out / "vectors.npz"
    np.savez(npz, **vec, **{f"meta/{k}": np.str_(v) for k, v in meta.items()})
    paths.append(npz)
    has_train = "train/config" in vec
    for name, what, body in (
            ("tzv_model.h", "tinyzo golden vectors: the model (operators, quantization, parameters, arena plan)",
             _model_header(vec)),
            ("tzv_infer.h", "tinyzo golden vectors: inference inputs and every intermediate tensor",
             f"#define TZV_INFER_SAMPLES {vec['infer/x'].shape[0]}\n\n" + _section_header(vec, "infer/")
             + _expected_table(vec)),
            ("tzv_train.h", ("tinyzo golden vectors: ZO training steps (seeds, perturbations, losses, gradients, "
                             "parameters)"),
             f"#define TZV_HAS_TRAIN {int(has_train)}\n\n" + (_train_defines(vec) + _section_header(vec, "train/")
                                                              if has_train else ""))):
        p = out / name
        p.write_text(_guard(name, _banner(meta, what), body))
        paths.append(p)
    return paths


def _expected_table(vec: dict) -> str:
    n_t = len(vec["model/tensor_size"])
    names = [f"TZV_T{t}" if f"infer/t{t}" in vec else "NULL" for t in range(n_t)]
    states = [f"TZV_S{t}" if f"infer/s{t}" in vec else "NULL" for t in range(n_t)]
    return f"\n/* expected values of tensor t for sample s: TZV_INFER_EXPECTED[t][s * size + i] (type: TZV_TENSOR_TYPE) */\n" \
           f"#define TZV_INFER_EXPECTED_INIT {{{', '.join(names)}}}\n" \
           f"/* stateful model: variable tensor t after sample s (the samples are one sequence) */\n" \
           f"#define TZV_INFER_STATEFUL {int(any(n != 'NULL' for n in states))}\n" \
           f"#define TZV_INFER_STATE_INIT {{{', '.join(states)}}}\n"


def _train_defines(vec: dict) -> str:
    cfg = vec["train/config"].view(np.uint32)
    names = ("TARGET", "ESTIMATOR", "DIRECTION", "ROUNDING", "QUERIES", "SIGMA", "SIGMA_NODE", "STEPS", "BATCH")
    s = "".join(f"#define TZV_TRAIN_{n} {int(v)}\n" for n, v in zip(names, cfg[:9]))
    s += f"#define TZV_TRAIN_SEED {int(cfg[9])}u\n#define TZV_TRAIN_N_LAYERS {len(vec['train/layers'])}\n"
    s += f"#define TZV_TRAIN_LAYERS_INIT {{{', '.join(str(int(v)) for v in vec['train/layers'])}}}\n"
    # per-layer pointer tables so C code can loop over the trained layers
    layers = [int(v) for v in vec["train/layers"]]
    steps = int(cfg[7])
    queries = int(cfg[4])
    has_minus = "train/step0/minus" in vec

    def table(fmt, n):
        return "{" + ", ".join(fmt.format(i) for i in range(n)) + "}"

    for part in ("weights", "bias", "gw", "gb"):
        rows = [table(f"TZV_STEP{{0}}_OP{k}_{part.upper()}", steps) for k in layers]
        s += f"#define TZV_TRAIN_{part.upper()}_INIT {{{', '.join(rows)}}}\n"
    s += f"#define TZV_TRAIN_SEEDS_INIT {table('TZV_STEP{0}_SEEDS', steps)}\n"
    for name in ("plus", "coef", "coef_mean", "base", "logits") + (("minus",) if has_minus else ()):
        s += f"#define TZV_TRAIN_{name.upper()}_INIT {table('TZV_STEP{0}_' + name.upper(), steps)}\n"
    s += f"#define TZV_TRAIN_HAS_MINUS {int(has_minus)}\n"
    s += f"#define TZV_TRAIN_SIGMA_BIAS_INIT {{{', '.join((f'TZV_OP{k}_SIGMA_BIAS' if f'train/op{k}/sigma_bias' in vec else 'NULL') for k in layers)}}}\n"
    s += f"#define TZV_TRAIN_NORM_B_INIT {{{', '.join((f'TZV_OP{k}_NORM_B' if f'train/op{k}/norm_b' in vec else 'NULL') for k in layers)}}}\n"
    s += f"#define TZV_TRAIN_CRC_INIT {{{', '.join(f'TZV_OP{k}_CRC' for k in layers)}}}\n"
    s += f"#define TZV_TRAIN_ACC_SCALE_INIT {{{', '.join(f'TZV_OP{k}_ACC_SCALE' for k in layers)}}}\n"
    s += f"#define TZV_TRAIN_BIAS_SCALE_INIT {{{', '.join(f'TZV_OP{k}_BIAS_SCALE' for k in layers)}}}\n"
    s += f"#define TZV_TRAIN_BIAS_SCALE_LEN_INIT {{{', '.join(f'TZV_OP{k}_BIAS_SCALE_LEN' for k in layers)}}}\n"
    # buffer sizes of the training workspace (static arrays in the harness)
    sizes = vec["model/tensor_size"]
    fields = vec["model/op_fields"].reshape(-1, len(OP_FIELDS))
    n_w = [len(vec[f"model/op{k}/weights"]) for k in layers]
    n_b = [len(vec[f"model/op{k}/bias"]) for k in layers]
    node = int(cfg[0]) == TARGET_CODES["node"]
    outs = [int(sizes[fields[k][OP_FIELDS.index("out")]]) for k in layers]
    ins = [int(sizes[fields[k][OP_FIELDS.index("in0")]]) for k in layers]
    s += (f"#define TZV_TRAIN_W_TOTAL {sum(n_w)}\n#define TZV_TRAIN_B_TOTAL {sum(n_b)}\n"
          f"#define TZV_TRAIN_MAX_PARAM {max(n_w + n_b)}\n"
          f"#define TZV_TRAIN_NODE_OUT_TOTAL {sum(outs) if node else 0}\n"
          f"#define TZV_TRAIN_NODE_IN_TOTAL {sum(ins) if node else 0}\n")
    dw = [f"TZV_STEP0_Q{q}_OP{k}_DW" if f"train/step0/q{q}/op{k}/dw" in vec else "NULL"
          for q in range(queries) for k in layers]
    db = [f"TZV_STEP0_Q{q}_OP{k}_DB" if f"train/step0/q{q}/op{k}/db" in vec else "NULL"
          for q in range(queries) for k in layers]
    dn = [f"TZV_STEP0_Q{q}_OP{k}_DNODE" if f"train/step0/q{q}/op{k}/dnode" in vec else "NULL"
          for q in range(queries) for k in layers]
    s += f"#define TZV_TRAIN_DW0_INIT {{{', '.join(dw)}}}\n#define TZV_TRAIN_DB0_INIT {{{', '.join(db)}}}\n"
    s += f"#define TZV_TRAIN_DNODE0_INIT {{{', '.join(dn)}}}\n\n"
    return s
