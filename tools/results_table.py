"""The README's results table, generated from the shipped weights' histories and spiking logs.

    python tools/results_table.py                   # print the table of the shipped runs (Markdown)
    python tools/results_table.py --write           # replace the table in README.md
    python tools/results_table.py --runs            # your runs, <workspace>/figs/k*/, in 100 columns
    python tools/results_table.py --runs MNIST/figs other/logs   # the runs under these folders

Reads ``<workspace>/pretrained/<k|fp32>.history.json`` (epochs, FP32 test accuracy),
``<workspace>/pretrained/logs/k<k>/summary.json`` (the shipped spiking runs, written by
``tools/make_results.sh``), ``common/paper/curves.csv`` (the per-step curves of the original code's published
logs) and, for the spread over seeds, ``<workspace>/pretrained/seeds/k1-seed<N>.summary.json``
(``tools/train_seeds.sh``).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import signals  # noqa: E402

if __name__ == "__main__":
    signals.start_program()  # first: a stop during the imports below ends the program with its line

from common.fsutil import write_text  # noqa: E402
from common.paper_table import PAPER_TABLE  # noqa: E402
from common.history import epochs_of, trained_for  # noqa: E402
from common.plots import paper_curves  # noqa: E402 - imports no TensorFlow

START, END = "<!-- results:start -->", "<!-- results:end -->"

# workspace, label, the paper's table (k=1 ANN %, FP32 %, k=1 time steps); its logs may differ by a step
ROWS = [(ws, row.label, row.ann_k1, row.fp32, row.time_steps_k1) for ws, row in PAPER_TABLE.items()]


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


def settled_step(accuracy: Sequence[float]) -> int:
    """The step (1-based) from which accuracy stays at its final value."""
    step = len(accuracy)
    while step > 1 and accuracy[step - 2] == accuracy[-1]:
        step -= 1
    return step


def paper_snn(curve: dict | None, table_step: int | None = None) -> str:
    """The final SNN accuracy of the original code's published logs and the step from which it holds;
    the paper's table's step beside it where it differs."""
    if curve is None:
        return "–"
    step = settled_step(curve["accuracy"])
    table = f"; table: {table_step}" if table_step is not None and table_step != step else ""
    return f"{100 * curve['accuracy'][-1]:.2f} ({step}{table})"


def seed_summaries(workspace: Path) -> dict[int, dict]:
    """The full-test-set summaries of every seed of a k=1 row: the shipped run (seed 0) and the extra seeds."""
    runs = {}
    shipped = read_json(workspace / "pretrained" / "logs" / "k1" / "summary.json")
    if shipped is not None:
        runs[0] = shipped
    for path in sorted((workspace / "pretrained" / "seeds").glob("k1-seed*.summary.json")):
        runs[int(path.name[len("k1-seed"):-len(".summary.json")])] = read_json(path)
    return runs


def spread_table() -> str:
    """Mean ± standard deviation over seeds of the k=1 rows that have more than one seed."""
    lines = ["| network (k=1) | seeds | paper: ANN | ours: ANN, mean ± sd | range | paper inside? "
             "| paper: lossless step (logs; table) | ours: lossless steps | inside? | SNN = ANN, 0 mismatched |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for workspace, label, paper_ann, _, table_step in ROWS:
        runs = seed_summaries(ROOT / workspace)
        if len(runs) < 2:
            continue
        ann = [100 * run["ann_accuracy"] for run in runs.values()]
        steps = [run["lossless_step"] for run in runs.values()]
        curve = paper_curves(workspace).get(1)
        logs_step = settled_step(curve["accuracy"]) if curve is not None else table_step
        steps_inside = any(min(steps) <= s <= max(steps) for s in (logs_step, table_step))
        exact = all(run["mismatched_neurons"] == 0 and run["agreement"] == 1.0
                    and run["snn_accuracy"][-1] == run["ann_accuracy"] for run in runs.values())
        lines.append(
            f"| {label} | {', '.join(map(str, runs))} | {paper_ann:.2f} | {statistics.mean(ann):.2f} ± "
            f"{statistics.stdev(ann):.2f} | {min(ann):.2f}–{max(ann):.2f} | "
            f"{'yes' if min(ann) <= paper_ann <= max(ann) else 'no'} | {logs_step}; {table_step} | "
            f"{min(steps)}–{max(steps)} | {'yes' if steps_inside else 'no'} "
            f"| {'all seeds' if exact else 'NO'} |")
    return "\n".join(lines)


def table() -> str:
    lines = ["| network | k | paper: ANN | original logs: SNN (step) | ours: epochs | ANN | SNN (T) | lossless step "
             "| agreement | mismatched neurons | float32 near-ties | spikes / image | SOPs / image | test images |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for workspace, label, paper_ann, paper_fp32, table_step in ROWS:
        ws = ROOT / workspace
        curves = paper_curves(workspace)
        for k in (0, 1, 2):
            path = ws / "pretrained" / "logs" / f"k{k}" / "summary.json"
            summary = read_json(path)
            ann = f"{paper_ann:.2f}" if k == 1 else "–"
            paper = f"| {label} | {k} | {ann} | {paper_snn(curves.get(k), table_step if k == 1 else None)} "
            row = None if summary is None else summary_row(summary, path, read_json(
                ws / "pretrained" / f"k{k}.history.json"))
            lines.append(paper + (row or "| not run | | | | | | | | | |"))
        fp32 = read_json(ws / "pretrained" / "fp32.history.json")
        try:
            epochs = epochs_of(fp32)
            fp32_acc = f"{100 * epochs[-1]['test_acc']:.2f}" if epochs and "test_acc" in epochs[-1] else "not run"
        except (AttributeError, KeyError, TypeError, ValueError, IndexError):
            fp32_acc = "?"
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


def readme_block() -> str:
    """What goes between the README's results markers: the table, then the spread over seeds."""
    return table() + "\n\nSpread over seeds, each on the full test set (`tools/train_seeds.sh`):\n\n" + spread_table()


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
    text = readme_block()
    if not args.write:
        print(text)
        return
    readme = ROOT / "README.md"
    content = readme.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(content):
        sys.exit(f"error: {readme} has no {START} ... {END} markers; add them where the table belongs")
    with signals.working():  # the README is written whole; a stop takes effect after it
        write_text(readme, pattern.sub(lambda _: f"{START}\n{text}\n{END}", content))


if __name__ == "__main__":
    main()
