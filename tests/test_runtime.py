"""Threads never change results; batch splitting covers every sample once."""

import numpy as np
import pytest

import tinyzo
from conftest import model_path
from tinyzo import runtime


@pytest.mark.parametrize("n, parts", [(1, 2), (2, 2), (5, 2), (7, 3), (32, 8), (3, 8)])
def test_split_batch_covers_each_sample_once(n, parts):
    chunks = runtime.split_batch(n, parts)
    idx = np.concatenate([np.arange(n)[s] for s in chunks])
    np.testing.assert_array_equal(idx, np.arange(n))
    assert all(s.stop > s.start for s in chunks)
    assert len(chunks) == min(n, parts)


def test_results_do_not_depend_on_thread_count():
    model = tinyzo.load(model_path("person_detect"))
    x = np.random.default_rng(3).integers(-128, 128, size=(5, 96, 96, 1), dtype=np.int8)
    before = runtime.get_num_threads()
    try:
        runtime.set_num_threads(1)
        y1, a1 = model(x, intermediates=True)
        runtime.set_num_threads(3)
        y3, a3 = model(x, intermediates=True)
    finally:
        runtime.set_num_threads(before)
    np.testing.assert_array_equal(y1, y3)
    assert a1.keys() == a3.keys()
    for k in a1:
        np.testing.assert_array_equal(a1[k], a3[k])


def test_set_num_threads_rejects_bad_values():
    with pytest.raises(ValueError):
        runtime.set_num_threads(0)


def test_keep_freed_memory_once_per_process(monkeypatch):
    """glibc's allocator keeps freed activation memory (mallopt, on the first model call); opt-out by env."""
    import ctypes

    monkeypatch.setitem(runtime._state, "malloc_done", None)
    monkeypatch.setenv("TINYZO_KEEP_MALLOC", "1")
    assert runtime.keep_freed_memory() is False  # left alone
    assert runtime.keep_freed_memory() is False  # and decided once
    monkeypatch.setitem(runtime._state, "malloc_done", None)
    monkeypatch.delenv("TINYZO_KEEP_MALLOC")
    has_mallopt = hasattr(ctypes.CDLL(None), "mallopt")
    assert runtime.keep_freed_memory() is has_mallopt


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_share_tasks_runs_every_task_once(threads):
    import threading

    before = runtime.get_num_threads()
    runtime.set_num_threads(threads)
    try:
        seen, lock = [], threading.Lock()

        def task(i):
            with lock:
                seen.append((i, threading.get_ident(), runtime.get_num_threads()))

        runtime.share_tasks(20, task)
    finally:
        runtime.set_num_threads(before)
    assert sorted(i for i, _, _ in seen) == list(range(20))
    assert all(n == 1 for _, _, n in seen) or threads == 1  # each task single-threaded
    if threads == 1:
        assert [i for i, _, _ in seen] == list(range(20))  # in order, on the calling thread
        assert {t for _, t, _ in seen} == {threading.get_ident()}


def test_share_tasks_stops_and_reraises_after_an_error():
    before = runtime.get_num_threads()
    runtime.set_num_threads(2)
    started = []
    try:
        def task(i):
            started.append(i)
            if i == 3:
                raise RuntimeError("task 3 failed")

        with pytest.raises(RuntimeError, match="task 3 failed"):
            runtime.share_tasks(1000, task)
    finally:
        runtime.set_num_threads(before)
    assert 3 in started and len(started) < 1000
