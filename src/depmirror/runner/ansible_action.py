"""Run the rollback/failback playbook through ansible-runner, one private data dir per action."""

from __future__ import annotations

import asyncio
import shlex
import shutil
import threading
from pathlib import Path
from typing import Any

import ansible_runner

from depmirror.rollback.batch import new_batch_id
from depmirror.rollback.flow import host_of
from depmirror.runner import orphans
from depmirror.runner.actions import ActionRequest, ActionResult, BatchItems, Started
from depmirror.runner.config import ActionConfig
from depmirror.runner.extra_vars import write_extra_vars
from depmirror.runner.tools import find_tool
from depmirror.store import EventFilter, open_store

# Each run leaves artifacts (stdout, events); keep the most recent for debugging, not forever.
KEEP_RUNS = 50
PID_POLL_S = 0.02
# What ansible-runner reports when ansible-playbook could not be started at all.
RC_NOT_STARTED = 127


class AnsibleRunnerAction:
    name = "ansible-runner"

    def __init__(self, config: ActionConfig, *, failback: bool = False) -> None:
        self.config = config
        self.playbooks = (config.playbook, config.failback_playbook) if failback else (config.playbook,)
        self._cancel = threading.Event()
        self.binary = find_tool("ansible-playbook")

    def cancel(self) -> None:
        self._cancel.set()

    async def problems(self) -> list[str]:
        """Why a run could not start now (readiness); empty when it can."""
        found: list[str] = []
        if self.binary is None:
            found.append("ansible-playbook is neither beside the runner's Python nor on PATH")
        for playbook in self.playbooks:
            if not playbook.is_file():
                found.append(f"playbook {playbook} does not exist")
        return found

    async def run(self, request: ActionRequest, started: Started) -> ActionResult:
        playbook = self.config.playbook if request.kind == "rollback" else self.config.failback_playbook
        problem = self._cannot_start(playbook)
        if problem is not None:
            return problem
        data_dir = self.config.work_dir / request.action_id
        return await self._launch(request.extra_vars(), playbook, data_dir, started)

    async def run_failback_batch(self, items: BatchItems) -> list[ActionResult]:
        """Failbacks pending at the same moment as ONE failback.yml run (`depmirror_dependencies`): one
        resync pass per recovered host, one nginx pass per load balancer, one playbook event per dependency
        sharing the batch id (docs/rollback.md, "Batches"). One result per item, in the items' order: a
        dependency the playbook left out (refused, its resync or verify failed) fails alone, with the reason
        its playbook event gives; the others succeed. A batch of one is the single failback run."""
        if len(items) == 1:
            request, started = items[0]
            return [await self.run(request, started)]
        problem = self._cannot_start(self.config.failback_playbook)
        if problem is not None:
            return [problem] * len(items)
        batch = new_batch_id()
        variables = failback_batch_vars([request for request, _ in items], batch)

        async def started_all(external_id: str) -> None:
            for _, started in items:
                await started(external_id)

        data_dir = self.config.work_dir / f"failback-batch-{batch}"
        ran = await self._launch(variables, self.config.failback_playbook, data_dir, started_all)
        if ran.outcome == "error":
            return [ran] * len(items)
        stats = ran.details.get("set_stats", {})
        targets = stats.get("depmirror_targets") if isinstance(stats.get("depmirror_targets"), dict) else {}
        names = [request.dependency for request, _ in items]
        reasons = await asyncio.to_thread(_left_out_reasons, items[0][0].store_url, batch, set(names) - set(targets))
        shared = {**ran.details, "batch": batch, "batch_size": len(items), "path": "playbook-batch"}
        results = []
        for name in names:
            if name in targets:
                detail = f"{ran.detail}; failed back in batch {batch} of {len(items)}"
                results.append(ActionResult("succeeded", detail, target=str(targets[name]), details=dict(shared)))
            else:
                why = reasons.get(name, "the playbook recorded no reason (see its artifacts)")
                results.append(
                    ActionResult("failed", f"left out of failback batch {batch}: {why}", details=dict(shared))
                )
        return results

    def _cannot_start(self, playbook: Path) -> ActionResult | None:
        if not playbook.is_file():
            return ActionResult(outcome="error", detail=f"playbook {playbook} does not exist")
        if self.binary is None:
            return ActionResult(
                outcome="error",
                detail="ansible-playbook not found beside the runner's Python nor on PATH; "
                "install ansible-core in the runner's virtualenv",
            )
        return None

    async def _launch(
        self, variables: dict[str, Any], playbook: Path, data_dir: Path, started: Started
    ) -> ActionResult:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            run = asyncio.create_task(asyncio.to_thread(self._run_blocking, variables, playbook, data_dir))
            await self._journal_process(run, data_dir, started)
            return await run
        finally:
            await asyncio.to_thread(_prune, self.config.work_dir, KEEP_RUNS)

    async def _journal_process(self, run: asyncio.Task[ActionResult], data_dir: Path, started: Started) -> None:
        """Record the playbook's PID in the action journal as soon as its wrapper wrote it."""
        while not run.done():
            handle = orphans.process_handle(data_dir)
            if handle is not None:
                await started(handle)
                return
            await asyncio.sleep(PID_POLL_S)

    def _run_blocking(self, variables: dict[str, Any], playbook: Path, data_dir: Path) -> ActionResult:
        # Written by us, not passed as `extravars=` (ansible-runner would put them on the command line as
        # plain JSON, which ansible-core templates): every string is marked unsafe.
        write_extra_vars(data_dir / "env" / "extravars", variables)
        assert self.binary is not None
        kwargs: dict[str, Any] = {
            "private_data_dir": str(data_dir),
            "project_dir": str(playbook.parent),
            # With `binary` ansible-runner adds no playbook argument itself: it goes first on the command line.
            "binary": str(_launch_wrapper(data_dir, self.binary)),
            "cmdline": shlex.quote(str(playbook)),
            "envvars": {**self.config.envvars, "ANSIBLE_LOG_PATH": str(data_dir / orphans.LOG_FILE)},
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
            return ActionResult(outcome="error", detail=f"ansible-runner could not start: {error}")
        stats = _artifact_data(result)
        details = {"status": result.status, "rc": result.rc, "artifacts": str(data_dir / "artifacts" / "run")}
        if stats:
            details["set_stats"] = stats
        if result.rc == RC_NOT_STARTED and orphans.process_handle(data_dir) is None:
            return ActionResult(
                outcome="error", detail=f"ansible-playbook could not be started ({self.binary})", details=details
            )
        target = stats.get("depmirror_target")
        return ActionResult(
            outcome="succeeded" if result.status == "successful" and result.rc == 0 else "failed",
            detail=f"playbook {playbook.name} {result.status} (rc {result.rc})",
            target=str(target) if target else None,
            details=details,
        )

    async def follow(self, external_id: str) -> ActionResult | None:
        # A playbook started by a dead runner process cannot be re-attached to; recovery ends it.
        return None


def failback_batch_vars(requests: list[ActionRequest], batch: str) -> dict[str, Any]:
    """failback.yml's batch inputs: every recovered instance as {dependency, instance: host}, the batch id
    (the playbook's events carry it, and so do the runner's: `details.batch` links them, as
    `details.action_id` links the two events of one action) and one trigger naming the batch (each runner
    event keeps its own alert's trigger)."""
    first = requests[0]
    return {
        "depmirror_dependencies": [
            {"dependency": r.dependency, "instance": host_of(r.dependency, r.instance)} for r in requests
        ],
        "depmirror_batch_id": batch,
        "depmirror_action_id": batch,
        "depmirror_store": first.store_url,
        "depmirror_trigger": {
            "type": "failback_batch",
            "batch": batch,
            "runner_id": first.trigger.get("runner_id", ""),
            "action_ids": {r.dependency: r.action_id for r in requests},
        },
    }


def _left_out_reasons(store_url: str, batch: str, names: set[str]) -> dict[str, str]:
    """Why failback.yml left each of `names` out of `batch`: the reason of the event it recorded for it."""
    found: dict[str, str] = {}
    if not names:
        return found
    try:
        with open_store(store_url) as store:
            for name in sorted(names):
                events = store.events(EventFilter(dependency=name, kinds=("refused", "failback"), limit=10))
                for event in events:  # newest first
                    if event.details.get("action_id") == batch or event.details.get("batch") == batch:
                        found[name] = f"{event.kind} ({event.outcome}): {event.reason}"[:500]
                        break
    except Exception as error:  # the results stand without the reasons; say why they are missing
        return dict.fromkeys(names, f"the playbook's reason could not be read: {type(error).__name__}: {error}")
    return found


def _launch_wrapper(data_dir: Path, binary: str) -> Path:
    """A shell script that records its PID, then becomes ansible-playbook (same PID, same process group)."""
    wrapper = data_dir / "launch"
    pid_file = data_dir / orphans.PID_FILE
    wrapper.write_text(
        f'#!/bin/sh\necho $$ > {shlex.quote(str(pid_file))}\nexec {shlex.quote(binary)} "$@"\n',
        encoding="utf-8",
    )
    wrapper.chmod(0o700)
    return wrapper


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
