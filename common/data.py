"""MNIST, FashionMNIST and CIFAR-10 from their original files, and their input pipelines.

Files are looked up under a data root laid out as TensorLayer does (``mnist/``,
``fashion_mnist/``, ``cifar10/cifar-10-batches-py/``). The root is ``--data_dir``, else
the environment variable ``NEGSPIKE_DATA``, else ``<workspace>/data``; FashionMNIST is
also found where Debian's ``dataset-fashion-mnist`` puts it. Missing files are
downloaded from the canonical mirrors and checked against their checksums.
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
import zlib
from pathlib import Path

import numpy as np
from common import compat  # noqa: F401 - quiets TensorFlow's start-up: imported before it
import tensorflow as tf

from common.fsutil import atomic_write

DATA_ENV = "NEGSPIKE_DATA"
NUM_CLASSES = 10
VALIDATION_SIZE = 10_000  # the original holds out the last 10,000 training images
CIFAR_CROP = 24


class DataError(Exception):
    """A dataset file is missing, truncated or not in the expected format."""


@dataclasses.dataclass(frozen=True)
class IdxDataset:
    """An IDX dataset: folder name, extra folders to search, mirrors, content md5s."""

    folder: str
    mirrors: tuple[str, ...]
    md5: dict[str, str]  # file name -> md5 of the decompressed file
    system_folders: tuple[str, ...] = ()


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

IDX_DATASETS = {"mnist": MNIST, "fashion_mnist": FASHION_MNIST}
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


def read_idx_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images as float32 ``(n, h, w, 1)`` scaled by 1/256 (as TensorLayer did), labels as int64."""
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} holds "
                        f"{len(labels)} labels")
    if labels.size and labels.max() >= NUM_CLASSES:
        raise DataError(f"{labels_path}: label {labels.max()} is not a class 0..{NUM_CLASSES - 1}")
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


CIFAR_MAX_BYTES = 64 * 2 ** 20  # a batch of 10,000 images is 31 MB


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One python batch as uint8 images ``(n, 32, 32, 3)`` and int64 labels, never running code."""
    if path.stat().st_size > CIFAR_MAX_BYTES:
        raise DataError(f"{path}: {path.stat().st_size:,} bytes is too large for a CIFAR-10 batch")
    try:
        raw = path.read_bytes()
        _check_opcodes(raw)
        batch = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OSError, LookupError, MemoryError, RecursionError, OverflowError) as e:
        raise DataError(f"{path}: not a CIFAR-10 python batch ({str(e)[:200]})") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{path}: not a CIFAR-10 python batch (no b'data' and b'labels' entries)")
    data, labels = batch[b"data"], batch[b"labels"]
    data = data.view(np.ndarray) if isinstance(data, np.ndarray) else data
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", type(data).__name__)
        raise DataError(f"{path}: b'data' must be a uint8 array of shape (n, 3072), got {shape}")
    if not isinstance(labels, list) or len(labels) != len(data):
        raise DataError(f"{path}: {len(data)} images but {len(labels) if isinstance(labels, list) else 'no'} labels")
    if not all(type(v) is int and 0 <= v < NUM_CLASSES for v in labels):  # no bools, floats, lists or strings
        raise DataError(f"{path}: labels must be integers 0..{NUM_CLASSES - 1}; the file is corrupt")
    labels = np.asarray(labels, np.int64)
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


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


def _download_cifar(folder: Path) -> str | None:
    try:
        raw = _download(CIFAR10_URL, timeout=120.0)
    except OSError as e:
        return f"{CIFAR10_URL}: {e}"
    if _md5(raw) != CIFAR10_TAR_MD5:
        return f"{CIFAR10_URL}: checksum mismatch"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        tar_path = Path(tmp) / "cifar.tar.gz"
        tar_path.write_bytes(raw)
        with tarfile.open(tar_path) as tar:
            tar.extractall(tmp, filter="data")
        for name in CIFAR10_TRAIN + CIFAR10_TEST + ("batches.meta",):
            shutil.move(str(Path(tmp) / "cifar-10-batches-py" / name), folder / name)
    return None


def locate(dataset: str, names: tuple[str, ...], roots: list[Path], download: bool = True) -> Path:
    """The first folder holding all of ``names``; downloads into the first root if none does."""
    if dataset == "cifar10":
        sub, extra = CIFAR10_FOLDER, ()
    else:
        sub, extra = IDX_DATASETS[dataset].folder, IDX_DATASETS[dataset].system_folders
    folders = [root / sub for root in roots] + [Path(p) for p in extra]
    for folder in folders:
        if all((folder / n).is_file() for n in names):
            return folder
    target = folders[0]
    problem = "downloads are off"
    if download:
        if dataset == "cifar10":
            problem = _download_cifar(target)
        else:
            problems = [_download_idx(IDX_DATASETS[dataset], n, target)
                        for n in names if not (target / n).is_file()]
            # every file tried every mirror: name each mirror's failure once
            failures = dict.fromkeys(part for p in problems if p for part in p.split("; "))
            problem = "; ".join(failures) or None
        if problem is None:
            return target
    missing = ", ".join(n for n in names if not (target / n).is_file())
    searched = ", ".join(str(f) for f in folders)
    raise DataError(f"{dataset}: missing {missing}; searched {searched}; download failed ({problem}). "
                    f"Put the original files in one of these folders, set {DATA_ENV} to a data root "
                    f"holding {sub}/, or pass --data_dir")


def files_of(dataset: str, splits: tuple[str, ...]) -> tuple[str, ...]:
    """Every file the ``splits`` of ``dataset`` are read from."""
    if dataset == "cifar10":
        return (*CIFAR10_TRAIN, *CIFAR10_TEST) if "train" in splits or "validation" in splits else CIFAR10_TEST
    names = [name for split in splits for name in SPLIT_FILES["test" if split == "test" else "train"]]
    return tuple(dict.fromkeys(names))


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


def load_split(dataset: str, split: str, roots: list[Path], download: bool = True) -> Split:
    """``split`` is ``train`` (first 50,000 of the training file; all of it for CIFAR-10),
    ``validation`` (last 10,000 of the training file) or ``test``."""
    if dataset == "cifar10":
        if split == "validation":
            raise DataError("cifar10 has no validation split; the original validates on the test set")
        names = CIFAR10_TEST if split == "test" else CIFAR10_TRAIN
        folder = locate(dataset, names, roots, download)
        parts = [read_cifar_batch(folder / n) for n in names]
        return Split(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                     tuple(folder / n for n in names))
    images, labels = SPLIT_FILES["test" if split == "test" else "train"]
    folder = locate(dataset, (images, labels), roots, download)
    x, y = read_idx_split(folder / images, folder / labels)
    files = (folder / images, folder / labels)
    if split == "train":
        return Split(x[:-VALIDATION_SIZE], y[:-VALIDATION_SIZE], files)
    if split == "validation":
        return Split(x[-VALIDATION_SIZE:], y[-VALIDATION_SIZE:], files)
    return Split(x, y, files)


# ---------------------------------------------------------------------------- pipelines

def cifar_eval_preprocess(images: np.ndarray) -> tf.Tensor:
    """The original's test path: central 24x24 crop, then per-image standardization."""
    x = tf.image.resize_with_crop_or_pad(tf.cast(images, tf.float32), CIFAR_CROP, CIFAR_CROP)
    return tf.image.per_image_standardization(x)


