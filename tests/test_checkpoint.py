"""Checkpoints cannot tear: tinyzo.checkpoint (one atomic, verified file) under the int8 and the float loops.

(a) ``tinyzo train`` (ZO and BP, digits reference model, 64 training images, 3 epochs) is SIGKILLed
    inside the checkpoint write of epoch 2 -- halfway through writing the temporary file, after the
    temporary file is complete but before the rename, and right after the rename -- then resumed:
    the final int8 weights and the history equal an uninterrupted run's exactly.
(b) truncated, bit-flipped, edited, forged (huge shape, object dtype) and hand-made inconsistent
    checkpoints, the old two-file pair and another run's checkpoint are refused with a one-line
    CheckpointError (a TinyzoError), never another exception, and nothing is changed.
(c) the float loop: round trip, resume, a failed write keeps the previous checkpoint.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import tinyzo
import tinyzo.checkpoint as C
from tinyzo import data as td
from tinyzo import fp
from tinyzo.cli import main
from tinyzo.errors import CheckpointError, TinyzoError
from tinyzo.evaluate import images_to_input
from tinyzo.nn import Layer, Net, init_params
from tinyzo.training.loop import fit, load_checkpoint, save_checkpoint
from tinyzo.zo.trainer import ZOConfig, ZOTrainer

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "reference_models" / "digits_cnn.tflite"

METHODS = {
    "zo": ["--method", "zo-rge-node", "--layers", "last2", "--lr", "1e-3", "--update", "shadow"],
    "bp": ["--method", "bp", "--layers", "last2", "--optimizer", "sgd", "--momentum", "0.9",
           "--rounding", "stochastic", "--lr", "3e-3"],
}

# Runs `tinyzo train` with a SIGKILL planted inside tinyzo.checkpoint.write_checkpoint on the
# checkpoint save number KILL_AT: "write" -> half of the bytes are in the temporary file (its
# f.write is cut); "replace" -> the temporary file is complete and fsynced, os.replace never runs;
# "after-replace" -> os.replace ran, the folder fsync did not.
CHILD = r"""
import os, signal, sys
import tinyzo.checkpoint as C

point, kill_at = sys.argv[1], int(sys.argv[2])
saves = 0
real_open, real_replace = open, os.replace


def die():
    os.kill(os.getpid(), signal.SIGKILL)


class HalfWrite:
    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.f.__exit__(*exc)

    def write(self, data):
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        os.fsync(self.f.fileno())
        die()


def ck_open(path, mode="r", *a, **k):
    global saves
    f = real_open(path, mode, *a, **k)
    if str(path).endswith("checkpoint.npz.tmp"):
        saves += 1
        if point == "write" and saves == kill_at:
            return HalfWrite(f)
    return f


def ck_replace(src, dst):
    if str(dst).endswith("checkpoint.npz") and saves == kill_at:
        if point == "replace":
            die()
        real_replace(src, dst)
        if point == "after-replace":
            die()
        return
    real_replace(src, dst)


C.open = ck_open
C.os.replace = ck_replace
from tinyzo.cli import main

