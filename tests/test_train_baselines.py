"""`tinyzo train --method fp32` (the float twin baseline), `--scheme-search` (a sparse scheme chosen
under a memory budget, tinyzo.bp.budget) and the results database's schema upgrade."""

from __future__ import annotations

import argparse
import sqlite3

import numpy as np
import pytest
from tinyzo.reference_models import path as model_path

import tinyzo
from tinyzo import data, fp
from tinyzo.argtypes import Parser
from tinyzo.bp import SparseScheme
from tinyzo.bp.budget import largest_last_k, scheme_memory_fn, scheme_under_budget
from tinyzo.bp.fp32 import dequantize_input, float_layer_names, float_net_from_int8
from tinyzo.cli import main
from tinyzo.errors import InputError, TinyzoError
from tinyzo.evaluate import images_to_input
from tinyzo.sweep.db import SCHEMA_VERSION, ResultsDB
from tinyzo.train_command import add_train_arguments, train_run

DIGITS = str(model_path("digits_cnn"))
SGD = {"kind": "sgd", "momentum": 0.0, "mode": "per_step", "rounding": "stochastic"}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A slice of the bundled digits as a dataset file (each run takes about a second)."""
    ds = data.load("digits")
    p = tmp_path_factory.mktemp("data") / "digits_small.npz"
    data.save(data.Dataset(ds.x_train[:160], ds.y_train[:160], ds.x_val[:64], ds.y_val[:64], ds.x_test[:96],
                           ds.y_test[:96], name="digits_small", classes=ds.classes), p)
    return str(p)


def _args(*argv) -> argparse.Namespace:
    p = Parser(prog="tinyzo train")
    add_train_arguments(p)
    return p.parse_args(list(argv) + ["--no-progress"])


# ------------------------------------------------------------------------------------------- fp32


def test_fp_train_updates_only_the_trainable_layers():
    model = tinyzo.load(DIGITS)
    net, params = float_net_from_int8(model)
    names = float_layer_names(model)
    last = names[model.trainable_ops()[-1]]
    frozen = {n: {k: v.copy() for k, v in p.items()} for n, p in params.items() if n != last}
    ds = data.load("digits")
    x = dequantize_input(model, images_to_input(model, ds.x_train[:64]))
    fp.train(net, params, x, ds.y_train[:64], epochs=1, batch_size=32, lr=0.05, schedule="constant",
             progress=False, trainable=[last])
    for n, p in frozen.items():
        for k, v in p.items():
            assert np.array_equal(params[n][k], v), (n, k)
    with pytest.raises(TinyzoError, match="trainable must name layers with weights"):
        fp.train(net, params, x, ds.y_train[:64], epochs=1, progress=False, trainable=["no_such_layer"])


def test_train_fp32_is_the_float_twin_trained_on_the_given_layers(small):
    res = train_run(_args(DIGITS, "--data", small, "--method", "fp32", "--layers", "last2", "--lr", "3e-3",
                          "--momentum", "0.9", "--epochs", "2", "--corruption", "motion_blur", "--severity", "5"))
    model = tinyzo.load(DIGITS)
    net, params = float_net_from_int8(model)
    ds = data.load(small)
    xt = data.corrupt(ds.x_test, "motion_blur", 5, seed=2)
    before = fp.evaluate(net, params, dequantize_input(model, images_to_input(model, xt)), ds.y_test)["accuracy"]
    assert res["before"] == before and res["after"] != res["before"]
    names = float_layer_names(model)
    want = sum(v.size for k in model.trainable_ops()[-2:] for n, v in params[names[k]].items())
    assert res["trained_params"] == want
    assert res["sram_bytes"] is None and res["scheme"] is None
    assert res["forward_passes"] == 2 * 5 and len(res["history"]) == 2   # 160 images, batch 32
    # the same run again gives the same numbers (seeded)
    again = train_run(_args(DIGITS, "--data", small, "--method", "fp32", "--layers", "last2", "--lr", "3e-3",
                            "--momentum", "0.9", "--epochs", "2", "--corruption", "motion_blur", "--severity", "5"))
    assert again["after"] == res["after"]


@pytest.mark.parametrize("extra, match", [
    (["--out", "m.tflite"], "--out is for the int8 methods"),
    (["--budget-kb", "64"], "--budget-kb is for the int8 methods"),
    (["--scheme-search", "dp", "--scheme-budget-kb", "40"], "--scheme-search chooses a sparse scheme for --method bp"),
])
def test_train_fp32_refuses_int8_only_flags(small, extra, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=match):
        train_run(_args(DIGITS, "--data", small, "--method", "fp32", *extra))


# ------------------------------------------------------------------------------------------- scheme search


def test_largest_last_k_and_budget_errors():
    model = tinyzo.load(DIGITS)
    count = scheme_memory_fn(model, "count", SGD)
    k4 = SparseScheme.last_k(model, 4)
    scheme = largest_last_k(model, count(k4), count)
    assert scheme.weights == k4.weights
    assert count(SparseScheme.last_k(model, 5)) > count(k4)   # k = 5 does not fit that budget
    with pytest.raises(InputError, match="no 'last k layers' scheme fits 100 bytes"):
        largest_last_k(model, 100, count)
    with pytest.raises(InputError, match="dp search is exact only"):
        scheme_under_budget(model, None, None, 10**6, search="dp", memory="planner", optimizer=SGD, lr=3e-3)
    with pytest.raises(InputError, match=r"smallest \(classifier only\) needs"):
        scheme_under_budget(model, None, None, 100, search="dp", optimizer=SGD, lr=3e-3)
    with pytest.raises(InputError, match="unknown scheme search"):
        scheme_under_budget(model, None, None, 100, search="greedy", optimizer=SGD, lr=3e-3)


def test_scheme_under_budget_dp_fits_the_budget():
    model = tinyzo.load(DIGITS)
    ds = data.load("digits")
    train = (images_to_input(model, ds.x_train[:64]), ds.y_train[:64])
    val = (images_to_input(model, ds.x_val[:64]), ds.y_val[:64])
    budget = 30 * 1024
    scheme, info = scheme_under_budget(model, train, val, budget, search="dp", optimizer=SGD, lr=3e-3, steps=2,
                                       ratios=[1.0], layers=[8, 9])
    assert info["memory_bytes"] == scheme.memory_bytes(model) <= budget
    assert info["contributions"].complete and info["gain"] is not None
    assert set(scheme.weights) <= {8, 9} and scheme.classifier


def test_train_scheme_search_records_the_scheme(small):
    res = train_run(_args(DIGITS, "--data", small, "--method", "bp", "--scheme-search", "last-k",
                          "--scheme-budget-kb", "45", "--lr", "3e-3", "--epochs", "1", "--momentum", "0",
                          "--update", "per_step"))
    model = tinyzo.load(DIGITS)
    k = SparseScheme.last_k(model, 4)
    assert res["scheme"] == "last 4 layers" and res["scheme_bytes"] == k.memory_bytes(model) <= 45 * 1024
    assert res["trained_params"] == k.param_count(model)
    with pytest.raises(InputError, match="go together"):
        train_run(_args(DIGITS, "--data", small, "--method", "bp", "--scheme-search", "dp"))
    with pytest.raises(InputError, match="do not give --scheme or --layers too"):
        train_run(_args(DIGITS, "--data", small, "--method", "bp", "--scheme-search", "dp", "--scheme-budget-kb",
                        "40", "--layers", "last2"))
    assert main(["train", DIGITS, "--data", small, "--method", "zo-rge-node", "--scheme-search", "dp",
                 "--scheme-budget-kb", "40"]) == 2


# ------------------------------------------------------------------------------------------- database


def test_a_schema_1_database_is_upgraded_and_keeps_its_rows(tmp_path):
    p = tmp_path / "old.sqlite"
    with sqlite3.connect(p) as c:   # the version-1 layout: no trained_params / scheme_bytes / scheme
        c.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema_version', '1');
            CREATE TABLE runs (key TEXT PRIMARY KEY, sweep TEXT NOT NULL, method TEXT NOT NULL,
                seed INTEGER NOT NULL, options TEXT NOT NULL, config TEXT NOT NULL, status TEXT NOT NULL,
                attempts INTEGER NOT NULL, error TEXT, before REAL, after REAL, clean REAL, recovered REAL,
                forward_passes INTEGER, backward_passes INTEGER, seconds REAL, sram_bytes INTEGER,
                sram_lean_bytes INTEGER, history TEXT, tinyzo_version TEXT, command TEXT NOT NULL, worker TEXT,
                finished_at TEXT);
            INSERT INTO runs (key, sweep, method, seed, options, config, status, attempts, after, command)
                VALUES ('k', 's', 'bp', 0, '{}', '{}', 'done', 1, 0.5, 'tinyzo train x');
        """)
    with ResultsDB(p) as db:
        rows = db.rows()
        assert len(rows) == 1 and rows[0]["after"] == 0.5 and rows[0]["trained_params"] is None
        assert db.conn.execute("SELECT value FROM meta").fetchone()[0] == str(SCHEMA_VERSION)
    with sqlite3.connect(p) as c:
        c.execute("UPDATE meta SET value = '99'")
    with pytest.raises(TinyzoError, match="newer than this tinyzo"):
        ResultsDB(p)


