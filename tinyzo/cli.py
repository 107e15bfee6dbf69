"""The ``tinyzo`` command line: argparse front end, no logic of its own.

User errors (bad flags, bad files, bad inputs) print one line starting with
``tinyzo: error:`` to stderr and exit with status 2, with no traceback and
nothing written: output paths are checked before any work (:mod:`tinyzo.paths`).
Status 0 is success, 130 an interrupt (Ctrl-C); anything else is a bug.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from tinyzo.argtypes import NONNEG, POS1, Parser, finite_float
from tinyzo.errors import TinyzoError
from tinyzo.train_command import _parse_layers, _parse_method, add_train_arguments, train_run

DEFAULT_REPORT_METRICS = ("after", "recovered", "forward_passes", "seconds", "sram_lean_bytes")


def _parse_shape(text: str) -> tuple:
    from tinyzo.errors import InputError

    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise InputError(f"--input-shape must look like 32,32,1 (H,W,C), got {text!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"--input-shape must be three positive integers H,W,C, got {text!r}")
    return shape


def _zoo_model(spec: str, input_shape, classes: int):
    """An int8 model of a zoo architecture with random weights (for its shapes, MACs and sizes)."""
    import numpy as np

    from tinyzo import models
    from tinyzo.errors import InputError
    from tinyzo.fp.ptq import ptq
    from tinyzo.nn import init_params

    name = spec[len("zoo:"):]
    if name not in models.names():
        raise InputError(f"unknown zoo model {name!r}; zoo models: {', '.join(models.names())}")
    kwargs = {"num_classes": classes}
    if input_shape:
        kwargs["input_shape"] = input_shape
    net = models.build(name, **kwargs)
    params = init_params(net, seed=0)
    calib = np.random.default_rng(0).random((8,) + tuple(net.input_shape), dtype=np.float32)
    model = ptq(net, params, calib)
    model.name = f"{name} (random weights: shapes, MACs and sizes only)"
    return model


def _cmd_info(args) -> int:
    import tinyzo
    from tinyzo.errors import InputError
    from tinyzo.summary import format_info

    if args.ops:
        from tinyzo.ops.coverage import coverage_table

        print(coverage_table())
        if args.model is None:
            return 0
    elif args.model is None:
        raise InputError("give a model (or --ops for the supported operators and types)")

    if args.model.startswith("zoo:"):
        model = _zoo_model(args.model, _parse_shape(args.input_shape) if args.input_shape else None, args.classes)
    else:
        model = tinyzo.load(args.model)
    print(format_info(model))
    return 0


def _load_images(source: str, split: str, with_quant: bool = False):
    """``(x, y)`` of ``split``; with ``with_quant`` also the dataset's ``feature_quant`` (int8 features)."""
    from tinyzo import data
    from tinyzo.errors import InputError

    ds = data.load(source)
    if split not in ("train", "val", "test"):
        raise InputError(f"--split must be train, val or test, got {split!r}")
    x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
    if x is None or len(x) == 0:
        raise InputError(f"{source} has no {split} split")
    return (x, y, ds.feature_quant) if with_quant else (x, y)


