"""Full-precision (FP32) baseline of the CNN 1 on CIFAR-10, with plain ReLU.

    python FP32_CNN1_CIFAR10.py --resume False --mode 'training'
    python FP32_CNN1_CIFAR10.py --resume True --mode 'inference'
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `common`

from common import signals

signals.start_program()  # first: a stop signal during the slow imports below ends the run with one line

from common import cli
from common.networks import CIFAR_CNN1

cli.define_ann_flags(learning_rate=1e-3, epochs=100, quantized=False)

if __name__ == "__main__":
    cli.run(cli.ann_main(CIFAR_CNN1, quantized=False, workspace=Path(__file__).parent))
