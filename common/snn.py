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

from common import neurons
from common.exact_ann import ExactANN, ExactSynapses
from common.results import SimulationResult, first_quiet_step
from common.signals import Stopped
from common.spiking_network import SpikingNetwork

DEFAULT_MEMORY_BUDGET = 512 * 2 ** 20  # bytes of activations per chunk of time steps
MAX_CHUNK_STEPS = 4  # steps per compiled chunk: settled samples leave the batch between chunks


class TensorFlowArrays:
    """The array namespace the fast simulator gives level rules (:class:`common.neurons.ArrayNamespace`), as
    TensorFlow operations.

    ``tf.experimental.numpy.clip`` broadcasts its bounds to a full tensor first; this does not."""

    @staticmethod
    def clip(a: tf.Tensor, low: float, high: float) -> tf.Tensor:
        return tf.clip_by_value(a, low, high)


class FastSimulator:
    """Vectorized, compiled simulation of a :class:`SpikingNetwork` over a batch.

    Args:
        spiking_net: the converted network.
        memory_budget: bytes of activations per compiled chunk of time steps.
        early_exit: let a sample leave the batch once no neuron spikes (changes no record).
        max_chunk_steps: time steps per compiled chunk.
        rule: the neuron rule, a :class:`common.neurons.LevelRule` or its name (``lossless``,
            ``no_negative``); the ``original`` rule runs on :mod:`common.reference` only.

    ``exact_ann`` is the exact ANN whose synapses decide the neurons' levels; the runs compare
    against it.
    """

    def __init__(self, spiking_net: SpikingNetwork, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                 early_exit: bool = True, max_chunk_steps: int = MAX_CHUNK_STEPS,
                 rule: type[neurons.LevelRule] | str = neurons.DEFAULT_RULE):
        self.rule = neurons.rule(rule) if isinstance(rule, str) else rule
        if not neurons.is_level_rule(self.rule):
            raise ValueError(f"--neuron_rule {self.rule.name} runs on the reference simulator only")
        self.spiking_net = spiking_net
        self.early_exit = early_exit
        self.memory_budget = memory_budget
        self.max_chunk_steps = max_chunk_steps
        self._shapes = spiking_net.network.shapes()
        self.exact_ann = ExactANN(spiking_net)
        self.synapses, self.readout = self.exact_ann.synapses, self.exact_ann.readout
        synop_weights = spiking_net.synop_weights()
        self._covers = [tf.constant(cover[None], tf.float32) for cover, _ in synop_weights]
        self._fanouts = np.array([fanout for _, fanout in synop_weights], np.int64)
        self._chunks: dict[int, tf.types.experimental.GenericFunction] = {}
        self._resting: list[np.ndarray] | None = None

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
        """Compiled simulation of ``n`` steps for the current neuron states.

        A layer's level is a function of its input counts, so a layer is evaluated only for the
        (step, sample) pairs where the layer below spiked; elsewhere it keeps its last level.
        """
        if n in self._chunks:
            return self._chunks[n]
        signature = [tf.TensorSpec([None, *self._shapes[1]], tf.float32),
                     [tf.TensorSpec([None, *shape], tf.float32) for shape in self._shapes[1:]],
                     [tf.TensorSpec([None, *shape], tf.float32) for shape in self._shapes[2:]]]

        @tf.function(input_signature=signature)
        def run(first_levels, counts, last_levels):
            batch = tf.shape(first_levels)[0]
            cumulative_input, changed = None, None  # the layer below's counts after each step; where they moved
            spikes, nets, covered, new_counts, new_levels = [], [], [], [], []
            for i, synapses in enumerate(self.synapses):
                if i == 0:  # the image arrives at t = 0 and stays integrated: one level for all steps
                    levels = [first_levels] * n
                else:
                    levels = tf.unstack(changed_levels(synapses, cumulative_input, changed, last_levels[i - 1],
                                                       self._shapes[i], self._shapes[i + 1]))
                    new_levels.append(levels[-1])
                count, layer_counts = counts[i], []
                layer_spikes, layer_nets, layer_covered = [], [], []
                for t in range(n):
                    spike, count = self.rule.step(levels[t], count, TensorFlowArrays)
                    per_position = tf.reduce_sum(tf.abs(spike), 3)  # the synaptic cost depends on the position only
                    layer_counts.append(count)
                    layer_spikes.append(tf.reduce_sum(per_position, [1, 2]))
                    layer_nets.append(tf.reduce_sum(spike, [1, 2, 3]))
                    layer_covered.append(tf.reduce_sum(per_position * self._covers[i], [1, 2]))
                cumulative_input = tf.stack(layer_counts)
                changed = tf.stack(layer_spikes) > 0  # (n, B): a spike moved the next layer's input
                new_counts.append(count)
                spikes.append(tf.stack(layer_spikes))
                nets.append(tf.stack(layer_nets))
                covered.append(tf.stack(layer_covered))
            output = self.readout.potentials(tf.reshape(cumulative_input, [n * batch, -1]))
            return (new_counts, new_levels, tf.stack(spikes, 1), tf.stack(nets, 1), tf.stack(covered, 1),
                    tf.reshape(output, [n, batch, -1]))

        self._chunks[n] = run
        return run

    @tf.function(reduce_retracing=True)
    def _split(self, done: tf.Tensor, first_levels: tf.Tensor, counts: list[tf.Tensor], levels: list[tf.Tensor]):
        """The finished samples' counts, and the states of the samples that go on."""
        keep = tf.logical_not(done)
        return ([tf.boolean_mask(c, done) for c in counts], tf.boolean_mask(first_levels, keep),
                [tf.boolean_mask(c, keep) for c in counts], [tf.boolean_mask(level, keep) for level in levels])

    def _resting_levels(self) -> list[np.ndarray]:
        """Levels ``(1, h, w, c)`` of layers 2, 3, ... before any input: their folded biases alone."""
        if self._resting is None:
            self._resting = [synapses.levels(tf.zeros([1, *shape])).numpy()
                             for synapses, shape in zip(self.synapses[1:], self._shapes[1:])]
        return self._resting

    def simulate(self, x: np.ndarray, time_steps: int, stop: Callable[[], bool] = lambda: False) -> SimulationResult:
        """Simulate ``time_steps`` steps for inputs ``x`` (already multiplied by ``2^k``).

        ``stop()`` is asked between chunks of steps; if it says so, :class:`common.signals.Stopped` is raised."""
        batch = len(x)
        result = SimulationResult.empty(self._shapes[1:], self.spiking_net.network.classes, batch, time_steps)
        chunk = self.chunk_steps(batch, time_steps)
        first_levels = self.exact_ann.first_levels(np.asarray(x, np.float32))
        active = np.arange(batch)
        # the neuron states stay tensors between chunks: only the records come back to NumPy
        counts = [tf.zeros((batch, *shape)) for shape in self._shapes[1:]]
        levels = [tf.repeat(level, batch, axis=0) for level in self._resting_levels()]
        t0 = 0
        while t0 < time_steps and len(active):
            if stop():
                raise Stopped
            n = min(chunk, time_steps - t0)
            counts, levels, spikes, nets, covered, output = self._chunk(n)(first_levels, counts, levels)
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
            settled = active[quiet >= 0]
            result.settle[settled] = t0 + quiet[quiet >= 0]
            result.predictions[t0 + n:, settled] = result.predictions[t0 + n - 1, settled]
            if done.any():
                finished, first_levels, counts, levels = self._split(done, first_levels, counts, levels)
                for i, c in enumerate(finished):
                    result.counts[i][active[done]] = c.numpy()
                result.output[active[done]] = output[-1][done]
                active = active[~done]
            t0 += n
            self._adapt()
        if not self.early_exit:
            quiet = first_quiet_step(result.spikes)
            result.settle = np.where(quiet >= 0, quiet, -1)
        return result


