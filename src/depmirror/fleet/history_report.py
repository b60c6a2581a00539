"""Reading the history for its statistics: the store half of `depmirror history stats`, the runner's
`/metrics` and `GET /api/v1/history/stats` (the numbers themselves come from the pure `history_stats`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from depmirror.fleet.applied import state_of
from depmirror.fleet.history_stats import STATS_KINDS, GroupBy, HistoryStats, compute_stats, host_of
from depmirror.graph.model import Graph
from depmirror.planner.learning import Failure
from depmirror.store import Event, EventFilter, Store

# Enough for a month of a large fleet's decisions; a read never grows without bound (alert storms are
# recorded as alert_ignored, which the statistics do not read).
MAX_EVENTS = 200_000


def zones_of(record: Mapping[str, Any] | None, graph: Graph | None = None) -> dict[str, str]:
    """Each VM's zone: the graph's VM pool, then the applied plan's instances (a VM gone from the graph since)."""
    zones = {record_.host: record_.zone for record_ in state_of(record, "applied plan").instances if record_.zone}
    if graph is not None:
        zones.update({vm.host: vm.zone for vm in graph.vms.values()})
    return zones


def stats_from_store(
    store: Store,
    *,
    since: datetime | None,
    until: datetime | None = None,
    by: GroupBy = "dependency",
    graph: Graph | None = None,
) -> HistoryStats:
    events = store.events(EventFilter(kinds=STATS_KINDS, since=since, until=until, limit=MAX_EVENTS))
    zone_of = zones_of(store.applied_plan(), graph) if by == "zone" else {}
    return compute_stats(events, by=by, zone_of=zone_of, since=since, until=until)


def failures_from_events(events: Iterable[Event], zone_of: Mapping[str, str]) -> list[Failure]:
    """What `planner.learning` learns from: each rollback that ran (succeeded or failed: either way the
    primary had failed), as the failed VM, its zone, the time and the event id. Shadow decisions and
    refusals moved nothing and teach nothing."""
    return [
        Failure(
            time=event.time.timestamp(),
            dependency=event.dependency,
            host=host_of(event.instance),
            zone=zone_of.get(host_of(event.instance)),
            event_id=event.id,
        )
        for event in events
        if event.kind == "rollback" and event.outcome in ("succeeded", "failed")
    ]
