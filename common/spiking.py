"""A spiking run: convert a checkpoint, simulate the test set, compare with the exact ANN, log."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from common import checkpoint, convert, data, logs, provenance, reference
from common.model import build_ann
from common.networks import Network
from common.progress import Progress
from common.results import SimulationResult
from common.signals import Interrupted, SignalGuard
from common.snn import FastSimulator, Stopped

MAX_TIME_STEPS = 10_000  # far beyond settling; keeps the per-step records of a batch small


@dataclasses.dataclass
class SpikingConfig:
    network: Network
    k: int
    checkpoint: Path
    roots: list[Path]
    log_dir: Path
    time_steps: int = 20
    batch_size: int = 200
    num_samples: int | None = None
    noise_ratio: float = 0.0
    seed: int | None = None
    simulator: str = "fast"  # or "reference"
    neuron_rule: str = "lossless"  # or "original" (the reference simulator)
    early_exit: bool = True
    tensorboard: Path | None = None


def noisy(x: np.ndarray, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """The original's input noise: ``x * (1 + (U(0, 1) - 0.5) * ratio)``."""
    if ratio == 0:
        return x
    return (x * (1 + (rng.random(x.shape, np.float32) - 0.5) * ratio)).astype(np.float32)


class _Totals:
    """What the summary adds up over batches."""

    def __init__(self, time_steps: int):
        self.lines: dict[str, list[int]] = {name: [] for name in logs.LOG_FILES}
        self.snn_correct = np.zeros(time_steps, np.int64)
        self.samples = self.ann_correct = self.agree = self.mismatched = 0
        self.spikes = self.net = self.synops = 0
        self.float32_neurons = self.float32_predictions = 0
        self.settle: list[np.ndarray] = []


