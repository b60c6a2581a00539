"""The plan as an Ansible inventory document: hosts, groups and variables, free of Ansible types. Pure.

`depmirror.fleet.planning` plans the fleet as it runs now and hands the plan here; the inventory plugin and
the `plan` action are thin doors over the two, so `ansible-inventory --list` and `depmirror plan --format
json` cannot disagree.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from depmirror.graph.groups import (
    LOAD_BALANCER_GROUP,
    ROLE_GROUPS,
    VM_GROUP,
    dependency_group,
    primary_group,
    zone_group,
)
from depmirror.graph.model import Graph


def inventory_document(graph: Graph, plan: dict[str, Any], store: str | None = None) -> dict[str, Any]:
    """`{"hosts": {host: vars}, "groups": {group: {"hosts", "children", "vars"}}, "all_vars": {...}}`.

    Sized for `ansible-inventory --list` on 10k dependencies (bench/inventory_scale.py, docs/performance.md):
    Ansible copies every variable it is given and prints group vars again in each member host's vars, so
    each value here is paid for once per host that sees it. The plan's per-dependency view is therefore not
    a load balancer variable (the nginx_upstream role plans for itself), and the only per-role group of
    a dependency is its primary's, nested in `dep_<name>` so that `all` gets one child per dependency
    (Ansible checks each new child of a group against all the others: quadratic in the children).
    """
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
        member(VM_GROUP, vm.host)
        member(zone_group(vm.zone), vm.host)
    for lb in graph.load_balancers.values():
        hosts[lb.host] = {
            "ansible_host": lb.address,
            "depmirror_address": lb.address,
            "depmirror_zone": lb.zone,
        }
        member(LOAD_BALANCER_GROUP, lb.host)
        if lb.zone:
            member(zone_group(lb.zone), lb.host)
    if graph.load_balancers:
        # Only nginx needs it; on `all` every VM would print it again.
        groups[LOAD_BALANCER_GROUP]["vars"]["depmirror_routing"] = dataclasses.asdict(graph.policy.routing)

    # Loading the graph refused names whose groups clash (graph/groups.py): plan and plugin agree on that.
    for item in plan["dependencies"]:
        group = dependency_group(item["name"])
        groups.setdefault(group, {"hosts": [], "children": [], "vars": {}})
        for instance in item["instances"]:
            host = instance["host"]
            if host not in hosts:
                continue  # a placement on a VM that left the pool: the plan decommissions it
            hosts[host]["depmirror_instances"].append(_instance_vars(item, instance))
            if instance["role"] == "primary":
                # the rest are `dep_<name>:!dep_<name>_primary`: one VM runs one instance of a dependency
                groups[group]["children"].append(primary_group(item["name"]))
                member(primary_group(item["name"]), host)
            else:
                member(group, host)
            member(ROLE_GROUPS[instance["role"]], host)

    all_vars = {
        "depmirror_graph_file": graph.source,
        "depmirror_state_store": store,
        "depmirror_unhealthy_below": graph.policy.health.unhealthy,
    }
    return {"hosts": hosts, "groups": groups, "all_vars": all_vars}


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
