"""Sparse-update scheme search under a memory budget (tiny-training's contribution-guided search).

Given measured gains (:class:`tinyzo.bp.contrib.Contributions`), a scheme is one bias depth ``k`` and
one channel ratio per candidate layer (``r_i`` in ``{0} U ratios``, 0 = weights frozen); the classifier is
always trained fully. Its **score** is tiny-training's additive estimate

    score = dAcc_b[:k] + sum_i dAcc_{W_i, r_i}          (dAcc_{W_i, 0} = 0, dAcc_b[:1] = 0)

kept as an integer count of validation predictions (``Contributions.*_gain_counts``), so sums and
comparisons are exact. :func:`best_scheme` maximizes it subject to ``memory_fn(scheme) <= budget``.

**DP** (``method="dp"``): exact for the default memory function, the per-layer count
:meth:`tinyzo.training.scheme.SparseScheme.memory_bytes` at ``batch`` with ``state_bytes_per_param``. That
count is additive except for the clamp masks, which run from the *first trained operator* ``f`` to
the end (:class:`CountCostModel` splits it)::

    memory = classifier + masks(f) + sum_{bias layers} bias(i) + sum_{weight layers} weight(i, r_i)

So the DP fixes ``f`` in turn (every operator a scheme can start at), allows only choices at or after
``f`` and charges ``masks(f)``: a scheme whose first operator is ``f`` is costed exactly under its
``f`` and over-costed under earlier ones, so the best over all ``f`` is the exact optimum. For each
``f`` the rest is a multiple-choice knapsack (one ``k``, one ratio per layer) solved over exact byte
costs, **not discretized**: the DP keeps the Pareto front of (bytes, score) pairs group by group
(a pair is dropped only if another costs no more and scores at least as much), whose size is at most
the number of distinct scores (scores are integers in [-groups * n_val, groups * n_val]). Ties: the
higher score, then the fewer bytes, then the first found (smaller ``k``, smaller ratios).
A custom ``memory_fn`` is not additive in general, so ``method="dp"`` refuses one.

**Evolution** (``method="evolution"``): works with any ``memory_fn`` (e.g. the memory planner's peak).
A genome is (k, ratio per layer). The population starts with the minimal genome (classifier only) and
random feasible genomes (each layer frozen with probability 1/2, else a uniform ratio); every generation
keeps the best ``parent_ratio`` of the population as parents and fills the rest with mutations (each gene
resampled with probability ``mutate_prob``) and uniform crossovers of two random parents, keeping only
children that fit the budget (up to 50 tries each). Fitness is the score; ties prefer fewer bytes.
``memory_fn`` is called once per distinct genome (cached). Deterministic for a seed
(``numpy.random.default_rng(seed)``).

No scheme fits (even the classifier alone is over the budget): :class:`SearchError` names the bytes
the smallest scheme needs.
"""

from __future__ import annotations

import numbers

import numpy as np

from tinyzo.errors import TinyzoError
from tinyzo.training.scheme import SparseScheme

__all__ = ["METHODS", "CountCostModel", "SearchError", "best_scheme", "scheme_score"]

#: the search methods
METHODS = ("dp", "evolution")


class SearchError(TinyzoError):
    """The scheme search cannot run (bad arguments) or no scheme fits the memory budget."""


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


# ----------------------------------------------------------------------------------------------
# the search space
# ----------------------------------------------------------------------------------------------


