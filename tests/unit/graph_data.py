"""Small graph documents for the planner's unit tests (plain data, as a graph file would hold)."""

from __future__ import annotations

import copy
from typing import Any

from depmirror.graph.load import parse_graph
from depmirror.graph.model import Graph

HTTP_COMMAND = "python3 -m http.server {port}"


def base_graph() -> dict[str, Any]:
    """Three zones of two VMs, one LB, a tier-0 service calling an http API that calls a redis."""
    return copy.deepcopy(
        {
            "version": 1,
            "zones": {"zone-a": {}, "zone-b": {}, "zone-c": {}},
            "vms": {
                "vm-a1": {"address": "198.18.0.11", "zone": "zone-a", "capacity": 4},
                "vm-a2": {"address": "198.18.0.12", "zone": "zone-a", "capacity": 4},
                "vm-b1": {"address": "198.18.0.21", "zone": "zone-b", "capacity": 4},
                "vm-b2": {"address": "198.18.0.22", "zone": "zone-b", "capacity": 4},
                "vm-c1": {"address": "198.18.0.31", "zone": "zone-c", "capacity": 4},
                "vm-c2": {"address": "198.18.0.32", "zone": "zone-c", "capacity": 4},
            },
            "load_balancers": {"lb1": {"address": "198.18.0.2"}},
            "services": {"shop": {"tier": 0, "depends_on": {"payments": {"rate": 100}}}},
            "dependencies": {
                "payments": {
                    "tier": 1,
                    "kind": "http",
                    "port": 8081,
                    "replication": {"min": 1, "max": 3},
                    "deploy": {"command": HTTP_COMMAND},
                    "depends_on": {"sessions": {"rate": 100}},
                },
                "sessions": {"tier": 2, "kind": "redis", "port": 6380, "replication": {"min": 1, "max": 3}},
                "reports": {
                    "tier": 3,
                    "kind": "tcp",
                    "port": 9001,
                    "replication": {"min": 1, "max": 2},
                    "deploy": {"command": HTTP_COMMAND},
                },
            },
        }
    )


def build(data: dict[str, Any], source: str = "graph.yml") -> Graph:
    return parse_graph(data, source)


def dependency(tier: int = 2, port: int = 9100, kind: str = "http", **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"tier": tier, "kind": kind, "port": port}
    if kind != "redis":
        spec["deploy"] = {"command": HTTP_COMMAND}
    spec.update(extra)
    return spec
