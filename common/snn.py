"""The negative-spike integrate-and-fire neuron and the fast spiking simulator.

Schedule (the original's): the input image times ``2^k`` is injected into the first
layer at t = 0; at every step each layer integrates the spikes its predecessor emitted in
that same step; the output layer only integrates, and its argmax is the prediction.

Exact by construction, on any CPU and for any batch shape. A neuron's membrane potential
is the integral of its synaptic input, ``z = sum_i w_i c_i`` over the cumulative input
counts ``c``; its level (the thresholds it has crossed) is a monotone function of ``z``
(:func:`neuron_level`). The simulator computes ``z`` with a fast float32 convolution, whose
rounding differs between CPUs and batch shapes, and bounds that rounding rigorously
(:func:`common.exact.dot_error_factor`). Where the level is the same at both ends of the
bound it is the level of the exact ``z``; the few neurons near a rounding boundary are
recomputed in float64 with a tighter bound and, if still undecided, exactly
(:mod:`common.exact`). The ANN the run compares against (:meth:`FastSimulator.ann`) is the
same computation on the ANN's own activations, so settled counts equal its activations by
construction, not because two kernels happened to round alike.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from common import compat  # noqa: F401 - quiets TensorFlow's start-up: imported before it
import tensorflow as tf

from common import exact
from common.convert import SpikingLayer, SpikingNetwork
from common.layers import ROUNDING_OFFSET, flush_subnormal, neuron_level
from common.results import SimulationResult, first_quiet_step

DEFAULT_MEMORY_BUDGET = 512 * 2 ** 20  # bytes of activations per chunk of time steps
MAX_CHUNK_STEPS = 4  # steps per compiled chunk: settled samples leave the batch between chunks
FLOAT32_UNDERFLOW = 2.0 ** -125  # what flushing a subnormal float32 partial sum can lose, per term
SLICE_ELEMENTS = 2 ** 21  # products per slice when undecided neurons are recomputed in float64
UNDECIDED_LIMIT = 0.01  # a float32 layer leaving more of its neurons undecided moves to float64
ADAPT_AFTER = 100_000  # neuron evaluations before that share is judged


class Stopped(Exception):  # noqa: N818 - control flow, not an error
    """A simulation was asked to stop (a signal arrived)."""


class NegativeSpikeIF:
    """Integrate-and-fire neuron that also fires negative spikes (this package's lossless rule).

    ``level`` is the number of thresholds the neuron's potential has crossed,
    ``round(relu(v) + 1e-5)`` (the original places its resting bound half a threshold below
    zero, which turns crossing into rounding); ``count`` is the net number of spikes it has
    sent. It fires +1 while it has signalled fewer crossings than it has made and -1 while it
    has signalled more, at most one spike per step, so once its input stops changing its net
    count equals its level: the ANN's activation times ``2^k``.
    """

    name = "lossless"

    @staticmethod
    def step(level: tf.Tensor, count: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """One time step: returns ``(spike, new_count)`` with spikes in {-1, 0, +1}."""
        spike = tf.clip_by_value(level - count, -1.0, 1.0)
        return spike, count + spike


class ExactSynapses:
    """One hidden layer's synapses and folded BatchNorm: exact neuron levels from input counts."""

    def __init__(self, layer: SpikingLayer, in_shape: tuple[int, int, int], precision: tf.DType = tf.float32):
        conv, kernel = layer.conv, np.asarray(layer.kernel, np.float32)
        self.layer = layer
        self.conv = conv
        self.pads = [[0, 0], list(conv.pads(in_shape[0])), list(conv.pads(in_shape[1])), [0, 0]]
        self.kernel_np = kernel
        self.kernel_by_filter = tf.constant(np.moveaxis(kernel, 3, 0).astype(np.float64))  # (c_out, kh, kw, c_in)
        self.fan_in = conv.fan_in(in_shape[2])
        self.factor64 = exact.dot_error_factor(self.fan_in, 2.0 ** -53)
        scale, bias = np.asarray(layer.scale, np.float32), np.asarray(layer.bias, np.float32)
        self.scale, self.bias = tf.constant(scale), tf.constant(bias)
        self.undecided = tf.Variable(0, dtype=tf.int64, trainable=False)  # neurons sent to _decide
        self.evaluated = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.use(precision)

    def use(self, precision: tf.DType) -> None:
        """Convolve in ``precision``: float32 is fast, float64 leaves fewer neurons undecided.

        Either gives the same levels. How far, in thresholds, the float32 potential may lie from the
        potential of the exact integral: the convolution's error is at most gamma_n * sum |w_i x_i| <=
        gamma_n * ||w||_2 * ||x||_2 (Cauchy-Schwarz, ||x||_2 over the receptive field), plus what flushing
        subnormals loses; the float32 BatchNorm arithmetic adds a few roundings of 2^-24 relative to
        |scale * z| <= |scale| ||w||_2 ||x||_2 and to |bias|.
        """
        self.precision = precision
        self.kernel = tf.constant(self.kernel_np.astype(precision.as_numpy_dtype))
        n = self.fan_in
        l2 = np.sqrt(np.square(self.kernel_np.astype(np.float64)).sum(axis=(0, 1, 2)))
        abs_scale = np.abs(self.layer.scale.astype(np.float64))
        roundoff = 2.0 ** -24 if precision == tf.float32 else 2.0 ** -53
        slack = 1 + 4 * exact.dot_error_factor(n, 2.0 ** -24) + 2.0 ** -16  # rounding of the bound itself
        slope = abs_scale * l2 * (exact.dot_error_factor(n, roundoff) + 2.0 ** -20) * slack
        floor = abs_scale * n * FLOAT32_UNDERFLOW * 2 + 2.0 ** -20 * (np.abs(self.layer.bias) + 1) + 2.0 ** -100
        self.margin_slope = tf.constant(slope.astype(np.float32))
        self.decided_below = tf.constant((0.5 - floor).astype(np.float32))  # |w - level| below this minus the slope

    def levels(self, x: tf.Tensor) -> tf.Tensor:
        """Levels ``(N, h, w, c_out)`` of the neurons whose input counts are ``x`` ``(N, h', w', c_in)``.

        The float32 level is kept where no level boundary lies within the rounding bound of the
        convolution (carried through the BatchNorm arithmetic); the rest are decided again.
        """
        k, s = self.conv.kernel, self.conv.stride
        z = tf.nn.conv2d(tf.cast(x, self.precision), self.kernel, s, self.conv.padding)
        w = tf.nn.relu(tf.cast(z, tf.float32) * self.scale + self.bias) + ROUNDING_OFFSET
        level = tf.round(w)
        norm = tf.sqrt(tf.nn.avg_pool2d(tf.reduce_sum(tf.square(x), axis=3, keepdims=True), k, s,
                                        self.conv.padding) * float(k * k))  # ||x||_2 of each receptive field
        # |w - level| is exact; its distance to 0.5 is the distance to the nearest level boundary
        undecided = tf.abs(w - level) >= self.decided_below - norm * self.margin_slope
        self.evaluated.assign_add(tf.size(undecided, tf.int64))
        return tf.cond(tf.reduce_any(undecided), lambda: self._decide(x, level, undecided), lambda: level)

    def _decide(self, x: tf.Tensor, low: tf.Tensor, undecided: tf.Tensor) -> tf.Tensor:
        """Levels of the undecided neurons from float64 dot products, exact sums if need be."""
        index = tf.where(undecided)  # (F, 4): sample, row, column, filter
        self.undecided.assign_add(tf.shape(index, tf.int64)[0])
        z, bound = self._integrals64(tf.pad(x, self.pads), index)
        scale, bias = tf.gather(self.scale, index[:, 3]), tf.gather(self.bias, index[:, 3])
        low64 = neuron_level(z - bound, scale, bias)
        high64 = neuron_level(z + bound, scale, bias)
        still = tf.not_equal(low64, high64)

        def exactly() -> tf.Tensor:
            z_exact = tf.numpy_function(
                lambda xs, idx: exact.exact_integrals(xs, self.kernel_np, self.conv, idx),
                [x, tf.boolean_mask(index, still)], tf.float64, stateful=False)
            fixed = neuron_level(z_exact, tf.boolean_mask(scale, still), tf.boolean_mask(bias, still))
            return tf.tensor_scatter_nd_update(low64, tf.where(still), fixed)

        decided = tf.cond(tf.reduce_any(still), exactly, lambda: low64)
        return tf.tensor_scatter_nd_update(low, index, decided)

    def _integrals64(self, padded: tf.Tensor, index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Float64 integrals of the neurons ``index`` and their error bounds, a slice at a time."""
        per_slice = max(1, SLICE_ELEMENTS // self.fan_in)
        slices = (tf.shape(index, tf.int64)[0] + per_slice - 1) // per_slice

        def body(i, integrals, bounds):
            z, bound = self._dot64(padded, index[i * per_slice:(i + 1) * per_slice])
            return i + 1, integrals.write(tf.cast(i, tf.int32), z), bounds.write(tf.cast(i, tf.int32), bound)

        def sliced() -> tuple[tf.Tensor, tf.Tensor]:
            arrays = [tf.TensorArray(tf.float64, size=tf.cast(slices, tf.int32), infer_shape=False) for _ in range(2)]
            _, integrals, bounds = tf.while_loop(lambda i, *_: i < slices, body, [tf.constant(0, tf.int64), *arrays])
            return tf.reshape(integrals.concat(), [-1]), tf.reshape(bounds.concat(), [-1])

        return tf.cond(slices <= 1, lambda: self._dot64(padded, index), sliced)

    def _dot64(self, padded: tf.Tensor, index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Float64 dot products of the neurons ``index`` with their receptive fields, and error bounds."""
        k, s = self.conv.kernel, self.conv.stride
        f = tf.shape(index)[0]
        rows = index[:, 1:2] * s + tf.range(k, dtype=tf.int64)  # (f, k)
        cols = index[:, 2:3] * s + tf.range(k, dtype=tf.int64)
        where = tf.stack([tf.broadcast_to(index[:, 0, None, None], [f, k, k]),
                          tf.broadcast_to(rows[:, :, None], [f, k, k]),
                          tf.broadcast_to(cols[:, None, :], [f, k, k])], axis=-1)
        products = tf.cast(tf.gather_nd(padded, where), tf.float64) * tf.gather(self.kernel_by_filter, index[:, 3])
        bound = self.factor64 * tf.reduce_sum(tf.abs(products), axis=[1, 2, 3]) + 2.0 ** -1000
        return tf.reduce_sum(products, axis=[1, 2, 3]), bound


class ExactReadout:
    """The output layer: ``fl32(sum_i w_i c_i)``, the exact sum rounded once to float64, then to float32."""

    def __init__(self, weights: np.ndarray):
        self.weights_np = np.asarray(weights, np.float32)
        self.weights = tf.constant(self.weights_np.astype(np.float64))
        n = self.weights_np.shape[0]
        l1 = np.abs(self.weights_np.astype(np.float64)).sum(axis=0) * (1 + 1e-9)
        self.bound = tf.constant(exact.dot_error_factor(n, 2.0 ** -53) * l1)

    def potentials(self, flat: tf.Tensor) -> tf.Tensor:
        """Output potentials ``(N, classes)`` for flattened input counts ``(N, features)``."""
        z = tf.matmul(tf.cast(flat, tf.float64), self.weights)
        bound = self.bound * tf.cast(tf.reduce_max(tf.abs(flat), axis=1), tf.float64)[:, None] + 2.0 ** -1000
        low, high = float32_of(z - bound), float32_of(z + bound)
        undecided = tf.not_equal(low, high)

        def exactly() -> tf.Tensor:
            index = tf.where(undecided)
            z_exact = tf.numpy_function(lambda xs, idx: exact.exact_products(xs, self.weights_np, idx),
                                        [flat, index], tf.float64, stateful=False)
            return tf.tensor_scatter_nd_update(low, index, float32_of(z_exact))

        return tf.cond(tf.reduce_any(undecided), exactly, lambda: low)


def float32_of(z: tf.Tensor) -> tf.Tensor:
    """``z`` rounded to float32, subnormals flushed to zero (as TensorFlow's CPU kernels do)."""
    return flush_subnormal(tf.cast(z, tf.float32))


class FastSimulator:
    """Vectorized, compiled simulation of a :class:`SpikingNetwork` over a batch."""

    def __init__(self, sn: SpikingNetwork, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                 early_exit: bool = True, max_chunk_steps: int = MAX_CHUNK_STEPS):
        self.sn = sn
        self.early_exit = early_exit
        self.memory_budget = memory_budget
        self.max_chunk_steps = max_chunk_steps
        self._shapes = sn.network.shapes()
        # float64 where a layer is a matrix product (1x1 output: cheap in float64, and nearly every neuron is
        # then decided at once), float32 for spatial convolutions until too many neurons are left undecided
        # (see _adapt); either gives the same, exact levels
        self.synapses = [ExactSynapses(layer, shape, tf.float64 if out[:2] == (1, 1) else tf.float32)
                         for layer, shape, out in zip(sn.layers, self._shapes, self._shapes[1:])]
        self.readout = ExactReadout(sn.output_weights)
        synop_weights = sn.synop_weights()
        self._covers = [tf.constant(cover[None, :, :, None], tf.float32) for cover, _ in synop_weights]
        self._fanouts = np.array([fanout for _, fanout in synop_weights], np.int64)
        self._input_signature = [tf.TensorSpec([None, *self._shapes[0]], tf.float32)]
        self._compile()

    def _compile(self) -> None:
        """(Re)build the compiled functions, for the synapses' current precisions."""
        self._chunks: dict[int, tf.types.experimental.GenericFunction] = {}
        self._first_levels = tf.function(self.synapses[0].levels, input_signature=self._input_signature)
        self._ann = tf.function(self._ann_levels, input_signature=self._input_signature)

    def _ann_levels(self, x: tf.Tensor) -> list[tf.Tensor]:
        levels = []
        for synapses in self.synapses:
            x = synapses.levels(x)
            levels.append(x)
        return levels + [self.readout.potentials(tf.reshape(x, [tf.shape(x)[0], -1]))]

    def ann(self, x: np.ndarray) -> list[np.ndarray]:
        """The exact quantized ANN on inputs ``x`` (the image times ``2^k``): every hidden layer's
        level (``2^k`` times its activation) and the output (``2^k`` times the logits)."""
        return [t.numpy() for t in self._ann(np.asarray(x, np.float32))]

    def _adapt(self) -> None:
        """Move a float32 layer to float64 once it leaves too many neurons to the slow path."""
        for synapses in self.synapses:
            evaluated = int(synapses.evaluated.numpy())
            if (synapses.precision == tf.float32 and evaluated >= ADAPT_AFTER
                    and int(synapses.undecided.numpy()) > UNDECIDED_LIMIT * evaluated):
                synapses.use(tf.float64)
                self._compile()

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
                    spike, count = NegativeSpikeIF.step(levels[t], count)
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
        first_levels = self._first_levels(np.asarray(x, np.float32)).numpy()
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
