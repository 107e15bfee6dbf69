"""``tinyzo demo``: the whole on-device adaptation story on the embedded default, in a few minutes.

1. load the pretrained int8 digits model (reference_models/digits_cnn.tflite, or the copy shipped
   with the package data), 2. corrupt the digits (default: motion blur, severity 5), 3. measure the
   int8 test accuracy before, 4. adapt on the corrupted training split with each method (quantized ZO, and sparse back
   propagation with QAS for comparison), from the same start, 5. measure after, and print one table (accuracy
   before/after, share of the lost accuracy recovered, forward/backward passes, time, and the peak SRAM the
   method needs to train on a microcontroller at batch 1, from :func:`tinyzo.memory.memory_report`),
   6. save the training curves and a summary plot.

An SRAM budget (``budget_kb``) skips the methods whose training peak does not fit, as a device would have to.

``task="speech"`` (``tinyzo demo --task speech``) tells the same story for keyword spotting: the
reference keyword spotter (reference_models/kws_dscnn.tflite, 12 classes) meets one of the domain
shifts of :mod:`tinyzo.audio.shifts` (unseen foreign accents, a loud noise floor, a muffled
microphone; shipped feature sets), adapts on the shifted training clips and is tested on shifted
clips of unseen voices. Its learning rates and trained layers are the keyword spotter's own
(:data:`SPEECH_SETTINGS`, chosen with experiments/speech_lr.toml): the digits defaults do not transfer.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tinyzo import data, reference_models
from tinyzo.bp import BPTrainer, QASOptimizer, SparseScheme
from tinyzo.errors import InputError
from tinyzo.evaluate import evaluate, images_to_input
from tinyzo.memory import trainer_memory_report
from tinyzo.training.defaults import METHOD_DEFAULTS
from tinyzo.training.loop import fit, write_history
from tinyzo.zo.trainer import ZOConfig, ZOTrainer

#: demo tasks: digits (image corruptions) and speech (keyword spotting under a domain shift)
TASKS = ("digits", "speech")
#: the keyword spotter's settings per method kind, replacing the digits defaults: the learning rate
#: and trained layers with the lowest validation loss in experiments/speech_lr.toml (speech-noise,
#: seed 0; docs/audio.md, "Adapting to a new accent, noise or microphone")
SPEECH_SETTINGS = {"node": {"layers_last": 1, "lr": 1e-2}, "mixed": {"layers_last": 2, "mixed_split": 1, "lr": 3e-3},
                   "weight": {"lr": 3e-3}, "bp": {"lr": 3e-4}}


def _demo_methods(overrides: dict | None = None) -> dict:
    """The demo's methods with the per-method defaults of ``tinyzo train`` (tinyzo.training.defaults:
    the digits demo shows what a run with no optional flag gets); ``overrides``: method kind -> options
    (``lr``, ``layers_last``, ``mixed_split``) replacing the defaults (the speech task's :data:`SPEECH_SETTINGS`)."""
    d = {k: dict(v, **((overrides or {}).get(k) or {})) for k, v in METHOD_DEFAULTS.items()}
    return {
        "zo-rge-node": dict(target="node", estimator="rge", last=d["node"]["layers_last"],
                            queries=d["node"]["queries"], lr=d["node"]["lr"]),
        "zo-rge-mixed": dict(target="mixed", estimator="rge", last=d["mixed"]["layers_last"],
                             queries=d["mixed"]["queries"], lr=d["mixed"]["lr"], mixed_split=d["mixed"]["mixed_split"]),
        "zo-spsa-node": dict(target="node", estimator="spsa", last=d["node"]["layers_last"],
                             queries=d["node"]["queries"] // 2, lr=d["node"]["lr"]),
        "zo-rge-weight": dict(target="weight", estimator="rge", last=d["weight"]["layers_last"],
                              queries=d["weight"]["queries"], lr=d["weight"]["lr"]),
        # sparse back propagation with QAS, for comparison (tinyzo.bp)
        "bp-qas-sgd": dict(bp=True, last=d["bp"]["layers_last"], lr=d["bp"]["lr"], momentum=d["bp"]["momentum"]),
    }


#: method name -> settings of the digits demo (see docs/training_zo.md)
DEMO_METHODS = _demo_methods()
#: the same methods at the keyword spotter's learning rates
SPEECH_DEMO_METHODS = _demo_methods(SPEECH_SETTINGS)


def _methods(task: str) -> dict:
    return SPEECH_DEMO_METHODS if task == "speech" else DEMO_METHODS


def reference_model_path(task: str = "digits") -> Path:
    """Path of the task's reference model (digits: digits_cnn, speech: kws_dscnn), shipped with tinyzo
    as package data.

    It is the repository's ``reference_models/<name>.tflite``, installed as the package
    ``tinyzo.reference_models`` (editable or not), so the demo runs from any folder.
    """
    name, script = ("kws_dscnn", "make_kws_reference.py") if task == "speech" else \
        ("digits_cnn", "make_reference_models.py")
    try:
        return reference_models.path(name)
    except FileNotFoundError:
        raise InputError(f"the {task} reference model is missing from this tinyzo installation; reinstall tinyzo "
                         f"(python reference_models/{script} regenerates it in a checkout)") from None


def _task_data(task: str, corruption: str, severity: int, shift: str, seed: int) -> dict:
    """The demo's data: clean test split (x, y), shifted train/val/test splits, and a label of the shift."""
    if task == "speech":
        clean, shifted = data.load("speech"), data.load(f"speech-{shift}")
        return dict(clean=(clean.x_test, clean.y_test), train=shifted.split("train"), val=shifted.split("val"),
                    test=shifted.split("test"), label=f"{shift} shift", feature_quant=shifted.feature_quant)
    ds = data.load("digits")
    return dict(clean=(ds.x_test, ds.y_test),
                train=(data.corrupt(ds.x_train, corruption, severity, seed=seed), ds.y_train),
                val=(data.corrupt(ds.x_val, corruption, severity, seed=seed + 1), ds.y_val),
                test=(data.corrupt(ds.x_test, corruption, severity, seed=seed + 2), ds.y_test),
                label=f"{corruption}, severity {severity}", feature_quant=None)


def make_trainer(model, name: str, *, total_steps: int, seed: int = 0, task: str = "digits"):
    """The trainer of demo method ``name`` on ``model``: a ZOTrainer (layer-wise ZO of the last layers,
    float32 shadow update) or, for ``bp-qas-sgd``, a BPTrainer (last-k scheme, SGD + momentum + QAS,
    shadow). ``total_steps`` (int >= 1) sets the learning-rate schedule; ``task`` (:data:`TASKS`)
    chooses the learning rates."""
    opts = dict(_methods(task)[name])
    last = opts.pop("last")
    if opts.pop("bp", False):
        opt = QASOptimizer("sgd", opts["lr"], momentum=opts["momentum"], qas=True, mode="shadow",
                          total_steps=total_steps, seed=seed)
        return BPTrainer(model, scheme=SparseScheme.last_k(model, last), optimizer=opt, seed=seed)

    return ZOTrainer(model, ZOConfig(layers=model.trainable_ops()[-last:], update="shadow", seed=seed, **opts),
                     total_steps=total_steps)


def training_memory(model, name: str, *, as_run: bool = True, task: str = "digits") -> dict:
    """:func:`tinyzo.memory.trainer_memory_report` of demo method ``name``'s trainer (MCU, batch 1).

    ZO methods are planned as layer-wise ZO (the trainer reruns each query from the first trained layer
    on the cached activations) with the demo's float32 shadow copy; ``bp-qas-sgd`` as sparse BP with the
    last-k scheme, momentum and a shadow copy. ``as_run=False``: the same method with plain SGD and
    per-step rounding (no shadow, no momentum), the leanest way to run it on a device.
    """
    return trainer_memory_report(make_trainer(model, name, total_steps=1, task=task), lean=not as_run)


def run_demo(*, corruption: str = "motion_blur", severity: int = 5, methods=("zo-rge-node", "zo-rge-weight", "bp-qas-sgd"),
             epochs: int = 20, out_dir="tinyzo_demo", seed: int = 0, progress: bool = True,
             budget_kb: float | None = None, task: str = "digits", shift: str = "noise") -> list:
    """Run the demo; returns one result dict per method and writes plots to ``out_dir``.

    ``task``: "digits" (the digits model adapts to ``corruption`` at ``severity``) or "speech" (the
    keyword spotter adapts to ``shift``, one of :data:`tinyzo.audio.shifts.SHIFTS`).
    ``budget_kb``: an SRAM budget in KiB (> 0) or None; methods whose training peak exceeds it are not
    run (their row says so). Result dicts: ``method, before, after, clean, recovered, forward_passes,
    backward_passes, seconds, sram_bytes, fits`` (``after`` etc. are None for a skipped method).
    """
    import tinyzo
    from tinyzo.audio.shifts import SHIFTS

    if task not in TASKS:
        raise InputError(f"unknown demo task {task!r}; choose from {', '.join(TASKS)}")
    for m in methods:
        if m not in DEMO_METHODS:
            raise InputError(f"unknown demo method {m!r}; choose from {', '.join(DEMO_METHODS)}")
    if corruption not in data.corruptions():
        raise InputError(f"unknown corruption {corruption!r}; choose from {', '.join(data.corruptions())}")
    if not (isinstance(severity, int) and 1 <= severity <= 5):
        raise InputError(f"severity must be 1..5, got {severity!r}")
    if shift not in SHIFTS:
        raise InputError(f"unknown shift {shift!r}; choose from {', '.join(SHIFTS)}")
    if epochs < 1:
        raise InputError(f"epochs must be >= 1, got {epochs}")
    if budget_kb is not None and not (isinstance(budget_kb, (int, float)) and np.isfinite(budget_kb) and budget_kb > 0):
        raise InputError(f"the SRAM budget must be a positive number of KiB, got {budget_kb!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = reference_model_path(task)
    d = _task_data(task, corruption, severity, shift, seed)
    fq = d["feature_quant"]
    clean = evaluate(tinyzo.load(path), *d["clean"], feature_quant=fq)["accuracy"]
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = d["train"], d["val"], d["test"]
    print(f"{task} reference model ({path.name}): {clean * 100:.2f}% clean int8 test accuracy")
    if task == "speech":
        print(f"shift: {SHIFTS[shift][0]}; {len(y_train)} training clips, tested on {len(y_test)} clips of unseen voices")
    results = []
    for name in methods:
        model = tinyzo.load(path)
        before = evaluate(model, x_test, y_test, feature_quant=fq)["accuracy"]
        xq_tr = images_to_input(model, x_train, feature_quant=fq)
        xq_va = images_to_input(model, x_val, feature_quant=fq)
        batch = 32
        trainer = make_trainer(model, name, total_steps=epochs * -(-len(xq_tr) // batch), seed=seed, task=task)
        sram = trainer_memory_report(trainer)["peak_sram_bytes"]
        sram_lean = trainer_memory_report(trainer, lean=True)["peak_sram_bytes"]
        if budget_kb is not None and sram > budget_kb * 1024:
            print(f"\n{name}: needs {sram / 1024:.1f} KiB of SRAM to train, over the {budget_kb:g} KiB budget: skipped")
            results.append(dict(method=name, before=before, after=None, clean=clean, recovered=None,
                                forward_passes=0, backward_passes=0, seconds=0.0, sram_bytes=sram,
                                sram_lean_bytes=sram_lean, fits=False))
            continue
        last = _methods(task)[name]["last"]
        print(f"\n{name}: adapting the last {last} layers to {d['label']}, accuracy before {before * 100:.1f}%")
        t0 = time.perf_counter()
        hist = fit(trainer, model, xq_tr, y_train, xq_va, y_val, epochs=epochs, batch_size=batch, seed=seed,
                   progress=progress)
        seconds = time.perf_counter() - t0
        after = evaluate(model, x_test, y_test, feature_quant=fq)["accuracy"]
        write_history(out / name, hist, f"{name}: {d['label']}")
        model.save(out / name / "adapted.tflite")
        lost = clean - before
        results.append(dict(method=name, before=before, after=after, clean=clean,
                            recovered=(after - before) / lost if lost > 0 else float("nan"),
                            forward_passes=hist[-1]["forward_passes"],
                            backward_passes=int(getattr(trainer, "backward_passes", 0)), seconds=seconds,
                            sram_bytes=sram, sram_lean_bytes=sram_lean, fits=True))
    table = format_table(results, d["label"])
    print("\n" + table)
    (out / "summary.md").write_text(table + "\n")
    plot_summary(results, out / "summary.png", d["label"])
    print(f"\nplots and adapted models in {out}/ (summary.png, <method>/curves.png, <method>/adapted.tflite)")
    return results


def format_table(results: list, label: str) -> str:
    """The demo's result table (Markdown); ``label`` names the shift (e.g. "fog severity 5")."""
    lines = [f"| method ({label}) | before | after | lost accuracy recovered | "
             "forward passes | backward passes | time | training SRAM (MCU, batch 1) | same, lean |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def kib(v):
        return f"{v / 1024:.1f} KiB" if v is not None else "n/a"

    for r in results:
        mem = f"{kib(r.get('sram_bytes'))} | {kib(r.get('sram_lean_bytes'))}"
        if r.get("after") is None:
            lines.append(f"| {r['method']} | {r['before'] * 100:.1f}% | not run: over the SRAM budget | | | | | {mem} |")
            continue
        lines.append(f"| {r['method']} | {r['before'] * 100:.1f}% | {r['after'] * 100:.1f}% | "
                     f"{r['recovered'] * 100:.0f}% | {r['forward_passes']:,} | {r.get('backward_passes', 0):,} | "
                     f"{r['seconds']:.0f} s | {mem} |")
    lines.append("")
    lines.append("Training SRAM: peak of the MCU training schedule at batch 1 as the demo trains (activations kept, "
                 "gradients, SRAM copies of the trained parameters, their float32 shadow, momentum), `tinyzo memory` / "
                 "docs/memory.md; \"lean\": the same method with plain SGD and per-step rounding (no shadow, no "
                 "optimizer state). The budget (--budget-kb) is checked against the first.")
    return "\n".join(lines)


def plot_summary(results: list, path: Path, label: str) -> None:
    """Bar chart: clean, corrupted (before) and adapted (after) accuracy per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [r for r in results if r.get("after") is not None]
    if not results:
        return
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(results), 3.4))
    x = np.arange(len(results))
    ax.bar(x - 0.2, [100 * r["before"] for r in results], 0.4, label=f"{label}, before")
    ax.bar(x + 0.2, [100 * r["after"] for r in results], 0.4, label="after on-device training")
    ax.axhline(100 * results[0]["clean"], color="k", ls="--", lw=1, label="clean")
    ax.set_xticks(x, [r["method"] for r in results])
    ax.set_ylabel("int8 test accuracy (%)")
    ax.set_ylim(0, 130)
    ax.set_yticks(range(0, 101, 20))
    ax.legend(fontsize=8, loc="upper center", ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
