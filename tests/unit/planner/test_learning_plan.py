"""`policy.learning` wired into compute_plan: the raised minimum RF (with the hysteresis), the reason and
events `explain` and the `rf_change` event show, the cost budget, active-active, placement penalties, and
plans byte for byte unchanged while the policy is off."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.graph_data import base_graph, build

from depmirror.cli.planning import render_explanation
from depmirror.fleet.applied import record_applied_plan
from depmirror.planner.learning import Failure
from depmirror.planner.plan import Plan, compute_plan
from depmirror.store import EventFilter, open_store

DAY = 86400.0
NOW = 100 * DAY


def graph_with(learning: dict[str, Any] | None = None, **policy: Any) -> Any:
    data = base_graph()
    data["policy"] = dict(policy)
    if learning is not None:
        data["policy"]["learning"] = learning
    return build(data)


def failovers(
    count: int, dependency: str = "reports", *, ago: float = 3600.0, hosts: tuple[str, ...] = ()
) -> list[Failure]:
    hosts = hosts or tuple(f"vm-{'abc'[i % 3]}1" for i in range(count))
    return [
        Failure(time=NOW - ago - i * 60, dependency=dependency, host=hosts[i % len(hosts)], zone=None, event_id=10 + i)
        for i in range(count)
    ]


def text(plan: Plan) -> str:
    return json.dumps(plan.to_dict(), indent=2, sort_keys=False)


def test_off_plans_stay_byte_identical_whatever_the_history() -> None:
    history = failovers(9) + failovers(9, "payments") + failovers(9, "sessions", hosts=("vm-a1",))
    plain = text(compute_plan(graph_with(), now=NOW))
    assert text(compute_plan(graph_with(), now=NOW, history=history)) == plain
    assert text(compute_plan(graph_with({"enabled": False}), now=NOW, history=history)) == plain
    # On, with nothing in the history that counts, it is the same plan too.
    assert text(compute_plan(graph_with({}), now=NOW, history=failovers(1))) == plain


def test_three_failovers_raise_the_minimum_rf_with_the_reason_history_and_the_events() -> None:
    off = compute_plan(graph_with(), now=NOW).dependency("reports")
    assert off.replication_factor == 1  # tier 3, nothing calls it: RF 1 of 1..2
    plan = compute_plan(graph_with({"window": "14d"}), now=NOW, history=failovers(3))
    reports = plan.dependency("reports")
    assert reports.replication_factor == 2
    assert reports.rf.reason.startswith("history: 3 failovers within 14d") and "1 -> 2" in reports.rf.reason
    assert "(events #10, #11, #12)" in reports.rf.reason
    shown = next(d for d in plan.to_dict()["dependencies"] if d["name"] == "reports")["rf"]["history"]
    assert shown == {"min": 2, "raised_by": 1, "reason": reports.rf.learned.reason, "events": [10, 11, 12]}  # type: ignore[union-attr]
    explained = render_explanation(plan, reports)
    assert "(min 1, raised to 2 by the history, max 2)" in explained
    assert "history events: #10, #11, #12" in explained
    assert "history" not in render_explanation(compute_plan(graph_with(), now=NOW), off)


def test_the_rf_change_adjust_records_carries_the_history_reason(tmp_path: Path) -> None:
    url = str(tmp_path / "state.db")
    record_applied_plan(url, compute_plan(graph_with({}), now=NOW).to_dict())
    raised = compute_plan(graph_with({}), now=NOW + 60, history=failovers(3))
    record_applied_plan(url, raised.to_dict())
    with open_store(url) as store:
        newest = store.events(EventFilter(dependency="reports", kinds=("rf_change",), limit=1))[0]
    assert newest.decision == "replication factor 1 -> 2"
    assert newest.reason.startswith("history: 3 failovers") and "#10, #11, #12" in newest.reason


def test_hysteresis_applies_when_the_effect_decays() -> None:
    graph = graph_with({"half_life": "1d"})
    raised = compute_plan(graph, now=NOW, history=failovers(3))
    assert raised.dependency("reports").replication_factor == 2
    # Two half-lives later the raise is gone; RF 2 is kept for the stabilisation window (600 s), then drops.
    later = NOW + 2 * DAY
    held = compute_plan(graph, raised.next_state, now=later, history=failovers(3))
    assert held.dependency("reports").replication_factor == 2
    assert held.dependency("reports").rf.direction == "pending-down"
    dropped = compute_plan(graph, held.next_state, now=later + 601, history=failovers(3))
    assert dropped.dependency("reports").replication_factor == 1


def test_the_cost_budget_bounds_the_raise_and_the_most_critical_goes_first() -> None:
    # Min RFs cost 3 (three dependencies, cost 1 each); a budget of 4 pays for one raise only.
    history = failovers(3, "reports") + failovers(3, "payments")
    plan = compute_plan(graph_with({}, cost_budget=4), now=NOW, history=history)
    assert plan.dependency("payments").rf.learned is not None  # heavier: served first
    assert plan.dependency("reports").rf.learned is None
    assert plan.budget["placed"] <= 4


def test_active_active_once_raised_for_a_stateless_kind_only() -> None:
    history = failovers(3, "reports") + failovers(3, "sessions")
    plan = compute_plan(graph_with({"active_active": True}), now=NOW, history=history)
    assert plan.dependency("reports").mode == "active-active"
    assert plan.dependency("reports").mode_reason.startswith("history:")
    assert plan.dependency("sessions").mode == "active-passive", "redis: one writer, whatever the history"
    off = compute_plan(graph_with({}), now=NOW, history=history)
    assert off.dependency("reports").mode == "active-passive"


def test_a_failing_vm_gets_new_instances_last_and_explain_cites_its_events() -> None:
    first = compute_plan(graph_with({}), now=NOW).dependency("payments")
    host = first.instances[0].host
    # Another dependency failed over away from that VM three times: it is penalised.
    history = failovers(3, "sessions", hosts=(host,))
    plan = compute_plan(graph_with({"failovers": 10}), now=NOW, history=history)
    payments = plan.dependency("payments")
    assert host not in {i.host for i in payments.instances}
    zone = first.instances[0].zone
    assert zone in {i.zone for i in payments.instances}, "the zone still gets its instance, on another VM"
    new_there = next(i for i in payments.instances if i.zone == zone)
    assert f"{host} penalised 0.495 by the history (events #10, #11, #12): taken last" in new_there.reason
    # What already runs there stays: penalties only steer new instances.
    kept = compute_plan(
        graph_with({"failovers": 10}), compute_plan(graph_with(), now=NOW).next_state, now=NOW, history=history
    )
    assert host in {i.host for i in kept.dependency("payments").instances}


@settings(max_examples=60, deadline=None)
@given(
    history=st.lists(
        st.builds(
            Failure,
            time=st.floats(min_value=NOW - 20 * DAY, max_value=NOW),
            dependency=st.sampled_from(["payments", "sessions", "reports"]),
            host=st.sampled_from(["vm-a1", "vm-b1", "vm-c2"]),
            zone=st.sampled_from(["zone-a", "zone-b", None]),
            event_id=st.integers(1, 1000),
        ),
        max_size=30,
    ),
    budget=st.one_of(st.none(), st.integers(3, 12)),
    step=st.integers(1, 4),
)
def test_a_learned_plan_never_goes_above_max_nor_the_budget(
    history: list[Failure], budget: int | None, step: int
) -> None:
    graph = graph_with({"failovers": 1, "rf_step": step, "max_raise": 10, "half_life": "30d"}, cost_budget=budget)
    plan = compute_plan(graph, now=NOW, history=history)
    for item in plan.dependencies:
        assert item.replication_factor <= item.dependency.replication.max_rf
    if budget is not None:  # the min RFs cost 3, within every budget drawn here
        assert plan.budget["placed"] <= budget


def test_a_raise_the_pool_cannot_hold_is_cut_never_a_failed_plan() -> None:
    data = base_graph()
    data["zones"] = {"zone-a": {}, "zone-b": {}}
    data["vms"] = {
        "vm-a1": {"address": "198.18.0.11", "zone": "zone-a", "capacity": 2},
        "vm-b1": {"address": "198.18.0.21", "zone": "zone-b", "capacity": 1},
    }
    data["policy"] = {"learning": {}}
    plan = compute_plan(build(data), now=NOW, history=failovers(3, "reports"))
    reports = plan.dependency("reports")
    assert reports.rf.learned is not None and reports.rf.learned.min_rf == 2
    assert reports.replication_factor == 1 and reports.rf.placement_cut is not None


def test_a_failing_zone_comes_after_the_others_but_spreading_still_comes_first() -> None:
    assert compute_plan(graph_with({}), now=NOW).dependency("reports").instances[0].zone == "zone-c"
    history = [
        Failure(time=NOW - 60 * i, dependency="audit", host=f"vm-c{1 + i % 2}", zone="zone-c", event_id=50 + i)
        for i in range(4)
    ]
    plan = compute_plan(graph_with({"failovers": 10}), now=NOW, history=history)
    assert plan.dependency("reports").instances[0].zone != "zone-c", "RF 1: a zone that keeps failing is avoided"
    payments = plan.dependency("payments")
    assert {i.zone for i in payments.instances} == {"zone-a", "zone-b", "zone-c"}, "RF 3 still spans every zone"
    there = next(i for i in payments.instances if i.zone == "zone-c")
    assert "zone zone-c penalised 0.75 by the history (events #50, #51, #52, #53)" in there.reason
    assert f"{there.host} penalised" in there.reason  # every VM of zone-c failed: one of them is taken
