"""Schema-valid graph data -> the typed `Graph`, refusing the numbers JSON Schema lets through.

JSON Schema cannot say "finite" (NaN passes every `minimum`, and `.inf` every field without a `maximum`), and
its `integer` includes 8080.0. Both reached the planner: a NaN rate read as the highest frequency, a NaN
`rf_scale` crashed, `port: 8080.0` became the command `srv 8080.0`. Each number is checked here, as it is
read, with the field it came from.
"""

from __future__ import annotations

import math
from typing import Any

from depmirror.errors import ConfigError
from depmirror.graph.health_spec import HealthSpec
from depmirror.graph.model import (
    VM,
    Dependency,
    DeploySpec,
    Edge,
    Graph,
    HealthThresholds,
    LearningPolicy,
    LoadBalancer,
    ModeRules,
    Policy,
    ReplicationPolicy,
    ReplicationRules,
    RoutingPolicy,
    Service,
    Slo,
    StatefulSpec,
    WeightPolicy,
    ZonalShiftPolicy,
    Zone,
)

_LARGEST = 1e300
_LARGEST_INTEGER = 2**31 - 1
# Per policy section: the fields that are integers (every other number there may be fractional).
_POLICY_INTEGERS = {
    "replication": frozenset({"scale_down_step"}),
    "routing": frozenset({"max_fails"}),
    "zonal_shift": frozenset({"max_concurrent", "alert_min_vms", "samples"}),
    "learning": frozenset({"rf_step", "max_raise"}),
}


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def number(self, value: Any, field: str) -> Any:
        """The value as given (an int stays an int, so plans print as before), if it is a finite number."""
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(self.source, field, f"{value!r} is not a finite number", "a finite number")
        if isinstance(value, int) and abs(value) > _LARGEST:  # 10**400 is an int to YAML, no float can hold it
            raise ConfigError(self.source, field, "the number is too large", f"at most {_LARGEST:.3g}")
        return value

    def integer(self, value: Any, field: str) -> Any:
        if isinstance(value, float):
            fix = f"write {int(value)} without the decimal point" if value.is_integer() else "a whole number"
            raise ConfigError(self.source, field, f"expected an integer, got {value!r}", fix)
        if isinstance(value, int) and abs(value) > _LARGEST_INTEGER:  # it reaches nginx and systemd as text
            raise ConfigError(self.source, field, "the integer is too large", f"at most {_LARGEST_INTEGER}")
        return value

    def numbers(self, spec: dict[str, Any], field: str, integers: frozenset[str] = frozenset()) -> dict[str, Any]:
        """A mapping of plain values with each number checked (booleans, strings and null pass as they are)."""
        checked: dict[str, Any] = {}
        for key, value in spec.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                where = f"{field}.{key}"
                value = self.integer(value, where) if key in integers else self.number(value, where)
            checked[key] = value
        return checked


def build_graph(data: dict[str, Any], source: str) -> Graph:
    read = _Reader(source)
    return Graph.build(
        source=source,
        dependencies=[_dependency(read, name, spec) for name, spec in data["dependencies"].items()],
        services=[_service(read, name, spec) for name, spec in (data.get("services") or {}).items()],
        zones=[Zone(name, (spec or {}).get("description", "")) for name, spec in data["zones"].items()],
        vms=[
            VM(host, spec["address"], spec["zone"], read.integer(spec.get("capacity", 4), f"vms.{host}.capacity"))
            for host, spec in data["vms"].items()
        ],
        load_balancers=[
            LoadBalancer(host, spec["address"], spec.get("zone"))
            for host, spec in (data.get("load_balancers") or {}).items()
        ],
        policy=_policy(read, data.get("policy") or {}),
    )


def _edges(read: _Reader, where: str, consumer: str, calls: dict[str, Any] | None) -> tuple[Edge, ...]:
    return tuple(
        Edge(
            consumer,
            target,
            float(read.number(call["rate"], f"{where}.depends_on.{target}.rate")),
            call.get("required", True),
        )
        for target, call in (calls or {}).items()
    )


def _service(read: _Reader, name: str, spec: dict[str, Any]) -> Service:
    where = f"services.{name}"
    return Service(
        name=name,
        tier=read.integer(spec["tier"], f"{where}.tier"),
        depends_on=_edges(read, where, name, spec.get("depends_on")),
    )


def _dependency(read: _Reader, name: str, spec: dict[str, Any]) -> Dependency:
    where = f"dependencies.{name}"
    replication = read.numbers(spec.get("replication", {}), f"{where}.replication", frozenset({"min", "max"}))
    rate = spec.get("request_rate")
    entry = spec.get("entry")
    health = spec.get("health")
    state = spec.get("stateful")
    return Dependency(
        name=name,
        tier=read.integer(spec["tier"], f"{where}.tier"),
        kind=spec["kind"],
        port=read.integer(spec["port"], f"{where}.port"),
        request_rate=None if rate is None else float(read.number(rate, f"{where}.request_rate")),
        slo=Slo(**{k: float(v) for k, v in read.numbers(spec.get("slo", {}), f"{where}.slo").items()}),
        replication=ReplicationPolicy(
            min_rf=replication.get("min", 1),
            max_rf=replication.get("max", max(3, replication.get("min", 1))),
            mode=replication.get("mode", "auto"),
        ),
        cost=float(read.number(spec.get("cost", 1.0), f"{where}.cost")),
        deploy=DeploySpec(**spec.get("deploy", {})),
        depends_on=_edges(read, where, name, spec.get("depends_on")),
        health=None
        if health is None
        else HealthSpec(**read.numbers(health, f"{where}.health", frozenset({"samples"}))),
        entry_rate=None if entry is None else float(read.number(entry["rate"], f"{where}.entry.rate")),
        state=None
        if state is None
        else StatefulSpec(tuple(state["promote"]), tuple(state["fence"]), tuple(state["lag"])),
    )


def _policy(read: _Reader, spec: dict[str, Any]) -> Policy:
    sections = {
        key: read.numbers(spec.get(key, {}), f"policy.{key}", _POLICY_INTEGERS.get(key, frozenset()))
        for key in ("weights", "replication", "mode", "health", "routing", "zonal_shift")
    }
    return Policy(
        cost_budget=read.number(spec.get("cost_budget"), "policy.cost_budget"),
        weights=WeightPolicy(**sections["weights"]),
        replication=ReplicationRules(**sections["replication"]),
        mode=ModeRules(**sections["mode"]),
        health=HealthThresholds(**sections["health"]),
        routing=RoutingPolicy(**sections["routing"]),
        zonal_shift=ZonalShiftPolicy(**sections["zonal_shift"]),
        # Absent: off, and plans stay what they were byte for byte (docs/graph.md, Learning).
        learning=LearningPolicy.from_dict(
            None
            if spec.get("learning") is None
            else read.numbers(spec["learning"], "policy.learning", _POLICY_INTEGERS["learning"]),
            read.source,
        ),
    )
