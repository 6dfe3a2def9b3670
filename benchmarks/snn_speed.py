"""How fast the spiking simulators run, side by side on the same weights.

    python benchmarks/snn_speed.py                 # shipped MNIST LeNet k=1 on the MNIST test set
    python benchmarks/snn_speed.py --checkpoint ''   # random weights and images

Prints medians of several repeats after a warm-up and ends with the line
``snn_vs_reference_speedup=<x> snn_step_vs_ann_forward=<y> early_exit_saving=<z>``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from absl import app, flags

from common import checkpoint, cli, convert, data, reference, synthetic
from common.model import build_ann
from common.networks import CIFAR_CNN1, MNIST_LENET
from common.snn import FastSimulator
from common.spiking import ann_forward

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
FLAGS = flags.FLAGS


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: tracing and allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
    forward = ann_forward(model)
    fast, dense = FastSimulator(sn), FastSimulator(sn, early_exit=False)
    xs = x * 2 ** k
    print(f"MNIST LeNet k={k}, {source}: {n} images, steps={steps}, batch {batch}, median of {FLAGS.repeats}")

    t_ann = median_seconds(lambda: in_batches(forward, x, batch), FLAGS.repeats)
    t_fast = median_seconds(lambda: in_batches(lambda b: fast.simulate(b, steps), xs, batch), FLAGS.repeats)
    t_dense = median_seconds(lambda: in_batches(lambda b: dense.simulate(b, steps), xs, batch), FLAGS.repeats)
    m = min(FLAGS.reference_images, n)
    t_ref = median_seconds(lambda: in_batches(lambda b: reference.simulate(sn, b, steps), xs[:m], batch), 1) * n / m

    fast_results = in_batches(lambda b: fast.simulate(b, steps), xs[:m], batch)
    ref_results = in_batches(lambda b: reference.simulate(sn, b, steps), xs[:m], batch)
    # float32 synaptic sums (fast) and float64 running sums (reference) may part at a near-tie
    same = sum(int((np.all(f.spikes == r.spikes, axis=(0, 1)) & np.all(f.predictions == r.predictions, axis=0)).sum())
               for f, r in zip(fast_results, ref_results))
    settle = np.concatenate([r.settle for r in in_batches(lambda b: fast.simulate(b, steps), xs, batch)])

    per = 1e3 / n
    print(f"  ANN forward pass           {t_ann:8.3f} s  {t_ann * per:8.4f} ms/image")
    print(f"  reference SNN (NumPy)      {t_ref:8.3f} s  {t_ref * per / steps:8.4f} ms/image/step"
          f"  (measured on {m} images)")
    print(f"  fast SNN, every step       {t_dense:8.3f} s  {t_dense * per / steps:8.4f} ms/image/step")
    print(f"  fast SNN, early exit       {t_fast:8.3f} s  {t_fast * per / steps:8.4f} ms/image/step"
          f"  ({(settle >= 0).mean():.0%} of samples settle, after {settle[settle >= 0].mean():.1f} steps "
          f"on average)" if (settle >= 0).any() else "  (no sample settles)")
    print(f"  fast and reference: identical spike counts at every step for {same} of {m} images")

    cifar_step = cifar_dense_step_seconds(rng)
    print(f"  CIFAR-10 CNN 1: {cifar_step * 1e3:.2f} ms/image/step every step; full test set (10,000 "
          f"images) at steps=100 projected at {cifar_step * 10_000 * 100 / 60:.0f} min without early exit")
    x_speed = t_ref / t_fast
    y_ratio = (t_dense / steps) / t_ann
    z_saving = 1 - t_fast / t_dense
    print(f"snn_vs_reference_speedup={x_speed:.1f} snn_step_vs_ann_forward={y_ratio:.2f} "
          f"early_exit_saving={z_saving:.2f}")


def cifar_dense_step_seconds(rng: np.random.Generator, images: int = 100, steps: int = 4) -> float:
    """Seconds per image per step of CIFAR-10 CNN 1 with every step simulated."""
    sn = convert.convert(CIFAR_CNN1, 1, synthetic.random_weights(CIFAR_CNN1, rng))
    x = rng.standard_normal((images, *CIFAR_CNN1.input_shape)).astype(np.float32)
    sim = FastSimulator(sn, early_exit=False)
    return median_seconds(lambda: sim.simulate(x, steps), 1) / (images * steps)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
