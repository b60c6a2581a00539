"""Planning the fleet as it runs now: the graph file, the store's state and Prometheus's health in, the plan
(and the inventory document) out. The I/O half of what the `plan` action and the inventory plugin show; the
documents themselves are built by the pure `depmirror.planner` and `depmirror.views`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from depmirror.fleet.current import load_planner_inputs, shifted_zones
from depmirror.gc_pause import paused_gc
from depmirror.graph.groups import LOAD_BALANCER_GROUP
from depmirror.graph.load import load_graph
from depmirror.graph.model import Graph
from depmirror.planner.plan import compute_plan
from depmirror.views.inventory import inventory_document
from depmirror.views.upstreams import SHIFTED_ZONES_KEY


def plan_for_playbook(
    graph_path: str | Path,
    *,
    store: str | None = None,
    prometheus_url: str | None = None,
    prometheus_token: str | None = None,
    prometheus_timeout: float = 5.0,
) -> tuple[dict[str, Any], list[str]]:
    """The plan as `depmirror plan --format json` prints it, and warnings (e.g. why health is unknown)."""
    document, warnings, _ = _plan_document(
        load_graph(graph_path),
        store=store,
        prometheus_url=prometheus_url,
        prometheus_token=prometheus_token,
        prometheus_timeout=prometheus_timeout,
    )
    return document, warnings


@paused_gc()  # the graph, the plan and the document of a 10k fleet: see gc_pause.py
def build_inventory(
    graph_path: str | Path,
    *,
    store: str | None = None,
    prometheus_url: str | None = None,
    prometheus_token: str | None = None,
    prometheus_timeout: float = 5.0,
) -> dict[str, Any]:
    plan, warnings, graph = _plan_document(
        load_graph(graph_path),
        store=store,
        prometheus_url=prometheus_url,
        prometheus_token=prometheus_token,
        prometheus_timeout=prometheus_timeout,
    )
    # The graph with the overrides in force: a `*` health threshold reaches the upstreams' `down` marks.
    document = inventory_document(graph, plan, store)
    shifted = plan["routing"].get(SHIFTED_ZONES_KEY)
    if shifted and LOAD_BALANCER_GROUP in document["groups"]:
        # The nginx_upstream role's routing: the zones' instances become backups (views/upstreams.py).
        document["groups"][LOAD_BALANCER_GROUP]["vars"]["depmirror_routing"][SHIFTED_ZONES_KEY] = shifted
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
) -> tuple[dict[str, Any], list[str], Graph]:
    """The plan document, its warnings, and the graph it was planned from (overrides applied)."""
    # The clock is passed in: without `now` the planner takes the newest time in the state, and no
    # stabilisation window would ever end. The overrides and the history are read at the same time.
    now = time.time()
    inputs = load_planner_inputs(
        graph,
        store=store,
        prometheus_url=prometheus_url,
        prometheus_token=prometheus_token,
        prometheus_timeout=prometheus_timeout,
        now=now,
    )
    planned = inputs.graph or graph  # with the overrides in force applied
    plan = compute_plan(planned, inputs.state, inputs.health, now=now, history=inputs.failures)
    document = plan.to_dict()
    shifted = shifted_zones(planned, inputs.state, now)
    if shifted:  # absent without a shift: the plan stays byte for byte what it was
        document["routing"][SHIFTED_ZONES_KEY] = shifted
    return document, [*inputs.warnings, *plan.warnings], planned
