"""CIFAR-10 CNN 1 k=1 at the paper's schedule, as one run resumed across many stops.

    python tools/long_run.py status    # where the run stands: epochs, test accuracy, minutes per epoch, precision
    setsid python tools/long_run.py resume >> ~/.cache/negspike/cifar10_cnn1/train.log 2>&1 < /dev/null &
    python tools/long_run.py publish   # its history so far -> CIFAR10/CNN_1/pretrained/k1.run.history.json
    python tools/long_run.py insure    # from epoch 100 on: the state at epoch 100, lossless, into the repository
    python tools/long_run.py restore   # if the state is ever lost: back to epoch 100 from that copy, the
                                       # history keeping the published epochs it lost
    python tools/long_run.py ship      # once done: float16 weights and history -> CIFAR10/CNN_1/pretrained/k1.*
    python tools/long_run.py targets   # the shipped spiking run against the issue's targets, met or missed by how much

The schedule is the original README's: Adam at 1e-3 for 100 epochs, then ``--resume True --learning_rate
0.0001`` for 100 more, batch 200, seed 0. The resumable state (weights, BatchNorm statistics, Adam's
state, position and history) lives outside the work tree, in ``$NEGSPIKE_STATE/cifar10_cnn1/k1.npz``
(default ``~/.cache/negspike/``), so that a new checkout does not lose it. ``resume`` starts the run, or
continues it from the batch after its last save, stage after stage, niced (the training script saves
after every epoch and every ``--save_minutes``); run it first thing whenever work starts. At the stage
boundary it keeps the state of epoch 100 beside the run, packed as ``insure`` commits it, before the
second stage overwrites it, so the insurance never depends on someone watching that one epoch. Each resume
trains in bfloat16 where the CPU multiplies bfloat16 in hardware (AMX or AVX512-BF16: 1.82x float32 on
an Intel Xeon with AMX, 1.27x on an AMD EPYC with AVX512-BF16; ``benchmarks/train_speed.py --cifar``),
else in float32 (12x faster than bfloat16 on an AVX2 EPYC); the history records the precision and CPU of
every resume. Checkpoints stay float32 either way. The training data is found as the script finds it
(``NEGSPIKE_DATA``).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import signals  # noqa: E402

if __name__ == "__main__":
    signals.start_program()  # first: a stop during the imports ends the program with its line
import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import lzma  # noqa: E402
import os  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.timing import cpu_flags  # noqa: E402
from common import fsutil  # noqa: E402
from common.history import (HistoryError, epochs_of, note_lost_attempt, parse, read_beside,  # noqa: E402
                            write_beside)
from common.paper_table import PAPER_TABLE  # noqa: E402
from common.provenance import timestamp  # noqa: E402

SCRIPT = ROOT / "CIFAR10" / "CNN_1" / "Quant_CNN1_CIFAR10.py"
SHIPPED = ROOT / "CIFAR10" / "CNN_1" / "pretrained" / "k1.npz"
SPIKING_RUN = ("NEGSPIKE_WRITE_SHIPPED=1 python CIFAR10/CNN_1/Spiking_CNN1_CIFAR10.py --k 1 "  # as make_results.sh
               "--checkpoint CIFAR10/CNN_1/pretrained/k1.npz --log_dir CIFAR10/CNN_1/pretrained/logs/k1 "
               "--replace_logs True")  # 100 steps, every test image
PUBLISHED = SHIPPED.with_name("k1.run.history.json")
SHIPPED_RUN = SHIPPED.parent / "logs" / "k1" / "summary.json"
ANN_TOLERANCE = 1.0  # points either side of the paper's ANN accuracy that the 1,000 test images at hand allow
INSURANCE = ROOT / "CIFAR10" / "CNN_1" / "insurance" / "k1.epoch100.npz.xz"
SHUFFLED = "byte_planes/"  # a float32 array stored as its 4 byte planes, which LZMA compresses far better
STAGES = ((100, 1e-3), (200, 1e-4))  # (last epoch of the stage, Adam's learning rate): the original README's
BFLOAT16_UNITS = {"amx_bf16", "avx512_bf16"}
NICENESS = 10


def kept_insurance(checkpoint: Path) -> Path:
    """Where ``resume`` keeps the packed state of epoch 100, beside the run, for ``insure`` to commit."""
    return checkpoint.parent / INSURANCE.name


def state_folder() -> Path:
    """``$NEGSPIKE_STATE/cifar10_cnn1``, by default ``~/.cache/negspike/cifar10_cnn1``."""
    return Path(os.environ.get("NEGSPIKE_STATE") or Path.home() / ".cache" / "negspike").expanduser() / "cifar10_cnn1"


@dataclass(frozen=True)
class Position:
    """Where a checkpoint stands: epochs finished, batches of the next epoch, and the epoch it trains to."""

    epoch: int
    batch: int
    target: int

    @property
    def finished(self) -> bool:
        return self.batch == 0 and self.epoch >= self.target

    @classmethod
    def read(cls, checkpoint: Path) -> Position | None:
        """The position of ``checkpoint`` (``None``: no checkpoint yet), read without TensorFlow."""
        if not checkpoint.exists():
            return None
        with np.load(checkpoint, allow_pickle=False) as f:
            return cls(*(int(f[f"meta/{name}"]) for name in ("epoch", "batch", "target_epoch")))


BOUNDARY = Position(STAGES[0][0], 0, STAGES[0][0])  # the end of the first stage: the state the insurance keeps


@dataclass(frozen=True)
class Stage:
    """One call of the training script: whether it resumes, at which learning rate."""

    resume: bool
    learning_rate: float


def next_stage(position: Position | None) -> Stage | None:
    """What to run next from ``position``: a fresh start, the stage under way (which goes on to its own
    target), the next stage of a finished one, or ``None`` when the schedule is done."""
    if position is None:
        return Stage(False, STAGES[0][1])
    for last_epoch, learning_rate in STAGES:
        if position.target <= last_epoch and not position.finished:
            return Stage(True, learning_rate)
        if position.target <= last_epoch:  # this stage is done: the next one trains its epochs more
            index = STAGES.index((last_epoch, learning_rate)) + 1
            return Stage(True, STAGES[index][1]) if index < len(STAGES) else None
    return None


def precision() -> str:
    """bfloat16 where the CPU has bfloat16 units (faster there), float32 elsewhere (where bfloat16 is slower)."""
    return "bfloat16" if cpu_flags() & BFLOAT16_UNITS else "float32"


def command(stage: Stage, checkpoint: Path, arithmetic: str) -> list[str]:
    epochs = STAGES[0][0] if not stage.resume else STAGES[1][0] - STAGES[0][0]
    return [sys.executable, str(SCRIPT), "--k", "1", "--mode", "training", "--seed", "0",
            "--resume", str(stage.resume), "--learning_rate", str(stage.learning_rate), "--epochs", str(epochs),
            "--precision", arithmetic, "--checkpoint", str(checkpoint)]


def resume(checkpoint: Path) -> int:
    """Run the schedule's stages from where ``checkpoint`` stands, niced; the exit status of the last."""
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    with signals.SignalRelay() as relay:  # a stop reaches the training run, which saves and exits
        while relay.received is None and (stage := next_stage(Position.read(checkpoint))) is not None:
            keep_boundary_state(checkpoint)
            cmd = command(stage, checkpoint, precision())
            print("long run:", " ".join(cmd[1:]), flush=True)
            child = relay.start(cmd, start_new_session=True, preexec_fn=lambda: os.nice(NICENESS))
            lower_group_priority(child.pid)
            status = signals.shell_status(child.wait())
            if status != 0:
                return status
    if relay.received is not None:  # between two stages: the next one does not start
        return 128 + relay.received
    print(f"long run: the schedule is done ({STAGES[-1][0]} epochs); python tools/long_run.py publish", flush=True)
    return 0


