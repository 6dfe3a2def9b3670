"""The k-level activation quantizer, shared by the ANN and the spiking neurons."""

from __future__ import annotations

import tensorflow as tf

from common import compat  # noqa: F401 - TensorLayer set-up must come first
import tensorlayer as tl

ROUNDING_OFFSET = 1e-5  # the original's "+ 1e-5" inside the rounding


def quantize_level(potential: tf.Tensor) -> tf.Tensor:
    """The integer level of a potential measured in thresholds: ``round(relu(v) + 1e-5)``.

    The ANN multiplies this by ``2^-k``; a spiking neuron's net spike count converges to it.
    One function for both is what makes the conversion exact to the last bit.
    """
    return tf.round(tf.nn.relu(potential) + ROUNDING_OFFSET)


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
