"""The ``tinyzo train`` command as a function: its arguments (:func:`add_train_arguments`) and its run
(:func:`train_run`). The CLI and ``tinyzo sweep`` both use it, so a sweep run is exactly a
``tinyzo train`` run (the same parser, the same code path)."""

from __future__ import annotations

from tinyzo.argtypes import NONNEG, POS1, finite_float

__all__ = ["add_train_arguments", "parse_layers", "parse_method", "train_run"]


def add_train_arguments(s) -> None:
    """Add ``tinyzo train``'s arguments to the argparse (sub)parser ``s``."""
    s.add_argument("model", help=".tflite or tinyzo .npz int8 model")
    s.add_argument("--data", required=True, help="'digits', 'speech', 'speech-accent', 'speech-noise', 'speech-mic' (bundled) or a dataset file/folder")
    s.add_argument("--allow-quant-mismatch", action="store_true",
                   help="int8 feature data: accept features whose declared quantization differs from the model "
                   "input's (docs/data.md)")
    s.add_argument("--method", default="zo-rge-weight",
                   help="zo-<rge|spsa|signspsa>-<weight|node|mixed>, bp, or fp32 (the float twin trained with float "
                   "SGD: the baseline of docs/qas_table.md) (default zo-rge-weight)")
    s.add_argument("--preset", help="a named recipe of the options below (pmt: Poor Man's Training's configuration); "
                   "options given here win (tinyzo.training.presets)")
    s.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"], help="bp: optimizer (default sgd)")
    s.add_argument("--momentum", type=float, help="bp/fp32 sgd: momentum (default: per method, bp 0.9; 0 needs no "
                   "extra memory)")
    s.add_argument("--no-qas", action="store_true", help="bp: no Quantization-Aware Scaling")
    s.add_argument("--scheme", help="bp: sparse-update scheme JSON (see docs/training_bp.md)")
    s.add_argument("--scheme-search", choices=["dp", "evolution", "last-k"],
                   help="bp: choose the scheme under --scheme-budget-kb: contribution analysis on the train/val "
                   "splits + dp or evolution, or the largest last k layers (docs/contrib.md)")
    s.add_argument("--scheme-budget-kb", type=finite_float, help="bp: the memory budget of --scheme-search (kB = 1024 B)")
    s.add_argument("--scheme-memory", choices=["count", "planner"], default="count",
                   help="bp: memory model of --scheme-search: the per-layer count (default) or the planner's peak")
    s.add_argument("--contrib-epochs", type=POS1, default=1, help="bp: epochs of each contribution measurement "
                   "of --scheme-search dp/evolution (default 1)")
    s.add_argument("--budget-kb", type=finite_float,
                   help="refuse a run whose training peak SRAM on the device (batch 1, tinyzo memory) exceeds this")
    s.add_argument("--corruption", help="adapt to this corruption (applied to every split)")
    s.add_argument("--severity", type=int, help="corruption severity 1..5")
    s.add_argument("--layers", help="operator indices (e.g. 9,11), last<K> or all (default: per method, node/mixed/bp "
                   "last6, weight last2, fp32 all)")
    s.add_argument("--select", choices=["ratio", "test-and-pick", "last"],
                   help="choose the layers automatically (see docs/zo_selection.md)")
    s.add_argument("--select-k", type=POS1, default=2, help="how many layers --select keeps (default 2)")
    s.add_argument("--epochs", type=POS1, help="passes over the training split (default 20)")
    s.add_argument("--batch-size", type=POS1, default=32)
    s.add_argument("--lr", type=finite_float, help="learning rate of the QAS-scaled integer update (default: per "
                   "method, measured: tinyzo.training.defaults)")
    s.add_argument("--schedule", default="constant", help="constant, cosine or linear")
    s.add_argument("--sigma", type=int, default=1, help="weight perturbation in int8 LSB")
    s.add_argument("--sigma-bias", type=int, default=0, help="bias perturbation in int32 units (0: one output step)")
    s.add_argument("--sigma-node", type=int, default=1, help="output perturbation in int8 LSB")
    s.add_argument("--queries", type=int, help="directions per step (default: node/mixed 8, weight 16; spsa half)")
    s.add_argument("--density", type=finite_float, default=1.0,
                   help="zo: sparse perturbation, the fraction of coordinates each query perturbs, in (0, 1] "
                   "(default 1: dense; docs/zo_estimators.md)")
    s.add_argument("--block", choices=["none", "layer"], default="none",
                   help="zo: 'layer' = block-coordinate queries, one trained layer per query, queries split by "
                   "layer size (default none)")
    s.add_argument("--mixed-split", type=NONNEG, help="mixed: weight perturbation for the first K trained layers "
                   "(default 2)")
    s.add_argument("--bp-last", type=NONNEG, default=0,
                   help="zo: hybrid training, back propagation with QAS on the last K trained layers and ZO on the "
                   "layers before them (default 0: pure ZO; docs/training_zo.md)")
    s.add_argument("--bp-lr", type=finite_float, help="with --bp-last: learning rate of the BP part (default --lr)")
    s.add_argument("--update", help="per_step (round every step: no extra memory) or shadow (float32 copy of the "
                   "trained parameters; the default)")
    s.add_argument("--rounding", default="nearest", help="nearest or stochastic")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", help="write the trained int8 model (.tflite or .npz)")
    s.add_argument("--out-dir", help="checkpoint.npz (rewritten atomically every epoch), history.json/csv and "
                   "curves.png go here")
    s.add_argument("--resume", action="store_true", help="continue from --out-dir/checkpoint.npz (same settings; "
                   "a damaged or foreign checkpoint is refused)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")


