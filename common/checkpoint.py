"""Checkpoints: one ``.npz`` of named float32 arrays, loadable with ``allow_pickle=False``.

A shipped checkpoint may hold its filters and output weights as float16 (``export --float16``, for
weights too large to track as float32); loading widens every weight to float32. ``export --format
safetensors`` writes the same weights as a ``.safetensors`` file (the metadata as its string
metadata, see :data:`SAFETENSORS_FORMAT`), which :func:`load` reads with the same checks.

Keys (docs/reliability.md documents them; the SNN side reads them)::

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

import contextlib
import dataclasses
import importlib.metadata
import json
import os
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from common import history as training_history
from common.fsutil import atomic_write, exclusive_lock, first_free_backup
from common.provenance import sha256
from common.networks import OUTPUT_NAME, Network, layer_names

if TYPE_CHECKING:  # reading and writing checkpoints needs no TensorFlow
    import tensorlayer as tl

FORMAT_VERSION = 1
FP32_K = -1
SAFETENSORS_FORMAT = "negspike-checkpoint"  # the ``format`` metadata of an exported .safetensors checkpoint
SAFETENSORS_SUFFIX = ".safetensors"
EXPORT_FORMATS = ("npz", "safetensors")
# metadata keys of a .safetensors checkpoint that hold the .npz's meta/ members (``epochs`` is meta/epoch)
SAFETENSORS_META = {"meta/network": "network", "meta/k": "k", "meta/epoch": "epochs", "meta/batch": "batch",
                    "meta/target_epoch": "target_epoch", "meta/history": "history"}


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


MAX_HISTORY_BYTES = 128 * 2 ** 20  # 100,000 epoch records as NumPy's 4-byte characters, with room to spare
MAX_EPOCH = 100_000
MAX_BATCH = 10 ** 7
# what the reader accepts of each integer: the writer refuses anything else, so every file it writes is readable
META_LIMITS = {"meta/k": (FP32_K, 64), "meta/epoch": (0, MAX_EPOCH), "meta/batch": (0, MAX_BATCH),
               "meta/target_epoch": (0, MAX_EPOCH)}
META_NAMES = ("meta/network", "meta/k", "meta/epoch", "meta/batch", "meta/target_epoch")  # read before the rest


def save(path: str | Path, network: Network, k: int | None, weights: dict[str, np.ndarray],
         epoch: int, batch: int = 0, optimizer: list[np.ndarray] | None = None,
         target_epoch: int | None = None, history: dict | None = None) -> None:
    """Write a checkpoint atomically: a crash leaves the previous file whole. Refuses (before writing)
    anything :func:`load` would refuse to read back: metadata beyond :data:`META_LIMITS`, a history
    beyond :data:`MAX_HISTORY_BYTES`."""
    arrays = _arrays(path, network, k, {name: np.asarray(weights[name], np.float32)
                                        for name in expected_shapes(network)},
                     epoch, batch, epoch if target_epoch is None else target_epoch, history)
    for i, value in enumerate(optimizer or []):
        arrays[f"optimizer/{i:03d}"] = np.asarray(value)
    _write(path, arrays)


def _arrays(path: str | Path, network: Network, k: int | None, weights: dict[str, np.ndarray], epoch: int,
            batch: int, target_epoch: int, history: dict | None) -> dict[str, np.ndarray]:
    """The members of a checkpoint, each checked against what :func:`load` reads back."""
    meta = {"meta/k": FP32_K if k is None else k, "meta/epoch": epoch, "meta/batch": batch,
            "meta/target_epoch": target_epoch}
    for name, value in meta.items():
        low, high = META_LIMITS[name]
        if type(value) is not int or not low <= value <= high:
            raise CheckpointError(f"cannot save checkpoint {path}: '{name}' is {value!r:.40}, but a checkpoint "
                                  f"holds integers {low}..{high}; the previous one, if any, is kept")
    arrays = dict(weights)
    arrays.update({name: np.array(value, np.int64) for name, value in meta.items()})
    arrays.update({"meta/network": np.array(network.name), "meta/format": np.array(FORMAT_VERSION)})
    if history is not None:
        arrays["meta/history"] = np.array(json.dumps(history))
        if arrays["meta/history"].nbytes > MAX_HISTORY_BYTES:
            raise CheckpointError(f"cannot save checkpoint {path}: its training history is "
                                  f"{arrays['meta/history'].nbytes / 2 ** 20:.0f} MiB, more than the "
                                  f"{MAX_HISTORY_BYTES // 2 ** 20} MiB a checkpoint holds; start a new checkpoint")
    return arrays


def _write(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        with atomic_write(path, "wb") as f:
            np.savez(f, **arrays)
    except OSError as e:
        raise CheckpointError(f"cannot write checkpoint {path} ({e.strerror}); the previous one, if any, is "
                              f"kept whole; free some space or pass another --checkpoint") from None


@dataclasses.dataclass(frozen=True, eq=False)
class Checkpoint(Mapping[str, np.ndarray]):
    """A checked checkpoint: its weight arrays by name (``ckpt[name]``, ``for name in ckpt``, ``dict(ckpt)``)
    and its metadata: the epochs completed, the batch within the next one, the epoch training aims at, the
    optimizer's state and the training history, if the file holds one."""

    weights: dict[str, np.ndarray]
    epoch: int = 0
    batch: int = 0
    target_epoch: int = 0
    optimizer: list[np.ndarray] = dataclasses.field(default_factory=list)
    history: dict | None = None

    def __getitem__(self, name: str) -> np.ndarray:
        return self.weights[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.weights)

    def __len__(self) -> int:
        return len(self.weights)


