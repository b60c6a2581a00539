"""What a batch of switchovers shares: one health query, the order of the decisions, one store session.

A batch is every switchover pending at the same moment (a zone down: hundreds at once). The fast path
(`switchover.FastPath.switch_batch`) decides them from one read of the store and one health query, in order
of weight, and routes them with one release per load balancer (`batch_release`). Each dependency still
gets its own event; they share the batch id (docs/rollback.md, "Batches").
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from depmirror.fleet.applied import with_dependency
from depmirror.graph.model import Graph
from depmirror.health.evaluate import InstanceVerdict, fetch_health
from depmirror.planner.weights import compute_weights
from depmirror.rollback.flow import Health
from depmirror.store import Event, open_store

Status = Literal["succeeded", "failed", "refused", "unavailable", "lease_lost"]
# Health of every dependency named, from one query (the runner and the tests pass their own source).
HealthSource = Callable[[Collection[str]], Mapping[str, Health]]
NO_PROMETHEUS = "no Prometheus URL: health is unknown, so no instance can be a target"


def new_batch_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass(slots=True)
class SwitchOutcome:
    """One dependency's part of a batch. `error` is what a batch of one raises (RollbackRefused,
    FastPathUnavailable, FastPathFailed, LeaseLost); `event` its history event (`rollback` succeeded or failed,
    or `refused`), as stored when the batch records, else as built. A lost lease has no event: the runner
    that holds the lease now records what happens."""

    dependency: str
    status: Status
    event: dict[str, Any] | None = None
    error: Exception | None = None
    phase: str = ""


@dataclass(slots=True)
class BatchResult:
    batch: str
    outcomes: list[SwitchOutcome]
    timings: dict[str, float] = field(default_factory=dict)
    releases: dict[str, str] = field(default_factory=dict)
    # How many times each load balancer reloaded nginx for this batch (1 unless a bad upstream was left out
    # after its release had been swapped in on another attempt; 0 when nothing was routed there).
    reloads: dict[str, int] = field(default_factory=dict)

    def by_dependency(self) -> dict[str, SwitchOutcome]:
        return {o.dependency: o for o in self.outcomes}


def by_weight(graph: Graph, names: Iterable[str]) -> list[str]:
    """Most critical first (the graph's weights), then by name: the order of decisions and of events."""
    weights = compute_weights(graph).weights
    return sorted(names, key=lambda name: (-(weights[name].value if name in weights else 0.0), name))


def prometheus_health(
    graph: Graph, url: str | None, *, token: str | None, timeout: float, interval: float | None
) -> HealthSource:
    """Health of every dependency of a batch from one `fetch_health` call (one connection to Prometheus)."""

    def source(names: Collection[str]) -> Mapping[str, Health]:
        if not url:
            return dict.fromkeys(names, Health({}, {}, [], [NO_PROMETHEUS]))
        report = fetch_health(
            graph, url, None, token=token, timeout=timeout, interval=interval, dependencies=set(names)
        )
        grouped: dict[str, list[InstanceVerdict]] = {name: [] for name in names}
        for verdict in report.verdicts:
            grouped.setdefault(verdict.dependency, []).append(verdict)
        return {name: health_of(verdicts, list(report.warnings)) for name, verdicts in grouped.items()}

    return source


def health_of(verdicts: Iterable[InstanceVerdict], warnings: list[str]) -> Health:
    """One dependency's Health from its verdicts: the rule of `flow.live_health` (degraded is no target)."""
    return health_of_listed([verdict.to_dict() for verdict in verdicts], warnings)


def health_of_listed(listed: list[dict[str, Any]], warnings: list[str]) -> Health:
    """`health_of` from verdicts as `InstanceVerdict.to_dict` lists them (the runner's re-check keeps them in
    its view: the batch reuses them instead of asking Prometheus again)."""
    scores: dict[str, float | None] = {}
    excluded: dict[str, str] = {}
    states: dict[str, str] = {}
    for verdict in listed:
        host, state = str(verdict["host"]), str(verdict["verdict"])
        states[host] = state
        scores[host] = None if state == "unknown" else verdict["score"]
        if state == "degraded":
            excluded[host] = f"degraded ({verdict['reason']})"
    return Health(scores, excluded, list(listed), warnings, states)


def shifted_zones(store_url: str, now: datetime | None = None) -> list[str]:
    """The zones under a zonal shift now (one store read per batch): their instances serve as backups only
    in the release, as adjust renders them (views/upstreams.build_upstreams)."""
    with open_store(store_url) as store:
        return sorted({shift.zone for shift in store.zonal_shifts(active_at=now or datetime.now(UTC))})


def record_routing_all(store_url: str, afters: Iterable[dict[str, Any]]) -> None:
    """`flow.record_routing` for every dependency of a batch, in one write of the applied plan."""
    afters = list(afters)
    if not afters:
        return
    with open_store(store_url) as store:
        record = dict(store.applied_plan() or {})
        for after in afters:
            record = with_dependency(record, after)
        store.set_applied_plan(record)


def record_events(store_url: str, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Append the batch's events in one store session (what `fleet.rollback_history.record_event` does for
    one: the same fields, and a succeeded switchover publishes its primary)."""
    stored = []
    with open_store(store_url) as store:
        for fields in events:
            event = store.append_event(
                Event(
                    kind=fields["kind"],
                    dependency=fields["dependency"],
                    outcome=fields["outcome"],
                    time=datetime.now(UTC),
                    instance=fields.get("instance"),
                    target=fields.get("target"),
                    action=fields.get("action"),
                    trigger=fields.get("trigger") or {},
                    inputs=fields.get("inputs") or {},
                    decision=fields.get("decision") or "",
                    reason=fields.get("reason") or "",
                    duration_s=fields.get("duration_s"),
                    details=fields.get("details") or {},
                )
            )
            if fields.get("set_primary") and fields["outcome"] == "succeeded":
                store.set_primary(fields["dependency"], fields["set_primary"])
            stored.append(event.as_dict())
    return stored


def batch_details(batch: str, size: int, rank: int) -> dict[str, Any]:
    """What every event of a batch carries in its details: the shared id, how many, and its place in the
    order of weight (1 is the most critical)."""
    return {"batch": batch, "batch_size": size, "batch_rank": rank}
