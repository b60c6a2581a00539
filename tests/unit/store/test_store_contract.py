"""The Store contract: history, state and queue through the Store interface, the same assertions on every
backend (a real SQLite file, a real PostgreSQL database: tests/unit/store/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from depmirror.store import ActionRecord, Event, EventFilter, QueuedAlert, RfChange, Store, StoreError

OpenStore = Callable[..., Store]  # the open_test_store fixture (conftest.py)


def _alert(fingerprint: str = "f1", status: str = "firing", **kw: object) -> QueuedAlert:
    return QueuedAlert(
        fingerprint=fingerprint,
        starts_at=str(kw.pop("starts_at", "2026-01-01T00:00:00Z")),
        status=status,  # type: ignore[arg-type]
        dependency=str(kw.pop("dependency", "payments")),
        instance=str(kw.pop("instance", "payments-a")),
        **kw,  # type: ignore[arg-type]
    )


def _ignored(group: Sequence[QueuedAlert], reason: str) -> Event:
    return Event(
        kind="alert_ignored",
        dependency="-",
        outcome="ignored",
        reason=reason,
        details={"queue_ids": [a.id for a in group], "fingerprints": [a.fingerprint for a in group]},
    )


def test_events_round_trip_with_every_field_newest_first(open_test_store: OpenStore) -> None:
    with open_test_store() as store:
        first = store.append_event(
            Event(
                kind="rollback",
                dependency="payments",
                instance="payments-a",
                target="payments-b",
                outcome="succeeded",
                trigger={"type": "alert", "fingerprint": "abc"},
                inputs={"health": {"payments-b": 0.97}, "query": "up{dependency='payments'}"},
                decision="act",
                reason="primary down",
                duration_s=1.25,
            )
        )
        second = store.append_event(Event(kind="refused", action="rollback", dependency="cache", outcome="refused"))
        events = store.events()
    assert first.id is not None and second.id is not None and second.id > first.id
    assert [e.id for e in events] == [second.id, first.id]
    assert events[1] == first
    assert events[1].as_dict()["inputs"]["health"] == {"payments-b": 0.97}


def test_json_reads_back_with_sorted_keys(open_test_store: OpenStore) -> None:
    """What `depmirror history --format json` prints depends on key order: the same on every backend."""
    details = {"zeta": 1, "alpha": {"mid": [{"b": 2, "a": 1}], "aa": None}, "b": "x", "a_longer_key": True}
    with open_test_store() as store:
        store.append_event(Event(kind="rollback", dependency="a", outcome="succeeded", details=details))
        read = store.events()[0].details
    assert list(read) == ["a_longer_key", "alpha", "b", "zeta"]
    assert list(read["alpha"]) == ["aa", "mid"]
    assert list(read["alpha"]["mid"][0]) == ["a", "b"]
    assert read == details


def test_filters_by_dependency_kind_instance_since_until_after_and_limit(open_test_store: OpenStore) -> None:
    now = datetime.now(UTC)
    with open_test_store() as store:
        old = store.append_event(
            Event(kind="rollback", dependency="a", outcome="succeeded", time=now - timedelta(days=2))
        )
        store.append_event(Event(kind="rollback", dependency="a", instance="a-1", outcome="failed", time=now))
        store.append_event(Event(kind="rf_change", dependency="a", outcome="succeeded", time=now))
        store.append_event(Event(kind="rollback", dependency="b", outcome="succeeded", time=now))
        assert len(store.events(EventFilter(dependency="a"))) == 3
        assert [e.outcome for e in store.events(EventFilter(dependency="a", kinds=("rollback",)))] == [
            "failed",
            "succeeded",
        ]
        assert len(store.events(EventFilter(since=now - timedelta(hours=1)))) == 3
        assert [e.id for e in store.events(EventFilter(until=now - timedelta(hours=1)))] == [old.id]
        assert [e.outcome for e in store.events(EventFilter(instance="a-1"))] == ["failed"]
        assert len(store.events(EventFilter(after_id=old.id))) == 3
        assert len(store.events(EventFilter(limit=2))) == 2
        assert len(store.events(EventFilter(limit=None))) == 4


def test_unknown_event_kind_is_refused(open_test_store: OpenStore) -> None:
    with open_test_store() as store, pytest.raises(ValueError, match="unknown event kind"):
        store.append_event(Event(kind="reboot", dependency="a", outcome="succeeded"))


def test_naive_times_are_refused(open_test_store: OpenStore) -> None:
    with open_test_store() as store, pytest.raises(ValueError, match="timezone-aware"):
        store.append_event(Event(kind="rollback", dependency="a", outcome="succeeded", time=datetime(2026, 1, 1)))


def test_state_primary_plan_and_rf_decisions(open_test_store: OpenStore) -> None:
    with open_test_store() as store:
        assert store.primary("payments") is None
        store.set_primary("payments", "payments-a")
        store.set_primary("payments", "payments-b")
        assert store.primary("payments") == "payments-b"
        assert store.primaries() == {"payments": "payments-b"}
        assert store.applied_plan() is None
        assert store.applied_plan_stamp() is None
        store.set_applied_plan({"dependencies": {"payments": {"rf": 3}}})
        assert store.applied_plan() == {"dependencies": {"payments": {"rf": 3}}}
        stamp = store.applied_plan_stamp()
        assert stamp is not None and abs(stamp - datetime.now(UTC).timestamp()) < 60
        store.set_applied_plan({"dependencies": {}})
        later = store.applied_plan_stamp()
        assert later is not None and later >= stamp
        old = datetime.now(UTC) - timedelta(hours=2)
        store.record_rf_change(RfChange("payments", 2, old))
        store.record_rf_change(RfChange("payments", 3))
        store.record_rf_change(RfChange("cache", 1))
        assert [d.rf for d in store.rf_changes("payments")] == [2, 3]
        assert store.rf_changes("payments")[0].time == old
        recent = store.rf_changes(since=datetime.now(UTC) - timedelta(hours=1))
        assert {(d.dependency, d.rf) for d in recent} == {("payments", 3), ("cache", 1)}


def test_queue_dedups_by_fingerprint_starts_at_and_status(open_test_store: OpenStore) -> None:
    with open_test_store() as store:
        assert store.enqueue([_alert("f1"), _alert("f2")]).queued == 2
        again = store.enqueue([_alert("f1"), _alert("f1", status="resolved")])
        assert (again.queued, again.duplicates) == (1, 1)
        within = store.enqueue([_alert("f3"), _alert("f3")])
        assert (within.queued, within.duplicates) == (1, 1)
        assert store.enqueue([]).queued == 0
        assert store.queue_depth() == 4


def test_ignored_alerts_are_stored_done_with_one_event_per_reason(open_test_store: OpenStore) -> None:
    now = datetime.now(UTC)
    with open_test_store() as store:
        result = store.enqueue(
            [
                _alert("ok"),
                _alert("u1", dependency="nope", ignore_reason="unknown dependency"),
                _alert("u2", dependency="nope", ignore_reason="unknown dependency"),
                _alert("i1", instance="zz", ignore_reason="unknown instance"),
            ],
            _ignored,
        )
        assert (result.queued, result.duplicates) == (4, 0)
        events = store.events()
        assert sorted(e.reason for e in events) == ["unknown dependency", "unknown instance"]
        by_reason = {e.reason: e.details for e in events}
        assert by_reason["unknown dependency"]["fingerprints"] == ["u1", "u2"]
        assert all(isinstance(i, int) for i in by_reason["unknown dependency"]["queue_ids"])
        assert [a.fingerprint for a in store.pending(now + timedelta(seconds=1))] == ["ok"]
        assert store.queue_depth() == 1
        # A resend of the ignored alerts is a duplicate: no second event.
        again = store.enqueue([_alert("u1", dependency="nope", ignore_reason="unknown dependency")], _ignored)
        assert again.duplicates == 1 and len(store.events()) == 2


def test_pending_respects_not_before_and_settle_marks_done(open_test_store: OpenStore) -> None:
    now = datetime.now(UTC)
    with open_test_store() as store:
        store.enqueue([_alert("now"), _alert("later", not_before=now + timedelta(minutes=5))])
        due = store.pending(now + timedelta(seconds=1))
        assert [a.fingerprint for a in due] == ["now"]
        event = store.settle([due[0].id or 0], Event(kind="alert_ignored", dependency="payments", outcome="ignored"))
        assert event is not None and event.id is not None
        assert store.pending(now + timedelta(seconds=1)) == []
        assert [a.fingerprint for a in store.pending(now + timedelta(minutes=6))] == ["later"]
        assert store.settle([], None) is None


def test_pending_collapses_resends_of_one_alert_into_the_newest(open_test_store: OpenStore) -> None:
    now = datetime.now(UTC)
    with open_test_store() as store:
        store.enqueue([_alert("f1", starts_at="t1"), _alert("f2", instance="payments-b")])
        store.enqueue([_alert("f1", starts_at="t2"), _alert("f1", status="resolved", starts_at="t2")])
        due = store.pending(now + timedelta(seconds=1))
        assert [(a.fingerprint, a.status, a.starts_at) for a in due] == [
            ("f2", "firing", "2026-01-01T00:00:00Z"),
            ("f1", "resolved", "t2"),
        ]
        newest = due[1]
        assert len(newest.covered_ids) == 3 and newest.id == max(newest.covered_ids)
        assert newest.queue_ids == newest.covered_ids
        store.settle(newest.queue_ids, None)
        assert [a.fingerprint for a in store.pending(now + timedelta(seconds=1))] == ["f2"]


def test_pending_caps_each_dependency_so_no_backlog_hides_another(open_test_store: OpenStore) -> None:
    now = datetime.now(UTC)
    with open_test_store() as store:
        store.enqueue([_alert(f"storm-{i:02d}") for i in range(12)])
        store.enqueue([_alert("quiet", dependency="cache", instance="cache-a")])
        due = store.pending(now + timedelta(seconds=1), per_dependency=5)
        storm = [a.fingerprint for a in due if a.dependency == "payments"]
        assert storm == [f"storm-{i:02d}" for i in range(7, 12)]  # the newest five, oldest first
        assert [a.fingerprint for a in due if a.dependency == "cache"] == ["quiet"]
        assert [a.id for a in due] == sorted(a.id for a in due if a.id is not None)


def test_latest_alert_firing_alerts_and_transitions(open_test_store: OpenStore) -> None:
    now = datetime.now(UTC)
    with open_test_store() as store:
        assert store.latest_alert("payments", "payments-a") is None
        store.enqueue([_alert("f1", starts_at="t1", labels={"alertname": "Down"}), _alert("f2")])
        store.enqueue([_alert("f1", status="resolved", starts_at="t1")])
        store.enqueue([_alert("f1", starts_at="t3")])
        store.enqueue([_alert("f9", dependency="cache", instance="cache-a")])
        latest = store.latest_alert("payments", "payments-a")
        assert latest is not None and (latest.fingerprint, latest.starts_at) == ("f1", "t3")
        assert latest.received_at <= datetime.now(UTC) and latest.not_before is not None
        assert store.firing_alerts("payments", "payments-a") == ["f1", "f2"]
        store.enqueue([_alert("f2", status="resolved")])
        assert store.firing_alerts("payments", "payments-a") == ["f1"]
        assert store.alert_transitions(["f1", "f2"], now - timedelta(minutes=1)) == 3
        assert store.alert_transitions(["f1"], now + timedelta(minutes=1)) == 0
        assert store.alert_transitions([], now) == 0


def test_prune_forgets_decided_alerts_only(open_test_store: OpenStore) -> None:
    now = datetime.now(UTC)
    with open_test_store() as store:
        store.enqueue([_alert("done"), _alert("open")])
        done = [a for a in store.pending(now + timedelta(seconds=1)) if a.fingerprint == "done"]
        store.settle(done[0].queue_ids, None)
        assert store.prune_queue(now - timedelta(minutes=1)) == 0
        assert store.prune_queue(now + timedelta(minutes=1)) == 1
        assert store.queue_depth() == 1
        # Forgotten, so a resend is new again (the history keeps what was decided).
        assert store.enqueue([_alert("done")]).queued == 1


def test_interrupted_action_is_recorded_and_requeued_for_reevaluation(open_test_store: OpenStore) -> None:
    now = datetime.now(UTC)
    with open_test_store() as store:
        store.enqueue([_alert("f1")])
        queued = store.pending(now + timedelta(seconds=1))
        record = ActionRecord(
            action_id="act-1",
            kind="rollback",
            dependency="payments",
            instance="payments-a",
            runner_id="runner-1",
            started_at=now,
            queue_ids=(queued[0].id or 0,),
            trigger=queued[0].trigger(),
            inputs={"health": {"payments-a": 0.1}},
        )
        store.begin_action(record)
        store.set_action_external_id("act-1", "awx-42")
        assert store.pending(now + timedelta(seconds=1)) == []  # acting, not pending
        assert store.queue_depth() == 1  # ...but still queued
        assert store.unfinished_actions("runner-1") == [replace(record, external_id="awx-42")]
        assert store.unfinished_actions("another-runner") == []
        assert store.recover_interrupted("another-runner", now) == []  # not ours to recover
        recovered = store.recover_interrupted("runner-1", now + timedelta(seconds=3), {"act-1": {"swapped": True}})
        assert len(recovered) == 1
        _, event = recovered[0]
        assert (event.kind, event.action, event.outcome) == ("interrupted", "rollback", "interrupted")
        assert event.details == {"action_id": "act-1", "external_id": "awx-42", "swapped": True}
        assert event.duration_s == pytest.approx(3.0)
        assert store.events()[0] == event
        again = store.pending(now + timedelta(seconds=5))
        assert [(a.retry_of, a.attempts) for a in again] == [("act-1", 1)]
        assert store.recover_interrupted("runner-1", now) == []  # recovered once only
        assert store.unfinished_actions("runner-1") == []


def test_finish_action_appends_event_and_settles_alerts(open_test_store: OpenStore) -> None:
    now = datetime.now(UTC)
    with open_test_store() as store:
        store.enqueue([_alert("f1"), _alert("f2")])
        ids = tuple(a.id or 0 for a in store.pending(now + timedelta(seconds=1)))
        store.begin_action(ActionRecord("act-2", "rollback", "payments", "payments-a", "r", now, ids))
        stored = store.finish_action("act-2", Event(kind="rollback", dependency="payments", outcome="succeeded"))
        assert stored.id is not None and store.events()[0] == stored
        assert store.queue_depth() == 0
        assert store.recover_interrupted("r", now) == []


def test_a_failed_transaction_leaves_nothing_behind(open_test_store: OpenStore) -> None:
    now = datetime.now(UTC)
    with open_test_store() as store:
        store.enqueue([_alert("f1")])
        ids = tuple(a.id or 0 for a in store.pending(now + timedelta(seconds=1)))
        store.begin_action(ActionRecord("act-3", "rollback", "payments", "payments-a", "r", now, ids))
        with pytest.raises(ValueError, match="unknown event kind"):
            store.finish_action("act-3", Event(kind="bogus", dependency="payments", outcome="succeeded"))
        assert store.events() == []
        assert [a.action_id for a in store.unfinished_actions("r")] == ["act-3"]
        assert store.queue_depth() == 1


def test_alert_text_with_nul_and_markup_is_stored(open_test_store: OpenStore) -> None:
    """Alert text is data: whatever a scrape target puts in a label must not make the alert unstorable."""
    now = datetime.now(UTC)
    hostile = {"alertname": "{{ lookup('pipe', 'id') }}", "note": "a\x00b", "quote": "'; DROP TABLE events; --"}
    with open_test_store() as store:
        assert store.enqueue([_alert("f\x00", labels=hostile)]).queued == 1
        due = store.pending(now + timedelta(seconds=1))
        assert len(due) == 1
        assert due[0].labels["alertname"] == hostile["alertname"]
        assert due[0].labels["quote"] == hostile["quote"]
        assert due[0].labels["note"].startswith("a") and due[0].labels["note"].endswith("b")
        store.append_event(Event(kind="alert_ignored", dependency="x\x00", outcome="ignored", inputs=hostile))
        assert store.events()[0].inputs["quote"] == hostile["quote"]


def test_check_and_check_writable_pass_on_a_healthy_store(open_test_store: OpenStore) -> None:
    with open_test_store() as store:
        store.check()
        store.check_writable()


def test_reading_without_create_refuses_a_missing_store(open_test_store: OpenStore) -> None:
    with pytest.raises(StoreError, match=r"no .*store"):
        open_test_store(create=False)
    open_test_store().close()
    with open_test_store(create=False) as store:
        assert store.events() == []
