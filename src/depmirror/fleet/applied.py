"""Recording an applied plan in the state store, so that the next plan, the inventory and the runner see it.

`adjust.yml` calls this last, once every instance is up and every upstream routes to it: what the store
says runs is then what runs. Replication-factor changes are also appended to the rollback history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from depmirror.fleet.current import APPLIED_STATE_KEY, applied_record
from depmirror.planner.state import State
from depmirror.store import Event, RFDecision, open_store


@dataclass(frozen=True, slots=True)
class RecordResult:
    changed: bool
    primaries: dict[str, str]
    rf_changes: dict[str, tuple[int | None, int]] = field(default_factory=dict)
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)


def record_applied_plan(store_url: str, plan: dict[str, Any], *, dry_run: bool = False) -> RecordResult:
    """Store `plan` (as the `plan` action returns it; its `state` is what the planner needs next)."""
    next_state = State.from_dict(plan.get("state", {}), "plan.state")
    shown = {k: v for k, v in plan.items() if k != "state"}
    primaries = {
        item["name"]: item["primary"]["host"] for item in shown.get("dependencies", []) if item.get("primary")
    }
    rfs = {item["name"]: int(item["replication_factor"]) for item in shown.get("dependencies", [])}
    store = open_store(store_url)
    try:
        before_record = store.applied_plan() or {}
        before = _summary(before_record.get("plan", {}), store.primaries())
        after = _summary(shown, primaries)
        old_rfs = {name: s["replication_factor"] for name, s in before.items()}
        rf_changes = {name: (old_rfs.get(name), rf) for name, rf in rfs.items() if old_rfs.get(name) != rf}
        changed = before != after or before_record.get(APPLIED_STATE_KEY) != next_state.to_dict()
        if changed and not dry_run:
            store.set_applied_plan(applied_record(shown, next_state))
            for dependency, host in primaries.items():
                if store.primary(dependency) != host:
                    store.set_primary(dependency, host)
            for dependency, (old, new) in rf_changes.items():
                store.record_rf_decision(RFDecision(dependency=dependency, rf=new))
                store.append_event(_rf_event(dependency, old, new, shown))
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()
    return RecordResult(changed, primaries, rf_changes, before, after)


def _summary(plan: dict[str, Any], primaries: dict[str, str]) -> dict[str, Any]:
    """What a person compares between two applied plans: RF, mode, primary and instance placement."""
    return {
        item["name"]: {
            "replication_factor": item["replication_factor"],
            "mode": item["mode"],
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
