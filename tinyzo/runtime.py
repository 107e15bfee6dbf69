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
