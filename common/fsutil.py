"""Write files whole or not at all; hold a file for one writer."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one rename.

    A crash or an exception leaves the previous ``path`` (or none) and no temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's 0600 would make shared results unreadable to others
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def current_umask() -> int:
    """The process's file mode creation mask (reading it means setting it, so it is set back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def first_free_backup(path: Path) -> Path:
    """The first free ``<name>.bak``, ``<name>.bak1``, ... beside ``path``: a backup never replaces another."""
    n = 0
    while True:
        backup = path.with_name(f"{path.name}.bak{n or ''}")
        if not os.path.lexists(backup):
            return backup
        n += 1


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj: object) -> None:
    write_text(path, json.dumps(obj, indent=2) + "\n")


@contextlib.contextmanager
def exclusive_lock(lock_path: str | os.PathLike, busy_message: str, cannot_message: str,
                   error: type[Exception] = OSError) -> Iterator[None]:
    """Hold ``lock_path`` (created if missing, with its folder) for the ``with`` block, for one writer.

    A second holder, in this process or another, gets ``error(busy_message)`` at once instead of
    waiting. A lock file that cannot be created gets ``error(cannot_message)`` with ``{reason}`` in it
    replaced by why (``Permission denied``). The lock is an ``flock``: the system releases it when its
    process dies, so a killed run never leaves a folder locked.

    Example::

        with exclusive_lock(folder.parent / f".{folder.name}.lock", f"another run is writing {folder}",
                            f"cannot write into {folder.parent} ({{reason}})", LogDirError):
            ...  # the one writer of folder
    """
    lock_path = Path(lock_path)
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(lock_path, "a")
    except OSError as e:
        raise error(cannot_message.replace("{reason}", str(e.strerror))) from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise error(busy_message) from None
        yield
