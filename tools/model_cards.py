"""Model cards of the shipped networks, the checksums of every shipped weight file and the SpikingJelly tables,
from the shipped records.

    python tools/model_cards.py            # say which files are out of date (exit 1 if any)
    python tools/model_cards.py --write    # write <workspace>/pretrained/README.md, SHA256SUMS and the tables

A card is a README in Hugging Face's model-card layout: YAML front matter (library, licence, dataset, metrics:
ANN and SNN accuracy, lossless step, agreement), then the files with their SHA-256, every figure with the
command that reproduces it, how the weights were trained (the commands their history records) and the limits.
It is drawn from ``<workspace>/pretrained/``: the weights, their ``*.history.json`` and the spiking runs'
``logs/**/summary.json`` (``tools/make_results.sh`` writes them, then this). ``SHA256SUMS`` at the repository's
root lists every shipped ``.npz`` (``sha256sum -c SHA256SUMS``). The SpikingJelly comparisons
(``<workspace>/pretrained/spikingjelly/k1.json``, written by ``examples/spikingjelly/compare.py``) become the table
of README's "What negative spikes buy" and the per-step table of docs/interop.md, between
:data:`SPIKINGJELLY_MARKERS`.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from common import signals  # noqa: E402

if __name__ == "__main__":
    signals.start_program()  # first: a stop during the imports below ends the program with its line

from results_table import ROWS, read_json  # noqa: E402

from common.provenance import sha256  # noqa: E402
from common.fsutil import write_text  # noqa: E402
from common.history import trained_for, training_spans  # noqa: E402
from common.networks import NETWORKS  # noqa: E402

CHECKSUMS = ROOT / "SHA256SUMS"
CARD = "README.md"  # Hugging Face reads a model's card from the README of its folder
FULL_TEST_SET = 10_000  # MNIST, FashionMNIST and CIFAR-10 each have 10,000 test images
DATASETS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR-10"}
SPIKINGJELLY_MARKERS = ("<!-- spikingjelly:start -->", "<!-- spikingjelly:end -->")
SPIKINGJELLY_STEPS = (1, 2, 3, 4, 5, 10, 15, 20)  # the steps of docs/interop.md's per-step table
# flags of a shipped run that write the shipped folder; a user's run leaves them out and writes its own figs/
SHIPPED_ONLY_FLAGS = ("--log_dir", "--replace_logs")


def weight_files() -> list[Path]:
    """Every shipped weight file, in a stable order."""
    return sorted(ROOT.glob("**/pretrained/*.npz"))


def checksums() -> str:
    """``SHA256SUMS``: one ``<sha256>  <path from the root>`` line per shipped weight file, as ``sha256sum`` writes."""
    return "".join(f"{sha256(path)}  {path.relative_to(ROOT).as_posix()}\n" for path in weight_files())


def user_command(command: str) -> str:
    """A recorded command line as a user would type it: ``python``, without the flags that write shipped folders."""
    words = shlex.split(command)
    words[0] = "python"
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in SHIPPED_ONLY_FLAGS:
            skip = True
        elif not word.startswith(tuple(f"{flag}=" for flag in SHIPPED_ONLY_FLAGS)):
            kept.append(word)
    return shlex.join(kept)


def script(workspace: str, prefix: str) -> str:
    """The workspace's ``Quant_*``, ``FP32_*`` or ``Spiking_*`` script, from the root."""
    return next((ROOT / workspace).glob(f"{prefix}_*.py")).relative_to(ROOT).as_posix()


def level_name(level: str) -> str:
    return "FP32" if level == "fp32" else f"k={level[1:]}"


def runs(workspace: str) -> list[dict]:
    """One entry per shipped weight file of ``workspace``: its level, history and spiking runs' summaries."""
    folder = ROOT / workspace / "pretrained"
    entries = []
    for path in sorted(folder.glob("*.npz"), key=lambda p: (p.stem == "fp32", p.stem)):
        entries.append({"level": path.stem, "path": path, "history": read_json(folder / f"{path.stem}.history.json"),
                        "summary": read_json(folder / "logs" / path.stem / "summary.json"),
                        "no_negative": read_json(folder / "logs" / "no_negative" / path.stem / "summary.json")})
    return entries


def ann_accuracy(entry: dict) -> float | None:
    """The exact ANN's test accuracy: the spiking run's, else (FP32) the last epoch's test accuracy."""
    if entry["summary"]:
        return entry["summary"]["ann_accuracy"]
    epochs = (entry["history"] or {}).get("epochs", [])
    return epochs[-1].get("test_acc") if epochs else None


