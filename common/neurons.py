"""The neuron rules: what a spiking neuron emits at a step, each rule one small class in one registry.

A rule is chosen by name (``--neuron_rule``); :data:`RULES` is the registry the flag's choices
and help are drawn from, and :func:`register` adds a rule to it. Every rule declares the
:class:`Rule` attributes (``name``, ``help``, ``fast``, ``readout``). Two kinds, two protocols:

- **Level rules** (:class:`LevelRule`) fire from two integers: the neuron's *level*, the number
  of thresholds the exact potential of all its input so far has crossed
  (``round(relu(v) + 1e-5)``, the ANN's quantized activation times ``2^k`` once the input has
  settled), and its *count*, the net number of spikes it has sent. Their ``step`` is written
  once against a small array namespace ``xp`` (:class:`ArrayNamespace`: the arithmetic operators
  and ``xp.clip``): the reference simulator passes ``numpy``, the fast simulator
  :class:`common.snn.TensorFlowArrays`. The fast simulator runs every level rule exactly: it decides
  each level exactly (:mod:`common.exact_ann`) and the step is integer arithmetic in float32.
- **Membrane rules** (:class:`MembraneRule`, here only :class:`OriginalIF`) keep state per neuron:
  built per layer, ``reset(shape)`` per batch, ``step(current)`` with each step's synaptic current
  into a float64 membrane, as the original code did; only the reference simulator runs them.

Adding a rule: a class with the :class:`Rule` attributes and a ``step``, decorated with
``@register``. Imports no TensorFlow.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from common import registry
from common.spiking_network import SpikingLayer


class ArrayNamespace(Protocol):
    """The part of an array API a level rule may use besides the arithmetic operators: ``numpy``,
    ``tf.experimental.numpy`` or the fast simulator's :class:`common.snn.TensorFlowArrays` (``clip`` only)."""

    def clip(self, a: Any, low: float, high: float) -> Any: ...


class Rule:
    """What every rule declares: its ``--neuron_rule`` name and help, whether the fast simulator runs it
    (exactly), and how the output layer integrates (``exact``: :class:`common.exact_ann.ExactReadout`)."""

    name: ClassVar[str]
    help: ClassVar[str]
    fast: ClassVar[bool] = True
    readout: ClassVar[str] = "exact"


@runtime_checkable
class LevelRule(Protocol):
    """A rule whose spike depends only on the neuron's level and its net count: no state of its own.

    Both simulators run it; the fast one exactly."""

    @staticmethod
    def step(level: Any, count: Any, xp: ArrayNamespace = np) -> tuple[Any, Any]:
        """One time step of every neuron of a layer: returns ``(spike, new_count)``.

        Args:
            level: the neurons' levels (integers in float32), any shape.
            count: their net spike counts so far, the same shape.
            xp: the array namespace (:class:`ArrayNamespace`): ``numpy``, or the fast simulator's.
        """
        ...


@runtime_checkable
class MembraneRule(Protocol):
    """A rule with state per neuron: built for one layer and ``k``, reset per batch, stepped with the step's
    synaptic current. Only the reference simulator runs it."""

    def reset(self, shape: tuple[int, ...]) -> None: ...

    def step(self, current: np.ndarray) -> np.ndarray: ...


def is_level_rule(kind: type) -> bool:
    """Whether ``kind`` is a level rule: a rule that keeps no membrane (:class:`MembraneRule`) of its own."""
    return not issubclass(kind, MembraneRule)


RULES: dict[str, type[Rule]] = {}


def register(kind: type[Rule]) -> type[Rule]:
    """Add the rule ``kind`` to :data:`RULES` under its ``name`` (a class decorator); a second, different rule
    of the same name is refused with a ValueError."""
    return registry.add(RULES, kind.name, kind, "neuron rule")


