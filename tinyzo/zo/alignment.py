"""How well a multi-layer ZO step points along the back-propagated gradient, per layer.

:mod:`tinyzo.zo.diagnostics` measures one layer at a time against finite differences. A training
step perturbs several layers at once (the defaults: node perturbation on the last six), and each
layer's estimate then also carries the loss noise of the other layers' perturbations. This module
measures that directly: for a :class:`~tinyzo.zo.trainer.ZOConfig`, the estimate
:meth:`ZOTrainer.gradients` would hand to the optimizer, against the exact gradient of the int8
graph from :func:`tinyzo.bp.backward` (the straight-through gradient sparse BP trains with), per
trained layer, over several independent steps (trainer steps 0..repeats-1, so independent
perturbation seeds on the same batch and parameters). It is what docs/zo_results.md uses to say why an
estimator option helps or not.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from tinyzo.bp.backward import backward
from tinyzo.errors import TinyzoError
from tinyzo.zo.diagnostics import cosine
from tinyzo.zo.trainer import ZOConfig, ZOTrainer

__all__ = ["AlignmentError", "alignment_markdown", "bp_alignment"]


class AlignmentError(TinyzoError):
    """Bad arguments to :func:`bp_alignment`."""


def bp_alignment(model, xq, y, configs: dict, *, repeats: int = 8) -> list:
    """Cosine of each config's ZO weight-gradient estimate with the back-propagated gradient, per layer.

    Args:
        model: an int8 :class:`tinyzo.Model` (left unchanged; each config trains a copy, and no update
            is applied).
        xq: int8 model input [N, ...]; y: int labels [N] (0 <= y < classes).
        configs: ``{name: ZOConfig}``; every config must name its ``layers``.
        repeats: independent estimates per config (>= 2, for a standard deviation).

    Returns:
        One dict per (config, layer): ``config``, ``layer`` (operator index), ``cos_mean``, ``cos_sd``
        (over the repeats; the weight gradient), ``cos_of_mean`` (cosine of the mean estimate: what
        averaging the repeats would reach), ``forward_passes`` (per step, the config's cost).
    """
    if not isinstance(configs, dict) or not configs:
        raise AlignmentError("configs must be a non-empty {name: ZOConfig} dict")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 2:
        raise AlignmentError(f"repeats must be an integer >= 2, got {repeats!r}")
    rows = []
    _, env = model(xq, intermediates=True)
    for name, cfg in configs.items():
        if not isinstance(cfg, ZOConfig) or not cfg.layers:
            raise AlignmentError(f"config {name!r} must be a ZOConfig with its layers named")
        ref = backward(model, env, y, layers=cfg.layers)
        tr = ZOTrainer(copy.deepcopy(model), copy.deepcopy(cfg), total_steps=repeats)
        est = {k: [] for k in tr.layers}
        passes = 0
        for r in range(repeats):
            tr.step_count = r
            before = tr.forward_passes
            grads, _, _ = tr.gradients(xq, y)
            passes = tr.forward_passes - before
            for k in tr.layers:
                est[k].append(grads[f"{k}/w"].astype(np.float64))
        for k in tr.layers:
            cos = [cosine(g, ref[k][0]) for g in est[k]]
            rows.append({"config": name, "layer": k, "cos_mean": float(np.mean(cos)),
                         "cos_sd": float(np.std(cos, ddof=1)),
                         "cos_of_mean": cosine(np.mean(est[k], axis=0), ref[k][0]), "forward_passes": passes})
    return rows


def alignment_markdown(rows: list) -> str:
    """A Markdown table of :func:`bp_alignment` rows: one row per config, one column per layer
    (``mean ± sd`` of the cosine), and the forward passes per step."""
    configs = list(dict.fromkeys(r["config"] for r in rows))
    layers = sorted({r["layer"] for r in rows})
    head = "| config | forward passes / step | " + " | ".join(f"op {k}" for k in layers) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(layers)]
    for c in configs:
        mine = {r["layer"]: r for r in rows if r["config"] == c}
        cells = []
        for k in layers:
            r = mine.get(k)
            cells.append("" if r is None or math.isnan(r["cos_mean"]) else f"{r['cos_mean']:.3f} ± {r['cos_sd']:.3f}")
        passes = next(iter(mine.values()))["forward_passes"]
        lines.append(f"| {c} | {passes} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