def _parse_input_range(text: str) -> tuple:
    """``--input-range LO,HI`` -> (lo, hi): two finite numbers with lo < hi."""
    from tinyzo.errors import InputError

    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--input-range must be two numbers LO,HI like 0,1, got {text!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise InputError(f"--input-range LO,HI needs finite numbers with LO < HI, got {text!r}")
    return lo, hi


def _cmd_eval(args) -> int:
    import json

    import tinyzo
    from tinyzo import data
    from tinyzo.errors import InputError
    from tinyzo.evaluate import evaluate

    lo, hi = _parse_input_range(args.input_range)
    if (args.corruption is None) != (args.severity is None):
        raise InputError("--corruption and --severity go together")
    model = tinyzo.load(args.model)
    x, y, fq = _load_images(args.data, args.split, with_quant=True)
    if args.corruption is not None:
        x = data.corrupt(x, args.corruption, args.severity, seed=args.seed)
    res = evaluate(model, x, y, input_range=(lo, hi), feature_quant=fq, allow_quant_mismatch=args.allow_quant_mismatch)
    res.update(model=args.model, data=args.data, split=args.split, corruption=args.corruption,
               severity=args.severity)
    if args.json:
        print(json.dumps(res))
    else:
        what = f"{args.corruption} severity {args.severity}" if args.corruption else "clean"
        print(f"{args.model} on {args.data} [{args.split}, {what}]: accuracy {res['accuracy'] * 100:.2f}% "
              f"({res['correct']}/{res['n']}), loss {res['loss']:.4f}")
    return 0


def _cmd_data_speech(args) -> int:
    """``tinyzo data speech --out DIR``: synthesize the keyword dataset (tinyzo.audio.synth, docs/audio.md)."""
    from pathlib import Path

    from tinyzo.audio import synth
    from tinyzo.data import save
    from tinyzo.errors import InputError
    from tinyzo.paths import check_output_dir

    if args.corruption is not None or args.severity is not None:
        raise InputError("tinyzo data speech synthesizes clean keyword clips: --corruption/--severity do not apply")
    synth.espeak_path()  # the one-line install hint, before anything is written
    out = check_output_dir(args.out, "--out")
    try:
        lo, hi = (float(v) for v in args.snr_db.split(","))
    except ValueError:
        raise InputError(f"--snr-db must be two numbers LO,HI like 5,30, got {args.snr_db!r}") from None
    accents = synth.ACCENTS if args.voices is None else tuple(v.strip() for v in args.voices.split(","))
    if args.shift is not None:
        from tinyzo.audio import shifts

        given = [f for f, v in (("--snr-db", args.snr_db != "5,30"), ("--voices", args.voices), ("--mic", args.mic),
                                ("--seed", args.seed != 0)) if v]
        if given:
            raise InputError(f"--shift {args.shift} sets {', '.join(given)} itself (tinyzo.audio.shifts.SHIFTS)")
        ds, clips = shifts.build_shift_dataset(args.shift, per_class=args.per_class, keep_audio=args.keep_audio,
                                               progress=not args.no_progress)
        filename = f"speech-{args.shift}.npz"
    else:
        ds, clips = synth.build_speech_dataset(per_class=args.per_class, seed=args.seed, snr_db=(lo, hi),
                                               accents=accents, keep_audio=args.keep_audio,
                                               progress=not args.no_progress, mic=args.mic)
        filename = "speech.npz"
    out.mkdir(parents=True, exist_ok=True)
    path = save(ds, Path(out) / filename)
    if clips is not None:
        for split, arr in clips.items():
            folder = Path(out) / "audio" / split
            folder.mkdir(parents=True, exist_ok=True)
            labels = ds.split(split)[1]
            for i, (clip, label) in enumerate(zip(arr, labels)):
                tmp = folder / f"{i:05d}_{ds.classes[label]}.wav.tmp"
                synth.write_wav(tmp, clip)
                tmp.replace(tmp.with_suffix(""))
    sizes = "/".join(str(len(ds.split(s)[1])) for s in ("train", "val", "test"))
    print(f"wrote {path}: {sizes} train/val/test clips, int8[49, 40] features, {ds.n_classes} classes "
          f"({', '.join(ds.classes)}), {path.stat().st_size:,} bytes" + (f"; WAVs in {Path(out) / 'audio'}"
                                                                        if clips is not None else ""))
    return 0


def _cmd_data(args) -> int:
    from tinyzo import data
    from tinyzo.errors import InputError
    from tinyzo.paths import check_output_file

    if args.source == "speech":
        return _cmd_data_speech(args)
    given = [f for f, v in (("--per-class", args.per_class != 100), ("--snr-db", args.snr_db != "5,30"),
                            ("--voices", args.voices), ("--keep-audio", args.keep_audio), ("--mic", args.mic),
                            ("--shift", args.shift)) if v]
    if given:
        raise InputError(f"{', '.join(given)}: only for `tinyzo data speech` (the synthesized keyword dataset)")
    if (args.corruption is None) != (args.severity is None):
        raise InputError("--corruption and --severity go together")
    check_output_file(args.out, "--out", (".npz",))
    summary = data.write_dataset(args.source, args.out, corruption=args.corruption, severity=args.severity,
                                 seed=args.seed, split=args.split)
    print(f"wrote {args.out}: {summary}")
    return 0


def _load_input(path: str):
    from tinyzo.errors import InputError

    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"input file not found: {path}") from None
    except (ValueError, OSError) as e:
        raise InputError(f"cannot read {path} as a .npy array ({e}); save the input with numpy.save") from None
    if not isinstance(x, np.ndarray):
        raise InputError(f"{path} holds several arrays; give one .npy array")
    return x


def _wav_features(args, want) -> tuple:
    """``--input x.wav``: the front end's int8 features of the clip, shaped as the model's input."""
    from tinyzo import audio
    from tinyzo.errors import InputError

    samples, rate = audio.read_wav(args.input)
    if rate != audio.SAMPLE_RATE:
        raise InputError(f"{args.input}: {rate} Hz; the front end takes {audio.SAMPLE_RATE} Hz audio "
                         f"(resample first, e.g. sox in.wav -r {audio.SAMPLE_RATE} out.wav)")
    feats = audio.features(samples, model=args.frontend)
    size = int(np.prod(want[1:]))
    if feats.size != size:
        raise InputError(f"{args.input}: {samples.size} samples give {feats.shape[0]} frames x {feats.shape[1]} "
                         f"features = {feats.size} values, the model's input takes {size} ({list(want)}); a one-second "
                         "clip (16,000 samples) gives 49 x 40")
    front = args.frontend or "the shipped audio_preprocessor_int8.tflite"
    return (feats.reshape((1,) + tuple(want[1:])),
            f"{samples.size} samples -> {feats.shape[0]} x {feats.shape[1]} int8 features by {front}")