class _Space:
    """Choices of the search: ``ks`` (bias depths, 1 first) and per layer ``[0] + ratios``, with integer scores."""

    def __init__(self, model, contrib):
        contrib.check_model(model)
        if not contrib.complete:
            raise SearchError(f"the contribution analysis is incomplete ({len(contrib.bias)}/{len(contrib.k_values)} "
                              f"bias depths, {len(contrib.weight)}/{len(contrib.layers) * len(contrib.ratios)} layer "
                              "ratios measured); finish it (resume) first")
        self.model = model
        self.contrib = contrib
        bg = contrib.bias_gain_counts
        self.ks = sorted(bg)
        self.k_score = [int(bg[k]) for k in self.ks]
        self.layers = list(contrib.layers)
        self.ratios = [0.0] + list(contrib.ratios)
        wg = contrib.weight_gain_counts
        self.w_score = [[0] + [int(wg[(i, r)]) for r in contrib.ratios] for i in self.layers]

    def score(self, genome) -> int:
        ki, rs = genome
        return self.k_score[ki] + sum(self.w_score[j][g] for j, g in enumerate(rs))

    def scheme(self, genome, name=None):
        ki, rs = genome
        return SparseScheme(bias_last_k=self.ks[ki],
                            weights={self.layers[j]: self.ratios[g] for j, g in enumerate(rs) if g > 0},
                            channel_select=self.contrib.channel_select, classifier=True, name=name)


def scheme_score(model, contrib, scheme) -> dict:
    """The additive estimate of ``scheme``: ``{"score": int (extra correct predictions), "gain": float}``.

    The scheme must lie in the search space (classifier trained, its ``bias_last_k`` measured or 1 or 0,
    each weight layer a measured (layer, ratio)); otherwise :class:`SearchError`.
    """
    space = _Space(model, contrib)
    if not scheme.classifier:
        raise SearchError("the search space always trains the classifier (classifier=true)")
    k = max(1, scheme.bias_last_k)
    if k not in space.ks:
        raise SearchError(f"bias_last_k = {scheme.bias_last_k} was not measured (measured: {space.ks})")
    rs = [0] * len(space.layers)
    cls_op = contrib.classifier
    for layer, r in scheme.resolved(model).weights.items():
        if layer == cls_op:
            continue
        if layer not in space.layers or r not in space.ratios[1:]:
            raise SearchError(f"weight update {layer}@{r:g} was not measured (layers {space.layers}, ratios "
                              f"{space.ratios[1:]})")
        rs[space.layers.index(layer)] = space.ratios.index(r)
    s = space.score((space.ks.index(k), tuple(rs)))
    return {"score": s, "gain": s / contrib.n_val}


# ----------------------------------------------------------------------------------------------
# the additive decomposition of the per-layer count
# ----------------------------------------------------------------------------------------------


class CountCostModel:
    """:meth:`SparseScheme.memory_bytes` split into additive parts (module docstring); all ints, bytes.

    Attributes:
        classifier: bytes of the classifier (weights, bias, saved input, optimizer state; no masks).
        mask_from: ``{op: bytes}``, the clamp masks of every operator from ``op`` to the end.
        bias: ``{op: bytes}``, a layer's int32 bias and its optimizer state (layers with a bias).
        weight: ``{(op, ratio): bytes}``, a layer's trained weights, saved input and optimizer state.
        first_bias: ``{k: op}``, the first operator whose bias the last ``k`` layers train.

    :meth:`cost` of a scheme equals ``scheme.memory_bytes(model, batch=batch,
    state_bytes_per_param=state_bytes_per_param)`` (tested).
    """

    def __init__(self, model, layers, ratios, *, batch: int = 1, state_bytes_per_param: int = 0):
        ops = model.trainable_ops()
        self.cls_op = ops[-1]
        kw = {"batch": batch, "state_bytes_per_param": state_bytes_per_param}
        rows = SparseScheme.full(model).memory_breakdown(model, **kw)   # from op 0: every mask
        masks = {r["op"]: r["mask_bytes"] for r in rows}
        self.mask_from = {}
        acc = 0
        for op in sorted(masks, reverse=True):
            acc += masks[op]
            self.mask_from[op] = acc
        cls_row = rows[-1] if rows[-1]["op"] == self.cls_op else next(r for r in rows if r["op"] == self.cls_op)
        self.classifier = cls_row["param_bytes"] + cls_row["activation_bytes"] + cls_row["state_bytes"]
        brows = {r["op"]: r for r in SparseScheme.bias_only(model, len(ops)).memory_breakdown(model, **kw)}
        self.bias = {op: brows[op]["param_bytes"] + brows[op]["state_bytes"]
                     for op in ops[:-1] if op in brows and brows[op]["params"] > 0}
        self.weight = {}
        for r in ratios:
            wrows = {row["op"]: row for row in SparseScheme(weights={i: r for i in layers}, classifier=True)
                     .memory_breakdown(model, **kw)}
            for i in layers:
                row = wrows[i]
                self.weight[(i, r)] = row["param_bytes"] + row["activation_bytes"] + row["state_bytes"]
        self.first_bias = {}
        for k in range(1, len(ops) + 1):
            with_b = [op for op in ops[len(ops) - k:-1] if op in self.bias]
            self.first_bias[k] = min(with_b) if with_b else self.cls_op
        self.bias_sum = {k: sum(self.bias[op] for op in ops[len(ops) - k:-1] if op in self.bias)
                         for k in range(1, len(ops) + 1)}

    def cost(self, k: int, weights: dict) -> int:
        """Bytes of the scheme ``bias_last_k = k`` (k >= 1), ``weights = {op: ratio}`` and the classifier."""
        first = min([self.first_bias[k], self.cls_op] + [i for i, r in weights.items() if r > 0])
        return (self.classifier + self.mask_from[first] + self.bias_sum[k]
                + sum(self.weight[(i, r)] for i, r in weights.items() if r > 0))


