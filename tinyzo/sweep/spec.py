"""Sweep specifications: a TOML file -> the list of ``tinyzo train`` runs it names.

A spec (see docs/sweep.md for a complete example)::

    [sweep]
    name = "zo-vs-bp"                       # label of the sweep (default: the file name)
    model = "../reference_models/digits_cnn.tflite"   # relative to the spec file; or "reference:digits_cnn"
    data = "digits"                         # 'digits', 'speech' (bundled) or a dataset file (relative to the spec file)
    seeds = [0, 1, 2]

    [train]                                 # options of every run: `tinyzo train` flags, '-' or '_'
    epochs = 5
    severity = 5

    [grid]                                  # product over every list
    corruption = ["motion_blur", "fog"]

    [zip]                                   # lists of one length, taken together
    lr = [5e-4, 1e-3]
    queries = [8, 4]

    [methods.zo-node]                       # one table per method: its options; a list in a method
    method = "zo-rge-node"                  # expands as a product inside that method
    layers = "4,5,6,8,9,11"

    [methods.bp]
    method = "bp"
    layers = "4,5,6,8,9,11"
    lr = [1e-3, 3e-3]

Every run is ``[train]`` + one grid point + one zip point + one method point + one seed. An option may
be set in only one of ``[grid]``, ``[zip]`` and a method (a clash is an error, not an override).
Option names and values are checked against ``tinyzo train``'s own argument parser, so a spec can hold
exactly what the command line can. A run's key is the SHA-256 of its full configuration: every
option, the seed, and the contents (SHA-256) of the model and data files, not their paths.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import shlex
from pathlib import Path

from tinyzo import reference_models
from tinyzo.data.loaders import NAMES as BUNDLED_DATA
from tinyzo.errors import TinyzoError
from tinyzo.train_command import train_actions

__all__ = ["FILE_OPTIONS", "Run", "Sweep", "SweepSpecError", "load_spec", "parse_spec"]

# options a sweep sets itself (outputs, resume, bars) and never takes from a spec
RESERVED = ("model", "data", "seed", "out", "out_dir", "resume", "no_progress", "func", "command")
# train options that name files: resolved relative to the spec file and shipped to the workers
FILE_OPTIONS = ("scheme",)


class SweepSpecError(TinyzoError):
    """The sweep specification is malformed (the message names the table and key)."""


def _toml_loads(text: str, where: str) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise SweepSpecError("reading a sweep spec needs Python >= 3.11 (tomllib) or `pip install tomli`") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SweepSpecError(f"{where}: not valid TOML: {e}") from None


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run of a sweep.

    Attributes:
        key: hex SHA-256 (64 characters) of the canonical JSON of ``config``.
        label: the method's name in the spec.
        options: ``tinyzo train`` options (``dest`` names, e.g. ``batch_size``) -> value, sorted.
        seed: the run's seed (``--seed``).
        model: the model file (absolute path) or the bundled dataset name for ``data``.
        data: a bundled dataset name (``"digits"``, ``"speech"``: tinyzo.data.NAMES) or an absolute dataset path.
        files: name -> absolute path of every file the run reads (model, data file, scheme).
        config: the hashed configuration (options, seed, method label, file digests).
    """

    key: str
    label: str
    options: dict
    seed: int
    model: str
    data: str
    files: dict
    config: dict

    def argv(self, paths: dict | None = None) -> list:
        """``tinyzo train`` arguments of this run; ``paths`` maps file names to where the files are
        on the machine that runs it (default: their paths here)."""
        paths = dict(self.files if paths is None else paths)
        model = paths.get("model", self.model)
        data = paths.get("data", self.data)
        args = ["train", model, "--data", data, "--seed", str(self.seed)]
        for k, v in self.options.items():
            flag = "--" + k.replace("_", "-")
            if isinstance(v, bool):
                if v:
                    args.append(flag)
                continue
            args += [flag, str(paths.get(k, v))]
        return args

    @property
    def command(self) -> str:
        """The shell command that reproduces this run alone."""
        return shlex.join(["tinyzo"] + self.argv())


