"""Training-step throughput: float32 and bfloat16, XLA, a plain Keras model, 1 and 2 replicas, CIFAR-10.

    python benchmarks/train_speed.py            # MNIST LeNet and FashionMNIST MLP
    python benchmarks/train_speed.py --cifar    # also CIFAR-10 CNN 1 and CNN 2, and V100 projections

Every step is the package's own (:func:`common.train.make_train_step`), compiled, on one
fixed batch; medians after a warm-up. Every network is timed in both ``--precision`` settings
(float32, and bfloat16 convolutions and matrix products), with oneDNN as the environment sets it
(``TF_ENABLE_ONEDNN_OPTS``; every entry point turns it on unless it is set). Two logical CPU devices
run the ``--strategy mirrored`` step (``--cpu_replicas 2``) beside the one-device step. The V100 projection:
training costs about 3 forward passes (2 FLOPs per multiply-add), so an epoch is
``6 * MACs * images`` FLOPs; this CPU's training step reaches a fraction ``u`` of what a
large float32 matrix product reaches on it (its practical peak), and a V100 is assumed to
reach the same fraction of its 15.7 TFLOP/s float32 peak. Ends with a ``key=value`` line.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
REPLICAS = 2

from common import signals  # noqa: E402

if __name__ == "__main__":
    signals.start_program()  # first: a stop during the imports below ends the program with its line

from common import startup  # noqa: E402

startup.start(cpu_replicas=REPLICAS)  # logical CPU devices exist only if made before TensorFlow starts
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from common import cli, data, distribute, train  # noqa: E402
from common.model import build_ann  # noqa: E402
from common.networks import CIFAR_CNN1, CIFAR_CNN2, FASHION_LENET, FASHION_MLP, MNIST_LENET, Network  # noqa: E402
from benchmarks.timing import cpu_flags, cpu_model  # noqa: E402

flags.DEFINE_integer("batch_size", 200, "Global batch size.", lower_bound=2)
flags.DEFINE_integer("steps", 20, "Training steps per timed repeat.", lower_bound=1)
flags.DEFINE_integer("repeats", 3, "Timed repeats (the median is reported).", lower_bound=1)
flags.DEFINE_boolean("cifar", False, "Also time the CIFAR-10 networks and project their epochs on a V100.")
FLAGS = flags.FLAGS

V100_FP32_PEAK = 15.7e12  # FLOP/s, NVIDIA's data sheet (SXM2)
CIFAR_TRAIN_IMAGES, CIFAR_EPOCHS = 50_000, 200


def keras_lenet() -> tf.keras.Model:
    """The same layers in plain Keras: Conv2D without bias, BatchNormalization, ReLU."""
    layers = [tf.keras.Input(MNIST_LENET.input_shape)]
    for conv in MNIST_LENET.hidden:
        layers += [tf.keras.layers.Conv2D(conv.filters, conv.kernel, conv.stride, conv.padding.lower(), use_bias=False),
                   tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5), tf.keras.layers.ReLU()]
    layers += [tf.keras.layers.Flatten(), tf.keras.layers.Dense(MNIST_LENET.classes, use_bias=False)]
    return tf.keras.Sequential(layers)


def timed(step, *args, steps: int | None = None, repeats: int | None = None) -> float:
    """Median seconds per call of ``step(*args)``."""
    steps, repeats = steps or FLAGS.steps, repeats or FLAGS.repeats
    for _ in range(2):
        step(*args)  # warm-up: tracing
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            out = step(*args)
        tf.nest.map_structure(lambda t: t.numpy(), out)
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def batch(network: Network) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.random((FLAGS.batch_size, *network.input_shape), np.float32),
            rng.integers(0, 10, FLAGS.batch_size))


def package_step(network: Network, strategy: tf.distribute.Strategy, jit: bool = False,
                 precision: str = "float32"):
    """The package's training step and its arguments (the batch split over the replicas)."""
    with strategy.scope():
        model = build_ann(network, 1, precision)
        opt = tf.keras.optimizers.Adam(1e-4)
    step = train.make_train_step(model, opt, strategy, jit)
    x, y = batch(network)
    per = distribute.replica_batch(strategy, FLAGS.batch_size)
    if strategy.num_replicas_in_sync == 1:
        return step, (tf.constant(x), tf.constant(y))
    split = data.Split(x, y, ())

    def pipeline(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        return data.train_batches(network.dataset, split, FLAGS.batch_size, 0, 0).rebatch(per)

    return step, next(iter(strategy.distribute_datasets_from_function(pipeline)))


def cpu_name() -> str:
    """The CPU's model name and whether it has bfloat16 matrix units (AMX) or AVX512-BF16."""
    fast = [f for f in ("amx_bf16", "avx512_bf16") if f in cpu_flags()]
    return f"{cpu_model()}, {os.cpu_count()} cores, bfloat16 units: {', '.join(fast) or 'none'}"


def gemm_flops() -> float:
    """This CPU's practical float32 peak: a large matrix product."""
    a = tf.random.uniform((2048, 2048))
    matmul = tf.function(lambda a: tf.matmul(a, a))
    return 2 * 2048 ** 3 / timed(matmul, a, steps=5, repeats=3)


def main(argv: list[str]) -> None:
    mirrored = distribute.make_strategy("mirrored", REPLICAS)
    default = tf.distribute.get_strategy()
    results: dict[str, float] = {}
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "TensorFlow's default")
    print(f"Training step, global batch {FLAGS.batch_size}, median of {FLAGS.repeats} x {FLAGS.steps} steps; "
          f"TF_ENABLE_ONEDNN_OPTS={onednn}; {cpu_name()}", flush=True)
    for network in (MNIST_LENET, FASHION_LENET, FASHION_MLP):
        for label, strategy, jit in (("graph", default, False), ("XLA", default, True),
                                     (f"{REPLICAS} replicas", mirrored, False)):
            step, args = package_step(network, strategy, jit)
            t = results[f"{network.name} {label}"] = timed(step, *args)
            print(f"  quantized {network.name:12s} {label:11s} {t * 1e3:8.2f} ms/step "
                  f"{FLAGS.batch_size / t:8.0f} images/s", flush=True)
    for network in (MNIST_LENET, FASHION_LENET, FASHION_MLP):
        step, args = package_step(network, default, False, "bfloat16")
        t = results[f"{network.name} bfloat16"] = timed(step, *args)
        print(f"  quantized {network.name:12s} {'bfloat16':11s} {t * 1e3:8.2f} ms/step "
              f"{FLAGS.batch_size / t:8.0f} images/s ({results[f'{network.name} graph'] / t:.2f}x float32)",
              flush=True)
    keras, keras_opt = keras_lenet(), tf.keras.optimizers.Adam(1e-4)

    @tf.function
    def keras_step(x, y):
        with tf.GradientTape() as tape:
            loss = train.cross_entropy(y, keras(x, training=True))
        grads = tape.gradient(loss, keras.trainable_weights)
        keras_opt.apply_gradients(zip(grads, keras.trainable_weights))
        return loss

    x, y = batch(MNIST_LENET)
    t_keras = timed(keras_step, tf.constant(x), tf.constant(y))
    print(f"  plain Keras LeNet (ReLU)               {t_keras * 1e3:8.2f} ms/step", flush=True)
    summary = {
        "train_step_vs_keras": results["mnist_lenet graph"] / t_keras,
        "xla_speedup_lenet": results["mnist_lenet graph"] / results["mnist_lenet XLA"],
        "xla_speedup_mlp": results["fashion_mlp graph"] / results["fashion_mlp XLA"],
        "bfloat16_speedup_lenet": results["mnist_lenet graph"] / results["mnist_lenet bfloat16"],
        "replicas_speedup_lenet": results["mnist_lenet graph"] / results[f"mnist_lenet {REPLICAS} replicas"],
    }
    if FLAGS.cifar:
        peak = gemm_flops()
        print(f"This CPU's float32 matrix product: {peak / 1e9:.0f} GFLOP/s", flush=True)
        for network in (CIFAR_CNN1, CIFAR_CNN2):
            step, args = package_step(network, default, False, "bfloat16")
            t_bf16 = timed(step, *args, steps=2, repeats=1)
            step, args = package_step(network, default)
            t = timed(step, *args, steps=2, repeats=1)
            print(f"  {network.name}: float32 {t:.2f} s/step, bfloat16 {t_bf16:.2f} s/step ({t / t_bf16:.2f}x); "
                  f"{CIFAR_EPOCHS} epochs: {t * CIFAR_TRAIN_IMAGES / FLAGS.batch_size * CIFAR_EPOCHS / 3600:.0f} h "
                  f"float32, {t_bf16 * CIFAR_TRAIN_IMAGES / FLAGS.batch_size * CIFAR_EPOCHS / 3600:.0f} h bfloat16",
                  flush=True)
            summary[f"{network.name}_bfloat16_speedup"] = t / t_bf16
            flops_per_image = 6 * network.macs_per_image()
            achieved = flops_per_image * FLAGS.batch_size / t
            utilization = achieved / peak
            cpu_epoch = t * CIFAR_TRAIN_IMAGES / FLAGS.batch_size
            v100_epoch = flops_per_image * CIFAR_TRAIN_IMAGES / (utilization * V100_FP32_PEAK)
            print(f"  {network.name}: {flops_per_image / 1e9:.2f} GFLOP per training image, {t:.2f} s/step, "
                  f"{achieved / 1e9:.0f} GFLOP/s ({utilization:.0%} of the matrix product); "
                  f"epoch {cpu_epoch / 60:.0f} min here; projected V100 {v100_epoch:.0f} s/epoch, "
                  f"{v100_epoch * CIFAR_EPOCHS / 3600:.1f} h for {CIFAR_EPOCHS} epochs", flush=True)
            summary[f"{network.name}_v100_hours"] = v100_epoch * CIFAR_EPOCHS / 3600
    print(" ".join(f"{k}={v:.2f}" for k, v in summary.items()))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
