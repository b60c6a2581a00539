"""Issue 14's decision defects, each on the real app and worker over a real SQLite store: a resolved alert
never cancels another that fires, one dependency's backlog never delays another, labels are checked
against what the plan places, and an action that cannot start is an error without a cooldown."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.webhook import RecordingAction, StaticHealth, alert, notification

from depmirror.runner.actions import ActionRequest, ActionResult, Started
from depmirror.store import EventFilter

HEALTHY_B = StaticHealth(candidates={"payments-b": "healthy"})


def _firing_then_resolved_other_alertname() -> tuple[dict[str, Any], dict[str, Any]]:
    firing = alert(fingerprint="down", alertname="DependencyDown")
    resolved = alert(fingerprint="slow", status="resolved", alertname="DependencyLatencyHigh")
    firing["labels"]["alertname"], resolved["labels"]["alertname"] = "DependencyDown", "DependencyLatencyHigh"
    return firing, resolved


def _events(h: Any) -> list[tuple[str, str]]:
    return [(e.kind, e.outcome) for e in reversed(h.store.events(EventFilter(limit=None)))]


async def _post_all(h: Any, *payloads: dict[str, Any], pause_s: float = 0.0) -> None:
    client = await h.client()
    try:
        for payload in payloads:
            assert (await h.post(client, payload)).status == 202
            await asyncio.sleep(pause_s)
    finally:
        await client.close()
    await h.settle()


def test_resolved_alert_of_another_alertname_does_not_cancel_a_firing_one_in_one_notification(
    harness: Any,
) -> None:
    action = RecordingAction()
    h = harness(action, HEALTHY_B, mode="act", policy={"failback": True, "failback_hold_seconds": 0})
    firing, resolved = _firing_then_resolved_other_alertname()
    asyncio.run(_post_all(h, notification(firing, resolved)))
    assert [r.kind for r in action.requests] == ["rollback"]
    assert action.requests[0].trigger["alertname"] == "DependencyDown"
    assert _events(h) == [("rollback", "succeeded")]
    assert h.store.queue_depth() == 0


def test_resolved_alert_of_another_alertname_does_not_cancel_a_firing_one_50ms_later(harness: Any) -> None:
    action = RecordingAction()
    h = harness(action, HEALTHY_B, mode="act")
    firing, resolved = _firing_then_resolved_other_alertname()
    asyncio.run(_post_all(h, notification(firing), notification(resolved, status="resolved"), pause_s=0.05))
    assert [r.kind for r in action.requests] == ["rollback"]
    assert _events(h) == [("rollback", "succeeded")]


@dataclass
class TimedAction:
    """Records when each dependency's action started; the busy dependency's takes `busy_s`."""

    busy: str = "payments"
    busy_s: float = 3.0
    started_at: dict[str, float] = field(default_factory=dict)
    name: str = "timed"

    async def run(self, request: ActionRequest, started: Started) -> ActionResult:
        self.started_at.setdefault(request.dependency, time.monotonic())
        if request.dependency == self.busy:
            await asyncio.sleep(self.busy_s)
        return ActionResult(outcome="succeeded", target=f"{request.dependency}-b")

    async def follow(self, external_id: str) -> ActionResult | None:
        return None

    async def problems(self) -> list[str]:
        return []


def _cache_delay(h: Any, action: TimedAction, backlog: int) -> float:
    """Seconds from the cache alert's 202 to its action's start, with `backlog` payments alerts queued first."""

    async def scenario() -> float:
        client = await h.client()
        stop = asyncio.Event()
        worker = asyncio.create_task(h.worker.run(stop))
        try:
            for start in range(0, backlog, 100):
                storm = [alert(fingerprint=f"p{i}") for i in range(start, min(start + 100, backlog))]
                assert (await h.post(client, notification(*storm))).status == 202
            await asyncio.sleep(0.5)  # the worker is now busy with payments
            assert (await h.post(client, notification(alert("cache", "cache-a", fingerprint="c")))).status == 202
            posted = time.monotonic()
            deadline = posted + 15
            while "cache" not in action.started_at and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            return action.started_at.get("cache", deadline) - posted
        finally:
            stop.set()
            h.worker.wake.set()
            await worker
            await h.worker.drain(10)
            await client.close()

    return asyncio.run(scenario())


def test_a_backlog_of_1100_alerts_for_one_dependency_does_not_delay_another(harness: Any) -> None:
    unloaded_action, loaded_action = TimedAction(), TimedAction()
    unloaded = _cache_delay(harness(unloaded_action, HEALTHY_B, mode="act"), unloaded_action, backlog=1)
    loaded = _cache_delay(harness(loaded_action, HEALTHY_B, mode="act"), loaded_action, backlog=1100)
    print(f"cache action start after its webhook: unloaded {unloaded:.3f}s, behind 1,100 alerts {loaded:.3f}s")
    assert "payments" in loaded_action.started_at
    assert loaded <= unloaded + 1.0


def test_alerts_naming_no_instance_the_plan_places_select_nothing(harness: Any) -> None:
    action = RecordingAction()
    h = harness(action, HEALTHY_B, mode="act", policy={"cooldown_seconds": 0})
    hostile = [
        alert(instance="payments-z", fingerprint="z"),  # no such host
        alert(instance="cache@payments-a", fingerprint="x"),  # another dependency's prefix
        alert(instance="payments@payments-a; touch /tmp/x", fingerprint="s"),
        alert(dependency="pay{{ 7*7 }}ments", instance="payments-a", fingerprint="j"),
        alert(instance="", fingerprint="e"),
    ]
    asyncio.run(_post_all(h, notification(*hostile)))
    assert action.requests == []
    ignored = h.store.events(EventFilter(kinds=("alert_ignored",), limit=None))
    reasons = " | ".join(sorted(e.reason for e in ignored))
    assert "unknown instance 'payments-z'" in reasons and "unknown dependency" in reasons
    assert sum(e.trigger["alerts"] for e in ignored) == len(hostile)
    # Unchecked label text names no dependency or instance in the history; the labels stay as evidence.
    assert {e.dependency for e in ignored} <= {"payments", "-"}
    assert {e.instance for e in ignored} == {None}
    assert h.store.queue_depth() == 0
    asyncio.run(_post_all(h, notification(alert(instance="payments@payments-a", fingerprint="ok"))))
    assert [r.instance for r in action.requests] == ["payments@payments-a"]


def test_applied_plan_replaces_the_graph_placement_for_label_checks(harness: Any) -> None:
    action = RecordingAction()
    h = harness(action, HEALTHY_B, mode="act", policy={"cooldown_seconds": 0})
    h.store.set_applied_plan(
        {"plan": {"dependencies": [{"name": "payments", "instances": [{"host": "vm-new"}, {"host": "vm-b"}]}]}}
    )
    asyncio.run(
        _post_all(h, notification(alert(fingerprint="old"), alert(instance="payments@vm-new", fingerprint="new")))
    )
    assert [r.instance for r in action.requests] == ["payments@vm-new"]
    ignored = h.store.events(EventFilter(kinds=("alert_ignored",)))
    assert len(ignored) == 1 and "unknown instance 'payments-a'" in ignored[0].reason


@dataclass
class CannotStart:
    name: str = "cannot-start"
    runs: int = 0

    async def run(self, request: ActionRequest, started: Started) -> ActionResult:
        self.runs += 1
        return ActionResult(outcome="error", detail="ansible-playbook could not be started")

    async def follow(self, external_id: str) -> ActionResult | None:
        return None

    async def problems(self) -> list[str]:
        return ["ansible-playbook is neither beside the runner's Python nor on PATH"]


def test_an_action_that_cannot_start_is_an_error_without_cooldown(harness: Any) -> None:
    action = CannotStart()
    h = harness(action, HEALTHY_B, mode="act", policy={"cooldown_seconds": 300})
    asyncio.run(_post_all(h, notification(alert(fingerprint="a", starts_at="2026-01-01T00:00:00Z"))))
    asyncio.run(_post_all(h, notification(alert(fingerprint="a", starts_at="2026-01-01T00:01:00Z"))))
    assert action.runs == 2  # the second alert was not held back by a cooldown
    assert _events(h) == [("rollback", "error"), ("rollback", "error")]

    async def ready() -> tuple[int, Any]:
        client = await h.client()
        try:
            response = await client.get("/readyz")
            return response.status, await response.json()
        finally:
            await client.close()

    status, body = asyncio.run(ready())
    assert status == 503 and "ansible-playbook" in body["error"]


def test_readyz_answers_within_a_second_while_another_process_locks_the_store(harness: Any) -> None:
    h = harness(RecordingAction(), HEALTHY_B, mode="act")
    locker = sqlite3.connect(h.store.path, isolation_level=None, timeout=0)

    async def probe() -> tuple[int, str, float]:
        client = await h.client()
        try:
            began = time.monotonic()
            response = await client.get("/readyz")
            return response.status, (await response.json()).get("error", ""), time.monotonic() - began
        finally:
            await client.close()

    assert asyncio.run(probe())[0] == 200
    locker.execute("BEGIN EXCLUSIVE")
    try:
        status, reason, took = asyncio.run(probe())
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert status == 503 and "store" in reason
    assert took < 1.0, f"/readyz took {took:.2f}s"
    assert asyncio.run(probe())[0] == 200