@dataclasses.dataclass
class Sweep:
    """A parsed spec: its name, the source file, and its runs in a fixed order."""

    name: str
    path: Path | None
    runs: list

    def __len__(self) -> int:
        return len(self.runs)


def _as_list(v):
    return list(v) if isinstance(v, list) else [v]


def _check_option(actions: dict, where: str, key: str, value) -> tuple:
    dest = key.replace("-", "_")
    if dest in RESERVED:
        raise SweepSpecError(f"{where}: {key!r} is set by the sweep itself"
                             + (" (use [sweep] model/data/seeds)" if dest in ("model", "data", "seed") else ""))
    act = actions.get(dest)
    if act is None:
        raise SweepSpecError(f"{where}: unknown option {key!r}; tinyzo train options: "
                             f"{', '.join(sorted(d for d in actions if d not in RESERVED and d != 'help'))}")
    for v in _as_list(value):
        if isinstance(v, (dict, list)) or v is None:
            raise SweepSpecError(f"{where}: {key} must be a number, string or boolean (or a list of them), got {v!r}")
        if act.nargs == 0:  # a switch
            if not isinstance(v, bool):
                raise SweepSpecError(f"{where}: {key} is a switch: true or false, got {v!r}")
            continue
        if isinstance(v, bool):
            raise SweepSpecError(f"{where}: {key} takes a value, not {v!r}")
        try:
            conv = act.type(str(v)) if act.type is not None else str(v)
        except (TypeError, ValueError, argparse.ArgumentTypeError) as e:
            raise SweepSpecError(f"{where}: {key} = {v!r}: {e}") from None
        if act.choices is not None and conv not in act.choices:
            raise SweepSpecError(f"{where}: {key} = {v!r}; choose from {', '.join(map(str, act.choices))}")
    return dest, value


def _expand_product(table: dict) -> list:
    keys = list(table)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(_as_list(table[k]) for k in keys))]


def _table(doc: dict, name: str, where: str) -> dict:
    t = doc.get(name, {})
    if not isinstance(t, dict):
        raise SweepSpecError(f"{where}: [{name}] must be a table")
    return t


def _resolve_file(value: str, base: Path, what: str, where: str) -> Path:
    if value.startswith("reference:"):
        try:
            return reference_models.path(value[len("reference:"):])
        except FileNotFoundError as e:
            raise SweepSpecError(f"{where}: {e}") from None
    p = Path(value).expanduser()
    p = p if p.is_absolute() else base / p
    if not p.is_file():
        raise SweepSpecError(f"{where}: the {what} file {p} does not exist")
    return p.resolve()


