"""Statistics of a recorded history (tests/unit/fleet/data/recorded_history.json, as `depmirror history
--format json` prints it): each figure checked against the events it comes from."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from depmirror.fleet.history_report import failures_from_events
from depmirror.fleet.history_stats import Durations, compute_stats, fault_started, reason_key
from depmirror.planner.learning import LearningPolicy, learned_rf
from depmirror.store.model import Event

RECORDED = Path(__file__).parent / "data" / "recorded_history.json"
ZONES = {
    "vm-a1": "zone-a",
    "vm-a3": "zone-a",
    "vm-b1": "zone-b",
    "vm-b2": "zone-b",
    "vm-c1": "zone-c",
    "vm-c2": "zone-c",
}


def event_from_dict(item: dict[str, Any]) -> Event:
    return Event(**{**item, "time": datetime.fromisoformat(item["time"])})


def recorded() -> list[Event]:
    return [event_from_dict(item) for item in json.loads(RECORDED.read_text())]


def test_per_dependency_counts_and_durations() -> None:
    stats = compute_stats(recorded())
    groups = {group.key: group for group in stats.groups}
    assert list(groups) == ["orders-db", "payments-api", "sessions"], "alert_ignored and rf_change are no group"
    payments = groups["payments-api"]
    assert (payments.failovers, payments.failovers_failed, payments.failbacks, payments.flaps) == (2, 1, 2, 1)
    # Alerts started 10:00:00 and 11:00:00.250; switched at 10:00:30 and 11:00:10.
    assert payments.fault_to_switched == Durations(count=2, p50=9.75, p90=30.0, max=30.0)
    # Switched 10:00:30 -> failed back 10:20:30; 11:00:10 -> 12:00:10 (that failback names the host alone).
    assert payments.switched_to_failback == Durations(count=2, p50=1200.0, p90=3600.0, max=3600.0)
    assert dict(payments.top_reasons) == {"cooldown": 1, "flapping": 1, "playbook failed": 1}
    sessions = groups["sessions"]
    assert (sessions.failovers, sessions.refusals, sessions.interrupted) == (1, 2, 1)
    assert sessions.fault_to_switched == Durations(count=1, p50=200.0, p90=200.0, max=200.0)
    assert sessions.top_reasons[0] == ("no healthy target", 2)
    orders = groups["orders-db"]
    assert (orders.failovers, orders.failovers_shadow, orders.held) == (1, 1, 1)
    # Its succeeded rollback's startsAt is template text, not a time: counted, not measured.
    assert orders.fault_to_switched.count == 0
    assert orders.switched_to_failback == Durations()


def test_totals_cover_every_group() -> None:
    stats = compute_stats(recorded())
    total = stats.total
    assert stats.events == 14
    assert (total.failovers, total.failovers_failed, total.failovers_shadow, total.failbacks) == (4, 1, 1, 2)
    assert (total.refusals, total.interrupted, total.flaps, total.held) == (2, 1, 1, 1)
    assert total.fault_to_switched == Durations(count=3, p50=30.0, p90=200.0, max=200.0)
    assert total.top_reasons[0] == ("no healthy target", 2)


def test_by_zone_and_by_vm() -> None:
    by_zone = {g.key: g for g in compute_stats(recorded(), by="zone", zone_of=ZONES).groups}
    assert set(by_zone) == {"zone-a", "zone-b", "zone-c"}
    assert (by_zone["zone-a"].failovers, by_zone["zone-a"].failbacks, by_zone["zone-a"].held) == (2, 2, 1)
    assert (by_zone["zone-b"].refusals, by_zone["zone-b"].flaps, by_zone["zone-b"].failovers) == (2, 1, 1)
    unknown = {g.key for g in compute_stats(recorded(), by="zone").groups}
    assert unknown == {"-"}, "a VM with no known zone is counted under '-', not dropped"
    by_vm = {g.key: g for g in compute_stats(recorded(), by="vm").groups}
    assert by_vm["vm-a1"].failovers == 2 and by_vm["vm-b2"].interrupted == 1


def test_since_and_until_bound_the_window() -> None:
    since = datetime(2026, 11, 2, 11, 0, tzinfo=UTC)
    stats = compute_stats(recorded(), since=since)
    payments = next(g for g in stats.groups if g.key == "payments-api")
    assert payments.failovers == 1 and payments.fault_to_switched.max == 9.75
    assert payments.switched_to_failback.max == 3600.0
    before = compute_stats(recorded(), until=since)
    assert before.total.failovers == 1 and before.total.switched_to_failback.max == 1200.0
    assert before.as_dict()["until"] == "2026-11-02T11:00:00+00:00"


def test_a_failback_without_its_rollback_in_the_window_measures_nothing() -> None:
    stats = compute_stats(recorded(), since=datetime(2026, 11, 2, 11, 45, tzinfo=UTC))
    assert stats.total.failbacks == 1
    assert stats.total.switched_to_failback == Durations()


def test_json_shape() -> None:
    document = compute_stats(recorded()).as_dict()
    json.dumps(document)  # plain JSON values only
    assert set(document) == {"by", "since", "until", "events", "total", "groups"}
    assert document["total"]["fault_to_switched_seconds"] == {"count": 3, "p50": 30.0, "p90": 200.0, "max": 200.0}
    assert document["groups"][0]["top_reasons"][0] == {"reason": "held by override #N", "count": 1}


def test_empty_history() -> None:
    stats = compute_stats([])
    assert stats.groups == () and stats.total.failovers == 0 and stats.total.fault_to_switched.p50 is None


def test_unknown_grouping_is_refused() -> None:
    with pytest.raises(ValueError, match="by: 'host'"):
        compute_stats([], by="host")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "starts_at",
    ["", "yesterday", "2026-11-02T10:00:00", "{{ 7*7 }}", "$(id)", "9" * 500, 12, None, ["2026-11-02T10:00:00Z"]],
)
def test_hostile_starts_at_measures_nothing(starts_at: object) -> None:
    event = Event(
        kind="rollback",
        dependency="d",
        outcome="succeeded",
        time=datetime(2026, 11, 2, 10, tzinfo=UTC),
        trigger={"starts_at": starts_at},
    )
    assert fault_started(event) is None
    assert compute_stats([event]).total.fault_to_switched.count == 0


def test_a_fault_after_the_switch_is_not_a_negative_duration() -> None:
    event = Event(
        kind="rollback",
        dependency="d",
        outcome="succeeded",
        time=datetime(2026, 11, 2, 10, tzinfo=UTC),
        trigger={"starts_at": "2026-11-02T11:00:00Z"},
    )
    assert compute_stats([event]).total.fault_to_switched.count == 0


def test_reason_keys_drop_what_varies() -> None:
    assert reason_key("cooldown: rollback #12 30s ago (cooldown_seconds 300)") == "cooldown"
    assert reason_key("interrupted 2 times") == "interrupted N times"
    assert reason_key("") == "(no reason)"
    assert len(reason_key("x" * 500)) == 80


def test_nearest_rank_percentiles() -> None:
    assert Durations.of([4, 1, 3, 2]) == Durations(count=4, p50=2.0, p90=4.0, max=4.0)
    assert Durations.of(range(1, 11)).p90 == 9.0


def test_the_documented_example_is_what_the_command_computes() -> None:
    text = (Path(__file__).resolve().parents[3] / "docs" / "history.md").read_text()
    example = json.loads(text.split("### Example", 1)[1].split("```json\n", 1)[1].split("```", 1)[0])
    computed = compute_stats(
        recorded(),
        since=datetime.fromisoformat(example["since"]),
        until=datetime.fromisoformat(example["until"]),
    ).as_dict()
    computed["groups"] = [group for group in computed["groups"] if group["key"] == "payments-api"]
    assert example == computed


def test_the_recorded_history_as_learning_input() -> None:
    failures = failures_from_events(recorded(), ZONES)
    assert sorted(f.event_id or 0 for f in failures) == [1, 4, 9, 10, 14], "rollbacks that ran; not the shadow one"
    first = next(f for f in failures if f.event_id == 1)
    assert (first.dependency, first.host, first.zone) == ("payments-api", "vm-a1", "zone-a")
    policy = LearningPolicy(enabled=True, failovers=3)
    now = max(f.time for f in failures)
    learned = learned_rf("payments-api", failures, now, policy, min_rf=1, max_rf=3, cost=1, budget_left=None)
    assert learned.min_rf == 2 and learned.events == (1, 4, 10)