def front_matter(network: str, dataset: str, entries: list[dict]) -> str:
    """The YAML front matter: what the Hub shows and indexes."""
    lines = ["---", "library_name: negspike", "license: mit", "tags:", "- spiking-neural-networks",
             "- ann-to-snn-conversion", "- negative-spikes", "- quantization", "- tensorflow",
             f"datasets:\n- {dataset}", "metrics:\n- accuracy", "model-index:", f"- name: negspike-{network}",
             "  results:"]
    for entry in entries:
        summary, ann = entry["summary"], ann_accuracy(entry)
        if ann is None:
            continue
        name = level_name(entry["level"])
        metrics = [("accuracy", f"ANN accuracy ({name})", round(100 * ann, 2))]
        if summary:
            metrics += [("accuracy", f"SNN accuracy ({name}, T={summary['time_steps']})",
                         round(100 * summary["snn_accuracy"][-1], 2)),
                        ("lossless_step", f"lossless step ({name})", summary["lossless_step"]),
                        ("agreement", f"SNN-ANN agreement ({name})", summary["agreement"]),
                        ("mismatched_neurons", f"mismatched neurons ({name})", summary["mismatched_neurons"])]
        images = summary["num_samples"] if summary else FULL_TEST_SET
        lines += ["  - task:", "      type: image-classification", "      name: Image classification",
                  "    dataset:", f"      name: {DATASETS[dataset]}", f"      type: {dataset}", "      split: test",
                  f"      args: {{first_images: {images}}}", "    metrics:"]
        lines += [f"    - type: {kind}\n      name: {text}\n      value: {value}" for kind, text, value in metrics]
    return "\n".join(lines + ["---"])


def card(workspace: str, label: str) -> str | None:
    """The model card of one workspace's shipped networks; None if it ships no weights."""
    entries = runs(workspace)
    if not entries:
        return None
    network = NETWORKS[read_json(ROOT / workspace / "pretrained" / f"{entries[0]['level']}.history.json")
                       ["runs"][0]["settings"]["network"]]
    dataset = network.dataset
    quant, fp32 = script(workspace, "Quant"), script(workspace, "FP32")
    up = "../" * (len(Path(workspace).parts) + 1)  # from <workspace>/pretrained/ to the root
    text = [front_matter(network.name, dataset, entries), "",
            f"# {label}: quantized ANNs converted to spiking networks with negative spikes", "",
            f"The shipped weights of `{workspace}/` in [negspike]({up}README.md), a "
            "reproduction of *Towards a Lossless Conversion for Spiking Neural Networks with Negative Spike "
            "Dynamics*: the quantized ANN (k-level activations), converted so that each hidden neuron fires +1 and "
            "-1 spikes and ends at the ANN's activation exactly. Generated by `python tools/model_cards.py --write` "
            "from the records beside it; do not edit.", "",
            "## Files", "", "| file | holds | SHA-256 |", "|---|---|---|"]
    for entry in entries:
        path = entry["path"]
        level = level_name(entry["level"])
        holds = "full-precision baseline" if entry["level"] == "fp32" else f"quantized ANN, {level}"
        text.append(f"| `{path.name}` | {holds}, {trained_for(entry['history']) or 'history missing'} "
                    f"| `{sha256(path)}` |")
    text += ["", f"Every shipped weight file's checksum is in [SHA256SUMS]({up}SHA256SUMS)"
             " (`sha256sum -c SHA256SUMS`). The format: [Checkpoints]("
             f"{up}docs/reliability.md); as safetensors: `python -m common.checkpoint "
             f"export {workspace}/pretrained/k1.npz k1.safetensors` ([Sharing]("
             f"{up}docs/interop.md)).", "",
             "## Results, and the command behind each", "",
             "| weights | ANN | SNN (T) | lossless step | agreement | mismatched neurons | SNN without negative spikes "
             "| test images |", "|---|---|---|---|---|---|---|---|"]
    commands = []
    for entry in entries:
        s, ann, ablation = entry["summary"], ann_accuracy(entry), entry["no_negative"]
        if ann is None:
            continue
        weights = f"`{entry['path'].name}`"
        if s is None:
            text.append(f"| {weights} | {100 * ann:.2f} % | | | | | | {FULL_TEST_SET:,} |")
        else:
            without = (f"{100 * ablation['snn_accuracy'][-1]:.2f} %, agreement {ablation['agreement']:.4f}"
                       if ablation else "")
            text.append(f"| {weights} | {100 * ann:.2f} % | {100 * s['snn_accuracy'][-1]:.2f} % ({s['time_steps']}) "
                        f"| {s['lossless_step']} | {s['agreement']:.4f} | {s['mismatched_neurons']:,} | {without} "
                        f"| first {s['num_samples']:,} |")
        relative = entry["path"].relative_to(ROOT).as_posix()
        k_flag = "" if entry["level"] == "fp32" else f" --k {entry['level'][1:]}"
        ann_script = fp32 if entry["level"] == "fp32" else quant
        commands.append(f"python {ann_script}{k_flag} --mode inference --checkpoint {relative}   "
                        f"# {level_name(entry['level'])}: ANN, 'test accuracy: {ann:.4f}'")
        if s is not None:
            commands.append(f"{user_command(s['run']['command'])}   # SNN, lossless step, agreement, mismatched")
        if ablation is not None:
            commands.append(f"{user_command(ablation['run']['command'])}   # without negative spikes")
    text += ["", "```bash", *commands, "```", "",
             "ANN: the exact quantized ANN's test accuracy. SNN: after the last of T time steps, the image presented "
             "at the first. Lossless step: the first step from which the SNN is as accurate as the ANN through the "
             "last. Agreement: the fraction of images both classify alike. Mismatched neurons: hidden neurons whose "
             "final net spike count differs from the ANN's activation times 2^k, over all images. Each command "
             "writes its run under the workspace's `figs/` (the shipped logs are in `pretrained/logs/`).", "",
             "## Training", "", "Recorded in each weight file's history (Adam, batch 200; the commands as run, then "
             "`python -m common.checkpoint export` without the optimizer state):", "", "```bash"]
    for entry in entries:
        recorded = (entry["history"] or {}).get("runs", [])
        if recorded:
            n = len(recorded) - 1
            resumed = f"   # resumed {'once' if n == 1 else f'{n} times'}" if n else ""
            text.append(user_command(recorded[0]["command"]) + resumed)
    text += ["```", "", "What the training cost, by CPU and precision (wall time as recorded per epoch, beside "
             "whatever else the machine ran; bfloat16 where the CPU multiplies it in hardware):", ""]
    text += [f"- `{entry['path'].name}`: " + "; ".join(map(str, spans)) for entry in entries
             if (spans := training_spans(entry["history"]))]
    text += ["", "## Limits", ""]
    paper = next(row for row in ROWS if row[0] == workspace)
    text += [f"- {line}" for line in limits(workspace, entries)]
    text += [f"- One training run (seed 0) per weight file. The paper reports {paper[2]:.2f} % (k=1) and "
             f"{paper[3]:.2f} % (FP32); the spread over seeds and how these runs compare: [Results in detail]"
             f"({up}docs/results.md)."]
    text += ["- Exact by construction on any CPU and batch size, for these weights; the accuracy itself is what "
             "the quantized ANN reaches, no more ([Exact by construction]"
             f"({up}docs/exactness.md)).", ""]
    return "\n".join(text)


