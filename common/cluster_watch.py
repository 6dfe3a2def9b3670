"""A multi-worker run waits for the workers of ``TF_CONFIG`` in a child process that the started process watches.

TensorFlow waits for its cluster in native code that holds the interpreter lock, so the waiting process runs no
Python code, not even a signal handler, and its coordination service installs a SIGTERM handler of its own. So
:func:`watch_the_cluster_wait`, at start-up, starts the same command line again as a child with SIGINT, SIGTERM
and SIGHUP blocked (every thread of the child inherits the block, so a signal to the child stays pending) and
watches it. Until the child reports that the cluster came (:func:`report_came`), a stop signal to either process
ends both at once, with one line and status 128 + signal; so does ``--cluster_timeout``, with an ``error:`` line
and status 1. After that the watcher passes stop signals on to the child and ends with the child's status.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time
from typing import NoReturn

from common import signals
from common.env import CLUSTER_WATCH_ENV

POLL_SECONDS = 0.1  # how often the watcher looks at the child's pending signals and its clock


def watch_the_cluster_wait() -> None:
    """Start this command line again as a watched child, and end as the child ends; the child returns at once.

    Call it before TensorFlow starts: the child starts afresh with the signals blocked, which every thread it
    starts inherits. From an interactive session or a script read from standard input, which cannot be started again, it
    returns too, and TensorFlow's wait is not watched.
    """
    if CLUSTER_WATCH_ENV in os.environ:
        _die_with_the_watcher(int(os.environ[CLUSTER_WATCH_ENV].split(",")[0]))
        return
    if sys.argv[0] in ("", "-"):
        return
    watcher = _Watcher()  # its handlers record from here on; the child starts with the signals blocked
    reports, child_end = os.pipe()
    os.set_inheritable(child_end, True)
    sys.stdout.flush()
    sys.stderr.flush()
    watcher.child = os.posix_spawn(sys.executable, [sys.executable, *sys.orig_argv[1:]],
                                   {**os.environ, CLUSTER_WATCH_ENV: f"{os.getpid()},{child_end}"},
                                   setsigmask=signals.STOP_SIGNALS)
    os.close(child_end)
    watcher.run(reports)


def report_waiting(timeout: float, message: str) -> None:
    """Tell the watcher that this worker waits for its cluster: it gives up after ``timeout`` s with ``message``."""
    _report(f"waiting {timeout}\t{message}\n")


def report_came() -> None:
    """Tell the watcher that the cluster came, then let the stop signals through to this process's handlers."""
    _report("came\n")
    with contextlib.suppress(KeyError, ValueError, OSError):
        os.close(int(os.environ.pop(CLUSTER_WATCH_ENV).split(",")[1]))  # the watcher now passes signals on
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signals.STOP_SIGNALS)


def _report(text: str) -> None:
    if CLUSTER_WATCH_ENV in os.environ:
        with contextlib.suppress(OSError, ValueError):
            os.write(int(os.environ[CLUSTER_WATCH_ENV].split(",")[1]), text.encode())


def _die_with_the_watcher(watcher: int) -> None:
    """SIGKILL for this child when its watcher dies (Linux), as the run would have died with it."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != watcher:  # it died before the request was made
        os._exit(128 + signal.SIGKILL)


class _Watcher:
    """The started process, from before the child starts to its end (:meth:`run`)."""

    def __init__(self):
        self.child, self.reports = 0, -1
        self.stage = "starting"  # then "waiting", then "came"
        self.deadline, self.message = float("inf"), ""
        self.received: list[int] = []
        self.unread = b""
        for s in signals.STOP_SIGNALS:
            signal.signal(s, lambda signum, frame: self.received.append(signum))

    def run(self, reports: int) -> NoReturn:
        """Watch the child through the pipe ``reports`` until it ends, or a signal or the timeout ends it."""
        self.reports = reports
        while True:
            self.read_reports(POLL_SECONDS)
            ended, status = os.waitpid(self.child, os.WNOHANG)
            if ended:
                _end_as(status)
            signum = self.received.pop(0) if self.received else None
            if self.stage != "came":
                signum = signum or _pending_in(self.child)
            if signum is not None:
                self.on_signal(signum)
            elif time.monotonic() > self.deadline:
                self.stop_child()
                with contextlib.suppress(OSError):
                    os.write(2, f"error: {self.message}\n".encode())
                os._exit(1)

    def read_reports(self, seconds: float) -> None:
        """Take in what the child reported within ``seconds`` (at once with 0)."""
        if self.reports < 0 or not select.select([self.reports], [], [], seconds)[0]:
            if self.reports < 0:
                time.sleep(seconds)
            return
        chunk = os.read(self.reports, 65536)
        if not chunk:  # the child closed its end: the cluster came, or it ended
            os.close(self.reports)
            self.reports = -1
        self.unread += chunk
        while b"\n" in self.unread:
            line, self.unread = self.unread.split(b"\n", 1)
            stage, _, rest = line.decode(errors="replace").partition(" ")
            self.stage = stage
            if stage == "waiting":
                timeout, self.message = rest.split("\t", 1)
                self.deadline = time.monotonic() + float(timeout)

    def on_signal(self, signum: int) -> None:
        """Before the cluster came: end both processes with the line; after: pass the signal on to the child."""
        self.read_reports(0)  # the child may just have reported
        if self.stage == "came":
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.child, signum)
            return
        self.stop_child()
        waiting = f"interrupted by {signal.Signals(signum).name} while waiting for the workers of TF_CONFIG"
        signals.end(signum, waiting if self.stage == "waiting" else None)

    def stop_child(self) -> None:
        """SIGKILL the child, which has written nothing yet, and reap it (waiting at most two seconds)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.child, signal.SIGKILL)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not os.waitpid(self.child, os.WNOHANG)[0]:
            time.sleep(0.01)


def _pending_in(pid: int) -> int | None:
    """A stop signal pending in process ``pid`` (``SigPnd``/``ShdPnd`` in ``/proc``, bit signum - 1), if any."""
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if line.startswith(("SigPnd", "ShdPnd")))
    except OSError:  # no /proc (not Linux): only the watcher's own signals and the timeout end the wait
        return None
    pending = int(fields.get("SigPnd", "0"), 16) | int(fields.get("ShdPnd", "0"), 16)
    return next((s for s in signals.STOP_SIGNALS if pending >> (s - 1) & 1), None)


def _end_as(status: int) -> NoReturn:
    """End with the child's status: its exit code, or death by the same signal."""
    code = os.waitstatus_to_exitcode(status)
    sys.stdout.flush()
    if code < 0:
        with contextlib.suppress(OSError, ValueError):  # SIGKILL has no handler to reset
            signal.signal(-code, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [-code])
        os.kill(os.getpid(), -code)
    os._exit(signals.shell_status(code))
