"""The probe targets of what runs now: the instances of the applied plan, each with the role it serves in
(a primary recorded in the store, after a switchover, wins over the plan's), as Prometheus target groups.

The runner serves them at GET /api/v1/targets for Prometheus's `http_sd_configs` (docs/health.md), so a
mirror that reconciliation adds is probed without a person re-running the monitoring playbook, and a
new primary is probed (and alerted on) as the primary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from depmirror.fleet.applied import plan_of
from depmirror.graph.model import Graph
from depmirror.health.queries import InstanceRef
from depmirror.health.rules import render_targets


def current_roles(record: Mapping[str, Any] | None, primaries: Mapping[str, str]) -> dict[tuple[str, str], str]:
    """(dependency, host) -> the role it serves in now: the recorded primary is `primary`, the others of an
    active-passive dependency `standby` and of an active-active one `mirror`; the plan's role where the store
    records no primary."""
    roles = {}
    for item in plan_of(record).get("dependencies") or []:
        if not isinstance(item, Mapping) or not item.get("name"):
            continue
        name = str(item["name"])
        others = "standby" if item.get("mode") == "active-passive" else "mirror"
        primary = primaries.get(name)
        for instance in item.get("instances") or []:
            host = str(instance.get("host") or "") if isinstance(instance, Mapping) else ""
            if not host:
                continue
            planned = str(instance.get("role") or others)
            roles[(name, host)] = planned if primary is None else ("primary" if host == primary else others)
    return roles


def probe_targets(
    graph: Graph, record: Mapping[str, Any] | None, primaries: Mapping[str, str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Target groups (file_sd / http_sd format) for every applied instance the graph still describes, and the
    instances left out because the graph no longer has their dependency or VM (an adjust will remove them)."""
    refs, left_out = [], []
    for (dependency, host), role in sorted(current_roles(record, primaries).items()):
        if dependency in graph.dependencies and host in graph.vms:
            refs.append(InstanceRef(dependency, host, role))
        else:
            left_out.append(f"{dependency}@{host}")
    return render_targets(graph, refs), left_out
