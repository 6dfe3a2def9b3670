"""The per-step logs of a spiking run (the original's four files) and ``summary.json``.

Each log has one integer per line, one line per batch per time step, batch-major:

- ``accuracy.txt``       correct predictions in the batch after that step
- ``spike_num.txt``      cumulative |spikes| of all hidden layers in the batch
- ``spike_collect.txt``  cumulative net spikes (+1 minus -1) of all hidden layers
- ``sop_num.txt``        cumulative synaptic operations
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from common.fsutil import write_json, write_text

LOG_FILES = ("accuracy.txt", "spike_num.txt", "spike_collect.txt", "sop_num.txt")
SUMMARY = "summary.json"
OURS = {*LOG_FILES, SUMMARY}


class LogDirError(Exception):
    """The log folder cannot receive a run's logs."""


def check_writable(log_dir: Path) -> None:
    """Fail before any work if ``log_dir`` cannot take a set of logs (a file, read-only, or holding others' files)."""
    log_dir = Path(log_dir)
    if log_dir.exists() and not log_dir.is_dir():
        raise LogDirError(f"--log_dir {log_dir} is a file, not a folder; pass a folder")
    parent = log_dir if log_dir.is_dir() else _existing_ancestor(log_dir)
    if not parent.is_dir():
        raise LogDirError(f"--log_dir {log_dir}: {parent} is not a folder; pass another --log_dir")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".negspike-probe-"):
            pass
    except OSError as e:
        raise LogDirError(f"--log_dir {log_dir} is not writable ({e.strerror}); pass another --log_dir") from None


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def batch_lines(correct: np.ndarray, spikes: np.ndarray, net: np.ndarray, synops: np.ndarray) -> dict[str, list[int]]:
    """Log values of one batch from per-step, per-sample arrays of shape ``(T, B)``."""
    return {"accuracy.txt": correct.sum(axis=1).tolist(),
            "spike_num.txt": spikes.cumsum(axis=0).sum(axis=1).tolist(),
            "spike_collect.txt": net.cumsum(axis=0).sum(axis=1).tolist(),
            "sop_num.txt": synops.cumsum(axis=0).sum(axis=1).tolist()}


def write_logs(log_dir: Path, lines: dict[str, list[int]], summary: dict) -> None:
    """Write the four logs and ``summary.json`` as one set: all of the new run's or all of the old.

    The set is written into a hidden folder beside ``log_dir`` and moved in file by file only once
    it is complete; a crash while writing (a full disk) leaves the previous set untouched.
    """
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".logs-", dir=log_dir))
    try:
        for name in LOG_FILES:
            write_text(staging / name, "".join(f"{int(v)}\n" for v in lines[name]))
        write_json(staging / SUMMARY, summary)
        # summary.json goes last and first: removed before the logs change, restored after, so a set
        # without its summary is recognizably incomplete
        with contextlib.suppress(FileNotFoundError):
            os.unlink(log_dir / SUMMARY)
        for name in (*LOG_FILES, SUMMARY):
            os.replace(staging / name, log_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_tensorboard(folder: Path, summary: dict, lines: dict[str, list[int]]) -> None:
    """Per-step accuracy, spikes and SOPs per image of a spiking run, as TensorBoard scalars."""
    import tensorflow as tf

    n, steps = summary["num_samples"], summary["time_steps"]
    per_step = {name: np.asarray(lines[name], np.int64).reshape(-1, steps).sum(axis=0) for name in LOG_FILES}
    with tf.summary.create_file_writer(str(folder)).as_default():
        for t in range(steps):
            tf.summary.scalar("snn/accuracy", per_step["accuracy.txt"][t] / n, step=t + 1)
            tf.summary.scalar("snn/spikes_per_image", per_step["spike_num.txt"][t] / n, step=t + 1)
            tf.summary.scalar("snn/sops_per_image", per_step["sop_num.txt"][t] / n, step=t + 1)
            tf.summary.scalar("ann/accuracy", summary["ann_accuracy"], step=t + 1)


def read_log(log_dir: Path, name: str, time_steps: int) -> np.ndarray:
    """A log as ``(batches, time_steps)`` integers."""
    values = np.loadtxt(log_dir / name, dtype=np.int64, ndmin=1)
    if values.size % time_steps:
        raise ValueError(f"{log_dir / name}: {values.size} lines is not a whole number of "
                         f"batches of {time_steps} steps")
    return values.reshape(-1, time_steps)


def read_summary(log_dir: Path) -> dict:
    return json.loads((log_dir / "summary.json").read_text())


def lossless_step(snn_correct: list[int], ann_correct: int) -> int | None:
    """First step t (1-based) from which the SNN's correct count equals the ANN's through the end."""
    step = None
    for t in range(len(snn_correct), 0, -1):
        if snn_correct[t - 1] != ann_correct:
            break
        step = t
    return step


def settle_summary(settle: np.ndarray) -> dict:
    """Mean, max and histogram of the steps after which samples were frozen."""
    settled = settle[settle >= 0]
    values, counts = np.unique(settled, return_counts=True)
    return {"mean": float(settled.mean()) if settled.size else None,
            "max": int(settled.max()) if settled.size else None,
            "unsettled": int((settle < 0).sum()),
            "histogram": {str(int(v)): int(c) for v, c in zip(values, counts)}}
