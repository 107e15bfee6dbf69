"""Two ZO steps each (weight then node perturbation, stochastic rounding; then sparse block-coordinate mixed
perturbation) on the digits model; prints a hash of the int8 parameters.

Run by tests/test_zo_trainer.py with and without NUMBA_DISABLE_JIT=1: the hashes must be equal.
"""
import hashlib, numpy as np, tinyzo, sys
from tinyzo import data
from tinyzo.evaluate import images_to_input
from tinyzo.zo.trainer import ZOConfig, ZOTrainer
m = tinyzo.load(sys.argv[1])
ds = data.load("digits")
xq = images_to_input(m, ds.x_train[:8]); y = ds.y_train[:8]
h = hashlib.sha256()
configs = [dict(target="weight"), dict(target="node"),
           dict(target="mixed", mixed_split=1, density=0.4, block="layer", queries=3)]
for extra in configs:
    tr = ZOTrainer(m, ZOConfig(layers=m.trainable_ops()[-2:], lr=1e-3, seed=9, rounding="stochastic", **extra), total_steps=2)
    for s in range(2):
        tr.step(xq[s*4:(s+1)*4], y[s*4:(s+1)*4])
for k in m.trainable_ops():
    w, b = m.get_params(k); h.update(w.tobytes()); h.update(b.tobytes())
print(h.hexdigest())
