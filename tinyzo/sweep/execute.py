"""The sweep driver: send the runs that are not done yet to workers, record each as it finishes.

Backends:

- Dask (``pip install "tinyzo[dask]"``): by default a ``LocalCluster`` with one single-threaded worker
  process per core; ``scheduler="tcp://HOST:PORT"`` uses an existing cluster. A worker that dies
  mid-run is replaced by its nanny and Dask reschedules the run (up to Dask's
  ``distributed.scheduler.allowed-failures``, 3 by default; past that the run is recorded as failed).
- Without Dask: the standard library's process pool (``spawn``), with a note. A dead worker process
  breaks the pool; the driver starts a new one and reschedules the runs that were in flight.

A run that fails (an exception inside ``tinyzo train``) is retried once in the same invocation and
then recorded as failed with its error; re-running the spec skips done runs and retries failed ones.
Only the driver writes the database, one transaction per finished run.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path

from tinyzo.errors import TinyzoError
from tinyzo.progress import outer_bar
from tinyzo.sweep.db import ResultsDB
from tinyzo.sweep.spec import Sweep
from tinyzo.sweep.worker import THREAD_ENV, execute_run, limit_threads

__all__ = ["MAX_LOST", "SHIP_LIMIT_BYTES", "SweepError", "run_sweep"]

SHIP_LIMIT_BYTES = 256 * 1024 * 1024  # files shipped with the tasks to a remote cluster, in total
MAX_LOST = 3  # a run whose worker died this many times (process pool) is recorded as failed


class SweepError(TinyzoError):
    """A sweep cannot run (no workers, files too large to ship, a bad scheduler address)."""


def dask_available() -> bool:
    """True when ``dask.distributed`` can be imported."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def _ship(sweep: Sweep) -> tuple:
    """(name -> bytes, name -> placeholder path) of the files every run reads, for a remote cluster."""
    names = {}
    for run in sweep.runs:
        for name, path in run.files.items():
            names.setdefault(f"{name}:{path}", path)
    total = sum(Path(p).stat().st_size for p in names.values())
    if total > SHIP_LIMIT_BYTES:
        raise SweepError(f"the sweep's files are {total / 2**20:.1f} MiB, over the {SHIP_LIMIT_BYTES / 2**20:.0f} MiB "
                         "that are shipped with the tasks; put them on a filesystem the workers share and pass "
                         "--shared-fs")
    return {k: Path(p).read_bytes() for k, p in names.items()}, names


def _task_args(run, shipped_ref, names) -> tuple:
    """Arguments of :func:`execute_run` for ``run`` (paths as they are here, or shipped placeholders)."""
    if shipped_ref is None:
        return (run.argv(),)
    keys = {f"{n}:{p}" for n, p in run.files.items()}
    return run.argv(), shipped_ref, {k: names[k] for k in keys}


class _Progress:
    def __init__(self, sweep, done_before, enabled):
        self.bar = outer_bar(total=len(sweep.runs), initial=done_before, desc=f"sweep {sweep.name}", enabled=enabled)
        self.failed = 0

    def tick(self, ok: bool):
        self.failed += not ok
        if self.failed:
            self.bar.set_postfix(failed=self.failed)
        self.bar.update(1)

    def close(self):
        self.bar.close()


def run_sweep(sweep: Sweep, db_path, *, scheduler: str | None = None, workers: int | None = None,
              shared_fs: bool = False, backend: str = "auto", progress: bool = True, retries: int = 1,
              log=print) -> dict:
    """Run every run of ``sweep`` not yet done in the database at ``db_path``.

    Args:
        sweep: from :func:`tinyzo.sweep.load_spec`.
        db_path: the SQLite results database (created if missing).
        scheduler: ``tcp://HOST:PORT`` of a running Dask scheduler, or None for a local cluster.
        workers: local worker processes (default: the number of cores); ignored with ``scheduler``.
        shared_fs: with ``scheduler``: the workers read the model and data at the driver's paths
            (a shared filesystem) instead of receiving them with the tasks.
        backend: ``"auto"`` (Dask if installed, else the process pool), ``"dask"`` or ``"process"``.
        progress: a bar over runs with an ETA (quiet in logs, see :mod:`tinyzo.progress`).
        retries: how many times a failed run is retried in this invocation (default 1).
        log: where the one-line notes go.

    Returns:
        ``{"runs", "skipped", "done", "failed", "seconds", "backend", "workers"}``: counts of this
        invocation (``skipped``: done before), wall time and what ran them.
    """
    if backend not in ("auto", "dask", "process"):
        raise SweepError(f"backend must be auto, dask or process, got {backend!r}")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise SweepError(f"workers must be a positive integer, got {workers!r}")
    if not isinstance(retries, int) or retries < 0:
        raise SweepError(f"retries must be an integer >= 0, got {retries!r}")
    use_dask = backend == "dask" or (backend == "auto" and (dask_available() or scheduler is not None))
    if use_dask and not dask_available():
        raise SweepError('Dask is not installed: pip install "tinyzo[dask]" (or use the process pool: --backend process)')
    if scheduler is not None and not use_dask:
        raise SweepError("--scheduler needs the Dask backend")
    if backend == "auto" and not use_dask:
        log('note: Dask is not installed; running on the standard library process pool (pip install "tinyzo[dask]" '
            "for Dask and clusters)")
    n_workers = workers or os.cpu_count() or 1
    t0 = time.perf_counter()
    with ResultsDB(db_path) as db:
        status = db.status()
        todo = [r for r in sweep.runs if status.get(r.key, (None, 0))[0] != "done"]
        skipped = len(sweep.runs) - len(todo)
        prior_attempts = {r.key: status.get(r.key, (None, 0))[1] for r in todo}
        summary = {"runs": len(sweep.runs), "skipped": skipped, "done": 0, "failed": 0, "backend": "dask" if use_dask
                   else "process", "workers": None}
        if not todo:
            summary["seconds"] = round(time.perf_counter() - t0, 3)
            return summary
        bar = _Progress(sweep, skipped, progress)
        try:
            if use_dask:
                summary["workers"] = _run_dask(sweep, todo, db, bar, summary, prior_attempts, scheduler, n_workers,
                                               shared_fs, retries)
            else:
                summary["workers"] = n_workers
                _run_pool(sweep, todo, db, bar, summary, prior_attempts, n_workers, retries)
        finally:
            bar.close()
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    return summary


