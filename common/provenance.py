"""What produced a result: the run record kept in every training history and ``summary.json``.

Imports no TensorFlow (versions are read from the installed distributions), so that
reading or plotting results stays fast.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tensorflow", "tensorlayer", "numpy", "absl-py")


def sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_state(root: Path = ROOT) -> dict[str, object]:
    """The commit of the checkout and whether tracked files differ from it (``None`` outside git)."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if commit is None or dirty is None else bool(dirty)}


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def data_name(path: str | Path, roots: Iterable[str | Path] = ()) -> str:
    """A data file as recorded: relative to the data root holding it (``mnist/t10k-images-idx3-ubyte.gz``),
    else its folder and name, so that records carry no machine's paths."""
    path = Path(path).absolute()
    for root in roots:
        try:
            return path.relative_to(Path(root).absolute()).as_posix()
        except ValueError:
            continue
    return f"{path.parent.name}/{path.name}"


def recorded_path(path: str | Path) -> str:
    """A path as a record keeps it: one inside the repository relative to it (``MNIST/pretrained/k1.npz``),
    whatever the working directory; one in the home folder from ``~`` (``~/.cache/negspike/...``, where a long
    run keeps its state); any other as given. Records carry no machine's paths to this repository or home."""
    text = str(path)
    if not Path(text).is_absolute():
        return text
    for absolute in (Path(os.path.normpath(text)), Path(text).resolve()):  # as written, then through links
        try:
            return absolute.relative_to(ROOT).as_posix()
        except ValueError:
            continue
    try:
        return "~/" + Path(os.path.normpath(text)).relative_to(Path.home()).as_posix()
    except ValueError:
        return text


def from_record(path: str | Path) -> Path:
    """Where a path :func:`recorded_path` kept is on this machine: a relative one from the working directory
    if it is there, else from the repository."""
    path = Path(path).expanduser()
    return path if path.is_absolute() or path.exists() else ROOT / path


def recorded_command(argv: list[str]) -> str:
    """``argv`` as a record keeps it: the interpreter by its version, absolute paths inside the repository
    relative to it (also as ``--flag=path``)."""
    def recorded(arg: str) -> str:
        flag, eq, value = arg.partition("=")
        if eq and flag.startswith("-"):
            return f"{flag}={recorded_path(value)}"
        return recorded_path(arg)
    return shlex.join([interpreter(), *map(recorded, argv)])


def interpreter() -> str:
    """The interpreter by its version (``python3.11``), not by its path on this machine."""
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


def timestamp(seconds: float | None = None) -> str:
    """``2026-12-07T17:20:42+0000``: local time with its offset, as run records keep it; now by default."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds or time.time()))


def run_record(checkpoint: str | Path | None = None, data_files: Iterable[str | Path] = (),
               started: float | None = None, data_roots: Iterable[str | Path] = ()) -> dict[str, object]:
    """Command line, git commit, versions, CPU, checkpoint and data checksums, wall time. Data files are
    named relative to ``data_roots``, the interpreter by its version, paths inside the repository relative
    to it (:func:`recorded_command`)."""
    roots = list(data_roots)
    record: dict[str, object] = {
        "command": recorded_command(sys.argv),
        "started": timestamp(started),
        "git": git_state(),
        "versions": versions(),
        "cpu": cpu_model(),
    }
    if checkpoint is not None and Path(checkpoint).is_file():
        record["checkpoint_sha256"] = sha256(checkpoint)
    record["data_sha256"] = {data_name(p, roots): sha256(p) for p in data_files}
    if started is not None:
        record["wall_seconds"] = round(time.time() - started, 2)
    return record
