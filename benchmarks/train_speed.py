"""The quantized MNIST LeNet training step against a plain Keras model of the same layers.

    python benchmarks/train_speed.py

Both compiled with tf.function, same batch, same optimizer; prints medians after a warm-up
and ends with the line ``train_step_vs_keras=<r>``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import compat  # noqa: F401 - quiet TensorFlow first
import numpy as np
import tensorflow as tf
from absl import app, flags

from common import cli, train
from common.model import build_ann
from common.networks import FASHION_MLP, MNIST_LENET

flags.DEFINE_integer("batch_size", 200, "Batch size.", lower_bound=1)
flags.DEFINE_integer("steps", 50, "Training steps per timed repeat.", lower_bound=1)
flags.DEFINE_integer("repeats", 5, "Timed repeats (the median is reported).", lower_bound=1)
FLAGS = flags.FLAGS


def keras_lenet() -> tf.keras.Model:
    """The same layers in plain Keras: Conv2D without bias, BatchNormalization, ReLU."""
    layers = [tf.keras.Input(MNIST_LENET.input_shape)]
    for conv in MNIST_LENET.hidden:
        layers += [tf.keras.layers.Conv2D(conv.filters, conv.kernel, conv.stride, conv.padding.lower(), use_bias=False),
                   tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5), tf.keras.layers.ReLU()]
    layers += [tf.keras.layers.Flatten(), tf.keras.layers.Dense(MNIST_LENET.classes, use_bias=False)]
    return tf.keras.Sequential(layers)


def timed(step, x, y) -> float:
    for _ in range(3):
        step(x, y)  # warm-up: tracing
    times = []
    for _ in range(FLAGS.repeats):
        start = time.perf_counter()
        for _ in range(FLAGS.steps):
            loss = step(x, y)
        float(loss)
        times.append((time.perf_counter() - start) / FLAGS.steps)
    return statistics.median(times)


def quantized_step(network, jit_compile: bool):
    model = build_ann(network, 1)
    opt = tf.keras.optimizers.Adam(1e-4)

    @tf.function(jit_compile=jit_compile)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = train.cross_entropy(y, model(x, is_train=True)[-1])
        grads = tape.gradient(loss, model.trainable_weights)
        opt.apply_gradients(zip(grads, model.trainable_weights))
        return loss
    return step


def main(argv: list[str]) -> None:
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((FLAGS.batch_size, *MNIST_LENET.input_shape), np.float32))
    y = tf.constant(rng.integers(0, 10, FLAGS.batch_size))

    keras = keras_lenet()
    keras_opt = tf.keras.optimizers.Adam(1e-4)

    @tf.function
    def keras_step(x, y):
        with tf.GradientTape() as tape:
            loss = train.cross_entropy(y, keras(x, training=True))
        grads = tape.gradient(loss, keras.trainable_weights)
        keras_opt.apply_gradients(zip(grads, keras.trainable_weights))
        return loss

    times = {(net.name, jit): timed(quantized_step(net, jit), x, y)
             for net in (MNIST_LENET, FASHION_MLP) for jit in (False, True)}
    t_keras = timed(keras_step, x, y)
    print(f"Training step, batch {FLAGS.batch_size}, median of {FLAGS.repeats} x {FLAGS.steps} steps")
    for (name, jit), t in times.items():
        print(f"  quantized {name:12s} {'XLA' if jit else 'graph':5s} {t * 1e3:7.2f} ms/step")
    print(f"  plain Keras LeNet (ReLU)       {t_keras * 1e3:7.2f} ms/step")
    print(f"train_step_vs_keras={times['mnist_lenet', False] / t_keras:.2f} "
          f"xla_speedup_lenet={times['mnist_lenet', False] / times['mnist_lenet', True]:.2f} "
          f"xla_speedup_mlp={times['fashion_mlp', False] / times['fashion_mlp', True]:.2f}")


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
