"""`tinyzo demo`, the main job, in its quick mode."""

import subprocess
import sys

from tinyzo.cli import main


def test_demo_quick_runs_and_improves_with_node_perturbation(tmp_path, capsys):
    assert main(["demo", "--quick", "--out-dir", str(tmp_path), "--no-progress", "--methods", "zo-rge-node"]) == 0
    out = capsys.readouterr().out
    assert "| zo-rge-node | 32.8% |" in out
    row = [ln for ln in out.splitlines() if ln.startswith("| zo-rge-node")][0]
    after = float(row.split("|")[3].strip().rstrip("%"))
    assert after > 40.0  # one epoch of node perturbation already wins back accuracy (measured 63%)
    for f in ("summary.png", "summary.md", "zo-rge-node/curves.png", "zo-rge-node/adapted.tflite",
              "zo-rge-node/history.json"):
        assert (tmp_path / f).exists(), f


def test_demo_speech_quick_adapts_the_keyword_spotter_to_the_noise_shift(tmp_path, capsys):
    from tinyzo.demo import SPEECH_DEMO_METHODS

    assert main(["demo", "--task", "speech", "--quick", "--out-dir", str(tmp_path), "--no-progress",
                 "--methods", "zo-rge-node,bp-qas-sgd"]) == 0
    out = capsys.readouterr().out
    assert "kws_dscnn.tflite): 92.67% clean" in out
    assert "adapting the last 1 layers to noise shift" in out   # the speech settings, not the digits ones
    rows = {ln.split("|")[1].strip(): ln.split("|") for ln in out.splitlines() if ln.startswith("| zo-") or ln.startswith("| bp-")}
    for name, row in rows.items():
        before, after = (float(row[i].strip().rstrip("%")) for i in (2, 3))
        assert before == 68.3, name
        assert after > before, name   # one epoch already wins clips back (measured 69.7% and 71.7%)
    kib = {name: float(row[8].split()[0]) for name, row in rows.items()}
    assert kib["zo-rge-node"] < 100 and kib["bp-qas-sgd"] > 256   # measured 66.3 and 570.8 KiB
    assert SPEECH_DEMO_METHODS["zo-rge-node"]["lr"] == 1e-2
    for f in ("summary.png", "summary.md", "zo-rge-node/adapted.tflite", "bp-qas-sgd/curves.png"):
        assert (tmp_path / f).exists(), f


def test_demo_bad_flags_are_one_line(tmp_path):
    for argv in (["--corruption", "nope"], ["--severity", "7"], ["--methods", "zo-magic"]):
        r = subprocess.run([sys.executable, "-m", "tinyzo", "demo", "--quick", "--out-dir", str(tmp_path), *argv],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and r.stderr.startswith("tinyzo: error:") and "Traceback" not in r.stderr


def test_demo_reports_training_memory_and_skips_methods_over_the_budget(tmp_path, capsys):
    from tinyzo.demo import training_memory
    import tinyzo
    from tinyzo.demo import reference_model_path

    m = tinyzo.load(reference_model_path())
    node, bp = training_memory(m, "zo-rge-node"), training_memory(m, "bp-qas-sgd")
    assert 0 < node["peak_sram_bytes"] < bp["peak_sram_bytes"]   # ZO keeps no backward chain
    budget = (node["peak_sram_bytes"] + bp["peak_sram_bytes"]) / 2 / 1024
    res = main(["demo", "--quick", "--out-dir", str(tmp_path), "--no-progress", "--methods", "bp-qas-sgd",
                "--budget-kb", f"{budget:.3f}"])
    assert res == 0
    out = capsys.readouterr().out
    assert "over the SRAM budget" in out and f"{bp['peak_sram_bytes'] / 1024:.1f} KiB" in out
    assert not (tmp_path / "bp-qas-sgd").exists()   # skipped: nothing trained


def test_demo_bad_budget(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tinyzo", "demo", "--quick", "--out-dir", str(tmp_path), "--budget-kb", "-3"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("tinyzo: error:") and "budget" in r.stderr
