"""Checkpoints: round trip, refusal of wrong or unsafe files, atomic writes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from common import checkpoint, fsutil, provenance
from common.networks import NETWORKS
from helpers import random_weights
from signalling import PATIENCE

MLP = NETWORKS["fashion_mlp"]


@pytest.fixture
def saved(tmp_path, rng):
    path = tmp_path / "k1.npz"
    weights = random_weights(MLP, rng)
    checkpoint.save(path, MLP, 1, weights, epoch=3, batch=7, optimizer=[np.array(5), np.ones(4)], target_epoch=9)
    return path, weights


def test_round_trip_without_pickle(saved):
    path, weights = saved
    ckpt = checkpoint.load(path, MLP, 1)
    assert set(ckpt) == set(weights)
    for name in weights:
        np.testing.assert_array_equal(ckpt[name], weights[name])
    assert (ckpt.epoch, ckpt.batch, ckpt.target_epoch) == (3, 7, 9)
    assert [o.tolist() for o in ckpt.optimizer] == [5, [1, 1, 1, 1]]
    with np.load(path, allow_pickle=False) as f:
        assert str(f["meta/network"]) == "fashion_mlp" and int(f["meta/k"]) == 1


def test_another_network_or_k_is_refused(saved):
    path, _ = saved
    with pytest.raises(checkpoint.CheckpointError, match="for network 'fashion_mlp', not 'mnist_lenet'"):
        checkpoint.load(path, NETWORKS["mnist_lenet"], 1)
    with pytest.raises(checkpoint.CheckpointError, match="trained with k=1, not k=2"):
        checkpoint.load(path, MLP, 2)
    with pytest.raises(checkpoint.CheckpointError, match="trained with k=1, not FP32"):
        checkpoint.load(path, MLP, None)


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as f:
        arrays = {n: f[n] for n in f.files}
    arrays.update(changes)
    for name, value in list(arrays.items()):
        if value is None:
            del arrays[name]
    np.savez(path, **arrays)


def test_missing_or_misshapen_arrays_are_refused(saved):
    path, _ = saved
    _rewrite(path, **{"bn2/gamma": None})
    with pytest.raises(checkpoint.CheckpointError, match="lacks the array 'bn2/gamma'"):
        checkpoint.load(path, MLP, 1)
    _rewrite(path, **{"bn2/gamma": np.ones(3, np.float32)})
    with pytest.raises(checkpoint.CheckpointError, match=r"'bn2/gamma' has shape \(3,\).*expected \(400,\)"):
        checkpoint.load(path, MLP, 1)


def test_pickled_objects_are_refused(saved):
    path, _ = saved
    _rewrite(path, **{"conv1/filters": np.array([{"evil": 1}], dtype=object)})
    with pytest.raises(checkpoint.CheckpointError, match="pickled objects"):
        checkpoint.load(path, MLP, 1)


def test_truncated_and_missing_files(saved, tmp_path):
    path, _ = saved
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(checkpoint.CheckpointError, match="not a valid .npz"):
        checkpoint.load(path, MLP, 1)
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "nope.npz", MLP, 1)


def test_a_crash_while_writing_keeps_the_previous_file(saved, monkeypatch):
    path, weights = saved
    before = path.read_bytes()

    def crash(file, **arrays):
        file.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, MLP, 1, weights, epoch=4)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_atomic_write_text(tmp_path):
    target = tmp_path / "log.txt"
    fsutil.write_text(target, "old\n")
    with pytest.raises(RuntimeError), fsutil.atomic_write(target) as f:
        f.write("new, but cut short")
        raise RuntimeError
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["log.txt"]


def test_export_drops_optimizer_state(saved, tmp_path):
    path, _ = saved
    checkpoint.export(path, tmp_path / "shipped.npz")
    with np.load(tmp_path / "shipped.npz", allow_pickle=False) as f:
        assert not [n for n in f.files if n.startswith("optimizer/")]
    checkpoint.load(tmp_path / "shipped.npz", MLP, 1)


def test_float16_export_halves_the_weights_and_loads_as_float32(saved, tmp_path):
    path, weights = saved
    checkpoint.export(path, tmp_path / "half.npz", float16=True)
    with np.load(tmp_path / "half.npz", allow_pickle=False) as f:
        assert f["conv1/filters"].dtype == np.float16 and f["bn1/moving_var"].dtype == np.float32
    ckpt = checkpoint.load(tmp_path / "half.npz", MLP, 1)
    for name, value in weights.items():
        assert ckpt[name].dtype == np.float32
        expected = value.astype(np.float16) if name.endswith(("/filters", "/weights")) else value
        np.testing.assert_array_equal(ckpt[name], expected.astype(np.float32))
    assert (tmp_path / "half.npz").stat().st_size < 0.6 * path.stat().st_size


def test_float16_export_refuses_weights_beyond_its_range(tmp_path, rng):
    weights = random_weights(MLP, rng)
    weights["output/weights"][0, 0] = 1e6
    checkpoint.save(tmp_path / "big.npz", MLP, 1, weights, epoch=1)
    with pytest.raises(checkpoint.CheckpointError, match="exceeds float16's range"):
        checkpoint.export(tmp_path / "big.npz", tmp_path / "half.npz", float16=True)
    assert not (tmp_path / "half.npz").exists()


# ---------------------------------------------------------------------------- what is written is readable

@pytest.mark.parametrize("k", [None, 0, 8])
def test_every_meta_field_round_trips_at_its_limits(tmp_path, rng, k):
    path = tmp_path / "limits.npz"
    top = checkpoint.MAX_EPOCH
    history = {"runs": [{"command": "x" * 1000}],
               "epochs": [{"epoch": top, "run": 0, "learning_rate": 1e-300, "train_images": 10 ** 18,
                           "train_loss": 1e308, "train_acc": 0.5, "validation_loss": None}]}
    checkpoint.save(path, MLP, k, random_weights(MLP, rng), epoch=top, batch=checkpoint.MAX_BATCH,
                    optimizer=[np.array(2 ** 62), np.zeros(4)], target_epoch=top, history=history)
    ckpt = checkpoint.load(path, MLP, k)
    assert (ckpt.epoch, ckpt.batch, ckpt.target_epoch) == (top, checkpoint.MAX_BATCH, top)
    assert ckpt.history == history and int(ckpt.optimizer[0]) == 2 ** 62


def test_the_largest_history_a_checkpoint_holds_round_trips(tmp_path, rng):
    record = {"epoch": checkpoint.MAX_EPOCH, "run": 0, "learning_rate": 0.0001, "train_images": 50000,
              "train_loss": 0.12345678901234, "train_acc": 0.98765432109876, "validation_loss": 0.1234567890123,
              "validation_acc": 0.9876543210987, "seconds": 12345.67, "test_acc": 0.9912}
    history = {"runs": [], "epochs": [record] * checkpoint.MAX_EPOCH}  # every epoch a training run can reach
    checkpoint.save(tmp_path / "long.npz", MLP, 1, random_weights(MLP, rng), epoch=checkpoint.MAX_EPOCH,
                    history=history)
    assert len(checkpoint.load(tmp_path / "long.npz", MLP, 1).history["epochs"]) == checkpoint.MAX_EPOCH


@pytest.mark.parametrize("field, value", [
    ("epoch", checkpoint.MAX_EPOCH + 1), ("epoch", 10 ** 20), ("epoch", -1), ("batch", checkpoint.MAX_BATCH + 1),
    ("target_epoch", 2_000_000), ("k", 65), ("k", -2), ("epoch", 3.0),
])
def test_the_writer_refuses_what_the_reader_would_refuse(tmp_path, rng, field, value):
    path = tmp_path / "k1.npz"
    checkpoint.save(path, MLP, 1, random_weights(MLP, rng), epoch=1)
    before = path.read_bytes()
    settings = dict(k=1, epoch=1, batch=0, target_epoch=None)
    settings[field] = value
    k = settings.pop("k")
    with pytest.raises(checkpoint.CheckpointError, match=f"cannot save checkpoint .*'meta/{field}'"):
        checkpoint.save(path, MLP, k, random_weights(MLP, rng), **settings)
    assert path.read_bytes() == before


def test_a_history_too_large_to_read_back_is_not_written(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(checkpoint, "MAX_HISTORY_BYTES", 4000)
    with pytest.raises(checkpoint.CheckpointError, match="training history is .* MiB, more than"):
        checkpoint.save(tmp_path / "k1.npz", MLP, 1, random_weights(MLP, rng), epoch=1,
                        history={"runs": [], "epochs": [{"epoch": 1, "note": "x" * 2000}]})
    assert not (tmp_path / "k1.npz").exists()


@pytest.mark.parametrize("text, message", [
    ("[" * 200_000 + "]" * 200_000, "not valid JSON"),
    ('{"runs": [], "epochs": [{"epoch": ' + "9" * 5000 + "}]}", "not valid JSON"),
    ('{"runs": [], "epochs": [5]}', "not a list of epoch records"),
    ('{"runs": 5, "epochs": []}', "not a list of epoch records"),
    ('{"runs": [], "epochs": [{"epoch": "1"}]}', "not a list of epoch records"),
    ("7", "not a list of epoch records"),
])
def test_a_malformed_history_in_a_checkpoint_is_one_error(saved, text, message):
    path, _ = saved
    _rewrite(path, **{"meta/history": np.array(text)})
    with pytest.raises(checkpoint.CheckpointError, match=message):
        checkpoint.load(path, MLP, 1)


@pytest.mark.parametrize("state", [np.array(np.nan), np.array(-3), np.array([np.inf, 1.0]), np.array("x")])
def test_a_damaged_optimizer_state_is_named_not_blamed_on_the_learning_rate(saved, state):
    path, _ = saved
    _rewrite(path, **{"optimizer/000": state})
    with pytest.raises(checkpoint.CheckpointError, match="optimizer state 'optimizer/000'.*damaged"):
        checkpoint.load(path, MLP, 1)


# ---------------------------------------------------------------------------- export reads with the loader's checks

def test_float16_export_refuses_weights_below_its_range(tmp_path, rng):
    weights = random_weights(MLP, rng)
    weights["conv1/filters"][:] = 1e-9
    checkpoint.save(tmp_path / "tiny.npz", MLP, 1, weights, epoch=1)
    with pytest.raises(checkpoint.CheckpointError, match="'conv1/filters' of .* below float16's range"):
        checkpoint.export(tmp_path / "tiny.npz", tmp_path / "half.npz", float16=True)
    assert not (tmp_path / "half.npz").exists()


def zip_bomb(path):
    """A checkpoint whose weight member declares its true shape but is a huge run of zeros (compressed)."""
    import zipfile

    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (400000000,), }"
    header = header + " " * (-(len(header) + 11) % 64) + "\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("meta/network.npy", _npy(np.array("fashion_mlp")))
        archive.writestr("meta/k.npy", _npy(np.array(1)))
        with archive.open("conv1/filters.npy", "w", force_zip64=True) as member:
            member.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
            zeros = bytes(2 ** 24)
            for _ in range(8):  # 134 MB of zeros, about 130 kB compressed
                member.write(zeros)
    return path


def _npy(array):
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), "not a checkpoint"),
    (lambda p: np.save(p.with_suffix(".npy"), np.ones(3)) or p.with_suffix(".npy").rename(p), "not a checkpoint"),
    (lambda p: np.savez(p, junk=np.ones(3)), "meta/network is missing"),
    (lambda p: np.savez(p, **{"meta/network": np.array("someone_elses")}), "'someone_elses'"),
    (zip_bomb, "'conv1/filters' has shape (400000000,)"),
])
def test_export_refuses_what_load_refuses(tmp_path, make, message):
    src = tmp_path / "src.npz"
    make(src)
    with pytest.raises(checkpoint.CheckpointError, match=re_escape(message)):
        checkpoint.export(src, tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


def re_escape(text):
    import re

    return re.escape(text)


def test_export_refuses_nan_weights_and_raw_members(saved, tmp_path):
    import subprocess
    import sys
    import zipfile

    from conftest import ROOT

    path, weights = saved
    bad = dict(weights)
    bad["bn1/gamma"] = np.full_like(weights["bn1/gamma"], np.nan)
    checkpoint.save(tmp_path / "nan.npz", MLP, 1, bad, epoch=1)
    done = subprocess.run([sys.executable, "-m", "common.checkpoint", "export", str(tmp_path / "nan.npz"),
                           str(tmp_path / "out.npz")], capture_output=True, text=True, cwd=ROOT, timeout=PATIENCE)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: cannot export") and "'bn1/gamma' holds NaN" in done.stderr
    raw = tmp_path / "raw.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(raw, "w") as dst:
        for info in src.infolist():
            data = b"not an array at all" if info.filename == "conv1/filters.npy" else src.read(info)
            dst.writestr(info.filename, data)
    with pytest.raises(checkpoint.CheckpointError, match="not a valid .npz"):
        checkpoint.export(raw, tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


def test_float16_export_lets_only_negligible_weights_underflow(tmp_path, rng):
    weights = random_weights(MLP, rng)
    weights["conv1/filters"].flat[0] = 1e-9  # a ten-millionth of its neighbours: 0 in float16 changes nothing
    checkpoint.save(tmp_path / "k1.npz", MLP, 1, weights, epoch=1)
    checkpoint.export(tmp_path / "k1.npz", tmp_path / "half.npz", float16=True)
    assert checkpoint.load(tmp_path / "half.npz", MLP, 1)["conv1/filters"].flat[0] == 0


# ---------------------------------------------------------------------------- safetensors export


@pytest.mark.parametrize("shipped", ["MNIST/pretrained/k1.npz", "CIFAR10/CNN_1/pretrained/k1.npz"])
def test_a_shipped_checkpoint_round_trips_through_safetensors_with_identical_arrays(shipped, tmp_path):
    from safetensors import safe_open

    from conftest import ROOT

    src = ROOT / shipped
    network, k = checkpoint.identify(src)
    original = checkpoint.load(src, network, k)
    checkpoint.export(src, tmp_path / "k.safetensors")
    exported = checkpoint.load(tmp_path / "k.safetensors", network, k)
    checkpoint.export(tmp_path / "k.safetensors", tmp_path / "back.npz")  # and back to this package's format
    back = checkpoint.load(tmp_path / "back.npz", network, k)
    for ckpt in (exported, back):
        assert set(ckpt) == set(original)
        for name in original:
            assert ckpt[name].dtype == original[name].dtype
            np.testing.assert_array_equal(ckpt[name], original[name])
        assert (ckpt.epoch, ckpt.batch, ckpt.target_epoch) == (original.epoch, original.batch, original.target_epoch)
        assert ckpt.history == original.history
    with safe_open(tmp_path / "k.safetensors", framework="numpy") as f:
        meta = f.metadata()
    assert meta["network"] == network.name and meta["k"] == str(k) and meta["epochs"] == str(original.epoch)
    assert meta["source_sha256"] == provenance.sha256(src)
    assert meta["package_version"] == checkpoint.package_version()
    assert meta["precision"] in ("float32", "bfloat16") and meta["weights_dtype"] == "float32"


def test_safetensors_export_keeps_float16_and_is_named_by_flag_or_suffix(saved, tmp_path):
    from safetensors.numpy import load_file

    path, weights = saved
    checkpoint.export(path, tmp_path / "half.bin", float16=True, file_format="safetensors")
    assert checkpoint.is_safetensors(tmp_path / "half.bin")
    assert load_file(tmp_path / "half.bin")["conv1/filters"].dtype == np.float16  # any safetensors reader
    ckpt = checkpoint.load(tmp_path / "half.bin", MLP, 1)
    assert ckpt["conv1/filters"].dtype == np.float32 and ckpt.optimizer == []
    np.testing.assert_array_equal(ckpt["bn1/gamma"], weights["bn1/gamma"])
    with pytest.raises(checkpoint.CheckpointError, match="--format zip: expected one of npz, safetensors"):
        checkpoint.export(path, tmp_path / "x.zip", file_format="zip")


def _safetensors(path, tensors, **metadata):
    from safetensors.numpy import save_file

    meta = {"format": checkpoint.SAFETENSORS_FORMAT, "network": "fashion_mlp", "k": "1", **metadata}
    save_file(tensors, path, metadata={key: value for key, value in meta.items() if value is not None})
    return path


@pytest.mark.parametrize("change, message", [
    ({"k": "2"}, "trained with k=2, not k=1"),
    ({"network": "mnist_lenet"}, "for network 'mnist_lenet', not 'fashion_mlp'"),
    ({"format": None}, "not a checkpoint of this package (its format metadata is 'missing')"),
    ({"epochs": "many"}, "'meta/epoch' must be an integer"),
    ({"conv1/filters": np.ones((4, 4), np.float32)}, "'conv1/filters' has shape (4, 4), expected (28, 28, 1, 400)"),
    ({"bn1/gamma": np.full(400, np.nan, np.float32)}, "'bn1/gamma' holds NaN"),
    ({"bn2/moving_var": None}, "lacks the array 'bn2/moving_var'"),
    ({"output/weights": np.ones((400, 10), np.int32)}, "'output/weights' has dtype int32, expected a float"),
])
def test_safetensors_is_read_with_the_checks_of_npz(saved, tmp_path, change, message):
    path, weights = saved
    tensors = {name: value for name, value in {**weights, **change}.items()
               if name in weights and value is not None}
    meta = {key: value for key, value in change.items() if key not in weights}
    st = _safetensors(tmp_path / "x.safetensors", tensors, **meta)
    with pytest.raises(checkpoint.CheckpointError, match=re_escape(message)):
        checkpoint.load(st, MLP, 1)


def test_a_truncated_safetensors_file_is_one_error(saved, tmp_path):
    path, _ = saved
    checkpoint.export(path, tmp_path / "k1.safetensors")
    data = (tmp_path / "k1.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:len(data) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="not a valid .safetensors file"):
        checkpoint.load(tmp_path / "cut.safetensors", MLP, 1)
