"""The per-step logs of a spiking run (the original's four files) and ``summary.json``.

Each log has one integer per line, one line per batch per time step, batch-major:

- ``accuracy.txt``       correct predictions in the batch after that step
- ``spike_num.txt``      cumulative |spikes| of all hidden layers in the batch
- ``spike_collect.txt``  cumulative net spikes (+1 minus -1) of all hidden layers
- ``sop_num.txt``        cumulative synaptic operations

The rules of a log folder (``--log_dir``), which :func:`check_writable`, :func:`writer_lock`
and :func:`write_logs` enforce:

- a shipped folder (under a ``pretrained/`` of the repository, symbolic links resolved) is
  never written by a user run; only the record scripts in ``tools/`` write there (``NEGSPIKE_WRITE_SHIPPED=1``);
- a folder holding anything but one run of this package (its four logs and ``summary.json``)
  is refused;
- one run writes a folder at a time (a lock file ``.<name>.lock`` beside it);
- an earlier run in the folder is moved aside whole, to the first free ``<name>.bak``,
  ``<name>.bak1``, ... (as checkpoints are), unless ``--replace_logs True``; a partial run never
  replaces a complete one (that is moved aside even then), and a run stopped before its first
  batch finished writes nothing;
- the new set appears in one rename of a finished folder, so a failure at any point leaves
  the earlier run whole, in its place.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from common.fsutil import current_umask, exclusive_lock, first_free_backup, write_json, write_text

LOG_FILES = ("accuracy.txt", "spike_num.txt", "spike_collect.txt", "sop_num.txt")
SUMMARY = "summary.json"
OURS = {*LOG_FILES, SUMMARY}
ROOT = Path(__file__).resolve().parents[1]
SHIPPED_DIR = "pretrained"
WRITE_SHIPPED_ENV = "NEGSPIKE_WRITE_SHIPPED"  # set by the record scripts of tools/, the only writers of shipped logs
SUMMARY_KEYS = ("network", "k", "time_steps", "num_samples", "snn_accuracy")  # what makes a summary ours


class LogDirError(Exception):
    """The log folder cannot receive a run's logs."""


def resolve_folder(folder: Path, flag: str = "--log_dir") -> Path:
    """``folder`` as an absolute path with symbolic links resolved; one clear error for a dangling or
    looping link, or a relative path after the working directory was deleted."""
    folder = Path(folder)
    try:
        absolute = folder.absolute()
    except FileNotFoundError:
        raise LogDirError(f"{flag} {folder} is relative, but the working directory no longer exists; cd to an "
                          f"existing folder or pass an absolute {flag}") from None
    try:
        resolved = absolute.resolve()
        if os.path.lexists(resolved):
            os.stat(resolved)
    except (RuntimeError, OSError) as e:  # Python 3.11 raises RuntimeError for a loop, later versions OSError
        raise LogDirError(f"{flag} {folder} is a symbolic link that loops ({getattr(e, 'strerror', None) or e}); "
                          f"remove the link or pass another {flag}") from None
    if any(os.path.islink(p) and not p.exists() for p in (absolute, *absolute.parents)):
        raise LogDirError(f"{flag} {folder} is a symbolic link to a missing target; remove the link or pass "
                          f"another {flag}")
    return resolved


def is_shipped(folder: Path) -> bool:
    """Whether ``folder`` (resolved) lies in a ``pretrained/`` folder of this repository: shipped results."""
    try:
        relative = Path(folder).resolve().relative_to(ROOT)
    except ValueError:
        return False
    return SHIPPED_DIR in relative.parts


def check_folder(folder: Path, flag: str) -> Path:
    """Fail before any work if ``folder`` cannot be written (a file, a broken link, read-only); returns it resolved."""
    folder = resolve_folder(folder, flag)
    if folder.exists() and not folder.is_dir():
        raise LogDirError(f"{flag} {folder} is a file, not a folder; pass a folder")
    parent = folder if folder.is_dir() else _existing_ancestor(folder)
    if not parent.is_dir():
        raise LogDirError(f"{flag} {folder}: {parent} is not a folder; pass another {flag}")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".negspike-probe-"):
            pass
    except OSError as e:
        raise LogDirError(f"{flag} {folder} is not writable ({e.strerror}); pass another {flag}") from None
    return folder


def check_writable(log_dir: Path) -> Path:
    """Fail before any work if ``log_dir`` cannot take a run's logs under the rules above (a file, a broken
    link, read-only, shipped, or holding files that are not one of this package's runs); returns it resolved."""
    shown = log_dir
    log_dir = check_folder(log_dir, "--log_dir")
    if is_shipped(log_dir) and os.environ.get(WRITE_SHIPPED_ENV) != "1":
        raise LogDirError(f"--log_dir {shown} is a shipped folder ({log_dir}); user runs never write there; "
                          f"pass another --log_dir")
    foreign = foreign_entries(log_dir)
    if foreign:
        raise LogDirError(f"--log_dir {shown} holds {', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}, "
                          f"which is not a run of this package; move it away or pass another --log_dir")
    return log_dir