def _read_members(path: Path, wanted: dict[str, tuple[int, ...] | None], max_items: int) -> dict[str, np.ndarray]:
    """The arrays ``wanted`` (name -> shape, ``None``: any shape up to ``max_items``) of an ``.npz``,
    each header checked before its data is read; other members are never decompressed."""
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
        for name, shape in wanted.items():
            if name not in members:
                continue
            with archive.open(members[name]) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    declared, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    declared, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                if dtype.hasobject:
                    raise CheckpointError(f"checkpoint {path} contains pickled objects; refusing to load it")
                items = int(np.prod(declared, dtype=object))
                too_big = items > max_items or (name == "meta/history" and items * dtype.itemsize > MAX_HISTORY_BYTES)
                if (shape is not None and tuple(declared) != shape) or too_big:
                    raise CheckpointError(f"checkpoint {path}: '{name}' has shape {tuple(declared)}"
                                          + (f", expected {shape}" if shape is not None else ", too large")
                                          + "; it is not a checkpoint of this network")
                data = f.read(items * dtype.itemsize)
                if len(data) != items * dtype.itemsize:
                    raise CheckpointError(f"checkpoint {path}: '{name}' is truncated")
                array = np.frombuffer(data, dtype).reshape(declared, order="F" if fortran else "C")
            arrays[name] = array
    return arrays


