"""How busy the machine is: the lab, its watchers and every other process share its cores, and a
benchmark's figures must say how loaded it was when they were taken."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path


def load() -> dict[str, float | int]:
    """The load averages and the number of runnable tasks right now (/proc/loadavg)."""
    one, five, fifteen = os.getloadavg()
    runnable = 0
    with contextlib.suppress(OSError, IndexError, ValueError):
        runnable = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    return {"load1": round(one, 2), "load5": round(five, 2), "load15": round(fifteen, 2), "runnable": runnable}


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot; (0, 0) where /proc/stat cannot be read."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, IndexError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


@dataclass
class CpuMeter:
    """The share of all cores that was busy between start() and busy()."""

    _start: tuple[int, int] = field(default=(0, 0))

    def start(self) -> CpuMeter:
        self._start = _cpu_ticks()
        return self

    def busy(self) -> float | None:
        busy, total = _cpu_ticks()
        spent = total - self._start[1]
        return None if spent <= 0 else round((busy - self._start[0]) / spent, 3)
