"""Overrides: run-time policy (RF bounds, the health threshold, the rollback mode) with who, why and an expiry.

One place reads an override request (the API's JSON body, the CLI's flags, the Ansible module's options all
become the same mapping), builds its history events, ends the expired ones, and applies the active ones to
the graph the planner reads. The store keeps them (`Store.set_override`, `overrides`, `end_override`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from depmirror.durations import duration_seconds
from depmirror.graph.model import Graph, HealthThresholds, ReplicationPolicy
from depmirror.store import EVERY_DEPENDENCY, ROLLBACK_MODES, Event, Override, Store, StoreError, open_store

MAX_EXPIRY_S = 30 * 86400.0  # nothing stays overridden by accident: a month at most (issue 20)
MAX_REASON = 500
MAX_NAME = 200
FIELDS = ("rf_min", "rf_max", "unhealthy", "rollback", "expires_in", "reason")
SETTINGS = ("rf_min", "rf_max", "unhealthy", "rollback")


class OverrideError(ValueError):
    """An override request that cannot be stored; `field` names the offending field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def parse_request(
    dependency: str,
    body: Any,
    *,
    known: Iterable[str],
    created_by: str,
    now: datetime,
) -> Override:
    """An Override from a request body ({rf_min, rf_max, unhealthy, rollback, expires_in, reason}).

    Raises OverrideError naming the first bad field; nothing is stored by this function."""
    if dependency != EVERY_DEPENDENCY and dependency not in set(known):
        raise OverrideError("dependency", f"{_short(repr(dependency))} is not a dependency of the graph (or '*')")
    if not isinstance(body, Mapping):
        raise OverrideError("body", "must be a JSON object")
    for key in body:
        if key not in FIELDS:
            raise OverrideError(_short(str(key), 40), f"unknown field; known: {', '.join(FIELDS)}")
    rf_min = _rf(body, "rf_min")
    rf_max = _rf(body, "rf_max")
    if rf_min is not None and rf_max is not None and rf_min > rf_max:
        raise OverrideError("rf_min", f"{rf_min} is more than rf_max {rf_max}")
    unhealthy = body.get("unhealthy")
    if unhealthy is not None and (
        isinstance(unhealthy, bool)
        or not isinstance(unhealthy, int | float)
        or not math.isfinite(unhealthy)
        or not 0.0 <= unhealthy <= 1.0
    ):
        raise OverrideError("unhealthy", f"must be a health score 0..1, got {_short(repr(unhealthy))}")
    rollback = body.get("rollback")
    if rollback is not None and rollback not in ROLLBACK_MODES:
        raise OverrideError("rollback", f"must be one of {', '.join(ROLLBACK_MODES)}, got {_short(repr(rollback))}")
    if all(body.get(name) is None for name in SETTINGS):
        raise OverrideError("body", f"sets nothing: give at least one of {', '.join(SETTINGS)}")
    expires_in = _expiry(body.get("expires_in"))
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise OverrideError("reason", "is required: say why, for whoever reads the history")
    if len(reason) > MAX_REASON or not reason.isprintable():
        raise OverrideError("reason", f"must be at most {MAX_REASON} printable characters")
    if not created_by or len(created_by) > MAX_NAME:
        raise OverrideError("created_by", f"must be 1..{MAX_NAME} characters")
    return Override(
        dependency=dependency,
        rf_min=rf_min,
        rf_max=rf_max,
        unhealthy=None if unhealthy is None else float(unhealthy),
        rollback=rollback,
        reason=reason.strip(),
        created_by=created_by,
        created_ts=now,
        expires_ts=now + timedelta(seconds=expires_in),
    )


