"""Mutation fuzzing of tinyzo's model loaders: a model file gives a tinyzo error or a result, nothing else.

Each mutant is built from a seed model (the four TFLite Micro models in ``tests/data/tflite-micro``
and ``reference_models/digits_cnn.tflite``, each both as ``.tflite`` and as tinyzo ``.npz``) by one
mutation chosen by ``numpy.random.default_rng([seed, i])``, so mutant ``i`` of a run can be rebuilt
alone (``--replay i --out FILE``). Then tinyzo loads it and, if it loads, runs one sample of zeros.

Mutations of a ``.tflite`` FlatBuffer: flipped bytes, 4-byte words set to extreme, small, random or
special float32 values (offsets, lengths, indices, enum codes and scales are 4-byte words),
truncation; 80% of them aimed at the structure rather than the weight bytes. Mutations of a ``.npz``:
a damaged ``.npy`` header inside the zip, the graph JSON with one value replaced by a value of another
type or range (a string, an object, a list, null, a huge integer, ``Infinity``, ``NaN``), a key
deleted or a list grown, the scale / zero-point / data arrays set to special values, bytes of one
member's data (JSON text, weights, scales) changed, and raw zip bytes flipped or truncated.

Outcomes: ``ran``; ``load refused`` / ``run refused`` (a :class:`tinyzo.errors.TinyzoError`,
counted per class); ``foreign`` (any other exception: a bug); ``crash`` (the worker process died);
``hang`` (no answer within ``--timeout`` seconds); ``over limit`` (the traced peak of load + call
exceeded ``--peak-limit-mib``; numpy reports its buffers to :mod:`tracemalloc`). The worker runs
under an address-space limit (``--rlimit-gib``) so that a runaway allocation fails fast instead of
swapping. Exit status 1 on any foreign exception, crash, hang or over-limit allocation.

Usage::

    python scripts/fuzz_models.py --mutants 10000 --seed 0          # the run docs/reliability.md reports
    python scripts/fuzz_models.py --replay 123 --seed 0 --out m.npz # write mutant 123 to disk

The mutators (:func:`seed_models`, :func:`mutate`) and the in-process check (:func:`check_mutant`)
are also used by ``tests/test_fuzz.py``.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import math
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tinyzo.errors import TinyzoError

TFLM_MODELS = ["hello_world_int8", "micro_speech_quantized", "simple_add_model", "person_detect"]
EXTREME_WORDS = [0, 1, 2, 3, 4, 0x7F, 0x80, 0xFF, 0xFFFF, 1 << 16, 1 << 20, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
                 0xFFFFFFFC]
SPECIAL_FLOATS = [0.0, -0.0, -1.0, 1e-45, 8.2e-41, 1e-38, 1e-30, 1e-12, 1e12, 1e30, 3.4e38,
                  math.inf, -math.inf, math.nan]
JSON_VALUES = ["RELU", "", "NONE", "SAME", "x" * 300, {}, {"a": 1}, [], [1], [1, 2, 3], [[1]], None, True,
               False, 0, 1, -1, 2, 3, 4, 255, 256, 4096, 2**16, 2**20, 2**31 - 1, 2**31, -(2**31), 2**63, 10**30, 1.5, -0.0,
               1e308, math.inf, -math.inf, math.nan]
#: options whose large values make buffers grow (aimed at the memory limit)
SIZE_OPTIONS = ("stride_h", "stride_w", "dilation_h_factor", "dilation_w_factor", "filter_height", "filter_width")
#: tinyzo's per-buffer limit during fuzzing (MiB): lower than the default 1 GiB so that the limit's
#: refusals are exercised often and a run stays light on a shared machine
MAX_BUFFER_MIB = 64
#: the stated bound on the traced peak (numpy buffers + Python objects) of loading one mutant and
#: running one sample: the input, every activation (each under the buffer limit) and the largest
#: operator's work arrays fit in 8 buffer limits for these models
PEAK_LIMIT_MIB = 8 * MAX_BUFFER_MIB


# ------------------------------------------------------------------------------------------ seeds
def seed_models() -> dict:
    """The seed files: ``{label: (kind, bytes)}``, kind ``"tflite"`` or ``"npz"``.

    Every TFLM test model and ``digits_cnn`` as shipped (``.tflite``) and saved by tinyzo (``.npz``).
    """
    from tinyzo.io import read_tflite, save_npz

    paths = {n: ROOT / "tests" / "data" / "tflite-micro" / f"{n}.tflite" for n in TFLM_MODELS}
    paths["digits_cnn"] = ROOT / "reference_models" / "digits_cnn.tflite"
    seeds = {}
    for name, p in paths.items():
        data = p.read_bytes()
        seeds[f"{name}.tflite"] = ("tflite", data)
        buf = io.BytesIO()
        save_npz(read_tflite(data, name=name), buf)
        seeds[f"{name}.npz"] = ("npz", buf.getvalue())
    return seeds


def _weight_ranges(data: bytes) -> list:
    from tinyzo.io import tflite_schema as S
    from tinyzo.io.flatbuf import FlatBuffer

    root = FlatBuffer(data).root(S.FILE_IDENTIFIER)
    out = []
    for b in root.tables(S.F.MODEL_BUFFERS, "buffer"):
        start, n = b.vector(S.F.B_DATA, 1, "data")
        if n:
            out.append((start, start + n))
    return out


_STRUCTURE_CACHE: dict = {}


def structure_positions(data: bytes) -> np.ndarray:
    """Byte positions of a ``.tflite`` file outside the weight buffers (cached per file)."""
    key = hash(data)
    if key not in _STRUCTURE_CACHE:
        mask = np.ones(len(data), dtype=bool)
        for a, b in _weight_ranges(data):
            mask[a:b] = False
        _STRUCTURE_CACHE[key] = np.flatnonzero(mask)
    return _STRUCTURE_CACHE[key]


# ------------------------------------------------------------------------------------ .tflite
def mutate_tflite(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One mutation of a FlatBuffer; returns ``(mutant, description)``."""
    out = bytearray(data)
    positions = structure_positions(data)
    anywhere = rng.random() < 0.2

    def pick() -> int:
        return int(rng.integers(0, len(out))) if anywhere else int(rng.choice(positions))

    kind = int(rng.integers(0, 6))
    if kind == 0:
        flips = []
        for _ in range(int(rng.integers(1, 5))):
            p = pick()
            out[p] ^= int(rng.integers(1, 256))
            flips.append(p)
        return bytes(out), f"flip bytes {flips}"
    if kind == 5:
        cut = int(rng.integers(0, len(out)))
        return bytes(out[:cut]), f"truncate at {cut}"
    p = min(pick() & ~3, len(out) - 4)
    if kind == 1:
        v = int(rng.choice(EXTREME_WORDS + [len(data), len(data) - 4, len(data) + 4]))
    elif kind == 2:
        v = int(rng.integers(0, 1 << 32))
    elif kind == 3:
        v = int(rng.integers(0, 65))
    else:
        f = float(rng.choice(SPECIAL_FLOATS))
        v = struct.unpack("<I", struct.pack("<f", f))[0]
    struct.pack_into("<I", out, p, v)
    return bytes(out), f"uint32 at {p} = {v:#x}"


