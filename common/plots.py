"""Figures of a workspace's spiking runs beside the paper's own curves. Imports no TensorFlow.

    python -m common.plots MNIST                  # your runs: MNIST/figs/k*/ -> MNIST/figs/*.png
    python -m common.plots .                      # the same, from inside a workspace
    python -m common.plots MNIST --shipped        # the shipped runs: MNIST/pretrained/logs/k*/ -> pretrained/figs/

Figures: ``accuracy_speed.png`` (accuracy after every time step, the quantized ANN dashed),
``spikes.png`` and ``sops.png`` (cumulative spikes and synaptic operations per image after
every step), ``accuracy_sops.png`` (accuracy against cumulative synaptic operations) and
``layers.png`` (per hidden layer: positive and negative spikes per neuron per step, the synaptic
operations its spikes cause, and the energy estimate of ``summary.json``). Each line names the
checkpoint and the training epochs it comes from; the paper's curves (``common/paper/curves.csv``)
are drawn in grey beside ours.
"""

from __future__ import annotations

import argparse
import csv
import importlib.resources
import os
import sys
from pathlib import Path

from common import signals

if __name__ == "__main__":  # python -m common.plots: stop signals are caught before matplotlib's slow import
    signals.start_program()

os.environ.setdefault("MPLBACKEND", "Agg")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from common import logs, provenance  # noqa: E402
from common.history import trained_for, trained_for_checkpoint  # noqa: E402, F401 - trained_for: also plots.trained_for
from common.paper_table import PAPER_TABLE  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAPER_CURVES = importlib.resources.files("common") / "paper" / "curves.csv"  # package data: found when installed
TITLES = {"mnist_lenet": "LeNet on MNIST", "fashion_lenet": "LeNet on FashionMNIST",
          "fashion_mlp": "MLP on FashionMNIST", "cifar10_cnn1": "CNN 1 on CIFAR-10",
          "cifar10_cnn2": "CNN 2 on CIFAR-10"}
FIGURES = ("accuracy_speed.png", "spikes.png", "sops.png", "accuracy_sops.png", "layers.png")


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


MAX_TIME_STEPS = 10_000  # the spiking scripts' limit; a summary claiming more is not one of their runs


class MalformedRunError(ValueError):
    """A run folder whose summary or logs cannot be drawn."""


def load_runs(log_root: Path) -> dict[str, dict]:
    """``{folder name: summary}`` of every kept run under ``log_root`` (``k1/``, and the earlier runs moved
    aside to ``k1.bak``, ``k1.bak1``, ...), with per-step totals per image from the logs. A run that
    cannot be read is skipped with a warning on standard error; the others are drawn."""
    runs = {}
    for folder in sorted(log_root.glob("k*"), key=_run_order):
        if not (folder / logs.SUMMARY).is_file():
            continue
        try:
            runs[folder.name] = load_run(folder)
        except MalformedRunError as e:
            sys.stderr.write(f"warning: skipping {folder}: {e}\n")
    return runs


def _run_order(folder: Path) -> tuple:
    """``k0, k1, k1.bak, k1.bak1, ..., k2``: each k's runs together, the current one first."""
    k, _, backup = folder.name[1:].partition(".bak")
    return (int(k) if k.isdigit() else 1 << 30, folder.name != f"k{k}", int(backup) if backup.isdigit() else 0,
            folder.name)


def load_run(folder: Path) -> dict:
    """One run's summary with its per-step curves and legend label; :class:`MalformedRunError` if it is not whole."""
    try:
        summary = logs.read_summary(folder)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise MalformedRunError(f"{logs.SUMMARY} is not readable JSON ({str(e)[:100]})") from None
    if not isinstance(summary, dict):
        raise MalformedRunError(f"{logs.SUMMARY} is not an object")
    steps, n, k = summary.get("time_steps"), summary.get("num_samples"), summary.get("k")
    for name, value, low, high in (("time_steps", steps, 1, MAX_TIME_STEPS), ("num_samples", n, 1, 10 ** 9),
                                   ("k", k, 0, 64)):
        if type(value) is not int or not low <= value <= high:
            raise MalformedRunError(f"'{name}' must be an integer {low}..{high}, got {str(value)[:40]}")
    for name in ("ann_accuracy", "hidden_neurons_per_image", "positive_spikes_per_image",
                 "negative_spikes_per_image", "sops_per_image"):
        if type(summary.get(name)) not in (int, float):
            raise MalformedRunError(f"'{name}' must be a number, got {str(summary.get(name))[:40]}")
    layer_numbers = ("neurons", "positive_spikes_per_image", "negative_spikes_per_image", "sops_per_image")
    layers = summary.get("layers")
    if layers is not None and not (isinstance(layers, list) and all(
            isinstance(i, dict) and isinstance(i.get("shape"), list) and "layer" in i
            and all(type(i.get(name)) in (int, float) for name in layer_numbers) and i["neurons"] > 0
            for i in layers)):
        raise MalformedRunError("'layers' must be a list of per-layer figures")
    try:
        per_step = {name: logs.read_log(folder, name, steps).sum(axis=0) / n for name in logs.LOG_FILES}
    except (OSError, ValueError) as e:
        raise MalformedRunError(f"its logs are not whole ({str(e)[:160]})") from None
    summary["curve"] = {"accuracy": per_step["accuracy.txt"], "spikes": per_step["spike_num.txt"],
                        "sops": per_step["sop_num.txt"]}
    summary["label"] = run_label(folder.name, summary)
    return summary


