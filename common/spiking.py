"""A spiking run: convert a checkpoint, simulate the test set, compare with the ANN, log."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from common import checkpoint, convert, data, logs, reference
from common.model import build_ann
from common.networks import Network
from common.snn import FastSimulator, SimulationResult, pad_to_two
import tensorlayer as tl


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
    simulator: str = "fast"


def ann_forward(model: tl.models.Model) -> Callable[[np.ndarray], list[np.ndarray]]:
    """Compiled inference returning ``[a_1, ..., a_L, logits]`` (a batch of one is padded, see
    :func:`common.snn.pad_to_two`)."""
    @tf.function(reduce_retracing=True)
    def forward(x):
        return model(x, is_train=False)

    def run(x: np.ndarray) -> list[np.ndarray]:
        outputs = forward(pad_to_two(x))
        return [o.numpy()[:len(x)] for o in outputs]
    return run


def noisy(x: np.ndarray, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """The original's input noise: ``x * (1 + (U(0, 1) - 0.5) * ratio)``."""
    if ratio == 0:
        return x
    return (x * (1 + (rng.random(x.shape, np.float32) - 0.5) * ratio)).astype(np.float32)


def run(cfg: SpikingConfig) -> dict:
    """Simulate, write the logs and ``summary.json`` into ``cfg.log_dir``; returns the summary."""
    net, k, scale = cfg.network, cfg.k, float(2 ** cfg.k)
    weights = checkpoint.load(cfg.checkpoint, net, k)
    print(f"{net.name} k={k}: checkpoint {cfg.checkpoint}, {cfg.time_steps} time steps, "
          f"{cfg.simulator} simulator", flush=True)
    model = build_ann(net, k)
    checkpoint.assign(model, weights)
    forward = ann_forward(model)
    sn = convert.convert(net, k, weights)
    fast = FastSimulator(sn)
    test = data.load_split(net.dataset, "test", cfg.roots).head(cfg.num_samples)
    inputs = data.eval_inputs(net.dataset, test)
    rng = np.random.default_rng(cfg.seed)

    lines: dict[str, list[int]] = {name: [] for name in logs.LOG_FILES}
    snn_correct = np.zeros(cfg.time_steps, np.int64)
    ann_correct = agree = mismatched = 0
    spikes_total = net_total = synops_total = 0
    settle = []
    n_batches = -(-len(test) // cfg.batch_size)
    bar = tf.keras.utils.Progbar(n_batches, unit_name="batch", verbose=1 if sys.stdout.isatty() else 2)
    start = time.time()
    for b in range(n_batches):
        x, y = inputs[b * cfg.batch_size:(b + 1) * cfg.batch_size], test.y[b * cfg.batch_size:(b + 1) * cfg.batch_size]
        ann = forward(x)
        x_spikes = noisy(x, cfg.noise_ratio, rng) * scale
        if cfg.simulator == "fast":
            result = fast.simulate(x_spikes, cfg.time_steps)
        else:
            result = reference.simulate(sn, x_spikes, cfg.time_steps)
        correct = result.predictions == y[None, :]
        lines_b = logs.batch_lines(correct, result.spikes.sum(1), result.net.sum(1), result.synops)
        for name in logs.LOG_FILES:
            lines[name] += lines_b[name]
        snn_correct += correct.sum(axis=1)
        ann_pred = ann[-1].argmax(axis=1)
        ann_correct += int((ann_pred == y).sum())
        agree += int((result.predictions[-1] == ann_pred).sum())
        mismatched += count_mismatches(result, ann[:-1], scale)
        spikes_total += int(result.spikes.sum())
        net_total += int(result.net.sum())
        synops_total += int(result.synops.sum())
        settle.append(result.settle)
        bar.update(b + 1)
    seconds = time.time() - start

    n = len(test)
    snn_accuracy = (snn_correct / n).tolist()
    summary = {
        "network": net.name, "k": k, "checkpoint": str(cfg.checkpoint), "simulator": cfg.simulator,
        "num_samples": n, "time_steps": cfg.time_steps, "batch_size": cfg.batch_size,
        "noise_ratio": cfg.noise_ratio, "seed": cfg.seed,
        "ann_accuracy": ann_correct / n, "snn_accuracy": snn_accuracy,
        "lossless_step": logs.lossless_step(snn_correct.tolist(), ann_correct),
        "agreement": agree / n, "mismatched_neurons": mismatched,
        "hidden_neurons_per_image": net.hidden_neurons(),
        "spikes_per_image": spikes_total / n,
        "positive_spikes_per_image": (spikes_total + net_total) / 2 / n,
        "negative_spikes_per_image": (spikes_total - net_total) / 2 / n,
        "sops_per_image": synops_total / n,
        "ann_macs_per_image": net.macs_per_image(),
        "settle_steps": logs.settle_summary(np.concatenate(settle)),
        "wall_seconds": round(seconds, 2),
    }
    logs.write_logs(cfg.log_dir, lines, summary)
    print(f"ANN accuracy {summary['ann_accuracy']:.4f}  SNN accuracy {snn_accuracy[-1]:.4f}  "
          f"agreement {summary['agreement']:.4f}  lossless step {summary['lossless_step']}  "
          f"mismatched neurons {mismatched}  ({seconds:.1f}s, logs in {cfg.log_dir})", flush=True)
    return summary


def count_mismatches(result: SimulationResult, activations: list[np.ndarray], scale: float) -> int:
    """Hidden neurons whose final net spike count differs from ``2^k`` times the ANN activation."""
    return sum(int((c != a * scale).sum()) for c, a in zip(result.counts, activations))
