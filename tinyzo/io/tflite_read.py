"""Read a ``.tflite`` file (TFLite FlatBuffer, schema version 3) into a :class:`tinyzo.graph.Model`.

The file is untrusted input. It is parsed with the bounds-checked reader of
:mod:`tinyzo.io.flatbuf`; every index (opcode, tensor, buffer) is checked
against the length of the table it indexes, every declared size against the
bytes actually present and against the limits below. Anything wrong raises
:class:`tinyzo.errors.ModelFormatError` (corrupt or truncated file) or
:class:`tinyzo.errors.UnsupportedModelError` (well formed, outside tinyzo's
scope: float models, dynamic shapes, sparse tensors, string tensors); an
operator tinyzo does not implement raises
:class:`tinyzo.errors.UnsupportedOperatorError` when the model is prepared.

What is read: subgraph 0 only (tensors, inputs, outputs, operators), the
operator codes, the buffers (inline ``data`` or, schema "3c", ``offset``/``size``
into the file) and the description. Metadata, signature defs and custom
options are ignored.
"""

from __future__ import annotations

import math

import numpy as np

from tinyzo.errors import ModelFormatError, UnsupportedModelError
from tinyzo.graph import Model, Operator, Tensor
from tinyzo.io import tflite_schema as S
from tinyzo.io.flatbuf import SCALAR_FORMATS, FlatBuffer, Table
from tinyzo.io.int4 import packed_int4_bytes, unpack_int4
from tinyzo.quant import DOUBLE_ROUNDING, QuantParams

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_RANK",
    "MAX_TENSOR_ELEMENTS",
    "check_integer_model",
    "read_tflite",
    "read_tflite_parts",
]

#: Files larger than this are refused before parsing (512 MiB).
MAX_FILE_BYTES = 512 * 1024 * 1024
#: Largest number of elements of one tensor (2**28).
MAX_TENSOR_ELEMENTS = 1 << 28
#: Largest tensor rank accepted.
MAX_RANK = 16

F = S.F

NOT_TFLITE = "not a .tflite file: missing TFL3 identifier; convert the model with the TFLite converter"


def _check_header(data) -> FlatBuffer:
    n = len(data)
    if n == 0:
        raise ModelFormatError("the model file is empty")
    if n > MAX_FILE_BYTES:
        raise ModelFormatError(f"the model file has {n} bytes, more than tinyzo's limit of {MAX_FILE_BYTES} (512 MiB)")
    if n < 8:
        raise ModelFormatError(f"the file is truncated at byte {n}: a .tflite file has at least 8 bytes")
    if bytes(data[4:8]) != S.FILE_IDENTIFIER:
        raise ModelFormatError(NOT_TFLITE)
    return FlatBuffer(data)


def _read_opcodes(model: Table) -> list[str]:
    names = []
    for k, oc in enumerate(model.tables(F.MODEL_OPERATOR_CODES, "operator code")):
        dep = oc.scalar(F.OPCODE_DEPRECATED_BUILTIN, "int8", 0)
        ext = oc.scalar(F.OPCODE_BUILTIN, "int32", 0)
        # schema 3a: the extended builtin_code field wins; old files only have the int8 one
        code = max(dep, ext)
        if code < 0:
            raise ModelFormatError(f"operator code {k}: builtin code {code} is negative; the file is corrupt")
        name = S.opcode_name(code)
        if name == "CUSTOM":
            custom = oc.string(F.OPCODE_CUSTOM, "custom_code")
            name = S.CUSTOM_PREFIX + custom
        names.append(name)
    return names


def _read_index_vector(t: Table, field: int, what: str, n: int, allow_absent: bool) -> tuple:
    idx = t.array(field, np.int32, what)
    for i in idx.tolist():
        if i == -1 and allow_absent:
            continue
        if not 0 <= i < n:
            raise ModelFormatError(
                f"{t.where}: {what} names tensor {i}, which is out of range (the subgraph has {n} tensors)"
            )
    return tuple(idx.tolist())


