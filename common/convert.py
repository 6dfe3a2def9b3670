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

import numpy as np

from common.checkpoint import CheckpointError
from common.exact import BN_EPSILON, inverse_sqrt
from common.networks import OUTPUT_NAME, Network, layer_names
from common.spiking_network import SpikingLayer, SpikingNetwork, synapse_cover  # noqa: F401 - the converter's types


def fold_batchnorm(gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray, var: np.ndarray,
                   k: int, epsilon: float = BN_EPSILON) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(scale, bias)`` of the spiking neurons that replace BN + quantized ReLU.

    The ANN's own BatchNorm arithmetic, ``scale = inverse_sqrt(var + eps) * gamma`` and
    ``shift = beta - mean * scale`` in float32 (:func:`common.compat.batchnorm_scale_shift`), so the
    potential equals the ANN's scaled pre-activation bit for bit; ``2^k`` scaling is exact.
    """
    gamma, beta, mean, var = (np.asarray(a, np.float32) for a in (gamma, beta, mean, var))
    scale = inverse_sqrt(var + np.float32(epsilon)) * gamma
    shift = beta - mean * scale
    return scale, shift * np.float32(2 ** k)


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
