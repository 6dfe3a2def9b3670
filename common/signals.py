"""SIGINT, SIGTERM and SIGHUP as a flag that long loops check, so they can stop cleanly and save; and a
standard output that may go away (``| head``, ``>/dev/full``, closed) without taking the run with it."""

from __future__ import annotations

import errno
import os
import signal
import sys
from typing import TextIO

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGHUP: the terminal was closed


def hold_stop_signals_in_every_thread() -> None:
    """Restart this process once with SIGINT, SIGTERM and SIGHUP blocked, so that every thread inherits the block.

    TensorFlow's coordination service installs a SIGTERM handler of its own while a worker waits for
    its peers, and would swallow the signal. Blocked in every thread, a signal stays pending, where the
    cluster watchdog sees it; :func:`release_stop_signals` hands it to this package's handlers after the
    wait. A thread starts with the mask of the thread that starts it, and numpy's BLAS starts one when
    it is imported, so the mask must be set before anything starts: an exec keeps it.
    """
    if set(STOP_SIGNALS) <= signal.pthread_sigmask(signal.SIG_BLOCK, []):
        return  # held since the process started
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    if sys.argv[0] in ("", "-"):  # an interactive session or a script read from stdin cannot be started again
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def release_stop_signals() -> None:
    """Unblock SIGINT, SIGTERM and SIGHUP in this thread: pending ones reach the handlers now in place."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


class Interrupted(Exception):  # noqa: N818 - it is a signal, not an error
    """SIGINT, SIGTERM or SIGHUP arrived; what could be saved has been saved (the message says where)."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class SignalGuard:
    """Within ``with``, SIGINT, SIGTERM and SIGHUP only set ``signum``; the loop decides when to stop."""

    def __init__(self):
        self.signum: int | None = None

    def __enter__(self) -> SignalGuard:
        self._previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
        return self

    def _handle(self, signum, frame) -> None:
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def stop(self) -> bool:
        return self.signum is not None


class _TolerantOutput:
    """A text stream whose write errors (a closed pipe, a full disk) silence it instead of ending the run."""

    LOST = (errno.EPIPE, errno.ENOSPC, errno.EBADF, errno.EIO, errno.EDQUOT)

    def __init__(self, stream: TextIO):
        self._stream = stream
        self.lost = False

    def __getattr__(self, name: str):
        return getattr(self._stream, name)

    def _guard(self, action, *args):
        if self.lost:
            return None
        try:
            return action(*args)
        except OSError as e:
            if e.errno not in self.LOST:
                raise
            self._lose(e)
            return None

    def write(self, text: str) -> int:
        return self._guard(self._stream.write, text) or len(text)

    def flush(self) -> None:
        self._guard(self._stream.flush)

    def _lose(self, error: OSError) -> None:
        self.lost = True
        try:  # whatever is still buffered goes to /dev/null, so that the exit flush cannot fail again
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass
        if error.errno != errno.EPIPE:  # a closed pipe (`| head`) is what the reader wanted
            sys.stderr.write(f"note: standard output failed ({error.strerror}); the run goes on silently and "
                             f"still writes its files\n")
            sys.stderr.flush()


def tolerate_lost_stdout() -> None:
    """Keep running, and writing logs and checkpoints, when standard output is closed or cannot be written."""
    if sys.stdout is None:  # started with stdout closed (`>&-`)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    elif not isinstance(sys.stdout, _TolerantOutput):
        sys.stdout = _TolerantOutput(sys.stdout)