sys.exit(main(sys.argv[3:]))
"""


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """64 train / 16 val / 16 test digits in the tinyzo dataset format."""
    ds = td.load("digits")
    tiny = td.Dataset(x_train=ds.x_train[:64], y_train=ds.y_train[:64], x_val=ds.x_val[:16], y_val=ds.y_val[:16],
                      x_test=ds.x_test[:16], y_test=ds.y_test[:16], name="tiny", classes=ds.classes)
    return td.save(tiny, tmp_path_factory.mktemp("data") / "tiny.npz")


def _train_args(method, data_path, out_dir, out):
    return ["train", str(REF), "--data", str(data_path), *METHODS[method], "--epochs", "3", "--batch-size", "16",
            "--seed", "3", "--no-progress", "--out-dir", str(out_dir), "--out", str(out)]


def _weights(path):
    m = tinyzo.load(path)
    return {k: m.get_params(k) for k in m.trainable_ops()}


def _history(out_dir):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in json.loads((out_dir / "history.json").read_text())]


@pytest.fixture(scope="module")
def uninterrupted(tiny_data, tmp_path_factory):
    runs = {}

    def get(method):
        if method not in runs:
            d = tmp_path_factory.mktemp(f"full_{method}")
            assert main(_train_args(method, tiny_data, d / "run", d / "final.npz")) == 0
            runs[method] = _weights(d / "final.npz"), _history(d / "run")
        return runs[method]

    return get


@pytest.mark.parametrize("method, point", [("zo", "write"), ("zo", "replace"), ("zo", "after-replace"),
                                           ("bp", "write")])
def test_kill_inside_the_checkpoint_write_then_resume_is_bit_exact(method, point, tiny_data, uninterrupted, tmp_path):
    ref_weights, ref_history = uninterrupted(method)
    run, out = tmp_path / "run", tmp_path / "final.npz"
    args = _train_args(method, tiny_data, run, out)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-c", CHILD, point, "2", *args], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    assert not out.exists()
    tmp = C.temp_path(run / "checkpoint.npz")
    if point == "write":  # killed halfway through the temporary file: it is there, torn, and never read
        assert 0 < tmp.stat().st_size
        with pytest.raises(CheckpointError):
            C.read_checkpoint(tmp, "int8-fit")
    # what survives the kill is one whole checkpoint: epoch 1 before the rename, epoch 2 after it
    assert load_checkpoint(run)["epoch"] == (2 if point == "after-replace" else 1)

    assert main([*args, "--resume"]) == 0
    assert not tmp.exists()  # the next save replaced the leftover
    got = _weights(out)
    assert got.keys() == ref_weights.keys()
    for k in got:
        np.testing.assert_array_equal(got[k][0], ref_weights[k][0], err_msg=f"op {k} weights")
        np.testing.assert_array_equal(got[k][1], ref_weights[k][1], err_msg=f"op {k} bias")
    assert _history(run) == ref_history
    assert load_checkpoint(run)["epoch"] == 3


# --------------------------------------------------------------------------------------------------
# (b) damaged, edited, forged and inconsistent checkpoints


@pytest.fixture(scope="module")
def saved_runs(tmp_path_factory):
    """A ZO run's checkpoints after epoch 1 and after epoch 2 (48 digits, batch 16: 3 steps an epoch)."""
    ds = td.load("digits")
    m = tinyzo.load(REF)
    xq, y = images_to_input(m, ds.x_train[:48]), ds.y_train[:48]
    d = tmp_path_factory.mktemp("saved")

    def run(epochs, resume):
        m = tinyzo.load(REF)
        tr = ZOTrainer(m, ZOConfig(layers=[9, 11], target="node", lr=1e-3, update="shadow", seed=3), total_steps=6)
        fit(tr, m, xq, y, epochs=epochs, batch_size=16, seed=1, out_dir=d / "run", resume=resume, progress=False)
        return m

    run(1, False)
    shutil.copy(d / "run" / "checkpoint.npz", d / "epoch1.npz")
    model2 = run(2, True)
    shutil.copy(d / "run" / "checkpoint.npz", d / "epoch2.npz")
    return {"xq": xq, "y": y, "epoch1": d / "epoch1.npz", "epoch2": d / "epoch2.npz", "model2": model2}


def _resume(saved, folder, lr=1e-3, **kw):
    """Resume the saved_runs ZO run from ``folder`` (3 epochs); returns the model it trained."""
    m = tinyzo.load(REF)
    tr = ZOTrainer(m, ZOConfig(layers=[9, 11], target="node", lr=lr, update="shadow", seed=3), total_steps=6)
    args = {"epochs": 3, "batch_size": 16, "seed": 1, **kw}
    fit(tr, m, saved["xq"], saved["y"], out_dir=folder, resume=True, progress=False, **args)
    return m


