"""The TFLite Micro oracle: run a .tflite model in TFLM's Python interpreter.

Used only by tests and benchmarks. Skips (pytest.importorskip) when
``tflite-micro`` is not installed; CI installs it through the ``test`` extra,
so the oracle tests run there for real.
"""

from __future__ import annotations

import numpy as np
import pytest


def _runtime():
    mod = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    return mod


def tflm_interpreter(model_bytes: bytes, preserve: bool = True):
    """A TFLM interpreter for ``model_bytes``; ``preserve`` keeps every tensor readable."""
    rt = _runtime()
    cfg = rt.InterpreterConfig.kPreserveAllTensors if preserve else rt.InterpreterConfig.kAllocationRecording
    # preserving every tensor needs more than the runtime's default arena (10x the model size)
    arena = 10 * len(model_bytes) + (1 << 22)
    return rt.Interpreter.from_bytes(bytes(model_bytes), arena_size=arena, intrepreter_config=cfg)


def tflm_run(model_bytes: bytes, inputs, tensors=None, reset: bool = False):
    """Run a batch through TFLM one sample at a time.

    Args:
        model_bytes: the .tflite file contents.
        inputs: list of arrays, one per model input, each with a leading batch dim.
        tensors: tensor indices (subgraph 0) to read after each invoke, or None.
        reset: call the interpreter's ``reset()`` before every sample, so that variable tensors
            (an LSTM's states) start from their reset values each time, as tinyzo's samples do.

    Returns:
        ``(outputs, values)``: outputs is a list of arrays (batch stacked);
        values maps each requested tensor index to its batch-stacked array.
    """
    interp = tflm_interpreter(model_bytes, preserve=tensors is not None)
    n = inputs[0].shape[0]
    outs, vals = [], {t: [] for t in (tensors or [])}
    from tinyzo.io.tflite_read import read_tflite_parts

    n_out = len(read_tflite_parts(bytes(model_bytes))[3])
    per_out = [[] for _ in range(n_out)]
    for b in range(n):
        if reset and b:
            interp.reset()
        for k, x in enumerate(inputs):
            interp.set_input(x[b : b + 1], k)
        interp.invoke()
        for k in range(n_out):
            per_out[k].append(np.array(interp.get_output(k)))
        for t in vals:
            vals[t].append(np.atleast_1d(np.array(interp.GetTensor(t, 0)["tensor_data"])))  # scalars: one row
    outs = [np.concatenate(p, axis=0) for p in per_out]
    values = {t: np.concatenate(v, axis=0) for t, v in vals.items()}
    return outs, values


def _capture_fds(fn):
    """Run ``fn()`` with file descriptors 1 and 2 redirected to a temp file; return (result, text)."""
    import ctypes
    import os
    import tempfile

    libc = ctypes.CDLL(None)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = {fd: os.dup(fd) for fd in (1, 2)}
        try:
            libc.fflush(None)
            for fd in (1, 2):
                os.dup2(tmp.fileno(), fd)
            result = fn()
            libc.fflush(None)
        finally:
            for fd, s in saved.items():
                os.dup2(s, fd)
                os.close(s)
        tmp.seek(0)
        return result, tmp.read().decode(errors="replace")


def tflm_allocations(model_bytes: bytes) -> dict:
    """TFLM's own arena numbers for a model, measured live: ``{"head", "tail", "total"}`` in bytes.

    ``head`` is the planned (non-persistent) arena, ``tail`` the persistent allocations, from
    ``print_allocations()`` ("Arena allocation head/tail/total N bytes"). A missing line gives None.
    The arena size given to TFLM only bounds the allocation; it does not change the plan.
    """
    rt = _runtime()
    interp = rt.Interpreter.from_bytes(bytes(model_bytes), arena_size=max(10 * len(model_bytes), 8 << 20))
    _, text = _capture_fds(interp.print_allocations)
    import re

    out = {}
    for key in ("head", "tail", "total"):
        m = re.search(rf"Arena allocation {key} (\d+) bytes", text)
        out[key] = int(m.group(1)) if m else None
    return out
