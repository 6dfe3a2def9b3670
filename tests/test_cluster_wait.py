"""--strategy multi_worker with a peer that never comes: it says what it waits for, gives up after
--cluster_timeout with one line, and ends at once on Ctrl-C, or on SIGTERM or SIGHUP to it alone
(which TensorFlow's coordination service would otherwise take while it waits)."""

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

SPIKING = ROOT / "MNIST" / "Spiking_LeNet_MNIST.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def start_lonely_worker(tmp_path, timeout: float) -> subprocess.Popen:
    """Worker 0 of a cluster of two whose worker 1 never starts."""
    config = {"cluster": {"worker": [f"localhost:{free_port()}", f"localhost:{free_port()}"]},
              "task": {"type": "worker", "index": 0}}
    env = dict(os.environ, TF_CONFIG=json.dumps(config))
    return subprocess.Popen([sys.executable, str(SPIKING), "--strategy", "multi_worker", "--cluster_timeout",
                             str(timeout), "--num_samples", "2", "--log_dir", str(tmp_path / "logs")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


@pytest.mark.slow  # waits for its timeout
def test_a_peer_that_never_comes_ends_in_one_line_after_the_timeout(tmp_path):
    worker = start_lonely_worker(tmp_path, 5)
    out, err = worker.communicate(timeout=240)
    assert worker.returncode != 0
    assert out.startswith("waiting up to 5 s for the 2 workers of TF_CONFIG (localhost:")
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the workers of TF_CONFIG") and \
        "--cluster_timeout" in lines[0], err[-2000:]
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize("signum, to_group", [
    (signal.SIGINT, True),  # a terminal's Ctrl-C: the whole process group
    (signal.SIGTERM, False),  # a batch scheduler, or kill: the worker alone
    pytest.param(signal.SIGHUP, False, marks=pytest.mark.slow),
], ids=["ctrl_c", "sigterm", "sighup"])
def test_a_stop_signal_while_waiting_for_the_cluster_ends_it_at_once(tmp_path, signum, to_group):
    worker = start_lonely_worker(tmp_path, 600)
    line = worker.stdout.readline()  # blocks until the wait begins
    assert line.startswith("waiting up to 600 s"), line
    time.sleep(2)
    os.killpg(worker.pid, signum) if to_group else os.kill(worker.pid, signum)
    started = time.monotonic()
    out, err = worker.communicate(timeout=60)
    assert time.monotonic() - started < 30 and worker.returncode != 0
    expected = f"interrupted by {signal.Signals(signum).name} while waiting for the workers of TF_CONFIG"
    assert err.strip().splitlines() == [expected], err[-2000:]
