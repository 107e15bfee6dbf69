"""A ZO step's results are pinned bit for bit: the faster step (issue 15) changes no weight, bias,
optimizer state or loss. The hashes were computed by tests/zo_pinned.py on the trainer before the
speed work (commit 92a2c04); any change to the PRNG schedule, the float32 summation order or the
update shows up here."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).with_name("zo_pinned.py")
_spec = importlib.util.spec_from_file_location("zo_pinned", SCRIPT)
zo_pinned = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(zo_pinned)

#: SHA-256 of (loss, int8 weights, int32 biases, optimizer float32 state) after every step, commit 92a2c04
PINNED = {
    "node-rge-shadow": "884c01768c0d1a0763b6a731198134c34f8d754b05b82d53ddbb9ae1b7883a60",
    "node-spsa-uniform": "2d529f602ef503fe9a13adb0bad59ab6718182ee7d8974129ef7941f7a6dadc3",
    "weight-spsa-gaussian": "b260e295b7896af2c5b7830d38e142e9d71e51494827611374351ccffc41464a",
    "weight-rge-channels": "73fe7ea0b6de25037725ac2cc5f6fa79bd14b4a0f28797e22d212beca606bf49",
    "mixed-signspsa": "ca5d9cf8c1f9460b8e604e636ab2b97e6abae14c4dbbad39024fd5ebea2afa65",
    "mixed-rge-bias": "60ccdfdf8c1525fa8083d1e54024d25eb42f755945ef323b449161896247f651",
    "node-last-layer": "da31d617ee8a3e448415fc1cccb7325db5aeedfc3e83a842aca0f6761a3fc932",
}
PINNED_NOJIT = {
    "node-rge-small": "c694c606b0cb0e9d4e39257d84e784d460e9fc9f03c335394ce0726f05c23550",
    "mixed-spsa-small": "464ea6a35b681fc0e116042dcb4b4b20556156d3a3656de5235a2645f85c3b0a",
}


def test_every_case_is_pinned():
    assert set(PINNED) == set(zo_pinned.CASES) and set(PINNED_NOJIT) == set(zo_pinned.NOJIT_CASES)


@pytest.mark.parametrize("case", sorted(PINNED))
def test_zo_steps_are_bit_identical_to_the_pinned_run(case):
    assert zo_pinned.run_case(case) == PINNED[case]


@pytest.mark.parametrize("case", sorted(PINNED_NOJIT))
def test_small_cases_with_jit(case):
    assert zo_pinned.run_case(case) == PINNED_NOJIT[case]


@pytest.mark.slow
def test_small_cases_without_jit():
    """The same hashes from the interpreted kernels (NUMBA_DISABLE_JIT=1)."""
    if os.environ.get("NUMBA_DISABLE_JIT") == "1":
        pytest.skip("already running without JIT")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    r = subprocess.run([sys.executable, str(SCRIPT), *sorted(PINNED_NOJIT)], env=env, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    got = dict(line.split() for line in r.stdout.strip().splitlines())
    assert got == PINNED_NOJIT


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("case", ["node-rge-shadow", "node-spsa-uniform", "mixed-rge-bias"])
def test_thread_count_changes_no_bit(case, threads):
    """Node perturbation runs its queries on the thread pool when tinyzo has several threads
    (ZOTrainer.queries); 1, 2 or 3 threads give the pinned bits."""
    from tinyzo import runtime

    before = runtime.get_num_threads()
    runtime.set_num_threads(threads)
    try:
        assert zo_pinned.run_case(case) == PINNED[case]
    finally:
        runtime.set_num_threads(before)


def test_single_threaded_is_thread_local():
    from concurrent.futures import ThreadPoolExecutor

    from tinyzo import runtime

    before = runtime.get_num_threads()
    runtime.set_num_threads(2)
    try:
        with runtime.single_threaded():
            assert runtime.get_num_threads() == 1
            with ThreadPoolExecutor(1) as ex:
                assert ex.submit(runtime.get_num_threads).result() == 2
        assert runtime.get_num_threads() == 2
    finally:
        runtime.set_num_threads(before)


@pytest.mark.parametrize("case", ["node-rge-shadow", "mixed-rge-bias"])
def test_layer_by_layer_update_is_the_one_shot_update(case, monkeypatch):
    """ZOTrainer.step updates each node layer as soon as its gradient is known (while the thread pool
    computes the others'): the pinned runs take that path, and with it turned off (the trainer's
    gradients, then one optimizer step) the bits are the same."""
    from tinyzo.training.update import IntegerSGD
    from tinyzo.zo.trainer import ZOTrainer

    calls = []
    real = IntegerSGD.update_params

    def spy(self, params, grads, scales):
        calls.append(sorted(params))
        return real(self, params, grads, scales)

    monkeypatch.setattr(IntegerSGD, "update_params", spy)
    assert zo_pinned.run_case(case) == PINNED[case]
    per_step = [c for c in calls if c]
    assert per_step and all(len({name.split("/")[0] for name in c}) == 1 for c in per_step[:3])
    calls.clear()
    monkeypatch.setattr(ZOTrainer, "_updates_per_layer", lambda self: False)
    assert zo_pinned.run_case(case) == PINNED[case]


def _node_trainer(queries=2):
    import tinyzo
    from tinyzo.zo.trainer import ZOConfig, ZOTrainer

    model = tinyzo.load(zo_pinned.REF)
    cfg = ZOConfig(layers=model.trainable_ops()[-6:], seed=1, target="node", estimator="rge", queries=queries,
                   lr=5e-4)
    rng = np.random.default_rng(0)
    return ZOTrainer(model, cfg), rng.integers(-128, 128, (8, 32, 32, 1), dtype=np.int8), rng.integers(0, 10, 8)


def test_layer_gradients_share_the_calling_thread_and_the_pool(monkeypatch):
    """With 2 threads the node layers' local backward runs on the calling thread and one pool thread
    (never more threads than tinyzo's), every layer once."""
    import threading

    from tinyzo import runtime
    from tinyzo.zo import trainer as trainer_mod

    seen = []
    real = trainer_mod.local_backward_from_acc
    pool_started = threading.Event()

    def spy(model, k, x, d):
        main = threading.current_thread() is threading.main_thread()
        seen.append((k, main))
        if main:  # a pool thread may wake slowly: give it the time to take a layer (the small layers are quick)
            pool_started.wait(10)
        else:
            pool_started.set()
        return real(model, k, x, d)

    monkeypatch.setattr(trainer_mod, "local_backward_from_acc", spy)
    before = runtime.get_num_threads()
    runtime.set_num_threads(2)
    try:
        trainer, x, y = _node_trainer()
        for _ in range(3):
            trainer.step(x, y)
    finally:
        runtime.set_num_threads(before)
    per_step = [seen[i:i + 6] for i in range(0, len(seen), 6)]
    assert len(seen) == 18 and all(sorted(k for k, _ in s) == sorted(trainer.node_layers) for s in per_step)
    assert any(main for _, main in seen) and not all(main for _, main in seen)


def test_layer_gradient_error_on_the_pool_is_raised(monkeypatch):
    """A failing layer on the pool thread reaches the caller of step, and no layer is left running."""
    import threading

    from tinyzo import runtime
    from tinyzo.zo import trainer as trainer_mod

    real = trainer_mod.local_backward_from_acc
    running = []
    pool_started = threading.Event()

    def failing(model, k, x, d):
        running.append(1)
        try:
            if threading.current_thread() is not threading.main_thread():
                pool_started.set()
                raise RuntimeError(f"layer {k} failed on the pool")
            pool_started.wait(10)  # the pool thread takes a layer (it may wake slowly)
            return real(model, k, x, d)
        finally:
            running.pop()

    monkeypatch.setattr(trainer_mod, "local_backward_from_acc", failing)
    before = runtime.get_num_threads()
    runtime.set_num_threads(2)
    try:
        trainer, x, y = _node_trainer()
        with pytest.raises(RuntimeError, match="failed on the pool"):
            trainer.step(x, y)
        assert running == []
    finally:
        runtime.set_num_threads(before)


def test_query_group_size():
    from tinyzo.zo.trainer import MAX_QUERY_GROUP, QUERY_GROUP, query_group_size

    assert query_group_size(8, 1) == QUERY_GROUP == 2
    assert query_group_size(8, 2) == MAX_QUERY_GROUP == 4
    assert [query_group_size(8, t) for t in (3, 4, 8)] == [3, 2, 2]
    assert query_group_size(50, 2) == 4 and query_group_size(1, 2) == 2


def test_query_groups_of_any_size_give_the_same_bits():
    """8 node queries: pairs on 1 thread, groups of 4 on 2 threads, of 3 (3, 3, 2) on 3 threads: the same
    weights, biases and losses after every step."""
    from tinyzo import runtime

    def run(threads):
        before = runtime.get_num_threads()
        runtime.set_num_threads(threads)
        try:
            trainer, x, y = _node_trainer(queries=8)
            out = []
            for _ in range(2):
                out.append(trainer.step(x, y)["loss"])
                out.extend(a for k in trainer.layers for a in trainer.model.get_params(k) if a is not None)
            return out
        finally:
            runtime.set_num_threads(before)

    ref = run(1)
    for threads in (2, 3):
        got = run(threads)
        assert len(got) == len(ref) and all(np.array_equal(a, b) for a, b in zip(ref, got))
