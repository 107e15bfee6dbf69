"""Threads: how a batch is spread over the CPU cores, and BLAS kept single-threaded.

tinyzo computes most convolutions and fully-connected layers with an exact float
matrix product (BLAS: NumPy's, and SciPy's called from jitted kernels). Two thread pools on two
cores (BLAS's and ours) fight each other, so BLAS is limited to one thread (once, on the first model call;
see :func:`limit_blas_threads`) and a batch is split in contiguous chunks that
run in parallel Python threads (the jitted kernels release the GIL). Results do not depend on the number of threads:
every sample is computed by the same integer code.

The number of threads is ``TINYZO_NUM_THREADS`` if set, else the number of
CPUs (at most 8); :func:`set_num_threads` changes it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from tinyzo.errors import TinyzoError

_state = {"threads": None, "pool": None, "blas_done": False}
_local = threading.local()


class ThreadsError(TinyzoError, ValueError):
    """A thread count (``set_num_threads``, ``TINYZO_NUM_THREADS``) that is not a positive integer."""


def _default_threads() -> int:
    env = os.environ.get("TINYZO_NUM_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ThreadsError(f"TINYZO_NUM_THREADS must be a positive integer, got {env!r}") from None
        if n < 1:
            raise ThreadsError(f"TINYZO_NUM_THREADS must be a positive integer, got {env!r}")
        return n
    return max(1, min(8, os.cpu_count() or 1))


def get_num_threads() -> int:
    """Threads used to run a batch (>= 1); 1 inside :func:`single_threaded`."""
    if getattr(_local, "single", False):
        return 1
    if _state["threads"] is None:
        _state["threads"] = _default_threads()
    return _state["threads"]


@contextlib.contextmanager
def single_threaded():
    """Run every batch of the calling thread in that thread alone while the block lasts.

    A thread-local setting: work that is itself spread over the pool (e.g. the queries of a
    zeroth-order step, one per pool thread) runs each of its forward passes unsplit, and never
    waits on the pool from inside a pool thread. Results do not change (module docstring).
    """
    before = getattr(_local, "single", False)
    _local.single = True
    try:
        yield
    finally:
        _local.single = before


def set_num_threads(n: int) -> None:
    """Use ``n`` >= 1 threads for batches from now on (1 = run every batch in the calling thread)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ThreadsError(f"number of threads must be a positive integer, got {n!r}")
    _state["threads"] = n
    if _state["pool"] is not None:
        _state["pool"].shutdown(wait=False)
        _state["pool"] = None


def pool() -> ThreadPoolExecutor:
    """The shared worker pool (created on first use)."""
    if _state["pool"] is None:
        _state["pool"] = ThreadPoolExecutor(max_workers=get_num_threads(), thread_name_prefix="tinyzo")
    return _state["pool"]


def share_tasks(n_tasks: int, task) -> None:
    """Run ``task(i)`` for every ``i`` in ``range(n_tasks)`` on the calling thread and up to
    ``get_num_threads() - 1`` pool threads at once, each thread taking the next task not yet taken (the
    calling thread works instead of waiting, and a thread slowed by the machine takes fewer), each inside
    :func:`single_threaded` (a task never waits on the pool from a pool thread). In order on the
    calling thread alone when there is one thread or one task. After a task raises no task starts; the
    call returns once every thread has stopped and re-raises the error.
    """
    threads = min(get_num_threads(), n_tasks)
    if threads < 2:
        for i in range(n_tasks):
            task(i)
        return
    taken = itertools.count()
    failed = threading.Event()

    def worker():
        with single_threaded():
            while not failed.is_set():
                i = next(taken)  # atomic under the GIL: every task is taken once
                if i >= n_tasks:
                    return
                try:
                    task(i)
                except BaseException:
                    failed.set()
                    raise

    helpers = [pool().submit(worker) for _ in range(threads - 1)]
    try:
        worker()
    finally:
        for f in helpers:
            f.result()  # waits for every helper; re-raises a helper's error


def limit_blas_threads() -> None:
    """Limit BLAS to one thread for good (once per process).

    Switching BLAS's thread count on every call and back costs about 0.1 ms
    (its threads are stopped and woken), so tinyzo sets it once, on the first
    model call, and leaves it: tinyzo spreads work over cores itself. Set
    ``TINYZO_KEEP_BLAS_THREADS=1`` to leave BLAS alone (slower and noisier
    for tinyzo, but your own numpy code keeps its BLAS threads).
    """
    if not _state.get("blas_done"):
        _state["blas_done"] = True
        if os.environ.get("TINYZO_KEEP_BLAS_THREADS") != "1":
            # the jitted CONV_2D kernels call BLAS through SciPy's own OpenBLAS (Numba's np.dot):
            # load it first so that the limit reaches it too
            import scipy.linalg.cython_blas  # noqa: F401
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=1, user_api="blas")


#: glibc ``mallopt`` parameters and the values :func:`keep_freed_memory` sets
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's largest allowed value
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep freed activation memory for reuse (once per process); True if done.

    Each operator returns a new output array. With glibc's defaults, arrays over its dynamic mmap
    threshold get fresh pages from the kernel and freed memory at the top of the heap is given back, so
    every model call pays a page fault (and zeroing) per 4 KiB of activations: measured 10-50% of a
    batch-32 call of person_detect here, and a noisy one. tinyzo raises the mmap threshold to
    :data:`MMAP_THRESHOLD_BYTES` and the trim threshold to :data:`TRIM_THRESHOLD_BYTES` with
    ``mallopt`` on the first model call (a process-wide setting: up to that much freed memory stays
    with the process instead of going back to the system). ``TINYZO_KEEP_MALLOC=1`` leaves the
    allocator alone; on a C library without ``mallopt`` (not glibc) nothing changes.
    """
    if _state.get("malloc_done") is not None:
        return _state["malloc_done"]
    done = False
    if os.environ.get("TINYZO_KEEP_MALLOC") != "1":
        try:
            import ctypes

            libc = ctypes.CDLL(None)
            mallopt = libc.mallopt
            mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
            done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
                mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
        except (OSError, AttributeError):  # no glibc
            done = False
    _state["malloc_done"] = done
    return done


def split_batch(n: int, parts: int) -> list[slice]:
    """Split ``range(n)`` into at most ``parts`` contiguous, non-empty, nearly equal slices."""
    parts = max(1, min(parts, n))
    q, r = divmod(n, parts)
    out, start = [], 0
    for k in range(parts):
        stop = start + q + (1 if k < r else 0)
        out.append(slice(start, stop))
        start = stop
    return out
