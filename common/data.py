"""Datasets, each described once, and the loaders and input pipelines that read the descriptions.

A :class:`Dataset` is one entry of :data:`DATASETS`: its files and their format (a format object:
:class:`IdxDataset` for MNIST-style IDX files, :class:`CifarBatches` for CIFAR python batches,
:class:`NpzArrays` for a user's own ``.npz``), the network input shape, the classes, the
evaluation preprocessing, the training augmentation and the held-out split. A network names its
dataset (:attr:`common.networks.Network.dataset`); nothing here branches on that name. A user's
own arrays are one entry::

    data.register(data.Dataset("my_data", data.NpzArrays("my_data"), input_shape=(8, 8, 1), classes=10))

reads ``<data root>/my_data/data.npz`` holding ``x_train, y_train, x_test, y_test``.

Files are looked up under a data root laid out as TensorLayer does (``mnist/``,
``fashion_mnist/``, ``cifar10/cifar-10-batches-py/``). The root is ``--data_dir``, else
the environment variable ``NEGSPIKE_DATA``, else ``<workspace>/data``; FashionMNIST is
also found where Debian's ``dataset-fashion-mnist`` puts it. Missing files of the public
datasets are downloaded from the canonical mirrors and checked against their checksums.
"""

from __future__ import annotations

import codecs
import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import pickletools
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from common import registry
from common.env import DATA_ENV
from common.fsutil import atomic_write

if TYPE_CHECKING:  # describing and reading data needs no TensorFlow; the pipelines import it when they run
    import tensorflow as tf

VALIDATION_SIZE = 10_000  # the original holds out the last 10,000 training images
CIFAR_CROP = 24
CIFAR_MAX_BYTES = 64 * 2 ** 20  # a batch of 10,000 images is 31 MB


class DataError(Exception):
    """A dataset file is missing, truncated or not in the expected format."""


@dataclasses.dataclass(frozen=True)
class IdxDataset:
    """The IDX format (MNIST's): folder name, extra folders to search, mirrors, content md5s.

    Images are read as float32 ``(n, 28, 28, 1)`` scaled by 1/256 (as TensorLayer did).
    """

    folder: str
    mirrors: tuple[str, ...]
    md5: dict[str, str]  # file name -> md5 of the decompressed file
    system_folders: tuple[str, ...] = ()

    def files(self, source: str) -> tuple[str, ...]:
        """The files of ``source``, ``train`` or ``test``."""
        return SPLIT_FILES[source]

    def read(self, folder: Path, source: str, classes: int) -> tuple[np.ndarray, np.ndarray]:
        images, labels = self.files(source)
        return read_idx_split(folder / images, folder / labels, classes)

    def download(self, names: tuple[str, ...], folder: Path) -> str | None:
        """Fetch the missing ``names`` into ``folder``; None, or what went wrong."""
        problems = [_download_idx(self, n, folder) for n in names if not (folder / n).is_file()]
        # every file tried every mirror: name each mirror's failure once
        failures = dict.fromkeys(part for p in problems if p for part in p.split("; "))
        return "; ".join(failures) or None


MNIST = IdxDataset("mnist", (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
), {
    "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
})

FASHION_MNIST = IdxDataset("fashion_mnist", (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
), {
    "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
}, system_folders=("/usr/share/datasets/fashion-mnist",))

CIFAR10_FOLDER = "cifar10/cifar-10-batches-py"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_TAR_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = ("test_batch",)


