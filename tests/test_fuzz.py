"""Corrupt model files never crash tinyzo with anything but a TinyzoError, and never hang.

The mutators of ``scripts/fuzz_models.py`` (the long-run harness, see docs/reliability.md) are run
here with fixed seeds on every seed file, both formats: a ``.tflite`` FlatBuffer with flipped bytes,
4-byte words set to extreme / small / random / special-float values, or truncated; a tinyzo ``.npz``
with a damaged ``.npy`` header, a graph-JSON value of the wrong type or range, a special value in a
scale / zero-point / data array, or damaged zip bytes. Each mutant must load or raise a
:class:`tinyzo.errors.TinyzoError`; one that loads must be summarized (``tinyzo info``) and run one
sample of zeros, or raise a TinyzoError. About 2,200 mutants in total.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import fuzz_models

# mutants per seed file: the small models get most, the large ones (person_detect runs in ~30 ms)
# enough to reach their depthwise / pooling / reshape operators
CASES = {
    "hello_world_int8.tflite": 500, "micro_speech_quantized.tflite": 400, "simple_add_model.tflite": 400,
    "digits_cnn.tflite": 80, "person_detect.tflite": 30,
    "hello_world_int8.npz": 250, "micro_speech_quantized.npz": 200, "simple_add_model.npz": 300,
    "digits_cnn.npz": 40, "person_detect.npz": 15,
}
if os.environ.get("NUMBA_DISABLE_JIT") == "1":  # interpreted kernels: a tenth of the mutants
    CASES = {k: max(v // 10, 5) for k, v in CASES.items()}


class _Hang(BaseException):
    pass


@pytest.fixture
def hang_guard():
    """Fail (instead of hanging the suite) if a test runs over 120 s."""

    def handler(signum, frame):
        raise _Hang("fuzz test took more than 120 s: a mutated model made tinyzo hang")

    old = signal.signal(signal.SIGALRM, handler)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def seeds():
    return fuzz_models.seed_models()


def test_every_seed_file_runs(seeds):
    """The unmutated seeds load and run: a refusal below is the mutation's doing."""
    assert sorted(seeds) == sorted(CASES)
    for label, (kind, data) in seeds.items():
        assert fuzz_models.check_mutant(data, kind) == ("ran", ""), label


@pytest.mark.parametrize("label", sorted(CASES))
def test_mutants_give_a_tinyzo_error_or_a_result(label, seeds, hang_guard):
    one = {label: seeds[label]}  # mutate() picks the seed by i % len(seeds): one seed, every i
    outcomes: dict = {}
    for i in range(CASES[label]):
        _, kind, data, what = fuzz_models.mutate(one, 2024, i)
        outcome, detail = fuzz_models.check_mutant(data, kind)
        assert outcome != "foreign", f"{label} mutant {i} ({what}): {detail}"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    # the mutations must exercise both the error paths and the running models
    assert outcomes.get("load refused", 0) >= CASES[label] // 4, outcomes
    assert outcomes.get("ran", 0) >= 1, outcomes


def test_harness_classifies_a_foreign_exception(monkeypatch):
    """check_mutant reports an exception that is not a TinyzoError as "foreign" (the harness can fail)."""

    def boom(data, kind):
        raise KeyError(4)

    monkeypatch.setattr(fuzz_models, "load_bytes", boom)
    outcome, detail = fuzz_models.check_mutant(b"", "tflite")
    assert outcome == "foreign" and detail.startswith("load: KeyError: 4")
