"""Named registries: the datasets, networks and neuron rules a name on a command line can pick."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def add(registry: dict[str, T], name: str, entry: T, kind: str) -> T:
    """Put ``entry`` in ``registry`` under ``name`` and return it.

    The same entry again (a module imported twice) changes nothing; a different entry of the same name is refused
    with a ValueError naming its ``kind``, so that a name on a command line always means one thing.
    """
    if registry.get(name, entry) != entry:
        raise ValueError(f"a different {kind} called {name!r} is already registered; give yours another name")
    registry[name] = entry
    return entry
