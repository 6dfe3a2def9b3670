"""Hostile and careless inputs: each gets one ``error:`` line (or a clear exception), never garbage or data loss."""

from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from common import checkpoint, data, logs, signals, spiking, train
from common.networks import MNIST_LENET
from conftest import ROOT
from signalling import DELAYS, PATIENCE, assert_stopped_with_one_line, needs_proc, start_as_background_job, sweep

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


def run_script(*args: str, timeout: float = PATIENCE) -> subprocess.CompletedProcess:
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


@pytest.mark.slow  # a spiking run
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


@pytest.mark.slow  # a training run
def test_a_signal_during_validation_saves_a_resumable_checkpoint(idx_root, tmp_path, monkeypatch, signal_on_call):
    ckpt = tmp_path / "k1.npz"
    real = signal_on_call(train, "evaluate", call=1, signum=signal.SIGTERM)
    with pytest.raises(train.Interrupted, match="while evaluating"):
        train.run(config(idx_root, ckpt))
    saved = checkpoint.load(ckpt, MNIST_LENET, 1)
    assert (saved.epoch, saved.batch) == (0, 3)  # every batch done, the evaluation pending
    monkeypatch.setattr(train, "evaluate", real)
    train.run(config(idx_root, ckpt, resume=True))
    resumed = checkpoint.load(ckpt, MNIST_LENET, 1)
    assert resumed.epoch == 1 and [e["epoch"] for e in resumed.history["epochs"]] == [1]


@pytest.mark.slow  # an interrupted spiking run
def test_ctrl_c_during_a_spiking_run_writes_the_finished_batches(tmp_path, signal_on_call):
    from common import snn

    signal_on_call(snn.FastSimulator, "simulate", call=2)
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


@pytest.mark.slow  # a spiking run
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


# ---------------------------------------------------------------------------- third round (issue 20)

def cifar_pickle_of(tmp_path: Path, raw: bytes) -> Path:
    path = tmp_path / "test_batch"
    path.write_bytes(raw)
    return path


def small_cifar_pickle() -> bytes:
    return pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]}, protocol=2)


@pytest.mark.parametrize("make, message", [
    (lambda: small_cifar_pickle().replace(b"latin1", b"rot_13"), "refusing to encode with 'rot_13'"),
    (lambda: b"\x80\x04\x8e" + (2 ** 60).to_bytes(8, "little") + b"xx.", "bytes8, but only"),
    (lambda: pickle.dumps({b"data": np.zeros(4, np.uint8)}, protocol=2).replace(
        b"K\x04\x85", b"\x8a\x07" + (2 ** 50).to_bytes(7, "little") + b"\x85", 1), "shape (1125899906842624,)"),
    (lambda: b"\x80\x02c__builtin__\neval\nq\x00.", "refusing to load __builtin__.eval"),
    (lambda: b"\x80\x02(c__builtin__\nobject\no.", "opcode OBJ"),
])
def test_crafted_cifar_pickles_are_one_error(tmp_path, make, message):
    with pytest.raises(data.DataError, match="not a CIFAR python batch") as e:
        data.read_cifar_batch(cifar_pickle_of(tmp_path, make()))
    assert message in str(e.value)


def test_a_python3_cifar_pickle_still_loads(tmp_path):
    images, labels = data.read_cifar_batch(cifar_pickle_of(tmp_path, small_cifar_pickle()))
    assert images.shape == (2, 32, 32, 3) and type(images) is np.ndarray and labels.tolist() == [1, 2]


def test_negspike_data_pointing_at_a_file_is_refused(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / "file"))
    with pytest.raises(data.DataError, match="NEGSPIKE_DATA=.* is not a folder"):
        data.data_roots(None, tmp_path)
    assert data.data_roots(str(tmp_path), tmp_path) == [tmp_path]  # --data_dir wins


def test_boolean_flags_take_a_separate_value_as_the_readme_writes_them():
    from absl import flags

    from common import cli

    fv = flags.FlagValues()
    cli.define_snn_flags(time_steps=20, flag_values=fv)
    argv = cli._join_boolean_values(["prog", "--early_exit", "False", "--replace_logs", "true", "--k", "1"], fv)
    fv(argv)
    assert (fv.early_exit, fv.replace_logs, fv.k) == (False, True, 1)
    fv(cli._join_boolean_values(["prog", "--early_exit", "--num_samples", "5"], fv))
    assert fv.early_exit is True and fv.num_samples == 5