def limits(workspace: str, entries: list[dict]) -> list[str]:
    """What the figures do not show, read off the records."""
    lines = []
    for entry in entries:
        s, history = entry["summary"], entry["history"] or {}
        epochs = history.get("epochs", [])
        name = level_name(entry["level"])
        if s is not None and s["test_images"] < FULL_TEST_SET:
            lines.append(f"{name}: only {s['test_images']:,} of the {FULL_TEST_SET:,} test images were at hand; the "
                         f"shipped spiking run used the first {s['num_samples']:,} of them, so its figures carry "
                         f"the sampling error of {s['num_samples']:,} images.")
        elif s is not None and s["num_samples"] < s["test_images"]:
            lines.append(f"{name}: the shipped spiking run used the first {s['num_samples']:,} test images.")
        if epochs and epochs[-1].get("train_images", 50_000) < 50_000:
            lines.append(f"{name}: trained for {trained_for(history)} only, far from the paper's schedule; its "
                         f"accuracy is not the paper's.")
        if s is not None and s["settle_steps"].get("unsettled"):
            lines.append(f"{name}: {s['settle_steps']['unsettled']} images were still spiking at step "
                         f"{s['time_steps']}; mismatched neurons count the settled ones.")
    return lines


def spikingjelly_records() -> list[tuple[str, dict]]:
    """``(label, record)`` of every shipped SpikingJelly comparison."""
    records = []
    for workspace, label, *_ in ROWS:
        record = read_json(ROOT / workspace / "pretrained" / "spikingjelly" / "k1.json")
        if record is not None:
            records.append((label, record))
    return records


def share(part: int, whole: int) -> str:
    return f"{part:,} of {whole:,}" + (f" ({100 * part / whole:.0f} %)" if part >= whole / 100 else "")


