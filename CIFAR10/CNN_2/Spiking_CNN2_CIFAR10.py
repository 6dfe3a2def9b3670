"""Spiking CNN 2 (VGG-like) on CIFAR-10: convert a quantized checkpoint and simulate it with negative spikes.

    python Spiking_CNN2_CIFAR10.py --k 0

Writes figs/k<k>/accuracy.txt, spike_num.txt, spike_collect.txt, sop_num.txt and summary.json.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `common`

from common import signals

signals.start_program()  # first: a stop signal during the slow imports below ends the run with one line

from common import cli
from common.networks import CIFAR_CNN2

cli.define_snn_flags(time_steps=100)

if __name__ == "__main__":
    cli.run(cli.snn_main(CIFAR_CNN2, workspace=Path(__file__).parent))