def _option_value(t: Table, index: int, kind: str, default, where: str, name: str):
    if kind in SCALAR_FORMATS:
        v = t.scalar(index, kind, default)
        if kind == "bool":
            return bool(v)
        if kind.startswith("float"):
            return float(v)
        return int(v)
    if kind in S.ENUMS:
        enum = S.ENUMS[kind]
        default_code = {v: k for k, v in enum.items()}[default]
        code = t.scalar(index, S.ENUM_STORAGE[kind], default_code)
        if code not in enum:
            raise ModelFormatError(f"{where}: option {name} = {code} is not a valid {kind} value; the file is corrupt")
        return enum[code]
    if kind.endswith("[]"):
        if not t.has(index):
            return list(default)
        dtype = {"int32[]": np.int32, "int64[]": np.int64, "float32[]": np.float32}[kind]
        return t.array(index, dtype, name).tolist()
    if kind == "string":
        return t.string(index, name, default)
    raise AssertionError(f"unknown option kind {kind}")  # pragma: no cover - schema table bug


def _read_options(op: Table, opcode: str, where: str) -> dict:
    expected = S.options_table_for(opcode)
    code = op.scalar(F.OP_OPTIONS_TYPE, "uint8", 0)
    if code == 0:
        return S.default_options(expected) if expected in S.OPTION_TABLES else {}
    table_name = S.BUILTIN_OPTIONS.get(code)
    if table_name is None:
        raise ModelFormatError(
            f"{where}: builtin options type {code} is not a BuiltinOptions code; the file is corrupt"
        )
    if expected is not None and table_name != expected:
        raise ModelFormatError(f"{where}: carries {table_name}, but {opcode} takes {expected}; the file is corrupt")
    layout = S.OPTION_TABLES.get(table_name)
    if layout is None:
        return {}
    t = op.table(F.OP_OPTIONS, f"{where}: {table_name}")
    if t is None:
        return S.default_options(table_name)
    out = {}
    for index, (name, kind, default) in enumerate(layout):
        if name is not None:
            out[name] = _option_value(t, index, kind, default, f"{where} {table_name}", name)
    return out


def _read_quant(t: Table, shape: tuple, where: str) -> QuantParams | None:
    q = t.table(F.T_QUANT, f"{where}: quantization")
    if q is None:
        return None
    if q.scalar(F.Q_DETAILS_TYPE, "uint8", 0) != 0:
        raise UnsupportedModelError(f"{where} uses custom quantization details, which tinyzo does not support")
    scale = q.array(F.Q_SCALE, np.float32, "quantization scale")
    if scale.size == 0:
        return None
    zp = q.array(F.Q_ZERO_POINT, np.int64, "quantization zero_point")
    if zp.size != scale.size:
        raise ModelFormatError(f"{where}: quantization has {scale.size} scales but {zp.size} zero points")
    axis = q.scalar(F.Q_QUANTIZED_DIMENSION, "int32", 0)
    ndim = len(shape)
    if ndim <= 1:
        # TFLM ignores quantized_dimension of 1-D tensors (person_detect's biases say 3)
        axis = 0
        if scale.size > 1 and (ndim == 0 or shape[0] != scale.size):
            raise ModelFormatError(f"{where}: {scale.size} per-channel scales for a tensor of shape {list(shape)}")
    elif scale.size > 1:
        if not 0 <= axis < ndim:
            raise ModelFormatError(f"{where}: quantized_dimension {axis} is out of range for shape {list(shape)}")
        if shape[axis] != scale.size:
            raise ModelFormatError(
                f"{where}: {scale.size} per-channel scales, but dimension {axis} of shape {list(shape)} is {shape[axis]}"
            )
    elif not 0 <= axis < ndim:
        axis = 0  # per-tensor parameters do not depend on the axis
    return QuantParams(scale, zp, axis)


class _Buffers:
    """Checked access to ``Model.buffers``: inline data or (schema 3c) offset/size into the file."""

    def __init__(self, fb: FlatBuffer, model: Table):
        self.fb = fb
        self.model = model
        self.start, self.count = model.vector(F.MODEL_BUFFERS, 4, "buffers")

    def data(self, k: int, where: str) -> memoryview:
        if not 0 <= k < self.count:
            raise ModelFormatError(f"{where}: buffer {k} is out of range (file has {self.count} buffers)")
        label = f"buffer {k}"
        b = Table(self.fb, self.fb.deref(self.start + 4 * k, label), label)
        offset = b.scalar(F.B_OFFSET, "uint64", 0)
        if offset > 1:
            size = b.scalar(F.B_SIZE, "uint64", 0)
            if offset + size > self.fb.size:
                raise ModelFormatError(
                    f"{label}: {size} bytes at offset {offset} run past the end of the file ({self.fb.size} bytes); "
                    f"the file is truncated at byte {self.fb.size} or corrupt"
                )
            return memoryview(self.fb.data)[offset : offset + size]
        return b.bytes_view(F.B_DATA, "data")