def spikingjelly_table() -> str:
    """README's rows: SpikingJelly with the negative-spike neuron and with its own IF neurons, per network."""
    records = spikingjelly_records()
    if not records:
        return "No SpikingJelly comparison is shipped (`tools/make_results.sh` with the bench extra)."
    lines = ["| network (k=1) | ANN | SpikingJelly, negative spikes: SNN (lossless step) | agreement | mismatched "
             "neurons | SpikingJelly `IFNode`: SNN | agreement | mismatched neurons |",
             "|---|---|---|---|---|---|---|---|"]
    for label, record in records:
        _, negative, plain = record["rows"]
        lines.append(f"| {label} | {100 * record['ann_accuracy']:.2f} % | "
                     f"{100 * negative['accuracy_per_step'][-1]:.2f} % ({negative['lossless_step'] or 'never'}) | "
                     f"{negative['agreement']:.4f} | "
                     f"{share(negative['mismatched_neurons'], negative['hidden_neurons'])} | "
                     f"{100 * plain['accuracy_per_step'][-1]:.2f} % | {plain['agreement']:.4f} | "
                     f"{share(plain['mismatched_neurons'], plain['hidden_neurons'])} |")
    images = {record["images"] for _, record in records}
    versions = {f"SpikingJelly {r['versions']['spikingjelly']}, PyTorch {r['versions']['torch']}" for _, r in records}
    return "\n".join(lines) + (f"\n\nFirst {', '.join(f'{n:,}' for n in sorted(images))} test images, "
                               f"T={records[0][1]['time_steps']}, {', '.join(sorted(versions))} (float32, CPU).")


def spikingjelly_steps() -> str:
    """docs/interop.md's table: accuracy after chosen steps and the mismatched neurons per layer, per simulator."""
    records = spikingjelly_records()
    if not records:
        return "No SpikingJelly comparison is shipped."
    steps = [t for t in SPIKINGJELLY_STEPS if t <= records[0][1]["time_steps"]]
    lines = ["| network (k=1) | simulator | " + " | ".join(f"step {t}" for t in steps)
             + " | lossless step | agreement | mismatched neurons per hidden layer | in images |",
             "|---|---|" + "---|" * (len(steps) + 4)]
    for label, record in records:
        for row in record["rows"]:
            per_layer = ", ".join(f"{n:,}" for n in row["mismatched_neurons_per_layer"])
            lines.append(f"| {label} | {row['simulator']} | "
                         + " | ".join(f"{100 * row['accuracy_per_step'][t - 1]:.2f}" for t in steps)
                         + f" | {row['lossless_step'] or 'never'} | {row['agreement']:.4f} | {per_layer} "
                         f"| {row['images_with_mismatched_neurons']:,} |")
        lines.append(f"| {label} | exact ANN | " + " | ".join(f"{100 * record['ann_accuracy']:.2f}" for _ in steps)
                     + " | | | | |")
    return "\n".join(lines)


def with_block(path: Path, block: str) -> str:
    """The text of ``path`` with ``block`` between the SpikingJelly markers."""
    start, end = SPIKINGJELLY_MARKERS
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = path.read_text()
    if not pattern.search(text):
        sys.exit(f"error: {path} has no {start} ... {end} markers; add them where the SpikingJelly table belongs")
    return pattern.sub(lambda _: f"{start}\n{block}\n{end}", text)


def outputs() -> dict[Path, str]:
    """Every generated file and its content."""
    files = {CHECKSUMS: checksums(), ROOT / "README.md": with_block(ROOT / "README.md", spikingjelly_table()),
             ROOT / "docs" / "interop.md": with_block(ROOT / "docs" / "interop.md", spikingjelly_steps())}
    for workspace, label, *_ in ROWS:
        text = card(workspace, label)
        if text is not None:
            files[ROOT / workspace / "pretrained" / CARD] = text
    return files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python tools/model_cards.py", description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="write the cards and SHA256SUMS (default: check them)")
    args = parser.parse_args(argv)
    files = outputs()
    stale = [path for path, text in files.items() if not path.is_file() or path.read_text() != text]
    with signals.working():  # every card is written whole; a stop takes effect after them
        for path in stale:
            if args.write:
                write_text(path, files[path])
            print(f"{'wrote' if args.write else 'out of date:'} {path.relative_to(ROOT)}")
    if stale and not args.write:
        sys.exit("error: model cards or SHA256SUMS are out of date; run python tools/model_cards.py --write")


if __name__ == "__main__":
    main()
