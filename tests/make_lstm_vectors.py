"""Regenerate tests/data/lstm/multiplier_product.npz: LSTM models that tell two multiplier formulas apart.

    PYTHONPATH=. python tests/make_lstm_vectors.py

TFLM's LSTM computes each gate's fully connected multiplier from ``s_in * s_w``; the source read
(tflite-micro 90b983c) forms the product in float32, the installed oracle in double. The two differ
in the low bits of nearly every multiplier but change an output only rarely. This script searches
random one-operator LSTM models (tests/single_op.py, seed 5) for models where they change the output
on 32 random inputs, and stores the first three: the .tflite bytes, the inputs on which they differ
and TFLM's outputs there (with the generator and TFLM version), so tests/test_lstm.py checks the
choice without the oracle.
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from conftest import DATA
from oracle import tflm_run
from single_op import random_inputs, unidirectional_sequence_lstm


def float32_product_params(model) -> np.ndarray:
    """The LSTM's parameter record with float32-product fully connected multipliers (the alternative)."""
    from tinyzo.quant import quantize_multiplier

    op, prep = model.operators[0], model.prepared[0]
    p = prep.params.copy()
    for g, (ki, kr) in enumerate(zip((2, 1, 3, 4), (6, 5, 7, 8))):
        for src, k, field in ((op.inputs[0], ki, "fc_in"), (op.inputs[18], kr, "fc_rec")):
            prod = np.float32(model.tensors[src].quant.scale[0]) * np.float32(model.tensors[op.inputs[k]].quant.scale[0])
            p[f"{field}_multiplier"][0, g], p[f"{field}_shift"][0, g] = quantize_multiplier(float(prod) / 2**-12)
    return p


def main():
    import tflite_micro

    from tinyzo.io import write_tflite

    rng = np.random.default_rng(5)
    found = {}
    for k in range(5000):
        model = unidirectional_sequence_lstm(rng)
        prep = model.prepared[0]
        xs = random_inputs(model, 32, np.random.default_rng(k))
        ours = model(*xs)
        double_params = prep.params
        prep.params = float32_product_params(model)
        alt = model(*xs)
        prep.params = double_params
        if np.array_equal(ours, alt):
            continue
        data = write_tflite(model)
        outs, _ = tflm_run(data, xs, reset=True)
        keep = np.flatnonzero(np.any((ours != alt).reshape(len(ours), -1), axis=1))  # the telling samples only
        i = len(found) // 3
        found[f"model{i}"] = np.frombuffer(data, np.uint8)
        found[f"x{i}"] = xs[0][keep]
        found[f"y{i}"] = outs[0].reshape(ours.shape)[keep]
        print(f"model {k}: {int(np.count_nonzero(ours != alt))} outputs differ between the products")
        if i == 2:
            break
    out = DATA / "lstm"
    out.mkdir(exist_ok=True)
    np.savez(out / "multiplier_product.npz", generator=np.array("tests/make_lstm_vectors.py, single_op seed 5"),
             tflm=np.array(str(getattr(tflite_micro, "__version__", "?"))), **found)


if __name__ == "__main__":
    main()
