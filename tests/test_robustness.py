"""Hostile and careless inputs: each gets one ``error:`` line (or a clear exception), never garbage or data loss."""

from __future__ import annotations

import gzip
import os
import pickle
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from common import checkpoint, data, logs, spiking, train
from common.networks import MNIST_LENET
from conftest import ROOT

SHIPPED = ROOT / "MNIST" / "pretrained" / "k1.npz"
SPIKING = ROOT / "MNIST" / "Spiking_LeNet_MNIST.py"


def crafted(tmp_path: Path, change: dict, drop: tuple[str, ...] = ()) -> Path:
    """The shipped MNIST LeNet k=1 checkpoint with some arrays replaced."""
    with np.load(SHIPPED, allow_pickle=False) as f:
        arrays = {name: f[name] for name in f.files if name not in drop}
    arrays.update(change)
    path = tmp_path / "crafted.npz"
    np.savez(path, **arrays)
    return path


def run_script(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout)


def assert_one_error_line(done: subprocess.CompletedProcess, expected: str) -> None:
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-2000:]
    assert expected in lines[0]


def test_a_negative_variance_is_refused_by_the_script(tmp_path):
    with np.load(SHIPPED) as f:
        var = f["bn1/moving_var"].copy()
    var[3] = -0.5
    done = run_script(str(SPIKING), "--checkpoint", str(crafted(tmp_path, {"bn1/moving_var": var})),
                      "--num_samples", "10", "--log_dir", str(tmp_path / "logs"))
    assert_one_error_line(done, "negative variances")
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize("change, message", [
    ({"conv1/filters": np.full((5, 5, 1, 20), 1e300)}, "NaN or infinite values as float32"),
    ({"meta/k": np.array("one")}, "'meta/k' must be an integer"),
    ({"meta/k": np.array(np.nan)}, "'meta/k' must be an integer"),
    ({"meta/k": np.array([1, 1])}, "'meta/k' has shape (2,)"),
    ({"meta/epoch": np.array("x")}, "'meta/epoch' must be an integer"),
    ({"meta/epoch": np.array(-3)}, "'meta/epoch' must be an integer"),
    ({"conv2/filters": np.zeros((10 ** 4, 10 ** 4), np.float32)}, "'conv2/filters' has shape (10000, 10000)"),
])
def test_crafted_arrays_are_refused(tmp_path, change, message):
    with pytest.raises(checkpoint.CheckpointError) as e:
        checkpoint.load(crafted(tmp_path, change), MNIST_LENET, 1)
    assert message in str(e.value)


def test_members_that_are_not_ours_are_never_read(tmp_path):
    path = crafted(tmp_path, {})
    with zipfile.ZipFile(path, "a") as archive:  # garbage that would fail if it were parsed, and a huge header
        archive.writestr("junk.npy", b"\x93NUMPY\x01\x00" + b"garbage" * 1000)
        header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }"
        archive.writestr("huge.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header)
    ckpt = checkpoint.load(path, MNIST_LENET, 1)
    assert set(ckpt) == set(checkpoint.expected_shapes(MNIST_LENET))


def test_weights_that_overflow_are_not_reported_as_lossless(tmp_path):
    maximum = np.finfo(np.float32).max
    path = crafted(tmp_path, {name: np.full(shape, maximum, np.float32)
                              for name, shape in checkpoint.expected_shapes(MNIST_LENET).items()
                              if name.endswith("/filters")})
    cfg = spiking.SpikingConfig(network=MNIST_LENET, k=1, checkpoint=path, roots=[ROOT / "MNIST" / "data"],
                                log_dir=tmp_path / "logs", time_steps=5, num_samples=4)
    with pytest.raises(checkpoint.CheckpointError, match="not finite"):
        spiking.run(cfg)
    assert not (tmp_path / "logs" / "summary.json").exists()


def write_gz(path: Path, payload: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(payload)
    return path


@pytest.mark.parametrize("dims, message", [
    ((10 ** 9, 28, 28), "expected at most 70000 items"),
    ((2 ** 16, 2 ** 16, 2 ** 16), "expected at most 70000 items"),  # a product that wraps in 32 or 64 bits
    ((10, 28, 27), "of 28x28"),
])
def test_idx_headers_are_checked_before_the_data_is_read(tmp_path, dims, message):
    header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in dims)
    path = write_gz(tmp_path / "x.gz", header + bytes(1000))
    with pytest.raises(data.DataError, match=message):
        data.read_idx(path, 3)


def test_an_idx_file_holding_more_than_its_header_is_refused(tmp_path):
    header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in (2, 28, 28))
    with pytest.raises(data.DataError, match="holds more bytes"):
        data.read_idx(write_gz(tmp_path / "x.gz", header + bytes(3 * 28 * 28)), 3)


