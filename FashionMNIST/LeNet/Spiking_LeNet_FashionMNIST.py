"""Spiking LeNet on FashionMNIST: convert a quantized checkpoint and simulate it with negative spikes.

    python Spiking_LeNet_FashionMNIST.py --k 0

Writes figs/k<k>/accuracy.txt, spike_num.txt, spike_collect.txt, sop_num.txt and summary.json.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `common`

from common import signals

signals.start_program()  # first: a stop signal during the slow imports below ends the run with one line

from common import cli
from common.networks import FASHION_LENET

cli.define_snn_flags(time_steps=20)

if __name__ == "__main__":
    cli.run(cli.snn_main(FASHION_LENET, workspace=Path(__file__).parent))
