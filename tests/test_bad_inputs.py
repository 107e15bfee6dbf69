"""Bad inputs to the API and the CLI: one-line tinyzo errors, exit status 2, nothing written.

Also the batch streaming of ``Model.__call__``: chunked runs are bit-identical to unchunked ones and
the working memory of a large batch stays bounded (docs/reliability.md, "Inputs and errors").
"""

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import tinyzo
from tinyzo import data, runtime
from tinyzo.cli import main
from tinyzo.errors import InputError, ModelFormatError, OutputPathError, TinyzoError

REF = str(Path(__file__).resolve().parents[1] / "reference_models" / "digits_cnn.tflite")


@pytest.fixture(scope="module")
def model():
    return tinyzo.load(REF)


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A scratch folder as the working directory, holding a file, a folder and a few bad inputs."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    x = np.zeros((32, 32, 1), np.float32)
    x[3, 3] = np.nan
    np.save(tmp_path / "nan_in.npy", x)
    xs = np.full((6, 8, 8), 0.5, np.float32)
    xs[2, 1, 1] = np.nan
    xs[4, 0, 0] = np.nan
    np.savez(tmp_path / "nan_ds.npz", x_train=xs, y_train=np.zeros(6, np.int64), x_test=xs,
             y_test=np.zeros(6, np.int64))
    return tmp_path


def _listing(root: Path) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _one_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, text
    return lines[0]


# ------------------------------------------------------------------------------------------- CLI

CLI_CASES = [
    # the issue's cases
    (["train", REF, "--data", "digits", "--batch-size", "0"], "--batch-size"),
    (["train", REF, "--data", "digits", "--epochs", "abc"], "--epochs"),
    (["train", REF, "--data", "digits", "--out", "missing_dir/x.tflite"], "does not exist"),
    (["train", REF, "--data", "digits", "--out", "x.bogus"], ".tflite"),
    (["train", REF, "--data", "nan_ds.npz"], "2 nan pixel values in 2 of 6 images (first: image 2)"),
    # the wider pass
    (["train", REF, "--data", "digits", "--out", "adir"], ".tflite"),
    (["train", REF, "--data", "digits", "--out", "afile/x.tflite"], "not a folder"),
    (["train", REF, "--data", "digits", "--out-dir", "afile"], "not a folder"),
    (["train", REF, "--data", "digits", "--resume"], "--out-dir"),
    (["train", REF, "--data", "digits", "--lr", "nan"], "finite"),
    (["train", REF, "--data", "digits", "--budget-kb", "-5"], "--budget-kb"),
    (["train", REF, "--data", "digits", "--method", "zo-rge-mixed", "--layers", "9,11", "--mixed-split", "5"],
     "mixed_split"),
    (["train", REF, "--data", "digits", "--select", "last", "--select-k", "0"], "--select-k"),
    (["run", REF, "--input", "nan_in.npy"], "1 of 1,024 values are nan or inf (first at index (3, 3, 0))"),
    (["run", REF, "--input", "nan_in.npy", "--output", "missing_dir/y.npy"], "does not exist"),
    (["run", REF, "--input", "nan_in.npy", "--output", "adir"], "is a directory"),
    (["eval", REF, "--data", "digits", "--input-range", "1,0"], "lo < hi"),
    (["eval", REF, "--data", "digits", "--input-range", "0,inf"], "finite"),
    (["eval", REF, "--data", "digits", "--severity", "abc", "--corruption", "fog"], "--severity"),
    (["eval", REF, "--data", "digits", "--corruption", "gaussian_noise", "--severity", "3", "--seed", "-1"], "seed"),
    (["data", "digits", "--out", "d.bogus"], ".npz"),
    (["data", "digits", "--out", "missing_dir/d.npz"], "does not exist"),
    (["memory", REF, "--plot", "missing_dir/p.png"], "does not exist"),
    (["memory", REF, "--plot", "p.bogus"], ".png"),
    (["memory", REF, "--batch-size", "0"], "--batch-size"),
    (["vectors", REF, "--data", "digits", "--out", "afile"], "not a folder"),
    (["vectors", REF, "--data", "digits", "--samples", "0", "--out", "vec"], "--samples"),
    (["contrib", REF, "--data", "digits", "--budget-kb", "100", "--out", "missing_dir/s.json"], "does not exist"),
    (["contrib", REF, "--data", "digits", "--budget-kb", "100", "--plot", "p.bogus"], ".png"),
    (["contrib", REF, "--data", "digits", "--budget-kb", "100", "--steps", "0"], "--steps"),
    (["demo", "--out-dir", "afile"], "not a folder"),
    (["demo", "--epochs", "0"], "--epochs"),
    (["info", "zoo:digits-cnn", "--classes", "0"], "--classes"),
    ([], "required"),
    (["bogus"], "invalid choice"),
] + ([  # a folder that os.access calls writable for root, where no file can be created
    (["train", REF, "--data", "digits", "--out", "/proc/x.tflite"], "not writable"),
    (["vectors", REF, "--data", "digits", "--out", "/proc/tinyzo/vec"], "not writable"),
] if Path("/proc/self").is_dir() else [])


