"""Cosine of ZO gradient estimates with a finite-difference gradient, per layer: figure and tables.

    python scripts/zo_cosine.py [--repeats 4] [--queries 1 8 64] [--h-study] \
        [--out docs/figures/zo_cosine.png]

On the digits reference model (reference_models/digits_cnn.tflite) and a batch of 64 training
digits under motion blur (severity 5), for every trainable layer from the first to the last:
the central finite-difference gradient of the batch mean loss on a random subset of the layer's
integer weights and biases (:func:`tinyzo.zo.diagnostics.true_gradient_fd`), and the cosine with it
of the weight-perturbation and node-perturbation estimates of ZOTrainer (RGE, Rademacher, sigma 1,
automatic sigma_bias, sigma_node 1) averaged over m queries, ``--repeats`` independent estimates
each. Writes the figure and prints the Markdown tables of docs/zo_diagnostics.md.

``--h-study`` also prints the agreement of the FD weight gradient for h = 1, 2, 4, 8 LSB with the
exact straight-through gradient of the last two layers (the fully-connected classifier, and the
1x1 convolution before the global MEAN, back-propagated by hand through FC and MEAN), and that of
the node-perturbation estimate for m = 64, 256, 1024.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import tinyzo
from tinyzo import data
from tinyzo.evaluate import images_to_input
from tinyzo.zo import diagnostics as zd

ROOT = Path(__file__).resolve().parents[1]


def blurred_batch(model, n: int, corruption: str, severity: int, seed: int):
    """The first ``n`` training digits, corrupted, as int8 model input, and their labels."""
    ds = data.load("digits")
    x = data.corrupt(ds.x_train[:n], corruption, severity, seed=seed)
    return images_to_input(model, x), ds.y_train[:n].astype(np.int64)


def ste_last_two(model, xq, y):
    """Straight-through gradients ``{op: g_w}`` of the output FC and of the layer feeding its MEAN input.

    ``dL/dlogits`` is exact (softmax of the dequantized logits); the FC's local backward gives its
    weight gradient and ``dL/dx_fc = dL/dacc @ W``; a MEAN over H x W passes ``s_in / (H W s_out)``
    per input element; the conv's local backward gives its weight gradient. Returns only the layers
    this pattern (conv -> MEAN -> FC = output) covers.
    """
    from tinyzo.training.local_backward import local_backward, output_grad_to_acc_grad

    fc = model.trainable_ops()[-1]
    op_fc = model.operators[fc]
    out = {}
    g_w_fc, _ = zd.ste_gradient_output_layer(model, fc, xq, y)
    out[fc] = g_w_fc
    logits, env = model(xq, intermediates=True)
    t = model.tensors[model.outputs[0]]
    s, zp = float(t.quant.scale[0]), int(t.quant.zero_point[0])
    z = (logits.astype(np.float64) - zp) * s
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    g_logits = (p * s / len(y)).astype(np.float32)
    d_acc = output_grad_to_acc_grad(model, fc, logits, g_logits).astype(np.float64)
    g_fc_in = d_acc @ model.get_params(fc)[0].astype(np.float64)                   # [N, K] per int unit
    producer = [k for k, op in enumerate(model.operators) if op_fc.inputs[0] in op.outputs]
    if not producer or model.operators[producer[0]].opcode != "MEAN":
        return out
    mean_k = producer[0]
    mean_op = model.operators[mean_k]
    src = [k for k, op in enumerate(model.operators) if mean_op.inputs[0] in op.outputs]
    if not src or src[0] not in model.trainable_ops():
        return out
    conv = src[0]
    x_mean = env[mean_op.inputs[0]]                                                # [N, H, W, C]
    n, hh, ww, c = x_mean.shape
    s_in = float(model.tensors[mean_op.inputs[0]].quant.scale[0])
    s_out = float(model.tensors[mean_op.outputs[0]].quant.scale[0])
    g_conv_out = np.broadcast_to(g_fc_in.reshape(n, 1, 1, c), x_mean.shape) * (s_in / (hh * ww * s_out))
    op_c = model.operators[conv]
    g_w_conv, _ = local_backward(model, conv, env[op_c.inputs[0]], env[op_c.outputs[0]],
                                 np.ascontiguousarray(g_conv_out, dtype=np.float32))
    out[conv] = g_w_conv
    return out


def h_study(model, xq, y, n_weights: int, seed: int) -> str:
    """Markdown table: cosine of the FD weight gradient (h = 1, 2, 4, 8) with the straight-through one."""
    ste = ste_last_two(model, xq, y)
    hs = (1, 2, 4, 8)
    lines = ["| layer | op | " + " | ".join(f"h={h}" for h in hs) + " |", "|---|---|" + "---|" * len(hs)]
    for k in sorted(ste):
        g = ste[k].reshape(-1)
        cells = []
        for h in hs:
            idx, g_fd, _, _ = zd.true_gradient_fd(model, k, xq, y, n_weights=n_weights, n_bias=0, seed=seed, h_weight=h)
            cells.append(f"{zd.cosine(g_fd, g[idx]):.3f}")
        lines.append(f"| {k} | {model.operators[k].opcode} | " + " | ".join(cells) + " |")
    ms = (64, 256, 1024)
    lines += ["", "Node perturbation (whole weight tensor) against the same straight-through gradient:", "",
              "| layer | op | " + " | ".join(f"m={m}" for m in ms) + " |", "|---|---|" + "---|" * len(ms)]
    for k in sorted(ste):
        est = zd.zo_gradients(model, k, xq, y, target="node", queries=ms, seed=seed)
        cells = [f"{zd.cosine(est[m][0], ste[k]):.3f}" for m in ms]
        lines.append(f"| {k} | {model.operators[k].opcode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "reference_models" / "digits_cnn.tflite")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--corruption", default="motion_blur")
    ap.add_argument("--severity", type=int, default=5)
    ap.add_argument("--queries", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--n-weights", type=int, default=64)
    ap.add_argument("--n-bias", type=int, default=16)
    ap.add_argument("--h-weight", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layers", type=int, nargs="*", default=None, help="operator indices (default: all trainable)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "figures" / "zo_cosine.png")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    ap.add_argument("--h-study", action="store_true", help="print the FD step study (last two layers)")
    args = ap.parse_args(argv)

    model = tinyzo.load(args.model)
    xq, y = blurred_batch(model, args.batch, args.corruption, args.severity, args.seed)
    t0 = time.perf_counter()
    rows = zd.cosine_table(model, xq, y, queries=tuple(args.queries), seed=args.seed, layers=args.layers,
                           repeats=args.repeats, n_weights=args.n_weights, n_bias=args.n_bias,
                           h_weight=args.h_weight, progress=lambda s: print(s, file=sys.stderr, flush=True))
    total = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    zd.plot_cosines(rows, args.out)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(f"batch: {args.batch} training digits, {args.corruption} severity {args.severity}; FD subset "
          f"{args.n_weights} weights + {args.n_bias} biases per layer, h_weight = {args.h_weight} LSB, bias step = "
          f"one output step; {args.repeats} repeats; {total:.0f} s\n")
    print("Weights: cosine with the FD gradient (mean±sd over repeats)\n")
    print(zd.rows_to_markdown(rows, "w"))
    print("\nBiases: cosine with the FD gradient (mean±sd over repeats)\n")
    print(zd.rows_to_markdown(rows, "b"))
    print("\nWeights: cosine with the back-propagation engine's straight-through gradient (all weights of the "
          "layer), and how the BP gradient agrees with the FD gradient on the subset\n")
    ms = sorted({r["queries"] for r in rows})
    print("| layer | BP vs FD | " + " | ".join(f"{t} m={m}" for t in ("weight", "node") for m in ms) + " |")
    print("|---|---:|" + "---:|" * (2 * len(ms)))
    for k in sorted({r["layer"] for r in rows}):
        rk = [r for r in rows if r["layer"] == k]
        cells = []
        for t_ in ("weight", "node"):
            for m in ms:
                v = [r["cosine_w_bp"] for r in rk if r["target"] == t_ and r["queries"] == m]
                cells.append(f"{v[0]:.2f}" if v else "-")
        print(f"| {k} {rk[0]['opcode']} | {rk[0]['bp_vs_fd_w']:.2f} | " + " | ".join(cells) + " |")
    times = []
    for r in rows:
        if r["target"] == rows[0]["target"] and r["queries"] == rows[0]["queries"]:
            zo = sum(q["zo_seconds"] for q in rows if q["layer"] == r["layer"] and q["queries"] == r["queries"])
            times.append(f"{r['layer']}: FD {r['fd_seconds']:.1f} + ZO {zo:.1f}")
    print("\nTime per layer (s): " + ", ".join(times))
    if args.h_study:
        print("\nFD step study: cosine of the FD weight gradient with the straight-through gradient\n")
        print(h_study(model, xq, y, n_weights=256, seed=args.seed))
    print(f"\nfigure: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
