"""Write a :class:`tinyzo.graph.Model` as a ``.tflite`` file (TFLite FlatBuffer, schema version 3).

The file is built with the official ``flatbuffers.Builder``. It holds one
subgraph; operator codes carry both ``deprecated_builtin_code``
(``min(code, 127)``) and ``builtin_code`` (schema 3a) so old and new readers
agree; buffer 0 is the empty sentinel and every constant tensor gets its own
buffer, 16-byte aligned (``force_align: 16`` in schema.fbs); the description
is ``"tinyzo <version>"``. Builtin options are written from the normalized
options dict (:data:`tinyzo.io.tflite_schema.OPTION_TABLES`); a missing key
takes the schema default, an unknown key is an error.

TFLite Micro runs the written bytes exactly as it runs the file they were
read from (tests/test_io.py checks this on the bundled models).
"""

from __future__ import annotations

import operator as _operator

import flatbuffers
import numpy as np
from flatbuffers import number_types as N

from tinyzo.errors import ModelFormatError
from tinyzo.io import tflite_schema as S
from tinyzo.io.int4 import pack_int4
from tinyzo.version import __version__

__all__ = ["write_tflite", "write_tflite_parts"]

F = S.F

_INT_RANGES = {
    "int8": (-(1 << 7), (1 << 7) - 1),
    "uint8": (0, (1 << 8) - 1),
    "int16": (-(1 << 15), (1 << 15) - 1),
    "uint16": (0, (1 << 16) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1),
    "uint32": (0, (1 << 32) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
    "uint64": (0, (1 << 64) - 1),
}
_FLAGS = {
    "bool": N.BoolFlags,
    "int8": N.Int8Flags,
    "uint8": N.Uint8Flags,
    "int16": N.Int16Flags,
    "uint16": N.Uint16Flags,
    "int32": N.Int32Flags,
    "uint32": N.Uint32Flags,
    "int64": N.Int64Flags,
    "uint64": N.Uint64Flags,
    "float32": N.Float32Flags,
    "float64": N.Float64Flags,
}
_VECTOR_DTYPES = {"int32[]": np.int32, "int64[]": np.int64, "float32[]": np.float32}


def _int(value, kind: str, where: str) -> int:
    try:
        v = _operator.index(value)
    except TypeError:
        raise ModelFormatError(f"{where}: expected an integer, got {value!r}") from None
    lo, hi = _INT_RANGES[kind]
    if not lo <= v <= hi:
        raise ModelFormatError(f"{where}: {v} does not fit in {kind}")
    return v


def _scalar(kind: str, value, where: str):
    if kind == "bool":
        if not isinstance(value, (bool, np.bool_)) and value not in (0, 1):
            raise ModelFormatError(f"{where}: expected a bool, got {value!r}")
        return bool(value)
    if kind.startswith("float"):
        try:
            return float(np.float32(value)) if kind == "float32" else float(value)
        except (TypeError, ValueError):
            raise ModelFormatError(f"{where}: expected a number, got {value!r}") from None
    return _int(value, kind, where)


def _aligned_bytes_vector(b: flatbuffers.Builder, payload: bytes, alignment: int) -> int:
    b.StartVector(1, len(payload), alignment)
    b.head = b.head - len(payload)
    b.Bytes[b.head : b.head + len(payload)] = payload
    return b.EndVector()


def _int_vector(b: flatbuffers.Builder, values, dtype=np.int32) -> int:
    return b.CreateNumpyVector(np.asarray(list(values), dtype=np.dtype(dtype).newbyteorder("<")).reshape(-1))


def _offsets_vector(b: flatbuffers.Builder, offsets) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _write_options(b: flatbuffers.Builder, op, k: int) -> tuple[int, int]:
    """Build the options table of operator ``k``; returns ``(union type code, table offset)`` ((0, 0) for none)."""
    where = f"operator {k} ({op.opcode})"
    table = S.options_table_for(op.opcode)
    options = dict(op.options or {})
    if table is None or table not in S.OPTION_TABLES:
        if options:
            raise ModelFormatError(
                f"{where}: tinyzo cannot write options {sorted(options)} for {op.opcode}, which has no known options table"
            )
        return 0, 0
    layout = S.OPTION_TABLES[table]
    known = {name for name, _, _ in layout if name is not None}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ModelFormatError(
            f"{where}: unknown option(s) {unknown} for {table}; valid fields: {', '.join(sorted(known)) or 'none'}"
        )
    # reference fields (vectors, strings) must be built before the table starts
    refs = {}
    for index, (name, kind, default) in enumerate(layout):
        if name is None or name not in options:
            continue
        value = options[name]
        if kind.endswith("[]"):
            try:
                arr = np.asarray(value).reshape(-1)
                if kind != "float32[]":
                    arr = np.asarray([_int(v, kind[:-2], f"{where} option {name}") for v in arr.tolist()])
                refs[index] = _int_vector(b, arr, _VECTOR_DTYPES[kind])
            except (TypeError, ValueError):
                raise ModelFormatError(f"{where}: option {name} must be a list of numbers, got {value!r}") from None
        elif kind == "string":
            refs[index] = b.CreateString(str(value))
    b.StartObject(len(layout))
    for index, (name, kind, default) in enumerate(layout):
        if name is None:
            continue
        if index in refs:
            b.PrependUOffsetTRelativeSlot(index, refs[index], 0)
            continue
        if kind.endswith("[]") or kind == "string":
            continue
        value = options.get(name, default)
        if kind in S.ENUMS:
            codes = {v: c for c, v in S.ENUMS[kind].items()}
            if value not in codes:
                raise ModelFormatError(f"{where}: option {name} = {value!r} is not a {kind} value ({', '.join(codes)})")
            storage = S.ENUM_STORAGE[kind]
            b.PrependSlot(_FLAGS[storage], index, codes[value], codes[default])
        else:
            b.PrependSlot(
                _FLAGS[kind], index, _scalar(kind, value, f"{where} option {name}"), _scalar(kind, default, name)
            )
    return S.BUILTIN_OPTIONS_CODES[table], b.EndObject()


def _opcode_code(opcode: str, k: int) -> tuple[int, str | None]:
    if opcode.startswith(S.CUSTOM_PREFIX):
        return S.BUILTIN_CODES["CUSTOM"], opcode[len(S.CUSTOM_PREFIX) :]
    code = S.BUILTIN_CODES.get(opcode)
    if code is None or opcode == "CUSTOM":
        raise ModelFormatError(
            f"operator {k}: {opcode!r} is not a TFLite builtin operator name (custom ops are written as 'CUSTOM:<code>')"
        )
    return code, None


def _tensor_payload(t, k: int) -> bytes | None:
    if t.data is None:
        return None
    where = f"tensor {k} ({t.name!r})"
    data = np.asarray(t.data)
    if data.dtype != t.dtype:
        raise ModelFormatError(f"{where}: data is {data.dtype} but the tensor is {t.dtype}; convert it explicitly")
    if data.size != int(np.prod(t.shape, dtype=np.int64)):
        raise ModelFormatError(f"{where}: data has shape {data.shape}, the tensor has shape {list(t.shape)}")
    if getattr(t, "int4", False):
        if data.dtype != np.int8:
            raise ModelFormatError(f"{where}: an INT4 tensor holds its values as int8, got {data.dtype}")
        try:
            return pack_int4(data)
        except ValueError as e:
            raise ModelFormatError(f"{where}: {e}; an INT4 tensor takes values in [-8, 7]") from None
    return np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<"), copy=False).tobytes(order="C")


def write_tflite_parts(tensors, operators, inputs, outputs, description: str | None = None) -> bytes:
    """Serialize graph data (as returned by :func:`tinyzo.io.tflite_read.read_tflite_parts`) to ``.tflite`` bytes.

    Args:
        tensors: list of :class:`tinyzo.graph.Tensor`; dtype must be a TFLite
            tensor type (int8, int16, int32, int64, uint8, float32, ...);
            ``data`` (if any) must have the tensor's dtype and size. A constant with
            ``int4=True`` (int8 values in [-8, 7]) is written as INT4, packed two per byte,
            low nibble first (:func:`tinyzo.io.int4.pack_int4`).
        operators: list of :class:`tinyzo.graph.Operator`; ``opcode`` a builtin
            name or ``"CUSTOM:<code>"``; ``options`` a subset of the fields of
            the op's options table (missing fields take the schema default).
        inputs, outputs: subgraph input/output tensor indices.
        description: the model description; default ``"tinyzo <version>"``.

    Returns:
        The file contents, starting with a root offset and the ``TFL3`` identifier.

    Raises:
        ModelFormatError: something cannot be written (unknown opcode, option, dtype, bad data size).
    """
    if description is None:
        description = f"tinyzo {__version__}"
    total = sum(t.nbytes for t in tensors if t.data is not None)
    b = flatbuffers.Builder(total + 16 * len(tensors) + 4096)

    # buffers: 0 is the empty sentinel, then one per constant tensor (data 16-byte aligned)
    buffer_tables = []
    b.StartObject(F.B_NFIELDS)
    buffer_tables.append(b.EndObject())
    tensor_buffer = []
    for k, t in enumerate(tensors):
        payload = _tensor_payload(t, k)
        if payload is None or len(payload) == 0:
            tensor_buffer.append(0)
            continue
        vec = _aligned_bytes_vector(b, payload, 16)
        b.StartObject(F.B_NFIELDS)
        b.PrependUOffsetTRelativeSlot(F.B_DATA, vec, 0)
        tensor_buffer.append(len(buffer_tables))
        buffer_tables.append(b.EndObject())
    buffers_vec = _offsets_vector(b, buffer_tables)

    # tensors
    tensor_tables = []
    for k, t in enumerate(tensors):
        code = S.DTYPE_TENSOR_TYPES.get(np.dtype(t.dtype))
        if getattr(t, "int4", False):
            if t.data is None:
                raise ModelFormatError(f"tensor {k} ({t.name!r}): only constant tensors can be INT4")
            code = S.TENSOR_TYPE_CODES["INT4"]
        if code is None:
            raise ModelFormatError(f"tensor {k} ({t.name!r}): dtype {t.dtype} has no TFLite tensor type")
        name = b.CreateString(str(t.name))
        shape = _int_vector(b, [_int(d, "int32", f"tensor {k} shape") for d in t.shape])
        quant = 0
        if t.quant is not None:
            scale = _int_vector(b, t.quant.scale, np.float32)
            zp = _int_vector(b, t.quant.zero_point, np.int64)
            b.StartObject(F.Q_NFIELDS)
            b.PrependUOffsetTRelativeSlot(F.Q_SCALE, scale, 0)
            b.PrependUOffsetTRelativeSlot(F.Q_ZERO_POINT, zp, 0)
            b.PrependInt32Slot(F.Q_QUANTIZED_DIMENSION, _int(t.quant.axis, "int32", f"tensor {k} axis"), 0)
            quant = b.EndObject()
        b.StartObject(F.T_NFIELDS)
        b.PrependUOffsetTRelativeSlot(F.T_SHAPE, shape, 0)
        b.PrependInt8Slot(F.T_TYPE, code, 0)
        b.PrependUint32Slot(F.T_BUFFER, tensor_buffer[k], 0)
        b.PrependUOffsetTRelativeSlot(F.T_NAME, name, 0)
        if quant:
            b.PrependUOffsetTRelativeSlot(F.T_QUANT, quant, 0)
        if getattr(t, "is_variable", False):
            b.PrependBoolSlot(F.T_IS_VARIABLE, True, False)
        tensor_tables.append(b.EndObject())
    tensors_vec = _offsets_vector(b, tensor_tables)

    # operators and operator codes (one code per distinct opcode, in order of first use)
    opcode_index: dict[str, int] = {}
    op_tables = []
    for k, op in enumerate(operators):
        _opcode_code(op.opcode, k)
        idx = opcode_index.setdefault(op.opcode, len(opcode_index))
        for i in op.inputs:
            if i != -1 and not 0 <= i < len(tensors):
                raise ModelFormatError(f"operator {k} ({op.opcode}): input tensor {i} is out of range")
        for i in op.outputs:
            if not 0 <= i < len(tensors):
                raise ModelFormatError(f"operator {k} ({op.opcode}): output tensor {i} is out of range")
        ins = _int_vector(b, op.inputs)
        outs = _int_vector(b, op.outputs)
        opt_type, opt_table = _write_options(b, op, k)
        b.StartObject(F.OP_NFIELDS)
        b.PrependUint32Slot(F.OP_OPCODE_INDEX, idx, 0)
        b.PrependUOffsetTRelativeSlot(F.OP_INPUTS, ins, 0)
        b.PrependUOffsetTRelativeSlot(F.OP_OUTPUTS, outs, 0)
        if opt_type:
            b.PrependUint8Slot(F.OP_OPTIONS_TYPE, opt_type, 0)
            b.PrependUOffsetTRelativeSlot(F.OP_OPTIONS, opt_table, 0)
        op_tables.append(b.EndObject())
    operators_vec = _offsets_vector(b, op_tables)

    for role, idxs in (("input", inputs), ("output", outputs)):
        for i in idxs:
            if not 0 <= int(i) < len(tensors):
                raise ModelFormatError(f"model {role} tensor {i} is out of range")
    sg_name = b.CreateString("main")
    sg_inputs = _int_vector(b, inputs)
    sg_outputs = _int_vector(b, outputs)
    b.StartObject(F.SG_NFIELDS)
    b.PrependUOffsetTRelativeSlot(F.SG_TENSORS, tensors_vec, 0)
    b.PrependUOffsetTRelativeSlot(F.SG_INPUTS, sg_inputs, 0)
    b.PrependUOffsetTRelativeSlot(F.SG_OUTPUTS, sg_outputs, 0)
    b.PrependUOffsetTRelativeSlot(F.SG_OPERATORS, operators_vec, 0)
    b.PrependUOffsetTRelativeSlot(F.SG_NAME, sg_name, 0)
    subgraph = b.EndObject()
    subgraphs_vec = _offsets_vector(b, [subgraph])

    code_tables = []
    for opcode in opcode_index:
        code, custom = _opcode_code(opcode, 0)
        custom_str = b.CreateString(custom) if custom is not None else 0
        b.StartObject(F.OPCODE_NFIELDS)
        b.PrependInt8Slot(F.OPCODE_DEPRECATED_BUILTIN, min(code, S.PLACEHOLDER_FOR_GREATER_OP_CODES), 0)
        if custom_str:
            b.PrependUOffsetTRelativeSlot(F.OPCODE_CUSTOM, custom_str, 0)
        b.PrependInt32Slot(F.OPCODE_VERSION, 1, 1)
        b.PrependInt32Slot(F.OPCODE_BUILTIN, code, 0)
        code_tables.append(b.EndObject())
    codes_vec = _offsets_vector(b, code_tables)

    desc = b.CreateString(str(description))
    b.StartObject(F.MODEL_NFIELDS)
    b.PrependUint32Slot(F.MODEL_VERSION, S.SCHEMA_VERSION, 0)
    b.PrependUOffsetTRelativeSlot(F.MODEL_OPERATOR_CODES, codes_vec, 0)
    b.PrependUOffsetTRelativeSlot(F.MODEL_SUBGRAPHS, subgraphs_vec, 0)
    b.PrependUOffsetTRelativeSlot(F.MODEL_DESCRIPTION, desc, 0)
    b.PrependUOffsetTRelativeSlot(F.MODEL_BUFFERS, buffers_vec, 0)
    root = b.EndObject()
    b.Finish(root, file_identifier=S.FILE_IDENTIFIER)
    return bytes(b.Output())


def write_tflite(model, description: str | None = None) -> bytes:
    """Serialize a :class:`tinyzo.graph.Model` (or any object with ``tensors``,
    ``operators``, ``inputs``, ``outputs``) to ``.tflite`` bytes.

    The result runs in TFLite Micro with the same outputs as the model it was
    read from; reading it back gives equal tensors, data, quantization and
    operators. See :func:`write_tflite_parts` for the rules and errors.
    """
    return write_tflite_parts(model.tensors, model.operators, model.inputs, model.outputs, description)