def keep_boundary_state(checkpoint: Path, kept: Path | None = None) -> Path | None:
    """At the stage boundary, pack the state once beside the run (the next stage's first save replaces it)."""
    kept = kept or kept_insurance(checkpoint)
    if kept.exists() or Position.read(checkpoint) != BOUNDARY:
        return None
    pack_state(checkpoint, kept)
    print(f"long run: kept the state of epoch {BOUNDARY.epoch} as {kept}; commit it with: "
          "python tools/long_run.py insure", flush=True)
    return kept


def lower_group_priority(pid: int) -> None:
    """Nice the scheduling group of ``pid`` too. Where Linux groups processes by session (autogroup), a
    process's nice value counts only inside its session, so a niced run in a session of its own would still
    take an equal share beside an interactive session; the group's nice makes it yield to that work."""
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(NICENESS))
    except OSError:  # no autogroup (other kernels, other systems): the process's own nice value does the work
        pass


def read_history(checkpoint: Path) -> dict:
    """The history beside ``checkpoint``: one line naming what to do if there is none or it is unreadable."""
    try:
        history = read_beside(checkpoint)
    except HistoryError as e:
        raise SystemExit(f"long_run: {e}") from None
    if history is None:
        raise SystemExit(f"long_run: no run at {checkpoint}; start it with: python tools/long_run.py resume")
    return history


