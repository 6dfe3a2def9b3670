"""The reference simulator: plain NumPy, time loop outside, layer loop inside.

It follows the original code's structure step by step (each layer adds this step's
synaptic current to a float64 membrane integral, then its neurons fire) and shares only
the neuron rule with the fast simulator. The tests use it as the oracle: on networks whose
arithmetic is exact, the fast simulator must reproduce every spike count of every step.
"""

from __future__ import annotations

import numpy as np

from common.convert import SpikingNetwork
from common.layers import ROUNDING_OFFSET
from common.networks import Conv
from common.snn import SimulationResult


def conv2d(x: np.ndarray, kernel: np.ndarray, conv: Conv) -> np.ndarray:
    """NHWC convolution with TensorFlow's SAME/VALID padding, in float64."""
    kh, kw = kernel.shape[:2]
    if conv.padding == "SAME":
        pads = []
        for size in x.shape[1:3]:
            total = max((conv.output_size(size) - 1) * conv.stride + conv.kernel - size, 0)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    windows = windows[:, ::conv.stride, ::conv.stride]  # (B, ho, wo, c_in, kh, kw)
    return np.einsum("bhwcij,ijco->bhwo", windows, kernel.astype(np.float64), optimize=True)


def neuron_step(potential: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`common.snn.NegativeSpikeIF.step` in NumPy (float32, round half to even)."""
    crossed = np.round(np.maximum(potential, np.float32(0)) + np.float32(ROUNDING_OFFSET))
    spike = np.clip(crossed - count, -1, 1)
    return spike, count + spike


def simulate(sn: SpikingNetwork, x: np.ndarray, time_steps: int) -> SimulationResult:
    """Simulate ``time_steps`` steps for inputs ``x`` (already multiplied by ``2^k``)."""
    batch = len(x)
    result = SimulationResult.empty(sn, batch, time_steps)
    shapes = sn.network.shapes()[1:]
    membrane = [np.zeros((batch, *shape)) for shape in shapes]  # float64 synaptic integrals
    counts = [np.zeros((batch, *shape), np.float32) for shape in shapes]
    covers = [(cover[None, :, :, None], fanout) for cover, fanout in sn.synop_weights()]
    output = np.zeros((batch, sn.network.classes))
    for t in range(time_steps):
        spikes_in = x.astype(np.float64) if t == 0 else np.zeros_like(x, np.float64)
        for i, layer in enumerate(sn.layers):
            membrane[i] += conv2d(spikes_in, layer.kernel, layer.conv)
            potential = membrane[i].astype(np.float32) * layer.scale + layer.bias
            spike, counts[i] = neuron_step(potential, counts[i])
            magnitude = np.abs(spike)
            result.spikes[t, i] = magnitude.sum(axis=(1, 2, 3))
            result.net[t, i] = spike.sum(axis=(1, 2, 3))
            cover, fanout = covers[i]
            result.synops[t] += (magnitude * cover).sum(axis=(1, 2, 3)).astype(np.int64) * fanout
            spikes_in = spike.astype(np.float64)
        output += spikes_in.reshape(batch, -1) @ sn.output_weights.astype(np.float64)
        result.predictions[t] = output.argmax(axis=1)
    quiet = result.spikes.sum(axis=1) == 0
    result.settle = np.where(quiet.any(axis=0), quiet.argmax(axis=0), -1)
    result.counts = counts
    result.output = output.astype(np.float32)
    return result
