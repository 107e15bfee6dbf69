"""Draw docs/figures/architecture.png: tinyzo's folders as layers (each layer imports only from below).

    python scripts/architecture_figure.py [--out docs/figures/architecture.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (layer title, colour, [(box label, what it holds)]), bottom layer first
LAYERS = [
    ("inference core: TFLite Micro's arithmetic, bit for bit", "#dbe9f6", [
        ("spec/", "plain-Python definitions\n(operators, PRNG, training step)"),
        ("quant.py", "quantization,\nmultipliers"),
        ("kernels/", "@njit integer kernels\n(+ ZO step kernels)"),
        ("ops/", "prepare + compute\nper operator"),
        ("graph.py  io/", "Model; .tflite / .npz\nread and write"),
    ]),
    ("training core (tinyzo/training/)", "#e3f1de", [
        ("layers.py", "trainable-layer view,\nchannel selection"),
        ("loss.py", "int8 cross-entropy,\nloss and accuracy"),
        ("update.py", "exact rounding, IntegerSGD,\nQASOptimizer, schedules"),
        ("prng.py  c/", "xorshift32, seed schedule,\nperturbations (+ C header)"),
        ("scheme.py", "SparseScheme"),
        ("trainer.py\nmethods.py", "Trainer base (ZO, BP),\nMethod objects"),
        ("loop.py\nlocal_backward.py", "fit (epochs, checkpoints),\none-layer backward"),
    ]),
    ("gradient sources and planners", "#fdf0d5", [
        ("zo/", "ZOTrainer: RGE / SPSA /\nSign-SPSA estimates"),
        ("bp/", "BPTrainer, backward,\ncontribution analysis"),
        ("fp/", "float twin: forward,\nbackward, SGD, PTQ"),
        ("memory/", "schedules, arena\nplanner, peak SRAM"),
        ("golden/", "vectors for\nfirmware ports"),
    ]),
    ("commands", "#f3dfe8", [
        ("cli.py  train_command.py", "tinyzo <command>"),
        ("demo.py", "the end-to-end demo"),
        ("sweep/", "grids of runs on Dask,\nresults database"),
    ]),
]


def draw(out: Path) -> Path:
    """Draw the figure to ``out`` (PNG) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    fig, ax = plt.subplots(figsize=(12, 6.4))
    ax.set_xlim(0, 12)
    ax.set_ylim(0, 4 * 1.55 + 0.2)
    ax.axis("off")
    for row, (title, colour, boxes) in enumerate(LAYERS):
        y0 = 0.15 + row * 1.55
        ax.add_patch(FancyBboxPatch((0.05, y0), 11.9, 1.35, boxstyle="round,pad=0.02", fc=colour, ec="#888888"))
        ax.text(0.15, y0 + 1.22, title, fontsize=9, fontweight="bold", va="center")
        w = 11.6 / len(boxes)
        for i, (label, what) in enumerate(boxes):
            x = 0.2 + i * w
            ax.add_patch(FancyBboxPatch((x, y0 + 0.1), w - 0.15, 0.95, boxstyle="round,pad=0.02", fc="white",
                                        ec="#555555"))
            ax.text(x + (w - 0.15) / 2, y0 + 0.8, label, ha="center", va="center", fontsize=8.5,
                    family="monospace", fontweight="bold")
            ax.text(x + (w - 0.15) / 2, y0 + 0.38, what, ha="center", va="center", fontsize=7.5)
        if row:
            ax.annotate("", xy=(11.75, y0 - 0.02), xytext=(11.75, y0 + 0.3),
                        arrowprops={"arrowstyle": "->", "color": "#444444"})
    ax.text(11.6, 0.05, "arrows: imports point down only (tests/test_architecture.py)", fontsize=7, ha="right",
            color="#444444")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "figures" / "architecture.png"))
    print(f"wrote {draw(Path(ap.parse_args(argv).out))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
