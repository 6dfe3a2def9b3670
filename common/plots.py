"""Figures of a workspace's spiking runs, from its ``figs/k*/`` logs.

    python -m common.plots MNIST
    python -m common.plots FashionMNIST/MLP

Writes into ``<workspace>/figs/``: ``accuracy_speed.png`` (accuracy against time step, the
ANN's accuracy as a dashed line), ``sparsity.png`` (positive and negative spikes per neuron)
and ``sops.png`` (synaptic operations per image beside the ANN's operations).
"""

from __future__ import annotations

import sys
from pathlib import Path

from common import compat  # noqa: F401 - the Agg backend
import matplotlib.pyplot as plt
import numpy as np

from common import logs

TITLES = {"mnist_lenet": "LeNet on MNIST", "fashion_lenet": "LeNet on FashionMNIST",
          "fashion_mlp": "MLP on FashionMNIST", "cifar10_cnn1": "CNN 1 on CIFAR-10",
          "cifar10_cnn2": "CNN 2 on CIFAR-10"}
ANN_OPS_PER_MAC = 3  # the original's count for the ANN: a multiply-accumulate as 3 operations


def load_runs(workspace: Path) -> dict[int, dict]:
    """``{k: summary}`` of every ``figs/k<k>/`` with its logs, the accuracy re-read from the log."""
    runs = {}
    for folder in sorted((workspace / "figs").glob("k*")):
        if not (folder / "summary.json").is_file():
            continue
        summary = logs.read_summary(folder)
        correct = logs.read_log(folder, "accuracy.txt", summary["time_steps"]).sum(axis=0)
        summary["accuracy_from_log"] = correct / summary["num_samples"]
        runs[summary["k"]] = summary
    return runs


def plot_accuracy(runs: dict[int, dict], title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for k, run in runs.items():
        steps = np.arange(1, run["time_steps"] + 1)
        line, = ax.plot(steps, 100 * run["accuracy_from_log"], marker="o", markersize=3, label=f"SNN, k={k}")
        ax.axhline(100 * run["ann_accuracy"], color=line.get_color(), linestyle="--", linewidth=1,
                   label=f"quantized ANN, k={k} ({100 * run['ann_accuracy']:.2f}%)")
        if run["lossless_step"]:
            ax.axvline(run["lossless_step"], color=line.get_color(), linestyle=":", linewidth=1)
    low = min(100 * run["ann_accuracy"] for run in runs.values())
    ax.set_ylim(max(0, low - 15), 100)
    ax.set_xlabel("time step")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{title}: SNN accuracy per time step\n(dotted: first step from which SNN = ANN)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_sparsity(runs: dict[int, dict], title: str, path: Path) -> None:
    ks = list(runs)
    neurons = np.array([runs[k]["hidden_neurons_per_image"] for k in ks])
    positive = np.array([runs[k]["positive_spikes_per_image"] for k in ks]) / neurons
    negative = np.array([runs[k]["negative_spikes_per_image"] for k in ks]) / neurons
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    x = np.arange(len(ks))
    ax.bar(x - 0.18, positive, 0.36, label="positive spikes")
    ax.bar(x + 0.18, negative, 0.36, label="negative spikes")
    for i in range(len(ks)):
        ax.text(x[i] - 0.18, positive[i], f"{positive[i]:.2f}", ha="center", va="bottom", fontsize=8)
        ax.text(x[i] + 0.18, negative[i], f"{negative[i]:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [f"k={k}" for k in ks])
    ax.set_ylabel("spikes per hidden neuron per image")
    ax.set_title(f"{title}: spikes per neuron over the whole simulation", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_sops(runs: dict[int, dict], title: str, path: Path) -> None:
    ks = list(runs)
    macs = next(iter(runs.values()))["ann_macs_per_image"]
    labels = [f"SNN k={k}" for k in ks] + ["ANN (MACs)", f"ANN ({ANN_OPS_PER_MAC} ops per MAC)"]
    values = [runs[k]["sops_per_image"] for k in ks] + [macs, ANN_OPS_PER_MAC * macs]
    colors = ["tab:blue"] * len(ks) + ["tab:gray", "tab:gray"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    bars = ax.bar(range(len(values)), np.array(values) / 1e6, color=colors)
    bars[-1].set_alpha(0.5)
    for bar, v in zip(bars, values):
        ax.text(bar.get_x() + bar.get_width() / 2, v / 1e6, f"{v / 1e6:.2f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(values)), labels, fontsize=8)
    ax.set_ylabel("operations per image (millions)")
    ax.set_title(f"{title}: SNN synaptic operations vs ANN operations\n(an SOP is one spike reaching one "
                 f"synapse; the original counted a MAC as {ANN_OPS_PER_MAC} ops)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_workspace(workspace: Path) -> list[Path]:
    runs = load_runs(workspace)
    if not runs:
        raise SystemExit(f"error: no spiking runs under {workspace / 'figs'}; run the Spiking script first")
    title = TITLES.get(next(iter(runs.values()))["network"], workspace.name)
    outputs = [workspace / "figs" / name for name in ("accuracy_speed.png", "sparsity.png", "sops.png")]
    for plot, out in zip((plot_accuracy, plot_sparsity, plot_sops), outputs):
        plot(runs, title, out)
    return outputs


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m common.plots <workspace folder, e.g. MNIST>")
    for out in plot_workspace(Path(sys.argv[1])):
        print(out)