def _refused(saved, tmp_path, content: bytes, match: str = "checkpoint") -> str:
    """Write ``content`` as a run's checkpoint.npz: loading it and resuming from it raise a one-line
    CheckpointError (matching ``match``) and leave the folder as it was."""
    folder = tmp_path / "refused"
    folder.mkdir(exist_ok=True)
    (folder / "checkpoint.npz").write_bytes(content)
    with pytest.raises(CheckpointError, match=match) as e1:
        load_checkpoint(folder)
    with pytest.raises(CheckpointError, match=match) as e2:
        _resume(saved, folder)
    for e in (e1, e2):
        assert isinstance(e.value, TinyzoError) and "\n" not in str(e.value) and len(str(e.value)) < 400
    assert (folder / "checkpoint.npz").read_bytes() == content and sorted(os.listdir(folder)) == ["checkpoint.npz"]
    return str(e1.value)


def test_saved_checkpoint_is_one_verified_file(saved_runs, tmp_path):
    ck = load_checkpoint(saved_runs["epoch2"].parent / "run")
    assert ck["epoch"] == 2 and [h["epoch"] for h in ck["history"]] == [1, 2]
    assert ck["config"] == {"seed": 1, "batch_size": 16, "n_train": 48} and ck["stepper"] == "ZOTrainer"
    assert int(ck["state"]["step_count"]) == 6
    for k, (w, b) in ck["params"].items():
        w2, b2 = saved_runs["model2"].get_params(k)
        np.testing.assert_array_equal(w, w2)
        np.testing.assert_array_equal(b, b2)
    with zipfile.ZipFile(saved_runs["epoch2"]) as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["format"] == "tinyzo-checkpoint" and manifest["version"] == 1 and manifest["epoch"] == 2
    with np.load(saved_runs["epoch2"], allow_pickle=False) as z:  # plain npz for inspection
        assert z["model/11/w"].dtype == np.int8
    # the same state writes the same bytes (fixed member times, ordered members)
    c = C.read_checkpoint(saved_runs["epoch2"], "int8-fit")
    C.write_checkpoint(tmp_path / "again.npz", c.kind, c.epoch, c.arrays, c.meta)
    assert (tmp_path / "again.npz").read_bytes() == saved_runs["epoch2"].read_bytes()


