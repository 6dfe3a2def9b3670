"""What every benchmark needs: the CPU's name, and medians of wall and CPU time that notice pauses.

Imported by the scripts of this folder as ``benchmarks.timing`` (each puts the repository on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import platform
import signal
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _cpuinfo_field(name: str) -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    return None


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    return _cpuinfo_field("model name") or platform.processor() or "unknown CPU"


def cpu_flags() -> set[str]:
    """The CPU's feature flags (``avx512f``, ``amx_bf16``, ...); empty where /proc/cpuinfo is missing."""
    return set((_cpuinfo_field("flags") or "").split())


class Resumes:
    """Counts this process's resumptions after a stop (SIGSTOP by another process, Ctrl-Z): the wall time
    of a repeat that spans one includes the pause, its CPU time does not."""

    count = 0

    @classmethod
    def install(cls) -> None:
        signal.signal(signal.SIGCONT, cls._resumed)

    @classmethod
    def _resumed(cls, signum: int, frame: object) -> None:
        cls.count += 1


def median_times(fn: Callable[[], Any], repeats: int, warm_up: bool = True) -> tuple[float, float, Any, int]:
    """Median wall and CPU seconds of ``fn()`` over ``repeats`` calls after a warm-up, its last result, and
    how many repeats were stopped while timed (the wall median is over the others, if any)."""
    if warm_up:
        fn()  # tracing and allocation
    walls, cpus, clean = [], [], []
    for _ in range(repeats):
        resumes, wall, cpu = Resumes.count, time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        if Resumes.count == resumes:
            clean.append(walls[-1])
    return statistics.median(clean or walls), statistics.median(cpus), result, repeats - len(clean)


def stopped_note(stopped: int, repeats: int) -> str:
    if not stopped:
        return ""
    if stopped < repeats:
        return f"; wall: median of the {repeats - stopped} repeats not stopped"
    return "; WALL TIME INVALID: this process was stopped (SIGSTOP) while timed"
