"""What runs now and how healthy it is: the planner's inputs, read from the state store and Prometheus.

The store holds the state the last `adjust` applied (instances and the hysteresis memory) and the
primaries, which a rollback may have changed since; a primary recorded there wins over the applied plan.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from depmirror.fleet.applied import state_of
from depmirror.graph.model import Graph
from depmirror.health.evaluate import collect_snapshot
from depmirror.planner.state import HealthSnapshot, InstanceRecord, State
from depmirror.store import StoreError, open_store


@dataclass(frozen=True, slots=True)
class PlannerInputs:
    state: State | None
    health: HealthSnapshot | None
    warnings: tuple[str, ...] = ()


def load_planner_inputs(
    graph: Graph,
    *,
    store: str | None = None,
    prometheus_url: str | None = None,
    prometheus_token: str | None = None,
    prometheus_timeout: float = 5.0,
) -> PlannerInputs:
    warnings: list[str] = []
    state = state_from_store(store) if store else None
    health = None
    if prometheus_url:
        health, health_warnings = collect_snapshot(
            graph, prometheus_url, token=prometheus_token, timeout=prometheus_timeout
        )
        warnings.extend(health_warnings)
    return PlannerInputs(state=state, health=health, warnings=tuple(warnings))


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
    if applied is None and not primaries:
        return None
    state = state_of(applied, url) if applied else State()
    return with_primaries(state, primaries)


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
