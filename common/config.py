"""Run configurations: dataclasses that are built from the flags and say what of themselves a run records.

As Keras' ``get_config``: a field marked with :data:`RECORDED` is part of the settings a run writes down
(the training history's ``settings``, a spiking run's ``summary.json``), in the order of the fields. A field
named as a flag is read from it by :meth:`Config.from_flags`; the fields that are not flags, or are worked
out from several, are given by the caller.
"""

from __future__ import annotations

import dataclasses
from typing import Any

RECORDED = {"recorded": True}  # field metadata: a run writes this setting down


class Config:
    """What :class:`common.train.TrainConfig` and :class:`common.spiking.SpikingConfig` share."""

    @classmethod
    def from_flags(cls, flag_values: Any, **given: Any) -> Config:
        """The config of the parsed ``flag_values`` whose names are fields, with the fields in ``given``."""
        names = [f.name for f in dataclasses.fields(cls) if f.name not in given and f.name in flag_values]
        return cls(**given, **{name: flag_values[name].value for name in names})

    def get_config(self) -> dict[str, Any]:
        """The recorded fields by name, in field order, as given (a subclass makes them plain values)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("recorded")}
