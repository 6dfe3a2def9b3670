"""The negative-spike integrate-and-fire neuron and the fast spiking simulator.

Schedule (the original's): the input image times ``2^k`` is injected into the first
layer at t = 0; at every step each layer integrates the spikes its predecessor emitted in
that same step; the output layer only integrates, and its argmax is the prediction.

A neuron's membrane potential is the integral of its synaptic input. Rather than a
running float sum of per-step currents, the simulator evaluates that integral as the
synaptic weights applied to the cumulative input count: the same quantity in exact
arithmetic, and in floating point the very bits of the ANN's pre-activation times ``2^k``
(a power-of-two scaling is exact), so that the settled spike counts equal the ANN's
quantized activations without a single exception. Because the schedule is causal and
feed-forward, a layer's input for a whole chunk of steps is known before the layer runs,
so its synaptic integrals for all those steps are one batched convolution.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from common.convert import SpikingNetwork
from common.layers import quantize_level

DEFAULT_MEMORY_BUDGET = 512 * 2 ** 20  # bytes of activations per chunk of time steps
MAX_CHUNK_STEPS = 4  # steps per compiled chunk: settled samples leave the batch between chunks


class NegativeSpikeIF:
    """Integrate-and-fire neuron that also fires negative spikes.

    ``potential`` is the membrane potential in units of the threshold, offset by the
    folded bias; ``count`` is the net number of spikes the neuron has sent. The neuron has
    crossed ``round(relu(potential) + 1e-5)`` thresholds (the original places its resting
    bound half a threshold below zero, which turns crossing into rounding). It fires +1
    while it has signalled fewer crossings than it has made and -1 while it has signalled
    more, at most one spike per step, so its net count tracks the crossings and, once the
    input stops changing, equals them.
    """

    @staticmethod
    def step(potential: tf.Tensor, count: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """One time step: returns ``(spike, new_count)`` with spikes in {-1, 0, +1}."""
        crossed = quantize_level(potential)
        spike = tf.clip_by_value(crossed - count, -1.0, 1.0)
        return spike, count + spike


@dataclasses.dataclass
class SimulationResult:
    """Per-step records of one batch (``T`` steps, ``L`` hidden layers, ``B`` samples)."""

    predictions: np.ndarray  # (T, B) argmax of the output potential after each step
    spikes: np.ndarray  # (T, L, B) |spikes| of each hidden layer in each step
    net: np.ndarray  # (T, L, B) net spikes (+1 minus -1) of each hidden layer in each step
    synops: np.ndarray  # (T, B) synaptic operations caused in each step
    counts: list[np.ndarray]  # final net spike count of every hidden neuron, (B, h, w, c) each
    output: np.ndarray  # (B, classes) final output potential
    settle: np.ndarray  # (B,) last step with any spike (0: none); -1 if still spiking at T

    @staticmethod
    def empty(sn: SpikingNetwork, batch: int, time_steps: int) -> SimulationResult:
        n_layers = len(sn.layers)
        return SimulationResult(
            predictions=np.zeros((time_steps, batch), np.int64),
            spikes=np.zeros((time_steps, n_layers, batch), np.int64),
            net=np.zeros((time_steps, n_layers, batch), np.int64),
            synops=np.zeros((time_steps, batch), np.int64),
            counts=[np.zeros((batch, *shape), np.float32) for shape in sn.network.shapes()[1:]],
            output=np.zeros((batch, sn.network.classes), np.float32),
            settle=np.full(batch, -1, np.int64))


def first_quiet_step(spikes: np.ndarray) -> np.ndarray:
    """Index of the first step with no spike in any layer, per sample; -1 if none.

    ``spikes`` is ``(T, L, B)``. After a quiet step no neuron's input changes again, so the
    network is frozen: this is where a sample settles.
    """
    quiet = spikes.sum(axis=1) == 0
    return np.where(quiet.any(axis=0), quiet.argmax(axis=0), -1)


class FastSimulator:
    """Vectorized, compiled simulation of a :class:`SpikingNetwork` over a batch."""

    def __init__(self, sn: SpikingNetwork, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                 early_exit: bool = True):
        self.sn = sn
        self.early_exit = early_exit
        self.memory_budget = memory_budget
        self._kernels = [tf.Variable(layer.kernel, trainable=False) for layer in sn.layers]
        self._scales = [tf.Variable(layer.scale, trainable=False) for layer in sn.layers]
        self._biases = [tf.Variable(layer.bias, trainable=False) for layer in sn.layers]
        self._output = tf.Variable(sn.output_weights, trainable=False)
        synop_weights = sn.synop_weights()
        self._covers = [tf.constant(cover[None, :, :, None], tf.float32) for cover, _ in synop_weights]
        self._fanouts = np.array([fanout for _, fanout in synop_weights], np.int64)
        self._shapes = sn.network.shapes()
        self._chunks: dict[int, tf.types.experimental.GenericFunction] = {}

    def chunk_steps(self, batch: int, time_steps: int) -> int:
        """Steps per chunk so that a chunk's activations stay within the memory budget."""
        largest = max(h * w * c for h, w, c in self._shapes[1:])
        per_step = batch * largest * 4 * 8  # potentials, levels, spikes, counts, and their copies
        return int(np.clip(self.memory_budget // max(per_step, 1), 1, min(time_steps, MAX_CHUNK_STEPS)))

    def _chunk(self, n: int):
        """Compiled simulation of ``n`` steps for the current neuron states."""
        if n in self._chunks:
            return self._chunks[n]
        layers = self.sn.layers
        signature = [tf.TensorSpec([None, *self._shapes[0]], tf.float32),
                     [tf.TensorSpec([None, *shape], tf.float32) for shape in self._shapes[1:]]]

        @tf.function(input_signature=signature)
        def run(x, counts):
            batch = tf.shape(x)[0]
            cumulative_input = None  # (n, B, h, w, c): the previous layer's counts after each step
            spikes, nets, covered, new_counts = [], [], [], []
            for i, layer in enumerate(layers):
                conv = layer.conv
                if i == 0:  # the image arrives at t = 0 and stays integrated: one potential for all steps
                    z = tf.nn.conv2d(x, self._kernels[i], conv.stride, conv.padding)
                    potentials = [z * self._scales[i] + self._biases[i]] * n
                else:
                    h, w, c = self._shapes[i]
                    z = tf.nn.conv2d(tf.reshape(cumulative_input, [n * batch, h, w, c]), self._kernels[i],
                                     conv.stride, conv.padding)
                    potentials = tf.unstack(tf.reshape(z * self._scales[i] + self._biases[i],
                                                       [n, batch, *self._shapes[i + 1]]))
                count, layer_counts = counts[i], []
                layer_spikes, layer_nets, layer_covered = [], [], []
                for t in range(n):
                    spike, count = NegativeSpikeIF.step(potentials[t], count)
                    magnitude = tf.abs(spike)
                    layer_counts.append(count)
                    layer_spikes.append(tf.reduce_sum(magnitude, [1, 2, 3]))
                    layer_nets.append(tf.reduce_sum(spike, [1, 2, 3]))
                    layer_covered.append(tf.reduce_sum(magnitude * self._covers[i], [1, 2, 3]))
                cumulative_input = tf.stack(layer_counts)
                new_counts.append(count)
                spikes.append(tf.stack(layer_spikes))
                nets.append(tf.stack(layer_nets))
                covered.append(tf.stack(layer_covered))
            flat = tf.reshape(cumulative_input, [n * batch, -1])
            output = tf.reshape(tf.matmul(flat, self._output), [n, batch, -1])
            return (new_counts, tf.stack(spikes, 1), tf.stack(nets, 1), tf.stack(covered, 1),
                    tf.argmax(output, -1), output[-1])

        self._chunks[n] = run
        return run

    def simulate(self, x: np.ndarray, time_steps: int) -> SimulationResult:
        """Simulate ``time_steps`` steps for inputs ``x`` (already multiplied by ``2^k``)."""
        batch = len(x)
        result = SimulationResult.empty(self.sn, batch, time_steps)
        chunk = self.chunk_steps(batch, time_steps)
        active = np.arange(batch)
        counts = [np.zeros((batch, *shape), np.float32) for shape in self._shapes[1:]]
        t0 = 0
        while t0 < time_steps and len(active):
            n = min(chunk, time_steps - t0)
            xa = x[active]
            if len(active) == 1:
                xa, counts = pad_to_two(xa), [pad_to_two(c) for c in counts]
            new_counts, spikes, nets, covered, predictions, output = self._chunk(n)(xa, counts)
            m = len(active)
            new_counts = [c.numpy()[:m] for c in new_counts]
            spikes, nets = np.rint(spikes.numpy()[..., :m]), np.rint(nets.numpy()[..., :m])
            covered = np.rint(covered.numpy()[..., :m]).astype(np.int64)
            steps = slice(t0, t0 + n)
            result.spikes[steps, :, active] = spikes
            result.net[steps, :, active] = nets
            result.synops[steps, active] = np.einsum("tlb,l->tb", covered, self._fanouts)
            result.predictions[steps, active] = predictions.numpy()[:, :m]
            output = output.numpy()[:m]
            quiet = first_quiet_step(spikes) if self.early_exit else np.full(m, -1)
            done = (quiet >= 0) | (t0 + n == time_steps)
            for i, c in enumerate(new_counts):
                result.counts[i][active[done]] = c[done]
            result.output[active[done]] = output[done]
            settled = quiet >= 0
            result.settle[active[settled]] = t0 + quiet[settled]
            result.predictions[t0 + n:, active[settled]] = result.predictions[t0 + n - 1, active[settled]]
            keep = ~done
            active, counts = active[keep], [c[keep] for c in new_counts]
            t0 += n
        if not self.early_exit:
            quiet = first_quiet_step(result.spikes)
            result.settle = np.where(quiet >= 0, quiet, -1)
        return result


def pad_to_two(a: np.ndarray) -> np.ndarray:
    """A batch of one, doubled: single-image kernels round differently from batched ones, and
    the SNN must see the ANN's bits. Larger batches are returned as they are."""
    return np.concatenate([a, a], 0) if len(a) == 1 else a
