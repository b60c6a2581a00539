"""The applied plan: the one owner of its record in the store, and recording it after `adjust`.

The record is `{"plan": <the plan as the plan action shows it>, "state": <the planner's next state>}`;
everyone else reads and changes it through the functions here. `adjust.yml` records it last, once every
instance is up and every upstream routes to it: what the store says runs is then what runs.
Replication-factor changes are also appended to the rollback history.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from depmirror.fleet.partial import HELD_BACK_KEY, applied_part
from depmirror.planner.state import State
from depmirror.store import Event, RfChange, StoreError, open_store

PLAN_KEY = "plan"
STATE_KEY = "state"


def applied_record(plan: dict[str, Any], next_state: State) -> dict[str, Any]:
    """What `adjust` stores once a plan is applied: the plan as shown, and the state the planner needs next."""
    return {PLAN_KEY: plan, STATE_KEY: next_state.to_dict()}


def plan_of(record: Mapping[str, Any] | None) -> dict[str, Any]:
    """The plan as shown, from an applied-plan record (empty when nothing was applied)."""
    return dict((record or {}).get(PLAN_KEY) or {})


def state_of(record: Mapping[str, Any] | None, source: str) -> State:
    """The planner's state an applied-plan record carries (`source` names it in errors)."""
    return State.from_dict((record or {}).get(STATE_KEY, {}), source)


def with_dependency(record: Mapping[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
    """The record with one dependency's entry replaced (what the load balancers route for it now)."""
    updated = dict(record or {})
    plan = plan_of(record)
    plan["dependencies"] = [after if d["name"] == after["name"] else d for d in plan.get("dependencies") or []]
    updated[PLAN_KEY] = plan
    return updated


def hosts_by_dependency(record: Mapping[str, Any] | None) -> dict[str, frozenset[str]]:
    """The hosts each dependency runs on, as the record says."""
    return {
        str(item["name"]): frozenset(str(i["host"]) for i in item.get("instances", []) if i.get("host"))
        for item in plan_of(record).get("dependencies", [])
        if isinstance(item, Mapping) and item.get("name")
    }


@dataclass(frozen=True, slots=True)
class RecordResult:
    changed: bool
    primaries: dict[str, str]
    rf_changes: dict[str, tuple[int | None, int]] = field(default_factory=dict)
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    held_back: list[dict[str, Any]] = field(default_factory=list)


def part_to_apply(store_url: str | None, plan: dict[str, Any], reached: Collection[str]) -> dict[str, Any]:
    """The part of `plan` a run reaching the hosts `reached` applies, against the record in the store now
    (fleet/partial.py says how); the whole plan when nothing is recorded yet and every host is reached."""
    previous = None
    if store_url:
        try:
            with open_store(store_url, create=False) as store:
                previous = store.applied_plan()
        except StoreError:
            # The plan was just computed from this store, which raised unless it does not exist yet.
            previous = None
    return applied_part(plan, previous, reached)


def record_applied_plan(
    store_url: str, plan: dict[str, Any], *, reached: Collection[str] | None = None, dry_run: bool = False
) -> RecordResult:
    """Store `plan` (as the `plan` action returns it; its `state` is what the planner needs next).

    `reached`: the hosts the run applied it on (those the limit left in and that did not fail); the record
    then takes the plan only there and keeps what it said elsewhere (fleet/partial.py). None: every host.
    """
    with open_store(store_url) as store:
        before_record = store.applied_plan() or {}
        if reached is not None:
            plan = applied_part(plan, before_record, reached)
        next_state = State.from_dict(plan.get("state", {}), "plan.state")
        shown = {k: v for k, v in plan.items() if k != "state"}
        dependencies = shown.get("dependencies", [])
        primaries = {item["name"]: item["primary"]["host"] for item in dependencies if item.get("primary")}
        rfs = {item["name"]: int(item["replication_factor"]) for item in dependencies}
        before = _summary(plan_of(before_record), store.primaries())
        after = _summary(shown, primaries)
        old_rfs = {name: s["replication_factor"] for name, s in before.items()}
        rf_changes = {name: (old_rfs.get(name), rf) for name, rf in rfs.items() if old_rfs.get(name) != rf}
        changed = before != after or before_record.get(STATE_KEY) != next_state.to_dict()
        if changed and not dry_run:
            store.set_applied_plan(applied_record(shown, next_state))
            for dependency, host in primaries.items():
                if store.primary(dependency) != host:
                    store.set_primary(dependency, host)
            for dependency, (old, new) in rf_changes.items():
                store.record_rf_change(RfChange(dependency=dependency, rf=new))
                store.append_event(_rf_event(dependency, old, new, shown))
    return RecordResult(changed, primaries, rf_changes, before, after, list(plan.get(HELD_BACK_KEY) or []))


def _summary(plan: dict[str, Any], primaries: dict[str, str]) -> dict[str, Any]:
    """What a person compares between two applied plans: RF, mode, primary and instance placement, and what
    the runner reads from the record to move state (kind, port, a `stateful:` engine's commands)."""
    return {
        item["name"]: {
            "replication_factor": item["replication_factor"],
            "mode": item["mode"],
            "kind": item.get("kind"),
            "port": item.get("port"),
            "stateful_commands": item.get("stateful_commands"),
            "primary": primaries.get(item["name"]),
            "instances": sorted(f"{i['host']}:{i['role']}" for i in item.get("instances", [])),
        }
        for item in plan.get("dependencies", [])
    }


def _rf_event(dependency: str, old: int | None, new: int, plan: dict[str, Any]) -> Event:
    item = next(d for d in plan["dependencies"] if d["name"] == dependency)
    return Event(
        kind="rf_change",
        dependency=dependency,
        outcome="succeeded",
        action="adjust",
        trigger={"source": "adjust"},
        inputs={"weight": item.get("weight"), "rf": item.get("rf")},
        decision=f"replication factor {old} -> {new}" if old is not None else f"replication factor {new}",
        reason=(item.get("rf") or {}).get("reason", ""),
        details={"instances": item.get("instances", [])},
    )
