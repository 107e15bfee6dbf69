"""What a sweep worker runs: one ``tinyzo train`` run, single-threaded, returning its results.

:func:`execute_run` is the task sent to a Dask worker or a process pool. It never raises for a
failed run: it returns ``{"ok": False, "error": ...}`` so the driver records the error (a worker that
dies is a different event, seen by the driver as a lost task).
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import tempfile
import time
import traceback
from pathlib import Path

from tinyzo.argtypes import Parser
from tinyzo.train_command import add_train_arguments, train_run

__all__ = ["THREAD_ENV", "execute_run", "limit_threads"]

# one thread per run: workers are sized to the cores, so BLAS and Numba must not add threads of their own
THREAD_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "TINYZO_PROGRESS": "never"}


def limit_threads() -> None:
    """Make this process single-threaded for BLAS and Numba (also when they are already loaded)."""
    for k, v in THREAD_ENV.items():
        os.environ.setdefault(k, v)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    import numba

    numba.set_num_threads(1)


def execute_run(argv: list, shipped: dict | None = None, file_names: dict | None = None) -> dict:
    """Run ``tinyzo train`` with ``argv`` (see :meth:`tinyzo.sweep.spec.Run.argv`) and return its results.

    Args:
        argv: the train arguments; file paths in it are placeholders when ``shipped`` is given.
        shipped: name -> file bytes sent with the task (model, data, scheme); written to a temporary
            folder here and substituted for ``file_names[name]`` in ``argv``.
        file_names: name -> the placeholder path used in ``argv``.

    Returns:
        ``{"ok": True, "metrics": {...}, "worker", "tinyzo_version"}`` or ``{"ok": False, "error": "..."}``.
    """
    import tinyzo

    limit_threads()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tinyzo-run-") as tmp:
        try:
            args = list(argv)
            if shipped:
                for name, blob in shipped.items():
                    local = Path(tmp) / Path(file_names[name]).name
                    local.write_bytes(blob)
                    args = [str(local) if a == file_names[name] else a for a in args]
            parser = Parser(prog="tinyzo train")
            add_train_arguments(parser)
            ns = parser.parse_args(args[1:] + ["--no-progress"])  # args[0] is the sub-command name
            with contextlib.redirect_stdout(io.StringIO()):
                metrics = train_run(ns)
        except BaseException as e:  # a failed run is a result: the driver records it and retries it once
            if isinstance(e, KeyboardInterrupt):
                raise
            tb = traceback.format_exception_only(type(e), e)[-1].strip()
            return {"ok": False, "error": tb, "worker": worker, "tinyzo_version": tinyzo.__version__}
    metrics["seconds"] = round(time.perf_counter() - t0, 3)
    return {"ok": True, "metrics": metrics, "worker": worker, "tinyzo_version": tinyzo.__version__}
