"""The plan as an Ansible inventory document: hosts, groups and variables, free of Ansible types.

The inventory plugin and the `plan` action are thin doors over this module; everything they show is
decided here, so `ansible-inventory --list` and `depmirror plan --format json` cannot disagree.
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import Any

from depmirror.current import load_current
from depmirror.gc_pause import paused_gc
from depmirror.graph_file import load_graph
from depmirror.model import Graph
from depmirror.plan import compute_plan

ROLE_GROUPS = {"primary": "primaries", "mirror": "mirrors", "standby": "standbys"}
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def safe_group(name: str) -> str:
    """Ansible warns on group names that are not Python identifiers; `-` and `.` become `_`."""
    return _UNSAFE.sub("_", name)


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
    current = load_current(
        graph,
        store=store,
        prometheus_url=prometheus_url,
        prometheus_token=prometheus_token,
        prometheus_timeout=prometheus_timeout,
    )
    # The clock is passed in: without `now` the planner takes the newest time in the state, and no
    # stabilisation window would ever end.
    plan = compute_plan(graph, current.state, current.health, now=time.time())
    return plan.to_dict(), [*current.warnings, *plan.warnings]


def inventory_document(graph: Graph, plan: dict[str, Any], store: str | None = None) -> dict[str, Any]:
    """`{"hosts": {host: vars}, "groups": {group: {"hosts", "children", "vars"}}, "all_vars": {...}}`."""
    hosts: dict[str, dict[str, Any]] = {}
    groups: dict[str, dict[str, Any]] = {}

    def member(group: str, host: str) -> None:
        groups.setdefault(group, {"hosts": [], "children": [], "vars": {}})["hosts"].append(host)

    for vm in graph.vms.values():
        hosts[vm.host] = {
            "ansible_host": vm.address,
            "depmirror_address": vm.address,
            "depmirror_zone": vm.zone,
            "depmirror_capacity": vm.capacity,
            "depmirror_instances": [],
        }
        member("depmirror_vms", vm.host)
        member(f"zone_{safe_group(vm.zone)}", vm.host)
    for lb in graph.load_balancers.values():
        hosts[lb.host] = {
            "ansible_host": lb.address,
            "depmirror_address": lb.address,
            "depmirror_zone": lb.zone,
        }
        member("depmirror_load_balancers", lb.host)
        if lb.zone:
            member(f"zone_{safe_group(lb.zone)}", lb.host)

    routed: list[dict[str, Any]] = []
    for item in plan["dependencies"]:
        name = item["name"]
        routed.append(_routed(item))
        group = f"dep_{safe_group(name)}"
        groups.setdefault(group, {"hosts": [], "children": [], "vars": {}})
        for instance in item["instances"]:
            host = instance["host"]
            if host not in hosts:
                continue  # a placement on a VM that left the pool: the plan decommissions it
            hosts[host]["depmirror_instances"].append(_instance_vars(item, instance))
            member(group, host)
            member(f"{group}_{instance['role']}", host)
            member(ROLE_GROUPS[instance["role"]], host)
    # Only load balancers carry every dependency: `ansible-inventory --list` repeats group vars in every
    # host's vars, which for `all` would print the whole plan once per VM.
    for balancer in graph.load_balancers:
        hosts[balancer]["depmirror_dependencies"] = routed

    all_vars = {
        "depmirror_graph_file": graph.source,
        "depmirror_state_store": store,
        "depmirror_routing": dataclasses.asdict(graph.policy.routing),
        "depmirror_unhealthy_below": graph.policy.health.unhealthy,
    }
    return {"hosts": hosts, "groups": groups, "all_vars": all_vars}


def _routed(item: dict[str, Any]) -> dict[str, Any]:
    """What a load balancer needs of a dependency: the fields `depmirror.routing` reads, and why."""
    keys = ("name", "kind", "mode", "port", "weight", "replication_factor", "primary")
    instance_keys = ("host", "zone", "address", "port", "role", "health")
    return {
        **{k: item.get(k) for k in keys},
        "instances": [{k: i.get(k) for k in instance_keys} for i in item["instances"]],
    }


def _instance_vars(dependency: dict[str, Any], instance: dict[str, Any]) -> dict[str, Any]:
    return {
        "dependency": dependency["name"],
        "kind": dependency["kind"],
        "mode": dependency["mode"],
        "role": instance["role"],
        "port": instance["port"],
        "weight": dependency["weight"],
        "replication_factor": dependency["replication_factor"],
        "health": instance.get("health"),
    }
