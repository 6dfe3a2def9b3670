"""Test set-up: the repository root on sys.path, a quiet TensorFlow, shared fixtures."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from common import startup  # noqa: E402

startup.start(cpu_replicas=2)  # quietly, before any test imports TensorFlow; two CPU devices for --strategy mirrored


def load_script(path: Path) -> ModuleType:
    """The script at ``path`` (tools/, benchmarks/ and examples/ are no packages) as a module, run once per call."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def idx_root(tmp_path: Path) -> Path:
    """A data root holding a small, learnable MNIST-format dataset (1,200 + 200 images)."""
    from helpers import write_idx_dataset

    write_idx_dataset(tmp_path / "data" / "mnist", 11_200, 200, np.random.default_rng(7))
    return tmp_path / "data"


@pytest.fixture
def signal_on_call(monkeypatch) -> Callable:
    """``signal_on_call(owner, name, call=1, signum=SIGINT)``: the ``call``-th call (from 1) of ``owner.name``
    first sends ``signum`` to this process, as Ctrl-C or ``kill`` would in the middle of a run; returns the
    original, to put back. A method of a class (``snn.FastSimulator, "simulate"``) or a module's function."""
    def arm(owner: object, name: str, call: int = 1, signum: int = signal.SIGINT) -> Callable:
        real = getattr(owner, name)
        calls = []

        def signal_then_call(*args, **kwargs):
            calls.append(1)
            if len(calls) == call:
                os.kill(os.getpid(), signum)
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, signal_then_call)
        return real
    return arm
