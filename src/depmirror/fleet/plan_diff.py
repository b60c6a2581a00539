"""What an adjust would change now: the plan from the store and Prometheus against the applied plan.

The comparison is `fleet.applied.record_applied_plan`'s own, in dry-run (RF, mode, primary and placement of
each dependency, as a person compares two applied plans), so that the runner's reconciliation and `adjust`
agree on what "differs" means; the hosts each change touches come from the plan's actions and from the
instances whose role differs. Only the planner's hysteresis memory changing is no difference: recording it
is adjust's business the next time it runs anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depmirror.fleet.applied import record_applied_plan
from depmirror.fleet.planning import plan_for_playbook

# What fetch_health warns when Prometheus cannot be read at all (health/evaluate.py): every verdict unknown.
PROMETHEUS_DOWN = "Prometheus unavailable"


@dataclass(frozen=True, slots=True)
class DependencyChange:
    """One dependency whose plan differs from what is applied; `before`/`after` are the applied plan's
    summaries (None: not applied yet / gone from the plan)."""

    dependency: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    hosts: tuple[str, ...]
    actions: tuple[Mapping[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "before": None if self.before is None else dict(self.before),
            "after": None if self.after is None else dict(self.after),
            "hosts": list(self.hosts),
            "actions": [dict(a) for a in self.actions],
        }


@dataclass(frozen=True, slots=True)
class PlanDiff:
    changes: tuple[DependencyChange, ...]
    # Every dependency of the plan or the record (an adjust renders every upstream on each load balancer).
    dependencies: tuple[str, ...]
    load_balancers: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    health_unknown: bool = False
    plan: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def hosts(self) -> tuple[str, ...]:
        return tuple(sorted({h for change in self.changes for h in change.hosts}))


def plan_diff(
    graph: str | Path,
    *,
    store: str,
    prometheus_url: str | None = None,
    prometheus_token: str | None = None,
    prometheus_timeout: float = 5.0,
) -> PlanDiff:
    """The plan now and how it differs from the applied plan the store holds. Raises what planning raises
    (a graph or store the user must fix: DepmirrorError subclasses naming file and field)."""
    plan, warnings = plan_for_playbook(
        graph,
        store=store,
        prometheus_url=prometheus_url,
        prometheus_token=prometheus_token,
        prometheus_timeout=prometheus_timeout,
    )
    compared = record_applied_plan(store, plan, dry_run=True)
    return diff_of(plan, compared.before, compared.after, warnings)


def diff_of(
    plan: Mapping[str, Any], before: Mapping[str, Any], after: Mapping[str, Any], warnings: list[str]
) -> PlanDiff:
    """The changes between two applied-plan summaries (`record_applied_plan`'s before/after), with the hosts
    each touches. Pure."""
    items = {str(d["name"]): d for d in plan.get("dependencies") or []}
    removed: dict[str, list[Mapping[str, Any]]] = {}
    for action in plan.get("removed") or []:
        if action.get("action") == "decommission":
            removed.setdefault(str(action.get("dependency")), []).append(action)
    changes = []
    for name in sorted(set(before) | set(after) | set(removed)):
        old, new = before.get(name), after.get(name)
        if old == new and name not in removed:
            continue
        actions = [a for a in (items.get(name) or {}).get("actions") or [] if a.get("action") != "keep"]
        actions += removed.get(name, [])
        hosts = {str(a["host"]) for a in actions}
        hosts |= _role_changes(old, new)
        if not hosts and new:
            # Only what the record says changed (kind, port, a stateful engine's commands): the adjust must
            # still reach the dependency's hosts, or a limited run would not record it.
            hosts = {str(i).rsplit(":", 1)[0] for i in new.get("instances") or []}
        for summary in (old, new):
            if summary and summary.get("primary") and (old or {}).get("primary") != (new or {}).get("primary"):
                hosts.add(str(summary["primary"]))
        changes.append(DependencyChange(name, old, new, tuple(sorted(hosts)), tuple(actions)))
    lbs = tuple(sorted(str(lb["host"]) for lb in plan.get("load_balancers") or []))
    return PlanDiff(
        changes=tuple(changes),
        dependencies=tuple(sorted(set(before) | set(after))),
        load_balancers=lbs,
        warnings=tuple(warnings),
        health_unknown=any(w.startswith(PROMETHEUS_DOWN) for w in warnings),
        plan=plan,
    )


def _role_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> set[str]:
    """Hosts whose instance appears, goes, or changes role (summaries list instances as `host:role`)."""
    was = set((old or {}).get("instances") or [])
    now = set((new or {}).get("instances") or [])
    return {entry.rsplit(":", 1)[0] for entry in was ^ now}
