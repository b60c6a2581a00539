"""Nginx upstreams from the plan: which servers serve, with which weight, which are backups.

The role `nginx_upstream` only templates what this module returns, so the rules (who serves, weights
from health, refusing an upstream with nothing healthy in it) live in one tested place.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from depmirror.errors import DepmirrorError

HTTP_KINDS = frozenset({"http"})
MAX_WEIGHT = 10
_NAME = re.compile(r"[^A-Za-z0-9_]")
# The keys of the graph's `policy.routing` that reach nginx; values are nginx syntax (e.g. "10s").
ROUTING_DEFAULTS: Mapping[str, Any] = {
    "max_fails": 3,
    "fail_timeout": "10s",
    "connect_timeout": "2s",
    "read_timeout": "10s",
    "proxy_next_upstream": "error timeout http_502 http_503 http_504",
}


# A routing mapping may carry the zones under a zonal shift; it never reaches the nginx template.
SHIFTED_ZONES_KEY = "shifted_zones"


class RoutingError(DepmirrorError):
    """An upstream that must not reach nginx: empty, or with no server that may take traffic."""


@dataclass(frozen=True, slots=True)
class Server:
    address: str
    port: int
    host: str
    role: str
    weight: int
    backup: bool
    health: float | None


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    dependency: str
    block: str  # "http" or "stream": the nginx context the upstream and its listener live in
    listen_port: int
    mode: str
    servers: tuple[Server, ...]
    routing: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["servers"] = [asdict(s) for s in self.servers]
        data["routing"] = dict(self.routing)
        return data


def upstream_name(dependency: str) -> str:
    return "depmirror_" + _NAME.sub("_", dependency)


def server_weight(health: float | None) -> int:
    """Weight 1..10 from the health score. Unknown keeps full weight: missing data moves no traffic."""
    if health is None:
        return MAX_WEIGHT
    return max(1, round(MAX_WEIGHT * health))


def build_upstreams(
    dependencies: Iterable[Mapping[str, Any]],
    routing: Mapping[str, Any] | None = None,
    unhealthy_below: float = 0.5,
    shifted_zones: Collection[str] = (),
) -> list[Upstream]:
    """One upstream per planned dependency (items as in `Plan.to_dict()["dependencies"]`).

    `shifted_zones` (or `routing["shifted_zones"]`): zones under a zonal shift. Their instances, healthy or
    not, become `backup` servers: they take traffic only if every other server fails, so a shift moves the
    traffic of active-active dependencies too. Where nothing outside them can serve, they keep serving (a
    shift never empties an upstream). No shift: the upstreams are exactly what they were without one."""
    merged = {**ROUTING_DEFAULTS, **(routing or {})}
    shifted = frozenset(shifted_zones) | frozenset(merged.pop(SHIFTED_ZONES_KEY, None) or ())
    return [_upstream(item, merged, unhealthy_below, shifted) for item in sorted(dependencies, key=lambda d: d["name"])]


def _upstream(
    item: Mapping[str, Any], routing: Mapping[str, Any], unhealthy_below: float, shifted: frozenset[str]
) -> Upstream:
    name = item["name"]
    instances = list(item.get("instances") or [])
    if not instances:
        raise RoutingError(
            f"dependency {name!r} has no instance in the plan: refusing an empty upstream "
            "(fix: check the VM pool and the dependency's min replication factor)"
        )
    active_passive = item.get("mode") == "active-passive"
    servers = []
    for instance in sorted(instances, key=_serving_order):
        health = instance.get("health")
        failing = health is not None and health < unhealthy_below
        if failing:
            continue  # nginx would try it first and fail; it comes back through adjust or failback
        backup = active_passive and instance["role"] != "primary"
        servers.append(
            Server(
                address=instance["address"],
                port=int(instance.get("port") or item["port"]),
                host=instance["host"],
                role=instance["role"],
                weight=server_weight(health),
                backup=backup,
                health=health,
            )
        )
    servers = _away_from(servers, instances, shifted)
    if not any(not s.backup for s in servers):
        bad = ", ".join(f"{i['host']}={i.get('health')}" for i in instances)
        raise RoutingError(
            f"dependency {name!r} has no healthy serving instance ({bad}): refusing to route to it "
            f"(fix: roll back to a healthy mirror, or raise its replication factor)"
        )
    return Upstream(
        name=upstream_name(name),
        dependency=name,
        block="http" if item.get("kind") in HTTP_KINDS else "stream",
        listen_port=int(item["port"]),
        mode=str(item.get("mode", "active-active")),
        servers=tuple(servers),
        routing=routing,
    )


def _away_from(servers: list[Server], instances: list[Mapping[str, Any]], shifted: frozenset[str]) -> list[Server]:
    """Servers in a shifted zone become backups, unless nothing else could then serve."""
    if not shifted:
        return servers
    zones = {instance["host"]: instance.get("zone") for instance in instances}
    moved = [replace(s, backup=True) if zones.get(s.host) in shifted else s for s in servers]
    return moved if any(not s.backup for s in moved) else servers


def _serving_order(instance: Mapping[str, Any]) -> tuple[int, str]:
    # Primary first so that it reads first in the rendered file; then by host for a stable diff.
    return (0 if instance["role"] == "primary" else 1, instance["host"])
