"""SpikingJelly's IF network on an exported network, timed in a process of its own (no TensorFlow here).

    python benchmarks/spikingjelly_peer.py MODEL.safetensors IMAGES.npy OUT.npz --time_steps 20 --repeats 3

``benchmarks/snn_vs_others.py`` starts it: TensorFlow and PyTorch crash when loaded into one process, and each
framework is timed without the other's threads beside it. Reads the model (``python -m common.convert export``)
and NHWC images (not yet times ``2^k``); writes ``predictions`` (after the last step), ``wall`` and ``cpu`` (the
median of ``--repeats`` after a warm-up, as :func:`benchmarks.timing.median_times`), ``stopped`` and ``threads``
(PyTorch's intra-op threads).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples" / "spikingjelly"))

from common import signals  # noqa: E402

if __name__ == "__main__":
    signals.start_program()  # first: a stop during the imports below ends the program with its line

import numpy as np
import spikingjelly_snn
import torch

from benchmarks.timing import Resumes, median_times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/spikingjelly_peer.py", description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("images", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--time_steps", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--neuron", choices=spikingjelly_snn.NEURONS, default="spikingjelly_if")
    args = parser.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    model = spikingjelly_snn.load(args.model)
    times = model[0]["input"]["times"]
    net = spikingjelly_snn.build(model, args.neuron)
    x = np.load(args.images, allow_pickle=False)

    def predictions() -> np.ndarray:
        return np.concatenate([spikingjelly_snn.simulate(net, x[i:i + args.batch_size], times, args.time_steps,
                                                         counts=False)["predictions"][-1]
                               for i in range(0, len(x), args.batch_size)])

    Resumes.install()
    wall, cpu, predicted, stopped = median_times(predictions, args.repeats)
    np.savez(args.out, predictions=predicted, wall=wall, cpu=cpu, stopped=stopped, threads=torch.get_num_threads())


if __name__ == "__main__":
    main()