@pytest.mark.parametrize("labels", [
    ["3"] * 4, [2 ** 70] * 4, [3.7] * 4, [True] * 4, [[1, 2]] * 4,
])
def test_cifar_labels_that_are_not_classes_are_refused(tmp_path, labels):
    path = tmp_path / "test_batch"
    with open(path, "wb") as f:
        pickle.dump({b"data": np.zeros((4, 3072), np.uint8), b"labels": labels}, f, protocol=2)
    with pytest.raises(data.DataError, match="labels must be integers"):
        data.read_cifar_batch(path)


def test_cifar_labels_of_shared_nested_lists_fail_fast(tmp_path):
    nested: list = [0]
    for _ in range(60):  # each level references the previous one twice: 2^60 leaves if walked naively
        nested = [nested, nested]
    path = tmp_path / "test_batch"
    with open(path, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [nested, nested]}, f, protocol=2)
    with pytest.raises(data.DataError, match="labels must be integers"):
        data.read_cifar_batch(path)


def test_a_log_dir_that_is_a_file_or_under_one_fails_before_the_work(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(logs.LogDirError, match="is a file"):
        logs.check_writable(tmp_path / "file")
    with pytest.raises(logs.LogDirError, match="is not a folder"):
        logs.check_writable(tmp_path / "file" / "logs")
    done = run_script(str(SPIKING), "--log_dir", str(tmp_path / "file" / "logs"))
    assert_one_error_line(done, "is not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_a_read_only_log_dir_fails_before_the_work(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(logs.LogDirError, match="not writable"):
            logs.check_writable(tmp_path / "logs")
    finally:
        tmp_path.chmod(0o700)


def test_a_failed_write_leaves_the_previous_log_set_whole(tmp_path, monkeypatch):
    lines = {name: [1, 2] for name in logs.LOG_FILES}
    logs.write_logs(tmp_path, lines, {"run": 1})
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}
    real = logs.write_json

    def full_disk(path, obj):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(logs, "write_json", full_disk)
    with pytest.raises(OSError):
        logs.write_logs(tmp_path, {name: [3, 4] for name in logs.LOG_FILES}, {"run": 2})
    monkeypatch.setattr(logs, "write_json", real)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before  # no file of the new set, no leftovers


def config(root: Path, ckpt: Path, **overrides) -> train.TrainConfig:
    settings = dict(network=MNIST_LENET, k=1, checkpoint=ckpt, roots=[root], learning_rate=1e-2, epochs=1,
                    batch_size=100, train_samples=300, seed=1)
    settings.update(overrides)
    return train.TrainConfig(**settings)


def test_a_folder_or_a_foreign_file_is_never_moved_aside(idx_root, tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="is a folder"):
        train.run(config(idx_root, tmp_path))
    foreign = tmp_path / "notes.npz"
    foreign.write_text("my notes")
    with pytest.raises(checkpoint.CheckpointError, match="not a checkpoint of this package"):
        train.run(config(idx_root, foreign))
    assert foreign.read_text() == "my notes"


@pytest.mark.slow  # training runs
def test_training_afresh_twice_keeps_every_backup(idx_root, tmp_path):
    ckpt = tmp_path / "k1.npz"
    versions = []
    for seed in (1, 2, 3):
        train.run(config(idx_root, ckpt, seed=seed))
        versions.append(ckpt.read_bytes())
    assert (tmp_path / "k1.npz.bak").read_bytes() == versions[0]
    assert (tmp_path / "k1.npz.bak1").read_bytes() == versions[1]
    assert (tmp_path / "k1.npz.bak.history.json").is_file()


def test_a_second_writer_is_refused_and_stale_temporary_files_are_cleaned(idx_root, tmp_path):
    ckpt = tmp_path / "k1.npz"
    stale = tmp_path / ".k1.npz.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    with checkpoint.writer_lock(ckpt):
        assert not stale.exists()
        with pytest.raises(checkpoint.CheckpointError, match="another training run is writing"):
            train.run(config(idx_root, ckpt))


@pytest.mark.slow  # training runs
def test_a_resume_position_beyond_the_epoch_is_refused(idx_root, tmp_path):
    ckpt = tmp_path / "k1.npz"
    train.run(config(idx_root, ckpt))
    with np.load(ckpt) as f:
        arrays = {name: f[name] for name in f.files}
    arrays["meta/batch"] = np.array(10 ** 6)
    np.savez(ckpt, **arrays)
    with pytest.raises(checkpoint.CheckpointError, match="stopped after batch 1000000"):
        train.run(config(idx_root, ckpt, resume=True))


def test_an_empty_training_set_is_refused(tmp_path):
    from helpers import write_idx_dataset

    write_idx_dataset(tmp_path / "mnist", 9_000, 50, np.random.default_rng(0))  # all held out for validation
    with pytest.raises(data.DataError, match="the training set is empty"):
        train.run(config(tmp_path, tmp_path / "k1.npz"))


def test_missing_data_names_every_file_once(tmp_path):
    done = run_script(str(ROOT / "MNIST" / "Quant_LeNet_MNIST.py"), "--mode", "training", "--data_dir",
                      str(tmp_path))
    assert_one_error_line(done, "missing train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                                "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz")
    line = done.stderr
    assert "NEGSPIKE_DATA" in line and "--data_dir" in line
    for mirror in data.MNIST.mirrors:
        assert line.count(mirror) <= 1


def test_a_signal_during_validation_saves_a_resumable_checkpoint(idx_root, tmp_path, monkeypatch):
    ckpt = tmp_path / "k1.npz"
    real = train.evaluate
    calls = []

    def evaluate_then_signal(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "evaluate", evaluate_then_signal)
    with pytest.raises(train.Interrupted, match="while evaluating"):
        train.run(config(idx_root, ckpt))
    saved = checkpoint.load(ckpt, MNIST_LENET, 1)
    assert (saved.epoch, saved.batch) == (0, 3)  # every batch done, the evaluation pending
    monkeypatch.setattr(train, "evaluate", real)
    train.run(config(idx_root, ckpt, resume=True))
    resumed = checkpoint.load(ckpt, MNIST_LENET, 1)
    assert resumed.epoch == 1 and [e["epoch"] for e in resumed.history["epochs"]] == [1]


def test_ctrl_c_during_a_spiking_run_writes_the_finished_batches(tmp_path, monkeypatch):
    from common import snn

    real = snn.FastSimulator.simulate
    calls = []

    def simulate_then_interrupt(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(snn.FastSimulator, "simulate", simulate_then_interrupt)
    cfg = spiking.SpikingConfig(network=MNIST_LENET, k=1, checkpoint=SHIPPED, roots=[ROOT / "MNIST" / "data"],
                                log_dir=tmp_path, time_steps=8, batch_size=10, num_samples=50)
    with pytest.raises(spiking.Interrupted, match="SIGINT"):
        spiking.run(cfg)
    summary = logs.read_summary(tmp_path)
    assert summary["partial"] is True and summary["num_samples"] == 10
    assert len((tmp_path / "accuracy.txt").read_text().splitlines()) == 8


@pytest.mark.slow  # training runs
def test_a_full_disk_keeps_the_previous_checkpoint_whole(idx_root, tmp_path, monkeypatch):
    ckpt = tmp_path / "k1.npz"
    train.run(config(idx_root, ckpt))
    before = ckpt.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(checkpoint.CheckpointError, match="No space left on device.*kept whole"):
        train.run(config(idx_root, ckpt, resume=True))
    assert ckpt.read_bytes() == before and not list(tmp_path.glob(".k1.npz.*.tmp"))


@pytest.mark.slow  # training runs
def test_a_corrupt_history_beside_an_old_checkpoint_is_one_error(idx_root, tmp_path):
    ckpt = tmp_path / "k1.npz"
    train.run(config(idx_root, ckpt))
    with np.load(ckpt) as f:  # an older checkpoint: no history inside, only the file beside it
        arrays = {name: f[name] for name in f.files if name != "meta/history"}
    np.savez(ckpt, **arrays)
    train.history_path(ckpt).write_text("{not json")
    with pytest.raises(checkpoint.CheckpointError, match="not a readable training history.*move it aside"):
        train.run(config(idx_root, ckpt, resume=True))


def test_an_empty_test_set_is_refused(tmp_path):
    from helpers import write_idx_dataset

    write_idx_dataset(tmp_path / "mnist", 100, 0, np.random.default_rng(0))
    cfg = spiking.SpikingConfig(network=MNIST_LENET, k=1, checkpoint=SHIPPED, roots=[tmp_path],
                                log_dir=tmp_path / "logs", time_steps=4)
    with pytest.raises(data.DataError, match="the test set is empty"):
        spiking.run(cfg)


def test_a_run_at_chance_after_a_few_steps_says_why(tmp_path, capsys):
    from helpers import write_idx_dataset

    write_idx_dataset(tmp_path / "mnist", 10_300, 200, np.random.default_rng(0), learnable=False)
    train.run(config(tmp_path, tmp_path / "k1.npz", learning_rate=1e-4))
    out = capsys.readouterr().out
    assert "near chance after only 3 training steps" in out and "BatchNorm" in out


@pytest.mark.slow  # 10,000 test images in a subprocess
def test_inference_prints_only_what_it_uses():
    done = run_script(str(ROOT / "MNIST" / "Quant_LeNet_MNIST.py"), "--mode", "inference", "--checkpoint",
                      str(SHIPPED), "--data_dir", str(ROOT / "MNIST" / "data"))
    assert done.returncode == 0 and done.stderr == "", done.stderr[-2000:]
    first, last = done.stdout.splitlines()[0], done.stdout.splitlines()[-1]
    assert "mode=inference" in first and "learning_rate" not in first and "resume" not in first
    assert last.startswith("test accuracy: ")
