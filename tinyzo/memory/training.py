"""Training schedules: the static step sequence an MCU runs for one training step, with every buffer.

:func:`training_schedule` extends :func:`tinyzo.memory.schedule.inference_schedule` to back
propagation (full or sparse) and zeroth-order (ZO) training. The result is a plain
:class:`~tinyzo.memory.schedule.Schedule` that the same arena planner places
(:func:`tinyzo.memory.plan_arena`). docs/memory.md ("Training schedules") states the rules; in short:

* **Steps**, in order: ``forward`` (one per operator), ``loss``, then ``backward`` (one per operator
  the gradient traverses: gradient of its input, of its weights and of its bias) and ``update``
  (one per trained layer). ZO adds ``perturb`` / ``restore`` (weight perturbation), more forward
  passes, ``estimate`` and ``backward`` (the one-layer local backward of node perturbation).
* **Buffer kinds** (what the plots stack): ``activation`` (int8 activations, incl. those saved for
  the backward, and float32 losses), ``mask`` (1 bit per output element: where the int8 clamp
  passed the gradient), ``gradient`` (float32 gradients of activations and of parameters),
  ``param_copy`` (SRAM copies of the trained int8 weights / int32 biases; frozen parameters stay
  in Flash), ``optimizer`` (per trained parameter: momentum 4 B, Adam 8 B, float shadow 4 B) and
  ``scratch``.
* **Persistent buffers** (param copies, optimizer state) live for the whole step (``first = -1``,
  ``last = n_steps - 1``): the next training step needs them.
* **Batch** ``B``: activations, masks, activation gradients and losses scale with ``B``; parameter
  gradients do not (they are summed over the batch).
* **Reordering** (tiny-training's in-place update, ``reorder=True``): each layer's ``update`` step
  follows its ``backward`` step, so its parameter gradient dies at once. ``reorder=False`` keeps
  every parameter gradient until a final update phase.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from tinyzo.errors import InputError
from tinyzo.graph import Model
from tinyzo.memory.schedule import Buffer as _Buffer
from tinyzo.memory.schedule import (
    InPlace,
    Schedule,
    ScheduleError,
    Step,
    _inplace_candidates,
    flash_contents,
    inference_schedule,
    scratch_bytes,
)
from tinyzo.training.methods import Method
from tinyzo.training.methods import parse_method as _parse
from tinyzo.training.scheme import SparseScheme

__all__ = [
    "METHODS",
    "OPTIMIZER_STATE_BYTES",
    "LayerTraining",
    "optimizer_state_bytes",
    "parse_method",
    "trained_layers",
    "training_schedule",
]

#: the method names (ZO: ``zo-<target>`` or ``zo-<estimator>-<target>``, optional ``-layerwise``)
METHODS = ("inference", "bp", "zo-weight", "zo-node", "zo-mixed")
#: optimizer state bytes per trained parameter; ``"+shadow"`` adds a float32 shadow copy (4 B)
OPTIMIZER_STATE_BYTES = {"sgd": 0, "momentum": 4, "adam": 8}
_WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_BACKWARD_OPS = _WEIGHT_OPS + ("ADD", "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "RESHAPE", "QUANTIZE")
_NO_MASK_OPS = ("RESHAPE",)


@dataclass(frozen=True)
class LayerTraining:
    """What one trained layer costs.

    Attributes:
        op: operator index.
        weight_params: trained int8 weights (0: bias only).
        bias_params: trained int32 biases (0: weights only).
        saved_input: int8 input elements per sample the weight gradient needs; ``None`` when the
            whole input tensor is kept (no copy), 0 when no input is needed (bias only).
        weight_channels: trained output channels (SparseScheme) or kept input channels
            (tiny-training scheme); 0 for bias only.
    """

    op: int
    weight_params: int
    bias_params: int
    saved_input: int | None
    weight_channels: int = 0


def parse_method(method) -> dict:
    """``method`` -> ``{"family", "estimator", "target", "layerwise"}``; :class:`ScheduleError` if unknown.

    Names (:func:`tinyzo.training.methods.parse_method`): ``"inference"``, ``"bp"``, ``"zo-weight"`` /
    ``"zo-node"`` / ``"zo-mixed"`` (estimator RGE) or ``"zo-<rge|spsa|signspsa>-<weight|node|mixed>"``
    (the names ``tinyzo train`` accepts), each ZO name optionally followed by ``"-layerwise"``; or a
    :class:`tinyzo.training.methods.Method`.
    """
    if isinstance(method, Method):
        m = method
    else:
        try:
            m = _parse(method, allow=("inference", "bp", "zo"))
        except InputError as e:
            raise ScheduleError(str(e)) from None
    if m.family not in ("inference", "bp", "zo"):
        raise ScheduleError(f"the memory planner has no schedule for {m.name!r}; methods: inference, bp, zo-...")
    return {"family": m.family, "estimator": m.estimator, "target": m.target, "layerwise": m.layerwise}


def optimizer_state_bytes(optimizer) -> int:
    """Bytes of optimizer state per trained parameter: ``"sgd"`` 0, ``"momentum"`` 4, ``"adam"`` 8, ``"+shadow"`` +4."""
    if not isinstance(optimizer, str):
        raise ScheduleError(f"optimizer must be a string like 'sgd', 'adam+shadow', got {optimizer!r}")
    base, _, extra = optimizer.partition("+")
    if base not in OPTIMIZER_STATE_BYTES or extra not in ("", "shadow"):
        raise ScheduleError(f"unknown optimizer {optimizer!r}; optimizers: sgd, momentum, adam, each optionally "
                            "+shadow (a float32 shadow copy)")
    return OPTIMIZER_STATE_BYTES[base] + 4 * (extra == "shadow")


def _check_model(model):
    if not isinstance(model, Model):
        raise ScheduleError(f"training_schedule needs a tinyzo Model (tinyzo.load(path)), got {type(model).__name__}")


def _elems(model, t: int) -> int:
    """Elements of one sample of tensor ``t`` (the batch dimension dropped)."""
    return int(np.prod(model.tensors[t].shape[1:], dtype=np.int64))


def _weight_layout(model, k: int):
    """(output channels, weights per output channel) of trainable operator ``k``."""
    op = model.operators[k]
    n_out = int(model.prepared[k].n_out)
    w_size = int(np.prod(model.tensors[op.inputs[1]].shape, dtype=np.int64))
    return n_out, w_size // n_out


def _bias_size(model, k: int) -> int:
    op = model.operators[k]
    if len(op.inputs) > 2 and op.inputs[2] != -1:
        return int(np.prod(model.tensors[op.inputs[2]].shape, dtype=np.int64))
    return 0


def _full_layer(model, k: int, bias: bool = True) -> LayerTraining:
    n_out, per = _weight_layout(model, k)
    return LayerTraining(k, n_out * per, _bias_size(model, k) if bias else 0, None, n_out)


def _check_layers(model, layers) -> list:
    trainable = model.trainable_ops()
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
        raise ScheduleError(f"layers must be a list of trainable operator indices, got {layers!r}")
    out = []
    for k in layers:
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or int(k) not in trainable:
            raise ScheduleError(f"layer {k!r} is not a trainable operator of the model; trainable: {trainable}")
        out.append(int(k))
    if not out:
        raise ScheduleError("layers is empty: name at least one trainable operator")
    if len(set(out)) != len(out):
        raise ScheduleError(f"layers names an operator twice: {out}")
    return sorted(out)


def trained_layers(model, method: str = "bp", *, scheme=None, layers=None) -> dict:
    """``{op: LayerTraining}`` of the layers ``method`` trains, in execution order.

    * ``"bp"``: ``scheme`` (a :class:`tinyzo.bp.SparseScheme`, or a
      :class:`tinyzo.memory.published.TinyTrainingScheme`), else ``layers`` (trained fully, every
      later layer's bias and the classifier as ``tinyzo train --method bp --layers`` does), else every
      trainable layer. A SparseScheme trains ``ceil(ratio * O)`` output channels: the weight gradient
      of a conv / fully connected layer then needs its whole input, a depthwise layer only the
      selected channels (copied aside).
    * ZO methods: ``layers`` (default every trainable layer), weights and biases fully.
    """
    _check_model(model)
    fam = parse_method(method)["family"]
    if fam == "inference":
        return {}
    if fam == "zo":
        if scheme is not None:
            raise ScheduleError("a sparse scheme applies to bp only; give ZO methods layers= (tinyzo train --layers)")
        ks = _check_layers(model, layers) if layers is not None else model.trainable_ops()
        return {k: _full_layer(model, k) for k in ks}
    if scheme is not None and layers is not None:
        raise ScheduleError("give bp either a scheme or layers, not both")
    if scheme is None:
        if layers is None:
            scheme = SparseScheme.full(model)
        else:
            ks = _check_layers(model, layers)
            ops = model.trainable_ops()
            scheme = SparseScheme(bias_last_k=len(ops) - ops.index(ks[0]), weights={k: 1.0 for k in ks}, classifier=True)
    if hasattr(scheme, "layer_trainings"):  # tiny-training's input-channel scheme (tinyzo.memory.published)
        return scheme.layer_trainings(model)
    if not isinstance(scheme, SparseScheme):
        raise ScheduleError(f"scheme must be a tinyzo.bp.SparseScheme, got {type(scheme).__name__}")
    out = {}
    for k, (ratio, bias) in scheme.layer_plan(model).items():
        n_out, per = _weight_layout(model, k)
        n_b = _bias_size(model, k) if bias else 0
        if ratio <= 0:
            out[k] = LayerTraining(k, 0, n_b, 0, 0)
            continue
        n_sel = min(n_out, max(1, math.ceil(ratio * n_out - 1e-9)))
        saved = None
        if model.operators[k].opcode == "DEPTHWISE_CONV_2D" and n_sel < n_out:
            saved = _elems(model, model.operators[k].inputs[0]) * n_sel // n_out
        out[k] = LayerTraining(k, n_sel * per, n_b, saved, n_sel)
    return out


# --------------------------------------------------------------------------- the builder
class _Builder:
    """Collects buffers and steps; a buffer's lifetime grows with every step that uses it."""

    END = "end"

    def __init__(self, model, batch: int):
        self.model = model
        self.batch = batch
        self.bufs: list = []  # [name, kind, nbytes, first, last, tensor]
        self.steps: list = []

    def new(self, name, kind, nbytes, tensor=None, first=None) -> int:
        """A buffer written by the next step (``first=-1``: before step 0)."""
        f = len(self.steps) if first is None else first
        self.bufs.append([name, kind, int(nbytes), f, f, tensor])
        return len(self.bufs) - 1

    def persistent(self, name, kind, nbytes) -> int:
        self.bufs.append([name, kind, int(nbytes), -1, self.END, None])
        return len(self.bufs) - 1

    def step(self, kind, opcode, op, reads=(), writes=(), scratch=(), inplace=()) -> int:
        s = len(self.steps)
        reads = tuple(dict.fromkeys(i for i in reads if i is not None))
        writes = tuple(dict.fromkeys(i for i in writes if i is not None))
        scratch = tuple(scratch)
        for i in reads + writes + scratch:
            if self.bufs[i][4] != self.END:
                self.bufs[i][4] = max(self.bufs[i][4], s)
        self.steps.append(Step(s, kind, opcode, op, reads, writes, scratch, tuple(inplace)))
        return s

    def act_bytes(self, t: int) -> int:
        return self.batch * _elems(self.model, t) * self.model.tensors[t].dtype.itemsize

    def grad_bytes(self, t: int) -> int:
        return 4 * self.batch * _elems(self.model, t)

    def finish(self, method: str, info: dict) -> Schedule:
        n = len(self.steps)
        buffers = [_Buffer(name, kind, nb, first, n - 1 if last == self.END else last, tensor)
                   for name, kind, nb, first, last, tensor in self.bufs]
        sched = Schedule(self.steps, buffers, flash_contents(self.model), method, self.model.name, info)
        sched.validate()
        return sched


def _forward_pass(b: _Builder, start: int, env: dict, *, masks: set = frozenset(), copies: dict | None = None,
                  tag: str = "") -> tuple:
    """Forward steps of operators ``start..n-1``; ``env`` {tensor: buffer} holds what is available.

    ``masks``: operators whose 1-bit output mask is stored (for a later backward);
    ``copies``: ``{op: elements per sample}``: copy that many input elements aside (sparse depthwise).
    Returns ``(env, {op: mask buffer}, {op: copy buffer})``.
    """
    model = b.model
    mask_of, copy_of = {}, {}
    for k in range(start, len(model.operators)):
        op = model.operators[k]
        reads = [env[t] for t in op.inputs if t in env]
        writes = []
        for t in op.outputs:
            if model.tensors[t].nbytes > 0:
                env[t] = b.new(f"{tag}{model.tensors[t].name or f't{t}'}", "activation", b.act_bytes(t), tensor=t)
                writes.append(env[t])
        x = model.tensors[op.inputs[0]] if op.inputs and op.inputs[0] != -1 else None
        scratch = []
        for j, nb in enumerate(scratch_bytes(model, k)):
            if op.opcode == "MEAN" and j == 0 and x is not None and x.dtype in (np.int8, np.int16):
                nb *= b.batch  # the int32 accumulator has one entry per output element
            scratch.append(b.new(f"{tag}{op.opcode}#{k}/scratch{j}", "scratch", nb))
        if k in masks and op.opcode not in _NO_MASK_OPS:
            mask_of[k] = b.new(f"{model.tensors[op.outputs[0]].name}/mask", "mask",
                               b.batch * -(-_elems(model, op.outputs[0]) // 8))
            writes.append(mask_of[k])
        if copies and k in copies:
            copy_of[k] = b.new(f"{model.tensors[op.inputs[0]].name}/saved-channels", "activation",
                               b.batch * copies[k] * model.tensors[op.inputs[0]].dtype.itemsize)
            writes.append(copy_of[k])
        inplace = ()
        if len(op.outputs) == 1 and op.outputs[0] in env:
            inplace = _inplace_candidates(model, k, env)
        b.step("forward", op.opcode, k, reads, writes, scratch, inplace)
    return env, mask_of, copy_of


def _model_inputs(b: _Builder) -> dict:
    model = b.model
    return {t: b.new(model.tensors[t].name or f"t{t}", "activation", b.act_bytes(t), tensor=t, first=-1)
            for t in model.inputs if model.tensors[t].nbytes > 0}


def _producers(model) -> dict:
    return {t: k for k, op in enumerate(model.operators) for t in op.outputs}


def _params(b: _Builder, plan: dict, state_bytes: int) -> dict:
    """Persistent SRAM copies of the trained parameters and their optimizer state: ``{op: [buffer ids]}``."""
    model = b.model
    out = {}
    for k, lt in plan.items():
        name = model.tensors[model.operators[k].outputs[0]].name
        ids = []
        if lt.weight_params:
            ids.append(b.persistent(f"{name}/weights (SRAM copy)", "param_copy", lt.weight_params))
        if lt.bias_params:
            ids.append(b.persistent(f"{name}/bias (SRAM copy)", "param_copy", 4 * lt.bias_params))
        if state_bytes:
            ids.append(b.persistent(f"{name}/optimizer state", "optimizer",
                                    state_bytes * (lt.weight_params + lt.bias_params)))
        out[k] = ids
    return out


def _param_grads(b: _Builder, k: int, lt: LayerTraining) -> list:
    name = b.model.tensors[b.model.operators[k].outputs[0]].name
    ids = []
    if lt.weight_params:
        ids.append(b.new(f"grad/{name}/weights", "gradient", 4 * lt.weight_params))
    if lt.bias_params:
        ids.append(b.new(f"grad/{name}/bias", "gradient", 4 * lt.bias_params))
    return ids


def _update(b: _Builder, k: int, grads: list, params: list, extra_reads=()) -> None:
    b.step("update", b.model.operators[k].opcode, k, tuple(grads) + tuple(params) + tuple(extra_reads), params)


def _traversed(model, first: int) -> set:
    """Operators ``>= first`` the gradient of the loss reaches (their output leads to the logits)."""
    reach = {model.loss_tensor}
    out = set()
    for k in range(len(model.operators) - 1, first - 1, -1):
        op = model.operators[k]
        if op.outputs and op.outputs[0] in reach:
            out.add(k)
            reach.update(t for t in op.inputs if t != -1 and not model.tensors[t].is_constant)
    return out


def _check_backward_ops(model, trav: set) -> None:
    for k in sorted(trav):
        if model.operators[k].opcode not in _BACKWARD_OPS or (
                model.operators[k].opcode == "QUANTIZE" and model.tensors[model.operators[k].inputs[0]].dtype != np.int8):
            raise ScheduleError(f"operator {k} ({model.operators[k].opcode}) has no backward in tinyzo; it lies "
                                "between a trained layer and the loss")


def _bp_copies(plan: dict) -> dict:
    """``{op: elements per sample}`` the forward copies aside for a sparse depthwise layer's backward."""
    return {k: lt.saved_input for k, lt in plan.items() if lt.weight_params and lt.saved_input}


def _bp_saved(model, plan: dict, trav: set, env: dict, copy_of: dict) -> dict:
    """``{op: buffer}`` the backward reads: trained layers' inputs (unless copied), MAX_POOL inputs."""
    saved = {}
    for k in trav:
        op = model.operators[k]
        if (k in plan and plan[k].weight_params and k not in copy_of) or op.opcode == "MAX_POOL_2D":
            saved[k] = env.get(op.inputs[0])
        elif k in copy_of:
            saved[k] = copy_of[k]
    return saved


def _bp_loss(b: _Builder, env: dict) -> dict:
    """The loss step of back propagation: ``{logits tensor: its gradient buffer}``."""
    logits = b.model.loss_tensor
    grad = {logits: b.new(f"grad/{b.model.tensors[logits].name}", "gradient", b.grad_bytes(logits), tensor=logits)}
    b.step("loss", "LOSS", -1, (env[logits],), (grad[logits],))
    return grad


def _bp_backward(b: _Builder, plan: dict, params: dict, trav: set, mask_of: dict, saved: dict, grad: dict,
                 reorder: bool) -> None:
    """The backward steps from the loss down to the first trained layer, and the updates."""
    model = b.model
    first = min(plan)
    prod = _producers(model)
    pending = []
    for k in range(len(model.operators) - 1, first - 1, -1):
        if k not in trav:
            continue
        op = model.operators[k]
        g_out = grad[op.outputs[0]]
        reads = [g_out, mask_of.get(k), saved.get(k)]
        acts = [t for t in op.inputs if t != -1 and not model.tensors[t].is_constant]
        if op.opcode in _WEIGHT_OPS:
            acts = acts[:1] if k > first else []
        elif op.opcode != "ADD":
            acts = acts[:1]
        writes, inplace, scratch = [], [], []
        for t in dict.fromkeys(acts):
            if prod.get(t, -1) < first:
                continue  # produced before the first trained layer: its gradient is never used
            if t in grad:
                reads.append(grad[t])  # accumulate (a tensor read by two operators)
                writes.append(grad[t])
                continue
            grad[t] = b.new(f"grad/{model.tensors[t].name}", "gradient", b.grad_bytes(t), tensor=t)
            writes.append(grad[t])
            same = b.bufs[grad[t]][2] == b.bufs[g_out][2]
            if op.opcode in ("ADD", "RESHAPE", "QUANTIZE") and same:
                inplace.append(InPlace(grad[t], g_out, 0))
            elif op.opcode == "DEPTHWISE_CONV_2D" and model.prepared[k].depth_multiplier == 1:
                plane = 4 * int(np.prod(model.tensors[op.outputs[0]].shape[1:3], dtype=np.int64))
                inplace.append(InPlace(grad[t], g_out, plane))
        pgrads = _param_grads(b, k, plan[k]) if k in plan else []
        b.step("backward", op.opcode, k, reads, writes + pgrads, scratch, inplace)
        if k in plan:
            if reorder:
                _update(b, k, pgrads, params[k])
            else:
                pending.append((k, pgrads))
    for k, pgrads in pending:
        _update(b, k, pgrads, params[k])


def _bp_schedule(b: _Builder, plan: dict, state_bytes: int, reorder: bool) -> None:
    model = b.model
    trav = _traversed(model, min(plan))
    _check_backward_ops(model, trav)
    params = _params(b, plan, state_bytes)
    env, mask_of, copy_of = _forward_pass(b, 0, _model_inputs(b), masks=trav, copies=_bp_copies(plan))
    saved = _bp_saved(model, plan, trav, env, copy_of)
    grad = _bp_loss(b, env)
    _bp_backward(b, plan, params, trav, mask_of, saved, grad, reorder)


def _zo_schedule(b: _Builder, plan: dict, state_bytes: int, reorder: bool, parsed: dict, mixed_split: int,
                 bp_plan: dict | None = None) -> None:
    """The ZO step; with ``bp_plan`` the hybrid step: the base pass also keeps what back propagation
    over the ``bp_plan`` layers needs (their clamp masks and saved inputs, alive through the queries),
    then the queries, the ZO updates, and the backward + updates of the BP layers."""
    model = b.model
    layers = sorted(plan)
    if parsed["target"] == "weight":
        w_layers, n_layers = layers, []
    elif parsed["target"] == "node":
        w_layers, n_layers = [], layers
    else:
        s = max(0, min(int(mixed_split), len(layers)))
        w_layers, n_layers = layers[:s], layers[s:]
    first = layers[0]
    start = first if parsed["layerwise"] else 0
    params = _params(b, {**plan, **(bp_plan or {})}, state_bytes)
    w_params = [i for k in w_layers for i in params[k]]
    trav = set()
    if bp_plan:
        trav = _traversed(model, min(bp_plan))
        _check_backward_ops(model, trav)
    # base pass: node layers keep their input and the mask of their output for the local backward
    env, mask_of, copy_of = _forward_pass(b, 0, _model_inputs(b), masks=set(n_layers) | trav,
                                          copies=_bp_copies(bp_plan) if bp_plan else None)
    saved = {k: env[model.operators[k].inputs[0]] for k in n_layers}
    out_t = model.loss_tensor  # the logits: the same tensor the trainers take the loss on
    losses = [b.new("loss (base)", "activation", 4 * b.batch)]
    b.step("loss", "LOSS", -1, (env[out_t],), (losses[0],))
    if bp_plan:
        bp_saved = _bp_saved(model, bp_plan, trav, env, copy_of)
        bp_grad = _bp_loss(b, env)
    prod = _producers(model)
    cache = {t: env[t] for t in env if prod.get(t, -1) < start}
    signs = ("+",) if parsed["estimator"] == "rge" else ("+", "-")
    # in-place perturbation w' = clamp(w + u) loses w where the clamp bites: one bit per perturbed
    # parameter records it, so that "restore" (w = w' - u, u regenerated from its seed) is exact for
    # |u| <= 1 LSB (the default); larger perturbations would need ceil(log2(U + 1)) bits (docs/memory.md)
    n_pert = sum(plan[k].weight_params + plan[k].bias_params for k in w_layers)
    for sign in signs:
        if w_params:
            bits = b.new(f"clamp bits of the perturbed parameters ({sign})", "mask", -(-n_pert // 8))
            b.step("perturb", "PERTURB", -1, w_params, list(w_params) + [bits])
        env2, _, _ = _forward_pass(b, start, dict(cache), tag=f"q{sign}:")
        if w_params:
            b.step("restore", "RESTORE", -1, list(w_params) + [bits], w_params)
        losses.append(b.new(f"loss ({sign}perturbed)", "activation", 4 * b.batch))
        b.step("loss", "LOSS", -1, (env2[out_t],), (losses[-1],))
    need = losses if parsed["estimator"] == "rge" else losses[1:]
    coef = b.new("projected loss difference", "activation", 4 * b.batch)
    b.step("estimate", "ESTIMATE", -1, need, (coef,))
    pending = []
    for k in n_layers:  # execution order: the large early inputs are freed first
        op = model.operators[k]
        pgrads = _param_grads(b, k, plan[k])
        row = b.new(f"{model.tensors[op.outputs[0]].name}/local-backward row", "scratch", 4 * int(model.prepared[k].n_out))
        b.step("backward", op.opcode, k, (coef, saved[k], mask_of.get(k)), pgrads, (row,))
        if reorder:
            _update(b, k, pgrads, params[k], (coef,))
        else:
            pending.append((k, pgrads))
    for k, pgrads in pending:
        _update(b, k, pgrads, params[k], (coef,))
    for k in w_layers:  # the gradient is coef * u: u regenerated from its seed, nothing stored
        _update(b, k, [], params[k], (coef,))
    if bp_plan:
        _bp_backward(b, bp_plan, params, trav, mask_of, bp_saved, bp_grad, reorder)


def training_schedule(model, method: str = "bp", *, scheme=None, layers=None, batch: int = 1,
                      optimizer: str = "sgd", reorder: bool = True, mixed_split: int = 1, bp_layers=None) -> Schedule:
    """The static schedule of one training step (or of inference) of ``model`` on an MCU.

    Args:
        model: a :class:`tinyzo.graph.Model` (int8).
        method: ``"inference"``, ``"bp"``, ``"zo-weight"``, ``"zo-node"``, ``"zo-mixed"`` or
            ``"zo-<rge|spsa|signspsa>-<weight|node|mixed>"``, each ZO name optionally with the suffix
            ``"-layerwise"`` (see :func:`parse_method`). Without ``-layerwise`` every ZO query reruns
            the whole network, so the model input stays alive; with it, the activations entering the
            first trained layer stay alive (the cache) and each query reruns only the layers from there.
        scheme: bp only: a :class:`tinyzo.bp.SparseScheme` (sparse BP) or a
            :class:`tinyzo.memory.published.TinyTrainingScheme`.
        layers: trainable operator indices (ZO: the trained layers; bp: trained fully, as
            ``tinyzo train --method bp --layers``).
        batch: samples per step (int >= 1).
        optimizer: ``"sgd"`` (no state), ``"momentum"`` (4 B/param), ``"adam"`` (8 B/param), each
            optionally ``"+shadow"`` (a float32 shadow copy, +4 B/param).
        reorder: apply each layer's update right after its gradient (tiny-training's in-place update).
        mixed_split: ``zo-mixed``: weight perturbation for the first ``mixed_split`` trained layers.
        bp_layers: ZO methods only: the hybrid step (:class:`tinyzo.zo.hybrid.HybridTrainer`): these
            trainable layers (all after ``layers``, the ZO ones) are trained by back propagation
            (weights and biases), the base pass keeping what their backward needs.

    Returns:
        A validated :class:`Schedule`; ``schedule.info`` holds the trained layers and parameter counts.

    Raises:
        ScheduleError: unknown method or optimizer, bad batch, a scheme with a ZO method, layers the
            model lacks; :class:`tinyzo.training.scheme.SchemeError` for a scheme that does not fit the model.
    """
    _check_model(model)
    parsed = parse_method(method)
    if not isinstance(batch, numbers.Integral) or isinstance(batch, bool) or batch < 1:
        raise ScheduleError(f"batch must be an integer >= 1, got {batch!r}")
    state_bytes = optimizer_state_bytes(optimizer)
    if not isinstance(reorder, (bool, np.bool_)):
        raise ScheduleError(f"reorder must be True or False, got {reorder!r}")
    if parsed["family"] == "inference":
        if scheme is not None or layers is not None:
            raise ScheduleError("inference trains nothing: do not give a scheme or layers")
        sched = inference_schedule(model)
        if batch > 1:
            sched.buffers = [_Buffer(x.name, x.kind, x.nbytes * (batch if x.kind == "activation" else 1), x.first,
                                     x.last, x.tensor, x.pinned) for x in sched.buffers]
        sched.info = {"method": "inference", "batch": int(batch), "trained_params": 0, "trained_layers": []}
        return sched
    plan = trained_layers(model, method, scheme=scheme, layers=layers)
    bp_plan = None
    if bp_layers is not None:
        if parsed["family"] != "zo":
            raise ScheduleError("bp_layers makes a ZO method's step hybrid; use it with a zo method")
        bp_plan = {k: _full_layer(model, k) for k in _check_layers(model, bp_layers)}
        if not bp_plan or min(bp_plan) <= max(plan) or set(bp_plan) & set(plan):
            raise ScheduleError(f"the hybrid's BP layers {sorted(bp_plan)} must all come after its ZO layers "
                                f"{sorted(plan)}")
    b = _Builder(model, int(batch))
    if parsed["family"] == "bp":
        _bp_schedule(b, plan, state_bytes, bool(reorder))
    else:
        if isinstance(mixed_split, bool) or not isinstance(mixed_split, numbers.Integral) or mixed_split < 0:
            raise ScheduleError(f"mixed_split must be an integer >= 0, got {mixed_split!r}")
        _zo_schedule(b, plan, state_bytes, bool(reorder), parsed, mixed_split, bp_plan)
        if bp_plan:
            plan = {**plan, **bp_plan}
    info = {"method": method + (" + bp" if bp_plan else ""), "batch": int(batch), "optimizer": optimizer, "reorder": bool(reorder),
            "optimizer_bytes_per_param": state_bytes,
            "trained_layers": [int(k) for k in plan],
            "trained_params": int(sum(lt.weight_params + lt.bias_params for lt in plan.values())),
            "trained_weight_params": int(sum(lt.weight_params for lt in plan.values())),
            "trained_bias_params": int(sum(lt.bias_params for lt in plan.values()))}
    if scheme is not None:
        info["scheme"] = getattr(scheme, "label", None) or getattr(scheme, "name", None)
    return b.finish(method, info)
