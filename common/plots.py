"""Figures of a workspace's spiking runs beside the paper's own curves. Imports no TensorFlow.

    python -m common.plots MNIST                  # your runs: MNIST/figs/k*/ -> MNIST/figs/*.png
    python -m common.plots .                      # the same, from inside a workspace
    python -m common.plots MNIST --shipped        # the shipped runs: MNIST/pretrained/logs/k*/ -> pretrained/figs/

Figures: ``accuracy_speed.png`` (accuracy after every time step, the quantized ANN dashed),
``spikes.png`` and ``sops.png`` (cumulative spikes and synaptic operations per image after
every step), ``accuracy_sops.png`` (accuracy against cumulative synaptic operations) and
``sparsity.png`` (positive and negative spikes per hidden neuron). Each line names the
checkpoint and the training epochs it comes from; the paper's curves (``common/paper/curves.csv``)
are drawn in grey beside ours.
"""

from __future__ import annotations

import argparse
import csv
import importlib.resources
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from common import logs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAPER_CURVES = importlib.resources.files("common") / "paper" / "curves.csv"  # package data: found when installed
TITLES = {"mnist_lenet": "LeNet on MNIST", "fashion_lenet": "LeNet on FashionMNIST",
          "fashion_mlp": "MLP on FashionMNIST", "cifar10_cnn1": "CNN 1 on CIFAR-10",
          "cifar10_cnn2": "CNN 2 on CIFAR-10"}
FULL_TRAINING_SET = 50_000  # every dataset here trains on 50,000 images (MNIST-likes hold 10,000 out)
FIGURES = ("accuracy_speed.png", "spikes.png", "sops.png", "accuracy_sops.png", "sparsity.png")


WORKSPACES = ("MNIST", "FashionMNIST/MLP", "FashionMNIST/LeNet", "CIFAR10/CNN_1", "CIFAR10/CNN_2")


def workspace_name(workspace: Path) -> str:
    """``MNIST``, ``FashionMNIST/MLP``, ...: the workspace relative to the repository (the paper's key)."""
    path = workspace.resolve().as_posix()
    for name in WORKSPACES:  # by its own name, also outside this repository (an installed package)
        if path.endswith("/" + name):
            return name
    try:
        return workspace.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return workspace.resolve().name


def load_runs(log_root: Path) -> dict[int, dict]:
    """``{k: summary}`` of every ``k<k>/`` under ``log_root``, with per-step totals per image from the logs."""
    runs = {}
    for folder in sorted(log_root.glob("k*")):
        if not (folder / logs.SUMMARY).is_file():
            continue
        summary = logs.read_summary(folder)
        steps, n = summary["time_steps"], summary["num_samples"]
        per_step = {name: logs.read_log(folder, name, steps).sum(axis=0) / n for name in logs.LOG_FILES}
        summary["curve"] = {"accuracy": per_step["accuracy.txt"], "spikes": per_step["spike_num.txt"],
                            "sops": per_step["sop_num.txt"]}
        summary["label"] = f"ours, k={summary['k']} ({run_source(summary)})"
        runs[summary["k"]] = summary
    return runs


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
    return f"{epochs[-1]['epoch']}{unit}" + (f" on {images:,} images" if images < FULL_TRAINING_SET else "")


def run_source(summary: dict) -> str:
    """``k1.npz, 150 epochs``: which checkpoint, trained how long (from its history beside it)."""
    ckpt = Path(summary["checkpoint"])
    history = ckpt.with_name(ckpt.stem + ".history.json")
    epochs = ""
    if history.is_file():
        try:
            trained = trained_for(json.loads(history.read_text()))
        except (ValueError, KeyError, TypeError):
            trained = ""
        epochs = f", {trained}" if trained else ""
    partial = ", partial" if summary.get("partial") else ""
    return f"{ckpt.name}{epochs}{partial}"