# ----------------------------------------------------------------------------------------------
# DP
# ----------------------------------------------------------------------------------------------


def _knapsack(groups, capacity: int):
    """Multiple-choice knapsack: one (cost, score) from each group, total cost <= capacity, max score.

    Exact, by Pareto fronts. Returns ``(score, cost, [choice index per group])`` or None if nothing fits.
    """
    front = [(0, 0)]       # (cost, score), cost increasing, score strictly increasing
    back = []              # per group: [(previous state index, choice index)] aligned with the front
    for choices in groups:
        cand = []
        for si, (c0, s0) in enumerate(front):
            for ci, (c, s) in enumerate(choices):
                if c0 + c <= capacity:
                    cand.append((c0 + c, -(s0 + s), si, ci))
        if not cand:
            return None
        cand.sort()        # cost ascending, then score descending, then earlier state / choice
        new_front, new_back = [], []
        best = None
        for c, neg_s, si, ci in cand:
            if best is None or -neg_s > best:
                best = -neg_s
                new_front.append((c, -neg_s))
                new_back.append((si, ci))
        front, back = new_front, back + [new_back]
    i = len(front) - 1     # the highest score; the front's cheapest pair with it
    cost, score = front[i]
    picks = []
    for g in range(len(groups) - 1, -1, -1):
        si, ci = back[g][i]
        picks.append(ci)
        i = si
    return score, cost, picks[::-1]


def _dp(space: _Space, cm: CountCostModel, budget: int):
    layers, ratios = space.layers, space.ratios
    anchors = sorted({cm.cls_op} | set(layers) | {cm.first_bias[k] for k in space.ks})
    best = None
    for f in anchors:
        cap = budget - cm.classifier - cm.mask_from[f]
        if cap < 0:
            continue
        kg = [(cm.bias_sum[k], space.k_score[ki], ki) for ki, k in enumerate(space.ks) if cm.first_bias[k] >= f]
        if not kg:
            continue
        groups = [[(c, s) for c, s, _ in kg]]
        for j, i in enumerate(layers):
            opts = [(0, 0)]
            if i >= f:
                opts += [(cm.weight[(i, r)], space.w_score[j][g]) for g, r in enumerate(ratios) if g > 0]
            groups.append(opts)
        sol = _knapsack(groups, cap)
        if sol is None:
            continue
        score, _, picks = sol
        genome = (kg[picks[0]][2], tuple(picks[1:]))
        true = cm.cost(space.ks[genome[0]], {layers[j]: ratios[g] for j, g in enumerate(genome[1])})
        cand = (score, -true, genome)
        if best is None or cand[:2] > best[:2]:
            best = cand
    return best


# ----------------------------------------------------------------------------------------------
# evolution
# ----------------------------------------------------------------------------------------------


