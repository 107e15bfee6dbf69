"""ZO training runs whose results are pinned: a SHA-256 of everything a step leaves behind.

Each case trains a fresh copy of the digits reference model for a few steps with one configuration
(node, weight and mixed perturbation; the estimators, directions, update modes and roundings spread
over them) and hashes, after every step, the step's reported loss, the int8 weights and int32 biases
of every trained layer, and the optimizer's float32 state (shadow residuals, momentum buffers).
``tests/test_zo_pinned.py`` compares the hashes with the values the trainer gave before the speed
work of issue 15 (commit 92a2c04), with and without NUMBA_DISABLE_JIT=1.

    python tests/zo_pinned.py [CASE ...]     # prints "CASE HASH" lines (default: every case)
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

REF = Path(__file__).resolve().parents[1] / "reference_models" / "digits_cnn.tflite"

#: name -> (ZOConfig options, last trained layers, batch, steps)
CASES = {
    # the benchmark's setting, smaller: node perturbation of the last 6 layers, RGE, shadow update
    "node-rge-shadow": ({"target": "node", "estimator": "rge", "queries": 3, "lr": 5e-4, "update": "shadow"},
                        6, 16, 3),
    # node perturbation, two-sided, uniform directions of 2 LSB, per-step stochastic rounding
    "node-spsa-uniform": ({"target": "node", "estimator": "spsa", "queries": 2, "direction": "uniform",
                           "sigma_node": 2, "lr": 1e-3, "rounding": "stochastic"}, 3, 8, 2),
    # weight perturbation, Gaussian directions, momentum with a shadow copy
    "weight-spsa-gaussian": ({"target": "weight", "estimator": "spsa", "queries": 2, "direction": "gaussian",
                              "lr": 1e-4, "update": "shadow", "momentum": 0.9}, 2, 16, 3),
    # weight perturbation, RGE, per-step nearest rounding, a channel subset
    "weight-rge-channels": ({"target": "weight", "estimator": "rge", "queries": 4, "lr": 1e-3,
                             "channels": {9: [0, 3, 5, 100, 159]}}, 3, 16, 3),
    # mixed: weight perturbation for the first two of the last 4 layers, node after; sign-spsa
    "mixed-signspsa": ({"target": "mixed", "mixed_split": 2, "estimator": "sign-spsa", "queries": 2,
                        "lr": 1e-3, "update": "shadow"}, 4, 16, 3),
    # mixed with RGE, node layers first in the graph after a weight layer that is not trained by nodes
    "mixed-rge-bias": ({"target": "mixed", "mixed_split": 1, "estimator": "rge", "queries": 3, "lr": 5e-4,
                        "train_bias": False, "channels": {8: list(range(0, 96, 3))}}, 3, 16, 2),
    # node perturbation of the model's last operator alone (its output is the loss tensor)
    "node-last-layer": ({"target": "node", "estimator": "rge", "queries": 2, "lr": 1e-3}, 1, 8, 2),
}
#: a small case for the NUMBA_DISABLE_JIT=1 run (interpreted kernels are slow)
NOJIT_CASES = {
    "node-rge-small": ({"target": "node", "estimator": "rge", "queries": 2, "lr": 5e-4, "update": "shadow"}, 6, 4, 2),
    "mixed-spsa-small": ({"target": "mixed", "mixed_split": 1, "estimator": "spsa", "queries": 1, "lr": 1e-3},
                         3, 4, 2),
}


def run_case(name: str) -> str:
    """Train case ``name`` (of :data:`CASES` or :data:`NOJIT_CASES`) and return the SHA-256 hex digest."""
    import tinyzo
    from tinyzo import data
    from tinyzo.evaluate import images_to_input
    from tinyzo.zo.trainer import ZOConfig, ZOTrainer

    opts, last, batch, steps = {**CASES, **NOJIT_CASES}[name]
    model = tinyzo.load(REF)
    ds = data.load("digits")
    n = batch * steps
    xq = images_to_input(model, data.corrupt(ds.x_train[:n], "motion_blur", 5, seed=0))
    y = np.asarray(ds.y_train[:n])
    trainer = ZOTrainer(model, ZOConfig(layers=model.trainable_ops()[-last:], seed=3, **opts), total_steps=steps)
    h = hashlib.sha256()
    for s in range(steps):
        info = trainer.step(xq[s * batch:(s + 1) * batch], y[s * batch:(s + 1) * batch])
        h.update(np.float64(info["loss"]).tobytes())
        for k in trainer.layers:
            w, b = model.get_params(k)
            h.update(w.tobytes())
            if b is not None:
                h.update(b.tobytes())
        state = trainer.optimizer.state_dict()
        for key in sorted(state):
            if key.startswith(("residual/", "momentum/")):
                h.update(key.encode())
                h.update(np.ascontiguousarray(state[key], np.float32).tobytes())
    return h.hexdigest()


if __name__ == "__main__":
    for case in sys.argv[1:] or list(CASES) + list(NOJIT_CASES):
        print(case, run_case(case), flush=True)
