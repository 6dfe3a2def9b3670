"""A training history: what made a checkpoint, run by run and epoch by epoch. Imports no TensorFlow.

A history is one JSON object::

    {"runs":   [run record, ...],      # one per training run: command line, versions, data checksums,
                                       # settings, wall time (common.provenance.run_record)
     "epochs": [epoch record, ...],    # one per finished epoch: {"epoch": 1, "run": 0, "train_loss": ...}
     "lost":   [lost attempt, ...]}    # only if a state was lost and the run went on from an earlier copy
                                       # (note_lost_attempt): the runs and epochs that went with it

It is kept twice. The original lives inside the checkpoint (its ``meta/history`` member, so the two
never disagree); a readable copy lives beside it, ``k1.npz`` -> ``k1.history.json``
(:func:`path_of`). A resumed run continues the checkpoint's own history, or the copy beside a
checkpoint written before checkpoints held one (:func:`continued`).

Reading is safe on hostile text: nesting however deep, integers of thousands of digits and objects
where lists belong all end in one :class:`HistoryError` naming the file, never a traceback. The
first format, a bare list of epoch records, is read as a history without runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from common.fsutil import write_json

SUFFIX = ".history.json"
FULL_TRAINING_SET = 50_000  # every dataset here trains on 50,000 images (MNIST-likes hold 10,000 out)


class HistoryError(ValueError):
    """A training history that cannot be read: not JSON, or not runs and epoch records."""


def empty() -> dict:
    """The history of a checkpoint no run has trained yet."""
    return {"runs": [], "epochs": []}


def path_of(checkpoint: str | os.PathLike) -> Path:
    """Where the readable copy of ``checkpoint``'s history lives: ``k1.npz`` -> ``k1.history.json``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + SUFFIX)


def parse(text: str, where: str) -> dict:
    """A history from JSON text; :class:`HistoryError` naming ``where`` for anything else, however deep
    or large."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as e:  # ValueError: also integers of more than 4,300 digits
        raise HistoryError(f"{where}: its training history is not valid JSON ({str(e)[:80]})") from None
    return from_object(obj, where)


def from_object(obj: object, where: str) -> dict:
    """:func:`parse` of an already parsed object: ``{"runs": [...], "epochs": [...]}`` with every run an
    object and every epoch an object with an integer ``epoch``, and ``lost`` kept where there is one."""
    if isinstance(obj, list):
        obj = {"runs": [], "epochs": obj}
    epochs, runs = (obj.get("epochs"), obj.get("runs", [])) if isinstance(obj, dict) else (None, None)
    if not (isinstance(epochs, list) and isinstance(runs, list) and all(isinstance(r, dict) for r in runs)
            and all(isinstance(e, dict) and type(e.get("epoch")) is int for e in epochs)):
        raise HistoryError(f"{where}: its training history is not a list of epoch records (objects with an "
                           f"integer 'epoch')")
    lost = obj.get("lost", [])
    if not (isinstance(lost, list) and all(isinstance(a, dict) for a in lost)):
        raise HistoryError(f"{where}: its record of lost attempts is not a list of objects")
    return {"runs": runs, "epochs": epochs, **({"lost": lost} if lost else {})}


def note_lost_attempt(history: dict, lost: dict, noted: str, went_on_from: str) -> bool:
    """Keep in ``history`` (a state restored from an earlier copy) the epochs of ``lost`` (the history of
    the state that was lost) beyond its own, with ``lost``'s runs, which those epochs name by index, after
    the attempts ``lost`` itself had lost. ``False``, and nothing kept, if ``lost`` has no epoch beyond."""
    done = max((e["epoch"] for e in history["epochs"]), default=0)
    beyond = [e for e in lost["epochs"] if e["epoch"] > done]
    if beyond:
        earlier = [a for a in lost.get("lost", []) if a not in history.get("lost", [])]
        history["lost"] = [*history.get("lost", []), *earlier,
                           {"noted": noted, "went_on_from": went_on_from, "runs": lost["runs"], "epochs": beyond}]
    return bool(beyond)


def as_history(obj: object) -> dict:
    """:func:`from_object` with a :class:`HistoryError` (a ``ValueError``) that names no file."""
    try:
        return from_object(obj, "it")
    except HistoryError as e:
        raise HistoryError(str(e).removeprefix("it: ")) from None


def read_beside(checkpoint: str | os.PathLike) -> dict | None:
    """The readable copy beside ``checkpoint``, or ``None`` if there is none; :class:`HistoryError` if
    it cannot be read, saying how to go on without it."""
    side = path_of(checkpoint)
    if not side.is_file():
        return None
    try:
        return as_history(json.loads(side.read_text()))
    except (ValueError, OSError, RecursionError) as e:
        raise HistoryError(f"{side} is not a readable training history ({e}); move it aside "
                           f"to resume without it") from None


def continued(checkpoint: str | os.PathLike, inside: dict | None) -> dict:
    """The history a run resumed from ``checkpoint`` continues: the one ``inside`` it (already read by
    :func:`common.checkpoint.load`), else the copy beside an older checkpoint, else an empty one."""
    if inside is not None:
        return as_history(inside)
    return read_beside(checkpoint) or empty()


def start_run(history: dict, record: dict) -> int:
    """Append a run's record (the run going on now) and return its index, which its epochs name."""
    history["runs"].append(record)
    return len(history["runs"]) - 1


