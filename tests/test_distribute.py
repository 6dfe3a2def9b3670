"""tf.distribute: two logical CPU replicas, two worker processes, and what must not depend on either."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from common import checkpoint, data, distribute, logs, spiking, train
from common.networks import MNIST_LENET
from conftest import ROOT
from signalling import PATIENCE

LEARNING_RATE = 1e-4


def mirrored() -> tf.distribute.Strategy:
    return distribute.make_strategy("mirrored", 2)


def test_the_replicas_of_a_step_see_the_global_batch_in_order(rng):
    """Each replica gets its slice of the one-device batch, same images, same order."""
    split = data.Split(rng.random((40, 28, 28, 1), np.float32), np.arange(40) % 10, ())
    whole = [y.numpy() for _, y in data.train_batches("mnist", split, 20, 3, 1)]
    strategy = mirrored()

    def pipeline(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        return data.train_batches("mnist", split, 20, 3, 1, shard=(ctx.input_pipeline_id, 1)).rebatch(10)

    shards = [[v.numpy() for v in strategy.experimental_local_results(y)]
              for _, y in strategy.distribute_datasets_from_function(pipeline)]
    assert [np.concatenate(s).tolist() for s in shards] == [w.tolist() for w in whole]
    # two workers: each keeps its half of every batch
    halves = [[y.numpy() for _, y in data.train_batches("mnist", split, 20, 3, 1, shard=(i, 2))] for i in (0, 1)]
    assert [np.concatenate(h).tolist() for h in zip(*halves)] == [w.tolist() for w in whole]


def trained(idx_root: Path, path: Path, k: int | None, strategy: tf.distribute.Strategy | None) -> dict:
    cfg = train.TrainConfig(network=MNIST_LENET, k=k, checkpoint=path, roots=[idx_root],
                            learning_rate=LEARNING_RATE, epochs=1, batch_size=100, train_samples=400, seed=0,
                            strategy=strategy)
    train.run(cfg)
    return checkpoint.load(path, MNIST_LENET, k)


@pytest.mark.slow  # three training runs
def test_two_replicas_train_the_weights_of_one_device(idx_root, tmp_path):
    """Synchronized BatchNorm and summed gradients: 2 replicas of 50 images train as one device does on 100.

    Tolerance: float sums in another order differ by ulps, and Adam turns the sign of a near-zero
    gradient into a whole step (lr), so single weights may differ by up to 2 lr per step; the median
    weight and the BatchNorm statistics (no Adam) must agree far closer than half-batch statistics would
    (measured with synchronization switched off: running statistics up to 8e-2 of their scale apart).
    The FP32 network is compared, as the quantized one rounds and a one-ulp difference can flip a level.
    """
    one = trained(idx_root, tmp_path / "one.npz", None, None)
    two = trained(idx_root, tmp_path / "two.npz", None, mirrored())
    steps = 4
    for name in one:
        a, b = one[name].astype(np.float64), two[name].astype(np.float64)
        if "moving" in name:  # synchronized: within 1.1e-4 here; with half-batch statistics up to 8e-2
            assert np.abs(a - b).max() <= 1e-3 * np.abs(a).max(), name
        else:
            assert np.median(np.abs(a - b)) <= 0.05 * LEARNING_RATE * steps, name
            assert np.abs(a - b).max() <= 2 * LEARNING_RATE * steps + 1e-6, name
    assert two.epoch == 1 and int(two.optimizer[0]) == steps

    # a one-device checkpoint resumes on two replicas, Adam's state included
    train.run(train.TrainConfig(network=MNIST_LENET, k=None, checkpoint=tmp_path / "one.npz", roots=[idx_root],
                                resume=True, learning_rate=LEARNING_RATE, epochs=1, batch_size=100,
                                train_samples=400, seed=0, strategy=mirrored()))
    resumed = checkpoint.load(tmp_path / "one.npz", MNIST_LENET, None)
    assert resumed.epoch == 2 and int(resumed.optimizer[0]) == 2 * steps


@pytest.mark.slow  # training on two replicas
def test_a_network_trained_on_two_replicas_converts_on_one(idx_root, tmp_path):
    ckpt = tmp_path / "k1.npz"
    trained(idx_root, ckpt, 1, mirrored())
    summary = spiking.run(spiking.SpikingConfig(network=MNIST_LENET, k=1, checkpoint=ckpt, roots=[idx_root],
                                                log_dir=tmp_path / "logs", time_steps=12, batch_size=100))
    assert summary["mismatched_neurons"] == 0 and summary["agreement"] == 1.0
    history = json.loads(train.history_path(ckpt).read_text())
    assert history["runs"][0]["settings"]["replicas"] == 2


def test_a_batch_that_does_not_split_gets_one_line(idx_root, tmp_path):
    cfg = train.TrainConfig(network=MNIST_LENET, k=1, checkpoint=tmp_path / "k1.npz", roots=[idx_root],
                            batch_size=99, train_samples=400, strategy=mirrored())
    with pytest.raises(distribute.DistributeError, match="--batch_size 99 does not split evenly over 2 replicas"):
        train.run(cfg)


def test_packed_tallies_survive_the_exchange(rng):
    layers = np.array([[10 ** 9, 4], [-3, 0], [7 * 10 ** 11, 8], [12, 2]])  # (4, L) per-layer figures
    tally = spiking.BatchTally({name: rng.integers(0, 10 ** 9, 5).tolist() for name in logs.LOG_FILES},
                               np.array([3, 2, 2, 0, 10 ** 12, -5, 7 * 10 ** 12, 1, 0]), np.array([4, -1, 0]), layers)
    row = tally.pack(batch_size=8)
    assert len(row) == spiking.BatchTally.width(8, 5, 2)
    back = spiking.BatchTally.unpack(row, 5, 2)
    assert back.lines == tally.lines and back.counts.tolist() == tally.counts.tolist()
    assert back.settle.tolist() == [4, -1, 0] and back.layers.tolist() == layers.tolist()
    assert spiking.BatchTally.unpack(np.zeros_like(row), 5, 2) is None  # a batch no worker simulated


# ---------------------------------------------------------------------------- two worker processes

def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(script: str, args: list[str]) -> list[subprocess.Popen]:
    """Two processes of ``script`` forming a cluster on 127.0.0.1 (worker 0 is the chief)."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    procs = []
    for index in (0, 1):
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        env.pop("NEGSPIKE_CPU_REPLICAS", None)
        procs.append(subprocess.Popen([sys.executable, str(ROOT / script), "--strategy", "multi_worker", *args],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    return procs


def finish(procs: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=PATIENCE)
        results.append((proc.returncode, out, err))
    return results


@pytest.mark.slow  # worker processes
def test_two_workers_train_convert_and_stop_together(idx_root, tmp_path):
    ckpt = tmp_path / "k1.npz"
    common = ["--k", "1", "--data_dir", str(idx_root), "--checkpoint", str(ckpt), "--seed", "0",
              "--train_samples", "400", "--batch_size", "100"]
    results = finish(start_workers("MNIST/Quant_LeNet_MNIST.py", [*common, "--epochs", "1"]))
    assert [r[0] for r in results] == [0, 0], [r[2][-2000:] for r in results]
    assert "test accuracy:" in results[0][1] and "the chief wrote the checkpoint" in results[1][1]
    assert checkpoint.load(ckpt, MNIST_LENET, 1).epoch == 1  # the chief's checkpoint, in the usual format

    # the workers' spiking run writes the logs of a one-device run
    one, two = tmp_path / "one", tmp_path / "two"
    spiking_args = ["--k", "1", "--checkpoint", str(ckpt), "--data_dir", str(idx_root), "--time_steps", "10",
                    "--batch_size", "50"]
    spiking.run(spiking.SpikingConfig(network=MNIST_LENET, k=1, checkpoint=ckpt, roots=[idx_root], log_dir=one,
                                      time_steps=10, batch_size=50))
    results = finish(start_workers("MNIST/Spiking_LeNet_MNIST.py", [*spiking_args, "--log_dir", str(two)]))
    assert [r[0] for r in results] == [0, 0], [r[2][-2000:] for r in results]
    for name in logs.LOG_FILES:
        assert (one / name).read_text() == (two / name).read_text(), name

    # SIGTERM to the worker that is not the chief: both stop after the same batch, the chief saves
    procs = start_workers("MNIST/Quant_LeNet_MNIST.py", [*common, "--resume", "False", "--epochs", "3",
                                                         "--batch_size", "20"])
    for line in procs[1].stdout:  # training has begun: the signal is acted on after the batch in progress
        if line.startswith("Epoch 1/3"):
            break
    procs[1].send_signal(signal.SIGTERM)
    results = finish(procs)
    assert [r[0] for r in results] == [128 + signal.SIGTERM] * 2, [r[2][-2000:] for r in results]
    assert "interrupted by SIGTERM on another worker" in results[0][2]
    assert f"saved {ckpt}" in results[0][2] and "the chief saved its checkpoint" in results[1][2]
    saved = checkpoint.load(ckpt, MNIST_LENET, 1)
    assert (saved.batch > 0 or saved.epoch > 0) and saved.target_epoch == 3

    # and one device resumes it
    resumed = subprocess.run([sys.executable, str(ROOT / "MNIST" / "Quant_LeNet_MNIST.py"), *common,
                              "--batch_size", "20", "--resume", "True"], capture_output=True, text=True,
                             timeout=PATIENCE)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = checkpoint.load(ckpt, MNIST_LENET, 1)
    assert (final.epoch, final.batch) == (3, 0) and int(final.optimizer[0]) == 3 * 20


def test_multi_worker_without_tf_config_gets_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    done = subprocess.run([sys.executable, str(ROOT / "MNIST" / "Quant_LeNet_MNIST.py"), "--strategy",
                           "multi_worker"], capture_output=True, text=True, env=env, timeout=PATIENCE)
    assert done.returncode == 2 and done.stderr.startswith("error: --strategy multi_worker needs TF_CONFIG")
    assert len(done.stderr.strip().splitlines()) == 1
