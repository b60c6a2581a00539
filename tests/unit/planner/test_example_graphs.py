"""The example graphs in inventories/ plan cleanly, and their rankings are the ones docs/graph.md explains."""

from __future__ import annotations

from pathlib import Path

import pytest

from depmirror.graph.load import load_graph
from depmirror.planner.plan import Plan, compute_plan

INVENTORIES = Path(__file__).resolve().parents[3] / "inventories"
EXAMPLES = sorted(p for p in INVENTORIES.glob("*/graph.yml"))


def plan_of(name: str) -> Plan:
    return compute_plan(load_graph(INVENTORIES / name / "graph.yml"), now=0.0)


def ranking(plan: Plan) -> list[str]:
    return [d.name for d in sorted(plan.dependencies, key=lambda d: (-d.weight.value, d.name))]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_every_example_plans_without_warnings_cuts_or_cycles(path: Path) -> None:
    plan = compute_plan(load_graph(path), now=0.0)
    assert plan.warnings == ()
    assert plan.cycles == ()
    for dep in plan.dependencies:
        assert dep.rf.placement_cut is None and dep.rf.budget_cut is None, dep.name
        assert dep.replication_factor == dep.rf.decided
        if dep.dependency.stateful:
            assert dep.mode == "active-passive", dep.name


def test_online_boutique_ranks_what_every_page_needs_first_and_the_soft_leaves_last() -> None:
    order = ranking(plan_of("online-boutique"))
    assert set(order[:5]) == {"currencyservice", "productcatalogservice", "frontend", "redis-cart", "cartservice"}
    assert order[-2:] == ["adservice", "emailservice"]  # the two soft calls
    assert order.index("paymentservice") < order.index("adservice")  # on every checkout, above the optional ad


def test_sock_shop_ranks_the_entry_and_its_busiest_paths_first_and_keeps_its_databases_passive() -> None:
    plan = plan_of("sock-shop")
    assert ranking(plan)[:5] == ["front-end", "user", "user-db", "carts-db", "catalogue-db"]
    for name in ("catalogue-db", "carts-db", "orders-db", "user-db"):
        dep = plan.dependency(name)
        assert dep.dependency.stateful and dep.mode == "active-passive"
        assert "stateful" in dep.mode_reason
