"""The plan: JSON shape for the inventory plugin, the diff, stability, and the adjust scenarios."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.graph_data import base_graph, build

from depmirror.graph.load import load_graph
from depmirror.planner.plan import compute_plan
from depmirror.planner.state import HealthSnapshot, InstanceRecord, State

EXAMPLE = Path(__file__).resolve().parents[3] / "inventories" / "example" / "graph.yml"


def test_plan_json_carries_what_the_inventory_and_upstreams_need() -> None:
    graph = load_graph(EXAMPLE)
    document = json.loads(json.dumps(compute_plan(graph, now=1000).to_dict()))
    assert len(document["dependencies"]) == len(graph.dependencies)
    for dep in document["dependencies"]:
        assert {"name", "weight", "replication_factor", "mode", "instances", "port", "kind"} <= set(dep)
        assert 0 <= dep["weight"] <= 1
        assert dep["replication_factor"] == sum(i["counts_towards_rf"] for i in dep["instances"])
        roles = [i["role"] for i in dep["instances"]]
        assert roles.count("primary") == 1
        other = "mirror" if dep["mode"] == "active-active" else "standby"
        assert set(roles) <= {"primary", other}
        for instance in dep["instances"]:
            vm = graph.vms[instance["host"]]
            assert (instance["zone"], instance["address"], instance["port"]) == (
                vm.zone,
                vm.address,
                dep["port"],
            )
        assert dep["primary"]["host"] == next(i["host"] for i in dep["instances"] if i["role"] == "primary")
    assert document["load_balancers"] == [{"host": "lb1", "address": "198.18.0.2", "zone": "zone-a"}]
    assert document["routing"]["max_fails"] == 2
    kinds = {d["kind"]: d["mode"] for d in document["dependencies"] if d["kind"] == "redis"}
    assert kinds == {"redis": "active-passive"}


def test_every_action_has_a_reason_and_a_fresh_fleet_is_all_provision() -> None:
    plan = compute_plan(load_graph(EXAMPLE), now=0)
    actions = plan.actions()
    assert actions and all(a.action == "provision" and a.reason for a in actions)


def test_applying_the_plan_then_planning_again_changes_nothing() -> None:
    graph = load_graph(EXAMPLE)
    first = compute_plan(graph, now=1000)
    second = compute_plan(graph, first.next_state, now=5000)
    assert {a.action for a in second.actions()} == {"keep"}
    assert [(d.name, [(i.host, i.role) for i in d.instances]) for d in second.dependencies] == [
        (d.name, [(i.host, i.role) for i in d.instances]) for d in first.dependencies
    ]


def test_state_survives_its_json_form() -> None:
    first = compute_plan(load_graph(EXAMPLE), now=1000)
    restored = State.from_dict(json.loads(json.dumps(first.next_state.to_dict())))
    assert restored == first.next_state


def test_raising_a_tier_adds_a_mirror_in_another_zone_and_lowering_waits_the_window() -> None:
    data = base_graph()
    data["policy"] = {"replication": {"stabilisation_window": 600}}
    first = compute_plan(build(data), now=0)
    assert first.dependency("reports").replication_factor == 1
    data["dependencies"]["reports"]["tier"] = 0
    data["services"]["shop"]["depends_on"]["reports"] = {"rate": 500}
    raised = compute_plan(build(data), first.next_state, now=100)
    reports = raised.dependency("reports")
    assert reports.replication_factor == 2
    assert len({i.zone for i in reports.instances}) == 2
    new = [a for a in reports.actions if a.action == "provision"]
    assert len(new) == 1 and new[0].role in {"mirror", "standby"}

    data["dependencies"]["reports"]["tier"] = 3
    del data["services"]["shop"]["depends_on"]["reports"]
    lowered = build(data)
    held = compute_plan(lowered, raised.next_state, now=200)
    assert held.dependency("reports").replication_factor == 2
    assert held.dependency("reports").rf.direction == "pending-down"
    still = compute_plan(lowered, held.next_state, now=700)
    assert still.dependency("reports").replication_factor == 2
    done = compute_plan(lowered, still.next_state, now=800)
    gone = [a for a in done.dependency("reports").actions if a.action == "decommission"]
    assert done.dependency("reports").replication_factor == 1
    assert len(gone) == 1 and gone[0].role != "primary"


def test_without_now_no_window_ends() -> None:
    data = base_graph()
    first = compute_plan(build(data), now=0)
    assert first.now == 0
    data["services"]["shop"]["tier"] = 3
    later = compute_plan(build(data), first.next_state)
    assert later.now == 0.0
    assert all(d.rf.direction != "down" for d in later.dependencies)


def test_a_removed_dependency_loses_its_mirrors_but_not_its_primary() -> None:
    state = State(
        instances=(InstanceRecord("legacy", "vm-a1", "primary"), InstanceRecord("legacy", "vm-b1", "mirror")),
    )
    plan = compute_plan(build(base_graph()), state, now=0)
    assert [(a.action, a.host) for a in plan.removed] == [("keep", "vm-a1"), ("decommission", "vm-b1")]
    assert InstanceRecord("legacy", "vm-a1", "primary") in plan.next_state.instances


def test_budget_cuts_are_explained_in_the_json() -> None:
    data = base_graph()
    data["policy"] = {"cost_budget": 3}
    document = compute_plan(build(data), now=0).to_dict()
    assert document["budget"]["limit"] == 3 and document["budget"]["used"] <= 3
    cut = {d["name"]: d["rf"]["budget_cut"] for d in document["dependencies"] if d["rf"]["budget_cut"]}
    assert cut and all("cost budget 3" in why for why in cut.values())


def test_cycles_appear_as_warnings() -> None:
    data = base_graph()
    data["dependencies"]["sessions"]["depends_on"] = {"payments": {"rate": 1}}
    document = compute_plan(build(data), now=0).to_dict()
    assert document["cycles"] == [["payments", "sessions"]]
    assert any("cycle" in w for w in document["warnings"])


def test_a_long_cycle_is_named_in_full_in_the_plan_and_in_short_in_its_warning() -> None:
    data = base_graph()
    ring = [f"ring-{i:02d}" for i in range(20)]
    for index, name in enumerate(ring):
        data["dependencies"][name] = {
            "tier": 3,
            "kind": "tcp",
            "port": 9100 + index,
            "replication": {"min": 1, "max": 1},
            "deploy": {"command": "cat"},
            "depends_on": {ring[(index + 1) % len(ring)]: {"rate": 1}},
        }
    document = compute_plan(build(data), now=0).to_dict()
    assert document["cycles"] == [ring]
    (warning,) = [w for w in document["warnings"] if "ring-" in w]
    assert "ring-11" in warning and "ring-12" not in warning
    assert "(20 members; the plan's `cycles` lists them all)" in warning


def test_unknown_health_never_decommissions_anything() -> None:
    graph = load_graph(EXAMPLE)
    first = compute_plan(graph, now=0)
    unknown = HealthSnapshot(
        instances={f"{r.dependency}@{r.host}": None for r in first.next_state.instances},
        vms=dict.fromkeys(graph.vms),
        zones=dict.fromkeys(graph.zones),
    )
    again = compute_plan(graph, first.next_state, unknown, now=10_000)
    assert not [a for a in again.actions() if a.action == "decommission"]


@settings(max_examples=25, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["zone-a", "zone-b", "zone-c"]), st.none() | st.floats(0, 1)),
    st.dictionaries(st.sampled_from(["vm-a1", "vm-b1", "vm-c2"]), st.none() | st.floats(0, 1)),
    st.floats(0, 1e6),
)
def test_same_input_same_plan(zones: dict[str, float | None], vms: dict[str, float | None], now: float) -> None:
    graph = load_graph(EXAMPLE)
    state = compute_plan(graph, now=0).next_state
    health = HealthSnapshot(vms=vms, zones=zones)
    assert compute_plan(graph, state, health, now).to_dict() == compute_plan(graph, state, health, now).to_dict()
