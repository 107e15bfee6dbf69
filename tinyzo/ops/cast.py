"""CAST, prepared and run as TFLite Micro does (``micro/kernels/cast.cc``).

TFLM's CAST has no Prepare checks beyond one input and one output; Eval converts each element
with ``static_cast`` (:mod:`tinyzo.spec.cast`), reading no quantization parameters and ignoring
the ``in_data_type``/``out_data_type`` options. tinyzo runs the integer and float pairs of
:data:`~tinyzo.spec.cast.CAST_INPUT_DTYPES` x :data:`~tinyzo.spec.cast.CAST_OUTPUT_DTYPES`
(int8, int16, int32, uint32, float32 each way). A float32 tensor may only be a model input or
output (tinyzo runs integer models: a float input read by CAST, a float output written by it);
float data whose truncation does not fit the integer target, or NaN, is refused at run time
with :class:`tinyzo.errors.InputError` (undefined behaviour in C).

Input and output must have the same number of elements (TFLM's ``MatchingFlatSize``) and 1 in
dimension 0 (the batch).
"""

from __future__ import annotations

import numpy as np

from tinyzo.errors import InputError
from tinyzo.kernels.cast import cast_to_float32, cast_to_int
from tinyzo.ops.base import PreparedOp, register
from tinyzo.spec.cast import CAST_INPUT_DTYPES, CAST_OUTPUT_DTYPES

__all__ = ["Cast"]


def _names(dtypes) -> str:
    return ", ".join(np.dtype(d).name for d in dtypes)


@register("CAST")
class Cast(PreparedOp):
    """TFLite ``CAST``: ``out[i] = static_cast<out type>(x[i])``, element by element."""

    def prepare(self):
        inp, out = self.tensor(0), self.tensor(0, output=True)
        if inp.dtype not in CAST_INPUT_DTYPES:
            self.fail(f"input {inp.name!r} is {inp.dtype}; CAST takes {_names(CAST_INPUT_DTYPES)}")
        if out.dtype not in CAST_OUTPUT_DTYPES:
            self.fail(f"output {out.name!r} is {out.dtype}; CAST writes {_names(CAST_OUTPUT_DTYPES)}")
        if inp.dtype == np.float32 and self.op.inputs[0] not in self.model.inputs:
            self.fail(f"float32 input {inp.name!r} is not a model input; tinyzo runs integer models (float32 only "
                      "at the model's interface)")
        if out.dtype == np.float32 and self.op.outputs[0] not in self.model.outputs:
            self.fail(f"float32 output {out.name!r} is not a model output; tinyzo runs integer models (float32 only "
                      "at the model's interface)")
        self.require_batch_one(inp, "input")
        self.require_batch_one(out, "output")
        if int(np.prod(inp.shape, dtype=np.int64)) != int(np.prod(out.shape, dtype=np.int64)):
            self.fail(f"input shape {list(inp.shape)} and output shape {list(out.shape)} differ in size")
        self.out_dtype = out.dtype
        self._out = out

    def compute(self, x):
        """[N, in_shape[1:]] of the input dtype -> [N, out_shape[1:]] of the output dtype."""
        n = x.shape[0]
        flat = np.ascontiguousarray(x).reshape(-1)
        if flat.dtype.kind == "f" and self.out_dtype.kind != "f":
            info = np.iinfo(self.out_dtype)
            with np.errstate(invalid="ignore"):
                t = np.trunc(flat.astype(np.float64))
                bad = ~np.isfinite(t) | (t < info.min) | (t > info.max)
            if bad.any():
                raise InputError(f"operator {self.index} (CAST): value {float(flat[bad][0])!r} does not fit "
                                 f"{self.out_dtype} (C's conversion is undefined there); clip the data first")
        out = np.empty(flat.shape, dtype=self.out_dtype)
        if self.out_dtype.kind == "f":
            cast_to_float32(flat, out)
        else:
            cast_to_int(flat, 8 * self.out_dtype.itemsize, self.out_dtype.kind == "i", out)
        return out.reshape((n,) + tuple(self._out.shape[1:]))