def parse_spec(text: str, *, base_dir=".", name: str = "sweep", path: Path | None = None) -> Sweep:
    """Parse a spec from TOML text. Relative file paths are taken from ``base_dir``.

    Returns a :class:`Sweep` whose runs are ordered by method (spec order), grid point, zip point and
    seed. Raises :class:`SweepSpecError` naming the table and key on any malformed entry.
    """
    where = str(path) if path is not None else "spec"
    doc = _toml_loads(text, where)
    unknown = set(doc) - {"sweep", "train", "grid", "zip", "methods"}
    if unknown:
        raise SweepSpecError(f"{where}: unknown table(s) {sorted(unknown)}; tables: sweep, train, grid, zip, methods")
    head = _table(doc, "sweep", where)
    bad = set(head) - {"name", "model", "data", "seeds"}
    if bad:
        raise SweepSpecError(f"{where}: [sweep] has unknown key(s) {sorted(bad)}; keys: name, model, data, seeds "
                             "(training options go in [train], [grid], [zip] or [methods.NAME])")
    if "model" not in head or "data" not in head:
        raise SweepSpecError(f"{where}: [sweep] needs model and data")
    base = Path(base_dir)
    model = _resolve_file(str(head["model"]), base, "model", f"{where} [sweep] model")
    data = str(head["data"])
    data_path = None if data in BUNDLED_DATA else _resolve_file(data, base, "data", f"{where} [sweep] data")
    seeds = _as_list(head.get("seeds", [0]))
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**31 for s in seeds):
        raise SweepSpecError(f"{where}: [sweep] seeds must be a non-empty list of integers in [0, 2^31), got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise SweepSpecError(f"{where}: [sweep] seeds repeat: {seeds}")

    actions = train_actions()
    common = dict(_check_option(actions, f"{where} [train]", k, v) for k, v in _table(doc, "train", where).items())
    for k, v in common.items():
        if isinstance(v, list):
            raise SweepSpecError(f"{where}: [train] {k} is a list; put lists in [grid] or [zip]")
    grid = dict(_check_option(actions, f"{where} [grid]", k, v) for k, v in _table(doc, "grid", where).items())
    zipped = dict(_check_option(actions, f"{where} [zip]", k, v) for k, v in _table(doc, "zip", where).items())
    lengths = {k: len(_as_list(v)) for k, v in zipped.items()}
    if len(set(lengths.values())) > 1:
        raise SweepSpecError(f"{where}: [zip] lists must have one length, got {lengths}")
    for k in grid:
        if k in zipped:
            raise SweepSpecError(f"{where}: {k} is in both [grid] and [zip]")
    methods = _table(doc, "methods", where)
    if not methods:
        raise SweepSpecError(f"{where}: no [methods.NAME] table; add at least one (e.g. [methods.bp] method = \"bp\")")
    file_digests = {"model": sha256_file(model)}
    if data_path is not None:
        file_digests["data"] = sha256_file(data_path)

    cache = {}

    def resolved(value: str, what: str, w: str) -> tuple:
        """(path, SHA-256) of a file option, read once per sweep whatever the number of runs naming it."""
        if value not in cache:
            p = _resolve_file(value, base, what, w)
            cache[value] = (p, sha256_file(p))
        return cache[value]

    runs, seen = [], {}
    zip_points = [dict(zip(zipped, vals)) for vals in zip(*(_as_list(v) for v in zipped.values()))] or [{}]
    for label, mt in methods.items():
        w = f"{where} [methods.{label}]"
        if not isinstance(mt, dict):
            raise SweepSpecError(f"{w} must be a table")
        mopts = dict(_check_option(actions, w, k, v) for k, v in mt.items())
        for k in mopts:
            clash = [t for t, d in (("[train]", common), ("[grid]", grid), ("[zip]", zipped)) if k in d]
            if clash and (clash != ["[train]"]):
                raise SweepSpecError(f"{w}: {k} is also set in {clash[0]}; set each option in one place")
        for gp in _expand_product(grid) or [{}]:
            for zp in zip_points:
                for mp in _expand_product(mopts) or [{}]:
                    opts = {**common, **gp, **zp, **mp}  # a method may override a [train] default
                    files = {"model": str(model)}
                    if data_path is not None:
                        files["data"] = str(data_path)
                    digests = dict(file_digests)
                    for k in FILE_OPTIONS:
                        if k in opts:
                            p, digests[k] = resolved(str(opts[k]), k, w)
                            files[k] = opts[k] = str(p)
                    opts = {k: opts[k] for k in sorted(opts)}
                    for seed in seeds:
                        hashed = {k: v for k, v in opts.items() if k not in FILE_OPTIONS}
                        config = {"method_label": label, "options": hashed, "seed": int(seed),
                                  "data": data if data_path is None else "file", "files": digests}
                        key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
                        if key in seen:
                            raise SweepSpecError(f"{where}: two runs have the same configuration ({label}, seed {seed}, "
                                                 f"{hashed}); remove the repetition")
                        seen[key] = True
                        runs.append(Run(key=key, label=label, options=opts, seed=int(seed), model=str(model),
                                        data=data if data_path is None else str(data_path), files=files,
                                        config=config))
    name = str(head.get("name", name))
    if not name or len(name) > 200:
        raise SweepSpecError(f"{where}: [sweep] name must be 1..200 characters")
    return Sweep(name=name, path=path, runs=runs)


def load_spec(path) -> Sweep:
    """Read and parse a spec file (see the module docstring); paths inside are relative to its folder."""
    p = Path(path)
    if not p.is_file():
        raise SweepSpecError(f"no sweep spec at {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SweepSpecError(f"cannot read {p}: {e}") from None
    return parse_spec(text, base_dir=p.resolve().parent, name=p.stem, path=p)
