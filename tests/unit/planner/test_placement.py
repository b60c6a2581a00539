"""Placement: spread, sticky, capacity-aware, never two per VM, never the primary or the last serving."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.graph_data import base_graph, build, dependency

from depmirror.planner.placement import PlacementError, PlacementRequest, place
from depmirror.planner.state import HealthSnapshot, InstanceRecord


def request(name: str, rf: int, min_rf: int = 1, mode: str = "active-active") -> PlacementRequest:
    return PlacementRequest(name, rf, min_rf, mode)  # type: ignore[arg-type]


def hosts(result: object) -> list[str]:
    return [s.host for s in result.slots]  # type: ignore[attr-defined]


def test_three_instances_land_in_three_zones_with_one_primary() -> None:
    graph = build(base_graph())
    result = place(graph, [request("payments", 3)], {}, HealthSnapshot())["payments"]
    assert sorted(s.zone for s in result.slots) == ["zone-a", "zone-b", "zone-c"]
    assert [s.role for s in result.slots].count("primary") == 1
    assert {s.role for s in result.slots} == {"primary", "mirror"}


def test_active_passive_others_are_standbys() -> None:
    graph = build(base_graph())
    result = place(graph, [request("sessions", 2, mode="active-passive")], {}, HealthSnapshot())["sessions"]
    assert sorted(s.role for s in result.slots) == ["primary", "standby"]


def test_existing_instances_stay_put_when_another_dependency_changes() -> None:
    graph = build(base_graph())
    existing = {
        "payments": [
            InstanceRecord("payments", "vm-a2", "primary", "zone-a"),
            InstanceRecord("payments", "vm-b2", "mirror", "zone-b"),
        ]
    }
    before = place(graph, [request("payments", 2)], existing, HealthSnapshot())["payments"]
    after = place(graph, [request("payments", 2), request("reports", 2)], existing, HealthSnapshot())["payments"]
    assert hosts(before) == hosts(after) == ["vm-a2", "vm-b2"]
    assert not after.decommissions


def test_unhealthy_mirror_is_replaced_on_another_vm_and_unknown_health_changes_nothing() -> None:
    graph = build(base_graph())
    existing = {
        "payments": [
            InstanceRecord("payments", "vm-a1", "primary"),
            InstanceRecord("payments", "vm-b1", "mirror"),
        ]
    }
    unknown = place(graph, [request("payments", 2)], existing, HealthSnapshot())["payments"]
    assert hosts(unknown) == ["vm-a1", "vm-b1"] and not unknown.decommissions
    sick = HealthSnapshot(instances={"payments@vm-b1": 0.1})
    result = place(graph, [request("payments", 2)], existing, sick)["payments"]
    assert [d.host for d in result.decommissions] == ["vm-b1"]
    assert "unhealthy" in result.decommissions[0].reason
    assert "vm-b1" not in hosts(result) and len(result.slots) == 2


def test_the_primary_is_never_decommissioned_even_when_its_vm_is_gone() -> None:
    graph = build(base_graph())
    existing = {"payments": [InstanceRecord("payments", "vm-gone", "primary", "zone-a")]}
    result = place(graph, [request("payments", 2)], existing, HealthSnapshot())["payments"]
    primary = next(s for s in result.slots if s.role == "primary")
    assert primary.host == "vm-gone" and not primary.counts
    assert "never decommissioned" in primary.reason
    assert sum(s.counts for s in result.slots) == 2  # two serving instances besides it
    assert not result.decommissions


def test_a_full_vm_evicts_mirrors_not_the_primary() -> None:
    data = base_graph()
    data["vms"]["vm-a1"]["capacity"] = 1
    graph = build(data)
    existing = {
        "payments": [InstanceRecord("payments", "vm-a1", "primary")],
        "reports": [
            InstanceRecord("reports", "vm-b1", "primary"),
            InstanceRecord("reports", "vm-a1", "mirror"),
        ],
    }
    # reports is placed first (more critical), yet payments' primary keeps its slot on vm-a1.
    result = place(graph, [request("reports", 2), request("payments", 1)], existing, HealthSnapshot())
    assert hosts(result["payments"]) == ["vm-a1"]
    assert [(d.host, d.role) for d in result["reports"].decommissions] == [("vm-a1", "mirror")]
    assert "full" in result["reports"].decommissions[0].reason
    assert len(result["reports"].slots) == 2 and "vm-a1" not in hosts(result["reports"])


def test_two_primaries_on_a_full_vm_both_stay_and_the_extra_gets_a_replacement() -> None:
    data = base_graph()
    data["vms"]["vm-a1"]["capacity"] = 1
    graph = build(data)
    existing = {
        "payments": [InstanceRecord("payments", "vm-a1", "primary")],
        "reports": [InstanceRecord("reports", "vm-a1", "primary")],
    }
    result = place(graph, [request("reports", 1), request("payments", 1)], existing, HealthSnapshot())
    assert "vm-a1" in hosts(result["payments"]) and "vm-a1" in hosts(result["reports"])
    blocked = next(s for s in result["payments"].slots if s.host == "vm-a1")
    assert not blocked.counts and "never decommissioned" in blocked.reason
    assert sum(s.counts for s in result["payments"].slots) == 1


def test_the_last_serving_instance_is_kept_even_on_a_full_vm() -> None:
    data = base_graph()
    data["vms"]["vm-b1"]["capacity"] = 1
    graph = build(data)
    existing = {
        "payments": [InstanceRecord("payments", "vm-b1", "primary")],
        "reports": [
            InstanceRecord("reports", "vm-a1", "primary"),
            InstanceRecord("reports", "vm-b1", "mirror"),
        ],
    }
    sick_primary = HealthSnapshot(instances={"reports@vm-a1": 0.0})
    result = place(graph, [request("payments", 1), request("reports", 1)], existing, sick_primary)["reports"]
    kept = {s.host: s for s in result.slots}
    assert "vm-b1" in kept and "last serving instance" in kept["vm-b1"].reason
    assert "vm-a1" in kept  # the unhealthy primary stays too
    assert not result.decommissions


def test_lowering_rf_removes_the_extra_from_the_most_crowded_zone_never_the_primary() -> None:
    graph = build(base_graph())
    existing = {
        "payments": [
            InstanceRecord("payments", "vm-a1", "primary"),
            InstanceRecord("payments", "vm-a2", "mirror"),
            InstanceRecord("payments", "vm-b1", "mirror"),
        ]
    }
    result = place(graph, [request("payments", 2)], existing, HealthSnapshot())["payments"]
    assert hosts(result) == ["vm-a1", "vm-b1"]
    assert [d.host for d in result.decommissions] == ["vm-a2"]
    one = place(graph, [request("payments", 1)], existing, HealthSnapshot())["payments"]
    assert hosts(one) == ["vm-a1"]


def test_min_rf_that_unhealthy_vms_make_impossible_names_the_constraint() -> None:
    data = base_graph()
    data["dependencies"]["payments"]["replication"] = {"min": 4, "max": 4}
    graph = build(data)
    bad_vms = HealthSnapshot(vms={"vm-a1": 0.0, "vm-a2": 0.0, "vm-b1": 0.0})
    with pytest.raises(PlacementError) as caught:
        place(graph, [request("payments", 4, min_rf=4)], {}, bad_vms)
    assert caught.value.field == "dependencies.payments.replication.min"
    assert "one instance per VM" in caught.value.problem


def test_on_a_short_pool_an_extra_kept_mirror_yields_to_another_dependencys_minimum() -> None:
    """Found by the property test below: kept instances claimed the last slots before d5 had its one."""
    data = base_graph()
    for vm in data["vms"].values():
        vm["capacity"] = 2
    names = [f"d{i}" for i in range(6)]
    for i, name in enumerate(names):
        data["dependencies"][name] = dependency(tier=2, port=9400 + i)
    graph = build(data)
    requests = [request(name, 2 if name == "d4" else 1) for name in names]
    existing = {name: [] for name in names}
    existing["d4"] = [InstanceRecord("d4", "vm-a2", "primary"), InstanceRecord("d4", "vm-b1", "mirror")]
    three_bad_vms = HealthSnapshot(vms={"vm-a1": 0.0, "vm-b2": 0.0, "vm-c1": 0.0})  # 6 slots left

    result = place(graph, requests, existing, three_bad_vms)

    assert all(len(result[name].slots) >= 1 for name in names)
    assert hosts(result["d4"]) == ["vm-a2"], "the primary stays, the extra mirror goes"
    (gone,) = result["d4"].decommissions
    assert gone.host == "vm-b1" and "minimum RF of" in gone.reason


def test_rf_above_what_the_pool_can_hold_is_cut_with_a_note() -> None:
    graph = build(base_graph())
    result = place(graph, [request("payments", 8)], {}, HealthSnapshot())["payments"]
    assert len(result.slots) == 6
    assert result.cut is not None and "RF 8 wanted, 6 placed" in result.cut


@st.composite
def scenario(
    draw: st.DrawFn,
) -> tuple[dict[str, object], list[PlacementRequest], dict[str, list[InstanceRecord]]]:
    data = base_graph()
    vms = list(data["vms"])
    for host in vms:
        data["vms"][host]["capacity"] = draw(st.integers(2, 5))
    count = draw(st.integers(1, 6))
    requests, existing = [], {}
    for i in range(count):
        name = f"d{i}"
        data["dependencies"][name] = dependency(tier=2, port=9400 + i)
        requests.append(request(name, draw(st.integers(1, 4))))
        placed = draw(st.lists(st.sampled_from([*vms, "vm-old"]), max_size=4))
        existing[name] = [
            InstanceRecord(name, host, "primary" if j == 0 else "mirror") for j, host in enumerate(placed)
        ]
    return data, requests, existing


@settings(max_examples=80, deadline=None)
@given(scenario(), st.dictionaries(st.sampled_from(["vm-a1", "vm-b2", "vm-c1"]), st.none() | st.floats(0, 1)))
def test_never_two_instances_of_a_dependency_on_one_vm_and_same_input_same_result(
    case: tuple[dict[str, object], list[PlacementRequest], dict[str, list[InstanceRecord]]],
    vm_health: dict[str, float | None],
) -> None:
    data, requests, existing = case
    graph = build(data)  # type: ignore[arg-type]
    health = HealthSnapshot(vms=vm_health)
    first = place(graph, requests, existing, health)
    again = place(graph, requests, existing, health)
    for name, result in first.items():
        placed = hosts(result)
        assert len(placed) == len(set(placed)), f"{name} co-located: {placed}"
        assert [s.role for s in result.slots].count("primary") <= 1
        assert hosts(again[name]) == placed
        assert [d.host for d in again[name].decommissions] == [d.host for d in result.decommissions]
        for gone in result.decommissions:
            assert gone.role != "primary" or gone.host not in placed
        recorded_primary = next((r.host for r in existing[name] if r.role == "primary"), None)
        if recorded_primary is not None:
            assert recorded_primary not in {d.host for d in result.decommissions}
