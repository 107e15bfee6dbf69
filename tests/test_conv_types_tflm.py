"""16x8, INT4 and grouped convolutions against TFLite Micro: every output element equal.

Random one-operator models (tests/single_op.py ``TYPED_CASES``: 16x8 CONV_2D / DEPTHWISE_CONV_2D /
FULLY_CONNECTED with int64, int32 or no bias, INT4 weights, grouped CONV_2D in int8 and 16x8; random
shapes, strides, paddings, dilations, depth multipliers, per-tensor/per-channel scales, fused
activations, biases up to 2**45 and effective scales up to 2**13) are written with tinyzo's .tflite
writer and run in TFLM's Python interpreter, 4 random inputs each (full int8/int16 range). The fast
set runs at least 1000 models per operator (every type and CONV_2D path); the slow sweep 2000 per
type. Also: TFLM's arena (INT4 filters' unpack scratch) and the combinations TFLM refuses.
"""

from __future__ import annotations

import numpy as np
import pytest
from oracle import tflm_allocations, tflm_interpreter
from single_op import TYPED_CASES, compare_with_tflm

from tinyzo.errors import UnsupportedOperatorError
from tinyzo.graph import Model, Tensor
from tinyzo.io import write_tflite
from tinyzo.io.tflite_write import write_tflite_parts
from tinyzo.memory import inference_schedule, plan_arena
from tinyzo.ops.conv_paths import PATHS, available_paths
from tinyzo.quant import QuantParams

pytest.importorskip("tflite_micro")

#: models per type in the fast set: >= 1000 per operator (CONV_2D 5 x 250, DEPTHWISE_CONV_2D 2 x 500,
#: FULLY_CONNECTED 3 x 350), plus 2 x 2 x 100 CONV_2D models on each forced int8 path below
N_FAST = {name: 250 if name.startswith("CONV_2D") else 500 if name.startswith("DEPTHWISE") else 350
          for name in TYPED_CASES}


def _sweep(name: str, n_models: int, path: str | None = None, seed0: int = 0) -> int:
    rng = np.random.default_rng(sum(map(ord, name)) + seed0)
    total = 0
    for k in range(n_models):
        model = TYPED_CASES[name](rng)
        if path is not None:
            model.prepared[0].set_path(path)
        n, d = compare_with_tflm(model, n=4, seed=k)
        op = model.operators[0]
        assert d == 0, (f"{name} case {k}: {d} of {n} elements differ from TFLM ({op.options}, "
                        f"{[(t.dtype.name, t.shape) for t in model.tensors]})")
        total += n
    return total


@pytest.mark.oracle
@pytest.mark.parametrize("name", list(TYPED_CASES))
def test_typed_conv_models_equal_tflm(name):
    assert _sweep(name, N_FAST[name]) > 0


@pytest.mark.oracle
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", ["CONV_2D int4", "CONV_2D grouped"])
def test_int4_and_grouped_conv_every_path_equals_tflm(name, path):
    if path not in available_paths():
        pytest.skip(f"this CPU cannot run the {path!r} path")
    assert _sweep(name, 100, path, seed0=1) > 0


@pytest.mark.oracle
@pytest.mark.slow
@pytest.mark.parametrize("name", list(TYPED_CASES))
def test_typed_conv_models_equal_tflm_sweep(name):
    assert _sweep(name, 2000, seed0=2) > 0


@pytest.mark.oracle
def test_arena_matches_tflm():
    """TFLM's planned arena ("head") equals tinyzo's plan, INT4's unpack scratch included."""
    for name, build in TYPED_CASES.items():
        for seed in range(6):
            model = build(np.random.default_rng(seed))
            assert plan_arena(inference_schedule(model)).peak_bytes == tflm_allocations(write_tflite(model))["head"], (
                name, seed)


def _refused_by_tflm(tensors, ops) -> bool:
    data = write_tflite_parts(tensors, ops, (0,), (len(tensors) - 1,))
    try:
        tflm_interpreter(data)
    except RuntimeError:
        return True
    return False


@pytest.mark.oracle
def test_tflm_refuses_what_tinyzo_refuses():
    """INT4 weights with int16 activations, and per-channel INT4 FULLY_CONNECTED weights: both refuse."""
    conv = TYPED_CASES["CONV_2D int4"](np.random.default_rng(0))
    x, w, b, y = conv.tensors
    t16 = [Tensor("x", x.shape, np.int16, QuantParams([1e-3], [0])), w,
           Tensor("b", b.shape, np.int64, b.quant, b.data.astype(np.int64)),
           Tensor("y", y.shape, np.int16, QuantParams([1e-3], [0]))]
    assert _refused_by_tflm(t16, conv.operators)
    with pytest.raises(UnsupportedOperatorError, match="INT4 weights with int16 activations"):
        Model(t16, conv.operators, (0,), (3,))
    fc = TYPED_CASES["FULLY_CONNECTED int4"](np.random.default_rng(0))
    x, w, b, y = fc.tensors
    pc = [x, Tensor("w", w.shape, np.int8, QuantParams(np.full(w.shape[0], 0.01, np.float32), np.zeros(w.shape[0])),
                    w.data, int4=True), Tensor("b", b.shape, np.int32, None, b.data), y]
    assert _refused_by_tflm(pc, fc.operators)
    with pytest.raises(UnsupportedOperatorError, match="per tensor"):
        Model(pc, fc.operators, (0,), (3,))
    assert not _refused_by_tflm(fc.tensors, fc.operators)  # the per-tensor original runs
