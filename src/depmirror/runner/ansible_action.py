"""Run the rollback/failback playbook through ansible-runner, one private data dir per action."""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path
from typing import Any

from depmirror.runner.actions import ActionRequest, ActionResult, Started
from depmirror.runner.config import ActionConfig

# Each run leaves artifacts (stdout, events); keep the most recent for debugging, not forever.
KEEP_RUNS = 50


class AnsibleRunnerAction:
    name = "ansible-runner"

    def __init__(self, config: ActionConfig) -> None:
        self.config = config
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    async def run(self, request: ActionRequest, started: Started) -> ActionResult:
        playbook = self.config.playbook if request.kind == "rollback" else self.config.failback_playbook
        if not playbook.is_file():
            return ActionResult(outcome="failed", detail=f"playbook {playbook} does not exist")
        data_dir = self.config.work_dir / request.action_id
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            return await asyncio.to_thread(self._run_blocking, request, playbook, data_dir)
        finally:
            await asyncio.to_thread(_prune, self.config.work_dir, KEEP_RUNS)

    def _run_blocking(self, request: ActionRequest, playbook: Path, data_dir: Path) -> ActionResult:
        import ansible_runner  # heavy import, needed only when a playbook actually runs

        kwargs: dict[str, Any] = {
            "private_data_dir": str(data_dir),
            "project_dir": str(playbook.parent),
            "playbook": playbook.name,
            "extravars": request.extra_vars(),
            "envvars": dict(self.config.envvars),
            "quiet": True,
            "timeout": int(self.config.timeout_s),
            "cancel_callback": self._cancel.is_set,
            "ident": "run",
        }
        if self.config.inventory:
            kwargs["inventory"] = [str(path) for path in self.config.inventory]
        try:
            result = ansible_runner.run(**kwargs)
        except Exception as error:  # ansible-runner raises plain exceptions for bad setups
            return ActionResult(outcome="failed", detail=f"ansible-runner could not start: {error}")
        stats = _artifact_data(result)
        details = {"status": result.status, "rc": result.rc, "artifacts": str(data_dir / "artifacts" / "run")}
        if stats:
            details["set_stats"] = stats
        target = stats.get("depmirror_target")
        return ActionResult(
            outcome="succeeded" if result.status == "successful" and result.rc == 0 else "failed",
            detail=f"playbook {playbook.name} {result.status} (rc {result.rc})",
            target=str(target) if target else None,
            details=details,
        )

    async def follow(self, external_id: str) -> ActionResult | None:
        # A playbook started by a dead runner process cannot be re-attached to.
        return None


def _artifact_data(result: Any) -> dict[str, Any]:
    """What the playbook published with ansible.builtin.set_stats (e.g. depmirror_target)."""
    try:
        for event in result.events:
            if event.get("event") == "playbook_on_stats":
                data = event.get("event_data", {}).get("artifact_data", {})
                return dict(data) if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
    return {}


def _prune(work_dir: Path, keep: int) -> None:
    runs = sorted((p for p in work_dir.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in runs[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
