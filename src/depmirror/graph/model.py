"""The graph file as typed values: dependencies, consumers, zones, VMs, load balancers and policy.

Everything here is immutable and already validated (`load` checks the file, `build` makes these values);
planners only read it. Run-time overrides (fleet/overrides.py) make changed copies, never change these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from depmirror.durations import duration_seconds, parse_duration
from depmirror.errors import ConfigError
from depmirror.graph.health_spec import HealthSpec

Kind = Literal["http", "tcp", "redis", "postgresql"]
Mode = Literal["active-active", "active-passive"]
ModePreference = Literal["auto", "active-active", "active-passive"]
Role = Literal["primary", "mirror", "standby"]

KINDS: tuple[Kind, ...] = ("http", "tcp", "redis", "postgresql")
# Kinds whose instances hold data (the mirror role knows how to run and replicate them). Any other kind is
# stateful when the graph gives it a `stateful:` block (StatefulSpec).
STATEFUL_KINDS: frozenset[str] = frozenset({"redis", "postgresql"})
# Stateful kinds whose instances may all take writes at once. None so far: Redis and PostgreSQL replicate
# from one writer, and a second writer would split the data. A multi-writer engine would be listed here.
MULTI_WRITER_KINDS: frozenset[str] = frozenset()
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
    """`consumer` calls `dependency` at `rate` requests per second.

    `required: false` is a soft dependency: without it the consumer degrades but still serves.
    """

    consumer: str
    dependency: str
    rate: float
    required: bool = True


@dataclass(frozen=True, slots=True)
class StatefulSpec:
    """How to move the state of an engine depmirror has no built-in kind for: argv lists run on the VM.

    Each is an argument vector (never a shell line, never templated): `promote` makes a replica the writer,
    `fence` stops a former primary from taking writes, `lag` prints how far a replica is behind.
    """

    promote: tuple[str, ...]
    fence: tuple[str, ...]
    lag: tuple[str, ...]


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
    entry_rate: float | None = None  # called from outside the graph (users, other systems) at this rate
    state: StatefulSpec | None = None  # a `stateful:` block: an engine without a built-in kind
    # Its own health threshold, set only by a run-time override (docs/runner.md, Overrides); None: the
    # fleet's `policy.health.unhealthy`. Read it through `Graph.unhealthy_below`.
    unhealthy: float | None = None

    @property
    def stateful(self) -> bool:
        return self.kind in STATEFUL_KINDS or self.state is not None

    @property
    def multi_writer(self) -> bool:
        """Whether every instance may take writes: stateless kinds, and stateful kinds that say they can."""
        return not self.stateful or self.kind in MULTI_WRITER_KINDS


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
    # `none`: a PostgreSQL primary acknowledges a commit only once a standby holds it (synchronous
    # replication), so a switchover loses no acknowledged write and writes wait while no standby answers.
    # `bounded`: asynchronous streaming; a switchover may lose what no standby had (docs/rollback.md).
    data_loss: Literal["none", "bounded"] = "bounded"


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
class ZonalShiftPolicy:
    """A zone as a whole (docs/rollback.md, "A zone outage, step by step"): when its alert fires, what the
    runner does, and how shifts behave. Durations are as written (`1h`); `*_s` gives seconds."""

    mode: Literal["act", "shadow", "off"] = "act"  # what the runner does with the zone alert
    max_concurrent: int = 1  # zones shifted at once
    expires: str = "1h"  # expiry of a shift the runner starts (at most 72h)
    hold: str = "5m"  # the zone alert resolved this long ends a shift the runner started
    alert_fraction: float = 0.5  # the zone alert: at least this fraction of its probed instances failing
    alert_min_vms: int = 2  # ... and at least this many of its VMs with every probe failing
    samples: int = 3  # ... for this many probes in a row

    @property
    def expires_s(self) -> float:
        return parse_duration(self.expires)

    @property
    def hold_s(self) -> float:
        return duration_seconds(self.hold) or 0.0  # "0s": end as soon as the zone alert resolves


@dataclass(frozen=True, slots=True)
class LearningPolicy:
    """`policy.learning` (docs/graph.md, Learning): when and how much the rollback history raises minimum
    RFs and penalises placement (the rules are `depmirror.planner.learning`). Off without the block."""

    enabled: bool = False
    window_s: float = 14 * 86400.0  # failovers this close to the newest one count together
    half_life_s: float = 3 * 86400.0  # the effect halves every half-life without a new failover
    failovers: float = 3.0  # failovers of one dependency (in the window) per step of minimum RF
    rf_step: int = 1
    max_raise: int = 2  # at most this above the graph's minimum, whatever the history
    active_active: bool = False  # once raised, prefer active-active (stateless kinds, within the budget)
    placement_failures: float = 2.0  # failures of one VM (or zone, in the window) before it is penalised
    placement_penalty: float = 0.25  # per failure from that count on, capped at 1, decaying

    @staticmethod
    def from_dict(data: Any, source: str = "graph.yml") -> LearningPolicy:
        """The `policy.learning` mapping (the schema checked its types); durations in seconds or `7d`.

        Absent: off. Present: on unless it says `enabled: false` (which keeps the settings written down)."""
        if data is None:
            return LearningPolicy()
        if not isinstance(data, Mapping):
            raise ConfigError(source, "policy.learning", "must be a mapping", "e.g. {window: 14d}")
        values: dict[str, Any] = {"enabled": True}
        for key, name in (("window", "window_s"), ("half_life", "half_life_s")):
            if key in data:
                values[name] = _seconds(data[key], source, f"policy.learning.{key}")
        for key in (
            "enabled",
            "failovers",
            "rf_step",
            "max_raise",
            "active_active",
            "placement_failures",
            "placement_penalty",
        ):
            if key in data:
                values[key] = data[key]
        learned = LearningPolicy(**values)
        if learned.failovers <= 0 or learned.placement_failures <= 0 or learned.half_life_s <= 0:
            raise ConfigError(source, "policy.learning", "failovers, placement_failures and half_life must be > 0")
        return learned


def _seconds(value: Any, source: str, where: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as error:
        raise ConfigError(source, where, str(error), "a duration such as 3d or 12h") from error


@dataclass(frozen=True, slots=True)
class Policy:
    cost_budget: float | None = None
    weights: WeightPolicy = WeightPolicy()
    replication: ReplicationRules = ReplicationRules()
    mode: ModeRules = ModeRules()
    health: HealthThresholds = HealthThresholds()
    routing: RoutingPolicy = RoutingPolicy()
    zonal_shift: ZonalShiftPolicy = ZonalShiftPolicy()
    learning: LearningPolicy = LearningPolicy()


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

    def unhealthy_below(self, dependency: str) -> float:
        """The health threshold of `dependency`'s instances: its own (an override), else the fleet's."""
        found = self.dependencies.get(dependency)
        own = found.unhealthy if found is not None else None
        return self.policy.health.unhealthy if own is None else own

    def tier_of(self, name: str) -> int:
        node = self.dependencies.get(name) or self.services.get(name)
        if node is None:
            raise KeyError(name)
        return node.tier
