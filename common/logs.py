"""The per-step logs of a spiking run (the original's four files) and ``summary.json``.

Each log has one integer per line, one line per batch per time step, batch-major:

- ``accuracy.txt``       correct predictions in the batch after that step
- ``spike_num.txt``      cumulative |spikes| of all hidden layers in the batch
- ``spike_collect.txt``  cumulative net spikes (+1 minus -1) of all hidden layers
- ``sop_num.txt``        cumulative synaptic operations
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common.fsutil import write_json, write_text

LOG_FILES = ("accuracy.txt", "spike_num.txt", "spike_collect.txt", "sop_num.txt")


def batch_lines(correct: np.ndarray, spikes: np.ndarray, net: np.ndarray, synops: np.ndarray) -> dict[str, list[int]]:
    """Log values of one batch from per-step, per-sample arrays of shape ``(T, B)``."""
    return {"accuracy.txt": correct.sum(axis=1).tolist(),
            "spike_num.txt": spikes.cumsum(axis=0).sum(axis=1).tolist(),
            "spike_collect.txt": net.cumsum(axis=0).sum(axis=1).tolist(),
            "sop_num.txt": synops.cumsum(axis=0).sum(axis=1).tolist()}


def write_logs(log_dir: Path, lines: dict[str, list[int]], summary: dict) -> None:
    """Write the four logs and ``summary.json``, each whole or not at all."""
    for name in LOG_FILES:
        write_text(log_dir / name, "".join(f"{int(v)}\n" for v in lines[name]))
    write_json(log_dir / "summary.json", summary)


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
