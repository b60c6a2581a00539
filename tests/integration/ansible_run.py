"""Running ansible-playbook as a user does, and reading its JSON callback: shared by the lab tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass
class PlaybookRun:
    rc: int
    report: dict[str, Any]
    stderr: str

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        return self.report.get("stats", {})

    def changed(self) -> int:
        return sum(s.get("changed", 0) for s in self.stats.values())

    def hosts_changed(self) -> set[str]:
        return {h for h, s in self.stats.items() if s.get("changed", 0)}

    def tasks(self) -> list[dict[str, Any]]:
        return [task for play in self.report.get("plays", []) for task in play.get("tasks", [])]

    def task(self, name: str) -> dict[str, Any]:
        """The last task run under this name (a role's tasks are reported as `role : name`)."""
        found = [t for t in self.tasks() if t["task"]["name"] == name or t["task"]["name"].endswith(f" : {name}")]
        assert found, f"no task named {name!r}"
        return found[-1]

    def messages(self) -> str:
        """Every failure message of the run, for asserting on what a user reads."""
        parts = []
        for task in self.tasks():
            for result in task.get("hosts", {}).values():
                if result.get("failed"):
                    parts.append(str(result.get("msg", "")))
        return "\n".join(parts)


def playbook(
    playbook_path: str | Path,
    inventories: list[Path],
    *extra: str,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> PlaybookRun:
    argv = [str(BIN / "ansible-playbook"), str(ROOT / playbook_path)]
    for inventory in inventories:
        argv += ["-i", str(inventory)]
    argv += list(extra)
    full_env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_NOCOLOR": "1",
        **(env or {}),
    }
    done = subprocess.run(argv, capture_output=True, text=True, env=full_env, timeout=timeout, check=False, cwd=ROOT)
    try:
        report = json.loads(done.stdout[done.stdout.index("{") :]) if "{" in done.stdout else {}
    except json.JSONDecodeError:
        report = {"unparsed": done.stdout}
    return PlaybookRun(done.returncode, report, done.stderr)


def adhoc(inventories: list[Path], pattern: str, module: str, args: str = "") -> dict[str, dict[str, Any]]:
    """One ad-hoc module over SSH; each host's result (as the json callback reports it)."""
    argv = [str(BIN / "ansible"), pattern, "-m", module, "-f", "20"]
    for inventory in inventories:
        argv += ["-i", str(inventory)]
    if args:
        argv += ["-a", args]
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
    }
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False, cwd=ROOT)
    report = json.loads(done.stdout[done.stdout.index("{") :])
    tasks = [task for play in report["plays"] for task in play["tasks"]]
    return {host: result for task in tasks for host, result in task["hosts"].items()}
