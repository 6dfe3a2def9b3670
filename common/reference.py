"""The reference simulator: plain NumPy, time loop outside, layer loop inside.

It follows the original code's structure step by step (each layer receives this step's
spikes, computes its synaptic current in float64, and its neurons fire) and is the oracle
of the tests, so it shares nothing with the fast simulator but plain records and the
network description. It decides a level the slow, obvious way: a float64 integral with a
rigorous error bound, and where that bound straddles a level boundary, the exact integral
in rational arithmetic (:class:`fractions.Fraction`), rounded once by ``float()``.

It runs every rule of :mod:`common.neurons`: the level rules (``lossless``, ``no_negative``)
from the exact level of each neuron's input so far, with the same ``step`` the fast simulator
runs, and the ``original`` rule from each step's float64 synaptic current. Imports no TensorFlow.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from common import neurons
from common.networks import Conv
from common.results import SimulationResult
from common.spiking_network import SpikingLayer, SpikingNetwork

ROUNDING_OFFSET = np.float32(1e-5)
FLOAT32_TINY = np.finfo(np.float32).tiny
UNIT_ROUNDOFF = 2.0 ** -53


def conv2d(x: np.ndarray, kernel: np.ndarray, conv: Conv) -> np.ndarray:
    """NHWC convolution with TensorFlow's SAME/VALID padding, in float64."""
    (top, bottom), (left, right) = conv.pads(x.shape[1]), conv.pads(x.shape[2])
    x = np.pad(np.asarray(x, np.float64), ((0, 0), (top, bottom), (left, right), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (conv.kernel, conv.kernel), axis=(1, 2))
    windows = windows[:, ::conv.stride, ::conv.stride]  # (B, ho, wo, c_in, kh, kw)
    return np.einsum("bhwcij,ijco->bhwo", windows, kernel.astype(np.float64), optimize=True)


def flush(x: np.ndarray) -> np.ndarray:
    """Subnormal float32 values become zero, as on a CPU running TensorFlow."""
    return np.where(np.abs(x) < FLOAT32_TINY, np.float32(0), x).astype(np.float32)


def level_of(integral: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``round(relu(fl32(z) * scale + bias) + 1e-5)`` in float32, subnormals flushed."""
    v = flush(flush(flush(np.asarray(integral).astype(np.float32)) * scale) + bias)
    return np.round(np.maximum(v, np.float32(0)) + ROUNDING_OFFSET)


def _exact_sum(x: np.ndarray, w: np.ndarray) -> float:
    """``sum(x * w)`` exactly in rationals, then rounded once to float64."""
    return float(sum((Fraction(float(a)) * Fraction(float(b)) for a, b in zip(x.ravel(), w.ravel())
                      if a != 0 and b != 0), Fraction(0)))


class Synapses:
    """A layer's synaptic integrals over cumulative input counts, decided exactly."""

    def __init__(self, layer: SpikingLayer):
        self.layer = layer
        self.kernel = np.asarray(layer.kernel, np.float32)
        self.fan_in = int(np.prod(self.kernel.shape[:3]))

    def levels(self, x: np.ndarray) -> np.ndarray:
        conv, n = self.layer.conv, self.fan_in
        z = conv2d(x, self.kernel, conv)
        bound = 2 * n * UNIT_ROUNDOFF / (1 - n * UNIT_ROUNDOFF) * conv2d(np.abs(x), np.abs(self.kernel), conv)
        low = level_of(z - bound, self.layer.scale, self.layer.bias)
        high = level_of(z + bound, self.layer.scale, self.layer.bias)
        for b, i, j, o in np.argwhere(low != high):
            (top, _), (left, _) = conv.pads(x.shape[1]), conv.pads(x.shape[2])
            rows = np.arange(i * conv.stride - top, i * conv.stride - top + conv.kernel)
            cols = np.arange(j * conv.stride - left, j * conv.stride - left + conv.kernel)
            inside = (rows[:, None] >= 0) & (rows[:, None] < x.shape[1]) & (cols >= 0) & (cols < x.shape[2])
            patch = np.where(inside[..., None], x[b, rows.clip(0, x.shape[1] - 1)][:, cols.clip(0, x.shape[2] - 1)], 0)
            z_exact = _exact_sum(patch, self.kernel[..., o])
            low[b, i, j, o] = level_of(np.float64(z_exact), self.layer.scale[o], self.layer.bias[o])
        return low


def readout(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Output potentials: the exact ``counts @ weights`` rounded once to float64, then to float32."""
    z = counts @ weights.astype(np.float64)
    n = weights.shape[0]
    bound = 2 * n * UNIT_ROUNDOFF / (1 - n * UNIT_ROUNDOFF) * (np.abs(counts) @ np.abs(weights.astype(np.float64)))
    low, high = flush((z - bound).astype(np.float32)), flush((z + bound).astype(np.float32))
    for b, c in np.argwhere(low != high):
        low[b, c] = flush(np.float32(_exact_sum(counts[b], weights[:, c])))
    return low


class LevelNeurons:
    """A layer of neurons that fire by a level rule (:class:`common.neurons.LevelRule`): from the exact
    level of all input so far."""

    def __init__(self, rule: type[neurons.LevelRule], layer: SpikingLayer):
        self.rule = rule
        self.synapses = Synapses(layer)

    def reset(self, shape: tuple[int, ...]) -> None:
        self.count = np.zeros(shape, np.float32)

    def step(self, spikes_in: np.ndarray, cumulative_input: np.ndarray) -> np.ndarray:
        spike, self.count = self.rule.step(self.synapses.levels(cumulative_input), self.count, np)
        return spike


class MembraneNeurons:
    """A layer of neurons of a membrane rule (:class:`common.neurons.MembraneRule`): fed each step's
    synaptic current, the convolution of the spikes that arrived in that step."""

    def __init__(self, rule: type[neurons.MembraneRule], layer: SpikingLayer, k: int):
        self.layer = layer
        self.neurons = rule(layer, k)

    def reset(self, shape: tuple[int, ...]) -> None:
        self.neurons.reset(shape)

    def step(self, spikes_in: np.ndarray, cumulative_input: np.ndarray) -> np.ndarray:
        return self.neurons.step(conv2d(spikes_in, self.layer.kernel, self.layer.conv))


def layer_neurons(kind: type, layer: SpikingLayer, k: int) -> LevelNeurons | MembraneNeurons:
    """The neurons of one layer for the rule ``kind``, chosen by the rule's protocol."""
    if issubclass(kind, neurons.MembraneRule):
        return MembraneNeurons(kind, layer, k)
    return LevelNeurons(kind, layer)


def simulate(spiking_net: SpikingNetwork, x: np.ndarray, time_steps: int,
             rule: str = neurons.DEFAULT_RULE) -> SimulationResult:
    """Simulate ``time_steps`` steps for inputs ``x`` (already multiplied by ``2^k``) with the neuron
    rule called ``rule`` (see :data:`common.neurons.RULES`)."""
    batch = len(x)
    shapes = spiking_net.network.shapes()[1:]
    result = SimulationResult.empty(shapes, spiking_net.network.classes, batch, time_steps)
    kind = neurons.rule(rule)
    layers = [layer_neurons(kind, layer, spiking_net.k) for layer in spiking_net.layers]
    for neuron, shape in zip(layers, shapes):
        neuron.reset((batch, *shape))
    cumulative = [np.zeros((batch, *shape), np.float32) for shape in shapes]
    covers = [(cover[None, :, :, None], fanout) for cover, fanout in spiking_net.synop_weights()]
    image = np.asarray(x, np.float32)
    for t in range(time_steps):
        spikes_in, cumulative_in = (image if t == 0 else np.zeros_like(image)), image
        for i, neuron in enumerate(layers):
            spike = neuron.step(spikes_in, cumulative_in)
            cumulative[i] += spike
            magnitude = np.abs(spike)
            result.spikes[t, i] = magnitude.sum(axis=(1, 2, 3))
            result.net[t, i] = spike.sum(axis=(1, 2, 3))
            cover, fanout = covers[i]
            result.layer_synops[t, i] = (magnitude * cover).sum(axis=(1, 2, 3)).astype(np.int64) * fanout
            result.synops[t] += result.layer_synops[t, i]
            spikes_in, cumulative_in = spike, cumulative[i]
        flat = cumulative[-1].reshape(batch, -1)
        if kind.readout == "float64":  # the original's float64 product
            output = (flat @ spiking_net.output_weights.astype(np.float64)).astype(np.float32)
        else:
            output = readout(flat, spiking_net.output_weights)
        result.predictions[t] = output.argmax(axis=1)
    quiet = result.spikes.sum(axis=1) == 0
    result.settle = np.where(quiet.any(axis=0), quiet.argmax(axis=0), -1)
    result.counts = cumulative
    result.output = output
    return result
