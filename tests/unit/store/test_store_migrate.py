"""`depmirror store migrate` from a SQLite file into a real PostgreSQL: the history prints the same, every
count matches, and a store with work in flight or a target that is not empty is refused."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from depmirror.store import ActionRecord, Event, QueuedAlert, RfChange, open_store

DEPMIRROR = [sys.executable, "-m", "depmirror.cli"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DEPMIRROR, *args], capture_output=True, text=True, timeout=60)


def _fill(url: str) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    with open_store(url) as store:
        for i in range(30):
            store.append_event(
                Event(
                    kind=("rollback", "refused", "alert_ignored")[i % 3],
                    dependency=f"dep{i % 4}",
                    instance=f"vm-{i}",
                    target="vm-b1" if i % 3 == 0 else None,
                    outcome=("succeeded", "refused", "ignored")[i % 3],
                    time=start + timedelta(minutes=i),
                    trigger={"type": "alert", "fingerprint": f"f{i}", "labels": {"ünï": "cødé"}},
                    inputs={"health": {"vm-b1": 0.9}},
                    decision="act",
                    reason=f"reason {i} with 'quotes' and {{braces}}",
                    duration_s=0.25 * i,
                    details={"nested": {"list": [1, 2, i]}},
                )
            )
        store.set_primary("dep0", "vm-b1")
        store.set_applied_plan({"plan": {"dependencies": [{"name": "dep0", "instances": [{"host": "vm-b1"}]}]}})
        store.record_rf_change(RfChange("dep0", 3, start))
        store.enqueue([QueuedAlert("old", "2026-11-01T00:00:00Z", "firing", "dep0", "vm-a1", received_at=start)])
        (alert,) = store.pending(datetime.now(UTC))
        store.settle(alert.queue_ids, None)


def test_sqlite_to_postgresql_keeps_the_history_byte_for_byte(tmp_path: Path, postgres_database: str) -> None:
    source = f"sqlite:///{tmp_path / 'one-runner.db'}"
    _fill(source)
    before = _cli("history", "--store", source, "--format", "json", "--limit", "1000")
    assert before.returncode == 0, before.stderr
    migrated = _cli("store", "migrate", "--from", source, "--to", postgres_database)
    assert migrated.returncode == 0, migrated.stderr
    assert "30 events" in migrated.stdout and "verified" in migrated.stdout
    assert "not copied: 1 decided alerts" in migrated.stdout
    after = _cli("history", "--store", postgres_database, "--format", "json", "--limit", "1000")
    assert after.returncode == 0, after.stderr
    assert after.stdout == before.stdout
    checked = _cli("store", "check", postgres_database, "--format", "json")
    assert checked.returncode == 0, checked.stderr
    assert '"backend": "postgresql"' in checked.stdout and '"events": 30' in checked.stdout
    assert '"writable": true' in checked.stdout
    with open_store(postgres_database) as target:
        assert target.primaries() == {"dep0": "vm-b1"}
        assert target.applied_plan() is not None and [c.rf for c in target.rf_changes()] == [3]
    again = _cli("store", "migrate", "--from", source, "--to", postgres_database)
    assert again.returncode == 2 and "is not empty" in again.stderr and "Traceback" not in again.stderr


def test_a_store_with_work_in_flight_is_not_migrated(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'busy.db'}"
    now = datetime.now(UTC)
    with open_store(source) as store:
        store.enqueue([QueuedAlert("f", "2026-11-01T00:00:00Z", "firing", "dep0", "vm-a1", received_at=now)])
        (alert,) = store.pending(now)
        store.begin_action(ActionRecord("a1", "rollback", "dep0", "vm-a1", "runner-1", now, alert.queue_ids))
    refused = _cli("store", "migrate", "--from", source, "--to", f"sqlite:///{tmp_path / 'new.db'}")
    assert refused.returncode == 2
    assert "work in flight" in refused.stderr and "open_actions" in refused.stderr
    assert refused.stderr.count("\n") == 1


def test_check_reports_the_schema_and_counts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    _fill(url)
    checked = _cli("store", "check", url)
    assert checked.returncode == 0, checked.stderr
    lines = dict(line.split(": ", 1) for line in checked.stdout.splitlines())
    assert lines["backend"] == "sqlite" and lines["schema"] == "3"
    assert lines["events"] == "30" and lines["alerts_decided"] == "1" and lines["writable"] == "True"
