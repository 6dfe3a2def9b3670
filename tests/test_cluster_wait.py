"""--strategy multi_worker with a peer that never comes: it says what it waits for, gives up after
--cluster_timeout with one line, and ends at once, with 128 + the signal, on Ctrl-C, or on SIGTERM or SIGHUP to
it or to its waiting child (where TensorFlow's coordination service would otherwise take it)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from signalling import DELAYS, PATIENCE, assert_stopped_with_one_line, needs_proc, start_as_background_job, sweep

from common import signals

SPIKING = ROOT / "MNIST" / "Spiking_LeNet_MNIST.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def lonely_worker(tmp_path, timeout: float) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of worker 0 of a cluster of two whose worker 1 never starts."""
    config = {"cluster": {"worker": [f"localhost:{free_port()}", f"localhost:{free_port()}"]},
              "task": {"type": "worker", "index": 0}}
    return ([str(SPIKING), "--strategy", "multi_worker", "--cluster_timeout", str(timeout), "--num_samples", "2",
             "--log_dir", str(tmp_path / "logs")], dict(os.environ, TF_CONFIG=json.dumps(config)))


def start_lonely_worker(tmp_path, timeout: float) -> subprocess.Popen:
    args, env = lonely_worker(tmp_path, timeout)
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)


@pytest.mark.slow  # waits for its timeout
def test_a_peer_that_never_comes_ends_in_one_line_after_the_timeout(tmp_path):
    worker = start_lonely_worker(tmp_path, 5)
    out, err = worker.communicate(timeout=PATIENCE)
    assert worker.returncode == 1
    assert out.startswith("waiting up to 5 s for the 2 workers of TF_CONFIG (localhost:")
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the workers of TF_CONFIG") and \
        "--cluster_timeout" in lines[0], err[-2000:]
    assert not (tmp_path / "logs").exists()


def waiting_child(worker: subprocess.Popen) -> int:
    """The process that waits for the cluster: the started process's child (its watcher is the started one)."""
    with open(f"/proc/{worker.pid}/task/{worker.pid}/children") as children:
        return int(children.read().split()[0])


@pytest.mark.parametrize("signum, to", [
    (signal.SIGINT, "group"),  # a terminal's Ctrl-C: the whole process group
    (signal.SIGTERM, "process"),  # a batch scheduler, or kill: the started process alone
    pytest.param(signal.SIGHUP, "process", marks=pytest.mark.slow),
    pytest.param(signal.SIGTERM, "waiting child", marks=[pytest.mark.slow, needs_proc]),
], ids=["ctrl_c", "sigterm", "sighup", "sigterm_to_the_waiting_child"])
def test_a_stop_signal_while_waiting_for_the_cluster_ends_it_at_once(tmp_path, signum, to):
    worker = start_lonely_worker(tmp_path, 600)
    line = worker.stdout.readline()  # blocks until the wait begins
    assert line.startswith("waiting up to 600 s"), line
    if to == "group":
        os.killpg(worker.pid, signum)
    else:
        os.kill(waiting_child(worker) if to == "waiting child" else worker.pid, signum)
    said = worker.stderr.readline()
    said_at = time.monotonic()
    status = worker.wait(timeout=PATIENCE)
    ended_at = time.monotonic()
    assert said == f"interrupted by {signal.Signals(signum).name} while waiting for the workers of TF_CONFIG\n"
    assert worker.stderr.read() == "" and status == 128 + signum  # its own status, not 137 (SIGKILL)
    assert ended_at - said_at < 10, f"the status came {ended_at - said_at:.1f} s after the line"
    assert not (tmp_path / "logs").exists()


@pytest.mark.slow  # worker processes
@needs_proc
def test_a_stop_signal_at_any_moment_before_the_cluster_came_ends_it_in_one_line(tmp_path):
    workers = [lonely_worker(tmp_path / f"worker{i}", 600) for i in range(len(DELAYS))]  # ports of its own each
    outcomes = sweep(lambda i: start_as_background_job(workers[i][0], env=workers[i][1]), signal.SIGINT)
    waiting = "interrupted by SIGINT while waiting for the workers of TF_CONFIG"
    for i, outcome in enumerate(outcomes):
        assert outcome.signalled
        assert_stopped_with_one_line(outcome, signal.SIGINT)
        assert outcome.lines()[0] in (signals.stop_line(signal.SIGINT), waiting), outcome.err
        assert not (tmp_path / f"worker{i}" / "logs").exists()