def run_label(folder: str, summary: dict) -> str:
    """``ours, k=1 (k1.npz, 150 epochs)``, plus the folder of an earlier run kept aside and whatever
    differs from the defaults (part of the test set, neuron rule, simulator, noise, checkpoint)."""
    k = summary["k"]
    where = "" if folder == f"k{k}" else f" [{folder}]"
    differs = logs.differences(summary)
    return f"ours, k={k}{where} ({run_source(summary)}" + "".join(f"; {d}" for d in differs) + ")"


def run_source(summary: dict) -> str:
    """``k1.npz, 150 epochs``: which checkpoint, trained how long (from its history beside it)."""
    ckpt = Path(str(summary.get("checkpoint", "unknown checkpoint")))
    trained = trained_for_checkpoint(provenance.from_record(ckpt))
    return f"{ckpt.name}, {trained}" if trained else ckpt.name


def paper_curves(workspace: str) -> dict[int, dict]:
    """The per-step curves of the original code's published logs for ``workspace``, by k: arrays
    ``accuracy``, ``spikes``, ``sops``, and a legend ``label`` naming the paper's table's step beside them."""
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
    out = {k: {name: np.array(values) for name, values in c.items()} for k, c in curves.items()}
    row = PAPER_TABLE.get(workspace)
    for k, curve in out.items():
        table = f"; paper's table: step {row.time_steps_k1}" if row and k == 1 else ""
        curve["label"] = f"original code's published logs, k={k}{table}"
    return out


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")  # "tight": the legends below the axes stay in
    plt.close(fig)


def _legend_below(ax) -> None:
    """The legend under the axes, off the curves."""
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)


