"""Back-propagation training speed: a tinyzo int8 BP step vs a PyTorch float32 BP step, same architecture and batch.

    pip install torch==2.13.0        # benchmark only, NOT a tinyzo dependency (CPU wheel)
    python benchmarks/bench_bp.py [--repeats 40] [--out docs/benchmarks.md]

Measured in one process on the digits reference model (reference_models/digits_cnn.tflite, int8,
32x32x1, 10 classes) at batch 32 of motion-blurred digits (severity 5):

1. median wall time of ``BPTrainer.step`` (int8 forward keeping every activation, float32 MCU
   cross-entropy, backward through the int8 graph, QAS-scaled update of the int8 weights and int32
   biases, ``set_params``) for several schemes and optimizers;
2. median wall time of a PyTorch float32 BP step (zero_grad, forward, cross-entropy, backward, SGD
   step) on the same architecture (``bench_zo.build_torch_net``: conv + BatchNorm in training mode +
   ReLU6), with 1 and 2 torch threads, training all layers or only the same last layers.

Target (issue 5): a tinyzo BP step within 2x of PyTorch's step time. The section is written into
``--out`` after the ``<!-- more benchmarks below -->`` marker (same-heading section replaced).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import bench_zo as bz  # noqa: E402  (shared helpers: batches, PyTorch twin, timing, report writer)

HEADING = "## Back-propagation training step"

#: name -> (QASOptimizer arguments, scheme spec: ("full",) / ("last", k) / ("bias", k), PyTorch twin: None = all
#: layers, k = the last k weighted layers)
SETTINGS = {
    "all layers, SGD + QAS, per-step rounding": ({"kind": "sgd", "lr": 5e-3}, ("full",), None),
    "all layers, SGD + QAS, float shadow": ({"kind": "sgd", "lr": 5e-3, "mode": "shadow"}, ("full",), None),
    "all layers, Adam + QAS, float shadow": ({"kind": "adam", "lr": 1e-3, "mode": "shadow"}, ("full",), None),
    "last 6 layers, SGD + QAS": ({"kind": "sgd", "lr": 5e-3}, ("last", 6), 6),
    "last 2 layers, SGD + QAS": ({"kind": "sgd", "lr": 5e-3}, ("last", 2), 2),
    "biases of the last 6 layers + classifier, SGD + QAS": ({"kind": "sgd", "lr": 5e-3}, ("bias", 6), 6),
}


def make_trainer(opt_args: dict, spec: tuple):
    """A BPTrainer on a fresh copy of the reference model for one setting."""
    import tinyzo
    from tinyzo.training.update import QASOptimizer
    from tinyzo.training.scheme import SparseScheme
    from tinyzo.bp.trainer import BPTrainer

    model = tinyzo.load(bz.MODEL)
    if spec[0] == "full":
        scheme = SparseScheme.full(model)
    elif spec[0] == "last":
        scheme = SparseScheme.last_k(model, spec[1])
    else:
        scheme = SparseScheme.bias_only(model, spec[1], classifier=True)
    opt_args = dict(opt_args)
    kind = opt_args.pop("kind")
    return BPTrainer(model, scheme=scheme, optimizer=QASOptimizer(kind, **opt_args))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=40, help="timed steps per setting (default 40)")
    ap.add_argument("--out", default=str(bz.ROOT / "docs" / "benchmarks.md"), help="Markdown file to update")
    ap.add_argument("--no-write", action="store_true", help="only print the section")
    args = ap.parse_args(argv)
    if args.repeats < 3:
        ap.error("--repeats must be at least 3")
    t_begin = time.perf_counter()
    load_start = bz.loadavg()
    import tinyzo
    from tinyzo.models import build

    ref = tinyzo.load(bz.MODEL)
    batches = bz.load_batches(ref, 8)
    xq, y = batches[0]

    # 1. tinyzo BP steps first (before torch is imported: its OpenMP pool stays out of the way)
    tz = {}
    for name, (opt_args, spec, _) in SETTINGS.items():
        print(f"tinyzo BP: {name} ...", flush=True)
        tr = make_trainer(opt_args, spec)
        it = iter(range(10 ** 9))
        tz[name] = bz.median_time(lambda tr=tr, it=it: tr.step(*batches[next(it) % len(batches)]), args.repeats)

    # 2. PyTorch float32 BP on the same architecture and batch
    torch_t, torch_version = {}, None
    if importlib.util.find_spec("torch") is None:
        print(f"PyTorch is not installed: install the CPU wheel for the benchmark only with "
              f"`pip install torch=={bz.TORCH_VERSION}` (not a tinyzo dependency).", file=sys.stderr)
        return 2
    import torch

    torch_version = torch.__version__
    net = build("digits-cnn", input_shape=(32, 32, 1), num_classes=10)
    qin = ref.tensors[ref.inputs[0]].quant
    x_float = ((xq.astype(np.float32) - float(qin.zero_point[0])) * float(qin.scale[0])).astype(np.float32)
    before = torch.get_num_threads()
    for threads in (2, 1):
        for last in sorted({s[2] for s in SETTINGS.values()}, key=lambda v: -1 if v is None else v):
            print(f"PyTorch: {threads} thread(s), {'all' if last is None else f'last {last}'} layers ...", flush=True)
            torch_t[(threads, last)] = bz.bench_torch(torch, net, x_float, y, threads, last, args.repeats)
    torch.set_num_threads(before)

    def best(last):
        return min(torch_t[(1, last)], torch_t[(2, last)])

    L = [HEADING, "",
         ("Command: `python benchmarks/bench_bp.py` (PyTorch for the comparison only: "
          f"`pip install torch=={bz.TORCH_VERSION}`, the CPU wheel; not a tinyzo dependency)."), "",
         f"Machine: {bz.machine_facts(load_start)}. Read the ratios measured in the same run.", "",
         ("Model: the digits reference model, batch 32 of motion-blurred digits (severity 5) as int8 inputs. "
          "tinyzo: `BPTrainer.step` = int8 forward keeping every activation, float32 MCU cross-entropy, backward "
          "through the int8 graph (straight-through masks), QAS-scaled update of the int8 weights / int32 biases "
          f"and `set_params`; median of {args.repeats} steps after 3 warm-up steps. PyTorch {torch_version}: the "
          "same architecture in float32 (conv + BatchNorm in training mode + ReLU6, see the ZO section below), "
          "zero_grad + forward + cross-entropy + backward + SGD step; \"same layers\" trains only the setting's "
          "last weighted layers (`requires_grad` off below them, so its backward stops there too)."), "",
         "| tinyzo BP step (int8) | ms / step | PyTorch same layers, best of 1/2 thr, ms | ratio | "
         "PyTorch all layers, best, ms | ratio |",
         "|---|---:|---:|---:|---:|---:|"]
    verdicts = []
    for name, (_, _, last) in SETTINGS.items():
        same, full = best(last), best(None)
        L.append(f"| {name} | {tz[name] * 1e3:.1f} | {same * 1e3:.1f} | {tz[name] / same:.2f} | "
                 f"{full * 1e3:.1f} | {tz[name] / full:.2f} |")
        verdicts.append(f"- {name}: {tz[name] / same:.2f}x PyTorch's faster step on the same layers "
                        f"(target <= 2x: {'met' if tz[name] / same <= 2 else 'not met'}).")
    L += ["", "| PyTorch float32 BP step | ms, 1 thread | ms, 2 threads |", "|---|---:|---:|"]
    for last in sorted({s[2] for s in SETTINGS.values()}, key=lambda v: -1 if v is None else v):
        L.append(f"| {'all layers' if last is None else f'last {last} layers'} | {torch_t[(1, last)] * 1e3:.2f} | "
                 f"{torch_t[(2, last)] * 1e3:.2f} |")
    L += ["", "Ratio = tinyzo step time / PyTorch step time (below 1: tinyzo is faster).", ""] + verdicts
    L += ["", ("The bias-only row compares with PyTorch training the last 6 layers' weights *and* biases: PyTorch "
               "has no cheaper equivalent (its BatchNorm layers), while tinyzo skips every weight gradient of a "
               "bias-only layer (only the gradient flowing down and the bias sum are computed)."),
          f"Total benchmark time: {time.perf_counter() - t_begin:.0f} s."]
    section = "\n".join(L) + "\n"
    print(section)
    if not args.no_write:
        bz.write_section(Path(args.out), section, HEADING)
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