# ------------------------------------------------------------------------------------------- presets


def test_preset_fills_options_and_explicit_options_win(small):
    from tinyzo.train_command import _apply_preset
    from tinyzo.training.presets import PRESETS

    args = _args(DIGITS, "--data", small, "--preset", "pmt", "--queries", "7")
    _apply_preset(args)
    assert args.queries == 7                                   # given: wins over the preset's 50
    for dest, value in PRESETS["pmt"].items():
        if dest != "queries":
            assert getattr(args, dest) == value, dest
    res = train_run(_args(DIGITS, "--data", small, "--preset", "pmt", "--epochs", "1", "--queries", "2"))
    assert res["forward_passes"] == 2 * (1 + 2)                # 160 images / batch 100 = 2 steps, 1 + 2 passes each
    with pytest.raises(InputError, match="unknown preset 'nope'; presets: pmt"):
        train_run(_args(DIGITS, "--data", small, "--preset", "nope"))


def test_preset_with_sparse_block_options_resumes_bit_for_bit(small, tmp_path, monkeypatch):
    """--preset pmt with --density and --block layer: a run interrupted after its epoch-2 checkpoint and
    resumed writes the same int8 model, byte for byte, as an uninterrupted 3-epoch run."""
    from tinyzo.training import loop
    base = (DIGITS, "--data", small, "--preset", "pmt", "--queries", "5", "--batch-size", "32", "--lr", "1e-2",
            "--density", "0.5", "--block", "layer", "--no-progress")
    full = train_run(_args(*base, "--epochs", "3", "--out-dir", str(tmp_path / "a"), "--out", str(tmp_path / "a.tflite")))
    real_save = loop.save_checkpoint

    def save_then_stop(out_dir, model, state, epoch, *a, **k):
        real_save(out_dir, model, state, epoch, *a, **k)
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_run(_args(*base, "--epochs", "3", "--out-dir", str(tmp_path / "b")))
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    resumed = train_run(_args(*base, "--epochs", "3", "--out-dir", str(tmp_path / "b"), "--resume",
                              "--out", str(tmp_path / "b.tflite")))
    assert (tmp_path / "a.tflite").read_bytes() == (tmp_path / "b.tflite").read_bytes()
    assert resumed["after"] == full["after"]
    trained, start = tinyzo.load(tmp_path / "a.tflite"), tinyzo.load(DIGITS)
    assert any(not np.array_equal(trained.get_params(k)[i], start.get_params(k)[i])
               for k in start.trainable_ops()[-5:] for i in (0, 1)), "training changed nothing"
