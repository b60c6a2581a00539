"""The SQLite store: history, state and queue through the Store interface, on a real file."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from depmirror.store import (
    ActionRecord,
    Event,
    EventFilter,
    QueuedAlert,
    RFDecision,
    StoreError,
    open_store,
)
from depmirror.store.sqlite import SQLiteStore


def _alert(fingerprint: str = "f1", status: str = "firing", **kw: object) -> QueuedAlert:
    return QueuedAlert(
        fingerprint=fingerprint,
        starts_at="2026-01-01T00:00:00Z",
        status=status,  # type: ignore[arg-type]
        dependency=str(kw.pop("dependency", "payments")),
        instance=str(kw.pop("instance", "payments-a")),
        **kw,  # type: ignore[arg-type]
    )


def test_events_round_trip_with_every_field_newest_first(tmp_path: Path) -> None:
    with open_store(tmp_path / "h.db") as store:
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
        second = store.append_event(
            Event(kind="refused", action="rollback", dependency="cache", outcome="refused")
        )
        events = store.events()
    assert first.id is not None and second.id is not None and second.id > first.id
    assert [e.id for e in events] == [second.id, first.id]
    assert events[1] == first
    assert events[1].as_dict()["inputs"]["health"] == {"payments-b": 0.97}


def test_filters_by_dependency_kind_since_and_limit(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with open_store(tmp_path / "h.db") as store:
        store.append_event(
            Event(kind="rollback", dependency="a", outcome="succeeded", time=now - timedelta(days=2))
        )
        store.append_event(Event(kind="rollback", dependency="a", outcome="failed", time=now))
        store.append_event(Event(kind="rf_change", dependency="a", outcome="succeeded", time=now))
        store.append_event(Event(kind="rollback", dependency="b", outcome="succeeded", time=now))
        assert len(store.events(EventFilter(dependency="a"))) == 3
        assert [e.outcome for e in store.events(EventFilter(dependency="a", kinds=("rollback",)))] == [
            "failed",
            "succeeded",
        ]
        assert len(store.events(EventFilter(since=now - timedelta(hours=1)))) == 3
        assert len(store.events(EventFilter(limit=2))) == 2


def test_history_is_append_only_even_through_sql(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    with open_store(path) as store:
        store.append_event(Event(kind="rollback", dependency="a", outcome="succeeded"))
    raw = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("UPDATE events SET outcome = 'failed'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute("DELETE FROM events")
    raw.close()


def test_unknown_event_kind_is_refused(tmp_path: Path) -> None:
    with open_store(tmp_path / "h.db") as store, pytest.raises(ValueError, match="unknown event kind"):
        store.append_event(Event(kind="reboot", dependency="a", outcome="succeeded"))


def test_state_primary_plan_and_rf_decisions(tmp_path: Path) -> None:
    with open_store(tmp_path / "h.db") as store:
        assert store.primary("payments") is None
        store.set_primary("payments", "payments-a")
        store.set_primary("payments", "payments-b")
        assert store.primary("payments") == "payments-b"
        assert store.primaries() == {"payments": "payments-b"}
        assert store.applied_plan() is None
        store.set_applied_plan({"dependencies": {"payments": {"rf": 3}}})
        assert store.applied_plan() == {"dependencies": {"payments": {"rf": 3}}}
        old = datetime.now(UTC) - timedelta(hours=2)
        store.record_rf_decision(RFDecision("payments", 2, old))
        store.record_rf_decision(RFDecision("payments", 3))
        store.record_rf_decision(RFDecision("cache", 1))
        assert [d.rf for d in store.rf_decisions("payments")] == [2, 3]
        recent = store.rf_decisions(since=datetime.now(UTC) - timedelta(hours=1))
        assert {(d.dependency, d.rf) for d in recent} == {("payments", 3), ("cache", 1)}


def test_queue_dedups_by_fingerprint_starts_at_and_status(tmp_path: Path) -> None:
    with open_store(tmp_path / "h.db") as store:
        assert store.enqueue([_alert("f1"), _alert("f2")]).queued == 2
        again = store.enqueue([_alert("f1"), _alert("f1", status="resolved")])
        assert (again.queued, again.duplicates) == (1, 1)
        assert store.queue_depth() == 3


def test_pending_respects_not_before_and_settle_marks_done(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with open_store(tmp_path / "h.db") as store:
        store.enqueue([_alert("now"), _alert("later", not_before=now + timedelta(minutes=5))])
        due = store.pending(now + timedelta(seconds=1))
        assert [a.fingerprint for a in due] == ["now"]
        event = store.settle(
            [due[0].id or 0], Event(kind="alert_ignored", dependency="payments", outcome="ignored")
        )
        assert event is not None and event.id is not None
        assert store.pending(now + timedelta(seconds=1)) == []
        assert [a.fingerprint for a in store.pending(now + timedelta(minutes=6))] == ["later"]


def test_interrupted_action_is_recorded_and_requeued_for_reevaluation(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with open_store(tmp_path / "h.db") as store:
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
        )
        store.begin_action(record)
        store.set_action_external_id("act-1", "awx-42")
        assert store.pending(now + timedelta(seconds=1)) == []  # acting, not pending
        assert store.recover_interrupted("another-runner", now) == []  # not ours to recover
        recovered = store.recover_interrupted("runner-1", now + timedelta(seconds=3))
        assert len(recovered) == 1
        _, event = recovered[0]
        assert (event.kind, event.action, event.outcome) == ("interrupted", "rollback", "interrupted")
        assert event.details == {"action_id": "act-1", "external_id": "awx-42"}
        again = store.pending(now + timedelta(seconds=5))
        assert [(a.retry_of, a.attempts) for a in again] == [("act-1", 1)]
        assert store.recover_interrupted("runner-1", now) == []  # recovered once only


def test_finish_action_appends_event_and_settles_alerts(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with open_store(tmp_path / "h.db") as store:
        store.enqueue([_alert("f1"), _alert("f2")])
        ids = tuple(a.id or 0 for a in store.pending(now + timedelta(seconds=1)))
        store.begin_action(ActionRecord("act-2", "rollback", "payments", "payments-a", "r", now, ids))
        store.finish_action("act-2", Event(kind="rollback", dependency="payments", outcome="succeeded"))
        assert store.queue_depth() == 0
        assert store.recover_interrupted("r", now) == []


def test_open_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = open_store(f"sqlite:///{tmp_path}/a.db")
    assert isinstance(absolute, SQLiteStore) and absolute.path == tmp_path / "a.db"
    absolute.close()
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:rel.db")
    assert (tmp_path / "rel.db").exists()
    relative.close()
    monkeypatch.setenv("DEPMIRROR_STORE", str(tmp_path / "env.db"))
    open_store().close()
    assert (tmp_path / "env.db").exists()
    with pytest.raises(StoreError, match="not implemented"):
        open_store("postgresql://db/depmirror")
    with pytest.raises(StoreError, match="no store here"):
        open_store(tmp_path / "missing.db", create=False)
