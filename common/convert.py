"""ANN-to-SNN conversion: fold each hidden layer's BatchNorm into its neurons.

After the fold a hidden neuron's membrane potential, measured in thresholds, is
``v = z * scale + bias``, where ``z`` is the synaptic integral of its input spikes
(``2^k`` times the ANN's pre-activation once all input has arrived), ``1/scale`` is the
threshold and ``bias`` the initial potential. Then ``v = 2^k * bn(z_ann)`` exactly, and
the neuron's settled net spike count ``round(relu(v) + 1e-5)`` is the ANN's quantized
activation times ``2^k``. Negative gamma gives a negative scale (the neuron is driven
down by excitatory input) and zero gamma a zero scale (a constant potential); the
original's ``threshold = sqrt(var + eps) / gamma`` silently assumed gamma > 0.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from common import compat  # noqa: F401 - quiets TensorFlow's start-up: imported before it
import tensorflow as tf

from common.checkpoint import CheckpointError
from common.model import OUTPUT_NAME, layer_names
from common.networks import Conv, Network


def fold_batchnorm(gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray, var: np.ndarray,
                   k: int, epsilon: float = compat.BN_EPSILON) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(scale, bias)`` of the spiking neurons that replace BN + quantized ReLU.

    Uses the ANN's own BatchNorm arithmetic (:func:`compat.batchnorm_scale_shift`), so the
    potential equals the ANN's scaled pre-activation bit for bit; ``2^k`` scaling is exact.
    """
    scale, shift = compat.batchnorm_scale_shift(
        *(tf.constant(a, tf.float32) for a in (gamma, beta, mean, var)), epsilon)
    return scale.numpy(), (shift * float(2 ** k)).numpy()


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


def convert(network: Network, k: int, weights: dict[str, np.ndarray]) -> SpikingNetwork:
    """Convert checkpoint arrays (see :mod:`common.checkpoint`) of a quantized ANN."""
    layers = []
    for i, conv in enumerate(network.hidden, start=1):
        conv_name, bn = layer_names(i)
        stats = tuple(np.asarray(weights[f"{bn}/{name}"], np.float32)
                      for name in ("beta", "gamma", "moving_mean", "moving_var"))
        scale, bias = fold_batchnorm(stats[1], stats[0], stats[2], stats[3], k)
        if not (np.isfinite(scale).all() and np.isfinite(bias).all()):
            raise CheckpointError(f"{bn}: BatchNorm folds to a non-finite threshold or bias; the weights cannot "
                                  f"be a trained network")
        layers.append(SpikingLayer(conv, np.asarray(weights[f"{conv_name}/filters"], np.float32), scale, bias,
                                   stats))
    return SpikingNetwork(network, k, layers, np.asarray(weights[f"{OUTPUT_NAME}/weights"], np.float32))
