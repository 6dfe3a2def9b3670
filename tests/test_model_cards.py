"""The model cards (``<workspace>/pretrained/README.md``) and ``SHA256SUMS`` are current and true."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT, load_script

from common.provenance import sha256


@pytest.fixture(scope="module")
def tool():
    return load_script(ROOT / "tools" / "model_cards.py")


@pytest.fixture(scope="module")
def generated(tool) -> dict:
    return tool.outputs()


def test_the_cards_and_the_checksums_are_the_generated_ones(generated):
    assert len(generated) >= 5  # SHA256SUMS and a card per workspace that ships weights
    for path, text in generated.items():
        assert path.is_file() and path.read_text() == text, \
            f"{path.relative_to(ROOT)} is out of date: run python tools/model_cards.py --write"


def test_the_checksum_list_names_every_shipped_weight_file_with_its_sha256():
    listed = {}
    for line in (ROOT / "SHA256SUMS").read_text().splitlines():
        digest, name = re.fullmatch(r"([0-9a-f]{64})  (\S+)", line).groups()
        listed[name] = digest
    shipped = {p.relative_to(ROOT).as_posix() for p in ROOT.glob("**/pretrained/*.npz")}
    assert set(listed) == shipped
    for name, digest in listed.items():
        assert sha256(ROOT / name) == digest, f"{name} changed since SHA256SUMS was written"


def test_each_card_has_the_model_card_front_matter_and_true_links(generated):
    yaml = pytest.importorskip("yaml")
    cards = [path for path in generated if path.name == "README.md" and path.parent.name == "pretrained"]
    assert {p.parent.parent.relative_to(ROOT).as_posix() for p in cards} >= {"MNIST", "FashionMNIST/LeNet"}
    for path in cards:
        text = path.read_text()
        front = yaml.safe_load(text.split("---\n")[1])
        assert front["library_name"] == "negspike" and front["license"] == "mit"
        results = front["model-index"][0]["results"]
        names = {metric["name"].split(" (")[0] for result in results for metric in result["metrics"]}
        assert {"ANN accuracy", "SNN accuracy", "lossless step", "SNN-ANN agreement"} <= names
        for target in re.findall(r"\]\(([^)#\s]+)", text):
            assert (path.parent / target).resolve().exists(), f"{path.relative_to(ROOT)}: {target}"
        for machine in ("/work/", "/root", "/tmp", "python3."):
            assert machine not in text
    cifar = (ROOT / "CIFAR10" / "CNN_1" / "pretrained" / "README.md").read_text()
    assert "only 1,000 of the 10,000 test images" in cifar and "--num_samples 200" in cifar


def test_the_shipped_spikingjelly_comparisons_say_what_negative_spikes_buy(tool):
    records = tool.spikingjelly_records()
    assert {label for label, _ in records} >= {"LeNet, MNIST", "LeNet, FashionMNIST"}
    for _, record in records:
        exact, negative, plain = record["rows"]
        assert (record["images"], record["time_steps"]) == (1000, 20)
        assert exact["agreement"] == 1.0 and exact["mismatched_neurons"] == 0
        assert negative["agreement"] == 1.0 and negative["lossless_step"] == exact["lossless_step"]
        assert negative["accuracy_per_step"] == exact["accuracy_per_step"]
        assert negative["mismatched_neurons"] <= 1e-5 * negative["hidden_neurons"]  # float32 near-ties only
        assert plain["agreement"] < 0.96 and plain["mismatched_neurons"] > 0.1 * plain["hidden_neurons"]
