"""The fast spiking simulator: compiled TensorFlow, a batch at a time, exact by construction.

Schedule (the original's): the input image times ``2^k`` is injected into the first
layer at t = 0; at every step each layer integrates the spikes its predecessor emitted in
that same step; the output layer only integrates, and its argmax is the prediction.

Exact on any CPU and for any batch shape. A neuron's membrane potential is the integral of
its synaptic input over the cumulative input counts, and its level (the thresholds it has
crossed) is decided exactly by the synapses of the exact ANN (:mod:`common.exact_ann`); the
neuron rule then fires from its level and its count (:class:`common.neurons.LevelRule`). The
fast simulator runs every level rule exactly (``lossless`` and ``no_negative``); the
``original`` rule, a float64 membrane, runs on the reference simulator only. For the lossless
rule settled counts equal the exact ANN's activations by construction.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf
import tensorflow.experimental.numpy as tnp

from common import neurons
from common.exact_ann import ExactANN
from common.results import SimulationResult, first_quiet_step
from common.spiking_network import SpikingNetwork

DEFAULT_MEMORY_BUDGET = 512 * 2 ** 20  # bytes of activations per chunk of time steps
MAX_CHUNK_STEPS = 4  # steps per compiled chunk: settled samples leave the batch between chunks


class Stopped(Exception):  # noqa: N818 - control flow, not an error
    """A simulation was asked to stop (a signal arrived)."""


class FastSimulator:
    """Vectorized, compiled simulation of a :class:`SpikingNetwork` over a batch.

    Args:
        sn: the converted network.
        memory_budget: bytes of activations per compiled chunk of time steps.
        early_exit: let a sample leave the batch once no neuron spikes (changes no record).
        max_chunk_steps: time steps per compiled chunk.
        rule: the neuron rule, a :class:`common.neurons.LevelRule` or its name (``lossless``,
            ``no_negative``); the ``original`` rule runs on :mod:`common.reference` only.

    ``exact_ann`` is the exact ANN whose synapses decide the neurons' levels; the runs compare
    against it.
    """

    def __init__(self, sn: SpikingNetwork, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                 early_exit: bool = True, max_chunk_steps: int = MAX_CHUNK_STEPS,
                 rule: type[neurons.LevelRule] | str = neurons.DEFAULT_RULE):
        self.rule = neurons.rule(rule) if isinstance(rule, str) else rule
        if not issubclass(self.rule, neurons.LevelRule):
            raise ValueError(f"--neuron_rule {self.rule.name} runs on the reference simulator only")
        self.sn = sn
        self.early_exit = early_exit
        self.memory_budget = memory_budget
        self.max_chunk_steps = max_chunk_steps
        self._shapes = sn.network.shapes()
        self.exact_ann = ExactANN(sn)
        self.synapses, self.readout = self.exact_ann.synapses, self.exact_ann.readout
        synop_weights = sn.synop_weights()
        self._covers = [tf.constant(cover[None, :, :, None], tf.float32) for cover, _ in synop_weights]
        self._fanouts = np.array([fanout for _, fanout in synop_weights], np.int64)
        self._chunks: dict[int, tf.types.experimental.GenericFunction] = {}

    def _adapt(self) -> None:
        """Let the exact ANN move a layer to float64 (see :meth:`ExactANN.adapt`); recompile if it did."""
        if self.exact_ann.adapt():
            self._chunks = {}

    def chunk_steps(self, batch: int, time_steps: int) -> int:
        """Steps per chunk so that a chunk's activations stay within the memory budget."""
        largest = max(h * w * c for h, w, c in self._shapes[1:])
        per_step = batch * largest * 4 * 8  # potentials, levels, spikes, counts, and their copies
        return int(np.clip(self.memory_budget // max(per_step, 1), 1, min(time_steps, self.max_chunk_steps)))

    def _chunk(self, n: int):
        """Compiled simulation of ``n`` steps for the current neuron states."""
        if n in self._chunks:
            return self._chunks[n]
        signature = [tf.TensorSpec([None, *self._shapes[1]], tf.float32),
                     [tf.TensorSpec([None, *shape], tf.float32) for shape in self._shapes[1:]]]

        @tf.function(input_signature=signature)
        def run(first_levels, counts):
            batch = tf.shape(first_levels)[0]
            cumulative_input = None  # (n, B, h, w, c): the previous layer's counts after each step
            spikes, nets, covered, new_counts = [], [], [], []
            for i, synapses in enumerate(self.synapses):
                if i == 0:  # the image arrives at t = 0 and stays integrated: one level for all steps
                    levels = [first_levels] * n
                else:
                    flat = tf.reshape(cumulative_input, [n * batch, *self._shapes[i]])
                    levels = tf.unstack(tf.reshape(synapses.levels(flat), [n, batch, *self._shapes[i + 1]]))
                count, layer_counts = counts[i], []
                layer_spikes, layer_nets, layer_covered = [], [], []
                for t in range(n):
                    spike, count = self.rule.step(levels[t], count, tnp)
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
            output = self.readout.potentials(tf.reshape(cumulative_input, [n * batch, -1]))
            return (new_counts, tf.stack(spikes, 1), tf.stack(nets, 1), tf.stack(covered, 1),
                    tf.reshape(output, [n, batch, -1]))

        self._chunks[n] = run
        return run

    def simulate(self, x: np.ndarray, time_steps: int, stop: Callable[[], bool] = lambda: False) -> SimulationResult:
        """Simulate ``time_steps`` steps for inputs ``x`` (already multiplied by ``2^k``).

        ``stop()`` is asked between chunks of steps; if it says so, :class:`Stopped` is raised."""
        batch = len(x)
        result = SimulationResult.empty(self._shapes[1:], self.sn.network.classes, batch, time_steps)
        chunk = self.chunk_steps(batch, time_steps)
        first_levels = self.exact_ann.first_levels(np.asarray(x, np.float32)).numpy()
        active = np.arange(batch)
        counts = [np.zeros((batch, *shape), np.float32) for shape in self._shapes[1:]]
        t0 = 0
        while t0 < time_steps and len(active):
            if stop():
                raise Stopped
            n = min(chunk, time_steps - t0)
            new_counts, spikes, nets, covered, output = self._chunk(n)(first_levels[active], counts)
            new_counts = [c.numpy() for c in new_counts]
            spikes, nets = np.rint(spikes.numpy()).astype(np.int64), np.rint(nets.numpy()).astype(np.int64)
            covered = np.rint(covered.numpy()).astype(np.int64)
            output = output.numpy()
            steps = slice(t0, t0 + n)
            result.spikes[steps, :, active] = spikes
            result.net[steps, :, active] = nets
            result.synops[steps, active] = np.einsum("tlb,l->tb", covered, self._fanouts)
            result.layer_synops[steps, :, active] = covered * self._fanouts[None, :, None]
            result.predictions[steps, active] = output.argmax(axis=-1)  # NumPy: the first of equal maxima
            quiet = first_quiet_step(spikes) if self.early_exit else np.full(len(active), -1)
            done = (quiet >= 0) | (t0 + n == time_steps)
            for i, c in enumerate(new_counts):
                result.counts[i][active[done]] = c[done]
            result.output[active[done]] = output[-1][done]
            settled = quiet >= 0
            result.settle[active[settled]] = t0 + quiet[settled]
            result.predictions[t0 + n:, active[settled]] = result.predictions[t0 + n - 1, active[settled]]
            keep = ~done
            active, counts = active[keep], [c[keep] for c in new_counts]
            t0 += n
            self._adapt()
        if not self.early_exit:
            quiet = first_quiet_step(result.spikes)
            result.settle = np.where(quiet >= 0, quiet, -1)
        return result
