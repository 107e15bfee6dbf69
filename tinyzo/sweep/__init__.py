"""Experiments at scale: ``tinyzo sweep`` runs a grid of ``tinyzo train`` runs on Dask (or a process
pool), records each in a SQLite results database, resumes, and reports mean +- std over seeds.

- :mod:`tinyzo.sweep.spec`: the TOML spec -> runs (each keyed by a hash of its configuration).
- :mod:`tinyzo.sweep.worker`: one run in a worker (``tinyzo train``'s own code path, single-threaded).
- :mod:`tinyzo.sweep.execute`: the driver (Dask ``LocalCluster``, a remote scheduler, or processes).
- :mod:`tinyzo.sweep.db`: the results database.
- :mod:`tinyzo.sweep.report`: tables (Markdown, CSV) and plots.

See docs/sweep.md.
"""

from tinyzo.sweep.db import ResultsDB, ResultsDBError
from tinyzo.sweep.execute import SweepError, run_sweep
from tinyzo.sweep.report import (
                                 ReportError,
                                 aggregate,
                                 plot_curves,
                                 plot_pareto,
                                 plot_vs_param,
                                 select_rows,
                                 to_csv,
                                 to_markdown,
)
from tinyzo.sweep.spec import Run, Sweep, SweepSpecError, load_spec, parse_spec

__all__ = [
           "ReportError",
           "ResultsDB",
           "ResultsDBError",
           "Run",
           "Sweep",
           "SweepError",
           "SweepSpecError",
           "aggregate",
           "load_spec",
           "parse_spec",
           "plot_curves",
           "plot_pareto",
           "plot_vs_param",
           "run_sweep",
           "select_rows",
           "to_csv",
           "to_markdown",
]
