"""Loaders on real-format files the tests write, and every way such a file can be wrong."""

from __future__ import annotations

import builtins
import dataclasses
import gzip
import hashlib
import http.server
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest

from common import data
from helpers import write_cifar_batch, write_idx, write_idx_dataset


def test_idx_round_trip_and_scaling(tmp_path, rng):
    images = rng.integers(0, 256, (5, 28, 28)).astype(np.uint8)
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    write_idx(tmp_path / "i.gz", images)
    write_idx(tmp_path / "l.gz", labels)
    x, y = data.read_idx_split(tmp_path / "i.gz", tmp_path / "l.gz")
    assert x.shape == (5, 28, 28, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x[..., 0], images / np.float32(256))  # TensorLayer's 1/256 scaling
    np.testing.assert_array_equal(y, labels)


def test_splits_follow_the_original(tmp_path):
    write_idx_dataset(tmp_path / "mnist", 10_050, 30, np.random.default_rng(0))
    roots = [tmp_path]
    assert len(data.load_split("mnist", "train", roots)) == 50
    assert len(data.load_split("mnist", "validation", roots)) == 10_000
    assert len(data.load_split("mnist", "test", roots)) == 30


@pytest.mark.parametrize("damage, message", [
    (lambda raw: raw[: len(raw) // 2], "not a readable gzip file"),
    (lambda raw: b"not gzip at all", "not a readable gzip file"),
    (lambda raw: gzip.compress(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"\x01\x02"), "truncated or corrupt"),
    (lambda raw: gzip.compress(b"\x00\x00\x09\x03" + bytes(12)), "bad magic number"),
])
def test_corrupt_idx_files_are_refused_clearly(tmp_path, rng, damage, message):
    path = tmp_path / "x.gz"
    write_idx(path, rng.integers(0, 256, (3, 28, 28)).astype(np.uint8))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(data.DataError, match=message):
        data.read_idx(path, 3 if "magic" in message or "gzip" in message else 1)


def test_image_label_count_mismatch(tmp_path, rng):
    write_idx(tmp_path / "i.gz", rng.integers(0, 256, (4, 28, 28)).astype(np.uint8))
    write_idx(tmp_path / "l.gz", np.zeros(3, np.uint8))
    with pytest.raises(data.DataError, match="4 images but .* 3 labels"):
        data.read_idx_split(tmp_path / "i.gz", tmp_path / "l.gz")


def test_cifar_batch_round_trip(tmp_path, rng):
    write_cifar_batch(tmp_path / "b", 6, rng)
    x, y = data.read_cifar_batch(tmp_path / "b")
    with open(tmp_path / "b", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    assert x.shape == (6, 32, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[2, :, :, 1].ravel(), raw[b"data"][2, 1024:2048])  # green plane
    assert y.tolist() == raw[b"labels"]


def test_cifar_batch_of_the_wrong_shape(tmp_path):
    with open(tmp_path / "b", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(data.DataError, match=r"shape \(n, 3072\)"):
        data.read_cifar_batch(tmp_path / "b")


class _Malicious:
    def __init__(self, target: Path):
        self.target = str(target)

    def __reduce__(self):
        return builtins.open, (self.target, "w")


def test_a_crafted_cifar_batch_cannot_run_code(tmp_path):
    target = tmp_path / "pwned"
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": _Malicious(target), b"labels": []}, f, protocol=2)
    with pytest.raises(data.DataError, match="refusing to load"):
        data.read_cifar_batch(tmp_path / "data_batch_1")
    assert not target.exists()


@pytest.mark.slow  # CIFAR-10
def test_real_cifar_batches_load_with_the_restricted_unpickler():
    folder = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10" / "cifar-10-batches-py"
    if not (folder / "test_batch").is_file():
        pytest.skip("the shared CIFAR-10 files are not here")
    x, y = data.read_cifar_batch(folder / "test_batch")
    assert x.shape[1:] == (32, 32, 3) and y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]


def test_missing_files_name_each_file_and_every_folder_searched(tmp_path):
    with pytest.raises(data.DataError) as err:
        data.load_split("mnist", "test", [tmp_path / "a", tmp_path / "b"], download=False)
    text = str(err.value)
    assert "t10k-images-idx3-ubyte.gz" in text and "t10k-labels-idx1-ubyte.gz" in text
    assert str(tmp_path / "a" / "mnist") in text and str(tmp_path / "b" / "mnist") in text
    assert "\n" not in text


def test_data_roots_order(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / "env"))
    assert data.data_roots(None, tmp_path / "ws") == [tmp_path / "env", tmp_path / "ws" / "data"]
    assert data.data_roots(str(tmp_path / "flag"), tmp_path / "ws") == [tmp_path / "flag"]
    monkeypatch.delenv(data.DATA_ENV)
    assert data.data_roots(None, tmp_path / "ws") == [tmp_path / "ws" / "data"]


@pytest.fixture
def mirror(tmp_path):
    """A dataset mirror on the loopback interface."""
    served = tmp_path / "served"
    served.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_download_checks_checksums(tmp_path, mirror, monkeypatch):
    served, url = mirror
    write_idx_dataset(served, 10, 12, np.random.default_rng(0))
    md5 = {p.name: hashlib.md5(gzip.decompress(p.read_bytes())).hexdigest() for p in served.iterdir()}
    good = dataclasses.replace(data.MNIST, mirrors=(url,), md5=md5)
    monkeypatch.setitem(data.DATASETS, "mnist", dataclasses.replace(data.DATASETS["mnist"], format=good))
    split = data.load_split("mnist", "test", [tmp_path / "root"])
    assert len(split) == 12 and (tmp_path / "root" / "mnist" / "t10k-images-idx3-ubyte.gz").is_file()

    bad = dataclasses.replace(good, md5={**md5, "train-images-idx3-ubyte.gz": "0" * 32})
    monkeypatch.setitem(data.DATASETS, "mnist", dataclasses.replace(data.DATASETS["mnist"], format=bad))
    with pytest.raises(data.DataError, match="checksum mismatch"):
        data.load_split("mnist", "train", [tmp_path / "other"])
    assert not (tmp_path / "other" / "mnist" / "train-images-idx3-ubyte.gz").exists()


def test_cifar_preprocessing_matches_the_original(rng):
    images = rng.integers(0, 256, (3, 32, 32, 3)).astype(np.uint8)
    x = data.eval_inputs("cifar10", data.Split(images, np.zeros(3, np.int64)))
    assert x.shape == (3, 24, 24, 3)
    crop = images[:, 4:28, 4:28].astype(np.float64)
    mean = crop.mean(axis=(1, 2, 3), keepdims=True)
    std = np.maximum(crop.std(axis=(1, 2, 3), keepdims=True), 1 / np.sqrt(crop[0].size))
    np.testing.assert_allclose(x, (crop - mean) / std, rtol=1e-4, atol=1e-4)


def test_training_batches_are_repeatable_and_drop_the_remainder(rng):
    split = data.Split(rng.integers(0, 256, (450, 32, 32, 3)).astype(np.uint8), rng.integers(0, 10, 450))
    a = [x.numpy() for x, _ in data.train_batches("cifar10", split, 200, seed=3, epoch=1)]
    b = [x.numpy() for x, _ in data.train_batches("cifar10", split, 200, seed=3, epoch=1)]
    c = [x.numpy() for x, _ in data.train_batches("cifar10", split, 200, seed=3, epoch=2)]
    assert len(a) == 2 and a[0].shape == (200, 24, 24, 3)
    assert all(np.array_equal(p, q) for p, q in zip(a, b)) and not np.array_equal(a[0], c[0])
    skipped = [x.numpy() for x, _ in data.train_batches("cifar10", split, 200, seed=3, epoch=1, skip=1)]
    assert len(skipped) == 1 and np.array_equal(skipped[0], a[1])


def test_files_of_each_dataset_follow_its_description():
    assert data.files_of("mnist", ("test",)) == data.SPLIT_FILES["test"]
    assert data.files_of("mnist", ("train", "test")) == (*data.SPLIT_FILES["train"], *data.SPLIT_FILES["test"])
    assert data.files_of("cifar10", ("train",)) == (*data.CIFAR10_TRAIN, *data.CIFAR10_TEST)  # validates on test
    assert data.files_of("cifar10", ("test",)) == data.CIFAR10_TEST
    assert [data.DATASETS[n].held_out for n in ("mnist", "fashion_mnist", "cifar10")] == ["validation"] * 2 + ["test"]


def test_cifar100_batches_are_read_by_their_label_key(tmp_path, rng):
    """CIFAR-100's batches name their labels b'fine_labels'; the format says which key to read."""
    batch = {b"fine_labels": [int(v) for v in rng.integers(0, 100, 4)],
             b"data": rng.integers(0, 256, (4, 3072)).astype(np.uint8)}
    with open(tmp_path / "test", "wb") as f:
        pickle.dump(batch, f, protocol=2)
    x, y = data.read_cifar_batch(tmp_path / "test", b"fine_labels", classes=100)
    assert x.shape == (4, 32, 32, 3) and y.tolist() == batch[b"fine_labels"]
    with pytest.raises(data.DataError, match="b'labels'"):
        data.read_cifar_batch(tmp_path / "test")


@pytest.fixture
def own_npz(tmp_path, monkeypatch, rng):
    """A user's own dataset: 8x8 one-channel uint8 images in an .npz, registered as one entry."""
    arrays = {"x_train": rng.integers(0, 17, (30, 8, 8)).astype(np.uint8), "y_train": rng.integers(0, 3, 30),
              "x_test": rng.integers(0, 17, (7, 8, 8)).astype(np.uint8), "y_test": rng.integers(0, 3, 7)}
    (tmp_path / "own").mkdir()
    np.savez(tmp_path / "own" / "data.npz", **arrays)
    monkeypatch.setitem(data.DATASETS, "own", data.Dataset("own", data.NpzArrays("own", scale=1 / 16), (8, 8, 1),
                                                           classes=3, validation_size=10))
    return arrays


def test_a_users_npz_is_one_dataset_entry(tmp_path, own_npz):
    roots = [tmp_path]
    train, held, test = (data.load_split("own", s, roots) for s in ("train", "validation", "test"))
    assert (len(train), len(held), len(test)) == (20, 10, 7)
    np.testing.assert_array_equal(test.x[..., 0], own_npz["x_test"].astype(np.float32) / 16)
    np.testing.assert_array_equal(held.y, own_npz["y_train"][20:])
    assert test.files == (tmp_path / "own" / "data.npz",)
    assert data.files_of("own", ("train", "test")) == ("data.npz",)
    batches = [x.numpy() for x, _ in data.train_batches("own", train, 8, seed=0, epoch=0)]
    assert len(batches) == 2 and batches[0].shape == (8, 8, 8, 1)
    np.testing.assert_array_equal(data.eval_inputs("own", test), test.x)


@pytest.mark.parametrize("arrays, message", [
    ({"x_train": np.zeros((3, 8, 8))}, "no x_test and y_test arrays"),
    ({"x_test": np.zeros((3, 8, 8)), "y_test": np.array([0, 1, 5])}, r"integer classes 0\.\.2"),
    ({"x_test": np.zeros((3, 8, 8)), "y_test": np.array([0, 1])}, "n images"),
    ({"x_test": np.zeros((3, 9, 8)), "y_test": np.array([0, 1, 2])}, r"take \(8, 8, 1\)"),
    ({"x_test": np.full((3, 8, 8), np.nan), "y_test": np.array([0, 1, 2])}, "NaN"),
])
def test_a_wrong_npz_is_refused_in_one_line(tmp_path, own_npz, arrays, message):
    np.savez(tmp_path / "own" / "data.npz", **arrays)
    with pytest.raises(data.DataError, match=message) as err:
        data.load_split("own", "test", [tmp_path], download=False)
    assert "\n" not in str(err.value)


def test_an_unknown_dataset_names_the_known_ones():
    with pytest.raises(data.DataError, match="known: mnist, fashion_mnist, cifar10"):
        data.load_split("imagenet", "test", [])
