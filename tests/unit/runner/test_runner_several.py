"""Several runners on one store (SQLite file and real PostgreSQL): each dependency is acted on by one runner
at a time, and a runner that dies mid-action is taken over once its lease runs out, with exactly one event
for the switchover."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.webhook import RecordingAction, StaticHealth, alert, notification

from depmirror.runner.actions import ActionRequest, ActionResult, Started
from depmirror.store import EventFilter

HEALTHY_B = StaticHealth(candidates={"payments-b": "healthy"})
POLICY = {"cooldown_seconds": 0, "lease_seconds": 1, "on_interrupted": "retry"}


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("postgres_database"))


@dataclass
class StuckAction:
    """An action that starts and never ends by itself, like a runner process frozen or killed mid-switchover."""

    name: str = "stuck"
    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, request: ActionRequest, started: Started) -> ActionResult:
        self.started.set()
        await self.release.wait()
        return ActionResult(outcome="succeeded", target="payments-b")

    async def follow(self, external_id: str) -> ActionResult | None:
        return None

    async def problems(self) -> list[str]:
        return []


def test_two_runners_on_the_same_alerts_act_once(harness: Any, shared_store: str) -> None:
    first, second = RecordingAction(), RecordingAction()
    one = harness(first, HEALTHY_B, mode="act", store=shared_store, runner_id="runner-1", policy=POLICY)
    two = harness(second, HEALTHY_B, mode="act", store=shared_store, runner_id="runner-2", policy=POLICY)

    async def scenario() -> None:
        client = await one.client()
        try:
            body = notification(alert(fingerprint="a"), alert("cache", "cache-a", fingerprint="c"))
            assert (await one.post(client, body)).status == 202
            assert (await one.post(client, body)).status == 202  # Alertmanager's resend, to the same store
        finally:
            await client.close()
        await asyncio.gather(one.worker.dispatch(), two.worker.dispatch())
        await asyncio.gather(one.worker.drain(10), two.worker.drain(10))

    asyncio.run(scenario())
    acted = sorted(r.dependency for r in first.requests + second.requests)
    assert acted == ["cache", "payments"]
    rollbacks = one.store.events(EventFilter(kinds=("rollback",), limit=None))
    assert sorted(e.dependency for e in rollbacks) == ["cache", "payments"]


def test_a_runner_that_dies_mid_action_is_taken_over_with_one_event(harness: Any, shared_store: str) -> None:
    stuck, taker = StuckAction(), RecordingAction()
    dying = harness(stuck, HEALTHY_B, mode="act", store=shared_store, runner_id="runner-1", policy=POLICY)
    alive = harness(taker, HEALTHY_B, mode="act", store=shared_store, runner_id="runner-2", policy=POLICY)

    async def scenario() -> float:
        client = await dying.client()
        try:
            assert (await dying.post(client, notification(alert(fingerprint="a")))).status == 202
        finally:
            await client.close()
        await dying.worker.dispatch()
        await asyncio.wait_for(stuck.started.wait(), 5)
        # runner-1 freezes here: its lease is no longer renewed (the process is gone), its action never ends.
        for lease in dying.worker._leases.values():
            lease.lost = True
        frozen = time.monotonic()
        assert await alive.worker.take_over_abandoned() == []  # not before the lease runs out
        taken: list[Any] = []
        while not taken and time.monotonic() - frozen < 10:
            await asyncio.sleep(0.2)
            taken = await alive.worker.take_over_abandoned()
        took = time.monotonic() - frozen
        await alive.settle()
        # runner-1 comes back to life and finishes: fenced, it records nothing.
        stuck.release.set()
        await dying.worker.drain(10)
        return took

    took = asyncio.run(scenario())
    events = [(e.kind, e.outcome) for e in reversed(alive.store.events(EventFilter(limit=None)))]
    assert events == [("interrupted", "interrupted"), ("rollback", "succeeded")], events
    interrupted, rollback = reversed(alive.store.events(EventFilter(limit=None)))
    assert interrupted.details["taken_over_by"] == "runner-2"
    assert rollback.details["retry_of"] == interrupted.details["action_id"]
    assert [r.retry_of for r in taker.requests] == [interrupted.details["action_id"]]
    assert alive.store.primary("payments") == "payments-b"
    assert alive.store.queue_depth() == 0
    assert took <= 3.0, f"taken over {took:.1f} s after the runner froze (lease 1 s)"
