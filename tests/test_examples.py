"""The extension example works as its README says: examples/digits/run.sh trains a network that is not one
of the paper's, on data that ships with scikit-learn, converts it and writes a lossless spiking run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from common import checkpoint, convert, data, extensions, logs, networks, plots
from conftest import ROOT
from signalling import PATIENCE
from helpers import random_weights

EXAMPLE = ROOT / "examples" / "digits"


@pytest.mark.slow  # trains for about a minute
def test_the_digits_example_runs_offline_and_converts_losslessly(tmp_path):
    pytest.importorskip("sklearn", reason="the examples extra: pip install -e '.[examples]'")
    copy = tmp_path / "examples" / "digits"  # a copy, so the run leaves this clone as it was
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("data", "checkpoints", "figs", "__pycache__"))
    done = subprocess.run(["sh", str(copy / "run.sh")], capture_output=True, text=True, timeout=PATIENCE,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # this tree's common, whatever is installed
    assert done.returncode == 0, done.stderr[-3000:]
    summary = logs.read_summary(copy / "figs" / "k1")
    assert summary["network"] == "digits_cnn" and summary["num_samples"] == 300
    assert summary["agreement"] == 1.0 and summary["mismatched_neurons"] == 0
    assert summary["snn_accuracy"][-1] == summary["ann_accuracy"] >= 0.9
    assert all((copy / "figs" / name).is_file() for name in plots.FIGURES)


@pytest.fixture
def registries(monkeypatch):
    """The registries and modules as they were before the test: an extension's entries do not outlive it."""
    monkeypatch.setattr(networks, "NETWORKS", dict(networks.NETWORKS))
    monkeypatch.setattr(data, "DATASETS", dict(data.DATASETS))
    monkeypatch.delenv(extensions.EXTENSIONS_ENV, raising=False)
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("negspike_extension_"):
            del sys.modules[name]


def test_the_example_network_is_known_to_the_commands_that_read_a_checkpoint(registries, tmp_path, rng):
    extension = EXAMPLE / "digits.py"
    with pytest.raises(checkpoint.CheckpointError, match="--extension FILE"):
        checkpoint.identify(_digits_checkpoint(tmp_path, rng))
    checkpoint.main(["export", str(tmp_path / "k1.npz"), str(tmp_path / "k1.safetensors"),
                     "--extension", str(extension)])
    assert checkpoint.identify(tmp_path / "k1.safetensors") == (networks.NETWORKS["digits_cnn"], 1)
    convert.main(["export", str(tmp_path / "k1.npz"), str(tmp_path / "snn.safetensors"), "--extension", str(extension)])
    assert (tmp_path / "snn.safetensors").is_file()
    extensions.load([extension])  # again: the file runs once, and its entries are not a second registration
    with pytest.raises(ValueError, match="a different network called 'digits_cnn'"):
        networks.register(networks.Network("digits_cnn", "digits", (8, 8, 1), (networks.Conv(8, 3),)))


def test_an_extension_named_in_the_environment_is_loaded_by_identify(registries, tmp_path, rng, monkeypatch):
    path = _digits_checkpoint(tmp_path, rng)
    monkeypatch.setenv(extensions.EXTENSIONS_ENV, str(EXAMPLE / "digits.py"))
    assert checkpoint.identify(path)[0].name == "digits_cnn"


def _digits_checkpoint(tmp_path, rng):
    """A checkpoint of the example's network (random weights: what is checked is that it is found by name)."""
    network = networks.Network("digits_cnn", "digits", (8, 8, 1),
                               (networks.Conv(16, 3), networks.P2(16), networks.Conv(64, 4, padding="VALID")))
    path = tmp_path / "k1.npz"
    checkpoint.save(path, network, 1, random_weights(network, rng), epoch=1)
    return path


def test_every_registry_refuses_a_second_entry_of_one_name(registries, monkeypatch):
    from common import neurons

    monkeypatch.setattr(neurons, "RULES", dict(neurons.RULES))
    mnist = data.DATASETS["mnist"]
    assert data.register(mnist) is mnist and networks.register(networks.MNIST_LENET) is networks.MNIST_LENET
    with pytest.raises(ValueError, match="a different dataset called 'mnist'"):
        data.register(data.Dataset("mnist", mnist.format, (28, 28, 1), classes=5))
    with pytest.raises(ValueError, match="a different network called 'mnist_lenet'"):
        networks.register(networks.Network("mnist_lenet", "mnist", (28, 28, 1), (networks.Conv(4, 28),)))

    class Lossless(neurons.Rule):
        name, help = "lossless", "another rule under a taken name"

        @staticmethod
        def step(level, count, xp=None):
            return level, count

    with pytest.raises(ValueError, match="a different neuron rule called 'lossless' is already registered"):
        neurons.register(Lossless)
    assert neurons.RULES["lossless"] is neurons.NegativeSpikeIF
    assert neurons.is_level_rule(neurons.NegativeSpikeIF) and not neurons.is_level_rule(neurons.OriginalIF)
