"""Random networks and inputs, for the tests and the benchmarks."""

from __future__ import annotations

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
