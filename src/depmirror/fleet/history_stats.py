"""What the rollback history says about the fleet: failovers, refusals, interrupted actions, flaps, how long a
fault took to be switched away from and how long a switch lasted before its failback, and the top reasons.

Pure: events in, numbers out. `depmirror history stats`, the runner's `/metrics` and `GET
/api/v1/history/stats` all call `compute_stats`, so the three always agree (docs/history.md, "Statistics").
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from depmirror.store.model import Event

GroupBy = Literal["dependency", "zone", "vm"]
GROUP_BY: tuple[GroupBy, ...] = ("dependency", "zone", "vm")
# The kinds the statistics read; the runner asks the store for these alone (alert_ignored can be most rows).
STATS_KINDS = ("rollback", "failback", "refused", "interrupted", "alert_suppressed")
UNKNOWN = "-"
# How the runner begins the reason of an alert an override held back (rollback frozen, manual or shadow):
# such a `refused` event is counted as held, not as a refusal.
HELD_PREFIX = "held by override"
TOP_REASONS = 5
# A reason carries ids, counts and seconds ("cooldown: rollback #12 30s ago ..."): the text before its first
# ":" or "(" (numbers masked) is what repeats across events, so that is what is counted.
_NUMBER = re.compile(r"\d+(\.\d+)?")
_MAX_REASON = 80


@dataclass(frozen=True, slots=True)
class Durations:
    """Seconds, nearest-rank percentiles (p50 of 1,2,3,4 is 2); None when nothing was measured."""

    count: int = 0
    p50: float | None = None
    p90: float | None = None
    max: float | None = None

    @staticmethod
    def of(values: Iterable[float]) -> Durations:
        ordered = sorted(values)
        if not ordered:
            return Durations()
        return Durations(
            count=len(ordered),
            p50=_rank(ordered, 0.5),
            p90=_rank(ordered, 0.9),
            max=round(ordered[-1], 3),
        )

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "p50": self.p50, "p90": self.p90, "max": self.max}


def _rank(ordered: Sequence[float], quantile: float) -> float:
    return round(ordered[max(0, math.ceil(quantile * len(ordered)) - 1)], 3)


@dataclass(frozen=True, slots=True)
class GroupStats:
    key: str
    failovers: int = 0
    failovers_failed: int = 0
    failovers_shadow: int = 0
    failbacks: int = 0
    refusals: int = 0
    interrupted: int = 0
    flaps: int = 0
    held: int = 0
    fault_to_switched: Durations = Durations()
    switched_to_failback: Durations = Durations()
    top_reasons: tuple[tuple[str, int], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "failovers": self.failovers,
            "failovers_failed": self.failovers_failed,
            "failovers_shadow": self.failovers_shadow,
            "failbacks": self.failbacks,
            "refusals": self.refusals,
            "interrupted": self.interrupted,
            "flaps": self.flaps,
            "held": self.held,
            "fault_to_switched_seconds": self.fault_to_switched.as_dict(),
            "switched_to_failback_seconds": self.switched_to_failback.as_dict(),
            "top_reasons": [{"reason": reason, "count": count} for reason, count in self.top_reasons],
        }


@dataclass(frozen=True, slots=True)
class HistoryStats:
    by: GroupBy
    since: datetime | None
    until: datetime | None
    events: int
    total: GroupStats
    groups: tuple[GroupStats, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "events": self.events,
            "total": self.total.as_dict(),
            "groups": [group.as_dict() for group in self.groups],
        }


def host_of(instance: str | None) -> str:
    """The VM of an event's instance (`dependency@host` or `host`)."""
    if not instance:
        return UNKNOWN
    return instance.rpartition("@")[2] or UNKNOWN


def reason_key(reason: str) -> str:
    """The repeating part of a reason: `cooldown: rollback #12 30s ago` -> `cooldown`."""
    head = re.split(r"[:(]", reason, maxsplit=1)[0].strip()
    head = _NUMBER.sub("N", head) or "(no reason)"
    return head if len(head) <= _MAX_REASON else head[: _MAX_REASON - 3] + "..."


def _failure_key(reason: str) -> str:
    # The runner writes "<why it acted>; <what the action said>": the action's part says why it failed.
    return reason_key(reason.rsplit("; ", 1)[-1])


def fault_started(event: Event) -> datetime | None:
    """When the alert that triggered `event` started firing (Alertmanager's startsAt), if it says so."""
    text = event.trigger.get("starts_at") if isinstance(event.trigger, Mapping) else None
    if not isinstance(text, str) or not text or len(text) > 64:
        return None
    try:
        started = datetime.fromisoformat(text.strip())
    except ValueError:
        return None  # alert text is data: a startsAt that is not a time measures nothing
    return started if started.tzinfo is not None else None