@pytest.mark.parametrize("config, message", [
    ({"cluster": {"worker": [1234, "h:1"]}, "task": {"type": "worker", "index": 0}}, "list of \"host:port\""),
    ({"cluster": {"worker": ["h:1"], "ps": ["h:2"]}, "task": {"type": "worker", "index": 0}}, "task types ['ps']"),
    ({"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 0.7}}, "task index 0.7"),
    ({"cluster": {"worker": ["h:1"]}, "task": {"type": "chief", "index": 0}}, "task type 'chief' is not in"),
    ({"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": True}}, "task index True"),
    ({"cluster": [], "task": {}}, "not a cluster and a task"),
])
def test_a_tf_config_that_is_not_a_worker_cluster_is_one_line(monkeypatch, capsys, config, message):
    import json

    from common import cli

    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    with pytest.raises(SystemExit) as e:
        cli._check_tf_config()
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith("error: TF_CONFIG") and message in err


def test_without_checkpoint_your_own_shadows_the_shipped_one_and_says_so(tmp_path, capsys):
    from common import cli

    shipped = tmp_path / "pretrained" / "k1.npz"
    assert cli.checkpoint_to_read(tmp_path, 1) == tmp_path / "checkpoints" / "k1.npz"  # neither: the message names it
    shipped.parent.mkdir()
    shipped.write_bytes(b"x")
    assert cli.checkpoint_to_read(tmp_path, 1) == shipped and capsys.readouterr().out == ""
    own = tmp_path / "checkpoints" / "k1.npz"
    own.parent.mkdir()
    own.write_bytes(b"x")
    assert cli.checkpoint_to_read(tmp_path, 1) == own
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and f"using your own checkpoint {own}, which shadows the shipped {shipped}" in out


def test_sighup_stops_a_loop_as_sigterm_does():
    from common.signals import SignalGuard

    with SignalGuard() as guard:
        os.kill(os.getpid(), signal.SIGHUP)
        assert guard.stop() and guard.name == "SIGHUP"


class _NeverQuiet:
    """A simulator whose images settle at ``settle`` steps (0-based quiet step), or never."""

    def __init__(self, settle: int | None, seconds_per_call: float = 0.0):
        self.settle, self.seconds, self.calls = settle, seconds_per_call, []

    def simulate(self, x, steps, stop=lambda: False):
        import time

        from common.signals import Stopped

        self.calls.append(steps)
        time.sleep(self.seconds)
        if stop():
            raise Stopped
        quiet = -1 if self.settle is None or self.settle >= steps else self.settle
        return type("R", (), {"settle": np.full(len(x), quiet)})()


def advice_config(time_steps: int = 20) -> spiking.SpikingConfig:
    return spiking.SpikingConfig(network=MNIST_LENET, k=1, checkpoint=SHIPPED, roots=[], log_dir=Path("."),
                                 time_steps=time_steps, batch_size=10)


def test_the_unsettled_advice_is_true():
    enough, _ = spiking._sufficient_steps(advice_config(), _NeverQuiet(36), np.zeros((3, 1)), lambda: False)
    assert enough == 37  # a run of 37 steps sees the quiet step 36 (0-based)
    # simulated again, they settle sooner than the run saw (noise off the grid): never advise what failed
    enough, _ = spiking._sufficient_steps(advice_config(), _NeverQuiet(5), np.zeros((3, 1)), lambda: False)
    assert enough == 21


def test_the_unsettled_advice_is_bounded_and_honours_a_signal():
    import time

    started = time.monotonic()
    enough, tried = spiking._sufficient_steps(advice_config(), _NeverQuiet(None, 0.05), np.zeros((3, 1)),
                                              lambda: False, seconds=0.2)
    assert enough is None and 20 <= tried < spiking.MAX_TIME_STEPS and time.monotonic() - started < 2
    assert spiking._sufficient_steps(advice_config(), _NeverQuiet(None), np.zeros((3, 1)), lambda: True) == (None, 20)
    enough, tried = spiking._sufficient_steps(advice_config(), _NeverQuiet(None), np.zeros((3, 1)), lambda: False)
    assert (enough, tried) == (None, spiking.MAX_TIME_STEPS)


def test_epochs_beyond_what_a_checkpoint_holds_are_refused_before_training(idx_root, tmp_path):
    with pytest.raises(train.TrainingError, match="more than the 100,000 epochs a checkpoint holds"):
        train.run(config(idx_root, tmp_path / "k1.npz", epochs=2_000_000))
    assert not (tmp_path / "k1.npz").exists()


def test_tensorboard_is_checked_before_training(idx_root, tmp_path):
    (tmp_path / "tb").write_text("a file")
    with pytest.raises(train.TrainingError, match="--tensorboard .* is a file"):
        train.run(config(idx_root, tmp_path / "k1.npz", tensorboard=tmp_path / "tb"))
    assert not (tmp_path / "k1.npz").exists()


@pytest.mark.parametrize("history", [
    "[" * 200_000 + "]" * 200_000,
    pytest.param('{"runs": [], "epochs": [{"epoch": ' + "9" * 5000 + "}]}", marks=pytest.mark.slow),
    pytest.param('{"runs": [3], "epochs": []}', marks=pytest.mark.slow),  # each a training start: slow tier
])
def test_a_malformed_history_beside_an_old_checkpoint_is_one_error(idx_root, tmp_path, history):
    ckpt = tmp_path / "k1.npz"
    train.run(config(idx_root, ckpt))
    with np.load(ckpt) as f:
        arrays = {name: f[name] for name in f.files if name != "meta/history"}
    np.savez(ckpt, **arrays)
    train.history_path(ckpt).write_text(history)
    with pytest.raises(checkpoint.CheckpointError, match="not a readable training history"):
        train.run(config(idx_root, ckpt, resume=True))


@pytest.mark.slow  # TensorFlow subprocesses
def test_a_closed_or_full_standard_output_does_not_lose_the_run(tmp_path):
    """| head -1, >/dev/full and a closed stdout: the logs are still written, with no traceback."""
    script = f"{sys.executable} {SPIKING} --num_samples 2 --time_steps 3 --log_dir"
    done = subprocess.run(f"{script} {tmp_path / 'head'} | head -1; echo status ${{PIPESTATUS[0]}}",
                          shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=PATIENCE)
    assert done.stdout.splitlines()[-1] == "status 0", done.stderr[-2000:]
    assert "Traceback" not in done.stderr and logs.read_summary(tmp_path / "head")["num_samples"] == 2
    if os.path.exists("/dev/full"):
        done = subprocess.run(f"{script} {tmp_path / 'full'} > /dev/full", shell=True, capture_output=True,
                              text=True, timeout=PATIENCE)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
        assert done.stderr.startswith("note: standard output failed (No space left on device)")
        assert logs.read_summary(tmp_path / "full")["num_samples"] == 2
    done = subprocess.run(f"{script} {tmp_path / 'closed'} >&-", shell=True, capture_output=True, text=True,
                          timeout=PATIENCE)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert logs.read_summary(tmp_path / "closed")["num_samples"] == 2


@pytest.mark.parametrize("tool", [["tools/results_table.py"], ["tools/long_run.py", "targets"]], ids=" ".join)
def test_a_tool_whose_reader_closed_the_pipe_ends_without_a_traceback(tool):
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `| head -1` has once it has its line: every write fails
    try:
        done = subprocess.run([sys.executable, *tool], cwd=ROOT, stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=PATIENCE)
    finally:
        os.close(write_end)
    assert done.returncode == 0 and done.stderr == ""


def test_ctrl_c_while_the_unsettled_note_is_worked_out_is_honoured(capsys):
    class SignalledSimulator(_NeverQuiet):
        def simulate(self, x, steps, stop=lambda: False):
            os.kill(os.getpid(), signal.SIGINT)
            return super().simulate(x, steps, stop)

    summary = {"num_samples": 3, "snn_accuracy": [1.0], "ann_accuracy": 1.0, "agreement": 1.0, "lossless_step": 1,
               "mismatched_neurons": 0, "run": {"wall_seconds": 1.0}, "differs_from_defaults": []}
    with pytest.raises(spiking.Interrupted, match="SIGINT while checking the unsettled images; the logs in"):
        spiking._report(advice_config(), summary, SignalledSimulator(None), np.zeros((3, 1)))
    note = capsys.readouterr().out.splitlines()[-1]
    assert note.startswith("note: 3 images were still spiking after 20 steps")
    assert note.endswith("they need more than 20 --time_steps (the check of how many stopped at SIGINT)")


# ---------------------------------------------------------------------------- fourth round (issue 32)
# A stop signal stops every entry point whenever it arrives, also where a shell script's background job starts with
# SIGINT ignored; each process is signalled at delays from the moment it catches the stop signals (signalling.py).

def entry_point_args(script: Path, tmp_path: Path) -> list[str]:
    """``script`` with files of the test's own: a run that went on would fail on them, not write elsewhere."""
    own = ["--data_dir", str(tmp_path), "--checkpoint", str(tmp_path / "none.npz")]
    return [str(script), *own, *(["--log_dir", str(tmp_path / "logs")] if script.name.startswith("Spiking") else [])]


def TOOLS_AND_BENCHMARKS(tmp_path: Path) -> list[list[str]]:  # noqa: N802 - a table, by its arguments
    """Every program of ``tools/`` and ``benchmarks/``, with arguments that read only (or only the test's files);
    each runs for seconds at least, so the signal always comes first."""
    commands = [["tools/model_cards.py"], ["tools/results_table.py"], ["tools/long_run.py", "resume"],
                ["tools/rule_ablation.py", str(tmp_path / "ablation.png"), str(tmp_path / "no_run")],
                ["benchmarks/snn_speed.py"], ["benchmarks/snn_memory.py"], ["benchmarks/snn_vs_others.py"],
                ["benchmarks/train_speed.py"]]
    if importlib.util.find_spec("torch") and importlib.util.find_spec("spikingjelly"):  # the bench extra
        commands.append(["benchmarks/spikingjelly_peer.py", *(str(tmp_path / name) for name in ("m", "x", "out"))])
    return commands


@needs_proc
def test_every_entry_point_ends_in_one_line_on_a_signal_as_it_starts(tmp_path, tmp_path_factory):
    from test_cli import SCRIPTS

    commands = [entry_point_args(script, tmp_path) for script in SCRIPTS] + [["-m", "common.plots", str(tmp_path)]]
    commands += TOOLS_AND_BENCHMARKS(tmp_path)
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "no_data").touch()
    # long_run.py resume: a state of the test's own; a file for data, so that a run that went on would fail at once
    env = {**os.environ, "NEGSPIKE_STATE": str(elsewhere), "NEGSPIKE_DATA": str(elsewhere / "no_data")}
    outcomes = sweep(lambda i: start_as_background_job(commands[i], cwd=ROOT, env=env), signal.SIGINT,
                     (0.0,) * len(commands))
    for command, outcome in zip(commands, outcomes):
        assert outcome.signalled, command
        assert_stopped_with_one_line(outcome, signal.SIGINT, signals.stop_line(signal.SIGINT))
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written


