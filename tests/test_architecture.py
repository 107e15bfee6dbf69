"""The layering of docs/architecture.md: imports between tinyzo's folders (and top-level modules) point
down the layers only, and there is no import cycle between them (function-level imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "tinyzo"

# the layers of docs/architecture.md, bottom first; a unit may import its own layer or any below
LAYERS = [
    {"errors", "version", "limits", "paths", "progress", "argtypes", "runtime", "checkpoint"},   # foundation
    {"spec", "quant", "kernels", "ops", "graph", "io", "tinyzo", "summary", "data", "nn", "models",
     "reference_models", "audio"},                                                                      # inference core
    {"training"},                                                                             # training core
    {"zo", "bp", "fp", "memory", "golden", "evaluate"},                                       # gradient sources
    {"cli", "train_command", "demo", "sweep", "__main__"},                                    # commands
]
LEVEL = {u: i for i, layer in enumerate(LAYERS) for u in layer}


def _unit(module: str) -> str:
    """``tinyzo.zo.trainer`` -> ``zo``; ``tinyzo.cli`` -> ``cli``; ``tinyzo`` -> ``tinyzo`` (the package)."""
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 else "tinyzo"


def _edges() -> dict:
    """``{unit: {unit it imports: [file:line, ...]}}`` over every import statement in tinyzo/."""
    edges: dict = {}
    for f in sorted(ROOT.rglob("*.py")):
        rel = f.relative_to(ROOT.parent).with_suffix("")
        mod = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        src = _unit(mod)
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("tinyzo"):
                if node.module == "tinyzo":   # from tinyzo import data / __version__
                    targets = [a.name if (ROOT / a.name).is_dir() or (ROOT / f"{a.name}.py").exists() else "tinyzo"
                               for a in node.names]
                else:
                    targets = [_unit(node.module)]
            elif isinstance(node, ast.Import):
                targets = [_unit(a.name) for a in node.names if a.name.split(".")[0] == "tinyzo"]
            for t in targets:
                if t != src:
                    edges.setdefault(src, {}).setdefault(t, []).append(f"{f.relative_to(ROOT.parent)}:{node.lineno}")
    return edges


def test_every_unit_has_a_layer():
    units = {_unit(".".join(p.relative_to(ROOT.parent).with_suffix("").parts)) for p in ROOT.glob("*.py")}
    units |= {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    units.discard("__init__")
    assert sorted(units - set(LEVEL)) == [], "add the new module or folder to a layer (and to docs/architecture.md)"


def test_imports_point_down_the_layers():
    up = [f"{src} -> {dst} ({', '.join(where[:2])})" for src, out in _edges().items() for dst, where in out.items()
          if LEVEL[dst] > LEVEL[src]]
    assert up == []


def test_no_import_cycle_between_folders():
    edges = {u: set(out) for u, out in _edges().items()}
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):   # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    assert cycles == []


@pytest.mark.parametrize("core", ["training"])
def test_the_training_core_knows_no_gradient_source(core):
    """training/ is what ZO and BP share: it must not import them (nor the planner, the CLI, the demo)."""
    out = _edges().get(core, {})
    assert sorted(set(out) & {"zo", "bp", "fp", "memory", "golden", "cli", "demo", "sweep", "train_command"}) == []
