"""How fast the spiking simulators run, side by side on the same weights, in one process.

    python benchmarks/snn_speed.py                   # shipped MNIST LeNet k=1 on the MNIST test set
    python benchmarks/snn_speed.py --checkpoint ''   # random weights and images

Compares the exact simulator with the previous design (plain float32 convolutions and rounding,
no error bound: fast, but exact only where one CPU's kernels happen to round alike), the NumPy
reference and the float32 ANN. Prints medians of several repeats after a warm-up and ends with
``exact_vs_float32_cost=<r> snn_vs_reference_speedup=<x> snn_step_vs_ann_forward=<y> early_exit_saving=<z>``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import signals  # noqa: E402

if __name__ == "__main__":
    signals.start_program()  # first: a stop during the imports below ends the program with its line

from common import startup

startup.start()  # quietly, before anything imports TensorFlow
import numpy as np
import tensorflow as tf
from absl import app, flags

from common import checkpoint, cli, convert, data, reference, synthetic
from common.model import build_ann
from common.networks import CIFAR_CNN1, MNIST_LENET
from common.exact_ann import ExactReadout, ExactSynapses
from common.snn import FastSimulator
from benchmarks.timing import median_times

ROOT = Path(__file__).resolve().parents[1]
flags.DEFINE_string("checkpoint", str(ROOT / "MNIST" / "pretrained" / "k1.npz"),
                    "MNIST LeNet checkpoint; empty for random weights and images.")
flags.DEFINE_integer("k", 1, "Quantization level.", lower_bound=0, upper_bound=8)
flags.DEFINE_integer("images", 1000, "Images to simulate.", lower_bound=1)
flags.DEFINE_integer("time_steps", 20, "Time steps.", lower_bound=1)
flags.DEFINE_integer("batch_size", 200, "Batch size.", lower_bound=1)
flags.DEFINE_integer("repeats", 3, "Timed repeats (the median is reported).", lower_bound=1)
flags.DEFINE_integer("reference_images", 200, "Images for the (slow) reference simulator; its time is "
                     "scaled to --images.", lower_bound=1)
flags.DEFINE_integer("cifar_images", 1000, "CIFAR-10 CNN 1 (k=1, the shipped weights, the test set) images "
                     "to simulate at --cifar_time_steps with early exit; 0 to skip.", lower_bound=0)
flags.DEFINE_integer("cifar_time_steps", 100, "Time steps of the CIFAR-10 run.", lower_bound=1)
FLAGS = flags.FLAGS


class Float32Synapses(ExactSynapses):
    """The previous design: one float32 convolution and the ANN's rounding, with no error bound."""

    def levels(self, x: tf.Tensor) -> tf.Tensor:
        z = tf.nn.conv2d(x, self.kernel_np, self.conv.stride, self.conv.padding)
        return tf.round(tf.nn.relu(z * self.scale + self.bias) + 1e-5)


class Float32Readout(ExactReadout):
    def potentials(self, flat: tf.Tensor) -> tf.Tensor:
        return tf.matmul(flat, tf.cast(self.weights, tf.float32))


class Float32Simulator(FastSimulator):
    """The previous design's simulator: float32 synapses and readout, which never change precision."""

    def __init__(self, sn, **kwargs):
        super().__init__(sn, **kwargs)
        self.synapses = [Float32Synapses(layer, shape) for layer, shape in zip(sn.layers, sn.network.shapes())]
        self.readout = Float32Readout(sn.output_weights)
        self.exact_ann.synapses, self.exact_ann.readout = self.synapses, self.readout
        self.exact_ann._compile()

    def _adapt(self) -> None:
        pass


def in_batches(fn, x: np.ndarray, batch: int):
    return [fn(x[i:i + batch]) for i in range(0, len(x), batch)]


