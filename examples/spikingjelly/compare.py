"""SpikingJelly with and without negative spikes, beside the exact simulation, on an exported network.

    pip install -e ".[bench]" torch==2.13.0   # PyTorch (a CPU build is enough; name yours) and SpikingJelly
    python -m common.convert export MNIST/pretrained/k1.npz mnist_k1_snn.safetensors
    python examples/spikingjelly/compare.py mnist_k1_snn.safetensors \
        --images MNIST/data/mnist/t10k-images-idx3-ubyte.gz --labels MNIST/data/mnist/t10k-labels-idx1-ubyte.gz

Runs, on the first ``--num_images`` test images for ``--time_steps`` steps: the exported rule in NumPy
(``examples/numpy_snn``, exact: the package's own results), SpikingJelly with :class:`NegativeSpikeIFNode`, and
SpikingJelly's ``IFNode`` on the same weights. For each: accuracy per step, agreement of the final prediction with
the exact ANN's, and the hidden neurons whose final net count differs from the exact ANN's level (summed over the
images; the ANN's level is what a lossless conversion must reach). ``--json`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import spikingjelly_snn
from spikingjelly_snn import numpy_snn, torch


def figures(name: str, predictions: np.ndarray, counts: list[np.ndarray], seconds: float,
            ann_predictions: np.ndarray, ann_levels: list[np.ndarray], labels: np.ndarray) -> dict:
    """One row: ``predictions`` ``(T, B)`` and final ``counts`` against the exact ANN's."""
    per_layer = [int((c != a).sum()) for c, a in zip(counts, ann_levels)]
    accuracy = (predictions == labels).mean(axis=1)
    equal = accuracy == (ann_predictions == labels).mean()
    lossless = next((t + 1 for t in range(len(equal)) if equal[t:].all()), None)  # equal to the ANN from then on
    return {"simulator": name, "accuracy_per_step": [float(v) for v in accuracy], "lossless_step": lossless,
            "agreement": float((predictions[-1] == ann_predictions).mean()), "mismatched_neurons": sum(per_layer),
            "mismatched_neurons_per_layer": per_layer,
            "hidden_neurons": sum(a.size for a in ann_levels),
            "images_with_mismatched_neurons": int(sum((c != a).reshape(len(c), -1).any(axis=1)
                                                      for c, a in zip(counts, ann_levels)).astype(bool).sum()),
            "seconds": round(seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a converted network (python -m common.convert export)")
    parser.add_argument("--images", required=True, help="test images, an IDX .gz file (pixels / 256, as trained)")
    parser.add_argument("--labels", required=True, help="their labels, an IDX .gz file")
    parser.add_argument("--num_images", type=int, default=1000)
    parser.add_argument("--time_steps", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--json", help="write the figures to this file as well")
    args = parser.parse_args()
    model = numpy_snn.load(args.model)
    times = model[0]["input"]["times"]
    x = numpy_snn.read_idx(args.images)[:args.num_images, :, :, None].astype(np.float32) / np.float32(256)
    y = numpy_snn.read_idx(args.labels)[:args.num_images].astype(np.int64)
    batches = [slice(i, i + args.batch_size) for i in range(0, len(x), args.batch_size)]

    def run(simulate) -> tuple[np.ndarray, list[np.ndarray], float]:
        start, runs = time.process_time(), [simulate(x[b]) for b in batches]
        counts = [np.concatenate(layer) for layer in zip(*(r["counts"] for r in runs))]
        return np.concatenate([r["predictions"] for r in runs], axis=1), counts, time.process_time() - start

    ann = [numpy_snn.ann(model, x[b]) for b in batches]
    ann_levels = [np.concatenate(layer) for layer in zip(*(a[0] for a in ann))]
    ann_predictions = np.concatenate([a[1] for a in ann])
    rows = [figures("NumPy reader, exported rule (exact)",
                    *run(lambda b: numpy_snn.simulate(model, b, args.time_steps)), ann_predictions, ann_levels, y)]
    for kind, name in zip(spikingjelly_snn.NEURONS, ("SpikingJelly, NegativeSpikeIFNode", "SpikingJelly, IFNode")):
        net = spikingjelly_snn.build(model, kind)
        rows.append(figures(name, *run(lambda b, net=net: spikingjelly_snn.simulate(net, b, times, args.time_steps)),
                            ann_predictions, ann_levels, y))
    description = model[0]
    print(f"{description['network']} k={description['k']}: {len(x)} test images, T={args.time_steps}, exact ANN "
          f"accuracy {(ann_predictions == y).mean():.4f}")
    print(f"  {'simulator':36s} {'SNN acc.':>8s} {'lossless':>8s} {'agreement':>9s} {'mismatched neurons':>26s} "
          f"{'CPU s':>7s}")
    for row in rows:
        print(f"  {row['simulator']:36s} {row['accuracy_per_step'][-1]:8.4f} {str(row['lossless_step']):>8s} "
              f"{row['agreement']:9.4f} {row['mismatched_neurons']:>12,} of {row['hidden_neurons']:>10,} "
              f"{row['seconds']:7.1f}")
        print("    per step: " + " ".join(f"{v:.4f}" for v in row["accuracy_per_step"]))
    if args.json:  # a record: file names only, never a machine's paths
        versions = {"numpy": np.__version__, "torch": torch.__version__, "spikingjelly": version("spikingjelly")}
        Path(args.json).write_text(json.dumps({
            "network": description["network"], "k": description["k"], "model": Path(args.model).name,
            "test_images": Path(args.images).name, "images": len(x), "time_steps": args.time_steps,
            "ann_accuracy": float((ann_predictions == y).mean()), "versions": versions, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
