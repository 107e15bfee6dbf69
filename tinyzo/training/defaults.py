"""Per-method defaults of ``tinyzo train``: what a run with no optional flag uses (measured, not guessed).

``tinyzo train MODEL --data D --method M`` fills every option the command line (or ``--preset``) left
unset from :data:`METHOD_DEFAULTS` of M's kind. The rule, per kind:

* every method: 20 epochs of the training split, batch 32, a float32 shadow copy of the trained
  parameters (``--update shadow``: the integer parameters are rounded from it each step, so updates
  smaller than one LSB are not lost);
* ``node`` (and ``mixed``) ZO: the last 6 trainable layers (all, when the model has fewer), 8 queries
  per step (RGE: 9 forward passes of the trained layers per batch; SPSA: 4 queries, the same budget
  of forward passes); ``mixed`` perturbs the weights of the first 2 of them, the outputs of the rest;
* ``weight`` ZO: the last 2 trainable layers and 16 queries: the estimate's variance grows with the
  number of perturbed parameters, so weight perturbation gets few layers and more queries;
* ``bp`` (sparse back propagation with QAS): the last 6 trainable layers, SGD with momentum 0.9;
* the learning rate of each kind: the best mean test accuracy over four corruptions x three seeds
  of the digits reference model (``experiments/zo_defaults.toml``, docs/zo_results.md).

The defaults are printed at the start of a run, so a run's log says what it did.
"""

from __future__ import annotations

__all__ = ["METHOD_DEFAULTS", "method_defaults"]

#: options every method shares (argparse ``dest`` -> value)
COMMON = {"epochs": 20, "update": "shadow"}

#: method kind -> its options (argparse ``dest`` -> value); ``layers_last``: the last K trainable layers
METHOD_DEFAULTS = {
    "node": {"layers_last": 6, "queries": 8, "lr": 1.25e-4},
    "mixed": {"layers_last": 6, "queries": 8, "lr": 1.25e-4, "mixed_split": 2},
    "weight": {"layers_last": 2, "queries": 16, "lr": 1e-3},
    "bp": {"layers_last": 6, "lr": 3e-3, "momentum": 0.9},
    "fp32": {"lr": 3e-3, "momentum": 0.9},
}

#: the SPSA estimators spend two forward passes per query: half the queries for the same budget
TWO_POINT_ESTIMATORS = ("spsa", "sign-spsa")

#: options the defaults may fill, and their "not given" value in the parser
FILLED = ("epochs", "update", "queries", "lr", "mixed_split", "momentum", "layers")


def method_kind(method) -> str:
    """The :data:`METHOD_DEFAULTS` key of a parsed :class:`tinyzo.training.methods.Method`."""
    if method.family in ("bp", "fp32"):
        return method.family
    return method.target


def method_defaults(method, n_trainable: int, *, choose_layers: bool = True) -> dict:
    """The default options (argparse ``dest`` -> value) of ``method`` on a model with ``n_trainable``
    trainable layers (int >= 1).

    ``choose_layers=False`` leaves ``layers`` out (the run chooses them another way: ``--select``,
    ``--scheme``, ``--scheme-search``). ``layers`` is ``"last<K>"`` with K = min(the kind's K,
    n_trainable), or absent for fp32 (all layers).
    """
    kind = method_kind(method)
    opts = dict(COMMON)
    spec = dict(METHOD_DEFAULTS[kind])
    last = spec.pop("layers_last", None)
    opts.update(spec)
    if kind in ("node", "mixed", "weight") and method.estimator in TWO_POINT_ESTIMATORS:
        opts["queries"] = max(1, opts["queries"] // 2)
    if last is not None and choose_layers:
        opts["layers"] = f"last{min(last, max(1, int(n_trainable)))}"
    return opts
