"""Peak memory of ``Spiking_CNN1_CIFAR10.py`` at T = 20 and T = 100 (random weights).

    NEGSPIKE_DATA=../shared/data python benchmarks/snn_memory.py

Each run is its own process; ends with ``peak_memory_t100_vs_t20=<ratio>``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import signals  # noqa: E402

if __name__ == "__main__":
    signals.start_program()  # first: a stop during the imports below ends the program with its line

from common import startup

startup.start()  # quietly, before anything imports TensorFlow
import numpy as np

from common import checkpoint, synthetic
from common.networks import CIFAR_CNN1

ROOT = Path(__file__).resolve().parents[1]
# A process of its own per run, so that RUSAGE_CHILDREN's peak is that run's; stop signals go on to the run.
MEASURE = ("import resource, subprocess, sys; from common import signals; "
           "done = signals.run_relaying_stop_signals(sys.argv[1:], stdout=subprocess.DEVNULL); "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)")


def peak_mib(args: list[str]) -> float:
    out = signals.run_relaying_stop_signals([sys.executable, "-c", MEASURE, *args], cwd=ROOT, stdout=subprocess.PIPE,
                                            text=True)
    if out.returncode:
        sys.exit(f"error: {Path(args[1]).name} exited with {out.returncode} (its error is above)")
    return int(out.stdout.split()[-1]) / 1024


def main() -> None:
    images = int(os.environ.get("IMAGES", "40"))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "k1.npz"
        checkpoint.save(ckpt, CIFAR_CNN1, 1, synthetic.random_weights(CIFAR_CNN1, np.random.default_rng(0)), 0)
        script = str(ROOT / "CIFAR10" / "CNN_1" / "Spiking_CNN1_CIFAR10.py")
        peaks = {}
        for steps in (20, 100):
            peaks[steps] = peak_mib([sys.executable, script, "--k", "1", "--checkpoint", str(ckpt),
                                     "--time_steps", str(steps), "--num_samples", str(images),
                                     "--batch_size", str(images), "--log_dir", str(Path(tmp) / f"t{steps}")])
            print(f"  T={steps:3d}: peak resident memory {peaks[steps]:7.0f} MiB ({images} images, one batch)")
    print(f"peak_memory_t100_vs_t20={peaks[100] / peaks[20]:.3f}")


if __name__ == "__main__":
    main()