@dataclasses.dataclass(frozen=True)
class CifarBatches:
    """The CIFAR python format: pickled batches of uint8 ``(n, 32, 32, 3)`` images, downloaded as one tar.

    ``label_key`` is ``b"labels"`` for CIFAR-10 (CIFAR-100 has ``b"fine_labels"``).
    """

    folder: str
    url: str
    tar_md5: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    extra: tuple[str, ...] = ()  # other files of the tar kept beside the batches
    label_key: bytes = b"labels"
    system_folders: tuple[str, ...] = ()

    def files(self, source: str) -> tuple[str, ...]:
        return self.test if source == "test" else self.train

    def read(self, folder: Path, source: str, classes: int) -> tuple[np.ndarray, np.ndarray]:
        parts = [read_cifar_batch(folder / n, self.label_key, classes) for n in self.files(source)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def download(self, names: tuple[str, ...], folder: Path) -> str | None:
        return _download_cifar(self, folder)


@dataclasses.dataclass(frozen=True)
class NpzArrays:
    """A user's own data: one ``.npz`` holding ``x_train, y_train, x_test, y_test``.

    Images are ``(n, h, w, c)`` or ``(n, h, w)`` (one channel), any real type, multiplied by
    ``scale`` into float32; labels are integers ``0 .. classes - 1``. Nothing is downloaded.
    """

    folder: str
    file: str = "data.npz"
    scale: float = 1.0
    system_folders: tuple[str, ...] = ()

    def files(self, source: str) -> tuple[str, ...]:
        return (self.file,)

    def read(self, folder: Path, source: str, classes: int) -> tuple[np.ndarray, np.ndarray]:
        return read_npz_split(folder / self.file, source, classes, self.scale)

    def download(self, names: tuple[str, ...], folder: Path) -> str | None:
        return "a user's own .npz has no download"

SPLIT_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
               "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def data_roots(data_dir: str | None, workspace: Path) -> list[Path]:
    """Where to look, first match wins: ``--data_dir``, else ``$NEGSPIKE_DATA`` then ``<workspace>/data``."""
    if data_dir:
        return [Path(data_dir).expanduser()]
    roots = [Path(os.environ[DATA_ENV]).expanduser()] if os.environ.get(DATA_ENV) else []
    if roots and roots[0].exists() and not roots[0].is_dir():  # a file: refused, not silently skipped
        raise DataError(f"{DATA_ENV}={os.environ[DATA_ENV]} is not a folder; point it at the data root holding "
                        f"mnist/, fashion_mnist/ or cifar10/, or unset it")
    return roots + [workspace / "data"]


# ---------------------------------------------------------------------------- IDX files

IDX_MAX_ITEMS = 70_000  # MNIST and FashionMNIST: 60,000 training and 10,000 test images
IDX_IMAGE_SIZE = 28


def read_idx(path: Path, expected_ndim: int) -> np.ndarray:
    """Read one gzip-compressed IDX file of unsigned bytes, checking magic number and sizes.

    The header is checked against the datasets' known sizes before any data is read, and no
    more than the header announces is decompressed, so a crafted file cannot exhaust memory.
    """
    try:
        with gzip.open(path, "rb") as f:
            header = f.read(4 + 4 * expected_ndim)
            if len(header) < 4 or header[:3] != b"\x00\x00\x08" or header[3] != expected_ndim:
                raise DataError(f"{path}: not an IDX file of {expected_ndim}-D unsigned bytes (bad magic number)")
            if len(header) < 4 + 4 * expected_ndim:
                raise DataError(f"{path}: IDX header is truncated")
            dims = tuple(int.from_bytes(header[4 + 4 * i:8 + 4 * i], "big") for i in range(expected_ndim))
            if dims[0] > IDX_MAX_ITEMS or any(d != IDX_IMAGE_SIZE for d in dims[1:]):
                raise DataError(f"{path}: header says {dims}; expected at most {IDX_MAX_ITEMS} items"
                                + (f" of {IDX_IMAGE_SIZE}x{IDX_IMAGE_SIZE}" if expected_ndim == 3 else "")
                                + "; the file is not MNIST or FashionMNIST")
            size = int(np.prod(dims, dtype=object))
            raw = f.read(size + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a readable gzip file ({e}); delete it and download it again") from None
    if len(raw) != size:
        raise DataError(f"{path}: header says {dims} ({size} bytes) but the file holds "
                        f"{'more' if len(raw) > size else len(raw)} bytes; the file is truncated or corrupt")
    return np.frombuffer(raw, np.uint8).reshape(dims)


def read_idx_split(images_path: Path, labels_path: Path, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Images as float32 ``(n, h, w, 1)`` scaled by 1/256 (as TensorLayer did), labels as int64."""
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} holds "
                        f"{len(labels)} labels")
    if labels.size and labels.max() >= classes:
        raise DataError(f"{labels_path}: label {labels.max()} is not a class 0..{classes - 1}")
    x = images.astype(np.float32)[..., None] / np.float32(256.0)
    return x, labels.astype(np.int64)


# ---------------------------------------------------------------------------- CIFAR-10 batches

def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy 1
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _CheckedArray(np.ndarray):
    """An ndarray being unpickled: its declared shape is checked before NumPy allocates it."""

    def __setstate__(self, state):
        shape = state[1] if isinstance(state, tuple) and len(state) == 5 else None
        if not (isinstance(shape, tuple) and all(type(d) is int and d >= 0 for d in shape)
                and int(np.prod(shape, dtype=object)) <= CIFAR_MAX_BYTES):
            raise pickle.UnpicklingError(f"an array of shape {str(shape)[:60]} is not part of a CIFAR-10 batch")
        super().__setstate__(state)


def _reconstruct_checked(cls, shape, dtype):
    if cls is not np.ndarray:
        raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r:.60}")
    return _numpy_reconstruct()(_CheckedArray, shape, dtype)


def _latin1(text: str, encoding: str) -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes in protocol 2, and nothing else."""
    if type(text) is not str or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing to encode with {str(encoding)[:40]!r}")
    return codecs.encode(text, "latin1")


# opcodes that build objects other than dicts, lists, tuples, strings, numbers and the arrays above
_REFUSED_OPCODES = {"PERSID", "BINPERSID", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4",
                    "BYTEARRAY8", "NEXT_BUFFER", "READONLY_BUFFER"}


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR-10 batch holds: dicts, lists, bytes, ints and uint8 arrays."""

    _ALLOWED = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                ("_codecs", "encode"): _latin1,  # how Python 3 writes bytes in protocol 2
                ("numpy.core.multiarray", "_reconstruct"): _reconstruct_checked,
                ("numpy._core.multiarray", "_reconstruct"): _reconstruct_checked}

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {str(module)[:60]}.{str(name)[:60]}")
        return self._ALLOWED[(module, name)]


def _check_opcodes(raw: bytes) -> None:
    """Walk the pickle's opcodes before unpickling: every declared length is checked against the bytes
    that are there (a ``BINBYTES8`` of 2^60 fails here, before anything is allocated)."""
    for opcode, _, _ in pickletools.genops(raw):
        if opcode.name in _REFUSED_OPCODES:
            raise pickle.UnpicklingError(f"opcode {opcode.name} is not part of a CIFAR-10 batch")


def read_cifar_batch(path: Path, label_key: bytes = b"labels", classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """One python batch as uint8 images ``(n, 32, 32, 3)`` and int64 labels (``label_key``), never running code."""
    if path.stat().st_size > CIFAR_MAX_BYTES:
        raise DataError(f"{path}: {path.stat().st_size:,} bytes is too large for a CIFAR-10 batch")
    try:
        raw = path.read_bytes()
        _check_opcodes(raw)
        batch = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OSError, LookupError, MemoryError, RecursionError, OverflowError) as e:
        raise DataError(f"{path}: not a CIFAR python batch ({str(e)[:200]})") from None
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise DataError(f"{path}: not a CIFAR python batch (no b'data' and {label_key!r} entries)")
    data, labels = batch[b"data"], batch[label_key]
    data = data.view(np.ndarray) if isinstance(data, np.ndarray) else data
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", type(data).__name__)
        raise DataError(f"{path}: b'data' must be a uint8 array of shape (n, 3072), got {shape}")
    if not isinstance(labels, list) or len(labels) != len(data):
        raise DataError(f"{path}: {len(data)} images but {len(labels) if isinstance(labels, list) else 'no'} labels")
    if not all(type(v) is int and 0 <= v < classes for v in labels):  # no bools, floats, lists or strings
        raise DataError(f"{path}: labels must be integers 0..{classes - 1}; the file is corrupt")
    labels = np.asarray(labels, np.int64)
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


# ---------------------------------------------------------------------------- a user's .npz

def read_npz_split(path: Path, source: str, classes: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``x_<source>`` as float32 NHWC times ``scale`` and ``y_<source>`` as int64 from an ``.npz``, no pickles."""
    try:
        with np.load(path, allow_pickle=False) as f:
            x, y = f[f"x_{source}"], f[f"y_{source}"]
    except KeyError:
        raise DataError(f"{path}: no x_{source} and y_{source} arrays; a dataset .npz holds x_train, y_train, "
                        f"x_test and y_test") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz of arrays ({e})") from None
    if x.ndim == 3:
        x = x[..., None]  # one channel
    if x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
        raise DataError(f"{path}: x_{source} {x.shape} and y_{source} {y.shape} must be n images (n, h, w[, c]) "
                        f"and n labels")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise DataError(f"{path}: x_{source} must hold numbers, not {x.dtype}")
    if not np.issubdtype(y.dtype, np.integer) or (y.size and (y.min() < 0 or y.max() >= classes)):
        raise DataError(f"{path}: y_{source} must hold integer classes 0..{classes - 1}")
    images = x.astype(np.float32) * np.float32(scale)
    if not np.isfinite(images).all():
        raise DataError(f"{path}: x_{source} holds NaN or infinite values")
    return images, y.astype(np.int64)


# ---------------------------------------------------------------------------- locating and downloading

def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _download(url: str, timeout: float = 30.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def _download_idx(spec: IdxDataset, name: str, folder: Path) -> str | None:
    """Fetch ``name`` into ``folder`` from the first mirror whose file passes the checksum."""
    errors = []
    for mirror in spec.mirrors:
        try:
            raw = _download(mirror + name)
            content = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error, ValueError) as e:
            errors.append(f"{mirror}: {e}")
            continue
        if _md5(content) != spec.md5[name]:
            errors.append(f"{mirror}: checksum mismatch")
            continue
        with atomic_write(folder / name, "wb") as f:
            f.write(raw)
        return None
    return "; ".join(errors)


def _download_cifar(spec: CifarBatches, folder: Path) -> str | None:
    try:
        raw = _download(spec.url, timeout=120.0)
    except OSError as e:
        return f"{spec.url}: {e}"
    if _md5(raw) != spec.tar_md5:
        return f"{spec.url}: checksum mismatch"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        tar_path = Path(tmp) / "cifar.tar.gz"
        tar_path.write_bytes(raw)
        with tarfile.open(tar_path) as tar:
            tar.extractall(tmp, filter="data")
        for name in spec.train + spec.test + spec.extra:
            shutil.move(str(Path(tmp) / Path(spec.folder).name / name), folder / name)
    return None


def locate(dataset: str | Dataset, names: tuple[str, ...], roots: list[Path], download: bool = True) -> Path:
    """The first folder holding all of ``names``; downloads into the first root if none does."""
    spec = dataset_of(dataset)
    dataset, sub = spec.name, spec.format.folder
    folders = [root / sub for root in roots] + [Path(p) for p in spec.format.system_folders]
    for folder in folders:
        if all((folder / n).is_file() for n in names):
            return folder
    target = folders[0]
    problem = "downloads are off"
    if download:
        problem = spec.format.download(names, target)
        if problem is None:
            return target
    missing = ", ".join(n for n in names if not (target / n).is_file())
    searched = ", ".join(str(f) for f in folders)
    raise DataError(f"{dataset}: missing {missing}; searched {searched}; download failed ({problem}). "
                    f"Put the original files in one of these folders, set {DATA_ENV} to a data root "
                    f"holding {sub}/, or pass --data_dir")


def files_of(dataset: str | Dataset, splits: tuple[str, ...]) -> tuple[str, ...]:
    """Every file the ``splits`` of ``dataset`` are read from (with the held-out split's, when training)."""
    spec = dataset_of(dataset)
    sources = {spec.source_of(split) for split in splits}
    if "train" in splits:
        sources.add(spec.source_of(spec.held_out))
    return tuple(dict.fromkeys(name for source in ("train", "test") if source in sources
                               for name in spec.format.files(source)))  # an .npz holds every split


# ---------------------------------------------------------------------------- splits

@dataclasses.dataclass
class Split:
    """Images (NHWC; float32 for IDX, uint8 for CIFAR-10) and int64 labels."""

    x: np.ndarray
    y: np.ndarray
    files: tuple[Path, ...] = ()  # the files it was read from, for the run record

    def __len__(self) -> int:
        return len(self.y)

    def head(self, n: int | None) -> Split:
        return self if n is None else Split(self.x[:n], self.y[:n], self.files)


def load_split(dataset: str | Dataset, split: str, roots: list[Path], download: bool = True) -> Split:
    """``split`` is ``train`` (the training file but its last ``validation_size`` images), ``validation``
    (those last images) or ``test``."""
    spec = dataset_of(dataset)
    if split == "validation" and not spec.validation_size:
        raise DataError(f"{spec.name} has no validation split; it validates on the test set")
    source = "test" if split == "test" else "train"
    names = spec.format.files(source)
    folder = locate(spec, names, roots, download)
    x, y = spec.format.read(folder, source, spec.classes)
    if spec.eval_preprocess is None and x.shape[1:] != spec.input_shape:
        raise DataError(f"{spec.name}: images of {folder / names[0]} are {x.shape[1:]}; the dataset's networks "
                        f"take {spec.input_shape}")
    files = tuple(folder / n for n in names)
    held = spec.validation_size if source == "train" else 0
    if split == "train" and held:
        return Split(x[:-held], y[:-held], files)
    if split == "validation":
        return Split(x[-held:], y[-held:], files)
    return Split(x, y, files)


# ---------------------------------------------------------------------------- pipelines

def cifar_eval_preprocess(images: np.ndarray) -> tf.Tensor:
    """The original's test path: central 24x24 crop, then per-image standardization."""
    import tensorflow as tf

    x = tf.image.resize_with_crop_or_pad(tf.cast(images, tf.float32), CIFAR_CROP, CIFAR_CROP)
    return tf.image.per_image_standardization(x)


def _cifar_augment(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """The original's training path, with stateless ops so that a seed fixes every draw."""
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, 4)
    x = tf.image.stateless_random_crop(tf.cast(image, tf.float32), [CIFAR_CROP, CIFAR_CROP, 3], seeds[0])
    x = tf.image.stateless_random_flip_left_right(x, seeds[1])
    x = tf.image.stateless_random_brightness(x, 63.0, seeds[2])
    x = tf.image.stateless_random_contrast(x, 0.2, 1.8, seeds[3])
    return tf.image.per_image_standardization(x)


def eval_inputs(dataset: str | Dataset, split: Split) -> np.ndarray:
    """Network inputs of the evaluation path, as float32 NHWC."""
    preprocess = dataset_of(dataset).eval_preprocess
    return np.asarray(preprocess(split.x)) if preprocess else split.x


def train_batches(dataset: str | Dataset, split: Split, batch_size: int, seed: int, epoch: int,
                  skip: int = 0, shard: tuple[int, int] = (0, 1)) -> tf.data.Dataset:
    """One epoch of shuffled training batches; ``(seed, epoch)`` fixes order and augmentation.

    The last partial batch is dropped, as the original's minibatch iterator did; ``skip``
    batches are passed over, to resume an epoch that was interrupted. ``shard=(i, n)`` keeps
    the ``i``-th of ``n`` equal slices of every batch: one worker's part of a distributed run,
    with the same images and augmentation draws as the whole batch has on one device.
    """
    import tensorflow as tf

    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(split))
    seeds = rng.integers(0, 2 ** 31 - 1, size=(len(split), 2), dtype=np.int64)  # drawn whole: skip keeps them
    n_batches = max(1, len(split) // batch_size)
    keep = slice(skip * batch_size, n_batches * batch_size if len(split) >= batch_size else len(split))
    order, seeds = order[keep], seeds[keep]
    index, shards = shard
    if shards > 1:  # batches are full here (a distributed run checks that)
        width = batch_size // shards
        part = slice(index * width, (index + 1) * width)
        order = order.reshape(-1, batch_size)[:, part].reshape(-1)
        seeds = seeds.reshape(-1, batch_size, 2)[:, part].reshape(-1, 2)
        batch_size = width
    x, y = split.x[order], split.y[order]
    augment = dataset_of(dataset).augment
    if augment is not None:
        ds = tf.data.Dataset.from_tensor_slices((x, y, seeds))
        ds = ds.map(lambda img, lab, s: (augment(img, s), lab), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)
    else:
        ds = tf.data.Dataset.from_tensor_slices((x, y))
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def eval_batches(inputs: np.ndarray, labels: np.ndarray, batch_size: int) -> tf.data.Dataset:
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(batch_size).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------- the datasets

@dataclasses.dataclass(frozen=True)
class Dataset:
    """One dataset, described once; every loader and pipeline reads this and nothing else.

    Args:
        name: what a :class:`common.networks.Network` names as its ``dataset``.
        format: its files and how they are read and downloaded (:class:`IdxDataset`,
            :class:`CifarBatches` or :class:`NpzArrays`).
        input_shape: ``(height, width, channels)`` of the network input (after ``eval_preprocess``).
        classes: labels are ``0 .. classes - 1``.
        validation_size: the last images of the training file held out for validation; 0 holds out
            the test set instead (as the original did for CIFAR-10).
        eval_preprocess: stored images to network inputs on the evaluation path; None: as stored.
        augment: ``(image, seed) -> network input`` on the training path (stateless ops, so that a
            seed fixes every draw); None: as stored.
    """

    name: str
    format: IdxDataset | CifarBatches | NpzArrays
    input_shape: tuple[int, int, int]
    classes: int = 10
    validation_size: int = 0
    eval_preprocess: Callable[[np.ndarray], tf.Tensor | np.ndarray] | None = None
    augment: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None = None

    @property
    def held_out(self) -> str:
        """The split training reports after every epoch: ``validation``, or ``test`` if none is held out."""
        return "validation" if self.validation_size else "test"

    def source_of(self, split: str) -> str:
        """The files a split is read from: ``train`` or ``test``."""
        return "test" if split == "test" or (split == "validation" and not self.validation_size) else "train"


DATASETS: dict[str, Dataset] = {}


def register(dataset: Dataset) -> Dataset:
    """Add ``dataset`` to :data:`DATASETS` under its name; returns it. A second, different dataset of the same name
    is refused with a ValueError (the same description again, from a module imported twice, changes nothing)."""
    return registry.add(DATASETS, dataset.name, dataset, "dataset")


def dataset_of(dataset: str | Dataset) -> Dataset:
    """The description of ``dataset`` (a name in :data:`DATASETS`, or a description itself)."""
    if isinstance(dataset, Dataset):
        return dataset
    if dataset not in DATASETS:
        raise DataError(f"no dataset called {dataset!r}; known: {', '.join(DATASETS)} (common.data.register adds one)")
    return DATASETS[dataset]


register(Dataset("mnist", MNIST, (28, 28, 1), validation_size=VALIDATION_SIZE))
register(Dataset("fashion_mnist", FASHION_MNIST, (28, 28, 1), validation_size=VALIDATION_SIZE))
register(Dataset("cifar10", CifarBatches(CIFAR10_FOLDER, CIFAR10_URL, CIFAR10_TAR_MD5, CIFAR10_TRAIN, CIFAR10_TEST,
                                         extra=("batches.meta",)),
                 (CIFAR_CROP, CIFAR_CROP, 3), eval_preprocess=cifar_eval_preprocess, augment=_cifar_augment))