@pytest.mark.parametrize("argv, needle", CLI_CASES, ids=[" ".join(a[:1] + a[2:] if a[1:2] == [REF] else a)
                                                         for a, _ in CLI_CASES])
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(work, capsys, argv, needle):
    before = _listing(work)
    code = main(argv)  # argparse's errors too come back as a status, not SystemExit
    err = capsys.readouterr().err
    assert code == 2, err
    line = _one_line(err)
    assert line.startswith("tinyzo: error:"), line
    assert needle.lower() in line.lower(), line
    assert _listing(work) == before


@pytest.mark.parametrize("argv", [
    ["train", REF, "--data", "digits", "--batch-size", "0"],
    ["train", REF, "--data", "digits", "--epochs", "abc"],
    ["train", REF, "--data", "digits", "--out", "missing_dir/x.tflite"],
])
def test_cli_issue_cases_in_a_subprocess(work, argv):
    """The issue's CLI cases as a user runs them: no traceback, no usage dump, exit status 2."""
    before = _listing(work)
    env = dict(os.environ, PYTHONPATH=str(Path(tinyzo.__file__).parents[1]))
    r = subprocess.run([sys.executable, "-m", "tinyzo", *argv], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 2, r.stderr
    assert _one_line(r.stderr).startswith("tinyzo: error:")
    assert r.stdout == ""
    assert _listing(work) == before


# ------------------------------------------------------------------------------------------- API

def _api_cases():
    x8 = np.zeros((2, 32, 32, 1), np.int8)
    from tinyzo.bp import QASOptimizer, BPTrainer
    from tinyzo.evaluate import evaluate
    from tinyzo.training.loop import fit
    from tinyzo.zo.trainer import ZOConfig, ZOTrainer

    nan_imgs = np.full((5, 8, 8), 0.5, np.float32)
    nan_imgs[3, 2, 2] = np.nan
    digits = data.load("digits")
    xt, yt = digits.x_test[:4], digits.y_test[:4]
    return [
        ("quantize_input str", lambda m: m.quantize_input("abc"), InputError, "expected real numbers"),
        ("quantize_input None", lambda m: m.quantize_input(None), InputError, "got none"),
        ("quantize_input complex", lambda m: m.quantize_input(np.array([1j])), InputError, "complex"),
        ("quantize_input ragged", lambda m: m.quantize_input([[1.0], [1.0, 2.0]]), InputError, "rectangular"),
        ("quantize_input index 5", lambda m: m.quantize_input(np.zeros(3), index=5), InputError, "0..0"),
        ("quantize_input index -1", lambda m: m.quantize_input(np.zeros(3), index=-1), InputError, "0..0"),
        ("quantize_input nan", lambda m: m.quantize_input(np.array([0.0, 1.0, np.nan, np.inf])), InputError,
         "2 of 4 values are nan or inf (first at index 2)"),
        ("dequantize_output float", lambda m: m.dequantize_output(np.zeros((1, 10), np.float32)), InputError,
         "integer"),
        ("dequantize_output range", lambda m: m.dequantize_output(np.array([1000])), InputError, "[-128, 127]"),
        ("dequantize_output index", lambda m: m.dequantize_output(np.zeros((1, 10), np.int8), index=3), InputError,
         "0..0"),
        ("load None", lambda m: tinyzo.load(None), InputError, "path"),
        ("load rounding", lambda m: tinyzo.load(REF, rounding="bogus"), InputError, "rounding"),
        ("save missing folder", lambda m: m.save("missing_dir/x.tflite"), OutputPathError, "does not exist"),
        ("save suffix", lambda m: m.save("x.bogus"), ModelFormatError, ".tflite"),
        ("save onto folder", lambda m: m.save("adir"), ModelFormatError, ".tflite"),
        ("save under a file", lambda m: m.save("afile/x.npz"), OutputPathError, "not a folder"),
        ("save None", lambda m: m.save(None), OutputPathError, "path"),
        ("model chunk_size 0", lambda m: setattr(m, "chunk_size", 0), InputError, "chunk_size"),
        ("model empty batch", lambda m: m(x8[:0]), InputError, "empty batch"),
        ("evaluate batch_size 0", lambda m: evaluate(m, xt, yt, batch_size=0), InputError, "batch_size"),
        ("evaluate float labels", lambda m: evaluate(m, xt, yt + 0.5), InputError, "integers"),
        ("evaluate nan images", lambda m: evaluate(m, nan_imgs, np.zeros(5, np.int64)), TinyzoError,
         "1 nan pixel values in 1 of 5 images (first: image 3)"),
        ("evaluate input_range", lambda m: evaluate(m, xt, yt, input_range=(1, 0)), InputError, "lo < hi"),
        ("Dataset nan", lambda m: data.Dataset(x_train=nan_imgs, y_train=np.zeros(5, np.int64),
                                               x_val=nan_imgs[:0], y_val=np.zeros(0, np.int64),
                                               x_test=nan_imgs[:0], y_test=np.zeros(0, np.int64)),
         TinyzoError, "x_train: float images must be finite and in [0, 1]: 1 nan pixel values in 1 of 5 images"),
        ("corrupt seed -1", lambda m: data.corrupt(xt, "gaussian_noise", 3, seed=-1), TinyzoError, "seed"),
        ("ZOConfig lr str", lambda m: ZOTrainer(m, ZOConfig(lr="a")), TinyzoError, "lr"),
        ("ZOConfig direction", lambda m: ZOTrainer(m, ZOConfig(direction="bogus")), TinyzoError, "direction"),
        ("ZOTrainer total_steps 0", lambda m: ZOTrainer(m, ZOConfig(), total_steps=0), TinyzoError, "total_steps"),
        ("ZOTrainer model None", lambda m: ZOTrainer(None, ZOConfig()), TinyzoError, "tinyzo.Model"),
        ("BPTrainer model None", lambda m: BPTrainer(None, optimizer=QASOptimizer("sgd", 1e-3)), TinyzoError,
         "tinyzo.Model"),
        ("fit batch_size 0", lambda m: fit(ZOTrainer(m, ZOConfig()), m, x8, np.zeros(2, np.int64), epochs=1,
                                           batch_size=0, progress=False), TinyzoError, "batch_size"),
        ("fit empty", lambda m: fit(ZOTrainer(m, ZOConfig()), m, x8[:0], np.zeros(0, np.int64), epochs=1,
                                    progress=False), TinyzoError, "empty"),
        ("set_num_threads 0", lambda m: runtime.set_num_threads(0), TinyzoError, "threads"),
    ]


API_CASES = _api_cases()


@pytest.mark.parametrize("label, call, cls, needle", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_bad_input_is_a_one_line_tinyzo_error(work, label, call, cls, needle):
    m = tinyzo.load(REF)  # a fresh model: some cases would change it if they did not fail
    before = _listing(work)
    with pytest.raises(cls) as e:
        call(m)
    msg = str(e.value)
    assert "\n" not in msg and needle.lower() in msg.lower(), msg
    assert _listing(work) == before


def test_quantize_input_rule_finite_values_saturate(model):
    """One rule: every finite value is quantized (saturating), whatever its magnitude or dtype."""
    q = model.quantize_input
    big = float(np.finfo(np.float32).max)
    np.testing.assert_array_equal(q([1e30, 1e300, big, 1e40]), [127, 127, 127, 127])
    np.testing.assert_array_equal(q([-1e30, -1e300, -big, -1e40]), [-128, -128, -128, -128])
    np.testing.assert_array_equal(q(np.int64([0, 1, 10**18, -(10**18)])), q(np.float32([0, 1, 1e18, -1e18])))
    assert q(1e300).dtype == np.int8 and q(1e300).shape == ()
    # in range, float64 and float32 agree (the value is rounded to float32 first, as the device gets it)
    x = np.random.default_rng(0).random(1000) * 1.2 - 0.1
    np.testing.assert_array_equal(q(x), q(x.astype(np.float32)))


# ------------------------------------------------------------------------------- batch streaming

@pytest.mark.parametrize("threads", [1, 2])
def test_chunked_batches_are_bit_identical(model, threads):
    x = np.random.default_rng(1).integers(-128, 128, (50, 32, 32, 1), dtype=np.int8)
    before = runtime.get_num_threads()
    runtime.set_num_threads(threads)
    try:
        model.chunk_size = 10**6
        y_ref, env_ref = model(x, intermediates=True)
        model.chunk_size = 7  # 8 chunks, the last one of 1 sample
        assert model.chunk_samples() == 7
        y, env = model(x, intermediates=True)
        np.testing.assert_array_equal(y, y_ref)
        assert env.keys() == env_ref.keys()
        for k in env:
            np.testing.assert_array_equal(env[k], env_ref[k])
        np.testing.assert_array_equal(model(x), y_ref)
        # forward_from with a per-sample node perturbation, chunked and not
        start = 9
        t = model.operators[start].outputs[0]
        add = {t: np.random.default_rng(2).integers(-3, 4, env_ref[t].shape)}
        a = model.forward_from(env_ref, start, add=add)
        model.chunk_size = 10**6
        np.testing.assert_array_equal(a, model.forward_from(env_ref, start, add=add))
    finally:
        model.chunk_size = None
        runtime.set_num_threads(before)


def test_large_batch_memory_is_bounded(model):
    """4,096 samples in chunks of 64: the traced peak stays under 10 x (threads x chunk activations)
    plus the output, where running the batch whole took about 4.5 x 4,096 x 57.5 kB (~1 GB)."""
    n, chunk = 4096, 64
    x = np.random.default_rng(3).integers(-128, 128, (n, 32, 32, 1), dtype=np.int8)
    model.chunk_size = chunk
    try:
        model(x[:chunk * 2])  # scratch buffers of chunk size exist before tracing (a steady state)
        tracemalloc.start()
        try:
            y = model(x)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        np.testing.assert_array_equal(y[:chunk * 2], model(x[:chunk * 2]))
    finally:
        model.chunk_size = None
    bound = 10 * runtime.get_num_threads() * chunk * model.sample_bytes + y.nbytes
    assert peak < bound, (peak, bound)


def test_intermediates_above_the_limit_are_refused(model):
    x = np.zeros((8, 32, 32, 1), np.int8)
    model.max_intermediates_bytes = 4 * model.sample_bytes
    try:
        with pytest.raises(InputError, match="run batches of at most 4 samples") as e:
            model(x, intermediates=True)
        assert "\n" not in str(e.value)
        model(x)  # without intermediates nothing is kept: no limit
        model(x[:4], intermediates=True)
        model.max_intermediates_bytes = None
        model(x, intermediates=True)
    finally:
        from tinyzo.graph import MAX_INTERMEDIATES_BYTES

        model.max_intermediates_bytes = MAX_INTERMEDIATES_BYTES
