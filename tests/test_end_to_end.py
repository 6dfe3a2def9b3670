"""A tiny model trained on synthetic data, converted and simulated: logs and summary agree."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common import logs, provenance, spiking, train
from common.networks import MNIST_LENET
from common.progress import Progress
from conftest import ROOT
from signalling import PATIENCE

T = 15


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from helpers import write_idx_dataset

    tmp = tmp_path_factory.mktemp("e2e")
    write_idx_dataset(tmp / "data" / "mnist", 10_600, 150, np.random.default_rng(3))
    cfg = train.TrainConfig(network=MNIST_LENET, k=1, checkpoint=tmp / "k1.npz", roots=[tmp / "data"],
                            learning_rate=1e-2, epochs=2, batch_size=100, train_samples=600, seed=0)
    train.run(cfg)
    return tmp, cfg


def simulate(trained, log_dir: Path, **overrides) -> dict:
    tmp, cfg = trained
    settings = dict(network=MNIST_LENET, k=1, checkpoint=cfg.checkpoint, roots=cfg.roots, log_dir=log_dir,
                    time_steps=T, batch_size=100)
    settings.update(overrides)
    return spiking.run(spiking.SpikingConfig(**settings))


def test_logs_and_summary_agree(trained, tmp_path):
    summary = simulate(trained, tmp_path)
    n = summary["num_samples"]
    assert n == 150 and summary["time_steps"] == T
    for name in logs.LOG_FILES:
        assert len((tmp_path / name).read_text().splitlines()) == 2 * T  # batches of 100 and 50
    accuracy = logs.read_log(tmp_path, "accuracy.txt", T)
    assert summary["snn_accuracy"] == (accuracy.sum(axis=0) / n).tolist()
    spikes = logs.read_log(tmp_path, "spike_num.txt", T)
    net = logs.read_log(tmp_path, "spike_collect.txt", T)
    sops = logs.read_log(tmp_path, "sop_num.txt", T)
    assert (np.diff(spikes, axis=1) >= 0).all() and (np.diff(sops, axis=1) >= 0).all()  # cumulative
    assert summary["spikes_per_image"] == spikes[:, -1].sum() / n
    difference = summary["positive_spikes_per_image"] - summary["negative_spikes_per_image"]
    assert difference == pytest.approx(net[:, -1].sum() / n, rel=1e-12)
    assert summary["sops_per_image"] == sops[:, -1].sum() / n
    assert summary["mismatched_neurons"] == 0 and summary["agreement"] == 1.0
    assert summary["snn_accuracy"][-1] == summary["ann_accuracy"]
    step = summary["lossless_step"]
    assert all(a == summary["ann_accuracy"] for a in summary["snn_accuracy"][step - 1:])
    assert step == 1 or summary["snn_accuracy"][step - 2] != summary["ann_accuracy"]
    settle = summary["settle_steps"]
    assert sum(settle["histogram"].values()) + settle["unsettled"] == n
    assert summary["ann_macs_per_image"] == MNIST_LENET.macs_per_image()
    run = summary["run"]  # the record of what produced it
    assert {"command", "git", "versions", "cpu", "checkpoint_sha256", "data_sha256", "wall_seconds"} <= set(run)
    assert run["checkpoint_sha256"] == provenance.sha256(trained[1].checkpoint)
    assert len(run["data_sha256"]) == 2 and run["versions"]["tensorflow"]


@pytest.mark.slow  # a spiking run
def test_a_last_batch_of_one_image_stays_exact(trained, tmp_path):
    summary = simulate(trained, tmp_path, num_samples=101)  # batches of 100 and 1
    assert len((tmp_path / "accuracy.txt").read_text().splitlines()) == 2 * T
    assert summary["mismatched_neurons"] == 0 and summary["agreement"] == 1.0


@pytest.mark.slow  # the NumPy reference
def test_reference_simulator_writes_the_same_logs(trained, tmp_path):
    simulate(trained, tmp_path / "fast", num_samples=20)
    simulate(trained, tmp_path / "ref", num_samples=20, simulator="reference")
    for name in logs.LOG_FILES:
        assert (tmp_path / "fast" / name).read_text() == (tmp_path / "ref" / name).read_text(), name


@pytest.mark.slow  # several spiking runs
def test_two_replicas_write_the_logs_of_one(trained, tmp_path):
    """Batches go to replicas in turn (3 batches over 2 replicas, with noise drawn in batch order);
    the logs are merged in batch order."""
    from common import distribute

    kwargs = dict(num_samples=150, batch_size=50, noise_ratio=0.3, seed=2)
    one = simulate(trained, tmp_path / "one", **kwargs)
    two = simulate(trained, tmp_path / "two", strategy=distribute.make_strategy("mirrored", 2), **kwargs)
    for name in logs.LOG_FILES:
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text(), name
    assert {k: v for k, v in one.items() if k != "run"} == {k: v for k, v in two.items() if k != "run"}


@pytest.mark.slow  # several spiking runs
def test_too_few_steps_are_named_with_steps_that_suffice(trained, tmp_path, capsys):
    import re

    summary = simulate(trained, tmp_path / "short", time_steps=3, num_samples=60, batch_size=25)
    unsettled = summary["settle_steps"]["unsettled"]
    note = capsys.readouterr().out.strip().splitlines()[-1]
    match = re.fullmatch(rf"note: {unsettled} images were still spiking after 3 steps, so their counts are not "
                         r"final; simulated again, they settle within (\d+) steps: pass --time_steps \1", note)
    assert unsettled > 0 and match, note
    enough = int(match.group(1))
    again = simulate(trained, tmp_path / "enough", time_steps=enough, num_samples=60, batch_size=25)
    assert again["settle_steps"]["unsettled"] == 0 and again["settle_steps"]["max"] == enough - 1


@pytest.mark.slow  # several spiking runs
def test_noise_with_a_seed_is_repeatable(trained, tmp_path):
    a = simulate(trained, tmp_path / "a", noise_ratio=0.5, seed=4, num_samples=50)
    simulate(trained, tmp_path / "b", noise_ratio=0.5, seed=4, num_samples=50)
    simulate(trained, tmp_path / "c", noise_ratio=0.5, seed=5, num_samples=50)
    for name in logs.LOG_FILES:
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    assert (tmp_path / "a" / "spike_num.txt").read_text() != (tmp_path / "c" / "spike_num.txt").read_text()
    assert a["noise_ratio"] == 0.5


@pytest.mark.slow  # a TensorFlow subprocess
def test_the_script_end_to_end(trained, tmp_path):
    tmp, cfg = trained
    done = subprocess.run(
        [sys.executable, str(ROOT / "MNIST" / "Spiking_LeNet_MNIST.py"), "--k", "1", "--checkpoint",
         str(cfg.checkpoint), "--data_dir", str(tmp / "data"), "--time_steps", "12", "--log_dir", str(tmp_path)],
        capture_output=True, text=True, timeout=PATIENCE)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr == ""  # a quiet start: no TensorFlow start-up lines without --verbose
    lines = done.stdout.strip().splitlines()
    assert "agreement 1.0000" in lines[-1] and "mismatched neurons 0" in lines[-1]
    assert any(line.startswith("spiking: 1/1 batches") and "images/s" in line for line in lines)  # no TTY
    assert logs.read_summary(tmp_path)["time_steps"] == 12


@pytest.mark.slow  # several spiking runs
def test_tensorboard_summaries_of_training_and_spiking(trained, tmp_path):
    tmp, cfg = trained
    simulate(trained, tmp_path / "logs", num_samples=20, tensorboard=tmp_path / "tb_snn")
    train.run(dataclasses.replace(cfg, checkpoint=tmp_path / "k1.npz", epochs=1, tensorboard=tmp_path / "tb_ann"))
    for folder in ("tb_snn", "tb_ann"):
        assert list((tmp_path / folder).glob("events.out.tfevents.*")), folder


def test_progress_lines_without_a_terminal():
    out = io.StringIO()
    progress = Progress(4, "epoch 1", interval=0.0, stream=out, interactive=False)
    for done in range(1, 5):
        progress.update(done, 100, [("loss", 0.5)])
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and lines[-1].startswith("epoch 1: 4/4 batches") and "images/s, ETA 0:00:00" in lines[-1]
    quiet = io.StringIO()
    slow = Progress(4, "x", interval=3600.0, stream=quiet, interactive=False)
    for done in range(1, 5):
        slow.update(done, 1)
    assert len(quiet.getvalue().splitlines()) == 1  # only the last line within the interval


@pytest.mark.parametrize("make_bad, message", [
    (lambda p: p.write_bytes(b"garbage"), "is not a valid .npz file"),
    (lambda p: None, "does not exist"),
])
def test_bad_checkpoints_get_one_line(tmp_path, make_bad, message):
    bad = tmp_path / "k1.npz"
    make_bad(bad)
    done = subprocess.run([sys.executable, str(ROOT / "MNIST" / "Spiking_LeNet_MNIST.py"), "--checkpoint", str(bad)],
                          capture_output=True, text=True, timeout=PATIENCE)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: checkpoint") and message in done.stderr


def test_missing_data_gets_one_line(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "FashionMNIST" / "MLP" / "Quant_MLP_FashionMNIST.py"),
                           "--mode", "inference", "--data_dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=PATIENCE)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: fashion_mnist: missing t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz")
    assert done.stderr.count("\n") == 1
    assert str(tmp_path / "fashion_mnist") in last


@pytest.mark.slow  # a spiking run
def test_per_layer_figures_add_up_to_the_totals(trained, tmp_path):
    summary = simulate(trained, tmp_path, num_samples=40)
    layers = summary["layers"]
    assert [layer["neurons"] for layer in layers] == [h * w * c for h, w, c in MNIST_LENET.shapes()[1:]]
    for key in ("sops_per_image", "positive_spikes_per_image", "negative_spikes_per_image"):
        assert sum(layer[key] for layer in layers) == pytest.approx(summary[key], rel=1e-12), key
    for layer in layers:
        spikes = layer["positive_spikes_per_image"] + layer["negative_spikes_per_image"]
        assert layer["spikes_per_neuron_per_step"] == pytest.approx(spikes / layer["neurons"] / T)
        assert 0 <= layer["mean_settle_step"] <= summary["settle_steps"]["max"]
    energy = summary["energy_estimate"]
    assert "estimate" in energy["note"] and energy["pj_per_accumulate"] == 0.9 and energy["pj_per_mac"] == 4.6
    first_macs = 24 * 24 * 20 * 5 * 5  # LeNet's first layer sees the image itself: multiply-accumulates
    assert energy["snn_first_layer_macs_per_image"] == first_macs
    assert energy["snn_uj_per_image"] == pytest.approx((first_macs * 4.6 + summary["sops_per_image"] * 0.9) / 1e6)
    assert energy["ann_uj_per_image"] == pytest.approx(MNIST_LENET.macs_per_image() * 4.6 / 1e6)


def test_per_layer_sops_of_the_fast_simulator_equal_the_reference(trained):
    from common import checkpoint, convert, data, reference
    from common.snn import FastSimulator

    tmp, cfg = trained
    sn = convert.convert(MNIST_LENET, 1, checkpoint.load(cfg.checkpoint, MNIST_LENET, 1))
    x = data.load_split("mnist", "test", cfg.roots).x[:12] * 2
    fast, ref = FastSimulator(sn).simulate(x, 8), reference.simulate(sn, x, 8)
    np.testing.assert_array_equal(fast.layer_synops, ref.layer_synops)
    np.testing.assert_array_equal(fast.layer_synops.sum(1), fast.synops)


@pytest.mark.slow  # a spiking run
def test_the_headline_says_when_no_image_settled(trained, tmp_path, capsys):
    simulate(trained, tmp_path, time_steps=1, num_samples=20)
    headline = [line for line in capsys.readouterr().out.splitlines() if line.startswith("ANN accuracy")][0]
    assert "no image settled in 1 steps" in headline and "lossless step" not in headline


@pytest.mark.slow  # a spiking run and its figures
def test_the_per_layer_figure_is_drawn_and_one_epoch_is_singular(trained, tmp_path):
    from common import plots

    simulate(trained, tmp_path / "MNIST" / "figs" / "k1", num_samples=20)
    paths = plots.plot_workspace(tmp_path / "MNIST")
    assert [p.name for p in paths] == list(plots.FIGURES) and "layers.png" in plots.FIGURES
    assert all(p.is_file() for p in paths)
    assert plots.trained_for({"epochs": [{"epoch": 1}]}) == "1 epoch"
    assert plots.trained_for({"epochs": [{"epoch": 2}]}) == "2 epochs"


@pytest.mark.slow  # a TensorFlow subprocess
def test_a_run_says_its_strategy_and_devices_and_a_missing_gpu(trained, tmp_path):
    tmp, cfg = trained
    done = subprocess.run(
        [sys.executable, str(ROOT / "MNIST" / "Spiking_LeNet_MNIST.py"), "--checkpoint", str(cfg.checkpoint),
         "--data_dir", str(tmp / "data"), "--time_steps", "4", "--num_samples", "10", "--log_dir", str(tmp_path),
         "--strategy", "mirrored"], capture_output=True, text=True, timeout=PATIENCE, env={**os.environ,
                                                                                      "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "strategy mirrored: 1 replica on CPU:0"
    assert lines[1].startswith("note: --strategy mirrored asks for GPUs but TensorFlow sees none")
