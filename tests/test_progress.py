"""Progress bars: live on a terminal, bounded in a log (no per-step lines when stderr is a file or pipe)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from tinyzo import data, progress
from tinyzo.demo import reference_model_path


class _Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("mode, tty, want", [("auto", True, True), ("auto", False, False), ("always", False, True),
                                             ("never", True, False), ("", True, True)])
def test_interactive_follows_the_stream_and_the_override(monkeypatch, mode, tty, want):
    monkeypatch.setenv("TINYZO_PROGRESS", mode)
    assert progress.interactive(_Tty() if tty else io.StringIO()) is want


def test_step_bar_is_silent_in_a_log_and_still_iterates(monkeypatch):
    monkeypatch.setenv("TINYZO_PROGRESS", "never")
    bar = progress.step_bar(range(5), desc="epoch 1/1")
    assert bar.disable and list(bar) == [0, 1, 2, 3, 4]
    bar.set_postfix(loss="1.0")
    bar.close()
    monkeypatch.setenv("TINYZO_PROGRESS", "always")
    assert not progress.step_bar(range(5), desc="x").disable
    assert progress.step_bar(range(5), desc="x", enabled=False).disable


def test_outer_bar_refreshes_at_most_once_a_minute_in_a_log(monkeypatch):
    monkeypatch.setenv("TINYZO_PROGRESS", "auto")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    bar = progress.outer_bar(total=10, desc="runs")
    assert not bar.disable and bar.mininterval == progress.LOG_REFRESH_SECONDS
    bar.close()
    monkeypatch.setattr(sys, "stderr", _Tty())
    bar = progress.outer_bar(total=10, desc="runs")
    assert bar.mininterval < 1
    bar.close()


@pytest.mark.parametrize("mode, bars", [("auto", False), ("always", True)])
def test_training_into_a_pipe_prints_one_line_per_epoch(tmp_path, mode, bars):
    """`tinyzo train` with its output piped (a CI log): no bar redraws, one summary line per epoch."""
    ds = data.load("digits")
    blur = tmp_path / "blur.npz"
    n = 64
    data.save(data.Dataset(data.corrupt(ds.x_train[:n], "motion_blur", 5, seed=0), ds.y_train[:n],
                           ds.x_val[:16], ds.y_val[:16], ds.x_test[:0], ds.y_test[:0], classes=ds.classes), blur)
    env = dict(os.environ, TINYZO_PROGRESS=mode)  # auto: stderr is a pipe here, like a CI log
    r = subprocess.run([sys.executable, "-m", "tinyzo", "train", str(reference_model_path()), "--data", str(blur),
                        "--method", "zo-rge-weight", "--layers", "11", "--epochs", "2", "--batch-size", "8",
                        "--out-dir", str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    # no bar in a log; forced on, the bar redraws (the check can see one)
    assert ("%|" in r.stderr) is bars and "%|" not in r.stdout
    epoch_lines = [ln for ln in r.stdout.splitlines() if ln.startswith("epoch ")]
    assert [ln.split(":")[0] for ln in epoch_lines] == ["epoch 1/2", "epoch 2/2"]