def foreign_entries(folder: Path) -> list[str]:
    """What in ``folder`` is not one complete run of this package (empty for a missing or empty folder)."""
    if not folder.is_dir():
        return []
    names = sorted(p.name for p in folder.iterdir())
    foreign = [n for n in names if n not in OURS]
    if foreign or not names:
        return foreign
    if SUMMARY not in names or read_summary_or_none(folder) is None:
        return [f"{SUMMARY} of this package (missing or not one)"] if SUMMARY in names else \
            [f"{', '.join(names)} without a {SUMMARY}"]
    return []


def read_summary_or_none(folder: Path) -> dict | None:
    """The folder's summary if it is one of this package's, else None."""
    try:
        summary = read_summary(folder)
    except (OSError, ValueError, RecursionError):
        return None
    return summary if isinstance(summary, dict) and all(key in summary for key in SUMMARY_KEYS) else None


@contextlib.contextmanager
def writer_lock(log_dir: Path) -> Iterator[None]:
    """Hold ``log_dir`` for one run (a lock file beside it): a second run on the same folder is refused."""
    log_dir = Path(log_dir)
    with exclusive_lock(log_dir.parent / f".{log_dir.name}.lock",
                        busy_message=f"another spiking run is writing {log_dir}; wait for it, or pass another "
                                     f"--log_dir",
                        cannot_message=f"cannot write into {log_dir.parent} ({{reason}}); pass another --log_dir",
                        error=LogDirError):
        for stale in log_dir.parent.glob(f".{log_dir.name}.new-*"):  # staging folders of a run killed mid-write
            shutil.rmtree(stale, ignore_errors=True)
        yield


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


def write_logs(log_dir: Path, lines: dict[str, list[int]], summary: dict, replace: bool = False) -> Path | None:
    """Write the four logs and ``summary.json`` as one set; returns where an earlier run was moved, if anywhere.

    The set is written into a hidden folder beside ``log_dir`` and renamed into place only once it
    is complete. An earlier run is first moved aside whole (to :func:`common.fsutil.first_free_backup`); with
    ``replace`` it is deleted instead, unless it is complete and the new run is partial. A failure
    at any point leaves the earlier run whole, where it was. Call it under :func:`writer_lock`.
    """
    log_dir = Path(log_dir)
    log_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{log_dir.name}.new-", dir=log_dir.parent))
    try:
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp's 0700 would make shared results unreadable to others
        for name in LOG_FILES:
            write_text(staging / name, "".join(f"{int(v)}\n" for v in lines[name]))
        write_json(staging / SUMMARY, summary)
        earlier = log_dir.is_dir() and any(log_dir.iterdir())
        moved, keep = None, True
        if earlier:
            previous = read_summary_or_none(log_dir) or {}
            keep = not replace or (bool(summary.get("partial")) and not previous.get("partial", False))
            moved = first_free_backup(log_dir) if keep else Path(
                tempfile.mkdtemp(prefix=f".{log_dir.name}.old-", dir=log_dir.parent))
            os.replace(log_dir, moved)  # one rename: the earlier run is whole, here or there
        try:
            os.replace(staging, log_dir)  # onto a missing or empty folder
        except OSError:
            if moved is not None:
                os.replace(moved, log_dir)
            raise
        if moved is not None and not keep:
            shutil.rmtree(moved, ignore_errors=True)
            moved = None
        return moved
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


def differences(summary: dict) -> list[str]:
    """What of a run differs from the scripts' defaults, in words: part of the test set, the neuron rule,
    the simulator, input noise, a checkpoint that is not the shipped one (and partial runs)."""
    said = []
    n, test_images = summary.get("num_samples"), summary.get("test_images")
    if summary.get("partial"):
        said.append("partial")
    if isinstance(n, int) and isinstance(test_images, int) and n < test_images:
        said.append(f"{n:,} of {test_images:,} test images")
    elif isinstance(n, int) and not isinstance(test_images, int):
        said.append(f"{n:,} test images")
    if summary.get("neuron_rule", "lossless") != "lossless":
        said.append(f"{summary['neuron_rule']} neuron rule")
    if summary.get("simulator", "fast") != "fast":
        said.append(f"{summary['simulator']} simulator")
    if summary.get("noise_ratio"):
        said.append(f"noise {summary['noise_ratio']:g}" + (f" (seed {summary['seed']})" if summary.get("seed")
                                                           is not None else ""))
    checkpoint = Path(str(summary.get("checkpoint", "")))
    if checkpoint.name and checkpoint.parent.name != SHIPPED_DIR:
        said.append(f"checkpoint {Path(checkpoint.parent.name, checkpoint.name)}")
    return said


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
