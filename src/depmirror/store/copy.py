"""Copying one store into another (a SQLite file into PostgreSQL, when one runner becomes several).

What is copied: the rollback history with its ids and times, the applied plan, the primaries, the RF
changes, the zonal shifts and the overrides (ended ones too, in order); then every count is compared and
every event, shift and override read back. What is not: the runner's queue and journal, which must be
empty of work (every runner stopped, nothing waiting or running); the decided alerts they keep
(Alertmanager's resends, the flap window) are days of short-lived memory, not history."""

from __future__ import annotations

from dataclasses import dataclass, replace

from depmirror.store.base import Store, StoreError
from depmirror.store.model import EventFilter

COPIED = ("events", "primaries", "applied_plans", "rf_changes", "zonal_shifts", "overrides")


@dataclass(frozen=True, slots=True)
class CopyReport:
    counts: dict[str, int]
    not_copied: dict[str, int]


def copy_store(source: Store, target: Store) -> CopyReport:
    before = source.stats()
    busy = {name: before[name] for name in ("alerts_waiting", "open_actions") if before[name]}
    if busy:
        raise StoreError(
            source.url,
            f"has work in flight ({', '.join(f'{n} {name}' for name, n in busy.items())})",
            "stop every runner, let `depmirror store check` show 0 alerts_waiting and 0 open_actions, then copy",
        )
    occupied = {name: n for name, n in target.stats().items() if name in COPIED and n}
    if occupied:
        raise StoreError(target.url, f"is not empty ({occupied})", "copy into a new, empty database")
    events = list(reversed(source.events(EventFilter(limit=None))))
    for event in events:
        target.append_event(event)
    for dependency, host in sorted(source.primaries().items()):
        target.set_primary(dependency, host)
    applied = source.applied_plan()
    if applied is not None:
        target.set_applied_plan(applied)
    for change in source.rf_changes():
        target.record_rf_change(change)
    shifts, overrides = _copy_runtime(source, target)
    after = target.stats()
    differ = {name: (before[name], after[name]) for name in COPIED if before[name] != after[name]}
    copied = list(reversed(target.events(EventFilter(limit=None))))
    if differ or [e.as_dict() for e in copied] != [e.as_dict() for e in events] or not (shifts and overrides):
        raise StoreError(
            target.url,
            f"the copy does not match its source (counts source/target: {differ or 'equal'};"
            " events, zonal shifts or overrides differ)",
            "drop the target database and copy again into an empty one",
        )
    return CopyReport(
        counts={name: after[name] for name in COPIED},
        not_copied={"alerts_decided": before["alerts_decided"]},
    )


def _copy_runtime(source: Store, target: Store) -> tuple[bool, bool]:
    """Copy zonal shifts and overrides in id order (the target hands out new ids); whether each reads back
    equal, ids aside. Open rows go in as they are, and each ends nothing: the source had at most one open
    row per zone and per dependency."""
    shifts = source.zonal_shifts()
    for shift in shifts:
        target.start_zonal_shift(replace(shift, id=None))
    overrides = source.overrides()
    for override in overrides:
        target.set_override(replace(override, id=None))
    copied_shifts = [replace(shift, id=None) for shift in target.zonal_shifts()]
    copied_overrides = [replace(override, id=None) for override in target.overrides()]
    return (
        copied_shifts == [replace(shift, id=None) for shift in shifts],
        copied_overrides == [replace(override, id=None) for override in overrides],
    )