def _read_tensor(t: Table, k: int, buffers: _Buffers) -> Tensor:
    where = f"tensor {k}"
    name = t.string(F.T_NAME, "name")
    where = f"tensor {k} ({name!r})"
    dims = t.array(F.T_SHAPE, np.int32, "shape").tolist()
    if len(dims) > MAX_RANK:
        raise ModelFormatError(f"{where}: rank {len(dims)} is more than tinyzo's limit of {MAX_RANK}")
    for i, d in enumerate(dims):
        if d == -1:
            raise UnsupportedModelError(
                f"{where}: dimension {i} is unknown (-1); tinyzo needs static shapes: convert with a fixed input shape"
            )
        if d < 0:
            raise ModelFormatError(f"{where}: dimension {i} is {d}; the file is corrupt")
    count = math.prod(dims)
    if count > MAX_TENSOR_ELEMENTS:
        raise ModelFormatError(f"{where}: shape {dims} has {count} elements, more than tinyzo's limit of 2**28")
    code = t.scalar(F.T_TYPE, "int8", 0)
    int4 = code == S.TENSOR_TYPE_CODES["INT4"]  # packed two per byte; held unpacked as int8 (tinyzo.io.int4)
    dtype = np.dtype(np.int8) if int4 else S.TENSOR_DTYPES.get(code)
    if dtype is None:
        if code in S.TENSOR_TYPES:
            raise UnsupportedModelError(f"{where} has type {S.TENSOR_TYPES[code]}, which tinyzo cannot represent")
        raise ModelFormatError(f"{where}: tensor type code {code} is not a TensorType; the file is corrupt")
    if t.has(F.T_SPARSITY):
        raise UnsupportedModelError(
            f"{where} is a sparse tensor; tinyzo runs dense models only (convert without sparsity)"
        )
    quant = _read_quant(t, tuple(dims), where)
    data = None
    b = t.scalar(F.T_BUFFER, "uint32", 0)
    if b != 0:
        raw = buffers.data(b, where)
        if len(raw) > 0:
            want = packed_int4_bytes(count) if int4 else count * dtype.itemsize
            if len(raw) != want:
                kind = "INT4 (two per byte)" if int4 else str(dtype)
                raise ModelFormatError(
                    f"{where}: buffer {b} has {len(raw)} bytes, but shape {dims} of {kind} needs {want}; the file is corrupt"
                )
            if int4:
                data = unpack_int4(raw, count).reshape(dims)
            else:
                data = np.frombuffer(raw, dtype=dtype.newbyteorder("<"), count=count).astype(dtype).reshape(dims)
    if int4 and data is None:
        raise UnsupportedModelError(
            f"{where} is an INT4 tensor computed at run time; TFLite Micro (and tinyzo) take INT4 only for "
            "constant filters of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED"
        )
    if data is None and 0 in dims:
        raise UnsupportedModelError(f"{where}: shape {dims} has a zero dimension; tinyzo needs non-empty tensors")
    # model state (e.g. SVDF's activation state): kept between runs; a stored buffer is kept for
    # writing the file back, but TFLM ignores it (tinyzo.graph.initial_state)
    is_variable = bool(t.scalar(F.T_IS_VARIABLE, "bool", False))
    return Tensor(name, tuple(dims), dtype, quant, data, is_variable, int4=int4)


