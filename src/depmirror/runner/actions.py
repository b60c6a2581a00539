"""What the runner asks an action to do, what it gets back, and the interface every action implements."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from depmirror.health.view import HealthView

ActionKind = Literal["rollback", "failback"]
Started = Callable[[str], Awaitable[None]]
BatchItems = Sequence[tuple["ActionRequest", Started]]


@dataclass(frozen=True, slots=True)
class ActionRequest:
    action_id: str
    kind: ActionKind
    dependency: str
    instance: str
    trigger: dict[str, Any]
    store_url: str
    # Healthy targets the runner's re-check found; empty means the checker could not list them and the
    # playbook picks (it never picks an unhealthy or unknown target either).
    candidates: tuple[str, ...] = ()
    retry_of: str | None = None
    # Whether this runner still holds the dependency's lease: actions that can stop between steps ask it
    # right before each one (the fast path before promoting and routing). Never passed to a playbook.
    fence: Callable[[], bool] | None = field(default=None, compare=False)
    # The re-check this decision was made on and when (time.monotonic()), when an action may decide on it
    # as it is (the fast path: no second Prometheus query for the batch). Never passed to a playbook.
    checked: tuple[HealthView, float] | None = field(default=None, compare=False)

    def extra_vars(self) -> dict[str, Any]:
        """The playbook / job template inputs (names documented in docs/runner.md)."""
        variables: dict[str, Any] = {
            "depmirror_dependency": self.dependency,
            "depmirror_trigger": self.trigger,
            "depmirror_action_id": self.action_id,
            "depmirror_store": self.store_url,
        }
        if self.kind == "rollback":
            variables["depmirror_failed_instance"] = self.instance
        else:
            variables["depmirror_recovered_instance"] = self.instance
        if self.candidates:
            variables["depmirror_candidates"] = list(self.candidates)
        if self.retry_of:
            variables["depmirror_retry_of"] = self.retry_of
        return variables


@dataclass(frozen=True, slots=True)
class ActionResult:
    """`error`: the action could not start (nothing ran, nothing changed): no cooldown follows it."""

    outcome: Literal["succeeded", "failed", "error"]
    detail: str = ""
    target: str | None = None
    external_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Action(Protocol):
    name: str

    async def run(self, request: ActionRequest, started: Started) -> ActionResult:
        """Run to the end. Call `started(external_id)` as soon as there is a handle worth remembering."""
        ...

    async def follow(self, external_id: str) -> ActionResult | None:
        """Wait for an action a previous runner process started; None if it cannot be followed."""
        ...

    async def problems(self) -> list[str]:
        """Why the action could not start now (for /readyz); empty when it can. Answers in well under 1 s."""
        ...


class BatchAction(Action, Protocol):
    """An action that can carry several rollbacks at once (the fast path: one release per LB for all)."""

    async def run_batch(self, items: BatchItems) -> list[ActionResult]:
        """One result per item, in the items' order."""
        ...


class BatchGate:
    """Gathers the rollbacks of one dispatch pass into one batch (docs/rollback.md, "Batches").

    Every dependency the pass handles is `expect`ed; the gate flushes once the pass is `seal`ed and each of
    them has either submitted its rollback or `leave`s (it settled otherwise, or does something else: a
    failback, a resumed job). A dependency that submits after the flush runs as a batch of one. So the batch
    waits for the slowest re-check of its pass (bounded by the health timeout), never for another action.
    """

    def __init__(self, run: Callable[[BatchItems], Awaitable[list[ActionResult]]]) -> None:
        self.run = run  # BatchAction.run_batch, inside the worker's action slot
        self._expected: set[str] = set()
        self._waiting: dict[str, tuple[ActionRequest, Started, asyncio.Future[ActionResult]]] = {}
        self._sealed = False
        self._flushed = False
        self._running: set[asyncio.Task[None]] = set()

    def expect(self, dependency: str) -> None:
        self._expected.add(dependency)

    def seal(self) -> None:
        self._sealed = True
        self._maybe_flush()

    def leave(self, dependency: str) -> None:
        if dependency not in self._waiting:
            self._expected.discard(dependency)
            self._maybe_flush()

    async def submit(self, request: ActionRequest, started: Started) -> ActionResult:
        if self._flushed or request.dependency not in self._expected or request.dependency in self._waiting:
            return (await self.run([(request, started)]))[0]
        future: asyncio.Future[ActionResult] = asyncio.get_running_loop().create_future()
        self._waiting[request.dependency] = (request, started, future)
        self._maybe_flush()
        return await future

    def _maybe_flush(self) -> None:
        if self._flushed or not self._sealed or not self._expected <= set(self._waiting):
            return
        self._flushed = True
        if self._waiting:
            task = asyncio.get_running_loop().create_task(self._flush(list(self._waiting.values())))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _flush(self, waiting: list[tuple[ActionRequest, Started, asyncio.Future[ActionResult]]]) -> None:
        try:
            results = await self.run([(request, started) for request, started, _ in waiting])
        except Exception as error:  # every member's _act turns it into a failed result, as for one action
            for _, _, future in waiting:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, _, future), result in zip(waiting, results, strict=True):
            if not future.done():
                future.set_result(result)
