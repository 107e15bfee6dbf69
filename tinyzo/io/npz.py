"""tinyzo's native model format: a compressed ``.npz`` archive without pickles.

Layout (``np.savez_compressed``; every member a plain ``.npy`` array):

* ``format_version``: int64 scalar, :data:`FORMAT_VERSION` (1);
* ``graph``: uint8[n], the UTF-8 bytes of a JSON document::

      {"format": "tinyzo-model", "name": str, "rounding": "double" | "single",
       "inputs": [int, ...], "outputs": [int, ...],
       "tensors": [{"name": str, "shape": [int, ...], "dtype": "int8" | "int32" | ...,
                    "quant": null | {"axis": int}, "constant": bool,
                    "variable": true (only on variable tensors: model state),
                    "int4": true (optional)}, ...],
       "operators": [{"opcode": str, "inputs": [int, ...], "outputs": [int, ...],
                      "options": {field: value, ...}}, ...]}

* ``t<i>``: the data of constant tensor ``i`` (its dtype and shape);
* ``s<i>``, ``z<i>``: the quantization scales (float32[n]) and zero points
  (int64[n]) of tensor ``i`` when ``quant`` is not null.

Numbers that must round-trip bit for bit (data, scales) are arrays, never
JSON text. Reading never unpickles: each member's ``.npy`` header is parsed
and checked (no object dtypes, declared size equal to the bytes present,
archive size limits) before any array is built.
"""

from __future__ import annotations

import io
import json
import math
import warnings
import zipfile

import numpy as np

from tinyzo.errors import ModelFormatError, UnsupportedModelError
from tinyzo.graph import Model, Operator, Tensor
from tinyzo.io import tflite_schema as S
from tinyzo.io.flatbuf import SCALAR_FORMATS
from tinyzo.io.tflite_read import MAX_FILE_BYTES, MAX_RANK, MAX_TENSOR_ELEMENTS, check_integer_model
from tinyzo.quant import DOUBLE_ROUNDING, ROUNDING_MODES, QuantParams

__all__ = ["FORMAT_VERSION", "load_npz", "read_npz_parts", "save_npz"]

#: Version of the layout above; a reader refuses other versions.
FORMAT_VERSION = 1
#: Largest total uncompressed size of an archive (512 MiB).
MAX_UNCOMPRESSED_BYTES = MAX_FILE_BYTES

_DTYPES = {np.dtype(d).name: np.dtype(d) for d in S.DTYPE_TENSOR_TYPES}


