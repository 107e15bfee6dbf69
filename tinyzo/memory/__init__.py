"""Memory planning: peak SRAM (arena) and Flash of a model on a microcontroller.

    from tinyzo.memory import inference_schedule, plan_arena, memory_report
    sched = inference_schedule(model)              # steps, buffers with sizes and lifetimes, Flash
    plan = plan_arena(sched, in_place=True)        # offsets, plan.peak_bytes
    report = memory_report(model)                  # a JSON-ready dict for the CLI
    sched = training_schedule(model, "bp", scheme=scheme)    # one training step (BP, sparse BP, ZO)
    report = memory_report(model, "zo-node", budget_bytes=256 * 1024)
    cost = scheme_peak_bytes(model, scheme)        # peak SRAM of sparse BP (a search's cost function)

See docs/memory.md for the rules (lifetimes, alignment, scratch, in-place, training schedules,
reordering) and the comparison with TFLite Micro's own planner; docs/memory_training.md compares
the training peaks with the published figures.
"""

from __future__ import annotations

import math
import numbers

from tinyzo.errors import TinyzoError
from tinyzo.memory.arena import Plan, PlanError, check_plan, greedy_offsets, plan_arena
from tinyzo.memory.schedule import Buffer, InPlace, Schedule, ScheduleError, Step, inference_schedule
from tinyzo.memory.training import (
    METHODS,
    LayerTraining,
    optimizer_state_bytes,
    parse_method,
    trained_layers,
    training_schedule,
)
from tinyzo.training.update import optimizer_memory_name as optimizer_name

__all__ = [
    "KIND_LABELS",
    "METHODS",
    "Buffer",
    "InPlace",
    "LayerTraining",
    "Plan",
    "PlanError",
    "Schedule",
    "ScheduleError",
    "Step",
    "check_plan",
    "greedy_offsets",
    "inference_schedule",
    "memory_report",
    "optimizer_name",
    "optimizer_state_bytes",
    "parse_method",
    "plan_arena",
    "plot_timeline",
    "report_from_plan",
    "scheme_peak_bytes",
    "trained_layers",
    "trainer_memory_report",
    "training_schedule",
]

# buffer kind -> breakdown key (the order is the stacking order of the plots)
KIND_LABELS = {
    "activation": "activations",
    "gradient": "gradients",
    "param_copy": "param_copies",
    "mask": "masks",
    "optimizer": "optimizer_state",
    "scratch": "scratch",
}


_SHORT = {"DEPTHWISE_CONV_2D": "DW", "CONV_2D": "CONV", "FULLY_CONNECTED": "FC", "AVERAGE_POOL_2D": "AVGPOOL",
          "MAX_POOL_2D": "MAXPOOL", "CONCATENATION": "CONCAT", "DEQUANTIZE": "DEQUANT", "QUANTIZE": "QUANT"}


def _label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


def report_from_plan(plan: Plan, baseline_peak: int | None = None) -> dict:
    """The report dict of a plan (see :func:`memory_report`); ``baseline_peak``: the peak without in-place."""
    sched = plan.schedule
    labels = list(dict.fromkeys([_label(k) for k in KIND_LABELS] + [_label(b.kind) for b in plan.buffers]))
    by_kind = []
    timeline = []
    for s in sched.steps:
        live = {_label(k): v for k, v in plan.live_bytes(s.index).items()}
        row = {lab: int(live.get(lab, 0)) for lab in labels}
        by_kind.append(row)
        timeline.append((s.index, s.opcode, int(sum(row.values()))))
    present = [lab for lab in labels if any(r[lab] for r in by_kind)] or ["activations"]
    by_kind = [{lab: r[lab] for lab in present} for r in by_kind]
    peak_step = max(range(len(timeline)), key=lambda i: timeline[i][2]) if timeline else 0
    breakdown = dict(by_kind[peak_step]) if by_kind else {"activations": 0}
    for lab in ("activations", "scratch"):
        breakdown.setdefault(lab, 0)
    live_total = sum(breakdown.values())
    breakdown["fragmentation"] = int(plan.peak_bytes - live_total)
    return {
        "model": sched.name,
        "method": sched.method,
        "in_place": plan.in_place,
        "alignment": plan.alignment,
        "peak_sram_bytes": int(plan.peak_bytes),
        "peak_without_inplace_bytes": int(plan.peak_bytes if baseline_peak is None else baseline_peak),
        "live_lower_bound_bytes": int(max((t[2] for t in timeline), default=0)),
        "peak_step": int(peak_step),
        "state_bytes": int(sched.persistent_bytes(plan.alignment)),
        "flash_bytes": int(sched.flash_bytes),
        "flash": {k: int(v) for k, v in sched.flash.items()},
        "breakdown": {k: int(v) for k, v in breakdown.items()},
        "timeline": timeline,
        "timeline_by_kind": by_kind,
        "inplace_ops": [int(sched.steps[s].op) for s, _, _ in plan.inplace],
    }


def _check_budget(budget_bytes):
    if budget_bytes is None:
        return None
    if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, numbers.Real) \
            or not math.isfinite(float(budget_bytes)) or budget_bytes <= 0:
        raise PlanError(f"the SRAM budget must be a positive number of bytes, got {budget_bytes!r}")
    return int(budget_bytes)


