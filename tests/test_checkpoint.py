"""Checkpoints: round trip, refusal of wrong or unsafe files, atomic writes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from common import checkpoint, fsutil
from common.networks import NETWORKS
from helpers import random_weights

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
