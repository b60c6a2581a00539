"""Which instances exist: what an alert's `dependency` and `instance` labels (and a zone alert's `zone`
label) are checked against before the alert may select anything (docs/runner.md, "Trust model").

A dependency's instances are those the applied plan in the store records; for a dependency it does not
record (no `adjust` yet), those the graph's plan places (or the config lists)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from depmirror.fleet.applied import hosts_by_dependency
from depmirror.runner.store_caller import StoreCaller


@dataclass(frozen=True, slots=True)
class Roster:
    placed: Mapping[str, frozenset[str]]
    applied: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def hosts(self, dependency: str) -> frozenset[str]:
        return self.applied.get(dependency) or self.placed.get(dependency, frozenset())

    def reason(self, dependency: str, instance: str, *, dependency_label: str, instance_label: str) -> str | None:
        """Why these labels select nothing, or None when they name a known instance of a known dependency."""
        if not dependency:
            return f"no {dependency_label!r} label"
        if dependency not in self.placed and dependency not in self.applied:
            return f"unknown dependency {_short(dependency)} (not in the graph)"
        if not instance:
            return f"no {instance_label!r} label"
        host = instance.removeprefix(f"{dependency}@")
        if host not in self.hosts(dependency):
            return (
                f"unknown instance {_short(instance)}: {dependency} runs on no such host "
                f"(expected {dependency}@HOST or HOST of an instance the plan places)"
            )
        return None


class RosterSource:
    """The current roster, re-read from the store only when `adjust` recorded a new applied plan."""

    def __init__(self, placed: Mapping[str, frozenset[str]], db: StoreCaller) -> None:
        self.placed = placed
        self.db = db
        self._stamp: float | None = None
        self._roster = Roster(placed)
        self._lock = asyncio.Lock()

    async def current(self) -> Roster:
        stamp = await self.db(self.db.store.applied_plan_stamp)
        if stamp == self._stamp:
            return self._roster
        async with self._lock:
            if stamp != self._stamp:
                plan = await self.db(self.db.store.applied_plan)
                self._roster = Roster(self.placed, hosts_by_dependency(plan))
                self._stamp = stamp
        return self._roster


def zone_reason(zone: str, zones: Collection[str], *, zone_label: str = "zone") -> str | None:
    """Why a zone alert's zone label selects nothing, or None when it names a zone of the graph."""
    if not zone:
        return f"no {zone_label!r} label"
    if zone not in zones:
        return f"unknown zone {_short(zone)} (not in the graph)"
    return None


def _short(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 60 else shown[:57] + "..."