def is_safetensors(path: Path) -> bool:
    """Whether ``path`` starts as a safetensors file does: an 8-byte header length, then a JSON object."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= size - 8


def _read_safetensors(path: Path, wanted: dict[str, tuple[int, ...] | None], max_items: int) -> dict[str, np.ndarray]:
    """:func:`_read_members` of a ``.safetensors`` checkpoint: each tensor's declared shape is checked before
    its data is read; the metadata strings become the ``meta/`` members an ``.npz`` holds."""
    from safetensors import safe_open

    arrays: dict[str, np.ndarray] = {}
    with safe_open(path, framework="numpy") as f:
        meta = f.metadata() or {}
        if meta.get("format") != SAFETENSORS_FORMAT:
            raise CheckpointError(f"{path} is a safetensors file but not a checkpoint of this package (its "
                                  f"format metadata is {meta.get('format', 'missing')!r:.40}); export one with "
                                  f"python -m common.checkpoint export --format safetensors")
        tensors = set(f.keys())
        for name, shape in wanted.items():
            if name in SAFETENSORS_META:
                value = meta.get(SAFETENSORS_META[name])
                if value is not None:
                    if name == "meta/history" and len(value) * 4 > MAX_HISTORY_BYTES:
                        raise CheckpointError(f"checkpoint {path}: '{name}' is too large")
                    is_int = name not in ("meta/network", "meta/history") and value.lstrip("-").isdigit()
                    arrays[name] = np.array(int(value) if is_int and len(value) < 20 else value)
                continue
            if name not in tensors:
                continue
            declared = tuple(f.get_slice(name).get_shape())
            if (shape is not None and declared != shape) or int(np.prod(declared, dtype=object)) > max_items:
                raise CheckpointError(f"checkpoint {path}: '{name}' has shape {declared}"
                                      + (f", expected {shape}" if shape is not None else ", too large")
                                      + "; it is not a checkpoint of this network")
            arrays[name] = f.get_tensor(name)
    return arrays


def _read_checked(path: Path, wanted: dict[str, tuple[int, ...] | None], max_items: int) -> dict[str, np.ndarray]:
    if is_safetensors(path):
        from safetensors import SafetensorError

        try:
            return _read_safetensors(path, wanted, max_items)
        except CheckpointError:
            raise
        except (SafetensorError, ValueError, OSError, TypeError) as e:  # TypeError: a dtype NumPy lacks (bfloat16)
            raise CheckpointError(f"checkpoint {path} is not a valid .safetensors file ({str(e)[:200]}); it may "
                                  f"be truncated") from None
    try:
        return _read_members(path, wanted, max_items)
    except CheckpointError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {path} is not a valid .npz file ({e}); it may be truncated") from None


def _meta_int(arrays: dict, name: str, default: int, low: int, high: int, path: Path) -> int:
    if name not in arrays:
        return default
    value = arrays[name]
    if value.shape != () or value.dtype.kind not in "iu" or not low <= int(value) <= high:
        raise CheckpointError(f"checkpoint {path}: '{name}' must be an integer in {low}..{high}, got "
                              f"{value.tolist()!r}; the file is damaged or not a checkpoint")
    return int(value)


def load(path: str | Path, network: Network, k: int | None) -> Checkpoint:
    """Read and validate a checkpoint for ``network`` at level ``k``; never unpickles.

    Reads ``.npz`` checkpoints and ``.safetensors`` exports alike (told apart by their content).
    Only the expected members are read, each after its declared shape has been checked, so a
    crafted file cannot make it allocate more than the network's own size. Weights must be finite
    as float32 and variances non-negative: anything else cannot be a trained network.
    """
    path = _check_file(Path(path))
    shapes = expected_shapes(network)
    arrays = _read_checked(path, dict.fromkeys(META_NAMES, ()), 1024)
    _check_identity(path, arrays, network, k)
    rest: dict[str, tuple[int, ...] | None] = {**shapes, "meta/history": ()}
    rest.update({f"optimizer/{i:03d}": None for i in range(2 * len(shapes) + 2)})
    arrays.update(_read_checked(path, rest, sum(int(np.prod(shape)) for shape in shapes.values())))
    weights = _checked_weights(path, arrays, shapes)
    epoch, batch, target_epoch = _checked_position(path, arrays)
    return Checkpoint(weights, epoch, batch, target_epoch, _checked_optimizer(path, arrays),
                      _checked_history(path, arrays))


def _check_file(path: Path) -> Path:
    """``path``, if it is a file that can be a checkpoint: a zip archive or a safetensors file."""
    if path.is_dir():
        raise CheckpointError(f"--checkpoint {path} is a folder; name a .npz file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; train first (--mode training) "
                              f"or pass --checkpoint")
    if not zipfile.is_zipfile(path) and not is_safetensors(path):  # np.load would take any other file for a pickle
        raise CheckpointError(f"checkpoint {path} is not a valid .npz file (not a zip archive); "
                              f"it may be truncated or not a checkpoint")
    return path


def _check_identity(path: Path, meta: dict[str, np.ndarray], network: Network, k: int | None) -> None:
    """Refuse a checkpoint of another network or another k (FP32: ``k`` None) before its weights are read."""
    meta_network = meta.get("meta/network")
    meta_network = str(meta_network) if meta_network is not None and meta_network.dtype.kind == "U" else ""
    if meta_network != network.name:
        raise CheckpointError(f"checkpoint {path} is for network '{meta_network or 'unknown'}', "
                              f"not '{network.name}'")
    saved_k = _meta_int(meta, "meta/k", FP32_K - 1, FP32_K - 1, META_LIMITS["meta/k"][1], path)
    if saved_k != (FP32_K if k is None else k):
        saved = "FP32" if saved_k == FP32_K else ("unknown" if saved_k < FP32_K else f"k={saved_k}")
        raise CheckpointError(f"checkpoint {path} was trained with {saved}, not {k_label(k)}; "
                              f"pass the matching --k or another --checkpoint")


def _checked_weights(path: Path, arrays: dict[str, np.ndarray],
                     shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Every array of the network as float32, each present, finite, and (variances) non-negative."""
    weights = {}
    for name in shapes:
        if name not in arrays:
            raise CheckpointError(f"checkpoint {path} lacks the array '{name}'")
        value = arrays[name]
        if value.dtype.kind != "f":
            raise CheckpointError(f"checkpoint {path}: '{name}' has dtype {value.dtype}, expected a float")
        with np.errstate(over="ignore"):
            value = value.astype(np.float32)
        if not np.all(np.isfinite(value)):
            raise CheckpointError(f"checkpoint {path}: '{name}' holds NaN or infinite values as float32; "
                                  f"it cannot be a trained network")
        if name.endswith("/moving_var") and (value < 0).any():
            raise CheckpointError(f"checkpoint {path}: '{name}' holds negative variances; "
                                  f"it cannot be a trained network")
        weights[name] = value
    return weights


