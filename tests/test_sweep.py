"""`tinyzo sweep`: spec parsing, the results database, resume, Dask and process-pool execution, reports."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tinyzo import data
from tinyzo.cli import main
from tinyzo.sweep import ResultsDB, aggregate, load_spec, parse_spec, run_sweep, to_csv, to_markdown
from tinyzo.sweep.db import ResultsDBError
from tinyzo.sweep.report import ReportError, select_rows
from tinyzo.sweep.spec import SweepSpecError

SPEC = """
[sweep]
name = "small"
model = "reference:digits_cnn"
data = "{data}"
seeds = {seeds}

[train]
epochs = 1
batch-size = 32
corruption = "motion_blur"
severity = 5

[methods.zo-weight]
method = "zo-rge-weight"
layers = "11"
queries = 2
lr = 1e-4

[methods.bp]
method = "bp"
layers = "9,11"
lr = 3e-3
"""


@pytest.fixture(scope="module")
def digits_subset(tmp_path_factory) -> Path:
    """A small slice of the bundled digits (a tinyzo dataset file) so each run takes about a second."""
    ds = data.load("digits")
    p = tmp_path_factory.mktemp("data") / "digits_small.npz"
    data.save(data.Dataset(ds.x_train[:192], ds.y_train[:192], ds.x_val[:48], ds.y_val[:48], ds.x_test[:96],
                           ds.y_test[:96], name="digits_small", classes=ds.classes), p)
    return p


def _spec(tmp_path, data_path, seeds=(0, 1), name="small") -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(SPEC.format(data=data_path, seeds=list(seeds)).replace('name = "small"', f'name = "{name}"'))
    return p


def _strip(row: dict) -> dict:
    """A result row without what legitimately varies between identical runs (timings, where, when)."""
    out = {k: v for k, v in row.items() if k not in ("seconds", "worker", "finished_at")}
    out["history"] = [{k: v for k, v in h.items() if k != "seconds"} for h in row["history"] or []]
    return out


# ---------------------------------------------------------------------------------------------- spec


def test_spec_expands_grid_zip_methods_and_seeds(tmp_path, digits_subset):
    text = f"""