def _jsonable(v):
    """Options values as plain JSON types (numpy scalars/arrays -> Python numbers/lists)."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, (np.ndarray, list, tuple)):
        return [_jsonable(x) for x in (v.tolist() if isinstance(v, np.ndarray) else v)]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if v is None or isinstance(v, (int, float, str)):
        return v
    raise ModelFormatError(f"option value {v!r} ({type(v).__name__}) cannot be stored in a tinyzo .npz")


def save_npz(model, path) -> None:
    """Write ``model`` in tinyzo's native ``.npz`` format (see the module docstring).

    Args:
        model: a :class:`tinyzo.graph.Model` (or any object with ``tensors``,
            ``operators``, ``inputs``, ``outputs`` and optionally ``name``, ``rounding``).
        path: a file path (written as given, no suffix added) or a binary file object.

    Loading the file gives equal tensors (names, shapes, dtypes, quantization,
    data bit for bit), operators (tuples in options come back as lists) and
    rounding mode.
    """
    arrays = {"format_version": np.array(FORMAT_VERSION, dtype=np.int64)}
    tensors = []
    for i, t in enumerate(model.tensors):
        if np.dtype(t.dtype).name not in _DTYPES:
            raise ModelFormatError(f"tensor {i} ({t.name!r}): dtype {t.dtype} cannot be stored in a tinyzo .npz")
        entry = {
            "name": str(t.name),
            "shape": [int(d) for d in t.shape],
            "dtype": np.dtype(t.dtype).name,
            "quant": None,
            "constant": t.data is not None,
        }
        if getattr(t, "is_variable", False):  # written only when set: files of stateless models are unchanged
            entry["variable"] = True
        if getattr(t, "int4", False):
            entry["int4"] = True  # optional key (absent = False): a TFLite INT4 constant, held unpacked
        if t.quant is not None:
            entry["quant"] = {"axis": int(t.quant.axis)}
            arrays[f"s{i}"] = np.asarray(t.quant.scale, dtype=np.float32)
            arrays[f"z{i}"] = np.asarray(t.quant.zero_point, dtype=np.int64)
        if t.data is not None:
            data = np.asarray(t.data)
            if data.dtype != t.dtype or tuple(data.shape) != tuple(t.shape):
                raise ModelFormatError(
                    f"tensor {i} ({t.name!r}): data is {data.dtype}{list(data.shape)}, the tensor is {t.dtype}{list(t.shape)}"
                )
            arrays[f"t{i}"] = np.ascontiguousarray(data)
        tensors.append(entry)
    graph = {
        "format": "tinyzo-model",
        "name": str(getattr(model, "name", "") or ""),
        "rounding": str(getattr(model, "rounding", DOUBLE_ROUNDING)),
        "inputs": [int(i) for i in model.inputs],
        "outputs": [int(i) for i in model.outputs],
        "tensors": tensors,
        "operators": [
            {
                "opcode": str(op.opcode),
                "inputs": [int(i) for i in op.inputs],
                "outputs": [int(i) for i in op.outputs],
                "options": _jsonable(dict(op.options or {})),
            }
            for op in model.operators
        ],
    }
    arrays["graph"] = np.frombuffer(json.dumps(graph).encode("utf-8"), dtype=np.uint8)
    if hasattr(path, "write"):
        np.savez_compressed(path, **arrays)
    else:
        with open(path, "wb") as f:
            np.savez_compressed(f, **arrays)


def _read_npy_header(f, key: str) -> tuple:
    """``(shape, fortran_order, dtype)`` of the ``.npy`` header at the start of ``f``.

    numpy's header parser evaluates the header's dict literal with Python's tokenizer and raises
    whatever it meets (ValueError, SyntaxError, tokenize.TokenError, ...) on a damaged header; every
    such error is a corrupt member here.
    """
    try:
        with warnings.catch_warnings():  # a damaged descr can name a deprecated alias ('a'): no warning, checked below
            warnings.simplefilter("ignore")
            major, minor = np.lib.format.read_magic(f)
            if (major, minor) == (1, 0):
                return np.lib.format.read_array_header_1_0(f)
            if (major, minor) == (2, 0):
                return np.lib.format.read_array_header_2_0(f)
    except zipfile.BadZipFile:
        raise
    except Exception as e:  # noqa: BLE001 (numpy documents no error set for a damaged header)
        raise ModelFormatError(
            f"member {key!r}: damaged .npy header ({type(e).__name__}: {str(e)[:120]}); the file is corrupt"
        ) from None
    raise ModelFormatError(f"member {key!r}: unsupported .npy version {major}.{minor}")


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _option_value_ok(kind: str, v) -> bool:
    """True if the JSON value ``v`` can be stored in a TFLite options field of ``kind`` (see tflite_schema)."""
    if kind == "bool":
        return isinstance(v, bool)
    if kind in ("float32", "float64"):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        return kind == "float64" or not math.isfinite(v) or abs(v) <= _FLOAT32_MAX
    if kind in SCALAR_FORMATS:
        if isinstance(v, bool) or not isinstance(v, int):
            return False
        bits = 8 * SCALAR_FORMATS[kind][1]
        lo, hi = (0, (1 << bits) - 1) if kind.startswith("u") else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        return lo <= v <= hi
    if kind in S.ENUMS:
        return isinstance(v, str) and v in S.ENUMS[kind].values()
    if kind.endswith("[]"):
        return isinstance(v, list) and all(_option_value_ok(kind[:-2], x) for x in v)
    if kind == "string":
        return isinstance(v, str)
    return True  # pragma: no cover - every kind of the schema tables is handled above


def _check_options(k: int, opcode: str, options: dict) -> None:
    """Raise ModelFormatError for an option whose JSON value does not fit its TFLite schema type.

    Fields the schema does not list for ``opcode`` are kept and never read.
    """
    layout = S.OPTION_TABLES.get(S.options_table_for(opcode) or "", ())
    for name, kind, _ in layout:
        if name is not None and name in options and not _option_value_ok(kind, options[name]):
            text = repr(options[name])
            raise ModelFormatError(
                f"operator {k} ({opcode}): option {name} = {text[:60]}{'...' if len(text) > 60 else ''} is not a "
                f"valid {kind} value; the file is corrupt"
            )


def _read_member(zf: zipfile.ZipFile, key: str) -> np.ndarray:
    """Read ``key`` (a .npy member) with its header checked; never unpickles."""
    name = key + ".npy"
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise ModelFormatError(f"not a tinyzo .npz model: member {key!r} is missing") from None
    with zf.open(info) as f:
        shape, fortran, dtype = _read_npy_header(f, key)
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
            raise ModelFormatError(
                f"member {key!r}: dtype {dtype} is not a plain numeric type (tinyzo never unpickles)"
            )
        count = math.prod(shape)
        if count > MAX_TENSOR_ELEMENTS:
            raise ModelFormatError(f"member {key!r}: shape {list(shape)} has more than 2**28 elements")
        nbytes = count * dtype.itemsize
        if nbytes > info.file_size:
            raise ModelFormatError(
                f"member {key!r}: header declares {nbytes} bytes but the member has {info.file_size}; the file is corrupt"
            )
        raw = f.read()  # bounded by info.file_size (checked against the limit); also verifies the CRC
    if len(raw) != nbytes:
        raise ModelFormatError(f"member {key!r}: {len(raw)} data bytes, header declares {nbytes}; the file is corrupt")
    arr = np.frombuffer(raw, dtype=dtype, count=count)
    arr = arr.reshape(shape, order="F" if fortran else "C")
    return np.array(arr, dtype=dtype.newbyteorder("="), order="C", copy=True)


def _index_list(v, n: int, what: str, allow_absent: bool = False) -> tuple:
    if not isinstance(v, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in v):
        raise ModelFormatError(f"{what} must be a list of integers")
    for i in v:
        if not (0 <= i < n or (allow_absent and i == -1)):
            raise ModelFormatError(f"{what} names tensor {i}, out of range (the model has {n} tensors)")
    return tuple(v)


def _parse(zf: zipfile.ZipFile):
    version = _read_member(zf, "format_version")
    if version.shape != () or version.dtype.kind not in "iu" or int(version) != FORMAT_VERSION:
        raise ModelFormatError(
            f"tinyzo .npz format version {version.tolist()} is not supported (this tinyzo reads version {FORMAT_VERSION})"
        )
    raw = _read_member(zf, "graph")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelFormatError("member 'graph' must be a uint8 vector of JSON text")
    try:
        g = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ModelFormatError(f"member 'graph' is not valid JSON: {e}") from None
    if not isinstance(g, dict) or g.get("format") != "tinyzo-model":
        raise ModelFormatError("member 'graph' is not a tinyzo model description")
    rounding = g.get("rounding", DOUBLE_ROUNDING)
    if rounding not in ROUNDING_MODES:
        raise ModelFormatError(f"rounding {rounding!r} is not one of {ROUNDING_MODES}")
    tensors = []
    entries = g["tensors"]
    if not isinstance(entries, list):
        raise ModelFormatError("'tensors' must be a list")
    for i, e in enumerate(entries):
        where = f"tensor {i}"
        shape = e["shape"]
        if (
            not isinstance(shape, list)
            or len(shape) > MAX_RANK
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            raise ModelFormatError(f"{where}: shape {shape!r} is not a list of non-negative integers")
        if math.prod(shape) > MAX_TENSOR_ELEMENTS:
            raise ModelFormatError(f"{where}: shape {shape} has more than 2**28 elements")
        dtype = _DTYPES.get(e["dtype"])
        if dtype is None:
            raise ModelFormatError(f"{where}: dtype {e['dtype']!r} is not a tensor type tinyzo stores")
        quant = None
        if e["quant"] is not None:
            scale = _read_member(zf, f"s{i}")
            zp = _read_member(zf, f"z{i}")
            axis = e["quant"]["axis"]
            if scale.dtype != np.float32 or zp.dtype != np.int64 or scale.ndim != 1 or scale.shape != zp.shape:
                raise ModelFormatError(f"{where}: quantization arrays must be float32[n] and int64[n]")
            if scale.size == 0 or not isinstance(axis, int) or not 0 <= axis < max(len(shape), 1):
                raise ModelFormatError(f"{where}: invalid quantization (n={scale.size}, axis={axis!r})")
            quant = QuantParams(scale, zp, axis)
        data = None
        if e["constant"]:
            data = _read_member(zf, f"t{i}")
            if data.dtype != dtype or list(data.shape) != shape:
                raise ModelFormatError(f"{where}: data is {data.dtype}{list(data.shape)}, expected {dtype}{shape}")
        elif 0 in shape:
            raise UnsupportedModelError(f"{where}: shape {shape} has a zero dimension; tinyzo needs non-empty tensors")
        variable = e.get("variable", False)
        if not isinstance(variable, bool):
            raise ModelFormatError(f"{where}: 'variable' must be true or false, got {variable!r}")
        int4 = e.get("int4", False)
        if int4 is not False and (int4 is not True or dtype != np.int8 or data is None
                                  or (data.size and (int(data.min()) < -8 or int(data.max()) > 7))):
            raise ModelFormatError(f"{where}: 'int4' must be true only for a constant int8 tensor with values in [-8, 7]")
        tensors.append(Tensor(str(e["name"]), tuple(shape), dtype, quant, data, variable, int4=int4))
    n = len(tensors)
    operators = []
    for k, o in enumerate(g["operators"]):
        if not isinstance(o["opcode"], str) or not isinstance(o["options"], dict):
            raise ModelFormatError(f"operator {k}: opcode must be a string and options an object")
        ins = _index_list(o["inputs"], n, f"operator {k} inputs", allow_absent=True)
        outs = _index_list(o["outputs"], n, f"operator {k} outputs")
        _check_options(k, o["opcode"], o["options"])
        operators.append(Operator(o["opcode"], ins, outs, dict(o["options"])))
    inputs = _index_list(g["inputs"], n, "model inputs")
    outputs = _index_list(g["outputs"], n, "model outputs")
    return tensors, operators, inputs, outputs, str(g.get("name", "")), rounding


def read_npz_parts(file):
    """Parse a tinyzo ``.npz`` without preparing the model.

    Args:
        file: a path or a binary file object.

    Returns:
        ``(tensors, operators, inputs, outputs, name, rounding)``.

    Raises:
        ModelFormatError: not a zip archive, not a tinyzo model, wrong format
            version, corrupt, over the size limits, or an object (pickle) array.
    """
    try:
        with zipfile.ZipFile(file) as zf:
            total = 0
            for info in zf.infolist():
                total += info.file_size
                if total > MAX_UNCOMPRESSED_BYTES:
                    raise ModelFormatError(
                        f"the archive expands to more than {MAX_UNCOMPRESSED_BYTES} bytes, tinyzo's limit (512 MiB)"
                    )
            return _parse(zf)
    except ModelFormatError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, KeyError, TypeError,
            AttributeError, NotImplementedError, RuntimeError) as e:  # fmt: skip
        # zlib.error is an Exception subclass caught below; BadZipFile covers CRC errors
        raise ModelFormatError(f"not a valid tinyzo .npz model: {type(e).__name__}: {e}") from None
    except Exception as e:  # zlib.error and other decoder errors of a corrupt archive
        if type(e).__module__ in ("zlib", "bz2", "lzma", "_lzma", "_bz2"):
            raise ModelFormatError(f"not a valid tinyzo .npz model: the archive is corrupt ({e})") from None
        raise


def load_npz(file, rounding: str | None = None, name: str | None = None) -> Model:
    """Load a model saved by :func:`save_npz`.

    Args:
        file: a path or a binary file object.
        rounding: override the stored rounding mode (``"double"``/``"single"``); None keeps it.
        name: override the stored name.

    Raises:
        ModelFormatError: see :func:`read_npz_parts`.
        UnsupportedModelError, UnsupportedOperatorError: from preparing the model.
    """
    if isinstance(file, (bytes, bytearray, memoryview)):
        file = io.BytesIO(bytes(file))
    tensors, operators, inputs, outputs, stored_name, stored_rounding = read_npz_parts(file)
    check_integer_model(tensors, operators, inputs, outputs, label=repr(name or stored_name or "the model"))
    return Model(
        tensors,
        operators,
        inputs,
        outputs,
        name=stored_name if name is None else name,
        rounding=stored_rounding if rounding is None else rounding,
    )
