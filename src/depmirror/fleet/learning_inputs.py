"""What `policy.learning` learns from, read from the store: the failovers of the rollback history as plain
values (`planner.learning.Failure`) for the pure planner. Nothing is read while learning is off, so a graph
without `policy.learning` plans exactly as before."""

from __future__ import annotations

from datetime import UTC, datetime

from depmirror.fleet.history_report import MAX_EVENTS, failures_from_events, zones_of
from depmirror.graph.model import Graph, LearningPolicy
from depmirror.planner.learning import Failure
from depmirror.store import EventFilter, StoreError, open_store

# Past this many half-lives of quiet an effect is below 2**-20 of what it was: nothing a plan can show
# (a raise rounds to 0, a penalty is dropped below 0.05), so older events are not read.
HALF_LIVES_READ = 20


def lookback_s(policy: LearningPolicy) -> float:
    """How far back from `now` a failure can still change a plan: one window, then the decay."""
    return policy.window_s + HALF_LIVES_READ * policy.half_life_s


def failures_from_store(graph: Graph, store_url: str, now: float) -> tuple[Failure, ...]:
    """The failovers (newest `MAX_EVENTS`) that can still weigh at `now` (epoch seconds); none when learning
    is off or the store does not exist yet (a broken store was already reported by `state_from_store`)."""
    policy = graph.policy.learning
    if not policy.enabled:
        return ()
    try:
        store = open_store(store_url, create=False)
    except StoreError:
        return ()
    until = epoch_utc(now + 0.001)  # the store's `until` is exclusive; a failure at `now` counts
    since = epoch_utc(max(0.0, now - lookback_s(policy)))
    with store:
        events = store.events(EventFilter(kinds=("rollback",), since=since, until=until, limit=MAX_EVENTS))
        zone_of = zones_of(store.applied_plan(), graph)
    return tuple(failures_from_events(events, zone_of))


def epoch_utc(epoch: float) -> datetime:
    """Epoch seconds as a UTC datetime."""
    # A `--now` far in the future or past must not crash the read: datetime holds years 1..9999.
    return datetime.fromtimestamp(min(max(epoch, 0.0), 253_402_300_799.0), UTC)
