"""The converted network in SpikingJelly: a negative-spike IF neuron written as SpikingJelly writes neurons.

Builds a multi-step SpikingJelly network from the file ``python -m common.convert export`` writes
(docs/interop.md), read by ``examples/numpy_snn/numpy_snn.py``. Imports PyTorch and SpikingJelly, and never
TensorFlow: the two must not share a process. Two neurons run on the same weights:

- :class:`NegativeSpikeIFNode`: an IF neuron (threshold 1, reset by subtraction) that also fires -1 when its
  potential falls below 0 while it has sent more +1 than -1 spikes; its net count then ends at the ANN's level.
- SpikingJelly's own ``neuron.IFNode`` (threshold 1, reset by subtraction): it cannot take a spike back.

Both start at the initial potential ``bias + 0.5 + 1e-5`` (in thresholds): a neuron whose potential reaches ``v``
then owes ``round(max(v, 0) + 1e-5)`` spikes, the level of the exported rule.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np

if "tensorflow" in sys.modules:  # the two frameworks' native libraries crash when loaded into one process
    raise ImportError("spikingjelly_snn imports PyTorch, and TensorFlow is already loaded in this process; run it in "
                      "a process of its own (benchmarks/snn_vs_others.py starts one)")
logging.getLogger("torch._library.triton").setLevel(logging.ERROR)  # "Triton not available": it is for GPUs
import torch  # noqa: E402
from spikingjelly.activation_based import functional, layer, neuron  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "numpy_snn"))
import numpy_snn  # noqa: E402 - the file's reader, beside this example

ROUNDING = 0.5 + 1e-5  # a potential v rounds to round(v + 1e-5) spikes: start half a threshold higher
NEURONS = ("negative_spike_if", "spikingjelly_if")


class NegativeSpikeIFNode(neuron.SimpleBaseNode):
    """Integrate-and-fire neuron with negative spikes, in multi-step or single-step mode.

    Args:
        v_threshold: the threshold; a spike of either sign moves the potential by it.
        step_mode: ``"m"`` (input ``(T, N, ...)``) or ``"s"``.

    It charges as an IF neuron, fires +1 at or above the threshold, and fires -1 below 0 while its net count
    is positive, so that a later inhibitory input takes back a spike sent too early. Both resets subtract
    ``spike * v_threshold``; ``count`` is the net number of spikes sent.
    """

    def __init__(self, v_threshold: float = 1.0, step_mode: str = "m"):
        super().__init__(v_threshold=v_threshold, v_reset=None, step_mode=step_mode)
        self.register_memory("count", 0.0)

    def neuronal_charge(self, x: torch.Tensor) -> None:
        self.v = self.v + x

    def neuronal_fire(self) -> torch.Tensor:
        up = self.v >= self.v_threshold
        down = (self.v < 0) & (torch.as_tensor(self.count) > 0)
        return up.to(self.v.dtype) - down.to(self.v.dtype)

    def neuronal_reset(self, spike: torch.Tensor) -> None:
        self.v = self.v - spike * self.v_threshold
        self.count = self.count + spike


class Potential(torch.nn.Module):
    """Synaptic currents in thresholds (times ``scale``), plus the initial potential at the first step."""

    def __init__(self, scale: np.ndarray, initial: np.ndarray):
        super().__init__()
        self.register_buffer("scale", torch.from_numpy(np.asarray(scale, np.float32))[:, None, None])
        self.register_buffer("initial", torch.from_numpy(np.asarray(initial, np.float32))[:, None, None])

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        current = current * self.scale
        current[0] += self.initial
        return current


def build(model: tuple[dict, dict[str, np.ndarray]], kind: str = "negative_spike_if") -> torch.nn.ModuleList:
    """The hidden layers as multi-step blocks (padding, ``layer.Conv2d``, :class:`Potential`, the neuron ``kind``,
    one of :data:`NEURONS`), then a ``layer.Linear`` readout over the last layer's spikes (channels first)."""
    description, t = model
    blocks = torch.nn.ModuleList()
    for spec in description["layers"]:
        name, c_in = spec["name"], spec["input_shape"][2]
        synapses = layer.Conv2d(c_in, spec["filters"], spec["kernel"], spec["stride"], bias=False, step_mode="m")
        with torch.no_grad():  # (kh, kw, in, out) to PyTorch's (out, in, kh, kw)
            synapses.weight.copy_(torch.from_numpy(np.ascontiguousarray(t[f"{name}/kernel"].transpose(3, 2, 0, 1))))
        (top, bottom), (left, right) = spec["pads"]
        pad = [layer.SeqToANNContainer(torch.nn.ZeroPad2d((left, right, top, bottom)))] if top + bottom + left + \
            right else []
        cell = NegativeSpikeIFNode() if kind == "negative_spike_if" else neuron.IFNode(v_reset=None, step_mode="m")
        blocks.append(torch.nn.Sequential(*pad, synapses, Potential(t[f"{name}/scale"], t[f"{name}/bias"] + ROUNDING),
                                          cell))
    h, w, c = description["layers"][-1]["output_shape"]
    classes = description["output"]["classes"]
    weights = t["output/weights"].reshape(h, w, c, classes).transpose(2, 0, 1, 3).reshape(-1, classes)  # NHWC->NCHW
    readout = layer.Linear(c * h * w, classes, bias=False, step_mode="m")
    with torch.no_grad():
        readout.weight.copy_(torch.from_numpy(np.ascontiguousarray(weights.T)))
    blocks.append(torch.nn.Sequential(layer.Flatten(step_mode="m"), readout))
    return blocks.eval()


def simulate(net: torch.nn.ModuleList, x: np.ndarray, times: float, time_steps: int,
             counts: bool = True) -> dict[str, np.ndarray]:
    """Run ``net`` on NHWC images ``x`` presented (times ``times``) at the first step, zeros after.

    Returns ``predictions`` ``(T, B)``, the argmax of the output accumulated to each step, and with ``counts``
    each hidden layer's net spike count per neuron (``counts``), NHWC as the exported file's layers."""
    functional.reset_net(net)
    with torch.no_grad():
        signal = torch.zeros((time_steps, len(x), *x.shape[3:], *x.shape[1:3]))
        signal[0] = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2) * np.float32(times)))
        totals = []
        for block in net[:-1]:
            signal = block(signal)
            if counts:
                totals.append(signal.sum(0).numpy().transpose(0, 2, 3, 1))
        output = net[-1](signal).cumsum(0)
    return {"predictions": output.argmax(-1).numpy(), "counts": totals}


def load(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The description and tensors of an exported network (the NumPy reader's :func:`numpy_snn.load`)."""
    return numpy_snn.load(path)
