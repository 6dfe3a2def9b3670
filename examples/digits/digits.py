"""The example's two additions, each one registered entry: its dataset (scikit-learn's 8x8 digits) and its network.

Nothing else in the package changes to run them: the loaders read the dataset description, the
builder, converter and simulators read the network description. The commands that read a checkpoint alone
(``python -m common.convert export``, ``python -m common.checkpoint export``) know the network once this file
is named by ``--extension examples/digits/digits.py`` or ``$NEGSPIKE_EXTENSIONS``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `common`

from common import data, networks  # noqa: E402
from common.networks import P2, Conv, Network  # noqa: E402

# 1,797 images of 8x8 pixels, values 0..16, written to data/digits/data.npz by prepare_data.py
DIGITS = data.register(data.Dataset("digits", data.NpzArrays("digits", scale=1 / 16), input_shape=(8, 8, 1),
                                    classes=10, validation_size=200))

# A small CNN that is none of the paper's five: 3x3 convolution, learned pooling, a fully connected layer
DIGITS_CNN = networks.register(Network("digits_cnn", "digits", (8, 8, 1),
                                      (Conv(16, 3), P2(16), Conv(64, 4, padding="VALID"))))
