"""Stop signals (SIGINT, SIGTERM, SIGHUP), one mechanism for every entry point; and a standard output that may go
away (``| head``, ``>/dev/full``, closed) without taking the run with it.

An entry point (a workspace script, ``python -m common.plots``) calls :func:`start_program` as its first
statement, before any slow import. From then on a stop signal ends the program at once with one line and status
128 + signal, unless a :class:`SignalGuard` holds it: within one (the work that writes files), the signal is
only recorded, and the loops stop at their next batch and save. :func:`working` is an entry point's work: it
holds the signals and ends the program with the line after the work if a signal came that no loop acted on.
A program that runs another (a peer framework, a training stage) passes the signals on to it with a
:class:`SignalRelay` and ends once the child has.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import NoReturn, TextIO

from common.env import keep_real_stderr, real_stderr_fd

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGHUP: the terminal was closed


class _Stops:
    """The process's stop signals: whether an entry point owns them, how deep guards hold them, what came."""

    owned = False  # an entry point caught them for the whole process (else only guards do, for their span)
    depth = 0  # SignalGuards entered and not left
    received: int | None = None  # the first signal a guard recorded


def stop_line(signum: int) -> str:
    """The line of a program stopped outside its loops (which say where they saved)."""
    return f"interrupted by {signal.Signals(signum).name} (files are written whole or not at all)"


def catch_stop_signals() -> None:
    """Make SIGINT, SIGTERM and SIGHUP end this program at once, with :func:`stop_line`, unless a guard holds them.

    Called first by every entry point, through :func:`start_program`, before its slow imports (TensorFlow's
    takes seconds): a signal sent while they run must not be lost. Whatever the process inherited is replaced:
    a script's background job (``cmd &``) starts with SIGINT ignored, where Python never raises
    KeyboardInterrupt. Later calls do nothing.
    """
    if _Stops.owned:
        return
    with contextlib.suppress(OSError):  # the one line goes here even while TensorFlow's start-up is quieted
        keep_real_stderr(os.dup(2))
    for s in STOP_SIGNALS:
        signal.signal(s, _on_stop_signal)
    _Stops.owned = True


def _on_stop_signal(signum: int, frame: object) -> None:
    if _Stops.depth:
        _Stops.received = _Stops.received or signum
    elif _Stops.owned:
        end(signum)


def end(signum: int, line: str | None = None) -> NoReturn:
    """End the program now: ``line`` (default: :func:`stop_line`) on standard error, status 128 + ``signum``.

    ``os._exit`` skips Python's and TensorFlow's teardown, which a signal could interrupt again and which can
    wait for a cluster's other workers; every file is closed or written whole by then.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # a second signal must not add a second line
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a write it interrupted loses its text, not the line
            stream.flush()
    with contextlib.suppress(OSError):
        os.write(real_stderr_fd(), f"{line or stop_line(signum)}\n".encode())
    os._exit(128 + signum)


class Stopped(Exception):  # noqa: N818 - control flow, not an error
    """A loop was asked to stop between batches (a guard recorded a signal); its caller saves and raises
    :class:`Interrupted`."""


class Interrupted(Exception):  # noqa: N818 - it is a signal, not an error
    """SIGINT, SIGTERM or SIGHUP arrived; what could be saved has been saved (the message says where)."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class SignalGuard:
    """Within ``with``, SIGINT, SIGTERM and SIGHUP are only recorded (``signum``); the code inside decides when to
    stop. Guards nest. Without an entry point's :func:`start_program` (a library call, a test), the
    outermost guard installs the recording handlers and puts the previous ones back when it is left."""

    def __enter__(self) -> SignalGuard:
        if _Stops.depth == 0:
            _Stops.received = None
            self._previous = {} if _Stops.owned else {s: signal.signal(s, _on_stop_signal) for s in STOP_SIGNALS}
        _Stops.depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        _Stops.depth -= 1
        if _Stops.depth == 0:
            for s, handler in getattr(self, "_previous", {}).items():
                signal.signal(s, handler)

    @property
    def signum(self) -> int | None:
        return _Stops.received

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def stop(self) -> bool:
        return self.signum is not None


def shell_status(returncode: int) -> int:
    """A child's exit status as a shell reports it: its exit code, or 128 + signal where a signal killed it
    (``subprocess`` gives that as minus the signal)."""
    return returncode if returncode >= 0 else 128 - returncode


class SignalRelay:
    """Within ``with``, SIGINT, SIGTERM and SIGHUP go on to the child process last started with :meth:`start`
    (which stops it the way it stops itself: saving, one line) instead of ending this process, which would
    leave the child running alone. :attr:`received` keeps the first; the caller ends itself once the child has.

    The previous handlers come back when the block is left.
    """

    def __enter__(self) -> SignalRelay:
        self.received: int | None = None
        self._child: subprocess.Popen | None = None
        self._previous = {s: signal.signal(s, self._pass_on) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def start(self, args: list[str], **popen) -> subprocess.Popen:
        """``subprocess.Popen(args, **popen)``; a signal that came while it was being started goes on to it too."""
        self._child = subprocess.Popen(args, **popen)
        if self.received is not None:
            self._child.send_signal(self.received)
        return self._child

    def _pass_on(self, signum: int, frame: object) -> None:
        self.received = self.received or signum
        if self._child is not None and self._child.returncode is None:
            self._child.send_signal(signum)


def run_relaying_stop_signals(args: list[str], **popen) -> subprocess.CompletedProcess:
    """``subprocess.run(args, **popen)`` under a :class:`SignalRelay`: a stop signal stops the child first.

    If one came, this program then ends too, by ``SystemExit`` (so ``with`` blocks still clean up): silently with
    the child's status if the child ended itself (it has said where, on the standard error it inherited), else
    with :func:`stop_line` and 128 + signal. Leave the child's standard error uncaptured, so that its line shows.
    """
    with SignalRelay() as relay:
        child = relay.start(args, **popen)
        out, err = child.communicate()
    status = shell_status(child.returncode)
    if relay.received is not None:
        if child.returncode <= 0:  # it had finished, or a signal killed it without a word: the line is ours
            sys.stderr.write(f"{stop_line(relay.received)}\n")
            status = status or 128 + relay.received
        raise SystemExit(status)
    return subprocess.CompletedProcess(args, status, out, err)


@contextlib.contextmanager
def working() -> Iterator[SignalGuard]:
    """Work that writes files: its loops stop on a signal, save and raise :class:`Interrupted`; a signal none of
    them acted on (it came after the last batch) takes effect once the work is done: it ends an entry point with
    the line, and reaches the previous handler of a library call (KeyboardInterrupt for SIGINT)."""
    with SignalGuard() as guard:
        yield guard
    if guard.stop():
        if _Stops.owned:
            end(guard.signum)
        signal.raise_signal(guard.signum)


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


def start_program() -> None:
    """The first statement of every entry point: a stop signal ends it with one line (:func:`catch_stop_signals`),
    and a standard output that is closed or full (``| head -1``, ``> /dev/full``) silences its printing, not its
    work (:func:`tolerate_lost_stdout`). Later calls do nothing."""
    catch_stop_signals()
    tolerate_lost_stdout()


def tolerate_lost_stdout() -> None:
    """Keep running, and writing logs and checkpoints, when standard output is closed or cannot be written."""
    if sys.stdout is None:  # started with stdout closed (`>&-`)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    elif not isinstance(sys.stdout, _TolerantOutput):
        sys.stdout = _TolerantOutput(sys.stdout)