def test_truncated_checkpoints_are_refused(saved_runs, tmp_path):
    good = saved_runs["epoch2"].read_bytes()
    for n in sorted({0, 1, 22, 100, len(good) // 3, len(good) // 2, len(good) - 200, len(good) - 1}):
        _refused(saved_runs, tmp_path, good[:n])


def test_flipped_bytes_are_refused(saved_runs, tmp_path):
    """A changed byte of any member's content is refused; a byte anywhere else is refused or only
    touches zip bookkeeping that no content depends on (times, version fields), so the read content
    is then exactly the original."""
    path = saved_runs["epoch2"]
    good = path.read_bytes()
    ref = C.read_checkpoint(path, "int8-fit")
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    assert len(infos) > 10
    for info in infos:  # the middle byte of every member's data (local header: 30 + name + extra bytes)
        h = info.header_offset
        start = h + 30 + int.from_bytes(good[h + 26:h + 28], "little") + int.from_bytes(good[h + 28:h + 30], "little")
        bad = bytearray(good)
        bad[start + info.file_size // 2] ^= 0x10
        _refused(saved_runs, tmp_path, bytes(bad))
    refused = 0
    for pos in range(0, len(good), max(1, len(good) // 60)):
        bad = bytearray(good)
        bad[pos] ^= 0x10
        (tmp_path / "c.npz").write_bytes(bytes(bad))
        try:
            c = C.read_checkpoint(tmp_path / "c.npz", "int8-fit")
        except CheckpointError as e:
            assert "\n" not in str(e)
            refused += 1
            continue
        assert c.epoch == ref.epoch and c.meta == ref.meta and c.arrays.keys() == ref.arrays.keys()
        for k in c.arrays:
            assert c.arrays[k].dtype == ref.arrays[k].dtype
            np.testing.assert_array_equal(c.arrays[k], ref.arrays[k])
    assert refused >= 50  # almost every byte of the file is content


def _rezip(members: dict) -> bytes:
    """A stored zip of ``{name: bytes}`` (what a hand-edited checkpoint looks like)."""
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _npy(a) -> bytes:
    import io

    b = io.BytesIO()
    np.lib.format.write_array(b, a, allow_pickle=True)
    return b.getvalue()


def _members(path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def test_edited_and_forged_checkpoints_are_refused(saved_runs, tmp_path):
    members = _members(saved_runs["epoch2"])
    # a weight edited (the zip's CRC recomputed, the manifest's SHA-256 not)
    w = np.load(saved_runs["epoch2"])["model/11/w"].copy()
    w[0, 0] ^= 1
    _refused(saved_runs, tmp_path, _rezip({**members, "model/11/w.npy": _npy(w)}), "SHA-256")
    # a member the manifest does not list, or one it lists missing
    _refused(saved_runs, tmp_path, _rezip({**members, "extra.npy": _npy(np.zeros(3))}), "do not match the manifest")
    _refused(saved_runs, tmp_path, _rezip({k: v for k, v in members.items() if k != "model/11/w.npy"}),
             "do not match the manifest")
    # a header that declares a huge array (refused before anything is allocated)
    manifest = json.loads(members["manifest.json"])
    manifest["arrays"] = [[n, d, [10**12] if n == "model/11/w" else s] for n, d, s in manifest["arrays"]]
    huge = _npy(np.zeros(4, np.int8)).replace(b"(4,)", b"(1000000000000,)")
    _refused(saved_runs, tmp_path, _rezip({**members, "model/11/w.npy": huge,
                                           "manifest.json": json.dumps(manifest).encode()}), "declares")
    # a pickled object array is never unpickled
    manifest = json.loads(members["manifest.json"])
    manifest["arrays"] = [[n, "|O" if n == "model/11/w" else d, [2] if n == "model/11/w" else s]
                          for n, d, s in manifest["arrays"]]
    obj = _npy(np.array([print, os.system], dtype=object))
    _refused(saved_runs, tmp_path, _rezip({**members, "model/11/w.npy": obj,
                                           "manifest.json": json.dumps(manifest).encode()}), "not a plain")
    # compressed members, a newer format version, another kind, not a checkpoint at all
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, v in members.items():
            zf.writestr(n, v)
    _refused(saved_runs, tmp_path, buf.getvalue(), "compressed")
    newer = json.loads(members["manifest.json"])
    newer["version"] = 2
    _refused(saved_runs, tmp_path, _rezip({**members, "manifest.json": json.dumps(newer).encode()}),
             "tinyzo that wrote it")
    other = tmp_path / "fp.npz"
    fp.save_checkpoint(other, {"l": {"w": np.ones(2, np.float32)}}, {"l": {"w": np.zeros(2, np.float32)}}, 0, [], {})
    _refused(saved_runs, tmp_path, other.read_bytes(), "'fp-train' checkpoint")
    _refused(saved_runs, tmp_path, REF.read_bytes(), "cannot read checkpoint")
    _refused(saved_runs, tmp_path, _rezip({"a.npy": _npy(np.zeros(2))}), "no manifest.json")


def test_hand_made_inconsistent_checkpoints_are_refused(saved_runs, tmp_path):
    c1 = C.read_checkpoint(saved_runs["epoch1"], "int8-fit")
    c2 = C.read_checkpoint(saved_runs["epoch2"], "int8-fit")
    made = tmp_path / "made.npz"
    state1 = {n: a for n, a in c1.arrays.items() if n.startswith("state/")}
    state2 = {n: a for n, a in c2.arrays.items() if n.startswith("state/")}
    model2 = {n: a for n, a in c2.arrays.items() if n.startswith("model/")}
    # the optimizer state (step count, shadow residuals) of epoch 1 under the manifest and history of epoch 2
    C.write_checkpoint(made, "int8-fit", 2, {**model2, **state1}, c2.meta)
    _refused(saved_runs, tmp_path, made.read_bytes(), "at step 3 but 2 epochs of 3 steps end at step 6")
    # the manifest's epoch disagrees with the history
    C.write_checkpoint(made, "int8-fit", 2, {**model2, **state2}, c1.meta)
    _refused(saved_runs, tmp_path, made.read_bytes(), "epoch 2 but the history records epochs \\[1\\]")
    # an array that is neither model nor state
    C.write_checkpoint(made, "int8-fit", 2, {**c2.arrays, "junk": np.zeros(2)}, c2.meta)
    _refused(saved_runs, tmp_path, made.read_bytes(), "neither model parameters nor stepper state")
    # a bias that is not int32
    bad = {**c2.arrays, "model/11/b": c2.arrays["model/11/b"].astype(np.int64)}
    C.write_checkpoint(made, "int8-fit", 2, bad, c2.meta)
    _refused(saved_runs, tmp_path, made.read_bytes(), "not int32")


def test_old_two_file_checkpoint_and_foreign_runs_are_refused(saved_runs, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    tinyzo.load(REF).save(old / "checkpoint_model.npz")
    np.savez(old / "checkpoint_state.npz", epoch=np.asarray(1))
    with pytest.raises(CheckpointError, match="checkpoint_model.npz \\+ checkpoint_state.npz.*without --resume"):
        _resume(saved_runs, old)
    with pytest.raises(CheckpointError, match="nothing to resume"):
        _resume(saved_runs, tmp_path / "empty")
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(saved_runs["epoch2"], run / "checkpoint.npz")
    for kw, what in (({"seed": 2}, "saved with seed=1"), ({"batch_size": 8}, "saved with batch_size=16"),
                     ({"lr": 2e-3}, "does not fit this run: .*configuration differs: lr")):
        with pytest.raises(CheckpointError, match=what) as e:
            _resume(saved_runs, run, **kw)
        assert "\n" not in str(e.value)
    m = tinyzo.load(REF)
    from tinyzo.bp import QASOptimizer, BPTrainer, SparseScheme

    tr = BPTrainer(m, scheme=SparseScheme.last_k(m, 2), optimizer=QASOptimizer())
    before = {k: m.get_params(k)[0].copy() for k in m.trainable_ops()}
    with pytest.raises(CheckpointError, match="written by a ZOTrainer"):
        fit(tr, m, saved_runs["xq"], saved_runs["y"], epochs=3, batch_size=16, seed=1, out_dir=run, resume=True,
            progress=False)
    assert all(np.array_equal(before[k], m.get_params(k)[0]) for k in before)  # nothing was restored
    # the right run resumes from it, to the end
    _resume(saved_runs, run)
    assert load_checkpoint(run)["epoch"] == 3


def test_cli_resume_from_a_damaged_checkpoint_prints_one_line(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.npz").write_bytes(b"PK\x03\x04 torn")
    args = _train_args("zo", tiny_data, run, tmp_path / "o.npz")
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinyzo: error: cannot read checkpoint") and "\n" not in err and "Traceback" not in err


def test_a_failed_write_keeps_the_previous_checkpoint(saved_runs, tmp_path, monkeypatch):
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copy(saved_runs["epoch1"], folder / "checkpoint.npz")
    real_open = open

    class DiskFull:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

        def write(self, data):
            self.f.write(data[:100])
            raise OSError(28, "No space left on device")

    c2 = C.read_checkpoint(saved_runs["epoch2"], "int8-fit")
    monkeypatch.setattr(C, "open", lambda p, mode="r": DiskFull(real_open(p, mode)), raising=False)
    with pytest.raises(CheckpointError, match="cannot write checkpoint .*No space left.*previous checkpoint is kept"):
        C.write_checkpoint(folder / "checkpoint.npz", c2.kind, c2.epoch, c2.arrays, c2.meta)
    assert sorted(os.listdir(folder)) == ["checkpoint.npz"]
    assert (folder / "checkpoint.npz").read_bytes() == saved_runs["epoch1"].read_bytes()


def test_writer_refuses_what_it_cannot_store_without_pickle(tmp_path):
    with pytest.raises(CheckpointError, match="dtype object"):
        C.write_checkpoint(tmp_path / "c.npz", "k", 0, {"a": np.array([None])}, {})
    with pytest.raises(CheckpointError, match="named 'meta'"):
        C.write_checkpoint(tmp_path / "c.npz", "k", 0, {"meta": np.zeros(1)}, {})
    with pytest.raises(CheckpointError, match="metadata"):
        C.write_checkpoint(tmp_path / "c.npz", "k", 0, {}, {"x": object()})
    assert not list(tmp_path.iterdir())
    # any key survives the trip (names are labels; the key paths are kept in the metadata)
    tree = {"a.b": {"x/y z": np.arange(3, dtype=np.int16), "": np.float32(2.5)}, "é": np.str_("cosine")}
    arrays, paths = C.flatten_tree(tree, "state")
    C.write_checkpoint(tmp_path / "c.npz", "k", 4, arrays, {"paths": paths})
    c = C.read_checkpoint(tmp_path / "c.npz", "k")
    back = C.unflatten_tree(c.arrays, c.meta["paths"], "c.npz", unwrap_scalars=True)
    np.testing.assert_array_equal(back["a.b"]["x/y z"], tree["a.b"]["x/y z"])
    assert back["a.b"][""] == np.float32(2.5) and back["a.b"][""].dtype == np.float32 and back["é"] == "cosine"
    assert c.epoch == 4


# --------------------------------------------------------------------------------------------------
# (c) the float loop


def test_float_checkpoint_round_trip_and_resume(tmp_path):
    net = Net("small", (8, 8, 1), [
        Layer("stem", "conv", out_channels=4, kernel=3, bn=True, activation="relu"),
        Layer("gap", "gap", ("stem",)),
        Layer("fc", "fc", ("gap",), out_channels=4),
    ], num_classes=4)
    x = np.random.default_rng(0).random((40, *net.input_shape), dtype=np.float32)
    y = np.arange(40) % 4

    def run(epochs, **kw):
        params = init_params(net, seed=1)
        hist = fp.train(net, params, x, y, epochs=epochs, batch_size=16, lr=0.05, seed=2, progress=False, **kw)
        return params, hist

    full, hist_full = run(3)
    ck = tmp_path / "run.npz"
    run(3, checkpoint=ck, on_epoch=lambda rec: rec["epoch"] == 1)
    saved = fp.load_checkpoint(ck)
    assert saved["epoch"] == 1 and saved["config"]["seed"] == 2 and len(saved["history"]) == 1
    params, hist = run(3, checkpoint=ck, resume=True)
    for lname in full:
        for k in full[lname]:
            np.testing.assert_array_equal(params[lname][k], full[lname][k], err_msg=f"{lname}/{k}")
    assert [h["train_loss"] for h in hist] == [h["train_loss"] for h in hist_full]
    assert not C.temp_path(ck).exists()
    # the float loader refuses damage, edits, the old float format and int8 checkpoints, in one line
    good = ck.read_bytes()
    for bad in (good[: len(good) // 2], good[:-1], b""):
        ck.write_bytes(bad)
        with pytest.raises(CheckpointError) as e:
            fp.load_checkpoint(ck)
        assert "\n" not in str(e.value)
    np.savez(ck, p0=np.zeros(2), meta=np.array(json.dumps({"format": "tinyzo-fp-checkpoint-1"})))
    with pytest.raises(CheckpointError, match="older tinyzo"):
        fp.train(net, init_params(net, seed=1), x, y, epochs=3, batch_size=16, seed=2, progress=False,
                 checkpoint=ck, resume=True)
    int8_run = tmp_path / "int8"
    m = tinyzo.load(REF)
    save_checkpoint(int8_run, m, {"step_count": np.asarray(0)}, 0, [])
    with pytest.raises(CheckpointError, match="'int8-fit' checkpoint, this loop needs a 'fp-train' one"):
        fp.load_checkpoint(int8_run / "checkpoint.npz")
