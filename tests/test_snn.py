"""The spiking side: lossless conversion, the neuron rule, fast == reference, exact logs."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from common import checkpoint, convert, logs, reference
from common.convert import SpikingLayer, SpikingNetwork
from common.layers import ROUNDING_OFFSET
from common.model import build_ann
from common.networks import NETWORKS, Conv, Network
from common.snn import FastSimulator, NegativeSpikeIF
from helpers import random_images, random_weights

SMALL = {"mnist_lenet": 4, "fashion_lenet": 3, "fashion_mlp": 6, "cifar10_cnn1": 2, "cifar10_cnn2": 2}


def settled_potentials(sn: SpikingNetwork, x: np.ndarray, levels: list[np.ndarray]) -> list[np.ndarray]:
    """Each hidden neuron's potential once the ANN's counts have arrived (float64 synapses)."""
    inputs = [x] + levels[:-1]
    return [reference.conv2d(i, layer.kernel, layer.conv).astype(np.float32) * layer.scale + layer.bias
            for i, layer in zip(inputs, sn.layers)]


def boundary_report(counts: np.ndarray, levels: np.ndarray, potentials: np.ndarray) -> str:
    """Where counts differ, how far each potential lies from its rounding boundary."""
    bad = np.argwhere(counts != levels)[:10]
    rows = []
    for idx in map(tuple, bad):
        v = float(np.maximum(potentials[idx], 0) + ROUNDING_OFFSET)
        rows.append(f"neuron {idx}: count {counts[idx]} vs ANN {levels[idx]}, potential {v!r}, "
                    f"distance to the rounding boundary {abs(v - np.floor(v) - 0.5):.3g}")
    return "\n".join(rows)


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("k", [0, 1, 2])
def test_conversion_is_lossless(name, k):
    """Once settled, every hidden neuron's net count is exactly 2^k times its ANN activation."""
    network = NETWORKS[name]
    rng = np.random.default_rng(hash((name, k)) % 2 ** 32)
    weights = random_weights(network, rng)
    model = build_ann(network, k)
    checkpoint.assign(model, weights)
    x = random_images(network, SMALL[name], rng)
    ann = [o.numpy() for o in model(x, is_train=False)]
    sn = convert.convert(network, k, weights)
    result = FastSimulator(sn).simulate(x * 2 ** k, 400)
    assert (result.settle > 0).all(), f"not settled within 400 steps: {result.settle}"
    levels = [a * 2 ** k for a in ann[:-1]]
    for i, (counts, level) in enumerate(zip(result.counts, levels)):
        if not np.array_equal(counts, level):
            potentials = settled_potentials(sn, x * 2 ** k, levels)[i]
            pytest.fail(f"layer {i + 1}:\n" + boundary_report(counts, level, potentials))
    np.testing.assert_array_equal(result.output, ann[-1] * 2 ** k)  # bit for bit, a fortiori allclose
    np.testing.assert_array_equal(result.predictions[-1], ann[-1].argmax(1))
    assert any(c.max() > 1 for c in result.counts)  # the test exercises multi-spike neurons


def test_negative_gamma_is_exercised():
    weights = random_weights(NETWORKS["mnist_lenet"], np.random.default_rng(0))
    gammas = np.concatenate([v for n, v in weights.items() if n.endswith("gamma")])
    assert (gammas < 0).sum() > 10 and (gammas == 0).sum() > 0


def test_neuron_fires_at_most_one_spike_per_step_and_tracks_its_level():
    potentials = tf.constant([[7.2, -3.0, 0.4, 2.6, 0.5]])
    count = tf.zeros_like(potentials)
    trains = []
    for _ in range(9):
        spike, count = NegativeSpikeIF.step(potentials, count)
        trains.append(spike.numpy()[0])
    trains = np.array(trains)
    assert set(np.unique(trains)) <= {-1.0, 0.0, 1.0}
    np.testing.assert_array_equal(count.numpy()[0], [7, 0, 0, 3, 1])
    np.testing.assert_array_equal(trains[:, 0], [1, 1, 1, 1, 1, 1, 1, 0, 0])  # one spike per step
    # a potential that falls below what was signalled is answered with negative spikes
    spike, count = NegativeSpikeIF.step(tf.constant([[1.2, 0.0, 0.0, 3.0, 0.0]]), count)
    np.testing.assert_array_equal(spike.numpy()[0], [-1, 0, 0, 0, -1])