def _cmd_run(args) -> int:
    import tinyzo
    from tinyzo.errors import InputError
    from tinyzo.paths import check_output_file

    if args.output:
        check_output_file(args.output, "--output")
    model = tinyzo.load(args.model)
    if len(model.inputs) != 1:
        raise InputError(f"the model has {len(model.inputs)} inputs; `tinyzo run` takes models with one input")
    t_in = model.tensors[model.inputs[0]]
    want = t_in.shape
    is_wav = str(args.input).lower().endswith(".wav")
    if args.frontend and not is_wav:
        raise InputError("--frontend applies to a .wav --input only")
    x, note = _wav_features(args, want) if is_wav else (_load_input(args.input), "")
    if is_wav:
        pass  # the front end's int8 features, shaped as the model's input
    elif x.dtype.kind == "f" and t_in.dtype == np.float32:
        x = x.astype(np.float32)
        note = "float input passed to the model's own QUANTIZE operator"
    elif x.dtype.kind == "f":
        x = model.quantize_input(x)
        note = "float input quantized with the model's input scale and zero point"
    elif x.dtype == np.int8 and t_in.dtype == np.int8:
        note = "int8 input used as is"
    else:
        raise InputError(f"input must be {'float' if t_in.dtype == np.float32 else 'int8 (used as is) or float (quantized)'}, "
                         f"got {x.dtype}")
    if x.ndim == len(want) - 1 and tuple(x.shape) == tuple(want[1:]):
        x = x[None]  # a single sample without batch dimension
    y = model(x)
    outs = y if isinstance(y, tuple) else (y,)
    if args.output:
        try:
            np.save(args.output, outs[0]) if len(outs) == 1 else np.savez(args.output, *outs)
        except OSError as e:
            raise InputError(f"cannot write --output {args.output}: {e.strerror or e}") from None
    print(f"# {note}; batch {x.shape[0]}", file=sys.stderr)
    for k, o in enumerate(outs):
        with np.printoptions(threshold=50, linewidth=120):
            print(f"output {k} {o.dtype}{list(o.shape)}:")
            print(o)
    return 0


def _cmd_train(args) -> int:
    train_run(args)
    return 0


def _cmd_demo(args) -> int:
    from tinyzo.demo import run_demo
    from tinyzo.paths import check_output_dir

    from tinyzo.errors import InputError

    check_output_dir(args.out_dir, "--out-dir")
    methods = args.methods.split(",")
    if args.task == "speech" and (args.corruption is not None or args.severity is not None):
        raise InputError("--corruption/--severity are for --task digits; the speech task adapts to --shift")
    if args.task != "speech" and args.shift is not None:
        raise InputError("--shift is for --task speech (accent, noise or mic)")
    run_demo(corruption=args.corruption or "motion_blur", severity=5 if args.severity is None else args.severity,
             methods=methods, epochs=1 if args.quick else args.epochs, out_dir=args.out_dir, seed=args.seed,
             progress=not args.no_progress, budget_kb=args.budget_kb, task=args.task, shift=args.shift or "noise")
    return 0


