"""tools/long_run.py: the CIFAR-10 CNN 1 schedule resumed across stops, and its published history."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common import checkpoint, fsutil, logs
from common.networks import MNIST_LENET
from conftest import ROOT, load_script


@pytest.fixture(scope="module")
def long_run():
    return load_script(ROOT / "tools" / "long_run.py")


@pytest.mark.parametrize("position, expected", [
    (None, (False, 1e-3)),  # a fresh start: 100 epochs at 1e-3
    ((0, 40, 100), (True, 1e-3)),  # stopped in epoch 1: on to epoch 100 at 1e-3
    ((57, 0, 100), (True, 1e-3)),
    ((100, 0, 100), (True, 1e-4)),  # the stage boundary: the original's --resume True --learning_rate 0.0001
    ((99, 250, 100), (True, 1e-3)),  # every batch of epoch 100 trained, its evaluation pending
    ((100, 3, 200), (True, 1e-4)),
    ((150, 0, 200), (True, 1e-4)),
    ((200, 0, 200), None),  # done
])
def test_each_stop_resumes_the_stage_it_stopped_in(long_run, position, expected):
    stage = long_run.next_stage(long_run.Position(*position) if position else None)
    assert (stage and (stage.resume, stage.learning_rate)) == expected


def test_a_resumed_finished_stage_trains_the_second_stage_to_epoch_200(long_run, tmp_path):
    cmd = long_run.command(long_run.Stage(True, 1e-4), tmp_path / "k1.npz", "float32")
    flags = dict(zip(cmd[2::2], cmd[3::2]))
    assert flags["--resume"] == "True" and flags["--learning_rate"] == "0.0001" and flags["--epochs"] == "100"
    assert cmd[1] == str(ROOT / "CIFAR10" / "CNN_1" / "Quant_CNN1_CIFAR10.py")


def test_the_spiking_run_ship_names_may_replace_the_shipped_logs(long_run, monkeypatch):
    words = shlex.split(long_run.SPIKING_RUN)
    env = dict(word.split("=", 1) for word in words[:words.index("python")])
    flags = dict(zip(words[words.index("python") + 2::2], words[words.index("python") + 3::2]))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert logs.check_writable(ROOT / flags["--log_dir"]) == ROOT / "CIFAR10" / "CNN_1" / "pretrained" / "logs" / "k1"
    monkeypatch.delenv(logs.WRITE_SHIPPED_ENV)
    with pytest.raises(logs.LogDirError, match="shipped folder"):  # without it the run would refuse
        logs.check_writable(ROOT / flags["--log_dir"])
    assert flags["--checkpoint"] == str(long_run.SHIPPED.relative_to(ROOT)) and flags["--replace_logs"] == "True"


def test_the_targets_say_which_are_met_and_by_how_much_one_is_missed(long_run, tmp_path):
    summary = {"num_samples": 1000, "test_images": 1000, "time_steps": 100, "ann_accuracy": 0.921,
               "agreement": 1.0, "mismatched_neurons": 0, "lossless_step": 57}
    fsutil.write_json(tmp_path / "summary.json", summary)
    lines = long_run.targets(tmp_path / "summary.json")
    assert all(line.startswith("met ") for line in lines), lines
    assert "ANN 92.10 % ± 0.85 (standard error, 1,000 test images)" in lines[0] and "-0.67 points" in lines[0]
    fsutil.write_json(tmp_path / "summary.json", {**summary, "ann_accuracy": 0.9160, "lossless_step": None})
    lines = long_run.targets(tmp_path / "summary.json")
    assert lines[0].startswith("missed") and "-1.17 points" in lines[0]
    assert lines[3] == "missed  lossless from step > 100 of 100, target 57 or earlier"
    with pytest.raises(SystemExit, match="cannot read the spiking run's summary"):
        long_run.targets(tmp_path / "none.json")


def test_the_position_is_read_from_a_checkpoint_and_the_history_published_whole(long_run, tmp_path, monkeypatch):
    clone = tmp_path / "clone"  # not this clone's own committed copy
    monkeypatch.setattr(long_run, "INSURANCE", clone / long_run.INSURANCE.relative_to(long_run.ROOT))
    ckpt = tmp_path / "k1.npz"
    assert long_run.Position.read(ckpt) is None
    weights = checkpoint.load(ROOT / "MNIST" / "pretrained" / "k1.npz", MNIST_LENET, 1)
    history = {"runs": [{"started": "2026-12-06T17:00:00+0000", "cpu": "a CPU", "settings": {"precision": "bfloat16"},
                         "command": "python3.11 x"}],
               "epochs": [{"epoch": 1, "run": 0, "seconds": 330.0, "test_acc": 0.45, "train_loss": 1.7}]}
    checkpoint.save(ckpt, MNIST_LENET, 1, weights, 1, 0, target_epoch=100, history=history)
    fsutil.write_json(tmp_path / "k1.history.json", history)
    assert long_run.Position.read(ckpt) == long_run.Position(1, 0, 100)
    status = long_run.status(ckpt)
    assert "1 of 200 epochs" in status and "bfloat16" in status and "5.5 min per epoch" in status
    assert "insurance: at the end of epoch 100, kept by resume" in status
    assert status.endswith("199 epochs left: about 18 h at the pace of the last epoch")  # 199 x 5.5 min
    assert (long_run.duration(89.6), long_run.duration(16.5)) == ("90 min", "16 min")  # not "about 0 h"
    long_run.kept_insurance(ckpt).write_bytes(b"packed")
    assert "insurance: kept at" in long_run.status(ckpt)
    long_run.INSURANCE.parent.mkdir(parents=True)
    long_run.INSURANCE.write_bytes(b"packed")
    monkeypatch.setattr(long_run, "ROOT", clone)
    assert "insurance: CIFAR10/CNN_1/insurance/k1.epoch100.npz.xz (epoch 100)" in long_run.status(ckpt)
    published = long_run.publish(ckpt, tmp_path / "published.json")
    assert json.loads(published.read_text()) == history


def test_the_insurance_restores_the_state_bit_for_bit_and_never_over_one(long_run, tmp_path):
    ckpt, copy = tmp_path / "state" / "k1.npz", tmp_path / "insurance" / "k1.epoch100.npz.xz"
    weights = checkpoint.load(ROOT / "MNIST" / "pretrained" / "k1.npz", MNIST_LENET, 1)
    history = {"runs": [], "epochs": []}
    adam = [np.array(25_000, np.int64), *(np.random.default_rng(0).normal(size=w.shape).astype(np.float32)
                                          for w in weights.values())]
    checkpoint.save(ckpt, MNIST_LENET, 1, weights, 99, 0, adam, target_epoch=100, history=history)
    with pytest.raises(SystemExit, match="end of epoch 100"):
        long_run.insure(ckpt, copy)
    checkpoint.save(ckpt, MNIST_LENET, 1, weights, 100, 0, adam, target_epoch=100, history=history)
    long_run.insure(ckpt, copy)
    assert copy.stat().st_size < ckpt.stat().st_size
    with pytest.raises(SystemExit, match="exists"):
        long_run.restore(ckpt, copy)
    restored = tmp_path / "restored" / "k1.npz"
    long_run.restore(restored, copy)
    with np.load(ckpt) as a, np.load(restored) as b:
        assert a.files == b.files
        assert all(a[n].dtype == b[n].dtype and np.array_equal(a[n], b[n]) for n in a.files)
    assert json.loads((restored.parent / "k1.history.json").read_text()) == history
    published = tmp_path / "published.json"  # the last published history of a state lost at epoch 102
    lost = {"runs": [{"started": "then", "cpu": "a CPU", "settings": {}}],
            "epochs": [{"epoch": e, "run": 0, "seconds": 300.0} for e in (101, 102)]}
    fsutil.write_json(published, lost)
    again = tmp_path / "again" / "k1.npz"
    long_run.restore(again, copy, lost=published)
    noted = json.loads((again.parent / "k1.history.json").read_text())["lost"]
    assert noted[0]["epochs"] == lost["epochs"] and noted[0]["went_on_from"] == f"epoch 100, {copy}"
    assert checkpoint.load(again, MNIST_LENET, 1).history["lost"] == noted  # inside the state too
    assert "lost: epochs 101-102 with their state" in long_run.status(again)


def test_the_state_of_epoch_100_is_kept_before_the_second_stage_overwrites_it(long_run, tmp_path):
    ckpt, kept, copy = tmp_path / "state" / "k1.npz", tmp_path / "state" / "kept.npz.xz", tmp_path / "repo" / "k1.xz"
    weights = checkpoint.load(ROOT / "MNIST" / "pretrained" / "k1.npz", MNIST_LENET, 1)
    history = {"runs": [], "epochs": []}
    checkpoint.save(ckpt, MNIST_LENET, 1, weights, 99, 0, target_epoch=100, history=history)
    assert long_run.keep_boundary_state(ckpt, kept) is None and not kept.exists()  # not yet at the boundary
    checkpoint.save(ckpt, MNIST_LENET, 1, weights, 100, 0, target_epoch=100, history=history)
    assert long_run.keep_boundary_state(ckpt, kept) == kept
    packed = kept.read_bytes()
    checkpoint.save(ckpt, MNIST_LENET, 1, weights, 100, 7, target_epoch=200, history=history)  # stage 2 saved
    assert long_run.keep_boundary_state(ckpt, kept) is None and kept.read_bytes() == packed
    assert long_run.insure(ckpt, copy, kept).read_bytes() == packed  # past the boundary: the kept copy
    kept.unlink()
    with pytest.raises(SystemExit, match="no copy of epoch 100 was kept"):
        long_run.insure(ckpt, copy, kept)


def test_the_run_yields_in_its_own_scheduling_group(long_run):
    autogroup = Path("/proc/self/autogroup")
    if not autogroup.exists():
        pytest.skip("no Linux autogroup: the process's nice value alone lowers its priority")
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE,
                             start_new_session=True)
    try:
        long_run.lower_group_priority(child.pid)
        assert Path(f"/proc/{child.pid}/autogroup").read_text().split()[-1] == str(long_run.NICENESS)
        assert autogroup.read_text() != Path(f"/proc/{child.pid}/autogroup").read_text()  # ours is untouched
    finally:
        child.communicate(b"")
