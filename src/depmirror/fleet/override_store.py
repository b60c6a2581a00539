"""Setting, showing and clearing overrides in the store: what `depmirror policy` and the Ansible module
`depmirror.mirroring.policy` call (the runner's API does the same through its own store connection).

Each call first records the overrides that ran out as ended, so the history says when they stopped."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from depmirror.fleet.applied import plan_of
from depmirror.fleet.overrides import SETTINGS, end_event, end_expired, parse_request, set_event
from depmirror.store import Override, open_store


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """`before`/`after`: the dependency's override in force before and after (None: none)."""

    changed: bool
    before: Override | None
    after: Override | None


def known_dependencies(store_url: str, graph_names: Iterable[str] | None) -> set[str]:
    """The dependencies an override may name: the graph's, else those of the applied plan."""
    if graph_names is not None:
        return set(graph_names)
    with open_store(store_url, create=False) as store:
        return {str(item.get("name")) for item in plan_of(store.applied_plan()).get("dependencies") or []}


def _own(active: Iterable[Override], dependency: str) -> Override | None:
    return next((o for o in active if o.dependency == dependency), None)


def _same_settings(current: Override | None, wanted: Override) -> bool:
    return (
        current is not None
        and current.reason == wanted.reason
        and all(getattr(current, name) == getattr(wanted, name) for name in SETTINGS)
    )


def set_policy(
    store_url: str,
    dependency: str,
    request: Mapping[str, Any],
    *,
    known: Iterable[str],
    created_by: str,
    now: datetime,
    dry_run: bool = False,
    source: str = "cli",
) -> PolicyChange:
    """Store the override `request` asks for (OverrideError names a bad field; nothing is written then).

    Unchanged when the dependency's override in force already says the same with the same reason: running a
    playbook twice does not push its expiry (clear it, or change the reason, to renew)."""
    wanted = parse_request(dependency, dict(request), known=known, created_by=created_by, now=now)
    with open_store(store_url, create=not dry_run) as store:
        if not dry_run:
            end_expired(store, now, by=created_by)
        current = _own(store.overrides(now), dependency)
        if _same_settings(current, wanted):
            return PolicyChange(False, current, current)
        if dry_run:
            return PolicyChange(True, current, wanted)
        stored = store.set_override(wanted, event=lambda o: set_event(o, source=source))
    return PolicyChange(True, current, stored)


def clear_policy(
    store_url: str, dependency: str, *, by: str, reason: str, now: datetime, dry_run: bool = False
) -> PolicyChange:
    with open_store(store_url, create=False) as store:
        if not dry_run:
            end_expired(store, now, by=by)
        current = _own(store.overrides(now), dependency)
        if current is None:
            return PolicyChange(False, None, None)
        if dry_run:
            return PolicyChange(True, current, None)
        store.end_override(
            dependency,
            ended_ts=now,
            end_reason=f"cleared by {by}: {reason}",
            event=lambda o: end_event(o, by=by, source="cli"),
        )
    return PolicyChange(True, current, None)


def active_policies(store_url: str, now: datetime) -> list[Override]:
    """The overrides in force now (expired ones are not, whether or not recorded as ended yet)."""
    with open_store(store_url, create=False) as store:
        return store.overrides(now)
