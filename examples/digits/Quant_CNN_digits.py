"""Quantized CNN on scikit-learn's 8x8 digits: train it, or evaluate a checkpoint (--mode inference).

    python Quant_CNN_digits.py --k 1 --epochs 30 --seed 0
"""

from pathlib import Path

from common import signals

signals.start_program()  # first: a stop signal during the slow imports below ends the run with one line

from digits import DIGITS_CNN  # noqa: E402

from common import cli  # noqa: E402

cli.define_ann_flags(learning_rate=3e-3, epochs=30, batch_size=50)

if __name__ == "__main__":
    cli.run(cli.ann_main(DIGITS_CNN, quantized=True, workspace=Path(__file__).parent))
