"""A normal (non-editable) install works on its own: package data included, the demo runs anywhere.

The suite itself runs from an editable install (the README's test command), which would hide a file
that the package needs but does not ship. Here the project's git-tracked files are copied to a
temporary folder (what a fresh clone holds), installed with ``pip install --target`` (a real wheel
build, no editable hooks), and ``tinyzo demo --quick`` runs from an empty folder with only that
install on the path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tracked_files() -> list[str]:
    """Paths of the files a fresh clone holds (git ls-files), or None outside a git checkout."""
    try:
        r = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return [p for p in r.stdout.decode().split("\0") if p]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(site folder with a non-editable install of tinyzo, the list of files it was built from)."""
    files = _tracked_files()
    if files is None:
        pytest.skip("not a git checkout: cannot tell which files a fresh clone holds")
    src = tmp_path_factory.mktemp("clone")
    for rel in files:
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, src / rel)
    site = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                        "--no-build-isolation", "--target", str(site), str(src)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return site, files


def _env(site: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(site)
    env["TINYZO_PROGRESS"] = "never"
    return env


def test_non_editable_install_ships_every_data_file(installed):
    """Every tracked file of the package folders (modules and data) is in the installed package: setup.cfg
    lists the packages and their data explicitly, so a new subpackage or data file must be added there."""
    site, files = installed
    data = [f for f in files if f.startswith("tinyzo/")]
    data += ["tinyzo/reference_models/" + f[len("reference_models/"):] for f in files
             if f.startswith("reference_models/") and f != "reference_models/make_reference_models.py"]
    assert any(f.endswith("digits_cnn.tflite") for f in data)
    missing = [f for f in data if not (site / f).is_file()]
    assert not missing, f"not shipped by a non-editable install (add them to setup.cfg package_data): {missing}"


def test_non_editable_install_runs_the_demo_from_an_empty_folder(installed, tmp_path):
    site, _ = installed
    env = _env(site)
    r = subprocess.run([sys.executable, "-c", "import tinyzo, tinyzo.reference_models as m; "
                        "print(tinyzo.__file__); print(m.path('digits_cnn'))"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    for line in r.stdout.split():
        assert Path(line).resolve().is_relative_to(site.resolve()), f"{line} is not from the non-editable install"
    r = subprocess.run([sys.executable, "-m", "tinyzo", "demo", "--quick", "--methods", "zo-rge-weight", "--no-progress"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "| zo-rge-weight |" in r.stdout
    assert (tmp_path / "tinyzo_demo" / "zo-rge-weight" / "adapted.tflite").is_file()
