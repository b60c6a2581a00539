"""Controller-side processes the lab runs (Prometheus, Alertmanager, ...), tracked by PID file.

Each PID file records the process's start time too, so a PID the kernel has since reused for another
process is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from depmirror_lab.paths import LabPaths

STOP_GRACE_S = 5.0


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name (which may hold spaces): state first, starttime 20th.
    fields = stat.rsplit(")", 1)[1].split()
    # A zombie has exited already; only its parent's wait is missing.
    return None if fields[0] == "Z" else fields[19]


def start(paths: LabPaths, name: str, argv: Sequence[str], log: Path | None = None) -> int:
    """Start argv in the background (its own session), record it as NAME; returns the PID."""
    stop(paths, name)
    paths.pids.mkdir(parents=True, exist_ok=True)
    log_path = log or paths.pids / f"{name}.log"
    with open(log_path, "ab") as output:
        process = subprocess.Popen(
            list(argv),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (paths.pids / f"{name}.pid").write_text(f"{process.pid} {_start_time(process.pid) or ''}\n")
    return process.pid


def running(paths: LabPaths) -> dict[str, int]:
    """NAME -> PID for every recorded process that is still the one that was started."""
    found: dict[str, int] = {}
    for pid_file in sorted(paths.pids.glob("*.pid")) if paths.pids.is_dir() else []:
        fields = pid_file.read_text().split()
        if not fields:
            continue
        pid = int(fields[0])
        started = fields[1] if len(fields) > 1 else None
        if _start_time(pid) is not None and _start_time(pid) == started:
            found[pid_file.stem] = pid
    return found


def stop(paths: LabPaths, name: str) -> bool:
    """SIGTERM, then SIGKILL after a grace period; True when a live process was stopped."""
    pid = running(paths).get(name)
    stopped = False
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while _start_time(pid) is not None and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if _start_time(pid) is not None:
            os.kill(pid, signal.SIGKILL)
        _reap(pid)
        stopped = True
    (paths.pids / f"{name}.pid").unlink(missing_ok=True)
    return stopped


def stop_all(paths: LabPaths) -> list[str]:
    names = [p.stem for p in paths.pids.glob("*.pid")] if paths.pids.is_dir() else []
    return [name for name in names if stop(paths, name)]


def _reap(pid: int) -> None:
    # A child of this very process stays a zombie (and "alive" in /proc) until waited for.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
