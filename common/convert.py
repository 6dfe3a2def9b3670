"""ANN-to-SNN conversion: fold each hidden layer's BatchNorm into its neurons.

After the fold a hidden neuron's membrane potential, measured in thresholds, is
``v = z * scale + bias``, where ``z`` is the synaptic integral of its input spikes
(``2^k`` times the ANN's pre-activation once all input has arrived), ``1/scale`` is the
threshold and ``bias`` the initial potential. Then ``v = 2^k * bn(z_ann)`` exactly, and
the neuron's settled net spike count ``round(relu(v) + 1e-5)`` is the ANN's quantized
activation times ``2^k``. Negative gamma gives a negative scale (the neuron is driven
down by excitatory input) and zero gamma a zero scale (a constant potential); the
original's ``threshold = sqrt(var + eps) / gamma`` silently assumed gamma > 0.

``python -m common.convert export CHECKPOINT DST`` writes the converted network as a safetensors file
(:func:`export_snn`, docs/interop.md), which ``examples/numpy_snn`` simulates with NumPy alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common import neurons
from common.checkpoint import CheckpointError
from common.exact import BN_EPSILON, inverse_sqrt
from common.networks import OUTPUT_NAME, Network, layer_names
from common.spiking_network import SpikingLayer, SpikingNetwork, synapse_cover  # noqa: F401 - the converter's types


def fold_batchnorm(gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray, var: np.ndarray,
                   k: int, epsilon: float = BN_EPSILON) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(scale, bias)`` of the spiking neurons that replace BN + quantized ReLU.

    The ANN's own BatchNorm arithmetic, ``scale = inverse_sqrt(var + eps) * gamma`` and
    ``shift = beta - mean * scale`` in float32 (:func:`common.compat.batchnorm_scale_shift`), so the
    potential equals the ANN's scaled pre-activation bit for bit; ``2^k`` scaling is exact.
    """
    gamma, beta, mean, var = (np.asarray(a, np.float32) for a in (gamma, beta, mean, var))
    scale = inverse_sqrt(var + np.float32(epsilon)) * gamma
    shift = beta - mean * scale
    return scale, shift * np.float32(2 ** k)


def convert(network: Network, k: int, weights: dict[str, np.ndarray]) -> SpikingNetwork:
    """Convert checkpoint arrays (see :mod:`common.checkpoint`) of a quantized ANN."""
    layers = []
    for i, conv in enumerate(network.hidden, start=1):
        conv_name, bn = layer_names(i)
        stats = tuple(np.asarray(weights[f"{bn}/{name}"], np.float32)
                      for name in ("beta", "gamma", "moving_mean", "moving_var"))
        scale, bias = fold_batchnorm(stats[1], stats[0], stats[2], stats[3], k)
        if not (np.isfinite(scale).all() and np.isfinite(bias).all()):
            raise CheckpointError(f"{bn}: BatchNorm folds to a non-finite threshold or bias; the weights cannot "
                                  f"be a trained network")
        layers.append(SpikingLayer(conv, np.asarray(weights[f"{conv_name}/filters"], np.float32), scale, bias,
                                   stats))
    return SpikingNetwork(network, k, layers, np.asarray(weights[f"{OUTPUT_NAME}/weights"], np.float32))


# ---------------------------------------------------------------------------- the converted network as a file

SNN_FORMAT = "negspike-snn"  # the ``format`` metadata of an exported converted network
SNN_FORMAT_VERSION = 1
LEVEL_RULE = "round(max(fl32(fl32(z) * scale) + bias, 0) + 1e-5), z exact then rounded to float64 (docs/interop.md)"


def spike_range(rule: str) -> tuple[int, int]:
    """The smallest and largest spike of a level rule, read off its own ``step`` (-1..1 for ``lossless``)."""
    kind = neurons.rule(rule)
    if not neurons.is_level_rule(kind):
        raise ValueError(f"--neuron_rule {rule}: only level rules ({', '.join(level_rules())}) can be exported; "
                         f"the '{rule}' rule keeps a float64 membrane that the file does not describe")
    spike, _ = kind.step(np.array([-9.0, 9.0], np.float32), np.zeros(2, np.float32))
    return int(spike.min()), int(spike.max())


def level_rules() -> list[str]:
    return [name for name, kind in neurons.RULES.items() if neurons.is_level_rule(kind)]


