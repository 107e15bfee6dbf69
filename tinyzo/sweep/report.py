"""Sweep reports: tables grouped by any keys with mean +- std and n over the runs, and plots.

The standard deviation is the sample standard deviation (``ddof = 1``) over the runs of a group (e.g.
the seeds); a group of one run has no spread and shows ``n = 1`` with an empty std. Grouping keys are
``method`` (the spec's label), ``seed``, or any ``tinyzo train`` option name (``corruption``, ``lr``,
...). Metrics are the numeric columns of the database (see :data:`tinyzo.sweep.db.METRIC_COLUMNS`).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from tinyzo.errors import TinyzoError
from tinyzo.sweep.db import METRIC_COLUMNS, TEXT_COLUMNS

__all__ = [
    "BEGIN_MARK",
    "DEFAULT_METRICS",
    "END_MARK",
    "ReportError",
    "aggregate",
    "plot_curves",
    "plot_pareto",
    "plot_vs_param",
    "select_rows",
    "to_csv",
    "to_markdown",
    "update_markdown",
    "value_of",
]

BEGIN_MARK = "<!-- sweep-table:begin -->"
END_MARK = "<!-- sweep-table:end -->"

DEFAULT_METRICS = ("after", "recovered", "forward_passes", "backward_passes", "seconds", "sram_bytes",
                   "sram_lean_bytes")
PERCENT = {"before", "after", "clean", "recovered"}


class ReportError(TinyzoError):
    """A report asks for a key or metric the runs do not have."""


def value_of(row: dict, key: str):
    """The value of grouping key or metric ``key`` in a database row (None when the run lacks it)."""
    if key in ("method", "seed", "sweep", "status") or key in METRIC_COLUMNS + TEXT_COLUMNS:
        return row.get(key)
    return row["options"].get(key.replace("-", "_"))


def _same(value, text: str) -> bool:
    """Whether a row's value equals the text of a ``--where`` value (numbers compared as numbers)."""
    if value is None:
        return text in ("None", "none", "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    return str(value) == text


def select_rows(rows: list, where) -> list:
    """The rows that match every condition of ``where``: strings ``"key=v1,v2"`` (the key's value is
    one of v1, v2; numbers compared as numbers, so ``lr=1.25e-4`` matches 0.000125), or with keys
    joined by ``+``, ``"method+lr=zo-rge-node+1.25e-4,bp-qas-sgd+3e-3"`` (the pair is one of those). A
    key no run has raises :class:`ReportError`."""
    out = list(rows)
    for cond in where or []:
        keys, sep, values = cond.partition("=")
        keys = [k.strip() for k in keys.split("+")]
        if not sep or not all(keys):
            raise ReportError(f"--where takes KEY=VALUE[,VALUE...] or KEY1+KEY2=V1+V2[,...], got {cond!r}")
        _check_keys(rows, keys, "key")
        wanted = [[v.strip() for v in alt.split("+")] for alt in values.split(",")]
        for alt in wanted:
            if len(alt) != len(keys):
                raise ReportError(f"--where {cond!r}: {'+'.join(alt)!r} does not give one value per key")
        out = [r for r in out if any(all(_same(value_of(r, k), v) for k, v in zip(keys, alt)) for alt in wanted)]
    return out


def _check_keys(rows: list, keys, what: str) -> None:
    for k in keys:
        if not any(value_of(r, k) is not None for r in rows):
            known = sorted({"method", "seed"} | {o for r in rows for o in r["options"]})
            raise ReportError(f"no run has {what} {k!r}; keys: {', '.join(known)}")


def aggregate(rows: list, group_by, metrics=DEFAULT_METRICS) -> list:
    """Group ``rows`` (from :meth:`ResultsDB.rows`) by ``group_by`` and summarize each metric.

    Returns one dict per group, in order of first appearance: the group keys, ``n`` (runs), and for
    each metric ``<metric>_mean``, ``<metric>_std`` (sample std, None for n = 1) and
    ``<metric>_n`` (runs that report it; e.g. ``recovered`` is None without a corruption).
    """
    group_by = [g.strip() for g in group_by if g.strip()]
    if not rows:
        raise ReportError("no finished runs to report")
    _check_keys(rows, group_by, "grouping key")
    bad = [m for m in metrics if m not in METRIC_COLUMNS]
    if bad:
        raise ReportError(f"unknown metric(s) {bad}; metrics: {', '.join(METRIC_COLUMNS)}")
    groups: dict = {}
    for r in rows:
        groups.setdefault(tuple(value_of(r, g) for g in group_by), []).append(r)
    out = []
    for key, members in groups.items():
        rec = dict(zip(group_by, key))
        rec["n"] = len(members)
        for m in metrics:
            vals = np.array([float(v) for v in (r.get(m) for r in members) if v is not None], dtype=np.float64)
            rec[f"{m}_n"] = int(vals.size)
            rec[f"{m}_mean"] = float(vals.mean()) if vals.size else None
            rec[f"{m}_std"] = float(vals.std(ddof=1)) if vals.size > 1 else None
        out.append(rec)
    return out


def _fmt(metric: str, mean, std) -> str:
    if mean is None:
        return ""
    if metric in PERCENT:
        s = f"{mean * 100:.1f}"
        return s + (f" ± {std * 100:.1f}" if std is not None else "") + "%"
    if metric.endswith("bytes"):
        s = f"{mean / 1024:.1f}"
        return s + (f" ± {std / 1024:.1f}" if std is not None and std > 0 else "") + " KiB"
    if metric == "seconds":
        return f"{mean:.1f}" + (f" ± {std:.1f}" if std is not None else "") + " s"
    return f"{mean:,.0f}" + (f" ± {std:,.0f}" if std is not None and std > 0 else "")


def to_markdown(table: list, group_by, metrics=DEFAULT_METRICS) -> str:
    """A Markdown table of :func:`aggregate`'s output: one row per group, ``mean ± std`` per metric."""
    group_by = [g.strip() for g in group_by if g.strip()]
    head = list(group_by) + ["n"] + list(metrics)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if h in group_by else "---:" for h in head) + "|"]
    for rec in table:
        cells = [str(rec[g]) for g in group_by] + [str(rec["n"])]
        cells += [_fmt(m, rec[f"{m}_mean"], rec[f"{m}_std"]) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(table: list) -> str:
    """CSV text of :func:`aggregate`'s output (every column, numbers unformatted)."""
    if not table:
        return ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(table[0]), lineterminator="\n")
    w.writeheader()
    for rec in table:
        w.writerow({k: ("" if v is None else v) for k, v in rec.items()})
    return buf.getvalue()


