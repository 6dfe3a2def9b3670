"""A converted negative-spike network, read and simulated with NumPy alone (nothing of this package).

    python -m common.convert export MNIST/pretrained/k1.npz mnist_k1_snn.safetensors
    python examples/numpy_snn/numpy_snn.py mnist_k1_snn.safetensors \
        --images MNIST/data/mnist/t10k-images-idx3-ubyte.gz \
        --labels MNIST/data/mnist/t10k-labels-idx1-ubyte.gz --log_dir /tmp/numpy_snn

The file (docs/interop.md) holds per hidden layer ``conv<i>/kernel``, ``/scale`` (1 / threshold) and ``/bias``
(initial potential, in thresholds), the output weights, and a JSON description of the layers. A neuron's level
is ``round(max(fl32(fl32(z) * scale) + bias, 0) + 1e-5)`` of the exact integral ``z`` of all its input so far,
and it fires ``clip(level - count, spike_min, spike_max)``: -1 as well as +1 under the lossless rule.
Integrals are float64 products; where their error bound straddles a decision, ``math.fsum`` decides exactly.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64}
TINY = np.finfo(np.float32).tiny


def load(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The description and the tensors of a safetensors file: an 8-byte header length, a JSON header, the data."""
    data = Path(path).read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    meta = header.pop("__metadata__")
    tensors = {name: np.frombuffer(data, DTYPES[t["dtype"]], math.prod(t["shape"]), 8 + size + t["data_offsets"][0])
               .reshape(t["shape"]).astype(np.float32) for name, t in header.items()}
    return json.loads(meta["description"]), tensors


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (MNIST's format), gzip-compressed: big-endian dimensions after a 4-byte magic number."""
    with gzip.open(path) as f:
        raw = f.read()
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(raw[3])]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


def flush(x: np.ndarray) -> np.ndarray:
    """float32, subnormals to zero (as TensorFlow's CPU kernels)."""
    x = np.asarray(x, np.float32)
    return np.where(np.abs(x) < TINY, np.float32(0), x).astype(np.float32)


def exactly(p: np.ndarray, w: np.ndarray, decide: Callable[[np.ndarray, slice | int], np.ndarray]) -> np.ndarray:
    """``decide(p @ w)`` for rows ``p`` and columns of ``w``, as if the products were summed exactly."""
    z = p.astype(np.float64) @ w.astype(np.float64)
    n = p.shape[-1]
    bound = 2 * n * 2.0 ** -53 / (1 - n * 2.0 ** -53) * (np.abs(p).astype(np.float64) @ np.abs(w).astype(np.float64))
    low, high = decide(z - bound, slice(None)), decide(z + bound, slice(None))
    for *row, column in np.argwhere(low != high):  # rare: the float64 sum is too close to a decision
        exact = math.fsum((p[tuple(row)].astype(np.float64) * w[:, column].astype(np.float64)).tolist())
        low[(*row, column)] = decide(np.float64(exact), column)
    return low


def patches(x: np.ndarray, layer: dict) -> np.ndarray:
    """Each output position's receptive field, flattened as the kernel is: ``(B, h, w, kh * kw * c)``."""
    (top, bottom), (left, right) = layer["pads"]
    x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    k, s = layer["kernel"], layer["stride"]
    view = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::s, ::s]
    return view.transpose(0, 1, 2, 4, 5, 3).reshape(*view.shape[:3], -1)


def levels(x: np.ndarray, layer: dict, t: dict[str, np.ndarray]) -> np.ndarray:
    """The level of every neuron of ``layer`` for the cumulative input ``x``."""
    name = layer["name"]
    scale, bias = t[f"{name}/scale"], t[f"{name}/bias"]
    kernel = t[f"{name}/kernel"].reshape(-1, layer["filters"])

    def decide(z: np.ndarray, c: slice | int) -> np.ndarray:
        return np.round(np.maximum(flush(flush(flush(z) * scale[c]) + bias[c]), 0) + np.float32(1e-5))
    return exactly(patches(x, layer), kernel, decide)


