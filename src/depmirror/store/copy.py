"""Copying one store into another (a SQLite file into PostgreSQL, when one runner becomes several).

What is copied: the rollback history with its ids and times, the applied plan, the primaries and the RF
changes; then every count is compared and every event read back. What is not: the runner's queue and
journal, which must be empty of work (every runner stopped, nothing waiting or running); the decided
alerts they keep (Alertmanager's resends, the flap window) are days of short-lived memory, not history."""

from __future__ import annotations

from dataclasses import dataclass

from depmirror.store.base import Store, StoreError
from depmirror.store.model import EventFilter

COPIED = ("events", "primaries", "applied_plans", "rf_changes")


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
    after = target.stats()
    differ = {name: (before[name], after[name]) for name in COPIED if before[name] != after[name]}
    copied = list(reversed(target.events(EventFilter(limit=None))))
    if differ or [e.as_dict() for e in copied] != [e.as_dict() for e in events]:
        raise StoreError(
            target.url,
            f"the copy does not match its source (counts source/target: {differ or 'equal'}; events differ)",
            "drop the target database and copy again into an empty one",
        )
    return CopyReport(
        counts={name: after[name] for name in COPIED},
        not_copied={"alerts_decided": before["alerts_decided"]},
    )