def memory_report(model, method: str = "inference", *, scheme=None, layers=None, batch: int = 1,
                  optimizer: str = "sgd", reorder: bool = True, in_place: bool = True, budget_bytes=None,
                  alignment: int = 16, mixed_split: int = 1, bp_layers=None) -> dict:
    """Peak SRAM and Flash of running (``method="inference"``) or training ``model`` on an MCU.

    Args:
        model: a :class:`tinyzo.graph.Model`.
        method, scheme, layers, batch, optimizer, reorder, mixed_split, bp_layers: the schedule
            (:func:`tinyzo.memory.training_schedule`; ``"inference"`` is the inference schedule).
        in_place: allow TinyEngine-style in-place depthwise/element-wise steps (forward and backward).
        budget_bytes: an SRAM budget in bytes (> 0) to check the peak against, or None.
        alignment: arena alignment in bytes (TFLM: 16).

    Returns:
        A JSON-ready dict:

        * ``peak_sram_bytes``: arena high-water mark of the greedy plan (with in-place if asked).
        * ``peak_without_inplace_bytes``: the same without in-place (TFLM's planner).
        * ``peak_without_reorder_bytes``: the peak (same in-place setting) when every parameter
          gradient is kept until a final update phase (equal to the peak for inference and for
          methods without parameter gradients); ``peak_with_reorder_bytes`` likewise with reordering.
        * ``live_lower_bound_bytes``: the most bytes alive at one step (no planner can do better).
        * ``state_bytes``: the model's variable tensors (state kept between inferences, e.g. SVDF's
          activation state), each rounded up to ``alignment``; outside the planned arena, as in
          TFLM's persistent tail: the device needs ``peak_sram_bytes + state_bytes``. 0 for a
          stateless model.
        * ``flash_bytes`` and ``flash`` (``weights``/``bias``/``other_constants``): constant data bytes.
        * ``breakdown``: bytes per kind (``activations``, ``scratch``; training adds ``gradients``,
          ``param_copies``, ``masks``, ``optimizer_state``) at the step with the most live bytes
          (``peak_step``), plus ``fragmentation``; the values sum to ``peak_sram_bytes``.
        * ``timeline``: ``[(step, opcode, live bytes)]``; ``timeline_by_kind``: ``[{kind: bytes}]``;
          ``step_kinds``: each step's kind (forward, loss, backward, update, perturb, ...).
        * ``inplace_ops``: operator indices of the steps executed in place.
        * ``trained_params``, ``trained_layers``, ``batch``, ``optimizer``, ``reorder`` (and ``scheme``).
        * with a budget: ``budget_bytes``, ``fits`` and ``margin_bytes`` (budget - peak, negative
          when it does not fit).

    Raises:
        ScheduleError, PlanError, tinyzo.training.scheme.SchemeError: bad method, scheme, layers,
            optimizer, batch or budget.
    """
    budget = _check_budget(budget_bytes)

    def plan_of(reo):
        sched = training_schedule(model, method, scheme=scheme, layers=layers, batch=batch, optimizer=optimizer,
                                  reorder=reo, mixed_split=mixed_split, bp_layers=bp_layers)
        base = plan_arena(sched, in_place=False, alignment=alignment)
        if not in_place:
            return sched, base, base
        return sched, base, plan_arena(sched, in_place=True, alignment=alignment)

    sched, base, plan = plan_of(reorder)
    rep = report_from_plan(plan, baseline_peak=base.peak_bytes)
    has_grads = any(b.kind == "gradient" and b.tensor is None for b in sched.buffers)
    other = plan_of(not reorder)[2].peak_bytes if has_grads else plan.peak_bytes
    rep["peak_with_reorder_bytes"] = int(plan.peak_bytes if reorder else other)
    rep["peak_without_reorder_bytes"] = int(other if reorder else plan.peak_bytes)
    rep["step_kinds"] = [s.kind for s in sched.steps]
    rep["method"] = method
    rep["batch"] = int(batch)
    rep["optimizer"] = optimizer
    rep["reorder"] = bool(reorder)
    rep["trained_params"] = int(sched.info.get("trained_params", 0))
    rep["trained_layers"] = list(sched.info.get("trained_layers", []))
    if "scheme" in sched.info:
        rep["scheme"] = sched.info["scheme"]
    if budget is not None:
        rep["budget_bytes"] = budget
        rep["fits"] = rep["peak_sram_bytes"] <= budget
        rep["margin_bytes"] = budget - rep["peak_sram_bytes"]
    return rep


def scheme_peak_bytes(model, scheme, *, optimizer: str = "sgd", batch: int = 1, in_place: bool = True,
                      alignment: int = 16) -> int:
    """Peak SRAM (bytes, int) of one sparse-BP training step of ``model`` with ``scheme`` (reordered updates).

    The cost function of a scheme search: the arena peak of
    ``training_schedule(model, "bp", scheme=scheme, ...)`` planned with in-place steps. ``scheme`` is
    a :class:`tinyzo.bp.SparseScheme` (or a :class:`tinyzo.memory.published.TinyTrainingScheme`).
    """
    if scheme is None:
        raise ScheduleError("scheme_peak_bytes needs a scheme (tinyzo.bp.SparseScheme); for full BP use "
                            "SparseScheme.full(model)")
    sched = training_schedule(model, "bp", scheme=scheme, batch=batch, optimizer=optimizer, reorder=True)
    return int(plan_arena(sched, in_place=in_place, alignment=alignment).peak_bytes)


