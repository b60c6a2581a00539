"""Zone rules: which zones may take new instances and keep primaries, from zone health and zonal shifts.

A zone whose known health is below `policy.health.unhealthy`, or that is under a zonal shift whose expiry
lies after `now`, is **excluded**: it gets no new instance, keeps no primary (the primary moves to a zone
that is not excluded) and its instances do not count towards RF. A zone of **unknown** health is never
excluded (unknown moves nothing): it keeps its instances and primaries, and gets a new instance only when
no zone of known good health can take it. With no zone health known at all, every zone is unknown and
placement is what it was without zone rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from depmirror.graph.model import Graph
from depmirror.planner.state import HealthSnapshot

ZoneStatus = Literal["healthy", "unknown", "unhealthy", "shifted"]

# Placement order of zones for a new instance: lower first; excluded zones take none.
_TIERS: Mapping[ZoneStatus, int] = {"healthy": 0, "unknown": 1, "unhealthy": 2, "shifted": 2}
_EFFECTS: Mapping[ZoneStatus, str] = {
    "healthy": "takes new instances",
    "unknown": "keeps its instances and primaries; new instances only when no healthy zone can take them",
    "unhealthy": "no new instance, its primaries move to healthy zones, its instances do not count towards RF",
    "shifted": "no new instance, its primaries move to healthy zones, its instances do not count towards RF",
}


@dataclass(frozen=True, slots=True)
class ZoneVerdict:
    zone: str
    status: ZoneStatus
    score: float | None
    rule: str  # e.g. "zone-c is unhealthy (0.20 < 0.5)"

    @property
    def excluded(self) -> bool:
        return self.status in ("unhealthy", "shifted")

    @property
    def tier(self) -> int:
        return _TIERS[self.status]

    @property
    def effect(self) -> str:
        return _EFFECTS[self.status]


@dataclass(frozen=True, slots=True)
class ZoneRules:
    """The verdict on every zone of the graph; `active` when any rule changes placement."""

    verdicts: Mapping[str, ZoneVerdict] = field(default_factory=dict)
    ignored_shifts: tuple[str, ...] = ()  # shifts naming a zone the graph does not have

    def verdict(self, zone: str | None) -> ZoneVerdict | None:
        return None if zone is None else self.verdicts.get(zone)

    def exclusion(self, zone: str | None) -> ZoneVerdict | None:
        """The verdict that excludes `zone`, or None when the zone may hold primaries and new instances."""
        found = self.verdict(zone)
        return found if found is not None and found.excluded else None

    def tier(self, zone: str | None) -> int:
        found = self.verdict(zone)
        return found.tier if found is not None else _TIERS["unknown"]

    @property
    def excluded(self) -> tuple[ZoneVerdict, ...]:
        return tuple(v for _, v in sorted(self.verdicts.items()) if v.excluded)

    @property
    def some_healthy(self) -> bool:
        return any(v.status == "healthy" for v in self.verdicts.values())

    @property
    def avoided(self) -> tuple[ZoneVerdict, ...]:
        """Zones of unknown health that new instances avoid (only while some zone is known healthy)."""
        if not self.some_healthy:
            return ()
        return tuple(v for _, v in sorted(self.verdicts.items()) if v.status == "unknown")

    @property
    def active(self) -> bool:
        return bool(self.excluded or self.avoided)


def judge_zones(
    graph: Graph, health: HealthSnapshot, shifts: Mapping[str, float] | None = None, now: float = 0.0
) -> ZoneRules:
    """Verdicts from zone health (`policy.health.unhealthy`) and the zonal shifts still running at `now`."""
    threshold = graph.policy.health.unhealthy
    shifts = shifts or {}
    verdicts: dict[str, ZoneVerdict] = {}
    for zone in sorted(graph.zones):
        score = health.zones.get(zone)
        expiry = shifts.get(zone)
        if expiry is not None and expiry > now:
            verdicts[zone] = ZoneVerdict(zone, "shifted", score, f"{zone} is under a zonal shift until {expiry:.0f}")
        elif score is None:
            verdicts[zone] = ZoneVerdict(zone, "unknown", None, f"{zone} health is unknown")
        elif score < threshold:
            verdicts[zone] = ZoneVerdict(zone, "unhealthy", score, f"{zone} is unhealthy ({score:.2f} < {threshold})")
        else:
            verdicts[zone] = ZoneVerdict(zone, "healthy", score, f"{zone} is healthy ({score:.2f})")
    ignored = tuple(sorted(z for z, expiry in shifts.items() if z not in graph.zones and expiry > now))
    return ZoneRules(verdicts, ignored)
