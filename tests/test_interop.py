"""The converted network as a file of its own (``python -m common.convert export``) and the NumPy-only reader in
``examples/numpy_snn/``: it imports nothing of the package and reproduces the package's simulations and logs."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, load_script
from signalling import PATIENCE
from helpers import MIXED, random_images, random_weights

from common import checkpoint, convert, data, provenance, reference
from common.networks import MNIST_LENET

READER = ROOT / "examples" / "numpy_snn" / "numpy_snn.py"
SHIPPED_LOGS = ROOT / "MNIST" / "pretrained" / "logs" / "k1"
LOGS = ("accuracy.txt", "spike_num.txt", "spike_collect.txt", "sop_num.txt")
BATCH = 200  # the shipped logs' batch: one line per batch and step


@pytest.fixture(scope="module")
def reader():
    return load_script(READER)


@pytest.fixture(scope="module")
def mnist_k1(tmp_path_factory):
    """The shipped MNIST LeNet k=1, exported by the command line."""
    path = tmp_path_factory.mktemp("export") / "mnist_k1_snn.safetensors"
    done = subprocess.run([sys.executable, "-m", "common.convert", "export", str(ROOT / "MNIST" / "pretrained" /
                                                                                  "k1.npz"), str(path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=PATIENCE)
    assert done.returncode == 0, done.stderr
    return path


def test_the_reader_imports_only_numpy_and_the_standard_library():
    tree = ast.parse(READER.read_text())
    modules = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    modules |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert modules - {"__future__"} <= {"argparse", "collections", "gzip", "json", "math", "pathlib", "numpy"}


def test_the_file_holds_the_folded_network_and_describes_its_layers(mnist_k1):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    sn = convert.convert(MNIST_LENET, 1, checkpoint.load(ROOT / "MNIST" / "pretrained" / "k1.npz", MNIST_LENET, 1))
    tensors = load_file(mnist_k1)
    for i, layer in enumerate(sn.layers, start=1):
        for name in ("kernel", "scale", "bias"):
            np.testing.assert_array_equal(tensors[f"conv{i}/{name}"], getattr(layer, name))
    np.testing.assert_array_equal(tensors["output/weights"], sn.output_weights)
    with safe_open(mnist_k1, framework="numpy") as f:
        meta = f.metadata()
    description = json.loads(meta["description"])
    assert meta["format"] == convert.SNN_FORMAT
    assert meta["source_sha256"] == provenance.sha256(ROOT / "MNIST" / "pretrained" / "k1.npz")
    assert (description["network"], description["k"], description["input"]["times"]) == ("mnist_lenet", 1, 2)
    assert [layer["output_shape"] for layer in description["layers"]] == [list(s) for s in MNIST_LENET.shapes()[1:]]
    assert (description["neuron"]["rule"], description["neuron"]["spike_min"]) == ("lossless", -1)


@pytest.mark.parametrize("rule", ["lossless", "no_negative"])
def test_the_reader_simulates_as_the_reference_does(reader, tmp_path, rule):
    rng = np.random.default_rng(3)
    sn = convert.convert(MIXED, 1, random_weights(MIXED, rng))
    x = random_images(MIXED, 4, rng)
    convert.export_snn(sn, tmp_path / "mixed.safetensors", rule)
    model = reader.load(tmp_path / "mixed.safetensors")
    ours = reference.simulate(sn, x * np.float32(2), 6, rule=rule)
    run = reader.simulate(model, x, 6)
    np.testing.assert_array_equal(run["predictions"], ours.predictions)
    np.testing.assert_array_equal(run["spikes"], ours.spikes.sum(axis=1))
    np.testing.assert_array_equal(run["net"], ours.net.sum(axis=1))
    np.testing.assert_array_equal(run["synops"], ours.synops)
    for counts, expected in zip(run["counts"], ours.counts):
        np.testing.assert_array_equal(counts, expected)
    if rule == "lossless":  # settled: every count is the exact ANN's level
        levels, predictions = reader.ann(model, x)
        assert all(np.array_equal(a, b) for a, b in zip(levels, ours.counts))
        np.testing.assert_array_equal(predictions, ours.predictions[-1])


def test_the_original_rule_and_fp32_checkpoints_are_refused_in_one_line(tmp_path):
    for args in (["MNIST/pretrained/fp32.npz", str(tmp_path / "x.safetensors")],
                 [str(tmp_path / "missing.npz"), str(tmp_path / "x.safetensors")]):
        done = subprocess.run([sys.executable, "-m", "common.convert", "export", *args], capture_output=True,
                              text=True, cwd=ROOT, timeout=PATIENCE)
        assert done.returncode == 1 and done.stderr.count("\n") == 1 and done.stderr.startswith("error: cannot export")
    with pytest.raises(ValueError, match="only level rules"):
        convert.spike_range("original")
    assert not (tmp_path / "x.safetensors").exists()


def reader_logs(reader, model, images: int) -> dict[str, list[int]]:
    """The four logs of the first ``images`` MNIST test images, as the reader's simulation gives them."""
    test = data.load_split("mnist", "test", [ROOT / "MNIST" / "data"], download=False)
    logs = {name: [] for name in LOGS}
    for start in range(0, images, BATCH):
        run = reader.simulate(model, test.x[start:start + BATCH], 20)
        correct = run["predictions"] == test.y[start:start + BATCH]
        logs["accuracy.txt"] += correct.sum(axis=1).tolist()
        for name, key in zip(LOGS[1:], ("spikes", "net", "synops")):
            logs[name] += run[key].sum(axis=1).cumsum().tolist()
    return logs


def shipped(name: str, lines: int) -> list[int]:
    return [int(v) for v in (SHIPPED_LOGS / name).read_text().split()[:lines]]


def test_the_reader_reproduces_the_shipped_mnist_k1_logs_of_the_first_batch(reader, mnist_k1):
    logs = reader_logs(reader, reader.load(mnist_k1), BATCH)
    for name in LOGS:
        assert logs[name] == shipped(name, 20), name


@pytest.mark.slow
def test_the_reader_reproduces_every_shipped_mnist_k1_log_line(reader, mnist_k1):
    logs = reader_logs(reader, reader.load(mnist_k1), 10_000)
    for name in LOGS:
        assert logs[name] == shipped(name, 1000), name


@pytest.mark.slow
def test_the_reader_command_line_writes_the_shipped_logs(mnist_k1, tmp_path):
    mnist = ROOT / "MNIST" / "data" / "mnist"
    done = subprocess.run([sys.executable, str(READER), str(mnist_k1),
                           "--images", str(mnist / "t10k-images-idx3-ubyte.gz"),
                           "--labels", str(mnist / "t10k-labels-idx1-ubyte.gz"),
                           "--num_images", "400", "--log_dir", str(tmp_path)], capture_output=True, text=True,
                          timeout=PATIENCE)
    assert done.returncode == 0, done.stderr
    assert "agreement with the exact ANN: 1.0000 of 400 images" in done.stdout
    for name in LOGS:
        assert [int(v) for v in (tmp_path / name).read_text().split()] == shipped(name, 40), name
