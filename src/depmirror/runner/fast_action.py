"""The runner's fast path for rollbacks (docs/rollback.md, "Fast path" and "Batches"); failbacks and
fallbacks go to the playbook action it wraps."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from depmirror.rollback.batch import SwitchOutcome, batch_details, health_of_listed
from depmirror.rollback.decide import RollbackRefused
from depmirror.rollback.flow import Health
from depmirror.rollback.switchover import FastPath, FastPathFailed, FastPathUnavailable, LeaseLost, Switch
from depmirror.runner.actions import Action, ActionRequest, ActionResult, Started

log = logging.getLogger("depmirror.runner")
# Playbook fallbacks of one batch run at most this many at a time: when the fast path cannot decide a whole
# zone (the store unreachable), hundreds of ansible-playbook processes at once would only starve each other.
FALLBACKS_AT_ONCE = 2


# How old the runner's re-check may be for the batch to decide on it instead of asking Prometheus again:
# under one probe interval of the fastest setting (1 s), so both would read the same samples.
REUSE_HEALTH_MAX_AGE_S = 1.0


def reusable_health(request: ActionRequest, now: float | None = None) -> Health | None:
    """The health the runner's re-check read for this request, for the batch's decision; None (the batch
    asks Prometheus itself) unless it came from Prometheus, with its verdicts, under
    REUSE_HEALTH_MAX_AGE_S ago. The worker hands it over only where it is the batch's own question: the
    checker reads the fast path's graph and no override changed the dependency's threshold."""
    if request.checked is None:
        return None
    view, at = request.checked
    verdicts, warnings = view.inputs.get("verdicts"), view.inputs.get("warnings", [])
    if (
        (now if now is not None else time.monotonic()) - at > REUSE_HEALTH_MAX_AGE_S
        or not view.source.startswith("prometheus")
        or not isinstance(verdicts, list)
        or not isinstance(warnings, list)
        or not all(isinstance(v, dict) and {"host", "verdict", "score", "reason"} <= v.keys() for v in verdicts)
    ):
        return None
    return health_of_listed(verdicts, [str(w) for w in warnings])


class FastPathAction:
    name = "fast-path"

    def __init__(self, fast: FastPath, playbook: Action) -> None:
        self.fast = fast
        self.playbook = playbook
        # The graph the batch decides with: the worker hands over its re-checks only when its checker reads it.
        self.graph_source = str(fast.config.graph)

    async def warm(self) -> None:
        for problem in await asyncio.to_thread(self.fast.warm):
            log.warning("fast path: %s (a switchover will try again)", problem)

    async def run(self, request: ActionRequest, started: Started) -> ActionResult:
        if request.kind != "rollback":
            return await self.playbook.run(request, started)
        return (await self.run_batch([(request, started)]))[0]

    async def run_batch(self, items: Sequence[tuple[ActionRequest, Started]]) -> list[ActionResult]:
        """Rollbacks pending at the same moment, as one batch (one release per LB); one result per item, in
        the items' order. A dependency the fast path cannot decide falls back to the playbook on its own."""
        switches = [
            Switch(
                dependency=request.dependency,
                instance=request.instance,
                store=request.store_url,
                candidates=request.candidates,
                trigger=request.trigger,
                action_id=request.action_id,
                still_mine=request.fence,
                health=reusable_health(request),
            )
            for request, _ in items
        ]
        batch = await asyncio.to_thread(self.fast.switch_batch, switches, False)
        outcomes = batch.by_dependency()
        rank = {outcome.dependency: number for number, outcome in enumerate(batch.outcomes, start=1)}
        results = []
        for request, _ in items:
            shared = batch_details(batch.batch, len(items), rank[request.dependency])
            results.append(self._result(outcomes[request.dependency], shared))
        fallbacks = [
            (number, request, started)
            for number, (request, started) in enumerate(items)
            if isinstance(outcomes[request.dependency].error, FastPathUnavailable)
            and self._playbook_moves_state(request.dependency)
        ]
        if fallbacks:
            slots = asyncio.Semaphore(FALLBACKS_AT_ONCE)

            async def fallback(request: ActionRequest, started: Started) -> ActionResult:
                async with slots:
                    return await self._playbook(request, started, outcomes[request.dependency])

            ran = await asyncio.gather(*(fallback(r, s) for _, r, s in fallbacks))
            for (number, _, _), result in zip(fallbacks, ran, strict=True):
                results[number] = result
        return results

    def _playbook_moves_state(self, dependency: str) -> bool:
        """rollback.yml moves redis and postgresql state, not a `stateful:` engine's: it would route one to a
        replica that was never promoted. Such a dependency stays with the fast path's `error` (nothing routed)."""
        spec = self.fast.graph.dependencies.get(dependency)
        return spec is None or spec.state is None

    @staticmethod
    def _result(outcome: SwitchOutcome, shared: dict[str, object]) -> ActionResult:
        details = {"path": "fast", **shared}
        error = outcome.error
        if isinstance(error, RollbackRefused):
            return ActionResult(outcome="failed", detail=f"refused: {error}", details=details)
        if isinstance(error, FastPathFailed):
            return ActionResult(outcome="failed", detail=str(error), details={**details, "phase": error.phase})
        if isinstance(error, LeaseLost):
            # The worker records nothing for it: the runner holding the lease now decides again.
            return ActionResult(outcome="failed", detail=str(error), details={**details, "phase": outcome.phase})
        if error is not None:  # FastPathUnavailable: replaced by the playbook's result
            return ActionResult(outcome="error", detail=str(error), details=details)
        event = outcome.event
        assert event is not None
        # One event per switchover: the runner's, carrying the fast path's decision and timings.
        return ActionResult(
            outcome="succeeded",
            detail=f"{event['reason']} (fast path)",
            target=event["target"],
            details={**event["details"], "decision": event["decision"], "decision_inputs": event["inputs"]},
        )

    async def _playbook(self, request: ActionRequest, started: Started, outcome: SwitchOutcome) -> ActionResult:
        log.warning("%s: %s; running the playbook instead", request.dependency, outcome.error)
        result = await self.playbook.run(request, started)
        return ActionResult(
            outcome=result.outcome,
            detail=result.detail,
            target=result.target,
            external_id=result.external_id,
            details={**result.details, "path": "playbook", "fast_path_unavailable": str(outcome.error)},
        )

    async def run_failback_batch(self, items: Sequence[tuple[ActionRequest, Started]]) -> list[ActionResult]:
        """Failbacks go to the playbook (a resync is no fast-path step): as one batch run when it can."""
        batching = getattr(self.playbook, "run_failback_batch", None)
        if batching is None:
            return [await self.playbook.run(request, started) for request, started in items]
        return list(await batching(items))

    async def follow(self, external_id: str) -> ActionResult | None:
        return await self.playbook.follow(external_id)

    async def problems(self) -> list[str]:
        # The playbook is the fast path's fallback and the failback's only path: it must be able to run.
        return await self.playbook.problems()

    def close(self) -> None:
        self.fast.close()