def _cifar_augment(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """The original's training path, with stateless ops so that a seed fixes every draw."""
    seeds = tf.random.experimental.stateless_split(seed, 4)
    x = tf.image.stateless_random_crop(tf.cast(image, tf.float32), [CIFAR_CROP, CIFAR_CROP, 3], seeds[0])
    x = tf.image.stateless_random_flip_left_right(x, seeds[1])
    x = tf.image.stateless_random_brightness(x, 63.0, seeds[2])
    x = tf.image.stateless_random_contrast(x, 0.2, 1.8, seeds[3])
    return tf.image.per_image_standardization(x)


def eval_inputs(dataset: str, split: Split) -> np.ndarray:
    """Network inputs of the evaluation path, as float32 NHWC."""
    return np.asarray(cifar_eval_preprocess(split.x)) if dataset == "cifar10" else split.x


def train_batches(dataset: str, split: Split, batch_size: int, seed: int, epoch: int,
                  skip: int = 0, shard: tuple[int, int] = (0, 1)) -> tf.data.Dataset:
    """One epoch of shuffled training batches; ``(seed, epoch)`` fixes order and augmentation.

    The last partial batch is dropped, as the original's minibatch iterator did; ``skip``
    batches are passed over, to resume an epoch that was interrupted. ``shard=(i, n)`` keeps
    the ``i``-th of ``n`` equal slices of every batch: one worker's part of a distributed run,
    with the same images and augmentation draws as the whole batch has on one device.
    """
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
    if dataset == "cifar10":
        ds = tf.data.Dataset.from_tensor_slices((x, y, seeds))
        ds = ds.map(lambda img, lab, s: (_cifar_augment(img, s), lab), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)
    else:
        ds = tf.data.Dataset.from_tensor_slices((x, y))
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def eval_batches(inputs: np.ndarray, labels: np.ndarray, batch_size: int) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(batch_size).prefetch(tf.data.AUTOTUNE)