def assert_whole_log_set_or_none(log_dir: Path) -> None:
    """``log_dir`` holds a whole set of logs (complete or partial) or does not exist; no staging folder is left."""
    assert not list(log_dir.parent.glob(f".{log_dir.name}.new-*"))
    if log_dir.exists():
        summary = logs.read_summary(log_dir)
        for name in logs.LOG_FILES:
            logs.read_log(log_dir, name, summary["time_steps"])  # whole batches of time steps


@needs_proc
@pytest.mark.parametrize("signum", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow),
                                    pytest.param(signal.SIGHUP, marks=pytest.mark.slow)], ids=lambda s: s.name)
def test_a_stop_signal_at_any_moment_of_a_spiking_run_ends_it_in_one_line(tmp_path, signum):
    from helpers import write_idx_dataset

    write_idx_dataset(tmp_path / "data" / "mnist", 10, 10_000, np.random.default_rng(0))

    def start(i: int) -> subprocess.Popen:  # minutes of simulation on any CPU: the signal always comes first
        return start_as_background_job([str(SPIKING), "--checkpoint", str(SHIPPED), "--batch_size", "100",
                                        "--time_steps", "50",
                                        "--data_dir", str(tmp_path / "data"), "--log_dir", str(tmp_path / f"logs{i}")])

    for i, outcome in enumerate(sweep(start, signum)):
        assert outcome.signalled, "the run ended before its signal: give it more images"
        assert_stopped_with_one_line(outcome, signum)
        assert_whole_log_set_or_none(tmp_path / f"logs{i}")


