"""Quantized CNN 2 (VGG-like) on CIFAR-10: train it, or evaluate a checkpoint (--mode inference).

    python Quant_CNN2_CIFAR10.py --k 0 --resume False --learning_rate 0.001 --mode 'training'
    python Quant_CNN2_CIFAR10.py --k 0 --resume True --learning_rate 0.0001 --mode 'training'  # 100 more
    python Quant_CNN2_CIFAR10.py --k 0 --resume True --mode 'inference'
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `common`

from common import signals

signals.start_program()  # first: a stop signal during the slow imports below ends the run with one line

from common import cli
from common.networks import CIFAR_CNN2

cli.define_ann_flags(learning_rate=1e-3, epochs=100)

if __name__ == "__main__":
    cli.run(cli.ann_main(CIFAR_CNN2, quantized=True, workspace=Path(__file__).parent))
