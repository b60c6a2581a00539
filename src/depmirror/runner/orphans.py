"""A playbook a dead runner left running: find it, end it, and say what it had done.

ansible-runner starts ansible-playbook in a session of its own (pexpect), so `kill -9` of the runner
outside systemd leaves it running; a retry next to it would be two switchovers of one dependency at once.
The action's private data dir (work_dir/<action_id>) holds what is needed: `pid`, written by the launch
wrapper before ansible-playbook starts, and `ansible.log`, which ansible-playbook writes itself."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

PID_FILE = "pid"
LOG_FILE = "ansible.log"
TERM_GRACE_S = 5.0
KILL_WAIT_S = 5.0
MAX_PROGRESS_LINES = 40
# ansible.log lines that say what happened: task headers and per-host results.
_PROGRESS = re.compile(r"\| (TASK \[.*\]|PLAY \[.*\]|(ok|changed|fatal|failed|skipping|unreachable): \[.*)")


def process_handle(data_dir: Path) -> str | None:
    """`pid:<pid>:<start ticks>` of the playbook started in data_dir, once its wrapper wrote the pid."""
    pid = _read_pid(data_dir)
    if pid is None:
        return None
    started = _start_ticks(pid)
    return None if started is None else f"pid:{pid}:{started}"


def end_orphan(data_dir: Path, handle: str | None) -> dict[str, Any]:
    """End the playbook if it still runs (TERM to its process group, then KILL); report what it did."""
    pid, ticks = _parse(handle) if handle else (_read_pid(data_dir), None)
    note: dict[str, Any] = {"data_dir": str(data_dir)}
    if pid is None:
        note["process"] = "never started (no pid recorded)"
    elif not _is_ours(pid, ticks, data_dir):
        note.update(pid=pid, process="had already exited")
    else:
        note.update(pid=pid, process=_terminate(pid))
    note["progress"] = progress(data_dir)
    return note


def end_strays(work_dir: Path, known: set[str]) -> dict[str, dict[str, Any]]:
    """End every playbook still running from `work_dir` whose action is not in `known`: its journal entry
    was closed by another runner that took the action over, but the process runs on this host. Called at
    start, when every playbook of this work_dir is an orphan."""
    ended: dict[str, dict[str, Any]] = {}
    if not work_dir.is_dir():
        return ended
    for data_dir in sorted(p for p in work_dir.iterdir() if p.is_dir() and p.name not in known):
        pid = _read_pid(data_dir)
        if pid is not None and _is_ours(pid, None, data_dir):
            ended[data_dir.name] = end_orphan(data_dir, None)
    return ended


def progress(data_dir: Path) -> list[str]:
    """The task headers and host results ansible-playbook logged, oldest first (the last few dozen)."""
    try:
        lines = (data_dir / LOG_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    found = [match.group(1).strip() for line in lines if (match := _PROGRESS.search(line))]
    return found[-MAX_PROGRESS_LINES:]


def _terminate(pid: int) -> str:
    group = pid if _pgid(pid) == pid else None
    _signal(pid, group, signal.SIGTERM)
    if _wait_gone(pid, TERM_GRACE_S):
        return "ended with SIGTERM"
    _signal(pid, group, signal.SIGKILL)
    if _wait_gone(pid, KILL_WAIT_S):
        return "ended with SIGKILL"
    return "still running after SIGKILL"


def _signal(pid: int, group: int | None, signum: signal.Signals) -> None:
    try:
        if group is not None:
            os.killpg(group, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # our own child (a test harness): reap it
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _is_ours(pid: int, ticks: int | None, data_dir: Path) -> bool:
    """The same process the action started, not a later one that reuses the PID."""
    if not _alive(pid):
        return False
    if ticks is not None and _start_ticks(pid) != ticks:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return str(data_dir).encode() in cmdline


def _read_pid(data_dir: Path) -> int | None:
    try:
        text = (data_dir / PID_FILE).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _start_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])  # field 22 of stat: start time in clock ticks since boot
    except (OSError, IndexError, ValueError):
        return None


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _parse(handle: str) -> tuple[int | None, int | None]:
    parts = handle.split(":")
    if len(parts) == 3 and parts[0] == "pid" and parts[1].isdigit() and parts[2].isdigit():
        return int(parts[1]), int(parts[2])
    return None, None
