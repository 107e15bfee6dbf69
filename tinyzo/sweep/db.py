"""The results database of sweeps: SQLite (stdlib), one row per run, keyed by the run's config hash.

Only the sweep driver writes, one transaction per finished run, so killing the driver or a worker
loses at most the runs in flight; SQLite's journal makes every committed row survive a kill. The
schema (``runs``) is documented in docs/sweep.md; ``meta`` holds the schema version.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from tinyzo.errors import TinyzoError

__all__ = ["METRIC_COLUMNS", "SCHEMA_VERSION", "TEXT_COLUMNS", "ResultsDB", "ResultsDBError"]

SCHEMA_VERSION = 2

# numeric result columns (REAL or INTEGER), in report order
METRIC_COLUMNS = ("before", "after", "clean", "recovered", "forward_passes", "backward_passes", "seconds",
                  "sram_bytes", "sram_lean_bytes", "trained_params", "scheme_bytes")
# text result columns
TEXT_COLUMNS = ("scheme",)
# columns added by each schema version after 1: an older database gains them (NULL in its old rows)
_ADDED = {2: (("trained_params", "INTEGER"), ("scheme_bytes", "INTEGER"), ("scheme", "TEXT"))}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    key             TEXT PRIMARY KEY,   -- SHA-256 of the run's configuration
    sweep           TEXT NOT NULL,      -- the spec's name
    method          TEXT NOT NULL,      -- the method's label in the spec
    seed            INTEGER NOT NULL,
    options         TEXT NOT NULL,      -- JSON: the tinyzo train options of the run
    config          TEXT NOT NULL,      -- JSON: the hashed configuration (options, seed, file digests)
    status          TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    attempts        INTEGER NOT NULL,   -- how many times the run was started, over all invocations
    error           TEXT,               -- the last error (failed runs)
    before          REAL,               -- test accuracy before training (corrupted test split)
    after           REAL,               -- test accuracy after training
    clean           REAL,               -- test accuracy of the model on the uncorrupted test split
    recovered       REAL,               -- (after - before) / (clean - before); NULL without a corruption
    forward_passes  INTEGER,
    backward_passes INTEGER,
    seconds         REAL,               -- wall time of the run in its worker
    sram_bytes      INTEGER,            -- training peak SRAM on the device (memory planner, batch 1, as run)
    sram_lean_bytes INTEGER,            -- the same with plain SGD and per-step rounding
    trained_params  INTEGER,            -- parameters the run updates
    scheme_bytes    INTEGER,            -- bp: the sparse scheme's per-layer memory count (docs/training_bp.md)
    scheme          TEXT,               -- bp: the sparse scheme's label (e.g. chosen by --scheme-search)
    history         TEXT,               -- JSON: one object per epoch (tinyzo.training.loop.fit's history)
    tinyzo_version  TEXT,
    command         TEXT NOT NULL,      -- the `tinyzo train ...` command that reproduces the run alone
    worker          TEXT,               -- where it ran
    finished_at     TEXT                -- UTC, ISO 8601
);
"""


class ResultsDBError(TinyzoError):
    """The results database cannot be opened or is not a tinyzo sweep database."""


class ResultsDB:
    """A sweep results database at ``path`` (created if missing).

    Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path, *, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise ResultsDBError(f"no results database at {self.path}")
        if create and not self.path.parent.is_dir():
            raise ResultsDBError(f"the folder of {self.path} does not exist")
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=30)
            self.conn.row_factory = sqlite3.Row
            with self.conn:
                self.conn.executescript(_SCHEMA)
                row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is None:
                    self.conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                elif int(row[0]) > SCHEMA_VERSION:
                    raise ResultsDBError(f"{self.path}: schema version {row[0]} is newer than this tinyzo's "
                                         f"({SCHEMA_VERSION}); upgrade tinyzo to read it")
                elif int(row[0]) < SCHEMA_VERSION:
                    self._upgrade(int(row[0]))
        except sqlite3.DatabaseError as e:
            raise ResultsDBError(f"{self.path} is not a tinyzo results database: {e}") from None

    def _upgrade(self, version: int) -> None:
        """Add the columns of the schema versions after ``version`` (inside the open transaction)."""
        have = {r[1] for r in self.conn.execute("PRAGMA table_info(runs)")}
        for v in range(version + 1, SCHEMA_VERSION + 1):
            for name, kind in _ADDED.get(v, ()):
                if name not in have:
                    self.conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
        self.conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """Close the connection (every finished run is already committed)."""
        self.conn.close()

    def status(self) -> dict:
        """``{key: (status, attempts)}`` of every recorded run."""
        return {r["key"]: (r["status"], r["attempts"]) for r in self.conn.execute("SELECT key, status, attempts FROM runs")}

    def record(self, run, sweep: str, result: dict, attempts: int) -> None:
        """Write one finished run (``result`` from :func:`tinyzo.sweep.worker.execute_run`) in one
        transaction; a run recorded before (failed) is replaced."""
        ok = bool(result.get("ok"))
        m = result.get("metrics", {}) if ok else {}
        row = {
            "key": run.key, "sweep": sweep, "method": run.label, "seed": run.seed,
            "options": json.dumps(run.options, sort_keys=True), "config": json.dumps(run.config, sort_keys=True),
            "status": "done" if ok else "failed", "attempts": int(attempts),
            "error": None if ok else str(result.get("error", "unknown error"))[:4000],
            **{c: m.get(c) for c in METRIC_COLUMNS + TEXT_COLUMNS},
            "history": json.dumps(m.get("history")) if ok else None,
            "tinyzo_version": result.get("tinyzo_version"), "command": run.command, "worker": result.get("worker"),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.conn:
            self.conn.execute(f"INSERT OR REPLACE INTO runs ({cols}) VALUES ({marks})", tuple(row.values()))

    def rows(self, *, status: str | None = "done", sweep: str | None = None) -> list:
        """Recorded runs as dicts (``options`` and ``history`` decoded), in insertion order."""
        q, args = "SELECT * FROM runs", []
        conds = []
        if status is not None:
            conds.append("status = ?")
            args.append(status)
        if sweep is not None:
            conds.append("sweep = ?")
            args.append(sweep)
        if conds:
            q += " WHERE " + " AND ".join(conds)
        out = []
        for r in self.conn.execute(q + " ORDER BY rowid", args):
            d = dict(r)
            d["options"] = json.loads(d["options"])
            d["config"] = json.loads(d["config"])
            d["history"] = json.loads(d["history"]) if d["history"] else None
            out.append(d)
        return out