def readout(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Output potentials ``fl32(counts @ weights)`` of the last hidden layer's counts (flattened NHWC)."""
    return exactly(counts.reshape(len(counts), -1), weights, lambda z, c: flush(z))


def cover(size: int, layer: dict, axis: int) -> np.ndarray:
    """How many of ``layer``'s receptive fields hold each input position along ``axis``: synapses per spike."""
    k, s, pad, out = layer["kernel"], layer["stride"], layer["pads"][axis][0], layer["output_shape"][axis]
    reached = np.zeros(size, np.int64)
    for o in range(out):
        reached[max(o * s - pad, 0):min(o * s - pad + k, size)] += 1
    return reached


def ann(model: tuple[dict, dict], x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """The exact quantized ANN: every hidden layer's levels (``2^k`` times its activation), and the predictions."""
    description, t = model
    a, acts = np.asarray(x, np.float32) * np.float32(description["input"]["times"]), []
    for layer in description["layers"]:
        a = levels(a, layer, t)
        acts.append(a)
    return acts, readout(a, t["output/weights"]).argmax(axis=1)


def simulate(model: tuple[dict, dict], x: np.ndarray, time_steps: int) -> dict[str, np.ndarray]:
    """Per-step records ``(T, B)``: predictions, |spikes| and net spikes of all hidden layers, synaptic operations;
    and ``counts``, every hidden layer's final spike counts."""
    description, t = model
    layers, neuron = description["layers"], description["neuron"]
    batch, steps = len(x), (time_steps, len(x))
    image = np.asarray(x, np.float32) * np.float32(description["input"]["times"])
    counts = [np.zeros((batch, *layer["output_shape"]), np.float32) for layer in layers]
    reached = [cover(h, nxt, 0)[:, None] * cover(w, nxt, 1)[None] * nxt["filters"]
               for (h, w, _), nxt in zip([a["output_shape"] for a in layers], layers[1:])]
    reached.append(np.full(layers[-1]["output_shape"][:2], description["output"]["classes"]))
    out = {name: np.zeros(steps, np.int64) for name in ("predictions", "spikes", "net", "synops")}
    level = [None] * len(layers)
    for step in range(time_steps):
        cumulative, changed = image, step == 0
        for i, layer in enumerate(layers):
            if changed:  # a layer's level moves only when its input did
                level[i] = levels(cumulative, layer, t)
            spike = np.clip(level[i] - counts[i], neuron["spike_min"], neuron["spike_max"])
            counts[i] += spike
            out["spikes"][step] += np.abs(spike).sum(axis=(1, 2, 3)).astype(np.int64)
            out["net"][step] += spike.sum(axis=(1, 2, 3)).astype(np.int64)
            out["synops"][step] += (np.abs(spike) * reached[i][None, :, :, None]).sum(axis=(1, 2, 3)).astype(np.int64)
            cumulative, changed = counts[i], step == 0 or bool(spike.any())
        out["predictions"][step] = readout(counts[-1], t["output/weights"]).argmax(axis=1)
    return {**out, "counts": counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a converted network (python -m common.convert export)")
    parser.add_argument("--images", required=True, help="test images, an IDX .gz file (pixels / 256, as trained)")
    parser.add_argument("--labels", required=True, help="their labels, an IDX .gz file")
    parser.add_argument("--num_images", type=int, default=10_000)
    parser.add_argument("--time_steps", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=200, help="images per batch: one log line per batch and step")
    parser.add_argument("--log_dir", help="write accuracy.txt, spike_num.txt, spike_collect.txt and sop_num.txt here")
    args = parser.parse_args()
    model = load(args.model)
    x = read_idx(args.images)[:args.num_images, :, :, None].astype(np.float32) / np.float32(256)
    y = read_idx(args.labels)[:args.num_images]
    logs = {"accuracy.txt": [], "spike_num.txt": [], "spike_collect.txt": [], "sop_num.txt": []}
    correct, agree = np.zeros(args.time_steps, np.int64), 0
    for start in range(0, len(x), args.batch_size):
        run = simulate(model, x[start:start + args.batch_size], args.time_steps)
        right = run["predictions"] == y[start:start + args.batch_size]
        correct += right.sum(axis=1)
        agree += int((run["predictions"][-1] == ann(model, x[start:start + args.batch_size])[1]).sum())
        for name, values in zip(logs, (right, run["spikes"], run["net"], run["synops"])):
            logs[name] += (values.sum(axis=1) if name == "accuracy.txt" else values.sum(axis=1).cumsum()).tolist()
    print("SNN accuracy per step:", " ".join(f"{c / len(x):.4f}" for c in correct))
    print(f"agreement with the exact ANN: {agree / len(x):.4f} of {len(x)} images")
    if args.log_dir:
        Path(args.log_dir).mkdir(parents=True, exist_ok=True)
        for name, lines in logs.items():
            Path(args.log_dir, name).write_text("".join(f"{v}\n" for v in lines))


if __name__ == "__main__":
    main()
