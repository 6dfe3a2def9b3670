"""Extensions: Python files that register datasets, networks or neuron rules (``examples/digits/digits.py``).

A workspace script imports its extension itself. The commands that only read a checkpoint and find its network
by name (``python -m common.checkpoint export``, ``python -m common.convert export``, :func:`common.checkpoint.
identify`) load the files named by ``--extension FILE`` and by ``$NEGSPIKE_EXTENSIONS`` (paths separated by
``:``), so a network registered by an extension is known to them as to its own scripts.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path

EXTENSIONS_ENV = "NEGSPIKE_EXTENSIONS"


def load(paths: Iterable[str | os.PathLike] = ()) -> None:
    """Import each extension file of ``paths`` and of ``$NEGSPIKE_EXTENSIONS`` once per process.

    A file already imported (a workspace script's ``import digits``) is not run again; registering the same
    entries twice would change nothing anyway (:func:`common.networks.register`). A missing file is a
    FileNotFoundError."""
    env = [p for p in os.environ.get(EXTENSIONS_ENV, "").split(os.pathsep) if p]
    for path in [*paths, *env]:
        _import_file(Path(path).resolve())


def _import_file(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"extension {path} does not exist")
    if any(_file_of(module) == path for module in list(sys.modules.values())):
        return
    name = f"negspike_extension_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


def _file_of(module: object) -> Path | None:
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if isinstance(file, str) else None