[sweep]
model = "reference:digits_cnn"
data = "{digits_subset}"
seeds = [0, 1, 2]
[train]
epochs = 1
[grid]
corruption = ["fog", "motion_blur"]
severity = [4, 5]
[zip]
batch_size = [16, 32]
update = ["per_step", "shadow"]
[methods.zo]
method = "zo-rge-node"
lr = [1e-4, 5e-4, 1e-3]
[methods.bp]
method = "bp"
no-qas = true
"""
    sw = parse_spec(text, base_dir=tmp_path, name="grid")
    # zo: 4 grid x 2 zip x 3 lr x 3 seeds; bp: 4 x 2 x 1 x 3
    assert len(sw.runs) == 72 + 24 and sw.name == "grid"
    assert len({r.key for r in sw.runs}) == len(sw.runs)
    zips = {(r.options["batch_size"], r.options["update"]) for r in sw.runs}
    assert zips == {(16, "per_step"), (32, "shadow")}   # zipped, not a product
    bp = [r for r in sw.runs if r.label == "bp"][0]
    assert "--no-qas" in bp.argv() and bp.argv()[:5] == ["train", bp.model, "--data", str(digits_subset), "--seed"]
    assert bp.command.startswith("tinyzo train ")
    # the key is the configuration: same text -> same keys; another lr -> another key; a moved file -> same key
    again = parse_spec(text, base_dir=tmp_path, name="grid")
    assert [r.key for r in again.runs] == [r.key for r in sw.runs]
    other = parse_spec(text.replace("5e-4", "6e-4"), base_dir=tmp_path, name="grid")
    assert len(set(r.key for r in other.runs) - set(r.key for r in sw.runs)) == 24  # 4 grid x 2 zip x 3 seeds
    moved = tmp_path / "moved.npz"
    moved.write_bytes(digits_subset.read_bytes())
    assert [r.key for r in parse_spec(text.replace(str(digits_subset), str(moved)), base_dir=tmp_path).runs] == \
        [r.key for r in sw.runs]


@pytest.mark.parametrize("edit, match", [
    (lambda t: t.replace("queries = 2", "queries = 'many'"), "queries"),
    (lambda t: t.replace("queries = 2", "quer = 2"), "unknown option 'quer'"),
    (lambda t: t.replace("epochs = 1", "epochs = [1, 2]"), r"\[train\] epochs is a list"),
    (lambda t: t + "\n[grid]\nlr = [1e-3, 1e-4]\n", "set each option in one place"),
    (lambda t: t + "\n[zip]\nlr = [1e-3]\nqueries = [1, 2]\n", "one length"),
    (lambda t: t.replace('model = "reference:digits_cnn"', 'model = "nope.tflite"'), "does not exist"),
    (lambda t: t.replace("seeds = [0, 1]", "seeds = [0, 0]"), "seeds repeat"),
    (lambda t: t.replace("[train]", "[train]\nout = 'x.tflite'"), "set by the sweep"),
    (lambda t: t.replace("[methods.bp]", "[methods.bp]\noptimizer = 'lbfgs'"), "choose from"),
    (lambda t: t + "\n[extra]\na = 1\n", "unknown table"),
    (lambda t: t.replace("[sweep]", "[sweep"), "not valid TOML"),
])
def test_bad_specs_are_one_line_errors(tmp_path, digits_subset, edit, match):
    text = edit(SPEC.format(data=digits_subset, seeds=[0, 1]))
    with pytest.raises(SweepSpecError, match=match):
        parse_spec(text, base_dir=tmp_path)


def test_cli_dry_run_lists_the_reproducing_commands(tmp_path, digits_subset, capsys):
    spec = _spec(tmp_path, digits_subset)
    assert main(["sweep", "run", str(spec), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len([ln for ln in out if "tinyzo train " in ln]) == 4 and out[-1].startswith("4 runs")
    assert main(["sweep", "run", str(tmp_path / "missing.toml")]) == 2
    assert capsys.readouterr().err.startswith("tinyzo: error: no sweep spec")


# ---------------------------------------------------------------------------------------------- report


class _FakeRun:
    def __init__(self, key, label, seed, options):
        self.key, self.label, self.seed, self.options = key, label, seed, options
        self.config = {"k": key}
        self.command = f"tinyzo train m --seed {seed}"


def test_report_mean_std_match_a_hand_computation(tmp_path, capsys):
    db_path = tmp_path / "r.sqlite"
    vals = {("a", 0.01): [0.50, 0.60, 0.70], ("a", 0.1): [0.80, 0.90], ("b", 0.01): [0.40]}
    with ResultsDB(db_path) as db:
        i = 0
        for (m, lr), afters in vals.items():
            for seed, after in enumerate(afters):
                run = _FakeRun(f"k{i}", m, seed, {"lr": lr, "corruption": "fog"})
                metrics = {"before": 0.3, "after": after, "clean": 0.9, "recovered": (after - 0.3) / 0.6,
                           "forward_passes": 100 * (seed + 1), "backward_passes": 0, "seconds": 1.0,
                           "sram_bytes": 2048, "sram_lean_bytes": 1024,
                           "history": [{"epoch": 1, "val_acc": after - 0.1, "forward_passes": 50 * (seed + 1)},
                                       {"epoch": 2, "val_acc": after, "forward_passes": 100 * (seed + 1)}]}
                db.record(run, "hand", {"ok": True, "metrics": metrics, "worker": "w", "tinyzo_version": "t"}, 1)
                i += 1
        db.record(_FakeRun("bad", "a", 9, {"lr": 0.01}), "hand", {"ok": False, "error": "boom"}, 2)
        rows = db.rows()
        assert len(rows) == 6 and len(db.rows(status="failed")) == 1
    table = aggregate(rows, ["method", "lr"], ["after", "forward_passes"])
    got = {(t["method"], t["lr"]): t for t in table}
    assert got[("a", 0.01)]["after_mean"] == pytest.approx(0.6)
    assert got[("a", 0.01)]["after_std"] == pytest.approx(0.1)          # sample std of .5 .6 .7
    assert got[("a", 0.1)]["after_std"] == pytest.approx(np.sqrt(0.005))  # sample std of .8 .9
    assert got[("b", 0.01)]["after_std"] is None and got[("b", 0.01)]["n"] == 1
    assert got[("a", 0.01)]["forward_passes_mean"] == pytest.approx(200)
    md = to_markdown(table, ["method", "lr"], ["after", "forward_passes"])
    assert "| a | 0.01 | 3 | 60.0 ± 10.0% | 200 ± 100 |" in md
    assert to_csv(table).splitlines()[0].startswith("method,lr,n,after_n,after_mean,after_std")
    with pytest.raises(ReportError, match="grouping key 'nope'"):
        aggregate(rows, ["nope"])
    # the command: table, CSV and the three plots
    out = tmp_path / "plots"
    out.mkdir()
    assert main(["sweep", "report", str(db_path), "--group-by", "method", "--csv", str(tmp_path / "t.csv"),
                 "--plots", str(out), "--x", "lr"]) == 0
    for f in ("curves.png", "curves_forward_passes.png", "pareto.png", "vs_lr.png"):
        assert (out / f).stat().st_size > 1000, f
    # --where: one key, numbers compared as numbers; joined keys select pairs
    assert {r["method"] for r in select_rows(rows, ["lr=1e-2"])} == {"a", "b"}
    assert [(r["method"], r["options"]["lr"]) for r in select_rows(rows, ["method+lr=a+0.1"])] == [("a", 0.1)] * 2
    with pytest.raises(ReportError, match="one value per key"):
        select_rows(rows, ["method+lr=a"])
    with pytest.raises(ReportError, match="no run has key 'nope'"):
        select_rows(rows, ["nope=1"])
    assert main(["sweep", "report", str(db_path), "--where", "method=a", "--where", "lr=0.1"]) == 0
    assert "| a | 2 |" in capsys.readouterr().out
    assert main(["sweep", "report", str(db_path), "--where", "method=zzz"]) == 2
    page = tmp_path / "page.md"
    page.write_text("# Results\n\n<!-- sweep-table:begin -->\nold table\n<!-- sweep-table:end -->\n\nFindings: kept.\n")
    assert main(["sweep", "report", str(db_path), "--group-by", "method", "--update-md", str(page)]) == 0
    text = page.read_text()
    assert "old table" not in text and "| a | 6 |" not in text and "| a | 5 |" in text and text.endswith("Findings: kept.\n")
    page.write_text("no marks")
    assert main(["sweep", "report", str(db_path), "--update-md", str(page)]) == 2
    assert main(["sweep", "report", str(tmp_path / "none.sqlite")]) == 2
    (tmp_path / "junk.sqlite").write_bytes(b"not a database" * 100)
    with pytest.raises(ResultsDBError):
        ResultsDB(tmp_path / "junk.sqlite")


# ---------------------------------------------------------------------------------------------- execution


def test_process_pool_sweep_records_every_run_and_resume_skips_them(tmp_path, digits_subset, capsys):
    spec = load_spec(_spec(tmp_path, digits_subset))
    db = tmp_path / "p.sqlite"
    res = run_sweep(spec, db, backend="process", workers=2, progress=False)
    assert (res["done"], res["failed"], res["skipped"]) == (4, 0, 0)
    with ResultsDB(db) as d:
        rows = d.rows()
    assert sorted(r["key"] for r in rows) == sorted(r.key for r in spec.runs)
    for r in rows:
        assert r["attempts"] == 1 and r["before"] is not None and r["sram_bytes"] > 0 and len(r["history"]) == 1
        assert r["command"].startswith("tinyzo train ") and r["tinyzo_version"]
    bp = [r for r in rows if r["method"] == "bp"]
    assert all(r["backward_passes"] > 0 for r in bp)
    again = run_sweep(spec, db, backend="process", workers=2, progress=False)
    assert (again["done"], again["skipped"]) == (0, 4)
    # a run reproduces alone with its recorded command (same code path): same accuracy
    r0 = rows[0]
    argv = r0["command"].split()[1:]
    from tinyzo.cli import build_parser
    from tinyzo.train_command import train_run

    assert train_run(build_parser().parse_args(argv + ["--no-progress"]))["after"] == r0["after"]


def test_failed_runs_are_recorded_retried_once_and_retried_on_resume(tmp_path, digits_subset):
    text = SPEC.format(data=digits_subset, seeds=[0]).replace('layers = "11"', 'layers = "7"')  # 7 is not trainable
    spec = parse_spec(text, base_dir=tmp_path, name="fails")
    db = tmp_path / "f.sqlite"
    res = run_sweep(spec, db, backend="process", workers=2, progress=False)
    assert (res["done"], res["failed"]) == (1, 1)
    with ResultsDB(db) as d:
        [bad] = d.rows(status="failed")
    assert bad["attempts"] == 2 and "not trainable" in bad["error"]
    res = run_sweep(spec, db, backend="process", workers=1, progress=False)
    assert (res["skipped"], res["failed"]) == (1, 1)
    with ResultsDB(db) as d:
        assert d.rows(status="failed")[0]["attempts"] == 4


dask_distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")


def test_dask_local_cluster_gives_the_same_rows_as_the_process_pool(tmp_path, digits_subset):
    spec = load_spec(_spec(tmp_path, digits_subset))
    res = run_sweep(spec, tmp_path / "d.sqlite", backend="dask", workers=2, progress=False)
    assert (res["done"], res["failed"], res["backend"], res["workers"]) == (4, 0, "dask", 2)
    run_sweep(spec, tmp_path / "p.sqlite", backend="process", workers=2, progress=False)
    with ResultsDB(tmp_path / "d.sqlite") as a, ResultsDB(tmp_path / "p.sqlite") as b:
        ra = {r["key"]: _strip(r) for r in a.rows()}
        rb = {r["key"]: _strip(r) for r in b.rows()}
    assert ra == rb and len(ra) == 4


def test_a_killed_dask_worker_is_survived_and_its_run_rescheduled(tmp_path, digits_subset):
    """A remote-style cluster (the driver ships the files with the tasks); one worker is SIGKILLed while
    it runs a task; every run still ends up recorded exactly once."""
    from distributed import Client, LocalCluster

    spec = load_spec(_spec(tmp_path, digits_subset, seeds=(0, 1, 2)))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        box = {}
        t = threading.Thread(target=lambda: box.update(res=run_sweep(spec, tmp_path / "k.sqlite",
                                                                     scheduler=cluster.scheduler_address,
                                                                     progress=False)))
        t.start()
        killed = None
        deadline = time.time() + 240
        while killed is None and time.time() < deadline and t.is_alive():
            busy = [w for w, tasks in client.processing().items() if any("tinyzo-run" in str(k) for k in tasks)]
            if busy:
                time.sleep(0.5)  # let it start the run
                pids = client.run(os.getpid, workers=busy[:1])
                killed = next(iter(pids.values()))
                os.kill(killed, signal.SIGKILL)
            time.sleep(0.1)
        t.join(timeout=600)
    assert killed is not None, "no worker was seen running a task"
    res = box["res"]
    assert (res["done"], res["failed"]) == (6, 0)
    con = sqlite3.connect(tmp_path / "k.sqlite")
    keys = [k for (k,) in con.execute("SELECT key FROM runs")]
    con.close()
    assert sorted(keys) == sorted(r.key for r in spec.runs)  # each run once


def test_a_killed_driver_resumes_without_losing_or_repeating_runs(tmp_path, digits_subset):
    spec_path = _spec(tmp_path, digits_subset, seeds=(0, 1, 2))
    db = tmp_path / "drv.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "tinyzo", "sweep", "run", str(spec_path), "--db", str(db),
                             "--workers", "2", "--no-progress"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    before = []
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if db.exists():
                try:
                    con = sqlite3.connect(db)
                    before = [tuple(r) for r in con.execute("SELECT key, finished_at FROM runs WHERE status = 'done'")]
                    con.close()
                except sqlite3.DatabaseError:
                    before = []
                if before:
                    break
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its local cluster, mid-sweep
        proc.wait()
    assert before, "the driver finished no run before the deadline"
    spec = load_spec(spec_path)
    res = run_sweep(spec, db, workers=2, progress=False)
    with ResultsDB(db) as d:
        rows = d.rows()
    assert sorted(r["key"] for r in rows) == sorted(r.key for r in spec.runs)
    assert res["skipped"] >= len(before) and res["done"] + res["skipped"] == 6 and res["failed"] == 0
    kept = {r["key"]: r["finished_at"] for r in rows}
    assert all(kept[k] == f for k, f in before)  # runs recorded before the kill are untouched
    assert json.loads(json.dumps(rows[0]["history"]))[0]["epoch"] == 1


def test_bundled_speech_data_name(tmp_path):
    """``data = "speech"`` names the bundled keyword features, like "digits" (no file is resolved or shipped)."""
    text = ('[sweep]\nmodel = "reference:digits_cnn"\ndata = "speech"\nseeds = [0]\n'
            '[methods.bp]\nmethod = "bp"\nlr = 3e-4\n')
    sw = parse_spec(text, base_dir=tmp_path, name="kws")
    (run,) = sw.runs
    assert run.data == "speech" and "data" not in run.files and run.config["data"] == "speech"
    assert "--data" in run.argv() and run.argv()[run.argv().index("--data") + 1] == "speech"
    with pytest.raises(SweepSpecError, match="data"):
        parse_spec(text.replace('"speech"', '"speech2"'), base_dir=tmp_path, name="kws")
