"""BatchNorm folding and synaptic-operation accounting."""

import math

import numpy as np
import tensorflow as tf

from common import compat
from common.convert import fold_batchnorm, synapse_cover
from common.exact import inverse_sqrt
from common.layers import quantize
from common.networks import Conv


def test_fold_batchnorm_reproduces_bn_quantizer_for_any_gamma_sign():
    rng = np.random.default_rng(0)
    gamma = np.array([1.3, -0.7, 0.0, 2.0, -1.5], np.float32)
    beta = rng.normal(0.3, 0.5, 5).astype(np.float32)
    mean = rng.normal(0, 1, 5).astype(np.float32)
    var = rng.uniform(0.2, 2, 5).astype(np.float32)
    z = rng.normal(0, 3, (1000, 5)).astype(np.float32)
    for k in (0, 1, 3):
        scale, bias = fold_batchnorm(gamma, beta, mean, var, k)
        bn_scale, bn_shift = compat.batchnorm_scale_shift(gamma, beta, mean, var)
        bn = z * bn_scale + bn_shift  # the ANN's BatchNorm in inference
        ann_level = quantize(bn, k).numpy() * 2 ** k
        snn_level = np.round(np.maximum((z * 2 ** k) * scale + bias, 0) + np.float32(1e-5))
        np.testing.assert_array_equal(snn_level, ann_level)
    assert scale[1] < 0 and scale[2] == 0  # negative gamma: inhibitory scale; zero gamma: constant potential


def test_the_inverse_square_root_is_the_same_on_every_cpu():
    """Float64 square root and quotient are correctly rounded by IEEE 754, so the fold's inverse square root
    equals Python's scalar one (a different code path from NumPy's SIMD loops), in NumPy and in TensorFlow."""
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(1e-5, 3, 20_000), 10.0 ** rng.uniform(-5, 4, 20_000)]).astype(np.float32)
    scalar = np.array([np.float32(1.0 / math.sqrt(float(v))) for v in x])
    np.testing.assert_array_equal(inverse_sqrt(x), scalar)
    scale, _ = compat.batchnorm_scale_shift(np.ones_like(x), np.zeros_like(x), np.zeros_like(x), x, epsilon=0.0)
    np.testing.assert_array_equal(scale.numpy(), scalar)


def test_synapse_cover_counts_receptive_fields():
    np.testing.assert_array_equal(synapse_cover(Conv(1, 3, padding="SAME"), 4), [2, 3, 3, 2])
    np.testing.assert_array_equal(synapse_cover(Conv(1, 2, stride=2, padding="VALID"), 4), [1, 1, 1, 1])
    np.testing.assert_array_equal(synapse_cover(Conv(1, 5, padding="VALID"), 6), [1, 2, 2, 2, 2, 1])
    np.testing.assert_array_equal(synapse_cover(Conv(1, 3, padding="VALID"), 3), [1, 1, 1])


def test_synops_equal_the_originals_im2col_count():
    """The original counted sum(|im2col(spikes)|) * filters; cover maps give the same number."""
    rng = np.random.default_rng(3)
    for conv, size in [(Conv(7, 3, padding="SAME"), 6), (Conv(5, 5, padding="VALID"), 12), (Conv(4, 2, 2, "VALID"), 8)]:
        spikes = rng.integers(-1, 2, (1, size, size, 3)).astype(np.float32)
        ones = tf.ones([conv.kernel, conv.kernel, 3, 1])
        im2col = tf.nn.conv2d(np.abs(spikes), ones, conv.stride, conv.padding).numpy().sum() * conv.filters
        cover = np.outer(synapse_cover(conv, size), synapse_cover(conv, size))
        assert (np.abs(spikes) * cover[None, :, :, None]).sum() * conv.filters == im2col