@pytest.mark.slow  # training subprocesses
@needs_proc
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_stop_signal_at_any_moment_of_training_ends_it_in_one_line(idx_root, tmp_path, signum):
    def start(i: int) -> subprocess.Popen:  # minutes of training on any CPU: the signal always comes first
        return start_as_background_job([str(ROOT / "MNIST" / "Quant_LeNet_MNIST.py"), "--k", "1", "--epochs", "20",
                                        "--train_samples", "10000", "--batch_size", "20", "--seed", "0",
                                        "--data_dir", str(idx_root), "--checkpoint", str(tmp_path / f"k{i}.npz")])

    for i, outcome in enumerate(sweep(start, signum)):
        assert outcome.signalled, "the run ended before its signal: give it more epochs"
        assert_stopped_with_one_line(outcome, signum)
        assert not list(tmp_path.glob(f".k{i}.npz.*.tmp"))
        if (tmp_path / f"k{i}.npz").exists():  # saved where it stopped, resumable
            saved = checkpoint.load(tmp_path / f"k{i}.npz", MNIST_LENET, 1)
            assert saved.epoch > 0 or saved.batch > 0, outcome.err
            assert f"saved {tmp_path / f'k{i}.npz'}" in outcome.err


PNG_END = b"IEND\xaeB`\x82"


