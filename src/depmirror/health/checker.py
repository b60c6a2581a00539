"""The runner's health re-check before a rollback, answered from Prometheus by this library.

Configured in the runner as `health: {checker: "depmirror.health.checker:factory", options: {...}}`.
Verdicts map onto the runner's three words conservatively: the failed instance is `unhealthy` only when
`failing`, and a mirror is a `healthy` target only when `healthy` (a degraded mirror is no place to go).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import os
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from depmirror.durations import parse_duration
from depmirror.errors import ConfigError
from depmirror.graph.load import load_graph
from depmirror.graph.model import Graph
from depmirror.health.evaluate import InstanceVerdict, fetch_health
from depmirror.health.view import HealthView, TargetHealth

# The health threshold in force for the dependency being decided, when an override sets one (the runner sets
# it per decision: runner/policy.py, `use_threshold`); (dependency, threshold), None: the graph's.
UNHEALTHY_BELOW: contextvars.ContextVar[tuple[str, float] | None] = contextvars.ContextVar(
    "depmirror_unhealthy_below", default=None
)

_FAILED = {"failing": "unhealthy", "healthy": "healthy", "degraded": "unknown", "unknown": "unknown"}
_CANDIDATE = {"healthy": "healthy", "degraded": "unhealthy", "failing": "unhealthy", "unknown": "unknown"}


@dataclasses.dataclass(frozen=True, slots=True)
class HealthRequest:
    """One re-check of a batch: the dependency, its alerting instance, and the health threshold an override
    sets for it (None: the graph's)."""

    dependency: str
    failed_instance: str
    unhealthy_below: float | None = None


class PrometheusHealthChecker:
    def __init__(
        self, graph: Graph, url: str, token: str | None, timeout: float, interval: float | None = None
    ) -> None:
        self.graph, self.url, self.token, self.timeout, self.interval = graph, url, token, timeout, interval

    async def check(self, dependency: str, failed_instance: str) -> HealthView:
        override = UNHEALTHY_BELOW.get()
        threshold = override[1] if override is not None and override[0] == dependency else None
        return (await self.check_many([HealthRequest(dependency, failed_instance, threshold)]))[0]

    async def check_many(self, requests: Sequence[HealthRequest]) -> list[HealthView]:
        """The re-checks of a batch from one call: one connection to Prometheus, one scrape-interval
        lookup, the queries of every dependency named; one view per request, in order."""
        graph = self.graph
        for request in requests:
            if request.unhealthy_below is not None:
                graph = with_threshold(graph, request.dependency, (request.dependency, request.unhealthy_below))
        report = await asyncio.to_thread(
            fetch_health,
            graph,
            self.url,
            None,
            token=self.token,
            timeout=self.timeout,
            interval=self.interval,
            dependencies={request.dependency for request in requests},
        )
        by_dependency: dict[str, dict[str, InstanceVerdict]] = {}
        for verdict in report.verdicts:
            by_dependency.setdefault(verdict.dependency, {})[verdict.key] = verdict
        return [self._view(by_dependency.get(r.dependency, {}), r.failed_instance, report.warnings) for r in requests]

    def _view(
        self, verdicts: Mapping[str, InstanceVerdict], failed_instance: str, warnings: Sequence[str]
    ) -> HealthView:
        failed = verdicts.get(failed_instance)
        return HealthView(
            failed_instance=_word(_FAILED, failed),
            candidates={key: _word(_CANDIDATE, v) for key, v in sorted(verdicts.items()) if key != failed_instance},
            source=f"prometheus {self.url}",
            inputs={"verdicts": [v.to_dict() for v in verdicts.values()], "warnings": list(warnings)},
        )


def with_threshold(graph: Graph, dependency: str, override: tuple[str, float] | None) -> Graph:
    """`graph` with `dependency`'s health threshold set to the override's (for that dependency only)."""
    found = graph.dependencies.get(dependency)
    if override is None or override[0] != dependency or found is None or found.unhealthy == override[1]:
        return graph
    dependencies = {**graph.dependencies, dependency: dataclasses.replace(found, unhealthy=override[1])}
    return dataclasses.replace(graph, dependencies=MappingProxyType(dependencies))


def _word(table: Mapping[str, str], verdict: InstanceVerdict | None) -> TargetHealth:
    word: Any = "unknown" if verdict is None else table[verdict.state]
    return word


def factory(options: Mapping[str, Any]) -> PrometheusHealthChecker:
    """Options: `graph` (path), `prometheus_url`, `token_env` (name of the variable holding the bearer
    token), `timeout` (seconds), `interval` (default: the probe job's scrape interval from Prometheus)."""
    where = "runner config"
    graph = options.get("graph")
    url = options.get("prometheus_url") or os.environ.get("DEPMIRROR_PROMETHEUS_URL")
    if not isinstance(graph, str) or not graph:
        raise ConfigError(where, "health.options.graph", "missing", "the path of the graph file")
    if not isinstance(url, str) or not url:
        raise ConfigError(where, "health.options.prometheus_url", "missing", "the Prometheus base URL")
    token_env = options.get("token_env", "DEPMIRROR_PROMETHEUS_TOKEN")
    try:
        interval = None if options.get("interval") is None else parse_duration(options["interval"])
        timeout = float(options.get("timeout", 5.0))
    except (TypeError, ValueError) as error:
        raise ConfigError(where, "health.options", str(error), "interval like 5s, timeout in seconds") from error
    token = os.environ.get(str(token_env)) or None
    return PrometheusHealthChecker(load_graph(graph), url, token, timeout, interval)
