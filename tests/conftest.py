"""Test set-up: the repository root on sys.path, a quiet TensorFlow, shared fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from common import startup  # noqa: E402

startup.start(cpu_replicas=2)  # quietly, before any test imports TensorFlow; two CPU devices for --strategy mirrored


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def idx_root(tmp_path: Path) -> Path:
    """A data root holding a small, learnable MNIST-format dataset (1,200 + 200 images)."""
    from helpers import write_idx_dataset

    write_idx_dataset(tmp_path / "data" / "mnist", 11_200, 200, np.random.default_rng(7))
    return tmp_path / "data"
