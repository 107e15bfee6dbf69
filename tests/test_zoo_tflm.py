"""Every model-zoo architecture, post-training quantized and written to .tflite, runs in TFLite Micro with
every tensor exactly equal to tinyzo's.

Random weights and batch-norm statistics, a short random calibration, a small input resolution: the
point is the int8 graph (operators, options, quantization), not accuracy.
"""

import numpy as np
import pytest

from tinyzo.ops.conv_paths import available_paths

from tinyzo import models
from tinyzo.fp import ptq as P
from tinyzo.io import write_tflite
from tinyzo.nn import init_params

#: resolution cap: models whose default input is larger are built at SMALL x SMALL (their strides allow it)
MAX_SIDE = 64
SMALL = 32


def _small_shape(name):
    h, w, c = models.build(name).input_shape
    return (h, w, c) if max(h, w) <= MAX_SIDE else (SMALL, SMALL, c)


def _random_params(net, seed):
    params = init_params(net, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for lay in net.layers:
        p = params.get(lay.name, {})
        if "gamma" in p:   # non-identity batch norm, so that folding matters
            o = lay.out_channels
            p["gamma"] = rng.uniform(0.5, 1.5, o).astype(np.float32)
            p["beta"] = rng.normal(0, 0.2, o).astype(np.float32)
            p["mean"] = rng.normal(0, 0.2, o).astype(np.float32)
            p["var"] = rng.uniform(0.5, 2.0, o).astype(np.float32)
    return params


@pytest.mark.oracle
@pytest.mark.parametrize("conv_path", ["auto", "gemm", "int", "vnni"])
@pytest.mark.parametrize("name", models.names())
def test_zoo_model_ptq_equals_tflm(name, conv_path, monkeypatch):
    """Every CONV_2D along the path the cost model picks ("auto"), then all along each forced path."""
    from oracle import tflm_run

    if conv_path not in ("auto",) + available_paths():
        pytest.skip(f"this CPU cannot run the {conv_path!r} path")
    monkeypatch.setenv("TINYZO_CONV_PATH", conv_path)
    shape = _small_shape(name)
    net = models.build(name, input_shape=shape, num_classes=10)
    params = _random_params(net, seed=0)
    rng = np.random.default_rng(0)
    model = P.ptq(net, params, rng.random((16,) + shape, dtype=np.float32))
    assert model.output_details[0].shape == (1, 10)
    xq = rng.integers(-128, 128, size=(3,) + shape, dtype=np.int8)
    y, ours = model(xq, intermediates=True)
    computed = sorted({t for op in model.operators for t in op.outputs})
    outs, theirs = tflm_run(write_tflite(model), [xq], tensors=computed)
    np.testing.assert_array_equal(y, outs[0])
    for t in computed:
        np.testing.assert_array_equal(ours[t].reshape(theirs[t].shape), theirs[t], err_msg=model.tensors[t].name)