# ---------------------------------------------------------------------------------------- .npz
_MEMBERS_CACHE: dict = {}


def npz_members(data: bytes) -> dict:
    """``{member name: raw .npy bytes}`` of a zip archive, in archive order (a fresh dict; parsed once per file)."""
    key = hash(data)
    if key not in _MEMBERS_CACHE:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            _MEMBERS_CACHE[key] = {n: zf.read(n) for n in zf.namelist()}
    return dict(_MEMBERS_CACHE[key])


def build_npz(members: dict) -> bytes:
    """A zip archive (stored, not compressed) of ``{name: bytes}``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    return buf.getvalue()


def npy_bytes(a: np.ndarray) -> bytes:
    """The ``.npy`` serialization of ``a``."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def _json_paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _json_paths(v, path + (k,))
    elif isinstance(node, list):
        for k, v in enumerate(node):
            yield from _json_paths(v, path + (k,))


def _json_get(node, path):
    for k in path:
        node = node[k]
    return node


def _json_value(rng, old):
    if isinstance(old, (int, float)) and not isinstance(old, bool) and rng.random() < 0.4:
        v = old + int(rng.integers(-2, 3)) if rng.random() < 0.5 else old * int(rng.choice([2, 16, 1000, -1]))
        return v
    return JSON_VALUES[int(rng.integers(0, len(JSON_VALUES)))]


