"""Zonal shift decisions and their records: each safety check refuses with its reason, a shift queues one
switchover per primary in the zone (and only those), ending it queues their failbacks; on a real SQLite
store, with the runner's queue contract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.graph_data import base_graph, build, dependency

from depmirror.fleet.current import state_from_store
from depmirror.fleet.planning import build_inventory, plan_for_playbook
from depmirror.fleet.zonal_shift import (
    END_ALERTNAME,
    SHIFT_ALERTNAME,
    Moved,
    ShiftRequest,
    decide_shift,
    moves_recorded,
)
from depmirror.fleet.zonal_shift_service import end_shift, requeue_switchovers, start_shift, status
from depmirror.planner.state import InstanceRecord, State
from depmirror.store import Event, EventFilter, Store, ZonalShift, open_store
from depmirror.views.upstreams import build_upstreams

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _state() -> State:
    """payments' primary in zone-a, sessions' in zone-b, reports' in zone-a; mirrors elsewhere."""
    return State(
        instances=(
            InstanceRecord("payments", "vm-a1", "primary", "zone-a"),
            InstanceRecord("payments", "vm-b1", "mirror", "zone-b"),
            InstanceRecord("sessions", "vm-b2", "primary", "zone-b"),
            InstanceRecord("sessions", "vm-a2", "standby", "zone-a"),
            InstanceRecord("reports", "vm-a2", "primary", "zone-a"),
            InstanceRecord("reports", "vm-c1", "mirror", "zone-c"),
        )
    )


def _request(zone: str = "zone-a", **kw: Any) -> ShiftRequest:
    return ShiftRequest(
        zone=zone,
        reason=kw.pop("reason", "zone-a is down"),
        created_by=kw.pop("created_by", "alice"),
        now=kw.pop("now", NOW),
        **kw,
    )


def _shift(zone: str, hours: float = 1.0, start: datetime = NOW) -> ZonalShift:
    return ZonalShift(zone, "drill", "bob", start, start + timedelta(hours=hours), id=7)


def test_a_shift_moves_every_primary_in_the_zone_and_nothing_else() -> None:
    decision = decide_shift(build(base_graph()), _state(), [], _request())
    assert decision.refusal is None and decision.shift is not None
    assert decision.moves == (Moved("payments", "payments@vm-a1"), Moved("reports", "reports@vm-a2"))
    assert decision.shift.expires_ts == NOW + timedelta(hours=1)


def test_a_dependency_with_nowhere_to_go_is_not_queued_and_the_shift_says_so() -> None:
    # audit runs only in zone-a: a switchover would be refused (no target) a second time, after its own
    # alert's refusal (issue 16: exactly one event per affected dependency); the shift's event names it.
    state = State(instances=(*_state().instances, InstanceRecord("audit", "vm-a1", "primary", "zone-a")))
    data = base_graph()
    data["dependencies"]["audit"] = dependency(port=9177)
    decision = decide_shift(build(data), state, [], _request())
    assert decision.refusal is None
    assert [m.dependency for m in decision.moves] == ["payments", "reports"]
    assert any(note.startswith("audit: no instance outside zone-a") for note in decision.notes), decision.notes


@pytest.mark.parametrize(
    ("request_kw", "active", "refusal"),
    [
        ({"zone": "zone-x"}, [], "unknown zone 'zone-x': the graph has zone-a, zone-b, zone-c"),
        ({"zone": "{{ lookup('pipe','id') }}"}, [], "unknown zone"),
        ({"zone": "z" * 10_000}, [], "unknown zone 'zzzzz"),
        ({"expires_s": 73 * 3600.0}, [], "over the maximum of 72h"),
        ({"expires_s": 0.0}, [], "positive duration"),
        ({"expires_s": float("nan")}, [], "positive duration"),
        ({"reason": "  "}, [], "a reason is required"),
        ({"reason": "x" * 501}, [], "at most 500 printable characters"),
        ({"reason": "line\nbreak"}, [], "printable"),
        ({}, [_shift("zone-a")], "zone zone-a is already shifted (shift 7 by bob"),
        ({}, [_shift("zone-b")], "zone zone-b is already shifted and policy.zonal_shift.max_concurrent is 1"),
    ],
)
def test_each_safety_check_refuses_with_its_reason(
    request_kw: dict[str, Any], active: list[ZonalShift], refusal: str
) -> None:
    decision = decide_shift(build(base_graph()), _state(), active, _request(**request_kw))
    assert decision.shift is None and decision.refusal is not None
    assert refusal in decision.refusal
    assert len(decision.refusal) < 700  # a huge label never makes a huge reason


