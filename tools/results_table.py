"""The README's results table, generated from the shipped weights' histories and spiking logs.

    python tools/results_table.py            # print the table
    python tools/results_table.py --write    # replace the table in README.md

Reads ``<workspace>/pretrained/<k|fp32>.history.json`` (epochs, FP32 test accuracy),
``<workspace>/pretrained/logs/k<k>/summary.json`` (the shipped spiking runs, written by
``tools/make_results.sh``) and ``paper/curves.csv`` (the paper's per-step curves).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.fsutil import write_text  # noqa: E402
from common.plots import epochs_of, paper_curves, trained_for  # noqa: E402 - imports no TensorFlow

START, END = "<!-- results:start -->", "<!-- results:end -->"

# workspace, label, the paper's table (k=1 ANN %, FP32 %)
ROWS = [
    ("MNIST", "LeNet, MNIST", 99.32, 99.28),
    ("FashionMNIST/MLP", "MLP, FashionMNIST", 88.79, 89.83),
    ("FashionMNIST/LeNet", "LeNet, FashionMNIST", 89.99, 90.01),
    ("CIFAR10/CNN_1", "CNN 1, CIFAR-10", 92.77, 92.66),
    ("CIFAR10/CNN_2", "CNN 2, CIFAR-10", 93.35, 93.20),
]


def read_json(path: Path) -> dict | list | None:
    """The JSON in ``path``; None if there is none, or (with a warning) if it cannot be read."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        sys.stderr.write(f"warning: skipping {path}: not readable JSON ({str(e)[:100]})\n")
        return None


def summary_row(summary: object, path: Path, history: dict | list | None) -> str | None:
    """The table cells of one shipped spiking run; None (with a warning) for a malformed summary."""
    try:
        ties = summary.get("float32_near_ties", {})
        partial = " (partial)" if summary.get("partial") else ""
        return (f"| {epochs_note(history)} | {100 * summary['ann_accuracy']:.2f} | "
                f"{100 * summary['snn_accuracy'][-1]:.2f} ({summary['time_steps']}) | {summary['lossless_step']} | "
                f"{summary['agreement']:.4f} | {summary['mismatched_neurons']} | "
                f"{ties.get('neurons', '–')} / {ties.get('predictions', '–')} | "
                f"{summary['spikes_per_image']:,.0f} | {summary['sops_per_image'] / 1e6:.2f} M | "
                f"{summary['num_samples']:,}{partial} |")
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as e:
        sys.stderr.write(f"warning: skipping {path}: not a summary of a spiking run ({type(e).__name__}: "
                         f"{str(e)[:80]})\n")
        return None


def epochs_note(history: dict | list | None) -> str:
    try:
        return trained_for(history, unit="") or "–"
    except (AttributeError, KeyError, TypeError, ValueError, IndexError):
        return "?"


def paper_snn(curve: dict | None) -> str:
    """The paper's final SNN accuracy and the step from which it holds."""
    if curve is None:
        return "–"
    accuracy = curve["accuracy"]
    step = len(accuracy)
    while step > 1 and accuracy[step - 2] == accuracy[-1]:
        step -= 1
    return f"{100 * accuracy[-1]:.2f} ({step})"


def table() -> str:
    lines = ["| network | k | paper: ANN | paper: SNN (step) | ours: epochs | ANN | SNN (T) | lossless step "
             "| agreement | mismatched neurons | float32 near-ties | spikes / image | SOPs / image | test images |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for workspace, label, paper_ann, paper_fp32 in ROWS:
        ws = ROOT / workspace
        curves = paper_curves(workspace)
        for k in (0, 1, 2):
            path = ws / "pretrained" / "logs" / f"k{k}" / "summary.json"
            summary = read_json(path)
            ann = f"{paper_ann:.2f}" if k == 1 else "–"
            paper = f"| {label} | {k} | {ann} | {paper_snn(curves.get(k))} "
            row = None if summary is None else summary_row(summary, path, read_json(
                ws / "pretrained" / f"k{k}.history.json"))
            lines.append(paper + (row or "| not run here | | | | | | | | | |"))
        fp32 = read_json(ws / "pretrained" / "fp32.history.json")
        try:
            epochs = epochs_of(fp32)
            fp32_acc = f"{100 * epochs[-1]['test_acc']:.2f}" if epochs and "test_acc" in epochs[-1] else "not run here"
        except (AttributeError, KeyError, TypeError, ValueError, IndexError):
            fp32_acc = "?"
        lines.append(f"| {label} | FP32 | {paper_fp32:.2f} | | {epochs_note(fp32)} | {fp32_acc} "
                     f"| | | | | | | | |")
    return "\n".join(lines)


def main() -> None:
    text = table()
    if "--write" not in sys.argv:
        print(text)
        return
    readme = ROOT / "README.md"
    content = readme.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(content):
        sys.exit(f"error: {readme} has no {START} ... {END} markers; add them where the table belongs")
    write_text(readme, pattern.sub(lambda _: f"{START}\n{text}\n{END}", content))


if __name__ == "__main__":
    main()
