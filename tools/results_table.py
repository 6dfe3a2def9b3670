"""The README's results table, generated from the shipped weights' histories and spiking logs.

    python tools/results_table.py            # print the table
    python tools/results_table.py --write    # replace the table in README.md

Reads ``<workspace>/pretrained/<k|fp32>.history.json`` (epochs run, FP32 test accuracy) and
``<workspace>/figs/k<k>/summary.json`` (written by the Spiking script on those weights).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- results:start -->", "<!-- results:end -->"

# workspace, label, paper (k=1): ANN %, SNN %, time steps, FP32 %
ROWS = [
    ("MNIST", "LeNet, MNIST", (99.32, 99.32, 13, 99.28)),
    ("FashionMNIST/MLP", "MLP, FashionMNIST", (88.79, 88.79, 11, 89.83)),
    ("FashionMNIST/LeNet", "LeNet, FashionMNIST", (89.99, 89.99, 17, 90.01)),
    ("CIFAR10/CNN_1", "CNN 1, CIFAR-10", (92.77, 92.77, 57, 92.66)),
    ("CIFAR10/CNN_2", "CNN 2, CIFAR-10", (93.35, 93.35, 40, 93.20)),
]


def read_json(path: Path) -> dict | list | None:
    return json.loads(path.read_text()) if path.is_file() else None


def epochs_note(history: list[dict] | None) -> str:
    if not history:
        return "–"
    images = history[-1].get("train_images", 50_000)
    return f"{history[-1]['epoch']}" + (f" on {images:,} images" if images < 50_000 else "")


def table() -> str:
    lines = ["| network | k | paper ANN / SNN (T) | ours: epochs | ANN | SNN (T) | agreement | lossless step "
             "| mismatched neurons | spikes / image | SOPs / image | test images |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for workspace, label, (p_ann, p_snn, p_t, p_fp32) in ROWS:
        ws = ROOT / workspace
        for k in (0, 1, 2):
            summary = read_json(ws / "figs" / f"k{k}" / "summary.json")
            paper = f"{p_ann:.2f} / {p_snn:.2f} ({p_t})" if k == 1 else "–"
            if summary is None:
                if k == 1:
                    lines.append(f"| {label} | {k} | {paper} | not run here | | | | | | | | |")
                continue
            history = read_json(ws / "pretrained" / f"k{k}.history.json")
            lines.append(
                f"| {label} | {k} | {paper} | {epochs_note(history)} | {100 * summary['ann_accuracy']:.2f} | "
                f"{100 * summary['snn_accuracy'][-1]:.2f} ({summary['time_steps']}) | {summary['agreement']:.4f} | "
                f"{summary['lossless_step']} | {summary['mismatched_neurons']} | "
                f"{summary['spikes_per_image']:,.0f} | {summary['sops_per_image'] / 1e6:.2f} M | "
                f"{summary['num_samples']:,} |")
        fp32 = read_json(ws / "pretrained" / "fp32.history.json")
        fp32_acc = f"{100 * fp32[-1]['test_acc']:.2f}" if fp32 and "test_acc" in fp32[-1] else "not run here"
        lines.append(f"| {label} | FP32 | {p_fp32:.2f} | {epochs_note(fp32)} | {fp32_acc} | | | | | | | |")
    return "\n".join(lines)


def main() -> None:
    text = table()
    if "--write" not in sys.argv:
        print(text)
        return
    readme = ROOT / "README.md"
    content = readme.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    readme.write_text(pattern.sub(lambda _: f"{START}\n{text}\n{END}", content))


if __name__ == "__main__":
    main()
