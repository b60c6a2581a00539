"""The graph file as typed values: dependencies, consumers, zones, VMs, load balancers and policy.

Everything here is immutable and already validated (graph_file.py builds it); planners only read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from depmirror.graph.health_spec import HealthSpec

Kind = Literal["http", "tcp", "redis"]
Mode = Literal["active-active", "active-passive"]
ModePreference = Literal["auto", "active-active", "active-passive"]
Role = Literal["primary", "mirror", "standby"]

KINDS: tuple[Kind, ...] = ("http", "tcp", "redis")
# Kinds whose instances hold data: a second writer would split it, so they are always active-passive.
STATEFUL_KINDS: frozenset[str] = frozenset({"redis"})
TIERS = (0, 1, 2, 3)


@dataclass(frozen=True, slots=True)
class Slo:
    latency_ms: float = 500.0
    error_ratio: float = 0.01


@dataclass(frozen=True, slots=True)
class ReplicationPolicy:
    min_rf: int = 1
    max_rf: int = 3
    mode: ModePreference = "auto"


@dataclass(frozen=True, slots=True)
class DeploySpec:
    """How the `mirror` role starts one instance; `{port}` in `command` is replaced by the port."""

    command: str = ""
    health_path: str = "/"

    def rendered_command(self, port: int) -> str:
        # Only the literal `{port}` is substituted: commands may contain other braces (Python one-liners).
        return self.command.replace("{port}", str(port))


@dataclass(frozen=True, slots=True)
class Edge:
    """`consumer` calls `dependency` at `rate` requests per second."""

    consumer: str
    dependency: str
    rate: float


@dataclass(frozen=True, slots=True)
class Dependency:
    name: str
    tier: int
    kind: Kind
    port: int
    request_rate: float | None = None
    slo: Slo = Slo()
    replication: ReplicationPolicy = ReplicationPolicy()
    cost: float = 1.0
    deploy: DeploySpec = DeploySpec()
    depends_on: tuple[Edge, ...] = ()
    health: HealthSpec | None = None  # custom PromQL; None: the defaults of the kind (docs/health.md)

    @property
    def stateful(self) -> bool:
        return self.kind in STATEFUL_KINDS


@dataclass(frozen=True, slots=True)
class Service:
    """A consumer that depmirror does not replicate; it only lends its tier to what it calls."""

    name: str
    tier: int
    depends_on: tuple[Edge, ...] = ()


@dataclass(frozen=True, slots=True)
class Zone:
    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class VM:
    host: str
    address: str
    zone: str
    capacity: int = 4


@dataclass(frozen=True, slots=True)
class LoadBalancer:
    host: str
    address: str
    zone: str | None = None


@dataclass(frozen=True, slots=True)
class WeightPolicy:
    """Coefficients of the weight formula (they sum to 1) and the rate at which frequency saturates."""

    tier: float = 0.4
    frequency: float = 0.2
    impact: float = 0.4
    reference_rate: float = 1000.0


@dataclass(frozen=True, slots=True)
class ReplicationRules:
    rf_scale: float = 3.0
    tolerance: float = 0.15
    stabilisation_window: float = 600.0
    scale_down_step: int = 1


@dataclass(frozen=True, slots=True)
class ModeRules:
    active_active_min_weight: float = 0.5
    active_active_max_cost: float | None = None


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    """Scores below `unhealthy` are unhealthy; unknown (no data) is neither healthy nor unhealthy."""

    unhealthy: float = 0.5


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """Passed through to the nginx upstreams (issue 6); the planner does not use it."""

    max_fails: int = 3
    fail_timeout: str = "10s"
    connect_timeout: str = "2s"
    read_timeout: str = "10s"
    proxy_next_upstream: str = "error timeout http_502 http_503 http_504"


@dataclass(frozen=True, slots=True)
class Policy:
    cost_budget: float | None = None
    weights: WeightPolicy = WeightPolicy()
    replication: ReplicationRules = ReplicationRules()
    mode: ModeRules = ModeRules()
    health: HealthThresholds = HealthThresholds()
    routing: RoutingPolicy = RoutingPolicy()


@dataclass(frozen=True, slots=True)
class Graph:
    """A validated graph file. Mappings keep the file's order; planners sort where order matters."""

    source: str
    dependencies: Mapping[str, Dependency] = field(default_factory=dict)
    services: Mapping[str, Service] = field(default_factory=dict)
    zones: Mapping[str, Zone] = field(default_factory=dict)
    vms: Mapping[str, VM] = field(default_factory=dict)
    load_balancers: Mapping[str, LoadBalancer] = field(default_factory=dict)
    policy: Policy = Policy()

    @staticmethod
    def build(
        source: str,
        dependencies: list[Dependency],
        services: list[Service],
        zones: list[Zone],
        vms: list[VM],
        load_balancers: list[LoadBalancer],
        policy: Policy,
    ) -> Graph:
        return Graph(
            source=source,
            dependencies=MappingProxyType({d.name: d for d in dependencies}),
            services=MappingProxyType({s.name: s for s in services}),
            zones=MappingProxyType({z.name: z for z in zones}),
            vms=MappingProxyType({v.host: v for v in vms}),
            load_balancers=MappingProxyType({lb.host: lb for lb in load_balancers}),
            policy=policy,
        )

    def edges(self) -> list[Edge]:
        """Every call in the graph, from services and from dependencies that themselves call others."""
        found: list[Edge] = []
        for service in self.services.values():
            found.extend(service.depends_on)
        for dependency in self.dependencies.values():
            found.extend(dependency.depends_on)
        return found

    def tier_of(self, name: str) -> int:
        node = self.dependencies.get(name) or self.services.get(name)
        if node is None:
            raise KeyError(name)
        return node.tier
