"""Training checkpoints: one file per run, written atomically, verified when read, never unpickled.

Both training loops keep their checkpoint in this one format: the int8 loop :func:`tinyzo.training.loop.fit`
(ZO and BP; ``<out_dir>/checkpoint.npz``) and the float loop :func:`tinyzo.fp.train.train` (its
``checkpoint=`` path). A checkpoint is one unit: the model arrays, the training state (optimizer
buffers and the step counters every random stream is derived from, epoch, history, run config) and a
manifest that lets the reader prove the file is whole and of one epoch.

**Layout.** An uncompressed zip archive (every member ``ZIP_STORED``; ``np.load(path,
allow_pickle=False)`` opens it for inspection) with the members

* ``<name>.npy``: one plain ``.npy`` per payload array (dtype bool, int, uint, float or unicode,
  C order). The payload array ``meta`` is the run's JSON (history, config, key paths) as uint8
  UTF-8 bytes, so it is covered by the digest like every other array;
* ``manifest.json``: ``{"format": "tinyzo-checkpoint", "version": 1, "kind": str, "epoch": int,
  "arrays": [[name, dtype, shape], ...], "sha256": hex}``, where ``sha256`` is
  :func:`payload_sha256` over format, version, kind, epoch, the array table and every array's bytes.

**Writing** (:func:`write_checkpoint`): the archive is built in memory, written to ``<path>.tmp`` in
the same folder (a leftover of a killed save is overwritten and never read), flushed and fsynced,
moved over ``path`` with ``os.replace`` (atomic on POSIX and Windows), then the folder is fsynced
where the OS allows it (POSIX) so that the rename survives a power cut too. A kill at any instant
leaves the previous checkpoint or the new one, never a mix of two epochs.

**Reading** (:func:`read_checkpoint`) treats the file as untrusted: every member must be stored
uncompressed and lie inside the file, be listed in the manifest with the dtype and shape its
``.npy`` header declares (checked before anything is allocated), and the recomputed SHA-256 must
equal the manifest's. Every failure is a :class:`~tinyzo.errors.CheckpointError` whose one-line
message names the file, the problem and what to do.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyzo.errors import CheckpointError

FORMAT = "tinyzo-checkpoint"
VERSION = 1
MANIFEST = "manifest.json"
META = "meta"
_MAX_MANIFEST_BYTES = 16 << 20
_DTYPE_KINDS = "biufU"  # bool, int, uint, float, unicode: nothing that needs pickle
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member time: the same state gives the same bytes
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/\-]{0,199}\Z")
_START_OVER = "delete it and start without resume"


@dataclass
class Checkpoint:
    """A checkpoint as read: ``kind`` and ``epoch`` from the manifest, ``arrays`` ``{name: ndarray}``
    (writable copies; ``meta`` excluded) and ``meta`` (the decoded JSON object)."""

    kind: str
    epoch: int
    arrays: dict
    meta: dict


def temp_path(path) -> Path:
    """The temporary file :func:`write_checkpoint` writes before the rename: ``<path>.tmp``."""
    path = Path(path)
    return path.with_name(path.name + ".tmp")


def payload_sha256(kind: str, epoch: int, arrays) -> str:
    """SHA-256 (hex) of a checkpoint's content.

    Hashes the compact JSON of ``[FORMAT, VERSION, kind, epoch, [[name, dtype.str, shape], ...]]``
    followed by every array's C-order bytes, in the order of ``arrays`` (a list of ``(name,
    ndarray)``). The table fixes every length, so no two different contents hash the same bytes.
    """
    h = hashlib.sha256()
    table = [[name, a.dtype.str, list(a.shape)] for name, a in arrays]
    h.update(json.dumps([FORMAT, VERSION, kind, int(epoch), table], separators=(",", ":")).encode())
    for _, a in arrays:
        h.update(np.asarray(a, order="C").tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# writing


def _payload_array(name: str, value) -> np.ndarray:
    a = np.asarray(value, order="C")
    if a.dtype.kind not in _DTYPE_KINDS or a.dtype.hasobject or a.dtype.itemsize == 0:
        raise CheckpointError(f"cannot checkpoint {_short(name)}: dtype {a.dtype} is not bool/int/uint/float/unicode "
                              "(checkpoints never pickle); convert it to a numeric array")
    return a


def encode_checkpoint(kind: str, epoch: int, arrays: dict, meta: dict) -> bytes:
    """The bytes of a checkpoint file (see the module docstring for the layout).

    Args:
        kind: what wrote it, e.g. ``"int8-fit"`` or ``"fp-train"``; the reader asks for one kind.
        epoch: completed epochs, int >= 0.
        arrays: ``{name: array-like}``; names match ``[A-Za-z0-9_][A-Za-z0-9_.:/-]*`` (at most 200
            characters), ``"meta"`` is reserved; dtypes bool/int/uint/float/unicode of any shape.
        meta: a JSON-serialisable dict (history, config, key paths).
    """
    if not isinstance(kind, str) or not kind:
        raise CheckpointError(f"a checkpoint kind must be a non-empty string, got {kind!r}")
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise CheckpointError(f"a checkpoint epoch must be an int >= 0, got {_short(epoch)}")
    payload = []
    for name, v in arrays.items():
        if not isinstance(name, str) or not _NAME.match(name) or name == META:
            raise CheckpointError(f"cannot checkpoint an array named {_short(name)}: use letters, digits and _.:/- "
                                  f"(at most 200), not {META!r}")
        payload.append((name, _payload_array(name, v)))
    try:
        meta_bytes = json.dumps(meta, separators=(",", ":")).encode()
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"cannot checkpoint the run's metadata: {e}; give plain JSON values") from None
    payload.append((META, np.frombuffer(meta_bytes, dtype=np.uint8)))
    manifest = {"format": FORMAT, "version": VERSION, "kind": kind, "epoch": int(epoch),
                "arrays": [[name, a.dtype.str, list(a.shape)] for name, a in payload],
                "sha256": payload_sha256(kind, int(epoch), payload)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, a in payload:
            npy = io.BytesIO()
            np.lib.format.write_array(npy, a, allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(name + ".npy", _ZIP_TIME), npy.getvalue())
        zf.writestr(zipfile.ZipInfo(MANIFEST, _ZIP_TIME), (json.dumps(manifest, indent=1) + "\n").encode())
    return buf.getvalue()


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder; the rename itself is still atomic
        pass
    finally:
        os.close(fd)


def write_checkpoint(path, kind: str, epoch: int, arrays: dict, meta: dict) -> int:
    """Write a checkpoint to ``path`` atomically; returns its size in bytes.

    :func:`encode_checkpoint` builds the bytes; they go to :func:`temp_path` (``<path>.tmp``, same
    folder, truncating any leftover of a killed save), are flushed and fsynced, then ``os.replace``
    moves the file over ``path`` and the folder is fsynced (POSIX). ``path`` always holds either
    the previous checkpoint or this one. An OS error (disk full, no permission) removes the
    temporary file and raises :class:`CheckpointError`; the previous checkpoint is untouched.
    """
    path = Path(path)
    data = encode_checkpoint(kind, epoch, arrays, meta)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise CheckpointError(f"cannot write checkpoint {path}: {e}; the previous checkpoint is kept") from None
    _fsync_dir(path.parent)
    return len(data)


# --------------------------------------------------------------------------------------------------
# reading


def _short(x) -> str:
    """``repr(x)`` cut to 60 characters (names and values in messages come from an untrusted file)."""
    r = repr(x)
    return r if len(r) <= 60 else r[:57] + "..."


def _damaged(path, problem: str, fix: str = _START_OVER) -> CheckpointError:
    text = f"checkpoint {path}: {problem}; {fix}"
    return CheckpointError(" ".join(text.split()))


def _check_member(info: zipfile.ZipInfo, file_size: int, path) -> None:
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        raise _damaged(path, f"member {_short(info.filename)} is compressed or encrypted (tinyzo stores members plain): "
                             "the file is damaged or not a tinyzo checkpoint")
    if info.file_size != info.compress_size or info.header_offset + info.compress_size > file_size:
        raise _damaged(path, f"member {_short(info.filename)} declares {info.file_size} bytes that the "
                             f"{file_size}-byte file cannot hold: the file is truncated or damaged")


def _manifest(zf: zipfile.ZipFile, info: zipfile.ZipInfo, kind: str, path) -> dict:
    if info.file_size > _MAX_MANIFEST_BYTES:
        raise _damaged(path, f"the manifest is {info.file_size} bytes (limit {_MAX_MANIFEST_BYTES}): the file is damaged")
    with zf.open(info) as f:
        m = json.loads(f.read().decode("utf-8"))
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise _damaged(path, "the manifest is not a tinyzo checkpoint manifest")
    version = m.get("version")
    if version != VERSION:
        newer = isinstance(version, int) and not isinstance(version, bool) and version > VERSION
        raise _damaged(path, f"checkpoint format version {_short(version)}, this tinyzo reads version {VERSION}",
                       "resume it with the tinyzo that wrote it, or " + _START_OVER if newer else _START_OVER)
    if m.get("kind") != kind:
        raise _damaged(path, f"it is a {_short(m.get('kind'))} checkpoint, this loop needs a {kind!r} one",
                       "give this run its own checkpoint path, or start without resume")
    epoch = m.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise _damaged(path, f"the manifest's epoch is {_short(epoch)}, not an int >= 0")
    table = m.get("arrays")
    sha = m.get("sha256")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha) or not isinstance(table, list):
        raise _damaged(path, "the manifest has no array table or no sha256")
    for row in table:
        ok = (isinstance(row, list) and len(row) == 3 and isinstance(row[0], str) and isinstance(row[1], str)
              and isinstance(row[2], list)
              and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in row[2]))
        if not ok:
            raise _damaged(path, f"the manifest's array entry {_short(row)} is not [name, dtype, shape]")
    return m


def _read_array(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dtype_str: str, shape: tuple, path) -> np.ndarray:
    name = info.filename
    try:
        dtype = np.dtype(dtype_str)
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in _DTYPE_KINDS or dtype.hasobject or dtype.itemsize == 0 \
            or dtype.str != dtype_str:
        raise _damaged(path, f"member {_short(name)} has dtype {_short(dtype_str)}, not a plain bool/int/uint/float/unicode")
    nbytes = dtype.itemsize
    for n in shape:
        nbytes *= n
    if nbytes > info.file_size:
        raise _damaged(path, f"member {_short(name)} declares {nbytes} data bytes in a {info.file_size}-byte member: "
                             "the file is truncated or damaged")
    with zf.open(info) as f:
        major, _ = np.lib.format.read_magic(f)
        if major == 1:
            hshape, fortran, hdtype = np.lib.format.read_array_header_1_0(f)
        elif major == 2:
            hshape, fortran, hdtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise _damaged(path, f"member {_short(name)} is .npy version {major}, tinyzo writes 1 or 2")
        if tuple(hshape) != shape or hdtype != dtype or fortran:
            raise _damaged(path, f"member {_short(name)} holds {hdtype}{list(hshape)}, the manifest says {dtype_str}"
                                 f"{list(shape)}: the file is damaged")
        data = f.read(nbytes)
        if len(data) != nbytes or f.read(1) != b"":  # reading to the end also checks the member's CRC-32
            raise _damaged(path, f"member {_short(name)} has {len(data)} data bytes, {nbytes} expected: the file is damaged")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def _read(zf: zipfile.ZipFile, file_size: int, kind: str, path) -> Checkpoint:
    infos = zf.infolist()
    members = {i.filename: i for i in infos}
    if MANIFEST not in members:
        raise _damaged(path, "no manifest.json: not a tinyzo checkpoint, or one written by an older tinyzo "
                             "(the checkpoint_model.npz + checkpoint_state.npz pair, tinyzo-fp-checkpoint-1), "
                             "which this version does not read", "start the run again without resume")
    if len(members) != len(infos):
        raise _damaged(path, "the archive lists a member twice: the file is damaged")
    for info in infos:
        _check_member(info, file_size, path)
    m = _manifest(zf, members[MANIFEST], kind, path)
    names = [row[0] for row in m["arrays"]]
    if len(set(names)) != len(names) or META not in names:
        raise _damaged(path, "the manifest's array table repeats a name or lacks 'meta'")
    if {n + ".npy" for n in names} != set(members) - {MANIFEST}:
        extra = sorted(set(members) - {MANIFEST} - {n + ".npy" for n in names})
        missing = sorted({n + ".npy" for n in names} - set(members))
        raise _damaged(path, f"the archive's members do not match the manifest (missing {missing[:3]}, "
                             f"unlisted {extra[:3]}): the file is damaged")
    payload = [(name, _read_array(zf, members[name + ".npy"], dt, tuple(shape), path))
               for name, dt, shape in m["arrays"]]
    if payload_sha256(m["kind"], m["epoch"], payload) != m["sha256"]:
        raise _damaged(path, "the SHA-256 of its content does not match the manifest: the file is damaged "
                             "or was edited")
    arrays = dict(payload)
    meta_arr = arrays.pop(META)
    if meta_arr.dtype != np.uint8 or meta_arr.ndim != 1:
        raise _damaged(path, f"'meta' is {meta_arr.dtype}{list(meta_arr.shape)}, not uint8 JSON bytes")
    meta = json.loads(meta_arr.tobytes().decode("utf-8"))
    if not isinstance(meta, dict):
        raise _damaged(path, "'meta' is not a JSON object")
    return Checkpoint(kind=m["kind"], epoch=m["epoch"], arrays=arrays, meta=meta)


def read_checkpoint(path, kind: str) -> Checkpoint:
    """Read and verify the checkpoint at ``path`` written by :func:`write_checkpoint` with ``kind``.

    Returns a :class:`Checkpoint`. Raises :class:`CheckpointError` (one line: the path, the problem,
    what to do) if the file is missing, truncated, damaged, edited (digest mismatch), of another kind,
    of another format version, or of the old two-file/``tinyzo-fp-checkpoint-1`` formats. Never
    unpickles and never allocates more than the file declares and holds.
    """
    path = Path(path)
    try:
        file_size = path.stat().st_size
        with open(path, "rb") as fh, zipfile.ZipFile(fh) as zf:
            return _read(zf, file_size, kind, path)
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise _damaged(path, "no such file", "check the path, or start without resume") from None
    except Exception as e:  # noqa: BLE001 -- zip, npy header, JSON, UTF-8, OS errors of an untrusted file
        text = (f"cannot read checkpoint {path} ({type(e).__name__}: {e}): it is damaged or not a tinyzo "
                f"checkpoint; {_START_OVER}")
        raise CheckpointError(" ".join(text.split())) from None


# --------------------------------------------------------------------------------------------------
# nested dicts of arrays <-> named payload arrays


def flatten_tree(tree: dict, prefix: str) -> tuple[dict, dict]:
    """Name every leaf of a nested ``{str: dict | array-like}``: ``({name: ndarray}, {name: [key, ...]})``.

    A leaf at keys ``k1 > k2 > ...`` is named ``f"{prefix}/{i}:{label}"`` (``i`` counts leaves,
    ``label`` is ``"k1.k2..."`` with characters outside ``[A-Za-z0-9_./-]`` replaced by ``_``, so any
    key is safe); the key path is kept exactly in the second dict for :func:`unflatten_tree`. Empty
    sub-dicts have no leaf and are not kept.
    """
    arrays, paths = {}, {}

    def walk(d, path):
        for k, v in d.items():
            if not isinstance(k, str):
                raise CheckpointError(f"cannot checkpoint key {k!r} under {path}: state keys must be strings")
            if isinstance(v, dict):
                walk(v, path + [k])
            else:
                label = re.sub(r"[^A-Za-z0-9_./\-]", "_", ".".join(path + [k]))[:120]
                name = f"{prefix}/{len(arrays)}:{label}"
                arrays[name] = np.asarray(v, order="C")
                paths[name] = path + [k]

    walk(tree, [])
    return arrays, paths


def unflatten_tree(arrays: dict, paths, path, unwrap_scalars: bool = False) -> dict:
    """Rebuild the nested dict :func:`flatten_tree` named; ``paths`` comes from an untrusted file.

    Args:
        arrays: ``{name: ndarray}`` as read (exactly the names of ``paths``).
        paths: ``{name: [key, ...]}`` (from the checkpoint's meta; validated here).
        path: the checkpoint file (for messages).
        unwrap_scalars: turn 0-d arrays into numpy scalars (``a[()]``).
    """
    if not isinstance(paths, dict) or set(paths) != set(arrays):
        raise _damaged(path, "the key paths in 'meta' do not name exactly the stored arrays")
    out: dict = {}
    for name, keys in paths.items():
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            raise _damaged(path, f"the key path of {_short(name)} is missing or malformed")
        d = out
        for k in keys[:-1]:
            d = d.setdefault(k, {})
            if not isinstance(d, dict):
                raise _damaged(path, f"the key paths clash at {_short(keys)}")
        if keys[-1] in d:
            raise _damaged(path, f"the key paths clash at {_short(keys)}")
        v = arrays[name]
        d[keys[-1]] = v[()] if unwrap_scalars and v.ndim == 0 else v
    return out