def status(checkpoint: Path) -> str:
    """Epochs done, the last test accuracy, and per resume: its CPU, precision and minutes per epoch."""
    history = read_history(checkpoint)
    epochs, runs = epochs_of(history), history["runs"]
    position = Position.read(checkpoint)
    lines = [f"{checkpoint}: {len(epochs)} of {STAGES[-1][0]} epochs"
             + (f", batch {position.batch} of epoch {position.epoch + 1} saved" if position and position.batch else "")]
    if epochs:
        last = epochs[-1]
        lines.append(f"epoch {last['epoch']}: test accuracy {last['test_acc']:.4f}, "
                     f"train loss {last['train_loss']:.4f}")
    for index, run in enumerate(runs):
        mine = [r for r in epochs if r["run"] == index]
        minutes = sum(r["seconds"] for r in mine) / 60 / len(mine) if mine else float("nan")
        span = f"epochs {mine[0]['epoch']}-{mine[-1]['epoch']}" if mine else "no epoch finished"
        lines.append(f"resume {index}: {run['started']}, {run['cpu']}, {run['settings'].get('precision')}, "
                     f"{span}, {minutes:.1f} min per epoch")
    lines.append(insurance_status(checkpoint))
    for attempt in history.get("lost", []):
        lost = attempt["epochs"]
        lines.append(f"lost: epochs {lost[0]['epoch']}-{lost[-1]['epoch']} with their state, noted "
                     f"{attempt['noted']}; the run went on from {attempt['went_on_from']}")
    recent = epochs[-5:]  # the pace of the CPU at hand, as loaded as it has lately been
    if recent and len(epochs) < STAGES[-1][0]:
        left = STAGES[-1][0] - len(epochs)
        minutes = left * sum(r["seconds"] for r in recent) / len(recent) / 60
        pace = "the last epoch" if len(recent) == 1 else f"the last {len(recent)} epochs"
        lines.append(f"{left} epochs left: about {duration(minutes)} at the pace of {pace}")
    return "\n".join(lines)


def duration(minutes: float) -> str:
    """``18 h`` for a long wait, ``25 min`` under an hour and a half (where hours round too coarsely)."""
    return f"{minutes / 60:.0f} h" if minutes >= 90 else f"{minutes:.0f} min"


def insurance_status(checkpoint: Path) -> str:
    """Where the state of epoch 100 stands: committed, kept beside the run, or still to come."""
    kept = kept_insurance(checkpoint)
    if INSURANCE.exists():
        return f"insurance: {INSURANCE.relative_to(ROOT)} (epoch {BOUNDARY.epoch})"
    if kept.exists():
        return f"insurance: kept at {kept}; commit it with: python tools/long_run.py insure"
    return f"insurance: at the end of epoch {BOUNDARY.epoch}, kept by resume before the second stage"