def main(argv: list[str]) -> None:
    k, steps, batch = FLAGS.k, FLAGS.time_steps, FLAGS.batch_size
    rng = np.random.default_rng(0)
    if FLAGS.checkpoint:
        weights = checkpoint.load(FLAGS.checkpoint, MNIST_LENET, k)
        test = data.load_split("mnist", "test", data.data_roots(None, Path(FLAGS.checkpoint).parents[1]))
        x = test.x[:FLAGS.images]
        source = FLAGS.checkpoint
    else:
        weights = synthetic.random_weights(MNIST_LENET, rng)
        x = synthetic.random_images(MNIST_LENET, FLAGS.images, rng)
        source = "random weights and images"
    n = len(x)
    sn = convert.convert(MNIST_LENET, k, weights)
    model = build_ann(MNIST_LENET, k)
    checkpoint.assign(model, weights)
    forward = tf.function(lambda b: model(b, is_train=False), reduce_retracing=True)
    exact, exact_dense = FastSimulator(sn), FastSimulator(sn, early_exit=False)
    old, old_dense = Float32Simulator(sn), Float32Simulator(sn, early_exit=False)
    xs = x * 2 ** k
    print(f"MNIST LeNet k={k}, {source}: {n} images, steps={steps}, batch {batch}, median of {FLAGS.repeats}")

    def timed(sim):
        return median_times(lambda: in_batches(lambda b: sim.simulate(b, steps), xs, batch), FLAGS.repeats)[0]

    t_ann = median_times(lambda: in_batches(forward, x, batch), FLAGS.repeats)[0]
    t_exact, t_old = timed(exact), timed(old)
    t_exact_dense, t_old_dense = timed(exact_dense), timed(old_dense)
    m = min(FLAGS.reference_images, n)
    t_ref = median_times(lambda: in_batches(lambda b: reference.simulate(sn, b, steps), xs[:m], batch), 1)[0] * n / m

    exact_results = in_batches(lambda b: exact.simulate(b, steps), xs[:m], batch)
    ref_results = in_batches(lambda b: reference.simulate(sn, b, steps), xs[:m], batch)
    same = sum(int((np.all(f.spikes == r.spikes, axis=(0, 1)) & np.all(f.predictions == r.predictions, axis=0)
                    & np.all(f.synops == r.synops, axis=0)).sum()) for f, r in zip(exact_results, ref_results))
    settle = np.concatenate([r.settle for r in in_batches(lambda b: exact.simulate(b, steps), xs, batch)])

    per = 1e3 / n
    print(f"  ANN forward pass (float32)       {t_ann:8.3f} s  {t_ann * per:8.4f} ms/image")
    print(f"  reference SNN (NumPy)            {t_ref:8.3f} s  {t_ref * per / steps:8.4f} ms/image/step"
          f"  (measured on {m} images)")
    print(f"  previous float32 SNN, every step {t_old_dense:8.3f} s  {t_old_dense * per / steps:8.4f} ms/image/step")
    print(f"  previous float32 SNN, early exit {t_old:8.3f} s  {t_old * per / steps:8.4f} ms/image/step")
    print(f"  exact SNN, every step            {t_exact_dense:8.3f} s  {t_exact_dense * per / steps:8.4f} "
          f"ms/image/step")
    print(f"  exact SNN, early exit            {t_exact:8.3f} s  {t_exact * per / steps:8.4f} ms/image/step"
          + (f"  ({(settle >= 0).mean():.0%} of samples settle, after {settle[settle >= 0].mean():.1f} steps "
             f"on average)" if (settle >= 0).any() else "  (no sample settles)"))
    print(f"  exact and reference: identical records at every step for {same} of {m} images")

    if FLAGS.cifar_images:
        seconds, cpu, images, source = cifar_seconds(FLAGS.cifar_images, FLAGS.cifar_time_steps, batch, rng)
        print(f"  CIFAR-10 CNN 1 k=1, {source}: {images} images, steps={FLAGS.cifar_time_steps}, early exit: "
              f"{seconds:.1f} s wall, {cpu:.1f} s CPU ({seconds / images * 1e3:.0f} ms/image)")
    print(f"exact_vs_float32_cost={t_exact / t_old:.2f} exact_vs_float32_cost_every_step="
          f"{t_exact_dense / t_old_dense:.2f} snn_vs_reference_speedup={t_ref / t_exact:.1f} "
          f"snn_step_vs_ann_forward={(t_exact_dense / steps) / t_ann:.2f} early_exit_saving="
          f"{1 - t_exact / t_exact_dense:.2f}")


def cifar_seconds(images: int, steps: int, batch: int, rng: np.random.Generator) -> tuple[float, float, int, str]:
    """Wall and CPU seconds of CIFAR-10 CNN 1 (k=1) over ``images`` test images, after a warm-up batch.

    The shipped weights on the test images if both are here, else random weights and images."""
    ckpt = ROOT / "CIFAR10" / "CNN_1" / "pretrained" / "k1.npz"
    try:
        weights = checkpoint.load(ckpt, CIFAR_CNN1, 1)
        test = data.load_split("cifar10", "test", data.data_roots(None, ckpt.parents[1]), download=False)
        x, source = data.eval_inputs("cifar10", test)[:images], f"{ckpt.relative_to(ROOT)} on the test set"
    except (checkpoint.CheckpointError, data.DataError) as err:
        weights, source = synthetic.random_weights(CIFAR_CNN1, rng), f"random weights and images ({err})"
        x = synthetic.random_images(CIFAR_CNN1, images, rng)
    sim = FastSimulator(convert.convert(CIFAR_CNN1, 1, weights))
    xs = x * 2
    sim.simulate(xs[:batch], 2)  # warm-up: tracing the chunk of this batch size
    wall, cpu = time.perf_counter(), time.process_time()
    in_batches(lambda b: sim.simulate(b, steps), xs, batch)
    return time.perf_counter() - wall, time.process_time() - cpu, len(x), source


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
