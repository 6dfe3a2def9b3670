"""Progress of a long loop: Keras' bar on a terminal, a plain line every 30 s in a log file."""

from __future__ import annotations

import sys
import time
from typing import TextIO

LINE_INTERVAL = 30.0  # seconds between progress lines when the output is not a terminal


class Progress:
    """``update(done, images)`` after each batch; ``values`` are shown beside the count.

    On a terminal this is ``tf.keras.utils.Progbar``. Redirected to a file or a pipe (a batch
    job, ``| tee``), it prints ``label: 12/50 batches, 840 images/s, ETA 0:01:10`` at most every
    ``interval`` seconds and once at the end, so a log shows a run is alive.
    """

    def __init__(self, total: int, label: str, interval: float = LINE_INTERVAL,
                 stream: TextIO | None = None, interactive: bool | None = None):
        self.total, self.label, self.interval = total, label, interval
        self.stream = stream or sys.stdout
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.start = self.last = time.monotonic()
        self.first_done: int | None = None
        self.images = 0
        self._bar = None
        if self.interactive:
            import tensorflow as tf

            self._bar = tf.keras.utils.Progbar(total, unit_name="batch", stateful_metrics=None)

    def update(self, done: int, images: int = 0, values: list[tuple[str, float]] | None = None) -> None:
        self.images += images
        if self.first_done is None:
            self.first_done = done - 1
        if self._bar is not None:
            self._bar.update(done, values, finalize=done >= self.total)
            return
        now = time.monotonic()
        if now - self.last < self.interval and done < self.total:
            return
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        rate = (done - self.first_done) / elapsed
        eta = (self.total - done) / rate if rate > 0 else 0.0
        shown = "".join(f", {name} {value:.4f}" for name, value in values or [])
        self.stream.write(f"{self.label}: {done}/{self.total} batches, {self.images / elapsed:.0f} images/s, "
                          f"ETA {_clock(eta)}{shown}\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
