"""Random networks and real-format data files for the tests."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

from common import checkpoint
from common.networks import Network


def random_weights(network: Network, rng: np.random.Generator, dyadic: bool = False) -> dict[str, np.ndarray]:
    """Checkpoint arrays with random filters and random BatchNorm statistics.

    About one channel in five gets a negative gamma and one in twenty a zero gamma. With
    ``dyadic=True`` filters are multiples of 1/64, so that every synaptic sum of integer
    spike counts is exact in float32 whatever the order of summation.
    """
    weights = {}
    for name, shape in checkpoint.expected_shapes(network).items():
        if name.endswith("/filters") or name.endswith("/weights"):
            fan_in = int(np.prod(shape[:-1]))
            if dyadic:
                limit = max(1, int(64 * 2.0 / np.sqrt(fan_in)))
                value = rng.integers(-limit, limit + 1, shape) / 64.0
            else:
                value = rng.standard_normal(shape) * (1.5 / np.sqrt(fan_in))
        elif name.endswith("/gamma"):
            value = rng.uniform(0.3, 1.5, shape) * np.where(rng.random(shape) < 0.2, -1, 1)
            value[rng.random(shape) < 0.05] = 0.0
        elif name.endswith("/beta"):
            value = rng.normal(0.3, 0.5, shape)
        elif name.endswith("/moving_mean"):
            value = rng.normal(0.0, 0.5, shape)
        else:  # moving_var
            value = rng.uniform(0.3, 2.0, shape)
        weights[name] = value.astype(np.float32)
    return weights


def random_images(network: Network, n: int, rng: np.random.Generator) -> np.ndarray:
    """Inputs on the grid 1/256, as the MNIST loader produces them."""
    return (rng.integers(0, 256, (n, *network.input_shape)) / 256.0).astype(np.float32)


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
