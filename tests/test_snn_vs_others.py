"""The building blocks of benchmarks/snn_vs_others.py on tiny random networks: SpikingJelly's network in a
process of its own (when torch is installed; never in this one, which holds TensorFlow) and the original code's
simulator (when $NEGSPIKE_ORIGINAL_REPO names a checkout of it)."""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, load_script
from helpers import random_images, random_weights

from benchmarks import timing
from common import convert, reference
from common.networks import CIFAR_CNN1, MNIST_LENET

ORIGINAL_REPO_ENV = "NEGSPIKE_ORIGINAL_REPO"  # a checkout of the original code's repository
STEPS = 3


@pytest.fixture(scope="module")
def bench():
    return load_script(ROOT / "benchmarks" / "snn_vs_others.py")


def tiny(network, images: int = 3, seed: int = 5):
    rng = np.random.default_rng(seed)
    sn = convert.convert(network, 1, random_weights(network, rng))
    return sn, random_images(network, images, rng) * 2


def needs_spikingjelly(bench) -> None:
    missing = bench.spikingjelly_missing()
    if missing:
        pytest.skip(f"SpikingJelly cannot run: {missing}")


@pytest.mark.parametrize("network", [MNIST_LENET, CIFAR_CNN1], ids=["valid", "same_padding"])
def test_spikingjelly_runs_in_a_process_of_its_own_and_predicts(bench, network):
    needs_spikingjelly(bench)
    sn, x = tiny(network)
    wall, cpu, predictions, stopped, threads = bench.spikingjelly_in_its_own_process(sn, x / 2, STEPS, 2, 1)
    assert predictions.shape == (len(x),)
    assert ((predictions >= 0) & (predictions < network.classes)).all()
    assert wall > 0 and cpu >= 0 and stopped == 0 and threads >= 1
    assert "torch" not in sys.modules  # PyTorch never entered this process, which holds TensorFlow


def test_a_failing_peer_is_one_error_naming_it(bench, monkeypatch, tmp_path):
    needs_spikingjelly(bench)
    monkeypatch.setattr(bench, "PEER", tmp_path / "missing_peer.py")
    sn, x = tiny(MNIST_LENET)
    with pytest.raises(RuntimeError, match="missing_peer.py exited with 2"):
        bench.spikingjelly_in_its_own_process(sn, x, STEPS, 2, 1)


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