def _parse_method(method: str):
    """``tinyzo train --method`` -> a :class:`tinyzo.training.methods.Method` (zo, bp or fp32)."""
    from tinyzo.training.methods import parse_method

    return parse_method(method, allow=("zo", "bp", "fp32"), layerwise=False)


def _parse_layers(text, model):
    from tinyzo.errors import InputError

    if text is None or text == "all":
        return None
    trainable = model.trainable_ops()
    if text.startswith("last"):
        try:
            k = int(text[4:] or 1)
        except ValueError:
            raise InputError(f"--layers last<K> needs an integer K, got {text!r}") from None
        if not 1 <= k <= len(trainable):
            raise InputError(f"--layers last{k}: the model has {len(trainable)} trainable layers")
        return trainable[-k:]
    try:
        layers = [int(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"--layers must be operator indices like 9,11, last<K> or all, got {text!r}") from None
    bad = [k for k in layers if k not in trainable]
    if bad:
        raise InputError(f"--layers {bad} are not trainable operators; trainable: {trainable}")
    return layers


def _bp_trainer(args, model, layers, total_steps, train, val):
    """The back-propagation stepper of ``tinyzo train --method bp`` (QAS optimizer + sparse scheme);
    ``train``/``val`` are the int8 ``(x, y)`` splits --scheme-search analyses."""
    from tinyzo.bp import BPTrainer, QASOptimizer, SparseScheme

    if args.scheme_search:
        from tinyzo.bp.budget import scheme_under_budget

        opt = {"kind": args.optimizer, "momentum": args.momentum, "mode": args.update, "rounding": args.rounding}
        scheme, info = scheme_under_budget(model, train, val, int(args.scheme_budget_kb * 1024),
                                           search=args.scheme_search, memory=args.scheme_memory, optimizer=opt,
                                           lr=args.lr, epochs=args.contrib_epochs, batch_size=args.batch_size,
                                           seed=args.seed, progress=not args.no_progress)
        print(f"--scheme-search {args.scheme_search}: {scheme.label}, {info['memory_bytes']:,} bytes "
              f"({args.scheme_memory}) of the {args.scheme_budget_kb:g} kB budget")
    elif args.scheme:
        scheme = SparseScheme.load(args.scheme)
    elif layers is not None:
        scheme = SparseScheme(bias_last_k=len(model.trainable_ops()) - model.trainable_ops().index(min(layers)),
                              weights={k: 1.0 for k in layers}, classifier=True)
    else:
        scheme = SparseScheme.full(model)
    scheme.validate(model)
    opt = QASOptimizer(args.optimizer, args.lr, momentum=args.momentum, qas=not args.no_qas, mode=args.update,
                      rounding=args.rounding, schedule=args.schedule, total_steps=total_steps, seed=args.seed)
    print(f"bp: scheme {scheme.label}, {scheme.param_count(model):,} trained parameters")
    return BPTrainer(model, scheme=scheme, optimizer=opt, seed=args.seed)


def _check_training_memory(args, trainer) -> dict:
    """Print the device peak SRAM of ``tinyzo train``'s trainer (batch 1, memory planner) and, with
    ``--budget-kb N``, refuse a run that does not fit N kB, before any training. Returns the
    :func:`tinyzo.memory.trainer_memory_report`."""
    from tinyzo.errors import InputError
    from tinyzo.memory import trainer_memory_report

    budget = None if args.budget_kb is None else args.budget_kb * 1024
    rep = trainer_memory_report(trainer, budget_bytes=budget)
    peak = rep["peak_sram_bytes"]
    print(f"{args.method}: training peak SRAM on the device (batch 1, {rep['optimizer']}) {peak:,} bytes")
    if budget is not None and not rep["fits"]:
        hint = "fewer layers or channels (--layers, --scheme)" if args.method == "bp" else "fewer layers (--layers)"
        if args.update == "shadow":
            hint += " or update per step (--update per_step: no float32 shadow copy)"
        raise InputError(f"the run needs {peak:,} bytes of SRAM to train on the device (batch 1, memory planner), "
                         f"over the {args.budget_kb:g} kB budget; train {hint}")
    return rep


def train_actions() -> dict:
    """``dest`` -> argparse action of every ``tinyzo train`` option (the single definition of the
    flags, their types and defaults; used by presets and by sweep specs)."""
    import argparse

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    return {a.dest: a for a in parser._actions if a.option_strings}


def _apply_preset(args) -> None:
    """Fill the options of ``--preset NAME`` into ``args`` where the option still has its default (an
    option given on the command line, with another value, wins)."""
    from tinyzo.training.presets import preset_options

    if not getattr(args, "preset", None):
        return
    actions = train_actions()
    for dest, value in preset_options(args.preset).items():
        if getattr(args, dest) == actions[dest].default:
            setattr(args, dest, value)


def _apply_method_defaults(args, method, model) -> dict:
    """Fill every option still unset (None: not given on the command line nor by ``--preset``) from
    :func:`tinyzo.training.defaults.method_defaults`; print and return what was filled."""
    from tinyzo.training.defaults import FILLED, method_defaults

    choose_layers = not (args.select or args.scheme or args.scheme_search)
    filled = {}
    for dest, value in method_defaults(method, len(model.trainable_ops()), choose_layers=choose_layers).items():
        if getattr(args, dest, None) is None:
            setattr(args, dest, value)
            filled[dest] = value
    for dest in FILLED:  # an option a method does not use keeps a neutral value (e.g. queries for bp)
        if getattr(args, dest, None) is None and dest in _NEUTRAL:
            setattr(args, dest, _NEUTRAL[dest])
    if filled:
        text = " ".join(f"--{k.replace('_', '-')} {v:g}" if isinstance(v, float) else f"--{k.replace('_', '-')} {v}"
                        for k, v in filled.items())
        print(f"{args.method} defaults: {text}")
    return filled


#: the value an option takes when the chosen method has no default for it (it does not read it)
_NEUTRAL = {"queries": 1, "mixed_split": 1, "momentum": 0.0}


def _check_train_args(args) -> None:
    """``tinyzo train``'s checks that need no model or data: output paths and flag combinations,
    before anything is loaded, trained or written."""
    from tinyzo.errors import InputError
    from tinyzo.io import check_save_path
    from tinyzo.paths import check_output_dir

    if args.out:
        check_save_path(args.out)
    if args.out_dir:
        check_output_dir(args.out_dir, "--out-dir")
    if args.resume and not args.out_dir:
        raise InputError("--resume continues the checkpoint in --out-dir: give --out-dir too")
    if args.budget_kb is not None and not args.budget_kb > 0:
        raise InputError(f"--budget-kb must be a positive number of kB (1 kB = 1024 bytes), got {args.budget_kb:g}")
    if (args.scheme_search is None) != (args.scheme_budget_kb is None):
        raise InputError("--scheme-search and --scheme-budget-kb go together")
    if args.scheme_search is not None:
        if args.method != "bp":
            raise InputError("--scheme-search chooses a sparse scheme for --method bp")
        if args.scheme or args.layers:
            raise InputError("--scheme-search chooses the scheme itself: do not give --scheme or --layers too")
        if not args.scheme_budget_kb >= 0:
            raise InputError(f"--scheme-budget-kb must be >= 0 kB, got {args.scheme_budget_kb:g}")
    if args.bp_lr is not None and not args.bp_last:
        raise InputError("--bp-lr is the learning rate of the hybrid's BP part: give --bp-last K too")
    if not args.method.startswith("zo-") and (args.density != 1.0 or args.block != "none"):
        raise InputError(f"--density and --block shape the perturbations of the zo methods; {args.method} does not "
                         "take them")
    if not 0.0 < args.density <= 1.0:
        raise InputError(f"--density is the fraction of coordinates a query perturbs, in (0, 1]; got {args.density:g}")
    if args.bp_last and not args.method.startswith("zo-"):
        raise InputError("--bp-last makes a zo method hybrid (BP on the last layers, ZO on the rest); "
                         f"{args.method} does not take it")
    if args.method == "fp32":
        for flag, given in (("--out", args.out), ("--budget-kb", args.budget_kb is not None),
                            ("--select", args.select), ("--scheme", args.scheme)):
            if given:
                raise InputError(f"{flag} is for the int8 methods; --method fp32 trains the float twin of the model "
                                 "(a baseline: no int8 model, no device memory)")


def train_run(args) -> dict:
    """Run ``tinyzo train`` from its parsed arguments and return the results (``tinyzo sweep`` runs this).

    Returns ``before``, ``after``, ``clean`` (test accuracy before and after training on the
    (corrupted) test split, and of the starting model on the uncorrupted test split; None without a
    test split), ``recovered`` ((after - before) / (clean - before), None without a corruption),
    ``forward_passes``, ``backward_passes`` (batches), ``sram_bytes`` / ``sram_lean_bytes`` (the
    training peak on the device as run / with plain SGD and per-step rounding, memory planner, batch 1;
    None for fp32), ``trained_params``, ``scheme`` / ``scheme_bytes`` (bp: the sparse scheme's label and
    per-layer memory count; None otherwise) and ``history`` (one dict per epoch, :func:`tinyzo.training.loop.fit`).
    """
    from pathlib import Path

    import tinyzo
    from tinyzo import data
    from tinyzo.errors import InputError
    from tinyzo.evaluate import evaluate, images_to_input
    from tinyzo.memory import trainer_memory_report
    from tinyzo.training.loop import fit
    from tinyzo.zo.trainer import ZOConfig, ZOTrainer

    _apply_preset(args)
    _check_train_args(args)
    model = tinyzo.load(args.model)
    method = _parse_method(args.method)
    _apply_method_defaults(args, method, model)
    if method.family == "bp" and args.select is not None:
        raise InputError("--select is for the zo methods; give bp a --scheme or --layers")
    ds = data.load(args.data)
    if (args.corruption is None) != (args.severity is None):
        raise InputError("--corruption and --severity go together")
    splits = {}
    for k, s in enumerate(("train", "val", "test")):
        x, y = ds.split(s)
        if args.corruption is not None and len(x):
            x = data.corrupt(x, args.corruption, args.severity, seed=args.seed + k)
        splits[s] = (x, y)
    if len(splits["train"][0]) == 0:
        raise InputError(f"{args.data} has no training split")
    fkw = {"feature_quant": ds.feature_quant, "allow_quant_mismatch": args.allow_quant_mismatch}
    xq = {s: images_to_input(model, x, **fkw) if len(x) else None for s, (x, _) in splits.items()}
    steps_per_epoch = -(-len(xq["train"]) // args.batch_size)
    layers = _parse_layers(args.layers, model)
    if method.family == "fp32":
        return _fp32_run(args, model, ds, splits, xq, layers, steps_per_epoch)
    before = evaluate(model, *splits["test"], **fkw) if len(splits["test"][0]) else None
    if args.select is not None:
        from tinyzo.zo.selection import select_layers

        if args.layers is not None:
            raise InputError("--select picks the layers itself: do not give --layers too")
        if args.select == "test-and-pick" and xq["val"] is None:
            raise InputError("--select test-and-pick needs a validation split in the data")
        opts = {} if args.select == "last" else {"seed": args.seed}
        layers = select_layers(model, args.select, args.select_k, xq=xq["train"], y=splits["train"][1],
                               xq_val=xq["val"], y_val=splits["val"][1], **opts)
        print(f"--select {args.select}: training operators {layers}")
    total_steps = args.epochs * steps_per_epoch
    if method.family == "bp":
        trainer = _bp_trainer(args, model, layers, total_steps, (xq["train"], splits["train"][1]),
                              None if xq["val"] is None else (xq["val"], splits["val"][1]))
    else:
        cfg = ZOConfig(layers=layers, target=method.target, estimator=method.estimator, queries=args.queries,
                       sigma=args.sigma, sigma_bias=args.sigma_bias, sigma_node=args.sigma_node, lr=args.lr,
                       schedule=args.schedule, update=args.update, rounding=args.rounding, seed=args.seed,
                       mixed_split=args.mixed_split, density=args.density, block=args.block)
        if args.bp_last:
            from tinyzo.zo.hybrid import HybridTrainer

            trainer = HybridTrainer(model, cfg, args.bp_last, total_steps=total_steps, bp_lr=args.bp_lr)
        else:
            trainer = ZOTrainer(model, cfg, total_steps=total_steps)
    mem = _check_training_memory(args, trainer)
    out_dir = Path(args.out_dir) if args.out_dir else None
    title = f"{args.method} on {args.data}" + (f" ({args.corruption} {args.severity})" if args.corruption else "")
    sram_lean = trainer_memory_report(trainer, lean=True)["peak_sram_bytes"]
    clean = None
    if args.corruption is not None and len(splits["test"][0]):
        clean = evaluate(model, *ds.split("test"), **fkw)["accuracy"]
    history = fit(trainer, model, xq["train"], splits["train"][1], xq["val"],
                  splits["val"][1] if xq["val"] is not None else None, epochs=args.epochs, batch_size=args.batch_size,
                  seed=args.seed, out_dir=out_dir, resume=args.resume, progress=not args.no_progress, title=title)
    after = evaluate(model, *splits["test"], **fkw) if len(splits["test"][0]) else None
    if args.out:
        model.save(args.out)
    if before is not None:
        print(f"test accuracy: {before['accuracy'] * 100:.2f}% before, {after['accuracy'] * 100:.2f}% after "
              f"({getattr(trainer, 'forward_passes', 0)} forward passes)")
    if args.out:
        print(f"wrote {args.out}")
    b = None if before is None else before["accuracy"]
    a = None if after is None else after["accuracy"]
    scheme = getattr(trainer, "scheme", None)
    return {"before": b, "after": a, "clean": clean, "recovered": _recovered(clean, b, a),
            "forward_passes": int(getattr(trainer, "forward_passes", 0)),
            "backward_passes": int(getattr(trainer, "backward_passes", 0)),
            "sram_bytes": int(mem["peak_sram_bytes"]), "sram_lean_bytes": int(sram_lean),
            "trained_params": int(mem["trained_params"]),
            "scheme": None if scheme is None else scheme.label,
            "scheme_bytes": None if scheme is None else int(scheme.memory_bytes(model)),
            "history": history}


def _recovered(clean, before, after):
    """(after - before) / (clean - before): the share of the corruption's damage training undid (None
    without a corruption or a test split)."""
    if clean is None or before is None or clean == before:
        return None
    return (after - before) / (clean - before)


def _fp32_run(args, model, ds, splits, xq, layers, steps_per_epoch) -> dict:
    """``tinyzo train --method fp32``: the float twin of ``model`` (its architecture, dequantized
    parameters: :func:`tinyzo.bp.fp32.float_net_from_int8`) trained with float32 SGD (``--lr``,
    ``--momentum``, ``--schedule``, no weight decay) on ``--layers`` (the others frozen), on the
    dequantized int8 inputs; accuracies from :func:`tinyzo.fp.evaluate`. The upper reference of
    int8 training (docs/qas_table.md); it has no device memory (``sram_bytes`` None)."""
    from pathlib import Path

    from tinyzo import fp
    from tinyzo.bp.fp32 import dequantize_input, float_layer_names, float_net_from_int8
    from tinyzo.evaluate import images_to_input

    net, params = float_net_from_int8(model)
    names = float_layer_names(model)
    trained = [names[k] for k in (layers if layers is not None else model.trainable_ops())]
    x = {s: None if xq[s] is None else dequantize_input(model, xq[s]) for s in xq}
    test = x["test"] is not None
    before = fp.evaluate(net, params, x["test"], splits["test"][1])["accuracy"] if test else None
    clean = None
    if args.corruption is not None and test:
        xc, yc = ds.split("test")
        clean = fp.evaluate(net, params, dequantize_input(model, images_to_input(
            model, xc, feature_quant=ds.feature_quant, allow_quant_mismatch=args.allow_quant_mismatch)), yc)["accuracy"]
    ckpt = Path(args.out_dir) / "checkpoint_fp32.npz" if args.out_dir else None
    history = fp.train(net, params, x["train"], splits["train"][1], x["val"],
                       None if x["val"] is None else splits["val"][1], epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, momentum=args.momentum, weight_decay=0.0,
                       schedule=args.schedule, seed=args.seed, progress=not args.no_progress, checkpoint=ckpt,
                       resume=args.resume, trainable=trained)
    after = fp.evaluate(net, params, x["test"], splits["test"][1])["accuracy"] if test else None
    if before is not None:
        print(f"fp32 test accuracy: {before * 100:.2f}% before, {after * 100:.2f}% after")
    steps = len(history) * steps_per_epoch
    n_params = sum(int(v.size) for n in trained for k, v in params[n].items() if k not in ("mean", "var"))
    return {"before": before, "after": after, "clean": clean, "recovered": _recovered(clean, before, after),
            "forward_passes": steps, "backward_passes": steps, "sram_bytes": None, "sram_lean_bytes": None,
            "trained_params": n_params, "scheme": None, "scheme_bytes": None,
            "history": [dict(h) for h in history]}


parse_method, parse_layers = _parse_method, _parse_layers