def test_an_expired_shift_of_another_zone_does_not_count() -> None:
    old = _shift("zone-b", hours=1, start=NOW - timedelta(hours=2))
    assert decide_shift(build(base_graph()), _state(), [old], _request()).refusal is None


def test_the_policy_may_allow_two_zones_but_never_the_last_one() -> None:
    data = base_graph()
    data["policy"] = {"zonal_shift": {"max_concurrent": 3}}
    graph = build(data)
    assert decide_shift(graph, _state(), [_shift("zone-b")], _request()).refusal is None
    last = decide_shift(graph, _state(), [_shift("zone-b"), _shift("zone-c")], _request())
    assert last.refusal == "shifting zone-a would leave no zone to serve from"


def test_refused_when_the_zones_left_cannot_hold_a_minimum_rf() -> None:
    data = base_graph()
    data["dependencies"]["payments"]["replication"] = {"min": 5, "max": 6}
    decision = decide_shift(build(data), _state(), [], _request())
    assert decision.refusal is not None
    assert "the zones left (zone-b, zone-c) have 4 VM(s), fewer than the minimum RF of payments (min RF 5)" in (
        decision.refusal
    )


def test_refused_when_the_zones_left_lack_capacity_for_every_minimum() -> None:
    data = base_graph()
    for vm in data["vms"].values():
        vm["capacity"] = 1
    for n in range(3):
        data["dependencies"][f"extra{n}"] = dependency(port=9200 + n, replication={"min": 1, "max": 1})
    decision = decide_shift(build(data), _state(), [], _request())
    assert decision.refusal is not None and "hold 4 instance(s) (VM capacity), fewer than the 6" in decision.refusal


def _store(tmp_path: Path) -> Store:
    return open_store(f"sqlite:///{tmp_path / 'h.db'}")


def _applied(store: Store) -> None:
    """An applied plan as adjust records it, with the instances of _state()."""
    deps: dict[str, list[dict[str, Any]]] = {}
    for record in _state().instances:
        deps.setdefault(record.dependency, []).append({"host": record.host, "role": record.role})
    store.set_applied_plan(
        {
            "plan": {"dependencies": [{"name": n, "instances": i} for n, i in deps.items()]},
            "state": _state().to_dict(),
        }
    )


def test_start_records_the_shift_its_event_and_one_queue_item_per_primary(tmp_path: Path) -> None:
    graph = build(base_graph())
    with _store(tmp_path) as store:
        _applied(store)
        store.set_primary("reports", "vm-c1")  # a rollback moved it out already: not queued again
        result = start_shift(store, graph, _request())
        assert result.shift is not None and result.queued == 1
        (item,) = store.pending(NOW + timedelta(seconds=1))
        assert item.dependency == "payments" and item.instance == "payments@vm-a1" and item.status == "firing"
        assert item.fingerprint == f"zonal_shift:zone-a:payments:{int(NOW.timestamp())}"
        assert item.labels == {
            "alertname": SHIFT_ALERTNAME,
            "dependency": "payments",
            "instance": "payments@vm-a1",
            "zone": "zone-a",
        }
        (event,) = store.events(EventFilter(kinds=("zonal_shift",)))
        assert event.outcome == "succeeded" and event.details["shift_id"] == result.shift.id
        assert moves_recorded(event.details) == (Moved("payments", "payments@vm-a1"),)
        # Resent, or after a crash: the same items are duplicates, never a second switchover.
        assert requeue_switchovers(store, graph, result.shift, NOW + timedelta(minutes=1)) == 0
        again = start_shift(store, graph, _request(now=NOW + timedelta(minutes=1)))
        assert again.shift is None and again.event.kind == "refused" and "already shifted" in again.event.reason
        state = state_from_store(store.url)
        assert state is not None and state.zonal_shifts == {"zone-a": (NOW + timedelta(hours=1)).timestamp()}


