"""The ten ANNs (five networks, quantized and FP32) and the TensorLayer compatibility layer."""

import numpy as np
import pytest
import tensorflow as tf

from common import checkpoint, compat
from common.model import build_ann
from common.networks import NETWORKS


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("k", [1, None])
def test_networks_build_with_the_right_shapes(name, k):
    network = NETWORKS[name]
    model = build_ann(network, k)
    outputs = model(tf.zeros([2, *network.input_shape]), is_train=False)
    assert [tuple(o.shape[1:]) for o in outputs[:-1]] == network.shapes()[1:]
    assert tuple(outputs[-1].shape) == (2, network.classes)
    weights = checkpoint.model_weights(model)
    assert {n: w.shape for n, w in weights.items()} == checkpoint.expected_shapes(network)
    assert len(model.trainable_weights) == 3 * len(network.hidden) + 1  # filters, beta, gamma; output


def test_parameter_counts_match_the_paper_architectures():
    counts = {n: sum(int(np.prod(s)) for k, s in checkpoint.expected_shapes(net).items()
                     if k.endswith("filters") or k.endswith("weights")) for n, net in NETWORKS.items()}
    # MNIST LeNet: 5*5*20 + 2*2*20*20 + 5*5*20*50 + 2*2*50*50 + 4*4*50*500 + 500*10
    assert counts["mnist_lenet"] == 500 + 1600 + 25000 + 10000 + 400000 + 5000
    assert counts["fashion_mlp"] == 784 * 400 + 400 * 400 + 400 * 10


def test_quantized_activations_are_on_the_grid_and_fp32_are_not():
    network = NETWORKS["fashion_mlp"]
    x = tf.random.stateless_uniform([8, 28, 28, 1], [3, 4])
    for k in (0, 2):
        acts = build_ann(network, k)(x, is_train=False)[:-1]
        for a in acts:
            np.testing.assert_array_equal(a.numpy() * 2 ** k, np.round(a.numpy() * 2 ** k))
    fp32 = build_ann(network, None)(x, is_train=False)[0].numpy()
    assert np.any(fp32 * 8 != np.round(fp32 * 8))


def test_batchnorm_trains_inside_tf_function_and_updates_running_statistics():
    bn = compat.BatchNorm(num_features=3, decay=0.5, moving_var_init=tf.ones)
    bn.is_train = True
    x = tf.constant(np.random.default_rng(0).normal(2.0, 3.0, (64, 3)), tf.float32)

    @tf.function
    def step(v):
        return bn.forward(v)

    y = step(x).numpy()
    np.testing.assert_allclose(y.mean(0), bn.beta.numpy(), atol=1e-5)  # normalized by batch statistics
    mean, var = tf.nn.moments(x, [0])
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.5 * mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(bn.moving_var.numpy(), 0.5 + 0.5 * var.numpy(), rtol=1e-6)


def test_batchnorm_inference_is_tensorlayers_formula():
    bn = compat.BatchNorm(num_features=4)
    bn.is_train = False
    rng = np.random.default_rng(1)
    for w in (bn.gamma, bn.beta, bn.moving_mean):
        w.assign(rng.normal(size=4).astype(np.float32))
    bn.moving_var.assign(rng.uniform(0.5, 2, 4).astype(np.float32))
    x = tf.constant(rng.normal(size=(5, 4)), tf.float32)
    expected = tf.nn.batch_normalization(x, bn.moving_mean, bn.moving_var, bn.beta, bn.gamma, compat.BN_EPSILON)
    np.testing.assert_allclose(bn.forward(x).numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)
