"""The quantizer: values on the grid 1/2^k and the straight-through gradient."""

import numpy as np
import pytest
import tensorflow as tf

from common.layers import QuantizedReLU, quantize, quantize_level


@pytest.mark.parametrize("k, x, expected", [
    (0, [-1.0, 0.0, 0.49, 0.5, 1.2, 2.5, 7.6], [0, 0, 0, 1, 1, 3, 8]),
    (1, [-0.3, 0.2, 0.25, 0.3, 0.74, 0.75, 1.1], [0, 0, 0.5, 0.5, 0.5, 1.0, 1.0]),
    (2, [0.1, 0.125, 0.2, 0.9, 3.3], [0, 0.25, 0.25, 1.0, 3.25]),
])
def test_quantize_values(k, x, expected):
    # round(2^k relu(x) + 1e-5) / 2^k: exact halves round up because of the 1e-5, no upper clip
    np.testing.assert_array_equal(quantize(tf.constant(x), k).numpy(), np.float32(expected))


def test_quantize_level_is_the_ann_grid_times_2k():
    x = tf.random.stateless_normal([1000], [1, 2]) * 3
    for k in range(4):
        np.testing.assert_array_equal(quantize_level(x * 2 ** k).numpy(), (quantize(x, k) * 2 ** k).numpy())


def test_straight_through_gradient():
    x = tf.constant([-1.0, -0.1, 0.1, 0.3, 0.6, 2.2])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(quantize(x, 1) * tf.constant([1.0, 2, 3, 4, 5, 6]))
    # ReLU's gradient (0 below zero), rounding passed through unchanged
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [0, 0, 3, 4, 5, 6])


def test_quantized_relu_layer():
    layer = QuantizedReLU(2)
    np.testing.assert_array_equal(layer.forward(tf.constant([[0.3, -2.0, 1.13]])).numpy(), [[0.25, 0.0, 1.25]])