def _rf(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
        raise OverrideError(name, f"must be a whole number 1..64, got {_short(repr(value))}")
    return value


def _expiry(value: Any) -> float:
    if value is None:
        raise OverrideError("expires_in", "is required: an override always expires (e.g. 2h, at most 30d)")
    seconds = duration_seconds(value) if isinstance(value, str) and len(value) <= 32 else None
    if seconds is None or seconds <= 0:
        raise OverrideError("expires_in", f"{_short(repr(value))} is not a duration such as 30m, 2h or 7d")
    if seconds > MAX_EXPIRY_S:
        raise OverrideError("expires_in", f"{value} is longer than the 30 days an override may last")
    return seconds


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- the history --------------------------------------------------------------------------------------
def set_event(override: Override, *, source: str = "api") -> Event:
    return Event(
        kind="override",
        dependency=override.dependency,
        outcome="succeeded",
        time=override.created_ts,
        trigger={"type": "user", "user": override.created_by, "source": source},
        decision="set " + ", ".join(f"{n}={getattr(override, n)}" for n in SETTINGS if _is_set(override, n)),
        reason=override.reason,
        details={"override": override.as_dict()},
    )


def end_event(override: Override, *, by: str, source: str = "api") -> Event:
    return Event(
        kind="override_end",
        dependency=override.dependency,
        outcome="succeeded",
        time=override.ended_ts or override.expires_ts,
        trigger={"type": "user", "user": by, "source": source},
        decision=f"ended override #{override.id}",
        reason=override.end_reason or "",
        details={"override": override.as_dict()},
    )


def _is_set(override: Override, name: str) -> bool:
    return getattr(override, name) is not None


def end_expired(store: Store, now: datetime, *, by: str) -> list[Override]:
    """Record as ended (at their expiry, with an `override_end` event) the overrides that ran out.

    Several runners may call this at once: the store ends each override once and returns None to the others."""
    ended: list[Override] = []
    for override in store.overrides(None):
        if override.ended_ts is None and override.expires_ts <= now:
            closed = store.end_override(
                override.dependency,
                ended_ts=override.expires_ts,
                end_reason="expired",
                event=lambda o: end_event(o, by=by, source="expiry"),
            )
            if closed is not None:
                ended.append(closed)
    return ended


# --- what the planner and the runner read -------------------------------------------------------------
def effective(overrides: Iterable[Override], dependency: str, now: datetime) -> dict[str, Any]:
    """Each setting in force for `dependency` with the id of the override that sets it: the dependency's own
    override wins over `*` field by field. Expired and ended overrides are ignored."""
    active = [o for o in overrides if o.active_at(now) and o.dependency in (dependency, EVERY_DEPENDENCY)]
    # "*" first, so that the dependency's own override, applied after it, wins.
    active.sort(key=lambda o: (o.dependency != EVERY_DEPENDENCY, o.id or 0))
    settings: dict[str, Any] = {}
    for override in active:
        for name in SETTINGS:
            value = getattr(override, name)
            if value is not None:
                settings[name] = (value, override)
    return settings


def overridden_graph(graph: Graph, store_url: str, now: datetime) -> tuple[Graph, list[str]]:
    """`apply_to_graph` with the overrides the store holds now; the graph as it is when the store does not
    exist yet (nothing was ever overridden). Reads only: the runner records the expired ones as ended."""
    try:
        store = open_store(store_url, create=False)
    except StoreError:
        return graph, []  # state_from_store, read just before, already said why a store that exists is broken
    with store:
        active = store.overrides(now)
    return apply_to_graph(graph, active, now)


def apply_to_graph(graph: Graph, overrides: Iterable[Override], now: datetime) -> tuple[Graph, list[str]]:
    """The graph with active overrides applied (RF bounds per dependency; the health threshold of `*` for the
    fleet, a dependency's own `unhealthy` for its instances: `Dependency.unhealthy`, read through
    `Graph.unhealthy_below` by health verdicts and placement), and one line per change for the plan's
    warnings."""
    chosen = list(overrides)
    notes: list[str] = []
    dependencies = dict(graph.dependencies)
    for name, dependency in graph.dependencies.items():
        settings = effective(chosen, name, now)
        bounds = dependency.replication
        rf_min, rf_max = bounds.min_rf, bounds.max_rf
        if "rf_min" in settings:
            rf_min = settings["rf_min"][0]
        if "rf_max" in settings:
            rf_max = settings["rf_max"][0]
        # An overridden bound wins over the graph's other one rather than contradict it.
        if "rf_min" in settings:
            rf_max = max(rf_max, rf_min)
        else:
            rf_min = min(rf_min, rf_max)
        changed = dependency
        if (rf_min, rf_max) != (bounds.min_rf, bounds.max_rf):
            ids = sorted({f"#{settings[k][1].id}" for k in ("rf_min", "rf_max") if k in settings})
            notes.append(
                f"{name}: replication {bounds.min_rf}..{bounds.max_rf} -> {rf_min}..{rf_max} "
                f"(override {', '.join(ids)})"
            )
            replication = ReplicationPolicy(min_rf=rf_min, max_rf=rf_max, mode=bounds.mode)
            changed = dataclasses.replace(changed, replication=replication)
        own = settings.get("unhealthy")
        if own is not None and own[1].dependency == name:  # `*`'s is the fleet's threshold, below
            notes.append(f"{name}: unhealthy below {graph.policy.health.unhealthy} -> {own[0]} (override #{own[1].id})")
            changed = dataclasses.replace(changed, unhealthy=float(own[0]))
        if changed is not dependency:
            dependencies[name] = changed
    policy = graph.policy
    every = effective(chosen, EVERY_DEPENDENCY, now)
    if "unhealthy" in every and every["unhealthy"][0] != policy.health.unhealthy:
        value, override = every["unhealthy"]
        notes.append(f"*: unhealthy below {policy.health.unhealthy} -> {value} (override #{override.id})")
        policy = dataclasses.replace(policy, health=HealthThresholds(unhealthy=float(value)))
    if not notes:
        return graph, notes
    return dataclasses.replace(graph, dependencies=MappingProxyType(dependencies), policy=policy), notes
