"""The paper's five networks, each described once.

A :class:`Network` drives the ANN builder (:mod:`common.model`), the converter
(:mod:`common.convert`) and both simulators. Every hidden layer is a convolution
without bias followed by BatchNorm, ReLU and the k-level quantizer; fully connected
hidden layers are convolutions whose kernel covers the whole input map, as in the
original code. The output layer is a dense layer without bias.
"""

from __future__ import annotations

import dataclasses

from common import registry


@dataclasses.dataclass(frozen=True)
class Conv:
    """A hidden layer: ``filters`` kernels of ``kernel x kernel``, no bias."""

    filters: int
    kernel: int
    stride: int = 1
    padding: str = "SAME"

    def output_size(self, size: int) -> int:
        if self.padding == "SAME":
            return -(-size // self.stride)
        return (size - self.kernel) // self.stride + 1

    def pads(self, size: int) -> tuple[int, int]:
        """Zeros added before and after an input axis of ``size``, as TensorFlow pads."""
        if self.padding != "SAME":
            return 0, 0
        total = max((self.output_size(size) - 1) * self.stride + self.kernel - size, 0)
        return total // 2, total - total // 2

    def fan_in(self, in_channels: int) -> int:
        return self.kernel * self.kernel * in_channels


def P2(filters: int) -> Conv:  # noqa: N802 - the paper's name for its learned pooling
    """The paper's learned pooling: a 2x2 stride-2 convolution."""
    return Conv(filters, 2, stride=2, padding="VALID")


def layer_names(index: int) -> tuple[str, str]:
    """Names of hidden layer ``index`` (1-based): its convolution and its BatchNorm (the ANN's layers and
    the checkpoint's keys)."""
    return f"conv{index}", f"bn{index}"


OUTPUT_NAME = "output"  # the output layer's name


@dataclasses.dataclass(frozen=True)
class Network:
    """One network: its input, its hidden layers and its output classes."""

    name: str
    dataset: str
    input_shape: tuple[int, int, int]
    hidden: tuple[Conv, ...]
    classes: int = 10

    def shapes(self) -> list[tuple[int, int, int]]:
        """``(height, width, channels)`` of the input and of every hidden layer."""
        h, w, c = self.input_shape
        shapes = [(h, w, c)]
        for layer in self.hidden:
            h, w, c = layer.output_size(h), layer.output_size(w), layer.filters
            shapes.append((h, w, c))
        return shapes

    @property
    def flat_features(self) -> int:
        h, w, c = self.shapes()[-1]
        return h * w * c

    def fully_connected(self) -> bool:
        """Whether every hidden layer's kernel covers its whole input map (an MLP)."""
        return all(h == w == 1 for h, w, _ in self.shapes()[1:])

    def hidden_neurons(self) -> int:
        return sum(h * w * c for h, w, c in self.shapes()[1:])

    def macs_per_image(self) -> int:
        """Multiply-accumulates of one ANN forward pass (hidden layers and output)."""
        shapes = self.shapes()
        macs = sum(ho * wo * co * layer.kernel * layer.kernel * shapes[i][2]
                   for i, (layer, (ho, wo, co)) in enumerate(zip(self.hidden, shapes[1:])))
        return macs + self.flat_features * self.classes


NETWORKS: dict[str, Network] = {}


def register(network: Network) -> Network:
    """Add ``network`` to :data:`NETWORKS` under its name; returns it. A second, different network of the same name
    is refused with a ValueError (the same description again, from a module imported twice, changes nothing)."""
    return registry.add(NETWORKS, network.name, network, "network")


MNIST_LENET = register(Network("mnist_lenet", "mnist", (28, 28, 1), (
    Conv(20, 5, padding="VALID"), P2(20), Conv(50, 5, padding="VALID"), P2(50),
    Conv(500, 4, padding="VALID"))))

FASHION_LENET = register(Network("fashion_lenet", "fashion_mnist", (28, 28, 1), (
    Conv(32, 5, padding="VALID"), P2(32), Conv(64, 5, padding="VALID"), P2(64),
    Conv(1024, 4, padding="VALID"))))

FASHION_MLP = register(Network("fashion_mlp", "fashion_mnist", (28, 28, 1), (
    Conv(400, 28, padding="VALID"), Conv(400, 1, padding="VALID"))))

CIFAR_CNN1 = register(Network("cifar10_cnn1", "cifar10", (24, 24, 3), (
    Conv(96, 3), Conv(256, 3), P2(256), Conv(384, 3), P2(384), Conv(384, 3), Conv(256, 3),
    P2(256), Conv(1024, 3, padding="VALID"), Conv(1024, 1, padding="VALID"))))

CIFAR_CNN2 = register(Network("cifar10_cnn2", "cifar10", (24, 24, 3), (
    Conv(128, 3), Conv(256, 3), P2(256), Conv(512, 3), P2(512), Conv(1024, 3), Conv(512, 3),
    P2(512), Conv(1024, 3, padding="VALID"), Conv(512, 1, padding="VALID"))))
