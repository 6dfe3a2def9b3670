"""The spiking side: lossless conversion, exactness by construction, fast == reference, the neuron rules."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import tensorflow.experimental.numpy as tnp

from common import checkpoint, convert, exact, logs, neurons, reference
from common.model import build_ann
from common.networks import NETWORKS, Conv, Network
from common.results import SimulationResult
from common.neurons import NegativeSpikeIF, PositiveSpikeIF
from common.snn import FastSimulator
from common.spiking_network import SpikingLayer, SpikingNetwork
from conftest import ROOT
from signalling import PATIENCE
from helpers import random_images, random_weights

SEEDS = {name: i for i, name in enumerate(sorted(NETWORKS))}  # fixed seeds: never hash(), which varies per run
# the CIFAR-10 networks take minutes and the FashionMNIST LeNet half a minute: the slow tier (-m slow) checks them,
# and the MNIST LeNet at k=0 and k=2 (k=1 stays in the fast tier)
NETWORK_CASES = [pytest.param(name, k, marks=pytest.mark.slow)
                 if name.startswith(("cifar", "fashion_lenet")) or (name == "mnist_lenet" and k != 1) else (name, k)
                 for name in sorted(NETWORKS) for k in (0, 1, 2)]
RESULT_FIELDS = ("predictions", "spikes", "net", "synops", "settle", "output")
NEURON_BUDGET = 100_000  # hidden neurons per test batch: keeps every network's tests to seconds
LARGE = 100_000  # hidden neurons per image above which the slow NumPy reference gets one image, few steps


def samples_of(network: Network) -> int:
    """Test images for ``network``: as many as fit the budget, from 1 to 7 (7 = a prime no batch size divides)."""
    return int(np.clip(NEURON_BUDGET // network.hidden_neurons(), 1, 7))


def network_and_inputs(name: str, k: int) -> tuple[SpikingNetwork, np.ndarray, dict]:
    network = NETWORKS[name]
    rng = np.random.default_rng([SEEDS[name], k])
    weights = random_weights(network, rng)
    return convert.convert(network, k, weights), random_images(network, samples_of(network), rng) * 2 ** k, weights


def assert_same_result(a: SimulationResult, b: SimulationResult) -> None:
    for field in RESULT_FIELDS:
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    for i, (ca, cb) in enumerate(zip(a.counts, b.counts)):
        np.testing.assert_array_equal(ca, cb, err_msg=f"counts of layer {i + 1}")


def in_batches(sim: FastSimulator, x: np.ndarray, steps: int, batch: int) -> SimulationResult:
    """Simulate ``x`` in batches of ``batch`` and put the records back together, sample by sample."""
    parts = [sim.simulate(x[i:i + batch], steps) for i in range(0, len(x), batch)]
    return SimulationResult(
        predictions=np.concatenate([p.predictions for p in parts], 1),
        spikes=np.concatenate([p.spikes for p in parts], 2),
        net=np.concatenate([p.net for p in parts], 2), synops=np.concatenate([p.synops for p in parts], 1),
        counts=[np.concatenate(c) for c in zip(*(p.counts for p in parts))],
        output=np.concatenate([p.output for p in parts]), settle=np.concatenate([p.settle for p in parts]))


@pytest.mark.parametrize("name, k", NETWORK_CASES)
def test_conversion_is_lossless(name, k):
    """Once settled, every hidden count is exactly the ANN's level, and the output its logits times 2^k."""
    sn, x, weights = network_and_inputs(name, k)
    sim = FastSimulator(sn)
    result = sim.simulate(x, 400)
    assert (result.settle > 0).all(), f"not settled within 400 steps: {result.settle}"
    ann = sim.exact_ann(x)
    for i, (counts, level) in enumerate(zip(result.counts, ann[:-1])):
        np.testing.assert_array_equal(counts, level, err_msg=f"layer {i + 1}")
    np.testing.assert_array_equal(result.output, ann[-1])
    np.testing.assert_array_equal(result.predictions[-1], ann[-1].argmax(1))
    assert any(c.max() > 1 for c in result.counts)  # multi-spike neurons are exercised
    # the exact ANN is the float32 TensorLayer model up to near-ties of its rounding (first layer: same input)
    model = build_ann(NETWORKS[name], k)
    checkpoint.assign(model, weights)
    first = model(x / 2 ** k, is_train=False)[0].numpy() * 2 ** k
    assert (first != ann[0]).sum() <= 1e-3 * first.size


@pytest.mark.parametrize("name, k", NETWORK_CASES)
def test_fast_simulator_equals_the_reference_on_real_weights(name, k):
    """Random float32 weights (not dyadic): every count of every step agrees with the NumPy oracle."""
    sn, x, _ = network_and_inputs(name, k)
    large = NETWORKS[name].hidden_neurons() > LARGE
    steps = 3 if large else 25
    x = x[:1] if large else x
    assert_same_result(FastSimulator(sn).simulate(x, steps), reference.simulate(sn, x, steps))


