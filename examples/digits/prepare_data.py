"""Write scikit-learn's bundled 8x8 digits as data/digits/data.npz (x_train, y_train, x_test, y_test).

    python prepare_data.py

Offline: the images ship inside scikit-learn (``pip install -e '.[examples]'``). A fixed shuffle
puts 1,497 images in the training file (its last 200 held out for validation) and 300 in the test file.
"""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

TEST_IMAGES = 300


def main() -> None:
    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    x, y = digits.images[order].astype(np.uint8), digits.target[order].astype(np.int64)
    folder = Path(__file__).parent / "data" / "digits"
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "data.npz", x_train=x[:-TEST_IMAGES], y_train=y[:-TEST_IMAGES],
             x_test=x[-TEST_IMAGES:], y_test=y[-TEST_IMAGES:])
    print(f"wrote {folder / 'data.npz'}: {len(x) - TEST_IMAGES} training and {TEST_IMAGES} test images")


if __name__ == "__main__":
    main()