def _checked_position(path: Path, arrays: dict[str, np.ndarray]) -> tuple[int, int, int]:
    """Where training stands: epochs completed, batches into the next, and the epoch it aims at."""
    epoch = _meta_int(arrays, "meta/epoch", 0, *META_LIMITS["meta/epoch"], path)
    batch = _meta_int(arrays, "meta/batch", 0, *META_LIMITS["meta/batch"], path)
    return epoch, batch, _meta_int(arrays, "meta/target_epoch", epoch, *META_LIMITS["meta/target_epoch"], path)


def _checked_optimizer(path: Path, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The optimizer's state in order: numbers, finite, its step count not negative."""
    names = sorted(n for n in arrays if n.startswith("optimizer/"))
    for name in names:
        state = arrays[name]
        if state.dtype.kind not in "iuf" or (state.dtype.kind == "f" and not np.isfinite(state).all()) \
                or (state.ndim == 0 and state < 0):
            raise CheckpointError(f"checkpoint {path}: the optimizer state '{name}' holds "
                                  f"{'NaN or infinite values' if state.dtype.kind == 'f' else 'no numbers'}"
                                  f"{' or a negative count' if state.ndim == 0 else ''}; the file is damaged; "
                                  f"resume from a backup, or train afresh with --resume False")
    return [arrays[name] for name in names]


def _checked_history(path: Path, arrays: dict[str, np.ndarray]) -> dict | None:
    """The training history the checkpoint holds, parsed and checked; None if it holds none."""
    if "meta/history" not in arrays:
        return None
    history = arrays["meta/history"]
    if history.dtype.kind != "U":
        raise CheckpointError(f"checkpoint {path}: its training history is not text")
    try:
        return training_history.parse(str(history), f"checkpoint {path}")
    except training_history.HistoryError as e:
        raise CheckpointError(str(e)) from None


def is_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a checkpoint of this package (a zip with ``meta/network``), of any network."""
    try:
        with zipfile.ZipFile(path) as archive:
            return "meta/network.npy" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


@contextlib.contextmanager
def writer_lock(path: Path) -> Iterator[None]:
    """Hold ``path`` for one training run: refuse a second writer, clean what a killed run left.

    Checks first that ``path`` can be a checkpoint file (not a folder, in a writable folder).
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"--checkpoint {path} is a folder; name a .npz file, e.g. {path / 'k1.npz'}")
    with exclusive_lock(path.with_name(f".{path.name}.lock"),
                        busy_message=f"another training run is writing {path}; wait for it, or pass another "
                                     f"--checkpoint",
                        cannot_message=f"cannot write a checkpoint into {path.parent} ({{reason}}); "
                                       f"pass another --checkpoint", error=CheckpointError):
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # temporary files of a run killed mid-write
            stale.unlink(missing_ok=True)
        for stale in path.parent.glob(f".{training_history.path_of(path).name}.*.tmp"):
            stale.unlink(missing_ok=True)
        yield