def mutate_graph_json(g: dict, rng: np.random.Generator) -> str:
    """Change one value of a graph JSON document in place; returns a description."""
    # aim at the operator options (40%), tensor shapes (20%), operator tensor lists and opcodes
    # (20%), anything else (20%)
    paths = [p for p in _json_paths(g) if p]
    groups = [[p for p in paths if p[0] == "operators" and len(p) >= 3 and p[2] == "options"],
              [p for p in paths if p[0] == "tensors" and len(p) >= 3 and p[2] == "shape"],
              [p for p in paths if p[0] == "operators" and len(p) >= 3 and p[2] != "options"],
              paths]
    group = groups[int(rng.choice(4, p=[0.4, 0.2, 0.2, 0.2]))] or paths
    path = group[int(rng.integers(0, len(group)))]
    parent, key = _json_get(g, path[:-1]), path[-1]
    old = parent[key]
    r = rng.random()
    if r < 0.1 and isinstance(parent, dict):
        del parent[key]
        return f"graph{list(path)} deleted"
    if r < 0.2 and isinstance(old, list):
        extra = old[int(rng.integers(0, len(old)))] if old else 0
        old.append(extra)
        return f"graph{list(path)} appended {extra!r}"
    new = _json_value(rng, old)
    if key in SIZE_OPTIONS and rng.random() < 0.3:  # a large but int32 stride / dilation / filter: sizes grow
        new = 2 ** int(rng.integers(4, 25))
    parent[key] = new
    return f"graph{list(path)} = {new!r} (was {old!r})"