def update_markdown(path, table_md: str, header: str = "") -> Path:
    """Replace the text between :data:`BEGIN_MARK` and :data:`END_MARK` in the Markdown file ``path``
    with ``header`` + ``table_md`` (the rest of the page, e.g. its findings, is kept). The file is
    written atomically (a temporary file, then a rename)."""
    import os

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ReportError(f"cannot read {path}: {e}") from None
    a, b = text.find(BEGIN_MARK), text.find(END_MARK)
    if a < 0 or b < a:
        raise ReportError(f"{path} has no {BEGIN_MARK} ... {END_MARK} block to replace; add the two lines where "
                          "the table goes")
    new = text[: a + len(BEGIN_MARK)] + "\n" + header + table_md + text[b:]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _finish(plt, fig, ax, path, xlabel: str, ylabel: str) -> Path:
    """Label, grid, legend, save (120 dpi) and close a figure; returns the path."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_vs_param(rows: list, param: str, path, *, metric: str = "after", by: str = "method") -> Path:
    """Save ``metric`` (mean ± std over the other keys, e.g. seeds) against ``param``, one line per ``by``."""
    _check_keys(rows, [param, by], "key")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label in dict.fromkeys(value_of(r, by) for r in rows):
        sub = [r for r in rows if value_of(r, by) == label and value_of(r, param) is not None]
        table = sorted(aggregate(sub, [param], [metric]), key=lambda t: t[param]) if sub else []
        if not table:
            continue
        xs = [t[param] for t in table]
        scale = 100 if metric in PERCENT else 1
        ys = [t[f"{metric}_mean"] * scale for t in table]
        es = [(t[f"{metric}_std"] or 0) * scale for t in table]
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=str(label))
    if all(isinstance(value_of(r, param), (int, float)) for r in rows) and \
            min(value_of(r, param) for r in rows) > 0 and param in ("lr", "sigma_bias"):
        ax.set_xscale("log")
    return _finish(plt, fig, ax, path, param, metric + (" (%)" if metric in PERCENT else ""))


def plot_pareto(rows: list, path, *, metric: str = "recovered", memory: str = "sram_lean_bytes",
                by="method") -> Path:
    """Save ``metric`` against training SRAM (KiB), one point per group of ``by`` (a key or a list of
    keys, e.g. method and budget) with error bars (mean ± std) in both directions, and the Pareto front
    (most ``metric`` for the least memory) as a line."""
    keys = [by] if isinstance(by, str) else list(by)
    table = [t for t in aggregate(rows, keys, [metric, memory]) if t[f"{metric}_mean"] is not None
             and t[f"{memory}_mean"] is not None]
    if not table:
        raise ReportError(f"no run reports both {metric} and {memory}")
    plt = _pyplot()
    scale = 100 if metric in PERCENT else 1
    fig, ax = plt.subplots(figsize=(6, 4))
    for t in table:
        ax.errorbar(t[f"{memory}_mean"] / 1024, t[f"{metric}_mean"] * scale, xerr=(t[f"{memory}_std"] or 0) / 1024,
                    yerr=(t[f"{metric}_std"] or 0) * scale, marker="o", capsize=3,
                    label=", ".join(str(t[k]) for k in keys))
    pts = sorted((t[f"{memory}_mean"] / 1024, t[f"{metric}_mean"] * scale) for t in table)
    front, best = [], -math.inf
    for x, y in pts:
        if y > best:
            front.append((x, y))
            best = y
    ax.plot(*zip(*front), "k--", lw=1, alpha=0.6, label="Pareto front")
    return _finish(plt, fig, ax, path, f"training SRAM on the device, KiB ({memory})",
                   metric + (" (%)" if metric in PERCENT else ""))


def plot_curves(rows: list, path, *, field: str = "val_acc", by: str = "method", x: str = "epoch") -> Path:
    """Save learning curves: ``field`` of the per-epoch history, mean ± std band over the runs of each ``by``.

    ``x``: ``"epoch"`` or ``"forward_passes"`` (the mean cumulative forward passes of those runs at each
    epoch, log scale: methods compared at equal cost)."""
    if x not in ("epoch", "forward_passes"):
        raise ReportError(f"plot_curves: x must be 'epoch' or 'forward_passes', got {x!r}")
    _check_keys(rows, [by], "key")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = 0
    for label in dict.fromkeys(value_of(r, by) for r in rows):
        curves = [[h.get(field) for h in r["history"] or []] for r in rows if value_of(r, by) == label]
        curves = [c for c in curves if c and all(v is not None for v in c)]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        a = np.array([c[:n] for c in curves], dtype=np.float64)
        scale = 100 if field.endswith("acc") else 1
        mean, std = a.mean(0) * scale, (a.std(0, ddof=1) if len(a) > 1 else np.zeros(n)) * scale
        ep = np.arange(1, n + 1)
        if x == "forward_passes":
            runs = [r["history"][:n] for r in rows if value_of(r, by) == label and len(r["history"] or []) >= n]
            ep = np.mean([[h.get("forward_passes") or 0 for h in hist] for hist in runs], axis=0)
            if not np.all(ep > 0):
                continue
        ax.plot(ep, mean, marker="o", label=f"{label} (n={len(a)})")
        ax.fill_between(ep, mean - std, mean + std, alpha=0.2)
        drawn += 1
    if not drawn:
        raise ReportError(f"no run has a per-epoch {field!r}")
    if x == "forward_passes":
        ax.set_xscale("log")
    return _finish(plt, fig, ax, path, "epoch" if x == "epoch" else "forward passes (batches through the model)",
                   field + (" (%)" if field.endswith("acc") else ""))