def back_up(path: Path) -> Path:
    """Move an existing checkpoint of ours (and its history) aside to the first free ``<name>.bak[N]``;
    never overwrites an earlier backup, never moves anything that is not a checkpoint."""
    if not is_checkpoint(path):
        raise CheckpointError(f"{path} exists and is not a checkpoint of this package; move it away or pass "
                              f"another --checkpoint")
    backup = first_free_backup(path)
    os.replace(path, backup)
    history = training_history.path_of(path)
    if history.is_file():
        os.replace(history, backup.with_name(backup.name + training_history.SUFFIX))
    return backup


def model_weights(model: tl.models.Model) -> dict[str, np.ndarray]:
    """The named arrays of a TensorLayer model built by :func:`common.model.build_ann`."""
    return {w.name.split(":")[0]: w.numpy() for w in model.all_weights}


def assign(model: tl.models.Model, weights: dict[str, np.ndarray]) -> None:
    for w in model.all_weights:
        w.assign(weights[w.name.split(":")[0]])


FLOAT16_SIGNIFICANT = 1e-4  # relative to a layer's largest weight: smaller ones may underflow to 0 in float16


def export(src: str | Path, dst: str | Path, float16: bool = False, file_format: str | None = None) -> None:
    """Copy a checkpoint without its optimizer state (for shipping: a third of the size), with its
    training history beside it; ``float16`` also rounds the filters and output weights to half
    precision (half the size again), keeping the small BatchNorm statistics in float32.

    Args:
        src: a checkpoint, ``.npz`` or ``.safetensors``.
        dst: the file to write (whole or not at all).
        float16: store filters and output weights as float16.
        file_format: ``"npz"`` or ``"safetensors"``; ``None``: ``safetensors`` if ``dst`` ends in
            ``.safetensors``, else ``npz``. A safetensors export holds the weights as tensors and the
            metadata as strings (:func:`safetensors_metadata`).

    The source is read by :func:`load`, with all its checks (a checkpoint of a known network, finite
    weights, declared shapes checked before anything is decompressed). Weights that float16 would
    turn into infinities or zeros are refused, naming the member.
    """
    src, dst = Path(src), Path(dst)
    file_format = file_format or ("safetensors" if dst.suffix == SAFETENSORS_SUFFIX else "npz")
    if file_format not in EXPORT_FORMATS:
        raise CheckpointError(f"--format {file_format}: expected one of {', '.join(EXPORT_FORMATS)}")
    network, k = identify(src)
    ckpt = load(src, network, k)
    weights = dict(ckpt)
    if float16:
        for name in [n for n in weights if n.endswith(("/filters", "/weights"))]:
            with np.errstate(over="ignore", under="ignore"):
                half = weights[name].astype(np.float16)
            if not np.all(np.isfinite(half)):
                raise CheckpointError(f"'{name}' of {src} exceeds float16's range; export it without --float16")
            # a weight a ten-thousandth of its layer's largest or more must not vanish; smaller ones never mattered
            significant = np.abs(weights[name]) >= FLOAT16_SIGNIFICANT * np.abs(weights[name]).max()
            lost = (half == 0) & (weights[name] != 0) & significant
            if lost.any():
                raise CheckpointError(f"'{name}' of {src} has {int(lost.sum())} weights below float16's range "
                                      f"(they would become 0, e.g. {weights[name][lost].flat[0]:.3g}); export it "
                                      f"without --float16")
            weights[name] = half
    history = training_history.path_of(src)
    history_text = history.read_text() if history.is_file() else None  # read first: dst may be src
    arrays = _arrays(dst, network, k, weights, ckpt.epoch, ckpt.batch, ckpt.target_epoch, ckpt.history)
    if file_format == "safetensors":
        _write_safetensors(dst, weights, safetensors_metadata(src, arrays))
    else:
        _write(dst, arrays)
    if history_text is not None:
        with atomic_write(training_history.path_of(dst)) as out:
            out.write(history_text)