@pytest.mark.parametrize("name, k", [pytest.param("mnist_lenet", 0, marks=pytest.mark.slow),
                                     pytest.param("mnist_lenet", 2, marks=pytest.mark.slow),
                                     pytest.param("fashion_mlp", 0, marks=pytest.mark.slow),
                                     ("fashion_mlp", 2), pytest.param("fashion_lenet", 1, marks=pytest.mark.slow)])
def test_batch_size_early_exit_and_chunking_change_nothing(name, k):
    sn, x, _ = network_and_inputs(name, k)
    steps = 40 * (1 + k)
    whole = FastSimulator(sn).simulate(x, steps)
    assert (whole.settle > 0).all() and whole.settle.max() < steps  # early exit really happened
    for batch, early_exit, chunk in ((1, True, 4), (2, True, 4), (3, True, 4), (3, False, 1), (2, True, 1)):
        sim = FastSimulator(sn, early_exit=early_exit, max_chunk_steps=chunk)  # 3 divides neither 5 nor 7
        assert_same_result(in_batches(sim, x, steps, batch), whole)


@pytest.mark.slow  # three TensorFlow subprocesses
def test_onednn_on_and_off_give_the_same_records(tmp_path):
    """oneDNN's kernels round differently from Eigen's, and its AVX2 kernels (a CPU without AVX-512) from
    its AVX-512 ones; the records must not notice."""
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, numpy as np\n"
        f"sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests')!r}]\n"
        "from common import startup\n"
        "startup.start()  # the entry point starts TensorFlow, before test_snn imports it\n"
        "from test_snn import network_and_inputs\n"
        "from common.snn import FastSimulator\n"
        "for name in ('mnist_lenet', 'fashion_mlp', 'cifar10_cnn1'):\n"
        "    sn, x, _ = network_and_inputs(name, 1)\n"
        "    r = FastSimulator(sn).simulate(x[:2], 6)\n"
        "    np.savez(sys.argv[1] + name, *r.counts, r.spikes, r.synops, r.output, r.predictions)\n")
    arrays = {}
    settings = {"0": {"TF_ENABLE_ONEDNN_OPTS": "0"}, "1": {"TF_ENABLE_ONEDNN_OPTS": "1"},
                "avx2": {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"}}
    for setting, variables in settings.items():
        env = dict(os.environ, **variables)
        done = subprocess.run([sys.executable, str(script), str(tmp_path / setting)], env=env,
                              capture_output=True, text=True, timeout=PATIENCE)
        assert done.returncode == 0, done.stderr[-2000:]
        for name in ("mnist_lenet", "fashion_mlp", "cifar10_cnn1"):
            with np.load(tmp_path / f"{setting}{name}.npz") as f:
                arrays[setting, name] = [f[key] for key in f.files]
    for name in ("mnist_lenet", "fashion_mlp", "cifar10_cnn1"):
        for other in ("1", "avx2"):
            for a, b in zip(arrays["0", name], arrays[other, name]):
                np.testing.assert_array_equal(a, b, err_msg=f"{name}, oneDNN setting {other}")


def cancelling_network(big: float) -> SpikingNetwork:
    """Three neurons copy the input (1); one neuron weighs them (big, 1, -big): its integral is exactly 1
    (level 1), but a float32 sum (big = 2^30) or even a float64 one (big = 2^60) loses the 1 in some orders."""
    net = Network("cancel", "mnist", (1, 1, 1), (Conv(3, 1, padding="VALID"), Conv(1, 1, padding="VALID")), 2)
    first = SpikingLayer(net.hidden[0], np.ones((1, 1, 1, 3), np.float32), np.ones(3, np.float32),
                         np.zeros(3, np.float32))
    second = SpikingLayer(net.hidden[1], np.array([big, 1.0, -big], np.float32).reshape(1, 1, 3, 1),
                          np.ones(1, np.float32), np.zeros(1, np.float32))
    return SpikingNetwork(net, 0, [first, second], np.array([[1.0, -1.0]], np.float32))


@pytest.mark.parametrize("big", [2.0 ** 30, 2.0 ** 60])
def test_levels_that_floating_point_cannot_decide_are_decided_exactly(big):
    sn = cancelling_network(big)
    x = np.ones((3, 1, 1, 1), np.float32)
    sim = FastSimulator(sn)
    ann = sim.exact_ann(x)
    np.testing.assert_array_equal(ann[1][:, 0, 0, 0], [1, 1, 1])
    result = sim.simulate(x, 5)
    np.testing.assert_array_equal(result.counts[1][:, 0, 0, 0], [1, 1, 1])
    assert_same_result(result, reference.simulate(sn, x, 5))


def test_exact_integrals_match_rational_arithmetic():
    rng = np.random.default_rng(11)
    conv = Conv(4, 3, stride=2, padding="SAME")
    x = rng.integers(-3, 5, (2, 5, 5, 3)).astype(np.float32)
    kernel = (rng.standard_normal((3, 3, 3, 4)) * 10.0 ** rng.integers(-8, 8, (3, 3, 3, 4))).astype(np.float32)
    index = np.array([[0, 0, 0, 1], [1, 2, 1, 3], [1, 1, 2, 0]])
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    for (b, i, j, o), value in zip(index, exact.exact_integrals(x, kernel, conv, index)):
        window = padded[b, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
        truth = sum(Fraction(float(a)) * Fraction(float(w)) for a, w in zip(window.ravel(), kernel[..., o].ravel()))
        assert value == float(truth)


@pytest.mark.parametrize("xp", [np, tnp], ids=["numpy", "tensorflow"])
def test_neuron_fires_at_most_one_spike_per_step_and_tracks_its_level(xp):
    levels = xp.asarray([[7.0, 0.0, 0.0, 3.0, 1.0]], np.float32)
    count = xp.zeros_like(levels)
    trains = []
    for _ in range(9):
        spike, count = NegativeSpikeIF.step(levels, count, xp)
        trains.append(np.asarray(spike)[0])
    trains = np.array(trains)
    assert set(np.unique(trains)) <= {-1.0, 0.0, 1.0}
    np.testing.assert_array_equal(np.asarray(count)[0], [7, 0, 0, 3, 1])
    np.testing.assert_array_equal(trains[:, 0], [1, 1, 1, 1, 1, 1, 1, 0, 0])  # one spike per step
    # a level that falls below what was signalled is answered with negative spikes
    settled = count
    spike, count = NegativeSpikeIF.step(xp.asarray([[1.0, 0.0, 0.0, 3.0, 0.0]], np.float32), settled, xp)
    np.testing.assert_array_equal(np.asarray(spike)[0], [-1, 0, 0, 0, -1])
    # without negative spikes a fall is never answered (the count keeps the highest level reached); a rise is
    spike, kept = PositiveSpikeIF.step(xp.asarray([[1.0, 0.0, 0.0, 4.0, 0.0]], np.float32), settled, xp)
    np.testing.assert_array_equal(np.asarray(spike)[0], [0, 0, 0, 1, 0])
    np.testing.assert_array_equal(np.asarray(kept)[0], [7, 0, 0, 4, 1])


@pytest.mark.parametrize("name, k", [pytest.param("mnist_lenet", 1, marks=pytest.mark.slow), ("fashion_mlp", 0),
                                     pytest.param("fashion_lenet", 2, marks=pytest.mark.slow)])
def test_no_negative_rule_runs_the_same_on_both_simulators_and_never_fires_negative(name, k):
    sn, x, _ = network_and_inputs(name, k)
    fast = FastSimulator(sn, rule="no_negative")
    result = fast.simulate(x, 60)
    assert_same_result(result, reference.simulate(sn, x, 60, "no_negative"))
    np.testing.assert_array_equal(result.net, result.spikes)  # every spike is +1
    assert (result.settle > 0).all()
    lossless = FastSimulator(sn).simulate(x, 60)
    assert any((a != b).any() for a, b in zip(result.counts, lossless.counts))  # the ablation loses something


def test_the_neuron_rule_flag_is_drawn_from_the_registry():
    from absl import flags

    from common import cli

    fv = flags.FlagValues()
    cli.define_snn_flags(time_steps=20, flag_values=fv)
    assert fv["neuron_rule"].parser.enum_values == list(neurons.RULES) == ["lossless", "no_negative", "original"]
    assert all(rule.help in fv["neuron_rule"].help for rule in neurons.RULES.values())
    assert [name for name, rule in neurons.RULES.items() if rule.fast] == ["lossless", "no_negative"]
    with pytest.raises(ValueError, match="reference simulator only"):
        FastSimulator(tiny_network(batchnorm=True), rule="original")


def tiny_network(batchnorm: bool = False) -> SpikingNetwork:
    """Input 2x2, one 2x2 neuron, then two 1x1 neurons (one inhibited, with a bias), 2 classes.

    With ``batchnorm`` the layers carry BatchNorm statistics that fold to the same scale and bias
    (gamma 1, variance 1 - 1e-5, beta = bias), for the original's rule."""
    net = Network("tiny", "mnist", (2, 2, 1), (Conv(1, 2, padding="VALID"), Conv(2, 1, padding="VALID")), 2)
    var = np.float32(1 - 1e-5)

    def stats(bias):
        n = len(bias)
        return (np.asarray(bias, np.float32), np.ones(n, np.float32), np.zeros(n, np.float32), np.full(n, var))

    layers = [SpikingLayer(net.hidden[0], np.ones((2, 2, 1, 1), np.float32), np.ones(1, np.float32),
                           np.zeros(1, np.float32), stats([0.0]) if batchnorm else None),
              SpikingLayer(net.hidden[1], np.array([[[[1.0, -1.0]]]], np.float32), np.ones(2, np.float32),
                           np.array([0.0, 2.0], np.float32), stats([0.0, 2.0]) if batchnorm else None)]
    return SpikingNetwork(net, 0, layers, np.array([[1.0, 0.0], [0.0, 3.0]], np.float32))


@pytest.mark.parametrize("simulate", ["fast", "reference", "original"])
def test_tiny_network_gives_the_hand_computed_spike_trains_and_logs(simulate):
    # Step:          1        2        3      4  5
    # layer 1:      +1       +1       +1      .  .   (input sum 3: potential 3)
    # neuron A:     +1       +1       +1      .  .   (potential = layer-1 count 1, 2, 3)
    # neuron B:     +1       -1        .      .  .   (potential = 2 - count: 1, 0, -1)
    # output:      [1,3]    [2,0]    [3,0]           -> predictions 1, 0, 0, 0, 0
    # |spikes|:      3        3        2      0  0; net 3, 1, 2, 0, 0
    # synops: layer-1 spike x 2 filters + hidden-2 spikes x 2 classes = 6, 6, 4, 0, 0
    # The original's rule (threshold 1, resting bound half a threshold below the bias) gives the same trains:
    # neuron B's membrane 2 - count stays above its bound 1.5 - 1 = 0.5 ... until it falls to -1 at step 3.
    sn = tiny_network(batchnorm=simulate == "original")
    x = np.array([[[[1.0], [1.0]], [[1.0], [0.0]]]], np.float32)
    if simulate == "fast":
        result = FastSimulator(sn).simulate(x, 5)
    else:
        result = reference.simulate(sn, x, 5, "original" if simulate == "original" else "lossless")
    np.testing.assert_array_equal(result.spikes[:, :, 0], [[1, 2], [1, 2], [1, 1], [0, 0], [0, 0]])
    np.testing.assert_array_equal(result.net[:, :, 0], [[1, 2], [1, 0], [1, 1], [0, 0], [0, 0]])
    np.testing.assert_array_equal(result.synops[:, 0], [6, 6, 4, 0, 0])
    np.testing.assert_array_equal(result.predictions[:, 0], [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(result.counts[1][0, 0, 0], [3, 0])
    assert result.settle[0] == 3
    lines = logs.batch_lines(result.predictions == 0, result.spikes.sum(1), result.net.sum(1), result.synops)
    assert lines == {"accuracy.txt": [0, 1, 1, 1, 1], "spike_num.txt": [3, 6, 8, 8, 8],
                     "spike_collect.txt": [3, 4, 6, 6, 6], "sop_num.txt": [6, 12, 16, 16, 16]}


def test_the_original_rule_differs_from_ours_only_in_its_tie_band():
    """A potential 1e-6 thresholds above a rounding boundary: ours rounds up (the ANN's 1e-5 offset),
    the original, whose negative threshold is -1e-5 in membrane units, settles one count lower."""
    net = Network("band", "mnist", (1, 1, 1), (Conv(1, 1, padding="VALID"),), 2)
    v = np.float32(1.5 - 1e-5 + 1e-6)  # potential in thresholds, just past ours boundary at 1.5 - 1e-5
    layer = SpikingLayer(net.hidden[0], np.ones((1, 1, 1, 1), np.float32), np.ones(1, np.float32),
                         np.zeros(1, np.float32),
                         (np.zeros(1, np.float32), np.ones(1, np.float32), np.zeros(1, np.float32),
                          np.full(1, np.float32(1 - 1e-5))))
    sn = SpikingNetwork(net, 0, [layer], np.array([[1.0, 0.0]], np.float32))
    x = np.full((1, 1, 1, 1), v, np.float32)
    ours = reference.simulate(sn, x, 4)
    original = reference.simulate(sn, x, 4, "original")
    assert ours.counts[0].item() == 2 and original.counts[0].item() == 1
    np.testing.assert_array_equal(FastSimulator(sn).simulate(x, 4).counts[0], ours.counts[0])


def test_memory_is_bounded_by_the_batch_not_the_time_steps():
    sim = FastSimulator(convert.convert(NETWORKS["cifar10_cnn1"], 1,
                                        random_weights(NETWORKS["cifar10_cnn1"], np.random.default_rng(0))))
    assert sim.chunk_steps(200, 20) == sim.chunk_steps(200, 100) == sim.chunk_steps(200, 1000)
