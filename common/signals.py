"""SIGINT and SIGTERM as a flag that long loops check, so they can stop cleanly and save."""

from __future__ import annotations

import signal


class Interrupted(Exception):  # noqa: N818 - it is a signal, not an error
    """SIGINT or SIGTERM arrived; what could be saved has been saved (the message says where)."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class SignalGuard:
    """Within ``with``, SIGINT and SIGTERM only set ``signum``; the loop decides when to stop."""

    def __init__(self):
        self.signum: int | None = None

    def __enter__(self) -> SignalGuard:
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
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