def publish(checkpoint: Path, to: Path = PUBLISHED) -> Path:
    """Write the run's history so far into the repository (whole or not at all), for the commit of a stop."""
    fsutil.write_json(to, read_history(checkpoint))
    return to


def ship(checkpoint: Path) -> Path:
    """Export the finished run as the shipped weights (float16 filters and output weights, no Adam state)
    with its history beside them, and bring the model cards and checksums up to date; the history of the run
    under way is then the shipped one."""
    position = Position.read(checkpoint)
    if position is None or next_stage(position) is not None:
        done = position.epoch if position else 0
        raise SystemExit(f"long_run: the run at {checkpoint} has not finished its {STAGES[-1][0]} epochs ({done} "
                         f"done); continue it with: python tools/long_run.py resume")
    for cmd in (["-m", "common.checkpoint", "export", str(checkpoint), str(SHIPPED), "--float16"],
                ["tools/model_cards.py", "--write"]):  # the weights; then the cards and SHA256SUMS
        if signals.run_relaying_stop_signals([sys.executable, *cmd], cwd=ROOT).returncode:
            raise SystemExit(f"long_run: python {' '.join(cmd)} failed (its error is above)")
    PUBLISHED.unlink(missing_ok=True)
    print(f"long run: next, its spiking run on the whole test set: {SPIKING_RUN}; then its card and the "
          "README's table: python tools/model_cards.py --write && python tools/results_table.py --write", flush=True)
    return SHIPPED


def targets(summary_path: Path = SHIPPED_RUN) -> list[str]:
    """The shipped spiking run against the targets of the paper's row: the ANN within
    :data:`ANN_TOLERANCE` of the paper's (with the standard error of the images it saw), the SNN equal to
    it (agreement 1.0, no mismatched neuron), and lossless no later than the paper's step. One line each,
    ``met`` or ``missed`` and by how much."""
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"long_run: cannot read the spiking run's summary {summary_path} ({e}); "
                         f"write it with: {SPIKING_RUN}") from None
    paper = PAPER_TABLE["CIFAR10/CNN_1"]
    images, ann = summary["num_samples"], 100 * summary["ann_accuracy"]
    standard_error = 100 * (summary["ann_accuracy"] * (1 - summary["ann_accuracy"]) / images) ** 0.5
    off = ann - paper.ann_k1
    step, steps = summary["lossless_step"], summary["time_steps"]
    at_hand = summary.get("test_images", images)
    checks = [
        (abs(off) <= ANN_TOLERANCE, f"ANN {ann:.2f} % ± {standard_error:.2f} (standard error, {images:,} test images) "
                                    f"against the paper's {paper.ann_k1:.2f} %: {off:+.2f} points, "
                                    f"tolerance ±{ANN_TOLERANCE:g}"),
        (summary["agreement"] == 1.0, f"agreement {summary['agreement']:.4f}, target 1.0"),
        (summary["mismatched_neurons"] == 0, f"mismatched neurons {summary['mismatched_neurons']:,}, target 0"),
        (step is not None and step <= paper.time_steps_k1,
         f"lossless from step {step if step is not None else f'> {steps}'} of {steps}, "
         f"target {paper.time_steps_k1} or earlier"),
        (images == at_hand, f"{images:,} of the {at_hand:,} test images at hand"),
    ]
    return [("met     " if ok else "missed  ") + text for ok, text in checks]


def insure(checkpoint: Path, to: Path = INSURANCE, kept: Path | None = None) -> Path:
    """Copy the resumable state at the stage boundary (epoch 100, where the original restarts) into the
    repository, once: the packed copy ``resume`` kept beside the run, packed now if the run stands there."""
    kept = kept or kept_insurance(checkpoint)
    if not kept.exists():
        position = Position.read(checkpoint)
        if position != BOUNDARY:
            raise SystemExit(f"long_run: the insurance is the state at the end of epoch {BOUNDARY.epoch}; "
                             f"{checkpoint} stands at {position} and no copy of epoch {BOUNDARY.epoch} was kept "
                             f"at {kept}")
        pack_state(checkpoint, kept)
    to.parent.mkdir(parents=True, exist_ok=True)
    with fsutil.atomic_write(to, "wb") as out:
        out.write(kept.read_bytes())
    return to