def compute_stats(
    events: Iterable[Event],
    *,
    by: GroupBy = "dependency",
    zone_of: Mapping[str, str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    top: int = TOP_REASONS,
) -> HistoryStats:
    """Statistics of `events` (any order) between `since` and `until`, overall and per group.

    `zone_of` maps a VM to its zone (for `by="zone"`); a VM it does not know is in zone `-`."""
    if by not in GROUP_BY:
        raise ValueError(f"by: {by!r} is not one of {', '.join(GROUP_BY)}")
    zones = zone_of or {}
    chosen = sorted(
        (
            e
            for e in events
            if e.kind in STATS_KINDS and (since is None or e.time >= since) and (until is None or e.time <= until)
        ),
        key=lambda e: (e.time, e.id or 0),
    )

    def key_of(event: Event) -> str:
        if by == "dependency":
            return event.dependency or UNKNOWN
        host = host_of(event.instance)
        return host if by == "vm" else zones.get(host, UNKNOWN)

    grouped: dict[str, list[int]] = {}
    for position, event in enumerate(chosen):
        grouped.setdefault(key_of(event), []).append(position)
    switched = _switch_durations(chosen)
    groups = tuple(_group(key, chosen, grouped[key], switched, top=top) for key in sorted(grouped, key=_sort_key))
    total = _group("*", chosen, range(len(chosen)), switched, top=top)
    return HistoryStats(by=by, since=since, until=until, events=len(chosen), total=total, groups=groups)


def _sort_key(key: str) -> tuple[bool, str]:
    return (key == UNKNOWN, key)


def _switch_durations(ordered: Sequence[Event]) -> dict[int, float]:
    """Seconds from each succeeded rollback to the succeeded failback that returned to its instance, keyed by
    the rollback's position in `ordered` (a rollback not failed back yet has none)."""
    open_switches: dict[tuple[str, str], int] = {}
    durations: dict[int, float] = {}
    for position, event in enumerate(ordered):
        if event.outcome != "succeeded":
            continue
        key = (event.dependency, host_of(event.instance))
        if event.kind == "rollback":
            open_switches[key] = position  # a second switch away from the same VM restarts the clock
        elif event.kind == "failback" and key in open_switches:
            start = open_switches.pop(key)
            durations[start] = max(0.0, (event.time - ordered[start].time).total_seconds())
    return durations


def _group(
    key: str,
    ordered: Sequence[Event],
    positions: Iterable[int],
    switched: Mapping[int, float],
    *,
    top: int,
) -> GroupStats:
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    fault_seconds: list[float] = []
    switch_seconds: list[float] = []
    for position in positions:
        event = ordered[position]
        if position in switched:
            switch_seconds.append(switched[position])
        kind, outcome = event.kind, event.outcome
        if kind == "rollback":
            if outcome == "succeeded":
                counts["failovers"] += 1
                started = fault_started(event)
                if started is not None and started <= event.time:
                    fault_seconds.append((event.time - started).total_seconds())
            elif outcome == "shadow":
                counts["failovers_shadow"] += 1
            else:
                counts["failovers_failed"] += 1
                reasons[_failure_key(event.reason)] += 1
        elif kind == "failback":
            if outcome == "succeeded":
                counts["failbacks"] += 1
            elif outcome != "shadow":
                reasons[_failure_key(event.reason)] += 1
        elif kind == "refused":
            counts["held" if event.reason.startswith(HELD_PREFIX) else "refusals"] += 1
            reasons[reason_key(event.reason)] += 1
        elif kind == "interrupted":
            counts["interrupted"] += 1
            reasons[reason_key(event.reason)] += 1
        elif kind == "alert_suppressed":
            if event.reason.startswith("flapping"):
                counts["flaps"] += 1
            reasons[reason_key(event.reason)] += 1
    return GroupStats(
        key=key,
        failovers=counts["failovers"],
        failovers_failed=counts["failovers_failed"],
        failovers_shadow=counts["failovers_shadow"],
        failbacks=counts["failbacks"],
        refusals=counts["refusals"],
        interrupted=counts["interrupted"],
        flaps=counts["flaps"],
        held=counts["held"],
        fault_to_switched=Durations.of(fault_seconds),
        switched_to_failback=Durations.of(switch_seconds),
        top_reasons=tuple(sorted(reasons.items(), key=lambda item: (-item[1], item[0]))[:top]),
    )
