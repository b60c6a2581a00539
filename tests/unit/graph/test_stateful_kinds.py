"""Stateful kinds in the model and the planner: `postgresql`, and a `stateful:` block for other engines."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.graph_data import base_graph, build, dependency

from depmirror.errors import ConfigError
from depmirror.planner.plan import compute_plan

MONGO = {
    "promote": ["mongosh", "--quiet", "--eval", "rs.stepUp()"],
    "fence": ["systemctl", "stop", "mongod"],
    "lag": ["mongosh", "--quiet", "--eval", "rs.printSecondaryReplicationInfo()"],
}


def with_dependency(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    data = base_graph()
    data["dependencies"][name] = spec
    data["services"]["shop"]["depends_on"][name] = {"rate": 100}  # tier 0: auto mode would pick active-active
    return data


def test_postgresql_is_a_stateful_kind_that_needs_no_command_and_is_never_active_active() -> None:
    graph = build(with_dependency("orders-db", {"tier": 0, "kind": "postgresql", "port": 5432}))
    assert graph.dependencies["orders-db"].stateful
    plan = compute_plan(graph, now=0.0)
    orders = plan.dependency("orders-db")
    assert orders.weight.value >= 0.5  # heavy enough for active-active, were it stateless
    assert orders.mode == "active-passive" and "postgresql is stateful" in orders.mode_reason
    assert {i.role for i in orders.instances} == {"primary", "standby"}
    assert next(d for d in plan.to_dict()["dependencies"] if d["name"] == "orders-db")["stateful"] is True


def test_a_stateful_block_makes_any_kind_stateful_and_reaches_the_plan() -> None:
    spec = dependency(tier=0, port=27017, kind="tcp", stateful=MONGO)
    plan = compute_plan(build(with_dependency("carts-db", spec)), now=0.0)
    carts = plan.dependency("carts-db")
    assert carts.dependency.stateful and carts.mode == "active-passive"
    assert "tcp with a `stateful:` block is stateful" in carts.mode_reason
    document = next(d for d in plan.to_dict()["dependencies"] if d["name"] == "carts-db")
    assert document["stateful_commands"] == MONGO
    # Dependencies without the block keep their plan as before: no new key.
    assert all("stateful_commands" not in d for d in plan.to_dict()["dependencies"] if d["name"] != "carts-db")


@pytest.mark.parametrize(
    ("spec", "field", "problem"),
    [
        (
            {"tier": 1, "kind": "postgresql", "port": 5432, "replication": {"mode": "active-active"}},
            "replication.mode",
            "postgresql is stateful (one writer) and cannot be active-active",
        ),
        (
            dependency(port=27017, kind="tcp", stateful=MONGO, replication={"mode": "active-active"}),
            "replication.mode",
            "tcp with a `stateful:` block is stateful (one writer)",
        ),
        (
            dependency(port=27017, kind="tcp", stateful={**MONGO, "promote": "mongosh --eval rs.stepUp()"}),
            "stateful.promote",
            "expected array, got str",
        ),
        (
            dependency(port=27017, kind="tcp", stateful={**MONGO, "fence": ["kill", 9]}),
            "stateful.fence[1]",
            "expected string, got int",
        ),
        (dependency(port=27017, kind="tcp", stateful={**MONGO, "lag": []}), "stateful.lag", "is empty"),
        (dependency(port=27017, kind="tcp", stateful={"promote": ["x"], "fence": ["y"]}), "stateful.lag", "is missing"),
        (dependency(port=27017, kind="tcp", stateful={**MONGO, "shell": ["sh"]}), "stateful.shell", "unknown field"),
        (
            dependency(port=27017, kind="tcp", stateful={**MONGO, "promote": ["promote", "{{ inventory_hostname }}"]}),
            "stateful.promote[1]",
            "looks like a template",
        ),
        ({"tier": 1, "kind": "redis", "port": 6390, "stateful": MONGO}, "stateful", "redis has its own promote"),
    ],
    ids=[
        "pg-aa",
        "generic-aa",
        "argv-string",
        "argv-int",
        "argv-empty",
        "missing-lag",
        "unknown",
        "template",
        "redis-block",
    ],
)
def test_bad_stateful_declarations_name_the_field(spec: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build(with_dependency("db", spec))
    assert caught.value.field == f"dependencies.db.{field}"
    assert problem in caught.value.problem
