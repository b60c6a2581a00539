"""Planning the fleet as it runs now: the graph file, the store's state and Prometheus's health in, the plan
(and the inventory document) out. The I/O half of what the `plan` action and the inventory plugin show; the
documents themselves are built by the pure `depmirror.planner` and `depmirror.views`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from depmirror.fleet.current import load_planner_inputs
from depmirror.gc_pause import paused_gc
from depmirror.graph.load import load_graph
from depmirror.graph.model import Graph
from depmirror.planner.plan import compute_plan
from depmirror.views.inventory import inventory_document


def plan_for_playbook(
    graph_path: str | Path,
    *,
    store: str | None = None,
    prometheus_url: str | None = None,
    prometheus_token: str | None = None,
    prometheus_timeout: float = 5.0,
) -> tuple[dict[str, Any], list[str]]:
    """The plan as `depmirror plan --format json` prints it, and warnings (e.g. why health is unknown)."""
    return _plan_document(
        load_graph(graph_path),
        store=store,
        prometheus_url=prometheus_url,
        prometheus_token=prometheus_token,
        prometheus_timeout=prometheus_timeout,
    )


@paused_gc()  # the graph, the plan and the document of a 10k fleet: see gc_pause.py
def build_inventory(
    graph_path: str | Path,
    *,
    store: str | None = None,
    prometheus_url: str | None = None,
    prometheus_token: str | None = None,
    prometheus_timeout: float = 5.0,
) -> dict[str, Any]:
    graph = load_graph(graph_path)
    plan, warnings = _plan_document(
        graph,
        store=store,
        prometheus_url=prometheus_url,
        prometheus_token=prometheus_token,
        prometheus_timeout=prometheus_timeout,
    )
    document = inventory_document(graph, plan, store)
    document["warnings"] = warnings
    return document


@paused_gc()
def _plan_document(
    graph: Graph,
    *,
    store: str | None,
    prometheus_url: str | None,
    prometheus_token: str | None,
    prometheus_timeout: float,
) -> tuple[dict[str, Any], list[str]]:
    inputs = load_planner_inputs(
        graph,
        store=store,
        prometheus_url=prometheus_url,
        prometheus_token=prometheus_token,
        prometheus_timeout=prometheus_timeout,
    )
    # The clock is passed in: without `now` the planner takes the newest time in the state, and no
    # stabilisation window would ever end.
    plan = compute_plan(graph, inputs.state, inputs.health, now=time.time())
    return plan.to_dict(), [*inputs.warnings, *plan.warnings]
