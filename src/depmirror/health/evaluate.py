"""Ask Prometheus about every instance and decide its verdict: the entry point of the health library.

One range query per signal and dependency covers the newest N steps, so a one-shot caller (the CLI, the
inventory plugin) decides 'N consecutive bad samples' without keeping memory of its own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from depmirror.graph.health_spec import HealthSpec
from depmirror.graph.model import Graph
from depmirror.health.client import PrometheusSource, PrometheusUnavailable
from depmirror.health.queries import BLACKBOX_JOB, DependencyQueries, InstanceRef, queries_for
from depmirror.health.score import Decision, HealthBand, Sample, decide, scored
from depmirror.health.system import aggregate, snapshot
from depmirror.planner.state import HealthSnapshot, instance_key

DEFAULT_INTERVAL = 5.0
# A sample older than this many intervals is stale: Prometheus still returns it for 5 minutes.
STALE_INTERVALS = 3.0
# Worst value when several series answer for one instance: pessimistic for up, latency and errors alike.
_COMBINE = {"up": min, "latency": max, "error_ratio": max}


@dataclass(frozen=True, slots=True)
class InstanceVerdict:
    """The verdict on one instance and everything behind it: the queries and the samples they returned."""

    dependency: str
    host: str
    zone: str | None
    role: str | None
    state: HealthBand
    score: float | None
    reason: str
    queries: Mapping[str, str]
    samples: tuple[Sample, ...] = ()

    @property
    def key(self) -> str:
        return instance_key(self.dependency, self.host)

    @property
    def allows_destructive_action(self) -> bool:
        """Only `failing` may justify a rollback or a decommission; unknown and degraded never do."""
        return self.state == "failing"

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance": self.key,
            "dependency": self.dependency,
            "host": self.host,
            "zone": self.zone,
            "role": self.role,
            "verdict": self.state,
            "score": self.score,
            "reason": self.reason,
            "queries": dict(self.queries),
            "samples": [s.to_dict() for s in self.samples],
        }


@dataclass(frozen=True, slots=True)
class HealthReport:
    graph: Graph = field(repr=False)
    verdicts: tuple[InstanceVerdict, ...]
    checked_at: float
    warnings: tuple[str, ...] = ()
    interval: float = DEFAULT_INTERVAL

    def scores(self) -> dict[tuple[str, str], float | None]:
        return {(v.dependency, v.host): v.score for v in self.verdicts}

    def snapshot(self) -> HealthSnapshot:
        return snapshot(self.graph, self.scores())

    def rollback_candidates(self) -> list[InstanceVerdict]:
        """Primaries whose verdict allows a rollback; an unreachable Prometheus yields none."""
        return [v for v in self.verdicts if v.role == "primary" and v.allows_destructive_action]

    def to_dict(self) -> dict[str, Any]:
        vms, zones, overall = aggregate(self.graph, self.scores())
        return {
            "checked_at": self.checked_at,
            "interval": self.interval,
            "overall": overall,
            "zones": zones,
            "vms": vms,
            "instances": [v.to_dict() for v in self.verdicts],
            "warnings": list(self.warnings),
        }


def fetch_health(
    graph: Graph,
    url: str,
    instances: Iterable[InstanceRef] | None = None,
    *,
    token: str | None = None,
    timeout: float = 5.0,
    interval: float | None = None,
    specs: Mapping[str, HealthSpec] | None = None,
    now: float | None = None,
    dependencies: Collection[str] | None = None,
) -> HealthReport:
    """Verdicts for `instances`, or for every instance Prometheus has data on when None.

    `interval` is the step between samples; None takes the probe job's scrape interval from Prometheus
    (a step shorter than the scrape interval would count one probe several times). `dependencies` limits
    the queries to those dependencies (the runner re-checks one at a time).
    """
    now = time.time() if now is None else now
    wanted = list(instances) if instances is not None else None
    warnings: list[str] = []
    verdicts: list[InstanceVerdict] = []
    failure: str | None = None
    with PrometheusSource(url, token, timeout) as source:
        step = interval
        if step is None:
            try:
                step = source.scrape_interval(BLACKBOX_JOB) or DEFAULT_INTERVAL
            except PrometheusUnavailable as error:
                failure = str(error)
                warnings.append(f"Prometheus unavailable, health is unknown: {failure}")
                step = DEFAULT_INTERVAL
        for dependency in graph.dependencies.values():
            if dependencies is not None and dependency.name not in dependencies:
                continue
            queries = queries_for(dependency, (specs or {}).get(dependency.name))
            refs = [r for r in wanted if r.dependency == dependency.name] if wanted is not None else None
            if refs == []:
                continue
            if failure is None:
                try:
                    data = _fetch(source, queries, now, step)
                except PrometheusUnavailable as error:
                    failure = str(error)
                    warnings.append(f"Prometheus unavailable, health is unknown: {failure}")
            if failure is not None:
                why = f"Prometheus unavailable: {failure}"
                verdicts.extend(_unknown(graph, ref, queries, why) for ref in refs or [])
                continue
            verdicts.extend(_judge(graph, queries, data, refs, graph.unhealthy_below(dependency.name), warnings))
    for ref in wanted or []:
        if ref.dependency not in graph.dependencies:
            warnings.append(f"{ref.dependency}@{ref.host}: {ref.dependency!r} is not a dependency of the graph")
    return HealthReport(graph, tuple(verdicts), now, tuple(warnings), step)


@dataclass(frozen=True, slots=True)
class _Fetched:
    grid: tuple[float, ...]
    values: Mapping[str, Mapping[str, Mapping[float, float]]]  # signal -> host -> time -> value
    roles: Mapping[str, str]
    unlabelled: bool
    stale_after: float


def _fetch(source: PrometheusSource, queries: DependencyQueries, now: float, interval: float) -> _Fetched:
    # Whole seconds: the client rounds start and end, and the grid must match the points Prometheus returns.
    # Rounded up, not down: the last point must see the newest sample. Floored, a re-check 0.3 s after an
    # alert fired evaluated at the second before it, saw the probe before the fault and called it healthy.
    end = float(math.ceil(now))
    start = end - math.ceil((queries.samples - 1) * interval)
    grid = tuple(start + k * interval for k in range(int((end - start) / interval + 1e-9) + 1))
    values: dict[str, dict[str, dict[float, float]]] = {}
    roles: dict[str, str] = {}
    unlabelled = False
    signals = {**queries.by_signal(), "sampled_at": f"timestamp({queries.up})"}
    for signal, query in signals.items():
        per_host: dict[str, dict[float, float]] = {}
        for series in source.range(query, start, end, interval):
            host = series.labels.get("host")
            if host is None:
                unlabelled = True
                continue
            if signal == "up" and "role" in series.labels:
                roles[host] = series.labels["role"]
            merged = per_host.setdefault(host, {})
            combine = _COMBINE.get(signal, max)
            for at, value in series.points.items():
                merged[at] = combine(merged[at], value) if at in merged else value
        values[signal] = per_host
    return _Fetched(grid, values, roles, unlabelled, STALE_INTERVALS * interval)


def _judge(
    graph: Graph,
    queries: DependencyQueries,
    data: _Fetched,
    refs: list[InstanceRef] | None,
    unhealthy: float,
    warnings: list[str],
) -> list[InstanceVerdict]:
    if data.unlabelled:
        warnings.append(f"{queries.dependency}: a health query returns series without a `host` label; they are ignored")
    if refs is None:
        hosts = sorted(data.values.get("up", {}))
        refs = [InstanceRef(queries.dependency, host, data.roles.get(host)) for host in hosts]
    dependency = graph.dependencies[queries.dependency]
    verdicts = []
    for ref in refs:
        samples = [scored(_sample(data, ref.host, at), dependency.slo) for at in data.grid]
        decision: Decision = decide(samples, queries.samples, unhealthy)
        vm = graph.vms.get(ref.host)
        verdicts.append(
            InstanceVerdict(
                ref.dependency,
                ref.host,
                vm.zone if vm else None,
                ref.role or data.roles.get(ref.host),
                decision.state,
                decision.score,
                decision.reason,
                queries.by_signal(),
                tuple(samples),
            )
        )
    return verdicts


def _sample(data: _Fetched, host: str, at: float) -> Sample:
    def value(signal: str) -> float | None:
        return data.values.get(signal, {}).get(host, {}).get(at)

    sampled_at = value("sampled_at")
    stale = sampled_at is not None and at - sampled_at > data.stale_after
    return Sample(at, value("up"), value("latency"), value("error_ratio"), stale)


def _unknown(graph: Graph, ref: InstanceRef, queries: DependencyQueries, reason: str) -> InstanceVerdict:
    vm = graph.vms.get(ref.host)
    zone = vm.zone if vm else None
    return InstanceVerdict(ref.dependency, ref.host, zone, ref.role, "unknown", None, reason, queries.by_signal())


def collect_snapshot(
    graph: Graph,
    url: str,
    *,
    token: str | None = None,
    timeout: float = 5.0,
    instances: Iterable[InstanceRef] | None = None,
) -> tuple[HealthSnapshot, list[str]]:
    """The planner's HealthSnapshot from Prometheus, and warnings (why health is unknown, if it is).

    Without `instances`, every instance Prometheus has data on is judged. An unreachable Prometheus gives
    an empty snapshot (all unknown) and a warning, never an exception.
    """
    report = fetch_health(graph, url, instances, token=token, timeout=timeout)
    return report.snapshot(), list(report.warnings)
