"""A run that reaches only some hosts (`ansible-playbook --limit`, AWX's limit prompt): the part of a plan
it applies.

The plan is always the whole fleet's; a limited run applies it on the hosts it reaches and leaves the
others as the applied-plan record says they run. What it applies, and so what the load balancers it
reaches route and what the store records afterwards, is the plan on the reached hosts and the record
elsewhere, with three rules that keep every dependency serving:

- a dependency whose primary is new or moves, where the old or the new primary's host is not reached,
  waits whole: its mirrors and standbys would follow (replicate from, back up) a primary that does not run;
- a decommission waits unless every load balancer is reached: one that is not still routes to it;
- a dependency left with no instance is neither routed (its upstream would be empty) nor recorded.

Whatever waits is listed in `held_back`; the next run that reaches those hosts applies it. A run that
reaches every host of the plan and of the record applies the plan unchanged. Pure: plain dicts in and out.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

HELD_BACK_KEY = "held_back"
_NOT_REACHED = "{host} is outside this run (--limit)"
_LB_NOT_REACHED = "load balancer(s) {lbs} outside this run (--limit) still route to it"
_PRIMARY_NOT_REACHED = "its primary {change} on a host outside this run (--limit): the dependency waits whole"


def applied_part(
    plan: Mapping[str, Any], previous: Mapping[str, Any] | None, reached: Collection[str]
) -> dict[str, Any]:
    """The plan a run reaching the hosts `reached` applies, `previous` being the applied-plan record's plan
    and state (`{"plan": ..., "state": ...}`, or None when nothing was applied yet)."""
    old_plan = dict((previous or {}).get("plan") or {})
    old_items = {str(d["name"]): d for d in old_plan.get("dependencies") or [] if isinstance(d, Mapping)}
    fleet = {vm["host"] for vm in plan.get("vms", [])} | {lb["host"] for lb in plan.get("load_balancers", [])}
    # A host gone from the graph is in no inventory, so no run reaches it: the plan decides its instances.
    gone = {i["host"] for d in old_items.values() for i in d.get("instances") or []} - fleet
    hosts = frozenset(reached) | gone
    if fleet <= hosts:
        return {**plan, HELD_BACK_KEY: []}
    lbs_left_out = sorted(lb["host"] for lb in plan.get("load_balancers", []) if lb["host"] not in hosts)
    dependencies: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    whole: set[str] = set()
    for item in plan.get("dependencies", []):
        name = str(item["name"])
        entry, waiting = _dependency(item, old_items.get(name), hosts, lbs_left_out)
        held += waiting
        if entry is item:
            whole.add(name)
        if entry is not None and entry.get("instances"):
            dependencies.append(dict(entry))
    removed = []
    for action in plan.get("removed", []):
        reason = _why_waiting(action["host"], hosts, lbs_left_out)
        if reason:
            held.append({**action, "reason": reason})
        else:
            removed.append(action)
    planned = {item["name"] for item in plan.get("dependencies", [])}
    for name, old in old_items.items():  # gone from the graph: what still runs on hosts not reached
        staying = [
            i
            for i in old.get("instances") or []
            if any(w["dependency"] == name and w["host"] == i["host"] for w in held)
        ]
        if name not in planned and staying:
            dependencies.append({**old, "instances": staying, "actions": []})
    return {
        **plan,
        "summary": _summary(dependencies, removed),
        "dependencies": dependencies,
        "removed": removed,
        HELD_BACK_KEY: held,
        "state": _state(plan.get("state") or {}, (previous or {}).get("state") or {}, dependencies, whole),
    }


def _dependency(
    item: Mapping[str, Any], old: Mapping[str, Any] | None, hosts: frozenset[str], lbs_left_out: list[str]
) -> tuple[Mapping[str, Any] | None, list[dict[str, Any]]]:
    """The dependency's entry this run applies (the plan's own when all of it is applied), and what waits."""
    name = item["name"]
    old_instances = list((old or {}).get("instances") or [])
    actions = [a for a in item.get("actions", []) if a.get("action") != "keep"]
    waiting = [
        {"dependency": name, **a, "reason": reason}
        for a in actions
        if (reason := _why_waiting(a["host"], hosts, lbs_left_out if a["action"] == "decommission" else []))
    ]
    touched = {i["host"] for i in item.get("instances", [])} | {i["host"] for i in old_instances}
    if not waiting and touched <= hosts:
        return item, []
    new_primary = (item.get("primary") or {}).get("host")
    old_primary = ((old or {}).get("primary") or {}).get("host")
    if new_primary != old_primary and not ({new_primary, old_primary} - {None}) <= hosts:
        change = f"is new ({new_primary})" if old_primary is None else f"moves {old_primary} -> {new_primary}"
        reason = _PRIMARY_NOT_REACHED.format(change=change)
        return old, [{"dependency": name, **a, "reason": reason} for a in actions]
    planned = {i["host"]: i for i in item.get("instances", [])}
    instances = [i for i in item.get("instances", []) if i["host"] in hosts]
    for old_instance in old_instances:
        host = old_instance["host"]
        fresh = planned.get(host)
        if host not in hosts:
            # Not reached: it runs as before; the plan's copy carries fresher health when the role is the same.
            instances.append(fresh if fresh and fresh["role"] == old_instance["role"] else old_instance)
        elif fresh is None and lbs_left_out:
            instances.append(old_instance)  # its decommission waits for the load balancers
    applied_actions = [a for a in item.get("actions", []) if not any(w["host"] == a["host"] for w in waiting)]
    counted = sum(1 for i in instances if i.get("counts_towards_rf", True))
    entry = {**item, "instances": instances, "actions": applied_actions, "replication_factor": counted}
    return entry, waiting


def _why_waiting(host: str, hosts: frozenset[str], lbs_left_out: list[str]) -> str:
    if host not in hosts:
        return _NOT_REACHED.format(host=host)
    if lbs_left_out:
        return _LB_NOT_REACHED.format(lbs=", ".join(lbs_left_out))
    return ""


def _summary(dependencies: list[dict[str, Any]], removed: list[dict[str, Any]]) -> dict[str, int]:
    counts = {"provision": 0, "keep": 0, "decommission": 0}
    for action in [a for d in dependencies for a in d.get("actions", [])] + removed:
        counts[action["action"]] = counts.get(action["action"], 0) + 1
    return {"dependencies": len(dependencies), **counts}


def _state(
    next_state: Mapping[str, Any], old_state: Mapping[str, Any], dependencies: list[dict[str, Any]], whole: set[str]
) -> dict[str, Any]:
    """The planner's next state for what runs after the run: the plan's RF memory for the dependencies it
    applied whole, the record's for the others (their RF change is not applied yet)."""
    new_decisions = next_state.get("decisions") or {}
    old_decisions = old_state.get("decisions") or {}
    decisions = {}
    for item in dependencies:
        name = item["name"]
        decision = new_decisions.get(name) if name in whole else old_decisions.get(name)
        if decision is not None:
            decisions[name] = decision
    return {
        **next_state,
        "instances": [
            {"dependency": item["name"], "host": i["host"], "zone": i.get("zone"), "role": i["role"]}
            for item in dependencies
            for i in item["instances"]
        ],
        "decisions": dict(sorted(decisions.items())),
    }
