#!/bin/sh
# Train the example's CNN on the 8x8 digits, convert it, and write a spiking run under figs/k1/ (about two
# minutes on two cores). Needs the package's extra: pip install -e '.[examples]' (scikit-learn).
set -eu
cd "$(dirname "$0")"
python prepare_data.py
python Quant_CNN_digits.py --k 1 --seed 0 --data_dir data
python Spiking_CNN_digits.py --k 1 --data_dir data
cd ../.. && python -m common.plots examples/digits  # figs/*.png: accuracy, spikes and operations per time step