def trainer_memory_report(trainer, *, lean: bool = False, budget_bytes=None) -> dict:
    """:func:`memory_report` of the MCU training step a trainer runs, at batch 1, as the trainer
    describes it (:meth:`tinyzo.training.trainer.Trainer.memory_spec`: sparse BP with its scheme and
    optimizer state; layer-wise ZO of its estimator, target and layers, as it reruns each query from
    the first trained layer). ``lean=True``: the same method with plain SGD and per-step rounding (no
    optimizer state). ``budget_bytes``: as :func:`memory_report` (adds ``fits`` and ``margin_bytes``).
    """
    return memory_report(trainer.model, **trainer.memory_spec(lean=lean), budget_bytes=budget_bytes)


def plot_timeline(report: dict, path, *, title: str | None = None) -> None:
    """Save a stacked bar chart of the live bytes per step, by kind, with the arena peak as a line.

    Args:
        report: a dict from :func:`memory_report` (or :func:`report_from_plan`).
        path: the image file to write (PNG by suffix; any matplotlib format).
        title: the plot title (default: model, method and peak).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.get("timeline_by_kind")
    if not rows:
        raise TinyzoError("the report has no timeline to plot")
    kinds = list(rows[0])
    steps = list(range(len(rows)))
    fig, ax = plt.subplots(figsize=(min(max(7.0, 0.22 * len(rows) + 4), 24.0), 4.2))
    bottom = [0.0] * len(rows)
    colors = {"activations": "#4c72b0", "scratch": "#dd8452", "gradients": "#c44e52",
              "param_copies": "#55a868", "masks": "#8172b2", "optimizer_state": "#937860"}
    for k in kinds:
        vals = [r[k] / 1024 for r in rows]
        ax.bar(steps, vals, bottom=bottom, label=k, color=colors.get(k), width=0.8)
        bottom = [b + v for b, v in zip(bottom, vals)]
    peak = report["peak_sram_bytes"] / 1024
    ax.axhline(peak, color="k", ls="--", lw=1, label=f"arena peak {peak:.1f} kB")
    if report.get("peak_without_inplace_bytes", report["peak_sram_bytes"]) != report["peak_sram_bytes"]:
        p0 = report["peak_without_inplace_bytes"] / 1024
        ax.axhline(p0, color="gray", ls=":", lw=1, label=f"without in-place {p0:.1f} kB")
    top = max([peak, report.get("peak_without_inplace_bytes", 0) / 1024] + bottom)
    ax.set_ylim(0, top * 1.12 if top > 0 else 1)
    tl = report["timeline"]
    kinds_of = report.get("step_kinds") or ["forward"] * len(rows)
    prefix = {"forward": "", "backward": "B ", "update": "U ", "loss": "", "perturb": "", "restore": "",
              "estimate": ""}
    every = max(1, -(-len(rows) // 110))  # at most ~110 tick labels
    ax.set_xticks(steps[::every])
    ax.set_xticklabels([f"{t[0]} {prefix.get(kinds_of[t[0]], '')}{_SHORT.get(t[1], t[1])}" for t in tl][::every],
                       rotation=90, fontsize=6 if len(rows) > 60 else 7)
    # shade the phases of a training step (forward passes white, backward grey, updates green)
    shade = {"backward": "#eeeeee", "update": "#e6f2e6", "loss": "#fff2cc", "estimate": "#fff2cc",
             "perturb": "#fde0dd", "restore": "#fde0dd"}
    for i, k in enumerate(kinds_of):
        if k in shade:
            ax.axvspan(i - 0.5, i + 0.5, color=shade[k], zorder=0, lw=0)
    if len(set(kinds_of)) > 1:
        ax.text(0.0, 1.01, "background: grey = backward, green = update, yellow = loss/estimate, "
                "pink = perturb/restore", transform=ax.transAxes, fontsize=6, va="bottom")
    if report.get("peak_without_reorder_bytes", report["peak_sram_bytes"]) > report["peak_sram_bytes"]:
        p1 = report["peak_without_reorder_bytes"] / 1024
        ax.axhline(p1, color="#c44e52", ls="-.", lw=1, label=f"without reordering {p1:.1f} kB")
        ax.set_ylim(0, max(ax.get_ylim()[1], p1 * 1.08))
    ax.set_ylabel("live SRAM (kB = 1024 B)")
    ax.set_xlabel("step (operator; B = backward, U = update)" if len(set(kinds_of)) > 1 else "step (operator)")
    ax.set_title(title or f"{report.get('model', '')} {report.get('method', '')}: peak SRAM {peak:.1f} kB, "
                 f"Flash {report['flash_bytes'] / 1024:.1f} kB", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