def _cmd_memory(args) -> int:
    import json

    import tinyzo
    from tinyzo.errors import InputError
    from tinyzo.memory import memory_report, plot_timeline

    if args.plot:
        from tinyzo.paths import check_output_file, plot_suffixes

        check_output_file(args.plot, "--plot", plot_suffixes())
    if args.model.startswith("zoo:"):
        model = _zoo_model(args.model, _parse_shape(args.input_shape) if args.input_shape else None, args.classes)
    else:
        model = tinyzo.load(args.model)
    scheme = None
    if args.scheme:
        from tinyzo.bp import SparseScheme

        scheme = SparseScheme.load(args.scheme)
    if args.budget_kb is not None and not (np.isfinite(args.budget_kb) and args.budget_kb > 0):
        raise InputError(f"--budget-kb must be a positive number of kB (1 kB = 1024 bytes), got {args.budget_kb:g}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    budget = int(args.budget_kb * 1024) if args.budget_kb is not None else None
    rep = memory_report(model, args.method, scheme=scheme, layers=_parse_layers(args.layers, model),
                        batch=args.batch_size, optimizer=args.optimizer, reorder=not args.no_reorder,
                        in_place=not args.no_inplace, budget_bytes=budget)
    if args.plot:
        plot_timeline(rep, args.plot)
    if args.json:
        print(json.dumps(rep))
    else:
        extra = "" if args.method == "inference" else (
            f"; {rep['trained_params']:,} trained parameters, optimizer {args.optimizer}, batch {args.batch_size}")
        print(f"{args.model}: {args.method}, peak SRAM {rep['peak_sram_bytes']:,} bytes "
              f"(without in-place {rep['peak_without_inplace_bytes']:,}), Flash {rep['flash_bytes']:,} bytes{extra}")
        if rep["peak_with_reorder_bytes"] != rep["peak_without_reorder_bytes"]:
            print(f"  operator reordering: peak {rep['peak_with_reorder_bytes']:,} bytes with, "
                  f"{rep['peak_without_reorder_bytes']:,} without (this run: {'with' if not args.no_reorder else 'without'})")
        for k, v in rep["breakdown"].items():
            print(f"  {k}: {v:,} bytes")
        if rep.get("state_bytes"):
            print(f"  persistent state (kept between inferences, outside the planned arena): "
                  f"{rep['state_bytes']:,} bytes")
        if budget is not None:
            verdict = "fits" if rep["fits"] else "does NOT fit"
            print(f"budget {args.budget_kb:g} kB ({budget:,} bytes): {verdict}, margin {rep['margin_bytes']:+,} bytes")
    return 0


# ---------------------------------------------------------------------------------------- contrib
def _contrib_planner_optimizer(args) -> str:
    """The memory planner's optimizer name for ``tinyzo contrib``'s optimizer flags."""
    from tinyzo.memory import optimizer_name

    return optimizer_name(args.optimizer, args.momentum, args.update)


def _cmd_contrib(args) -> int:
    """``tinyzo contrib``: contribution analysis, then the best sparse scheme under --budget-kb."""
    from pathlib import Path

    import tinyzo
    from tinyzo import data
    from tinyzo.bp.budget import largest_last_k, scheme_memory_fn
    from tinyzo.bp.contrib import contribution_analysis, parse_ratios
    from tinyzo.bp.search import best_scheme
    from tinyzo.errors import InputError
    from tinyzo.evaluate import images_to_input
    from tinyzo.paths import check_output_file, plot_suffixes
    from tinyzo.training.scheme import SparseScheme
    from tinyzo.training.update import QASOptimizer

    if args.budget_kb is None or not args.budget_kb >= 0:
        raise InputError(f"--budget-kb must be a number >= 0, got {args.budget_kb}")
    if (args.corruption is None) != (args.severity is None):
        raise InputError("--corruption and --severity go together")
    if args.steps is not None and args.epochs is not None:
        raise InputError("give --steps or --epochs, not both")
    out = check_output_file(args.out, "--out")
    contrib_path = check_output_file(args.contrib_out or out.with_name(out.stem + ".contributions.json"),
                                     "--contrib-out")
    plot_path = check_output_file(args.plot or out.with_name(out.stem + ".png"), "--plot", plot_suffixes())
    model = tinyzo.load(args.model)
    ds = data.load(args.data)
    splits = {}
    for k, s in enumerate(("train", "val")):
        x, y = ds.split(s)
        if len(x) == 0:
            raise InputError(f"{args.data} has no {s} split; contribution analysis trains on train and measures on val "
                             "(the bundled digits and `tinyzo data digits --out D.npz` have both)")
        if args.corruption is not None:
            x = data.corrupt(x, args.corruption, args.severity, seed=args.seed + k)
        splits[s] = (images_to_input(model, x, feature_quant=ds.feature_quant), y)
    try:
        layers = None if args.layers is None else [int(v) for v in args.layers.split(",")]
        k_values = None if args.k_values is None else [int(v) for v in args.k_values.split(",")]
    except ValueError:
        raise InputError("--layers and --k-values are comma-separated integers, e.g. 0,4,8 and 2,4,6") from None
    opt = {"kind": args.optimizer, "momentum": args.momentum, "mode": args.update, "rounding": args.rounding}
    state = QASOptimizer(lr=args.lr, **opt).state_bytes_per_param
    mem = scheme_memory_fn(model, args.memory, opt)
    memory_fn = None if args.memory == "count" else mem
    mem_label = (f"simple per-layer count, batch 1, {state} optimizer bytes/parameter" if args.memory == "count"
                 else f"memory planner peak, batch 1, optimizer {_contrib_planner_optimizer(args)}")
    method = args.search or ("dp" if memory_fn is None else "evolution")
    if method == "dp" and memory_fn is not None:
        raise InputError("--search dp is exact only for --memory count; use --search evolution with the planner")
    budget = int(args.budget_kb * 1024)
    smallest = mem(SparseScheme(bias_last_k=0, classifier=True))
    if smallest > budget:   # checked before the (long) analysis
        raise InputError(f"no scheme fits {budget:,} bytes: the smallest (classifier only) needs {smallest:,} bytes")
    contrib = contribution_analysis(model, splits["train"], splits["val"], ratios=parse_ratios(args.ratios),
                                    k_values=k_values, layers=layers, steps=args.steps, epochs=args.epochs,
                                    batch_size=args.batch_size, lr=args.lr, optimizer=opt,
                                    channel_select=args.channel_select, seed=args.seed,
                                    progress=not args.no_progress, checkpoint=contrib_path, resume=args.resume)
    scheme, info = best_scheme(model, contrib, budget, memory_fn=memory_fn, method=method, seed=args.seed)
    scheme.save(out)
    title = Path(args.model).name + (f" ({args.corruption} {args.severity})" if args.corruption else "")
    contrib.plot(plot_path, title=title)
    try:
        last = largest_last_k(model, budget, mem)
    except InputError:
        last = None
    print(f"validation accuracy: {contrib.start_accuracy * 100:.1f}% before training, "
          f"{contrib.base_accuracy * 100:.1f}% after classifier-only training ({contrib.config['steps']} steps)")
    print(f"best scheme ({method}, {mem_label}): {scheme.label}")
    print(f"  memory {info['memory_bytes']:,} of {budget:,} bytes; score {info['gain'] * 100:+.1f} points (the sum of "
          "the measured gains: a ranking, not an accuracy; see docs/contrib.md)")
    if args.memory == "count":  # the count leaves out the forward activations: say what the device needs
        from tinyzo.memory import scheme_peak_bytes

        peak = scheme_peak_bytes(model, scheme, optimizer=_contrib_planner_optimizer(args))
        print(f"  device peak SRAM of this scheme (memory planner: forward activations included, batch 1): "
              f"{peak:,} bytes; --memory planner searches under that instead")
    if last is not None:
        print(f"  largest 'last k layers' scheme in the budget: {last.label} ({mem(last):,} bytes)")
    else:
        print("  no 'last k layers' scheme fits the budget")
    data_args = f"--data {args.data}" + (f" --corruption {args.corruption} --severity {args.severity}"
                                         if args.corruption else "")
    print(f"wrote {out} (use: tinyzo train {args.model} {data_args} --method bp --scheme {out}), {contrib_path}, "
          f"{plot_path}")
    return 0


# ---- vectors (golden vectors for firmware ports; tinyzo/golden, docs/golden_vectors.md) ----
def _vectors_inputs(source: str, split: str, model):
    """``(int8 inputs, labels or None)`` for ``tinyzo vectors``: an .npz with an int8 ``x`` (+ ``y``), or a dataset."""
    from tinyzo.errors import InputError
    from tinyzo.evaluate import images_to_input

    if source.endswith(".npz"):
        try:
            with np.load(source, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files} if "x" in z.files and z["x"].dtype == np.int8 else None
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read {source}: {e}") from None
        if raw is not None:
            want = model.tensors[model.inputs[0]].shape[1:]
            x = raw["x"]
            if tuple(x.shape[1:]) != tuple(want):
                raise InputError(f"{source}: x has shape {x.shape}, the model takes (N, {', '.join(map(str, want))})")
            return x, raw.get("y")
    x, y, fq = _load_images(source, split, with_quant=True)
    return images_to_input(model, x, feature_quant=fq), y


def _cmd_vectors(args) -> int:
    import tinyzo
    from tinyzo.errors import InputError
    from tinyzo.golden import make_vectors, write_vectors
    from tinyzo.paths import check_output_dir
    from tinyzo.zo.trainer import ZOConfig

    check_output_dir(args.out, "--out")
    model = tinyzo.load(args.model)
    x, y = _vectors_inputs(args.data, args.split, model)
    if len(x) < max(args.samples, args.batch if args.steps else 1):
        raise InputError(f"{args.data} has {len(x)} samples; --samples {args.samples} / --batch {args.batch} need more")
    cfg = None
    if args.steps:
        if y is None:
            raise InputError(f"{args.data} has no labels (y): training vectors need them")
        method = _parse_method(args.method)
        if method.family != "zo":
            raise InputError(f"training vectors are for the zo methods (zo-<rge|spsa|signspsa>-<weight|node|mixed>), "
                             f"got {args.method!r}")
        cfg = ZOConfig(layers=_parse_layers(args.layers, model), target=method.target, estimator=method.estimator,
                       queries=args.queries,
                       direction=args.direction, sigma=args.sigma, sigma_bias=args.sigma_bias,
                       sigma_node=args.sigma_node, lr=args.lr, schedule=args.schedule, rounding=args.rounding,
                       seed=args.seed)
    command = (f"tinyzo vectors {args.model} --data {args.data} --split {args.split} --method {args.method} "
               f"--steps {args.steps} --samples {args.samples} --batch {args.batch} --seed {args.seed} "
               f"--layers {args.layers or 'all'} --lr {args.lr!r} --schedule {args.schedule} --queries {args.queries} "
               f"--direction {args.direction} --sigma {args.sigma} --sigma-bias {args.sigma_bias} "
               f"--sigma-node {args.sigma_node} --rounding {args.rounding} --out {args.out}")
    if args.layers is None:
        command = command.replace(" --layers all", "")
    vec = make_vectors(model, x[:args.samples], x[:args.batch], None if y is None else np.asarray(y)[:args.batch],
                       cfg, steps=args.steps)
    paths = write_vectors(vec, args.out, command=command)
    total = sum(p.stat().st_size for p in paths)
    print(f"wrote {', '.join(p.name for p in paths)} to {args.out} ({total:,} bytes): {args.samples} inference "
          f"sample(s), {args.steps} training step(s)")
    return 0


def _cmd_sweep_run(args) -> int:
    from tinyzo.sweep import load_spec, run_sweep

    sweep = load_spec(args.spec)
    db = Path(args.db) if args.db else Path(f"{sweep.name}.sqlite")
    if args.dry_run:
        for run in sweep.runs:
            print(f"{run.key[:12]}  {run.command}")
        print(f"{len(sweep.runs)} runs; results would go to {db}")
        return 0
    res = run_sweep(sweep, db, scheduler=args.scheduler, workers=args.workers, shared_fs=args.shared_fs,
                    backend=args.backend, progress=not args.no_progress, retries=args.retries)
    print(f"sweep {sweep.name}: {res['runs']} runs, {res['skipped']} done before, {res['done']} done now, "
          f"{res['failed']} failed ({res['backend']}, {res['workers']} workers, {res['seconds']:.1f} s); results in {db}")
    return 1 if res["failed"] else 0


def _cmd_sweep_report(args) -> int:
    from tinyzo.sweep import ResultsDB, aggregate, plot_curves, plot_pareto, plot_vs_param, to_csv, to_markdown
    from tinyzo.sweep.report import ReportError

    group_by = [g for g in args.group_by.split(",") if g.strip()]
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    with ResultsDB(args.db, create=False) as db:
        rows = db.rows(sweep=args.sweep)
        failed = db.rows(status="failed", sweep=args.sweep)
    if args.where:
        from tinyzo.sweep.report import select_rows

        rows = select_rows(rows, args.where)
        if not rows:
            raise ReportError(f"no finished run matches --where {' '.join(args.where)}")
    if not rows:
        raise ReportError(f"{args.db} has no finished runs" + (f" of sweep {args.sweep!r}" if args.sweep else ""))
    table = aggregate(rows, group_by, metrics)
    md = to_markdown(table, group_by, metrics)
    print(md, end="")
    if failed:
        print(f"\n{len(failed)} failed run(s) not included; first error: {failed[0]['error']}")
    if args.md:
        Path(args.md).write_text(md)
    if args.update_md:
        from tinyzo.sweep.report import update_markdown

        seeds = sorted({r["seed"] for r in rows})
        where = "".join(f" --where {w}" for w in args.where or [])
        header = (f"Command: `tinyzo sweep report {Path(args.db).name} --group-by {args.group_by} --metrics {args.metrics}"
                  f"{where}` "
                  f"over {len(rows)} runs (seeds {', '.join(map(str, seeds))}); mean ± std (sample std over the runs "
                  "of each row), n = runs.\n\n")
        update_markdown(args.update_md, md, header)
    if args.csv:
        Path(args.csv).write_text(to_csv(table))
    if args.plots:
        out = Path(args.plots)
        if not out.is_dir():
            raise ReportError(f"--plots: the folder {out} does not exist")
        by = group_by[0] if group_by else "method"
        written = [plot_curves(rows, out / "curves.png", by=by)]
        if any((r["history"] or [{}])[-1].get("forward_passes") for r in rows):
            written.append(plot_curves(rows, out / "curves_forward_passes.png", by=by, x="forward_passes"))
        if any(r.get("recovered") is not None for r in rows):
            written.append(plot_pareto(rows, out / "pareto.png", by=group_by or "method"))
        if args.x:
            written.append(plot_vs_param(rows, args.x, out / f"vs_{args.x}.png", metric=metrics[0],
                                         by=group_by[0] if group_by else "method"))
        print("plots: " + ", ".join(str(p) for p in written))
    return 0


def _add_corruption_arguments(s, corruption_help: str) -> None:
    """``--corruption``, ``--severity`` and ``--seed`` (the corruption's seed) of ``tinyzo eval`` / ``data``."""
    s.add_argument("--corruption", help=corruption_help)
    s.add_argument("--severity", type=int, help="corruption severity 1..5")
    s.add_argument("--seed", type=int, default=0, help="corruption seed (default 0)")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``tinyzo`` command."""
    import tinyzo

    p = Parser(prog="tinyzo", description="Run and train int8 networks exactly as a microcontroller does.")
    p.add_argument("--version", action="version", version=f"tinyzo {tinyzo.__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("demo", help="adapt the digits reference model to corrupted data on the device (the main job); "
                       "--task speech: the keyword spotter to a new accent, noise or microphone")
    s.add_argument("--task", choices=("digits", "speech"), default="digits",
                   help="digits: image corruptions (default); speech: keyword spotting under a domain shift")
    s.add_argument("--corruption", default=None, help="digits: corruption name (default motion_blur)")
    s.add_argument("--severity", type=int, default=None, help="digits: 1..5 (default 5)")
    s.add_argument("--shift", default=None, help="speech: accent, noise or mic (default noise; tinyzo.audio.shifts)")
    s.add_argument("--methods", default="zo-rge-node,zo-rge-weight,bp-qas-sgd",
                   help="comma-separated: zo-rge-node, zo-rge-mixed, zo-spsa-node, zo-rge-weight, bp-qas-sgd")
    s.add_argument("--epochs", type=POS1, default=20)
    s.add_argument("--quick", action="store_true", help="one epoch (a smoke test)")
    s.add_argument("--budget-kb", type=finite_float, default=None,
                   help="SRAM budget in KiB: methods whose training peak (MCU, batch 1) exceeds it are skipped")
    s.add_argument("--out-dir", default="tinyzo_demo", help="plots and adapted models (default ./tinyzo_demo)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=_cmd_demo)

    s = sub.add_parser("info", help="print the operator table and totals of a model (--ops: what tinyzo supports)")
    s.add_argument("model", nargs="?", help=".tflite or tinyzo .npz model, or zoo:NAME for a zoo architecture")
    s.add_argument("--ops", action="store_true", help="list the supported operators and types (and what is refused)")
    s.add_argument("--input-shape", help="zoo models: input H,W,C (default: the architecture's)")
    s.add_argument("--classes", type=POS1, default=10, help="zoo models: number of classes (default 10)")
    s.set_defaults(func=_cmd_info)

    s = sub.add_parser("eval", help="accuracy and loss of an int8 model on a labelled image set")
    s.add_argument("model", help=".tflite or tinyzo .npz model")
    s.add_argument("--data", required=True, help="dataset: 'digits', 'speech', 'speech-accent/-noise/-mic' (bundled) or a file/folder tinyzo.data.load reads")
    s.add_argument("--split", default="test", help="train, val or test (default test)")
    _add_corruption_arguments(s, "corrupt the images first (see tinyzo.data.corruptions())")
    s.add_argument("--input-range", default="0,1", help="float range pixels [0, 255] map to before quantization")
    s.add_argument("--allow-quant-mismatch", action="store_true",
                   help="int8 feature data: accept features whose declared quantization differs from the model "
                   "input's (docs/data.md)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=_cmd_eval)

    s = sub.add_parser("data", help="write a dataset (optionally corrupted) in the tinyzo dataset format; "
                       "'speech': synthesize the keyword dataset with espeak-ng")
    s.add_argument("source", help="'digits' or a dataset file/folder; 'speech' synthesizes the keyword-spotting "
                   "dataset (needs espeak-ng; docs/audio.md)")
    s.add_argument("--out", required=True, help="output .npz; for speech an output folder (speech.npz, audio/)")
    _add_corruption_arguments(s, "corruption name")
    s.add_argument("--split", default="test", help="which split to corrupt: train, val, test or all (default test)")
    s.add_argument("--per-class", type=POS1, default=100,
                   help="speech: training clips per class (val and test: a quarter each) (default 100)")
    s.add_argument("--snr-db", default="5,30", help="speech: SNR range LO,HI in dB of the words over the noise "
                   "(default 5,30)")
    s.add_argument("--voices", help="speech: comma-separated espeak-ng accents (default all of "
                   "tinyzo.audio.synth.ACCENTS; FOREIGN_ACCENTS may be named too)")
    s.add_argument("--keep-audio", action="store_true", help="speech: also write the clips as WAV files")
    s.add_argument("--mic", choices=("muffled", "telephone"), default=None,
                   help="speech: filter every clip with this microphone response (tinyzo.audio.synth.MICROPHONES)")
    s.add_argument("--shift", choices=("accent", "noise", "mic"), default=None,
                   help="speech: synthesize the adaptation set of this domain shift (tinyzo.audio.shifts; writes "
                   "speech-<shift>.npz; --per-class 50 gives the shipped sizes)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_data)

    s = sub.add_parser("train", help="train an int8 model on the device's data (zeroth-order methods)")
    add_train_arguments(s)
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("sweep", help="run a grid of training runs (Dask or processes) and report mean +- std")
    ssub = s.add_subparsers(dest="sweep_command", required=True, metavar="{run,report}")
    r = ssub.add_parser("run", help="run every run of a TOML spec not yet in the results database")
    r.add_argument("spec", help="the sweep spec (TOML, see docs/sweep.md)")
    r.add_argument("--db", help="SQLite results database (default ./<sweep name>.sqlite)")
    r.add_argument("--scheduler", help="tcp://HOST:PORT of a running Dask scheduler (default: a local cluster)")
    r.add_argument("--workers", type=POS1, help="local worker processes (default: one per core)")
    r.add_argument("--backend", default="auto", choices=["auto", "dask", "process"],
                   help="auto: Dask if installed, else a process pool (default auto)")
    r.add_argument("--shared-fs", action="store_true",
                   help="with --scheduler: workers read the files at these paths instead of receiving them")
    r.add_argument("--retries", type=NONNEG, default=1, help="retries of a failed run in this invocation (default 1)")
    r.add_argument("--dry-run", action="store_true", help="list the runs and their commands, run nothing")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_sweep_run)
    r = ssub.add_parser("report", help="tables (mean +- std over runs) and plots from a results database")
    r.add_argument("db", help="the SQLite results database")
    r.add_argument("--group-by", default="method", help="comma-separated keys: method, seed or train options "
                   "(default method)")
    r.add_argument("--metrics", default=",".join(DEFAULT_REPORT_METRICS),
                   help=f"comma-separated metrics (default {','.join(DEFAULT_REPORT_METRICS)})")
    r.add_argument("--sweep", help="only the runs of this sweep name")
    r.add_argument("--md", help="also write the Markdown table here")
    r.add_argument("--csv", help="also write the table as CSV here")
    r.add_argument("--update-md", help="replace the table between <!-- sweep-table:begin/end --> marks in this page")
    r.add_argument("--plots", help="write curves.png, pareto.png (and vs_<x>.png with --x) into this folder")
    r.add_argument("--x", help="a train option to plot the first metric against (e.g. lr)")
    r.add_argument("--where", action="append", metavar="KEY=V1[,V2...]",
                   help="only the runs whose KEY (method, seed or a train option) is one of the values; repeat to "
                   "combine (e.g. --where lr=1.25e-4,1e-3)")
    r.set_defaults(func=_cmd_sweep_report)

    s = sub.add_parser("contrib", help="contribution analysis: the best sparse BP scheme under a memory budget")
    s.add_argument("model", help=".tflite or tinyzo .npz int8 model")
    s.add_argument("--data", required=True, help="'digits' or a tinyzo .npz dataset with train and val splits")
    s.add_argument("--budget-kb", type=finite_float, required=True, help="training-memory budget (kB = 1024 bytes)")
    s.add_argument("--out", default="scheme.json", help="the chosen SparseScheme JSON (default scheme.json)")
    s.add_argument("--contrib-out", help="contributions JSON, also the resume checkpoint (default <out>.contributions.json)")
    s.add_argument("--plot", help="gains PNG (default <out>.png)")
    s.add_argument("--search", choices=["dp", "evolution"], help="dp (exact, default with --memory count) or evolution")
    s.add_argument("--memory", choices=["count", "planner"], default="count",
                   help="count: the per-layer count of docs/training_bp.md (default); planner: the memory planner")
    s.add_argument("--ratios", default="1/8,1/4,1/2,1", help="channel ratios per layer (default 1/8,1/4,1/2,1)")
    s.add_argument("--k-values", help="bias-only depths to measure (default 2..number of trainable layers)")
    s.add_argument("--layers", help="weight candidates, operator indices (default: every layer but the classifier)")
    s.add_argument("--steps", type=POS1, help="steps per measurement")
    s.add_argument("--epochs", type=POS1, help="epochs per measurement (default 1 unless --steps)")
    s.add_argument("--batch-size", type=POS1, default=32)
    s.add_argument("--lr", type=finite_float, default=3e-3, help="learning rate (QAS: real units; default 3e-3)")
    s.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    s.add_argument("--momentum", type=float, default=0.0, help="sgd momentum (default 0: no optimizer memory)")
    s.add_argument("--update", default="per_step", help="per_step (default) or shadow (float copy)")
    s.add_argument("--rounding", default="stochastic", help="stochastic (default) or nearest")
    s.add_argument("--channel-select", default="magnitude", choices=["magnitude", "random"])
    s.add_argument("--corruption", help="corrupt the train and val splits (seeds seed, seed + 1)")
    s.add_argument("--severity", type=int, help="corruption severity 1..5")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--resume", action="store_true", help="reuse the measurements in --contrib-out")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_contrib)

    s = sub.add_parser("memory", help="peak SRAM and Flash of inference or one training step (arena planning)")
    s.add_argument("model", help=".tflite or tinyzo .npz model, or zoo:NAME for a zoo architecture")
    s.add_argument("--method", default="inference",
                   help="inference, bp, zo-<weight|node|mixed> or zo-<rge|spsa|signspsa>-<weight|node|mixed>, "
                        "zo names optionally + -layerwise (default inference)")
    s.add_argument("--scheme", help="bp: sparse-update scheme JSON (see docs/training_bp.md)")
    s.add_argument("--layers", help="trained operator indices (e.g. 9,11) or last<K>, as tinyzo train")
    s.add_argument("--optimizer", default="sgd",
                   help="sgd, momentum or adam, optionally +shadow (float32 shadow copy); default sgd")
    s.add_argument("--batch-size", type=POS1, default=1, help="samples per training step (default 1)")
    s.add_argument("--no-reorder", action="store_true",
                   help="keep every parameter gradient until a final update phase (no in-place update)")
    s.add_argument("--input-shape", help="zoo models: input H,W,C (default: the architecture's)")
    s.add_argument("--classes", type=POS1, default=10, help="zoo models: number of classes (default 10)")
    s.add_argument("--no-inplace", action="store_true", help="TFLM's greedy planner only, no in-place operators")
    s.add_argument("--budget-kb", type=finite_float, help="say whether the peak fits this SRAM budget (kB = 1024 bytes)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--plot", help="write the memory timeline PNG here")
    s.set_defaults(func=_cmd_memory)

    # ---- vectors ----
    s = sub.add_parser("vectors", help="golden vectors (C headers + .npz) for verifying a firmware port")
    s.add_argument("model", help=".tflite or tinyzo .npz int8 model")
    s.add_argument("--data", required=True,
                   help="'digits', a dataset file/folder, or an .npz with int8 model inputs 'x' (and labels 'y')")
    s.add_argument("--split", default="train", help="dataset split to take samples from (default train)")
    s.add_argument("--method", default="zo-rge-weight", help="zo-<rge|spsa|signspsa>-<weight|node> (default zo-rge-weight)")
    s.add_argument("--steps", type=NONNEG, default=1, help="training steps to record (0: inference only; default 1)")
    s.add_argument("--samples", type=POS1, default=2, help="inference samples (default 2)")
    s.add_argument("--batch", type=POS1, default=4, help="training batch, the first B samples (default 4)")
    s.add_argument("--layers", help="trained operator indices (e.g. 9,11) or last<K> (default: all trainable)")
    s.add_argument("--lr", type=finite_float, default=1e-4, help="learning rate (default 1e-4)")
    s.add_argument("--schedule", default="constant", help="constant, cosine or linear")
    s.add_argument("--queries", type=int, default=1, help="directions per step")
    s.add_argument("--direction", default="rademacher", help="rademacher, gaussian or uniform")
    s.add_argument("--sigma", type=int, default=1, help="weight perturbation in int8 LSB")
    s.add_argument("--sigma-bias", type=int, default=0, help="bias perturbation in int32 units (0: one output step)")
    s.add_argument("--sigma-node", type=int, default=1, help="output perturbation in int8 LSB")
    s.add_argument("--rounding", default="nearest", help="nearest or stochastic")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="output directory")
    s.set_defaults(func=_cmd_vectors)

    s = sub.add_parser("run", help="run a model on an input array")
    s.add_argument("model", help=".tflite or tinyzo .npz model")
    s.add_argument("--input", required=True, help=".npy array: int8 (as is) or float (quantized); batch dim optional; "
                   "or a .wav file (16 kHz 16-bit PCM mono): its audio front-end features are the input "
                   "(docs/audio.md)")
    s.add_argument("--frontend", help="with a .wav --input: the audio front end .tflite (default: TFLM's "
                   "audio_preprocessor_int8.tflite shipped with tinyzo)")
    s.add_argument("--output", help="write the output to this .npy file")
    s.set_defaults(func=_cmd_run)
    return p


def main(argv=None) -> int:
    """Entry point of the ``tinyzo`` command; returns the exit status (0 success, 2 bad input, 130 interrupted).

    Bad flags too return 2 (after argparse's one-line error) instead of raising SystemExit, so an
    in-process caller always gets a status; ``--help`` and ``--version`` return 0.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    try:
        return int(args.func(args) or 0)
    except TinyzoError as e:
        print(f"tinyzo: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tinyzo: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
