"""The runner's fast path for rollbacks (docs/rollback.md, "Fast path"); failbacks and fallbacks go to the
playbook action it wraps."""

from __future__ import annotations

import asyncio
import logging

from depmirror.rollback.decide import RollbackRefused
from depmirror.rollback.switchover import FastPath, FastPathFailed, FastPathUnavailable, Switch
from depmirror.runner.actions import Action, ActionRequest, ActionResult, Started

log = logging.getLogger("depmirror.runner")


class FastPathAction:
    name = "fast-path"

    def __init__(self, fast: FastPath, playbook: Action) -> None:
        self.fast = fast
        self.playbook = playbook

    async def warm(self) -> None:
        for problem in await asyncio.to_thread(self.fast.warm):
            log.warning("fast path: %s (a switchover will try again)", problem)

    async def run(self, request: ActionRequest, started: Started) -> ActionResult:
        if request.kind != "rollback":
            return await self.playbook.run(request, started)
        switch = Switch(
            dependency=request.dependency,
            instance=request.instance,
            store=request.store_url,
            candidates=request.candidates,
            trigger=request.trigger,
            action_id=request.action_id,
            still_mine=request.fence,
        )
        try:
            event = await asyncio.to_thread(self.fast.switchover, switch, False)
        except RollbackRefused as refused:
            return ActionResult(outcome="failed", detail=f"refused: {refused}", details={"path": "fast"})
        except FastPathFailed as failed:
            return ActionResult(outcome="failed", detail=str(failed), details={"path": "fast", "phase": failed.phase})
        except FastPathUnavailable as unavailable:
            log.warning("%s: %s; running the playbook instead", request.dependency, unavailable)
            result = await self.playbook.run(request, started)
            return ActionResult(
                outcome=result.outcome,
                detail=result.detail,
                target=result.target,
                external_id=result.external_id,
                details={**result.details, "path": "playbook", "fast_path_unavailable": str(unavailable)},
            )
        # One event per switchover: the runner's, carrying the fast path's decision and timings.
        return ActionResult(
            outcome="succeeded",
            detail=f"{event['reason']} (fast path)",
            target=event["target"],
            details={**event["details"], "decision": event["decision"], "decision_inputs": event["inputs"]},
        )

    async def follow(self, external_id: str) -> ActionResult | None:
        return await self.playbook.follow(external_id)

    async def problems(self) -> list[str]:
        # The playbook is the fast path's fallback and the failback's only path: it must be able to run.
        return await self.playbook.problems()

    def close(self) -> None:
        self.fast.close()