def test_shadow_records_what_would_move_and_changes_nothing(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        _applied(store)
        result = start_shift(store, build(base_graph()), _request(), shadow=True)
        assert result.shift is None and result.event.outcome == "shadow"
        assert "would shift (shadow)" in result.event.reason and "2 primary(ies) to move" in result.event.reason
        assert store.zonal_shifts() == [] and store.pending(NOW + timedelta(hours=1)) == []


def test_a_refusal_is_recorded_with_its_reason(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        result = start_shift(store, build(base_graph()), _request(zone="nowhere"))
        assert result.refused and store.zonal_shifts() == []
        (event,) = store.events()
        assert event.kind == "refused" and event.action == "zonal_shift" and "unknown zone" in event.reason


def test_ending_queues_one_failback_per_moved_dependency_after_the_hold(tmp_path: Path) -> None:
    graph = build(base_graph())
    with _store(tmp_path) as store:
        _applied(store)
        started = start_shift(store, graph, _request())
        assert started.shift is not None
        for item in store.pending(NOW + timedelta(seconds=1)):
            store.settle(item.queue_ids, None)  # the worker switched them over
        later = NOW + timedelta(minutes=20)
        ended = end_shift(
            store,
            "zone-a",
            now=later,
            end_reason="zone end by alice",
            ended_by="alice",
            failback=True,
            failback_hold_s=60,
        )
        assert ended is not None and ended.queued == 2 and ended.shift.end_reason == "zone end by alice"
        assert store.pending(later) == []  # not before the failback hold
        items = store.pending(later + timedelta(seconds=61))
        assert sorted((i.dependency, i.instance, i.status, i.labels["alertname"]) for i in items) == [
            ("payments", "payments@vm-a1", "resolved", END_ALERTNAME),
            ("reports", "reports@vm-a2", "resolved", END_ALERTNAME),
        ]
        (event,) = store.events(EventFilter(kinds=("zonal_shift_end",)))
        assert event.reason == "zone end by alice" and event.details["failback"] is True
        assert (
            end_shift(store, "zone-a", now=later, end_reason="x", ended_by="y", failback=True, failback_hold_s=0)
            is None
        )
        state = state_from_store(store.url)
        assert state is not None and state.zonal_shifts == {}
        assert [row["state"] for row in status(store, later)] == ["ended"]


def test_without_failback_ending_queues_nothing(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        _applied(store)
        start_shift(store, build(base_graph()), _request())
        ended = end_shift(
            store, "zone-a", now=NOW, end_reason="expired", ended_by="runner:r1", failback=False, failback_hold_s=0
        )
        assert ended is not None and ended.queued == 0


def test_before_any_adjust_the_graph_plan_says_where_primaries_run(tmp_path: Path) -> None:
    graph = build(base_graph())
    with _store(tmp_path) as store:
        result = start_shift(store, graph, _request())
        assert result.shift is not None
        assert all(m.instance.startswith(f"{m.dependency}@vm-a") for m in result.decision.moves)


def test_moves_recorded_ignores_malformed_details() -> None:
    bad = Event(kind="zonal_shift", dependency="-", outcome="succeeded", details={"moved": [1, {"dependency": 2}]})
    assert moves_recorded(bad.details) == ()
    assert moves_recorded({"moved": "x"}) == ()


def test_the_plan_and_the_inventory_carry_the_shift_to_the_upstreams(tmp_path: Path) -> None:
    graph_file = tmp_path / "graph.yml"
    graph_file.write_text(yaml.safe_dump(base_graph()))
    url = f"sqlite:///{tmp_path / 'h.db'}"
    with open_store(url) as store:
        _applied(store)
    before, _ = plan_for_playbook(graph_file, store=url)
    assert "shifted_zones" not in before["routing"]  # no shift: the plan is what it was
    inventory = build_inventory(graph_file, store=url)
    assert "shifted_zones" not in inventory["groups"]["depmirror_load_balancers"]["vars"]["depmirror_routing"]
    now = datetime.now(UTC)
    with open_store(url) as store:
        start_shift(store, build(base_graph()), _request(now=now))
    after, _ = plan_for_playbook(graph_file, store=url)
    assert after["routing"]["shifted_zones"] == ["zone-a"]
    routing = build_inventory(graph_file, store=url)["groups"]["depmirror_load_balancers"]["vars"]["depmirror_routing"]
    assert routing["shifted_zones"] == ["zone-a"]
    for upstream in build_upstreams(after["dependencies"], routing):
        zones = {i["host"]: i["zone"] for d in after["dependencies"] for i in d["instances"]}
        serving = [s for s in upstream.servers if not s.backup]
        assert serving and all(zones[s.host] != "zone-a" for s in serving), upstream