def _evolution(space: _Space, memory, budget: int, rng, *, population: int, generations: int,
               parent_ratio: float, mutate_prob: float, mutation_ratio: float):
    n_k, n_r, n_l = len(space.ks), len(space.ratios), len(space.layers)
    cache = {}

    def mem(g):
        if g not in cache:
            cache[g] = int(memory(space.scheme(g)))
        return cache[g]

    def key(g):   # higher is better
        return (space.score(g), -mem(g))

    def random_genome():
        return (int(rng.integers(n_k)),
                tuple(0 if rng.random() < 0.5 else int(rng.integers(1, n_r)) for _ in range(n_l)))

    def mutate(g):
        ki, rs = g
        if rng.random() < mutate_prob:
            ki = int(rng.integers(n_k))
        rs = tuple(int(rng.integers(n_r)) if rng.random() < mutate_prob else r for r in rs)
        return (ki, rs)

    def cross(a, b):
        ki = a[0] if rng.random() < 0.5 else b[0]
        rs = tuple(x if rng.random() < 0.5 else y for x, y in zip(a[1], b[1]))
        return (ki, rs)

    def fits(g):
        return mem(g) <= budget

    pop = [(0, (0,) * n_l)]
    tries = 0
    while len(pop) < population and tries < 50 * population:
        tries += 1
        g = random_genome()
        if fits(g):
            pop.append(g)
    n_parents = max(2, round(parent_ratio * population))
    n_mut = round(mutation_ratio * (population - n_parents))
    for _ in range(generations):
        pop = sorted(set(pop), key=key, reverse=True)
        parents = pop[:n_parents]
        children = []
        for want, make in ((n_mut, "mutate"), (population - n_parents - n_mut, "cross")):
            made = 0
            for _ in range(50 * max(1, want)):
                if made >= want:
                    break
                if make == "mutate":
                    child = mutate(parents[int(rng.integers(len(parents)))])
                else:
                    a, b = rng.choice(len(parents), size=2, replace=len(parents) < 2)
                    child = cross(parents[int(a)], parents[int(b)])
                if fits(child):
                    children.append(child)
                    made += 1
        pop = parents + children
    best = max(set(pop), key=key)
    return best, len(cache)


# ----------------------------------------------------------------------------------------------
# entry point
# ----------------------------------------------------------------------------------------------


