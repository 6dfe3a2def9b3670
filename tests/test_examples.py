"""The extension example works as its README says: examples/digits/run.sh trains a network that is not one
of the paper's, on data that ships with scikit-learn, converts it and writes a lossless spiking run."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from common import logs, plots
from conftest import ROOT

EXAMPLE = ROOT / "examples" / "digits"


@pytest.mark.slow  # trains for about a minute
def test_the_digits_example_runs_offline_and_converts_losslessly(tmp_path):
    pytest.importorskip("sklearn", reason="the examples extra: pip install -e '.[examples]'")
    copy = tmp_path / "examples" / "digits"  # a copy, so the run leaves this clone as it was
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("data", "checkpoints", "figs", "__pycache__"))
    done = subprocess.run(["sh", str(copy / "run.sh")], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # this tree's common, whatever is installed
    assert done.returncode == 0, done.stderr[-3000:]
    summary = logs.read_summary(copy / "figs" / "k1")
    assert summary["network"] == "digits_cnn" and summary["num_samples"] == 300
    assert summary["agreement"] == 1.0 and summary["mismatched_neurons"] == 0
    assert summary["snn_accuracy"][-1] == summary["ann_accuracy"] >= 0.9
    assert all((copy / "figs" / name).is_file() for name in plots.FIGURES)
