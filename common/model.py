"""Build the ANN of a :class:`~common.networks.Network` with TensorLayer layers."""

from __future__ import annotations

import tensorflow as tf

from common import compat
from common.layers import QuantizedReLU
from common.networks import OUTPUT_NAME, Network, layer_names
from common.precision import Conv2d, Dense
import tensorlayer as tl


def build_ann(network: Network, k: int | None, precision: str = "float32") -> tl.models.Model:
    """The ANN of ``network``; ``k=None`` gives the full-precision (FP32) baseline.

    The model returns ``[a_1, ..., a_L, logits]``: every hidden activation (on the grid
    ``1/2^k`` when quantized) and the output layer's logits, so that the spiking side can
    compare each neuron with its ANN counterpart. ``precision="bfloat16"`` computes the convolutions
    and the output layer's product in bfloat16 (:mod:`common.precision`); the variables stay float32.
    """
    h, w, c = network.input_shape
    inputs = tl.layers.Input([None, h, w, c], name="input")
    x, in_channels = inputs, c
    activations = []
    for i, layer in enumerate(network.hidden, start=1):
        conv_name, bn_name = layer_names(i)
        x = Conv2d(
            layer.filters, (layer.kernel, layer.kernel), (layer.stride, layer.stride),
            padding=layer.padding, b_init=None, in_channels=in_channels, name=conv_name,
            precision=precision)(x)
        x = compat.BatchNorm(num_features=layer.filters, epsilon=compat.BN_EPSILON,
                             moving_var_init=tl.initializers.ones(), name=bn_name)(x)
        if k is None:
            x = tl.layers.Lambda(tf.nn.relu, name=f"relu{i}")(x)
        else:
            x = QuantizedReLU(k, name=f"quant{i}")(x)
        activations.append(x)
        in_channels = layer.filters
    flat = tl.layers.Flatten(name="flatten")(x)
    logits = Dense(network.classes, b_init=None, in_channels=network.flat_features, name=OUTPUT_NAME,
                   precision=precision)(flat)
    # TensorLayer wants model names unique within a process; its own numbering provides that.
    return tl.models.Model(inputs=inputs, outputs=activations + [logits])
