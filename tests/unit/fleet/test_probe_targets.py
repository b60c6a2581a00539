"""The probe targets the runner serves: every applied instance with the role it serves in now."""

from __future__ import annotations

from pathlib import Path

import pytest

from depmirror.fleet.probe_targets import current_roles, probe_targets
from depmirror.graph.load import load_graph
from depmirror.planner.plan import compute_plan

GRAPH = Path(__file__).resolve().parents[3] / "inventories" / "example" / "graph.yml"


def _record(dependencies: list[dict[str, object]]) -> dict[str, object]:
    return {"plan": {"dependencies": dependencies}}


def test_a_recorded_primary_wins_over_the_plan_and_the_old_one_serves_as_the_others_do() -> None:
    record = _record(
        [
            {
                "name": "db",
                "mode": "active-passive",
                "instances": [{"host": "a", "role": "primary"}, {"host": "b", "role": "standby"}],
            },
            {
                "name": "api",
                "mode": "active-active",
                "instances": [{"host": "a", "role": "primary"}, {"host": "c", "role": "mirror"}],
            },
        ]
    )

    roles = current_roles(record, {"db": "b", "api": "c"})

    assert roles == {("db", "a"): "standby", ("db", "b"): "primary", ("api", "a"): "mirror", ("api", "c"): "primary"}
    assert current_roles(record, {})[("db", "b")] == "standby", "no primary recorded: the plan's role"


@pytest.mark.parametrize(
    "record",
    [
        None,
        {},
        {"plan": None},
        _record([{"mode": "active-active"}]),
        _record([{"name": "x", "instances": [{}, "a", None]}]),
    ],
)
def test_nothing_applied_or_a_malformed_record_yields_no_target(record: object) -> None:
    assert current_roles(record, {"x": "a"}) == {}  # type: ignore[arg-type]


def test_instances_the_graph_no_longer_describes_are_left_out_and_named() -> None:
    graph = load_graph(GRAPH)
    plan = compute_plan(graph, None, None, 0.0).to_dict()
    plan["dependencies"].append({"name": "gone-api", "instances": [{"host": "vm-a1", "role": "primary"}]})
    plan["dependencies"][0]["instances"].append({"host": "vm-z9", "role": "mirror"})

    groups, left_out = probe_targets(graph, {"plan": plan}, {})

    first = plan["dependencies"][0]["name"]
    assert sorted(left_out) == sorted(["gone-api@vm-a1", f"{first}@vm-z9"])
    assert len(groups) == sum(len(d["instances"]) for d in plan["dependencies"]) - 2
    assert all(g["labels"]["zone"] == graph.vms[g["labels"]["host"]].zone for g in groups)
