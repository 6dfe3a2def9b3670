"""Real-format data files written by the tests; random networks come from common.synthetic."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

from common.networks import P2, Conv, Network
from common.synthetic import random_images, random_weights  # noqa: F401 - re-exported for the tests

# SAME padding (asymmetric at stride 2), a learned pooling and a 1x1 layer: every kind of layer, small
MIXED = Network("mixed", "mnist", (9, 9, 2), (Conv(4, 3), P2(4), Conv(6, 3, stride=2), Conv(5, 1, padding="VALID")))


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) as a gzip-compressed IDX file."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_idx_dataset(folder: Path, n_train: int, n_test: int, rng: np.random.Generator,
                      learnable: bool = True) -> None:
    """A small MNIST-format dataset; with ``learnable`` each class has its own bright patch."""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        if learnable:
            for i, label in enumerate(labels):
                r, c = divmod(int(label), 5)
                images[i, 4 + 10 * r:10 + 10 * r, 2 + 5 * c:6 + 5 * c] = 250
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)


def write_cifar_batch(path: Path, n: int, rng: np.random.Generator) -> None:
    """A CIFAR-10 python batch in the original pickle layout."""
    batch = {b"batch_label": b"test batch", b"labels": [int(v) for v in rng.integers(0, 10, n)],
             b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
             b"filenames": [b"img%d.png" % i for i in range(n)]}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)