def package_version() -> str:
    """This package's version, as installed (``unknown`` when it runs from a checkout that is not installed)."""
    try:
        return importlib.metadata.version("negspike")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def safetensors_metadata(src: Path, arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """The string metadata of a safetensors export of ``src`` (whose checked members are ``arrays``).

    ``network``, ``k`` (-1: FP32), ``epochs`` (completed), ``batch``, ``target_epoch``; ``precision``:
    what training computed in (``float32``, or ``bfloat16`` with ``--precision``); ``weights_dtype``: how
    filters and output weights are stored; ``package``, ``package_version``, ``source_sha256`` (of
    ``src``) and ``history`` (the training history, JSON), as :func:`load` reads them back."""
    history = json.loads(str(arrays["meta/history"])) if "meta/history" in arrays else None
    precisions = sorted({run.get("settings", {}).get("precision", "float32")
                         for run in (history or {}).get("runs", [])} or {"float32"})
    meta = {"format": SAFETENSORS_FORMAT, "format_version": str(FORMAT_VERSION),
            "precision": "+".join(precisions), "weights_dtype": str(arrays[f"{OUTPUT_NAME}/weights"].dtype),
            "package": "negspike", "package_version": package_version(), "source_sha256": sha256(src)}
    meta.update({key: str(arrays[name]) for name, key in SAFETENSORS_META.items() if name in arrays})
    return meta


def _write_safetensors(path: Path, weights: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    from safetensors.numpy import save

    data = save({name: np.ascontiguousarray(value) for name, value in weights.items()}, metadata=metadata)
    try:
        with atomic_write(path, "wb") as f:
            f.write(data)
    except OSError as e:
        raise CheckpointError(f"cannot write {path} ({e.strerror}); the previous one, if any, is kept whole; "
                              f"free some space or name another file") from None


def identify(path: str | Path) -> tuple[Network, int | None]:
    """The network and k a checkpoint (``.npz`` or ``.safetensors``) says it holds, read from its metadata.

    The network is looked up among the registered ones, those of the extensions in ``$NEGSPIKE_EXTENSIONS``
    included (:mod:`common.extensions`)."""
    from common import extensions
    from common.networks import NETWORKS

    extensions.load()
    path = Path(path)
    if not path.is_file() or not (zipfile.is_zipfile(path) or is_safetensors(path)):
        what = "does not exist" if not path.exists() else "is not a checkpoint (neither .npz nor .safetensors)"
        raise CheckpointError(f"{path} {what}")
    meta = _read_checked(path, {"meta/network": (), "meta/k": ()}, 1024)
    name = meta.get("meta/network")
    name = str(name) if name is not None and name.dtype.kind == "U" else None
    if name not in NETWORKS:
        raise CheckpointError(f"{path} is not a checkpoint of this package (its meta/network is "
                              f"{'missing' if name is None else repr(name[:40])}; a network of an extension is "
                              f"known once --extension FILE or $NEGSPIKE_EXTENSIONS names the file registering it)")
    k = _meta_int(meta, "meta/k", FP32_K - 1, *META_LIMITS["meta/k"], path)
    return NETWORKS[name], None if k == FP32_K else k


def main(argv: list[str] | None = None) -> None:
    """``python -m common.checkpoint export SRC DST [--float16] [--format F] [--extension FILE]``."""
    import argparse

    from common import extensions

    parser = argparse.ArgumentParser(prog="python -m common.checkpoint",
                                     description="Export a checkpoint for shipping, without optimizer state.")
    parser.add_argument("command", choices=["export"])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--float16", action="store_true", help="store filters and output weights as float16")
    parser.add_argument("--format", choices=EXPORT_FORMATS, default=None,
                        help="npz (this package's checkpoint) or safetensors (weights as tensors, the metadata as "
                             "strings); default: safetensors if DST ends in .safetensors, else npz")
    parser.add_argument("--extension", action="append", default=[], type=Path, metavar="FILE",
                        help="a Python file registering the checkpoint's network (e.g. examples/digits/digits.py)")
    args = parser.parse_args(argv)
    try:
        extensions.load(args.extension)
        export(args.src, args.dst, float16=args.float16, file_format=args.format)
    except (CheckpointError, OSError, ValueError, zipfile.BadZipFile) as e:
        parser.exit(1, f"error: cannot export {args.src} to {args.dst}: {getattr(e, 'strerror', None) or e}\n")


if __name__ == "__main__":
    from common import signals

    signals.start_program()  # a stop signal ends the command with one line, after the file in progress
    with signals.working():
        main()
