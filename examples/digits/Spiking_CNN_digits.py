"""Spiking CNN on scikit-learn's 8x8 digits: convert a quantized checkpoint and simulate it.

    python Spiking_CNN_digits.py --k 1

Writes figs/k<k>/accuracy.txt, spike_num.txt, spike_collect.txt, sop_num.txt and summary.json.
"""

from pathlib import Path

from common import signals

signals.start_program()  # first: a stop signal during the slow imports below ends the run with one line

from digits import DIGITS_CNN  # noqa: E402

from common import cli  # noqa: E402

cli.define_snn_flags(time_steps=30, batch_size=100)

if __name__ == "__main__":
    cli.run(cli.snn_main(DIGITS_CNN, workspace=Path(__file__).parent))
