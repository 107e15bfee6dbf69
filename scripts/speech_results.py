"""Tables and figure of the keyword spotter's on-device adaptation (issue 17 part 4; docs/audio.md).

    tinyzo sweep run experiments/speech_lr.toml --db speech.sqlite          # the learning-rate grid
    python scripts/speech_results.py speech.sqlite --lr-grid
    for s in accent noise mic; do tinyzo sweep run experiments/speech_adapt_$s.toml --db speech.sqlite; done
    python scripts/speech_results.py speech.sqlite --figure docs/figures/speech_adapt.png

``--lr-grid``: per method, trained layers and learning rate, the validation accuracy of the last 5
epochs (the choice) and the test accuracy after (seed 0). Otherwise: per shift and method, test accuracy before and after (mean and
sample std over the seeds), the share of the accuracy the shift cost that adaptation won back (the
clean accuracy is the reference model's on the unshifted unseen-voice test split), forward and
backward passes, and the training SRAM on the device at batch 1 as run and lean (``tinyzo memory``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

SHIFTS = ("accent", "noise", "mic")
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
#: the table's and figure's method order (labels of experiments/speech_adapt_*.toml)
ORDER = ("zo-rge-node", "zo-spsa-node", "zo-signspsa-node", "zo-rge-mixed", "zo-rge-weight", "bp-last1", "bp")


def _spec_rows(db_path, spec: Path) -> list:
    """The finished runs of sweep spec ``spec`` in the database, found by run key (a run another spec
    already made with the same configuration counts: the sweep driver does not repeat it)."""
    from tinyzo.sweep.db import ResultsDB
    from tinyzo.sweep.spec import load_spec

    keys = {run.key for run in load_spec(spec).runs}
    with ResultsDB(db_path, create=False) as db:
        return [r for r in db.rows() if r["key"] in keys]


def _ms(vals, scale=100.0):
    a = np.asarray(vals, dtype=np.float64) * scale
    return f"{a.mean():.1f} ± {a.std(ddof=1):.1f}" if a.size > 1 else f"{a.mean():.1f}"


def _val_mean(row, key: str) -> float:
    """A run's validation ``key`` (val_acc, val_loss) averaged over its last 5 epochs."""
    return float(np.mean([h[key] for h in row["history"][-5:]]))


def _layers(options: dict) -> str:
    """The trained layers of a run: its ``layers`` option, or its kind's default (``tinyzo train``)."""
    from tinyzo.training.defaults import METHOD_DEFAULTS

    if "layers" in options:
        return options["layers"]
    method = options["method"]
    kind = "bp" if method == "bp" else method.rsplit("-", 1)[1]
    return f"last{METHOD_DEFAULTS[kind]['layers_last']} (default)"


def lr_grid(db_path, experiments: Path = EXPERIMENTS) -> str:
    """Markdown table of the learning-rate grid (the runs of experiments/speech_lr.toml): per method label
    (method and trained layers) and rate, the validation loss and accuracy of the last 5 epochs and the
    test accuracy after; the best rate of each label (lowest validation loss: on 120 validation clips
    one clip is 0.8 points of accuracy, the loss separates the rates better) in bold."""
    rows = _spec_rows(db_path, Path(experiments) / "speech_lr.toml")
    if not rows:
        raise SystemExit(f"{db_path}: no finished run of experiments/speech_lr.toml")
    by = {}
    for r in rows:
        by.setdefault(r["method"], []).append(r)
    lines = ["| method | layers | lr | val loss (last 5 epochs) | val accuracy (last 5 epochs) | test accuracy after |",
             "|---|---|---:|---:|---:|---:|"]
    if any(r["options"].get("mixed_split") for r in rows):
        lines[0] = lines[0].replace("| layers |", "| layers (mixed: split) |")
    for label in sorted(by, key=lambda k: (by[k][0]["options"]["method"], _layers(by[k][0]["options"]))):
        rs = sorted(by[label], key=lambda r: r["options"]["lr"])
        best = min(rs, key=lambda r: _val_mean(r, "val_loss"))
        for r in rs:
            b = "**" if r is best else ""
            split = f" (split {r['options']['mixed_split']})" if "mixed_split" in r["options"] else ""
            lines.append(f"| {r['options']['method']} | {_layers(r['options'])}{split} | "
                         f"{r['options']['lr']:g} | {b}{_val_mean(r, 'val_loss'):.3f}{b} | {100 * _val_mean(r, 'val_acc'):.1f}% | "
                         f"{100 * r['after']:.1f}% |")
    return "\n".join(lines)


