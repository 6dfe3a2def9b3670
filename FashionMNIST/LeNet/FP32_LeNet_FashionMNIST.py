"""Full-precision (FP32) baseline of the LeNet on FashionMNIST, with plain ReLU.

    python FP32_LeNet_FashionMNIST.py --resume False --mode 'training'
    python FP32_LeNet_FashionMNIST.py --resume True --mode 'inference'
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `common`

from common import signals

signals.start_program()  # first: a stop signal during the slow imports below ends the run with one line

from common import cli
from common.networks import FASHION_LENET

cli.define_ann_flags(learning_rate=1e-4, epochs=100, quantized=False)

if __name__ == "__main__":
    cli.run(cli.ann_main(FASHION_LENET, quantized=False, workspace=Path(__file__).parent))