@register
class NegativeSpikeIF(Rule):
    """Integrate-and-fire neuron that also fires negative spikes (this package's lossless rule).

    It fires +1 while it has signalled fewer crossings than it has made and -1 while it has
    signalled more, at most one spike per step, so once its input stops changing its net count
    equals its level: the ANN's activation times ``2^k``.
    """

    name = "lossless"
    help = "fire +1 or -1 toward the ANN's level of the exact potential (this package's rule)"

    @staticmethod
    def step(level: Any, count: Any, xp: ArrayNamespace = np) -> tuple[Any, Any]:
        spike = xp.clip(level - count, -1.0, 1.0)
        return spike, count + spike


@register
class PositiveSpikeIF(Rule):
    """The same neuron with its negative spikes removed (the ablation ``no_negative``).

    It fires +1 while its level is above its count and never -1, so a neuron whose level falls
    after it has fired (later input is inhibitory) keeps the spikes it sent: its count ends at
    the highest level it reached, not at the ANN's. This is conversion without negative spikes.
    """

    name = "no_negative"
    help = "the same neuron without negative spikes: +1 while its level is above its count, never -1 (the ablation)"

    @staticmethod
    def step(level: Any, count: Any, xp: ArrayNamespace = np) -> tuple[Any, Any]:
        spike = xp.clip(level - count, 0.0, 1.0)
        return spike, count + spike


@register
class OriginalIF(Rule):
    """The original code's rule (``spiking_ulils.Conv2d.forward``), for regenerating its logs.

    A float64 membrane ``mem`` sums the step's synaptic currents; a shadow ``mem_q`` starts
    at a per-channel ``bound`` half a threshold below the folded bias and moves one threshold
    per spike. With ``diff = max(mem, bound) - mem_q``, the neuron fires +1 if ``diff >
    threshold``, -1 if ``diff < -1e-5`` (in membrane units). ``threshold`` and ``bound`` are
    computed as the original did, in float32 from BatchNorm's statistics, then kept in float64.
    Only the reference simulator runs it; its output layer is the original's float64 product.
    """

    name = "original"
    help = "the original code's float64 membrane and shadow potential (runs on the reference simulator)"
    fast = False
    readout = "float64"

    def __init__(self, layer: SpikingLayer, k: int):
        if layer.batchnorm is None:
            raise ValueError("the original rule needs the layer's BatchNorm statistics")
        beta, gamma, mean, var = (np.asarray(a, np.float32) for a in layer.batchnorm)
        std = np.sqrt(var + np.float32(1e-5))
        threshold = np.float32(2 ** -k * 2 ** k) * std / gamma
        self.threshold = threshold.astype(np.float64)
        self.bound = ((np.float32(1 / 2 ** (k + 1)) - beta) * (np.float32(2 ** k) * std) / gamma
                      + np.float32(2 ** k) * mean - threshold).astype(np.float64)

    def reset(self, shape: tuple[int, ...]) -> None:
        self.mem = np.zeros(shape)
        self.mem_q = np.broadcast_to(self.bound, shape).copy()

    def step(self, current: np.ndarray) -> np.ndarray:
        """One time step of the layer's neurons for this step's synaptic ``current``: the spikes."""
        self.mem = self.mem + current
        diff = np.maximum(self.mem, self.bound) - self.mem_q
        up, down = diff > self.threshold, diff < -1e-5
        self.mem_q = np.where(up, self.mem_q + self.threshold, np.where(down, self.mem_q - self.threshold, self.mem_q))
        return np.where(up, 1.0, np.where(down, -1.0, 0.0)).astype(np.float32)


DEFAULT_RULE = NegativeSpikeIF.name


def rule(name: str) -> type[Rule]:
    """The rule called ``name``; a ValueError names the choices."""
    if name not in RULES:
        raise ValueError(f"--neuron_rule {name}: expected one of {', '.join(RULES)}")
    return RULES[name]


def flag_help() -> str:
    """The help of ``--neuron_rule``, drawn from :data:`RULES`."""
    return "; ".join(f"'{name}': {r.help}" for name, r in RULES.items()) + "."
