"""Quantized CNN on scikit-learn's 8x8 digits: train it, or evaluate a checkpoint (--mode inference).

    python Quant_CNN_digits.py --k 1 --epochs 30 --seed 0
"""

from pathlib import Path

from digits import DIGITS_CNN

from common import cli

cli.define_ann_flags(learning_rate=3e-3, epochs=30, batch_size=50)

if __name__ == "__main__":
    cli.run(cli.ann_main(DIGITS_CNN, quantized=True, workspace=Path(__file__).parent))
