"""What runs now and how healthy it is: the planner's inputs, read from the state store and Prometheus.

The store holds the state the last `adjust` applied (instances and the hysteresis memory) and the
primaries, which a rollback may have changed since; a primary recorded there wins over the applied plan.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from depmirror.fleet.applied import state_of
from depmirror.fleet.learning_inputs import epoch_utc, failures_from_store
from depmirror.fleet.overrides import overridden_graph
from depmirror.graph.model import Graph
from depmirror.health.evaluate import collect_snapshot
from depmirror.planner.learning import Failure
from depmirror.planner.state import HealthSnapshot, InstanceRecord, State
from depmirror.store import StoreError, ZonalShift, open_store


@dataclass(frozen=True, slots=True)
class PlannerInputs:
    state: State | None
    health: HealthSnapshot | None
    warnings: tuple[str, ...] = ()
    # The graph with the store's overrides in force at `now` applied (fleet/overrides.py): what the planner
    # plans from. Always set by load_planner_inputs (the graph as given without a store).
    graph: Graph | None = None
    # The failovers `policy.learning` learns from (empty while it is off): compute_plan's `history`.
    failures: tuple[Failure, ...] = ()
    now: float = 0.0  # the time the overrides and the history were read at: plan at the same time


def load_planner_inputs(
    graph: Graph,
    *,
    store: str | None = None,
    prometheus_url: str | None = None,
    prometheus_token: str | None = None,
    prometheus_timeout: float = 5.0,
    now: float | None = None,
) -> PlannerInputs:
    """`now` (epoch seconds, default the clock): overrides are those in force then (`--now` in the CLI
    checks them against that time, not the wall clock), and the history is read up to then."""
    now = time.time() if now is None else now
    warnings: list[str] = []
    state = state_from_store(store) if store else None
    overridden, notes = overridden_graph(graph, store, epoch_utc(now)) if store else (graph, [])
    health = None
    if prometheus_url:
        # Judged with the overridden graph: an `unhealthy` override moves the verdicts' threshold too.
        health, health_warnings = collect_snapshot(
            overridden, prometheus_url, token=prometheus_token, timeout=prometheus_timeout
        )
        warnings.extend(health_warnings)
    warnings.extend(notes)
    failures = failures_from_store(overridden, store, now) if store else ()
    return PlannerInputs(
        state=state, health=health, warnings=tuple(warnings), graph=overridden, failures=failures, now=now
    )


def state_from_store(url: str) -> State | None:
    """The applied state with the recorded primaries; None when the store does not exist yet."""
    try:
        # Reading must not create the store: a typo in its path would silently plan from nothing.
        store = open_store(url, create=False)
    except StoreError:
        if _missing(url):
            return None
        raise  # names the store file and the fix
    with store:
        applied = store.applied_plan()
        primaries = store.primaries()
        shifts = open_shifts(store.zonal_shifts())
    if applied is None and not primaries and not shifts:
        return None
    state = state_of(applied, url) if applied else State()
    state = with_primaries(state, primaries)
    return dataclasses.replace(state, zonal_shifts=shifts) if shifts else state


def shifted_zones(graph: Graph, state: State | None, now: float) -> list[str]:
    """The graph's zones under a zonal shift at `now` (epoch seconds), sorted: what routing keeps traffic from."""
    shifts = state.zonal_shifts if state is not None else {}
    return sorted(zone for zone, expiry in shifts.items() if expiry > now and zone in graph.zones)


def open_shifts(shifts: Iterable[ZonalShift]) -> dict[str, float]:
    """zone -> expiry (epoch seconds) of every shift not ended, as the planner reads them (State.zonal_shifts);
    the planner itself ignores those whose expiry is not after its `now`."""
    return {shift.zone: shift.expires_ts.timestamp() for shift in shifts if shift.ended_ts is None}


def _missing(url: str) -> bool:
    """A SQLite file not created yet (nothing applied so far). A server URL is never "missing": a server
    that does not answer must stop the plan, not let it start from an empty fleet."""
    if "://" in url and not url.startswith("sqlite:"):
        return False
    path = url.split(":", 1)[1].lstrip("/") if url.startswith("sqlite:") else url
    if url.startswith("sqlite:////"):
        path = "/" + path
    return not Path(path).exists()


def with_primaries(state: State, primaries: dict[str, str]) -> State:
    """Apply the primaries the store records (e.g. after a rollback) over the applied instances."""
    if not primaries:
        return state
    instances: list[InstanceRecord] = []
    for record in state.instances:
        primary = primaries.get(record.dependency)
        if primary is None:
            instances.append(record)
        elif record.host == primary:
            instances.append(dataclasses.replace(record, role="primary"))
        elif record.role == "primary":
            # The demoted primary stays an instance; the planner decides whether it mirrors or goes.
            instances.append(dataclasses.replace(record, role="mirror"))
        else:
            instances.append(record)
    return dataclasses.replace(state, instances=tuple(instances))