@needs_proc
@pytest.mark.parametrize("signum", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow),
                                    pytest.param(signal.SIGHUP, marks=pytest.mark.slow)], ids=lambda s: s.name)
def test_a_stop_signal_at_any_moment_of_the_figures_ends_them_in_one_line(tmp_path, signum):
    import shutil

    for i in range(len(DELAYS)):
        for k in ("k0", "k1", "k2"):
            shutil.copytree(ROOT / "MNIST" / "pretrained" / "logs" / k, tmp_path / f"ws{i}" / "figs" / k)
    outcomes = sweep(lambda i: start_as_background_job(["-m", "common.plots", str(tmp_path / f"ws{i}")], cwd=ROOT),
                     signum)
    assert outcomes[0].signalled and outcomes[0].out == ""  # at 0 s it is still importing matplotlib
    for i, outcome in enumerate(outcomes):
        figures = sorted((tmp_path / f"ws{i}" / "figs").glob("*.png"))
        assert all(f.read_bytes().endswith(PNG_END) for f in figures)  # each figure whole
        if outcome.out.count(".png") == 5:  # the figures were done and reported: the signal came as it ended
            assert outcome.status in (0, 128 + signum, -signum) and len(outcome.lines()) <= 1, outcome.err
        else:
            assert_stopped_with_one_line(outcome, signum, signals.stop_line(signum))
            assert len(figures) in (0, 5)


@needs_proc
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_stop_signal_to_a_program_reaches_the_child_it_runs_first(signum):
    """A program that runs another (long_run.py's training stages, the SpikingJelly peer) stops it before it ends:
    one line (the child's), the child's status, and no child left running alone."""
    child = ("import os, sys, time; from common import signals; signals.catch_stop_signals(); "
             "print(os.getpid(), flush=True); time.sleep(PATIENCE)").replace("PATIENCE", str(PATIENCE))
    parent = ("import sys; from common import signals; signals.catch_stop_signals(); "
              f"signals.run_relaying_stop_signals([sys.executable, '-c', {child!r}])")
    proc = subprocess.Popen([sys.executable, "-c", parent], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # a terminal's Ctrl-C would reach both: not this
    child_pid = int(proc.stdout.readline())  # the child runs and catches the stop signals
    os.kill(proc.pid, signum)
    out, err = proc.communicate(timeout=PATIENCE)
    assert proc.returncode == 128 + signum, err
    assert err.splitlines() == [signals.stop_line(signum)]
    with pytest.raises(ProcessLookupError):  # the parent waited for it: reaped, not orphaned
        os.kill(child_pid, 0)


def test_a_stop_signal_after_the_child_finished_ends_the_program_with_its_line():
    parent = ("import os, signal, sys; from common import signals; "
              "signals.run_relaying_stop_signals([sys.executable, '-c', "
              "'import os, signal; os.kill(os.getppid(), signal.SIGTERM)'])")  # the child signals its parent
    done = subprocess.run([sys.executable, "-c", parent], cwd=ROOT, capture_output=True, text=True, timeout=PATIENCE)
    assert done.returncode == 128 + signal.SIGTERM
    assert done.stderr.splitlines() == [signals.stop_line(signal.SIGTERM)]