def describe(spiking_net: SpikingNetwork, rule: str = neurons.DEFAULT_RULE) -> dict:
    """The JSON description of a converted network's layers, as :func:`export_snn` writes it (docs/interop.md)."""
    low, high = spike_range(rule)
    shapes = spiking_net.network.shapes()
    layers = []
    for i, (layer, shape_in, shape_out) in enumerate(zip(spiking_net.layers, shapes, shapes[1:]), start=1):
        conv = layer.conv
        layers.append({"name": layer_names(i)[0], "type": "conv", "filters": conv.filters, "kernel": conv.kernel,
                       "stride": conv.stride, "padding": conv.padding,
                       "pads": [list(conv.pads(shape_in[0])), list(conv.pads(shape_in[1]))],
                       "input_shape": list(shape_in), "output_shape": list(shape_out)})
    return {"network": spiking_net.network.name, "dataset": spiking_net.network.dataset, "k": spiking_net.k,
            "input": {"shape": list(spiking_net.network.input_shape), "layout": "NHWC", "times": 2 ** spiking_net.k,
                      "schedule": "the image times `times` at step 1, zeros after"},
            "layers": layers,
            "output": {"name": OUTPUT_NAME, "type": "dense", "features": spiking_net.network.flat_features,
                       "classes": spiking_net.network.classes, "flatten": "NHWC",
                       "rule": "argmax of fl32(counts @ weights), the exact product rounded to float64"},
            "neuron": {"rule": rule, "spike_min": low, "spike_max": high, "level": LEVEL_RULE,
                       "spike": f"clip(level - count, {low}, {high}), each step, layer by layer"}}


def export_snn(spiking_net: SpikingNetwork, path: str | Path, rule: str = neurons.DEFAULT_RULE,
               source: str | Path | None = None) -> None:
    """Write a converted network as one safetensors file, whole or not at all.

    Tensors ``conv<i>/kernel`` (kh, kw, c_in, c_out), ``conv<i>/scale`` (1 / threshold) and ``conv<i>/bias``
    (the initial potential, in thresholds) per hidden layer, and ``output/weights`` (features, classes);
    metadata ``format``, ``format_version``, ``description`` (:func:`describe`, JSON), ``package_version``
    and, with ``source``, the checkpoint's ``source_sha256``.
    """
    from safetensors.numpy import save

    from common.checkpoint import package_version
    from common.provenance import sha256
    from common.fsutil import atomic_write

    tensors = {}
    for i, layer in enumerate(spiking_net.layers, start=1):
        name = layer_names(i)[0]
        tensors.update({f"{name}/kernel": layer.kernel, f"{name}/scale": layer.scale, f"{name}/bias": layer.bias})
    tensors[f"{OUTPUT_NAME}/weights"] = spiking_net.output_weights
    metadata = {"format": SNN_FORMAT, "format_version": str(SNN_FORMAT_VERSION),
                "description": json.dumps(describe(spiking_net, rule)), "package_version": package_version()}
    if source is not None:
        metadata["source_sha256"] = sha256(source)
    data = save({name: np.ascontiguousarray(value, np.float32) for name, value in tensors.items()}, metadata=metadata)
    with atomic_write(path, "wb") as f:
        f.write(data)


def main(argv: list[str] | None = None) -> None:
    """``python -m common.convert export CHECKPOINT DST [--neuron_rule R] [--extension FILE]``: convert and write
    the network."""
    import argparse

    from common import checkpoint, extensions

    parser = argparse.ArgumentParser(
        prog="python -m common.convert",
        description="Convert a quantized checkpoint and write the spiking network as a safetensors file (the folded "
                    "thresholds and biases, the weights, the layers as JSON: docs/interop.md).")
    parser.add_argument("command", choices=["export"])
    parser.add_argument("checkpoint", type=Path, help="a quantized checkpoint, .npz or .safetensors")
    parser.add_argument("dst", type=Path, help="the file to write, e.g. mnist_k1_snn.safetensors")
    parser.add_argument("--neuron_rule", default=neurons.DEFAULT_RULE, choices=level_rules(),
                        help="the level rule the file names (default: %(default)s)")
    parser.add_argument("--extension", action="append", default=[], type=Path, metavar="FILE",
                        help="a Python file registering the checkpoint's network (e.g. examples/digits/digits.py)")
    args = parser.parse_args(argv)
    try:
        extensions.load(args.extension)
        network, k = checkpoint.identify(args.checkpoint)
        if k is None:
            raise CheckpointError(f"{args.checkpoint} is an FP32 checkpoint; convert a quantized one (k >= 0)")
        spiking_net = convert(network, k, checkpoint.load(args.checkpoint, network, k))
        export_snn(spiking_net, args.dst, args.neuron_rule, source=args.checkpoint)
    except (CheckpointError, OSError, ValueError) as e:
        parser.exit(1, f"error: cannot export {args.checkpoint} to {args.dst}: {getattr(e, 'strerror', None) or e}\n")
    print(f"{args.dst}: {network.name} k={k}, {len(spiking_net.layers)} spiking layers, neuron rule {args.neuron_rule}")


if __name__ == "__main__":
    from common import signals

    signals.start_program()  # a stop signal ends the command with one line, after the file in progress
    with signals.working():
        main()
