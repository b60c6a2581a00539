"""A run limited to some hosts (--limit, AWX's limit prompt): what it applies and what the store records."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from depmirror.fleet.applied import part_to_apply, plan_of, record_applied_plan
from depmirror.fleet.current import state_from_store
from depmirror.fleet.partial import applied_part
from depmirror.graph.load import load_graph, parse_graph
from depmirror.planner.plan import compute_plan
from depmirror.store import open_store

EXAMPLE = Path(__file__).resolve().parents[3] / "inventories" / "example" / "graph.yml"
ZONE_A = ["vm-a1", "vm-a2", "lb1"]  # the inventory's zone_zone_a: lb1 sits in zone-a
EVERY_VM = ["vm-a1", "vm-a2", "vm-b1", "vm-b2", "vm-c1", "vm-c2"]


def _plan(now: float = 1000.0) -> dict[str, Any]:
    return compute_plan(load_graph(EXAMPLE), now=now).to_dict()


def _placed(plan: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(d["name"], i["host"], i["role"]) for d in plan["dependencies"] for i in d["instances"]}


def test_a_run_that_reaches_every_host_applies_the_plan_unchanged() -> None:
    plan = _plan()
    applied = applied_part(plan, None, [*EVERY_VM, "lb1"])
    assert {k: v for k, v in applied.items() if k != "held_back"} == plan
    assert applied["held_back"] == []


def test_a_zone_a_run_on_an_empty_fleet_applies_zone_a_and_waits_for_primaries_elsewhere() -> None:
    plan = _plan()
    applied = applied_part(plan, None, ZONE_A)
    assert _placed(applied), "zone-a's instances are applied"
    assert {host for _, host, _ in _placed(applied)} <= {"vm-a1", "vm-a2"}
    primaries = {d["name"]: d["primary"]["host"] for d in plan["dependencies"]}
    for item in applied["dependencies"]:
        # A standby or mirror is never applied without its primary (it would follow a primary that does not run).
        assert primaries[item["name"]] in {"vm-a1", "vm-a2"}
        assert any(i["role"] == "primary" for i in item["instances"])
    waiting_primaries = {n for n, host in primaries.items() if host not in ZONE_A}
    assert waiting_primaries and not waiting_primaries & {d["name"] for d in applied["dependencies"]}
    held = {(h["dependency"], h["host"]) for h in applied["held_back"]}
    outside = {(n, host) for n, host, _ in _placed(plan) if host not in ZONE_A}
    assert outside <= held
    assert all(h["reason"] for h in applied["held_back"])
    assert {(r["dependency"], r["host"]) for r in applied["state"]["instances"]} == {
        (n, h) for n, h, _ in _placed(applied)
    }


def test_the_store_records_only_what_a_limited_run_applied_and_the_next_full_run_adds_the_rest(
    tmp_path: Path,
) -> None:
    store_url = str(tmp_path / "state.db")
    plan = _plan()
    result = record_applied_plan(store_url, plan, reached=ZONE_A)
    assert result.changed and result.held_back
    recorded = plan_of(open_store(store_url).applied_plan())
    assert {host for _, host, _ in _placed(recorded)} <= {"vm-a1", "vm-a2"}
    assert set(open_store(store_url).primaries().values()) <= {"vm-a1", "vm-a2"}

    state = state_from_store(store_url)
    later = compute_plan(load_graph(EXAMPLE), state, now=1001.0).to_dict()
    kept = {(d["name"], a["host"]) for d in later["dependencies"] for a in d["actions"] if a["action"] == "keep"}
    assert kept == {(n, h) for n, h, _ in _placed(recorded)}, "what zone-a runs is kept, not placed again"
    record_applied_plan(store_url, later, reached=[*EVERY_VM, "lb1"])
    assert _placed(plan_of(open_store(store_url).applied_plan())) == _placed(later)


def test_a_decommission_waits_while_a_load_balancer_outside_the_run_still_routes_to_it(tmp_path: Path) -> None:
    store_url = str(tmp_path / "state.db")
    plan = _plan()
    record_applied_plan(store_url, plan)
    state = state_from_store(store_url)
    gone = "reports-api"
    data = yaml.safe_load(EXAMPLE.read_text())
    del data["dependencies"][gone]  # the graph without reports-api: the plan decommissions it everywhere
    del data["services"]["backoffice"]["depends_on"][gone]
    smaller = compute_plan(parse_graph(data, "smaller.yml"), state, now=1001.0).to_dict()
    assert any(a["dependency"] == gone for a in smaller["removed"])
    applied = part_to_apply(store_url, smaller, EVERY_VM)  # lb1 is left out
    assert gone in {d["name"] for d in applied["dependencies"]}, "lb1 still routes to it: it keeps running"
    assert not applied["removed"]
    assert any(h["dependency"] == gone and "lb1" in h["reason"] for h in applied["held_back"])
    assert gone not in {d["name"] for d in part_to_apply(store_url, smaller, [*EVERY_VM, "lb1"])["dependencies"]}


def test_a_primary_move_to_or_from_a_host_outside_the_run_waits_whole(tmp_path: Path) -> None:
    store_url = str(tmp_path / "state.db")
    plan = _plan()
    record_applied_plan(store_url, plan)
    moved = copy.deepcopy(plan)
    item = next(d for d in moved["dependencies"] if len(d["instances"]) > 1 and d["primary"]["host"] not in ZONE_A)
    target = next(i for i in item["instances"] if i["host"] in ZONE_A)
    for instance in item["instances"]:
        instance["role"] = "primary" if instance is target else "mirror"
    item["primary"] = {"host": target["host"], "address": target["address"], "port": target["port"]}
    applied = part_to_apply(store_url, moved, ZONE_A)
    entry = next(d for d in applied["dependencies"] if d["name"] == item["name"])
    before = next(d for d in plan["dependencies"] if d["name"] == item["name"])
    assert entry["primary"] == before["primary"] and entry["instances"] == before["instances"]
    assert any(h["dependency"] == item["name"] and "moves" in h["reason"] for h in applied["held_back"])
