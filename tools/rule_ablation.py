"""Compare spiking runs of one network under different neuron rules: a table and a figure.

    python tools/rule_ablation.py MNIST/pretrained/figs/rules_k1.png \
        MNIST/pretrained/logs/k1 MNIST/pretrained/logs/no_negative/k1

Each folder is a spiking run (``summary.json`` and its logs), labelled by its ``neuron_rule``; a run
under a third rule is one of your own first, e.g. ``python MNIST/Spiking_LeNet_MNIST.py --k 1
--neuron_rule original --log_dir runs/original/k1``. Prints a Markdown table (final SNN accuracy,
agreement with the exact ANN, lossless step, mismatched neurons: hidden neurons whose final count is off
the ANN's level, summed over the images, negative spikes per image) and draws the SNN's accuracy after
every time step beside the exact ANN's. Imports no TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import signals  # noqa: E402

if __name__ == "__main__":
    signals.start_program()  # first: a stop during the imports below ends the program with its line

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib.pyplot as plt

from common import fsutil, logs


def table(runs: list[dict]) -> str:
    rows = ["| rule | SNN accuracy (last step) | agreement | lossless step | mismatched neurons "
            "| negative spikes/image |", "| --- | --- | --- | --- | --- | --- |"]
    for s in runs:
        total = s["hidden_neurons_per_image"] * s["num_samples"]
        rows.append(f"| {s['neuron_rule']} | {100 * s['snn_accuracy'][-1]:.2f} % | {s['agreement']:.4f} | "
                    f"{s['lossless_step'] if s['lossless_step'] is not None else 'never'} | "
                    f"{s['mismatched_neurons']:,} of {total:,} | {s['negative_spikes_per_image']:.1f} |")
    return "\n".join(rows)


def figure(runs: list[dict], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for s in runs:
        steps = range(1, len(s["snn_accuracy"]) + 1)
        ax.plot(steps, [100 * a for a in s["snn_accuracy"]], marker=".", label=f"{s['neuron_rule']} rule")
    first = runs[0]
    ax.axhline(100 * first["ann_accuracy"], color="black", linestyle="--", linewidth=1, label="exact ANN")
    ax.set(xlabel="time step", ylabel="test accuracy (%)",
           title=f"{first['network']} k={first['k']}, {first['num_samples']:,} test images")
    ax.set_ylim(max(0, 100 * first["ann_accuracy"] - 10), 100 * first["ann_accuracy"] + 1)
    ax.legend()
    fig.tight_layout()
    with fsutil.atomic_write(out, "wb") as f:  # a stop or an error leaves the previous figure, or none
        fig.savefig(f, format="png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("figure", type=Path, help="the .png to write")
    parser.add_argument("runs", type=Path, nargs="+", help="spiking run folders (summary.json and logs)")
    args = parser.parse_args()
    try:
        runs = [logs.read_summary(folder) for folder in args.runs]
    except (OSError, ValueError) as e:
        parser.exit(1, f"error: {e}\n")
    if len({(s["network"], s["k"], s["num_samples"]) for s in runs}) != 1:
        parser.exit(1, "error: the runs are not of one network, k and test set; compare like with like\n")
    print(table(runs))
    with signals.working():  # the figure is written whole; a stop takes effect after it
        figure(runs, args.figure)
    print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