def paper_curves(workspace: str) -> dict[int, dict[str, np.ndarray]]:
    """The paper's per-step curves of ``workspace`` (from its authors' published logs), by k."""
    curves: dict[int, dict[str, list[float]]] = {}
    if not PAPER_CURVES.is_file():
        return {}
    with PAPER_CURVES.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["workspace"] != workspace:
                continue
            curve = curves.setdefault(int(row["k"]), {"accuracy": [], "spikes": [], "sops": []})
            curve["accuracy"].append(float(row["accuracy"]))
            curve["spikes"].append(float(row["spikes_per_image"]))
            curve["sops"].append(float(row["sops_per_image"]))
    return {k: {name: np.array(values) for name, values in c.items()} for k, c in curves.items()}


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _per_step(runs: dict[int, dict], paper: dict, key: str, ylabel: str, title: str, path: Path,
              scale: float = 1.0) -> None:
    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    colors = {}
    for k, run in runs.items():
        steps = np.arange(1, run["time_steps"] + 1)
        line, = ax.plot(steps, run["curve"][key] * scale, marker="o", markersize=3, label=run["label"])
        colors[k] = line.get_color()
        if key == "accuracy":
            ax.axhline(100 * run["ann_accuracy"], color=line.get_color(), linestyle="--", linewidth=1,
                       label=f"quantized ANN, k={k} ({100 * run['ann_accuracy']:.2f}%)")
    for k, curve in paper.items():
        if k in runs:
            steps = np.arange(1, len(curve[key]) + 1)
            ax.plot(steps, curve[key] * scale, color=colors[k], alpha=0.45, linestyle=":", marker="x",
                    markersize=3, label=f"paper, k={k}")
    longest = max([run["time_steps"] for run in runs.values()] + [len(c[key]) for k, c in paper.items() if k in runs])
    ax.set_xticks(np.arange(1, longest + 1, max(1, longest // 20)))
    if key == "accuracy":
        low = min([run["curve"]["accuracy"][-1] for run in runs.values()]) * 100
        ax.set_ylim(max(0.0, low - 10), 100)
    ax.set_xlabel("time step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right" if key == "accuracy" else "upper left")
    _save(fig, path)


def plot_accuracy_sops(runs: dict[int, dict], paper: dict, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    for k, run in runs.items():
        line, = ax.plot(run["curve"]["sops"] / 1e6, 100 * run["curve"]["accuracy"], marker="o", markersize=3,
                        label=run["label"])
        if k in paper:
            ax.plot(paper[k]["sops"] / 1e6, 100 * paper[k]["accuracy"], color=line.get_color(), alpha=0.45,
                    linestyle=":", marker="x", markersize=3, label=f"paper, k={k}")
    low = min(run["curve"]["accuracy"][-1] for run in runs.values()) * 100
    ax.set_ylim(max(0.0, low - 10), 100)
    ax.set_xlabel("cumulative synaptic operations per image (millions)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{title}: accuracy against synaptic operations", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    _save(fig, path)


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
        ax.text(x[i] - 0.18, positive[i], f"{positive[i]:.3f}", ha="center", va="bottom", fontsize=8)
        ax.text(x[i] + 0.18, negative[i], f"{negative[i]:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [runs[k]["label"].removeprefix("ours, ") for k in ks], fontsize=7)
    ax.set_ylabel("spikes per hidden neuron per image")
    ax.set_title(f"{title}: spikes per neuron over the whole simulation", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_workspace(workspace: Path, shipped: bool = False) -> list[Path]:
    """Draw the figures of ``workspace``'s runs (the shipped ones with ``shipped``); returns their paths."""
    log_root = workspace / "pretrained" / "logs" if shipped else workspace / "figs"
    out_dir = workspace / "pretrained" / "figs" if shipped else workspace / "figs"
    runs = load_runs(log_root)
    if not runs:
        inner = sorted(p.parent.name for p in workspace.glob("*/Spiking_*.py"))
        if inner and not any(workspace.glob("Spiking_*.py")):  # FashionMNIST/, CIFAR10/: folders of workspaces
            raise SystemExit(f"error: {workspace} holds the workspaces "
                             f"{' and '.join((workspace / name).as_posix() for name in inner)}; pass one of them")
        raise SystemExit(f"error: no spiking runs under {log_root}; run the workspace's Spiking script first")
    name = workspace_name(workspace)
    paper = paper_curves(name)
    title = TITLES.get(next(iter(runs.values()))["network"], name)
    paths = [out_dir / f for f in FIGURES]
    _per_step(runs, paper, "accuracy", "test accuracy (%)", f"{title}: accuracy after each time step", paths[0],
              100.0)
    _per_step(runs, paper, "spikes", "cumulative spikes per image", f"{title}: spikes (|+1| and |-1|)", paths[1])
    _per_step(runs, paper, "sops", "cumulative synaptic operations per image (millions)",
              f"{title}: synaptic operations", paths[2], 1e-6)
    plot_accuracy_sops(runs, paper, title, paths[3])
    plot_sparsity(runs, title, paths[4])
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m common.plots", description=__doc__.split("\n\n")[0])
    parser.add_argument("workspace", help="a workspace folder, e.g. MNIST, FashionMNIST/MLP, or . inside one")
    parser.add_argument("--shipped", action="store_true", help="draw the shipped runs in pretrained/")
    args = parser.parse_args(argv)
    workspace = Path(args.workspace)
    if not workspace.is_dir() and (ROOT / args.workspace).is_dir():
        workspace = ROOT / args.workspace
    if not workspace.is_dir():
        raise SystemExit(f"error: {args.workspace} is not a folder; pass a workspace such as MNIST")
    for path in plot_workspace(workspace, args.shipped):
        print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