def read_tflite_parts(data) -> tuple[list, list, tuple, tuple, str]:
    """Parse a ``.tflite`` file into plain graph data, without preparing any operator.

    Args:
        data: the file contents (``bytes``-like).

    Returns:
        ``(tensors, operators, inputs, outputs, description)``: a list of
        :class:`tinyzo.graph.Tensor` (constant data copied into writable,
        native-order arrays of the tensor's shape and dtype), a list of
        :class:`tinyzo.graph.Operator` (opcode names as in schema.fbs, CUSTOM
        ops as ``"CUSTOM:<custom_code>"``, options with schema field names and
        enum values as names, every field of the options table present), the
        subgraph's input and output tensor indices, and the model description.

    Raises:
        ModelFormatError: not a .tflite file, truncated, corrupt, or over the limits.
        UnsupportedModelError: well formed but not representable (dynamic
            shapes, sparse or string tensors, custom quantization).
    """
    fb = _check_header(data)
    model = fb.root(S.FILE_IDENTIFIER, "model")
    version = model.scalar(F.MODEL_VERSION, "uint32", 0)
    if version != S.SCHEMA_VERSION:
        raise ModelFormatError(
            f"the model has schema version {version}; tinyzo reads version {S.SCHEMA_VERSION} "
            "(convert it again with a current TFLite converter)"
        )
    description = model.string(F.MODEL_DESCRIPTION, "description")
    opcodes = _read_opcodes(model)
    sg_start, n_sg = model.vector(F.MODEL_SUBGRAPHS, 4, "subgraphs")
    if n_sg == 0:
        raise ModelFormatError("the model has no subgraphs")
    sg = Table(fb, fb.deref(sg_start, "subgraph 0"), "subgraph 0")
    buffers = _Buffers(fb, model)

    tensors = [_read_tensor(t, k, buffers) for k, t in enumerate(sg.tables(F.SG_TENSORS, "tensor"))]
    n = len(tensors)
    inputs = _read_index_vector(sg, F.SG_INPUTS, "inputs", n, allow_absent=False)
    outputs = _read_index_vector(sg, F.SG_OUTPUTS, "outputs", n, allow_absent=False)

    operators = []
    for k, op in enumerate(sg.tables(F.SG_OPERATORS, "operator")):
        idx = op.scalar(F.OP_OPCODE_INDEX, "uint32", 0)
        if idx >= len(opcodes):
            raise ModelFormatError(
                f"operator {k}: opcode index {idx} is out of range (file has {len(opcodes)} operator codes)"
            )
        opcode = opcodes[idx]
        op.where = f"operator {k} ({opcode})"
        ins = _read_index_vector(op, F.OP_INPUTS, "inputs", n, allow_absent=True)
        outs = _read_index_vector(op, F.OP_OUTPUTS, "outputs", n, allow_absent=False)
        if opcode.startswith(S.CUSTOM_PREFIX):
            options = _read_custom_options(op, op.where)
        else:
            options = _read_options(op, opcode, op.where)
        operators.append(Operator(opcode, ins, outs, options))
    return tensors, operators, inputs, outputs, description


#: Largest ``custom_options`` blob read (custom operators' parameters are a few hundred bytes).
MAX_CUSTOM_OPTIONS_BYTES = 1 << 16


def _flex_value(v, where: str, depth: int = 0):
    """A decoded FlexBuffers value as plain Python (int, float, bool, str, bytes, list, dict)."""
    if depth > 8:
        raise ModelFormatError(f"{where}: custom options nest deeper than 8 levels; the file is corrupt")
    if isinstance(v, (bool, int, float, str, bytes)) or v is None:
        return v
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if not isinstance(k, str):
                raise ModelFormatError(f"{where}: custom options hold a non-string key {k!r}; the file is corrupt")
            out[k] = _flex_value(x, where, depth + 1)
        return out
    if isinstance(v, (list, tuple)):
        return [_flex_value(x, where, depth + 1) for x in v]
    raise ModelFormatError(f"{where}: custom options hold a value of type {type(v).__name__}; the file is corrupt")