def _accuracy_axis(ax, curves: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """From 10 points under the lowest final accuracy to 100 %; says which points fall below, never hides them."""
    low = max(0.0, min(float(y[-1]) for _, y in curves) - 10)
    ax.set_ylim(low, 100)
    below = [(x[i], y[i]) for x, y in curves for i in range(len(y)) if y[i] < low]
    if below:
        xs = sorted({float(x) for x, _ in below})
        ax.text(0.01, 0.02, f"below the axis: {len(below)} points at x = {xs[0]:.4g} to {xs[-1]:.4g} "
                f"(lowest {min(y for _, y in below):.1f} %)", transform=ax.transAxes, fontsize=7, color="0.3")


def _per_step(runs: dict[str, dict], paper: dict, key: str, ylabel: str, title: str, path: Path,
              scale: float = 1.0) -> None:
    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    colors = {}
    for name, run in runs.items():
        k = run["k"]
        steps = np.arange(1, run["time_steps"] + 1)
        line, = ax.plot(steps, run["curve"][key] * scale, marker="o", markersize=3, label=run["label"])
        colors.setdefault(k, line.get_color())
        if key == "accuracy":
            ax.axhline(100 * run["ann_accuracy"], color=line.get_color(), linestyle="--", linewidth=1,
                       label=f"quantized ANN, k={k}{'' if name == f'k{k}' else f' [{name}]'} "
                             f"({100 * run['ann_accuracy']:.2f}%)")
    for k, curve in paper.items():
        if k in colors:
            steps = np.arange(1, len(curve[key]) + 1)
            ax.plot(steps, curve[key] * scale, color=colors[k], alpha=0.45, linestyle=":", marker="x",
                    markersize=3, label=curve["label"])
    longest = max([run["time_steps"] for run in runs.values()] + [len(c[key]) for k, c in paper.items() if k in colors])
    ax.set_xticks(np.arange(1, longest + 1, max(1, longest // 20)))
    if key == "accuracy":
        curves = [(line.get_xdata(), line.get_ydata()) for line in ax.get_lines() if len(line.get_xdata()) > 2]
        _accuracy_axis(ax, curves)  # the ANN's dashed lines (two points each) are not curves
    else:
        ax.set_ylim(bottom=0)  # counts from zero, so the first steps are not cut off
    ax.set_xlabel("time step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    _legend_below(ax)
    _save(fig, path)


def plot_accuracy_sops(runs: dict[str, dict], paper: dict, title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    drawn = set()
    for run in runs.values():
        k = run["k"]
        line, = ax.plot(run["curve"]["sops"] / 1e6, 100 * run["curve"]["accuracy"], marker="o", markersize=3,
                        label=run["label"])
        if k in paper and k not in drawn:
            drawn.add(k)
            ax.plot(paper[k]["sops"] / 1e6, 100 * paper[k]["accuracy"], color=line.get_color(), alpha=0.45,
                    linestyle=":", marker="x", markersize=3, label=paper[k]["label"])
    _accuracy_axis(ax, [(line.get_xdata(), line.get_ydata()) for line in ax.get_lines()])
    ax.set_xlim(left=0)
    ax.set_xlabel("cumulative synaptic operations per image (millions)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{title}: accuracy against synaptic operations", fontsize=10)
    ax.grid(alpha=0.3)
    _legend_below(ax)
    _save(fig, path)


def _layer_rows(run: dict) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Labels, positive and negative spikes per neuron per step, and SOPs per image, by hidden layer; a run
    written before ``summary.json`` had per-layer figures gives one row for all its hidden layers."""
    if run.get("layers"):
        layers = run["layers"]
        labels = [f"{i['layer']}: {'x'.join(map(str, i['shape']))}" for i in layers]
        steps = run["time_steps"]
        positive = np.array([i["positive_spikes_per_image"] / i["neurons"] / steps for i in layers])
        negative = np.array([i["negative_spikes_per_image"] / i["neurons"] / steps for i in layers])
        return labels, positive, negative, np.array([i["sops_per_image"] for i in layers])
    per_neuron_step = run["hidden_neurons_per_image"] * run["time_steps"]
    return (["all hidden layers"], np.array([run["positive_spikes_per_image"] / per_neuron_step]),
            np.array([run["negative_spikes_per_image"] / per_neuron_step]), np.array([run["sops_per_image"]]))


def plot_layers(runs: dict[str, dict], title: str, path: Path) -> None:
    """Per hidden layer and k: spikes per neuron per step (positive up, negative down) and SOPs per image."""
    fig, (spikes_ax, sops_ax) = plt.subplots(1, 2, figsize=(10.5, 4.4))
    notes = [f"{k}: no per-layer figures in its summary.json (written before they were; re-run it)"
             for k, run in runs.items() if not run.get("layers")]
    drawn = {k: run for k, run in runs.items() if run.get("layers")} or runs  # else all, as one group each
    width = 0.8 / len(drawn)
    for j, (k, run) in enumerate(drawn.items()):
        labels, positive, negative, sops = _layer_rows(run)
        x = np.arange(len(labels)) + (j - (len(drawn) - 1) / 2) * width
        bars = spikes_ax.bar(x, positive, width, label=f"{k}: positive")
        spikes_ax.bar(x, -negative, width, color=bars[0].get_facecolor(), alpha=0.45, label=f"{k}: negative")
        sops_ax.bar(x, sops / 1e6, width, color=bars[0].get_facecolor(), label=f"{k}")
    for k, run in runs.items():
        energy = run.get("energy_estimate")
        if energy:
            notes.append(f"{k}: estimated {energy['snn_uj_per_image']:.2f} µJ/image against the ANN's "
                         f"{energy['ann_uj_per_image']:.2f} ({energy['snn_vs_ann']:.2f}x)")
    spikes_ax.set_xticks(np.arange(len(labels)), labels, fontsize=7, rotation=30 if len(labels) > 4 else 0)
    sops_ax.set_xticks(np.arange(len(labels)), labels, fontsize=7, rotation=30 if len(labels) > 4 else 0)
    spikes_ax.axhline(0, color="0.3", linewidth=0.8)
    spikes_ax.set_ylabel("spikes per neuron per time step\n(positive up, negative down)")
    spikes_ax.set_xlabel("hidden layer: height x width x channels")
    sops_ax.set_ylabel("synaptic operations its spikes cause,\nper image (millions)")
    sops_ax.set_xlabel("hidden layer")
    for ax in (spikes_ax, sops_ax):
        ax.grid(axis="y", alpha=0.3)
    fig.subplots_adjust(wspace=0.35)
    fig.legend(*spikes_ax.get_legend_handles_labels(), loc="lower center", bbox_to_anchor=(0.5, 0.9),
               ncol=2 * len(drawn), fontsize=7, frameon=False)  # one legend for both panels, above them
    fig.suptitle(f"{title}: activity per hidden layer", fontsize=10, y=1.0)
    if notes:
        fig.text(0.01, -0.04, "\n".join(notes + ["energy: an estimate, 0.9 pJ per accumulate and 4.6 pJ per "
                                                   "multiply-accumulate at 45 nm (Horowitz, ISSCC 2014)"]),
                 fontsize=7, va="top", color="0.25")
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
    title = TITLES.get(str(next(iter(runs.values())).get("network")), name)
    paths = [out_dir / f for f in FIGURES]
    _per_step(runs, paper, "accuracy", "test accuracy (%)", f"{title}: accuracy after each time step", paths[0],
              100.0)
    _per_step(runs, paper, "spikes", "cumulative spikes per image", f"{title}: spikes (|+1| and |-1|)", paths[1])
    _per_step(runs, paper, "sops", "cumulative synaptic operations per image (millions)",
              f"{title}: synaptic operations", paths[2], 1e-6)
    plot_accuracy_sops(runs, paper, title, paths[3])
    plot_layers(runs, title, paths[4])
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
    with signals.working():  # a figure is never left half-written: a signal takes effect after the set
        paths = plot_workspace(workspace, args.shipped)
    for path in paths:
        print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
