"""The shipped results: the quick start works offline and leaves the clone clean, and every shipped
spiking log is reproduced line for line by a fresh run on the shipped weights."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from common import data, logs, plots, spiking
from common.networks import NETWORKS
from conftest import ROOT
from signalling import PATIENCE

WORKSPACES = {"MNIST": "mnist_lenet", "FashionMNIST/MLP": "fashion_mlp", "FashionMNIST/LeNet": "fashion_lenet",
              "CIFAR10/CNN_1": "cifar10_cnn1", "CIFAR10/CNN_2": "cifar10_cnn2"}
# (workspace, network, k, log folder under pretrained/logs): the runs of every rule that ships (the ablation's too)
SHIPPED = [(ws, net, k, folder) for ws, net in WORKSPACES.items() for k in (0, 1, 2)
           for folder in (f"k{k}", f"no_negative/k{k}")
           if (ROOT / ws / "pretrained" / "logs" / folder / "summary.json").is_file()]
SLICE_IMAGES = {"CIFAR10/CNN_1": 200, "CIFAR10/CNN_2": 200}  # CIFAR-10 re-runs its first batches: CI's time


def git_status() -> str:
    return subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True).stdout


@pytest.mark.slow  # 10,000 test images
def test_the_quick_start_runs_offline_and_changes_no_tracked_file(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != data.DATA_ENV}
    before = git_status()
    done = subprocess.run([sys.executable, str(ROOT / "MNIST" / "Spiking_LeNet_MNIST.py"), "--k", "1",
                           "--num_samples", "1000", "--log_dir", str(tmp_path / "figs" / "k1")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=PATIENCE)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr == ""  # a quiet start: no TensorFlow start-up lines
    local = ROOT / "MNIST" / "checkpoints" / "k1.npz"  # a user's own training comes first; a fresh clone has none
    expected = local if local.is_file() else ROOT / "MNIST" / "pretrained" / "k1.npz"
    assert f"checkpoint {expected}," in done.stdout
    summary = logs.read_summary(tmp_path / "figs" / "k1")
    assert summary["agreement"] == 1.0 and summary["mismatched_neurons"] == 0
    assert summary["snn_accuracy"][-1] == summary["ann_accuracy"] >= 0.98
    assert git_status() == before
    # where the quick start writes by default, and its figures, git ignores
    paths = ["MNIST/figs/k1/accuracy.txt", "MNIST/figs/accuracy_speed.png", "MNIST/checkpoints/k1.npz"]
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", *paths], capture_output=True, text=True)
    assert len(ignored.stdout.splitlines()) == 3


def test_plots_draw_without_tensorflow_from_inside_a_workspace(tmp_path):
    workspace = tmp_path / "MNIST"
    shipped = ROOT / "MNIST" / "pretrained" / "logs"
    if not shipped.is_dir():
        pytest.skip("no shipped MNIST logs")
    shutil.copytree(shipped, workspace / "figs")
    done = subprocess.run([sys.executable, "-c", "import sys; from common import plots; plots.main(['.']); "
                           "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'"],
                          cwd=workspace, capture_output=True, text=True, timeout=PATIENCE,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # this tree's common, whatever is installed
    assert done.returncode == 0, done.stderr[-2000:]
    assert all((workspace / "figs" / name).is_file() for name in plots.FIGURES)


@pytest.mark.slow  # every shipped run, full test sets (CIFAR-10: the first 200 images)
@pytest.mark.parametrize("workspace, network, k, folder", SHIPPED)
def test_every_line_of_a_shipped_log_reproduces(workspace, network, k, folder, tmp_path):
    shipped = ROOT / workspace / "pretrained" / "logs" / folder
    summary = logs.read_summary(shipped)
    images = min(summary["num_samples"], SLICE_IMAGES.get(workspace, summary["num_samples"]))
    whole = images == summary["num_samples"]
    assert whole or images % summary["batch_size"] == 0, "a slice is whole batches: their lines come first"
    roots = data.data_roots(None, ROOT / workspace)
    checkpoint = ROOT / workspace / "pretrained" / f"k{k}.npz"
    dataset = NETWORKS[network].dataset
    try:
        data.locate(dataset, data.files_of(dataset, ("test",)), roots, download=False)
    except data.DataError:
        pytest.skip(f"no {dataset} test set here")
    assert checkpoint.is_file(), f"{shipped} ships without its weights {checkpoint}: nothing can check it"
    rerun = spiking.run(spiking.SpikingConfig(
        network=NETWORKS[network], k=k, checkpoint=checkpoint, roots=roots, log_dir=tmp_path,
        time_steps=summary["time_steps"], batch_size=summary["batch_size"], num_samples=images,
        neuron_rule=summary["neuron_rule"]))
    for name in logs.LOG_FILES:  # a line per batch and time step: a slice's lines are the log's first
        lines = (tmp_path / name).read_text().splitlines()
        assert len(lines) == -(-images // summary["batch_size"]) * summary["time_steps"], name
        expected = (shipped / name).read_text().splitlines()
        assert lines == (expected if whole else expected[:len(lines)]), name
    for key in ("ann_accuracy", "snn_accuracy", "lossless_step", "agreement", "mismatched_neurons",
                "spikes_per_image", "sops_per_image", "settle_steps") if whole else ():
        assert rerun[key] == summary[key], key
    if summary["neuron_rule"] == "lossless":
        assert rerun["mismatched_neurons"] == 0 and rerun["agreement"] == 1.0


def test_the_real_near_tie_case_is_exact():
    """FashionMNIST MLP k=1, test images 401-600 in batches of 200: the case where a float32 simulator
    re-ran image 489 in a batch of two and fired one spike too many."""
    roots = data.data_roots(None, ROOT / "FashionMNIST" / "MLP")
    try:
        data.locate("fashion_mnist", data.SPLIT_FILES["test"], roots, download=False)
    except data.DataError:
        pytest.skip("no fashion_mnist test set here")
    import numpy as np

    from common import checkpoint, convert
    from common.snn import FastSimulator

    net = NETWORKS["fashion_mlp"]
    sn = convert.convert(net, 1, checkpoint.load(ROOT / "FashionMNIST/MLP/pretrained/k1.npz", net, 1))
    x = data.load_split("fashion_mnist", "test", roots).x[400:600] * 2
    sim = FastSimulator(sn)
    result, ann = sim.simulate(x, 20), sim.exact_ann(x)
    assert (result.settle >= 0).all()
    assert sum(int((c != a).sum()) for c, a in zip(result.counts, ann[:-1])) == 0
    alone = sim.simulate(x[88:89], 20)  # image 489 on its own
    assert all(np.array_equal(c[0], a[88]) for c, a in zip(alone.counts, ann[:-1]))


def test_a_figure_says_which_checkpoint_and_how_long_it_trained(tmp_path):
    history = {"runs": [], "epochs": [{"epoch": e, "train_images": 10_000} for e in (1, 2, 3)]}
    (tmp_path / "k1.history.json").write_text(json.dumps(history))
    summary = {"checkpoint": str(tmp_path / "k1.npz"), "partial": False}
    assert plots.run_source(summary) == "k1.npz, 3 epochs on 10,000 images"
    history["epochs"] = [{"epoch": 150, "train_images": 50_000}]
    (tmp_path / "k1.history.json").write_text(json.dumps(history))
    assert plots.run_source(summary) == "k1.npz, 150 epochs"
    partial = {**summary, "partial": True, "k": 1, "num_samples": 10, "test_images": 10_000}
    assert "partial" in plots.run_label("k1", partial)  # what differs from the defaults, partial runs too
    assert plots.run_source({"checkpoint": str(tmp_path / "other.npz")}) == "other.npz"
