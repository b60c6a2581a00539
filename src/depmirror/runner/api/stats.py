"""GET /api/v1/history/stats and the same statistics as Prometheus metrics on the runner's /metrics.

The metrics are computed in the background every REFRESH_S over the last WINDOW_S (a scrape never waits on
the store), from the same `compute_stats` as `depmirror history stats`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from functools import partial

from aiohttp import web
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from depmirror.fleet.history_report import stats_from_store
from depmirror.fleet.history_stats import GROUP_BY, Durations, GroupBy, GroupStats, HistoryStats
from depmirror.runner.api.context import context, error
from depmirror.runner.store_caller import StoreCaller
from depmirror.store import open_store
from depmirror.store.filters import FilterError, parse_since
from depmirror.store.model import utcnow

log = logging.getLogger("depmirror.runner")
WINDOW_S = 30 * 86400.0
REFRESH_S = 60.0
COUNTS = (
    ("failovers", "Failovers (rollbacks) that succeeded"),
    ("failovers_failed", "Failovers (rollbacks) that failed or could not start"),
    ("failovers_shadow", "Failovers decided in shadow mode (not run)"),
    ("failbacks", "Failbacks that succeeded"),
    ("refusals", "Rollbacks and failbacks refused (no healthy target, unknown health, ...)"),
    ("interrupted", "Actions interrupted (the runner stopped mid-action)"),
    ("flaps", "Alerts suppressed as flapping"),
    ("held", "Alerts held back by an override (rollback frozen, manual or shadow)"),
)


async def history_stats(request: web.Request) -> web.Response:
    query = request.query
    by = query.get("by", "dependency")
    if by not in GROUP_BY:
        return error(400, "by", f"must be one of {', '.join(GROUP_BY)}")
    now = utcnow()
    try:
        since = parse_since(query.get("since", "30d")[:64], now)
    except FilterError as problem:
        return error(400, "since", str(problem).partition(": ")[2])
    history = context(request).history
    stats = await history.stats(since=since, until=now, by=by)
    return web.json_response(stats.as_dict())


class HistoryStore:
    """The statistics' own store connection and thread, opened at first use and again after a failure."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._caller: StoreCaller | None = None
        self._lock = asyncio.Lock()

    async def stats(self, *, since: datetime, until: datetime, by: GroupBy = "dependency") -> HistoryStats:
        async with self._lock:
            if self._caller is None:
                self._caller = StoreCaller(await asyncio.to_thread(open_store, self.url))
            caller = self._caller
        return await caller(partial(stats_from_store, caller.store, since=since, until=until, by=by))

    def close(self) -> None:
        if self._caller is not None:
            self._caller.shutdown()
            self._caller.store.close()
            self._caller = None


class HistoryCollector(Collector):
    """Serves the last statistics computed; empty until the first computation."""

    def __init__(self) -> None:
        self.stats: HistoryStats | None = None
        self.updated = 0.0

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = self.stats
        if stats is None:
            return
        days = f"{WINDOW_S / 86400:.0f} days"
        for name, help_text in COUNTS:
            family = GaugeMetricFamily(
                f"depmirror_history_{name}", f"{help_text} in the last {days}, per dependency.", labels=["dependency"]
            )
            for group in stats.groups:
                family.add_metric([group.key], getattr(group, name))
            yield family
        for name, help_text, pick in (
            ("fault_to_switched_seconds", "From the alert's start to the switch", _fault),
            ("switched_to_failback_seconds", "From a switch to its failback", _failback),
        ):
            family = GaugeMetricFamily(
                f"depmirror_history_{name}",
                f"{help_text} (nearest-rank p50, p90 and max as quantile 1) in the last {days}, per dependency.",
                labels=["dependency", "quantile"],
            )
            for group in stats.groups:
                durations = pick(group)
                for quantile, value in (("0.5", durations.p50), ("0.9", durations.p90), ("1", durations.max)):
                    if value is not None:
                        family.add_metric([group.key, quantile], value)
            yield family
        reasons = GaugeMetricFamily(
            "depmirror_history_reason_events",
            f"Events of the most frequent reasons (refusals, holds, failures) in the last {days}.",
            labels=["reason"],
        )
        for reason, count in stats.total.top_reasons:
            reasons.add_metric([reason], count)
        yield reasons
        yield GaugeMetricFamily(
            "depmirror_history_stats_updated_timestamp_seconds",
            "When these history statistics were computed (Unix time).",
            value=self.updated,
        )


def _fault(group: GroupStats) -> Durations:
    return group.fault_to_switched


def _failback(group: GroupStats) -> Durations:
    return group.switched_to_failback


async def refresh_forever(collector: HistoryCollector, history: HistoryStore, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            now = utcnow()
            collector.stats = await history.stats(since=now - timedelta(seconds=WINDOW_S), until=now)
            collector.updated = time.time()
        except Exception:  # the store may be away for a while: the last figures stay
            log.warning("cannot compute the history statistics for /metrics", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), REFRESH_S)


@contextlib.asynccontextmanager
async def refreshing(collector: HistoryCollector, history: HistoryStore) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(refresh_forever(collector, history, stop))
    try:
        yield
    finally:
        stop.set()
        await task