def pack_state(checkpoint: Path, to: Path) -> None:
    """The checkpoint, losslessly and compactly: each float32 array as its byte planes, the whole .npz
    compressed with LZMA (94 MB of weights and Adam's state -> about 78 MB). Training from it is unchanged."""
    with np.load(checkpoint, allow_pickle=False) as f:
        packed = {(SHUFFLED + name if f[name].dtype == np.float32 else name): _planes(f[name]) for name in f.files}
    buffer = io.BytesIO()
    np.savez(buffer, **packed)
    with fsutil.atomic_write(to, "wb") as out:
        out.write(lzma.compress(buffer.getvalue(), preset=6))


def restore(checkpoint: Path, source: Path | None = None, lost: Path | None = None) -> Path:
    """Write the checkpoint :func:`insure` copied back where the run keeps its state; never over a state.
    By default from the repository's copy, else from the one ``resume`` kept. ``lost``: the last published
    history of the state that was lost, whose epochs beyond the copy's the restored history keeps (as
    ``lost``), so the record says what was lost and from where the run went on."""
    source = source or next((p for p in (INSURANCE, kept_insurance(checkpoint)) if p.exists()), INSURANCE)
    if checkpoint.exists():
        raise SystemExit(f"long_run: {checkpoint} exists; move it aside first if it is really lost or damaged")
    if not source.exists():
        raise SystemExit(f"long_run: no insurance at {source}; without it the run starts again: "
                         "python tools/long_run.py resume")
    with np.load(io.BytesIO(lzma.decompress(source.read_bytes())), allow_pickle=False) as f:
        arrays = {name.removeprefix(SHUFFLED): _unplanes(f[name]) if name.startswith(SHUFFLED) else f[name]
                  for name in f.files}
    history = json.loads(str(arrays["meta/history"]))
    if lost is not None and lost.exists():
        where = source.relative_to(ROOT) if source.is_relative_to(ROOT) else source
        if note_lost_attempt(history, read_published(lost), timestamp(), f"epoch {int(arrays['meta/epoch'])}, {where}"):
            arrays["meta/history"] = np.array(json.dumps(history))
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    with fsutil.atomic_write(checkpoint, "wb") as out:
        np.savez(out, **arrays)
    write_beside(checkpoint, history)  # as training writes it
    return checkpoint


def read_published(path: Path) -> dict:
    """The history last published, read to record what a lost state held; one line if it cannot be."""
    try:
        return parse(path.read_text(), str(path))
    except (OSError, HistoryError) as e:
        raise SystemExit(f"long_run: {e}; restore without it by moving it aside") from None


def _planes(array: np.ndarray) -> np.ndarray:
    """A float32 array's bytes regrouped by position (all first bytes, then all second, ...), shape (4, *shape)."""
    if array.dtype != np.float32:
        return array
    return np.ascontiguousarray(array).view(np.uint8).reshape(-1, 4).T.reshape(4, *array.shape)


def _unplanes(planes: np.ndarray) -> np.ndarray:
    return planes.reshape(4, -1).T.copy().view(np.float32).reshape(planes.shape[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["status", "resume", "publish", "insure", "restore", "ship", "targets"])
    args = parser.parse_args(argv)
    checkpoint = state_folder() / "k1.npz"
    if args.action == "resume":
        return resume(checkpoint)
    if args.action == "status":
        print(status(checkpoint))
    elif args.action == "targets":
        print("\n".join(targets()))
    else:
        write = {"publish": publish, "insure": insure, "ship": ship,
                 "restore": lambda state: restore(state, lost=PUBLISHED)}[args.action]
        with signals.working():  # files are written whole; a stop takes effect after them
            print(f"wrote {write(checkpoint)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
