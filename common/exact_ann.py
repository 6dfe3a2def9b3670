"""The exact quantized ANN, computed from a converted network on any CPU and any batch shape.

A hidden neuron's level (the ANN's activation times ``2^k``) is a monotone function of its
synaptic integral ``z = sum_i w_i x_i`` (:func:`common.layers.neuron_level`). :class:`ExactSynapses`
computes ``z`` with a fast float32 convolution, whose rounding differs between CPUs and batch
shapes, and bounds that rounding rigorously (:func:`common.exact.dot_error_factor`). Where the
level is the same at both ends of the bound it is the level of the exact ``z``; the few neurons
near a rounding boundary are recomputed in float64 with a tighter bound and, if still undecided,
exactly (:mod:`common.exact`). :class:`ExactReadout` does the same for the output layer.

:class:`ExactANN` is the ANN every accuracy in the logs is measured on (training's test
accuracy, the spiking runs' reference); the fast simulator (:mod:`common.snn`) computes its
neurons' levels with the same synapses, so settled counts equal the ANN's activations by
construction, not because two kernels happened to round alike.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from common import exact
from common.layers import ROUNDING_OFFSET, flush_subnormal, neuron_level
from common.spiking_network import SpikingLayer, SpikingNetwork

FLOAT32_UNDERFLOW = 2.0 ** -125  # what flushing a subnormal float32 partial sum can lose, per term
SLICE_ELEMENTS = 2 ** 21  # products per slice when undecided neurons are recomputed in float64
UNDECIDED_LIMIT = 0.01  # a float32 layer leaving more of its neurons undecided moves to float64
ADAPT_AFTER = 100_000  # neuron evaluations before that share is judged
GROUP_TERMS = 256  # products per group of a long receptive field (see term_groups)
MIN_GROUP_CHANNELS = 16  # narrower channel groups make the convolutions slow


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
        self.bias_offset = tf.constant(bias + np.float32(ROUNDING_OFFSET))
        self.undecided = tf.Variable(0, dtype=tf.int64, trainable=False)  # neurons sent to _decide
        self.evaluated = tf.Variable(0, dtype=tf.int64, trainable=False)
        # a layer whose one receptive field is its whole input is a matrix product
        self.dense = in_shape[:2] == (conv.kernel, conv.kernel) and conv.pads(in_shape[0]) == (0, 0)
        self.groups = term_groups(in_shape[2], conv.kernel, self.dense)
        self.field_ones = tf.ones([conv.kernel, conv.kernel, in_shape[2], 1])  # sums over a receptive field
        self.use(precision)

    def use(self, precision: tf.DType) -> None:
        """Convolve in ``precision``: float32 is fast, float64 leaves fewer neurons undecided.

        Either gives the same levels. How far, in thresholds, the float32 potential may lie from the
        potential of the exact integral: each channel group's convolution errs by at most
        gamma_m * sum |w_i x_i| over its m terms, and adding the G partial sums by gamma_G times the
        same sum, so in all by (gamma_m + gamma_G) * ||w||_2 * ||x||_2 (Cauchy-Schwarz, ||x||_2 over the
        receptive field), plus what flushing subnormals loses; the float32 BatchNorm arithmetic adds a
        few roundings of 2^-24 relative to |scale * z| <= |scale| ||w||_2 ||x||_2 and to |bias|.
        """
        self.precision = precision
        # the threshold folded into the filters (one more rounding per product, inside the bound below)
        scaled = self.kernel_np.astype(np.float64) * self.layer.scale.astype(np.float64)
        scaled = scaled.astype(precision.as_numpy_dtype)
        if self.dense:
            matrix = scaled.reshape(self.fan_in, -1)  # rows in the (row, column, channel) order of a flattened input
            self.kernels = [tf.constant(matrix[a:b]) for a, b in self.groups]
            group_terms = max(b - a for a, b in self.groups)
        else:
            self.kernels = [tf.constant(scaled[:, :, a:b]) for a, b in self.groups]
            group_terms = max(self.conv.fan_in(b - a) for a, b in self.groups)
        abs_scale = np.abs(self.layer.scale.astype(np.float64))
        roundoff = 2.0 ** -24 if precision == tf.float32 else 2.0 ** -53
        dot_error = exact.dot_error_factor(group_terms, roundoff)
        if len(self.groups) > 1:
            dot_error += exact.dot_error_factor(len(self.groups), roundoff)
        l2 = np.sqrt(np.square(self.kernel_np.astype(np.float64)).sum(axis=(0, 1, 2)))
        slack = 1 + 4 * exact.dot_error_factor(self.fan_in, 2.0 ** -24) + 2.0 ** -16  # rounding of the bound itself
        slope = abs_scale * l2 * (dot_error + roundoff + 2.0 ** -20) * slack
        floor = (abs_scale * self.fan_in * FLOAT32_UNDERFLOW * 2 + 2.0 ** -20 * (np.abs(self.layer.bias) + 1)
                 + 2.0 ** -100)
        self.margin_slope = tf.constant(slope.astype(np.float32))
        self.decided_below = tf.constant((0.5 - floor).astype(np.float32))  # |w - level| below this minus the slope

    def _integral(self, x: tf.Tensor) -> tf.Tensor:
        """The synaptic integral in ``self.precision``: one convolution per channel group, then their sum."""
        x = tf.cast(x, self.precision)
        if self.dense:
            flat = tf.reshape(x, [-1, self.fan_in])
            z = tf.add_n([tf.matmul(flat[:, a:b], kernel) for (a, b), kernel in zip(self.groups, self.kernels)])
            return tf.reshape(z, [-1, 1, 1, z.shape[-1]])
        stride, padding = self.conv.stride, self.conv.padding
        if len(self.groups) == 1:
            return tf.nn.conv2d(x, self.kernels[0], stride, padding)
        return tf.add_n([tf.nn.conv2d(x[..., a:b], kernel, stride, padding)
                         for (a, b), kernel in zip(self.groups, self.kernels)])

    def levels(self, x: tf.Tensor) -> tf.Tensor:
        """Levels ``(N, h, w, c_out)`` of the neurons whose input counts are ``x`` ``(N, h', w', c_in)``.

        The float32 level is kept where no level boundary lies within the rounding bound of the
        convolution (carried through the BatchNorm arithmetic); the rest are decided again.
        """
        z = self._integral(x)
        w = tf.maximum(tf.cast(z, tf.float32) + self.bias_offset, ROUNDING_OFFSET)  # relu(z + bias) + 1e-5
        level = tf.round(w)
        # ||x||_2 of each receptive field; a sum of squares errs by at most gamma_n of itself, inside the slack
        if self.dense:
            norm = tf.sqrt(tf.reduce_sum(tf.square(x), axis=[1, 2, 3], keepdims=True))
        else:
            norm = tf.sqrt(tf.nn.conv2d(tf.square(x), self.field_ones, self.conv.stride, self.conv.padding))
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


def term_groups(channels: int, kernel: int, dense: bool) -> list[tuple[int, int]]:
    """Slices ``(start, stop)`` of a receptive field whose partial integrals a layer adds up.

    A float32 sum of m products errs by up to m roundings, so splitting a long receptive field
    into G groups shrinks the error bound, and with it the share of neurons the slow path must
    decide, about G-fold, for a few percent more time. A matrix product (``dense``) splits its
    flattened input anywhere; a convolution splits its input channels, into groups of at least
    :data:`MIN_GROUP_CHANNELS`.
    """
    terms = channels * kernel * kernel
    most = terms if dense else max(channels // MIN_GROUP_CHANNELS, 1)
    groups = int(np.clip(round(terms / GROUP_TERMS), 1, most))
    bounds = np.linspace(0, terms if dense else channels, groups + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


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


class ExactANN:
    """The quantized ANN of a converted network, computed exactly.

    ``ann(x)`` takes inputs ``x`` already multiplied by ``2^k`` and returns every hidden layer's
    levels (``2^k`` times its activations) and the output (``2^k`` times the logits): the same
    numbers on any CPU, for any batch shape. Example::

        ann = ExactANN(convert.convert(network, k, weights))
        predictions = ann(images * 2 ** k)[-1].argmax(axis=1)
    """

    def __init__(self, spiking_net: SpikingNetwork):
        self.spiking_net = spiking_net
        shapes = spiking_net.network.shapes()
        # float32 everywhere, the long receptive fields split into groups (see term_groups); a layer
        # moves to float64 if it still leaves too many neurons undecided (see adapt): either gives the same levels
        self.synapses = [ExactSynapses(layer, shape) for layer, shape in zip(spiking_net.layers, shapes)]
        self.readout = ExactReadout(spiking_net.output_weights)
        self._input_signature = [tf.TensorSpec([None, *shapes[0]], tf.float32)]
        self._compile()

    def _compile(self) -> None:
        """(Re)build the compiled functions, for the synapses' current precisions."""
        self.first_levels = tf.function(self.synapses[0].levels, input_signature=self._input_signature)
        self._levels = tf.function(self._all_levels, input_signature=self._input_signature)

    def _all_levels(self, x: tf.Tensor) -> list[tf.Tensor]:
        levels = []
        for synapses in self.synapses:
            x = synapses.levels(x)
            levels.append(x)
        return levels + [self.readout.potentials(tf.reshape(x, [tf.shape(x)[0], -1]))]

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        """Every hidden layer's levels and the output, for inputs ``x`` (the image times ``2^k``)."""
        return [t.numpy() for t in self._levels(np.asarray(x, np.float32))]

    def adapt(self) -> bool:
        """Move a float32 layer to float64 once it leaves too many neurons to the slow path; returns
        whether one moved (compiled functions that use the synapses must then be rebuilt)."""
        moved = False
        for synapses in self.synapses:
            evaluated = int(synapses.evaluated.numpy())
            if (synapses.precision == tf.float32 and evaluated >= ADAPT_AFTER
                    and int(synapses.undecided.numpy()) > UNDECIDED_LIMIT * evaluated):
                synapses.use(tf.float64)
                moved = True
        if moved:
            self._compile()
        return moved
