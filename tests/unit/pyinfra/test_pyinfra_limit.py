"""`depmirror pyinfra adjust --limit`: which hosts a limited run touches, what it applies and records, and the
one clear error for a name the fleet does not have."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from depmirror.errors import ConfigError
from depmirror.fleet.applied import part_to_apply, record_applied_plan
from depmirror.frontends.pyinfra.adjust import Fleet, _waits, plan_fleet, plan_phases, resolve_limit
from depmirror.frontends.pyinfra.cli import limit_names
from depmirror.frontends.pyinfra.collection import Collection, find_collection
from depmirror.frontends.pyinfra.source import read_source
from depmirror.graph.load import load_graph
from depmirror.planner.plan import compute_plan

ROOT = Path(__file__).resolve().parents[3]
GRAPH = ROOT / "inventories" / "example" / "graph.yml"


def fleet(tmp_path: Path, *, applied: bool) -> tuple[Fleet, str]:
    """The example fleet planned from a store that holds its plan as applied (or nothing)."""
    store = tmp_path / "state.db"
    if applied:
        record_applied_plan(str(store), compute_plan(load_graph(GRAPH), now=time.time() - 3600).to_dict())
    source = tmp_path / "fleet.depmirror.yml"
    source.write_text(f"plugin: depmirror.mirroring.graph\ngraph: {GRAPH}\nstate_store: {store}\n")
    return plan_fleet(read_source(str(source))), str(store)


def phase_hosts(phases: list[object]) -> set[str]:
    return {host for phase in phases for host in phase.watch}  # type: ignore[attr-defined]


def placement(plan: dict[str, object]) -> dict[str, list[tuple[str, str]]]:
    return {
        d["name"]: sorted((i["host"], i["role"]) for i in d["instances"])  # type: ignore[index]
        for d in plan["dependencies"]  # type: ignore[attr-defined]
    }


def test_names_are_split_on_commas_across_repeated_options() -> None:
    assert limit_names(["vm-a1,lb1", " vm-b1 "]) == ["vm-a1", "lb1", "vm-b1"]
    assert limit_names(None) is None


@pytest.mark.parametrize("value", ["vm-a1,,lb1", ",", " ", "vm-a1,"])
def test_an_empty_name_is_refused_naming_the_option(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        limit_names([value])
    assert str(raised.value).startswith("--limit: has an empty name") and "fix:" in str(raised.value)


def test_hosts_and_groups_resolve_as_ansible_s_limit_does(tmp_path: Path) -> None:
    planned, _ = fleet(tmp_path, applied=True)
    assert resolve_limit(planned.document, ["vm-a1", "lb1"]) == {"vm-a1", "lb1"}
    assert resolve_limit(planned.document, ["depmirror_load_balancers"]) == {"lb1"}
    vms = resolve_limit(planned.document, ["depmirror_vms"])
    assert vms == {"vm-a1", "vm-a2", "vm-b1", "vm-b2", "vm-c1", "vm-c2"}


@pytest.mark.parametrize("name", ["vm-zz", "$(id)", "vm-a1; rm -rf /", "x" * 500, "--dry-run"])
def test_a_name_the_fleet_does_not_have_is_one_error_naming_the_option_and_the_hosts(tmp_path: Path, name: str) -> None:
    planned, _ = fleet(tmp_path, applied=True)
    with pytest.raises(ConfigError) as raised:
        resolve_limit(planned.document, ["vm-a1", name])
    said = str(raised.value)
    assert said.startswith("--limit: names ") and "not a host or group of the fleet" in said
    assert "its hosts are lb1, vm-a1" in said
    assert len(said) < 400, "a hostile name is cut short, not echoed whole"


def test_a_limit_that_matches_no_host_is_refused(tmp_path: Path) -> None:
    planned, _ = fleet(tmp_path, applied=True)
    empty = {**planned.document, "groups": {**planned.document["groups"], "nobody": {"hosts": []}}}
    with pytest.raises(ConfigError) as raised:
        resolve_limit(empty, ["nobody"])
    assert str(raised.value).startswith("--limit: matches no host")


def test_a_limited_run_reads_and_changes_only_the_hosts_it_names(tmp_path: Path) -> None:
    planned, store = fleet(tmp_path, applied=True)
    collection = Collection(find_collection(None))
    everything = phase_hosts(plan_phases(planned, planned.plan, collection))
    assert everything == {"vm-a1", "vm-a2", "vm-b1", "vm-b2", "vm-c1", "vm-c2", "lb1"}
    reached = {"vm-a1", "lb1"}
    applied = part_to_apply(store, planned.plan, reached)
    phases = plan_phases(planned, applied, collection, reached)
    assert phase_hosts(phases) == reached
    assert [p.name for p in phases] == ["primaries", "mirrors", "load balancers", "decommission"]
    # The plan as applied: nothing waits, and the load balancer routes to every instance of the fleet.
    assert applied["held_back"] == []
    assert placement(applied) == placement(planned.plan) and placement(applied)


def test_with_nothing_applied_yet_a_limited_run_holds_back_what_lives_elsewhere(tmp_path: Path) -> None:
    """A first apply limited to one VM: the dependencies whose primary runs on another VM wait whole
    (fleet/partial.py), and the load balancer is not given upstreams for instances nobody started."""
    planned, store = fleet(tmp_path, applied=False)
    reached = {"vm-a1", "lb1"}
    applied = part_to_apply(store, planned.plan, reached)
    assert applied["held_back"], "something must wait for the other VMs"
    said = _waits(applied["held_back"][0])
    assert said.startswith("held back by --limit: ") and "outside this run" in said, said
    on_a1 = {i["host"] for d in applied["dependencies"] for i in d["instances"]}
    assert on_a1 <= reached, on_a1
    phases = plan_phases(planned, applied, Collection(find_collection(None)), reached)
    assert phase_hosts(phases) <= reached