def _read_custom_options(op: Table, where: str) -> dict:
    """A custom operator's ``custom_options``: a FlexBuffers map (TFLM's ``FlexbufferWrapper``) as a dict.

    The blob is untrusted: its size is bounded (:data:`MAX_CUSTOM_OPTIONS_BYTES`), any decoding
    failure of the ``flatbuffers.flexbuffers`` reader (a bad offset, a truncated value, an unknown
    type) becomes :class:`ModelFormatError`, and only a map of plain values is accepted. No options
    gives ``{}``.
    """
    fmt = op.scalar(F.OP_CUSTOM_OPTIONS_FORMAT, "int8", 0)
    if fmt != 0:
        raise ModelFormatError(f"{where}: custom_options_format {fmt} is not FLEXBUFFERS (0); the file is corrupt")
    blob = bytes(op.bytes_view(F.OP_CUSTOM_OPTIONS, "custom_options"))
    if not blob:
        return {}
    if len(blob) > MAX_CUSTOM_OPTIONS_BYTES:
        raise ModelFormatError(f"{where}: custom options take {len(blob)} bytes, more than tinyzo's limit of "
                               f"{MAX_CUSTOM_OPTIONS_BYTES}; the file is corrupt")
    from flatbuffers import flexbuffers

    try:
        value = flexbuffers.Loads(blob)
    except RecursionError:
        raise ModelFormatError(f"{where}: custom options nest too deeply; the file is corrupt") from None
    except Exception as e:  # noqa: BLE001  (the reader raises many types on malformed input: IndexError, struct.error, ...)
        raise ModelFormatError(f"{where}: custom options are not a valid FlexBuffer ({type(e).__name__}); "
                               "the file is corrupt") from None
    if not isinstance(value, dict):
        raise ModelFormatError(f"{where}: custom options are a FlexBuffers {type(value).__name__}, not a map; "
                               "the file is corrupt")
    return _flex_value(value, where)


def check_integer_model(tensors, operators, inputs, outputs, label: str = "the model") -> None:
    """Raise :class:`UnsupportedModelError` if any tensor computed at run time is floating point.

    tinyzo runs fully integer-quantized models only; a float32 (or float16,
    hybrid, float-input) model is refused here with the conversion recipe.
    """
    runtime = set(inputs) | set(outputs)
    for op in operators:
        runtime.update(i for i in op.inputs + op.outputs if i != -1)
    allowed = float_interface_tensors(operators, inputs, outputs)
    for i in sorted(runtime):
        t = tensors[i]
        if not t.is_constant and t.dtype.kind in "fc" and i not in allowed:
            raise UnsupportedModelError(
                f"{label} is a {t.dtype} model (tensor {i} {t.name!r} is {t.dtype}); tinyzo runs fully "
                "int8-quantized models: convert with full-integer post-training quantization "
                "(converter.optimizations = [tf.lite.Optimize.DEFAULT], a representative_dataset, "
                "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8], "
                "converter.inference_input_type = converter.inference_output_type = tf.int8)"
            )


def float_interface_tensors(operators, inputs, outputs) -> set:
    """Float tensors allowed in an int8 model: its float interface, nothing inside.

    A model input read only by QUANTIZE (or CAST) operators, and a model output
    written by a DEQUANTIZE (or CAST) operator and read by no operator (the
    converter's ``inference_input_type = tf.float32`` wrapping), keep the
    computation integer.
    """
    consumers: dict = {}
    producer: dict = {}
    for op in operators:
        for i in op.inputs:
            if i != -1:
                consumers.setdefault(i, []).append(op.opcode)
        for o in op.outputs:
            producer[o] = op.opcode
    allowed = {i for i in inputs if consumers.get(i) and all(c in ("QUANTIZE", "CAST") for c in consumers[i])}
    allowed |= {o for o in outputs if producer.get(o) in ("DEQUANTIZE", "CAST") and o not in consumers}
    return allowed


def read_tflite(data, name: str = "", rounding: str = DOUBLE_ROUNDING) -> Model:
    """Read a ``.tflite`` file into a prepared :class:`tinyzo.graph.Model`.

    Args:
        data: the file contents (``bytes``-like, at most 512 MiB).
        name: a label for the model (e.g. the file name); defaults to the
            model's description.
        rounding: requantization rounding of the prepared model, ``"double"``
            (TFLM's default) or ``"single"``.

    Raises:
        ModelFormatError: not a .tflite file, truncated, corrupt, over the limits.
        UnsupportedModelError: a float model, or otherwise outside tinyzo's scope.
        UnsupportedOperatorError: an operator tinyzo does not implement (named, with its index).
    """
    tensors, operators, inputs, outputs, description = read_tflite_parts(data)
    label = name or description or "the model"
    check_integer_model(tensors, operators, inputs, outputs, label=repr(label))
    return Model(tensors, operators, inputs, outputs, name=name or description, rounding=rounding)
