"""Plain records of a simulation, shared by the fast simulator and the NumPy reference."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class SimulationResult:
    """Per-step records of one batch (``T`` steps, ``L`` hidden layers, ``B`` samples)."""

    predictions: np.ndarray  # (T, B) argmax of the output potential after each step
    spikes: np.ndarray  # (T, L, B) |spikes| of each hidden layer in each step
    net: np.ndarray  # (T, L, B) net spikes (+1 minus -1) of each hidden layer in each step
    synops: np.ndarray  # (T, B) synaptic operations caused in each step
    counts: list[np.ndarray]  # final net spike count of every hidden neuron, (B, h, w, c) each
    output: np.ndarray  # (B, classes) final output potential
    settle: np.ndarray  # (B,) last step with any spike (0: none); -1 if still spiking at T
    layer_synops: np.ndarray | None = None  # (T, L, B) ``synops`` by the hidden layer whose spikes caused them

    @staticmethod
    def empty(hidden_shapes: list[tuple[int, int, int]], classes: int, batch: int,
              time_steps: int) -> SimulationResult:
        n_layers = len(hidden_shapes)
        return SimulationResult(
            predictions=np.zeros((time_steps, batch), np.int64),
            spikes=np.zeros((time_steps, n_layers, batch), np.int64),
            net=np.zeros((time_steps, n_layers, batch), np.int64),
            synops=np.zeros((time_steps, batch), np.int64),
            layer_synops=np.zeros((time_steps, n_layers, batch), np.int64),
            counts=[np.zeros((batch, *shape), np.float32) for shape in hidden_shapes],
            output=np.zeros((batch, classes), np.float32),
            settle=np.full(batch, -1, np.int64))


def first_quiet_step(spikes: np.ndarray) -> np.ndarray:
    """Index of the first step with no spike in any layer, per sample; -1 if none.

    ``spikes`` is ``(T, L, B)``. After a quiet step no neuron's input changes again, so the
    network is frozen: this is where a sample settles.
    """
    quiet = spikes.sum(axis=1) == 0
    return np.where(quiet.any(axis=0), quiet.argmax(axis=0), -1)