def changed_levels(synapses: ExactSynapses, cumulative_input: tf.Tensor, changed: tf.Tensor, last: tf.Tensor,
                   in_shape: tuple[int, int, int], out_shape: tuple[int, int, int]) -> tf.Tensor:
    """A layer's levels ``(n, B, *out_shape)`` after each of ``n`` steps, evaluated only where its input changed.

    ``cumulative_input`` ``(n, B, *in_shape)`` holds the layer below's counts after each step,
    ``changed`` ``(n, B)`` where they moved, ``last`` the levels before the first step. A level is a
    function of the input counts, so where they did not move it is the level of the step before.
    """
    n = len(changed)
    flat = tf.reshape(cumulative_input, [-1, *in_shape])
    where = tf.where(tf.reshape(changed, [-1]))  # rows of the (n * B) flattened inputs to evaluate

    def evaluate_changed() -> tf.Tensor:
        computed = synapses.levels(tf.gather_nd(flat, where))
        scattered = tf.scatter_nd(where, computed, tf.concat([tf.shape(flat, tf.int64)[:1], out_shape], 0))
        scattered = tf.reshape(scattered, [n, -1, *out_shape])
        levels, level = [], last
        for t in range(n):
            level = tf.where(changed[t][:, None, None, None], scattered[t], level)
            levels.append(level)
        return tf.stack(levels)

    def evaluate_all() -> tf.Tensor:  # every input moved: no gather and scatter
        return tf.reshape(synapses.levels(flat), [n, -1, *out_shape])

    def keep_all() -> tf.Tensor:  # nothing moved (and no convolution of an empty batch: oneDNN's has a wrong shape)
        return tf.stack([last] * n)

    moved = tf.size(where)
    return tf.case([(tf.equal(moved, tf.size(changed)), evaluate_all), (moved > 0, evaluate_changed)],
                   default=keep_all)
