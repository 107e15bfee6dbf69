"""Where a ZO step's time goes: a per-phase table of ``ZOTrainer.step`` (the bench_zo.py settings).

    python benchmarks/profile_zo_step.py [--steps 30] [--threads 1] [--setting node8]

Wraps the trainer's visible calls with timers (exclusive time: a phase nested in another is
subtracted from its parent) and prints the mean milliseconds per step of each phase:

========================  ==========================================================================
phase                     calls timed
========================  ==========================================================================
base forward              ``ZOTrainer.base_pass`` (the unperturbed pass, activations kept)
perturb                   ``ZOTrainer.directions``, ``ZOTrainer.node_directions``
perturbed forwards        ``ZOTrainer.perturbed_losses`` (apply/undo weights, the partial forward) and
                          ``ZOTrainer.group_perturbed_losses`` (a group of node queries in one pass)
node adds                 the saturating add of node perturbations (``tinyzo.graph._saturating_add_int8``)
losses                    ``Trainer.losses``, ``Trainer.mean_loss``, ``projected_difference``
estimate                  ``ZOTrainer.accumulate`` (weight and node-output gradient accumulation),
                          ``kernels.zo.accumulate_acc_grads`` (a node layer's queries summed)
local backward            ``local_backward`` / ``local_backward_from_acc`` / ``ZOTrainer.local_backwards``
                          (node layers: output gradient -> weight and bias gradients)
update                    ``Trainer.apply_update`` / ``Trainer.write_update`` (masks, the optimizer step,
                          writing the weights; per node layer as its gradient comes)
rest                      everything else inside ``step`` (Python glue)
========================  ==========================================================================

Run it with one tinyzo thread (``--threads 1``, the default) for a clean split of CPU time; with two
threads the forward passes (or a node step's queries) share both cores and the table shows the main
thread's wall time. It profiles the tinyzo of the tree it sits in; copy it into an older checkout
(e.g. ``git archive <commit> | tar -x -C /tmp/zo_old``) to profile that one: it only needs these
methods (``local_backwards`` and ``graph._saturating_add_int8`` are optional).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SETTINGS = {  # name -> (ZOConfig options, last trained layers), as benchmarks/bench_zo.py
    "node8": ({"target": "node", "estimator": "rge", "queries": 8, "lr": 5e-4, "update": "shadow"}, 6),
    "node1": ({"target": "node", "estimator": "rge", "queries": 1, "lr": 5e-4, "update": "shadow"}, 6),
    "weight16": ({"target": "weight", "estimator": "rge", "queries": 16, "lr": 1e-4, "update": "shadow"}, 2),
    "mixed8": ({"target": "mixed", "mixed_split": 2, "estimator": "rge", "queries": 8, "lr": 5e-4,
                "update": "shadow"}, 6),
}
PHASES = ("base forward", "perturb", "perturbed forwards", "node adds", "losses", "estimate", "local backward",
          "update")


class PhaseTimer:
    """Exclusive wall time per phase: entering a nested phase pauses the enclosing one."""

    def __init__(self):
        self.total = {p: 0.0 for p in PHASES}
        self.stack = []  # [phase, start]

    def wrap(self, phase, fn):
        def timed(*a, **k):
            if threading.current_thread() is not threading.main_thread():
                return fn(*a, **k)  # a call on the thread pool counts in the main thread's phase
            now = time.perf_counter()
            if self.stack:
                outer = self.stack[-1]
                self.total[outer[0]] += now - outer[1]
            self.stack.append([phase, now])
            try:
                return fn(*a, **k)
            finally:
                end = time.perf_counter()
                p, t0 = self.stack.pop()
                self.total[p] += end - t0
                if self.stack:
                    self.stack[-1][1] = end
        return timed


def instrument(trainer, timer: PhaseTimer):
    """Wrap the trainer's phase methods (instance attributes) and the module-level helpers it calls;
    returns a function that puts the module-level helpers back."""
    import tinyzo.graph as graph
    import tinyzo.zo.trainer as zt

    saved = [(mod, name, getattr(mod, name)) for mod, name in (
        (graph, "_saturating_add_int8"), (zt, "local_backward"), (zt, "local_backward_from_acc"),
        (zt, "accumulate_acc_grads"), (zt, "projected_difference")) if hasattr(mod, name)]

    def restore():
        for mod, name, fn in saved:
            setattr(mod, name, fn)

    if hasattr(graph, "_saturating_add_int8"):  # the node perturbation added inside a forward pass
        graph._saturating_add_int8 = timer.wrap("node adds", graph._saturating_add_int8)

    for name, phase in (("base_pass", "base forward"), ("directions", "perturb"), ("node_directions", "perturb"),
                        ("perturbed_losses", "perturbed forwards"), ("group_perturbed_losses", "perturbed forwards"),
                        ("losses", "losses"), ("mean_loss", "losses"), ("accumulate", "estimate"),
                        ("local_backwards", "local backward"), ("apply_update", "update"), ("write_update", "update")):
        if hasattr(trainer, name):
            setattr(trainer, name, timer.wrap(phase, getattr(trainer, name)))
    for name, phase in (("local_backward", "local backward"), ("local_backward_from_acc", "local backward"),
                        ("accumulate_acc_grads", "estimate"), ("projected_difference", "losses")):
        if hasattr(zt, name):
            setattr(zt, name, timer.wrap(phase, getattr(zt, name)))
    return restore


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1, help="tinyzo threads (tinyzo.runtime.set_num_threads)")
    ap.add_argument("--setting", choices=sorted(SETTINGS), default="node8")
    args = ap.parse_args(argv)

    import tinyzo
    from tinyzo import runtime
    from tinyzo.zo.trainer import ZOConfig, ZOTrainer

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_zo import MODEL, load_batches

    runtime.set_num_threads(args.threads)
    model = tinyzo.load(MODEL)
    batches = load_batches(model, 8)
    opts, last = SETTINGS[args.setting]
    trainer = ZOTrainer(model, ZOConfig(layers=model.trainable_ops()[-last:], seed=0, **opts),
                        total_steps=args.steps + 3)
    for i in range(3):
        trainer.step(*batches[i % len(batches)])
    timer = PhaseTimer()
    restore = instrument(trainer, timer)
    step = trainer.step
    t_all = 0.0
    try:
        for i in range(args.steps):
            t0 = time.perf_counter()
            step(*batches[i % len(batches)])
            t_all += time.perf_counter() - t0
    finally:
        restore()
    per = {p: 1e3 * v / args.steps for p, v in timer.total.items()}
    per["rest"] = 1e3 * t_all / args.steps - sum(per.values())
    total = 1e3 * t_all / args.steps
    print(f"tinyzo {tinyzo.__file__}, setting {args.setting}, {args.threads} thread(s), {args.steps} steps, "
          f"load {Path('/proc/loadavg').read_text().split()[0]}")
    print("| phase | ms / step | share |")
    print("|---|---:|---:|")
    for p, v in per.items():
        print(f"| {p} | {v:.2f} | {100 * v / total:.0f}% |")
    print(f"| **step** | **{total:.2f}** | 100% |")
    return per


if __name__ == "__main__":
    main()