def mutate_npz(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """One mutation of a tinyzo ``.npz``; returns ``(mutant, description)``."""
    members = npz_members(data)
    kind = rng.choice(["npy_header", "graph", "array", "member_bytes", "zip"], p=[0.15, 0.45, 0.15, 0.15, 0.1])
    if kind == "member_bytes":  # bytes of one member's data (the graph's JSON text, weights, scales) changed
        name = list(members)[int(rng.integers(0, len(members)))]
        raw = bytearray(members[name])
        start = 10 + struct.unpack("<H", raw[8:10])[0] if raw[6:7] == b"\x01" else 0
        changes = []
        for _ in range(int(rng.integers(1, 4))):
            if start >= len(raw):
                break
            p = int(rng.integers(start, len(raw)))
            raw[p] = int(rng.choice(list(b"0123456789-.e,:[]{}\"")) if name == "graph.npy" and rng.random() < 0.5
                         else rng.integers(0, 256))
            changes.append(p)
        members[name] = bytes(raw)
        return build_npz(members), f"{name}: bytes {changes} changed"
    if kind == "zip":
        out = bytearray(data)
        if rng.random() < 0.3:
            cut = int(rng.integers(0, len(out)))
            return bytes(out[:cut]), f"zip truncated at {cut}"
        p = int(rng.integers(0, len(out)))
        out[p] ^= int(rng.integers(1, 256))
        return bytes(out), f"zip byte {p} flipped"
    if kind == "npy_header":
        name = list(members)[int(rng.integers(0, len(members)))]
        raw = bytearray(members[name])
        hlen = struct.unpack("<H", raw[8:10])[0] if raw[6:7] == b"\x01" else struct.unpack("<I", raw[8:12])[0]
        end = min(len(raw), 12 + hlen)
        r = rng.random()
        if r < 0.5:
            p = int(rng.integers(10, end))
            raw[p] = int(rng.choice(list(b"(){}[],:'\" \n\\0123456789<>|abfiuLe.-")))
            what = f"header byte {p} = {chr(raw[p])!r}"
        elif r < 0.7:
            p = int(rng.integers(0, end))
            raw[p] ^= int(rng.integers(1, 256))
            what = f"header byte {p} flipped"
        elif r < 0.85:
            cut = int(rng.integers(0, end))
            raw = raw[:cut]
            what = f"truncated at {cut}"
        else:
            v = int(rng.choice([0, 1, 5, 0x7F, 0xFFFF]))
            struct.pack_into("<H", raw, 8, v)
            what = f"header length = {v}"
        members[name] = bytes(raw)
        return build_npz(members), f"{name}: {what}"
    if kind == "array":
        names = [n for n in members if n != "graph.npy"]
        name = names[int(rng.integers(0, len(names)))]
        a = np.lib.format.read_array(io.BytesIO(members[name]), allow_pickle=False)
        a = np.array(a, copy=True)
        r = rng.random()
        if r < 0.15:
            a = a.astype(rng.choice([np.float64, np.int16, np.uint8, np.int64]))
            what = f"dtype -> {a.dtype}"
        elif r < 0.25:
            a = a.reshape(-1)[: max(0, a.size - int(rng.integers(0, 2)))].reshape(-1, 1) if a.size else a
            what = f"shape -> {a.shape}"
        elif a.size:
            k = int(rng.integers(0, a.size))
            flat = a.reshape(-1)
            if a.dtype.kind == "f":
                flat[k] = float(rng.choice(SPECIAL_FLOATS))
            else:
                info = np.iinfo(a.dtype)
                flat[k] = int(rng.choice([info.min, info.max, 0, -1 if info.min < 0 else 1, 1, 2, 127, -128 if info.min < 0 else 128]))
            what = f"element {k} = {flat[k]!r}"
        else:
            what = "unchanged (empty)"
        members[name] = npy_bytes(a)
        return build_npz(members), f"{name}: {what}"
    graph = json.loads(np.lib.format.read_array(io.BytesIO(members["graph.npy"])).tobytes().decode())
    what = mutate_graph_json(graph, rng)
    text = json.dumps(graph, allow_nan=True).encode()
    members["graph.npy"] = npy_bytes(np.frombuffer(text, dtype=np.uint8))
    return build_npz(members), what


def mutate(seeds: dict, seed: int, i: int) -> tuple[str, str, bytes, str]:
    """Mutant ``i`` of run ``seed``: ``(seed label, kind, bytes, description)``, deterministic."""
    rng = np.random.default_rng([seed, i])
    labels = sorted(seeds)
    label = labels[i % len(labels)]
    kind, data = seeds[label]
    mutant, what = (mutate_tflite if kind == "tflite" else mutate_npz)(data, rng)
    return label, kind, mutant, what


# ------------------------------------------------------------------------------------- checking
def load_bytes(data: bytes, kind: str):
    """Load a model from bytes as :func:`tinyzo.load` loads a file (format chosen by content)."""
    from tinyzo.io import load_npz, read_tflite

    if data[:2] == b"PK":
        return load_npz(io.BytesIO(data))
    return read_tflite(data)


def zero_inputs(model) -> list:
    """One sample of zeros per model input (batch 1, the input's dtype)."""
    return [np.zeros((1,) + tuple(t.shape[1:]), dtype=t.dtype) for t in model.input_details]


def check_mutant(data: bytes, kind: str) -> tuple[str, str]:
    """Load ``data``, summarize it as ``tinyzo info`` does, run one sample of zeros. Returns ``(outcome, detail)``.

    ``outcome``: ``"ran"``, ``"load refused"``, ``"run refused"`` (detail: the TinyzoError class and
    message) or ``"foreign"`` (detail: the stage, the exception type, message and innermost frame).
    """
    from tinyzo.summary import format_info

    stage = "load"
    try:
        model = load_bytes(data, kind)
        stage = "info"
        format_info(model)
        stage = "run"
        model(*zero_inputs(model))
    except TinyzoError as e:
        return f"{'load' if stage == 'info' else stage} refused", f"{type(e).__name__}: {str(e)[:300]}"
    except Exception as e:  # noqa: BLE001 (classifying every exception is the point)
        tb = e.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else "?"
        return "foreign", f"{stage}: {type(e).__name__}: {str(e)[:300]} at {where}"
    return "ran", ""


# --------------------------------------------------------------------------------------- worker
def _worker(args) -> None:
    import resource
    import signal

    if args.rlimit_gib:
        lim = int(args.rlimit_gib * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))

    class Hang(BaseException):
        pass

    def on_alarm(signum, frame):
        raise Hang()

    signal.signal(signal.SIGALRM, on_alarm)
    import tinyzo.limits

    tinyzo.limits.MAX_BUFFER_BYTES = int(args.max_buffer_mib * 2**20)
    seeds = seed_models()
    for label, (kind, data) in seeds.items():  # compile / load the jitted kernels before timing anything
        assert check_mutant(data, kind)[0] == "ran", label
    tracemalloc.start()
    for i in range(args.start, args.stop):
        label, kind, data, what = mutate(seeds, args.seed, i)
        print(json.dumps({"start": i}), flush=True)
        tracemalloc.clear_traces()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        signal.alarm(args.timeout)
        try:
            outcome, detail = check_mutant(data, kind)
        except Hang:
            outcome, detail = "hang", f"over {args.timeout} s"
        finally:
            signal.alarm(0)
        peak = tracemalloc.get_traced_memory()[1] - base
        rec = {"i": i, "seed": label, "mutation": what, "outcome": outcome, "detail": detail,
               "peak": peak, "seconds": round(time.perf_counter() - t0, 3)}
        print(json.dumps(rec), flush=True)