def _finish(db, sweep, run, result, attempts, bar, summary) -> None:
    db.record(run, sweep.name, result, attempts)
    summary["done" if result.get("ok") else "failed"] += 1
    bar.tick(bool(result.get("ok")))


def _run_dask(sweep, todo, db, bar, summary, prior, scheduler, n_workers, shared_fs, retries) -> int:
    import distributed
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    try:
        if scheduler is None:
            cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=logging.ERROR, env=dict(THREAD_ENV))
            client = Client(cluster)
        else:
            try:
                client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError, ValueError) as e:
                raise SweepError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
        with client:
            n = len(client.scheduler_info().get("workers", {}))
            shipped_ref, names = None, None
            if scheduler is not None and not shared_fs:
                blobs, names = _ship(sweep)
                [shipped_ref] = client.scatter([blobs], broadcast=True)
            started = {r.key: 0 for r in todo}
            futures = {}

            def submit(run):
                started[run.key] += 1
                fut = client.submit(execute_run, *_task_args(run, shipped_ref, names), pure=False,
                                    key=f"tinyzo-run-{run.key[:16]}-{started[run.key]}")
                futures[fut.key] = run
                return fut

            ac = as_completed([submit(r) for r in todo])
            for fut in ac:
                run = futures.pop(fut.key)
                try:
                    result = fut.result()
                except distributed.KilledWorker as e:
                    result = {"ok": False, "error": f"the worker running it died repeatedly ({e})"}
                except Exception as e:  # noqa: BLE001 - anything Dask reports is recorded, never lost
                    result = {"ok": False, "error": f"{type(e).__name__}: {e}"}
                if not result.get("ok") and started[run.key] <= retries:
                    ac.add(submit(run))
                    continue
                _finish(db, sweep, run, result, prior[run.key] + started[run.key], bar, summary)
            return n
    finally:
        if cluster is not None:
            cluster.close()


def _run_pool(sweep, todo, db, bar, summary, prior, n_workers, retries) -> None:
    started = {r.key: 0 for r in todo}
    lost = {r.key: 0 for r in todo}
    queue = list(todo)
    while queue:
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=get_context("spawn"),
                                 initializer=limit_threads) as pool:
            pending = {}
            for run in queue:
                started[run.key] += 1
                pending[pool.submit(execute_run, run.argv())] = run
            queue = []
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                    done, _ = wait(pending)  # the pool is gone: every run in flight ends now
                for fut in done:
                    run = pending.pop(fut)
                    if isinstance(fut.exception(), BrokenProcessPool):  # its worker died: not a failure of the run
                        lost[run.key] += 1
                        started[run.key] -= 1
                        if lost[run.key] >= MAX_LOST:
                            _finish(db, sweep, run, {"ok": False, "error": f"its worker process died {MAX_LOST} times"},
                                    prior[run.key] + started[run.key] + lost[run.key], bar, summary)
                        else:
                            queue.append(run)
                        continue
                    result = fut.result()
                    if not result.get("ok") and started[run.key] <= retries:
                        if queue:  # the pool broke meanwhile: retry in the next one
                            queue.append(run)
                        else:
                            started[run.key] += 1
                            pending[pool.submit(execute_run, run.argv())] = run
                        continue
                    _finish(db, sweep, run, result, prior[run.key] + started[run.key] + lost[run.key], bar, summary)
