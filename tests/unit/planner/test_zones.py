"""Zone rules: an unhealthy or shifted zone gets no new instance and keeps no primary; unknown moves nothing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.graph_data import base_graph, build, dependency

from depmirror.cli.planning import render_explanation
from depmirror.graph.model import Graph
from depmirror.planner.placement import PlacementError, PlacementRequest, place
from depmirror.planner.plan import Plan, compute_plan
from depmirror.planner.state import HealthSnapshot, InstanceRecord, RfDecision, State
from depmirror.planner.zones import judge_zones

ZONE_C_DOWN = HealthSnapshot(zones={"zone-a": 1.0, "zone-b": 1.0, "zone-c": 0.1})
ZONE_C_RULE = "zone-c is unhealthy (0.10 < 0.5)"


def running(*records: tuple[str, str, str]) -> State:
    """A state of instances (dependency, host, role), each in the zone its VM is in; RF 3 decided at 0."""
    zones = {"a": "zone-a", "b": "zone-b", "c": "zone-c"}
    instances = tuple(InstanceRecord(d, h, r, zones[h[3]]) for d, h, r in records)  # type: ignore[arg-type]
    return State(instances=instances, decisions={d: RfDecision(rf=3, decided_at=0.0) for d, _, _ in records})


def in_zone(plan: Plan, zone: str) -> list[tuple[str, str, str, str]]:
    return [(d.name, i.host, i.role, i.status) for d in plan.dependencies for i in d.instances if i.zone == zone]


def assert_nothing_new_and_no_primary_in(plan: Plan, zone: str) -> None:
    found = in_zone(plan, zone)
    assert [f for f in found if f[3] == "new"] == [], "a new instance in an excluded zone"
    assert [f for f in found if f[2] == "primary"] == [], "a primary left in an excluded zone"
    for dep in plan.dependencies:
        assert all(not i.counts for i in dep.instances if i.zone == zone), "an excluded zone counts towards RF"
        assert dep.replication_factor == sum(1 for i in dep.instances if i.zone != zone)


def test_a_dead_zone_gets_no_new_instance_and_its_http_primary_moves_to_a_healthy_zone() -> None:
    graph = build(base_graph())
    state = running(("payments", "vm-c1", "primary"), ("payments", "vm-a1", "mirror"))

    plan = compute_plan(graph, state, ZONE_C_DOWN, now=100)

    assert_nothing_new_and_no_primary_in(plan, "zone-c")
    payments = plan.dependency("payments")
    assert payments.primary is not None and payments.primary.host == "vm-a1"
    assert payments.primary.status == "existing", "a running instance takes over before a new one"
    assert payments.primary.reason.endswith(f"becomes the primary in place of vm-c1: {ZONE_C_RULE}")
    (old,) = [i for i in payments.instances if i.host == "vm-c1"]
    assert (old.role, old.counts) == ("mirror", False)
    assert old.reason == f"kept, not counted towards RF: {ZONE_C_RULE}; the primary moves to vm-a1 (zone-a)"
    (keep,) = [a for a in payments.actions if a.host == "vm-c1"]
    assert keep.action == "keep" and keep.reason.endswith("role primary -> mirror")
    new = [i for i in payments.instances if i.status == "new"]
    assert new and all(f"; {ZONE_C_RULE}: no new instance there" in i.reason for i in new)
    assert all("among healthy zones" in i.reason for i in new)


def test_a_redis_primary_in_a_dead_zone_is_promoted_from_an_existing_replica_in_a_healthy_zone() -> None:
    graph = build(base_graph())
    state = running(("sessions", "vm-c1", "primary"), ("sessions", "vm-b1", "standby"))

    plan = compute_plan(graph, state, ZONE_C_DOWN, now=100)

    assert_nothing_new_and_no_primary_in(plan, "zone-c")
    sessions = plan.dependency("sessions")
    assert sessions.primary is not None
    assert (sessions.primary.host, sessions.primary.status) == ("vm-b1", "existing")
    assert "promoted to primary in place of vm-c1 (a replica that already runs, not an empty one)" in (
        sessions.primary.reason
    )
    assert {i.role for i in sessions.instances if i.host != "vm-b1"} == {"standby"}


def test_a_redis_primary_with_no_replica_outside_the_dead_zone_stays_rather_than_start_empty() -> None:
    graph = build(base_graph())
    state = running(("sessions", "vm-c1", "primary"))

    plan = compute_plan(graph, state, ZONE_C_DOWN, now=100)

    sessions = plan.dependency("sessions")
    assert sessions.primary is not None and sessions.primary.host == "vm-c1", "never a new instance as primary"
    assert not sessions.primary.counts
    new = [i for i in sessions.instances if i.status == "new"]
    assert new and {i.zone for i in new} <= {"zone-a", "zone-b"} and {i.role for i in new} == {"standby"}
    warning = (
        f"sessions: primary stays on vm-c1: {ZONE_C_RULE}, but it is stateful and no replica runs outside "
        "excluded zones to promote (a new instance would start empty)"
    )
    assert warning in plan.warnings
    assert "zone rule: primary stays on vm-c1" in render_explanation(plan, sessions)
    # Once a standby in a healthy zone is recorded as running, the next plan promotes it.
    again = compute_plan(graph, plan.next_state, ZONE_C_DOWN, now=200)
    assert again.dependency("sessions").primary.zone in {"zone-a", "zone-b"}  # type: ignore[union-attr]


def test_an_unknown_zone_keeps_its_primaries_and_gets_no_new_instance() -> None:
    graph = build(base_graph())
    state = running(("payments", "vm-c1", "primary"), ("sessions", "vm-c2", "primary"))
    health = HealthSnapshot(zones={"zone-a": 1.0, "zone-b": 0.9, "zone-c": None})

    plan = compute_plan(graph, state, health, now=100)

    assert sorted(in_zone(plan, "zone-c")) == [
        ("payments", "vm-c1", "primary", "existing"),
        ("sessions", "vm-c2", "primary", "existing"),
    ]
    assert not [a for a in plan.actions() if a.action == "decommission"]
    for dep in plan.dependencies:
        assert all(i.counts for i in dep.instances), "unknown health does not stop an instance counting"
    new = [i for d in plan.dependencies for i in d.instances if i.status == "new"]
    assert new and all("zone-c health is unknown: new instances go to healthy zones first" in i.reason for i in new)


def test_an_unknown_zone_takes_a_new_instance_only_when_no_healthy_zone_can() -> None:
    data = base_graph()
    data["dependencies"]["payments"]["replication"] = {"min": 3, "max": 3}
    graph = build(data)
    health = HealthSnapshot(zones={"zone-a": 1.0, "zone-b": None, "zone-c": None})

    payments = compute_plan(graph, None, health, now=0).dependency("payments")

    zones = sorted(i.zone or "" for i in payments.instances)
    assert zones[:2] == ["zone-a", "zone-a"] and zones[2] in {"zone-b", "zone-c"}
    (fallback,) = [i for i in payments.instances if i.zone != "zone-a"]
    assert "among zones of unknown health: no healthy zone has a free VM for it" in fallback.reason


def test_the_rf_raise_lands_in_healthy_zones() -> None:
    data = base_graph()
    data["dependencies"]["payments"]["replication"] = {"min": 1, "max": 5}
    graph = build(data)
    before = compute_plan(graph, None, now=0)
    assert before.dependency("payments").replication_factor == 3
    assert {i.zone for i in before.dependency("payments").instances} == {"zone-a", "zone-b", "zone-c"}

    down = HealthSnapshot(zones={"zone-a": 1.0, "zone-b": 1.0, "zone-c": 0.0})
    after = compute_plan(graph, before.next_state, down, now=100)

    payments = after.dependency("payments")
    assert payments.rf.direction == "up" and payments.rf.decided == 4
    assert payments.replication_factor == 4, "four instances that count, none of them in zone-c"
    assert sorted(i.zone for i in payments.instances if i.status == "new") == ["zone-a", "zone-b"]
    assert_nothing_new_and_no_primary_in(after, "zone-c")


def test_a_min_rf_only_the_dead_zone_could_hold_is_refused_not_placed_there() -> None:
    data = base_graph()
    data["dependencies"]["payments"]["replication"] = {"min": 5, "max": 5}
    graph = build(data)
    assert len(compute_plan(graph, None, now=0).dependency("payments").instances) == 5  # zone-c takes one

    plan = compute_plan(graph, None, ZONE_C_DOWN, now=0)

    payments = plan.dependency("payments")
    assert len(payments.instances) == 4 and not in_zone(plan, "zone-c")
    refusal = (
        f"minimum RF 5 refused: only 4 instance(s) fit outside excluded zones, and {ZONE_C_RULE}: "
        "no new instance is placed there"
    )
    assert payments.rf.placement_cut == refusal
    assert f"payments: {refusal}" in plan.warnings
    assert f"  cut: {refusal}" in render_explanation(plan, payments)


def test_a_min_rf_the_pool_cannot_hold_even_with_the_dead_zone_still_stops_the_plan() -> None:
    data = base_graph()
    data["dependencies"]["payments"]["replication"] = {"min": 5, "max": 5}
    graph = build(data)
    state = running(("payments", "vm-c1", "primary"), ("payments", "vm-c2", "mirror"))
    sick_vm = HealthSnapshot(vms={"vm-a1": 0.0}, zones=ZONE_C_DOWN.zones)
    with pytest.raises(PlacementError) as caught:
        compute_plan(graph, state, sick_vm, now=0)
    assert caught.value.field == "dependencies.payments.replication.min"


def test_a_zonal_shift_excludes_its_zone_until_it_expires() -> None:
    graph = build(base_graph())
    base = running(("payments", "vm-c1", "primary"), ("payments", "vm-a1", "mirror"))
    shifted = State(base.instances, base.decisions, zonal_shifts={"zone-c": 2000.0})

    during = compute_plan(graph, shifted, now=1000)

    assert_nothing_new_and_no_primary_in(during, "zone-c")
    payments = during.dependency("payments")
    assert payments.primary is not None and payments.primary.host == "vm-a1"
    assert payments.primary.reason.endswith(
        "becomes the primary in place of vm-c1: zone-c is under a zonal shift until 2000"
    )
    assert "zonal_shifts" not in during.to_dict()["state"], "the plan's next state does not carry a shift"

    after = compute_plan(graph, shifted, now=2000)
    assert after.to_dict() == compute_plan(graph, base, now=2000).to_dict(), "an expired shift is ignored"
    assert after.dependency("payments").primary.host == "vm-c1"  # type: ignore[union-attr]


def test_a_shift_of_a_zone_the_graph_does_not_have_is_ignored_with_a_warning() -> None:
    graph = build(base_graph())
    plan = compute_plan(graph, State(zonal_shifts={"zone-x": 5000.0}), now=1000)
    assert "zonal shift of zone-x ignored: the graph has no such zone" in plan.warnings
    assert plan.to_dict()["dependencies"] == compute_plan(graph, now=1000).to_dict()["dependencies"]


def test_explain_names_the_zone_rule_that_applied() -> None:
    graph = build(base_graph())
    state = running(("reports", "vm-c1", "primary"))
    shifted = State(state.instances, state.decisions, zonal_shifts={"zone-c": 9000.0})
    plan = compute_plan(graph, shifted, HealthSnapshot(zones={"zone-a": 1.0, "zone-b": None}), now=1000)

    text = render_explanation(plan, plan.dependency("reports"))

    assert "zones:\n" in text
    assert "  zone-a is healthy (1.00): takes new instances\n" in text
    assert "  zone-b health is unknown: keeps its instances and primaries; new instances only when no healthy" in text
    assert (
        "  zone-c is under a zonal shift until 9000: no new instance, its primaries move to healthy zones, "
        "its instances do not count towards RF\n"
    ) in text
    assert "becomes the primary in place of vm-c1: zone-c is under a zonal shift until 9000" in text
    assert "on vm-c1 (zone-c, 198.18.0.31:9001): kept, not counted towards RF: zone-c is under a zonal shift" in text


def test_without_zone_rules_explain_shows_no_zone_section() -> None:
    graph = build(base_graph())
    plan = compute_plan(graph, now=0)
    assert not plan.zones.active
    assert "zones:" not in render_explanation(plan, plan.dependency("payments"))


def test_zones_of_unknown_health_everywhere_plan_as_no_health_at_all() -> None:
    graph = build(base_graph())
    first = compute_plan(graph, now=0)
    unknown = HealthSnapshot(zones=dict.fromkeys(graph.zones))
    assert compute_plan(graph, first.next_state, unknown, now=10).to_dict() == (
        compute_plan(graph, first.next_state, now=10).to_dict()
    )


def test_state_json_carries_zonal_shifts_only_when_there_are_some() -> None:
    state = State(zonal_shifts={"zone-c": 1700003600.0})
    assert state.to_dict()["zonal_shifts"] == {"zone-c": 1700003600.0}
    assert State.from_dict(state.to_dict()) == state
    assert "zonal_shifts" not in State().to_dict()


def _request(name: str, rf: int, stateful: bool) -> PlacementRequest:
    mode = "active-passive" if stateful else "active-active"
    return PlacementRequest(name, rf, 1, mode, stateful)  # type: ignore[arg-type]


@st.composite
def outage(draw: st.DrawFn) -> tuple[Graph, list[PlacementRequest], dict[str, list[InstanceRecord]], str, bool]:
    data = base_graph()
    vms = list(data["vms"])
    for host in vms:
        data["vms"][host]["capacity"] = draw(st.integers(2, 5))
    requests, existing = [], {}
    for i in range(draw(st.integers(1, 6))):
        name = f"d{i}"
        data["dependencies"][name] = dependency(tier=2, port=9400 + i)
        requests.append(_request(name, draw(st.integers(1, 4)), draw(st.booleans())))
        placed = draw(st.lists(st.sampled_from(vms), max_size=4, unique=True))
        recorded = draw(st.booleans())  # False: no primary recorded, the planner picks one
        existing[name] = [
            InstanceRecord(name, host, "primary" if j == 0 and recorded else "mirror") for j, host in enumerate(placed)
        ]
    return build(data), requests, existing, draw(st.sampled_from(["zone-a", "zone-b", "zone-c"])), draw(st.booleans())


@settings(max_examples=120, deadline=None)
@given(outage())
def test_no_plan_puts_a_primary_or_a_new_instance_in_a_dead_zone(
    case: tuple[Graph, list[PlacementRequest], dict[str, list[InstanceRecord]], str, bool],
) -> None:
    graph, requests, existing, dead, by_shift = case
    health = HealthSnapshot(zones={z: 1.0 for z in graph.zones} | ({} if by_shift else {dead: 0.0}))
    zones = judge_zones(graph, health, {dead: 100.0} if by_shift else {}, now=50.0)

    results = place(graph, requests, existing, health, zones)

    for request in requests:
        slots = results[request.name].slots
        assert not [s.host for s in slots if s.zone == dead and not s.existing], "new instance in the dead zone"
        assert all(not s.counts for s in slots if s.zone == dead)
        primary = next((s for s in slots if s.role == "primary"), None)
        if primary is not None and primary.zone == dead:
            # Allowed only where no instance outside could take over (stateful: none that already runs).
            outside = [s for s in slots if s.zone != dead and (s.existing or not request.stateful)]
            assert not outside, f"{request.name}: primary left on {primary.host} in the dead zone"
            assert results[request.name].warnings