def run(cfg: SpikingConfig) -> dict:
    """Simulate, write the logs and ``summary.json`` into ``cfg.log_dir``; returns the summary."""
    started = time.time()
    if not 1 <= cfg.time_steps <= MAX_TIME_STEPS:
        raise ValueError(f"--time_steps {cfg.time_steps} is out of range 1..{MAX_TIME_STEPS}")
    logs.check_writable(cfg.log_dir)
    if cfg.tensorboard is not None:
        logs.check_writable(cfg.tensorboard)
    net, k, scale = cfg.network, cfg.k, float(2 ** cfg.k)
    weights = checkpoint.load(cfg.checkpoint, net, k)
    simulator = "reference" if cfg.neuron_rule != "lossless" else cfg.simulator
    print(f"{net.name} k={k}: checkpoint {cfg.checkpoint}, {cfg.time_steps} time steps, {simulator} simulator, "
          f"{cfg.neuron_rule} neuron rule", flush=True)
    sn = convert.convert(net, k, weights)
    fast = FastSimulator(sn, early_exit=cfg.early_exit)
    float32_model = build_ann(net, k)
    checkpoint.assign(float32_model, weights)
    float32_forward = tf.function(lambda x: float32_model(x, is_train=False), reduce_retracing=True)
    test = data.load_split(net.dataset, "test", cfg.roots).head(cfg.num_samples)
    if len(test) == 0:
        raise data.DataError(f"{net.dataset}: the test set is empty; check the data files")
    inputs = data.eval_inputs(net.dataset, test)
    rng = np.random.default_rng(cfg.seed)

    totals = _Totals(cfg.time_steps)
    n_batches = -(-len(test) // cfg.batch_size)
    progress = Progress(n_batches, "spiking")
    with SignalGuard() as guard:
        for b in range(n_batches):
            rows = slice(b * cfg.batch_size, (b + 1) * cfg.batch_size)
            x, y = inputs[rows], test.y[rows]
            ann = fast.ann(x * scale)  # exact levels and output, independent of batch shape and CPU
            x_spikes = noisy(x, cfg.noise_ratio, rng) * scale
            try:
                if simulator == "fast":
                    result = fast.simulate(x_spikes, cfg.time_steps, stop=guard.stop)
                else:
                    result = reference.simulate(sn, x_spikes, cfg.time_steps, cfg.neuron_rule)
            except Stopped:
                break
            _add_batch(totals, result, ann, y, [o.numpy() for o in float32_forward(x)], scale)
            progress.update(b + 1, len(y))
            if guard.stop():
                break

    summary = _summary(cfg, totals, simulator)
    summary["partial"] = guard.stop()
    summary["run"] = provenance.run_record(cfg.checkpoint, test.files, started)
    try:
        logs.write_logs(cfg.log_dir, totals.lines, summary)
    except OSError as e:
        raise logs.LogDirError(f"cannot write the logs into {cfg.log_dir} ({e.strerror}); the previous logs "
                               f"there, if any, are untouched; free some space or pass another --log_dir") from None
    if cfg.tensorboard is not None:
        logs.write_tensorboard(cfg.tensorboard, summary, totals.lines)
    if guard.stop():
        raise Interrupted(f"interrupted by {guard.name}: wrote the logs of the {totals.samples} images "
                          f"simulated so far to {cfg.log_dir} (marked partial)", guard.signum)
    _report(cfg, summary, fast, inputs, scale)
    return summary


def _add_batch(totals: _Totals, result: SimulationResult, ann: list[np.ndarray], y: np.ndarray,
               float32: list[np.ndarray], scale: float) -> None:
    correct = result.predictions == y[None, :]
    lines = logs.batch_lines(correct, result.spikes.sum(1), result.net.sum(1), result.synops)
    for name in logs.LOG_FILES:
        totals.lines[name] += lines[name]
    if not np.isfinite(result.output).all() or not np.isfinite(ann[-1]).all():
        raise checkpoint.CheckpointError("the network's output is not finite (NaN or infinity): the weights "
                                         "cannot be a trained network; retrain or pass another --checkpoint")
    totals.samples += len(y)
    totals.snn_correct += correct.sum(axis=1)
    ann_pred = ann[-1].argmax(axis=1)
    totals.ann_correct += int((ann_pred == y).sum())
    totals.agree += int((result.predictions[-1] == ann_pred).sum())
    settled = result.settle >= 0
    totals.mismatched += sum(int((c[settled] != a[settled]).sum()) for c, a in zip(result.counts, ann[:-1]))
    totals.spikes += int(result.spikes.sum())
    totals.net += int(result.net.sum())
    totals.synops += int(result.synops.sum())
    totals.settle.append(result.settle)
    # the float32 training-time forward rounds differently from the exact one at near-ties: counted, not hidden
    totals.float32_neurons += sum(int((a * scale != level).sum()) for a, level in zip(float32[:-1], ann[:-1]))
    totals.float32_predictions += int((float32[-1].argmax(axis=1) != ann_pred).sum())


def _summary(cfg: SpikingConfig, totals: _Totals, simulator: str) -> dict:
    net, n = cfg.network, max(totals.samples, 1)
    snn_accuracy = (totals.snn_correct / n).tolist()
    return {
        "network": net.name, "k": cfg.k, "checkpoint": str(cfg.checkpoint), "simulator": simulator,
        "neuron_rule": cfg.neuron_rule, "num_samples": totals.samples, "time_steps": cfg.time_steps,
        "batch_size": cfg.batch_size, "noise_ratio": cfg.noise_ratio, "seed": cfg.seed,
        "ann_accuracy": totals.ann_correct / n, "snn_accuracy": snn_accuracy,
        "lossless_step": logs.lossless_step(totals.snn_correct.tolist(), totals.ann_correct),
        "agreement": totals.agree / n, "mismatched_neurons": totals.mismatched,
        "float32_near_ties": {"neurons": totals.float32_neurons, "predictions": totals.float32_predictions},
        "hidden_neurons_per_image": net.hidden_neurons(),
        "spikes_per_image": totals.spikes / n,
        "positive_spikes_per_image": (totals.spikes + totals.net) / 2 / n,
        "negative_spikes_per_image": (totals.spikes - totals.net) / 2 / n,
        "sops_per_image": totals.synops / n,
        "ann_macs_per_image": net.macs_per_image(),
        "settle_steps": logs.settle_summary(np.concatenate(totals.settle) if totals.settle else np.zeros(0, int)),
    }


def _report(cfg: SpikingConfig, summary: dict, fast: FastSimulator, inputs: np.ndarray, scale: float) -> None:
    snn = summary["snn_accuracy"][-1]
    print(f"ANN accuracy {summary['ann_accuracy']:.4f}  SNN accuracy {snn:.4f}  "
          f"agreement {summary['agreement']:.4f}  lossless step {summary['lossless_step']}  "
          f"mismatched neurons {summary['mismatched_neurons']}  "
          f"({summary['run']['wall_seconds']:.1f}s, logs in {cfg.log_dir})", flush=True)
    unsettled = summary["settle_steps"]["unsettled"]
    if unsettled:
        print(f"note: {unsettled} images were still spiking after {cfg.time_steps} steps, so their counts are "
              f"not final; --time_steps {_sufficient_steps(cfg, fast, inputs, scale)} lets every image settle",
              flush=True)


def _sufficient_steps(cfg: SpikingConfig, fast: FastSimulator, inputs: np.ndarray, scale: float) -> int:
    """Steps after which every test image is quiet (simulated again, at most ``MAX_TIME_STEPS``)."""
    steps, last = cfg.time_steps, 0
    for b in range(0, len(inputs), cfg.batch_size):
        x = inputs[b:b + cfg.batch_size] * scale
        while True:
            settle = fast.simulate(x, steps).settle
            if (settle >= 0).all() or steps >= MAX_TIME_STEPS:
                break
            steps = min(2 * steps, MAX_TIME_STEPS)
        last = max(last, int(settle.max()) + 1)
    return min(max(last, cfg.time_steps), MAX_TIME_STEPS)
