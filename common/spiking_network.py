"""The converted network as plain NumPy data: what the converter produces and the simulators read.

Imports no TensorFlow, so that the NumPy reference simulator and the neuron rules stand on
plain data (:mod:`common.convert` makes these from a checkpoint).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from common.networks import Conv, Network


def synapse_cover(layer: Conv, size: int) -> np.ndarray:
    """How many of ``layer``'s receptive fields contain each input position along one axis.

    An input spike at ``(i, j)`` reaches ``cover[i] * cover[j] * filters`` synapses: the
    synaptic operations it costs, as the original counted them through im2col.
    """
    out = layer.output_size(size)
    pad = max((out - 1) * layer.stride + layer.kernel - size, 0) // 2 if layer.padding == "SAME" else 0
    cover = np.zeros(size, np.int64)
    for o in range(out):
        start = o * layer.stride - pad
        cover[max(start, 0):min(start + layer.kernel, size)] += 1
    return cover


@dataclasses.dataclass
class SpikingLayer:
    """One hidden layer of negative-spike IF neurons."""

    conv: Conv
    kernel: np.ndarray  # (kh, kw, c_in, c_out), the ANN's filters
    scale: np.ndarray  # (c_out,) 1 / threshold
    bias: np.ndarray  # (c_out,) initial potential, in thresholds
    batchnorm: tuple[np.ndarray, ...] | None = None  # (beta, gamma, mean, var), for the original's neuron rule

    @property
    def threshold(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return 1.0 / self.scale


@dataclasses.dataclass
class SpikingNetwork:
    """The converted network: hidden spiking layers and the output layer's weights."""

    network: Network
    k: int
    layers: list[SpikingLayer]
    output_weights: np.ndarray  # (features, classes); the output layer only integrates

    def synop_weights(self) -> list[tuple[np.ndarray, int]]:
        """For each hidden layer, ``(cover, fanout)``: a spike at ``(i, j)`` costs
        ``cover[i, j] * fanout`` synaptic operations (the next layer's receptive fields that
        contain it times its filters; for the last hidden layer, the output classes)."""
        shapes = self.network.shapes()[1:]
        weights = []
        for (h, w, _), nxt in zip(shapes[:-1], self.network.hidden[1:]):
            weights.append((np.outer(synapse_cover(nxt, h), synapse_cover(nxt, w)), nxt.filters))
        weights.append((np.ones(shapes[-1][:2], np.int64), self.network.classes))
        return weights
