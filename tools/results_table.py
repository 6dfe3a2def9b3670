"""The README's results table, generated from the shipped weights' histories and spiking logs.

    python tools/results_table.py                   # print the table of the shipped runs (Markdown)
    python tools/results_table.py --write           # replace the table in README.md
    python tools/results_table.py --runs            # your runs, <workspace>/figs/k*/, in 100 columns
    python tools/results_table.py --runs MNIST/figs other/logs   # the runs under these folders

Reads ``<workspace>/pretrained/<k|fp32>.history.json`` (epochs, FP32 test accuracy),
``<workspace>/pretrained/logs/k<k>/summary.json`` (the shipped spiking runs, written by
``tools/make_results.sh``) and ``common/paper/curves.csv`` (the paper's per-step curves).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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
    return json.loads(path.read_text()) if path.is_file() else None


def epochs_note(history: dict | list | None) -> str:
    return trained_for(history, unit="") or "–"


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
            summary = read_json(ws / "pretrained" / "logs" / f"k{k}" / "summary.json")
            ann = f"{paper_ann:.2f}" if k == 1 else "–"
            paper = f"| {label} | {k} | {ann} | {paper_snn(curves.get(k))} "
            if summary is None:
                lines.append(paper + "| not run | | | | | | | | | |")
                continue
            history = read_json(ws / "pretrained" / f"k{k}.history.json")
            ties = summary.get("float32_near_ties", {})
            lines.append(
                paper + f"| {epochs_note(history)} | {100 * summary['ann_accuracy']:.2f} | "
                f"{100 * summary['snn_accuracy'][-1]:.2f} ({summary['time_steps']}) | {summary['lossless_step']} | "
                f"{summary['agreement']:.4f} | {summary['mismatched_neurons']} | "
                f"{ties.get('neurons', '–')} / {ties.get('predictions', '–')} | "
                f"{summary['spikes_per_image']:,.0f} | {summary['sops_per_image'] / 1e6:.2f} M | "
                f"{summary['num_samples']:,} |")
        fp32 = read_json(ws / "pretrained" / "fp32.history.json")
        epochs = epochs_of(fp32)
        fp32_acc = f"{100 * epochs[-1]['test_acc']:.2f}" if epochs and "test_acc" in epochs[-1] else "not run"
        lines.append(f"| {label} | FP32 | {paper_fp32:.2f} | | {epochs_note(fp32)} | {fp32_acc} "
                     f"| | | | | | | | |")
    return "\n".join(lines)


def _fit(text: str, width: int) -> str:
    """``text`` padded to ``width``, its start cut (with an ellipsis) if longer: the end names the run."""
    return f"{text:<{width}}" if len(text) <= width else "…" + text[-(width - 1):]


def runs_table(folders: list[Path]) -> str:
    """Every spiking run (a ``summary.json``) under ``folders``, one line each, at most 100 characters wide."""
    header = (f"{'run':<38} {'T':>5} {'images':>6} {'ANN %':>6} {'SNN %':>6} {'lossless':>8} {'agree':>6} "
              f"{'mism.':>5} {'SOPs/img':>9}")
    lines = [header, "-" * len(header)]
    for folder in folders:
        for path in sorted(folder.rglob("summary.json")):
            if any(part.startswith(".") for part in path.relative_to(folder).parts):
                continue  # a log set being written
            try:
                s = json.loads(path.read_text())
                name = path.parent.resolve().relative_to(ROOT).as_posix() if path.resolve().is_relative_to(ROOT) \
                    else path.parent.as_posix()
                lines.append(f"{_fit(name, 38)} {s['time_steps']:>5} {s['num_samples']:>6} "
                             f"{100 * s['ann_accuracy']:>6.2f} {100 * s['snn_accuracy'][-1]:>6.2f} "
                             f"{str(s['lossless_step']):>8} {s['agreement']:>6.4f} {s['mismatched_neurons']:>5} "
                             f"{s['sops_per_image'] / 1e6:>8.2f}M" + ("  partial" if s.get("partial") else ""))
            except (OSError, ValueError, KeyError, TypeError, IndexError):
                lines.append(f"{_fit(path.parent.as_posix(), 38)} (unreadable summary.json)")
    if len(lines) == 2:
        return f"no spiking runs under {', '.join(str(f) for f in folders)}; run a Spiking_* script first"
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python tools/results_table.py",
        description="Tabulate spiking runs. Without options: the README's results table of the shipped runs "
                    "(<workspace>/pretrained/), beside the paper's, as Markdown.")
    parser.add_argument("--write", action="store_true", help="replace the table between the results markers of "
                        "README.md instead of printing it")
    parser.add_argument("--runs", nargs="*", metavar="FOLDER", type=Path,
                        help="tabulate your own runs instead: every summary.json under the FOLDERs (default: "
                        "every workspace's figs/), one line each, fit for a terminal")
    args = parser.parse_args(argv)
    if args.runs is not None:
        print(runs_table(args.runs or [ROOT / w / "figs" for w, *_ in ROWS]))
        return
    text = table()
    if not args.write:
        print(text)
        return
    readme = ROOT / "README.md"
    content = readme.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    readme.write_text(pattern.sub(lambda _: f"{START}\n{text}\n{END}", content))


if __name__ == "__main__":
    main()