def set_wall_seconds(history: dict, run: int, seconds: float) -> None:
    """How long run ``run`` has taken so far, updated at every save."""
    history["runs"][run]["wall_seconds"] = round(seconds, 2)


def append_epoch(history: dict, **figures: object) -> dict:
    """Append one finished epoch's record (:func:`epoch_record` of ``figures``) and return it."""
    record = epoch_record(**figures)
    history["epochs"].append(record)
    return record


def epoch_record(*, epoch: int, run: int, learning_rate: float, train_images: int,
                 train_loss: float | None, train_acc: float | None, held_out: str, held_out_loss: float,
                 held_out_acc: float, seconds: float, test_acc: float | None = None) -> dict:
    """One finished epoch's record, as the history keeps it.

    Args:
        epoch: the epoch's number, from 1.
        run: the index of the run that trained it (:func:`start_run`).
        train_loss, train_acc: over the batches this run trained of the epoch; ``None`` when it
            resumed after the epoch's last batch (only the evaluation was left).
        held_out: the held-out split's name (``validation``, or ``test`` where a dataset has no
            other), which names the two keys ``<held_out>_loss`` and ``<held_out>_acc``.
        test_acc: the final test accuracy, kept by the last epoch of a run only.
    """
    record = {"epoch": epoch, "run": run, "learning_rate": learning_rate, "train_images": train_images,
              "train_loss": train_loss, "train_acc": train_acc,
              f"{held_out}_loss": held_out_loss, f"{held_out}_acc": held_out_acc, "seconds": round(seconds, 2)}
    if test_acc is not None:
        record["test_acc"] = test_acc
    return record


def write_beside(checkpoint: str | os.PathLike, history: dict) -> None:
    """Write the readable copy beside ``checkpoint``, whole or not at all (``OSError`` if it cannot)."""
    write_json(path_of(checkpoint), history)


# ---------------------------------------------------------------------------- what figures and tables read

def epochs_of(history: dict | list | None) -> list[dict]:
    """The per-epoch records of a training history (a list in older histories)."""
    if history is None:
        return []
    return history["epochs"] if isinstance(history, dict) else history


def trained_for(history: dict | list | None, unit: str = " epochs") -> str:
    """``150 epochs``, or ``3 epochs on 10,000 images`` for a run on part of the training set."""
    epochs = epochs_of(history)
    if not epochs:
        return ""
    images = epochs[-1].get("train_images", FULL_TRAINING_SET)
    unit = unit.removesuffix("s") if epochs[-1]["epoch"] == 1 else unit  # 1 epoch, 2 epochs
    return f"{epochs[-1]['epoch']}{unit}" + (f" on {images:,} images" if images < FULL_TRAINING_SET else "")


@dataclass(frozen=True)
class TrainingSpan:
    """Consecutive epochs trained on one CPU in one precision: what the training cost, and where."""

    first: int
    last: int
    cpu: str
    precision: str
    seconds: float

    def __str__(self) -> str:
        epochs = f"epoch {self.first}" if self.first == self.last else f"epochs {self.first}-{self.last}"
        minutes = self.seconds / 60 / (self.last - self.first + 1)
        return (f"{epochs}: {self.precision} on {self.cpu}, {minutes:.1f} min an epoch, "
                f"{self.seconds / 3600:.1f} h")


def training_spans(history: dict | list | None) -> list[TrainingSpan]:
    """The epochs of ``history`` grouped by the CPU and precision of the run that trained them, in order.

    Runs from before ``--precision`` existed trained in float32; a history without runs (the first
    format) names no CPU."""
    runs = history.get("runs", []) if isinstance(history, dict) else []
    spans: list[TrainingSpan] = []
    for record in epochs_of(history):
        run = runs[record["run"]] if isinstance(record.get("run"), int) and record["run"] < len(runs) else {}
        where = (run.get("cpu", "an unrecorded CPU"), run.get("settings", {}).get("precision") or "float32")
        seconds = float(record.get("seconds", 0.0))
        if spans and (spans[-1].cpu, spans[-1].precision) == where and spans[-1].last + 1 == record["epoch"]:
            spans[-1] = dataclasses.replace(spans[-1], last=record["epoch"], seconds=spans[-1].seconds + seconds)
        else:
            spans.append(TrainingSpan(record["epoch"], record["epoch"], *where, seconds))
    return spans


def trained_for_checkpoint(checkpoint: str | os.PathLike) -> str:
    """:func:`trained_for` read from the copy beside ``checkpoint``; empty if there is none or it is
    malformed (a figure's label is no place for an error)."""
    side = path_of(checkpoint)
    try:
        if side.is_file():
            return trained_for(json.loads(side.read_text()))
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError):
        pass
    return ""
