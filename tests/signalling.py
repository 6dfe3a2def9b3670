"""Stop signals sent to a subprocess at a moment it shows, never after a sleep that guesses how fast it starts.

A script catches SIGINT, SIGTERM and SIGHUP from its first statement on, which ``/proc/<pid>/status`` shows
(``SigCgt``); :func:`sweep` signals processes at several delays after that point, from 0 s on, so that every
stage of start-up and of the work is hit on a fast and on a slow machine alike.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DELAYS = (0.0, 0.2, 0.5, 1.0, 2.0, 4.0, 8.0)  # seconds after the process catches the stop signals
PATIENCE = 900.0  # seconds any one step may take on a loaded two-core machine
HAS_PROC = Path("/proc/self/status").exists()
needs_proc = pytest.mark.skipif(not HAS_PROC, reason="the moment a process catches signals is read from /proc")

# `cmd &` in a shell script starts cmd with SIGINT ignored, and Python keeps an ignored SIGINT: the case of issue 32
_IGNORING_SIGINT = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")


def start_as_background_job(args: list[str], **popen) -> subprocess.Popen:
    """``python *args`` as a shell script's background job starts it: SIGINT ignored (the exec keeps that)."""
    return subprocess.Popen([sys.executable, "-c", _IGNORING_SIGINT, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def caught_signals(pid: int) -> set[int]:
    """The signals process ``pid`` has handlers for (``SigCgt`` in ``/proc``; bit signum - 1)."""
    with open(f"/proc/{pid}/status") as status:
        mask = next(int(line.split(":")[1], 16) for line in status if line.startswith("SigCgt"))
    return {s for s in range(1, 65) if mask >> (s - 1) & 1}


def wait_until_it_catches_stop_signals(proc: subprocess.Popen, timeout: float = PATIENCE) -> None:
    """Until ``proc`` has handlers for SIGINT, SIGTERM and SIGHUP, as an entry point does from its first statement."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"it ended ({proc.returncode}) before catching the stop signals: {proc.args}"
        if set(STOP_SIGNALS) <= caught_signals(proc.pid):
            return
        assert time.monotonic() < deadline, f"it did not catch the stop signals within {timeout:g} s"
        time.sleep(0.002)


def signal_unless_ended(proc: subprocess.Popen, signum: int) -> bool:
    """Send ``signum`` unless ``proc`` has already ended; whether it was sent.

    The process is frozen (SIGSTOP) while it is looked at, so it cannot end between the look and the signal,
    which then waits for the SIGCONT that thaws it.
    """
    os.kill(proc.pid, signal.SIGSTOP)
    state = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WSTOPPED | os.WNOWAIT)  # whichever comes first
    if state.si_code != os.CLD_STOPPED:
        return False
    os.kill(proc.pid, signum)
    os.kill(proc.pid, signal.SIGCONT)
    return True


@dataclasses.dataclass
class Outcome:
    """What one process of a :func:`sweep` did."""

    delay: float
    signalled: bool  # False: it had ended before the signal was due
    status: int
    out: str
    err: str

    def lines(self) -> list[str]:
        return self.err.splitlines()


def sweep(start: Callable[[int], subprocess.Popen], signum: int, delays: tuple[float, ...] = DELAYS,
          timeout: float = PATIENCE) -> list[Outcome]:
    """Start one process per delay (``start(i)``, side by side) and send each ``signum`` ``delay`` seconds after
    it catches the stop signals (unless it has ended by then); what each did."""
    procs = [start(i) for i in range(len(delays))]
    signalled = [False] * len(delays)
    failures: list[Exception] = []

    def signal_later(i: int) -> None:
        try:
            wait_until_it_catches_stop_signals(procs[i], timeout)
            time.sleep(delays[i])  # the moment under test, counted from an observed point
            signalled[i] = signal_unless_ended(procs[i], signum)
        except Exception as e:  # an assertion: the test raises it
            failures.append(e)

    threads = [threading.Thread(target=signal_later, args=(i,)) for i in range(len(delays))]
    for thread in threads:
        thread.start()
    for thread in threads:  # before anything reaps a process: its pid must stay its own while it is signalled
        thread.join()
    if failures:
        for proc in procs:
            proc.kill()
            proc.communicate()
        raise failures[0]
    outputs = [proc.communicate(timeout=timeout) for proc in procs]
    return [Outcome(delay, sent, proc.returncode, out, err)
            for delay, sent, proc, (out, err) in zip(delays, signalled, procs, outputs)]


def assert_stopped_with_one_line(outcome: Outcome, signum: int, line: str | None = None) -> None:
    """Status 128 + ``signum`` and one line on standard error naming the signal (exactly ``line`` if given)."""
    name = signal.Signals(signum).name
    where = f"signalled {outcome.delay:g} s after it caught the stop signals"
    assert outcome.status == 128 + signum, f"{where}: status {outcome.status}: {outcome.err[-2000:]}"
    assert len(outcome.lines()) == 1 and outcome.lines()[0].startswith(f"interrupted by {name}"), \
        f"{where}: {outcome.err[-2000:]}"
    if line is not None:
        assert outcome.lines() == [line], f"{where}: {outcome.err[-2000:]}"
