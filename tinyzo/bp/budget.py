"""A sparse-update scheme under a memory budget: the two memory models and the three ways to choose.

One function, :func:`scheme_under_budget`, serves ``tinyzo contrib`` and ``tinyzo train
--scheme-search`` (so a sweep can compare the choices, docs/contrib.md):

* ``"dp"``: contribution analysis (:func:`tinyzo.bp.contrib.contribution_analysis`), then the exact
  dynamic program of :func:`tinyzo.bp.search.best_scheme` (per-layer count only);
* ``"evolution"``: the same analysis, then the evolutionary search (any memory model);
* ``"last-k"``: no analysis, the largest "weights and biases of the last k trainable layers" that fits
  (tiny-training's baseline).

Memory models (:func:`scheme_memory_fn`): ``"count"``, the per-layer count of docs/training_bp.md
(:meth:`SparseScheme.memory_bytes`, batch 1, with the optimizer's state bytes), and ``"planner"``, the
memory planner's device peak of one training step (:func:`tinyzo.memory.scheme_peak_bytes`).
"""

from __future__ import annotations

from tinyzo.bp.contrib import contribution_analysis
from tinyzo.bp.search import best_scheme
from tinyzo.errors import InputError
from tinyzo.memory import optimizer_name, scheme_peak_bytes
from tinyzo.training.scheme import SparseScheme
from tinyzo.training.update import QASOptimizer

__all__ = ["MEMORY_MODELS", "SEARCHES", "largest_last_k", "scheme_memory_fn", "scheme_under_budget"]

SEARCHES = ("dp", "evolution", "last-k")
MEMORY_MODELS = ("count", "planner")


def scheme_memory_fn(model, memory: str, optimizer: dict):
    """``scheme -> bytes`` (int) of memory model ``memory`` (``"count"`` or ``"planner"``) for
    ``model`` trained with ``optimizer`` (:class:`tinyzo.bp.QASOptimizer` keyword arguments without
    ``lr``: ``kind``, ``momentum``, ``mode``, ...), at batch 1."""

    if memory not in MEMORY_MODELS:
        raise InputError(f"unknown memory model {memory!r}; choose one of {', '.join(MEMORY_MODELS)}")
    if memory == "count":
        state = QASOptimizer(lr=1.0, **optimizer).state_bytes_per_param
        return lambda scheme: scheme.memory_bytes(model, state_bytes_per_param=state)
    name = optimizer_name(optimizer.get("kind", "sgd"), optimizer.get("momentum", 0.0),
                          optimizer.get("mode", "per_step"))
    return lambda scheme: scheme_peak_bytes(model, scheme, optimizer=name)


def largest_last_k(model, budget_bytes: int, memory_fn):
    """The :meth:`SparseScheme.last_k` scheme with the largest k whose ``memory_fn`` fits ``budget_bytes``.

    Raises :class:`tinyzo.errors.InputError` naming the bytes of "last 1 layer" if no k fits."""
    n = len(model.trainable_ops())
    fits = [k for k in range(1, n + 1) if memory_fn(SparseScheme.last_k(model, k)) <= budget_bytes]
    if not fits:
        raise InputError(f"no 'last k layers' scheme fits {budget_bytes:,} bytes: the last layer alone needs "
                         f"{memory_fn(SparseScheme.last_k(model, 1)):,} bytes")
    return SparseScheme.last_k(model, fits[-1])


def scheme_under_budget(model, train, val, budget_bytes: int, *, search: str, memory: str = "count",
                        optimizer: dict, lr: float, epochs: int | None = None, steps: int | None = None,
                        batch_size: int = 32, seed: int = 0, progress: bool = False, **analysis):
    """Choose a sparse-update scheme for ``model`` that fits ``budget_bytes`` (module docstring).

    Args:
        model: the int8 :class:`tinyzo.Model` (never modified).
        train, val: ``(x int8[N, ...model input], y int[N])``: the contribution analysis trains on
            ``train`` and counts correct predictions on ``val`` (unused by ``"last-k"``).
        budget_bytes: int >= 0.
        search: ``"dp"``, ``"evolution"`` or ``"last-k"``; memory: ``"count"`` or ``"planner"``
            (``"dp"`` is exact for the count only and refuses the planner).
        optimizer, lr, epochs, steps, batch_size, seed: the analysis runs' optimizer (QASOptimizer
            keywords without lr), learning rate, length (default 1 epoch), batch and seed; also the
            memory model's optimizer state.
        progress: a bar over the analysis' measurements.
        analysis: more :func:`tinyzo.bp.contrib.contribution_analysis` keywords (``ratios``,
            ``k_values``, ``layers``, ``channel_select``, ``checkpoint``, ``resume``).

    Returns:
        ``(SparseScheme, info)``: ``info`` has ``search``, ``memory``, ``budget_bytes``,
        ``memory_bytes`` (the scheme under the memory model), ``gain`` (the additive score as a
        fraction; None for last-k) and ``contributions`` (the :class:`Contributions`; None for last-k).

    Raises:
        InputError: an unknown search or memory model, dp with the planner, or a budget nothing fits
            (checked before the analysis, naming the smallest scheme's bytes).
    """

    if search not in SEARCHES:
        raise InputError(f"unknown scheme search {search!r}; choose one of {', '.join(SEARCHES)}")
    if search == "dp" and memory != "count":
        raise InputError("the dp search is exact only for the per-layer count (memory 'count'); use evolution or "
                         "last-k with the planner")
    budget_bytes = int(budget_bytes)
    mem = scheme_memory_fn(model, memory, optimizer)
    info = {"search": search, "memory": memory, "budget_bytes": budget_bytes, "gain": None, "contributions": None}
    if search == "last-k":
        scheme = largest_last_k(model, budget_bytes, mem)
        info["memory_bytes"] = int(mem(scheme))
        return scheme, info
    smallest = mem(SparseScheme(bias_last_k=0, classifier=True))
    if smallest > budget_bytes:   # before the (long) analysis
        raise InputError(f"no scheme fits {budget_bytes:,} bytes: the smallest (classifier only) needs "
                         f"{smallest:,} bytes")
    contrib = contribution_analysis(model, train, val, steps=steps, epochs=epochs, batch_size=batch_size, lr=lr,
                                    optimizer=optimizer, seed=seed, progress=progress, **analysis)
    scheme, found = best_scheme(model, contrib, budget_bytes, memory_fn=None if memory == "count" else mem,
                                method=search, seed=seed)
    info.update(memory_bytes=int(mem(scheme)), gain=found["gain"], contributions=contrib)
    return scheme, info