def clean_accuracy() -> float:
    """The reference keyword spotter's int8 accuracy on the unshifted unseen-voice test split."""
    import tinyzo
    from tinyzo import data, reference_models
    from tinyzo.evaluate import evaluate

    ds = data.load("speech")
    return evaluate(tinyzo.load(reference_models.path("kws_dscnn")), ds.x_test, ds.y_test,
                    feature_quant=ds.feature_quant)["accuracy"]


def results(db_path, experiments: Path = EXPERIMENTS) -> tuple:
    """(markdown table, {shift: {method: [rows]}}) of the adaptation sweeps."""
    clean = clean_accuracy()
    table = {}
    for s in SHIFTS:
        rows = _spec_rows(db_path, Path(experiments) / f"speech_adapt_{s}.toml")
        for r in sorted(rows, key=lambda r: (ORDER.index(r["method"]) if r["method"] in ORDER else len(ORDER),
                                             r["method"], r["seed"])):
            table.setdefault(s, {}).setdefault(r["method"], []).append(r)
    if not table:
        raise SystemExit(f"{db_path}: no finished run of experiments/speech_adapt_*.toml")
    lines = [("| shift | method | runs | before | after (mean ± std) | recovered | forward passes | backward passes "
              "| SRAM as run | SRAM lean |"), "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s, methods in table.items():
        for m, rs in methods.items():
            before = np.array([r["before"] for r in rs])
            after = np.array([r["after"] for r in rs])
            rec = (after - before) / (clean - before)
            lines.append(f"| {s} | {m} | {len(rs)} | {100 * before.mean():.1f}% | {_ms(after)}% | {_ms(rec)}% | "
                         f"{int(np.mean([r['forward_passes'] for r in rs])):,} | "
                         f"{int(np.mean([r['backward_passes'] or 0 for r in rs])):,} | "
                         f"{np.mean([r['sram_bytes'] for r in rs]) / 1024:.1f} KiB | "
                         f"{np.mean([r['sram_lean_bytes'] for r in rs]) / 1024:.1f} KiB |")
    lines.append(f"\nClean (unshifted unseen voices): {100 * clean:.2f}%.")
    return "\n".join(lines), table, clean


def figure(table: dict, clean: float, path) -> Path:
    """Left: accuracy after per shift and method (mean ± std bars, before as a line); right: the mean
    accuracy gain over the shifts against the lean training SRAM."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shifts = list(table)
    methods = list(dict.fromkeys(m for s in shifts for m in table[s]))
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.8), gridspec_kw={"width_ratios": [1.6, 1]})
    w = 0.8 / len(methods)
    for j, m in enumerate(methods):
        xs, mean, std = [], [], []
        for i, s in enumerate(shifts):
            rs = table[s].get(m)
            if rs:
                a = 100 * np.array([r["after"] for r in rs])
                xs.append(i - 0.4 + w * (j + 0.5))
                mean.append(a.mean())
                std.append(a.std(ddof=1) if a.size > 1 else 0.0)
        ax.bar(xs, mean, w, yerr=std, capsize=2, label=m, color=f"C{j}")
    for i, s in enumerate(shifts):
        before = 100 * np.mean([r["before"] for rs in table[s].values() for r in rs])
        ax.plot([i - 0.45, i + 0.45], [before, before], "k:", lw=1.5, label="before" if i == 0 else None)
    ax.axhline(100 * clean, color="k", ls="--", lw=1, label="clean (unshifted)")
    ax.set_xticks(range(len(shifts)), shifts)
    ax.set_ylabel("int8 test accuracy after (%)")
    ax.set_ylim(60, 95)
    ax.legend(fontsize=7, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.1))
    ax.set_title("kws_dscnn adapting to a shift (unseen test voices)")
    for k, m in enumerate(methods):
        rs = [r for s in shifts for r in table[s].get(m, [])]
        gain = 100 * np.mean([r["after"] - r["before"] for r in rs])
        sram = np.mean([r["sram_lean_bytes"] for r in rs]) / 1024
        bx.scatter(sram, gain, s=40, color=f"C{k}", alpha=0.8)
    bx.set_xlabel("training SRAM on the device, lean (KiB, batch 1)")
    bx.set_ylabel("mean accuracy gain over the shifts (points)")
    bx.set_title("gain vs memory (colours as on the left)", fontsize=10)
    bx.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("db", help="the sweep database")
    p.add_argument("--lr-grid", action="store_true", help="report the learning-rate grid instead")
    p.add_argument("--figure", help="also save the figure here (PNG)")
    p.add_argument("--experiments", default=str(EXPERIMENTS), help="the folder of the sweep specs (default: the "
                   "repository's experiments/)")
    args = p.parse_args()
    if args.lr_grid:
        print(lr_grid(args.db, args.experiments))
        return
    md, table, clean = results(args.db, args.experiments)
    print(md)
    if args.figure:
        print(f"wrote {figure(table, clean, args.figure)}")


if __name__ == "__main__":
    main()
