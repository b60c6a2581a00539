"""The worker's decisions: one action per dependency, cooldown, flapping, health, failback, restart."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from tests.fakes.webhook import RecordingAction, StaticHealth, alert, notification

from depmirror.store import ActionRecord, EventFilter


def _kinds(h: Any) -> list[tuple[str, str]]:
    return [(e.kind, e.outcome) for e in reversed(h.store.events(EventFilter(limit=None)))]


def test_many_alerts_for_one_dependency_act_once_then_cooldown(harness: Any) -> None:
    action = RecordingAction()
    h = harness(action, StaticHealth(candidates={"payments-b": "healthy", "payments-c": "unhealthy"}), mode="act")
    storm = [alert(fingerprint=f"f{i}", starts_at=f"2026-01-01T00:00:{i:02d}Z") for i in range(30)]
    asyncio.run(h.deliver(notification(*storm[:10]), notification(*storm[10:]), notification(*storm[:5])))
    assert len(action.requests) == 1
    request = action.requests[0]
    assert request.candidates == ("payments-b",)  # never the unhealthy one
    assert request.extra_vars()["depmirror_failed_instance"] == "payments-a"
    rollback = h.store.events(EventFilter(kinds=("rollback",)))[0]
    assert (rollback.outcome, rollback.target, rollback.trigger["type"]) == (
        "succeeded",
        "payments-b",
        "alert",
    )
    assert h.store.primary("payments") == "payments-b"
    assert h.metrics.alerts_deduplicated._value.get() == 5


def test_alert_for_a_mirror_is_not_a_rollback(harness: Any) -> None:
    action = RecordingAction()
    h = harness(action, StaticHealth(candidates={"payments-b": "healthy"}), mode="act")
    h.store.set_primary("payments", "payments-b")
    asyncio.run(h.deliver(notification(alert(instance="payments-c"))))
    assert action.requests == []
    assert _kinds(h) == [("alert_ignored", "ignored")]


def test_health_recheck_refuses_unhealthy_or_unknown_targets(harness: Any) -> None:
    for health, reason in [
        (StaticHealth(failed="healthy", candidates={"payments-b": "healthy"}), "healthy again"),
        (StaticHealth(candidates={"payments-b": "unhealthy", "payments-c": "unknown"}), "no healthy target"),
    ]:
        action = RecordingAction()
        h = harness(action, health, mode="act")
        asyncio.run(h.deliver(notification(alert())))
        assert action.requests == []
        refused = h.store.events(EventFilter(kinds=("refused",)))
        assert len(refused) == 1 and reason in refused[0].reason and refused[0].action == "rollback"
        h.close()


def test_unknown_health_refuses_by_default_and_delegates_when_configured(harness: Any) -> None:
    action = RecordingAction()
    h = harness(action, None, mode="act", policy={"on_unknown_health": "refuse"})
    asyncio.run(h.deliver(notification(alert())))
    assert action.requests == [] and _kinds(h) == [("refused", "refused")]
    delegating = harness(action, None, mode="act", policy={"on_unknown_health": "delegate"})
    asyncio.run(delegating.deliver(notification(alert())))
    assert len(action.requests) == 1 and action.requests[0].candidates == ()
    assert "depmirror_candidates" not in action.requests[0].extra_vars()


def test_flapping_alerts_are_damped(harness: Any) -> None:
    action = RecordingAction()
    h = harness(
        action,
        StaticHealth(candidates={"payments-b": "healthy"}),
        mode="act",
        policy={"cooldown_seconds": 0, "flap_max_transitions": 4},
    )
    cycles = []
    for i in range(3):
        cycles.append(alert(fingerprint="f", starts_at=f"2026-01-01T00:0{i}:00Z"))
        cycles.append(alert(fingerprint="f", status="resolved", starts_at=f"2026-01-01T00:0{i}:00Z"))
    asyncio.run(h.deliver(notification(*cycles[:4]), notification(*cycles[4:5])))
    assert action.requests == []
    assert ("alert_suppressed", "suppressed") in _kinds(h)
    assert "flapping" in h.store.events(EventFilter(kinds=("alert_suppressed",)))[0].reason


def test_shadow_mode_decides_and_records_without_acting(harness: Any) -> None:
    action = RecordingAction()
    h = harness(action, StaticHealth(candidates={"payments-b": "healthy"}), mode="shadow")
    asyncio.run(h.deliver(notification(alert(), alert("cache", "cache-a", fingerprint="c"))))
    assert action.requests == []
    shadow = h.store.events(EventFilter(kinds=("rollback",)))
    assert sorted(e.dependency for e in shadow) == ["cache", "payments"]
    assert all(e.outcome == "shadow" for e in shadow)
    assert shadow[0].details["extra_vars"]["depmirror_candidates"] == ["payments-b"]


def test_resolved_alert_triggers_failback_after_the_hold_when_enabled(harness: Any) -> None:
    action = RecordingAction(target="payments-b")
    health = StaticHealth(candidates={"payments-b": "healthy"})
    h = harness(
        action,
        health,
        mode="act",
        policy={"failback": True, "failback_hold_seconds": 0, "cooldown_seconds": 0},
    )
    asyncio.run(h.deliver(notification(alert())))
    health.failed = "healthy"
    asyncio.run(h.deliver(notification(alert(status="resolved"), status="resolved")))
    assert [r.kind for r in action.requests] == ["rollback", "failback"]
    assert action.requests[1].extra_vars()["depmirror_recovered_instance"] == "payments-a"
    assert h.store.primary("payments") == "payments-a"


def test_resolved_alert_waits_out_the_hold_in_the_queue(harness: Any) -> None:
    action = RecordingAction()
    h = harness(
        action,
        StaticHealth(failed="healthy"),
        mode="act",
        policy={"failback": True, "failback_hold_seconds": 3600},
    )
    asyncio.run(h.deliver(notification(alert(status="resolved"), status="resolved")))
    assert action.requests == [] and h.store.queue_depth() == 1
    assert h.store.pending(datetime.now(UTC)) == []


def _interrupt(h: Any, external_id: str | None = None) -> None:
    """What a kill -9 mid-action leaves: the alert acting, its journal entry open."""
    queued = h.store.pending(datetime.now(UTC))
    h.store.begin_action(
        ActionRecord(
            action_id="dead-1",
            kind="rollback",
            dependency="payments",
            instance="payments-a",
            runner_id=h.config.runner_id,
            started_at=datetime.now(UTC),
            queue_ids=tuple(a.id for a in queued),
            external_id=external_id,
        )
    )


async def _enqueue_only(h: Any, payload: dict[str, Any]) -> None:
    client = await h.client()
    try:
        assert (await h.post(client, payload)).status == 202
    finally:
        await client.close()


def _restart(h: Any) -> None:
    asyncio.run(h.worker.recover())
    asyncio.run(h.settle())


def test_interrupted_action_is_held_when_policy_says_hold(harness: Any) -> None:
    action = RecordingAction()
    h = harness(
        action,
        StaticHealth(candidates={"payments-b": "healthy"}),
        mode="act",
        policy={"on_interrupted": "hold"},
    )
    asyncio.run(_enqueue_only(h, notification(alert())))
    _interrupt(h)
    _restart(h)
    assert action.requests == []
    assert _kinds(h) == [("interrupted", "interrupted"), ("refused", "refused")]
    assert "operator needed" in h.store.events(EventFilter(kinds=("refused",)))[0].reason


def test_interrupted_action_is_rechecked_then_retried_once(harness: Any) -> None:
    action = RecordingAction()
    h = harness(action, StaticHealth(candidates={"payments-b": "healthy"}), mode="act")
    asyncio.run(_enqueue_only(h, notification(alert())))
    _interrupt(h)
    _restart(h)
    assert len(action.requests) == 1 and action.requests[0].retry_of == "dead-1"
    assert _kinds(h) == [("interrupted", "interrupted"), ("rollback", "succeeded")]


def test_interrupted_action_already_done_is_superseded(harness: Any) -> None:
    action = RecordingAction()
    h = harness(action, StaticHealth(candidates={"payments-b": "healthy"}), mode="act")
    asyncio.run(_enqueue_only(h, notification(alert())))
    _interrupt(h)
    h.store.set_primary("payments", "payments-b")  # the playbook got as far as recording the switch
    _restart(h)
    assert action.requests == []
    assert _kinds(h) == [("interrupted", "interrupted"), ("alert_suppressed", "suppressed")]


def test_interrupted_job_with_a_handle_is_followed_not_relaunched(harness: Any) -> None:
    action = RecordingAction()
    h = harness(action, StaticHealth(candidates={"payments-b": "healthy"}), mode="act")
    asyncio.run(_enqueue_only(h, notification(alert())))
    _interrupt(h, external_id="awx-77")
    _restart(h)
    assert action.requests == [] and action.followed == ["awx-77"]
    assert _kinds(h) == [("interrupted", "interrupted"), ("rollback", "succeeded")]
