"""The shipped weights and logs: the quick start works offline and every shipped row reproduces."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from common import data, logs, spiking
from common.networks import NETWORKS
from conftest import ROOT

# (workspace, network) of the shipped runs cheap enough to re-simulate in the test suite
WORKSPACES = [("MNIST", "mnist_lenet"), ("FashionMNIST/MLP", "fashion_mlp"), ("FashionMNIST/LeNet", "fashion_lenet")]
SHIPPED = [(ws, net, k) for ws, net in WORKSPACES for k in (0, 1, 2)
           if (ROOT / ws / "pretrained" / f"k{k}.npz").is_file()
           and (ROOT / ws / "figs" / f"k{k}" / "summary.json").is_file()]
BATCHES = 2


def test_the_quick_start_runs_offline_on_the_shipped_files(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != data.DATA_ENV}
    done = subprocess.run([sys.executable, str(ROOT / "MNIST" / "Spiking_LeNet_MNIST.py"), "--k", "1",
                           "--num_samples", "1000", "--log_dir", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    local = ROOT / "MNIST" / "checkpoints" / "k1.npz"  # a user's own training comes first; a fresh clone has none
    expected = local if local.is_file() else ROOT / "MNIST" / "pretrained" / "k1.npz"
    assert f"checkpoint {expected}," in done.stdout
    summary = logs.read_summary(tmp_path)
    assert summary["agreement"] == 1.0 and summary["mismatched_neurons"] == 0
    assert summary["snn_accuracy"][-1] == summary["ann_accuracy"] >= 0.98


@pytest.mark.parametrize("workspace, network, k", SHIPPED)
def test_a_shipped_row_reproduces(workspace, network, k, tmp_path):
    shipped = ROOT / workspace / "figs" / f"k{k}"
    summary = logs.read_summary(shipped)
    roots = data.data_roots(None, ROOT / workspace)
    try:
        data.locate(NETWORKS[network].dataset, data.SPLIT_FILES["test"], roots, download=False)
    except data.DataError:
        pytest.skip(f"no {NETWORKS[network].dataset} test set here")
    rerun = spiking.run(spiking.SpikingConfig(
        network=NETWORKS[network], k=k, checkpoint=ROOT / workspace / "pretrained" / f"k{k}.npz", roots=roots,
        log_dir=tmp_path, time_steps=summary["time_steps"], batch_size=summary["batch_size"],
        num_samples=BATCHES * summary["batch_size"]))
    lines = BATCHES * summary["time_steps"]
    for name in logs.LOG_FILES:  # batch-major: the first batches' lines are the shipped run's first lines
        assert (tmp_path / name).read_text().splitlines() == (shipped / name).read_text().splitlines()[:lines], name
    assert rerun["mismatched_neurons"] == 0 and rerun["agreement"] == 1.0
