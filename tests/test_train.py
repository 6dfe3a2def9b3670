"""The training loop: learning, resuming, repeatability, NaN, interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common import checkpoint, data, train
from common.networks import MNIST_LENET
from conftest import ROOT
from signalling import PATIENCE


def config(root: Path, tmp_path: Path, **overrides) -> train.TrainConfig:
    settings = dict(network=MNIST_LENET, k=1, checkpoint=tmp_path / "ck" / "k1.npz", roots=[root],
                    learning_rate=1e-2, epochs=1, batch_size=100, train_samples=600, seed=1)
    settings.update(overrides)
    return train.TrainConfig(**settings)


def history(cfg: train.TrainConfig) -> list[dict]:
    """The epochs of the history inside the checkpoint; the readable copy beside it must agree."""
    inside = checkpoint.load(cfg.checkpoint, cfg.network, cfg.k).history
    assert json.loads(train.history_path(cfg.checkpoint).read_text()) == inside
    return inside["epochs"]


RUN_RECORD_KEYS = {"command", "started", "git", "versions", "cpu", "data_sha256", "wall_seconds", "settings"}


@pytest.mark.slow  # several training runs
def test_training_lowers_the_loss_and_resumes(idx_root, tmp_path, capsys):
    cfg = config(idx_root, tmp_path, epochs=3)
    train.run(cfg)
    first = history(cfg)
    assert [r["epoch"] for r in first] == [1, 2, 3]
    assert first[2]["train_loss"] < first[1]["train_loss"] < first[0]["train_loss"]
    assert first[2]["validation_acc"] > 0.9  # the synthetic classes are learnable
    ckpt = checkpoint.load(cfg.checkpoint, MNIST_LENET, 1)
    assert (ckpt.epoch, ckpt.batch, ckpt.target_epoch) == (3, 0, 3)
    assert int(ckpt.optimizer[0]) == 18  # Adam's iteration count: 3 epochs of 6 batches

    # the original's second stage: a finished run resumed with a new learning rate trains --epochs more
    acc = train.run(config(idx_root, tmp_path, resume=True, learning_rate=1e-4, epochs=1))
    out = capsys.readouterr().out
    assert "training to epoch 4" in out and out.strip().splitlines()[-1] == f"test accuracy: {acc:.4f}"
    resumed = history(cfg)
    assert [r["epoch"] for r in resumed] == [1, 2, 3, 4] and resumed[3]["learning_rate"] == 1e-4
    assert int(checkpoint.load(cfg.checkpoint, MNIST_LENET, 1).optimizer[0]) == 24
    assert acc > 0.5  # ten classes: chance is 0.1
    runs = checkpoint.load(cfg.checkpoint, MNIST_LENET, 1).history["runs"]
    assert len(runs) == 2 and [r["run"] for r in resumed] == [0, 0, 0, 1]
    assert all(RUN_RECORD_KEYS <= set(run) for run in runs) and "checkpoint_sha256" in runs[1]
    assert set(runs[0]["versions"]) == {"python", "tensorflow", "tensorlayer", "numpy", "absl-py"}


@pytest.mark.slow  # a TensorFlow subprocess
def test_inference_mode_loads_the_checkpoint(idx_root, tmp_path, capsys):
    train.run(config(idx_root, tmp_path))
    trained = capsys.readouterr().out.strip().splitlines()[-1]
    train.run(config(idx_root, tmp_path, mode="inference"))
    assert capsys.readouterr().out.strip().splitlines()[-1] == trained


@pytest.mark.slow  # several training runs
def test_training_afresh_keeps_the_previous_checkpoint_aside(idx_root, tmp_path):
    cfg = config(idx_root, tmp_path)
    train.run(cfg)
    first = cfg.checkpoint.read_bytes()
    train.run(config(idx_root, tmp_path, seed=2))
    backup = cfg.checkpoint.with_name(cfg.checkpoint.name + ".bak")
    assert backup.read_bytes() == first and cfg.checkpoint.read_bytes() != first


def test_resume_without_a_checkpoint_says_so(idx_root, tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        train.run(config(idx_root, tmp_path, resume=True))


@pytest.mark.slow  # several training runs
def test_the_same_seed_gives_the_same_weights(idx_root, tmp_path):
    a = config(idx_root, tmp_path / "a")
    b = config(idx_root, tmp_path / "b")
    train.run(a)
    train.run(b)
    wa, wb = checkpoint.load(a.checkpoint, MNIST_LENET, 1), checkpoint.load(b.checkpoint, MNIST_LENET, 1)
    assert all(np.array_equal(wa[n], wb[n]) for n in wa)


class _HardStop(BaseException):
    """What SIGKILL or a power cut does to a run: nothing after it runs, no handler saves."""


def test_a_hard_stop_mid_epoch_loses_only_what_followed_the_last_timed_save(idx_root, tmp_path, monkeypatch):
    straight = config(idx_root, tmp_path / "straight", save_minutes=0.0)
    train.run(straight)
    real_save, saves = checkpoint.save, []

    def save_then_die_after_batch_3(path, network, k, weights, epoch, batch, *args, **kwargs):
        real_save(path, network, k, weights, epoch, batch, *args, **kwargs)
        saves.append((epoch, batch))
        if batch == 3:
            raise _HardStop

    stopped = config(idx_root, tmp_path / "stopped", save_minutes=1e-9)  # a save after every batch
    monkeypatch.setattr(checkpoint, "save", save_then_die_after_batch_3)
    with pytest.raises(_HardStop):
        train.run(stopped)
    assert saves == [(0, 1), (0, 2), (0, 3)]  # mid-epoch saves, timed from the run's start
    monkeypatch.setattr(checkpoint, "save", real_save)
    train.run(config(idx_root, tmp_path / "stopped", resume=True))
    a, b = checkpoint.load(straight.checkpoint, MNIST_LENET, 1), checkpoint.load(stopped.checkpoint, MNIST_LENET, 1)
    assert (b.epoch, b.batch) == (1, 0) and int(b.optimizer[0]) == 6  # batches 4-6 trained once, after the stop
    assert all(np.array_equal(a[n], b[n]) for n in a)  # the same weights as the run that was never stopped


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(idx_root, tmp_path, monkeypatch):
    cfg = config(idx_root, tmp_path, epochs=2)
    real_batches = data.train_batches

    def poisoned(dataset, split, batch_size, seed, epoch, skip=0, **kwargs):
        if epoch == 1:
            split = data.Split(np.full_like(split.x, np.nan), split.y)
        return real_batches(dataset, split, batch_size, seed, epoch, skip, **kwargs)

    monkeypatch.setattr(data, "train_batches", poisoned)
    with pytest.raises(train.TrainingError, match=r"loss became nan at epoch 2, batch 1.*last good checkpoint"):
        train.run(cfg)
    ckpt = checkpoint.load(cfg.checkpoint, MNIST_LENET, 1)
    assert ckpt.epoch == 1 and all(np.isfinite(ckpt[n]).all() for n in ckpt)


@pytest.mark.slow  # training subprocesses
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_saves_a_resumable_checkpoint(idx_root, tmp_path, signum):
    ckpt = tmp_path / "k1.npz"
    cmd = [sys.executable, str(ROOT / "MNIST" / "Quant_LeNet_MNIST.py"), "--k", "1", "--resume", "False",
           "--epochs", "2", "--batch_size", "20", "--train_samples", "1000", "--data_dir", str(idx_root),
           "--checkpoint", str(ckpt), "--seed", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:  # training has begun: the signal is acted on after the batch in progress
        if line.startswith("Epoch 1/2"):
            break
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=PATIENCE)
    assert proc.returncode == 128 + signum
    assert f"interrupted by {signal.Signals(signum).name}" in err and "Traceback" not in err
    saved = checkpoint.load(ckpt, MNIST_LENET, 1)
    assert saved.batch > 0 or saved.epoch > 0
    assert saved.target_epoch == 2

    resumed = subprocess.run([*cmd[:cmd.index("--resume") + 1], "True", *cmd[cmd.index("--resume") + 2:]],
                             capture_output=True, text=True, env=env, timeout=PATIENCE)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "training to epoch 2" in resumed.stdout and "test accuracy:" in resumed.stdout
    final = checkpoint.load(ckpt, MNIST_LENET, 1)
    assert (final.epoch, final.batch) == (2, 0)
    assert int(final.optimizer[0]) == 2 * 50  # every batch trained exactly once across the interruption
