"""The k-level activation quantizer, shared by the ANN and the spiking neurons."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

import tensorlayer as tl

ROUNDING_OFFSET = 1e-5  # the original's "+ 1e-5" inside the rounding
FLOAT32_TINY = float(np.finfo(np.float32).tiny)


def quantize_level(potential: tf.Tensor) -> tf.Tensor:
    """The integer level of a potential measured in thresholds: ``round(relu(v) + 1e-5)``.

    The ANN multiplies this by ``2^-k``; a spiking neuron's net spike count converges to it.
    One function for both is what makes the conversion exact to the last bit.
    """
    return tf.round(tf.nn.relu(potential) + ROUNDING_OFFSET)


def flush_subnormal(x: tf.Tensor) -> tf.Tensor:
    """Subnormal float32 values as zero, explicitly: CPU kernels flush them, other devices may not."""
    return tf.where(tf.abs(x) < FLOAT32_TINY, tf.zeros_like(x), x)


def neuron_level(integral: tf.Tensor, scale: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """The level of a spiking neuron whose synaptic integral is ``integral`` (float64).

    The ANN's float32 arithmetic on that integral: ``round(relu(fl32(z) * scale + bias) + 1e-5)``
    with subnormals flushed. It is monotone in ``z``, which is what lets the simulators decide
    it from an interval around ``z`` (see :mod:`common.snn`).
    """
    v = flush_subnormal(tf.cast(integral, tf.float32))
    v = flush_subnormal(v * scale)
    return quantize_level(flush_subnormal(v + bias))


@tf.custom_gradient
def _round_straight_through(x: tf.Tensor) -> tuple[tf.Tensor, object]:
    # A custom gradient rather than x + stop_gradient(round(x) - x): that sum can miss round(x) by an ulp.
    return tf.round(x), lambda dy: dy


def quantize(x: tf.Tensor, k: int) -> tf.Tensor:
    """``round(2^k * relu(x) + 1e-5) / 2^k`` with a straight-through gradient for the rounding."""
    scale = float(2 ** k)
    return _round_straight_through(tf.nn.relu(x) * scale + ROUNDING_OFFSET) / scale


class QuantizedReLU(tl.layers.Layer):
    """ReLU followed by quantization to the grid ``1/2^k`` (no upper clip, as in the paper).

    The forward pass is exact rounding; the backward pass lets the gradient of ReLU through
    the rounding unchanged (straight-through estimator).
    """

    def __init__(self, k: int, name: str | None = None):
        super().__init__(name=name)
        self.k = k
        self.build(None)
        self._built = True

    def __repr__(self) -> str:
        return f"QuantizedReLU(k={self.k}, name='{self.name}')"

    def build(self, inputs_shape: object) -> None:
        pass

    def forward(self, inputs: tf.Tensor) -> tf.Tensor:
        return quantize(inputs, self.k)