def _run_range(args, start: int, stop: int, records: list) -> None:
    """Run mutants start..stop-1 in worker processes, restarting after a crash or a hang."""
    i = start
    while i < stop:
        cmd = [sys.executable, __file__, "--worker", "--seed", str(args.seed), "--start", str(i), "--stop", str(stop),
               "--timeout", str(args.timeout), "--rlimit-gib", str(args.rlimit_gib),
               "--max-buffer-mib", str(args.max_buffer_mib)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        current = None
        for line in proc.stdout:
            rec = json.loads(line)
            if "start" in rec:
                current = rec["start"]
                continue
            records.append(rec)
            current = None
            i = rec["i"] + 1
            if args.verbose or rec["outcome"] not in ("ran", "load refused", "run refused"):
                print(f"mutant {rec['i']} ({rec['seed']}: {rec['mutation']}): {rec['outcome']} {rec['detail']}",
                      flush=True)
        proc.wait()
        if current is not None:  # the worker died while running `current`
            records.append({"i": current, "seed": "?", "mutation": "?", "outcome": "crash",
                            "detail": f"worker exit status {proc.returncode}", "peak": 0, "seconds": 0})
            print(f"mutant {current}: crash (worker exit status {proc.returncode})", flush=True)
            i = current + 1
        elif proc.returncode != 0 and i < stop:
            raise SystemExit(f"worker failed before mutant {i} (exit status {proc.returncode})")


def summarize(records: list, peak_limit: int) -> dict:
    """Counts per outcome, per TinyzoError class, foreign exception types, the largest peak."""
    counts: dict = {}
    classes: dict = {}
    foreign: dict = {}
    over = [r for r in records if r["peak"] > peak_limit]
    for r in records:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        if r["outcome"].endswith("refused"):
            c = r["detail"].split(":", 1)[0]
            classes[c] = classes.get(c, 0) + 1
        if r["outcome"] == "foreign":
            key = r["detail"].split(" at ")[0][:120]
            foreign[key] = foreign.get(key, 0) + 1
    return {"mutants": len(records), "outcomes": counts, "tinyzo errors": classes, "foreign": foreign,
            "over limit": len(over), "max peak MiB": round(max((r["peak"] for r in records), default=0) / 2**20, 1),
            "peak limit MiB": peak_limit / 2**20}


def main(argv=None) -> int:
    """Command line: see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mutants", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="worker processes in parallel (default 1)")
    p.add_argument("--timeout", type=int, default=30, help="seconds per mutant before it counts as a hang")
    p.add_argument("--rlimit-gib", type=float, default=6.0, help="address-space limit of a worker (0: none)")
    p.add_argument("--max-buffer-mib", type=float, default=MAX_BUFFER_MIB,
                   help=f"tinyzo.limits.MAX_BUFFER_BYTES in the workers, MiB (default {MAX_BUFFER_MIB})")
    p.add_argument("--peak-limit-mib", type=float, default=PEAK_LIMIT_MIB,
                   help=f"a mutant whose traced peak exceeds this is a failure (default {PEAK_LIMIT_MIB})")
    p.add_argument("--json", help="write every record to this JSON-lines file")
    p.add_argument("--replay", type=int, help="write mutant REPLAY to --out and print its outcome")
    p.add_argument("--out", help="with --replay: the mutant's file")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--stop", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        _worker(args)
        return 0
    if args.replay is not None:
        label, kind, data, what = mutate(seed_models(), args.seed, args.replay)
        if args.out:
            Path(args.out).write_bytes(data)
        print(f"mutant {args.replay}: {label}: {what}: {check_mutant(data, kind)}")
        return 0
    t0 = time.perf_counter()
    records: list = []
    if args.jobs <= 1:
        _run_range(args, 0, args.mutants, records)
    else:
        import threading

        bounds = np.linspace(0, args.mutants, args.jobs + 1).astype(int)
        parts = [[] for _ in range(args.jobs)]
        threads = [threading.Thread(target=_run_range, args=(args, int(a), int(b), parts[k]))
                   for k, (a, b) in enumerate(itertools.pairwise(bounds))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        records = [r for part in parts for r in part]
    if args.json:
        with open(args.json, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)
    summary = summarize(records, int(args.peak_limit_mib * 2**20))
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(summary, indent=1))
    bad = sum(summary["outcomes"].get(k, 0) for k in ("foreign", "crash", "hang")) + summary["over limit"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
