"""The package as a user installs and runs it: package data, help on every command line, the tables."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib

import pytest

from conftest import ROOT, load_script
from signalling import PATIENCE

from common import plots


def test_the_paper_curves_are_package_data():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["common"]
    assert "paper/*.csv" in patterns
    assert plots.PAPER_CURVES.is_file()
    assert set(plots.paper_curves("MNIST")) == {0, 1, 2}


def test_the_licence_is_in_the_form_the_required_setuptools_reads():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["build-system"]["requires"] == ["setuptools>=61"]
    assert pyproject["project"]["license"] == {"text": "MIT"}  # the SPDX string form needs setuptools>=77


def test_a_workspace_is_known_by_its_name_outside_the_repository(tmp_path):
    assert plots.workspace_name(tmp_path / "FashionMNIST" / "MLP") == "FashionMNIST/MLP"
    assert plots.workspace_name(tmp_path / "MNIST") == "MNIST"


def test_a_folder_of_workspaces_names_them():
    with pytest.raises(SystemExit, match="FashionMNIST/LeNet and .*FashionMNIST/MLP; pass one of them"):
        plots.main(["FashionMNIST"])


def results_table_tool():
    """``tools/results_table.py`` as a module (tools/ is not a package)."""
    return load_script(ROOT / "tools" / "results_table.py")


def test_dash_h_is_help_for_scripts_and_tools(capsys):
    done = subprocess.run([sys.executable, str(ROOT / "MNIST" / "Spiking_LeNet_MNIST.py"), "-h"], capture_output=True,
                          text=True, timeout=PATIENCE)
    assert "--k:" in done.stdout and "error" not in done.stderr, done.stderr  # absl exits 1 after help
    for main in (plots.main, results_table_tool().main):
        with pytest.raises(SystemExit) as exit_status:
            main(["-h"])
        assert exit_status.value.code == 0 and "usage:" in capsys.readouterr().out


def test_results_table_help_and_your_own_runs(tmp_path, capsys):
    tool = results_table_tool()
    with pytest.raises(SystemExit):
        tool.main(["--help"])
    out = capsys.readouterr().out
    assert "--runs" in out and "| network |" not in out
    shutil.copytree(ROOT / "MNIST" / "pretrained" / "logs" / "k1", tmp_path / "figs" / "k1")
    tool.main(["--runs", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and max(map(len, lines)) <= 100, lines
    assert "figs/k1" in lines[2] and "99.16" in lines[2]
    tool.main(["--runs", str(tmp_path / "figs" / "none")])
    assert capsys.readouterr().out.startswith("no spiking runs under")


@pytest.mark.slow
def test_a_non_editable_install_draws_the_paper_curves(tmp_path):
    """``pip install .`` into a fresh virtualenv: the curves travel with the package; the tree stays clean."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the working tree
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "figs", "checkpoints", "build", "*.egg-info",
                                                                 "__pycache__", ".pytest_cache", ".ruff_cache"))
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           str(source)], capture_output=True, text=True, timeout=PATIENCE)
    assert done.returncode == 0, done.stderr
    workspace = tmp_path / "elsewhere" / "MNIST"
    shutil.copytree(ROOT / "MNIST" / "pretrained" / "logs", workspace / "figs")
    probe = ("import common, sys; from common import plots; print(common.__file__); "
             "print(sorted(plots.paper_curves('MNIST'))); plots.main(['MNIST'])")
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=PATIENCE,
                          cwd=workspace.parent)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(str(venv)), lines[0]  # the installed copy, not the source tree
    assert lines[1] == "[0, 1, 2]"
    assert (workspace / "figs" / "accuracy_speed.png").is_file()


def test_what_pip_install_builds_in_the_tree_is_ignored():
    paths = ["build/lib/common/plots.py", "negspike.egg-info/PKG-INFO"]
    done = subprocess.run(["git", "-C", str(ROOT), "check-ignore", *paths], capture_output=True, text=True)
    assert done.stdout.split() == paths