def tiny_network() -> SpikingNetwork:
    """Input 2x2, one 2x2 neuron, then two 1x1 neurons (one inhibited, with a bias), 2 classes."""
    net = Network("tiny", "mnist", (2, 2, 1), (Conv(1, 2, padding="VALID"), Conv(2, 1, padding="VALID")), 2)
    layers = [SpikingLayer(net.hidden[0], np.ones((2, 2, 1, 1), np.float32), np.ones(1, np.float32),
                           np.zeros(1, np.float32)),
              SpikingLayer(net.hidden[1], np.array([[[[1.0, -1.0]]]], np.float32), np.ones(2, np.float32),
                           np.array([0.0, 2.0], np.float32))]
    return SpikingNetwork(net, 0, layers, np.array([[1.0, 0.0], [0.0, 3.0]], np.float32))


@pytest.mark.parametrize("simulate", ["fast", "reference"])
def test_tiny_network_gives_the_hand_computed_spike_trains_and_logs(simulate):
    # Step:          1        2        3      4  5
    # layer 1:      +1       +1       +1      .  .   (input sum 3: potential 3)
    # neuron A:     +1       +1       +1      .  .   (potential = layer-1 count 1, 2, 3)
    # neuron B:     +1       -1        .      .  .   (potential = 2 - count: 1, 0, -1)
    # output:      [1,3]    [2,0]    [3,0]           -> predictions 1, 0, 0, 0, 0
    # |spikes|:      3        3        2      0  0; net 3, 1, 2, 0, 0
    # synops: layer-1 spike x 2 filters + hidden-2 spikes x 2 classes = 6, 6, 4, 0, 0
    sn = tiny_network()
    x = np.array([[[[1.0], [1.0]], [[1.0], [0.0]]]], np.float32)
    result = (FastSimulator(sn).simulate(x, 5) if simulate == "fast" else reference.simulate(sn, x, 5))
    np.testing.assert_array_equal(result.spikes[:, :, 0], [[1, 2], [1, 2], [1, 1], [0, 0], [0, 0]])
    np.testing.assert_array_equal(result.net[:, :, 0], [[1, 2], [1, 0], [1, 1], [0, 0], [0, 0]])
    np.testing.assert_array_equal(result.synops[:, 0], [6, 6, 4, 0, 0])
    np.testing.assert_array_equal(result.predictions[:, 0], [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(result.counts[1][0, 0, 0], [3, 0])
    assert result.settle[0] == 3
    lines = logs.batch_lines(result.predictions == 0, result.spikes.sum(1), result.net.sum(1), result.synops)
    assert lines == {"accuracy.txt": [0, 1, 1, 1, 1], "spike_num.txt": [3, 6, 8, 8, 8],
                     "spike_collect.txt": [3, 4, 6, 6, 6], "sop_num.txt": [6, 12, 16, 16, 16]}


RESULT_FIELDS = ("predictions", "spikes", "net", "synops", "settle", "output")


def assert_same_result(a, b):
    for field in RESULT_FIELDS:
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    for i, (ca, cb) in enumerate(zip(a.counts, b.counts)):
        np.testing.assert_array_equal(ca, cb, err_msg=f"counts of layer {i + 1}")


@pytest.mark.parametrize("name, steps", [("mnist_lenet", 40), ("fashion_lenet", 12), ("fashion_mlp", 40),
                                         ("cifar10_cnn1", 4), ("cifar10_cnn2", 3)])
def test_fast_simulator_equals_the_reference(name, steps):
    """On networks whose arithmetic is exact (dyadic weights), every count of every step agrees."""
    network = NETWORKS[name]
    rng = np.random.default_rng(5)
    k = 1
    sn = convert.convert(network, k, random_weights(network, rng, dyadic=True))
    n = 1 if name.startswith("cifar") else 3
    x = random_images(network, n, rng) * 2 ** k
    assert_same_result(FastSimulator(sn).simulate(x, steps), reference.simulate(sn, x, steps))


def test_early_exit_and_chunking_do_not_change_anything():
    network = NETWORKS["mnist_lenet"]
    rng = np.random.default_rng(9)
    sn = convert.convert(network, 1, random_weights(network, rng, dyadic=True))
    x = random_images(network, 7, rng) * 2
    dense = FastSimulator(sn, early_exit=False, memory_budget=1).simulate(x, 30)  # one step per chunk
    fast = FastSimulator(sn).simulate(x, 30)
    assert (fast.settle > 0).all() and fast.settle.max() < 30  # early exit really happened
    assert_same_result(fast, dense)
    assert_same_result(fast, reference.simulate(sn, x, 30))


def test_memory_is_bounded_by_the_batch_not_the_time_steps():
    sim = FastSimulator(convert.convert(NETWORKS["cifar10_cnn1"], 1,
                                        random_weights(NETWORKS["cifar10_cnn1"], np.random.default_rng(0))))
    assert sim.chunk_steps(200, 20) == sim.chunk_steps(200, 100) == sim.chunk_steps(200, 1000)
