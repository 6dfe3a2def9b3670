"""examples/spikingjelly: the negative-spike IF neuron in SpikingJelly, always in a process of its own.

This process holds TensorFlow, so every test runs the example in a subprocess and reads back plain arrays.
Skipped, saying why, where PyTorch or SpikingJelly is not installed (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from signalling import PATIENCE
from helpers import MIXED, random_images, random_weights

from common import convert, reference
from common.networks import CIFAR_CNN1, MNIST_LENET

EXAMPLE = ROOT / "examples" / "spikingjelly"
MNIST_DATA = ROOT / "MNIST" / "data" / "mnist"
MISSING = [package for package in ("torch", "spikingjelly") if importlib.util.find_spec(package) is None]
needs_spikingjelly = pytest.mark.skipif(bool(MISSING), reason=f"{' and '.join(MISSING)} not installed: "
                                        "pip install -e '.[bench]' (CI installs it)")
# runs the example's two networks on a model and images, and saves every layer's counts and the predictions
RUN_BOTH = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import spikingjelly_snn as sj
model = sj.load(sys.argv[2])
x = np.load(sys.argv[3])
out = {}
for kind in sj.NEURONS:
    run = sj.simulate(sj.build(model, kind), x, model[0]["input"]["times"], int(sys.argv[5]))
    out[kind + "/predictions"] = run["predictions"]
    out.update({f"{kind}/counts{i}": counts for i, counts in enumerate(run["counts"])})
np.savez(sys.argv[4], **out)
"""


def run_both(sn, x: np.ndarray, steps: int, tmp_path) -> dict[str, np.ndarray]:
    convert.export_snn(sn, tmp_path / "snn.safetensors")
    np.save(tmp_path / "x.npy", x)
    done = subprocess.run([sys.executable, "-c", RUN_BOTH, str(EXAMPLE), str(tmp_path / "snn.safetensors"),
                           str(tmp_path / "x.npy"), str(tmp_path / "out.npz"), str(steps)],
                          capture_output=True, text=True, timeout=PATIENCE)
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "out.npz") as out:
        return dict(out)


def test_the_example_imports_neither_tensorflow_nor_this_package():
    for path in EXAMPLE.glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not {name for name in names if name.split(".")[0] in ("tensorflow", "common")}, path.name


@needs_spikingjelly
def test_the_example_refuses_a_process_that_holds_tensorflow():
    code = f"import sys, tensorflow; sys.path.insert(0, {str(EXAMPLE)!r}); import spikingjelly_snn"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=PATIENCE)
    assert done.returncode == 1 and "run it in a process of its own" in done.stderr


@needs_spikingjelly
@pytest.mark.parametrize("network", [MIXED, MNIST_LENET, CIFAR_CNN1], ids=["mixed", "valid", "same_padding"])
def test_negative_spikes_reach_the_exact_levels_and_if_neurons_follow_the_first_layer(network, tmp_path):
    rng = np.random.default_rng(11)
    sn = convert.convert(network, 1, random_weights(network, rng))
    x = random_images(network, 2 if network is CIFAR_CNN1 else 4, rng)
    steps = 6 if network is CIFAR_CNN1 else 12
    out = run_both(sn, x, steps, tmp_path)
    exact = reference.simulate(sn, x * np.float32(2), steps)
    # negative spikes: every neuron ends at the reference's count, but where float32 rounds across a level
    counts = [out[f"negative_spike_if/counts{i}"] for i in range(len(sn.layers))]
    differ = sum(int((c != e).sum()) for c, e in zip(counts, exact.counts))
    assert differ <= 1e-3 * sum(c.size for c in counts)
    if differ == 0:
        np.testing.assert_array_equal(out["negative_spike_if/predictions"], exact.predictions)
    # SpikingJelly's IF: layer 1's input arrives whole at t=0, so it fires one spike a step until it reaches the level
    layer = sn.layers[0]
    levels = reference.level_of(reference.conv2d(x * np.float32(2), layer.kernel, layer.conv), layer.scale, layer.bias)
    first = out["spikingjelly_if/counts0"]
    assert (first == np.minimum(levels, steps)).mean() > 0.999


@needs_spikingjelly
@pytest.mark.parametrize("images", [50, pytest.param(1000, marks=pytest.mark.slow)], ids=lambda n: f"{n}_images")
def test_the_comparison_on_the_shipped_mnist_k1(images, tmp_path):
    model = tmp_path / "mnist_k1_snn.safetensors"
    subprocess.run([sys.executable, "-m", "common.convert", "export", str(ROOT / "MNIST" / "pretrained" / "k1.npz"),
                    str(model)], check=True, capture_output=True, cwd=ROOT, timeout=PATIENCE)
    done = subprocess.run([sys.executable, str(EXAMPLE / "compare.py"), str(model),
                           "--images", str(MNIST_DATA / "t10k-images-idx3-ubyte.gz"),
                           "--labels", str(MNIST_DATA / "t10k-labels-idx1-ubyte.gz"),
                           "--num_images", str(images), "--json", str(tmp_path / "out.json")],
                          capture_output=True, text=True, timeout=PATIENCE)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    exact, negative, plain = result["rows"]
    assert exact["agreement"] == 1.0 and exact["mismatched_neurons"] == 0
    assert negative["agreement"] >= 0.99 and negative["mismatched_neurons"] <= 1e-4 * negative["hidden_neurons"]
    assert plain["mismatched_neurons"] > 100 * max(negative["mismatched_neurons"], 1)  # no negative spikes: far off
    if images == 1000:  # the IF neurons' figures of the README
        assert plain["agreement"] < 0.96 and negative["agreement"] == 1.0
