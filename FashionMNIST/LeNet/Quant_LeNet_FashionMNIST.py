"""Quantized LeNet on FashionMNIST: train it, or evaluate a checkpoint (--mode inference).

    python Quant_LeNet_FashionMNIST.py --k 0 --resume False --learning_rate 0.0001 --mode 'training'
    python Quant_LeNet_FashionMNIST.py --k 0 --resume True --mode 'inference'
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `common`

from common import signals

signals.start_program()  # first: a stop signal during the slow imports below ends the run with one line

from common import cli
from common.networks import FASHION_LENET

cli.define_ann_flags(learning_rate=1e-4, epochs=100)

if __name__ == "__main__":
    cli.run(cli.ann_main(FASHION_LENET, quantized=True, workspace=Path(__file__).parent))
