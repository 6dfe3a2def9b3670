"""Checkpoints: one ``.npz`` of named float32 arrays, loadable with ``allow_pickle=False``.

Keys (the README documents them; the SNN side reads them)::

    conv<i>/filters        (kh, kw, c_in, c_out)  hidden layer i = 1..L, TensorFlow layout
    bn<i>/beta, bn<i>/gamma, bn<i>/moving_mean, bn<i>/moving_var   (c_out,)
    output/weights         (features, classes)
    meta/network           network name, e.g. "mnist_lenet"
    meta/k                 quantization level, -1 for the FP32 baseline
    meta/epoch             epochs completed
    meta/batch             batches completed of the next epoch (an interrupted epoch)
    meta/target_epoch      the epoch the run was training towards (resuming goes on to it)
    meta/format            format version (1)
    meta/history           the training history (JSON text), kept in the same file so the two never disagree
    optimizer/<nnn>        Adam state (iteration, moments), for resuming; optional
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from common.fsutil import atomic_write
from common.model import OUTPUT_NAME, layer_names
from common.networks import Network
import tensorlayer as tl

FORMAT_VERSION = 1
FP32_K = -1


class CheckpointError(Exception):
    """A checkpoint is missing, unreadable, or belongs to another network or k."""


def k_label(k: int | None) -> str:
    return "FP32" if k is None else f"k={k}"


def expected_shapes(network: Network) -> dict[str, tuple[int, ...]]:
    """Name and shape of every weight array of ``network``."""
    shapes: dict[str, tuple[int, ...]] = {}
    in_channels = network.input_shape[2]
    for i, layer in enumerate(network.hidden, start=1):
        conv, bn = layer_names(i)
        shapes[f"{conv}/filters"] = (layer.kernel, layer.kernel, in_channels, layer.filters)
        for stat in ("beta", "gamma", "moving_mean", "moving_var"):
            shapes[f"{bn}/{stat}"] = (layer.filters,)
        in_channels = layer.filters
    shapes[f"{OUTPUT_NAME}/weights"] = (network.flat_features, network.classes)
    return shapes


def save(path: str | Path, network: Network, k: int | None, weights: dict[str, np.ndarray],
         epoch: int, batch: int = 0, optimizer: list[np.ndarray] | None = None,
         target_epoch: int | None = None, history: dict | None = None) -> None:
    """Write a checkpoint atomically: a crash leaves the previous file whole."""
    arrays = {name: np.asarray(weights[name], np.float32) for name in expected_shapes(network)}
    arrays.update({"meta/network": np.array(network.name), "meta/k": np.array(FP32_K if k is None else k),
                   "meta/epoch": np.array(epoch), "meta/batch": np.array(batch),
                   "meta/target_epoch": np.array(epoch if target_epoch is None else target_epoch),
                   "meta/format": np.array(FORMAT_VERSION)})
    if history is not None:
        arrays["meta/history"] = np.array(json.dumps(history))
    for i, value in enumerate(optimizer or []):
        arrays[f"optimizer/{i:03d}"] = np.asarray(value)
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


class Checkpoint(dict):
    """The arrays of a checkpoint, with its metadata as attributes."""

    epoch: int
    batch: int
    target_epoch: int
    optimizer: list[np.ndarray]
    history: dict | None


def load(path: str | Path, network: Network, k: int | None) -> Checkpoint:
    """Read and validate a checkpoint for ``network`` at level ``k``; never unpickles."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; train first (--mode training) "
                              f"or pass --checkpoint")
    if not zipfile.is_zipfile(path):  # np.load would take any other file for a pickle
        raise CheckpointError(f"checkpoint {path} is not a valid .npz file (not a zip archive); "
                              f"it may be truncated or not a checkpoint")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise CheckpointError(f"checkpoint {path} contains pickled objects; refusing to load it") from None
        raise CheckpointError(f"checkpoint {path} is not a valid .npz file ({e})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"checkpoint {path} is not a valid .npz file ({e}); "
                              f"it may be truncated") from None
    meta_network = str(arrays.get("meta/network", ""))
    if meta_network != network.name:
        raise CheckpointError(f"checkpoint {path} is for network '{meta_network or 'unknown'}', "
                              f"not '{network.name}'")
    saved_k = int(arrays.get("meta/k", FP32_K - 1))
    wanted_k = FP32_K if k is None else k
    if saved_k != wanted_k:
        saved = "FP32" if saved_k == FP32_K else f"k={saved_k}"
        raise CheckpointError(f"checkpoint {path} was trained with {saved}, not {k_label(k)}; "
                              f"pass the matching --k or another --checkpoint")
    ckpt = Checkpoint()
    for name, shape in expected_shapes(network).items():
        if name not in arrays:
            raise CheckpointError(f"checkpoint {path} lacks the array '{name}'")
        value = arrays[name]
        if value.shape != shape or value.dtype.kind != "f":
            raise CheckpointError(f"checkpoint {path}: '{name}' has shape {value.shape} ({value.dtype}), "
                                  f"expected {shape} (float32)")
        if not np.all(np.isfinite(value)):
            raise CheckpointError(f"checkpoint {path}: '{name}' holds NaN or infinite values")
        ckpt[name] = value.astype(np.float32)
    ckpt.epoch = int(arrays.get("meta/epoch", 0))
    ckpt.batch = int(arrays.get("meta/batch", 0))
    ckpt.target_epoch = int(arrays.get("meta/target_epoch", ckpt.epoch))
    ckpt.optimizer = [arrays[n] for n in sorted(n for n in arrays if n.startswith("optimizer/"))]
    ckpt.history = None
    if "meta/history" in arrays:
        try:
            ckpt.history = json.loads(str(arrays["meta/history"]))
        except json.JSONDecodeError:
            raise CheckpointError(f"checkpoint {path}: its training history is not valid JSON") from None
    return ckpt


def model_weights(model: tl.models.Model) -> dict[str, np.ndarray]:
    """The named arrays of a TensorLayer model built by :func:`common.model.build_ann`."""
    return {w.name.split(":")[0]: w.numpy() for w in model.all_weights}


def assign(model: tl.models.Model, weights: dict[str, np.ndarray]) -> None:
    for w in model.all_weights:
        w.assign(weights[w.name.split(":")[0]])


def export(src: str | Path, dst: str | Path) -> None:
    """Copy a checkpoint without its optimizer state (for shipping: a third of the size),
    with its training history beside it."""
    src, dst = Path(src), Path(dst)
    with np.load(src, allow_pickle=False) as f:
        arrays = {name: f[name] for name in f.files if not name.startswith("optimizer/")}
    with atomic_write(dst, "wb") as out:
        np.savez(out, **arrays)
    history = src.with_name(src.stem + ".history.json")
    if history.is_file():
        with atomic_write(dst.with_name(dst.stem + ".history.json")) as out:
            out.write(history.read_text())


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 4 or sys.argv[1] != "export":
        sys.exit("usage: python -m common.checkpoint export SRC.npz DST.npz")
    export(sys.argv[2], sys.argv[3])
