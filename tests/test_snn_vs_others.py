"""The building blocks of benchmarks/snn_vs_others.py on tiny random networks: SpikingJelly's network
(when torch is installed) and the original code's simulator (when $NEGSPIKE_ORIGINAL_REPO names a
checkout of it)."""

from __future__ import annotations

import importlib.util
import os
import signal
import time

import numpy as np
import pytest
from conftest import ROOT
from helpers import random_images, random_weights

from benchmarks import timing
from common import convert, reference
from common.networks import CIFAR_CNN1, MNIST_LENET

ORIGINAL_REPO_ENV = "NEGSPIKE_ORIGINAL_REPO"  # a checkout of the original code's repository
STEPS = 3


def load_benchmark():
    spec = importlib.util.spec_from_file_location("snn_vs_others", ROOT / "benchmarks" / "snn_vs_others.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return load_benchmark()


def tiny(network, images: int = 3, seed: int = 5):
    rng = np.random.default_rng(seed)
    sn = convert.convert(network, 1, random_weights(network, rng))
    return sn, random_images(network, images, rng) * 2


@pytest.mark.parametrize("network", [MNIST_LENET, CIFAR_CNN1], ids=["valid", "same_padding"])
def test_spikingjelly_network_fires_our_first_layer_levels_and_predicts(bench, network):
    torch = pytest.importorskip("torch")
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import functional

    sn, x = tiny(network)
    net = bench.spikingjelly_network(sn)
    predictions = bench.spikingjelly_predictions(net, x, STEPS)
    assert predictions.shape == (len(x),)
    assert ((predictions >= 0) & (predictions < network.classes)).all()

    # layer 1's input arrives whole at t=0: an IF neuron fires one spike a step until it reaches our level
    first = net[0]
    functional.reset_net(first)
    sequence = torch.zeros((STEPS, *x.transpose(0, 3, 1, 2).shape))
    sequence[0] = torch.from_numpy(x.transpose(0, 3, 1, 2))
    with torch.no_grad():
        counts = first(sequence).sum(0).numpy().transpose(0, 2, 3, 1)
    layer = sn.layers[0]
    levels = reference.level_of(reference.conv2d(x, layer.kernel, layer.conv), layer.scale, layer.bias)
    assert counts.shape == levels.shape
    assert (counts == np.minimum(levels, STEPS)).mean() > 0.999  # but where float32 rounds across a level
    assert counts.max() == STEPS  # the check reached the step limit somewhere


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # a zero gamma: the original's threshold is infinite
def test_original_simulator_predicts_as_the_reference_runs_its_rule(bench):
    folder = os.environ.get(ORIGINAL_REPO_ENV)
    if not folder:
        pytest.skip(f"${ORIGINAL_REPO_ENV} names no checkout of the original code")
    sn, x = tiny(MNIST_LENET)
    network = bench.OriginalNetwork(bench.load_original(folder), sn)
    predictions = network.predictions(x, STEPS)
    assert predictions.shape == (len(x),)
    expected = reference.simulate(sn, x, STEPS, rule="original").predictions[-1]
    np.testing.assert_array_equal(predictions, expected)


def test_original_simulator_missing_is_named(bench, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no MNIST/spiking_ulils.py there"):
        bench.load_original(tmp_path)


def test_spikingjelly_missing_names_the_extra(bench, monkeypatch):
    monkeypatch.setattr(bench.importlib.util, "find_spec", lambda name: None)
    assert "pip install -e '.[bench]'" in bench.spikingjelly_missing()


def test_a_repeat_stopped_by_another_process_is_left_out_of_the_wall_median():
    previous = signal.getsignal(signal.SIGCONT)
    timing.Resumes.install()
    calls = []

    def run() -> int:
        calls.append(None)
        if len(calls) == 2:  # as if stopped for 0.3 s, then resumed
            os.kill(os.getpid(), signal.SIGCONT)
            time.sleep(0.3)
        return len(calls)

    try:
        wall, cpu, result, stopped = timing.median_times(run, 3)
    finally:
        signal.signal(signal.SIGCONT, previous)
    assert (stopped, result) == (1, 4)
    assert wall < 0.1 and cpu < 0.1
    assert "not stopped" in timing.stopped_note(1, 3) and "INVALID" in timing.stopped_note(1, 1)