def best_scheme(model, contributions, budget_bytes, *, memory_fn=None, method: str = "dp", seed: int = 0,
                batch: int = 1, state_bytes_per_param: int | None = None, population: int = 100,
                generations: int = 60, parent_ratio: float = 0.25, mutate_prob: float = 0.2,
                mutation_ratio: float = 0.5):
    """The scheme with the highest additive gain whose memory fits ``budget_bytes`` (module docstring).

    Args:
        model: the int8 model the contributions were measured on.
        contributions: a complete :class:`tinyzo.bp.contrib.Contributions`.
        budget_bytes: int >= 0, the training-memory budget.
        memory_fn: ``scheme -> bytes`` (int); default the per-layer count
            ``scheme.memory_bytes(model, batch=batch, state_bytes_per_param=...)``. DP needs the default.
        method: ``"dp"`` (exact, default count only) or ``"evolution"`` (any memory_fn).
        seed: evolution seed, int in [0, 2**32 - 1].
        batch: samples per step in the default count (1: tiny-training's on-device setting).
        state_bytes_per_param: optimizer bytes per trained parameter in the default count (default:
            the measuring optimizer's, ``contributions.state_bytes_per_param``).
        population, generations, parent_ratio, mutate_prob, mutation_ratio: evolution settings.

    Returns:
        ``(SparseScheme, info)``; the scheme names its layers by op index, ``info`` is a dict:
        ``method``, ``budget_bytes``, ``memory_bytes`` (memory_fn of the scheme), ``score`` (int,
        extra correct validation predictions over classifier-only), ``gain`` (fraction),
        ``predicted_accuracy`` (classifier-only accuracy + gain), ``bias_last_k``, ``weights``,
        ``exact`` (True for DP), ``evaluations`` (evolution: memory_fn calls).

    Raises:
        SearchError: bad arguments, incomplete contributions, or no scheme fits (the message names
            the smallest scheme's bytes).
    """
    if method not in METHODS:
        raise SearchError(f"unknown search method {method!r}; choose one of {', '.join(METHODS)}")
    if not _is_int(budget_bytes) or budget_bytes < 0:
        if isinstance(budget_bytes, numbers.Real) and not isinstance(budget_bytes, bool) and budget_bytes >= 0 \
                and float(budget_bytes).is_integer():
            budget_bytes = int(budget_bytes)
        else:
            raise SearchError(f"budget_bytes must be an integer >= 0, got {budget_bytes!r}")
    budget_bytes = int(budget_bytes)
    if not _is_int(seed) or not 0 <= seed <= 0xFFFFFFFF:
        raise SearchError(f"seed must be an integer in [0, 2**32 - 1], got {seed!r}")
    if not _is_int(batch) or batch < 1:
        raise SearchError(f"batch must be an integer >= 1, got {batch!r}")
    if state_bytes_per_param is None:
        state_bytes_per_param = contributions.state_bytes_per_param
    if not _is_int(state_bytes_per_param) or state_bytes_per_param < 0:
        raise SearchError(f"state_bytes_per_param must be an integer >= 0, got {state_bytes_per_param!r}")
    for name, v, lo in (("population", population, 4), ("generations", generations, 0)):
        if not _is_int(v) or v < lo:
            raise SearchError(f"{name} must be an integer >= {lo}, got {v!r}")
    for name, v in (("parent_ratio", parent_ratio), ("mutate_prob", mutate_prob), ("mutation_ratio", mutation_ratio)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0.0 <= float(v) <= 1.0:
            raise SearchError(f"{name} must be a number in [0, 1], got {v!r}")
    if method == "dp" and memory_fn is not None:
        raise SearchError("method='dp' is exact only for the additive per-layer count (memory_fn=None); "
                          "use method='evolution' with a custom memory_fn")
    space = _Space(model, contributions)
    kw = {"batch": batch, "state_bytes_per_param": state_bytes_per_param}
    memory = memory_fn if memory_fn is not None else (lambda s: s.memory_bytes(model, **kw))
    minimal = (0, (0,) * len(space.layers))
    smallest = int(memory(space.scheme(minimal)))
    if smallest > budget_bytes:
        raise SearchError(f"no scheme fits {budget_bytes:,} bytes: the smallest (classifier only) needs "
                          f"{smallest:,} bytes")
    info = {"method": method, "budget_bytes": budget_bytes}
    if method == "dp":
        cm = CountCostModel(model, space.layers, space.ratios[1:], **kw)
        best = _dp(space, cm, budget_bytes)
        if best is None:  # cannot happen once the minimal scheme fits; kept as a guard
            raise SearchError(f"no scheme fits {budget_bytes:,} bytes: the smallest needs {smallest:,} bytes")
        genome = best[2]
        info.update(exact=True, evaluations=0)
    else:
        rng = np.random.default_rng(seed)
        genome, n_eval = _evolution(space, memory, budget_bytes, rng, population=population,
                                    generations=generations, parent_ratio=float(parent_ratio),
                                    mutate_prob=float(mutate_prob), mutation_ratio=float(mutation_ratio))
        info.update(exact=False, evaluations=n_eval, seed=seed, population=population, generations=generations)
    score = space.score(genome)
    scheme = space.scheme(genome)
    scheme.name = f"contrib {method} <= {budget_bytes / 1024:g} kB: {scheme.label}"
    mem = int(memory(scheme))
    info.update(memory_bytes=mem, score=int(score), gain=score / contributions.n_val,
                predicted_accuracy=contributions.base_accuracy + score / contributions.n_val,
                bias_last_k=scheme.bias_last_k, weights={str(i): r for i, r in scheme.weights.items()})
    return scheme, info
